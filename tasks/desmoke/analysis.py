"""Functions for scoring desmoking methods on paired frames and sequences (the results
benchmark and the notebooks): load pairs, run a method over them, score, time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from domainvit.datasets.frames import find_pairs, read_pair
from domainvit.tasks.desmoke.dcp import dehaze_dark_channel
from domainvit.tasks.desmoke.metrics import ciede2000, flicker, psnr, ssim
from domainvit.tasks.desmoke.predict import desmoke_frame

__all__ = ["dcp_method", "frames_per_second", "load_pairs", "load_sequences", "model_method",
           "score", "score_sequences", "video_method"]

#: a method: smoky RGB frame [H, W, 3] in [0, 1] -> desmoked frame
Method = Callable[[np.ndarray], np.ndarray]


def load_pairs(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The smoky and clean frames (``[H, W, 3]`` float32) of a folder of pairs."""
    pairs = [read_pair(*paths)[:2] for paths in find_pairs(folder)]
    return [smoky for smoky, _ in pairs], [clean for _, clean in pairs]


def load_sequences(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(smoky [T, H, W, 3], clean [T, H, W, 3])`` of every sequence folder in ``folder``."""
    sequences = []
    for sequence in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        smoky, clean = load_pairs(sequence)
        sequences.append((np.stack(smoky), np.stack(clean)))
    return sequences


def _tensor(frames: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2)))


def model_method(model: nn.Module, data_cfg: Any, **changes: Any) -> Method:
    """A model's frame-by-frame prediction as ``domainvit predict`` runs it; ``changes``
    override fields of the data config (``process_scale``)."""
    cfg = data_cfg.model_copy(update=changes)
    return lambda frame: desmoke_frame(model, cfg, frame)[0]


def dcp_method(frame: np.ndarray) -> np.ndarray:
    clean = dehaze_dark_channel(_tensor([frame]))["clean"]
    return clean[0].permute(1, 2, 0).numpy()


def score(outputs: list[np.ndarray], clean: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and CIEDE2000 over frames (sizes may differ)."""
    values: dict[str, list[float]] = {"psnr": [], "ssim": [], "ciede2000": []}
    for out, ref in zip(outputs, clean, strict=True):
        o, r = _tensor([np.clip(out, 0, 1)]).float(), _tensor([ref]).float()
        values["psnr"].append(float(psnr(o, r)[0]))
        values["ssim"].append(float(ssim(o, r)[0]))
        values["ciede2000"].append(float(ciede2000(o, r)[0]))
    return {name: float(np.mean(v)) for name, v in values.items()}


def score_sequences(sequences: list[tuple[np.ndarray, np.ndarray]], method: Method | None = None,
                    run_sequence: Callable[[np.ndarray], np.ndarray] | None = None,
                    ) -> dict[str, float]:
    """PSNR, SSIM and temporal flicker (``metrics.flicker``) over sequences, from a
    frame-by-frame ``method`` or a whole-sequence ``run_sequence``."""
    frame_scores, flickers = [], []
    for smoky, clean in sequences:
        out = run_sequence(smoky) if run_sequence else np.stack([method(f) for f in smoky])
        frame_scores.append(score(list(out), list(clean)))
        flickers.append(flicker(_tensor(out).float(), _tensor(clean).float()))
    return {"psnr": float(np.mean([s["psnr"] for s in frame_scores])),
            "ssim": float(np.mean([s["ssim"] for s in frame_scores])),
            "flicker": float(np.mean(flickers))}


def video_method(model: nn.Module, data_cfg: Any, smoothing: float) -> Callable:
    """A model over a sequence as ``domainvit predict`` runs a video: the correction fields
    smoothed over frames by ``smoothing``."""
    cfg = data_cfg.model_copy(update={"temporal_smoothing": smoothing})

    def run(frames: np.ndarray) -> np.ndarray:
        previous, out = None, []
        for frame in frames:
            result, previous = desmoke_frame(model, cfg, frame, previous)
            out.append(result)
        return np.stack(out)
    return run


def frames_per_second(method: Method, frame: np.ndarray, repeats: int = 5) -> float:
    """Frames per second of ``method`` on ``frame`` (after one warm-up run)."""
    method(frame)
    started = time.perf_counter()
    for _ in range(repeats):
        method(frame)
    return repeats / (time.perf_counter() - started)
