"""Smoke-removal metrics: PSNR and SSIM (torchmetrics, data range 1), the CIEDE2000 colour
difference (scikit-image, sRGB D65 -> CIELAB) and, for video, the temporal flicker.

Images are ``[B, 3, H, W]`` RGB in [0, 1]. PSNR is capped at 100 dB (a mean squared
error of 1e-10), so identical images score 100 dB instead of infinity and means over
smoke-free frames stay finite. :class:`DesmokeMetrics` also scores the smoky input
itself against the clean image (``input_psnr``, the do-nothing baseline) and the model's
gain over it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab
from torch import Tensor
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from domainvit.distributed import gather_objects

__all__ = ["MAX_PSNR", "DesmokeMetrics", "ciede2000", "ciede2000_lab", "flicker", "psnr",
           "ssim", "temporal_change"]

#: the PSNR of identical images (dB): the cap, a mean squared error of 1e-10
MAX_PSNR = 100.0


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR ``[B]`` (dB, data range 1) of ``[B, C, H, W]`` images, at most
    :data:`MAX_PSNR`."""
    value = peak_signal_noise_ratio(pred.double(), target.double(), data_range=1.0,
                                    reduction="none", dim=(1, 2, 3))
    return value.clamp(max=MAX_PSNR).float()


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image SSIM ``[B]`` (Wang et al. 2004: Gaussian window 11, sigma 1.5, data range
    1; images of at least 11 x 11)."""
    return structural_similarity_index_measure(pred.float(), target.float(), data_range=1.0,
                                              reduction="none")


def ciede2000_lab(lab_pred: np.ndarray, lab_target: np.ndarray) -> np.ndarray:
    """The CIEDE2000 difference (Sharma, Wu and Dalal 2005) of CIELAB colours ``[..., 3]``,
    one value per colour."""
    return deltaE_ciede2000(np.asarray(lab_pred, dtype=np.float64),
                            np.asarray(lab_target, dtype=np.float64), channel_axis=-1)


def ciede2000(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean CIEDE2000 ``[B]`` of sRGB images ``[B, 3, H, W]`` in [0, 1] (computed
    on the CPU)."""
    def lab(x: Tensor) -> np.ndarray:
        rgb = x.detach().double().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return rgb2lab(rgb, channel_axis=-1)

    difference = ciede2000_lab(lab(pred), lab(target))
    return torch.from_numpy(difference.mean(axis=(1, 2))).float()


def _frames(frames: Tensor) -> Tensor:
    if frames.dim() != 4 or frames.shape[0] < 2:
        raise ValueError(f"a video must be [T, C, H, W] with T >= 2, got {list(frames.shape)}")
    return frames.double()


def temporal_change(frames: Tensor) -> float:
    """The mean absolute frame-to-frame change ``mean |f_t - f_{t-1}|`` of a video
    ``[T, C, H, W]`` (T >= 2)."""
    frames = _frames(frames)
    return float((frames[1:] - frames[:-1]).abs().mean())


def flicker(outputs: Tensor, clean: Tensor) -> float:
    """Temporal flicker of a processed video ``outputs`` against the clean video ``clean``
    (both ``[T, C, H, W]``, T >= 2): ``mean |(o_t - o_{t-1}) - (c_t - c_{t-1})|`` over
    t >= 1, pixels and channels, the frame-to-frame change of the output that the clean
    video does not have. 0 when the output changes exactly as the clean video does (a
    static output of a static scene included), whatever its per-frame error."""
    outputs, clean = _frames(outputs), _frames(clean)
    if outputs.shape != clean.shape:
        raise ValueError(f"outputs {list(outputs.shape)} and clean {list(clean.shape)} differ")
    return float(((outputs[1:] - outputs[:-1]) - (clean[1:] - clean[:-1])).abs().mean())


class DesmokeMetrics:
    """The task's metrics (``TaskMetrics``): ``update(outputs, batch)`` with predictions
    ``[B, 3, H, W]`` (clamped to [0, 1]) and the batch's ``"target"`` (clean
    ``[B, 3, H, W]``) and ``"input"`` (smoky, ``[B, 3, H, W]``, or ``[B, 6, H, W]`` whose
    first three channels are the smoky frame). A target tensor alone is taken too; then
    ``input_psnr`` and ``psnr_gain`` are left out. Scores are means over images;
    ``colour=False`` leaves out the (slow, CPU) CIEDE2000.
    """

    def __init__(self, colour: bool = True) -> None:
        self.colour = colour
        self.reset()

    def to(self, device: torch.device) -> DesmokeMetrics:
        return self

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.input_count = 0

    def _add(self, name: str, values: Tensor) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(values.double().sum())

    def update(self, outputs: Tensor, batch: dict[str, Tensor] | Tensor) -> None:
        target = batch["target"] if isinstance(batch, dict) else batch
        if outputs.dim() != 4 or outputs.shape[1] != 3 or outputs.shape != target.shape:
            raise ValueError(f"outputs and targets must be [B, 3, H, W] alike, got "
                             f"{list(outputs.shape)}, {list(target.shape)}")
        pred = outputs.detach().float().clamp(0, 1)
        target = target.detach().float().to(pred.device)
        self._add("psnr", psnr(pred, target))
        self._add("ssim", ssim(pred, target))
        if self.colour:
            self._add("ciede2000", ciede2000(pred, target))
        self.count += pred.shape[0]
        if isinstance(batch, dict) and "input" in batch:
            smoky = batch["input"].detach()[:, :3].float().to(pred.device)
            self._add("input_psnr", psnr(smoky, target))
            self.input_count += pred.shape[0]

    def compute(self) -> dict[str, Any]:
        """Means over every image; under DDP over every rank's (a collective)."""
        sums: dict[str, float] = {}
        count = input_count = 0
        for part_sums, part_count, part_inputs in gather_objects(
                (self.sums, self.count, self.input_count)):
            for name, total in part_sums.items():
                sums[name] = sums.get(name, 0.0) + total
            count += part_count
            input_count += part_inputs
        if count == 0:
            return {}
        scores = {name: total / count for name, total in sums.items()
                  if name != "input_psnr"}
        if input_count == count:
            scores["input_psnr"] = sums["input_psnr"] / count
            scores["psnr_gain"] = scores["psnr"] - scores["input_psnr"]
        return scores
