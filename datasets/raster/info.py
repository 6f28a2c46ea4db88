"""What is known about a raster before its pixels are read (:class:`RasterInfo`), and GDAL's
own words when it fails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine

from domainvit.datasets.raster.sentinel2 import S2Product

try:  # rasterio's GDAL error classes (raised, or chained, by reads of damaged files)
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover - private module moved
    CPLE_BaseError = rasterio.errors.RasterioError  # type: ignore[misc,assignment]


#: ``RasterInfo.driver`` of inputs read without GDAL (no CRS, transform or wavelengths)
ARRAY_DRIVERS = ("NPY", "MAT")


Layout = Literal["HWB", "BHW"]


@dataclass(eq=False)
class RasterInfo:
    """What is known about a raster without reading its pixels.

    ``wavelengths`` and ``fwhm`` are band centres and widths in nm (or None);
    ``reflectance = DN / reflectance_scale + reflectance_offset``;
    ``reflectance_scale_source`` says where the scale came from: ``"given"`` (the caller),
    ``"tag"`` (the ``reflectance_scale`` dataset tag), ``"envi"`` (the header's reflectance
    scale factor), ``"gdal"`` (band scales/offsets), ``"sentinel-2"`` (a Sentinel-2
    product of processing baseline 04.00 or later: 10000 and its -1000 DN offset,
    :mod:`domainvit.datasets.raster.sentinel2`) or ``"assumed"`` (none declared: 10000
    for integer data, 1 for float data). ``crs`` is None and ``transform`` the identity for
    ``.npy``/``.mat`` inputs. ``files`` lists every file the raster consists of (an ENVI
    header and its data file, for example). ``sensor``: the dataset tag ``sensor`` or the
    ENVI header's ``sensor type``; ``units``: the bands' declared units (GDAL's per-band
    unit type, ``""`` where none), empty for ``.npy``/``.mat``. ``band_names`` are the
    file's band descriptions (or a sidecar's names), ``B1``, ``B2``, ... where it has none;
    ``band_names_declared`` says whether the file named every band.
    """

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    crs: Any
    transform: Affine
    nodata: float | None
    wavelengths: np.ndarray | None
    band_names: list[str]
    reflectance_scale: float
    driver: str
    fwhm: np.ndarray | None = None
    reflectance_offset: float = 0.0
    files: tuple[Path, ...] = ()
    reflectance_scale_source: str = "assumed"
    sensor: str | None = None
    units: tuple[str, ...] = ()
    band_names_declared: bool = False
    #: the Sentinel-2 product facts (level, baseline, radiometric offset) the file's tags
    #: or name give (:mod:`domainvit.datasets.raster.sentinel2`); None for other rasters
    sentinel2: S2Product | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.count, self.height, self.width)

    @property
    def scale_declared(self) -> bool:
        """Whether the file (or the caller) says how its values map to reflectance."""
        return self.reflectance_scale_source != "assumed"

    @property
    def is_gdal(self) -> bool:
        return self.driver not in ARRAY_DRIVERS


def _gdal_detail(error: BaseException) -> str:
    """GDAL's own message: rasterio often says 'see previous exception' and chains it."""
    messages = []
    current: BaseException | None = error
    while current is not None and len(messages) < 3:
        text = " ".join(str(current).split())
        if text and "previous exception" not in text.lower() and text not in messages:
            messages.append(text)
        current = current.__cause__ or current.__context__
    return "; ".join(messages) or type(error).__name__
