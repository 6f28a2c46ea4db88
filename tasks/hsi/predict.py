"""Classify every pixel of a raster, tile by tile, into a GeoTIFF class map.

Before the model runs, the raster is checked against the checkpoint's training
distribution (:mod:`domainvit.tasks.hsi.distribution`): the band set first (a missing
band is an error), then the units (refused unless forced), then the unusual (warned).
The raster is read in tiles with a margin of half a patch (never whole), each tile is
PCA-reduced once, the patches around its pixels go through the model in batches, and
the labels are written into a GeoTIFF with the input's CRS and transform, a colour table,
the class names and nodata (0) wherever the input is nodata; beside it the confidence
map (``<stem>.confidence.tif``: the maximum class probability of every pixel, float32,
NaN at nodata) and the sidecar ``<stem>.prediction.json`` (the input check, the mean
maximum probability and normalised entropy per predicted class, and for Sentinel-2
products the level, processing baseline and radiometric offset the reader applied).
Tiles with no valid pixel are skipped. Outputs appear only when complete (temporary
files renamed at the end), so a bad tile (say, saturated uint16 values) leaves nothing
behind.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from domainvit.confidence import ConfidenceSummary
from domainvit.datasets.raster.bands import require_crs
from domainvit.datasets.raster.class_map import ClassMapWriter
from domainvit.datasets.raster.opening import open_raster
from domainvit.datasets.raster.sources import RasterSource
from domainvit.datasets.raster.tiling import iter_tiles, pad_to_context
from domainvit.distribution import InputCheck, InputGuard
from domainvit.tasks.hsi import distribution
from domainvit.tasks.hsi.data import HSIData, class_colors

#: suffixes of the class map, the confidence map and the optional probability raster
MAP_SUFFIX = ".classes.tif"
CONFIDENCE_SUFFIX = ".confidence.tif"
PROBA_SUFFIX = ".proba.tif"


def model_bands(model: nn.Module, info, reference: dict | None = None) -> np.ndarray:
    """The raster's bands the model reads, in the model's order; an error naming the
    input's band set and the model's when the raster lacks them (by wavelength when both
    sides know theirs, else by count): :func:`distribution.model_bands`."""
    return distribution.model_bands(model.band_centres(), model.cfg.in_bands, info, reference)


def check_input(model: nn.Module, source: RasterSource, guard: InputGuard | None
                ) -> tuple[np.ndarray, InputCheck]:
    """Check an open raster before the model sees it, most fundamental first: the CRS and
    the band set (errors), then :func:`distribution.compare_raster` through ``guard``
    (refusals raise unless forced; warnings reported); then that it has a valid pixel.
    A forced refusal of the units lifts the overflow guard's reflectance range, so the
    values are classified as they are. Returns the bands to read and the check."""
    info = source.info
    require_crs(info)
    reference = guard.reference if guard is not None else None
    bands = model_bands(model, info, reference)
    if guard is None:
        check = InputCheck(info.path.name, checked=False)
    else:
        check = guard.check(info.path.name, distribution.compare_raster,
                            distribution.RasterSample.read(source, bands))
    if any(f.aspect == "units" for f in check.refusals):
        source.reflectance_range = (-np.inf, np.inf)
    source.check_has_valid_pixels()
    return bands, check


@torch.no_grad()
def classify_tile(model: nn.Module, cube: np.ndarray, margin: int, batch_size: int,
                  device: torch.device) -> torch.Tensor:
    """Class probabilities ``[K, h, w]`` of the core pixels of a tile ``[bands, h + 2m,
    w + 2m]`` (the margin already filled: neighbours, or mirrored at raster edges).

    Per-pixel models run the ``P x P`` patch of every pixel, ``batch_size`` patches at a
    time. Dense models (:attr:`VPHype.dense_block` ``b > 0``) cover the core with ``b x b``
    blocks anchored at its top-left pixel (the tile mirrored at the bottom/right until the
    core is a multiple of ``b``, as :func:`~domainvit.tasks.hsi.data.pad_block_grid` pads
    a scene for evaluation, and cropped after) and run one
    ``W x W`` window per block, as many windows per batch as hold about as many tokens as
    ``batch_size`` patches: one pass classifies ``b * b`` pixels, and long batches spread
    the Mamba scan's per-step cost (a Python loop over the ``W * W`` tokens) over many
    windows.
    """
    block = getattr(model, "dense_block", 0)
    if block:
        return _classify_tile_dense(model, cube, margin, block, batch_size, device)
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


def dense_batch_windows(model: nn.Module, batch_size: int) -> int:
    """Windows per batch of a dense model: about the tokens of ``batch_size`` patches."""
    return max(1, round(batch_size * model.patch_size ** 2 / model.window ** 2))


def _classify_tile_dense(model: nn.Module, cube: np.ndarray, margin: int, block: int,
                         batch_size: int, device: torch.device) -> torch.Tensor:
    h, w = cube.shape[1] - 2 * margin, cube.shape[2] - 2 * margin
    size = model.window
    if size != 2 * margin + block:
        raise ValueError(f"the tile margin {margin} does not match the model's "
                         f"{size}x{size} windows of {block}x{block} blocks")
    # the tile's margin is filled already: only the bottom/right round-up is mirrored here
    padded = cube
    extra_h, extra_w = (-h) % block, (-w) % block
    if extra_h or extra_w:
        padded = np.pad(cube, [(0, 0), (0, extra_h), (0, extra_w)], mode="reflect")
    reduced = model.reduce_bands(torch.from_numpy(padded).to(device)[None])[0]
    windows = reduced.unfold(1, size, block).unfold(2, size, block)  # [k, nh, nw, W, W]
    nh, nw = windows.shape[1:3]
    per_batch = dense_batch_windows(model, batch_size)
    out = []
    for start in range(0, nh * nw, per_batch):
        idx = torch.arange(start, min(start + per_batch, nh * nw), device=device)
        batch = windows[:, idx // nw, idx % nw].permute(1, 0, 2, 3).contiguous()
        out.append(torch.softmax(model.forward_reduced(batch).float(), dim=1))
    probs = torch.cat(out)  # [nh * nw, K, b, b]
    k = probs.shape[1]
    probs = probs.view(nh, nw, k, block, block).permute(2, 0, 3, 1, 4)
    return probs.reshape(k, nh * block, nw * block)[:, :h, :w]


def tile_size(model: nn.Module, data: HSIData) -> int:
    """``data.tile_size``, rounded up to a multiple of a dense model's block: the blocks
    then sit on one grid over the whole raster (as in evaluation), and only the raster's
    last row and column of blocks are mirrored out."""
    block = getattr(model, "dense_block", 0)
    return -(-data.tile_size // block) * block if block else data.tile_size


def classify_raster(model: nn.Module, data: HSIData, path: Path, out_dir: Path,
                    guard: InputGuard | None = None, progress: Callable | None = None
                    ) -> list[Path]:
    """Classify ``path`` into ``out_dir/<stem>.classes.tif`` and ``<stem>.confidence.tif``
    (and ``.proba.tif`` with ``data.write_probabilities``) with the sidecar
    ``<stem>.prediction.json``; returns the written paths, the class map first.

    ``guard`` checks the raster against the checkpoint's training distribution first
    (:func:`check_input`; without one only the band set is checked, and the sidecar says
    the input was not checked). ``progress(done, total)`` is called after every tile (the
    dashboard's progress bar); without it a tqdm bar goes to stderr.
    """
    from tqdm.auto import tqdm

    from domainvit.outputs import SIDECAR_SUFFIX, output_stem, write_sidecar

    path, out_dir = Path(path), Path(out_dir)
    device = next(model.parameters()).device
    margin = data.patch_size // 2
    stem = output_stem(path)
    map_path = out_dir / f"{stem}{MAP_SUFFIX}"
    confidence_path = out_dir / f"{stem}{CONFIDENCE_SUFFIX}"
    proba_path = out_dir / f"{stem}{PROBA_SUFFIX}" if data.write_probabilities else None
    summary = ConfidenceSummary(data.class_names)
    with open_raster(path, wavelengths=data.wavelengths, layout=data.layout.upper(),
                     key=data.mat_key, check_valid=False) as src:
        info = src.info
        bands, check = check_input(model, src, guard)
        tiles = list(iter_tiles(info.height, info.width, tile_size(model, data), margin))
        bar = None if progress else tqdm(total=len(tiles), desc=f"classify {path.name}",
                                         unit="tile", file=sys.stderr)
        with ClassMapWriter(map_path, info, data.class_names, class_colors(data),
                            probabilities_path=proba_path,
                            confidence_path=confidence_path) as writer:
            for i, tile in enumerate(tiles):
                cube, valid = src.read(tile.read_window, bands=bands)
                core_valid = valid[tile.core_slices]
                if core_valid.any():
                    filled = pad_to_context(cube, tile, margin)
                    probs = classify_tile(model, filled, margin, data.predict_batch_size,
                                          device).cpu().numpy()
                    labels = (probs.argmax(0) + 1).astype(np.uint8)
                    summary.update(probs, core_valid)
                else:  # nothing to classify: skip the model
                    labels = np.zeros(core_valid.shape, np.uint8)
                    probs = np.full((len(data.classes), *core_valid.shape), np.nan, np.float32)
                writer.write(tile.core_window, labels, probs if proba_path else None,
                             valid=core_valid, confidence=probs.max(axis=0))
                if bar is not None:
                    bar.update()
                else:
                    progress(i + 1, len(tiles))
        if bar is not None:
            bar.close()
    outputs = [map_path, confidence_path] + ([proba_path] if proba_path else [])
    record = {"input": path.name, "outputs": [p.name for p in outputs],
              "input_check": check.record(), "confidence": summary.as_dict()}
    if info.sentinel2 is not None:  # what the reader took the product to be
        product = info.sentinel2
        record["sentinel2_product"] = {
            "level": product.level, "processing_baseline": product.baseline_text,
            "offset_dn": product.offset_dn, "offset_source": product.offset_source}
    sidecar = write_sidecar(out_dir / f"{stem}{SIDECAR_SUFFIX}", record)
    return outputs + [sidecar]


def predict_rasters(model: nn.Module, data: HSIData, inputs: list[Path], out_dir: Path,
                    guard: InputGuard) -> list[Path]:
    written: list[Path] = []
    for path in inputs:
        written += classify_raster(model, data, path, out_dir, guard)
    return written
