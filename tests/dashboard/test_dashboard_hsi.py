"""The hsi page: a GeoTIFF or a zipped ENVI raster is classified into the class map
``domainvit predict`` writes (CRS intact, downloadable), with an RGB preview, a legend
and the spectrum of a chosen pixel; bad rasters give the readers' messages."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.io import MemoryFile
from streamlit.testing.v1 import AppTest

from domainvit import checkpoint as ckpt
from domainvit.config import validate_config
from domainvit.dashboard.launch import MODELS_ENV, app_path
from domainvit.datasets.hsi_scenes.conventions import SCENE_FILE
from domainvit.datasets.hsi_scenes.simulator import CLASSES
from domainvit.datasets.hsi_scenes.spectra import aviris_bands
from domainvit.datasets.raster.crop import crop_raster
from domainvit.datasets.registry import prepare
from domainvit.engine import build_model, load_inference_weights
from domainvit.registry import get_task
from domainvit.tasks.hsi.predict import classify_raster
from tests.conftest import write_geotiff
from tests.dashboard.conftest import (
    FIRST_RUN_TIMEOUT,
    HSI_MODEL,
    RUN_TIMEOUT,
    errors,
    upload,
)

KEY = "hsi-upload"


@pytest.fixture(scope="module")
def scene_tif(hsi_scene_dir):
    return hsi_scene_dir / SCENE_FILE


def _reference_map(models_dir, raster, tmp_path) -> np.ndarray:
    path = models_dir / "hsi-tiny" / "checkpoints" / "best.safetensors"
    cfg = validate_config(ckpt.load_checkpoint(path)[1]["config"], "test")
    model = build_model(get_task("hsi"), cfg)
    load_inference_weights(model, cfg, path)
    with torch.no_grad():
        written = classify_raster(model.eval(), cfg.data, raster, tmp_path)
    with rasterio.open(written[0]) as dataset:
        return dataset.read(1)


def _downloaded_map(at, downloaded):
    with MemoryFile(downloaded(at, "hsi-download")) as memory, memory.open() as dataset:
        return dataset.read(1), dataset.crs, dataset.transform, dataset.tags()


def test_a_geotiff_is_classified_previewed_and_downloaded_with_its_crs(
        open_page, downloaded, models_dir, scene_tif, tmp_path):
    at = upload(open_page("hsi", HSI_MODEL), KEY, scene_tif)
    assert not at.exception and not errors(at)
    # the training scene itself is in distribution: neither refused nor warned about
    assert not at.warning, [w.value for w in at.warning]

    labels, crs, transform, tags = _downloaded_map(at, downloaded)
    with rasterio.open(scene_tif) as source:
        assert crs == source.crs and transform == source.transform
        assert labels.shape == (source.height, source.width)
        nodata = (source.read() == 0).all(axis=0)
    np.testing.assert_array_equal(labels, _reference_map(models_dir, scene_tif, tmp_path))
    assert (labels[nodata] == 0).all() and (labels[~nodata] > 0).all()
    names = [c.name for c in CLASSES]
    assert [tags[f"class_{i + 1}"] for i in range(len(names))] == names

    # RGB preview from the bands nearest 640/550/470 nm; class map with its legend
    centres = aviris_bands()[0]
    bands = {box.key.split("-")[2]: box.value for box in at.selectbox
             if box.key.startswith("hsi-band-")}
    picked = [bands[colour] for colour in ("Red", "Green", "Blue")]
    assert picked == [int(np.argmin(np.abs(centres - nm))) for nm in (640, 550, 470)]
    assert [c for image in at.image for c in image.captions] == [
        "RGB preview", "Class map (black: nodata)"]
    legend = at.get("html")[0].value
    assert all(name in legend for name in names)
    counts = at.dataframe[0].value
    assert counts["pixels"].sum() == (labels > 0).sum() and "area (ha)" in counts.columns

    # the spectrum of a chosen pixel, with its class; a nodata pixel says so
    assert at.get("vega_lite_chart")
    row, col = 30, 40
    at.number_input[0].set_value(row)
    at.number_input[1].set_value(col).run()
    label = names[labels[row, col] - 1]
    assert any(f"(row {row}, column {col}): classified as {label}" in c.value
               for c in at.caption)
    at.number_input[0].set_value(0)
    at.number_input[1].set_value(0).run()
    assert any("(row 0, column 0) is nodata in the input" in c.value for c in at.caption)


def test_a_zipped_envi_raster_keeps_its_georeferencing(
        open_page, downloaded, scene_tif, tmp_path):
    folder = tmp_path / "envi"
    folder.mkdir()
    with rasterio.open(scene_tif) as source:
        profile = {**source.profile, "driver": "ENVI"}
        for key in ("tiled", "blockxsize", "blockysize", "compress", "predictor"):
            profile.pop(key, None)
        with rasterio.open(folder / "scene.img", "w", **profile) as target:
            target.write(source.read())
            for band in range(1, source.count + 1):
                target.set_band_description(band, source.descriptions[band - 1])
        crs, transform = source.crs, source.transform
    archive = tmp_path / "scene-envi.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, f"flight line/{path.name}")
    at = upload(open_page("hsi", HSI_MODEL), KEY, archive)
    assert not at.exception and not errors(at)
    labels, map_crs, map_transform, _ = _downloaded_map(at, downloaded)
    assert map_crs == crs and map_transform == transform
    assert labels.shape == (48, 48) and labels.max() > 0


@pytest.mark.parametrize("case, message", [
    ("truncated", "truncated.tif"),
    ("no crs", "has no coordinate reference system"),
    ("other bands", "13 bands, no wavelengths; the model reads the 220 AVIRIS"),
])
def test_bad_rasters_show_the_readers_message_and_no_map(open_page, scene_tif, tmp_path,
                                                         case, message):
    cube = np.random.default_rng(0).integers(500, 5000, (220, 24, 24)).astype(np.uint16)
    if case == "truncated":
        path = tmp_path / "truncated.tif"
        path.write_bytes(scene_tif.read_bytes()[: scene_tif.stat().st_size // 3])
    elif case == "no crs":
        path = write_geotiff(tmp_path / "nocrs.tif", cube, crs=None)
    else:
        path = write_geotiff(tmp_path / "thirteen.tif", cube[:13])
    at = upload(open_page("hsi", HSI_MODEL), KEY, path)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and message in shown[0], shown
    assert not at.get("download_button") and not at.image


# --- the input check and the confidence map, with the bundled Sentinel-2 model ------------

@pytest.fixture
def s2_models(models_dir) -> Path:
    """The page lists the bundled checkpoints, quickstart_s2 among them."""
    return models_dir


@pytest.fixture(scope="module")
def real_rasters(tmp_path_factory) -> dict[str, Path]:
    """A crop of the real Sentinel-2 L1C scene, and a 7-band Landsat-8 Level-1 stack in
    digital numbers and the 13 bands in digital numbers made from it."""
    folder = tmp_path_factory.mktemp("real")
    s2 = crop_raster(prepare("sentinel2") / "scene.tif", folder / "sentinel2_l1c.tif",
                     (700, 764, 700, 764))
    with rasterio.open(s2) as src:
        counts, profile = src.read(), src.profile
        band_tags = [src.tags(b + 1) for b in range(src.count)]
    # Landsat-8 OLI Level-1 rescaling: DN = (rho + 0.1) / 2e-5
    dn = np.clip(np.rint((counts / 10000.0 + 0.1) / 2e-5), 1, 65534).astype(np.uint16)
    landsat = folder / "landsat8_l1.tif"
    with rasterio.open(landsat, "w", **{**profile, "count": 7}) as dst:
        dst.write(dn[[0, 1, 2, 3, 8, 11, 12]])
    s2_dn = folder / "sentinel2_dn.tif"
    with rasterio.open(s2_dn, "w", **profile) as dst:
        dst.write(dn)
        dst.update_tags(wavelength_units="nm")
        for band, values in enumerate(band_tags, 1):
            dst.update_tags(band, **values)
    return {"s2": s2, "landsat": landsat, "s2_dn": s2_dn}


def _s2_page(s2_models, monkeypatch, name="quickstart_s2"):
    monkeypatch.setenv(MODELS_ENV, str(s2_models))
    at = AppTest.from_file(str(app_path()), default_timeout=RUN_TIMEOUT)
    at.run(timeout=FIRST_RUN_TIMEOUT)
    at.button(key="open-hsi").click().run()
    (choice,) = [o for o in at.selectbox(key="hsi-model").options
                 if name in o.split() and "bundled" in o]
    at.selectbox(key="hsi-model").select(choice).run()
    assert not at.exception, at.exception
    return at


def test_the_real_sentinel2_scene_is_shown_with_warnings_and_a_confidence_map(
        s2_models, real_rasters, monkeypatch, downloaded):
    at = upload(_s2_page(s2_models, monkeypatch), KEY, real_rasters["s2"])
    assert not at.exception and not errors(at)
    warned = [w.value for w in at.warning]
    assert any(w.startswith("Unlike the training data: ") and "spectra unlike the training "
               "pixels" in w for w in warned), warned
    assert any("ground sampling distance is 10 m" in w for w in warned), warned
    # the class map first; the toggle shows the confidence map and its mean
    assert "Class map (black: nodata)" in [c for i in at.image for c in i.captions]
    (view,) = [r for r in at.radio if r.key.startswith("hsi-view")]
    view.set_value("Confidence").run()
    captions = [c for i in at.image for c in i.captions]
    assert any(c.startswith("Confidence map") for c in captions), captions
    assert "Class map (black: nodata)" not in captions
    record = json.loads(downloaded(at, "hsi-download-sidecar"))
    mean = record["confidence"]["mean_max_probability"]
    assert any(f"Mean maximum probability {mean:.3f}" in c.value for c in at.caption)
    table = at.dataframe[1].value
    assert list(table.columns) == ["class", "pixels", "mean max probability",
                                   "mean normalised entropy"]
    assert table["pixels"].sum() == record["confidence"]["elements"] == 64 * 64
    assert record["input_check"]["outcome"] == "warn"
    with MemoryFile(downloaded(at, "hsi-download-confidence")) as memory, \
            memory.open() as dataset:
        confidence = dataset.read(1)
    assert confidence.shape == (64, 64) and 0 < np.nanmin(confidence) <= 1
    np.testing.assert_allclose(np.nanmean(confidence), mean, atol=1e-4)


def test_the_sentinel2_sample_is_mapped_by_the_land_cover_model_without_warnings(
        s2_models, monkeypatch, downloaded):
    """The page's real Sentinel-2 sample: the land-cover model (trained with an
    atmosphere) finds it inside its training distribution and maps the Atlantic in the
    window's right part as water; the old parcels model is warned about, with the note
    that its map may be unreliable."""
    from domainvit.dashboard.task_pages.hsi import S2_SAMPLE_LABEL

    at = _s2_page(s2_models, monkeypatch, "landcover_s2")
    at.radio(key="hsi-input").set_value(S2_SAMPLE_LABEL).run()
    assert not at.exception and not errors(at)
    assert not at.warning, [w.value for w in at.warning]
    labels, crs, _, tags = _downloaded_map(at, downloaded)
    assert labels.shape == (512, 512) and crs.to_epsg() == 32618
    names = {int(k.split("_")[1]): v for k, v in tags.items() if k.startswith("class_")}
    # the open Atlantic, east of the beach in the window's lower half
    sea = np.vectorize(names.get)(labels[256:, -40:])
    assert np.isin(sea, ["open-water", "turbid-water"]).mean() > 0.95

    at = _s2_page(s2_models, monkeypatch, "quickstart_s2")
    at.radio(key="hsi-input").set_value(S2_SAMPLE_LABEL).run()
    assert not at.exception and not errors(at)
    assert any(w.value.startswith("Unlike the training data: ")
               and w.value.endswith("may be unreliable there.") for w in at.warning)


def test_digital_numbers_are_refused_and_predicted_anyway_when_asked(
        s2_models, real_rasters, monkeypatch, downloaded):
    at = upload(_s2_page(s2_models, monkeypatch), KEY, real_rasters["s2_dn"])
    shown = errors(at)
    assert len(shown) == 1 and "no reflectance scale declared" in shown[0], shown
    assert "digital numbers" in shown[0] and "overflow" not in shown[0]
    assert not at.image
    at.checkbox(key="hsi-force").check().run()
    assert not at.exception and not errors(at)
    assert any(w.value.startswith("Predicted anyway, although the model refuses this input")
               for w in at.warning)
    record = json.loads(downloaded(at, "hsi-download-sidecar"))
    assert record["input_check"]["forced"] is True
    assert record["input_check"]["refusals"][0]["aspect"] == "units"


def test_a_landsat_stack_is_refused_by_band_set_even_when_forced(
        s2_models, real_rasters, monkeypatch):
    at = upload(_s2_page(s2_models, monkeypatch), KEY, real_rasters["landsat"])
    expected = ("landsat8_l1.tif: 7 bands, no wavelengths; the model reads the 13 "
                "Sentinel-2A MSI (simulated) bands at 443-2202 nm")
    for force in (False, True):
        if force:
            at.checkbox(key="hsi-force").check().run()
        shown = errors(at)
        assert len(shown) == 1 and expected in shown[0], shown
        assert "overflow" not in shown[0] and not at.image
