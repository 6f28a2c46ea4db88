"""Hyperspectral rasters in and out: GeoTIFF/COG and any GDAL raster, ENVI, ``.npy``, ``.mat``.

The raster layer of the hyperspectral classification task: a model classifies every pixel of
a ``(bands, H, W)`` reflectance cube from patches around it and writes a class map.

Reading (:func:`open_raster` -> :class:`RasterSource`, a context manager):

- GDAL rasters (GeoTIFF, COG, ENVI, JP2, ...) go through rasterio. An ENVI pair may be
  given by either file: a ``.hdr`` is mapped to its data file (``x.hdr`` -> ``x``,
  ``x.img``, ``x.dat``, ``x.raw``, ``x.bsq``, ``x.bil``, ``x.bip``, ``x.bin``; or
  ``x.img.hdr`` -> ``x.img``), which GDAL's ENVI driver opens with its header.
- ``.npy`` cubes are memory-mapped (``mmap_mode='r'``, no pickles); ``.mat`` cubes are read
  with :func:`scipy.io.loadmat` (the single 3D numeric variable, or the one named by
  ``key``). Both are laid out ``(H, W, B)`` by default, like the Indian Pines and Salinas
  files; pass ``layout="BHW"`` for ``(B, H, W)``. They carry no CRS, transform, nodata or
  wavelengths.

Wavelengths (always in nm in :class:`RasterInfo`) come from, first match wins: the caller's
``wavelengths``; per-band ``wavelength`` tags (our GeoTIFF convention, and what GDAL >= 3.10
sets for ENVI headers), with ``wavelength_units`` from the band or the dataset; the band's
``CENTRAL_WAVELENGTH_UM`` in GDAL's ``IMAGERY`` domain; band descriptions containing
``"<number> nm"`` (``"B001 400.0 nm"``); the ENVI header's ``wavelength`` list (GDAL's
``ENVI`` metadata domain, ``wavelength units`` honoured); and finally a sidecar next to the
file: ``<stem>.bands.json`` (a list of numbers, or ``{"wavelengths": [...], "units": "nm",
"fwhm": [...], "band_names": [...]}``) or ``<stem>.bands.txt`` (numbers separated by
spaces, commas or newlines; ``#`` starts a comment). Units: nm, micrometers
(``um``/``µm``/``micrometers``/``microns``), mm, or wavenumbers (``cm-1``); without a
usable unit, a list whose values are all below 30 is taken as micrometers (no optical
sensor has bands below 30 nm), any other as nm.

:meth:`RasterSource.read` returns ``(cube, valid)``: ``cube`` float32 ``(B, h, w)``
reflectance ``= DN / reflectance_scale + reflectance_offset`` (cast to float32 before any
arithmetic), ``valid`` bool ``(h, w)``. Only the window asked for is read.

- **Nodata rule**: a pixel is invalid when *all* the bands read equal nodata (GDAL's own
  per-dataset convention; one dark band at 0 must not punch a hole), or when *any* band is
  non-finite (NaN/inf would poison the model), or when GDAL has a per-dataset mask (an
  internal ``.msk``) that marks it. Band values equal to nodata inside valid pixels and all
  values of invalid pixels are set to 0 in ``cube``, so the cube is always finite.
- **Overflow guard**: a valid pixel is *suspect* when a band holds the integer type's
  maximum (65535 for uint16: saturated or wrapped) or, for signed integers, its minimum, or
  a reflectance outside ``reflectance_range`` (default -0.5..1.5). When more than
  ``max_bad_fraction`` (default 0.1%) of the valid pixels of a read are suspect,
  :class:`~domainvit.errors.UserError` names the fraction and the likely cause; a few
  isolated suspect pixels are marked invalid instead, with one warning per source.
- ``open_raster`` checks by default that the raster has at least one valid pixel, reading
  strips from the top until it finds one (an entirely-nodata raster is read once, in full).

Reflectance scale: the caller's ``reflectance_scale``; else the dataset tag
``reflectance_scale`` (our convention); else the ENVI header's ``reflectance scale factor``;
else GDAL band scales/offsets (``DN * s + o``: scale ``1/s``, offset ``o``); else 10000 for
integer data and 1 for float data.

Tiling: :func:`iter_tiles` yields :class:`Tile`\\ s whose core windows partition the raster
and whose read windows add ``overlap`` pixels of context (clipped at the edges);
:func:`pad_to_context` reflect-pads what was read so every core has its full margin.

Writing: :class:`ClassMapWriter` writes a uint8 class map GeoTIFF (classes ``1..K``, 0 =
nodata/unclassified, colour table, class names as tags) and optionally a float32
per-class probability GeoTIFF, both atomically: temporary files in the destination folder
are renamed into place only when the ``with`` block ends without an exception.

Every problem with the user's file is raised as one :class:`~domainvit.errors.UserError`
naming the file; misuse of the API (bad window, wrong array shape) raises ``ValueError``.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from domainvit.errors import UserError

try:  # rasterio's GDAL error classes (raised, or chained, by reads of damaged files)
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover - private module moved
    CPLE_BaseError = rasterio.errors.RasterioError  # type: ignore[misc,assignment]

__all__ = [
    "ARRAY_DRIVERS",
    "ClassMapWriter",
    "RasterInfo",
    "RasterSource",
    "Tile",
    "check_bands",
    "iter_tiles",
    "match_bands",
    "open_raster",
    "pad_to_context",
    "require_crs",
    "require_wavelengths",
]

#: ``RasterInfo.driver`` of inputs read without GDAL (no CRS, transform or wavelengths)
ARRAY_DRIVERS = ("NPY", "MAT")
#: data-file suffixes tried for an ENVI header ``x.hdr`` (after ``x`` itself)
ENVI_DATA_SUFFIXES = (".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin")
#: plausible surface reflectance; beyond it a value is taken as overflow or a wrong scale
DEFAULT_REFLECTANCE_RANGE = (-0.5, 1.5)
#: share of a read's valid pixels that may be suspect before reading fails
DEFAULT_MAX_BAD_FRACTION = 1e-3
#: bytes read per strip by the "has a valid pixel" check at open
_SCAN_BYTES = 64 * 1024**2
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_NM_IN_DESCRIPTION = re.compile(r"(?<![\w.])([-+]?\d+(?:\.\d+)?)\s*nm\b", re.IGNORECASE)
_MICROMETER_GUESS_BELOW = 30.0

Layout = Literal["HWB", "BHW"]

#: RGB colours of classes 1, 2, ... (cycled beyond the table) when none are given
DEFAULT_COLORS = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)


@dataclass(eq=False)
class RasterInfo:
    """What is known about a raster without reading its pixels.

    ``wavelengths`` and ``fwhm`` are band centres and widths in nm (or None);
    ``reflectance = DN / reflectance_scale + reflectance_offset``. ``crs`` is None and
    ``transform`` the identity for ``.npy``/``.mat`` inputs. ``files`` lists every file the
    raster consists of (an ENVI header and its data file, for example).
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

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.count, self.height, self.width)

    @property
    def is_gdal(self) -> bool:
        return self.driver not in ARRAY_DRIVERS


@dataclass(frozen=True)
class Tile:
    """One tile of :func:`iter_tiles`.

    ``core_window``: the pixels this tile predicts (the cores partition the raster).
    ``read_window``: the core grown by ``overlap`` on each side, clipped to the raster.
    ``core_offset``: ``(row, col)`` of the core's top-left pixel inside the read window.
    """

    read_window: Window
    core_window: Window
    core_offset: tuple[int, int]

    @property
    def core_slices(self) -> tuple[slice, slice]:
        """Index of the core inside an array read from ``read_window``."""
        row, col = self.core_offset
        return (slice(row, row + int(self.core_window.height)),
                slice(col, col + int(self.core_window.width)))


# ---------------------------------------------------------------------------------------
# Small helpers


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


def _window_bounds(window: Window | tuple, height: int, width: int) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of an integral window inside the raster."""
    if not isinstance(window, Window):
        window = Window.from_slices(*window, height=height, width=width)
    values = (window.row_off, window.col_off, window.height, window.width)
    if any(float(value) != int(value) for value in values):
        raise ValueError(f"window {window} is not on whole pixels")
    row0, col0, rows, cols = (int(value) for value in values)
    if rows < 0 or cols < 0 or row0 < 0 or col0 < 0 or row0 + rows > height or col0 + cols > width:
        raise ValueError(f"window {window} is not inside the {height}x{width} raster")
    return row0, row0 + rows, col0, col0 + cols


def _band_indices(bands: Sequence[int] | np.ndarray | None, count: int) -> list[int]:
    """0-based band indices, checked against ``count``."""
    if bands is None:
        return list(range(count))
    indices = [int(band) for band in np.asarray(bands).reshape(-1)]
    bad = [band for band in indices if not 0 <= band < count]
    if bad:
        raise ValueError(f"band indices {bad[:5]} are outside 0..{count - 1} (bands are 0-based)")
    return indices


def _format_fraction(fraction: float) -> str:
    return f"{fraction:.2%}" if fraction >= 1e-4 else f"{fraction:.1e}"


def _wavelength_span(wavelengths: np.ndarray | None, count: int) -> str:
    if wavelengths is None:
        return f"{count} bands (wavelengths unknown)"
    return f"{count} bands at {np.min(wavelengths):.0f}-{np.max(wavelengths):.0f} nm"


# ---------------------------------------------------------------------------------------
# Wavelengths


def _unit_factor(units: str | None) -> float | Literal["wavenumber"] | None:
    """Multiplier to nm for ``units``; None when missing or not a length."""
    if units is None:
        return None
    name = units.strip().strip("{}").strip().lower().replace(" ", "")
    if name in ("nm", "nanometer", "nanometers", "nanometre", "nanometres"):
        return 1.0
    if name in ("um", "µm", "μm", "micrometer", "micrometers", "micrometre", "micrometres",
                "micron", "microns"):
        return 1000.0
    if name in ("mm", "millimeter", "millimeters", "millimetre", "millimetres"):
        return 1e6
    if name in ("cm-1", "1/cm", "wavenumber", "wavenumbers", "cm^-1"):
        return "wavenumber"
    return None


def _to_nm(values: Sequence[float] | np.ndarray, units: str | None) -> np.ndarray:
    """Wavelengths in nm from ``values`` in ``units`` (guessed from magnitude when unknown)."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    factor = _unit_factor(units)
    if factor == "wavenumber":
        with np.errstate(divide="ignore"):
            return 1e7 / array
    if factor is None:
        finite = array[np.isfinite(array)]
        factor = 1000.0 if finite.size and np.max(np.abs(finite)) < _MICROMETER_GUESS_BELOW else 1.0
    return array * factor


def _parse_number_list(text: str) -> list[float] | None:
    """``'{0.45, 0.55}'`` (an ENVI header list) -> floats; None when not all numbers."""
    parts = [part for part in re.split(r"[\s,{}]+", text) if part]
    try:
        return [float(part) for part in parts]
    except ValueError:
        return None


def _validated_wavelengths(values: np.ndarray, count: int, where: str) -> np.ndarray:
    if values.size != count:
        raise UserError(f"{where}: {values.size} wavelengths for a raster of {count} bands")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise UserError(f"{where} has wavelengths that are not positive numbers")
    return values


def _sidecar_paths(path: Path) -> tuple[Path, Path]:
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.bands.json"), path.with_name(f"{stem}.bands.txt")


def _read_sidecar(path: Path, count: int) -> dict[str, Any] | None:
    """Wavelengths (nm), fwhm and band names from ``<stem>.bands.json``/``.txt``."""
    json_path, text_path = _sidecar_paths(path)
    if json_path.is_file():
        try:
            content = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"cannot read band sidecar {json_path.name}: {error}") from error
        if isinstance(content, list):
            content = {"wavelengths": content}
        if not isinstance(content, dict) or not isinstance(content.get("wavelengths"), list):
            raise UserError(f"band sidecar {json_path.name} must be a list of wavelengths or "
                            f'{{"wavelengths": [...], "units": "nm", "fwhm": [...], '
                            f'"band_names": [...]}}')
        units = content.get("units", "nm")
        try:
            wavelengths = _to_nm(content["wavelengths"], units)
            fwhm = _to_nm(content["fwhm"], units) if content.get("fwhm") is not None else None
        except (TypeError, ValueError) as error:
            raise UserError(f"band sidecar {json_path.name} holds values that are not "
                            f"numbers: {error}") from error
        if _unit_factor(units) == "wavenumber" and fwhm is not None:
            fwhm = None  # a width in cm-1 is not a width in nm; dropped rather than guessed
        wavelengths = _validated_wavelengths(wavelengths, count, f"band sidecar {json_path.name}")
        if fwhm is not None and fwhm.size != count:
            raise UserError(f"band sidecar {json_path.name} lists {fwhm.size} fwhm values "
                            f"for {count} bands")
        names = content.get("band_names")
        if names is not None and (not isinstance(names, list) or len(names) != count):
            raise UserError(f"band sidecar {json_path.name}: band_names must list {count} names")
        return {"wavelengths": wavelengths, "fwhm": fwhm,
                "band_names": [str(name) for name in names] if names else None}
    if text_path.is_file():
        try:
            lines = text_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read band sidecar {text_path.name}: {error}") from error
        numbers = _parse_number_list(" ".join(line.split("#", 1)[0] for line in lines))
        if numbers is None:
            raise UserError(f"band sidecar {text_path.name} must hold only numbers (band "
                            f"centres in nm), separated by spaces, commas or newlines")
        wavelengths = _validated_wavelengths(_to_nm(numbers, None), count,
                                             f"band sidecar {text_path.name}")
        return {"wavelengths": wavelengths, "fwhm": None, "band_names": None}
    return None


def _gdal_band_list(dataset: Any, key: str) -> list[str] | None:
    """One tag value per band, or None when any band lacks it."""
    values = [dataset.tags(band).get(key) for band in range(1, dataset.count + 1)]
    return None if any(value is None for value in values) else values


def _floats(values: Sequence[str] | None) -> np.ndarray | None:
    if values is None:
        return None
    try:
        return np.array([float(value) for value in values], dtype=np.float64)
    except ValueError:
        return None


def _gdal_wavelengths(dataset: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Band centres and widths in nm from a GDAL dataset's metadata (see module docs)."""
    count = dataset.count
    tags = dataset.tags()
    envi = dataset.tags(ns="ENVI") if "ENVI" in (dataset.tag_namespaces() or []) else {}
    default_units = tags.get("wavelength_units") or envi.get("wavelength_units")

    def band_units() -> str | None:
        units = {dataset.tags(band).get("wavelength_units") for band in range(1, count + 1)}
        units.discard(None)
        return units.pop() if len(units) == 1 else default_units

    def fwhm_from(units: str | None) -> np.ndarray | None:
        values = _floats(_gdal_band_list(dataset, "fwhm"))
        if values is None and envi.get("fwhm"):
            values = np.array(_parse_number_list(envi["fwhm"]) or [], dtype=np.float64)
        if values is None or values.size != count or _unit_factor(units) == "wavenumber":
            return None
        return _to_nm(values, units)

    # per-band tags: our GeoTIFF convention; GDAL >= 3.10 sets them from ENVI headers
    values = _floats(_gdal_band_list(dataset, "wavelength"))
    if values is not None:
        units = band_units()
        return _to_nm(values, units), fwhm_from(units)
    # GDAL's IMAGERY domain (>= 3.10): CENTRAL_WAVELENGTH_UM / FWHM_UM
    imagery = [dataset.tags(band, ns="IMAGERY") for band in range(1, count + 1)]
    values = _floats([item.get("CENTRAL_WAVELENGTH_UM") for item in imagery]
                     if all("CENTRAL_WAVELENGTH_UM" in item for item in imagery) else None)
    if values is not None:
        widths = _floats([item.get("FWHM_UM") for item in imagery]
                         if all("FWHM_UM" in item for item in imagery) else None)
        return values * 1000.0, None if widths is None else widths * 1000.0
    # band descriptions such as "B001 400.0 nm"
    descriptions = dataset.descriptions or ()
    matches = [_NM_IN_DESCRIPTION.search(text or "") for text in descriptions]
    if len(matches) == count and all(matches):
        return np.array([float(match.group(1)) for match in matches]), fwhm_from("nm")
    # the ENVI header's wavelength list
    if envi.get("wavelength"):
        numbers = _parse_number_list(envi["wavelength"])
        if numbers is not None and len(numbers) == count:
            units = envi.get("wavelength_units")
            return _to_nm(numbers, units), fwhm_from(units)
    return None, None


# ---------------------------------------------------------------------------------------
# Sources


class RasterSource:
    """An open raster: :attr:`info` and windowed :meth:`read`. Use as a context manager."""

    def __init__(self, info: RasterInfo, nodata_values: list[float | None], *,
                 reflectance_range: tuple[float, float], max_bad_fraction: float) -> None:
        self.info = info
        self.path = info.path
        self._nodata_values = nodata_values
        self._range = (float(reflectance_range[0]), float(reflectance_range[1]))
        self._max_bad_fraction = float(max_bad_fraction)
        #: suspect pixels marked invalid so far (below the ``max_bad_fraction`` limit)
        self.suspect_pixels = 0
        self._warned = False
        self.closed = False

    # -- to be provided by each kind of source
    def _read_raw(self, rows: tuple[int, int], cols: tuple[int, int],
                  bands: list[int]) -> np.ndarray:
        raise NotImplementedError

    def _dataset_mask(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray | None:
        return None

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        info = self.info
        return (f"<RasterSource {info.path.name} {info.driver} {info.count}x{info.height}x"
                f"{info.width} {info.dtype}>")

    # -- reading
    def read(self, window: Window | tuple | None = None,
             bands: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``(B, h, w)`` float32 and the valid mask ``(h, w)`` of ``window``.

        ``window``: a rasterio :class:`~rasterio.windows.Window` (or ``((row0, row1),
        (col0, col1))``) inside the raster, whole raster when None. ``bands``: 0-based band
        indices, all when None; the nodata rule is applied over the bands read.
        """
        if self.closed:
            raise ValueError(f"{self.path.name} is closed")
        info = self.info
        row0, row1, col0, col1 = (
            (0, info.height, 0, info.width) if window is None
            else _window_bounds(window, info.height, info.width))
        indices = _band_indices(bands, info.count)
        raw = self._read_raw((row0, row1), (col0, col1), indices)
        return self._to_reflectance(raw, indices, (row0, row1), (col0, col1))

    def _to_reflectance(self, raw: np.ndarray, indices: list[int], rows: tuple[int, int],
                        cols: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        info = self.info
        # measured[b, i, j]: the band holds a value (not nodata, finite)
        measured = np.ones(raw.shape, dtype=bool)
        for position, band in enumerate(indices):
            nodata = self._nodata_values[band]
            if nodata is None:
                continue
            if math.isnan(nodata):
                continue  # covered by the finite test below
            measured[position] &= raw[position] != nodata
        any_measured = measured.any(axis=0) if raw.shape[0] else np.zeros(raw.shape[1:], bool)
        if np.issubdtype(raw.dtype, np.floating):
            finite = np.isfinite(raw)
            valid = any_measured & finite.all(axis=0)
            measured &= finite
        else:
            valid = any_measured
        mask = self._dataset_mask(rows, cols)
        if mask is not None:
            valid &= mask

        # float32 before any arithmetic: no integer overflow in our own code
        cube = raw.astype(np.float32, order="C")
        if info.reflectance_scale != 1.0:
            cube /= np.float32(info.reflectance_scale)
        if info.reflectance_offset:
            cube += np.float32(info.reflectance_offset)
        measured &= valid[None]

        suspect_entries = measured & ((cube < self._range[0]) | (cube > self._range[1]))
        at_limit = np.zeros_like(measured)
        if np.issubdtype(raw.dtype, np.integer):
            limits = np.iinfo(raw.dtype)
            at_limit = measured & (raw == limits.max)
            if limits.min < 0:
                at_limit |= measured & (raw == limits.min)
            suspect_entries |= at_limit
        suspect = suspect_entries.any(axis=0)
        if suspect.any():
            self._handle_suspect(raw, cube, measured, suspect, at_limit, valid, rows, cols)
            valid &= ~suspect
            measured &= valid[None]

        cube[~measured] = 0.0
        return cube, valid

    def _handle_suspect(self, raw: np.ndarray, cube: np.ndarray, measured: np.ndarray,
                        suspect: np.ndarray, at_limit: np.ndarray, valid: np.ndarray,
                        rows: tuple[int, int], cols: tuple[int, int]) -> None:
        info = self.info
        count, total = int(suspect.sum()), int(valid.sum())
        fraction = count / max(total, 1)
        if fraction <= self._max_bad_fraction:
            self.suspect_pixels += count
            if not self._warned:
                self._warned = True
                warnings.warn(f"{info.path.name}: {count} pixel(s) with implausible reflectance "
                              f"(outside {self._range[0]:g}..{self._range[1]:g} or at the "
                              f"{info.dtype} limit) are treated as nodata", stacklevel=4)
            return
        values = cube[measured]
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        where = (f"rows {rows[0]}-{rows[1] - 1}, columns {cols[0]}-{cols[1] - 1}"
                 if (rows[1] - rows[0], cols[1] - cols[0]) != (info.height, info.width)
                 else "the raster")
        dtype = np.dtype(info.dtype)
        if at_limit.any():
            limit = int(raw[at_limit].flat[0])
            cause = (f"values at the {info.dtype} limit {limit}: the data saturated or wrapped "
                     f"around, e.g. written as {info.dtype} after arithmetic that overflowed; "
                     f"recompute it in a wider or float type")
        elif high > self._range[1] and np.issubdtype(dtype, np.floating) and high > 100:
            cause = (f"values up to {high:g}: this looks like scaled integers (DN), not "
                     f"reflectance; pass reflectance_scale (e.g. 10000) or tag the file "
                     f"with reflectance_scale")
        elif low < self._range[0] and np.issubdtype(dtype, np.signedinteger):
            cause = (f"reflectance down to {low:.2f}: {info.dtype} values wrapped around to "
                     f"negative (values above {np.iinfo(dtype).max} stored as {info.dtype}); "
                     f"rewrite the data as uint16 or float32")
        elif high > self._range[1] and np.issubdtype(dtype, np.integer):
            cause = (f"reflectance up to {high:.2f} after dividing by "
                     f"{info.reflectance_scale:g}: the data overflowed (e.g. uint16 after "
                     f"arithmetic that wrapped) or the reflectance scale is wrong; pass "
                     f"reflectance_scale if it is not {info.reflectance_scale:g}")
        else:
            cause = (f"reflectance from {low:.2f} to {high:.2f}: the data is not surface "
                     f"reflectance (radiance?) or its scale is wrong; pass reflectance_scale")
        raise UserError(
            f"{info.path.name}: {_format_fraction(fraction)} of the valid pixels in {where} "
            f"({count} of {total}) have reflectance outside {self._range[0]:g}.."
            f"{self._range[1]:g} or at the integer limit; likely cause: {cause}"
        )

    def _check_has_valid_pixels(self) -> None:
        """Raise when no pixel is valid; reads strips from the top, stopping at the first."""
        info = self.info
        row_bytes = max(1, info.width * info.count * max(np.dtype(info.dtype).itemsize, 4) * 3)
        step = max(1, _SCAN_BYTES // row_bytes)
        for row in range(0, info.height, step):
            _cube, valid = self.read(Window(0, row, info.width, min(step, info.height - row)))
            if valid.any():
                return
        nodata = f"nodata ({info.nodata:g})" if info.nodata is not None else "nodata"
        raise UserError(f"{info.path.name} has no valid pixel: every pixel is {nodata} or "
                        f"non-finite in all its {info.count} bands")


class _GdalSource(RasterSource):
    def __init__(self, dataset: Any, info: RasterInfo, **options: Any) -> None:
        nodata_values = [None if value is None else float(value) for value in dataset.nodatavals]
        super().__init__(info, nodata_values, **options)
        self._dataset = dataset
        flags = dataset.mask_flag_enums
        self._use_dataset_mask = all(
            MaskFlags.per_dataset in band and MaskFlags.alpha not in band
            and MaskFlags.nodata not in band for band in flags)

    def _read_raw(self, rows: tuple[int, int], cols: tuple[int, int],
                  bands: list[int]) -> np.ndarray:
        window = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
        try:
            return self._dataset.read([band + 1 for band in bands], window=window)
        except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as error:
            raise UserError(
                f"cannot read rows {rows[0]}-{rows[1] - 1} of {self.path.name}: the file is "
                f"truncated or corrupted ({_gdal_detail(error)})"
            ) from error

    def _dataset_mask(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray | None:
        if not self._use_dataset_mask:
            return None
        window = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
        try:
            return self._dataset.dataset_mask(window=window) > 0
        except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as error:
            raise UserError(f"cannot read the mask of {self.path.name}: the file is truncated "
                            f"or corrupted ({_gdal_detail(error)})") from error

    def close(self) -> None:
        if not self.closed:
            self._dataset.close()
        super().close()


class _ArraySource(RasterSource):
    """A ``.npy`` (memory-mapped) or ``.mat`` cube in ``layout`` order."""

    def __init__(self, array: np.ndarray, layout: Layout, info: RasterInfo,
                 **options: Any) -> None:
        super().__init__(info, [info.nodata] * info.count, **options)
        self._array = array
        self._layout = layout

    def _read_raw(self, rows: tuple[int, int], cols: tuple[int, int],
                  bands: list[int]) -> np.ndarray:
        band_index: Any = slice(None) if bands == list(range(self.info.count)) else bands
        try:
            if self._layout == "HWB":
                block = self._array[rows[0]:rows[1], cols[0]:cols[1], band_index]
                return np.moveaxis(np.asarray(block), -1, 0)
            return np.asarray(self._array[band_index, rows[0]:rows[1], cols[0]:cols[1]])
        except OSError as error:  # a memory-mapped file that shrank or vanished
            raise UserError(f"cannot read {self.path.name}: {error}") from error

    def close(self) -> None:
        if not self.closed:
            self._array = np.empty((0, 0, 0))  # drop the memory map
        super().close()


# ---------------------------------------------------------------------------------------
# Opening


def _scale_from_tags(value: str | None, where: str) -> float | None:
    if value is None:
        return None
    try:
        scale = float(str(value).strip().strip("{}"))
    except ValueError:
        raise UserError(f"{where} is not a number: {value!r}") from None
    if not math.isfinite(scale) or scale <= 0:
        raise UserError(f"{where} must be a positive number, got {value!r}")
    return scale


def _check_scale(scale: float | None) -> float | None:
    if scale is None:
        return None
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise UserError(f"reflectance_scale must be a positive number, got {scale}")
    return scale


def _envi_data_file(header: Path) -> Path:
    """The data file of an ENVI header (see module docs)."""
    stem = header.name[: -len(header.suffix)]
    candidates = [header.with_name(stem)] + [header.with_name(stem + suffix)
                                             for suffix in ENVI_DATA_SUFFIXES]
    candidates += [header.with_name(stem + suffix.upper()) for suffix in ENVI_DATA_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file() and candidate.suffix.lower() != ".hdr":
            return candidate
    expected = ", ".join(path.name for path in candidates[: 1 + len(ENVI_DATA_SUFFIXES)])
    raise UserError(f"ENVI header {header.name} has no data file next to it: expected one of "
                    f"{expected}")


def _open_gdal(path: Path, source_name: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            dataset = rasterio.open(source_name)
    except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as error:
        hint = ""
        if (path.suffix.lower() in ENVI_DATA_SUFFIXES and not path.with_suffix(".hdr").exists()
                and not path.with_name(path.name + ".hdr").exists()):
            header = path.with_suffix(".hdr").name
            hint = f" (an ENVI data file needs its header {header} beside it)"
        raise UserError(f"{path.name} is not a raster GDAL can read: not an image, or a "
                        f"corrupted or truncated file{hint} ({_gdal_detail(error)})") from error
    return dataset


def _gdal_info(dataset: Any, path: Path, wavelengths: Any, reflectance_scale: float | None
               ) -> RasterInfo:
    count = dataset.count
    tags = dataset.tags()
    envi = dataset.tags(ns="ENVI") if "ENVI" in (dataset.tag_namespaces() or []) else {}
    fwhm = None
    if wavelengths is not None:
        found = _validated_wavelengths(_to_nm(wavelengths, None), count,
                                       f"the wavelengths given for {path.name}")
    else:
        found, fwhm = _gdal_wavelengths(dataset) if count else (None, None)
        if found is not None:
            try:
                found = _validated_wavelengths(found, count, f"{path.name}'s metadata")
            except UserError as error:
                warnings.warn(f"ignoring the wavelengths of {path.name}: {error}", stacklevel=3)
                found, fwhm = None, None
    sidecar = _read_sidecar(path, count) if found is None and wavelengths is None else None
    if sidecar:
        found, fwhm = sidecar["wavelengths"], sidecar["fwhm"]

    offset = 0.0
    scale = (reflectance_scale
             or _scale_from_tags(tags.get("reflectance_scale"),
                                 f"{path.name}'s reflectance_scale tag")
             or _scale_from_tags(envi.get("reflectance_scale_factor"),
                                 f"{path.name}'s ENVI reflectance scale factor"))
    if scale is None:
        gdal_scales, gdal_offsets = set(dataset.scales or ()), set(dataset.offsets or ())
        if len(gdal_scales) > 1 or len(gdal_offsets) > 1:
            raise UserError(f"{path.name} has a different scale/offset per band, which is not "
                            f"supported; pass reflectance_scale explicitly")
        band_scale = gdal_scales.pop() if gdal_scales else 1.0
        offset = float(gdal_offsets.pop()) if gdal_offsets else 0.0
        if band_scale not in (0.0, 1.0):
            scale = 1.0 / float(band_scale)
        elif offset == 0.0:
            scale = 10000.0 if np.issubdtype(np.dtype(dataset.dtypes[0]), np.integer) else 1.0
        else:
            scale = 1.0

    names = [description or "" for description in (dataset.descriptions or ())]
    if sidecar and sidecar["band_names"]:
        names = sidecar["band_names"]
    names = [name or f"B{index + 1}" for index, name in enumerate(names)]
    return RasterInfo(
        path=path, width=dataset.width, height=dataset.height, count=count,
        dtype=str(dataset.dtypes[0]) if count else "uint8",
        crs=dataset.crs, transform=dataset.transform,
        nodata=None if dataset.nodata is None else float(dataset.nodata),
        wavelengths=found, band_names=names, reflectance_scale=float(scale),
        driver=dataset.driver, fwhm=fwhm, reflectance_offset=offset,
        files=tuple(Path(name) for name in (dataset.files or [path])),
    )


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            head = file.read(2048 + 8)
    except OSError:
        return False
    return any(head[offset:offset + 8] == _HDF5_SIGNATURE for offset in (0, 512, 1024, 2048))


def _v73_error(path: Path, key: str | None) -> UserError:
    stem = path.name[: -len(path.suffix)]
    variable = key or "VARIABLE"
    return UserError(
        f"{path.name} is a MATLAB v7.3 (HDF5) file, which scipy cannot read: re-save it as "
        f"v7 in MATLAB/Octave (save('{stem}_v7.mat', '{variable}', '-v7')), or convert it to "
        f".npy with h5py (np.save('{stem}.npy', h5py.File('{path.name}')['{variable}'][()].T); "
        f".T undoes MATLAB's column order, giving (H, W, B))"
    )


def _check_numeric(array: np.ndarray, path: Path, what: str) -> None:
    if array.dtype.kind not in "uif":
        raise UserError(f"{path.name}: {what} has dtype {array.dtype}; expected integer or "
                        f"float reflectance")


def _load_mat(path: Path, key: str | None) -> np.ndarray:
    if _is_hdf5(path):
        raise _v73_error(path, key)
    try:
        import scipy.io
    except ImportError as error:  # pragma: no cover - part of the geo extra
        raise UserError("reading .mat files needs scipy: pip install 'domainvit[geo]'") from error
    try:
        content = scipy.io.loadmat(path, variable_names=[key] if key else None)
    except NotImplementedError as error:  # scipy's own v7.3 refusal
        raise _v73_error(path, key) from error
    except Exception as error:  # scipy raises many types for damaged files
        raise UserError(f"{path.name} is not a MATLAB file scipy can read: corrupted, truncated "
                        f"or another format ({type(error).__name__}: {error})") from error
    variables = {name: value for name, value in content.items() if not name.startswith("__")}
    if key is not None:
        if key not in variables:
            raise UserError(f"{path.name} has no variable {key!r}")
        array = variables[key]
        if not isinstance(array, np.ndarray) or array.ndim != 3:
            shape = getattr(array, "shape", type(array).__name__)
            raise UserError(f"{path.name}: variable {key!r} is {shape}, not a 3D cube")
        _check_numeric(array, path, f"variable {key!r}")
        return array
    cubes = {name: value for name, value in variables.items()
             if isinstance(value, np.ndarray) and value.ndim == 3 and value.dtype.kind in "uif"}
    if len(cubes) == 1:
        return next(iter(cubes.values()))
    listing = ", ".join(f"{name} {getattr(value, 'shape', '?')}" for name, value in
                        variables.items()) or "nothing"
    if not cubes:
        raise UserError(f"{path.name} holds no 3D numeric array (found: {listing})")
    raise UserError(f"{path.name} holds several 3D arrays ({', '.join(cubes)}): name one "
                    f"with key=")


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UserError(f"{path.name} is not a .npy array numpy can read: corrupted, truncated, "
                        f"pickled or another format ({error})") from error
    if not isinstance(array, np.ndarray):
        raise UserError(f"{path.name} holds several arrays (an .npz?); expected one .npy cube")
    if array.ndim != 3:
        raise UserError(f"{path.name} holds an array of shape {array.shape}; expected a 3D "
                        f"cube (H, W, B) or, with layout='BHW', (B, H, W)")
    _check_numeric(array, path, "the array")
    return array


def _array_info(array: np.ndarray, path: Path, layout: Layout, driver: str, wavelengths: Any,
                reflectance_scale: float | None, nodata: float | None) -> RasterInfo:
    if layout == "HWB":
        height, width, count = array.shape
    else:
        count, height, width = array.shape
    fwhm = names = None
    if wavelengths is not None:
        found = _to_nm(wavelengths, None)
    else:
        sidecar = _read_sidecar(path, count) if count else None
        found = sidecar["wavelengths"] if sidecar else None
        fwhm = sidecar["fwhm"] if sidecar else None
        names = sidecar["band_names"] if sidecar else None
    if found is not None and found.size != count:
        other = "BHW" if layout == "HWB" else "HWB"
        other_count = array.shape[0] if layout == "HWB" else array.shape[2]
        hint = (f"; with layout={other!r} it would have {other_count}, matching"
                if found.size == other_count else "")
        raise UserError(f"{path.name} has {count} bands in layout {layout!r} (shape "
                        f"{array.shape}) but {found.size} wavelengths were given{hint}")
    if found is not None:
        found = _validated_wavelengths(found, count, f"the wavelengths given for {path.name}")
    elif count > max(height, width) and height > 0:
        warnings.warn(f"{path.name}: layout {layout!r} gives {count} bands on a {height}x{width} "
                      f"grid; if the array is ({'B, H, W' if layout == 'HWB' else 'H, W, B'}), "
                      f"pass layout={'BHW' if layout == 'HWB' else 'HWB'!r}", stacklevel=3)
    integer = array.dtype.kind in "ui"
    return RasterInfo(
        path=path, width=width, height=height, count=count, dtype=str(array.dtype), crs=None,
        transform=Affine.identity(), nodata=None if nodata is None else float(nodata),
        wavelengths=found, band_names=names or [f"B{index + 1}" for index in range(count)],
        reflectance_scale=reflectance_scale or (10000.0 if integer else 1.0), driver=driver,
        fwhm=fwhm, files=(path,),
    )


def open_raster(
    path: str | os.PathLike[str],
    wavelengths: Sequence[float] | np.ndarray | None = None,
    reflectance_scale: float | None = None,
    *,
    layout: Layout = "HWB",
    key: str | None = None,
    nodata: float | None = None,
    reflectance_range: tuple[float, float] = DEFAULT_REFLECTANCE_RANGE,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    check_valid: bool = True,
) -> RasterSource:
    """Open a reflectance raster for windowed reading (see the module docs).

    ``wavelengths``: band centres in nm, overriding the file's. ``reflectance_scale``:
    reflectance = DN / scale, overriding the file's tags. ``layout``/``key``: for ``.npy``
    and ``.mat`` cubes only. ``nodata``: a nodata value to use instead of the file's (the
    only way to declare one for ``.npy``/``.mat``). ``check_valid``: fail now when the
    raster has no valid pixel. GDAL virtual paths (``/vsi...``, ``s3://``) are passed on.
    """
    if layout not in ("HWB", "BHW"):
        raise ValueError(f"layout must be 'HWB' or 'BHW', not {layout!r}")
    reflectance_scale = _check_scale(reflectance_scale)
    options = {"reflectance_range": reflectance_range, "max_bad_fraction": max_bad_fraction}
    name = os.fspath(path)
    virtual = name.startswith("/vsi") or "://" in name
    path = Path(name)
    if not virtual:
        if not path.exists():
            raise UserError(f"no such file: {path}")
        if path.is_dir():
            raise UserError(f"{path} is a folder; expected a raster file (.tif, .img/.hdr, "
                            f".npy, .mat, or another format GDAL reads)")
    suffix = path.suffix.lower()
    source: RasterSource
    if suffix in (".npy", ".mat") and not virtual:
        array = _load_npy(path) if suffix == ".npy" else _load_mat(path, key)
        info = _array_info(array, path, layout, "NPY" if suffix == ".npy" else "MAT",
                           wavelengths, reflectance_scale, nodata)
        source = _ArraySource(array, layout, info, **options)
    else:
        if suffix == ".hdr" and not virtual:
            path = _envi_data_file(path)
            name = os.fspath(path)
        dataset = _open_gdal(path, name)
        try:
            info = _gdal_info(dataset, path, wavelengths, reflectance_scale)
            if nodata is not None:
                info.nodata = float(nodata)
            source = _GdalSource(dataset, info, **options)
            if nodata is not None:
                source._nodata_values = [float(nodata)] * info.count
                source._use_dataset_mask = False
        except BaseException:
            dataset.close()
            raise
    try:
        info = source.info
        if info.width == 0 or info.height == 0 or info.count == 0:
            raise UserError(f"{path.name} is empty: {info.count} bands of {info.height}x"
                            f"{info.width} pixels")
        if check_valid:
            source._check_has_valid_pixels()
    except BaseException:
        source.close()
        raise
    return source


# ---------------------------------------------------------------------------------------
# Checks


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


# ---------------------------------------------------------------------------------------
# Tiling


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    first, second = (value, value) if isinstance(value, (int, np.integer)) else value
    return int(first), int(second)


def iter_tiles(height: int, width: int, tile: int | tuple[int, int],
               overlap: int = 0) -> Iterator[Tile]:
    """Tiles whose cores (``tile`` x ``tile``, smaller at the bottom/right edges) partition
    the ``height`` x ``width`` raster row by row; each read window adds ``overlap`` pixels
    of context on every side, clipped to the raster (:func:`pad_to_context` fills the rest).
    """
    tile_h, tile_w = _pair(tile)
    if tile_h <= 0 or tile_w <= 0:
        raise UserError(f"the tile size must be positive, got {tile}")
    if overlap < 0:
        raise UserError(f"the tile overlap must be 0 or more, got {overlap}")
    for row in range(0, height, tile_h):
        core_h = min(tile_h, height - row)
        read_row0, read_row1 = max(0, row - overlap), min(height, row + core_h + overlap)
        for col in range(0, width, tile_w):
            core_w = min(tile_w, width - col)
            read_col0, read_col1 = max(0, col - overlap), min(width, col + core_w + overlap)
            yield Tile(
                read_window=Window(read_col0, read_row0, read_col1 - read_col0,
                                   read_row1 - read_row0),
                core_window=Window(col, row, core_w, core_h),
                core_offset=(row - read_row0, col - read_col0),
            )


def pad_to_context(array: np.ndarray, tile: Tile, overlap: int,
                   mode: str = "reflect") -> np.ndarray:
    """Pad ``array`` (``(..., h, w)``, read from ``tile.read_window``) to the core plus
    ``overlap`` on every side: ``(..., core_h + 2 * overlap, core_w + 2 * overlap)``.

    Only sides clipped at the raster edge are padded (``np.pad`` ``mode``, reflect by
    default, which also works for rasters smaller than the margin); the core then sits
    at ``[overlap:overlap + core_h, overlap:overlap + core_w]``. Pad the valid mask the
    same way so the model sees which context pixels are real.
    """
    read_h, read_w = int(tile.read_window.height), int(tile.read_window.width)
    if array.shape[-2:] != (read_h, read_w):
        raise ValueError(f"array of spatial shape {array.shape[-2:]} was not read from this "
                         f"tile's read window ({read_h}x{read_w})")
    core_h, core_w = int(tile.core_window.height), int(tile.core_window.width)
    row, col = tile.core_offset
    top, left = overlap - row, overlap - col
    bottom, right = overlap - (read_h - row - core_h), overlap - (read_w - col - core_w)
    if min(top, left, bottom, right) < 0:
        raise ValueError(f"the tile was made with an overlap larger than {overlap}")
    if top == left == bottom == right == 0:
        return array
    widths = [(0, 0)] * (array.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(array, widths, mode=mode)


# ---------------------------------------------------------------------------------------
# Writing


def _same_file(first: Path, second: Path) -> bool:
    try:
        if first.exists() and second.exists():
            return os.path.samefile(first, second)
    except OSError:
        pass
    return first.resolve() == second.resolve()


def _temporary_beside(path: Path) -> Path:
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f".{stem}.{secrets.token_hex(6)}.partial{path.suffix}")


def _rgba(color: Sequence[int], index: int) -> tuple[int, int, int, int]:
    values = [int(value) for value in color]
    if len(values) not in (3, 4) or not all(0 <= value <= 255 for value in values):
        raise ValueError(f"colour of class {index} must be 3 or 4 integers 0..255, got {color}")
    return (*values[:3], values[3] if len(values) == 4 else 255)  # type: ignore[return-value]


class ClassMapWriter:
    """Write a class map (and optionally class probabilities) for a raster, atomically.

    The map is a single-band uint8 GeoTIFF (tiled, deflate) on the input's grid: its CRS
    and transform (none for ``.npy``/``.mat`` inputs, or inputs without a geotransform),
    nodata 0, classes ``1..K``, a colour table (class 0 transparent) and the class names as
    dataset tags ``class_1=...`` (rasterio has no API for GDAL category names, so tags are
    all there is). ``probabilities_path`` adds a float32 GeoTIFF of K bands (descriptions =
    class names, nodata NaN).

    Use as a context manager; :meth:`write` each core window. Both files are written under
    temporary names beside their destination and renamed into place only when the block
    exits without an exception (otherwise they are removed); a stale ``<path>.aux.xml`` is
    removed when its file is replaced. Invalid input pixels: pass ``valid`` to
    :meth:`write` (label 0, probabilities NaN there) or labels already 0 there.
    """

    def __init__(self, path: str | os.PathLike[str], info: RasterInfo,
                 class_names: Sequence[str] | None, colors: Sequence[Sequence[int]] | None = None,
                 probabilities_path: str | os.PathLike[str] | None = None,
                 num_classes: int | None = None, *, block_size: int = 256) -> None:
        self.path = Path(path)
        self.probabilities_path = None if probabilities_path is None else Path(probabilities_path)
        self.info = info
        if num_classes is None:
            if class_names is None:
                raise ValueError("give class_names or num_classes")
            num_classes = len(class_names)
        if class_names is None:
            class_names = [f"class {index}" for index in range(1, num_classes + 1)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        if not 1 <= num_classes <= 255:
            raise UserError(f"a uint8 class map holds 1 to 255 classes (0 is nodata); "
                            f"got {num_classes}")
        self.num_classes = int(num_classes)
        self.class_names = [str(name) for name in class_names]
        if colors is None:
            colors = [DEFAULT_COLORS[index % len(DEFAULT_COLORS)] for index in range(num_classes)]
        if len(colors) != num_classes:
            raise ValueError(f"{len(colors)} colours for {num_classes} classes")
        self.colors = [_rgba(color, index + 1) for index, color in enumerate(colors)]
        if block_size <= 0 or block_size % 16:
            raise ValueError("block_size must be a positive multiple of 16")
        self.block_size = block_size

        outputs = [self.path] + ([self.probabilities_path] if self.probabilities_path else [])
        for output in outputs:
            if output.suffix.lower() not in (".tif", ".tiff"):
                raise UserError(f"cannot write {output.name}: class maps are GeoTIFFs, expected "
                                f"a name ending in .tif or .tiff")
            for source in (info.path, *info.files):
                if _same_file(output, Path(source)):
                    raise UserError(f"refusing to overwrite the input {Path(source).name} with "
                                    f"the class map; choose another output name")
            if output.is_dir():
                raise UserError(f"cannot write {output}: it is a folder")
        if self.probabilities_path and _same_file(self.path, self.probabilities_path):
            raise UserError("the class map and the probabilities need two different file names")
        self.pixels_written = 0
        self._datasets: dict[Path, Any] = {}
        self._temporaries: dict[Path, Path] = {}

    # -- context
    def __enter__(self) -> ClassMapWriter:
        if self._datasets:
            raise ValueError("ClassMapWriter is already open")
        try:
            self._open(self.path, self._map_profile())
            dataset = self._datasets[self.path]
            dataset.write_colormap(1, {0: (0, 0, 0, 0), **{
                index + 1: color for index, color in enumerate(self.colors)}})
            dataset.set_band_description(1, "class")
            dataset.update_tags(
                num_classes=str(self.num_classes), nodata_label="0 = no data / unclassified",
                source=self.info.path.name,
                **{f"class_{index + 1}": name for index, name in enumerate(self.class_names)})
            if self.probabilities_path is not None:
                self._open(self.probabilities_path, self._probability_profile())
                probabilities = self._datasets[self.probabilities_path]
                for index, name in enumerate(self.class_names):
                    probabilities.set_band_description(index + 1, name)
                probabilities.update_tags(source=self.info.path.name,
                                          num_classes=str(self.num_classes))
        except BaseException:
            self._discard()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            for dataset in self._datasets.values():
                dataset.close()
            # the probabilities first: the map, the main product, appears only if both do
            for final, temporary in reversed(self._temporaries.items()):
                os.replace(temporary, final)
                stale, aux = Path(f"{final}.aux.xml"), Path(f"{temporary}.aux.xml")
                if aux.exists():
                    os.replace(aux, stale)
                else:
                    stale.unlink(missing_ok=True)
        except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as error:
            self._discard()
            raise UserError(f"cannot write {self.path.name}: {_gdal_detail(error)}") from error
        finally:
            self._datasets.clear()
            self._temporaries.clear()
        total = self.info.width * self.info.height
        if self.pixels_written != total:
            warnings.warn(f"{self.path.name}: {self.pixels_written} of {total} pixels were "
                          f"written; the rest are nodata (0)", stacklevel=2)

    # -- writing
    def write(self, core_window: Window | tuple, labels: np.ndarray,
              probabilities: np.ndarray | None = None, valid: np.ndarray | None = None) -> None:
        """Write ``labels`` ``(h, w)`` (integers 0..K, 0 = nodata) into ``core_window``.

        ``probabilities`` ``(K, h, w)`` go to the probability raster (ignored without
        ``probabilities_path``, required with it); where ``valid`` (``(h, w)`` bool) is
        False the label is written as 0 and the probabilities as NaN.
        """
        if self.path not in self._datasets:
            raise ValueError("use ClassMapWriter as a context manager: with ... as writer")
        row0, row1, col0, col1 = _window_bounds(core_window, self.info.height, self.info.width)
        shape = (row1 - row0, col1 - col0)
        window = Window(col0, row0, shape[1], shape[0])
        labels = np.asarray(labels)
        if labels.shape != shape:
            raise ValueError(f"labels of shape {labels.shape} for a {shape} window")
        if labels.dtype.kind not in "ui":
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() > self.num_classes):
            raise ValueError(f"labels must be 0..{self.num_classes} (classes are 1-based, 0 = "
                             f"nodata); got {labels.min()}..{labels.max()}")
        labels = labels.astype(np.uint8)
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != shape:
                raise ValueError(f"valid mask of shape {valid.shape} for a {shape} window")
            labels = np.where(valid, labels, np.uint8(0))
        self._datasets[self.path].write(labels, 1, window=window)
        if self.probabilities_path is not None:
            if probabilities is None:
                raise ValueError("this writer has a probabilities_path: pass probabilities")
            probs = np.array(probabilities, dtype=np.float32)
            if probs.shape != (self.num_classes, *shape):
                raise ValueError(f"probabilities of shape {probs.shape}, expected "
                                 f"{(self.num_classes, *shape)}")
            if valid is not None:
                probs[:, ~valid] = np.nan
            self._datasets[self.probabilities_path].write(probs, window=window)
        self.pixels_written += shape[0] * shape[1]

    # -- internals
    def _georeferencing(self) -> dict[str, Any]:
        info = self.info
        if not info.is_gdal or (info.crs is None and info.transform.is_identity):
            return {}
        return {"crs": info.crs, "transform": info.transform}

    def _common_profile(self) -> dict[str, Any]:
        info = self.info
        block = self.block_size
        return {
            "driver": "GTiff", "width": info.width, "height": info.height, "tiled": True,
            "blockxsize": block, "blockysize": block, "compress": "deflate",
            "BIGTIFF": "IF_SAFER", **self._georeferencing(),
        }

    def _map_profile(self) -> dict[str, Any]:
        return {**self._common_profile(), "count": 1, "dtype": "uint8", "nodata": 0}

    def _probability_profile(self) -> dict[str, Any]:
        return {**self._common_profile(), "count": self.num_classes, "dtype": "float32",
                "nodata": float("nan"), "predictor": 3, "interleave": "band"}

    def _open(self, final: Path, profile: dict[str, Any]) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary_beside(final)
        self._temporaries[final] = temporary
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._datasets[final] = rasterio.open(temporary, "w", **profile)
        except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as error:
            raise UserError(f"cannot create {final.name}: {_gdal_detail(error)}") from error

    def _discard(self) -> None:
        """Close and remove every temporary file (after a failure)."""
        for dataset in self._datasets.values():
            try:
                dataset.close()
            except Exception:  # noqa: BLE001 - cleaning up after another error
                pass
        for temporary in self._temporaries.values():
            temporary.unlink(missing_ok=True)
            Path(f"{temporary}.aux.xml").unlink(missing_ok=True)
        self._datasets.clear()
        self._temporaries.clear()
