"""Sentinel-2 product facts from tags and names, and the -1000 DN offset of processing
baseline 04.00 and later applied when a raster is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from domainvit.datasets.raster.opening import open_raster
from domainvit.datasets.raster.sentinel2 import OFFSET_DN, sentinel2_product

L1C_2023 = "S2B_MSIL1C_20230105T155519_N0509_R054_T18TWL_20230105T173928.SAFE"
L2A_2022 = "S2A_MSIL2A_20220301T105911_N0400_R094_T31UFU_20220301T142317.SAFE"
L1C_2019 = "S2A_MSIL1C_20190612T105031_N0207_R051_T31UFU_20190612T130434.SAFE"


@pytest.mark.parametrize("tags, level, baseline, offset, source", [
    ({"PRODUCT_URI": L1C_2023}, "L1C", (5, 9), OFFSET_DN, "baseline"),
    ({"PRODUCT_URI": L2A_2022}, "L2A", (4, 0), OFFSET_DN, "baseline"),
    ({"PRODUCT_URI": L1C_2019}, "L1C", (2, 7), 0.0, "none"),
    ({"PROCESSING_BASELINE": "04.00", "PROCESSING_LEVEL": "Level-1C"}, "L1C", (4, 0),
     OFFSET_DN, "baseline"),
    ({"PRODUCT_TYPE": "S2MSI2A", "BOA_ADD_OFFSET": "-1000"}, "L2A", None, -1000.0, "tag"),
    # a declared offset wins over what the baseline implies
    ({"PRODUCT_URI": L1C_2023, "RADIO_ADD_OFFSET": "0"}, "L1C", (5, 9), 0.0, "tag"),
])
def test_product_facts_from_tags(tags, level, baseline, offset, source):
    product = sentinel2_product(Path("scene.tif"), tags)
    assert (product.level, product.baseline, product.offset_dn, product.offset_source) == (
        level, baseline, offset, source)


def test_product_facts_from_the_file_and_folder_names():
    band = Path(L2A_2022) / "GRANULE" / "L2A_T31UFU" / "IMG_DATA" / "R10m" / "B04_10m.jp2"
    product = sentinel2_product(band, {})
    assert (product.level, product.baseline_text, product.offset_dn) == ("L2A", "04.00",
                                                                          OFFSET_DN)
    merged = sentinel2_product(Path(f"{L1C_2019[:-5]}_stack.tif"), {})
    assert (merged.level, merged.baseline_text, merged.offset_dn) == ("L1C", "02.07", 0.0)


def test_an_offset_every_band_declares_counts_one_some_declare_does_not():
    every = [{"RADIO_ADD_OFFSET": "-1000"}] * 3
    assert sentinel2_product(Path("x.tif"), {}, every).offset_dn == -1000.0
    some = [{"RADIO_ADD_OFFSET": "-1000"}, {}, {}]
    assert sentinel2_product(Path("x.tif"), {}, some) is None


def test_other_rasters_are_not_sentinel2_products():
    assert sentinel2_product(Path("landsat_LC08_L1TP_stack.tif"), {"sensor": "OLI"}) is None


def _write(path: Path, dn: int, **tags) -> Path:
    data = np.full((3, 4, 5), dn, np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=5, height=4, count=3, dtype="uint16",
                       crs=CRS.from_epsg(32618), transform=Affine(10, 0, 600000, 0, -10, 4500000),
                       nodata=0) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    return path


@pytest.mark.parametrize("tags, reflectance, source", [
    ({"PRODUCT_URI": L1C_2023}, 0.05, "sentinel-2"),  # (1500 - 1000) / 10000
    ({"PRODUCT_URI": L1C_2019}, 0.15, "assumed"),
    ({}, 0.15, "assumed"),
    # a file that declares its own scale is taken at its word
    ({"PRODUCT_URI": L1C_2023, "reflectance_scale": "10000"}, 0.15, "tag"),
])
def test_reading_applies_the_offset_of_new_baselines(tmp_path, tags, reflectance, source):
    path = _write(tmp_path / "stack.tif", 1500, **tags)
    with open_raster(path) as raster:
        assert raster.info.reflectance_scale_source == source
        values, valid = raster.read()
    assert valid.all()
    np.testing.assert_allclose(values, reflectance, rtol=1e-6)
