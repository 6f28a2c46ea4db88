"""Spatial-reduction attention: full-resolution queries, keys/values from a reduced map.

Follows Wang et al., "Pyramid Vision Transformer: A Versatile Backbone for Dense
Prediction without Convolutions", ICCV 2021 (spatial-reduction attention), the form
MedViT's and Next-ViT's efficient multi-head self-attention (E-MHSA; Li et al., "Next-ViT",
2022) also take: a strided convolution with kernel = stride = ``sr_ratio`` followed by
LayerNorm shrinks the map that keys and values are computed from by ``sr_ratio`` per
axis, so the cost is ``N * N / sr_ratio**ndim``. As in PVT, tokens beyond the last whole
``sr_ratio`` patch of an axis do not reach the reduced map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import SizeArg, check_tokens, head_dim, per_axis, resolve_ndim

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class SpatialReductionAttention(nn.Module):
    """PVT spatial-reduction attention (Wang et al., ICCV 2021), 1D/2D/3D, channels-last.

    ``sr_ratio`` (int or one per axis; 1 means plain global attention with no reduction
    layers) is the kernel and stride of the reducing convolution. Uses
    ``F.scaled_dot_product_attention``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        sr_ratio: SizeArg = 1,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        ndim: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.ndim = resolve_ndim(owner, ndim, sr_ratio=sr_ratio)
        self.sr_ratio = per_axis(owner, sr_ratio, "sr_ratio", self.ndim)
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = head_dim(owner, dim, num_heads)
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        if any(ratio > 1 for ratio in self.sr_ratio):
            self.reduction = _CONV[self.ndim](dim, dim, self.sr_ratio, stride=self.sr_ratio)
            self.norm = nn.LayerNorm(dim)
        else:
            self.reduction = self.norm = None
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, sr_ratio={self.sr_ratio}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        check_tokens(owner, x, self.dim, self.ndim)
        spatial = tuple(x.shape[1:-1])
        if any(length < ratio for length, ratio in zip(spatial, self.sr_ratio, strict=True)):
            raise ValueError(
                f"{owner}: every spatial axis must have at least sr_ratio={self.sr_ratio} "
                f"tokens, got spatial size {spatial}"
            )
        context = x
        if self.reduction is not None:
            context = self.norm(self.reduction(x.movedim(-1, 1)).movedim(1, -1))
        query = self.q(x).flatten(1, -2).unflatten(-1, (self.num_heads, self.head_dim))
        key, value = (
            self.kv(context).flatten(1, -2).unflatten(-1, (2, self.num_heads, self.head_dim))
        ).unbind(-3)
        out = F.scaled_dot_product_attention(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).flatten(-2).reshape(x.shape)))
