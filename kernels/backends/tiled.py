"""Tiles-plus-halo neighbourhood attention on plain torch ops: the CPU path, any device.

Follows NATTEN's generalized neighbourhood attention (semantics in
:mod:`domainvit.kernels.windows`). Along each axis the queries of every dilation group
are cut into tiles of consecutive in-group queries; a tile's keys (its halo) are the
union of its queries' windows, which is one contiguous in-group range (see the windows
module). Halos are padded to one common length per axis, so the tiles of all axes form a
regular grid of ``[tile_queries]`` x ``[halo_keys]`` blocks. Tiles run in batches: a
batch gathers its query rows and halo key/value rows (plus the global tokens, appended
to every halo) with one ``index_select`` per tensor, makes ONE fused
``scaled_dot_product_attention`` call with a float mask that carries the relative
position bias and ``-inf`` for halo keys outside each query's own window, and writes its
rows straight back to token order. Blocked attention (``stride == kernel_size``) whose
windows divide the input is a reshape of the tokens into windows and runs as one
batched SDPA over them (:func:`blocked_attention`); other blocked calls get one block
per tile, whose halo is exactly the block: no mask at all unless there is a bias.

Memory is linear in the number of tokens: beyond the inputs, the output and their
gradients, only one batch of tiles is alive at a time. The backward pass recomputes each
batch (activation checkpointing per batch of tiles) and scatters its gradients into the
inputs with ``index_add_``. Batches are kept small (a few MiB per tensor) so that CPU
allocations are recycled by the allocator instead of being page-faulted in afresh, which
otherwise dominates large inputs. When ``rpb`` needs a gradient, SDPA computes the
recomputed batches on its math path (the fused CPU kernel gives no mask gradient), so
that case is slower, but still linear in memory.

Grouped-query heads are folded into the query length (the ``heads // kv_heads`` query
heads that share a key/value head attend to the same gathered keys), so keys and values
are never repeated per query head.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..call import AttentionCall
from ..windows import group_length, key_range

# Queries per tile along one axis, by the number of spatial axes: large enough that the
# halo (tile + kernel - 1 keys) is mostly useful work and SDPA sees sizeable matrices,
# small enough that each query does not score too many keys outside its own window.
_TILE_QUERIES = {1: 64, 2: 8, 3: 4}
# Elements of the largest per-batch tensor (halo keys, mask, or attention weights), by
# device type: a few MiB on the CPU, where larger fresh allocations are page-faulted in
# at a fraction of memory bandwidth; accelerators want large launches instead.
_CPU_BATCH_ELEMENTS = 1 << 21
_ACCELERATOR_BATCH_ELEMENTS = 1 << 27


@dataclass(frozen=True)
class AxisTiles:
    """Tiling of one axis: ``T`` tiles of ``Q`` query slots and ``K`` halo key slots.

    Slots past the end of a dilation group repeat the group's last query (their outputs
    are never read back) or are masked out (keys).
    """

    query_index: torch.Tensor  # [T, Q] axis index of each query slot
    key_index: torch.Tensor  # [T, K] axis index of each halo key slot
    allowed: torch.Tensor  # [T, Q, K] key slot inside the query's window
    bias_index: torch.Tensor  # [T, Q, K] rpb index along this axis
    query_valid: torch.Tensor  # [T, Q] slot holds its own query (not a repeat)

    def to(self, device: torch.device) -> AxisTiles:
        return AxisTiles(*(getattr(self, name).to(device) for name in self.__dataclass_fields__))


def query_tile_size(length: int, kernel_size: int, stride: int, dilation: int, ndim: int) -> int:
    """Queries per tile along one axis.

    Blocked attention (``stride == kernel_size``) gets one block per tile: its halo is the
    block itself, so no key is masked or wasted. Otherwise a multiple of ``stride`` (runs of
    queries sharing a leader stay in one tile), near the target for ``ndim`` axes, chosen
    to waste the fewest padded query slots; at most the longest dilation group.
    """
    longest = -(-length // dilation)
    if stride == kernel_size:
        return min(stride, longest)
    target = max(_TILE_QUERIES[ndim], stride)
    # Some multiple of stride lies in [3/4, 3/2] x target, since stride <= target.
    candidates = range(stride, 2 * target + 1, stride)
    tile = min(
        (t for t in candidates if 3 * target <= 4 * t <= 6 * target),
        key=lambda t: (-(-longest // t) * t, abs(t - target)),
    )
    return min(tile, longest)


@functools.lru_cache(maxsize=256)
def tile_axis(
    length: int, kernel_size: int, stride: int, dilation: int, is_causal: bool, tile: int
) -> AxisTiles:
    """Tile one axis (on the CPU; the result is small and cached per geometry)."""
    groups = torch.arange(dilation)
    lengths = group_length(length, dilation, groups)
    tiles_per_group = -(-lengths // tile)
    tile_group = torch.repeat_interleave(groups, tiles_per_group)
    first_tile_of_group = torch.cumsum(tiles_per_group, 0) - tiles_per_group
    tile_start = (torch.arange(len(tile_group)) - first_tile_of_group[tile_group]) * tile
    group_len = lengths[tile_group][:, None]

    query = tile_start[:, None] + torch.arange(tile)
    query_valid = query < group_len
    query = torch.minimum(query, group_len - 1)
    first, last = key_range(query, group_len, kernel_size, stride, is_causal)
    # Windows are monotone in the query, so a tile's halo runs from its first query's
    # first key to its last query's last key.
    halo = int((last[:, -1] - first[:, 0]).max()) + 1
    key_start = torch.minimum(first[:, :1], group_len - halo).clamp(min=0)
    key = key_start + torch.arange(halo)
    key_valid = key < group_len
    key = torch.minimum(key, group_len - 1)

    allowed = (
        key_valid[:, None, :]
        & (key[:, None, :] >= first[:, :, None])
        & (key[:, None, :] <= last[:, :, None])
    )
    bias_index = (key[:, None, :] - query[:, :, None] + kernel_size - 1).clamp(
        0, 2 * kernel_size - 2
    )
    return AxisTiles(
        query_index=tile_group[:, None] + query * dilation,
        key_index=tile_group[:, None] + key * dilation,
        allowed=allowed,
        bias_index=bias_index,
        query_valid=query_valid,
    )


def _spread(tensor: torch.Tensor, axis: int, ndim: int, leading: int = 0) -> torch.Tensor:
    """View ``[*lead, A, B, ...]`` as ``[*lead, A_1..A_ndim, B_1..B_ndim, ...]`` with the
    sizes at position ``axis`` of each block of ``ndim``, so that per-axis tensors
    broadcast into their product over the axes (``leading`` dims are kept as they are)."""
    shape = list(tensor.shape[:leading])
    for size in tensor.shape[leading:]:
        block = [1] * ndim
        block[axis] = size
        shape += block
    return tensor.reshape(shape)


def _row_major_strides(sizes: list[int]) -> list[int]:
    return [math.prod(sizes[axis + 1 :]) for axis in range(len(sizes))]


@dataclass(frozen=True)
class TileBatch:
    """Index tensors of the tiles ``[start, stop)`` of a :class:`TileGrid`."""

    start: int
    stop: int
    query_token: torch.Tensor  # [tiles * Q] token of each query slot
    query_valid: torch.Tensor | None  # [tiles * Q]; None when no slot repeats a query
    key_token: torch.Tensor  # [tiles, K + M] row of the key table of each key slot
    allowed: torch.Tensor | None  # [tiles, 1, Q, K + M]; None when nothing is masked
    bias_index: torch.Tensor | None  # [tiles, 1, Q, K + M] row of the rpb table


class TileGrid:
    """All tiles of one call: the product of its per-axis tilings, served in batches."""

    def __init__(self, call: AttentionCall) -> None:
        spatial = call.spatial_shape
        self.ndim = len(spatial)
        axes = [
            tile_axis(
                length,
                call.kernel_size[axis],
                call.stride[axis],
                call.dilation[axis],
                call.is_causal[axis],
                query_tile_size(
                    length,
                    call.kernel_size[axis],
                    call.stride[axis],
                    call.dilation[axis],
                    self.ndim,
                ),
            )
            for axis, length in enumerate(spatial)
        ]
        # Blocked attention whose tiles are whole blocks attends to every halo key: no mask.
        self.unmasked = all(bool(a.allowed.all()) for a in axes)
        self.padded = not all(bool(a.query_valid.all()) for a in axes)
        self.device = call.device
        self.axes = [a.to(call.device) for a in axes]
        self.batch_size = call.query.shape[0]
        self.heads, self.kv_heads = call.heads, call.kv_heads
        self.head_dim = call.query.shape[-1]
        self.scale = call.scale
        self.tokens = math.prod(spatial)
        self.extra_tokens = 0 if call.additional_keys is None else call.additional_keys.shape[1]
        self.tiles_per_axis = [a.query_index.shape[0] for a in self.axes]
        self.queries_per_axis = [a.query_index.shape[1] for a in self.axes]
        self.tiles = math.prod(self.tiles_per_axis)
        self.queries = math.prod(self.queries_per_axis)
        self.keys = math.prod(a.key_index.shape[1] for a in self.axes) + self.extra_tokens
        self.token_strides = _row_major_strides(list(spatial))
        self.rpb_strides = _row_major_strides([2 * k - 1 for k in call.kernel_size])
        self.rpb_offsets = math.prod(2 * k - 1 for k in call.kernel_size)
        self.with_bias = call.rpb is not None

    def batches(self) -> Iterator[tuple[int, int]]:
        """Ranges of tiles whose largest tensor (halo keys and values, mask, or attention
        weights) stays within the batch budget."""
        per_tile = (
            self.batch_size
            * self.keys
            * max(self.kv_heads * self.head_dim, self.heads * self.queries)
        )
        on_cpu = self.device.type == "cpu"
        budget = _CPU_BATCH_ELEMENTS if on_cpu else _ACCELERATOR_BATCH_ELEMENTS
        step = max(1, budget // per_tile)
        for start in range(0, self.tiles, step):
            yield start, min(start + step, self.tiles)

    def batch(self, start: int, stop: int) -> TileBatch:
        device = self.device
        tile = torch.arange(start, stop, device=device)
        tile_strides = _row_major_strides(self.tiles_per_axis)
        per_axis = [
            torch.div(tile, stride, rounding_mode="floor") % count
            for stride, count in zip(tile_strides, self.tiles_per_axis, strict=True)
        ]

        def combine(name: str, weights: list[int] | None = None) -> torch.Tensor:
            parts = [
                _spread(getattr(a, name)[index], axis, self.ndim, leading=1)
                for axis, (a, index) in enumerate(zip(self.axes, per_axis, strict=True))
            ]
            if weights is None:
                return functools.reduce(torch.logical_and, parts)
            return sum(part * weight for part, weight in zip(parts, weights, strict=True))

        tiles = stop - start
        query_token = combine("query_index", self.token_strides).reshape(-1)
        query_valid = combine("query_valid").reshape(-1) if self.padded else None
        key_token = combine("key_index", self.token_strides).reshape(tiles, -1)
        spatial_keys = key_token.shape[1]
        allowed = None
        if not self.unmasked:
            allowed = combine("allowed").reshape(tiles, 1, self.queries, spatial_keys)
        bias_index = None
        if self.with_bias:
            bias_index = combine("bias_index", self.rpb_strides)
            bias_index = bias_index.reshape(tiles, 1, self.queries, spatial_keys)
        if self.extra_tokens:
            # Global tokens follow the spatial tokens in the key table; every query sees
            # them, and they read the zero row appended to the rpb table.
            extra = torch.arange(self.tokens, self.tokens + self.extra_tokens, device=device)
            key_token = torch.cat([key_token, extra.expand(tiles, -1)], dim=1)
            if allowed is not None:
                allowed = F.pad(allowed, (0, self.extra_tokens), value=True)
            if bias_index is not None:
                bias_index = F.pad(bias_index, (0, self.extra_tokens), value=self.rpb_offsets)
        return TileBatch(start, stop, query_token, query_valid, key_token, allowed, bias_index)

    def gather(
        self, batch: TileBatch, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows of the query/key/value tables (``[B, rows, heads * D]``) for ``batch``."""
        return (
            query.index_select(1, batch.query_token),
            key.index_select(1, batch.key_token.reshape(-1)),
            value.index_select(1, batch.key_token.reshape(-1)),
        )

    def attend(
        self,
        batch: TileBatch,
        query_rows: torch.Tensor,
        key_rows: torch.Tensor,
        value_rows: torch.Tensor,
        rpb: torch.Tensor | None,
    ) -> torch.Tensor:
        """One fused SDPA call over the gathered rows of ``batch``: ``[B, tiles * Q, H * D]``."""
        b, tiles, queries = self.batch_size, batch.stop - batch.start, self.queries
        kv_heads, group, head_dim = self.kv_heads, self.heads // self.kv_heads, self.head_dim
        # [B * tiles, kv_heads, group * Q, D]: SDPA reads the transposed rows through
        # their strides; only grouped-query heads need a copy.
        q = query_rows.view(b, tiles, queries, kv_heads, group, head_dim)
        q = q.permute(0, 1, 3, 4, 2, 5).reshape(b * tiles, kv_heads, group * queries, head_dim)
        k = key_rows.view(b * tiles, self.keys, kv_heads, head_dim).transpose(1, 2)
        v = value_rows.view(b * tiles, self.keys, kv_heads, head_dim).transpose(1, 2)

        mask = None
        if rpb is not None:
            # rpb is the [R + 1, heads] table: one row of per-head biases per offset.
            mask = rpb.index_select(0, batch.bias_index.reshape(-1))
            mask = mask.view(tiles, queries, self.keys, self.heads).permute(0, 3, 1, 2)
        if batch.allowed is not None:
            blocked = torch.tensor(float("-inf"), dtype=q.dtype, device=q.device)
            kept = torch.zeros((), dtype=q.dtype, device=q.device) if mask is None else mask
            mask = torch.where(batch.allowed, kept, blocked)
        if mask is not None:
            if rpb is None:
                mask = mask.repeat(1, 1, group, 1)
            mask = mask.reshape(tiles, -1, group * queries, self.keys)
            mask = mask.expand(b, *mask.shape).reshape(b * tiles, *mask.shape[1:])

        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        out = out.view(b, tiles, kv_heads, group, queries, head_dim).permute(0, 1, 4, 2, 3, 5)
        return out.reshape(b, tiles * queries, self.heads * head_dim)


class _TiledAttention(torch.autograd.Function):
    """Batched tile attention with per-batch recomputation in the backward pass.

    Inputs are token tables: query ``[B, N, H * D]``, key/value ``[B, N + M, Hkv * D]``
    (global tokens appended) and the rpb table ``[R + 1, H]`` (a zero row for the
    global tokens) or ``None``. The output is in token order, ``[B, N, H * D]``.
    """

    @staticmethod
    def forward(ctx, grid, query, key, value, rpb):
        out = torch.empty_like(query)
        for start, stop in grid.batches():
            batch = grid.batch(start, stop)
            rows = grid.attend(batch, *grid.gather(batch, query, key, value), rpb)
            if batch.query_valid is None:
                out.index_copy_(1, batch.query_token, rows)
            else:
                out.index_copy_(1, batch.query_token[batch.query_valid], rows[:, batch.query_valid])
        ctx.grid = grid
        ctx.save_for_backward(query, key, value, rpb)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        grid = ctx.grid
        inputs = [None if t is None else t.detach() for t in ctx.saved_tensors]
        needs = ctx.needs_input_grad[1:]
        grads = [
            torch.zeros_like(t) if need else None for t, need in zip(inputs, needs, strict=True)
        ]
        query, key, value, rpb = inputs
        # Gathering from an expanded gradient (as ``out.sum()`` gives) would make it
        # contiguous again for every batch.
        grad_out = grad_out.contiguous()
        for start, stop in grid.batches():
            batch = grid.batch(start, stop)
            grad_rows = grad_out.index_select(1, batch.query_token)
            if batch.query_valid is not None:
                # A repeated query's output was never used: its slot gets no gradient.
                grad_rows[:, ~batch.query_valid] = 0
            with torch.enable_grad():
                rows = [
                    row.requires_grad_(need)
                    for row, need in zip(
                        grid.gather(batch, query, key, value), needs[:3], strict=True
                    )
                ]
                bias = None if rpb is None else rpb.requires_grad_(needs[3])
                out = grid.attend(batch, *rows, bias)
                leaves = [t for t, need in zip([*rows, bias], needs, strict=True) if need]
                batch_grads = iter(torch.autograd.grad(out, leaves, grad_rows))
            if needs[0]:
                grads[0].index_add_(1, batch.query_token, next(batch_grads))
            for position in (1, 2):
                if needs[position]:
                    grads[position].index_add_(1, batch.key_token.reshape(-1), next(batch_grads))
            if needs[3]:
                grads[3] += next(batch_grads)
        return None, *grads


def _is_plain_blocked(call: AttentionCall) -> bool:
    """Non-overlapping windows that tile every axis exactly (Swin-style window attention)."""
    return all(
        s == k and d == 1 and not causal and length % k == 0
        for s, k, d, causal, length in zip(
            call.stride, call.kernel_size, call.dilation, call.is_causal, call.spatial_shape,
            strict=True,
        )
    )


@functools.lru_cache(maxsize=64)
def _window_bias_index(kernel_size: tuple[int, ...]) -> torch.Tensor:
    """``[W, W]`` flat rpb column of every (query, key) pair of one window (row-major)."""
    coords = torch.stack(
        torch.meshgrid(*[torch.arange(k) for k in kernel_size], indexing="ij")
    ).flatten(1)
    index = torch.zeros(coords.shape[1], coords.shape[1], dtype=torch.long)
    for axis, k in enumerate(kernel_size):
        columns = math.prod(2 * other - 1 for other in kernel_size[axis + 1:])
        index += (coords[axis][None, :] - coords[axis][:, None] + k - 1) * columns
    return index


def _partition(tensor: torch.Tensor, kernel_size: tuple[int, ...]) -> torch.Tensor:
    """``[B, *spatial, H, D]`` -> ``[B * windows, H, W, D]`` (one row block per window)."""
    heads, dim = tensor.shape[-2:]
    ndim = len(kernel_size)
    windows = tensor
    for axis, k in enumerate(kernel_size):
        # Splitting one axis is always a view, even of a strided slice of a fused qkv
        # projection, so the permuted copy below is the only copy.
        windows = windows.unflatten(1 + 2 * axis, (-1, k))
    order = [0, *(1 + 2 * a for a in range(ndim)), 1 + 2 * ndim,
             *(2 + 2 * a for a in range(ndim)), 2 + 2 * ndim]
    return windows.permute(order).reshape(-1, heads, math.prod(kernel_size), dim)


def _unpartition(windows: torch.Tensor, shape: torch.Size,
                 kernel_size: tuple[int, ...]) -> torch.Tensor:
    batch, *spatial, heads, dim = shape
    ndim = len(spatial)
    counts = [length // k for length, k in zip(spatial, kernel_size, strict=True)]
    grid = windows.reshape(batch, *counts, heads, *kernel_size, dim)
    order = [0]
    for axis in range(ndim):
        order += [1 + axis, 2 + ndim + axis]
    order += [1 + ndim, 2 + 2 * ndim]
    return grid.permute(order).reshape(shape)


def blocked_attention(call: AttentionCall) -> torch.Tensor:
    """Window attention by reshaping into windows: no gather, no halo, no recomputation.

    The windows of ``stride == kernel_size`` attention that divide the input exactly are
    a reshape of the tokens, so the whole call is one batched SDPA over windows (the way
    Swin implementations compute it), with the bias shared by all windows.
    """
    heads, group = call.heads, call.heads // call.kv_heads
    kernel = call.kernel_size

    def per_query_head(tensor: torch.Tensor) -> torch.Tensor:
        return tensor if group == 1 else tensor.repeat_interleave(group, dim=1)

    query = _partition(call.query, kernel)
    key = per_query_head(_partition(call.key, kernel))
    value = per_query_head(_partition(call.value, kernel))
    windows = query.shape[0] // call.query.shape[0]
    if call.additional_keys is not None:

        def per_window(extra: torch.Tensor) -> torch.Tensor:
            extra = per_query_head(extra.transpose(1, 2))
            return extra.unsqueeze(1).expand(-1, windows, -1, -1, -1).flatten(0, 1)

        key = torch.cat([key, per_window(call.additional_keys)], dim=2)
        value = torch.cat([value, per_window(call.additional_values)], dim=2)
    mask = None
    if call.rpb is not None:
        index = _window_bias_index(kernel).to(call.device)
        mask = call.rpb.reshape(heads, -1)[:, index]
        extra = key.shape[2] - mask.shape[-1]
        if extra:
            mask = F.pad(mask, (0, extra))
    if mask is None:
        out = F.scaled_dot_product_attention(query, key, value, scale=call.scale)
    else:
        # With a bias, SDPA on the CPU takes its math path, whose NaN-safe softmax adds
        # full passes over the scores; every key of a window is visible, so the plain
        # softmax is exact here.
        scores = (query * call.scale) @ key.transpose(-2, -1) + mask
        out = scores.softmax(dim=-1) @ value
    return _unpartition(out, call.query.shape, kernel)


def tiled_attention(call: AttentionCall) -> torch.Tensor:
    if _is_plain_blocked(call):
        return blocked_attention(call)
    batch, heads, head_dim = call.query.shape[0], call.heads, call.query.shape[-1]
    grid = TileGrid(call)

    def table(tensor: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        rows = tensor.reshape(batch, -1, tensor.shape[-2] * head_dim)
        if extra is None:
            return rows
        return torch.cat([rows, extra.reshape(batch, -1, rows.shape[-1])], dim=1)

    rpb = None
    if call.rpb is not None:
        # [offsets + 1, heads]: the bias of every head for one offset is one row to gather;
        # the extra zero row serves the global tokens.
        rpb = F.pad(call.rpb.reshape(heads, -1), (0, 1)).t().contiguous()
    out = _TiledAttention.apply(
        grid,
        table(call.query, None),
        table(call.key, call.additional_keys),
        table(call.value, call.additional_values),
        rpb,
    )
    return out.reshape(call.query.shape)
