"""Reading medical images into RAS arrays and writing results back in the input's grid.

Real files come from the pydicom and nibabel wheels (CT_small.dcm, MR_small.dcm,
anatomical.nii, example4d.nii.gz); small NIfTIs, DICOM series and zips are made in tmp_path.
"""

from __future__ import annotations

import copy
import gzip
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pydicom.data
import pydicom.uid
import pytest
from PIL import Image

from domainvit.datasets import medical_io
from domainvit.datasets.medical_io import (
    LABEL_COLOURS,
    MedicalImage,
    read_image,
    to_native,
    write_label_nifti,
    write_overlay_png,
    write_probabilities_nifti,
)
from domainvit.errors import UserError

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
SLICE_GAP_MM = 5.0


def dicom_test_file(name: str) -> Path:
    return Path(pydicom.data.get_testdata_file(name, download=False))


def ct_hounsfield() -> np.ndarray:
    dataset = pydicom.dcmread(dicom_test_file("CT_small.dcm"))
    return dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray, qform_code: int = 1,
               sform_code: int = 2) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.header.set_qform(affine, code=qform_code)
    image.header.set_sform(affine, code=sform_code)
    nib.save(image, path)
    return path


def oriented_affine(axcodes: str, spacing=(1.5, 2.0, 3.0)) -> np.ndarray:
    """An affine whose voxel axes point along ``axcodes`` (e.g. "LPS", "SAR")."""
    direction = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.zeros((4, 4))
    for column, code in enumerate(axcodes):
        row, sign = direction[code]
        affine[row, column] = sign * spacing[column]
    affine[:3, 3] = (-10.0, 20.0, 5.0)
    affine[3, 3] = 1.0
    return affine


def write_ct_series(folder: Path, slices: int = 4) -> Path:
    """CT_small copied into ``slices`` slices 5 mm apart; slice k holds HU + 10 k.

    Files are named in reverse order so that only InstanceNumber orders them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = pydicom.dcmread(dicom_test_file("CT_small.dcm"))
    pixels = source.pixel_array
    x, y, z = (float(v) for v in source.ImagePositionPatient)
    series_uid = pydicom.uid.generate_uid()
    for k in range(slices):
        dataset = copy.deepcopy(source)
        dataset.InstanceNumber = k + 1
        dataset.ImagePositionPatient = [x, y, z + SLICE_GAP_MM * k]
        dataset.SOPInstanceUID = pydicom.uid.generate_uid()
        dataset.SeriesInstanceUID = series_uid
        dataset.PixelData = (pixels + 10 * k).astype(pixels.dtype).tobytes()
        dataset.save_as(folder / f"slice{slices - k:02d}.dcm")
    return folder


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, f"series/{path.name}")
    return archive


# ---------------------------------------------------------------------------------------
# Reading


def test_nifti_is_read_channel_first_in_ras_with_spacing():
    path = NIBABEL_DATA / "anatomical.nii"
    native = nib.load(path)
    assert nib.aff2axcodes(native.affine) == ("L", "A", "S")  # so reorientation flips x

    image = read_image(path)

    assert image.kind == "nifti" and image.source_path == path
    assert image.array.dtype == np.float32 and image.array.shape == (1, 33, 41, 25)
    np.testing.assert_array_equal(image.array[0], np.asarray(native.dataobj)[::-1])
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    assert image.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert image.native_axcodes == ("L", "A", "S")
    np.testing.assert_allclose(image.native_affine, native.affine)


@pytest.mark.parametrize("axcodes", ["LPS", "SAR", "PIL"])
def test_labels_written_back_land_on_the_input_grid(tmp_path: Path, axcodes: str):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(5, 6, 7)).astype(np.float32)
    affine = oriented_affine(axcodes)
    path = save_nifti(tmp_path / "scan.nii.gz", data, affine, qform_code=1, sform_code=2)

    image = read_image(path, spatial_dims=3)

    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    # the same voxel sits at the same world position in both grids
    native_index = np.array([1, 2, 3, 1.0])
    world = affine @ native_index
    ras_index = np.round(np.linalg.solve(image.affine, world)).astype(int)[:3]
    assert image.array[(0, *ras_index)] == data[1, 2, 3]
    np.testing.assert_array_equal(to_native(image.array[0], image), data)

    labels = (image.array[0] > 0).astype(np.uint8) + (image.array[0] > 1)
    expected = (data > 0).astype(np.uint8) + (data > 1)
    written = nib.load(write_label_nifti(labels, image, tmp_path / "labels.nii.gz"))
    assert written.shape == data.shape
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 2
    np.testing.assert_array_equal(np.asarray(written.dataobj), expected)


def test_label_map_with_large_values_is_written_as_int16(tmp_path: Path):
    path = save_nifti(tmp_path / "scan.nii", np.ones((3, 4, 5), np.float32), np.eye(4))
    image = read_image(path)
    labels = np.full((3, 4, 5), 300)

    written = nib.load(write_label_nifti(labels, image, tmp_path / "labels.nii"))

    assert written.get_data_dtype() == np.int16
    assert np.all(np.asarray(written.dataobj) == 300)


def test_4d_nifti_volumes_become_channels_when_dims_are_free():
    image = read_image(NIBABEL_DATA / "example4d.nii.gz")
    assert image.array.shape == (2, 128, 96, 24)
    assert image.spacing == pytest.approx((2.0, 2.0, 2.2), abs=1e-4)


def test_single_dicom_slice_reads_as_2d_hounsfield_in_ras():
    path = dicom_test_file("CT_small.dcm")
    image = read_image(path)

    assert image.kind == "dicom" and image.array.shape == (1, 128, 128)
    # rows/columns are swapped to (x, y) and both flipped from LPS to RAS
    np.testing.assert_allclose(image.array[0], ct_hounsfield().T[::-1, ::-1])
    assert image.spacing == pytest.approx((0.661468, 0.661468))
    assert image.native_shape == (128, 128, 1)


def test_dicom_file_without_suffix_is_recognised_by_its_marker(tmp_path: Path):
    path = tmp_path / "IM000001"
    path.write_bytes(dicom_test_file("MR_small.dcm").read_bytes())
    image = read_image(path)
    assert image.kind == "dicom" and image.spatial_dims == 2


def test_dicom_series_folder_is_stacked_by_instance_number(tmp_path: Path):
    folder = write_ct_series(tmp_path / "series")
    (folder / "README.txt").write_text("exported by a scanner")

    image = read_image(folder, spatial_dims=3)

    assert image.array.shape == (1, 128, 128, 4)
    assert image.spacing == pytest.approx((0.661468, 0.661468, SLICE_GAP_MM), abs=1e-4)
    hounsfield = ct_hounsfield().T[::-1, ::-1]
    for k in range(4):  # superior = later instance, so RAS order keeps slice order
        np.testing.assert_allclose(image.array[0, :, :, k], hounsfield + 10 * k)


def test_zipped_series_reads_like_its_folder(tmp_path: Path):
    folder = write_ct_series(tmp_path / "series")
    archive = zip_folder(folder, tmp_path / "series.zip")

    from_zip, from_folder = read_image(archive), read_image(folder)

    assert from_zip.kind == "dicom"
    np.testing.assert_array_equal(from_zip.array, from_folder.array)
    np.testing.assert_allclose(from_zip.affine, from_folder.affine)


def test_labels_of_a_dicom_series_are_written_in_scanner_space(tmp_path: Path):
    image = read_image(write_ct_series(tmp_path / "series"))
    labels = (image.array[0] > 0).astype(np.uint8)

    written = nib.load(write_label_nifti(labels, image, tmp_path / "labels.nii.gz"))

    np.testing.assert_allclose(written.affine, image.native_affine, atol=1e-4)
    assert int(written.header["sform_code"]) == 1  # scanner
    np.testing.assert_array_equal(np.asarray(written.dataobj), to_native(labels, image))


def test_grayscale_png_keeps_rows_and_columns_with_identity_affine(tmp_path: Path):
    pixels = np.arange(6 * 9, dtype=np.uint8).reshape(6, 9)
    Image.fromarray(pixels).save(tmp_path / "xray.png")

    image = read_image(tmp_path / "xray.png", spatial_dims=2)

    assert image.kind == "image" and image.array.shape == (1, 6, 9)
    np.testing.assert_array_equal(image.array[0], pixels)
    np.testing.assert_array_equal(image.affine, np.eye(4))
    assert image.spacing == (1.0, 1.0)


def test_rgb_jpeg_reads_as_three_channels(tmp_path: Path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(tmp_path / "a.jpeg")
    decoded = np.asarray(Image.open(tmp_path / "a.jpeg"))

    image = read_image(tmp_path / "a.jpeg")

    assert image.array.shape == (3, 10, 12)
    np.testing.assert_array_equal(image.array, np.moveaxis(decoded, -1, 0))


def test_volume_with_one_slice_is_squeezed_to_2d_and_written_back(tmp_path: Path):
    data = np.arange(8 * 9, dtype=np.float32).reshape(8, 1, 9)  # a coronal slice
    affine = oriented_affine("LPS", spacing=(0.5, 4.0, 0.7))
    path = save_nifti(tmp_path / "coronal.nii.gz", data, affine)

    image = read_image(path, spatial_dims=2)

    assert image.array.shape == (1, 8, 9)
    assert image.spacing == pytest.approx((0.5, 0.7))
    # the 2D affine maps (i, j, 0) to the world position of that pixel
    world = affine @ np.array([7, 0, 8, 1.0])  # native (7, 0, 8) is RAS (0, 8): x flips
    np.testing.assert_allclose(image.affine @ np.array([0, 8, 0, 1.0]), world)
    assert image.array[0, 0, 8] == data[7, 0, 8]
    labels = (image.array[0] % 2).astype(np.uint8)
    written = nib.load(write_label_nifti(labels, image, tmp_path / "labels.nii.gz"))
    np.testing.assert_array_equal(np.asarray(written.dataobj), data % 2)


def test_probabilities_are_written_as_one_volume_per_class(tmp_path: Path):
    data = np.random.default_rng(2).normal(size=(4, 5, 6)).astype(np.float32)
    path = save_nifti(tmp_path / "scan.nii.gz", data, oriented_affine("LPI"))
    image = read_image(path)
    probabilities = np.stack([image.array[0], -image.array[0]])

    written = nib.load(write_probabilities_nifti(probabilities, image, tmp_path / "p.nii.gz"))

    assert written.shape == (4, 5, 6, 2) and written.get_data_dtype() == np.float32
    np.testing.assert_allclose(written.get_fdata()[..., 0], data)
    np.testing.assert_allclose(written.get_fdata()[..., 1], -data)


def test_overlay_png_blends_fixed_colours_over_windowed_gray(tmp_path: Path):
    intensity = np.tile(np.linspace(0.0, 1000.0, 50), (40, 1))
    labels = np.zeros((40, 50), dtype=np.int64)
    labels[:10, :] = 1
    labels[10:20, :] = 2

    path = write_overlay_png(intensity, labels, tmp_path / "overlay.png", alpha=0.5)

    rgb = np.asarray(Image.open(path))
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.uint8
    background = rgb[20:]
    assert np.all(background[..., 0] == background[..., 1])  # gray where unlabelled
    assert background[0, 0, 0] == 0 and background[0, -1, 0] == 255  # 1-99 % window
    assert background[0, 1, 0] > 0 and background[0, -2, 0] < 255
    gray = background[0].astype(float)
    for label, rows in ((1, slice(0, 10)), (2, slice(10, 20))):
        expected = 0.5 * gray + 0.5 * LABEL_COLOURS[label - 1]
        np.testing.assert_allclose(rgb[rows][0], expected, atol=1.0)


def test_failed_write_leaves_neither_partial_file_nor_changed_target(tmp_path: Path,
                                                                     monkeypatch):
    path = save_nifti(tmp_path / "scan.nii.gz", np.ones((3, 4, 5), np.float32), np.eye(4))
    image = read_image(path)
    target = tmp_path / "out" / "labels.nii.gz"
    target.parent.mkdir()
    target.write_bytes(b"previous result")

    def save_half_then_fail(nifti, filename):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(medical_io.nib, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_label_nifti(np.zeros((3, 4, 5), np.uint8), image, target)

    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in target.parent.iterdir()) == ["labels.nii.gz"]


def test_every_bundled_real_file_reads_to_finite_float32():
    for path in (NIBABEL_DATA / "anatomical.nii", dicom_test_file("CT_small.dcm"),
                 dicom_test_file("MR_small.dcm")):
        image = read_image(path)
        assert isinstance(image, MedicalImage)
        assert image.array.dtype == np.float32 and np.isfinite(image.array).all()


# ---------------------------------------------------------------------------------------
# Bad input: one UserError each, naming the file and what was expected


def user_error(path, match: str, **kwargs) -> UserError:
    with pytest.raises(UserError, match=match) as caught:
        read_image(path, **kwargs)
    error = caught.value
    assert Path(path).name in str(error)
    # raised `from None`: the library's exception is not chained into the report
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return error


def test_unsupported_suffix_lists_what_is_accepted(tmp_path: Path):
    (tmp_path / "scan.mha").write_bytes(b"ObjectType = Image\n")
    error = user_error(tmp_path / "scan.mha", "unsupported file")
    assert ".nii.gz" in str(error) and "'.mha'" in str(error)


def test_file_without_suffix_that_is_not_dicom(tmp_path: Path):
    (tmp_path / "notes").write_text("not an image")
    user_error(tmp_path / "notes", "no suffix and no DICOM marker")


def test_missing_file(tmp_path: Path):
    user_error(tmp_path / "absent.nii.gz", "does not exist")


def test_2d_image_when_a_3d_volume_is_required(tmp_path: Path):
    Image.fromarray(np.zeros((6, 9), np.uint8) + 7).save(tmp_path / "xray.png")
    user_error(tmp_path / "xray.png", "2D image of 6x9: expected a 3D volume", spatial_dims=3)
    user_error(dicom_test_file("CT_small.dcm"), "expected a 3D volume", spatial_dims=3)


def test_single_slice_volume_when_a_3d_volume_is_required(tmp_path: Path):
    path = save_nifti(tmp_path / "slice.nii", np.ones((8, 8, 1), np.float32), np.eye(4))
    user_error(path, r"single slice \(8x8x1\): expected a 3D volume", spatial_dims=3)


def test_3d_volume_when_a_2d_image_is_required():
    user_error(NIBABEL_DATA / "anatomical.nii", "3D volume .*33x41x25.*expected a 2D image",
               spatial_dims=2)


def test_4d_series_when_a_3d_volume_is_required():
    user_error(NIBABEL_DATA / "example4d.nii.gz",
               "4D series with 2 volumes of 128x96x24: .*give one volume", spatial_dims=3)


def test_dicom_without_pixel_data(tmp_path: Path):
    dataset = pydicom.dcmread(dicom_test_file("CT_small.dcm"))
    del dataset.PixelData
    dataset.save_as(tmp_path / "header_only.dcm")
    user_error(tmp_path / "header_only.dcm",
               "no pixel data: expected a DICOM image, got a CT Image Storage object")


def test_truncated_gzip_nifti(tmp_path: Path):
    path = save_nifti(tmp_path / "scan.nii.gz",
                      np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32),
                      np.eye(4))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    user_error(path, "cannot read scan.nii.gz as NIfTI")


def test_gzip_that_is_not_nifti(tmp_path: Path):
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(gzip.compress(b"hello" * 100))
    user_error(path, "cannot read scan.nii.gz as NIfTI")


def test_empty_zip(tmp_path: Path):
    zipfile.ZipFile(tmp_path / "empty.zip", "w").close()
    user_error(tmp_path / "empty.zip", "is empty: expected a zip of one DICOM series")


def test_zip_without_dicom(tmp_path: Path):
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as archive:
        archive.writestr("notes.txt", "no images here")
    user_error(tmp_path / "notes.zip", r"contains no DICOM files \(1 other members\)")


def test_file_named_zip_that_is_not_one(tmp_path: Path):
    (tmp_path / "series.zip").write_bytes(b"PK? not really")
    user_error(tmp_path / "series.zip", "not a readable zip archive")


@pytest.mark.parametrize("member", ["../escape.dcm", "/etc/escape.dcm", "a/../../escape.dcm",
                                    "C:\\escape.dcm"])
def test_zip_slip_member_is_refused_before_anything_is_extracted(tmp_path: Path, member: str):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("ok.dcm", dicom_test_file("CT_small.dcm").read_bytes())
        archive.writestr(member, b"payload")
    user_error(tmp_path / "evil.zip", "absolute or '..' path")
    assert not (tmp_path / "escape.dcm").exists()


def test_zip_that_inflates_past_the_limit(tmp_path: Path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("slice.dcm", bytes(4 * 1024 * 1024))
    assert (tmp_path / "bomb.zip").stat().st_size < 64 * 1024
    user_error(tmp_path / "bomb.zip", r"\(uncompressed\) is 4.0 MiB, larger than the 1.0 MiB",
               max_bytes=1024 * 1024)


def test_file_larger_than_max_bytes():
    user_error(dicom_test_file("CT_small.dcm"), "larger than the 1000 bytes limit",
               max_bytes=1000)


def test_folder_with_two_series(tmp_path: Path):
    folder = write_ct_series(tmp_path / "mixed", slices=2)
    other = pydicom.dcmread(dicom_test_file("CT_small.dcm"))
    other.SeriesInstanceUID = pydicom.uid.generate_uid()
    other.save_as(folder / "other.dcm")
    user_error(folder, "holds 2 DICOM series: expected one series")


def test_folder_without_dicom(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    user_error(tmp_path / "empty", "holds no DICOM files")


def test_nan_only_image(tmp_path: Path):
    path = save_nifti(tmp_path / "nan.nii.gz", np.full((4, 4, 4), np.nan, np.float32),
                      np.eye(4))
    user_error(path, r"no finite values \(all NaN or infinite\)")
