"""The hsi page: a GeoTIFF or a zipped ENVI raster is classified into the class map
``domainvit predict`` writes (CRS intact, downloadable), with an RGB preview, a legend
and the spectrum of a chosen pixel; bad rasters give the readers' messages."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import rasterio
import torch
from rasterio.io import MemoryFile

from domainvit import checkpoint as ckpt
from domainvit.config import validate_config
from domainvit.datasets.hsi_scenes.conventions import SCENE_FILE
from domainvit.datasets.hsi_scenes.simulator import CLASSES
from domainvit.datasets.hsi_scenes.spectra import aviris_bands
from domainvit.engine import build_model, load_inference_weights
from domainvit.registry import get_task
from domainvit.tasks.hsi.predict import classify_raster
from tests.conftest import write_geotiff
from tests.dashboard.conftest import HSI_MODEL, errors, upload

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
    ("other bands", "expects 220 bands"),
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
