"""HoloPASWIN: physics-aware shifted-window reconstruction of inline holograms, and the
U-Net baseline trained the same way.

Both models run the same physics front end and differ only in the network between it and
the output:

    hologram I (mean 1) -> sqrt(I) -> ASM back-propagation over -z -> field U0
    [Re U0, Im U0, z-map] -> network -> dU;  output U0 + dU  (one residual correction)

- **HoloPASWIN**: convolutional levels at full resolution and below (``full_res_chans``,
  ``conv_widths``) keep the fine detail; the shared core's hierarchical shifted-window
  transformer (:class:`domainvit.backbone.DomainViT` with ``attn_kind="swin"``: Swin
  windows shifted every other block, 2x2 patch merging) on the last level supplies the
  field-wide context (the twin image spreads over the whole field), its blocks' feed-forward
  optionally with a depthwise convolution (``mlp_kind="mix"``, local mixing inside the
  windows); a convolutional decoder with every level as a skip predicts ``dU``. Without
  ``conv_widths`` the transformer's stem takes the input itself (a Swin U-Net, as
  published).
- **U-Net**: a plain convolutional U-Net of about the same size.

**Distance conditioning**: ``z`` is an input. It sets the back-propagation distance, and
enters the network as a constant channel, normalised over the training range
(``z_range_m``); trained over a range of ``z`` (and with a jittered ``z`` on part of the
batches, see ``data.z_jitter_mm``) the network learns to finish focusing a field that
the given distance left slightly out of focus.

**Any input size**: both networks are fully convolutional; the inputs are padded (by
reflection) to a multiple of the total stride and the output cropped back, so the field
comes out the shape of the hologram, from ``min_size`` pixels up.

Outputs are ``[B, 2, H, W]`` (real, imaginary) float32; :func:`as_complex` turns them into a
complex field.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from domainvit.backbone import DomainViT
from domainvit.layers import ConvUp, conv_block
from domainvit.optics import propagate
from domainvit.schema import StrictModel

__all__ = ["HoloPASWIN", "HoloPASWINConfig", "HoloUNet", "HoloUNetConfig", "as_complex"]


def as_complex(channels: torch.Tensor) -> torch.Tensor:
    """``[B, 2, H, W]`` (real, imaginary) -> ``[B, H, W]`` complex64."""
    return torch.complex(channels[:, 0].float(), channels[:, 1].float())


class HolographyModel(nn.Module):
    """The physics front end and the residual output shared by both networks.

    Subclasses set ``self.body`` (``[B, 3, H, W]`` -> ``[B, 2, H, W]``) and ``stride``.
    """

    stride: int = 1
    min_size: int = 16

    def __init__(self, wavelength_m: float, pixel_m: float, z_range_m: tuple[float, float],
                 pad_factor: float = 2.0) -> None:
        super().__init__()
        self.in_chans = 1
        self.wavelength_m = float(wavelength_m)
        self.pixel_m = float(pixel_m)
        self.z_range_m = (float(z_range_m[0]), float(z_range_m[1]))
        self.pad_factor = float(pad_factor)

    def back_propagate(self, hologram: torch.Tensor, z: torch.Tensor,
                       wavelength_m: float | None = None, pixel_m: float | None = None,
                       ) -> torch.Tensor:
        """Plain ASM back-propagation of ``hologram [B, 1, H, W]`` (mean 1) over ``z [B]``
        (metres): the complex field ``[B, H, W]``."""
        amplitude = hologram[:, 0].float().clamp_min(0).sqrt()
        return propagate(amplitude.to(torch.complex64), -z.double(),
                         wavelength_m or self.wavelength_m, pixel_m or self.pixel_m,
                         pad_factor=self.pad_factor)

    def z_channel(self, z: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        low, high = self.z_range_m
        scaled = (z.float() - 0.5 * (low + high)) / max(0.5 * (high - low), 1e-9)
        return scaled.reshape(-1, 1, 1, 1).expand(-1, 1, *shape)

    def forward(self, hologram: torch.Tensor, z: torch.Tensor,
                wavelength_m: float | None = None, pixel_m: float | None = None) -> torch.Tensor:
        if hologram.dim() != 4 or hologram.shape[1] != 1:
            raise ValueError(f"expected holograms [B, 1, H, W], got {list(hologram.shape)}")
        height, width = hologram.shape[-2:]
        if min(height, width) < self.min_size:
            raise ValueError(f"holograms must be at least {self.min_size} pixels on a side, "
                             f"got {height}x{width}")
        z = torch.as_tensor(z, device=hologram.device).reshape(-1).expand(hologram.shape[0])
        field = self.back_propagate(hologram, z, wavelength_m, pixel_m)
        channels = torch.stack([field.real, field.imag], dim=1)
        x = torch.cat([channels, self.z_channel(z, (height, width))], dim=1)
        pad_h = -height % self.stride
        pad_w = -width % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        correction = self.body(x)[..., :height, :width]
        return channels + correction.float()


class HoloPASWINConfig(StrictModel):
    name: Literal["holopaswin"] = "holopaswin"
    embed_dim: int = Field(32, ge=8)
    depths: tuple[int, ...] = (2, 2, 2)
    window_size: int = Field(8, ge=2)
    head_dim: int = Field(16, ge=4)
    stem_stride: int = Field(2, ge=1)
    #: ``patch`` (one convolution, kernel = stride, as Swin) or ``overlap`` (3x3 convolutions)
    stem: Literal["patch", "overlap"] = "patch"
    full_res_chans: int = Field(16, ge=4)
    #: widths of convolutional levels between the full-resolution block and the
    #: transformer (each at half the previous resolution); empty: the transformer's stem
    #: takes the input itself
    conv_widths: tuple[int, ...] = ()
    drop_path_rate: float = Field(0.05, ge=0.0, lt=1.0)
    #: the transformer blocks' feed-forward: ``mlp``, or ``mix`` (a depthwise 3x3
    #: convolution inside it, SegFormer's Mix-FFN / Uformer's LeFF)
    mlp_kind: Literal["mlp", "mix"] = "mlp"


class HoloPASWIN(HolographyModel):
    """Shifted-window transformer encoder + convolutional decoder on the back-propagated
    field (see the module docstring)."""

    def __init__(self, wavelength_m: float, pixel_m: float, z_range_m: tuple[float, float],
                 pad_factor: float = 2.0, embed_dim: int = 32, depths: tuple[int, ...] = (2, 2, 2),
                 window_size: int = 8, head_dim: int = 16, stem_stride: int = 2,
                 full_res_chans: int = 16, drop_path_rate: float = 0.0,
                 stem: str = "patch", conv_widths: tuple[int, ...] = (),
                 mlp_kind: str = "mlp") -> None:
        super().__init__(wavelength_m, pixel_m, z_range_m, pad_factor)
        pair = ({"window_size": window_size, "shift": False},
                {"window_size": window_size, "shift": True})
        chans = [full_res_chans, *conv_widths]
        self.convs = nn.ModuleList(
            [conv_block(chans[i], chans[i + 1]) for i in range(len(conv_widths))])
        self.encoder = DomainViT(
            in_chans=chans[-1] if conv_widths else 3, num_classes=0, global_pool="",
            embed_dim=embed_dim, depths=depths,
            head_dim=head_dim, attn_kind="swin", attn_options=[pair] * len(depths),
            stem=stem, stem_stride=stem_stride, downsample="merge",
            drop_path_rate=drop_path_rate, mlp_kind=mlp_kind,
        )
        self.stride = 2 ** len(conv_widths) * stem_stride * 2 ** (len(depths) - 1)
        dims = [info["num_chs"] for info in self.encoder.feature_info]
        self.full_res = conv_block(3, full_res_chans)
        ups = []
        for i in range(len(dims) - 1, 0, -1):
            ups.append(ConvUp(dims[i], dims[i - 1], dims[i - 1]))
        self.ups = nn.ModuleList(ups)
        # up through the convolutional levels (deepest first) to full resolution
        self.conv_ups = nn.ModuleList(
            [ConvUp(dims[0] if i == len(chans) - 1 else chans[i + 1], chans[i], chans[i])
             for i in range(len(chans) - 1, 0, -1)])
        self.last_up = ConvUp(chans[1] if conv_widths else dims[0], full_res_chans,
                           full_res_chans)
        self.head = nn.Conv2d(full_res_chans, 2, 1)
        nn.init.zeros_(self.head.weight)  # the untrained model is plain back-propagation
        nn.init.zeros_(self.head.bias)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        levels = [self.full_res(x)]
        for conv in self.convs:
            levels.append(conv(F.max_pool2d(levels[-1], 2)))
        features = self.encoder.forward_intermediates(levels[-1] if self.convs else x,
                                                      intermediates_only=True)
        y = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1]), strict=True):
            y = up(y, skip)
        for up, skip in zip(self.conv_ups, reversed(levels[1:]), strict=True):
            y = up(y, skip)
        return self.head(self.last_up(y, levels[0]))

    @classmethod
    def from_config(cls, cfg: HoloPASWINConfig, data: object) -> HoloPASWIN:
        return cls(data.wavelength_nm * 1e-9, data.pixel_um * 1e-6,
                   (data.z_min_mm * 1e-3, data.z_max_mm * 1e-3), data.pad_factor,
                   embed_dim=cfg.embed_dim, depths=cfg.depths, window_size=cfg.window_size,
                   head_dim=cfg.head_dim, stem_stride=cfg.stem_stride,
                   full_res_chans=cfg.full_res_chans, drop_path_rate=cfg.drop_path_rate,
                   stem=cfg.stem, conv_widths=cfg.conv_widths, mlp_kind=cfg.mlp_kind)


class HoloUNetConfig(StrictModel):
    name: Literal["unet"] = "unet"
    widths: tuple[int, ...] = (24, 48, 96, 160)


class HoloUNet(HolographyModel):
    """A convolutional U-Net on the same input, with the same residual output."""

    def __init__(self, wavelength_m: float, pixel_m: float, z_range_m: tuple[float, float],
                 pad_factor: float = 2.0, widths: tuple[int, ...] = (24, 48, 96, 160)) -> None:
        super().__init__(wavelength_m, pixel_m, z_range_m, pad_factor)
        if len(widths) < 2:
            raise ValueError(f"a U-Net needs at least two widths, got {widths}")
        self.stride = 2 ** (len(widths) - 1)
        self.downs = nn.ModuleList(
            [conv_block(3, widths[0])]
            + [conv_block(widths[i - 1], widths[i]) for i in range(1, len(widths))]
        )
        self.ups = nn.ModuleList(
            [ConvUp(widths[i], widths[i - 1], widths[i - 1]) for i in range(len(widths) - 1, 0, -1)]
        )
        self.head = nn.Conv2d(widths[0], 2, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, down in enumerate(self.downs):
            x = down(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        y = skips[-1]
        for up, skip in zip(self.ups, reversed(skips[:-1]), strict=True):
            y = up(y, skip)
        return self.head(y)

    @classmethod
    def from_config(cls, cfg: HoloUNetConfig, data: object) -> HoloUNet:
        return cls(data.wavelength_nm * 1e-9, data.pixel_um * 1e-6,
                   (data.z_min_mm * 1e-3, data.z_max_mm * 1e-3), data.pad_factor,
                   widths=cfg.widths)
