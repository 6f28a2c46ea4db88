"""Smoky frames and videos in, desmoked frames and videos out.

Reads PNG/JPEG/TIFF frames (8 and 16 bit, RGB) and MP4/AVI/MOV/MKV videos
(:mod:`domainvit.datasets.frames`). Writes, per input ``<stem>``:

- a frame: ``<stem>.desmoked.<suffix>`` (PNG and TIFF keep the input's bit depth; JPEG
  in, 8-bit JPEG out), the input's size;
- a video: ``<stem>.desmoked.mp4`` (``.avi`` for AVI), the input's size and frame rate,
  frame by frame with a progress bar; with ``data.temporal_smoothing`` the correction
  fields are smoothed over frames (an exponential moving average), against flicker;
- ``<stem>.prediction.json``: the input check's record, the outputs' names, the smoke
  density estimate (the mean of :func:`~domainvit.tasks.desmoke.dcp.smoke_density`
  before and after), the processing scale and the frames per second achieved.

Every input is opened and its first frame read and checked before anything is written; a
bad file (unreadable, grayscale, a video without frames, a corrupt container, smaller
than the model's minimum) is refused with one message. Frames larger than ``data.tile``
on a side are processed in overlapping tiles whose correction fields are blended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from domainvit.datasets.frames import (
    VIDEO_SUFFIXES,
    iter_video,
    read_frame,
    video_info,
    write_frame,
    write_video,
)
from domainvit.distribution import InputGuard
from domainvit.errors import UserError
from domainvit.outputs import SIDECAR_SUFFIX, output_stem, write_sidecar
from domainvit.tasks.desmoke.dcp import smoke_density
from domainvit.tasks.desmoke.distribution import compare_frame

__all__ = ["FRAME_SUFFIXES", "Media", "correction_fields", "desmoke_frame", "desmoke_media",
           "desmoke_video", "open_media", "output_path", "predict_media"]

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass
class Media:
    """An opened input: a frame (``frame`` holds it) or a video (``frame`` is its first)."""

    path: Path
    kind: str  # "frame" or "video"
    frame: np.ndarray
    bit_depth: int = 8
    fps: float | None = None
    frames: int | None = None


def open_media(path: Path, min_size: int = 16) -> Media:
    """Open ``path`` and read its first frame; one :class:`UserError` for anything unusable."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        info = video_info(path)
        first = next(iter_video(path), None)
        if first is None:
            raise UserError(f"{path.name}: the video has no frames")
        media = Media(path, "video", first.astype(np.float32) / 255.0, 8, float(info["fps"]),
                      info.get("frames"))
    elif suffix in FRAME_SUFFIXES:
        frame, bits = read_frame(path)
        media = Media(path, "frame", frame, bits)
    else:
        raise UserError(f"{path.name}: not a frame ({', '.join(FRAME_SUFFIXES)}) or a video "
                        f"({', '.join(VIDEO_SUFFIXES)})")
    height, width = media.frame.shape[:2]
    if min(height, width) < min_size:
        raise UserError(f"{path.name} is {width}x{height}; the model needs at least "
                        f"{min_size} pixels on a side")
    return media


def _ramp(length: int, overlap: int) -> torch.Tensor:
    """Blending weights along one tile axis: linear ramps over the overlaps."""
    weights = torch.ones(length)
    if overlap:
        edge = torch.linspace(1 / (overlap + 1), 1 - 1 / (overlap + 1), overlap)
        weights[:overlap] = edge
        weights[-overlap:] = edge.flip(0)
    return weights


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


def correction_fields(model: nn.Module, frames: torch.Tensor, scale: float, tile: int,
                      overlap: int) -> torch.Tensor:
    """The model's correction fields for ``frames [B, 3, H, W]``: in one pass, or for
    frames larger than ``tile`` in overlapping tiles blended with linear ramps. (Written
    here rather than taken from MONAI's sliding-window inference: the fields, not the
    outputs, are blended, and MONAI is not a dependency of this task.)"""
    height, width = frames.shape[-2:]
    if max(height, width) <= tile:
        return model.correction(frames, scale)
    fields = torch.zeros(frames.shape[0], 6, height, width, device=frames.device)
    total = torch.zeros(1, 1, height, width, device=frames.device)
    for top in _starts(height, tile, overlap):
        for left in _starts(width, tile, overlap):
            window = (..., slice(top, top + tile), slice(left, left + tile))
            part = model.correction(frames[window], scale)
            rows = _ramp(part.shape[-2], overlap if height > tile else 0)
            cols = _ramp(part.shape[-1], overlap if width > tile else 0)
            weight = (rows[:, None] * cols[None, :]).to(frames.device)
            fields[window] += part * weight
            total[window] += weight
    return fields / total


@torch.no_grad()
def desmoke_frame(model: nn.Module, data_cfg: Any, frame: np.ndarray,
                  previous: torch.Tensor | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Desmoke one RGB frame ``[H, W, 3]`` in [0, 1]. ``previous``: the correction fields
    of the previous video frame, blended in by ``data.temporal_smoothing``. Returns the
    frame and its (blended) fields."""
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(np.ascontiguousarray(frame.transpose(2, 0, 1)),
                        dtype=torch.float32, device=device)[None]
    fields = correction_fields(model, x, data_cfg.process_scale, data_cfg.tile,
                               data_cfg.tile_overlap)
    if previous is not None and data_cfg.temporal_smoothing > 0:
        fields = data_cfg.temporal_smoothing * previous + (1 - data_cfg.temporal_smoothing) * fields
    out = model.apply(x, fields).clamp(0, 1)
    return out[0].permute(1, 2, 0).cpu().numpy(), fields


def mean_density(frame: np.ndarray) -> float:
    """The mean dark-channel smoke density estimate of an RGB frame ``[H, W, 3]``."""
    tensor = torch.as_tensor(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].float()
    return float(smoke_density(tensor).mean())


def output_path(media: Media, out_dir: Path) -> Path:
    """Where the desmoked copy of ``media`` is written in ``out_dir``."""
    suffix = media.path.suffix.lower()
    if media.kind == "video":
        suffix = ".avi" if suffix == ".avi" else ".mp4"
    return Path(out_dir) / f"{output_stem(media.path)}.desmoked{suffix}"


def desmoke_video(model: nn.Module, data_cfg: Any, media: Media, target: Path,
                  progress: Callable[[int, int | None], None] | None = None) -> dict[str, Any]:
    """Desmoke every frame of ``media`` (a video) into ``target`` (written atomically:
    nothing is left behind if a frame fails). ``progress(done, total)`` is called after
    each frame; without it a tqdm bar goes to stderr. Returns the run's statistics."""
    stats = {"frames": 0, "density_in": 0.0, "density_out": 0.0}
    bar = None if progress else tqdm(total=media.frames, desc=f"desmoke {media.path.name}",
                                     unit="frame")

    def frames() -> Iterator[np.ndarray]:
        previous = None
        for raw in iter_video(media.path):
            frame = raw.astype(np.float32) / 255.0
            out, previous = desmoke_frame(model, data_cfg, frame, previous)
            if stats["frames"] % 10 == 0:  # the density estimate on every 10th frame
                stats["density_in"] += mean_density(frame)
                stats["density_out"] += mean_density(out)
            stats["frames"] += 1
            if bar is not None:
                bar.update(1)
            else:
                progress(stats["frames"], media.frames)
            yield np.round(out * 255).astype(np.uint8)

    started = time.perf_counter()
    try:
        write_video(target, frames(), media.fps, media.frame.shape[1::-1])
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    sampled = max(1, (stats["frames"] + 9) // 10)
    return {"frames": stats["frames"], "fps_processed": round(stats["frames"] / seconds, 3),
            "smoke_density_in": round(stats["density_in"] / sampled, 4),
            "smoke_density_out": round(stats["density_out"] / sampled, 4)}


def desmoke_media(model: nn.Module, data_cfg: Any, media: Media, out_dir: Path, check: Any,
                  progress: Callable[[int, int | None], None] | None = None,
                  ) -> tuple[list[Path], dict[str, Any], np.ndarray | None]:
    """Desmoke one opened and checked input into ``out_dir``: the desmoked file and its
    ``.prediction.json``. Returns their paths, the record, and for a frame the desmoked
    frame (None for a video). ``progress`` as :func:`desmoke_video`."""
    target = output_path(media, out_dir)
    record: dict[str, Any] = {"input": media.path.name, "kind": media.kind,
                              "process_scale": data_cfg.process_scale}
    out = None
    if media.kind == "video":
        record.update(desmoke_video(model, data_cfg, media, target, progress))
        record.update(fps=media.fps, temporal_smoothing=data_cfg.temporal_smoothing)
    else:
        started = time.perf_counter()
        out, _ = desmoke_frame(model, data_cfg, media.frame)
        record["seconds"] = round(time.perf_counter() - started, 3)
        write_frame(target, out, 8 if target.suffix in (".jpg", ".jpeg") else media.bit_depth)
        record.update(bit_depth=media.bit_depth,
                      smoke_density_in=round(mean_density(media.frame), 4),
                      smoke_density_out=round(mean_density(out), 4))
    record.update(outputs=[target.name], input_check=check.record())
    sidecar = write_sidecar(Path(out_dir) / f"{output_stem(media.path)}{SIDECAR_SUFFIX}", record)
    return [target, sidecar], record, out


def predict_media(model: nn.Module, data_cfg: Any, inputs: list[Path], out_dir: Path,
                  guard: InputGuard) -> list[Path]:
    """The task's predictor: every input is opened and checked before anything is written."""
    min_size = getattr(model, "min_size", 16)
    opened = [open_media(Path(path), min_size) for path in inputs]
    checks = [guard.check(media.path.name, compare_frame, media.frame) for media in opened]
    written = []
    for media, check in zip(opened, checks, strict=True):
        written.extend(desmoke_media(model, data_cfg, media, out_dir, check)[0])
    return written
