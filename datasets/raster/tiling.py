"""Tiling: :func:`iter_tiles` yields :class:`Tile`\\ s whose core windows partition the raster
and whose read windows add ``overlap`` pixels of context (clipped at the edges);
:func:`pad_to_context` reflect-pads what was read so every core has its full margin.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from domainvit.errors import UserError


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
