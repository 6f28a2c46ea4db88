"""A Sentinel-2 product of processing baseline 04.00 or later (digital numbers offset by
+1000) is mapped exactly as the same scene without the offset, and the prediction
record says which product the reader took it for."""

from __future__ import annotations

import json

import numpy as np
import rasterio

from domainvit.datasets.raster.crop import crop_raster
from domainvit.datasets.registry import prepare
from domainvit.engine import predict
from domainvit.registry import load_tasks
from tests.conftest import ROOT

CHECKPOINT = ROOT / "tasks" / "hsi" / "weights" / "landcover_s2.safetensors"
#: a product name of baseline 05.09 (products of 2023), which carries the offset
NAME = "S2B_MSIL1C_20230105T155519_N0509_R054_T18TWL_20230105T173928_stack.tif"


def test_an_offset_product_is_mapped_as_the_same_scene_without_the_offset(tmp_path):
    load_tasks()
    crop = crop_raster(prepare("sentinel2") / "scene.tif", tmp_path / "crop.tif",
                       (300, 364, 1300, 1364))
    with rasterio.open(crop) as src:
        profile, counts = src.profile, src.read()
        tags = src.tags()
        band_tags = [src.tags(b + 1) for b in range(src.count)]
        descriptions = src.descriptions
    # as a stack of the product's band files is written (gdal_merge, rasterio): band
    # names and wavelengths, no reflectance scale of its own, so the product's is taken
    del tags["reflectance_scale"]
    plain, offset = tmp_path / "plain_stack.tif", tmp_path / NAME
    for path, values in ((plain, counts), (offset, counts + 1000)):  # +1000: baseline 04.00+
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(values)
            dst.update_tags(**tags)
            for band, (extra, text) in enumerate(zip(band_tags, descriptions, strict=True), 1):
                dst.update_tags(band, **extra)
                dst.set_band_description(band, text)

    maps = {}
    for name, path in (("plain", plain), ("offset", offset)):
        written = predict("hsi/landcover_s2", str(CHECKPOINT), [str(path)],
                          str(tmp_path / name))
        (class_map,) = [p for p in written if p.name.endswith(".classes.tif")]
        with rasterio.open(class_map) as dataset:
            maps[name] = dataset.read(1)
        (sidecar,) = [p for p in written if p.name.endswith(".prediction.json")]
        maps[f"{name}-record"] = json.loads(sidecar.read_text())
    np.testing.assert_array_equal(maps["offset"], maps["plain"])
    assert maps["offset-record"]["sentinel2_product"] == {
        "level": "L1C", "processing_baseline": "05.09", "offset_dn": -1000.0,
        "offset_source": "baseline"}
    assert "sentinel2_product" not in maps["plain-record"]  # the stack names no product
    assert maps["plain"].min() > 0  # every pixel classified
