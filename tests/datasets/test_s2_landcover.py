"""The simulated Sentinel-2 land-cover scene (s2-landcover): class spectra in physically
sensible ranges, cloud TOA spectra, and the builder's files, tags, split and determinism
(on a small mosaic so the tests run in seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pytest.importorskip("scipy")
pytest.importorskip("prosail")

from domainvit.datasets.hsi_scenes import landcover  # noqa: E402
from domainvit.datasets.hsi_scenes.conventions import (  # noqa: E402
    CLASSES_FILE,
    LABELS_FILE,
    META_FILE,
    S2_LANDCOVER,
    SCENE_FILE,
    SPLIT_FILE,
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VAL,
    TILES_FILE,
)
from domainvit.datasets.hsi_scenes.landcover import (  # noqa: E402
    CLASS_NAMES,
    CLASSES,
    WAVELENGTHS,
    class_banks,
    cloud_toa,
    water_reflectance,
)
from domainvit.datasets.hsi_scenes.landcover_scene import (  # noqa: E402
    build_s2_landcover,
    make_landcover_scene,
)
from domainvit.datasets.hsi_scenes.sensors import S2_BAND_NAMES  # noqa: E402
from domainvit.errors import UserError  # noqa: E402

B = {name: i for i, name in enumerate(S2_BAND_NAMES)}
#: the bands of the written scene.tif (B10 is left out: L2A products drop it)
WRITTEN = [name for name in S2_BAND_NAMES if name != "B10"]
W = {name: i for i, name in enumerate(WRITTEN)}
SMALL = {"tile": 64, "rows": 2, "cols": 4, "bank_size": 40, "test_tiles": 2, "pad": 32,
         "seed": 7}


@pytest.fixture(scope="module")
def banks():
    return class_banks(60, 1)


def test_classes_are_the_eleven_in_order():
    assert CLASS_NAMES == ("open-water", "turbid-water", "forest", "green-cropland",
                           "grassland", "bare-soil", "sand-beach", "wetland", "built-up",
                           "cloud", "cloud-shadow")
    for _name, description, colour in CLASSES:
        assert len(description) > 20
        assert len(colour) == 3 and all(0 <= c <= 255 for c in colour)
    assert len({c for _, _, c in CLASSES}) == 11


def test_water_model_pure_water_is_dark_and_sediment_brightens_red_and_nir():
    clear = water_reflectance(0.1, 0.01, 0.0)[0]
    turbid = water_reflectance(5.0, 0.3, 100.0)[0]
    at = {nm: int(nm - WAVELENGTHS[0]) for nm in (443, 560, 665, 865, 1600)}
    assert clear[at[443]] > clear[at[665]] and clear[at[865]] < 0.002
    assert clear[at[1600]] < 1e-4
    assert turbid[at[665]] > 5 * clear[at[665]] and turbid[at[865]] > 0.01


def test_class_spectra_lie_in_physical_ranges(banks):
    med = {k: np.median(v, axis=0) for k, v in banks.items()}
    for water in ("open-water", "turbid-water"):
        assert med[water][B["B08"]] < 0.05 and med[water][B["B11"]] < 0.03
    assert med["open-water"][B["B02"]] > med["open-water"][B["B08"]]
    assert np.percentile(banks["open-water"][:, B["B08"]], 90) < 0.05
    assert med["turbid-water"][B["B04"]] > 2 * med["open-water"][B["B04"]]
    for veg in ("forest", "green-cropland", "grassland"):
        ratio = banks[veg][:, B["B08"]] / banks[veg][:, B["B04"]]
        assert np.median(ratio) > 3, veg
    assert np.median(banks["forest"][:, B["B08"]] / banks["forest"][:, B["B04"]]) > 8
    assert med["forest"][B["B08"]] < med["green-cropland"][B["B08"]]
    assert med["sand-beach"][B["B04"]] > med["bare-soil"][B["B04"]]
    assert med["sand-beach"][B["B11"]] > med["bare-soil"][B["B11"]]
    assert med["bare-soil"][B["B11"]] > med["bare-soil"][B["B04"]]  # soils rise to the SWIR
    ndvi = (banks["bare-soil"][:, B["B08"]] - banks["bare-soil"][:, B["B04"]]) / (
        banks["bare-soil"][:, B["B08"]] + banks["bare-soil"][:, B["B04"]])
    assert np.median(ndvi) < 0.3
    # broad within-class variability: soil brightness spans a factor of two or more
    p10, p90 = np.percentile(banks["bare-soil"][:, B["B04"]], [10, 90])
    assert p90 > 2 * p10
    for k, v in banks.items():
        assert np.all(v >= 0) and np.all(v <= 1), k


def test_cloud_toa_is_bright_flat_and_high_tops_are_bright_in_the_cirrus_band():
    rng = np.random.default_rng(0)
    low, _ = cloud_toa(20, rng, 2.5, 2.2, np.full(20, 1.5))
    high, _ = cloud_toa(20, rng, 2.5, 2.2, np.full(20, 9.0))
    for c in (low, high):
        assert np.all(c[:, B["B04"]] >= 0.3)
        assert np.all(c[:, B["B12"]] < c[:, B["B04"]])
        assert np.all(np.abs(c[:, B["B04"]] - c[:, B["B08"]]) < 0.1 * c[:, B["B04"]])
    assert np.median(high[:, B["B10"]]) > 0.15 > 0.05 > np.median(low[:, B["B10"]])


def test_missing_prosail_is_a_user_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_prosail(name, *args, **kwargs):
        if name == "prosail":
            raise ImportError("no prosail")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_prosail)
    with pytest.raises(UserError, match=r"domainvit\[geo\]"):
        landcover.require_prosail()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s2lc")
    build_s2_landcover(folder, None, **SMALL)
    return folder


def test_builder_writes_the_files_with_the_s2_band_conventions(built):
    for name in (SCENE_FILE, LABELS_FILE, SPLIT_FILE, CLASSES_FILE, META_FILE, TILES_FILE):
        assert (built / name).is_file(), name
    with rasterio.open(built / SCENE_FILE) as src:
        # the 12 bands L1C and L2A share: B10 (cirrus) is left out
        assert src.count == 12 and src.dtypes[0] == "uint16" and src.shape == (128, 256)
        assert all(not d.startswith("B10") for d in src.descriptions)
        assert src.descriptions[1] == "B02 492.4 nm" and src.descriptions[8] == "B8A 864.7 nm"
        assert src.tags()["reflectance_scale"] == "10000"
        assert src.tags()["wavelength_units"] == "nm"
        assert src.tags(2)["wavelength"] == "492.400" and src.tags(2)["resolution_m"] == "10"
        data = src.read()
    assert data.min() >= 1
    with rasterio.open(built / LABELS_FILE) as src:
        labels = src.read(1)
    with rasterio.open(built / SPLIT_FILE) as src:
        split = src.read(1)
        assert src.tags()["code_test"] == str(SPLIT_TEST)
    assert set(np.unique(labels)) <= set(range(12))
    assert set(np.unique(split)) <= {0, SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST}
    assert np.all(labels[split > 0] > 0)
    classes = json.loads((built / CLASSES_FILE).read_text())
    assert [c["name"] for c in classes] == list(CLASS_NAMES)
    meta = json.loads((built / META_FILE).read_text())
    assert meta["name"] == S2_LANDCOVER and meta["band_names"] == WRITTEN
    tiles = json.loads((built / TILES_FILE).read_text())
    assert {t["level"] for t in tiles} == {"L1C", "L2A"} and len(tiles) == 8
    for t in meta["tiles"]:
        assert 20 <= t["atmosphere"]["sun_zenith"] <= 70
        assert ("correction_atmosphere" in t) == (t["level"] == "L2A")


def test_split_reserves_whole_tiles_for_test_with_a_guard_margin(built):
    from scipy import ndimage

    meta = json.loads((built / META_FILE).read_text())
    with rasterio.open(built / SPLIT_FILE) as src:
        split = src.read(1)
    tiles = meta["tiles"]
    test_tiles = [t for t in tiles if t["split"] == "test"]
    assert {t["level"] for t in test_tiles} == {"L1C", "L2A"}
    in_test = np.zeros(split.shape, bool)
    for t in test_tiles:
        in_test[t["rows"][0]:t["rows"][1], t["cols"][0]:t["cols"][1]] = True
    assert np.all(np.isin(split[in_test], (0, SPLIT_TEST)))
    assert not np.any(split[~in_test] == SPLIT_TEST)
    margin = meta["split"]["margin"]
    near = ndimage.binary_dilation(in_test, np.ones((2 * margin + 1,) * 2, bool)) & ~in_test
    assert not np.any(np.isin(split[near], (SPLIT_TRAIN, SPLIT_VAL)))
    for name, counts in meta["split"]["per_class"].items():
        assert counts["train"] > 0 and counts["test"] > 0, name


def test_l1c_tiles_carry_the_atmosphere_and_l2a_tiles_do_not(built):
    with rasterio.open(built / SCENE_FILE) as src:
        data = src.read().astype(np.float64) / 10000
    with rasterio.open(built / LABELS_FILE) as src:
        labels = src.read(1)
    tiles = json.loads((built / META_FILE).read_text())["tiles"]
    means = {}
    for level in ("L1C", "L2A"):
        mask = np.zeros(labels.shape, bool)
        for t in tiles:
            if t["level"] == level:
                mask[t["rows"][0]:t["rows"][1], t["cols"][0]:t["cols"][1]] = True
        water = mask & (labels == 1)
        veg = mask & np.isin(labels, (3, 4))
        means[level] = (data[:, water].mean(axis=1), data[:, veg].mean(axis=1))
    (water_l1c, veg_l1c), (water_l2a, veg_l2a) = means["L1C"], means["L2A"]
    assert water_l1c[W["B01"]] > 0.06 > water_l2a[W["B01"]]      # Rayleigh path
    assert water_l1c[W["B08"]] < 0.06
    assert veg_l1c[W["B09"]] < 0.7 * veg_l2a[W["B09"]]             # water vapour
    assert veg_l1c[W["B08"]] > 3 * veg_l1c[W["B04"]]


def test_the_scene_is_deterministic_for_a_seed():
    a = make_landcover_scene(**SMALL)
    b = make_landcover_scene(**SMALL)
    np.testing.assert_array_equal(a.reflectance, b.reflectance)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.split, b.split)
    c = make_landcover_scene(**{**SMALL, "seed": 8})
    assert not np.array_equal(a.labels, c.labels)
