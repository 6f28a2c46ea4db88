"""Segmentation models of the medseg task: TransDAE (2D/3D) and the MACMD decoder (2D).

- :class:`TransDAE` follows Azad, Adibfar and Fu, "TransDAE: Dual Attention Mechanism in a
  Hierarchical Transformer for Efficient Medical Image Segmentation", arXiv:2409.02018,
  2024 (no public code; our reading of the paper, on our attention core). A U-shaped
  transformer whose every block is *dual attention*: efficient (linear) spatial
  attention (:class:`~domainvit.attention.LinearAttention`) and transposed channel
  attention (:class:`~domainvit.attention.ChannelAttention`), each pre-norm with a
  residual, then a Mix-FFN (depthwise convolution between the two linear layers). Its
  skips pass through an inter-scale interaction module (:class:`InterScaleInteraction`,
  a cross-scale gate: our design, as the paper's module has no published code) before
  the decoder.
- :class:`MACMD` is the decoder of Maurya, Liu and Zwiggelaar, "MACMD: Multi-dilated
  Contextual Attention and Channel Mixer Decoding for Medical Image Segmentation",
  arXiv:2511.05803, 2025, on our hierarchical encoder
  :class:`~domainvit.backbone.DomainViT` with dilated neighbourhood attention (NAT/DiNAT)
  or MaxViT block/grid attention in place of the paper's PVTv2/MaxViT. Multi-dilated
  grouped convolutions (dilations 1, 2, 3, 5) gate every skip, an attention-pooled
  descriptor of each deeper scale modulates the shallower one channel-wise, a channel
  mixer exchanges information between the three shallower skips, depthwise-conv blocks
  upsample, and three auxiliary heads give deep supervision. Unlike the released code,
  every layer is built in ``__init__``, so every weight is trained.

Both models take channels-first ``[B, in_chans, *spatial]`` of any spatial size: the
input is zero-padded at the end of every axis to a multiple of ``size_multiple`` (the
total stride) and the logits are cropped back, so they are ``[B, num_classes, *spatial]``.
With deep supervision on and the model in training mode, ``forward`` returns a list: the
main logits, then the auxiliary logits from the next-finer to the coarsest decoder
scale (MACMD's upsampled to the input size; TransDAE's at their own scale, the target
resized by the loss); in eval mode only the main logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from timm.layers import DropPath, trunc_normal_
from torch import nn

from domainvit.attention import ChannelAttention, LinearAttention
from domainvit.backbone import DomainViT, PatchEmbed, PatchMerging
from domainvit.config import StrictModel
from domainvit.errors import UserError

__all__ = [
    "AttentionPoolingModulation",
    "ChannelMixer",
    "DecoderStage",
    "DepthwiseConv",
    "DepthwiseConvBlock",
    "DepthwiseUpBlock",
    "DualAttentionBlock",
    "EncoderStage",
    "InterScaleInteraction",
    "MACMD",
    "MACMDConfig",
    "MACMDDecoder",
    "MixFeedForward",
    "MultiDilatedGate",
    "PatchExpand",
    "TransDAE",
    "TransDAEConfig",
]

_CONVS = {2: nn.Conv2d, 3: nn.Conv3d}
_INTERPOLATION = {2: "bilinear", 3: "trilinear"}
_AXIS_NAMES = {2: "H, W", 3: "D, H, W"}
GATE_DILATIONS = (1, 2, 3, 5)

SegmentationOutput = torch.Tensor | list[torch.Tensor]


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1)


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(-1, 1)


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Linear interpolation of channels-first ``x`` to spatial ``size``."""
    mode = _INTERPOLATION[x.dim() - 2]
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (at most 8 groups): batch-size independent, so a batch of 1 trains."""
    return nn.GroupNorm(math.gcd(channels, 8), channels)


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def stage_heads(dims: Sequence[int], head_dim: int) -> list[int]:
    """Attention heads per stage, ``dim // head_dim`` (at least one); each must divide its
    stage's width."""
    heads = [max(dim // head_dim, 1) for dim in dims]
    for i, (dim, count) in enumerate(zip(dims, heads, strict=True)):
        if dim % count:
            raise ValueError(
                f"stage {i}: width {dim} is not divisible by {count} heads of head_dim "
                f"{head_dim}; choose embed_dim as a multiple of head_dim"
            )
    return heads


def check_segmentation_input(
    owner: str, x: torch.Tensor, in_chans: int, ndim: int, min_size: int
) -> tuple[int, ...]:
    """The spatial size of ``x``; a :class:`UserError` naming expected and actual shape if
    ``x`` is not ``[B, in_chans, *spatial]`` with ``ndim`` axes of at least ``min_size``."""
    expected = f"[B, {in_chans}, {_AXIS_NAMES[ndim]}]"
    if x.dim() != ndim + 2 or x.shape[1] != in_chans:
        raise UserError(f"{owner} ({ndim}D) expects input {expected}, got {list(x.shape)}")
    spatial = tuple(x.shape[2:])
    if min(spatial) < min_size:
        raise UserError(
            f"{owner} ({ndim}D) expects input {expected} with every spatial axis at least "
            f"{min_size} (one stem patch), got {list(x.shape)}"
        )
    return spatial


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad every spatial axis of channels-first ``x`` at its end to a multiple."""
    padding: list[int] = []
    for size in reversed(x.shape[2:]):
        padding += [0, -size % multiple]
    return F.pad(x, padding) if any(padding) else x


def logits_at_input_size(
    logits: torch.Tensor, spatial: Sequence[int], multiple: int
) -> torch.Tensor:
    """Channels-first ``logits`` of an input of size ``spatial`` padded by
    :func:`pad_to_multiple`: interpolated to the padded size, cropped to ``spatial``."""
    padded = tuple(-(-size // multiple) * multiple for size in spatial)
    if tuple(logits.shape[2:]) != padded:
        logits = _resize(logits, padded)
    return logits[(slice(None), slice(None), *(slice(0, size) for size in spatial))]


# --- TransDAE layers (channels-last tokens [B, *spatial, C]) --------------------------------


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
            return _channels_last(self.plane(_channels_first(x)))
        batch, depth, height, width, channels = x.shape
        planes = self.plane(_channels_first(x.reshape(batch * depth, height, width, channels)))
        # [B*D, C, H, W] -> [B, C, D, H*W]: depth becomes the first axis of a 2D conv
        columns = planes.reshape(batch, depth, channels, height * width).transpose(1, 2)
        out = self.depth(columns).reshape(batch, channels, depth, height, width)
        return _channels_last(out)


class MixFeedForward(nn.Module):
    """Feed-forward with a depthwise convolution between its linear layers (the Mix-FFN
    of SegFormer that TransDAE uses): it adds the local positional cue that the two
    global attentions lack."""

    def __init__(self, dim: int, hidden_dim: int, ndim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = DepthwiseConv(hidden_dim, ndim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class DualAttentionBlock(nn.Module):
    """TransDAE's block: efficient spatial attention, transposed channel attention and a
    Mix-FFN, each ``x + drop_path(f(norm(x)))``.

    Both attentions cost linear in the number of tokens, which is what lets the block run
    at stride 4 on whole volumes.
    """

    def __init__(
        self, dim: int, num_heads: int, ndim: int, mlp_ratio: float = 2.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.norm_spatial = nn.LayerNorm(dim)
        self.spatial_attn = LinearAttention(dim, num_heads)
        self.norm_channel = nn.LayerNorm(dim)
        self.channel_attn = ChannelAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MixFeedForward(dim, int(dim * mlp_ratio), ndim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.spatial_attn(self.norm_spatial(x)))
        x = x + self.drop_path(self.channel_attn(self.norm_channel(x)))
        return x + self.drop_path(self.mlp(self.norm_mlp(x)))


class EncoderStage(nn.Module):
    """Optional 3x3(x3) stride-2 patch merging, dual-attention blocks, then a LayerNorm."""

    def __init__(
        self,
        in_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        ndim: int,
        mlp_ratio: float,
        drop_path: Sequence[float],
        downsample: bool,
    ) -> None:
        super().__init__()
        self.downsample = PatchMerging(in_dim, dim, ndim, "conv") if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            DualAttentionBlock(dim, num_heads, ndim, mlp_ratio, drop_path[i]) for i in range(depth)
        ])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.downsample(x)))


class PatchExpand(nn.Module):
    """Multiply every spatial axis by ``factor``: a linear layer to ``factor**ndim * out_dim``
    channels, a pixel shuffle of those channels onto the finer grid, and a LayerNorm
    (``norm=False``: no norm, a bias instead, for a layer that outputs logits)."""

    def __init__(
        self, dim: int, out_dim: int, ndim: int, factor: int = 2, norm: bool = True
    ) -> None:
        super().__init__()
        self.factor = factor
        self.expand = nn.Linear(dim, factor**ndim * out_dim, bias=not norm)
        self.norm = nn.LayerNorm(out_dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x)
        batch, *spatial, channels = x.shape
        ndim, factor = len(spatial), self.factor
        out_dim = channels // factor**ndim
        x = x.reshape(batch, *spatial, *(factor,) * ndim, out_dim)
        # [B, L1, L2, .., f1, f2, .., C] -> [B, L1, f1, L2, f2, .., C] -> [B, L1*f, L2*f, .., C]
        interleaved = [axis for i in range(ndim) for axis in (1 + i, 1 + ndim + i)]
        x = x.permute(0, *interleaved, 2 * ndim + 1)
        x = x.reshape(batch, *(size * factor for size in spatial), out_dim)
        return self.norm(x)


class InterScaleInteraction(nn.Module):
    """TransDAE's inter-scale interaction module on a skip connection.

    The next-coarser scale's features are projected to the skip's width and upsampled
    (linear interpolation) to its grid: the *context*. An additive attention gate
    computed from the skip and the context (``sigmoid(W_g gelu(W_s skip + context))``,
    per position and channel) then decides, for every token and channel, how much of
    the skip's own detail to keep and how much coarse context to take in its place:
    ``norm(gate * skip + (1 - gate) * context)``. Applied top-down (the coarser input is
    itself already enriched), it carries the deepest, most global context to every skip.
    """

    def __init__(self, dim: int, coarse_dim: int) -> None:
        super().__init__()
        self.context = nn.Linear(coarse_dim, dim)
        self.skip = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        # Project before upsampling: the same result (both are linear) on 2**ndim fewer tokens.
        context = _channels_first(self.context(coarse))
        context = _channels_last(_resize(context, skip.shape[1:-1]))
        gate = torch.sigmoid(self.gate(F.gelu(self.skip(skip) + context)))
        return self.norm(gate * skip + (1 - gate) * context)


class DecoderStage(nn.Module):
    """Upsample the coarser decoder features (:class:`PatchExpand`), concatenate the
    enriched skip, fuse with a linear layer, then dual-attention blocks."""

    def __init__(
        self, coarse_dim: int, dim: int, depth: int, num_heads: int, ndim: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.upsample = PatchExpand(coarse_dim, dim, ndim)
        self.fuse = nn.Linear(2 * dim, dim)
        self.blocks = nn.Sequential(*[
            DualAttentionBlock(dim, num_heads, ndim, mlp_ratio) for _ in range(depth)
        ])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.fuse(torch.cat([self.upsample(x), skip], dim=-1)))


# --- MACMD decoder layers (channels-first 2D maps [B, C, H, W]) ------------------------------


class MultiDilatedGate(nn.Module):
    """Attention gate on a skip from grouped 3x3 convolutions at dilations 1, 2, 3, 5.

    The skip and the gating signal (the upsampled deeper decoder features) are fused by a
    1x1 convolution; parallel grouped 3x3 convolutions at the four dilations see 3 to 11
    pixels around every position; their outputs are concatenated and projected to a
    per-position, per-channel gate in (0, 1) that multiplies the skip.
    """

    def __init__(self, dim: int, groups: int, dilations: Sequence[int] = GATE_DILATIONS) -> None:
        super().__init__()
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * dim, dim, 1, bias=False), _group_norm(dim), nn.GELU()
        )
        self.branches = nn.ModuleList(
            nn.Conv2d(dim, dim, 3, padding=d, dilation=d, groups=groups) for d in dilations
        )
        self.project = nn.Conv2d(len(dilations) * dim, dim, 1)

    def forward(self, skip: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat([skip, signal], dim=1))
        context = F.gelu(torch.cat([branch(x) for branch in self.branches], dim=1))
        return skip * torch.sigmoid(self.project(context))


class AttentionPoolingModulation(nn.Module):
    """Channel-wise modulation of a shallower map by a descriptor of the deeper one.

    A 1x1 convolution scores every position of the deeper map; the softmax of the scores
    over all positions pools the deeper map into one global descriptor (attention
    pooling); a two-layer MLP maps it to per-channel scales in (0, 1) for the shallower
    map.
    """

    def __init__(self, deep_dim: int, dim: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(deep_dim // reduction, 8)
        self.score = nn.Conv2d(deep_dim, 1, 1)
        self.mlp = nn.Sequential(nn.Linear(deep_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, shallow: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        weights = self.score(deep).flatten(2).softmax(dim=-1)  # [B, 1, N]
        descriptor = (deep.flatten(2) * weights).sum(dim=-1)  # [B, deep_dim]
        scale = torch.sigmoid(self.mlp(descriptor))
        return shallow * scale[:, :, None, None]


class ChannelMixer(nn.Module):
    """Mix channels across the skips: each is average-pooled to the grid of the last
    (coarsest) one, all are concatenated and mixed by a 1x1 convolution, and the result is
    split back, upsampled to each skip's grid and added to it."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = list(dims)
        total = sum(self.dims)
        self.mix = nn.Sequential(
            nn.Conv2d(total, total, 1, bias=False), _group_norm(total), nn.GELU()
        )

    def forward(self, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        common = skips[-1].shape[2:]
        pooled = torch.cat([F.adaptive_avg_pool2d(skip, common) for skip in skips], dim=1)
        mixed = self.mix(pooled).split(self.dims, dim=1)
        return [skip + _resize(m, skip.shape[2:]) for skip, m in zip(skips, mixed, strict=True)]


class DepthwiseUpBlock(nn.Module):
    """Upsample by 2 (bilinear), 3x3 depthwise convolution, norm, GELU, 1x1 to ``out_dim``."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.norm = _group_norm(dim)
        self.act = nn.GELU()
        self.pwconv = nn.Conv2d(dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.pwconv(self.act(self.norm(self.dwconv(x))))


class DepthwiseConvBlock(nn.Module):
    """Residual inverted bottleneck: 1x1 expand, 3x3 depthwise, 1x1 project."""

    def __init__(self, dim: int, expansion: int = 2) -> None:
        super().__init__()
        hidden = dim * expansion
        self.body = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False), _group_norm(hidden), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            _group_norm(hidden), nn.GELU(),
            nn.Conv2d(hidden, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MACMDDecoder(nn.Module):
    """The MACMD decoder on four encoder maps of widths ``dims`` (strides s, 2s, 4s, 8s).

    The three shallower skips first exchange channels (:class:`ChannelMixer`). Then, from
    the deepest map down, at every scale: the deeper decoder map is upsampled
    (:class:`DepthwiseUpBlock`), gates the skip (:class:`MultiDilatedGate`), modulates it
    channel-wise by its attention-pooled descriptor (:class:`AttentionPoolingModulation`),
    and the sum of upsampled and skip is refined (:class:`DepthwiseConvBlock`).
    ``forward`` returns the decoder maps finest first (4 maps, one per scale).
    """

    def __init__(self, dims: Sequence[int], gate_groups: int = 4, expansion: int = 2) -> None:
        super().__init__()
        if len(dims) != 4:
            raise ValueError(f"MACMDDecoder needs 4 encoder widths, got {list(dims)}")
        for dim in dims:
            if dim % gate_groups:
                raise ValueError(f"gate_groups={gate_groups} must divide every width {list(dims)}")
        self.mixer = ChannelMixer(dims[:3])
        self.bottleneck = DepthwiseConvBlock(dims[3], expansion)
        # Index i serves skip i, fed by the decoder map of scale i + 1.
        self.upsamples = nn.ModuleList(DepthwiseUpBlock(dims[i + 1], dims[i]) for i in range(3))
        self.gates = nn.ModuleList(MultiDilatedGate(dims[i], gate_groups) for i in range(3))
        self.modulations = nn.ModuleList(
            AttentionPoolingModulation(dims[i + 1], dims[i]) for i in range(3)
        )
        self.refines = nn.ModuleList(DepthwiseConvBlock(dims[i], expansion) for i in range(3))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        skips = self.mixer(features[:3])
        x = self.bottleneck(features[3])
        decoded = [x]
        for i in reversed(range(3)):
            up = self.upsamples[i](x)
            skip = self.modulations[i](self.gates[i](skips[i], up), x)
            x = self.refines[i](up + skip)
            decoded.append(x)
        return decoded[::-1]


# --- Models --------------------------------------------------------------------------------


class TransDAE(nn.Module):
    """TransDAE (Azad et al. 2024): dual-attention U-shaped transformer, 2D or 3D.

    Encoder: an overlapping convolutional stem of stride ``patch_size``, then one stage
    per entry of ``depths`` (stride-2 patch merging before every stage but the first,
    widths ``embed_dim * 2**i``) of :class:`DualAttentionBlock`. Skips: every encoder
    stage but the last is enriched top-down by :class:`InterScaleInteraction` with the
    next-coarser (already enriched) scale. Decoder: per skip, :class:`PatchExpand` x2, skip
    concatenation, ``decoder_depth`` dual-attention blocks; the head, a :class:`PatchExpand`
    x ``patch_size`` straight to ``num_classes``, gives logits at the input resolution. With
    ``deep_supervision`` a linear head on every coarser decoder scale (the bottleneck
    included) adds auxiliary logits. Stochastic depth (rising linearly to
    ``drop_path_rate``) is applied in the encoder.
    """

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        embed_dim: int = 16,
        depths: Sequence[int] = (2, 2, 2),
        decoder_depth: int = 1,
        head_dim: int = 16,
        mlp_ratio: float = 2.0,
        patch_size: int = 4,
        drop_path_rate: float = 0.0,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in _CONVS:
            raise ValueError(f"TransDAE: spatial_dims must be 2 or 3, got {spatial_dims!r}")
        depths = tuple(depths)
        if len(depths) < 2 or min(depths) < 1:
            raise ValueError(f"TransDAE: depths needs >= 2 stages of >= 1 block, got {depths}")
        num_stages = len(depths)
        dims = [embed_dim * 2**i for i in range(num_stages)]
        heads = stage_heads(dims, head_dim)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.ndim = spatial_dims
        self.patch_size = patch_size
        self.deep_supervision = deep_supervision
        self.size_multiple: int = patch_size * 2 ** (num_stages - 1)
        self.min_size: int = patch_size

        self.stem = PatchEmbed(
            in_chans, dims[0], spatial_dims, patch_size, "overlap", self.size_multiple
        )
        drop_path = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.encoder = nn.ModuleList(
            EncoderStage(
                dims[max(i - 1, 0)], dims[i], depths[i], heads[i], spatial_dims, mlp_ratio,
                drop_path[sum(depths[:i]):sum(depths[:i + 1])], downsample=i > 0,
            )
            for i in range(num_stages)
        )
        # Index i serves skip i (encoder stage i) with stage i + 1 as its coarser scale.
        self.interactions = nn.ModuleList(
            InterScaleInteraction(dims[i], dims[i + 1]) for i in range(num_stages - 1)
        )
        self.decoder = nn.ModuleList(
            DecoderStage(dims[i + 1], dims[i], decoder_depth, heads[i], spatial_dims, mlp_ratio)
            for i in range(num_stages - 1)
        )
        # Each stride-patch_size token predicts the logits of its patch: Swin-Unet's final
        # x4 patch expanding fused with its classifier, so that no full-resolution feature
        # map (the most memory and time in 3D) is ever formed.
        self.head = PatchExpand(dims[0], num_classes, spatial_dims, patch_size, norm=False)
        self.aux_heads = nn.ModuleList(
            nn.Linear(dims[i], num_classes) for i in range(1, num_stages) if deep_supervision
        )
        self.apply(_init_linear)

    @classmethod
    def from_config(cls, cfg: TransDAEConfig, in_chans: int, num_classes: int) -> TransDAE:
        return cls(
            in_chans=in_chans, num_classes=num_classes, spatial_dims=cfg.spatial_dims,
            embed_dim=cfg.embed_dim, depths=cfg.depths, decoder_depth=cfg.decoder_depth,
            head_dim=cfg.head_dim, mlp_ratio=cfg.mlp_ratio, patch_size=cfg.patch_size,
            drop_path_rate=cfg.drop_path_rate, deep_supervision=cfg.deep_supervision,
        )

    def check_input(self, x: torch.Tensor) -> tuple[int, ...]:
        return check_segmentation_input("TransDAE", x, self.in_chans, self.ndim, self.min_size)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Padded input -> decoder features (channels-last), finest first; the last is the
        bottleneck."""
        x = _channels_last(self.stem(x)).contiguous()
        encoded = []
        for stage in self.encoder:
            x = stage(x)
            encoded.append(x)
        skips = [encoded[-1]]
        for i in reversed(range(len(self.interactions))):
            skips.insert(0, self.interactions[i](encoded[i], skips[0]))
        decoded = [encoded[-1]]
        for i in reversed(range(len(self.decoder))):
            decoded.insert(0, self.decoder[i](decoded[0], skips[i]))
        return decoded

    def forward_head(
        self, features: Sequence[torch.Tensor], spatial: Sequence[int]
    ) -> SegmentationOutput:
        """Decoder features -> logits ``[B, num_classes, *spatial]`` (a list with the
        auxiliary logits after the main ones when training with deep supervision)."""
        main = _channels_first(self.head(features[0]))
        main = logits_at_input_size(main, spatial, self.size_multiple)
        if not (self.training and self.deep_supervision):
            return main
        # Auxiliary logits stay at their own scale (the loss resizes the target): scoring
        # them at the input size would double a 3D training step.
        aux = []
        for level, (head, feature) in enumerate(zip(self.aux_heads, features[1:], strict=True)):
            stride = self.patch_size * 2 ** (level + 1)
            logits = _channels_first(head(feature))
            aux.append(logits[(..., *(slice(0, -(-n // stride)) for n in spatial))])
        return [main] + aux

    def forward(self, x: torch.Tensor) -> SegmentationOutput:
        spatial = self.check_input(x)
        return self.forward_head(self.forward_features(pad_to_multiple(x, self.size_multiple)),
                                 spatial)


class MACMD(nn.Module):
    """The MACMD decoder (:class:`MACMDDecoder`) on a 4-stage :class:`DomainViT` encoder, 2D.

    ``encoder="nat"``: neighbourhood attention with ``kernel_size``; a stage with
    dilation ``d > 1`` in ``dilations`` alternates plain and dilated blocks (DiNAT).
    ``encoder="maxvit"``: MaxViT block then grid attention with ``block_size``. The
    encoder has an overlapping stride-4 stem and widths ``embed_dim * 2**i``; the decoder
    works at the encoder's widths. A 1x1 head on the finest decoder map gives the main
    logits; with ``deep_supervision``, three more heads on the coarser maps give
    auxiliary logits. All are upsampled bilinearly to the input size.
    """

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 2,
        encoder: str = "nat",
        embed_dim: int = 32,
        depths: Sequence[int] = (1, 1, 2, 1),
        head_dim: int = 16,
        kernel_size: int = 7,
        dilations: Sequence[int] = (1, 1, 1, 1),
        block_size: int = 7,
        mlp_ratio: float = 2.0,
        gate_groups: int = 4,
        decoder_expansion: int = 2,
        drop_path_rate: float = 0.0,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or len(dilations) != 4:
            raise ValueError(
                f"MACMD: depths and dilations need 4 entries (one per stage), got "
                f"{list(depths)} and {list(dilations)}"
            )
        if encoder == "nat":
            attn_kind = "neighborhood"
            attn_options: list = [
                ({"kernel_size": kernel_size}, {"kernel_size": kernel_size, "dilation": d})
                if d > 1 else {"kernel_size": kernel_size}
                for d in dilations
            ]
        elif encoder == "maxvit":
            attn_kind, attn_options = "maxvit", [{"block_size": block_size}] * 4
        else:
            raise ValueError(f"MACMD: encoder must be 'nat' or 'maxvit', got {encoder!r}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.ndim = 2
        self.deep_supervision = deep_supervision
        self.encoder = DomainViT(
            in_chans=in_chans, num_classes=0, global_pool="", ndim=2, embed_dim=embed_dim,
            depths=depths, head_dim=head_dim, attn_kind=attn_kind, attn_options=attn_options,
            mlp_ratio=mlp_ratio, stem="overlap", stem_stride=4, downsample="conv",
            drop_path_rate=drop_path_rate,
        )
        dims = [info["num_chs"] for info in self.encoder.feature_info]
        self.size_multiple: int = self.encoder.feature_info[-1]["reduction"]
        self.min_size: int = self.encoder.feature_info[0]["reduction"]
        self.decoder = MACMDDecoder(dims, gate_groups, decoder_expansion)
        self.head = nn.Conv2d(dims[0], num_classes, 1)
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(dims[i], num_classes, 1) for i in range(1, 4) if deep_supervision
        )

    @classmethod
    def from_config(cls, cfg: MACMDConfig, in_chans: int, num_classes: int) -> MACMD:
        return cls(
            in_chans=in_chans, num_classes=num_classes, encoder=cfg.encoder,
            embed_dim=cfg.embed_dim, depths=cfg.depths, head_dim=cfg.head_dim,
            kernel_size=cfg.kernel_size, dilations=cfg.dilations, block_size=cfg.block_size,
            mlp_ratio=cfg.mlp_ratio, gate_groups=cfg.gate_groups,
            decoder_expansion=cfg.decoder_expansion, drop_path_rate=cfg.drop_path_rate,
            deep_supervision=cfg.deep_supervision,
        )

    def check_input(self, x: torch.Tensor) -> tuple[int, ...]:
        return check_segmentation_input("MACMD", x, self.in_chans, self.ndim, self.min_size)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Padded input -> the four decoder maps (channels-first), finest first."""
        features = self.encoder.forward_intermediates(x, norm=True, intermediates_only=True)
        return self.decoder(features)

    def forward_head(
        self, features: Sequence[torch.Tensor], spatial: Sequence[int]
    ) -> SegmentationOutput:
        """Decoder maps -> logits ``[B, num_classes, *spatial]`` (a list with the three
        auxiliary logits after the main ones when training with deep supervision)."""
        main = logits_at_input_size(self.head(features[0]), spatial, self.size_multiple)
        if not (self.training and self.deep_supervision):
            return main
        return [main] + [
            logits_at_input_size(head(feature), spatial, self.size_multiple)
            for head, feature in zip(self.aux_heads, features[1:], strict=True)
        ]

    def forward(self, x: torch.Tensor) -> SegmentationOutput:
        spatial = self.check_input(x)
        return self.forward_head(self.forward_features(pad_to_multiple(x, self.size_multiple)),
                                 spatial)


# --- Configs (the ``model:`` section of a medseg run config) ------------------------------

StageDepth = Annotated[int, Field(ge=1, le=32)]
Dilation = Annotated[int, Field(ge=1, le=16)]


class TransDAEConfig(StrictModel):
    """TransDAE; the defaults are a CPU quickstart size (the paper's are wider/deeper)."""

    name: Literal["transdae"] = "transdae"
    spatial_dims: Literal[2, 3] = 2
    #: width of the first stage, doubled by every later stage
    embed_dim: int = Field(16, ge=4, le=512)
    #: dual-attention blocks per encoder stage; the number of entries is the number of stages
    depths: tuple[StageDepth, ...] = Field((2, 2, 2), min_length=2, max_length=5)
    #: dual-attention blocks per decoder stage
    decoder_depth: int = Field(1, ge=1, le=8)
    #: channels per attention head (stage heads = width // head_dim, at least 1)
    head_dim: int = Field(16, ge=4, le=256)
    mlp_ratio: float = Field(2.0, gt=0, le=8)
    #: stride of the overlapping convolutional stem
    patch_size: Literal[2, 4] = 4
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    deep_supervision: bool = False

    @model_validator(mode="after")
    def _heads_divide_widths(self) -> TransDAEConfig:
        stage_heads([self.embed_dim * 2**i for i in range(len(self.depths))], self.head_dim)
        return self


class MACMDConfig(StrictModel):
    """MACMD decoder on a DomainViT encoder; the defaults are a CPU quickstart size."""

    name: Literal["macmd"] = "macmd"
    spatial_dims: Literal[2] = 2
    #: "nat": (dilated) neighbourhood attention; "maxvit": block + grid attention
    encoder: Literal["nat", "maxvit"] = "nat"
    embed_dim: int = Field(32, ge=8, le=512)
    depths: tuple[StageDepth, StageDepth, StageDepth, StageDepth] = (1, 1, 2, 1)
    head_dim: int = Field(16, ge=4, le=256)
    #: nat: neighbourhood size in tokens
    kernel_size: int = Field(7, ge=2, le=31)
    #: nat: per stage; a stage with d > 1 alternates plain and d-dilated blocks (DiNAT)
    dilations: tuple[Dilation, Dilation, Dilation, Dilation] = (1, 1, 1, 1)
    #: maxvit: block and grid size in tokens
    block_size: int = Field(7, ge=2, le=31)
    mlp_ratio: float = Field(2.0, gt=0, le=8)
    #: groups of the multi-dilated gate convolutions; must divide embed_dim
    gate_groups: int = Field(4, ge=1)
    decoder_expansion: int = Field(2, ge=1, le=8)
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    deep_supervision: bool = True

    @model_validator(mode="after")
    def _widths_divisible(self) -> MACMDConfig:
        stage_heads([self.embed_dim * 2**i for i in range(4)], self.head_dim)
        if self.embed_dim % self.gate_groups:
            raise ValueError(
                f"gate_groups={self.gate_groups} must divide embed_dim={self.embed_dim}"
            )
        return self
