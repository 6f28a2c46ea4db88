"""The MACMD decoder (2D), a segmentation model of the medseg task.

:class:`MACMD` is the decoder of Maurya, Liu and Zwiggelaar, "MACMD: Multi-dilated
Contextual Attention and Channel Mixer Decoding for Medical Image Segmentation",
arXiv:2511.05803, 2025, on our hierarchical encoder
:class:`~domainvit.backbone.DomainViT` with dilated neighbourhood attention (NAT/DiNAT)
or MaxViT block/grid attention in place of the paper's PVTv2/MaxViT. Multi-dilated
grouped convolutions (dilations 1, 2, 3, 5) gate every skip, an attention-pooled
descriptor of each deeper scale modulates the shallower one channel-wise, a channel
mixer exchanges information between the three shallower skips, depthwise-conv blocks
upsample, and three auxiliary heads give deep supervision. Unlike the released code,
every layer is built in ``__init__``, so every weight is trained.

Input and output as every medseg model (:mod:`domainvit.tasks.medseg.common`); the
auxiliary logits of deep supervision are upsampled to the input size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from domainvit.backbone import DomainViT
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
    "AttentionPoolingModulation",
    "ChannelMixer",
    "DepthwiseConvBlock",
    "DepthwiseUpBlock",
    "MACMD",
    "MACMDConfig",
    "MACMDDecoder",
    "MultiDilatedGate",
]

GATE_DILATIONS = (1, 2, 3, 5)


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (at most 8 groups): batch-size independent, so a batch of 1 trains."""
    return nn.GroupNorm(math.gcd(channels, 8), channels)



# --- decoder layers (channels-first 2D maps [B, C, H, W]) ------------------------------------


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
        return [skip + resize(m, skip.shape[2:]) for skip, m in zip(skips, mixed, strict=True)]


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


# --- model ---------------------------------------------------------------------------------


class MACMD(SegmentationModel):
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


# --- Configs (the ``model:`` section of a medseg run config) ------------------------------


Dilation = Annotated[int, Field(ge=1, le=16)]


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
