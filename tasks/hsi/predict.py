"""Classify every pixel of a raster, tile by tile, into a GeoTIFF class map.

The raster is read in tiles with a margin of half a patch (never whole), each tile is
PCA-reduced once, the patches around its pixels go through the model in batches, and
the labels are written into a GeoTIFF with the input's CRS and transform, a colour table,
the class names and nodata (0) wherever the input is nodata. Tiles with no valid pixel
are skipped. Outputs appear only when complete (temporary files renamed at the end), so
a bad tile (say, saturated uint16 values) leaves nothing behind.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from domainvit.datasets.raster.bands import check_bands, require_crs
from domainvit.datasets.raster.class_map import ClassMapWriter
from domainvit.datasets.raster.opening import open_raster
from domainvit.datasets.raster.tiling import iter_tiles, pad_to_context
from domainvit.errors import UserError
from domainvit.tasks.hsi.data import HSIData, class_colors

#: suffixes of the class map and of the optional probability raster
MAP_SUFFIX = ".classes.tif"
PROBA_SUFFIX = ".proba.tif"


def model_bands(model: nn.Module, info) -> np.ndarray:
    """The raster's bands the model reads, in the model's order; a clear error when the
    raster lacks them (the band set is checked by wavelength when both sides know it)."""
    expected = model.band_centres()
    if expected is not None:
        return check_bands(info, expected)
    if info.count != model.cfg.in_bands:
        raise UserError(f"the checkpoint expects {model.cfg.in_bands} bands; {info.path} has "
                        f"{info.count}")
    return np.arange(info.count)


@torch.no_grad()
def classify_tile(model: nn.Module, cube: np.ndarray, margin: int, batch_size: int,
                  device: torch.device) -> torch.Tensor:
    """Class probabilities ``[K, h, w]`` of the core pixels of a tile ``[bands, h + 2m,
    w + 2m]`` (the margin already filled: neighbours, or mirrored at raster edges)."""
    p = 2 * margin + 1
    reduced = model.reduce_bands(torch.from_numpy(cube).to(device)[None])[0]
    windows = reduced.unfold(1, p, 1).unfold(2, p, 1)  # [k, h, w, p, p], a view
    h, w = windows.shape[1:3]
    out = []
    for start in range(0, h * w, batch_size):
        idx = torch.arange(start, min(start + batch_size, h * w), device=device)
        batch = windows[:, idx // w, idx % w].permute(1, 0, 2, 3)
        out.append(torch.softmax(model.forward_reduced(batch.contiguous()).float(), dim=1))
    return torch.cat(out).T.reshape(-1, h, w)


def classify_raster(model: nn.Module, data: HSIData, path: Path, out_dir: Path,
                    progress: Callable | None = None) -> list[Path]:
    """Classify ``path`` into ``out_dir/<stem>.classes.tif`` (and ``.proba.tif`` with
    ``data.write_probabilities``); returns the written paths.

    ``progress(done, total)`` is called after every tile (the dashboard's progress bar);
    without it a tqdm bar goes to stderr.
    """
    from tqdm.auto import tqdm

    from domainvit.outputs import output_stem

    path, out_dir = Path(path), Path(out_dir)
    device = next(model.parameters()).device
    margin = data.patch_size // 2
    stem = output_stem(path)
    map_path = out_dir / f"{stem}{MAP_SUFFIX}"
    proba_path = out_dir / f"{stem}{PROBA_SUFFIX}" if data.write_probabilities else None
    with open_raster(path, wavelengths=data.wavelengths, layout=data.layout.upper(),
                     key=data.mat_key) as src:
        info = src.info
        require_crs(info)
        bands = model_bands(model, info)
        tiles = list(iter_tiles(info.height, info.width, data.tile_size, margin))
        bar = None if progress else tqdm(total=len(tiles), desc=f"classify {path.name}",
                                         unit="tile", file=sys.stderr)
        with ClassMapWriter(map_path, info, data.class_names, class_colors(data),
                            probabilities_path=proba_path) as writer:
            for i, tile in enumerate(tiles):
                cube, valid = src.read(tile.read_window, bands=bands)
                core_valid = valid[tile.core_slices]
                if core_valid.any():
                    filled = pad_to_context(cube, tile, margin)
                    probs = classify_tile(model, filled, margin, data.predict_batch_size,
                                          device).cpu().numpy()
                    labels = (probs.argmax(0) + 1).astype(np.uint8)
                else:  # nothing to classify: skip the model
                    labels = np.zeros(core_valid.shape, np.uint8)
                    probs = np.full((len(data.classes), *core_valid.shape), np.nan, np.float32)
                writer.write(tile.core_window, labels, probs if proba_path else None,
                             valid=core_valid)
                if bar is not None:
                    bar.update()
                else:
                    progress(i + 1, len(tiles))
        if bar is not None:
            bar.close()
    return [map_path] + ([proba_path] if proba_path else [])


def predict_rasters(model: nn.Module, data: HSIData, inputs: list[Path], out_dir: Path
                    ) -> list[Path]:
    written: list[Path] = []
    for path in inputs:
        written += classify_raster(model, data, path, out_dir)
    return written
