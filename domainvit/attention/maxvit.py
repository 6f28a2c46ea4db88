"""Multi-axis attention: local block attention followed by dilated global grid attention.

Follows Tu et al., "MaxViT: Multi-Axis Vision Transformer", ECCV 2022: block attention
mixes tokens inside non-overlapping windows of ``block_size``; grid attention mixes
tokens on a ``grid_size`` grid strided over the whole map, so two layers give every
token a global (sparse) receptive field at linear cost. Both use a relative position
bias per window. The partitions themselves are :class:`PartitionAttention`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .common import SizeArg, check_tokens, per_axis, resolve_ndim
from .window import PartitionAttention


class MultiAxisAttention(nn.Module):
    """MaxViT block attention then grid attention, each a pre-norm residual unit.

    ``forward(x) = y + grid(norm(y))`` with ``y = x + block(norm(x))``: unlike the other
    attention modules this one already contains its residual connections (and norms), so
    a caller must not add another residual around it. The two attentions are the
    sub-modules ``block_attention`` and ``grid_attention`` (each a
    :class:`PartitionAttention` without norm or residual) for callers that interleave
    their own layers, e.g. MaxViT's feed-forward after each. ``grid_size`` defaults to
    ``block_size``, as in MaxViT. Sizes that are not a multiple of the partition are
    padded and the padding masked out.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        block_size: SizeArg,
        grid_size: SizeArg | None = None,
        rpb: bool = True,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        ndim: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        grid_size = block_size if grid_size is None else grid_size
        self.ndim = resolve_ndim(owner, ndim, block_size=block_size, grid_size=grid_size)
        self.dim = dim
        options = dict(
            rpb=rpb, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, ndim=self.ndim
        )
        self.block_norm = norm_layer(dim)
        self.block_attention = PartitionAttention(
            dim, num_heads, per_axis(owner, block_size, "block_size", self.ndim), **options
        )
        self.grid_norm = norm_layer(dim)
        self.grid_attention = PartitionAttention(
            dim,
            num_heads,
            per_axis(owner, grid_size, "grid_size", self.ndim),
            grid=True,
            **options,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(type(self).__name__, x, self.dim, self.ndim)
        x = x + self.block_attention(self.block_norm(x))
        return x + self.grid_attention(self.grid_norm(x))
