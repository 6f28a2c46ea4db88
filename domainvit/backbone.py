"""Hierarchical vision-transformer backbone, 2D or 3D, with a per-stage attention kind.

One configurable model, :class:`DomainViT`, is the encoder the task models build on: a
convolutional stem, stages of pre-norm transformer blocks whose attention comes from
:func:`domainvit.attention.build_attention`, patch merging between stages (channels
doubled, resolution halved), a final norm and a pooled classification head (stem,
merging and head are in :mod:`domainvit.layers`). The registered variants rebuild the
published hierarchical designs on that one class:

- ``domainvit_nat_*``: Neighborhood Attention Transformer (Hassani et al., CVPR 2023) with
  the dilated blocks of DiNAT (Hassani & Shi, arXiv:2209.15001): blocks alternate plain
  and dilated neighbourhood attention, dilation largest in the high-resolution stages.
- ``domainvit_swin_*``: Swin Transformer (Liu et al., ICCV 2021), windows shifted in
  every other block, 2x2 patch merging.
- ``domainvit_maxvit_*``: the block then grid attention of MaxViT (Tu et al., ECCV 2022)
  and one MLP per block, without MaxViT's MBConv layers and its MLP between the two
  attentions (the ``"maxvit"`` attention unit holds both), so fewer parameters.
- ``domainvit_nat3d_*``: dilated neighbourhood attention on volumes (CT/MR).

Importing this module registers the variants with timm, so that
``timm.create_model("domainvit_nat_tiny", features_only=True, out_indices=(1, 2, 3))``
works like any timm model. No input size is fixed: any size that the stem and the patch
merges divide is accepted.

Tokens are channels-last (``[B, *spatial, C]``, what the attention modules take) inside
a stage and channels-first between the top-level modules, like every timm CNN-style
model: that lets timm's feature extractor tap the stage outputs, and the swap is a view
(``movedim``), not a copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from timm.layers import DropPath, LayerScale, Mlp, get_device_dtype
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import FeatureDictNet, feature_take_indices
from timm.models._manipulate import checkpoint, checkpoint_seq
from torch import nn

from domainvit.attention import (
    MultiAxisAttention,
    NeighborhoodAttention,
    SpatialReductionAttention,
    build_attention,
)
from domainvit.attention.common import crop_spatial, pad_spatial
from domainvit.errors import UserError
from domainvit.layers import (
    ClassifierHead,
    MixFeedForward,
    PatchEmbed,
    PatchMerging,
    channels_first,
    channels_last,
    check_choice,
    check_ndim,
    factory_device,
    init_linear_weights,
)

__all__ = ["Block", "DomainViT", "Stage", "StagedClassifierMixin", "check_local_weights"]

AttentionOptions = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


#: the feed-forward of a block: timm's two-layer MLP, or SegFormer's Mix-FFN
MLP_KINDS = ("mlp", "mix")


def _minimum_size(attn: nn.Module) -> tuple[int, ...] | None:
    """The smallest map ``attn`` accepts, per axis; None if it takes any size.

    Neighbourhood kernels need ``kernel_size * dilation`` tokens along an axis, spatial
    reduction ``sr_ratio``. Window kinds (Swin, MaxViT, halo) pad inside the module.
    """
    if isinstance(attn, NeighborhoodAttention):
        return tuple(k * d for k, d in zip(attn.kernel_size, attn.dilation, strict=True))
    if isinstance(attn, SpatialReductionAttention):
        return attn.sr_ratio
    return None


def _layer_scale(dim: int, init_value: float | None) -> nn.Module:
    return LayerScale(dim, init_value) if init_value else nn.Identity()


class Block(nn.Module):
    """Pre-norm transformer block on channels-last tokens ``[B, *spatial, dim]``.

    ``x + drop_path(ls(attn(norm(x))))`` then ``x + drop_path(ls(mlp(norm(x))))``; the
    attention is ``build_attention(attn_kind, dim, num_heads, ndim, **attn_options)``.
    Maps smaller than a neighbourhood (``kernel_size * dilation``) are zero-padded after
    the norm and cropped after the attention, as NAT and DiNAT do, so small inputs and
    deep stages work at any resolution. The ``"maxvit"`` kind is a residual unit with its
    own norms: the block applies layer scale and drop path to its update ``attn(x) - x``.
    ``mlp_kind="mix"`` puts a depthwise 3x3 convolution between the MLP's two linear
    layers (:class:`domainvit.layers.MixFeedForward`, 2D and 3D maps).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ndim: int = 2,
        attn_kind: str = "neighborhood",
        attn_options: Mapping[str, Any] | None = None,
        mlp_ratio: float = 4.0,
        proj_drop: float = 0.0,
        drop_path: float = 0.0,
        layer_scale_init_value: float | None = None,
        norm_eps: float = 1e-5,
        mlp_kind: str = "mlp",
    ) -> None:
        super().__init__()
        check_choice(mlp_kind, "mlp_kind", MLP_KINDS)
        attn = build_attention(attn_kind, dim, num_heads, ndim, **dict(attn_options or {}))
        self.attn_is_residual = isinstance(attn, MultiAxisAttention)
        self.norm1 = nn.Identity() if self.attn_is_residual else nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn
        self.ls1 = _layer_scale(dim, layer_scale_init_value)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        hidden = int(dim * mlp_ratio)
        if mlp_kind == "mix":
            if proj_drop:
                raise ValueError("mlp_kind='mix' has no dropout; set proj_drop to 0")
            check_ndim(ndim)
            self.mlp = MixFeedForward(dim, hidden, ndim)
        else:
            self.mlp = Mlp(dim, hidden, drop=proj_drop)
        self.ls2 = _layer_scale(dim, layer_scale_init_value)
        self.drop_path2 = DropPath(drop_path)
        self.minimum_size = _minimum_size(attn)

    def _attention_update(self, x: torch.Tensor) -> torch.Tensor:
        if self.attn_is_residual:
            return self.attn(x) - x
        x = self.norm1(x)
        spatial = tuple(x.shape[1:-1])
        if self.minimum_size is None or all(
            length >= size for length, size in zip(spatial, self.minimum_size, strict=True)
        ):
            return self.attn(x)
        missing = [
            max(size - length, 0)
            for length, size in zip(spatial, self.minimum_size, strict=True)
        ]
        padded = pad_spatial(x, [0] * len(spatial), missing)
        return crop_spatial(self.attn(padded), spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self._attention_update(x)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class Stage(nn.Module):
    """Optional patch merging, then ``depth`` blocks; channels-first in and out.

    ``block_options`` are the attention options of the blocks, cycled: two entries that
    differ only in ``shift`` (or ``dilation``) alternate them block by block.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        depth: int,
        num_heads: int,
        ndim: int = 2,
        attn_kind: str = "neighborhood",
        block_options: Sequence[Mapping[str, Any]] = ({},),
        downsample: str | None = None,
        mlp_ratio: float = 4.0,
        proj_drop: float = 0.0,
        drop_path: Sequence[float] = (),
        layer_scale_init_value: float | None = None,
        norm_eps: float = 1e-5,
        mlp_kind: str = "mlp",
    ) -> None:
        super().__init__()
        drop_path = list(drop_path) or [0.0] * depth
        self.downsample = (
            PatchMerging(dim, out_dim, ndim, downsample, norm_eps) if downsample else nn.Identity()
        )
        self.blocks = nn.Sequential(*[
            Block(
                out_dim, num_heads, ndim, attn_kind, block_options[i % len(block_options)],
                mlp_ratio=mlp_ratio, proj_drop=proj_drop, drop_path=drop_path[i],
                layer_scale_init_value=layer_scale_init_value, norm_eps=norm_eps,
                mlp_kind=mlp_kind,
            )
            for i in range(depth)
        ])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(channels_last(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return channels_first(x)


def _per_stage(value: Any, name: str, num_stages: int, scalar: type | tuple[type, ...]) -> list:
    """One value for every stage: a scalar is repeated, a sequence must have one per stage."""
    if isinstance(value, scalar):
        return [value] * num_stages
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == num_stages:
        return list(value)
    raise ValueError(
        f"{name} must be one value or a sequence of {num_stages} (one per stage), got {value!r}"
    )


def _stage_block_options(attn_options: Any, num_stages: int) -> list[list[dict[str, Any]]]:
    """Normalise ``attn_options`` to, per stage, the list of block options it cycles through.

    Accepted: ``None`` or one dict (every block of every stage), or one entry per stage,
    each ``None``, a dict (every block of the stage) or a sequence of dicts (cycled).
    """

    def blocks(entry: Any, where: str) -> list[dict[str, Any]]:
        if entry is None:
            return [{}]
        if isinstance(entry, Mapping):
            return [dict(entry)]
        if (isinstance(entry, Sequence) and not isinstance(entry, str) and entry
                and all(isinstance(item, Mapping) for item in entry)):
            return [dict(item) for item in entry]
        raise ValueError(
            f"attn_options{where} must be None, a dict of options or a non-empty sequence of "
            f"dicts (cycled over the blocks), got {entry!r}"
        )

    if attn_options is None or isinstance(attn_options, Mapping):
        return [blocks(attn_options, "")] * num_stages
    if not isinstance(attn_options, Sequence) or len(attn_options) != num_stages:
        raise ValueError(
            f"attn_options must be None, one dict, or a sequence of {num_stages} entries (one "
            f"per stage), got {attn_options!r}"
        )
    return [blocks(entry, f"[{i}]") for i, entry in enumerate(attn_options)]


class StagedClassifierMixin:
    """timm's model interface shared by the hierarchical classifiers of domainvit: a
    ``stem``, ``stages`` (each with ``downsample`` and ``blocks``), a final norm applied by
    ``_final_norm`` and a :class:`~domainvit.layers.ClassifierHead` ``head``; the stage
    outputs through ``forward_intermediates``, so timm's feature extractors work too."""

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, global_pool, **get_device_dtype(self))
        self.global_pool = self.head.pool_type

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs (timm's ``forward_intermediates``).

        Args:
            indices: the last n stages if an int, all if None, else these stage indices.
            norm: apply the final norm to the last stage's output when it is taken.
            stop_early: stop after the last stage taken.
            output_fmt: ``"NCHW"`` (channels first, also for 3D) or ``"NHWC"`` (channels last).
            intermediates_only: return only the intermediates.
        """
        check_choice(output_fmt, "output_fmt", ("NCHW", "NHWC"))
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last_index = len(self.stages) - 1
        stages = self.stages[:max_index + 1] if stop_early else self.stages
        intermediates = []
        x = self.stem(x)
        for index, stage in enumerate(stages):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(stage, x)
            else:
                x = stage(x)
            if index in take_indices:
                taken = self._final_norm(x) if norm and index == last_index else x
                intermediates.append(channels_last(taken) if output_fmt == "NHWC" else taken)
        if intermediates_only:
            return intermediates
        if index == last_index:
            x = self._final_norm(x)
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last one in ``indices`` (and the norm/head)."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        self.stages = self.stages[:max_index + 1]
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.head = ClassifierHead(self.num_features, 0, "")
            self.num_classes, self.global_pool = 0, ""
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_chans, *spatial]`` -> normalised last-stage features, channels first."""
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.stages, x)
        else:
            x = self.stages(x)
        return self._final_norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def check_local_weights(variant: str, family: str, kwargs: Mapping[str, Any],
                        pretrained: bool) -> None:
    """Refuse pretrained requests without local weights, and weights that are not
    safetensors (anything else would be unpickled by ``torch.load``, which can run code)."""
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    weights_file = str(overlay.get("file") or "")
    if pretrained and not (weights_file or overlay.get("state_dict")):
        raise UserError(
            f"{variant}: no pretrained weights are published for {family} models. Create it "
            "with pretrained=False, or load your own weights with pretrained=True and "
            "pretrained_cfg_overlay=dict(file=PATH.safetensors)"
        )
    if pretrained and weights_file and not weights_file.endswith(".safetensors"):
        raise UserError(f"{variant}: weights must be a .safetensors file, got {weights_file}")


class DomainViT(StagedClassifierMixin, nn.Module):
    """Hierarchical transformer: stem, stages of attention blocks, norm, pooled head.

    Args:
        in_chans: input channels.
        num_classes: classifier outputs; 0 for a feature extractor (no ``fc``).
        global_pool: ``"avg"``, ``"max"`` or ``""`` (classify every position).
        ndim: 2 for images ``[B, C, H, W]``, 3 for volumes ``[B, C, D, H, W]``.
        embed_dim: channels of the first stage (doubled by every patch merge), or one
            width per stage.
        depths: blocks per stage.
        num_heads: heads per stage (int or one per stage); ``None`` uses ``dim // head_dim``.
        head_dim: channels per head when ``num_heads`` is ``None``.
        attn_kind: a ``build_attention`` kind for every stage, or one per stage.
        attn_options: ``build_attention`` options: one dict for every block, or one entry
            per stage (a dict, or a sequence of dicts cycled over the stage's blocks).
            Kinds with a size need it here (``kernel_size``, ``window_size``, ...).
        mlp_ratio: MLP hidden width / channels.
        mlp_kind: ``"mlp"`` (timm's MLP) or ``"mix"`` (a depthwise 3x3 convolution between
            the two linear layers, SegFormer's Mix-FFN / Uformer's LeFF: local mixing that
            window attention lacks, for dense prediction).
        stem: ``"patch"`` (one conv, kernel = stride) or ``"overlap"`` (stride-2 3x3 convs).
        stem_stride: stride of the stem.
        downsample: patch merging between stages, ``"conv"`` (3x3 stride-2) or ``"merge"``
            (2x2 concatenation + linear).
        layer_scale_init_value: initial LayerScale value; ``None`` for no layer scale.
        drop_rate: dropout before the classifier.
        proj_drop_rate: dropout in the MLPs.
        drop_path_rate: stochastic depth of the last block; it rises linearly from 0 over
            all blocks.
        norm_eps: LayerNorm epsilon.
        device: where to create the parameters (timm's factory argument; ``"meta"`` to
            build the structure without allocating them).
        dtype: the parameters' floating-point type.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        ndim: int = 2,
        embed_dim: int | Sequence[int] = 64,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: int | Sequence[int] | None = None,
        head_dim: int = 32,
        attn_kind: str | Sequence[str] = "neighborhood",
        attn_options: AttentionOptions | Sequence[AttentionOptions] = None,
        mlp_ratio: float = 4.0,
        mlp_kind: str = "mlp",
        stem: str = "patch",
        stem_stride: int = 4,
        downsample: str = "conv",
        layer_scale_init_value: float | None = None,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_ndim(ndim)
        check_choice(downsample, "downsample", PatchMerging.kinds)
        depths = tuple(depths)
        if not depths or not all(isinstance(d, int) and d >= 1 for d in depths):
            raise ValueError(f"depths must be a non-empty sequence of ints >= 1, got {depths!r}")
        num_stages = len(depths)
        if isinstance(embed_dim, int):
            dims = [embed_dim * 2**i for i in range(num_stages)]
        else:
            dims = _per_stage(embed_dim, "embed_dim", num_stages, int)
        if num_heads is None:
            heads = [max(dim // head_dim, 1) for dim in dims]
        else:
            heads = _per_stage(num_heads, "num_heads", num_stages, int)
        for i, (dim, head_count) in enumerate(zip(dims, heads, strict=True)):
            if dim % head_count:
                raise ValueError(
                    f"stage {i}: width {dim} is not divisible by {head_count} heads; "
                    "choose num_heads (or head_dim) to divide it"
                )
        kinds = _per_stage(attn_kind, "attn_kind", num_stages, str)
        block_options = _stage_block_options(attn_options, num_stages)

        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.ndim = ndim
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.num_features = self.head_hidden_size = dims[-1]
        self.feature_info: list[dict[str, Any]] = []

        with factory_device(device):
            total_stride = stem_stride * 2 ** (num_stages - 1)
            self.stem = PatchEmbed(
                in_chans, dims[0], ndim, stem_stride, stem, input_multiple=total_stride,
                norm_eps=norm_eps,
            )
            drop_path = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
            stages = []
            in_dim = dims[0]
            for i in range(num_stages):
                first = sum(depths[:i])
                stages.append(Stage(
                    in_dim, dims[i], depths[i], heads[i], ndim, kinds[i], block_options[i],
                    downsample=downsample if i else None, mlp_ratio=mlp_ratio,
                    proj_drop=proj_drop_rate, drop_path=drop_path[first:first + depths[i]],
                    layer_scale_init_value=layer_scale_init_value, norm_eps=norm_eps,
                    mlp_kind=mlp_kind,
                ))
                in_dim = dims[i]
                self.feature_info.append(
                    dict(num_chs=dims[i], reduction=stem_stride * 2**i, module=f"stages.{i}")
                )
            self.stages = nn.Sequential(*stages)
            self.norm = nn.LayerNorm(dims[-1], eps=norm_eps)
            self.head = ClassifierHead(dims[-1], num_classes, global_pool, drop_rate)
            self.apply(init_linear_weights)
        if dtype is not None:
            self.to(dtype=dtype)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Learned tokens and relative-position tables are not decayed (as in Swin)."""
        return {
            name for name, _ in self.named_parameters()
            if any(key in name for key in ("rpb", "relative_position", "tokens"))
        }

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return channels_first(self.norm(channels_last(x)))

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last one in ``indices`` (and the norm/head)."""
        take_indices = super().prune_intermediate_layers(indices, prune_norm, prune_head)
        # the stem checks inputs against the total stride of the stages that are left
        self.stem.input_multiple = self.stem.stride * 2 ** (len(self.stages) - 1)
        return take_indices


def _create_domainvit(variant: str, pretrained: bool = False, **kwargs: Any) -> DomainViT:
    check_local_weights(variant, "domainvit", kwargs, pretrained)
    num_stages = len(kwargs.get("depths", (2, 2, 6, 2)))
    out_indices = kwargs.pop("out_indices", tuple(range(num_stages)))
    model = build_model_with_cfg(
        DomainViT,
        variant,
        pretrained,
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices),
        **kwargs,
    )
    if isinstance(model, FeatureDictNet):
        # The feature extractor keeps only the stages up to the last one it returns, so
        # inputs need only be a multiple of that stage's reduction.
        kept = sum(name.startswith("stages_") for name in model)
        model["stem"].input_multiple = model["stem"].stride * 2 ** (kept - 1)
    return model


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "stem.proj.0",
        "classifier": "head.fc",
        **kwargs,
    }


# A 3D variant's cfg says so by its pool size, the feature map at the reference volume
# 96x96x96 (three axes); it has no input size, which timm's cfg holds as (C, H, W) only.
# timm's data pipeline and model tests take 2D images, so tests/core/test_timm_suite.py
# runs timm's tests on the variants with a 2D pool size.
_CFG_3D = dict(input_size=None, pool_size=(6, 6, 6), mean=(0.0,), std=(1.0,))

default_cfgs = generate_default_cfgs({
    "domainvit_nat_tiny": _cfg(),
    "domainvit_nat_small": _cfg(),
    "domainvit_swin_tiny": _cfg(),
    "domainvit_swin_small": _cfg(),
    "domainvit_maxvit_tiny": _cfg(),
    "domainvit_maxvit_small": _cfg(),
    "domainvit_nat3d_tiny": _cfg(**_CFG_3D),
})


def _dinat_options(kernel_size: int, stage_dilations: Sequence[int]) -> list:
    """DiNAT: blocks alternate plain (dilation 1) and dilated neighbourhood attention; the
    dilation of a stage is about its resolution / kernel at the reference input size."""
    return [
        ({"kernel_size": kernel_size, "dilation": 1}, {"kernel_size": kernel_size, "dilation": d})
        for d in stage_dilations
    ]


def _swin_options(window_size: int, num_stages: int = 4) -> list:
    """Swin: windows shifted by half a window in every other block."""
    pair = ({"window_size": window_size, "shift": False},
            {"window_size": window_size, "shift": True})
    return [pair] * num_stages


# Reference input 224x224 (2D) and 96x96x96 (3D): the dilations below fill the map there.
_NAT = dict(stem="overlap", downsample="conv", attn_kind="neighborhood", depths=(3, 4, 18, 5),
            attn_options=_dinat_options(7, (8, 4, 2, 1)))
_SWIN = dict(stem="patch", downsample="merge", attn_kind="swin", attn_options=_swin_options(7))
_MAXVIT = dict(stem="overlap", downsample="conv", attn_kind="maxvit", depths=(2, 2, 5, 2),
               attn_options={"block_size": 7})
_NAT3D = dict(ndim=3, in_chans=1, stem="overlap", stem_stride=2, downsample="conv",
              attn_kind="neighborhood", attn_options=_dinat_options(5, (4, 2, 1, 1)))


@register_model
def domainvit_nat_tiny(pretrained: bool = False, **kwargs: Any) -> DomainViT:
    model_args = dict(_NAT, embed_dim=64, mlp_ratio=3.0, drop_path_rate=0.2)
    return _create_domainvit("domainvit_nat_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def domainvit_nat_small(pretrained: bool = False, **kwargs: Any) -> DomainViT:
    model_args = dict(_NAT, embed_dim=96, mlp_ratio=2.0, layer_scale_init_value=1e-5,
                      drop_path_rate=0.3)
    return _create_domainvit("domainvit_nat_small", pretrained, **dict(model_args, **kwargs))


@register_model
def domainvit_swin_tiny(pretrained: bool = False, **kwargs: Any) -> DomainViT:
    model_args = dict(_SWIN, embed_dim=96, depths=(2, 2, 6, 2), drop_path_rate=0.2)
    return _create_domainvit("domainvit_swin_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def domainvit_swin_small(pretrained: bool = False, **kwargs: Any) -> DomainViT:
    model_args = dict(_SWIN, embed_dim=96, depths=(2, 2, 18, 2), drop_path_rate=0.3)
    return _create_domainvit("domainvit_swin_small", pretrained, **dict(model_args, **kwargs))


@register_model
def domainvit_maxvit_tiny(pretrained: bool = False, **kwargs: Any) -> DomainViT:
    model_args = dict(_MAXVIT, embed_dim=64, drop_path_rate=0.2)
    return _create_domainvit("domainvit_maxvit_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def domainvit_maxvit_small(pretrained: bool = False, **kwargs: Any) -> DomainViT:
    model_args = dict(_MAXVIT, embed_dim=96, drop_path_rate=0.3)
    return _create_domainvit("domainvit_maxvit_small", pretrained, **dict(model_args, **kwargs))


@register_model
def domainvit_nat3d_tiny(pretrained: bool = False, **kwargs: Any) -> DomainViT:
    model_args = dict(_NAT3D, embed_dim=48, depths=(2, 2, 6, 2), drop_path_rate=0.1)
    return _create_domainvit("domainvit_nat3d_tiny", pretrained, **dict(model_args, **kwargs))
