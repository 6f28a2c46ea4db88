"""The GeoTIFF writers of the sample scenes: uint16 reflectance with the band tag conventions
(:mod:`.conventions`), and uint8 label and split masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domainvit.datasets.hsi_scenes.conventions import (
    FWHM_TAG,
    NODATA,
    REFLECTANCE_SCALE,
    REFLECTANCE_SCALE_TAG,
    WAVELENGTH_TAG,
    WAVELENGTH_UNITS,
    WAVELENGTH_UNITS_TAG,
)


def to_counts(reflectance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W, B) reflectance -> (B, H, W) uint16 x REFLECTANCE_SCALE; nodata 0, valid >= 1."""
    counts = np.clip(np.rint(reflectance * REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    counts[~valid] = NODATA
    return np.ascontiguousarray(counts.transpose(2, 0, 1))


def _tile(height: int, width: int, preferred: int = 128) -> int:
    tile = preferred
    while tile > 16 and tile > max(height, width):
        tile //= 2
    return tile


def write_reflectance(path: Path, counts: np.ndarray, crs: object, transform: object,
                      names: list[str], centers: np.ndarray, fwhm: np.ndarray,
                      extra_band_tags: list[dict] | None = None, **tags: object) -> None:
    """A (B, H, W) uint16 reflectance GeoTIFF with the band description/tag conventions."""
    import rasterio

    count, height, width = counts.shape
    tile = _tile(height, width, 256 if min(height, width) > 1024 else 128)
    profile = {
        "driver": "GTiff", "dtype": "uint16", "count": count, "height": height,
        "width": width, "crs": crs, "transform": transform, "nodata": NODATA,
        "tiled": True, "blockxsize": tile, "blockysize": tile, "compress": "deflate",
        "predictor": 2, "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(counts)
        dst.update_tags(**{WAVELENGTH_UNITS_TAG: WAVELENGTH_UNITS,
                           REFLECTANCE_SCALE_TAG: str(REFLECTANCE_SCALE),
                           **{k: str(v) for k, v in tags.items()}})
        for i in range(count):
            dst.set_band_description(i + 1, f"{names[i]} {centers[i]:.1f} nm")
            band_tags = {WAVELENGTH_TAG: f"{centers[i]:.3f}", FWHM_TAG: f"{fwhm[i]:.3f}"}
            if extra_band_tags:
                band_tags.update({k: str(v) for k, v in extra_band_tags[i].items()})
            dst.update_tags(i + 1, **band_tags)


def _write_mask(path: Path, data: np.ndarray, crs: object, transform: object,
                **tags: object) -> None:
    import rasterio

    h, w = data.shape
    tile = _tile(h, w)
    with rasterio.open(path, "w", driver="GTiff", dtype="uint8", count=1, height=h, width=w,
                       crs=crs, transform=transform, tiled=True, blockxsize=tile,
                       blockysize=tile, compress="deflate") as dst:
        dst.write(data.astype(np.uint8), 1)
        dst.update_tags(**{k: str(v) for k, v in tags.items()})


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
