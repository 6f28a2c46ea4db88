"""Halo attention: blocked queries attending to their block plus a halo around it.

Follows Vaswani et al., "Scaling Local Self-Attention for Parameter Efficient Visual
Backbones" (HaloNet), CVPR 2021. The map is cut into non-overlapping query blocks of
``block_size``; every query in a block attends to the same keys, the block widened by
``halo_size`` tokens on each side. All queries of a block share one key set, which makes
the computation one dense attention per block (unlike neighbourhood attention, where
every query has its own window).

HaloNet zero-pads the map so that border blocks have a full halo; here the padded keys
are masked out, so padding never changes a result. Sizes that are not a multiple of the
block are padded the same way and the padded queries cropped. Position information is a
learned relative position bias per head (as in the rest of this package) rather than
HaloNet's relative logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import (
    SizeArg,
    attention_in_windows,
    ceil_to_multiple,
    check_tokens,
    crop_spatial,
    head_dim,
    pad_spatial,
    per_axis,
    resolve_ndim,
)
from .window import RelativePositionBias, partition, unpartition


def halo_windows(
    x: torch.Tensor, block_size: tuple[int, ...], halo_size: tuple[int, ...]
) -> torch.Tensor:
    """``[B, blocks, prod(block + 2 * halo), C]``: each block of ``x`` with its halo.

    ``x`` is channels-last with spatial lengths that are multiples of ``block_size``;
    the halo beyond the borders is zero-padded.
    """
    ndim = len(block_size)
    x = pad_spatial(x, halo_size, halo_size)
    for axis, (block, halo) in enumerate(zip(block_size, halo_size, strict=True)):
        x = x.unfold(1 + axis, block + 2 * halo, block)
    # unfold appends each window axis after the channels: [B, *counts, C, *window]
    x = x.permute(0, *range(1, ndim + 1), *range(ndim + 2, 2 * ndim + 2), ndim + 1)
    window = math.prod(block + 2 * halo for block, halo in zip(block_size, halo_size, strict=True))
    return x.reshape(x.shape[0], -1, window, x.shape[-1])


class HaloAttention(nn.Module):
    """HaloNet blocked local self-attention (Vaswani et al., CVPR 2021), 1D/2D/3D.

    Queries in blocks of ``block_size``; keys and values from the block plus
    ``halo_size`` tokens on every side. Keys outside the input (the zero-padded halo at
    the borders, or padding up to a multiple of the block) are masked out. ``rpb``: a
    learned bias per head for every relative offset between a query and a key.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        block_size: SizeArg,
        halo_size: SizeArg,
        rpb: bool = True,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        ndim: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.ndim = resolve_ndim(owner, ndim, block_size=block_size, halo_size=halo_size)
        self.block_size = per_axis(owner, block_size, "block_size", self.ndim)
        self.halo_size = per_axis(owner, halo_size, "halo_size", self.ndim, minimum=0)
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = head_dim(owner, dim, num_heads)
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        key_size = tuple(
            block + 2 * halo for block, halo in zip(self.block_size, self.halo_size, strict=True)
        )
        self.relative_position_bias = (
            RelativePositionBias(num_heads, self.block_size, key_size) if rpb else None
        )
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, block_size={self.block_size}, "
            f"halo_size={self.halo_size}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(type(self).__name__, x, self.dim, self.ndim)
        spatial = tuple(x.shape[1:-1])
        padded = ceil_to_multiple(spatial, self.block_size)
        padding = [p - s for p, s in zip(padded, spatial, strict=True)]
        zeros = [0] * self.ndim
        query, key_value = pad_spatial(self.qkv(x), zeros, padding).split(
            [self.dim, 2 * self.dim], dim=-1
        )
        query = partition(query, self.block_size).unflatten(-1, (self.num_heads, self.head_dim))
        key, value = (
            halo_windows(key_value, self.block_size, self.halo_size)
            .unflatten(-1, (2, self.num_heads, self.head_dim))
            .permute(3, 0, 1, 4, 2, 5)
        )
        real = pad_spatial(x.new_ones(1, *spatial, 1), zeros, padding)
        real_keys = halo_windows(real, self.block_size, self.halo_size)[0, :, :, 0].bool()
        mask = torch.zeros(real_keys.shape, dtype=query.dtype, device=x.device)
        mask = mask.masked_fill(~real_keys, float("-inf"))[:, None, None, :]
        if self.relative_position_bias is not None:
            mask = mask + self.relative_position_bias().to(query.dtype)
        out = attention_in_windows(
            query.transpose(-3, -2),
            key,
            value,
            mask,
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        out = unpartition(out.transpose(-3, -2).flatten(-2), self.block_size, padded)
        return self.proj_drop(self.proj(crop_spatial(out, spatial)))
