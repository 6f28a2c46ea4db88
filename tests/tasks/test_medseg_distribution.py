"""The medseg input check on real scans, with the bundled quickstart checkpoints: a real CT
is refused by the MRI models (DICOM Modality, or Hounsfield units in a NIfTI file),
``--force`` predicts it and the sidecar records the override; unusual scans are warned
about (spacing, field of view, intensities), and the sample data passes silently; every
prediction writes a confidence map and a confidence summary."""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import skimage.data
from PIL import Image

from domainvit import checkpoint as ckpt
from domainvit.cli import main
from domainvit.datasets.brain import MRICRON_TEMPLATES
from domainvit.datasets.medical_io import read_image
from domainvit.distribution import quantiles
from domainvit.engine import predict
from domainvit.registry import get_task
from domainvit.tasks.medseg.data import SegData
from domainvit.tasks.medseg.distribution import (
    SHIFT_FACTOR,
    SHIFT_FLOOR,
    compare_scan,
)
from domainvit.tasks.medseg.predict import _resampled_input
from tests.conftest import read_sidecar

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("quickstart2d", "quickstart3d", "quickstart_macmd")
CLASSES = 12


def weights(name: str) -> Path:
    return ROOT / "tasks" / "medseg" / "weights" / f"{name}.safetensors"


def reference(name: str) -> dict:
    return ckpt.read_meta(weights(name))["data_info"]["distribution"]


def run_predict(name: str, inputs: list[Path], out: Path, *extra: str) -> int:
    return main(["predict", f"medseg/{name}", "--checkpoint", str(weights(name)),
                 *map(str, inputs), "--out", str(out), *extra])



# --- real inputs ------------------------------------------------------------------------



@pytest.fixture(scope="module")
def mr_slice() -> Path:
    """pydicom's MR_small.dcm: a real MR slice, 64x64 at 0.3125 mm."""
    return Path(pydicom.data.get_testdata_file("MR_small.dcm", download=False))


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory, ct_slice) -> Path:
    """A zipped DICOM series: the real CT slice as 12 slices 5 mm apart."""
    folder = tmp_path_factory.mktemp("ct")
    source = pydicom.dcmread(ct_slice)
    x, y, z = (float(v) for v in source.ImagePositionPatient)
    series = pydicom.uid.generate_uid()
    archive = folder / "ct-series.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for k in range(12):
            dataset = copy.deepcopy(source)
            dataset.InstanceNumber = k + 1
            dataset.ImagePositionPatient = [x, y, z + 5.0 * k]
            dataset.SOPInstanceUID = pydicom.uid.generate_uid()
            dataset.SeriesInstanceUID = series
            dataset.save_as(folder / f"slice{k:02d}.dcm")
            zipped.write(folder / f"slice{k:02d}.dcm", f"series/slice{k:02d}.dcm")
    return archive


@pytest.fixture(scope="module")
def ct_nifti(tmp_path_factory, ct_slice) -> Path:
    """The real CT's Hounsfield units as a NIfTI volume (no modality recorded), 12 slices."""
    source = pydicom.dcmread(ct_slice)
    hu = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
    volume = np.repeat(hu.T[:, ::-1, None], 12, axis=2).astype(np.int16)
    row, column = (float(v) for v in source.PixelSpacing)
    path = tmp_path_factory.mktemp("ct") / "head_ct.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([column, row, 5.0, 1.0])), path)
    return path


@pytest.fixture(scope="module")
def sample_scan(tmp_path_factory) -> Path:
    """The task's sample input: the centre of the MNI152 test brain (in distribution)."""
    task = get_task("medseg")
    return task.sample_inputs(SegData(), tmp_path_factory.mktemp("sample"))[0]


@pytest.fixture(scope="module")
def colin(tmp_path_factory) -> dict[str, Path]:
    """Real T1 scans made unusual in one way each: 10 mm slices, a field of view of a
    body (the voxel size scaled by 2.5), a brain slice exported as a PNG."""
    folder = tmp_path_factory.mktemp("colin")
    brain = nib.load(MRICRON_TEMPLATES / "ch2bet.nii.gz")
    data = np.asarray(brain.dataobj)
    thick = brain.affine @ np.diag([1.0, 1.0, 10.0, 1.0])
    nib.save(nib.Nifti1Image(data[:, :, ::10], thick), folder / "thick_slices.nii.gz")
    body = brain.affine @ np.diag([2.5, 2.5, 2.5, 1.0])
    nib.save(nib.Nifti1Image(data, body), folder / "body_sized.nii.gz")
    plane = data[:, :, 90].astype(np.float64)
    picture = np.clip(255 * plane / np.percentile(plane, 99.5), 0, 255).astype(np.uint8)
    Image.fromarray(picture.T[::-1]).save(folder / "brain_slice.png")
    Image.fromarray(skimage.data.camera()).save(folder / "camera.png")
    return {name: folder / name for name in
            ("thick_slices.nii.gz", "body_sized.nii.gz", "brain_slice.png", "camera.png")}


# --- the record ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_the_bundled_checkpoints_record_the_training_scans(name):
    record = reference(name)
    assert record["modality"] == "MR" and "T1" in record["contrast"]
    assert record["spacing_mm"] == {"min": [1.0, 1.0, 1.0], "max": [1.0, 1.0, 1.0]}
    meta = ckpt.read_meta(weights(name))
    assert record["working_spacing_mm"] == meta["config"]["data"]["spacing"]
    assert record["field_of_view_mm"] == [181.0, 217.0, 181.0]  # Colin27's grid
    values = record["intensity_quantiles"]
    assert len(values) == 9 and values == sorted(values)
    # z-scored: the median near 0, the 5-95% range a few standard deviations
    assert abs(values[4]) < 0.5 and 2.0 < values[6] - values[2] < 5.0
    # calibrated on the splits: every validation and test scan lies within the limit,
    # with a margin of SHIFT_FACTOR
    shifts = record["intensity_shift"]["calibration"]
    assert len(shifts["val"]) == 3 and len(shifts["test"]) == 4
    largest = max(max(v) for v in shifts.values())
    limit = record["intensity_shift"]["limit"]
    assert 0 < largest and limit == pytest.approx(max(SHIFT_FLOOR, SHIFT_FACTOR * largest),
                                                  abs=1e-3)


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["quickstart2d", "quickstart_macmd"])
def test_a_real_ct_slice_is_refused_by_the_2d_models_naming_the_modality(
        name, ct_slice, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_predict(name, [ct_slice], out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("domainvit: error: CT_small.dcm: it is a CT scan (DICOM "
                             "Modality CT); the model was trained on MR (T1-weighted")
    assert "--force" in err[0]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", ["quickstart2d", "quickstart3d"])
@pytest.mark.parametrize("scan, cause", [
    ("ct_series", "it is a CT scan (DICOM Modality CT)"),
    ("ct_nifti", "its intensities look like CT Hounsfield units"),
])
def test_a_real_ct_volume_is_refused_by_the_2d_and_3d_models(name, scan, cause, request,
                                                             tmp_path, capsys):
    path = request.getfixturevalue(scan)
    out = tmp_path / "out"
    assert run_predict(name, [path], out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path.name}: {cause}" in err[0], err
    assert "the model was trained on MR" in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_another_dicom_modality_is_refused_before_its_intensities(ct_slice, mr_slice, tmp_path):
    record = reference("quickstart2d")
    cfg = SegData(spatial_dims=2, roi_size=[96, 112], spacing=(2.0, 2.0, 2.0),
                  class_names=["background", "brain"])
    pet = pydicom.dcmread(ct_slice)
    pet.Modality = "PT"
    pet.save_as(tmp_path / "pet.dcm")
    for path, first in ((tmp_path / "pet.dcm", "a PET scan (DICOM Modality PT)"),
                        (ct_slice, "a CT scan (DICOM Modality CT)")):
        image = read_image(path)
        findings = compare_scan(record, image, _resampled_input(image, cfg)[1].numpy())
        assert findings[0].level == "refuse" and first in findings[0].message
        # one refusal: the modality, not also the Hounsfield units it implies
        assert [f.level for f in findings].count("refuse") == 1
    # a real MR slice: no refusal; its 0.3125 mm pixels and its intensities (a 20 mm
    # field of view of something other than a brain) are unusual
    image = read_image(mr_slice)
    findings = compare_scan(record, image, _resampled_input(image, cfg)[1].numpy())
    assert [(f.level, f.aspect) for f in findings] == [("warn", "spacing"),
                                                       ("warn", "intensity")]
    assert "0.312 mm along" in findings[0].message


def test_the_real_mr_slice_is_predicted_with_two_warnings(mr_slice, tmp_path, capsys):
    """MR_small.dcm is an MR slice, so not refused; but its 64 pixels of 0.3125 mm (a
    20 mm field of view, 10 pixels at the model's 2 mm) are no head like the training's."""
    out = tmp_path / "out"
    assert run_predict("quickstart2d", [mr_slice], out) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(err) == 2 and all(line.startswith("warning: MR_small.dcm: ") for line in err)
    check = read_sidecar(out, "MR_small")["input_check"]
    assert check["outcome"] == "warn" and not check["forced"] and not check["refusals"]
    assert [w["aspect"] for w in check["warnings"]] == ["spacing", "intensity"]


# --- forced, and in distribution ------------------------------------------------------------


def _confidence(out: Path, stem: str, source: Path) -> np.ndarray:
    image = nib.load(out / f"{stem}.confidence.nii.gz")
    labels = nib.load(out / f"{stem}.seg.nii.gz")
    assert image.shape == labels.shape and np.allclose(image.affine, labels.affine)
    if source.name.endswith(".nii.gz"):
        assert image.shape == nib.load(source).shape
    values = np.asarray(image.dataobj)
    assert values.dtype == np.float32
    assert 1 / CLASSES - 1e-6 <= values.min() and values.max() <= 1 + 1e-6
    return values


@pytest.mark.parametrize("name", ["quickstart2d", "quickstart3d"])
def test_forced_ct_is_predicted_recorded_and_less_confident_than_the_sample(
        name, ct_nifti, sample_scan, tmp_path, capsys):
    out = tmp_path / "out"
    # the sample data: neither refused nor warned about
    written = predict(f"medseg/{name}", str(weights(name)), [str(sample_scan)], str(out))
    assert capsys.readouterr().err.count("warning:") == 0
    stem = sample_scan.name.removesuffix(".nii.gz")
    assert {p.name for p in written} == {f"{stem}.seg.nii.gz", f"{stem}.confidence.nii.gz",
                                         f"{stem}.overlay.png", f"{stem}.prediction.json"}
    ok = read_sidecar(out, stem)
    assert ok["input_check"] == {"outcome": "ok", "checked": True, "forced": False,
                                 "refusals": [], "warnings": []}
    sample_values = _confidence(out, stem, sample_scan)
    assert ok["confidence"]["mean_max_probability"] == pytest.approx(
        float(sample_values.mean()), abs=1e-3)

    assert run_predict(name, [ct_nifti], out, "--force") == 0
    err = capsys.readouterr().err
    assert "head_ct.nii.gz: predicted anyway (forced): its intensities look like CT" in err
    forced = read_sidecar(out, "head_ct")
    check = forced["input_check"]
    assert check["outcome"] == "forced" and check["forced"] is True
    assert [f["aspect"] for f in check["refusals"]] == ["units"]
    assert forced["outputs"] == ["head_ct.seg.nii.gz", "head_ct.confidence.nii.gz",
                                 "head_ct.overlay.png"]
    ct_values = _confidence(out, "head_ct", ct_nifti)
    # per region: the mean maximum probability of the voxels given to it
    summary = forced["confidence"]
    assert summary["elements"] == ct_values.size
    assert set(summary["per_class"]) == set(ckpt.read_meta(weights(name))["data_info"]
                                            ["class_names"])
    for region in summary["per_class"].values():
        if region["elements"]:
            assert 1 / CLASSES <= region["mean_max_probability"] <= 1
            assert 0 <= region["mean_normalised_entropy"] <= 1
    # the model is less sure of the CT than of the MR it was trained on
    assert summary["mean_max_probability"] < ok["confidence"]["mean_max_probability"] - 0.03


# --- warnings ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, scan, aspect, words", [
    ("quickstart3d", "thick_slices.nii.gz", "spacing", "10 mm along I-S, coarser than"),
    ("quickstart3d", "body_sized.nii.gz", "field of view", "more than 2 times the training"),
    ("quickstart2d", "camera.png", "intensity", "normalised intensity quantiles differ"),
])
def test_unusual_scans_are_predicted_with_a_warning_on_stderr_and_in_the_sidecar(
        name, scan, aspect, words, colin, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_predict(name, [colin[scan]], out) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(err) == 1 and f"{scan}: " in err[0] and words in err[0], err
    check = read_sidecar(out, scan.split(".")[0])["input_check"]
    assert check["outcome"] == "warn" and not check["refusals"]
    assert [w["aspect"] for w in check["warnings"]] == [aspect]
    assert (out / f"{scan.split('.')[0]}.confidence.nii.gz").is_file()


def test_a_brain_slice_exported_as_a_picture_passes(colin, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_predict("quickstart2d", [colin["brain_slice.png"]], out) == 0
    assert "warning:" not in capsys.readouterr().err
    assert read_sidecar(out, "brain_slice")["input_check"]["outcome"] == "ok"


def test_the_intensity_rule_compares_the_scan_as_the_model_sees_it(sample_scan):
    """The reference quantiles and an input's are taken the same way: the sample scan's
    own quantiles lie within the calibration of the splits."""
    record = reference("quickstart3d")
    cfg = SegData(spatial_dims=3, spacing=(3.0, 3.0, 3.0), class_names=["a", "b"])
    image = read_image(sample_scan)
    normalised = _resampled_input(image, cfg)[1].numpy()
    assert compare_scan(record, image, normalised) == []
    values = normalised[normalised != 0]
    assert abs(np.mean(values)) < 0.05 and abs(np.std(values) - 1) < 0.05
    assert len(quantiles(values)) == 9
