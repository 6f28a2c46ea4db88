"""Reading hyperspectral rasters (GeoTIFF, ENVI, .npy, .mat), tiling, writing class maps.

Every file is made in tmp_path with rasterio, numpy or scipy and read back for real.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import scipy.io
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from domainvit.datasets.raster.bands import (
    check_bands,
    match_bands,
    require_crs,
    require_wavelengths,
)
from domainvit.datasets.raster.class_map import ClassMapWriter
from domainvit.datasets.raster.info import ARRAY_DRIVERS
from domainvit.datasets.raster.opening import open_raster
from domainvit.datasets.raster.tiling import iter_tiles, pad_to_context
from domainvit.datasets.raster.wavelengths import _gdal_wavelengths, _to_nm
from domainvit.errors import UserError

CRS_UTM = CRS.from_epsg(32633)
TRANSFORM = from_origin(500_000.0, 4_650_000.0, 30.0, 30.0)
WAVELENGTHS = [400.0, 550.5, 700.0, 1650.25]
#: Sentinel-2 band centres (nm), 13 bands at 443-2190 nm
SENTINEL2 = [442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5,
             1613.7, 2189.6]
#: an AVIRIS-like grid: 220 bands at 400-2499 nm
AVIRIS = list(np.linspace(400.0, 2499.0, 220))


def cube(bands: int = 4, height: int = 20, width: int = 30, seed: int = 0) -> np.ndarray:
    """Plausible uint16 reflectance DN (0.01 .. 0.8 at scale 10000), (B, H, W)."""
    return np.random.default_rng(seed).integers(100, 8000, (bands, height, width)).astype("uint16")


def write_geotiff(path: Path, data: np.ndarray, *, crs: CRS | None = CRS_UTM,
                  nodata: float | None = 0, wavelengths: list[float] | None = None,
                  descriptions: list[str] | None = None, tags: bool = True, **profile) -> Path:
    """A GeoTIFF in our convention: per-band wavelength/fwhm tags, descriptions, scale tag."""
    bands, height, width = data.shape
    options = dict(driver="GTiff", width=width, height=height, count=bands, dtype=data.dtype,
                   nodata=nodata, **profile)
    if crs is not None:
        options.update(crs=crs, transform=TRANSFORM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **options) as dataset:
            dataset.write(data)
            if wavelengths is not None and tags:
                dataset.update_tags(wavelength_units="nm", reflectance_scale="10000")
                for band, centre in enumerate(wavelengths, start=1):
                    dataset.update_tags(band, wavelength=f"{centre}", fwhm="10.0")
            for band, text in enumerate(descriptions or [], start=1):
                dataset.set_band_description(band, text)
    return path


def our_descriptions(wavelengths: list[float]) -> list[str]:
    return [f"B{index:03d} {centre:.1f} nm" for index, centre in enumerate(wavelengths, 1)]


# ---------------------------------------------------------------------------------------
# GeoTIFF


def test_geotiff_round_trip_keeps_crs_transform_nodata_and_wavelengths(tmp_path):
    data = cube()
    data[:, 0, 0] = 0  # nodata in every band: invalid
    data[1, 2, 3] = 0  # nodata in one band only: the pixel stays valid
    path = write_geotiff(tmp_path / "scene.tif", data, wavelengths=WAVELENGTHS,
                         descriptions=our_descriptions(WAVELENGTHS))
    with open_raster(path) as source:
        info = source.info
        assert (info.width, info.height, info.count) == (30, 20, 4)
        assert info.dtype == "uint16" and info.driver == "GTiff"
        assert info.crs == CRS_UTM and info.transform == TRANSFORM
        assert info.nodata == 0.0
        np.testing.assert_allclose(info.wavelengths, WAVELENGTHS)
        np.testing.assert_allclose(info.fwhm, [10.0] * 4)
        assert info.band_names[0] == "B001 400.0 nm"
        assert info.reflectance_scale == 10000.0
        reflectance, valid = source.read()
    assert reflectance.dtype == np.float32 and reflectance.shape == (4, 20, 30)
    assert valid.dtype == bool and valid.shape == (20, 30)
    assert not valid[0, 0] and valid[2, 3] and valid.sum() == 20 * 30 - 1
    expected = data.astype(np.float32) / 10000
    np.testing.assert_allclose(reflectance[:, valid], expected[:, valid], rtol=1e-6)
    assert np.all(reflectance[:, 0, 0] == 0) and reflectance[1, 2, 3] == 0
    assert np.isfinite(reflectance).all()


def test_nodata_at_the_integer_limit_is_not_taken_for_overflow(tmp_path):
    data = cube(bands=3, height=6, width=6)
    data[:, :2] = 65535  # a nodata collar, as many uint16 products have
    path = write_geotiff(tmp_path / "collar.tif", data, nodata=65535)
    with open_raster(path) as source:
        reflectance, valid = source.read()
    assert not valid[:2].any() and valid[2:].all()
    assert np.all(reflectance[:, :2] == 0)


class FakeEnviDataset:
    """What GDAL gives for an ENVI header when it sets no per-band wavelength tags."""

    count = 3
    descriptions = ("Band 1", "Band 2", "Band 3")

    def tag_namespaces(self):
        return ["ENVI"]

    def tags(self, band=0, ns=None):
        if ns == "ENVI":
            return {"wavelength": "{ 1.0, 1.5,\n 2.0 }", "wavelength_units": "Micrometers",
                    "fwhm": "{0.01, 0.01, 0.01}"}
        return {}


def test_envi_metadata_wavelength_list_is_the_fallback():
    wavelengths, fwhm = _gdal_wavelengths(FakeEnviDataset())
    np.testing.assert_allclose(wavelengths, [1000.0, 1500.0, 2000.0])
    np.testing.assert_allclose(fwhm, [10.0, 10.0, 10.0])


def test_wavelength_units():
    np.testing.assert_allclose(_to_nm([0.4, 2.5], None), [400.0, 2500.0])
    np.testing.assert_allclose(_to_nm([400.0, 2500.0], None), [400.0, 2500.0])
    np.testing.assert_allclose(_to_nm([0.4], "Nanometers"), [0.4])
    np.testing.assert_allclose(_to_nm([10000.0], "cm-1"), [1000.0])


def test_wavelengths_from_band_descriptions(tmp_path):
    centres = [442.7, 492.4, 559.8]
    descriptions = [f"B{index:02d} {centre} nm" for index, centre in enumerate(centres, 1)]
    path = write_geotiff(tmp_path / "s2.tif", cube(bands=3), descriptions=descriptions)
    with open_raster(path) as source:
        np.testing.assert_allclose(source.info.wavelengths, centres)
        assert source.info.band_names == descriptions


def test_caller_wavelengths_override_and_sidecar_fills_in(tmp_path):
    path = write_geotiff(tmp_path / "bare.tif", cube(bands=3))
    with open_raster(path) as source:
        assert source.info.wavelengths is None
        with pytest.raises(UserError, match=r"bare\.bands\.json"):
            require_wavelengths(source.info)
    with open_raster(path, wavelengths=[1.0, 1.1, 1.2]) as source:  # micrometers
        np.testing.assert_allclose(source.info.wavelengths, [1000.0, 1100.0, 1200.0])
    (tmp_path / "bare.bands.txt").write_text("# centres\n500, 600\n700\n")
    with open_raster(path) as source:
        np.testing.assert_allclose(require_wavelengths(source.info), [500, 600, 700])
    with pytest.raises(UserError, match="2 wavelengths for a raster of 3 bands"):
        open_raster(path, wavelengths=[500, 600])


def test_window_reads_equal_slices_of_a_full_read(tmp_path):
    data = cube(bands=5, height=37, width=41, seed=2)
    data[:, 5:9, 10:14] = 0
    path = write_geotiff(tmp_path / "scene.tif", data, tiled=True, blockxsize=16,
                         blockysize=16)
    with open_raster(path) as source:
        full, full_valid = source.read()
        for window in (Window(0, 0, 41, 37), Window(3, 4, 10, 7), Window(40, 36, 1, 1),
                       Window(8, 2, 20, 30)):
            part, part_valid = source.read(window)
            rows, cols = window.toslices()
            np.testing.assert_array_equal(part, full[:, rows, cols])
            np.testing.assert_array_equal(part_valid, full_valid[rows, cols])
        part, _ = source.read(((4, 11), (3, 13)), bands=[4, 0])
        np.testing.assert_array_equal(part, full[[4, 0], 4:11, 3:13])
        with pytest.raises(ValueError, match="not inside"):
            source.read(Window(35, 0, 10, 5))
        with pytest.raises(ValueError, match="0-based"):
            source.read(bands=[5])


def test_window_read_asks_gdal_for_the_window_only(tmp_path):
    path = write_geotiff(tmp_path / "scene.tif", cube(height=64, width=64))
    with open_raster(path) as source:
        requested = []
        dataset = source._dataset

        class Spy:
            def __getattr__(self, name):
                return getattr(dataset, name)

            def read(self, indexes, window=None, **kwargs):
                requested.append(window)
                return dataset.read(indexes, window=window, **kwargs)

        source._dataset = Spy()
        source.read(Window(10, 20, 8, 4))
        source._dataset = dataset
    assert requested == [Window(10, 20, 8, 4)]


# ---------------------------------------------------------------------------------------
# ENVI, .npy, .mat


def write_envi(path: Path, data: np.ndarray, wavelengths_um: list[float]) -> Path:
    bands, height, width = data.shape
    with rasterio.open(path, "w", driver="ENVI", width=width, height=height, count=bands,
                       dtype=data.dtype, crs=CRS_UTM, transform=TRANSFORM) as dataset:
        dataset.write(data)
        dataset.update_tags(ns="ENVI", wavelength="{" + ", ".join(map(str, wavelengths_um)) + "}",
                            wavelength_units="Micrometers")
    return path


def test_envi_pair_read_by_either_file_with_wavelengths_in_nm(tmp_path):
    data = cube(bands=3, height=6, width=5)
    data_path = write_envi(tmp_path / "flight.img", data, [0.45, 0.55, 0.65])
    header = tmp_path / "flight.hdr"
    assert "wavelength = {0.45, 0.55, 0.65}" in header.read_text()
    for given in (data_path, header):
        with open_raster(given) as source:
            info = source.info
            assert info.driver == "ENVI" and info.path == data_path
            assert info.crs == CRS_UTM and info.transform == TRANSFORM
            np.testing.assert_allclose(info.wavelengths, [450.0, 550.0, 650.0])
            reflectance, valid = source.read()
        np.testing.assert_allclose(reflectance, data / 10000, rtol=1e-6)
        assert valid.all()


def test_envi_header_without_data_file_is_a_user_error(tmp_path):
    (tmp_path / "lonely.hdr").write_text("ENVI\nsamples = 2\nlines = 2\nbands = 1\n")
    with pytest.raises(UserError, match="no data file"):
        open_raster(tmp_path / "lonely.hdr")


def test_npy_layouts_give_the_same_cube(tmp_path):
    data = cube(bands=6, height=9, width=7, seed=3)
    np.save(tmp_path / "hwb.npy", np.moveaxis(data, 0, -1))  # (H, W, B) like Indian Pines
    np.save(tmp_path / "bhw.npy", data)
    (tmp_path / "hwb.bands.json").write_text(json.dumps(
        {"wavelengths": [0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "units": "um",
         "band_names": list("abcdef")}))
    with open_raster(tmp_path / "hwb.npy") as hwb, \
            open_raster(tmp_path / "bhw.npy", layout="BHW",
                        wavelengths=[400, 500, 600, 700, 800, 900]) as bhw:
        for source in (hwb, bhw):
            info = source.info
            assert (info.count, info.height, info.width) == (6, 9, 7)
            assert info.crs is None and info.driver in ARRAY_DRIVERS
            np.testing.assert_allclose(info.wavelengths, [400, 500, 600, 700, 800, 900])
            require_crs(info)  # arrays never carry a CRS; allowed
        assert hwb.info.band_names == list("abcdef")
        window = Window(2, 3, 4, 5)
        np.testing.assert_array_equal(hwb.read(window)[0], bhw.read(window)[0])
        np.testing.assert_array_equal(hwb.read(bands=[5, 1])[0], bhw.read(bands=[5, 1])[0])
        np.testing.assert_allclose(hwb.read()[0], data / 10000, rtol=1e-6)


def test_npy_wavelength_count_matching_the_other_layout_is_pointed_out(tmp_path):
    np.save(tmp_path / "cube.npy", cube(bands=6, height=9, width=7))  # (B, H, W) on disk
    with pytest.raises(UserError, match="layout='BHW'"):
        open_raster(tmp_path / "cube.npy", wavelengths=list(range(400, 1000, 100)))


def test_npy_problems_are_user_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(UserError, match="expected a 3D cube"):
        open_raster(tmp_path / "flat.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 5, 3), dtype="uint16"))
    with pytest.raises(UserError, match="empty"):
        open_raster(tmp_path / "empty.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(UserError, match="not a .npy array"):
        open_raster(tmp_path / "text.npy")
    np.save(tmp_path / "nan.npy", np.full((3, 3, 2), np.nan, dtype="float32"))
    with pytest.raises(UserError, match="no valid pixel"):
        open_raster(tmp_path / "nan.npy")


def test_mat_cube_is_found_or_named_by_key(tmp_path):
    data = np.moveaxis(cube(bands=4, height=5, width=6), 0, -1)
    scipy.io.savemat(tmp_path / "pines.mat", {"indian_pines": data,
                                              "gt": np.zeros((5, 6), dtype="uint8")})
    with open_raster(tmp_path / "pines.mat", wavelengths=WAVELENGTHS) as source:
        assert source.info.driver == "MAT" and source.info.shape == (4, 5, 6)
        np.testing.assert_allclose(source.read()[0], np.moveaxis(data, -1, 0) / 10000,
                                   rtol=1e-6)
    scipy.io.savemat(tmp_path / "two.mat", {"a": data, "b": data + 1})
    with pytest.raises(UserError, match="several 3D arrays"):
        open_raster(tmp_path / "two.mat")
    with open_raster(tmp_path / "two.mat", key="b") as source:
        assert source.read()[0][0, 0, 0] == pytest.approx((data[0, 0, 0] + 1) / 10000)
    with pytest.raises(UserError, match="no variable 'c'"):
        open_raster(tmp_path / "two.mat", key="c")


def test_matlab_v73_file_gets_a_fix_not_a_traceback(tmp_path):
    path = tmp_path / "salinas.mat"
    try:
        import h5py
    except ImportError:
        header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 2024 HDF5"
        path.write_bytes(header.ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + b"\0" * 1024)
    else:
        with h5py.File(path, "w", userblock_size=512) as file:
            file["salinas"] = np.zeros((4, 5, 6))
    with pytest.raises(UserError, match=r"v7\.3.*'-v7'.*h5py"):
        open_raster(path)


# ---------------------------------------------------------------------------------------
# Checks


def test_band_mismatch_names_the_expected_bands(tmp_path):
    path = write_geotiff(tmp_path / "s2.tif", cube(bands=13, height=4, width=4),
                         wavelengths=SENTINEL2)
    with open_raster(path) as source:
        with pytest.raises(UserError) as caught:
            check_bands(source.info, AVIRIS, sensor="AVIRIS")
        message = str(caught.value)
        assert "the checkpoint expects 220 bands at 400-2499 nm (AVIRIS)" in message
        assert "has 13 bands at 443-2190 nm" in message
        shifted = list(SENTINEL2)
        shifted[4] += 20
        with pytest.raises(UserError, match=r"band 5 is at 704\.1 nm, expected 724\.1 nm"):
            check_bands(source.info, shifted)
        np.testing.assert_array_equal(check_bands(source.info, SENTINEL2), np.arange(13))
        subset = check_bands(source.info, SENTINEL2[2:5], allow_subset=True)
        np.testing.assert_array_equal(subset, [2, 3, 4])
        with pytest.raises(UserError, match="could be subset"):
            check_bands(source.info, SENTINEL2[2:5])
        assert match_bands(source.info, [443.0, 3000.0]) is None


def test_band_count_match_without_wavelengths_warns(tmp_path):
    path = write_geotiff(tmp_path / "bare.tif", cube(bands=4, height=3, width=3))
    with open_raster(path) as source:
        with pytest.warns(UserWarning, match="does not say which wavelengths"):
            np.testing.assert_array_equal(check_bands(source.info, WAVELENGTHS), np.arange(4))
        with pytest.raises(UserError, match="expects 13 bands"):
            check_bands(source.info, SENTINEL2)


def test_geotiff_without_crs_is_rejected_by_require_crs(tmp_path):
    path = write_geotiff(tmp_path / "nocrs.tif", cube(height=4, width=4), crs=None)
    with open_raster(path) as source:
        assert source.info.crs is None
        with pytest.raises(UserError, match=r"not be georeferenced.*gdal_edit\.py -a_srs"):
            require_crs(source.info)
    with open_raster(write_geotiff(tmp_path / "crs.tif", cube(height=4, width=4))) as source:
        require_crs(source.info)


def test_all_nodata_raster_is_a_user_error(tmp_path):
    path = write_geotiff(tmp_path / "empty.tif", np.zeros((3, 8, 8), dtype="uint16"))
    with pytest.raises(UserError, match=r"no valid pixel.*nodata \(0\)"):
        open_raster(path)


def test_uint16_overflow_is_reported_and_values_are_cast_before_scaling(tmp_path):
    data = cube(bands=2, height=10, width=10)
    data[1, :5] = 60000  # 6.0 after scaling: an overflow, half the pixels
    with pytest.raises(UserError) as caught:  # the file declares its scale: not units
        open_raster(write_geotiff(tmp_path / "wrapped.tif", data, wavelengths=[500, 600]))
    message = str(caught.value)
    assert "50.00% of the valid pixels" in message and "(50 of 100)" in message
    assert "overflow" in message and "reflectance up to 6.00" in message

    data[1, :5] = 12000  # 1.2: bright but plausible
    with open_raster(write_geotiff(tmp_path / "bright.tif", data)) as source:
        reflectance, valid = source.read()
    assert valid.all()
    assert reflectance[1, 0, 0] == pytest.approx(1.2)

    data[1, :5] = 65535  # saturated at the type's limit (1.6 would also be out of range)
    with pytest.raises(UserError, match="uint16 limit 65535"):
        open_raster(write_geotiff(tmp_path / "saturated.tif", data))


def test_int16_wraparound_and_float_dn_are_reported(tmp_path):
    data = cube(bands=2, height=10, width=10).astype("int16")
    data[0, 3:] = -25536  # 40000 stored as int16
    with pytest.raises(UserError, match="70.00%.*wrapped around to negative"):
        open_raster(write_geotiff(tmp_path / "int16.tif", data, nodata=None))
    floats = cube(bands=2, height=10, width=10).astype("float32")  # DN stored as float
    with pytest.raises(UserError, match="pass reflectance_scale"):
        open_raster(write_geotiff(tmp_path / "float.tif", floats, nodata=None))
    with open_raster(tmp_path / "float.tif", reflectance_scale=10000) as source:
        assert source.read()[1].all()


def test_a_few_suspect_pixels_become_nodata_with_a_warning(tmp_path):
    data = cube(bands=2, height=50, width=50)
    data[0, 7, 9] = 65535
    path = write_geotiff(tmp_path / "speck.tif", data)
    with pytest.warns(UserWarning, match="treated as nodata"):
        source = open_raster(path, max_bad_fraction=0.01)
    with source:
        reflectance, valid = source.read()
    assert not valid[7, 9] and valid.sum() == 50 * 50 - 1
    assert np.all(reflectance[:, 7, 9] == 0)


def test_missing_junk_and_truncated_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        open_raster(tmp_path / "missing.tif")
    (tmp_path / "junk.tif").write_bytes(b"definitely not a tiff" * 20)
    with pytest.raises(UserError, match="not a raster GDAL can read"):
        open_raster(tmp_path / "junk.tif")
    path = write_geotiff(tmp_path / "cut.tif", cube(bands=4, height=64, width=64))
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(UserError, match="truncated or corrupted"):
        with open_raster(path, check_valid=False) as source:
            source.read()
    with pytest.raises(UserError, match="truncated or corrupted"):
        open_raster(path)


# ---------------------------------------------------------------------------------------
# Tiling


@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [
    (1, 1, 4, 2), (17, 23, 8, 3), (64, 64, 16, 0), (5, 300, 7, 10), (30, 40, (8, 16), 4),
])
def test_tile_cores_partition_the_raster(height, width, tile, overlap):
    covered = np.zeros((height, width), dtype=int)
    for item in iter_tiles(height, width, tile, overlap):
        core, read = item.core_window, item.read_window
        covered[core.toslices()] += 1
        # the read window is the core grown by `overlap`, clipped at the raster edges
        assert read.row_off == max(0, core.row_off - overlap)
        assert read.col_off == max(0, core.col_off - overlap)
        assert read.row_off + read.height == min(height, core.row_off + core.height + overlap)
        assert read.col_off + read.width == min(width, core.col_off + core.width + overlap)
        assert item.core_offset == (core.row_off - read.row_off, core.col_off - read.col_off)
        # padding gives every core its full margin, with the core where the model expects it
        rows = np.arange(height)[:, None] * 1000 + np.arange(width)[None, :]
        block = rows[read.toslices()]
        padded = pad_to_context(block, item, overlap)
        assert padded.shape == (core.height + 2 * overlap, core.width + 2 * overlap)
        core_rows = slice(overlap, overlap + core.height)
        core_cols = slice(overlap, overlap + core.width)
        np.testing.assert_array_equal(padded[core_rows, core_cols], rows[core.toslices()])
        np.testing.assert_array_equal(block[item.core_slices], rows[core.toslices()])
    assert np.all(covered == 1)


def test_tiles_reject_bad_sizes():
    with pytest.raises(UserError):
        list(iter_tiles(10, 10, 0, 1))
    with pytest.raises(UserError):
        list(iter_tiles(10, 10, 4, -1))


# ---------------------------------------------------------------------------------------
# Writing


CLASSES = ["maize early", "soybean", "woods"]
COLORS = [(255, 200, 0), (0, 160, 80), (20, 90, 20)]


def test_class_map_has_the_input_grid_colours_and_class_names(tmp_path):
    source_path = write_geotiff(tmp_path / "scene.tif", cube(height=20, width=30))
    with open_raster(source_path) as source:
        info = source.info
    labels = np.random.default_rng(1).integers(1, 4, (20, 30)).astype(np.uint8)
    probabilities = np.random.default_rng(2).random((3, 20, 30)).astype(np.float32)
    valid = np.ones((20, 30), dtype=bool)
    valid[0, :4] = False
    out, probs_out = tmp_path / "out" / "map.tif", tmp_path / "out" / "probs.tif"
    with ClassMapWriter(out, info, CLASSES, COLORS, probabilities_path=probs_out) as writer:
        for tile in iter_tiles(20, 30, 16, 2):
            rows, cols = tile.core_window.toslices()
            writer.write(tile.core_window, labels[rows, cols], probabilities[:, rows, cols],
                         valid=valid[rows, cols])
        assert not out.exists()  # only the temporary exists until the block ends
    assert sorted(path.name for path in out.parent.iterdir()) == ["map.tif", "probs.tif"]
    with rasterio.open(out) as written:
        assert written.count == 1 and written.dtypes[0] == "uint8"
        assert written.crs == CRS_UTM and written.transform == TRANSFORM
        assert written.nodata == 0
        assert written.profile["tiled"] and written.compression.name == "deflate"
        colormap = written.colormap(1)
        assert colormap[1] == (255, 200, 0, 255) and colormap[3] == (20, 90, 20, 255)
        assert colormap[0][3] == 0
        tags = written.tags()
        assert tags["class_1"] == "maize early" and tags["class_3"] == "woods"
        result = written.read(1)
    np.testing.assert_array_equal(result[valid], labels[valid])
    assert np.all(result[~valid] == 0)
    with rasterio.open(probs_out) as written:
        assert written.count == 3 and written.dtypes[0] == "float32"
        assert list(written.descriptions) == CLASSES and np.isnan(written.nodata)
        stored = written.read()
    np.testing.assert_array_equal(stored[:, valid], probabilities[:, valid])
    assert np.isnan(stored[:, ~valid]).all()


def test_the_confidence_map_is_a_float_band_on_the_input_grid(tmp_path):
    source_path = write_geotiff(tmp_path / "scene.tif", cube(height=20, width=30))
    with open_raster(source_path) as source:
        info = source.info
    labels = np.ones((20, 30), np.uint8)
    confidence = np.random.default_rng(3).random((20, 30)).astype(np.float32)
    valid = np.ones((20, 30), dtype=bool)
    valid[5, 5:9] = False
    out, conf_out = tmp_path / "out" / "map.tif", tmp_path / "out" / "map.confidence.tif"
    with ClassMapWriter(out, info, CLASSES, COLORS, confidence_path=conf_out) as writer:
        for tile in iter_tiles(20, 30, 16, 2):
            rows, cols = tile.core_window.toslices()
            writer.write(tile.core_window, labels[rows, cols], valid=valid[rows, cols],
                         confidence=confidence[rows, cols])
        assert not conf_out.exists()
    with rasterio.open(conf_out) as written:
        assert written.count == 1 and written.dtypes[0] == "float32"
        assert written.crs == CRS_UTM and written.transform == TRANSFORM
        assert np.isnan(written.nodata)
        stored = written.read(1)
    np.testing.assert_array_equal(stored[valid], confidence[valid])
    assert np.isnan(stored[~valid]).all()
    with pytest.raises(UserError, match="different file names"):
        ClassMapWriter(out, info, CLASSES, COLORS, confidence_path=out)


def test_values_that_are_not_reflectance_under_an_assumed_scale_are_named_as_units(tmp_path):
    # uint16 counts in the tens of thousands, no reflectance scale declared: the reader
    # assumes reflectance x 10000 and names digital numbers as the cause, not overflow
    data = np.random.default_rng(4).integers(5000, 30000, (3, 10, 10)).astype("uint16")
    path = write_geotiff(tmp_path / "counts.tif", data)
    with pytest.raises(UserError) as caught:
        open_raster(path)
    message = str(caught.value)
    assert "no reflectance scale declared" in message and "digital numbers" in message
    assert "overflowed" not in message
    # the checks that decide what the values mean read them before the overflow guard
    with open_raster(path, check_valid=False) as source:
        assert not source.info.scale_declared
        assert source.info.reflectance_scale_source == "assumed"
        values, valid = source.read(check_range=False)
        assert valid.all() and values.max() == pytest.approx(data.max() / 10000)
        spectra = source.sample()
        assert spectra.shape == (100, 3)
        np.testing.assert_allclose(np.sort(spectra[:, 0]),
                                   np.sort(data[0].ravel() / 10000), rtol=1e-6)
        with pytest.raises(UserError, match="digital numbers"):
            source.check_has_valid_pixels()
        source.reflectance_range = (-np.inf, np.inf)  # predict anyway
        source.check_has_valid_pixels()
        assert source.read()[1].all()
    with open_raster(path, reflectance_scale=100000) as source:
        assert source.info.scale_declared and source.info.reflectance_scale_source == "given"


def test_sample_spreads_blocks_over_a_large_raster_and_keeps_saturation_invalid(tmp_path):
    data = cube(bands=2, height=300, width=400)
    data[:, 150:, :] = 0  # nodata in the lower half
    data[0, 0:2, 0:2] = 65535  # saturated: never a valid value
    path = write_geotiff(tmp_path / "large.tif", data, wavelengths=[500, 600])
    with open_raster(path, check_valid=False) as source:
        assert source.info.scale_declared
        spectra = source.sample(max_pixels=64 * 64, block=16)
    assert 0 < len(spectra) <= 64 * 64 and spectra.shape[1] == 2
    assert spectra.max() <= 0.8  # no saturated value, no nodata
    assert (spectra > 0).all()
    # blocks from the top and bottom rows: about half of them nodata
    assert len(spectra) < 0.75 * 64 * 64


def test_sensor_and_band_units_are_read_from_the_metadata(tmp_path):
    path = write_geotiff(tmp_path / "radiance.tif", cube(bands=2, height=4, width=4),
                         wavelengths=[500, 600])
    with rasterio.open(path, "r+") as dataset:
        dataset.update_tags(sensor="AVIRIS-NG")
        dataset.units = ["W m-2 sr-1 um-1"] * 2
    with open_raster(path) as source:
        assert source.info.sensor == "AVIRIS-NG"
        assert source.info.units == ("W m-2 sr-1 um-1",) * 2


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_class_map_of_an_npy_input_has_no_crs(tmp_path):
    np.save(tmp_path / "cube.npy", np.moveaxis(cube(height=6, width=5), 0, -1))
    with open_raster(tmp_path / "cube.npy") as source:
        info = source.info
    with ClassMapWriter(tmp_path / "map.tif", info, CLASSES, COLORS) as writer:
        writer.write(Window(0, 0, 5, 6), np.ones((6, 5), dtype=np.uint8))
    with rasterio.open(tmp_path / "map.tif") as written:
        assert written.crs is None and written.read(1).shape == (6, 5)


def test_an_exception_in_the_block_leaves_nothing_behind(tmp_path):
    source_path = write_geotiff(tmp_path / "scene.tif", cube(height=20, width=30))
    with open_raster(source_path) as source:
        info = source.info
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="model crashed"):
        with ClassMapWriter(out / "map.tif", info, CLASSES, COLORS,
                            probabilities_path=out / "probs.tif") as writer:
            writer.write(Window(0, 0, 30, 10), np.ones((10, 30), dtype=np.uint8),
                         np.zeros((3, 10, 30), dtype=np.float32))
            raise RuntimeError("model crashed")
    assert list(out.iterdir()) == []


def test_writer_refuses_to_overwrite_its_input_and_bad_labels(tmp_path):
    source_path = write_geotiff(tmp_path / "scene.tif", cube(height=8, width=8))
    with open_raster(source_path) as source:
        info = source.info
    with pytest.raises(UserError, match="refusing to overwrite the input"):
        ClassMapWriter(tmp_path / "scene.tif", info, CLASSES, COLORS)
    with pytest.raises(UserError, match=r"\.tif or \.tiff"):
        ClassMapWriter(tmp_path / "map.png", info, CLASSES, COLORS)
    with pytest.raises(ValueError, match="0..3"):
        with ClassMapWriter(tmp_path / "map.tif", info, CLASSES, COLORS) as writer:
            writer.write(Window(0, 0, 8, 8), np.full((8, 8), 4, dtype=np.uint8))
    assert not (tmp_path / "map.tif").exists()
