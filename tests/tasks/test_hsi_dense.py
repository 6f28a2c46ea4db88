"""Dense VP-Hype (``dense_block > 0``: every pixel of a block per forward pass) against its
definition: the per-pixel model unchanged, prediction equal to the model on each block's
window (raster edges, cores that are not multiples of the block), training windows and
target maps aligned and holding training pixels only, evaluation scoring every pixel once,
the loss ignoring unscored pixels, and a tiny dense model learning through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file

from domainvit.config import load_config
from domainvit.engine import build_model, evaluate, load_inference_weights, train
from domainvit.errors import ConfigError
from domainvit.registry import get_task
from domainvit.tasks.hsi.data import HSIClass, HSIData, pad_block_grid, pixel_dataset
from domainvit.tasks.hsi.metrics import HSIMetrics
from domainvit.tasks.hsi.model import VPHype, VPHypeConfig
from domainvit.tasks.hsi.predict import classify_raster, classify_tile
from tests.conftest import write_geotiff

BANDS, CLASSES = 6, 3


def _model(dense_block: int, patch: int = 5, text_prompts: bool = True, seed: int = 0):
    cfg = VPHypeConfig(in_bands=BANDS, pca_components=4, conv_channels=[4], embed_dim=16,
                       depth=1, num_heads=2, kernel_size=3, d_state=4, expand=1,
                       visual_prompts=2, text_prompts=text_prompts)
    torch.manual_seed(seed)
    model = VPHype(cfg, num_classes=CLASSES, patch_size=patch, dense_block=dense_block)
    generator = torch.Generator().manual_seed(seed)
    model.set_pca(torch.rand(BANDS, generator=generator),
                  torch.randn(4, BANDS, generator=generator), torch.ones(4))
    model.set_text_embeddings(F.normalize(torch.randn(CLASSES, 384, generator=generator), dim=1))
    # non-trivial batch-norm statistics, so eval mode is not an identity
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


def _softmax(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(x).float(), dim=1)


def test_per_pixel_model_is_unchanged_and_predicts_each_pixel_from_its_patch(tmp_path):
    model = _model(0)
    assert model.window == 5 and model.pos_embed.shape == (1, 25, 16)
    # a saved per-pixel model loads into a fresh one and predicts every pixel from its patch
    path = tmp_path / "m.safetensors"
    save_file(model.state_dict(), path)
    loaded = _model(0, seed=1)
    loaded.load_state_dict(load_file(path))
    rng = np.random.default_rng(0)
    cube = rng.random((BANDS, 9 + 4, 7 + 4), dtype=np.float32)
    probs = classify_tile(loaded, cube, 2, 10, torch.device("cpu"))
    assert probs.shape == (CLASSES, 9, 7)
    patches = torch.stack([torch.from_numpy(cube[:, r:r + 5, c:c + 5])
                           for r in range(9) for c in range(7)])
    expected = _softmax(model, patches).T.reshape(CLASSES, 9, 7)
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)
    # the per-pixel logits are the classifier of (centre token, patch mean token)
    with torch.no_grad():
        tokens = model.tokens(model.reduce_bands(patches))
        feature = torch.cat([tokens[:, 2, 2], tokens.mean((1, 2))], dim=-1)
        torch.testing.assert_close(model(patches), model.classify(feature))


@pytest.mark.parametrize("text_prompts", [True, False])
def test_dense_logits_are_each_pixels_token_and_neighbourhood_mean(text_prompts):
    model = _model(4, text_prompts=text_prompts)
    assert model.window == 8 and model.pos_embed.shape == (1, 64, 16)
    x = torch.rand(3, BANDS, 8, 8)
    with torch.no_grad():
        logits = model(x)
        tokens = model.tokens(model.reduce_bands(x))
    assert logits.shape == (3, CLASSES, 4, 4)
    for i in range(4):
        for j in range(4):
            # pixel (i, j) of the block is window pixel (i + 2, j + 2); its 5x5 patch
            # starts at (i, j)
            feature = torch.cat([tokens[:, i + 2, j + 2],
                                 tokens[:, i:i + 5, j:j + 5].mean((1, 2))], dim=-1)
            with torch.no_grad():
                torch.testing.assert_close(logits[:, :, i, j], model.classify(feature),
                                           rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="8x8 windows"):
        model(torch.rand(1, BANDS, 5, 5))


def _hand_dense_probs(model, scene: np.ndarray, margin: int, block: int) -> np.ndarray:
    """The dense model on every block window of a whole scene, one window at a time."""
    padded = pad_block_grid(scene, margin, block)
    h, w = scene.shape[1:]
    out = np.zeros((CLASSES, padded.shape[1] - 2 * margin, padded.shape[2] - 2 * margin),
                   np.float32)
    size = 2 * margin + block
    for top in range(0, out.shape[1], block):
        for left in range(0, out.shape[2], block):
            window = torch.from_numpy(padded[:, top:top + size, left:left + size].copy())[None]
            out[:, top:top + block, left:left + block] = _softmax(model, window)[0].numpy()
    return out[:, :h, :w]


def test_dense_classify_tile_equals_the_model_on_each_block_window():
    model = _model(4)
    rng = np.random.default_rng(1)
    scene = rng.random((BANDS, 11, 6), dtype=np.float32)  # neither side a multiple of 4
    filled = np.pad(scene, [(0, 0), (2, 2), (2, 2)], mode="reflect")
    for batch_size in (1, 20, 1000):  # 1, 8 and 40 windows per batch
        probs = classify_tile(model, filled, 2, batch_size, torch.device("cpu")).numpy()
        assert probs.shape == (CLASSES, 11, 6)
        np.testing.assert_allclose(probs, _hand_dense_probs(model, scene, 2, 4),
                                   rtol=1e-5, atol=1e-6)


def test_dense_raster_prediction_equals_the_model_on_each_block_window(tmp_path):
    block, patch = 6, 5
    model = _model(block, patch)
    rng = np.random.default_rng(2)
    scene = (0.05 + 0.9 * rng.random((BANDS, 37, 29))).astype(np.float32)
    raster = write_geotiff(tmp_path / "scene.tif", scene)
    data = HSIData(root=tmp_path, classes=[HSIClass(name=f"c{i}") for i in range(CLASSES)],
                   patch_size=patch, dense_block=block, tile_size=16,
                   predict_batch_size=7, write_probabilities=True)
    # tiles of 18 (16 rounded up to the block): cores of 18 and 1 rows, 18 and 11 columns
    outputs = classify_raster(model, data, raster, tmp_path / "out", progress=lambda *_: None)
    with rasterio.open(outputs[2]) as src:
        probs = src.read()
    with rasterio.open(outputs[0]) as src:
        labels = src.read(1)
    expected = _hand_dense_probs(model, scene, patch // 2, block)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, expected.argmax(0) + 1)


# --- data --------------------------------------------------------------------------------

SIZE = 40


def _write_scene(folder: Path, seed: int = 0, signal: bool = False) -> Path:
    """A scene whose pixels say what they are: with ``s`` a random brightness per pixel
    (band 2), bands 0, 1, 3 and 4 are ``s * (0.05 + v)`` for ``v`` = label / 10, split code
    / 10, row / 100 and column / 100, so a window's pixels can be traced back through any
    flip, rotation or brightness scale (:func:`_decode`). With ``signal``, band 5 carries
    the class (for training) and the labels come in 4x4 patches."""
    rng = np.random.default_rng(seed)
    if signal:
        labels = np.kron(rng.integers(1, CLASSES + 1, (SIZE // 4, SIZE // 4)),
                         np.ones((4, 4), int))
    else:
        labels = rng.integers(0, CLASSES + 1, (SIZE, SIZE))
    split = rng.choice([0, 1, 2, 3], size=(SIZE, SIZE), p=[0.1, 0.3, 0.2, 0.4])
    rows, cols = np.mgrid[:SIZE, :SIZE]
    scale = 0.3 + 0.6 * rng.random((SIZE, SIZE))  # reflectance stays below 1.5
    last = (labels / 3 + 0.05 * rng.standard_normal((SIZE, SIZE)) if signal
            else rng.random((SIZE, SIZE)))
    cube = np.stack([0.05 + labels / 10, 0.05 + split / 10, np.ones((SIZE, SIZE)),
                     0.05 + rows / 100, 0.05 + cols / 100, 0.1 + last]) * scale
    write_geotiff(folder / "scene.tif", cube.astype(np.float32))
    write_geotiff(folder / "labels.tif", labels[None].astype(np.uint8))
    write_geotiff(folder / "split.tif", split[None].astype(np.uint8))
    return folder


def _decode(window: torch.Tensor) -> dict[str, np.ndarray]:
    """Label, split code, row and column of every pixel of ``window [bands, h, w]``."""
    w = window.double().numpy()
    ratio = {name: w[band] / w[2] - 0.05 for name, band in
             (("label", 0), ("split", 1), ("row", 3), ("col", 4))}
    return {"label": np.rint(ratio["label"] * 10).astype(int),
            "split": np.rint(ratio["split"] * 10).astype(int),
            "row": np.rint(ratio["row"] * 100).astype(int),
            "col": np.rint(ratio["col"] * 100).astype(int)}


def _data(folder: Path, **overrides) -> HSIData:
    fields = dict(root=folder, classes=[HSIClass(name=f"c{i}") for i in range(CLASSES)],
                  patch_size=5, dense_block=4, samples_per_epoch=200)
    return HSIData(**{**fields, **overrides})


def test_training_windows_hold_training_labels_aligned_through_augmentation(tmp_path):
    folder = _write_scene(tmp_path)
    # an epoch of every training pixel once, in order: sample i is pixel i
    dataset = pixel_dataset(_data(folder, samples_per_epoch=None), "train")
    torch.manual_seed(0)
    seen_offsets, scored = set(), 0
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["input"].shape == (BANDS, 8, 8) and item["target"].shape == (4, 4)
        pixels = _decode(item["input"][:, 2:6, 2:6])  # the central block
        target = item["target"].numpy()
        chosen = (int(dataset.rows[index]), int(dataset.cols[index]))
        where = np.nonzero((pixels["row"] == chosen[0]) & (pixels["col"] == chosen[1]))
        assert len(where[0]) >= 1  # the sampled training pixel is in the block ...
        assert (target[where] >= 0).any()  # ... and scored
        seen_offsets.add((int(where[0][0]), int(where[1][0])))
        # every scored pixel is a labelled training pixel, with its own label
        assert (pixels["split"][target >= 0] == 1).all()
        np.testing.assert_array_equal(pixels["label"][target >= 0], target[target >= 0] + 1)
        # every labelled training pixel of the block inside the scene is scored, unless
        # it is a mirrored copy (its coordinates then repeat, or it lies outside the block)
        train_pixels = (pixels["split"] == 1) & (pixels["label"] > 0)
        assert (target >= 0).sum() <= train_pixels.sum()
        scored += int((target >= 0).sum())
    assert len(seen_offsets) > 8  # the pixel lands anywhere in the block
    assert scored > len(dataset)  # windows teach several pixels each


def test_evaluation_windows_score_every_split_pixel_once(tmp_path):
    folder = _write_scene(tmp_path)
    with rasterio.open(folder / "labels.tif") as src:
        labels = src.read(1)
    with rasterio.open(folder / "split.tif") as src:
        split = src.read(1)
    for name, code in (("val", 2), ("test", 3)):
        dataset = pixel_dataset(_data(folder), name)
        seen = []
        for item in (dataset[i] for i in range(len(dataset))):
            pixels = _decode(item["input"][:, 2:6, 2:6])
            target = item["target"].numpy()
            for r, c, t in zip(pixels["row"][target >= 0], pixels["col"][target >= 0],
                               target[target >= 0], strict=True):
                assert labels[r, c] == t + 1 and split[r, c] == code
                seen.append((int(r), int(c)))
        expected = set(zip(*np.nonzero((split == code) & (labels > 0)), strict=True))
        assert len(seen) == len(set(seen)) == len(expected)
        assert set(seen) == {(int(r), int(c)) for r, c in expected}


def test_loss_and_metrics_ignore_unscored_pixels():
    task = get_task("hsi")
    torch.manual_seed(0)
    logits = torch.randn(2, CLASSES, 4, 4)
    target = torch.full((2, 4, 4), -1)
    target[0, 1, 2], target[1, 3, 0], target[1, 0, 0] = 2, 0, 1
    loss = task.loss(logits, {"target": target})
    picked = torch.stack([logits[0, :, 1, 2], logits[1, :, 0, 0], logits[1, :, 3, 0]])
    expected = F.cross_entropy(picked, torch.tensor([2, 1, 0]), label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    changed = logits.clone()
    changed[0, :, 0, 0] += 100.0  # an unscored pixel
    torch.testing.assert_close(task.loss(changed, {"target": target}), loss)

    dense, flat = HSIMetrics(["a", "b", "c"]), HSIMetrics(["a", "b", "c"])
    dense.update(logits, target)
    flat.update(picked, torch.tensor([2, 1, 0]))
    for key in ("oa", "aa", "kappa"):
        torch.testing.assert_close(dense.compute()[key], flat.compute()[key])
    assert dense.compute()["confusion_matrix"].sum() == 3


def test_bad_dense_configs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="mixup"):
        _data(tmp_path, mixup=0.4)
    with pytest.raises(ValueError, match="tile_size"):
        _data(tmp_path, dense_block=32, tile_size=16)
    with pytest.raises(ValueError, match="dense_block"):
        _data(tmp_path, dense_block=-1)
    config = _write_config(tmp_path, tmp_path)
    with pytest.raises(ConfigError, match="mixup"):
        load_config(str(config), ["data.mixup=0.4"])


def test_the_model_is_built_with_the_data_sections_block(tmp_path):
    """One setting, ``data.dense_block``, makes the model dense and its datasets yield
    windows (as ``data.patch_size`` sizes both)."""
    config = _write_config(tmp_path, tmp_path)
    for block, window in ((4, 8), (8, 12), (0, 5)):
        cfg = load_config(str(config), [f"data.dense_block={block}"])
        model = build_model(get_task("hsi"), cfg)
        assert (model.dense_block, model.window) == (block, window)
        assert model.pos_embed.shape[1] == window * window


def _write_config(folder: Path, tmp: Path) -> Path:
    cfg = {
        "task": "hsi", "seed": 0, "run_dir": str(tmp / "run"),
        "model": {"name": "vphype", "in_bands": BANDS, "pca_components": 4,
                  "conv_channels": [4], "embed_dim": 16, "depth": 1, "num_heads": 2,
                  "kernel_size": 3, "d_state": 4, "expand": 1, "visual_prompts": 2,
                  "text_prompts": False},
        "data": {"root": str(folder), "patch_size": 5, "dense_block": 4,
                 "classes": [{"name": f"c{i}"} for i in range(CLASSES)],
                 "samples_per_epoch": 256, "tile_size": 16, "predict_batch_size": 64},
        "train": {"epochs": 4, "batch_size": 16, "log_every": 8, "val_every": 4},
        "optim": {"lr": 0.01},
        "schedule": {"warmup_steps": 4},
    }
    path = tmp / "dense.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_tiny_dense_model_learns_through_the_engine(tmp_path):
    (tmp_path / "scene").mkdir()
    folder = _write_scene(tmp_path / "scene", seed=3, signal=True)
    config = _write_config(folder, tmp_path)
    run_dir = train(str(config))
    best = Path(run_dir) / "checkpoints" / "best.safetensors"
    metrics = evaluate(str(config), str(best))
    assert metrics["oa"] > 0.6, metrics  # chance is about 1/3
    cfg = load_config(str(config), [])
    model = build_model(get_task("hsi"), cfg)
    load_inference_weights(model, cfg, best)
    assert model.dense_block == 4 and json.loads(json.dumps(metrics))
