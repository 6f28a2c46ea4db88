"""The desmoking loss: L1 + SSIM + frequency (FFT amplitude) terms, weights from config.

- ``l1``: mean absolute error of the RGB frame;
- ``ssim``: ``1 - SSIM`` (torchmetrics, Gaussian window 11, data range 1): structure and
  local contrast, which smoke flattens;
- ``frequency``: mean absolute difference of the 2-D FFT amplitudes (orthonormal), which
  weights the fine detail that pixel losses let blur.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torchmetrics.functional.image import structural_similarity_index_measure

from domainvit.schema import StrictModel

__all__ = ["DesmokeLossWeights", "desmoke_loss"]


class DesmokeLossWeights(StrictModel):
    l1: float = Field(1.0, ge=0)
    ssim: float = Field(0.2, ge=0)
    frequency: float = Field(0.05, ge=0)


def desmoke_loss(outputs: torch.Tensor, target: torch.Tensor,
                 weights: DesmokeLossWeights) -> dict[str, torch.Tensor]:
    """The weighted terms and their ``total`` for ``outputs`` and ``target`` ``[B, 3, H, W]``."""
    outputs = outputs.float()
    target = target.float()
    terms = {"l1": (outputs - target).abs().mean()}
    terms["ssim"] = 1 - structural_similarity_index_measure(outputs, target, data_range=1.0)
    terms["frequency"] = (torch.fft.rfft2(outputs, norm="ortho").abs()
                          - torch.fft.rfft2(target, norm="ortho").abs()).abs().mean()
    terms["total"] = sum(getattr(weights, name) * value for name, value in terms.items())
    return terms
