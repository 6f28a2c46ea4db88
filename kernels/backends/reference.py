"""Dense masked attention: the obviously-correct reference backend (tests only).

Follows NATTEN's generalized neighbourhood attention. It materialises the full
``N x N`` boolean mask and relative-position-bias index from the per-axis formulas in
:mod:`domainvit.kernels.windows` and runs plain softmax attention over all tokens, so
its memory is quadratic in the number of tokens. Autograd comes from the torch ops.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..call import AttentionCall
from ..windows import group_length, key_range


def _axis_tables(call: AttentionCall) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per axis: the ``[L, L]`` mask of (query, key) pairs and their rpb index."""
    tables = []
    for axis, length in enumerate(call.spatial_shape):
        k, d = call.kernel_size[axis], call.dilation[axis]
        index = torch.arange(length, device=call.query.device)
        group = index % d
        in_group = torch.div(index, d, rounding_mode="floor")
        first, last = key_range(
            in_group, group_length(length, d, group), k, call.stride[axis], call.is_causal[axis]
        )
        key_in_group = in_group[None, :]
        allowed = (
            (group[None, :] == group[:, None])
            & (key_in_group >= first[:, None])
            & (key_in_group <= last[:, None])
        )
        bias_index = (key_in_group - in_group[:, None] + k - 1).clamp(0, 2 * k - 2)
        tables.append((allowed, bias_index))
    return tables


def _kron(
    a: torch.Tensor, b: torch.Tensor, combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Pairs of row-major flattened tokens: ``out[(i, j), (k, l)] = combine(a[i, k], b[j, l])``."""
    rows, cols = a.shape[0] * b.shape[0], a.shape[1] * b.shape[1]
    return combine(a[:, None, :, None], b[None, :, None, :]).reshape(rows, cols)


def dense_mask(call: AttentionCall) -> torch.Tensor:
    """``[N, N]`` boolean mask of the (query, key) token pairs that attend."""
    mask = torch.ones((1, 1), dtype=torch.bool, device=call.query.device)
    for allowed, _ in _axis_tables(call):
        mask = _kron(mask, allowed, torch.logical_and)
    return mask


def dense_bias_index(call: AttentionCall) -> torch.Tensor:
    """``[N, N]`` index into ``rpb.reshape(heads, -1)`` of each (query, key) token pair,
    meaningful where :func:`dense_mask` allows the pair."""
    index = torch.zeros((1, 1), dtype=torch.long, device=call.query.device)
    for (_, axis_index), k in zip(_axis_tables(call), call.kernel_size, strict=True):
        index = _kron(index, axis_index, lambda outer, inner, k=k: outer * (2 * k - 1) + inner)
    return index


def reference_attention(call: AttentionCall) -> torch.Tensor:
    query, key, value = call.query, call.key, call.value
    batch, heads, head_dim = query.shape[0], call.heads, query.shape[-1]
    group_size = heads // call.kv_heads
    q = query.reshape(batch, -1, heads, head_dim)
    k = key.reshape(batch, -1, call.kv_heads, head_dim).repeat_interleave(group_size, dim=2)
    v = value.reshape(batch, -1, call.kv_heads, head_dim).repeat_interleave(group_size, dim=2)
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) * call.scale
    if call.rpb is not None:
        logits = logits + call.rpb.reshape(heads, -1)[:, dense_bias_index(call)]
    logits = logits.masked_fill(~dense_mask(call), float("-inf"))
    if call.additional_keys is not None:
        extra_k = call.additional_keys.repeat_interleave(group_size, dim=2)
        extra_v = call.additional_values.repeat_interleave(group_size, dim=2)
        logits = torch.cat([logits, torch.einsum("bqhd,bmhd->bhqm", q, extra_k) * call.scale], -1)
        v = torch.cat([v, extra_v], dim=1)
    weights = torch.softmax(logits, dim=-1)
    return torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(query.shape)
