"""Attention inside non-overlapping partitions: Swin's shifted windows and MaxViT's block
and grid partitions.

Follows Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
Windows", ICCV 2021 (3D windows as in Liu et al., "Video Swin Transformer", CVPR 2022),
and the partitions of Tu et al., "MaxViT: Multi-Axis Vision Transformer", ECCV 2022.

A *block* partition cuts each axis into consecutive windows of ``size`` tokens; a *grid*
partition puts ``size`` tokens spread evenly over the whole axis (stride ``length / size``)
into each window, a dilated global grid. Inputs whose length is not a multiple of the
size are zero-padded at the end; padded tokens are masked out as keys and cropped from
the output, so the result does not depend on the padding. Swin's shift rolls the
(padded) map by half a window before partitioning; tokens that end up in one window only
because of the wrap-around are labelled as different regions and never attend to each
other (``-inf`` between different labels, as in Swin's attention mask).
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


def partition(x: torch.Tensor, size: tuple[int, ...], grid: bool = False) -> torch.Tensor:
    """Cut channels-last ``x`` ``[B, *spatial, C]`` into ``[B, windows, prod(size), C]``.

    Every spatial length must be a multiple of its ``size``. ``grid=False``: windows of
    consecutive tokens (blocks); ``grid=True``: windows of ``size`` tokens strided by
    ``length // size`` (MaxViT's grid). Windows and the tokens inside them are row-major.
    """
    batch, *spatial, channels = x.shape
    ndim = len(spatial)
    factors: list[int] = []
    for length, window in zip(spatial, size, strict=True):
        factors += [window, length // window] if grid else [length // window, window]
    outer = list(range(1, 2 * ndim + 1, 2))
    inner = list(range(2, 2 * ndim + 2, 2))
    count_axes, window_axes = (inner, outer) if grid else (outer, inner)
    x = x.reshape(batch, *factors, channels).permute(0, *count_axes, *window_axes, 2 * ndim + 1)
    return x.reshape(batch, -1, math.prod(size), channels)


def unpartition(
    windows: torch.Tensor, size: tuple[int, ...], spatial: tuple[int, ...], grid: bool = False
) -> torch.Tensor:
    """Inverse of :func:`partition`: ``[B, windows, prod(size), C]`` -> ``[B, *spatial, C]``."""
    batch, channels, ndim = windows.shape[0], windows.shape[-1], len(spatial)
    counts = [length // window for length, window in zip(spatial, size, strict=True)]
    x = windows.reshape(batch, *counts, *size, channels)
    order: list[int] = []
    for axis in range(ndim):
        count_axis, window_axis = 1 + axis, 1 + ndim + axis
        order += [window_axis, count_axis] if grid else [count_axis, window_axis]
    return x.permute(0, *order, 2 * ndim + 1).reshape(batch, *spatial, channels)


def _grid_coordinates(size: tuple[int, ...]) -> torch.Tensor:
    """Row-major coordinates ``[prod(size), ndim]`` of every position in a window."""
    axes = [torch.arange(length) for length in size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(size))


class RelativePositionBias(nn.Module):
    """A learned bias per head for every relative offset between a query and a key.

    Follows Swin (Liu et al., ICCV 2021): one table entry per offset, shared by every
    window. Queries sit in a window of ``query_size`` and keys in a window of
    ``key_size`` (default: the same) centred on it, e.g. a block plus its halo; the
    table then has ``query + key - 1`` entries per axis. Calling the module returns the
    bias ``[heads, prod(query_size), prod(key_size)]``.
    """

    def __init__(
        self, num_heads: int, query_size: tuple[int, ...], key_size: tuple[int, ...] | None = None
    ) -> None:
        super().__init__()
        key_size = query_size if key_size is None else key_size
        extent = [query + key - 1 for query, key in zip(query_size, key_size, strict=True)]
        self.table = nn.Parameter(torch.empty(num_heads, math.prod(extent)))
        nn.init.trunc_normal_(self.table, std=0.02)
        # The constant shift that centres the key window does not change which offsets
        # are equal, so indices need only key - query, moved to start at zero.
        offsets = (
            _grid_coordinates(key_size)[None, :, :]
            - _grid_coordinates(query_size)[:, None, :]
            + torch.tensor(query_size)
            - 1
        )
        strides = torch.tensor([math.prod(extent[axis + 1 :]) for axis in range(len(extent))])
        self.register_buffer("index", (offsets * strides).sum(-1), persistent=False)

    def forward(self) -> torch.Tensor:
        return self.table[:, self.index]


def partition_mask(
    spatial: tuple[int, ...],
    padded: tuple[int, ...],
    size: tuple[int, ...],
    shifts: tuple[int, ...],
    grid: bool,
    device: torch.device,
) -> torch.Tensor | None:
    """``[windows, N, N]``: True where a query may attend a key, or None if all may.

    A key is allowed when it is in the query's region (regions differ only where the
    cyclic shift wrapped tokens around) and is a real token, not padding. Padded queries
    keep their padded keys so that no row is empty; their outputs are cropped anyway.
    """
    if spatial == padded and not any(shifts):
        return None
    ndim = len(spatial)
    labels = torch.zeros(padded, dtype=torch.long, device=device)
    valid = torch.ones(padded, dtype=torch.bool, device=device)
    for axis, (length, padded_length, window, shift) in enumerate(
        zip(spatial, padded, size, shifts, strict=True)
    ):
        view = [1] * ndim
        view[axis] = padded_length
        position = torch.arange(padded_length, device=device)
        if shift:
            # Swin's three regions along the shifted axis: the untouched part, the last
            # window's tail of the map, and the wrapped-around head of the map.
            axis_labels = (position >= padded_length - window).long() + (
                position >= padded_length - shift
            ).long()
            labels = labels * 3 + axis_labels.view(view)
        original = torch.roll(position, -shift)
        valid = valid & (original < length).view(view)
    maps = partition(torch.stack([labels, valid.long()], dim=-1)[None], size, grid)[0]
    window_labels, window_valid = maps[..., 0], maps[..., 1].bool()
    same_region = window_labels[:, :, None] == window_labels[:, None, :]
    return same_region & (window_valid[:, None, :] | ~window_valid[:, :, None])


class PartitionAttention(nn.Module):
    """Multi-head self-attention inside the windows of a block or grid partition.

    The building block of Swin (``grid=False``, optional ``shift``) and of MaxViT's block
    and grid attention (Tu et al., ECCV 2022). Input and output ``[B, *spatial, dim]``;
    sizes that are not a multiple of ``partition_size`` are padded and the padding masked
    out (module docstring). ``rpb`` adds a learned relative position bias per window.
    ``shift`` rolls by half a window along every axis with more than one window.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        partition_size: SizeArg,
        grid: bool = False,
        shift: bool = False,
        rpb: bool = True,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        ndim: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.ndim = resolve_ndim(owner, ndim, partition_size=partition_size)
        self.partition_size = per_axis(owner, partition_size, "partition_size", self.ndim)
        if grid and shift:
            raise ValueError(f"{owner}: shift applies to block partitions only, not grid=True")
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = head_dim(owner, dim, num_heads)
        self.grid, self.shift, self.attn_drop = grid, shift, attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.relative_position_bias = (
            RelativePositionBias(num_heads, self.partition_size) if rpb else None
        )
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, partition_size={self.partition_size}, "
            f"grid={self.grid}, shift={self.shift}"
        )

    def _attention_mask(
        self,
        spatial: tuple[int, ...],
        padded: tuple[int, ...],
        shifts: tuple[int, ...],
        like: torch.Tensor,
    ) -> torch.Tensor | None:
        """Float mask ``[windows or 1, heads or 1, N, N]``: bias plus ``-inf`` where blocked."""
        mask = None
        if self.relative_position_bias is not None:
            mask = self.relative_position_bias().to(like.dtype)
        allowed = partition_mask(
            spatial, padded, self.partition_size, shifts, self.grid, like.device
        )
        if allowed is not None:
            blocked = torch.zeros(allowed.shape, dtype=like.dtype, device=like.device)
            blocked = blocked.masked_fill(~allowed, float("-inf")).unsqueeze(1)
            mask = blocked if mask is None else blocked + mask
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(type(self).__name__, x, self.dim, self.ndim)
        spatial = tuple(x.shape[1:-1])
        padded = ceil_to_multiple(spatial, self.partition_size)
        shifts = tuple(
            window // 2 if self.shift and length > window else 0
            for length, window in zip(padded, self.partition_size, strict=True)
        )
        axes = tuple(range(1, self.ndim + 1))
        qkv = pad_spatial(
            self.qkv(x), [0] * self.ndim, [p - s for p, s in zip(padded, spatial, strict=True)]
        )
        if any(shifts):
            qkv = torch.roll(qkv, [-shift for shift in shifts], axes)
        windows = partition(qkv, self.partition_size, self.grid)
        query, key, value = windows.unflatten(-1, (3, self.num_heads, self.head_dim)).permute(
            3, 0, 1, 4, 2, 5
        )
        out = attention_in_windows(
            query,
            key,
            value,
            self._attention_mask(spatial, padded, shifts, query),
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        out = unpartition(out.transpose(-3, -2).flatten(-2), self.partition_size, padded, self.grid)
        if any(shifts):
            out = torch.roll(out, shifts, axes)
        return self.proj_drop(self.proj(crop_spatial(out, spatial)))


class ShiftedWindowAttention(PartitionAttention):
    """Swin window attention (Liu et al., ICCV 2021), 1D/2D/3D.

    Windows of ``window_size`` tokens; with ``shift=True`` the map is cyclically rolled by
    half a window first, and tokens brought together only by the wrap-around are masked
    from each other (Swin's region labels, ``-inf`` between different labels). A learned
    relative position bias table per window (``rpb``). Input sizes that are not a
    multiple of the window are zero-padded at the end; the padding is masked out as keys
    and cropped from the output. Along an axis that fits in one window no shift is applied
    (Swin does the same when the resolution is not larger than the window).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: SizeArg,
        shift: bool = False,
        rpb: bool = True,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        ndim: int | None = None,
    ) -> None:
        owner = type(self).__name__
        ndim = resolve_ndim(owner, ndim, window_size=window_size)
        super().__init__(
            dim,
            num_heads,
            per_axis(owner, window_size, "window_size", ndim),
            grid=False,
            shift=shift,
            rpb=rpb,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=proj_drop,
            ndim=ndim,
        )
