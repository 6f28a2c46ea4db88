"""The medcls task end to end: MedMNIST .npz in, trained MedViTV2, metrics, robustness,
and file prediction through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from domainvit.checkpoint import read_meta
from domainvit.cli import main
from domainvit.config import validate_config
from domainvit.errors import UserError
from domainvit.registry import get_task
from domainvit.tasks.medcls import robustness
from domainvit.tasks.medcls.data import MedMNISTDataset
from domainvit.tasks.medcls.robustness import markdown_table


def shapes(count: int, rng: np.random.Generator, size: int = 28, rgb: bool = False):
    """Three classes: a horizontal bar, a vertical bar, a disc; random place and noise."""
    images = np.zeros((count, size, size), dtype=np.float64)
    labels = rng.integers(0, 3, size=count)
    yy, xx = np.mgrid[:size, :size]
    for image, label in zip(images, labels, strict=True):
        cy, cx = rng.integers(8, size - 8, size=2)
        if label == 0:
            image[cy - 2: cy + 2, cx - 7: cx + 7] = 1
        elif label == 1:
            image[cy - 7: cy + 7, cx - 2: cx + 2] = 1
        else:
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = 1
    images = np.clip(images * 200 + rng.normal(20, 10, images.shape), 0, 255).astype(np.uint8)
    if rgb:
        images = np.repeat(images[..., None], 3, axis=-1)
    return images, labels.astype(np.uint8)[:, None]


def write_npz(path: Path, rgb: bool = False, **extra) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", 384), ("val", 96), ("test", 96)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = shapes(count, rng, rgb=rgb)
    arrays.update(extra)
    np.savez(path, **arrays)
    return path


def medcls_config(npz: Path):
    return validate_config({"task": "medcls", "model": {"name": "medvitv2", "variant": "micro"},
                            "data": {"npz": str(npz)}}, "test config")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("medcls")
    npz = write_npz(folder / "shapesmnist.npz")
    config = folder / "medcls.yaml"
    config.write_text(
        "task: medcls\nseed: 0\n"
        "model: {name: medvitv2, variant: micro}\n"
        f"data: {{npz: {npz}, class_names: [hbar, vbar, disc]}}\n"
        "train: {epochs: 4, batch_size: 32, log_every: 4, ema: {enabled: false}}\n"
        "optim: {name: adamw, lr: 0.003, weight_decay: 0.01}\n"
        "schedule: {name: cosine, warmup_steps: 8}\n"
    )
    run = folder / "run"
    assert main(["train", str(config), "--set", f"run_dir={run}"]) == 0
    return {"config": config, "ckpt": run / "checkpoints" / "best.safetensors", "npz": npz,
            "folder": folder}


def test_trained_model_beats_chance_with_all_metrics(trained, capsys):
    assert main(["eval", str(trained["config"]), "--checkpoint", str(trained["ckpt"]),
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] > 0.8  # chance is 1/3
    assert 0.0 <= metrics["ece"] <= 1.0 and metrics["auc_macro"] > 0.9
    assert "balanced_accuracy" in metrics


def test_corruptions_lower_accuracy_and_report_per_corruption(trained):
    rows = robustness(str(trained["config"]), str(trained["ckpt"]),
                      corruptions=("gaussian_noise", "gaussian_blur"), severities=(1, 5))
    assert [(r["corruption"], r["severity"]) for r in rows] == [
        ("none", 0), ("gaussian_noise", 1), ("gaussian_noise", 5), ("gaussian_blur", 1),
        ("gaussian_blur", 5)]
    by_key = {(r["corruption"], r["severity"]): r["accuracy"] for r in rows}
    assert by_key[("gaussian_noise", 5)] < by_key[("none", 0)]
    table = markdown_table(rows)
    assert "| gaussian_blur |" in table and "severity 5" in table


def test_predict_writes_class_probabilities_per_image(trained, tmp_path: Path):
    rng = np.random.default_rng(5)
    images, labels = shapes(6, rng)
    inputs = []
    for i, image in enumerate(images):
        path = tmp_path / f"scan {i}.png"
        Image.fromarray(image).save(path)
        inputs.append(str(path))
    out = tmp_path / "out"
    assert main(["predict", str(trained["config"]), "--checkpoint", str(trained["ckpt"]), *inputs,
                 "--out", str(out)]) == 0
    predicted = []
    for i in range(len(images)):
        record = json.loads((out / f"scan_{i}.pred.json").read_text())
        assert abs(sum(record["probabilities"].values()) - 1) < 1e-4
        assert record["label"] == ["hbar", "vbar", "disc"][record["index"]]
        predicted.append(record["index"])
    assert np.mean(np.array(predicted) == labels[:, 0]) >= 4 / 6


def test_predicting_reads_class_names_size_and_channels_from_the_checkpoint(trained,
                                                                           tmp_path: Path):
    meta = read_meta(trained["ckpt"])
    info = meta["data_info"]
    assert {k: info[k] for k in ("class_names", "image_size", "in_chans")} == {
        "class_names": ["hbar", "vbar", "disc"], "image_size": 28, "in_chans": 1}
    # the training images' record, for the input check; a .npz of one's own names no modality
    assert info["distribution"]["stored_size"] == [28, 28]
    assert info["distribution"]["modality"] is None
    sidecar = json.loads(trained["ckpt"].with_suffix(".json").read_text())
    assert sidecar["data_info"] == meta["data_info"]
    # a config whose training data is gone: everything the model needs is in the checkpoint
    config = tmp_path / "elsewhere.yaml"
    config.write_text("task: medcls\nmodel: {name: medvitv2, variant: micro}\n"
                      f"data: {{npz: {tmp_path / 'gone.npz'}}}\n")
    images, labels = shapes(1, np.random.default_rng(7))
    Image.fromarray(images[0]).save(tmp_path / "scan.png")
    out = tmp_path / "out"
    assert main(["predict", str(config), "--checkpoint", str(trained["ckpt"]),
                 str(tmp_path / "scan.png"), "--out", str(out)]) == 0
    record = json.loads((out / "scan.pred.json").read_text())
    assert set(record["probabilities"]) == {"hbar", "vbar", "disc"}


def test_in_chans_that_contradicts_the_images_is_a_user_error(tmp_path: Path):
    cfg = medcls_config(write_npz(tmp_path / "grey.npz"))
    data = cfg.data.model_copy(update={"in_chans": 3})
    with pytest.raises(UserError, match="data.in_chans is 3 but the images have 1"):
        MedMNISTDataset(data, "train")


def test_colour_image_to_grayscale_model_is_one_clear_error(trained, tmp_path: Path, capsys):
    colour = np.zeros((28, 28, 3), dtype=np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "red.png")
    out = tmp_path / "out"
    assert main(["predict", str(trained["config"]), "--checkpoint", str(trained["ckpt"]),
                 str(tmp_path / "red.png"), "--out", str(out)]) == 1
    assert "red.png: it is a colour image" in capsys.readouterr().err
    assert not any(out.glob("*.json"))
    # forced, the model takes its luminance, and the sidecar says so
    assert main(["predict", str(trained["config"]), "--checkpoint", str(trained["ckpt"]),
                 str(tmp_path / "red.png"), "--out", str(out), "--force"]) == 0
    record = json.loads((out / "red.prediction.json").read_text())
    assert record["input_check"]["outcome"] == "forced"


def test_rgb_medmnist_file_loads_as_three_channels(tmp_path: Path):
    npz = write_npz(tmp_path / "pathmnist.npz", rgb=True)
    cfg = medcls_config(npz)
    item = get_task("medcls").build_dataset(cfg.data, "test")[0]
    assert item["input"].shape == (3, 28, 28)
    assert -1 <= item["input"].min() <= item["input"].max() <= 1


@pytest.mark.parametrize("problem, message", [
    ({"train_labels": np.zeros((384, 14), dtype=np.uint8)}, "multi-label"),
    ({"train_images": np.zeros((384, 5), dtype=np.uint8)}, "expected \\[N, H, W\\]"),
])
def test_unusable_npz_is_one_clear_error(tmp_path: Path, problem, message):
    npz = write_npz(tmp_path / "bad.npz", **problem)
    cfg = medcls_config(npz)
    with pytest.raises(UserError, match=message):
        get_task("medcls").build_dataset(cfg.data, "train")


def test_npz_without_medmnist_keys_names_the_keys(tmp_path: Path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    cfg = medcls_config(tmp_path / "other.npz")
    with pytest.raises(UserError, match="train_images"):
        get_task("medcls").build_dataset(cfg.data, "train")
