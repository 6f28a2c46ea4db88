"""Smoke removal with the dark channel prior (He, Sun and Tang, "Single image haze removal
using dark channel prior", CVPR 2009; TPAMI 33(12), 2011), the task's classical baseline.

Smoke, like haze, follows the scattering model ``I = J t + A (1 - t)``: the scene ``J``
seen through a transmission ``t`` and mixed with the airlight ``A``. In a clear image most
local patches hold a pixel that is dark in some channel (the *dark channel* is ~0), so the
dark channel of ``I / A`` measures ``1 - t``:

1. dark channel: the minimum over the colour channels, then a ``patch`` x ``patch``
   minimum filter (15 in the papers);
2. airlight ``A``: among the brightest ``top_fraction`` (0.1%) of the dark channel, the
   input pixel of the highest intensity (the mean of R, G and B), its per-channel values,
   as in CVPR 2009 Sec. 4.4 / TPAMI 2011 Sec. 4.4;
3. transmission ``t = 1 - omega * dark(I / A)`` with ``omega = 0.95`` (a little smoke is
   kept for depth perception), refined by the guided filter (He, Sun and Tang, "Guided
   image filtering", ECCV 2010) instead of the matting Laplacian, guided by the grayscale
   input (BT.601 luma; the paper's example guides with the colour image);
4. recovery ``J = (I - A) / max(t, t0) + A`` with ``t0 = 0.1``, clipped to [0, 1].

The guided filter's radius and epsilon are settings. The default, ``r = 20`` and
``eps = 1e-3``, is the ECCV 2010 paper's haze-removal setting (Fig. 10, a 600 x 400
image with the 15-pixel patch): the radius refines the blocks the 15-pixel minimum
filter leaves, so it is tied to the patch (in pixels), like the patch itself, not to
the image size (r = 60 in that paper is its feathering example). On images smaller than
the patch the patch is clamped to the image (and made odd); box windows are clipped at
the borders, so any radius works on any size.

Batched torch (``[B, 3, H, W]`` in [0, 1]), on any device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DarkChannelSettings", "atmospheric_light", "box_mean", "dark_channel",
           "dehaze_dark_channel", "grayscale", "guided_filter", "smoke_density"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, MATLAB's rgb2gray


@dataclass(frozen=True)
class DarkChannelSettings:
    """The dark channel prior's parameters (the papers' values by default)."""

    patch: int = 15
    omega: float = 0.95
    t0: float = 0.1
    top_fraction: float = 0.001
    guided_radius: int = 20
    guided_eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.patch < 1 or self.guided_radius < 0:
            raise ValueError(f"patch must be >= 1 and guided_radius >= 0, got "
                             f"{self.patch}, {self.guided_radius}")
        if not (0 < self.omega <= 1 and 0 < self.t0 < 1 and 0 < self.top_fraction <= 1):
            raise ValueError("omega must be in (0, 1], t0 in (0, 1), top_fraction in (0, 1]")
        if self.guided_eps <= 0:
            raise ValueError(f"guided_eps must be positive, got {self.guided_eps}")


def _check_image(image: Tensor) -> Tensor:
    if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[1] != 3:
        shape = list(image.shape) if isinstance(image, Tensor) else type(image)
        raise ValueError(f"image must be a tensor [B, 3, H, W], got {shape}")
    return image.float() if image.dtype not in (torch.float32, torch.float64) else image


def grayscale(image: Tensor) -> Tensor:
    """BT.601 luma ``[B, 1, H, W]`` of an RGB ``[B, 3, H, W]``."""
    weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device)
    return (image * weights[:, None, None]).sum(dim=1, keepdim=True)


def dark_channel(image: Tensor, patch: int) -> Tensor:
    """The dark channel ``[B, H, W]`` of ``image`` ``[B, C, H, W]``: the minimum over
    channels, then over a ``patch`` x ``patch`` window (clamped to the image, made odd;
    windows are clipped at the borders)."""
    if patch < 1:
        raise ValueError(f"patch must be >= 1, got {patch}")
    size = min(patch, image.shape[-2], image.shape[-1])
    size -= 1 - size % 2
    darkest = image.amin(dim=1, keepdim=True)
    # a minimum filter is a max-pool of the negation; its -inf padding clips the windows
    return -F.max_pool2d(-darkest, size, stride=1, padding=size // 2)[:, 0]


def atmospheric_light(image: Tensor, dark: Tensor, top_fraction: float) -> Tensor:
    """The airlight ``[B, 3]``: among the ``top_fraction`` brightest pixels of ``dark``
    (at least one), the input's pixel of the highest intensity (mean of its channels)."""
    batch, channels = image.shape[:2]
    pixels = image.flatten(2)  # [B, C, N]
    count = max(1, int(top_fraction * pixels.shape[-1]))
    candidates = dark.reshape(batch, -1).topk(count, dim=1).indices  # [B, k]
    values = pixels.gather(2, candidates[:, None].expand(batch, channels, count))
    brightest = values.mean(dim=1).argmax(dim=1)  # [B]
    return values[torch.arange(batch, device=image.device), :, brightest]


def box_mean(x: Tensor, radius: int) -> Tensor:
    """The mean of ``x`` ``[..., H, W]`` over ``(2 radius + 1)^2`` windows clipped to the
    image, in O(1) per pixel (running sums along each axis)."""
    for dim in (-2, -1):
        n = x.shape[dim]
        index = torch.arange(n, device=x.device)
        low, high = (index - radius).clamp(0, n), (index + radius + 1).clamp(0, n)
        zero = torch.zeros_like(x.narrow(dim, 0, 1))
        sums = torch.cat([zero, x.cumsum(dim)], dim=dim)
        shape = [1] * x.dim()
        shape[dim] = n
        count = (high - low).to(x.dtype).reshape(shape)
        x = (sums.index_select(dim, high) - sums.index_select(dim, low)) / count
    return x


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """The guided filter (He, Sun and Tang, ECCV 2010, Algorithm 1) of ``src``
    ``[B, C, H, W]`` under a grayscale ``guide`` ``[B, 1, H, W]``: in each window
    ``q = a I + b`` with ``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a mean(I)``,
    and the coefficients averaged over the windows covering each pixel.

    Written here with box filters (running sums, O(1) per pixel) because no maintained
    torch or numpy guided filter on PyPI fits this project's dependencies (OpenCV's
    ``ximgproc.guidedFilter`` is in opencv-contrib, a heavy dependency).
    """
    if guide.dim() != 4 or guide.shape[1] != 1 or src.dim() != 4:
        raise ValueError(f"guide must be [B, 1, H, W] and src [B, C, H, W], got "
                         f"{list(guide.shape)}, {list(src.shape)}")
    if guide.shape[0] != src.shape[0] or guide.shape[-2:] != src.shape[-2:]:
        raise ValueError(f"guide {list(guide.shape)} and src {list(src.shape)} differ")
    if radius < 0 or eps <= 0:
        raise ValueError(f"radius must be >= 0 and eps > 0, got {radius}, {eps}")
    mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
    cov = box_mean(guide * src, radius) - mean_i * mean_p
    var = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def _normalised_dark(image: Tensor, settings: DarkChannelSettings) -> tuple[Tensor, Tensor]:
    """``dark(I / A)`` ``[B, H, W]`` and ``A`` ``[B, 3]``."""
    airlight = atmospheric_light(image, dark_channel(image, settings.patch),
                                 settings.top_fraction)
    scaled = image / airlight.clamp_min(1e-3)[:, :, None, None]
    return dark_channel(scaled, settings.patch), airlight


def dehaze_dark_channel(image: Tensor, settings: DarkChannelSettings = DarkChannelSettings(),
                        ) -> dict[str, Tensor]:
    """Remove smoke from ``image`` ``[B, 3, H, W]`` in [0, 1]: ``{"clean": [B, 3, H, W]``
    in [0, 1], ``"transmission": [B, H, W]`` (refined, clipped to [0, 1]),
    ``"airlight": [B, 3]}``."""
    image = _check_image(image)
    dark, airlight = _normalised_dark(image, settings)
    raw = 1 - settings.omega * dark
    refined = guided_filter(grayscale(image), raw[:, None], settings.guided_radius,
                            settings.guided_eps)[:, 0].clamp(0, 1)
    a = airlight[:, :, None, None]
    clean = (image - a) / refined.clamp_min(settings.t0)[:, None] + a
    return {"clean": clean.clamp(0, 1), "transmission": refined, "airlight": airlight}


def smoke_density(image: Tensor, patch: int = 15) -> Tensor:
    """Where the smoke is and how dense, ``[B, H, W]`` in [0, 1]: the dark channel of
    ``I / A`` (``1 - t / omega`` before refinement) refined by the guided filter under
    the grayscale input, with the default settings' airlight fraction, radius and eps.
    The guided filter is linear in its input, so this is ``(1 - t) / omega`` of
    :func:`dehaze_dark_channel`'s refined transmission before clipping."""
    image = _check_image(image)
    settings = DarkChannelSettings(patch=patch)
    dark, _ = _normalised_dark(image, settings)
    refined = guided_filter(grayscale(image), dark[:, None], settings.guided_radius,
                            settings.guided_eps)
    return refined[:, 0].clamp(0, 1)
