"""A window of a raster as a GeoTIFF of its own, georeferencing and band metadata kept."""

from __future__ import annotations

from pathlib import Path


def crop_raster(source: Path, target: Path, window: tuple[int, int, int, int]) -> Path:
    """Write ``window`` (``row0, row1, col0, col1``) of the raster ``source`` to the GeoTIFF
    ``target``: same bands, data type, nodata, dataset and per-band tags and band
    descriptions, the CRS, and the transform of the window."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window as RioWindow

    row0, row1, col0, col1 = window
    rio_window = RioWindow(col0, row0, col1 - col0, row1 - row0)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(source) as src:
        profile = src.profile.copy()
        profile.update(height=row1 - row0, width=col1 - col0,
                       transform=src.transform @ Affine.translation(col0, row0))
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
        profile["tiled"] = False
        profile["driver"] = "GTiff"
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(src.read(window=rio_window))
            dst.update_tags(**src.tags())
            for band in range(1, src.count + 1):
                dst.update_tags(band, **src.tags(band))
                if src.descriptions[band - 1]:
                    dst.set_band_description(band, src.descriptions[band - 1])
    return target
