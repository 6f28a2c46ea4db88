"""The medseg page: upload a scan, segment it, look at it (labels or the model's
confidence), measure it, download the label and confidence maps (the files ``domainvit
predict`` writes, in the input's space); bad uploads give the readers' messages on the
page, a CT is refused unless "Predict anyway" is ticked, unusual scans are warned about."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from domainvit.config import validate_config
from domainvit.dashboard.task_pages.medseg import counting_windows, expected_windows
from domainvit.datasets.brain import CLASS_NAMES, MRICRON_TEMPLATES
from domainvit.datasets.medical_io import LABEL_COLOURS, read_image
from domainvit.distribution import InputGuard
from domainvit.engine import build_model, load_inference_weights
from domainvit.registry import get_task
from domainvit.tasks.medseg.predict import predict_scans, segment_scan
from tests.dashboard.conftest import MEDSEG_MODEL, errors, upload

KEY = "medseg-upload"


@pytest.fixture(scope="module")
def reference_model(models_dir):
    """The test checkpoint, loaded the way ``domainvit predict`` loads it, and its meta."""
    from domainvit import checkpoint as ckpt

    path = models_dir / "medseg-quickstart3d.safetensors"
    meta = ckpt.load_checkpoint(path)[1]
    cfg = validate_config(meta["config"], "test")
    model = build_model(get_task("medseg"), cfg)
    load_inference_weights(model, cfg, path)
    return model.eval(), cfg, meta


def _predicted(reference_model, scan, tmp_path) -> list[Path]:
    model, cfg, meta = reference_model
    with torch.no_grad():
        return predict_scans(model, cfg.data, [scan], tmp_path,
                             InputGuard.from_meta(meta, report=lambda line: None))


@pytest.fixture(scope="session")
def brain_extracted_nifti(tmp_path_factory) -> Path:
    """Colin27 brain-extracted (the training scan's kind) at 3 mm."""
    source = nib.load(MRICRON_TEMPLATES / "ch2bet.nii.gz")
    data = np.ascontiguousarray(np.asarray(source.dataobj)[::3, ::3, ::3])
    path = tmp_path_factory.mktemp("scans") / "colin27_brain.nii.gz"
    nib.save(nib.Nifti1Image(data, source.affine @ np.diag([3.0, 3.0, 3.0, 1.0])), path)
    return path


def _download(at, downloaded, tmp_path) -> nib.Nifti1Image:
    path = tmp_path / "downloaded.nii.gz"
    path.write_bytes(downloaded(at, "medseg-download"))
    return nib.load(path)


def test_a_nifti_volume_is_segmented_shown_measured_and_downloaded_in_its_space(
        open_page, downloaded, brain_nifti, reference_model, tmp_path):
    at = open_page("medseg", MEDSEG_MODEL)
    at = upload(at, KEY, brain_nifti)
    assert not at.exception and not errors(at)

    label_map = _download(at, downloaded, tmp_path)
    source = nib.load(brain_nifti)
    assert label_map.shape == source.shape
    np.testing.assert_allclose(label_map.affine, source.affine)
    assert int(label_map.header["qform_code"]) == 1 and int(label_map.header["sform_code"]) == 2
    # the same labels as `domainvit predict` writes
    expected = nib.load(_predicted(reference_model, brain_nifti, tmp_path / "cli")[0])
    np.testing.assert_array_equal(np.asarray(label_map.dataobj), np.asarray(expected.dataobj))
    labels = np.asarray(label_map.dataobj)
    assert len(np.unique(labels)) >= 10  # a real brain: (nearly) every region found
    # a head with its skull and scalp, unlike the brain-extracted training scans: warned
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith(
        "Unlike the training data: its normalised intensity quantiles differ"), warnings

    # volumes: voxel counts times the 3 mm voxels, in mL
    regions = at.dataframe[0].value
    assert list(regions["region"]) == list(CLASS_NAMES[1:])
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES))[1:]
    np.testing.assert_allclose(regions["volume (mL)"], counts * 27 / 1000, atol=1e-3)

    # legend: region names in the overlay's colours
    legend = at.get("html")[0].value
    for index, name in enumerate(CLASS_NAMES[1:]):
        r, g, b = LABEL_COLOURS[index].astype(int)
        assert f"rgb({r},{g},{b})\"></span>{name}</span>" in legend

    # the viewer: axis and slice controls, an overlay image whose opacity changes it
    assert at.radio[0].options == ["axial", "coronal", "sagittal"]
    first = at.image[0].value
    assert "axial" in at.image[0].captions[0]
    at.slider[1].set_value(1.0).run()
    assert not at.exception and at.image[0].value != first
    at.radio[0].set_value("sagittal").run()
    slice_slider = at.slider[0]
    assert slice_slider.label == "Slice" and slice_slider.max == source.shape[0] - 1
    assert "superior up, anterior on the right" in at.image[0].captions[0]


def test_a_zipped_ct_series_is_refused_and_predicted_anyway_in_scanner_space(
        open_page, downloaded, ct_series_zip, tmp_path):
    at = open_page("medseg", MEDSEG_MODEL)
    at = upload(at, KEY, ct_series_zip)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and shown[0].startswith(
        "ct-series.zip: it is a CT scan (DICOM Modality CT); the model was trained on MR"), shown
    assert "Predict anyway" in shown[0]
    assert not at.get("download_button") and not at.image

    at.checkbox(key="medseg-force").check().run()
    assert not at.exception and not errors(at)
    assert any(w.value.startswith("Predicted anyway, although the model refuses this input: "
                                  "it is a CT scan") for w in at.warning)
    label_map = _download(at, downloaded, tmp_path)
    scan = read_image(ct_series_zip)
    assert label_map.shape == scan.native_shape == (128, 128, 12)
    np.testing.assert_allclose(label_map.affine, scan.native_affine, atol=1e-5)
    assert "volume (mL)" in at.dataframe[0].value.columns


def test_the_confidence_is_shown_per_region_as_a_map_and_downloaded(
        open_page, downloaded, brain_extracted_nifti, reference_model, tmp_path):
    at = open_page("medseg", MEDSEG_MODEL)
    at = upload(at, KEY, brain_extracted_nifti)
    assert not at.exception and not errors(at)
    assert not at.warning  # the training scans' kind: neither refused nor warned about
    written = _predicted(reference_model, brain_extracted_nifti, tmp_path / "cli")
    expected = json.loads(written[3].read_text())["confidence"]["per_class"]

    regions = at.dataframe[0].value
    confidence = regions["mean confidence"].to_numpy(dtype=float)
    found = ~np.isnan(confidence)
    assert found.sum() >= 10 and np.all((confidence[found] >= 1 / 12)
                                        & (confidence[found] <= 1))
    np.testing.assert_allclose(
        confidence[found],
        [round(expected[name]["mean_max_probability"], 3)
         for name, present in zip(regions["region"], found, strict=True) if present])

    # the toggle shows the confidence map instead of the labels, and back
    labels_view = at.image[0].value
    assert "Labels over the scan" in at.image[0].captions[0]
    at.toggle[0].set_value(True).run()
    assert not at.exception
    assert "confidence" in at.image[0].captions[0] and at.image[0].value != labels_view
    assert not at.get("html") or all("frontal_L" not in h.value for h in at.get("html"))
    at.toggle[0].set_value(False).run()
    assert "Labels over the scan" in at.image[0].captions[0]

    # the confidence map download is the file `domainvit predict` writes
    path = tmp_path / "confidence.nii.gz"
    path.write_bytes(downloaded(at, "medseg-confidence-download"))
    np.testing.assert_array_equal(np.asarray(nib.load(path).dataobj),
                                  np.asarray(nib.load(written[1]).dataobj))
    assert nib.load(path).shape == nib.load(brain_extracted_nifti).shape


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("case, message", [
    ("truncated", "cannot read colin27_3_mm_.nii.gz as NIfTI"),
    ("picture", "is a 2D image of 64x48: expected a 3D volume"),
    ("zip without dicom", "contains no DICOM files"),
])
def test_bad_uploads_show_the_readers_message_and_no_result(
        open_page, brain_nifti, tmp_path, case, message):
    at = open_page("medseg", MEDSEG_MODEL)
    if case == "truncated":
        data = brain_nifti.read_bytes()
        path = tmp_path / brain_nifti.name
        path.write_bytes(data[: len(data) // 2])
    elif case == "picture":
        path = tmp_path / "slice.png"
        path.write_bytes(_png(np.zeros((64, 48), np.uint8)))
    else:
        path = tmp_path / "notes.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "no images here")
    at = upload(at, KEY, path)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and message in shown[0], shown
    assert "Traceback" not in shown[0]
    assert not at.get("download_button") and not at.image and not at.get("progress")


def test_an_upload_over_the_size_limit_is_refused(open_page, brain_nifti, monkeypatch):
    from domainvit.dashboard import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    at = upload(open_page("medseg", MEDSEG_MODEL), KEY, brain_nifti)
    assert not at.exception
    assert "larger than the 1000 bytes upload limit" in errors(at)[0]
    assert not at.get("download_button")


@pytest.mark.parametrize("roi, overlap", [((32, 40, 32), 0.25), ((48, 48, 48), 0.5)])
def test_the_progress_estimate_counts_the_windows_the_model_sees(
        reference_model, brain_nifti, roi, overlap):
    model, cfg, _ = reference_model
    data = cfg.data.model_copy(update={"roi_size": list(roi), "sw_overlap": overlap})
    image = read_image(brain_nifti, spatial_dims=3)
    reports = []
    with counting_windows(model, reports.append), torch.no_grad():
        segment_scan(model, image, data)
    assert expected_windows(image, data) == reports[-1] > 1
