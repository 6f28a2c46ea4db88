"""The hsi task end to end on a small parcel scene: training, evaluation, PCA fitted on
training pixels only, LoRA fine-tuning, GeoTIFF class maps, and bad rasters through
``domainvit predict`` (one clear message, no output left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml

from domainvit import checkpoint as ckpt
from domainvit.config import load_config
from domainvit.datasets.hsi_scenes.conventions import CLASSES_FILE, SCENE_FILE, SCENE_S2_FILE
from domainvit.datasets.hsi_scenes.parcels import write_scene
from domainvit.datasets.hsi_scenes.simulator import CLASSES, make_scene
from domainvit.datasets.hsi_scenes.spectra import aviris_bands
from domainvit.engine import build_model, load_inference_weights
from domainvit.errors import UserError
from domainvit.registry import get_task
from domainvit.tasks.hsi import fit_pca
from domainvit.tasks.hsi.data import PixelPatches, load_scene, training_spectra
from domainvit.tasks.hsi.model import class_prompt, encode_class_prompts
from domainvit.tasks.hsi.predict import classify_raster
from tests.conftest import run_cli, write_geotiff

PATCH = 5


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parcels")
    scene = make_scene(size=96, block=16, margin=2, parcel_size=14.0,
                                 train_fraction=0.05)
    write_scene(scene, folder)
    return folder


def _config(folder: Path, tmp: Path, **model) -> Path:
    classes = json.loads((folder / CLASSES_FILE).read_text())
    cfg = {
        "task": "hsi", "seed": 0, "run_dir": str(tmp / "run"),
        "model": {"name": "vphype", "in_bands": 220, "pca_components": 6,
                  "conv_channels": [4], "embed_dim": 16, "depth": 1, "num_heads": 2,
                  "kernel_size": 3, "d_state": 4, "expand": 1, "visual_prompts": 2,
                  "text_prompts": False, **model},
        "data": {"root": str(folder), "patch_size": PATCH, "classes": classes,
                 "samples_per_epoch": 64, "tile_size": 40, "predict_batch_size": 128},
        "train": {"epochs": 1, "batch_size": 32, "log_every": 1, "val_every": 1},
        "optim": {"lr": 0.003},
    }
    path = tmp / "hsi.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(scene_dir, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("hsi-run")
    config = _config(scene_dir, tmp)
    result = run_cli("train", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    return config, tmp / "run" / "checkpoints" / "best.safetensors"


def test_patches_come_from_the_split_and_centre_on_their_pixel(scene_dir, tmp_path):
    cfg = load_config(str(_config(scene_dir, tmp_path)), [])
    scene = load_scene(cfg.data)
    train = PixelPatches(cfg.data, "train")
    test = PixelPatches(cfg.data, "test")
    assert set(np.unique(scene.split[train.rows, train.cols])) == {1}
    assert set(np.unique(scene.split[test.rows, test.cols])) == {3}
    assert len(train) == 64 and len(test) == len(test.rows)
    sample = test[0]
    assert sample["input"].shape == (220, PATCH, PATCH)
    r, c = int(test.rows[0]), int(test.cols[0])
    torch.testing.assert_close(sample["input"][:, PATCH // 2, PATCH // 2],
                               torch.from_numpy(scene.cube[:, r, c]))
    assert int(sample["target"]) == scene.labels[r, c] - 1
    # nodata pixels are unlabelled and zero in the cube
    assert not scene.valid.all() and (scene.labels[~scene.valid] == 0).all()
    assert (scene.cube[:, ~scene.valid] == 0).all()


def test_pca_is_fitted_on_training_pixels_only(scene_dir, tmp_path):
    cfg = load_config(str(_config(scene_dir, tmp_path)), [])
    model = build_model(get_task("hsi"), cfg)
    fit_pca(model, cfg.data)
    spectra = training_spectra(cfg.data)
    np.testing.assert_allclose(model.pca_mean.numpy(), spectra.mean(0), rtol=1e-5, atol=1e-6)
    scene = load_scene(cfg.data)
    assert not np.allclose(model.pca_mean.numpy(), scene.cube[:, scene.valid].mean(1),
                           atol=1e-4)
    # scaled by the first component: on the training pixels it has unit variance, and
    # the others decrease (their relative variances kept)
    reduced = model.reduce_bands(torch.from_numpy(spectra.T[None, :, :, None]))[0, :, :, 0]
    variances = reduced.var(1).numpy()
    np.testing.assert_allclose(variances[0], 1.0, rtol=1e-3)
    assert (np.diff(variances) <= 1e-6).all() and variances[-1] < 0.1
    np.testing.assert_allclose(model.wavelengths.numpy(), aviris_bands()[0], atol=1e-3)


def test_training_writes_a_checkpoint_that_evaluates(trained):
    config, best = trained
    assert best.is_file()
    result = run_cli("eval", str(config), "--checkpoint", str(best), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)
    for key in ("oa", "aa", "kappa", "acc_water"):
        assert key in metrics
    assert 0.0 <= metrics["oa"] <= 1.0 and -1.0 <= metrics["kappa"] <= 1.0


def test_predict_writes_a_georeferenced_class_map(trained, scene_dir, tmp_path):
    config, best = trained
    out = tmp_path / "out"
    image = scene_dir / SCENE_FILE
    result = run_cli("predict", str(config), "--checkpoint", str(best), str(image),
                     "--out", str(out), "--set", "data.write_probabilities=true")
    assert result.returncode == 0, result.stderr[-2000:]
    with rasterio.open(image) as src:
        crs, transform, shape = src.crs, src.transform, (src.height, src.width)
        nodata_pixels = (src.read() == 0).all(0)
    with rasterio.open(out / "scene.classes.tif") as dst:
        labels = dst.read(1)
        assert dst.crs == crs and dst.transform == transform and labels.shape == shape
        assert dst.nodata == 0
        assert dst.tags()["class_11"] == "water"
        assert dst.colormap(1)[11][:3] == (30, 90, 200)
    assert (labels[nodata_pixels] == 0).all() and (labels[~nodata_pixels] > 0).all()
    with rasterio.open(out / "scene.proba.tif") as proba:
        probs = proba.read()
    assert probs.shape == (11, *shape)
    np.testing.assert_allclose(probs[:, ~nodata_pixels].sum(0), 1.0, rtol=1e-4)
    assert np.isnan(probs[:, nodata_pixels]).all()
    # the map agrees with the model on a pixel (tiles and batches change nothing)
    cfg = load_config(str(config), [])
    model = build_model(get_task("hsi"), cfg)
    load_inference_weights(model, cfg, best)
    model.eval()
    scene = load_scene(cfg.data)
    r, c = 50, 47
    patch = torch.from_numpy(scene.cube[:, r - 2:r + 3, c - 2:c + 3])[None]
    with torch.no_grad():
        expected = int(model(patch).argmax()) + 1
    assert labels[r, c] == expected


@pytest.fixture(scope="module")
def loaded(trained):
    config, best = trained
    cfg = load_config(str(config), [])
    model = build_model(get_task("hsi"), cfg)
    load_inference_weights(model, cfg, best)
    return model.eval(), cfg


def test_a_raster_with_another_band_set_is_refused_by_the_cli(trained, scene_dir, tmp_path):
    config, best = trained
    out = tmp_path / "out"
    result = run_cli("predict", str(config), "--checkpoint", str(best),
                     str(scene_dir / SCENE_S2_FILE), "--out", str(out))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "the model reads the 220 AVIRIS (simulated) bands" in result.stderr
    assert "13 bands at 443-2202 nm" in result.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case", ["no_crs", "all_nodata", "overflow", "corrupt"])
def test_bad_rasters_give_one_clear_error_and_no_output(loaded, tmp_path, case):
    model, cfg = loaded
    rng = np.random.default_rng(0)
    cube = rng.integers(500, 5000, (220, 30, 30)).astype(np.uint16)
    if case == "no_crs":
        path = write_geotiff(tmp_path / "nocrs.tif", cube, crs=None)
        expected = "no coordinate reference system"
    elif case == "all_nodata":
        path = write_geotiff(tmp_path / "empty.tif", np.zeros_like(cube))
        expected = "nodata"
    elif case == "overflow":
        cube[:, :10] = 65535
        path = write_geotiff(tmp_path / "overflow.tif", cube)
        expected = "65535"
    else:
        good = write_geotiff(tmp_path / "good.tif", cube)
        path = tmp_path / "corrupt.tif"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
        expected = "corrupt.tif"
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match=expected):
        classify_raster(model, cfg.data, path, out)
    assert not any(out.iterdir())


def test_lora_fine_tuning_changes_only_adapters_prompts_and_head(trained, scene_dir, tmp_path):
    _, best = trained
    config = _config(scene_dir, tmp_path, lora_rank=2, init_from=str(best))
    result = run_cli("train", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    base = ckpt.unprefixed("model", ckpt.load_checkpoint(best)[0])
    tuned = ckpt.unprefixed("model", ckpt.load_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.safetensors")[0])
    assert any(".down." in k for k in tuned)
    for name, value in base.items():
        key = name if name in tuned else name.replace("qkv.", "qkv.base.").replace(
            "proj.", "proj.base.")
        frozen = not any(name.startswith(p) for p in ("prompts", "head", "norm."))
        if frozen and "running_" not in name and "num_batches" not in name:
            torch.testing.assert_close(tuned[key], value, msg=name)
    assert not torch.equal(tuned["head.weight"], base["head.weight"])


def test_text_prompts_embed_related_classes_close_together(tmp_path):
    prompts = [class_prompt(c.name, c.description) for c in CLASSES]
    first = encode_class_prompts(prompts, cache_dir=tmp_path)
    assert first.shape == (11, 384)
    torch.testing.assert_close(first.norm(dim=1), torch.ones(11))
    names = [c.name for c in CLASSES]
    sim = first @ first.T
    early, late = names.index("maize-early"), names.index("maize-late")
    water, concrete = names.index("water"), names.index("concrete")
    assert sim[early, late] > sim[early, water] and sim[early, late] > sim[early, concrete]
    # cached per prompt list: the second call reads the file
    assert len(list(tmp_path.glob("*.npy"))) == 1
    torch.testing.assert_close(encode_class_prompts(prompts, cache_dir=tmp_path), first)
