"""MedViTV2: the medcls task's classifier, built on the domainvit attention core.

Follows Manzari, Asgariandehkordi, Koleilat, Xiao and Rivaz, "Medical Image
Classification with KAN-Integrated Transformers and Dilated Neighborhood Attention"
(MedViTV2, arXiv:2502.13693, 2025), which extends MedViT (Manzari et al., Computers in
Biology and Medicine 157, 2023) and the hybrid stage layout of Next-ViT (Li et al., 2022):

- a stem of four 3x3 conv-BN-ReLU layers (total stride 4);
- four stages, a stride-2 3x3 convolution and BatchNorm between them (patch merging);
- **Local Feature Perception** (LFP) blocks: dilated 7x7 neighbourhood attention (on
  :mod:`domainvit.kernels`) and a locality feed-forward (1x1 expand, depthwise 3x3,
  1x1 project);
- **Global Feature Perception** (GFP) blocks: spatial-reduction attention (reduction
  8/4/2/1 by stage) on part of the channels and multi-head convolutional attention on
  the rest, concatenated, then a Kolmogorov-Arnold feed-forward (FasterKAN layers with
  reflectional-switch basis functions) in place of the MLP.

Block layout (the paper's "hierarchical hybrid strategy", as in the authors' released
code): stage 1 is local only, stage 4 global only, and in stages 2 and 3 every third
block and the stage's last block are GFP, the others LFP; tiny's stage 3 is
``LFP LFP GFP LFP LFP GFP``. The LFP blocks of a stage alternate the stage's dilation and
none (DiNAT's recipe, starting dilated so that a stage with a single LFP block uses its
dilation); the default dilations 8/4/2/1 make the dilated window span the whole map at
224x224 inputs.

Any input size works (MedMNIST's 28, 64, 128 and 224 included): where a late stage's map
is smaller than the attention window, the window shrinks to fit (kernel to the map,
dilation to what then fits, axes of length one dropped), and spatial reduction pads the
map with its edge values to a whole number of reduction patches.

Variants: tiny, small and base have the widths and depths of the authors' released code
(tiny: depths 2/2/6/1, widths 64/128/192/384); ``micro`` is ours, small enough to
train for a few epochs on 64x64 images on a laptop CPU. Importing this module registers
``medvitv2_{micro,tiny,small,base}`` with timm (local weights only, like
:mod:`domainvit.backbone`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from timm.layers import ConvNormAct, DropPath
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._manipulate import checkpoint_seq
from torch import nn

from domainvit.attention import NeighborhoodAttention, SpatialReductionAttention
from domainvit.attention.common import ceil_to_multiple, check_tokens, crop_spatial
from domainvit.backbone import StagedClassifierMixin, check_local_weights
from domainvit.errors import UserError
from domainvit.kernels import na1d, na2d
from domainvit.layers import (
    ClassifierHead,
    channels_first,
    channels_last,
    factory_device,
    init_linear_weights,
)
from domainvit.schema import StrictModel

__all__ = [
    "VARIANTS",
    "FittedNeighborhoodAttention",
    "FittedSpatialReductionAttention",
    "GlobalFeaturePerception",
    "KANFeedForward",
    "KANLayer",
    "LocalFeaturePerception",
    "LocalityFeedForward",
    "MedViTV2",
    "MedViTV2Config",
    "MedViTV2Stage",
    "MultiHeadConvAttention",
    "RSWAFBasis",
    "Stem",
    "block_kinds",
    "check_widths",
]

_NEIGHBORHOOD_OPS = {1: na1d, 2: na2d}
NUM_STAGES = 4
HEAD_DIM = 32
#: per stage: 0 for no GFP block, else every n-th block and the last (see block_kinds)
GLOBAL_EVERY = (0, 3, 3, 1)
#: per stage: dilation of the dilated LFP blocks, and spatial reduction of GFP attention
DILATIONS = (8, 4, 2, 1)
SR_RATIOS = (8, 4, 2, 1)


class Stem(nn.Module):
    """Four 3x3 conv-BN-ReLU layers, strides 2, 1, 1, 2: ``[B, in_chans, H, W]`` ->
    ``[B, out_dim, H/4, W/4]`` (rounded up). Widths ``width, width/2, width, out_dim``.

    It checks the input, being the first module of every forward path (also of timm's
    feature extractors).
    """

    def __init__(self, in_chans: int, out_dim: int, width: int = 64) -> None:
        super().__init__()
        widths = (in_chans, width, width // 2, width, out_dim)
        strides = (2, 1, 1, 2)
        self.convs = nn.Sequential(*[
            ConvNormAct(widths[i], widths[i + 1], 3, stride=strides[i]) for i in range(4)
        ])
        self.in_chans = in_chans

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a :class:`UserError` naming the expected and the given shape."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise UserError(
                f"MedViTV2 expects images of shape [B, {self.in_chans}, H, W] "
                f"({self.in_chans} channel(s)), got shape {list(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.convs(x)


class RSWAFBasis(nn.Module):
    """Reflectional switch activation functions (FasterKAN's radial basis).

    ``[..., C]`` -> ``[..., C, num_grids]`` with
    ``basis_i(x) = 1 - tanh((x - c_i) / width) ** 2`` for centres ``c_i`` evenly spaced
    over ``[grid_min, grid_max]``. The defaults cover the bulk of a layer-normed input
    (+-2 standard deviations) and set ``width`` to the spacing of the centres, so
    neighbouring bumps overlap. Centres and width are fixed, as in FasterKAN.
    """

    def __init__(
        self,
        num_grids: int = 8,
        grid_min: float = -2.0,
        grid_max: float = 2.0,
        width: float | None = None,
    ) -> None:
        super().__init__()
        if num_grids < 2 or grid_max <= grid_min:
            raise ValueError(
                f"RSWAFBasis needs num_grids >= 2 and grid_min < grid_max, got "
                f"num_grids={num_grids}, grid=[{grid_min}, {grid_max}]"
            )
        self.register_buffer(
            "centres", torch.linspace(grid_min, grid_max, num_grids), persistent=False
        )
        self.width = width or (grid_max - grid_min) / (num_grids - 1)
        self.num_grids = num_grids

    def extra_repr(self) -> str:
        return f"num_grids={self.num_grids}, width={self.width:.3g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1 - torch.tanh((x.unsqueeze(-1) - self.centres) / self.width).square()


class KANLayer(nn.Module):
    """One FasterKAN layer on channels-last tokens: LayerNorm, the RSWAF basis of every
    channel, and a linear map of the ``in_features * num_grids`` basis values.

    Written here rather than imported: FasterKAN (Delis, 2024) is a research repository
    with no maintained package, and the installable KAN libraries (pykan, torchkan) use
    B-spline bases, not RSWAF; the layer is a few lines.
    """

    def __init__(self, in_features: int, out_features: int, num_grids: int = 8) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.basis = RSWAFBasis(num_grids)
        # No bias, as in FasterKAN: the basis values already sum to about a constant.
        self.linear = nn.Linear(in_features * num_grids, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.basis(self.norm(x)).flatten(-2))


class KANFeedForward(nn.Module):
    """The GFP feed-forward: two KAN layers ``dim -> hidden -> dim`` (the basis is the
    nonlinearity, so none sits between them); channels-last."""

    def __init__(self, dim: int, hidden_ratio: float = 2.0, num_grids: int = 8) -> None:
        super().__init__()
        hidden = int(dim * hidden_ratio)
        self.layers = nn.Sequential(
            KANLayer(dim, hidden, num_grids), KANLayer(hidden, dim, num_grids)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LocalityFeedForward(nn.Module):
    """LocalViT's feed-forward, channels-first: 1x1 expand, depthwise 3x3, 1x1 project,
    each followed by BatchNorm (hard-swish after the first two)."""

    def __init__(self, dim: int, expansion: float = 3.0) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.layers = nn.Sequential(
            ConvNormAct(dim, hidden, 1, act_layer=nn.Hardswish),
            ConvNormAct(hidden, hidden, 3, groups=hidden, act_layer=nn.Hardswish),
            ConvNormAct(hidden, dim, 1, apply_act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MultiHeadConvAttention(nn.Module):
    """MedViT's multi-head convolutional attention, channels-first: a grouped 3x3
    convolution with one group per head, BatchNorm, ReLU, and a 1x1 projection."""

    def __init__(self, dim: int, head_dim: int = HEAD_DIM) -> None:
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"MultiHeadConvAttention: head_dim={head_dim} must divide dim={dim}")
        self.heads = ConvNormAct(dim, dim, 3, groups=dim // head_dim)
        self.proj = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.heads(x))


class FittedNeighborhoodAttention(NeighborhoodAttention):
    """2D :class:`~domainvit.attention.NeighborhoodAttention` whose window shrinks to fit
    small maps, channels-last ``[B, H, W, C]``.

    Per axis of length ``L``: kernel ``min(kernel_size, L)``, dilation the largest up to
    ``dilation`` that the kernel still fits (``kernel * dilation <= L``). Axes of length
    one are dropped (a 1xW map runs 1D attention; a single token attends only to
    itself), and the relative position bias is cropped to the offsets the fitted window
    can reach, so the bias of an offset is the same at every map size.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: int = 7,
        dilation: int | Sequence[int] = 1,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        backend: str | None = None,
    ) -> None:
        super().__init__(
            dim, num_heads, kernel_size, dilation=dilation, qkv_bias=qkv_bias,
            proj_drop=proj_drop, ndim=2, backend=backend,
        )

    def fitted_window(
        self, spatial: Sequence[int]
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Kernel and dilation per axis used on a map of size ``spatial``."""
        kernels = tuple(min(k, length) for k, length in zip(self.kernel_size, spatial, strict=True))
        dilations = tuple(
            max(1, min(d, length // k))
            for d, k, length in zip(self.dilation, kernels, spatial, strict=True)
        )
        return kernels, dilations

    def _fitted_rpb(self, kernels: Sequence[int], kept: Sequence[int]) -> torch.Tensor | None:
        if self.rpb is None:
            return None
        # Bias index k - 1 + offset: a fitted kernel k' reaches offsets |offset| < k'.
        index = tuple(
            slice(full - fitted, full + fitted - 1) if axis in kept else full - 1
            for axis, (full, fitted) in enumerate(zip(self.kernel_size, kernels, strict=True))
        )
        return self.rpb[(slice(None), *index)].contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(type(self).__name__, x, self.dim, self.ndim)
        batch, *spatial, _ = x.shape
        kernels, dilations = self.fitted_window(spatial)
        query, key, value = self.split_heads(self.qkv(x))
        kept = [axis for axis, length in enumerate(spatial) if length > 1]
        if kept:
            kept_shape = [spatial[axis] for axis in kept]
            query, key, value = (
                t.reshape(batch, *kept_shape, *t.shape[-2:]) for t in (query, key, value)
            )
            rpb = self._fitted_rpb(kernels, kept)
            out = _NEIGHBORHOOD_OPS[len(kept)](
                query, key, value,
                tuple(kernels[axis] for axis in kept),
                dilation=tuple(dilations[axis] for axis in kept),
                rpb=None if rpb is None else rpb.to(query.dtype),
                backend=self.backend,
            )
        else:
            # One token: its only key is itself, so its softmax weight is 1.
            out = value.repeat_interleave(self.num_heads // self.kv_heads, dim=-2)
        return self.proj_drop(self.proj(out.reshape(*x.shape[:-1], self.dim)))


class FittedSpatialReductionAttention(SpatialReductionAttention):
    """2D :class:`~domainvit.attention.SpatialReductionAttention` for any map size,
    channels-last ``[B, H, W, C]``.

    A map whose sides are not multiples of ``sr_ratio`` is padded with its edge values
    to the next multiple (so maps smaller than one reduction patch work, and no token
    is left out of the reduced keys) and the output is cropped back.
    """

    def __init__(
        self, dim: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__(dim, num_heads, sr_ratio, qkv_bias=qkv_bias, proj_drop=proj_drop, ndim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(type(self).__name__, x, self.dim, self.ndim)
        spatial = tuple(x.shape[1:-1])
        padded = ceil_to_multiple(spatial, self.sr_ratio)
        if padded == spatial:
            return super().forward(x)
        padding: list[int] = []
        for length, target in zip(reversed(spatial), reversed(padded), strict=True):
            padding += [0, target - length]
        x = channels_last(F.pad(channels_first(x), padding, mode="replicate"))
        return crop_spatial(super().forward(x), spatial)


class LocalFeaturePerception(nn.Module):
    """LFP block, channels-first: ``x + attn(bn(x))`` with dilated neighbourhood
    attention, then ``x + ffn(bn(x))`` with the locality feed-forward."""

    def __init__(
        self,
        dim: int,
        head_dim: int = HEAD_DIM,
        kernel_size: int = 7,
        dilation: int = 1,
        mlp_ratio: float = 3.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = FittedNeighborhoodAttention(dim, dim // head_dim, kernel_size, dilation)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.ffn = LocalityFeedForward(dim, mlp_ratio)
        self.drop_path2 = DropPath(drop_path)

    def mix_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The attention half of the block (the only part that mixes distant tokens)."""
        attended = channels_first(self.attn(channels_last(self.norm1(x))))
        return x + self.drop_path1(attended)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mix_tokens(x)
        return x + self.drop_path2(self.ffn(self.norm2(x)))


def _split_channels(dim: int, head_dim: int, attention_ratio: float) -> tuple[int, int]:
    """GFP channels for spatial-reduction attention and for convolutional attention:
    about ``attention_ratio`` of ``dim`` for the first, whole heads for both."""
    if dim % head_dim or dim < 2 * head_dim:
        raise ValueError(
            f"a GFP block needs a width that is a multiple of head_dim={head_dim} and at least "
            f"{2 * head_dim} (one head for each attention), got {dim}"
        )
    heads = dim // head_dim
    attention_heads = min(max(int(heads * attention_ratio), 1), heads - 1)
    return attention_heads * head_dim, (heads - attention_heads) * head_dim


class GlobalFeaturePerception(nn.Module):
    """GFP block, channels-first (Next-ViT's transformer block with a KAN feed-forward).

    A 1x1 conv-BN maps ``dim`` to the attention channels, which get
    ``x + sra(bn(x))`` (spatial-reduction attention); a second 1x1 conv-BN derives the
    remaining channels from them, which get ``y + mhca(y)`` (multi-head convolutional
    attention); the two are concatenated back to ``dim`` and get ``z + kan(z)``.
    """

    def __init__(
        self,
        dim: int,
        sr_ratio: int = 1,
        head_dim: int = HEAD_DIM,
        attention_ratio: float = 0.75,
        kan_ratio: float = 2.0,
        num_grids: int = 8,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        attention_dim, conv_dim = _split_channels(dim, head_dim, attention_ratio)
        self.to_attention = ConvNormAct(dim, attention_dim, 1, apply_act=False)
        self.norm = nn.BatchNorm2d(attention_dim)
        self.attn = FittedSpatialReductionAttention(
            attention_dim, attention_dim // head_dim, sr_ratio
        )
        self.drop_path1 = DropPath(drop_path)
        self.to_conv = ConvNormAct(attention_dim, conv_dim, 1, apply_act=False)
        self.conv_attn = MultiHeadConvAttention(conv_dim, head_dim)
        self.drop_path2 = DropPath(drop_path)
        self.kan = KANFeedForward(dim, kan_ratio, num_grids)
        self.drop_path3 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_attention(x)
        x = x + self.drop_path1(channels_first(self.attn(channels_last(self.norm(x)))))
        y = self.to_conv(x)
        y = y + self.drop_path2(self.conv_attn(y))
        z = channels_last(torch.cat([x, y], dim=1))
        return channels_first(z + self.drop_path3(self.kan(z)))


def block_kinds(depth: int, global_every: int) -> list[str]:
    """``"local"``/``"global"`` for each block of a stage: none global if ``global_every``
    is 0, else every ``global_every``-th block and the last."""
    return [
        "global" if global_every and ((i + 1) % global_every == 0 or i == depth - 1) else "local"
        for i in range(depth)
    ]


class MedViTV2Stage(nn.Module):
    """Optional patch merging (3x3 stride-2 conv + BN), then LFP/GFP blocks laid out by
    :func:`block_kinds`; channels-first in and out. LFP blocks alternate ``dilation``
    and 1, starting with ``dilation``."""

    def __init__(
        self,
        in_dim: int,
        dim: int,
        depth: int,
        downsample: bool,
        global_every: int,
        dilation: int = 1,
        sr_ratio: int = 1,
        kernel_size: int = 7,
        head_dim: int = HEAD_DIM,
        drop_path: Sequence[float] = (),
    ) -> None:
        super().__init__()
        drop_path = list(drop_path) or [0.0] * depth
        self.downsample = (
            ConvNormAct(in_dim, dim, 3, stride=2, apply_act=False) if downsample else nn.Identity()
        )
        blocks: list[nn.Module] = []
        local_blocks = 0
        for i, kind in enumerate(block_kinds(depth, global_every)):
            if kind == "global":
                blocks.append(GlobalFeaturePerception(
                    dim, sr_ratio, head_dim, drop_path=drop_path[i]
                ))
            else:
                blocks.append(LocalFeaturePerception(
                    dim, head_dim, kernel_size, dilation if local_blocks % 2 == 0 else 1,
                    drop_path=drop_path[i],
                ))
                local_blocks += 1
        self.blocks = nn.Sequential(*blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)


def check_widths(
    dims: Sequence[int],
    depths: Sequence[int],
    head_dim: int = HEAD_DIM,
    global_every: Sequence[int] = GLOBAL_EVERY,
) -> None:
    """Raise a ValueError unless ``dims``/``depths`` describe a buildable MedViTV2."""
    if len(dims) != NUM_STAGES or len(depths) != NUM_STAGES:
        raise ValueError(
            f"dims and depths need one entry per stage ({NUM_STAGES}), got dims={list(dims)}, "
            f"depths={list(depths)}"
        )
    if not all(isinstance(d, int) and d >= 1 for d in depths):
        raise ValueError(f"depths must be ints >= 1, got {list(depths)}")
    for stage, (dim, every) in enumerate(zip(dims, global_every, strict=True)):
        smallest = 2 * head_dim if every else head_dim
        if dim % head_dim or dim < smallest:
            raise ValueError(
                f"dims[{stage}]={dim} must be a multiple of head_dim={head_dim} and at least "
                f"{smallest} (stage {stage + 1} {'has GFP blocks' if every else 'is local only'})"
            )


class MedViTV2(StagedClassifierMixin, nn.Module):
    """MedViTV2 classifier (Manzari et al., 2025) for 2D images of any size.

    Args:
        in_chans: input channels (1 for grey-scale scans).
        num_classes: classifier outputs; 0 for a feature extractor (no ``fc``).
        global_pool: ``"avg"``, ``"max"`` or ``""`` (classify every position).
        dims: width of each of the four stages; multiples of ``head_dim``.
        depths: blocks per stage.
        stem_width: widest channel count inside the stem.
        global_every: per stage, 0 for no GFP block, else every n-th and the last block
            are GFP (see :func:`block_kinds`).
        dilations: per stage, the dilation of the (alternate) dilated LFP blocks.
        sr_ratios: per stage, the spatial reduction of GFP attention.
        kernel_size: neighbourhood size of LFP attention.
        head_dim: channels per attention head (and per conv-attention group).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0.
        device: where to create the parameters (timm's factory argument; ``"meta"`` to
            build the structure without allocating them).
        dtype: the parameters' floating-point type.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        dims: Sequence[int] = (64, 128, 192, 384),
        depths: Sequence[int] = (2, 2, 6, 1),
        stem_width: int = 64,
        global_every: Sequence[int] = GLOBAL_EVERY,
        dilations: Sequence[int] = DILATIONS,
        sr_ratios: Sequence[int] = SR_RATIOS,
        kernel_size: int = 7,
        head_dim: int = HEAD_DIM,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dims, depths = tuple(dims), tuple(depths)
        check_widths(dims, depths, head_dim, global_every)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.num_features = self.head_hidden_size = dims[-1]
        self.feature_info: list[dict[str, Any]] = []

        with factory_device(device):
            self.stem = Stem(in_chans, dims[0], stem_width)
            drop_path = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
            stages = []
            for i in range(NUM_STAGES):
                first = sum(depths[:i])
                stages.append(MedViTV2Stage(
                    dims[max(i - 1, 0)], dims[i], depths[i], downsample=i > 0,
                    global_every=global_every[i], dilation=dilations[i], sr_ratio=sr_ratios[i],
                    kernel_size=kernel_size, head_dim=head_dim,
                    drop_path=drop_path[first:first + depths[i]],
                ))
                self.feature_info.append(
                    dict(num_chs=dims[i], reduction=4 * 2**i, module=f"stages.{i}")
                )
            self.stages = nn.Sequential(*stages)
            self.norm = nn.BatchNorm2d(dims[-1])
            self.head = ClassifierHead(dims[-1], num_classes, global_pool, drop_rate)
            self.apply(init_linear_weights)
        if dtype is not None:
            self.to(dtype=dtype)

    @classmethod
    def from_config(cls, cfg: MedViTV2Config, in_chans: int, num_classes: int) -> MedViTV2:
        """The model a validated ``model:`` config section describes."""
        return cls(in_chans=in_chans, num_classes=num_classes, **cfg.model_arguments())

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Relative-position tables are not decayed (as in NAT)."""
        return {name for name, _ in self.named_parameters() if name.endswith("rpb")}

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)  # BatchNorm over channels-first features


#: Architecture of each variant; ``drop_path_rate`` is the paper's stochastic depth.
VARIANTS: dict[str, dict[str, Any]] = {
    "micro": dict(dims=(32, 64, 96, 128), depths=(1, 1, 2, 1), stem_width=32,
                  drop_path_rate=0.0),
    "tiny": dict(dims=(64, 128, 192, 384), depths=(2, 2, 6, 1), drop_path_rate=0.1),
    "small": dict(dims=(64, 128, 256, 512), depths=(2, 2, 6, 2), drop_path_rate=0.1),
    "base": dict(dims=(96, 192, 384, 768), depths=(2, 2, 6, 2), drop_path_rate=0.2),
}

PositiveInt = Annotated[int, Field(gt=0)]
StageInts = tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt]


class MedViTV2Config(StrictModel):
    """``model:`` section for MedViTV2: a variant, optionally with other widths, depths,
    dilations or regularisation."""

    name: Literal["medvitv2"] = "medvitv2"
    variant: Literal["micro", "tiny", "small", "base"] = "tiny"
    #: width of each stage (multiples of 32; at least 64 in stages 2-4); default: the variant's
    dims: StageInts | None = None
    #: blocks per stage; default: the variant's
    depths: StageInts | None = None
    #: dilation of the dilated LFP blocks per stage (fitted to small maps); default 8/4/2/1
    dilations: StageInts | None = None
    #: stochastic depth of the last block; default: the variant's
    drop_path_rate: float | None = Field(None, ge=0, lt=1)
    #: dropout before the classifier
    drop_rate: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _check_buildable(self) -> MedViTV2Config:
        arguments = self.model_arguments()
        check_widths(arguments["dims"], arguments["depths"])
        return self

    def model_arguments(self) -> dict[str, Any]:
        """Keyword arguments of :class:`MedViTV2`: the variant's, with this config's
        overrides."""
        overrides = dict(
            dims=self.dims, depths=self.depths, dilations=self.dilations,
            drop_path_rate=self.drop_path_rate, drop_rate=self.drop_rate,
        )
        return {
            **VARIANTS[self.variant],
            **{key: value for key, value in overrides.items() if value is not None},
        }


def _create_medvitv2(variant: str, pretrained: bool = False, **kwargs: Any) -> MedViTV2:
    check_local_weights(variant, "MedViTV2", kwargs, pretrained)
    out_indices = kwargs.pop("out_indices", tuple(range(NUM_STAGES)))
    return build_model_with_cfg(
        MedViTV2,
        variant,
        pretrained,
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices),
        **kwargs,
    )


def _cfg(**kwargs: Any) -> dict[str, Any]:
    # MedMNIST recipes (MedViT's included) normalise with mean 0.5, std 0.5.
    return {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 1.0,
        "interpolation": "bicubic",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "first_conv": "stem.convs.0.conv",
        "classifier": "head.fc",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "medvitv2_micro": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
    "medvitv2_tiny": _cfg(),
    "medvitv2_small": _cfg(),
    "medvitv2_base": _cfg(),
})


@register_model
def medvitv2_micro(pretrained: bool = False, **kwargs: Any) -> MedViTV2:
    model_args = dict(VARIANTS["micro"], **kwargs)
    return _create_medvitv2("medvitv2_micro", pretrained, **model_args)


@register_model
def medvitv2_tiny(pretrained: bool = False, **kwargs: Any) -> MedViTV2:
    model_args = dict(VARIANTS["tiny"], **kwargs)
    return _create_medvitv2("medvitv2_tiny", pretrained, **model_args)


@register_model
def medvitv2_small(pretrained: bool = False, **kwargs: Any) -> MedViTV2:
    model_args = dict(VARIANTS["small"], **kwargs)
    return _create_medvitv2("medvitv2_small", pretrained, **model_args)


@register_model
def medvitv2_base(pretrained: bool = False, **kwargs: Any) -> MedViTV2:
    model_args = dict(VARIANTS["base"], **kwargs)
    return _create_medvitv2("medvitv2_base", pretrained, **model_args)
