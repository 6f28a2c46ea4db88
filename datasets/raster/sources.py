"""Reading windows of an open raster as reflectance, with the nodata and overflow policy.

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
  isolated suspect pixels are marked invalid instead, with one warning per source. When the
  file declares no reflectance scale (``RasterInfo.scale_declared``) the cause named is
  the units (digital numbers, not scaled reflectance), not an overflow.
- ``read(..., check_range=False)`` and :meth:`RasterSource.sample` skip the overflow guard
  (pixels at the integer limit are still invalid): for checks that must look at the values
  before deciding what they mean (the band set and units come before value ranges).
- ``open_raster`` checks by default that the raster has at least one valid pixel, reading
  strips from the top until it finds one (an entirely-nodata raster is read once, in full).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from domainvit.datasets.raster.info import CPLE_BaseError, Layout, RasterInfo, _gdal_detail
from domainvit.datasets.raster.tiling import _window_bounds
from domainvit.errors import UserError

#: plausible surface reflectance; beyond it a value is taken as overflow or a wrong scale
DEFAULT_REFLECTANCE_RANGE = (-0.5, 1.5)


#: share of a read's valid pixels that may be suspect before reading fails
DEFAULT_MAX_BAD_FRACTION = 1e-3


#: bytes read per strip by the "has a valid pixel" check at open
_SCAN_BYTES = 64 * 1024**2


#: pixels :meth:`RasterSource.sample` reads at most, and the side of its square blocks
SAMPLE_PIXELS = 65536
SAMPLE_BLOCK = 32


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

    @property
    def reflectance_range(self) -> tuple[float, float]:
        """Reflectance beyond which a value is suspect (the overflow guard)."""
        return self._range

    @reflectance_range.setter
    def reflectance_range(self, value: tuple[float, float]) -> None:
        self._range = (float(value[0]), float(value[1]))

    # -- reading
    def read(self, window: Window | tuple | None = None,
             bands: Sequence[int] | np.ndarray | None = None,
             check_range: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``(B, h, w)`` float32 and the valid mask ``(h, w)`` of ``window``.

        ``window``: a rasterio :class:`~rasterio.windows.Window` (or ``((row0, row1),
        (col0, col1))``) inside the raster, whole raster when None. ``bands``: 0-based band
        indices, all when None; the nodata rule is applied over the bands read.
        ``check_range=False`` skips the overflow guard: values outside the reflectance range
        are returned as they are (pixels at the integer type's limit are still invalid).
        """
        if self.closed:
            raise ValueError(f"{self.path.name} is closed")
        info = self.info
        row0, row1, col0, col1 = (
            (0, info.height, 0, info.width) if window is None
            else _window_bounds(window, info.height, info.width))
        indices = _band_indices(bands, info.count)
        raw = self._read_raw((row0, row1), (col0, col1), indices)
        return self._to_reflectance(raw, indices, (row0, row1), (col0, col1), check_range)

    def sample(self, bands: Sequence[int] | np.ndarray | None = None,
               max_pixels: int = SAMPLE_PIXELS, block: int = SAMPLE_BLOCK) -> np.ndarray:
        """Reflectance ``[N, B]`` of the valid pixels among at most ``max_pixels`` pixels:
        the whole raster when it is that small, else square blocks spread evenly over it.
        Read without the overflow guard (``check_range=False``), for checks of what the
        values mean."""
        info = self.info
        height, width = info.height, info.width
        if height * width <= max_pixels:
            windows = [((0, height), (0, width))]
        else:
            side_h, side_w = min(block, height), min(block, width)
            count = max(1, max_pixels // (side_h * side_w))
            rows_n = max(1, min(height // side_h, round(math.sqrt(count * height / width))))
            cols_n = max(1, min(width // side_w, count // rows_n))
            windows = [((int(r), int(r) + side_h), (int(c), int(c) + side_w))
                       for r in np.linspace(0, height - side_h, rows_n).round()
                       for c in np.linspace(0, width - side_w, cols_n).round()]
        spectra = []
        for window in windows:
            cube, valid = self.read(window, bands=bands, check_range=False)
            spectra.append(cube[:, valid].T)
        return np.concatenate(spectra) if spectra else np.zeros((0, 0), np.float32)

    def _to_reflectance(self, raw: np.ndarray, indices: list[int], rows: tuple[int, int],
                        cols: tuple[int, int], check_range: bool = True
                        ) -> tuple[np.ndarray, np.ndarray]:
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
        if not check_range:
            suspect_entries = at_limit
        suspect = suspect_entries.any(axis=0)
        if suspect.any() and not check_range:
            valid &= ~suspect
            measured &= valid[None]
        elif suspect.any():
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
        elif high > self._range[1] and not info.scale_declared:
            assumed = (f"read as reflectance x {info.reflectance_scale:g}"
                       if info.reflectance_scale != 1 else "read as reflectance")
            cause = (f"{info.dtype} values up to {high * info.reflectance_scale:g} with no "
                     f"reflectance scale declared ({assumed}): these are digital numbers "
                     f"(another sensor's counts or radiance), not reflectance; convert the "
                     f"data to reflectance, or pass reflectance_scale (or tag the file with "
                     f"reflectance_scale) if it is scaled reflectance")
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

    def check_has_valid_pixels(self) -> None:
        """Raise when no pixel is valid (what ``open_raster`` does unless ``check_valid``
        is false)."""
        self._check_has_valid_pixels()

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
