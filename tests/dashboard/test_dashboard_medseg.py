"""The medseg page: upload a scan, segment it, look at it, measure it, download the label
map (the file ``domainvit predict`` writes, in the input's space); bad uploads give the
readers' messages on the page."""

from __future__ import annotations

import io
import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from domainvit.config import validate_config
from domainvit.dashboard.task_pages.medseg import counting_windows, expected_windows
from domainvit.datasets.brain import CLASS_NAMES
from domainvit.datasets.medical_io import LABEL_COLOURS, read_image
from domainvit.engine import build_model, load_inference_weights
from domainvit.registry import get_task
from domainvit.tasks.medseg.predict import predict_scans, segment_scan
from tests.dashboard.conftest import MEDSEG_MODEL, errors, upload

KEY = "medseg-upload"


@pytest.fixture(scope="module")
def reference_model(models_dir):
    """The test checkpoint, loaded the way ``domainvit predict`` loads it."""
    from domainvit import checkpoint as ckpt

    path = models_dir / "medseg-quickstart3d.safetensors"
    cfg = validate_config(ckpt.load_checkpoint(path)[1]["config"], "test")
    model = build_model(get_task("medseg"), cfg)
    load_inference_weights(model, cfg, path)
    return model.eval(), cfg


def _predicted(reference_model, scan, tmp_path) -> nib.Nifti1Image:
    model, cfg = reference_model
    with torch.no_grad():
        written = predict_scans(model, cfg.data, [scan], tmp_path)
    return nib.load(written[0])


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
    expected = _predicted(reference_model, brain_nifti, tmp_path / "cli")
    np.testing.assert_array_equal(np.asarray(label_map.dataobj), np.asarray(expected.dataobj))
    labels = np.asarray(label_map.dataobj)
    assert len(np.unique(labels)) >= 10  # a real brain: (nearly) every region found

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


def test_a_zipped_dicom_series_gets_its_label_map_in_scanner_space(
        open_page, downloaded, ct_series_zip, tmp_path):
    at = open_page("medseg", MEDSEG_MODEL)
    at = upload(at, KEY, ct_series_zip)
    assert not at.exception and not errors(at)
    label_map = _download(at, downloaded, tmp_path)
    scan = read_image(ct_series_zip)
    assert label_map.shape == scan.native_shape == (128, 128, 12)
    np.testing.assert_allclose(label_map.affine, scan.native_affine, atol=1e-5)
    assert "volume (mL)" in at.dataframe[0].value.columns


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
    model, cfg = reference_model
    data = cfg.data.model_copy(update={"roi_size": list(roi), "sw_overlap": overlap})
    image = read_image(brain_nifti, spatial_dims=3)
    reports = []
    with counting_windows(model, reports.append), torch.no_grad():
        segment_scan(model, image, data)
    assert expected_windows(image, data) == reports[-1] > 1
