"""Per-axis window geometry of generalized neighbourhood attention.

Follows NATTEN's generalized neighbourhood attention (Hassani et al., "Faster
Neighborhood Attention", 2024; "Neighborhood Attention Transformer", CVPR 2023): along
each axis, dilation splits the tokens into interleaved groups, stride makes runs of
queries share the window of their group leader, and windows are clamped inside the group
rather than zero-padded. A query's keys in 2D/3D are the product of its per-axis key
ranges, so every backend builds on the one function here, :func:`key_range`.

Within a group of length ``n``, every query's keys form one contiguous range of in-group
indices ``[first, last]``, and both ends never decrease as the query index grows (the
clamped centre and the causal leader are monotone). Consecutive windows also overlap or
touch because ``stride <= kernel_size``. Hence the keys of any run of consecutive queries
are again one contiguous range, which is what lets the tiled backend gather each tile's
halo as a plain index range.
"""

from __future__ import annotations

import torch


def group_length(length: int, dilation: int, group: torch.Tensor) -> torch.Tensor:
    """Number of tokens in each dilation ``group`` of an axis of ``length`` tokens."""
    return (length - group + dilation - 1) // dilation


def key_range(
    query: torch.Tensor,
    group_len: torch.Tensor,
    kernel_size: int,
    stride: int,
    is_causal: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last in-group key index (inclusive) attended by each in-group ``query``.

    ``query`` and ``group_len`` are integer tensors of the same shape (broadcastable),
    holding a query's index inside its dilation group and that group's length. Not
    causal: exactly ``kernel_size`` keys centred on the stride leader, clamped inside the
    group. Causal: keys up to the query itself and fewer than ``kernel_size`` behind the
    leader (the last query of the stride run).
    """
    run_start = torch.div(query, stride, rounding_mode="floor") * stride
    if is_causal:
        leader = torch.minimum(run_start + (stride - 1), group_len - 1)
        return (leader - (kernel_size - 1)).clamp(min=0), query
    left = kernel_size // 2
    right = kernel_size // 2 + kernel_size % 2 - 1
    leader = torch.minimum(run_start + stride // 2, group_len - 1)
    center = torch.minimum(leader.clamp(min=left), group_len - 1 - right)
    return center - left, center + right
