"""Checks that a raster has the bands (and CRS) a model was trained on; errors name what
differs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from domainvit.datasets.raster.info import RasterInfo
from domainvit.datasets.raster.wavelengths import _sidecar_paths, _to_nm
from domainvit.errors import UserError


def _wavelength_span(wavelengths: np.ndarray | None, count: int) -> str:
    if wavelengths is None:
        return f"{count} bands (wavelengths unknown)"
    return f"{count} bands at {np.min(wavelengths):.0f}-{np.max(wavelengths):.0f} nm"


def require_wavelengths(info: RasterInfo) -> np.ndarray:
    """The band centres in nm, or a UserError saying how to provide them."""
    if info.wavelengths is None:
        json_path, text_path = _sidecar_paths(info.path)
        raise UserError(
            f"{info.path.name} does not say which wavelengths its {info.count} bands are: add "
            f"a sidecar {json_path.name} (a JSON list of band centres in nm) or "
            f"{text_path.name}, or pass the wavelengths explicitly"
        )
    return info.wavelengths


def match_bands(info: RasterInfo, expected_wavelengths: Sequence[float] | np.ndarray,
                tolerance_nm: float = 5.0) -> np.ndarray | None:
    """0-based indices of the raster bands nearest each expected centre (within
    ``tolerance_nm``, each band used once), or None when some expected band is missing."""
    if info.wavelengths is None:
        return None
    expected = _to_nm(expected_wavelengths, None)
    available = np.asarray(info.wavelengths, dtype=np.float64)
    chosen: list[int] = []
    for centre in expected:
        distance = np.abs(available - centre)
        if chosen:
            distance[chosen] = np.inf
        index = int(np.argmin(distance))
        if not distance[index] <= tolerance_nm:
            return None
        chosen.append(index)
    return np.array(chosen, dtype=np.int64)


def check_bands(info: RasterInfo, expected_wavelengths: Sequence[float] | np.ndarray,
                tolerance_nm: float = 5.0, *, sensor: str | None = None,
                expected_by: str = "the checkpoint", allow_subset: bool = False) -> np.ndarray:
    """Check that the raster has the expected bands; return the 0-based bands to read.

    Fails (UserError) when the band count differs, or when counts match but a band centre
    is further than ``tolerance_nm`` from the expected one (naming the first such band).
    A raster without wavelengths whose band count matches is accepted with a warning. With
    ``allow_subset``, a raster holding every expected band among more returns their indices.
    Hyperspectral sensors match to ~1-2 nm; wide multispectral bands may need more
    (Sentinel-2A and 2B B12 centres differ by 17 nm).
    """
    expected = _to_nm(expected_wavelengths, None)
    label = f" ({sensor})" if sensor else ""
    wanted = f"{expected_by} expects {_wavelength_span(expected, expected.size)}{label}"
    have = f"{info.path.name} has {_wavelength_span(info.wavelengths, info.count)}"
    if info.count != expected.size:
        subset = match_bands(info, expected, tolerance_nm)
        if subset is not None and allow_subset:
            return subset
        extra = (f"; all {expected.size} expected bands are among them, so the raster could "
                 f"be subset to them" if subset is not None else "")
        raise UserError(f"{wanted}; {have}{extra}")
    if info.wavelengths is None:
        warnings.warn(f"{info.path.name} does not say which wavelengths its {info.count} bands "
                      f"are; assuming they are the {expected.size} bands {expected_by} "
                      f"expects{label}, in the same order", stacklevel=2)
        return np.arange(info.count)
    difference = np.abs(np.asarray(info.wavelengths) - expected)
    wrong = np.flatnonzero(~(difference <= tolerance_nm))
    if wrong.size:
        first = int(wrong[0])
        raise UserError(
            f"{wanted}; {have}: band {first + 1} is at {info.wavelengths[first]:.1f} nm, "
            f"expected {expected[first]:.1f} nm (tolerance {tolerance_nm:g} nm; {wrong.size} "
            f"band(s) differ)"
        )
    return np.arange(info.count)


def require_crs(info: RasterInfo) -> None:
    """Fail for a GDAL raster without a CRS: its class map could not be georeferenced.

    ``.npy``/``.mat`` inputs never have a CRS and pass: their map is written without one.
    """
    if not info.is_gdal or info.crs is not None:
        return
    name = info.path.name
    if info.transform.is_identity:
        fix = (f"gdal_edit.py -a_srs EPSG:XXXX -a_ullr ULX ULY LRX LRY {name} (it has no "
               f"geotransform either), or gdalwarp -t_srs EPSG:XXXX if it has ground control "
               f"points")
    else:
        fix = f"gdal_edit.py -a_srs EPSG:XXXX {name} with the EPSG code of its coordinates"
    raise UserError(f"{name} has no coordinate reference system, so the class map would not "
                    f"be georeferenced (it would not overlay anything in a GIS); set one with "
                    f"{fix}")
