"""The medcls input check on real inputs, with the bundled quickstart checkpoint: a real CT
slice and CT Hounsfield units are refused by the MR classifier, colour photographs are
refused, grey photographs are warned about, ``--force`` predicts and the sidecar records
the override; the sample data passes silently; every prediction records its confidence."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import skimage.data
from PIL import Image

from domainvit import checkpoint as ckpt
from domainvit.cli import main
from domainvit.datasets.medical_io import read_image
from domainvit.registry import get_task
from domainvit.tasks.medcls.data import ClsData
from domainvit.tasks.medcls.distribution import (
    CALIBRATION_QUANTILE,
    DISTANCE_FACTOR,
    compare_image,
    image_features,
    mahalanobis,
)
from domainvit.tasks.medcls.predict import image_to_uint8
from tests.conftest import read_sidecar

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "tasks" / "medcls" / "weights" / "quickstart.safetensors"


def reference() -> dict:
    return ckpt.read_meta(WEIGHTS)["data_info"]["distribution"]


def run_predict(inputs: list[Path], out: Path, *extra: str) -> int:
    return main(["predict", "medcls/quickstart", "--checkpoint", str(WEIGHTS),
                 *map(str, inputs), "--out", str(out), *extra])




@pytest.fixture(scope="module")
def inputs(tmp_path_factory, ct_slice) -> dict[str, Path]:
    """Real pictures that are not brain MR crops, and the real CT without its DICOM tags."""
    folder = tmp_path_factory.mktemp("medcls-inputs")
    source = pydicom.dcmread(ct_slice)
    hu = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
    nib.save(nib.Nifti1Image(hu.T[:, ::-1, None].astype(np.int16),
                             np.diag([0.66, 0.66, 5.0, 1.0])), folder / "head_ct.nii.gz")
    Image.fromarray(skimage.data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(skimage.data.chelsea()).save(folder / "cat.jpg")
    Image.fromarray(skimage.data.camera()).save(folder / "camera.png")
    Image.fromarray(skimage.data.text()).save(folder / "text.png")
    Image.fromarray(skimage.data.coins()).save(folder / "coins.png")
    return {path.name: path for path in folder.iterdir()}


@pytest.fixture(scope="module")
def sample_images(tmp_path_factory) -> list[Path]:
    """Brain-mnist test crops (the MNI152 brain, never trained on) as PNG files."""
    folder = tmp_path_factory.mktemp("medcls-sample")
    return get_task("medcls").sample_inputs(ClsData(), folder)


def test_the_bundled_checkpoint_records_the_training_images():
    record = reference()
    assert record["modality"] == "MR" and "T1" in record["contrast"]
    assert record["in_chans"] == 1 and record["image_size"] == 64
    assert record["stored_size"] == [64, 64]
    features = record["features"]
    size = 1 + 2 * len(features["quantiles"])
    assert len(features["mean"]) == len(features["std"]) == size
    precision = np.asarray(features["precision"])
    assert precision.shape == (size, size)
    np.testing.assert_allclose(precision, precision.T, rtol=1e-6, atol=1e-6)
    assert np.linalg.eigvalsh(precision).min() > 0
    # calibrated on the splits: the limit is the factor times the recorded quantile, and
    # above the largest distance of any validation or test image
    distance = record["distance"]
    calibration = distance["calibration"]
    assert set(calibration["splits"]) == {"train", "val", "test"}
    assert calibration["quantile"] == CALIBRATION_QUANTILE
    assert distance["limit"] == pytest.approx(DISTANCE_FACTOR * calibration["value"], abs=1e-3)
    assert distance["limit"] > max(split["max"] for split in calibration["splits"].values())


def test_the_sample_images_are_neither_refused_nor_warned_about(sample_images, tmp_path,
                                                                capsys):
    out = tmp_path / "out"
    assert run_predict(sample_images, out) == 0
    assert "warning" not in capsys.readouterr().err
    for path in sample_images:
        record = read_sidecar(out, path.stem)
        assert record["input_check"]["outcome"] == "ok"
        assert 0 < record["confidence"]["max_probability"] <= 1
        assert 0 <= record["confidence"]["normalised_entropy"] <= 1
        assert record["label"] == json.loads((out / f"{path.stem}.pred.json").read_text())["label"]


def test_a_real_ct_slice_is_refused_naming_the_modality_and_forced_is_recorded(
        ct_slice, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_predict([ct_slice], out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("domainvit: error: CT_small.dcm: it is a CT image (DICOM Modality "
                             "CT); the model was trained on grayscale MR images")
    assert "--force" in err[0]
    assert not out.exists() or not any(out.iterdir())

    assert run_predict([ct_slice], out, "--force") == 0
    assert "predicted anyway (forced)" in capsys.readouterr().err
    check = read_sidecar(out, "CT_small")["input_check"]
    assert check["outcome"] == "forced" and check["forced"]
    assert check["refusals"][0]["aspect"] == "modality"
    assert (out / "CT_small.pred.json").is_file()


def test_hounsfield_units_without_a_modality_tag_are_refused(inputs, tmp_path, capsys):
    assert run_predict([inputs["head_ct.nii.gz"]], tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "head_ct.nii.gz: its intensities look like CT Hounsfield units" in err
    assert "the model was trained on grayscale MR images" in err


@pytest.mark.parametrize("name", ["astronaut.png", "cat.jpg"])
def test_a_colour_photograph_is_refused_and_forced_takes_its_luminance(name, inputs, tmp_path,
                                                                        capsys):
    out = tmp_path / "out"
    assert run_predict([inputs[name]], out) == 1
    err = capsys.readouterr().err
    assert f"{name}: it is a colour image (three channels that differ" in err
    assert run_predict([inputs[name]], out, "--force") == 0
    stem = Path(name).stem
    record = read_sidecar(out, stem)
    assert [f["aspect"] for f in record["input_check"]["refusals"]] == ["colour"]
    # the luminance the model saw is what PIL calls grey, to rounding
    image = read_image(inputs[name], spatial_dims=2)
    grey = np.asarray(Image.open(inputs[name]).convert("L"), np.int16)
    assert np.abs(image_to_uint8(image, 1, colour_to_grey=True).astype(np.int16)
                  - grey).max() <= 1


@pytest.mark.parametrize("name", ["camera.png", "text.png", "coins.png"])
def test_a_grey_photograph_is_predicted_with_a_warning(name, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_predict([inputs[name]], out) == 0
    err = capsys.readouterr().err
    assert f"warning: {name}: its intensity and texture statistics lie " in err
    check = read_sidecar(out, Path(name).stem)["input_check"]
    assert check["outcome"] == "warn" and not check["refusals"]
    assert "appearance" in [f["aspect"] for f in check["warnings"]]


def test_a_long_strip_is_warned_about_its_shape(sample_images, tmp_path):
    picture = np.asarray(Image.open(sample_images[0]))
    strip = np.concatenate([picture] * 3, axis=1)
    path = tmp_path / "strip.png"
    Image.fromarray(strip).save(path)
    image = read_image(path, spatial_dims=2)
    findings = compare_image(reference(), image, image_to_uint8(image, 1))
    assert [f.aspect for f in findings][:1] == ["size"]
    assert "192x64 pixels, 3.0 times as long as it is wide" in findings[0].message


def test_the_distance_is_measured_on_the_image_as_the_model_sees_it(sample_images):
    """A sample crop upsampled 4x (a bigger export of the same slice) is taken back to the
    model's size before it is measured: neither is flagged."""
    record = reference()
    features = record["features"]
    picture = np.asarray(Image.open(sample_images[0]))
    big = np.asarray(Image.fromarray(picture).resize((256, 256), Image.BILINEAR))
    distances = [float(mahalanobis(image_features(pixels, record["image_size"]),
                                   np.asarray(features["mean"]),
                                   np.asarray(features["precision"])))
                 for pixels in (picture, big)]
    assert max(distances) < record["distance"]["limit"]
