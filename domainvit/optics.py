"""Scalar diffraction: the angular spectrum method, differentiable, on complex64 fields.

``propagate(field, z, wavelength, pixel)`` carries a sampled complex field ``[..., H, W]``
over a distance ``z`` (negative: back-propagation) with the transfer function

    H(fx, fy) = exp(i 2 pi z (sqrt(1/lambda^2 - fx^2 - fy^2) - 1/lambda))

which is unitary on the propagating band. Three things make it right on real grids,
where the usual one-liner is not:

- **evanescent waves removed**: where ``fx^2 + fy^2 >= 1/lambda^2`` the transfer function
  is 0 (those waves decay within a wavelength), not clamped to 1;
- **band limit** (Matsushima & Shimobaba, Opt. Express 2009): over a long distance the
  transfer function's phase varies faster than the frequency grid samples it and aliases;
  frequencies above ``1 / (lambda sqrt((2 df z)^2 + 1))`` per axis (``df`` the grid's
  frequency step) are removed;
- **padding** against the circular wrap-around of the FFT: the field is padded to
  ``pad_factor`` times its size (with zeros, or with the mean of its border, which suits
  an inline hologram whose background is a plane wave) and cropped back.

The carrier ``exp(i 2 pi z / lambda)`` is left out: a plane wave keeps phase 0, so phases
are comparable between distances. Phase arguments are computed in float64 (``z /
lambda`` is about 4e4 cycles at 20 mm) and the transfer function cast to complex64.

No library does this for PyTorch tensors with gradients (``diffractsim`` and ``LightPipes``
are NumPy, without band limiting or autograd), so it is written here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "PAD_VALUES",
    "band_fraction",
    "band_limit_frequency",
    "critical_distance",
    "frequency_grid",
    "pad_field",
    "propagate",
    "transfer_function",
]

#: how ``propagate`` fills the padding
PAD_VALUES = ("zero", "mean")


def frequency_grid(shape: Sequence[int], pixel: float, device: torch.device | str | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial frequencies (cycles per metre) of an FFT grid ``(H, W)``, float64 ``[H, W]``
    each (``fy`` varies along rows, ``fx`` along columns), in FFT order."""
    height, width = shape
    fy = torch.fft.fftfreq(height, d=pixel, dtype=torch.float64, device=device)
    fx = torch.fft.fftfreq(width, d=pixel, dtype=torch.float64, device=device)
    return torch.meshgrid(fy, fx, indexing="ij")[::-1]


def band_limit_frequency(n: int, pixel: float, wavelength: float, z: float) -> float:
    """The highest frequency (cycles/m) an ``n``-sample axis carries unaliased over ``z``."""
    step = 1.0 / (n * pixel)
    return 1.0 / (wavelength * math.sqrt((2.0 * step * abs(z)) ** 2 + 1.0))


def band_fraction(n: int, pixel: float, wavelength: float, z: float) -> float:
    """The band-limited frequency as a fraction of the grid's Nyquist frequency (at most 1):
    how much of the sampled band survives propagation over ``z`` on ``n`` samples."""
    return min(1.0, band_limit_frequency(n, pixel, wavelength, z) * 2.0 * pixel)


def critical_distance(n: int, pixel: float, wavelength: float, fraction: float = 0.5) -> float:
    """The distance beyond which an ``n``-sample axis keeps less than ``fraction`` of its
    band (``band_fraction`` falls below it)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    # band_fraction = 2 p / (lambda sqrt((2 z / (n p))^2 + 1)) = fraction, solved for z
    ratio = 2.0 * pixel / (wavelength * fraction)
    if ratio <= 1.0:
        return 0.0
    return 0.5 * n * pixel * math.sqrt(ratio**2 - 1.0)


def transfer_function(shape: Sequence[int], wavelength: float, pixel: float,
                      z: float | torch.Tensor, band_limit: bool = True,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """The angular-spectrum transfer function on an FFT grid ``shape`` (FFT order).

    ``z`` is a float (result ``[H, W]``) or a 1-D tensor of distances (result
    ``[len(z), H, W]``), in metres; complex64.
    """
    if wavelength <= 0 or pixel <= 0:
        raise ValueError(f"wavelength and pixel must be positive, got {wavelength}, {pixel}")
    fx, fy = frequency_grid(shape, pixel, device)
    squared = fx**2 + fy**2
    inverse = 1.0 / wavelength
    propagating = squared < inverse**2
    # sqrt(1/l^2 - f^2) - 1/l written without cancellation
    kz = -squared / (inverse + torch.sqrt(torch.clamp(inverse**2 - squared, min=0.0)))
    distances = torch.as_tensor(z, dtype=torch.float64, device=fx.device)
    batched = distances.dim() == 1
    distances = distances.reshape(-1, 1, 1)
    keep = propagating.unsqueeze(0).expand(distances.shape[0], -1, -1)
    if band_limit:
        limits = []
        for distance in distances.flatten().tolist():
            limit_y = band_limit_frequency(shape[0], pixel, wavelength, distance)
            limit_x = band_limit_frequency(shape[1], pixel, wavelength, distance)
            limits.append((fy.abs() < limit_y) & (fx.abs() < limit_x))
        keep = keep & torch.stack(limits)
    phase = 2.0 * math.pi * distances * kz
    transfer = torch.polar(keep.to(torch.float64), phase).to(torch.complex64)
    return transfer if batched else transfer[0]


def pad_field(field: torch.Tensor, pad_factor: float, pad_value: str = "mean",
              ) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """``field [..., H, W]`` padded to about ``pad_factor`` times its size on each axis,
    centred, and the ``(top, bottom, left, right)`` widths to crop it back with."""
    if pad_value not in PAD_VALUES:
        raise ValueError(f"pad_value must be one of {PAD_VALUES}, got {pad_value!r}")
    if pad_factor < 1:
        raise ValueError(f"pad_factor must be at least 1, got {pad_factor}")
    height, width = field.shape[-2:]
    extra_h = int(round(height * (pad_factor - 1)))
    extra_w = int(round(width * (pad_factor - 1)))
    widths = (extra_h // 2, extra_h - extra_h // 2, extra_w // 2, extra_w - extra_w // 2)
    if not any(widths):
        return field, widths
    lead = field.shape[:-2]
    flat = field.reshape(-1, height, width)
    if pad_value == "mean":
        border = torch.cat([flat[:, 0], flat[:, -1], flat[:, 1:-1, 0], flat[:, 1:-1, -1]], dim=1)
        fill = border.mean(dim=1).reshape(-1, 1, 1)
    else:
        fill = torch.zeros((flat.shape[0], 1, 1), dtype=flat.dtype, device=flat.device)
    top, bottom, left, right = widths
    # F.pad has no complex support: pad the deviation from the fill with zeros
    deviation = torch.view_as_real(flat - fill).permute(0, 3, 1, 2)
    deviation = F.pad(deviation, (left, right, top, bottom))
    padded = torch.view_as_complex(deviation.permute(0, 2, 3, 1).contiguous()) + fill
    return padded.reshape(*lead, *padded.shape[-2:]), widths


def propagate(field: torch.Tensor, z: float | torch.Tensor, wavelength: float, pixel: float,
              pad_factor: float = 2.0, pad_value: str = "mean", band_limit: bool = True,
              ) -> torch.Tensor:
    """Propagate ``field [..., H, W]`` (complex) over ``z`` metres (a float, or one distance
    per item of the first axis as a 1-D tensor); same shape out, complex64.

    Differentiable in ``field``. ``pad_factor`` 1 means no padding (the FFT's circular
    boundary); ``pad_value`` ``"zero"`` or ``"mean"`` (the field's border mean).
    """
    if not torch.is_complex(field):
        raise TypeError(f"field must be complex, got {field.dtype}")
    field = field.to(torch.complex64)
    height, width = field.shape[-2:]
    padded, (top, bottom, left, right) = pad_field(field, pad_factor, pad_value)
    transfer = transfer_function(padded.shape[-2:], wavelength, pixel, z, band_limit,
                                 device=field.device)
    if transfer.dim() == 3:
        if padded.dim() < 3 or padded.shape[0] != transfer.shape[0]:
            raise ValueError(f"{transfer.shape[0]} distances for a field of shape "
                             f"{list(field.shape)}: give one per item of the first axis")
        transfer = transfer.reshape(transfer.shape[0], *([1] * (padded.dim() - 3)),
                                    *transfer.shape[-2:])
    out = torch.fft.ifft2(torch.fft.fft2(padded) * transfer)
    return out[..., top:top + height, left:left + width]
