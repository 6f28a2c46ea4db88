"""TransDAE (2D/3D), a segmentation model of the medseg task.

:class:`TransDAE` follows Azad, Adibfar and Fu, "TransDAE: Dual Attention Mechanism in a
Hierarchical Transformer for Efficient Medical Image Segmentation", arXiv:2409.02018,
2024 (no public code; our reading of the paper, on our attention core). A U-shaped
transformer whose every block is *dual attention*: efficient (linear) spatial
attention (:class:`~domainvit.attention.LinearAttention`) and transposed channel
attention (:class:`~domainvit.attention.ChannelAttention`), each pre-norm with a
residual, then a Mix-FFN (depthwise convolution between the two linear layers). Its
skips pass through an inter-scale interaction module (:class:`InterScaleInteraction`,
a cross-scale gate: our design, as the paper's module has no published code) before
the decoder.

Input and output as every medseg model (:mod:`domainvit.tasks.medseg.common`); the
auxiliary logits of deep supervision stay at their own scale (the loss resizes the target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from timm.layers import DropPath
from torch import nn

from domainvit.attention import ChannelAttention, LinearAttention
from domainvit.layers import (
    MixFeedForward,
    PatchEmbed,
    PatchMerging,
    channels_first,
    channels_last,
    init_linear_weights,
)
from domainvit.schema import StrictModel
from domainvit.tasks.medseg.common import (
    SegmentationModel,
    SegmentationOutput,
    StageDepth,
    logits_at_input_size,
    resize,
    stage_heads,
)

__all__ = [
    "DecoderStage",
    "DualAttentionBlock",
    "EncoderStage",
    "InterScaleInteraction",
    "PatchExpand",
    "TransDAE",
    "TransDAEConfig",
]

_SPATIAL_DIMS = (2, 3)


# --- layers (channels-last tokens [B, *spatial, C]) ----------------------------------------


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
        context = channels_first(self.context(coarse))
        context = channels_last(resize(context, skip.shape[1:-1]))
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


# --- model ---------------------------------------------------------------------------------


class TransDAE(SegmentationModel):
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
        if spatial_dims not in _SPATIAL_DIMS:
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
        self.apply(init_linear_weights)

    @classmethod
    def from_config(cls, cfg: TransDAEConfig, in_chans: int, num_classes: int) -> TransDAE:
        return cls(
            in_chans=in_chans, num_classes=num_classes, spatial_dims=cfg.spatial_dims,
            embed_dim=cfg.embed_dim, depths=cfg.depths, decoder_depth=cfg.decoder_depth,
            head_dim=cfg.head_dim, mlp_ratio=cfg.mlp_ratio, patch_size=cfg.patch_size,
            drop_path_rate=cfg.drop_path_rate, deep_supervision=cfg.deep_supervision,
        )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Padded input -> decoder features (channels-last), finest first; the last is the
        bottleneck."""
        x = channels_last(self.stem(x)).contiguous()
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
        main = channels_first(self.head(features[0]))
        main = logits_at_input_size(main, spatial, self.size_multiple)
        if not (self.training and self.deep_supervision):
            return main
        # Auxiliary logits stay at their own scale (the loss resizes the target): scoring
        # them at the input size would double a 3D training step.
        aux = []
        for level, (head, feature) in enumerate(zip(self.aux_heads, features[1:], strict=True)):
            stride = self.patch_size * 2 ** (level + 1)
            logits = channels_first(head(feature))
            aux.append(logits[(..., *(slice(0, -(-n // stride)) for n in spatial))])
        return [main] + aux


# --- Configs (the ``model:`` section of a medseg run config) ------------------------------


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
