"""HoloPASWIN's training loss: a weighted sum of complex L1, amplitude L1, wrapped phase L1,
log-spectrum L1 and a physics term (the predicted field propagated back to the sensor
must reproduce the recorded hologram); the weights come from the config (``loss:``)."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from domainvit.optics import propagate
from domainvit.schema import StrictModel

__all__ = ["HoloLossWeights", "holo_loss", "wrapped"]


class HoloLossWeights(StrictModel):
    complex_l1: float = Field(0.2, ge=0)
    amplitude_l1: float = Field(0.4, ge=0)
    phase_l1: float = Field(0.2, ge=0)
    spectrum_l1: float = Field(0.05, ge=0)
    physics: float = Field(0.1, ge=0)


def wrapped(angle: torch.Tensor) -> torch.Tensor:
    """An angle wrapped into [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def holo_loss(pred: torch.Tensor, target: torch.Tensor, hologram: torch.Tensor,
              z_true: torch.Tensor, wavelength_m: float, pixel_m: float, pad_factor: float,
              weights: HoloLossWeights) -> dict[str, torch.Tensor]:
    """The loss terms and their weighted ``total``; ``pred``/``target`` ``[B, 2, H, W]``,
    ``hologram [B, 1, H, W]`` (mean 1), ``z_true [B]`` metres."""
    pred_c = torch.complex(pred[:, 0].float(), pred[:, 1].float())
    target_c = torch.complex(target[:, 0].float(), target[:, 1].float())
    terms = {
        "complex_l1": (pred_c - target_c).abs().mean(),
        "amplitude_l1": (pred_c.abs() - target_c.abs()).abs().mean(),
        # the phase difference, weighted by the target's amplitude (phase is undefined
        # where the object absorbs everything)
        "phase_l1": (wrapped(torch.angle(pred_c * target_c.conj())).abs()
                     * target_c.abs().detach()).mean(),
        "spectrum_l1": (torch.log1p(torch.fft.fft2(pred_c, norm="ortho").abs())
                        - torch.log1p(torch.fft.fft2(target_c, norm="ortho").abs())).abs().mean(),
    }
    if weights.physics:
        sensor = propagate(pred_c, z_true.double(), wavelength_m, pixel_m, pad_factor=pad_factor)
        intensity = sensor.abs().square()
        # the hologram is scaled to mean 1; so is the re-propagated intensity
        intensity = intensity / intensity.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
        terms["physics"] = (intensity - hologram[:, 0].float()).abs().mean()
    terms["total"] = sum(getattr(weights, name) * value for name, value in terms.items())
    return terms
