"""Layers shared by the domainvit models: stems, patch merging, the pooled classifier head.

The pieces every hierarchical model here is built from, apart from attention (which is
:mod:`domainvit.attention`): the channel-order swaps between channels-first maps
(``[B, C, *spatial]``, what convolutions and timm's feature extractors take) and
channels-last tokens (``[B, *spatial, C]``, what the attention modules take), the
convolutional stem (:class:`PatchEmbed`, Swin's patchify or NAT's overlapping tokenizer),
patch merging between stages (:class:`PatchMerging`), the pooled classifier
(:class:`ClassifierHead`), the ViT/Swin weight initialisation, and the placement of a
model built for timm's ``device``/``dtype`` factory arguments. MLP, drop path and layer
scale come from ``timm.layers``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

__all__ = [
    "AXIS_NAMES",
    "ClassifierHead",
    "ConvUp",
    "DepthwiseConv",
    "MixFeedForward",
    "PatchEmbed",
    "PatchMerging",
    "channels_first",
    "channels_last",
    "check_choice",
    "conv_block",
    "check_ndim",
    "factory_device",
    "init_linear_weights",
]

_CONVS = {2: nn.Conv2d, 3: nn.Conv3d}
#: the spatial axes of a 2D and a 3D input, for error messages
AXIS_NAMES = {2: "H, W", 3: "D, H, W"}
_POOLS = ("avg", "max", "")


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, *spatial]`` -> ``[B, *spatial, C]``, a view."""
    return x.movedim(1, -1)


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """``[B, *spatial, C]`` -> ``[B, C, *spatial]``, a view."""
    return x.movedim(-1, 1)


def check_ndim(ndim: int) -> None:
    """Raise a ValueError unless ``ndim`` is 2 (images) or 3 (volumes)."""
    if ndim not in _CONVS:
        raise ValueError(f"ndim must be 2 (images) or 3 (volumes), got {ndim!r}")


def check_choice(value: str, name: str, choices: Sequence[str]) -> None:
    """Raise a ValueError naming ``name`` and the allowed values unless ``value`` is one."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def factory_device(device: torch.device | str | None) -> AbstractContextManager:
    """The context a model constructor builds its layers in for timm's ``device`` argument.

    timm threads ``device``/``dtype`` through the constructor of every layer; building
    under a device context (and converting the dtype once, afterwards) gives the same
    model without giving every attention module those arguments.
    """
    return torch.device(device) if device is not None else nullcontext()


def init_linear_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights and zero biases, as in ViT/Swin."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class PatchEmbed(nn.Module):
    """Convolutional stem: ``[B, in_chans, *spatial]`` -> ``[B, embed_dim, *spatial/stride]``.

    ``kind="patch"`` is one convolution with kernel = stride (Swin's patchify);
    ``kind="overlap"`` is a stack of 3x3(x3) stride-2 convolutions with GELU between them
    (NAT's overlapping tokenizer), so its stride must be a power of two. The stem also
    checks the input, because it is the first module every forward path runs: its channels,
    and a spatial size divisible by ``input_multiple`` (the whole network's total stride).
    """

    kinds = ("patch", "overlap")

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        ndim: int = 2,
        stride: int = 4,
        kind: str = "patch",
        input_multiple: int | None = None,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_ndim(ndim)
        check_choice(kind, "stem", self.kinds)
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stem_stride must be a positive int, got {stride!r}")
        conv = _CONVS[ndim]
        if kind == "patch":
            layers: list[nn.Module] = [conv(in_chans, embed_dim, stride, stride)]
        else:
            if stride < 2 or stride & (stride - 1):
                raise ValueError(
                    "stem_stride must be a power of two >= 2 for the overlapping stem, "
                    f"got {stride}"
                )
            num_convs = stride.bit_length() - 1
            widths = [in_chans] + [max(embed_dim // 2, 1)] * (num_convs - 1) + [embed_dim]
            layers = []
            for i in range(num_convs):
                if i:
                    layers.append(nn.GELU())
                layers.append(conv(widths[i], widths[i + 1], 3, 2, 1))
        self.proj = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.in_chans = in_chans
        self.ndim = ndim
        self.stride = stride
        self.input_multiple = input_multiple or stride

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError that says what was expected if ``x`` does not fit the network."""
        if x.dim() != self.ndim + 2 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected input of shape [B, {self.in_chans}, {AXIS_NAMES[self.ndim]}] "
                f"({self.ndim}D, {self.in_chans} channels), got {list(x.shape)}"
            )
        spatial = tuple(x.shape[2:])
        multiple = self.input_multiple
        if any(size % multiple for size in spatial):
            merges = int(math.log2(multiple // self.stride))
            padded = tuple(-(-size // multiple) * multiple for size in spatial)
            raise ValueError(
                f"input spatial size {spatial} must be a multiple of {multiple} along every axis "
                f"(stem stride {self.stride} x {merges} patch merges of 2); pad or crop it, "
                f"e.g. to {padded}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return channels_first(self.norm(channels_last(self.proj(x))))


class PatchMerging(nn.Module):
    """Halve every spatial axis and map ``dim`` to ``out_dim`` channels (channels-last).

    ``kind="conv"``: a 3x3(x3) stride-2 convolution, then LayerNorm (NAT's downsampler).
    ``kind="merge"``: concatenate each 2x2(x2) group of tokens, LayerNorm, then a linear
    projection (Swin's patch merging).
    """

    kinds = ("conv", "merge")

    def __init__(
        self, dim: int, out_dim: int, ndim: int = 2, kind: str = "conv", norm_eps: float = 1e-5
    ) -> None:
        super().__init__()
        check_ndim(ndim)
        check_choice(kind, "downsample", self.kinds)
        self.kind = kind
        if kind == "conv":
            self.reduction = _CONVS[ndim](dim, out_dim, 3, 2, 1)
            self.norm = nn.LayerNorm(out_dim, eps=norm_eps)
        else:
            merged = 2**ndim * dim
            self.norm = nn.LayerNorm(merged, eps=norm_eps)
            self.reduction = nn.Linear(merged, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv":
            return self.norm(channels_last(self.reduction(channels_first(x))))
        batch, *spatial, channels = x.shape
        ndim = len(spatial)
        # [B, L1/2, 2, L2/2, 2, ..., C] -> [B, L1/2, L2/2, ..., 2, 2, ..., C]
        x = x.reshape(batch, *(n for size in spatial for n in (size // 2, 2)), channels)
        coarse = [1 + 2 * axis for axis in range(ndim)]
        fine = [2 + 2 * axis for axis in range(ndim)]
        x = x.permute(0, *coarse, *fine, 2 * ndim + 1)
        x = x.reshape(batch, *(size // 2 for size in spatial), 2**ndim * channels)
        return self.reduction(self.norm(x))


class ClassifierHead(nn.Module):
    """Global pooling over every spatial axis, dropout and a linear classifier.

    Takes channels-first features. ``pool_type=""`` keeps the spatial axes and classifies
    every position (``[B, num_classes, *spatial]``).
    """

    def __init__(
        self, in_features: int, num_classes: int, pool_type: str = "avg", drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        check_choice(pool_type, "global_pool", _POOLS)
        self.in_features = in_features
        self.pool_type = pool_type
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset(
        self,
        num_classes: int,
        pool_type: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """A new classifier for ``num_classes`` (0: none), on ``device`` in ``dtype`` (those of
        the model it belongs to) and in its training mode; ``pool_type`` None keeps the
        pooling."""
        if pool_type is not None:
            check_choice(pool_type, "global_pool", _POOLS)
            self.pool_type = pool_type
        fc = (
            nn.Linear(self.in_features, num_classes, device=device, dtype=dtype)
            if num_classes > 0 else nn.Identity()
        )
        self.fc = fc.train(self.training)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        spatial_dims = tuple(range(2, x.dim()))
        if self.pool_type == "avg":
            x = x.mean(dim=spatial_dims)
        elif self.pool_type == "max":
            x = x.amax(dim=spatial_dims)
        else:
            x = channels_last(x)
        x = self.drop(x)
        if not pre_logits:
            x = self.fc(x)
        return x if self.pool_type else channels_first(x)


def conv_block(in_chans: int, out_chans: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by group norm (at most 8 groups) and GELU: the
    convolutional level of the image-to-image models (U-Net encoders and decoders)."""
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, 3, padding=1), nn.GroupNorm(min(8, out_chans), out_chans),
        nn.GELU(),
        nn.Conv2d(out_chans, out_chans, 3, padding=1), nn.GroupNorm(min(8, out_chans), out_chans),
        nn.GELU(),
    )


class ConvUp(nn.Module):
    """A U-Net decoder step: bilinear upsampling to the skip's size, concatenation with the
    skip, :func:`conv_block`."""

    def __init__(self, in_chans: int, skip_chans: int, out_chans: int) -> None:
        super().__init__()
        self.block = conv_block(in_chans + skip_chans, out_chans)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class DepthwiseConv(nn.Module):
    """Depthwise convolution of channels-last tokens: 3x3 in 2D; in 3D separable, 3x3 in
    every axial plane then 3 along depth (a rank-1 3x3x3 kernel per channel).

    Both 3D steps run as 2D convolutions: PyTorch's depthwise ``conv3d`` backward takes
    the slow reference path on CPUs, about 40x slower here at 16x20x16 tokens.
    """

    def __init__(self, channels: int, ndim: int) -> None:
        super().__init__()
        self.ndim = ndim
        self.plane = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.depth = (
            nn.Conv2d(channels, channels, (3, 1), padding=(1, 0), groups=channels)
            if ndim == 3 else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.depth is None:
            return channels_last(self.plane(channels_first(x)))
        batch, depth, height, width, channels = x.shape
        planes = self.plane(channels_first(x.reshape(batch * depth, height, width, channels)))
        # [B*D, C, H, W] -> [B, C, D, H*W]: depth becomes the first axis of a 2D conv
        columns = planes.reshape(batch, depth, channels, height * width).transpose(1, 2)
        out = self.depth(columns).reshape(batch, channels, depth, height, width)
        return channels_last(out)


class MixFeedForward(nn.Module):
    """Feed-forward on channels-last tokens with a depthwise convolution between its
    linear layers (the Mix-FFN of SegFormer, Xie et al., NeurIPS 2021; Uformer's LeFF is
    the same idea): it mixes each token with its neighbours, the local cue that window or
    global attention lacks. TransDAE's blocks use it; :class:`domainvit.backbone.Block`
    takes it with ``mlp_kind="mix"``."""

    def __init__(self, dim: int, hidden_dim: int, ndim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = DepthwiseConv(hidden_dim, ndim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))
