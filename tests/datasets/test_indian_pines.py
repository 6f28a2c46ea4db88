"""The real Indian Pines benchmark: the cube and ground truth read out of the tensorly wheel
(a real ``pip download`` from PyPI, built once into the session's data cache), its band
centres, its spatially disjoint splits, and the refusal of wheels that are not the one
that ships it.

The baselines' accuracies are not tested here (half a minute): run
``python benchmarks/hsi_indian_pines_baselines.py``."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pytest.importorskip("scipy")

from scipy import ndimage  # noqa: E402

from domainvit.datasets import indian_pines as ip  # noqa: E402
from domainvit.datasets.hsi_scenes import download  # noqa: E402
from domainvit.datasets.hsi_scenes.conventions import CLASSES_FILE, SCENE_FILE  # noqa: E402
from domainvit.datasets.hsi_scenes.spectra import aviris_bands, spectrometer_segments  # noqa: E402
from domainvit.datasets.registry import prepare  # noqa: E402
from domainvit.errors import UserError  # noqa: E402
from domainvit.registry import load_tasks  # noqa: E402

#: the published classes and their labelled pixels (Purdue / the usual benchmark tables)
PUBLISHED = [
    ("Alfalfa", 46), ("Corn-notill", 1428), ("Corn-mintill", 830), ("Corn", 237),
    ("Grass-pasture", 483), ("Grass-trees", 730), ("Grass-pasture-mowed", 28),
    ("Hay-windrowed", 478), ("Oats", 20), ("Soybean-notill", 972),
    ("Soybean-mintill", 2455), ("Soybean-clean", 593), ("Wheat", 205), ("Woods", 1265),
    ("Buildings-Grass-Trees-Drives", 386), ("Stone-Steel-Towers", 93),
]


@pytest.fixture(scope="module")
def folder() -> Path:
    load_tasks()  # the hsi task registers the dataset
    return prepare(ip.INDIAN_PINES)


@pytest.fixture(scope="module")
def scene(folder: Path) -> ip.IndianPinesScene:
    return ip.read_indian_pines(folder)


@pytest.fixture(scope="module")
def splits(scene: ip.IndianPinesScene) -> dict[int, ip.IndianPinesSplit]:
    return {seed: ip.indian_pines_split(scene.labels, seed) for seed in ip.SPLIT_SEEDS}


# --- the prepared scene --------------------------------------------------------------------


def test_prepared_cube_has_the_published_classes_and_counts(folder: Path, scene):
    assert scene.cube.shape == (145, 145, 200) and scene.cube.dtype == np.uint16
    assert scene.cube.min() >= 1  # 0 stays the nodata value
    counts = np.bincount(scene.labels.ravel(), minlength=17)
    assert counts[1:].tolist() == [n for _, n in PUBLISHED]
    assert counts[1:].sum() == 10249 and len(counts) == 17
    assert [c["name"] for c in json.loads((folder / CLASSES_FILE).read_text())] == \
        [name for name, _ in PUBLISHED]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["source"]["pypi"] == "tensorly==0.10.0"
    assert meta["source"]["wheel"].endswith(".whl") and len(meta["source"]["sha256"]) == 64


def test_band_centres_are_the_kept_aviris_bands(scene):
    w = scene.wavelengths
    assert w.shape == (200,) and np.all((w > 400) & (w < 2500))
    assert len(np.unique(w)) == 200
    # ascending within each spectrometer; the cube steps back where two overlap
    runs = spectrometer_segments(w)
    assert [r.start for r in runs] == [0, 31, 94]
    for run in runs:
        assert np.all(np.diff(w[run]) > 5)
    # the 92AV3C centres less the water-absorption bands 104-108, 150-163, 220
    centres, fwhm = aviris_bands()
    removed = np.array(ip.REMOVED_BANDS) - 1
    assert len(removed) == 20
    np.testing.assert_allclose(w, np.delete(centres, removed), atol=1e-3)
    np.testing.assert_allclose(scene.fwhm, np.delete(fwhm, removed), atol=1e-3)
    gone = centres[removed]
    assert np.all(((gone > 1355) & (gone < 1405)) | ((gone > 1815) & (gone < 1935))
                  | (gone > 2495))
    assert not np.any((w > 1355) & (w < 1405)) and not np.any((w > 1815) & (w < 1935))


def test_radiance_minima_fall_in_the_atmospheric_absorptions(scene):
    mean = scene.cube.reshape(-1, 200).mean(axis=0) - 1000  # radiance = (value - 1000) / 500
    w = scene.wavelengths
    for band_nm in (760, 940, 1135):
        near = np.flatnonzero(np.abs(w - band_nm) < 40)
        assert abs(w[near[np.argmin(mean[near])]] - band_nm) < 10
    for edge_nm in (1352.7, 1412.4, 1809.2, 1943.3):
        assert mean[np.argmin(np.abs(w - edge_nm))] < 0.05 * mean.max()


def test_the_hsi_task_reads_the_prepared_scene(folder: Path, scene):
    from domainvit.tasks.hsi.data import HSIData, load_scene

    classes = json.loads((folder / CLASSES_FILE).read_text())
    for seed in ip.SPLIT_SEEDS:
        data = HSIData(root=folder, classes=classes, split=ip.split_file(seed))
        loaded = load_scene(data)
        assert loaded.cube.shape == (200, 145, 145) and loaded.valid.all()
        np.testing.assert_allclose(loaded.cube, scene.cube.transpose(2, 0, 1) / 10000,
                                   rtol=1e-6)
        np.testing.assert_allclose(loaded.wavelengths, scene.wavelengths, atol=1e-3)
        np.testing.assert_array_equal(loaded.split, ip.read_split(folder, seed).split_map())
    with rasterio.open(folder / SCENE_FILE) as src:
        assert "radiance" in src.tags()["quantity"]
        assert src.tags()["georeferencing"].startswith("nominal")


# --- the splits ----------------------------------------------------------------------------


def test_prepared_split_maps_are_the_split_function(folder: Path, splits):
    for seed, split in splits.items():
        np.testing.assert_array_equal(ip.read_split(folder, seed).split_map(),
                                      split.split_map())


def test_split_masks_are_disjoint_labelled_and_half_the_blocks(scene, splits):
    labelled = scene.labels > 0
    for split in splits.values():
        masks = np.stack([split.train, split.val, split.test]).astype(int)
        assert masks.sum(axis=0).max() == 1
        assert not np.any(masks.sum(axis=0) & ~labelled)
        assert len(split.info["test_blocks"]) == 50
        block = (np.arange(145)[:, None] // 16) * 10 + np.arange(145)[None, :] // 16
        in_test = np.isin(block, split.info["test_blocks"])
        np.testing.assert_array_equal(split.test, in_test & labelled)


def test_no_training_or_validation_pixel_is_within_the_margin_of_a_test_pixel(splits):
    for split in splits.values():
        distance = ndimage.distance_transform_cdt(~split.test, metric="chessboard")
        assert split.patch_radius == 4
        assert distance[split.train].min() > split.patch_radius
        assert distance[split.val].min() > split.patch_radius


def test_every_class_trains_on_about_ten_percent_and_all_but_one_are_tested(scene, splits):
    for split in splits.values():
        for c in range(1, 17):
            n_train = int(np.count_nonzero(split.train & (scene.labels == c)))
            base = int(np.count_nonzero((scene.labels == c) & ~np.isin(
                (np.arange(145)[:, None] // 16) * 10 + np.arange(145)[None, :] // 16,
                split.info["test_blocks"])))
            outside_margin = int(np.count_nonzero((split.train | split.val)
                                                  & (scene.labels == c)))
            assert n_train >= 3
            # 10% of the training-block pixels, at least 3, at most what the margin leaves
            assert n_train == min(max(3, round(0.1 * base)), outside_margin)
            assert split.info["per_class"][c]["train"] == n_train
        tested = set(np.unique(scene.labels[split.test]).tolist())
        assert tested == set(range(1, 17)) - {7}  # Grass-pasture-mowed: one block
        assert split.info["classes_without_test"] == [7]


def test_seeds_give_different_reproducible_splits(scene, splits):
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not np.array_equal(splits[a].test, splits[b].test)
        assert not np.array_equal(splits[a].train, splits[b].train)
    again = ip.indian_pines_split(scene.labels, 1)
    np.testing.assert_array_equal(again.split_map(), splits[1].split_map())


def test_a_class_with_fewer_pixels_trains_on_all_it_has():
    labels = np.ones((64, 64), dtype=np.uint8)
    labels[5, 5:7] = 2  # two pixels of class 2 in one block
    split = ip.indian_pines_split(labels, seed=0, patch_radius=1)
    assert np.count_nonzero(split.train & (labels == 2)) == 2
    assert split.info["classes_without_test"] == [2]
    with pytest.raises(ValueError, match="patch_radius"):
        ip.indian_pines_split(labels, seed=0, patch_radius=-1)


# --- hostile wheels ------------------------------------------------------------------------


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_wheel_without_the_cube_is_refused(tmp_path: Path):
    wheel = _wheel(tmp_path / "tensorly-0.10.0-py3-none-any.whl",
                   {ip.LABELS_MEMBER: _npy(np.zeros((145, 145), np.uint8))})
    with pytest.raises(UserError, match="has no tensorly/datasets/data/Indian_pines_corrected"):
        ip.read_wheel(wheel)


def test_an_oversized_member_is_refused_before_it_is_read(tmp_path: Path):
    wheel = _wheel(tmp_path / "big.whl", {ip.CUBE_MEMBER: bytes(18 * 1024**2),
                                         ip.LABELS_MEMBER: b""})
    with pytest.raises(UserError, match=r"big.whl \(uncompressed\) is 18.0 MiB, larger "
                                         r"than the 17.0 MiB limit"):
        ip.read_wheel(wheel)


def test_a_member_larger_than_its_directory_says_is_refused(tmp_path: Path):
    wheel = _wheel(tmp_path / "lying.whl", {ip.CUBE_MEMBER: bytes(100_000)})
    data = bytearray(wheel.read_bytes())
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # stated size
        struct.pack_into("<I", data, data.find(signature) + offset, 1000)
    wheel.write_bytes(bytes(data))
    with pytest.raises(UserError, match="cannot extract .* from lying.whl .*CRC"):
        ip.read_wheel(wheel)


def test_pickled_members_are_never_loaded(tmp_path: Path):
    wheel = _wheel(tmp_path / "pickle.whl", {
        ip.CUBE_MEMBER: _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True),
        ip.LABELS_MEMBER: _npy(np.zeros((145, 145), np.uint8))})
    with pytest.raises(UserError, match="not a plain .npy array"):
        ip.read_wheel(wheel)


def test_a_zip_that_is_not_a_wheel_is_refused(tmp_path: Path):
    (tmp_path / "broken.whl").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="broken.whl is not a readable .* archive .*: "
                                         "expected the tensorly==0.10.0 wheel"):
        ip.read_wheel(tmp_path / "broken.whl")


def test_arrays_that_are_not_the_published_scene_are_refused():
    cube = np.ones(ip.SHAPE, dtype=np.uint16)
    labels = np.zeros(ip.SHAPE[:2], dtype=np.uint8)
    with pytest.raises(UserError, match="class counts .* differ from the published"):
        ip.check_arrays(cube, labels, "x.whl")
    with pytest.raises(UserError, match="expected integer \\[145, 145, 200\\]"):
        ip.check_arrays(cube[:, :, :199], labels, "x.whl")
    labels[0, 0] = 17
    with pytest.raises(UserError, match="labels go up to 17"):
        ip.check_arrays(cube, labels, "x.whl")


def test_failed_download_is_a_user_error(monkeypatch, tmp_path: Path):
    def offline(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "ERROR: Could not find a version "
                                           "that satisfies the requirement tensorly")

    monkeypatch.setattr(download.subprocess, "run", offline)
    with pytest.raises(UserError, match="could not download tensorly==0.10.0.*Could not find"):
        download.pip_download(ip.TENSORLY, tmp_path, sdist=False)


def test_the_bundled_config_lists_the_dataset_classes_in_label_order():
    """``hsi/indian_pines`` names the published classes (lower case), with the colours and
    descriptions the prepared ``classes.json`` records."""
    from domainvit.config import load_config

    classes = load_config("hsi/indian_pines").data.classes
    assert [c.name for c in classes] == [c.name.lower() for c in ip.CLASSES]
    assert [(c.description, tuple(c.color)) for c in classes] == [
        (c.description, c.color) for c in ip.CLASSES]
