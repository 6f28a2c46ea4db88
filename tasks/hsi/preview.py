"""True-colour previews of spectral cubes, for the dashboard page and the analysis.

Three bands (by default those nearest 640, 550 and 470 nm: red, green, blue), each
stretched between its 2nd and 98th percentile over the valid pixels, nodata black, read
decimated so that the longer side fits a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from domainvit.datasets.raster.sources import RasterSource

#: band centres (nm) of true-colour composites: red, green, blue
RGB_NM = (640.0, 550.0, 470.0)
#: the longest side of a preview, in raster pixels (larger rasters are strided)
PREVIEW_PIXELS = 1024


def rgb_bands(wavelengths: np.ndarray | None, count: int, nm: Sequence[float] = RGB_NM
              ) -> list[int]:
    """0-based bands nearest ``nm`` (red, green, blue); without wavelengths, the bands at
    3/4, 1/2 and 1/4 of the band list."""
    if wavelengths is not None:
        return [int(np.argmin(np.abs(np.asarray(wavelengths) - w))) for w in nm]
    return [round((count - 1) * f) for f in (0.75, 0.5, 0.25)]


def display_stride(height: int, width: int, max_pixels: int = PREVIEW_PIXELS) -> int:
    """The step that brings the longer side of a ``height x width`` raster to at most
    ``max_pixels``."""
    return max(1, -(-max(height, width) // max_pixels))


def stretch_rgb(bands: np.ndarray, valid: np.ndarray,
                percentiles: tuple[float, float] = (2, 98)) -> np.ndarray:
    """float RGB ``[h, w, 3]`` in [0, 1] from three bands ``[3, h, w]`` (red, green,
    blue), each stretched between its ``percentiles`` over the valid pixels; nodata
    black."""
    rgb = np.zeros((*bands.shape[1:], 3), np.float64)
    if not valid.any():
        return rgb
    for channel in range(3):
        low, high = np.percentile(bands[channel][valid], percentiles)
        rgb[..., channel] = np.clip((bands[channel] - low) / max(high - low, 1e-6), 0, 1)
    rgb[~valid] = 0
    return rgb


def read_rgb(source: RasterSource, bands: Sequence[int] | None = None,
             max_pixels: int = PREVIEW_PIXELS) -> np.ndarray:
    """The preview of an open raster from ``bands`` (default: :func:`rgb_bands`), float
    ``[h, w, 3]`` in [0, 1], decimated to at most ``max_pixels`` on its longer side."""
    info = source.info
    if bands is None:
        bands = rgb_bands(info.wavelengths, info.count)
    cube, valid = source.read(bands=list(bands))
    step = display_stride(info.height, info.width, max_pixels)
    return stretch_rgb(cube[:, ::step, ::step], valid[::step, ::step])


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1] -> uint8 RGB."""
    return np.round(rgb * 255).astype(np.uint8)
