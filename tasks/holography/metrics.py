"""Reconstruction metrics of complex fields: amplitude and phase PSNR and SSIM
(torchmetrics), the RMS phase error, all after removing the global phase offset.

A reconstruction is defined up to a constant phase; the offset removed is the one that
best aligns the prediction with the truth, ``angle(sum(pred * conj(target)))``. Phase PSNR
and SSIM take ``data_range = 2 pi`` (phases live on a circle of that length) and the phase
difference wrapped into [-pi, pi), so a 2 pi jump is no error; amplitude PSNR and SSIM take
``data_range = 1`` (a transmission). Scores are means over holograms; per-hologram values
are kept for the analysis (:meth:`HoloMetrics.per_sample`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from domainvit.distributed import gather_objects
from domainvit.tasks.holography.loss import wrapped

__all__ = ["HoloMetrics", "align_phase", "field_scores"]


def align_phase(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``pred`` (complex ``[B, H, W]``) times the constant phase that best aligns it with
    ``target``."""
    offset = torch.angle((pred * target.conj()).sum(dim=(-2, -1), keepdim=True))
    return pred * torch.polar(torch.ones_like(offset), -offset)


def _psnr(error: torch.Tensor, data_range: float) -> torch.Tensor:
    mse = error.square().mean(dim=(-2, -1)).clamp_min(1e-20)
    return 10 * torch.log10(data_range**2 / mse)


def field_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-hologram scores of complex fields ``pred``/``target`` ``[B, H, W]``."""
    pred = align_phase(pred.to(torch.complex64), target.to(torch.complex64))
    phase_error = wrapped(torch.angle(pred) - torch.angle(target))
    amp_p, amp_t = pred.abs(), target.abs()
    # the target's phase with the prediction's error on it, wrapped together: SSIM of phase
    phase_t = torch.angle(target)
    phase_p = phase_t + phase_error
    return {
        "phase_psnr": _psnr(phase_error, 2 * math.pi),
        "phase_ssim": ssim(phase_p[:, None], phase_t[:, None], data_range=2 * math.pi,
                           reduction="none"),
        "phase_rmse": phase_error.square().mean(dim=(-2, -1)).sqrt(),
        "amplitude_psnr": _psnr(amp_p - amp_t, 1.0),
        "amplitude_ssim": ssim(amp_p[:, None], amp_t[:, None], data_range=1.0,
                               reduction="none"),
    }


class HoloMetrics:
    """The task's metrics (``TaskMetrics``): updated with model outputs ``[B, 2, H, W]``
    and targets of the same shape."""

    def __init__(self) -> None:
        self.scores: dict[str, list[torch.Tensor]] = {}

    def to(self, device: torch.device) -> HoloMetrics:
        return self

    def reset(self) -> None:
        self.scores = {}

    def update(self, outputs: torch.Tensor, target: torch.Tensor) -> None:
        pred = torch.complex(outputs[:, 0].float(), outputs[:, 1].float())
        truth = torch.complex(target[:, 0].float(), target[:, 1].float())
        for name, value in field_scores(pred.detach().cpu(), truth.cpu()).items():
            self.scores.setdefault(name, []).append(value)

    def per_sample(self) -> dict[str, torch.Tensor]:
        """Every hologram's scores; under DDP every rank's, gathered (a collective)."""
        local = {name: torch.cat(values) for name, values in self.scores.items()}
        parts = gather_objects(local)
        names = dict.fromkeys(name for part in parts for name in part)
        return {name: torch.cat([part[name] for part in parts if name in part])
                for name in names}

    def compute(self) -> dict[str, Any]:
        return {name: float(values.mean()) for name, values in self.per_sample().items()}
