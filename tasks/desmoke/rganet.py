"""RGA-Net for surgical smoke removal, and the U-Net baseline trained the same way.

RGA-Net (2026, arXiv 2602.13726) has no public code; this is built from its description
on the shared attention core:

- a hierarchical encoder-decoder: convolutional levels at full and half resolution keep
  the tissue's fine detail; at 1/4 the **Dual-stream Hybrid Attention** block
  (:class:`DualStreamBlock`) runs shifted-window attention (the core's ``"swin"`` kind,
  shift every other block) in parallel with a **frequency stream** on the features' 2-D
  FFT (:class:`FourierUnit`: a pointwise MLP on the real and imaginary parts of every
  frequency, so each output sees the whole frame, as smoke spreads over it); at 1/8 the
  **Axis-Decomposed Attention** block (the core's ``"maxvit"`` kind: block attention,
  then grid attention strided over the whole map);
- **reciprocal cross-gating** (:class:`CrossGate`) where the decoder meets an encoder
  level: each of the two feature maps gates the other (a sigmoid of a 1x1 convolution of
  one multiplies the other) before they are fused.

**Output** (both networks): the per-pixel, per-channel affine map ``J = I (1 + a) + b``
of the smoky frame ``I``. Inverting the scattering model ``I = J t + A (1 - t)`` is
exactly such a map (``1 + a = 1 / t``, ``b = -A (1 - t) / t``), so the network predicts
the smooth fields ``a, b`` (zero-initialised: the untrained model returns its input) and
the tissue's texture passes through ``I`` unchanged. Because ``a`` and ``b`` vary slowly,
``scale < 1`` runs the network on a down-sampled frame and applies the up-sampled fields
to the full-resolution frame: the speed/quality trade of ``data.process_scale``.

**Any input size** from ``min_size``: the network input is padded (by reflection) to a
multiple of the total stride and the fields cropped back.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from domainvit.backbone import Block
from domainvit.layers import ConvUp, channels_first, channels_last, conv_block
from domainvit.schema import StrictModel

__all__ = ["DesmokeUNet", "DesmokeUNetConfig", "RGANet", "RGANetConfig"]


class FourierUnit(nn.Module):
    """The frequency stream: ``irfft2(MLP([Re, Im](rfft2(norm(x)))))``, zero-initialised
    output projection. A 1x1 convolution in the frequency domain is a global operation in
    space (Chi et al., "Fast Fourier Convolution", NeurIPS 2020).

    The transform is normalised "forward" (the coefficients are means over the map, not
    sums): the smooth, low-frequency content the smoke lives in then has coefficients of
    the same size on a 16-pixel training map and a 64-pixel test map, so the MLP's
    nonlinearity sees the same values at any input size (an orthonormal transform scales
    them with the map's side)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.mlp = nn.Sequential(nn.Conv2d(2 * dim, 2 * dim, 1), nn.GELU(),
                                 nn.Conv2d(2 * dim, 2 * dim, 1))
        self.proj = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        spectrum = torch.fft.rfft2(self.norm(x).float(), norm="forward")
        mixed = self.mlp(torch.cat([spectrum.real, spectrum.imag], dim=1))
        real, imag = mixed.chunk(2, dim=1)
        y = torch.fft.irfft2(torch.complex(real, imag), s=(height, width), norm="forward")
        return self.proj(y.to(x.dtype))


class DualStreamBlock(nn.Module):
    """Dual-stream Hybrid Attention on ``[B, C, H, W]``: a shifted-window transformer block
    (attention and MLP, pre-norm residual) and the frequency stream, in parallel, summed."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift: bool,
                 mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.spatial = Block(dim, num_heads, 2, "swin",
                             {"window_size": window_size, "shift": shift},
                             mlp_ratio=mlp_ratio, drop_path=drop_path)
        self.frequency = FourierUnit(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channels_first(self.spatial(channels_last(x))) + self.frequency(x)


class AxisBlock(nn.Module):
    """Axis-Decomposed Attention on ``[B, C, H, W]``: block attention then grid attention
    (the core's multi-axis attention) and an MLP."""

    def __init__(self, dim: int, num_heads: int, block_size: int, mlp_ratio: float,
                 drop_path: float) -> None:
        super().__init__()
        self.block = Block(dim, num_heads, 2, "maxvit", {"block_size": block_size},
                           mlp_ratio=mlp_ratio, drop_path=drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channels_first(self.block(channels_last(x)))


class CrossGate(nn.Module):
    """Reciprocal cross-gating of an encoder level ``skip`` and the up-sampled decoder
    features ``x`` (``x`` is projected to the skip's width first): ``skip * g(x)`` and
    ``x * g(skip)``, then fused by :func:`conv_block`."""

    def __init__(self, in_chans: int, skip_chans: int, out_chans: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_chans, skip_chans, 1)
        self.gate_skip = nn.Conv2d(skip_chans, skip_chans, 1)
        self.gate_x = nn.Conv2d(skip_chans, skip_chans, 1)
        self.fuse = conv_block(2 * skip_chans, out_chans)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.project(F.interpolate(x, size=skip.shape[-2:], mode="bilinear",
                                       align_corners=False))
        gated_skip = skip * torch.sigmoid(self.gate_skip(x))
        gated_x = x * torch.sigmoid(self.gate_x(skip))
        return self.fuse(torch.cat([gated_skip, gated_x], dim=1))


class DesmokeModel(nn.Module):
    """The affine output and the any-size handling shared by both networks.

    Subclasses set ``self.body`` (``[B, in_chans, H, W]`` -> ``[B, head_chans, H, W]``)
    and ``stride``; the head maps the body's features to the fields ``a, b``.
    """

    stride: int = 8
    min_size: int = 16

    def __init__(self, in_chans: int, head_chans: int) -> None:
        super().__init__()
        if in_chans != 3:
            raise ValueError(f"desmoke models take RGB frames (in_chans 3), got {in_chans}")
        self.in_chans = in_chans
        self.head = nn.Conv2d(head_chans, 6, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def fields(self, frames: torch.Tensor) -> torch.Tensor:
        """The affine fields ``[B, 6, H, W]`` (``a`` then ``b``) of ``frames [B, 3, H, W]``."""
        height, width = frames.shape[-2:]
        pad_h, pad_w = -height % self.stride, -width % self.stride
        x = frames
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.head(self.body(x))[..., :height, :width]

    def correction(self, frames: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """The fields ``[B, 6, H, W]`` (``a`` then ``b``) at the frames' resolution, the
        network run on the frames scaled by ``scale``."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected RGB frames [B, 3, H, W], got {list(frames.shape)}")
        height, width = frames.shape[-2:]
        if min(height, width) < self.min_size:
            raise ValueError(f"frames must be at least {self.min_size} pixels on a side, "
                             f"got {height}x{width}")
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        small = tuple(max(self.min_size, round(side * scale)) for side in (height, width))
        if small == (height, width):
            return self.fields(frames)
        low = F.interpolate(frames, size=small, mode="area")
        return F.interpolate(self.fields(low), size=(height, width), mode="bilinear",
                             align_corners=False)

    @staticmethod
    def apply(frames: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        """``J = I (1 + a) + b``."""
        gain, offset = fields.chunk(2, dim=1)
        return frames * (1 + gain) + offset

    def forward(self, frames: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.apply(frames, self.correction(frames, scale))


class RGANetConfig(StrictModel):
    name: Literal["rganet"] = "rganet"
    in_chans: int = 3
    #: channels at 1, 1/2, 1/4 and 1/8 of the input
    widths: tuple[int, int, int, int] = (32, 64, 96, 128)
    #: Dual-stream Hybrid Attention blocks at 1/4 (encoder) and in the decoder at 1/4
    hybrid_depth: int = Field(2, ge=1)
    decoder_hybrid_depth: int = Field(1, ge=0)
    #: Axis-Decomposed Attention blocks at 1/8
    axis_depth: int = Field(2, ge=1)
    head_dim: int = Field(32, ge=8)
    window_size: int = Field(8, ge=2)
    block_size: int = Field(4, ge=2)
    mlp_ratio: float = Field(2.0, gt=0)
    drop_path_rate: float = Field(0.0, ge=0, lt=1)


class RGANet(DesmokeModel):
    """RGA-Net (see the module docstring)."""

    def __init__(self, in_chans: int = 3, widths: tuple[int, int, int, int] = (32, 64, 96, 128),
                 hybrid_depth: int = 2, decoder_hybrid_depth: int = 1, axis_depth: int = 2,
                 head_dim: int = 32, window_size: int = 8, block_size: int = 4,
                 mlp_ratio: float = 2.0, drop_path_rate: float = 0.0) -> None:
        super().__init__(in_chans, widths[0])
        w0, w1, w2, w3 = widths
        depth = hybrid_depth + axis_depth + decoder_hybrid_depth
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.enc0 = conv_block(in_chans, w0)
        self.enc1 = conv_block(w0, w1)
        self.down2 = nn.Conv2d(w1, w2, 2, stride=2)
        self.enc2 = nn.Sequential(*[
            DualStreamBlock(w2, max(1, w2 // head_dim), window_size, i % 2 == 1, mlp_ratio,
                            rates[i]) for i in range(hybrid_depth)])
        self.down3 = nn.Conv2d(w2, w3, 2, stride=2)
        self.enc3 = nn.Sequential(*[
            AxisBlock(w3, max(1, w3 // head_dim), block_size, mlp_ratio,
                      rates[hybrid_depth + i]) for i in range(axis_depth)])
        self.gate2 = CrossGate(w3, w2, w2)
        self.dec2 = nn.Sequential(*[
            DualStreamBlock(w2, max(1, w2 // head_dim), window_size, i % 2 == 1, mlp_ratio,
                            rates[hybrid_depth + axis_depth + i])
            for i in range(decoder_hybrid_depth)])
        self.gate1 = CrossGate(w2, w1, w1)
        self.gate0 = CrossGate(w1, w0, w0)

    @classmethod
    def from_config(cls, cfg: RGANetConfig, data: object = None) -> RGANet:
        return cls(**cfg.model_dump(exclude={"name"}))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(F.max_pool2d(e0, 2))
        e2 = self.enc2(self.down2(e1))
        e3 = self.enc3(self.down3(e2))
        d2 = self.dec2(self.gate2(e3, e2))
        return self.gate0(self.gate1(d2, e1), e0)


class DesmokeUNetConfig(StrictModel):
    name: Literal["unet"] = "unet"
    in_chans: int = 3
    #: channels at 1, 1/2, 1/4 and 1/8 of the input
    widths: tuple[int, int, int, int] = (32, 64, 128, 192)


class DesmokeUNet(DesmokeModel):
    """A plain convolutional U-Net (four levels, max-pool down, bilinear up, concatenated
    skips) with the same output: the learned baseline."""

    def __init__(self, in_chans: int = 3, widths: tuple[int, int, int, int] = (32, 64, 128, 192),
                 ) -> None:
        super().__init__(in_chans, widths[0])
        self.down = nn.ModuleList(
            [conv_block(in_chans, widths[0])]
            + [conv_block(widths[i - 1], widths[i]) for i in range(1, len(widths))])
        self.up = nn.ModuleList(
            [ConvUp(widths[i], widths[i - 1], widths[i - 1])
             for i in range(len(widths) - 1, 0, -1)])

    @classmethod
    def from_config(cls, cfg: DesmokeUNetConfig, data: object = None) -> DesmokeUNet:
        return cls(**cfg.model_dump(exclude={"name"}))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        levels = [self.down[0](x)]
        for block in self.down[1:]:
            levels.append(block(F.max_pool2d(levels[-1], 2)))
        x = levels.pop()
        for up in self.up:
            x = up(x, levels.pop())
        return x
