"""Hyperspectral rasters in and out: GeoTIFF/COG and any GDAL raster, ENVI, ``.npy``, ``.mat``.

The raster layer of the hyperspectral classification task: a model classifies every pixel of
a ``(bands, H, W)`` reflectance cube from patches around it and writes a class map. One
module per job:

- :mod:`.opening`: :func:`~.opening.open_raster`, the file format and the reflectance scale;
- :mod:`.info`: :class:`~.info.RasterInfo`, what is known before the pixels are read;
- :mod:`.wavelengths`: band centres from the metadata or a sidecar file;
- :mod:`.sources`: :class:`~.sources.RasterSource`, windows read as reflectance, with the
  nodata and overflow policy;
- :mod:`.bands`: checks that a raster has the bands (and CRS) a model expects;
- :mod:`.tiling`: tiles with overlapping context;
- :mod:`.class_map`: :class:`~.class_map.ClassMapWriter`, the class-map GeoTIFF.

Every problem with the user's file is raised as one :class:`~domainvit.errors.UserError`
naming the file; misuse of the API (bad window, wrong array shape) raises ``ValueError``.
"""
