"""The medseg task end to end on small synthetic volumes: training, whole-volume
evaluation with MONAI metrics, prediction in the input's native space, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from torch import nn

from domainvit.checkpoint import read_meta
from domainvit.cli import main
from domainvit.distribution import InputGuard
from domainvit.tasks.medseg.data import SegData
from domainvit.tasks.medseg.predict import predict_scans

SPACING = 2.0


def phantom(rng: np.random.Generator, shape=(36, 40, 32)) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipsoid (class 1) holding a darker ball (class 2), randomly placed."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    centre = np.array(shape) / 2 + rng.uniform(-3, 3, 3)
    radii = np.array(shape) * 0.3
    outer = (((grid - centre) / radii) ** 2).sum(-1) <= 1
    inner = (((grid - centre - [0, 3, 0]) / (radii * 0.4)) ** 2).sum(-1) <= 1
    labels = np.where(inner, 2, np.where(outer, 1, 0)).astype(np.uint8)
    image = np.where(inner, 40.0, np.where(outer, 100.0, 0.0)) + rng.normal(0, 5, shape) * outer
    return image.astype(np.float32), labels


def save(array: np.ndarray, path: Path, affine: np.ndarray | None = None) -> Path:
    if affine is None:
        affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantoms")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 1), ("test", 2)):
        (root / split).mkdir()
        for i in range(count):
            image, labels = phantom(rng)
            save(image, root / split / f"case{i}_t1.nii.gz")
            save(labels, root / split / f"case{i}_lobes.nii.gz")
    (root / "classes.json").write_text(json.dumps({"names": ["background", "shell", "core"]}))
    return root


def write_config(folder: Path, root: Path, model: str, dims: int) -> Path:
    roi = "[16, 16, 16]" if dims == 3 else "[32, 32]"
    config = folder / f"{model}{dims}d.yaml"
    config.write_text(
        "task: medseg\nseed: 0\n"
        f"model: {{name: {model}, spatial_dims: {dims}, embed_dim: 8, head_dim: 8}}\n"
        f"data: {{root: {root}, spatial_dims: {dims}, spacing: [4, 4, 4], roi_size: {roi}, "
        "samples_per_epoch: 4, sw_batch_size: 2}\n"
        "train: {epochs: 2, batch_size: 2, log_every: 1, ema: {enabled: false}}\n"
        "optim: {name: adamw, lr: 0.003}\n"
    )
    return config


@pytest.fixture(scope="module")
def trained3d(tmp_path_factory, dataset: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("medseg3d")
    config = write_config(folder, dataset, "transdae", 3)
    assert main(["train", str(config), "--set", f"run_dir={folder / 'run'}"]) == 0
    return {"config": config, "ckpt": folder / "run" / "checkpoints" / "best.safetensors"}


def test_evaluation_reports_dice_per_class_and_hd95(trained3d, capsys):
    assert main(["eval", str(trained3d["config"]), "--checkpoint", str(trained3d["ckpt"]),
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"dice", "dice_shell", "dice_core", "hd95_mm", "loss"} <= set(metrics)
    assert 0.0 <= metrics["dice"] <= 1.0
    assert metrics["dice"] == pytest.approx((metrics["dice_shell"] + metrics["dice_core"]) / 2)


def test_predicting_reads_the_class_names_from_the_checkpoint(trained3d, dataset: Path,
                                                              tmp_path: Path):
    meta = read_meta(trained3d["ckpt"])
    assert meta["data_info"]["class_names"] == ["background", "shell", "core"]
    assert meta["data_info"]["distribution"]["modality"] == "MR"
    # the training folder (and its classes.json) is not needed to predict
    config = tmp_path / "elsewhere.yaml"
    config.write_text(trained3d["config"].read_text().replace(str(dataset),
                                                              str(tmp_path / "gone")))
    out = tmp_path / "out"
    assert main(["predict", str(config), "--checkpoint", str(trained3d["ckpt"]),
                 str(dataset / "test" / "case0_t1.nii.gz"), "--out", str(out)]) == 0
    assert (out / "case0_t1.seg.nii.gz").is_file()


@pytest.fixture(scope="module")
def trained2d(tmp_path_factory, dataset: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("medseg2d")
    config = write_config(folder, dataset, "macmd", 2)
    config.write_text(config.read_text().replace("embed_dim: 8, head_dim: 8",
                                                 "embed_dim: 16, head_dim: 8, gate_groups: 4"))
    assert main(["train", str(config), "--set", f"run_dir={folder / 'run'}",
                 "--set", "train.epochs=1"]) == 0
    return {"config": config, "ckpt": folder / "run" / "checkpoints" / "last.safetensors"}


def test_2d_macmd_evaluates_on_whole_volumes(trained2d, capsys):
    assert main(["eval", str(trained2d["config"]), "--checkpoint", str(trained2d["ckpt"]),
                 "--json"]) == 0
    assert "dice_core" in json.loads(capsys.readouterr().out)


def test_2d_model_segments_pictures_and_volumes(trained2d, dataset: Path, tmp_path: Path):
    picture = tmp_path / "slice.png"
    Image.fromarray(np.full((48, 40), 90, dtype=np.uint8)).save(picture)
    volume = dataset / "test" / "case0_t1.nii.gz"
    out = tmp_path / "out"
    assert main(["predict", str(trained2d["config"]), "--checkpoint", str(trained2d["ckpt"]),
                 str(picture), str(volume), "--out", str(out)]) == 0
    assert nib.load(out / "slice.seg.nii.gz").shape == (48, 40, 1)
    assert Image.open(out / "slice.overlay.png").size == (40, 48)
    assert nib.load(out / "case0_t1.seg.nii.gz").shape == nib.load(volume).shape


class IntensityOracle(nn.Module):
    """Labels by intensity (the phantom's classes), so predictions are known exactly."""

    # what medseg prediction reads from a model (tasks/medseg/common.py)
    in_chans = 1
    size_multiple = 8
    min_size = 8

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # z-normalised over the object: the background stays exactly 0, the darker core
        # lies far below the object's mean
        background = x == 0
        core = x < -1.0
        shell = ~(background | core)
        return torch.cat([background, shell, core], dim=1).float() * 10


@pytest.mark.parametrize("flip", [(), (0,), (0, 1)])
def test_prediction_lies_on_the_input_grid_in_any_orientation(tmp_path: Path, flip):
    rng = np.random.default_rng(3)
    image, labels = phantom(rng)
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    affine[:3, 3] = [-30.0, 12.0, 5.0]
    for axis in flip:  # store the same scan with flipped axes (e.g. LPS instead of RAS)
        image, labels = np.flip(image, axis).copy(), np.flip(labels, axis).copy()
        affine[axis, axis] *= -1
        affine[axis, 3] -= affine[axis, axis] * (image.shape[axis] - 1)
    source = save(image, tmp_path / "scan.nii.gz", affine)
    cfg = SegData(root=tmp_path, num_classes=3, spacing=(2.0, 2.0, 2.0), roi_size=[16, 16, 16])
    out = tmp_path / "out"
    out.mkdir()
    reported: list[str] = []
    written = predict_scans(IntensityOracle(), cfg, [source], out,
                            InputGuard(None, report=reported.append))
    assert [p.name for p in written] == ["scan.seg.nii.gz", "scan.confidence.nii.gz",
                                         "scan.overlay.png", "scan.prediction.json"]
    assert "records no training distribution" in reported[0]
    result = nib.load(written[0])
    assert result.shape == image.shape and np.allclose(result.affine, affine)
    predicted = np.asarray(result.dataobj)
    assert np.mean(predicted == labels) > 0.98
    # the confidence map lies on the same grid; the oracle's scores give softmax
    # probabilities of almost 1 everywhere but at the resampled boundaries
    confidence = nib.load(written[1])
    assert confidence.shape == image.shape and np.allclose(confidence.affine, affine)
    values = np.asarray(confidence.dataobj)
    assert values.dtype == np.float32 and 1 / 3 <= values.min() and values.max() <= 1 + 1e-6
    assert np.median(values) > 0.99
    sidecar = json.loads(written[3].read_text())
    assert sidecar["input_check"]["outcome"] == "unchecked"
    assert sidecar["confidence"]["elements"] == image.size


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    cases = {}
    picture = tmp_path / "photo.png"
    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(picture)
    cases["2D image to a 3D model"] = (picture, "2D image")
    example4d = Path(nib.__file__).parent / "tests" / "data" / "example4d.nii.gz"
    cases["4D series"] = (example4d, "4D series")
    dicom = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm", download=False))
    del dicom.PixelData
    dicom.save_as(tmp_path / "nopixels.dcm")
    cases["DICOM without pixel data"] = (tmp_path / "nopixels.dcm", "PixelData")
    good = save(phantom(np.random.default_rng(1))[0], tmp_path / "good.nii.gz")
    (tmp_path / "truncated.nii.gz").write_bytes(good.read_bytes()[:2000])
    cases["corrupted gzip"] = (tmp_path / "truncated.nii.gz", "truncated.nii.gz")
    save(np.ones((6, 6, 6), dtype=np.float32), tmp_path / "tiny.nii.gz")
    cases["volume too small for the window"] = (tmp_path / "tiny.nii.gz", "too small")
    colour = np.zeros((40, 40, 3), dtype=np.uint8)
    colour[..., 0] = 255
    Image.fromarray(colour).save(tmp_path / "colour.png")
    cases["wrong channel count"] = (tmp_path / "colour.png", "has 3 channels")
    return cases


@pytest.mark.parametrize("case", ["2D image to a 3D model", "4D series",
                                  "DICOM without pixel data", "corrupted gzip",
                                  "volume too small for the window", "wrong channel count"])
def test_bad_input_is_one_clear_error_and_leaves_no_output(case, bad_inputs, trained3d,
                                                           trained2d, tmp_path: Path, capsys):
    path, message = bad_inputs[case]
    # a colour picture needs a model that takes pictures at all: the 2D one
    trained = trained2d if case == "wrong channel count" else trained3d
    out = tmp_path / "predictions"
    assert main(["predict", str(trained["config"]), "--checkpoint", str(trained["ckpt"]),
                 str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("domainvit: error:") and message in err[0]
    assert not out.exists() or not any(out.iterdir())



def test_largest_component_removes_stray_islands_only():
    from domainvit.tasks.medseg.metrics import keep_largest_components

    labels = torch.zeros(1, 1, 12, 12, 12, dtype=torch.long)
    labels[0, 0, 2:7, 2:7, 2:7] = 1
    labels[0, 0, 10, 10, 10] = 1  # an island of class 1
    labels[0, 0, 8:11, 2:4, 2:4] = 2
    kept = keep_largest_components(labels, num_classes=3)
    assert kept[0, 0, 10, 10, 10] == 0
    assert torch.equal(kept[0, 0, :8], labels[0, 0, :8])
    assert (kept == 2).sum() == (labels == 2).sum()
