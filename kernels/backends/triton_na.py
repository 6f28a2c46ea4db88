"""Fused neighbourhood attention in Triton: forward and backward without an attention matrix.

Follows FlashAttention-2 (Dao, "FlashAttention-2: Faster Attention with Better Parallelism
and Work Partitioning", 2023) for the online softmax and the split backward pass, and
NATTEN's fused neighbourhood attention (Hassani et al., "Faster Neighborhood Attention:
Reducing the O(n^2) Cost of Self Attention at the Threadblock Level", NeurIPS 2024) for
multi-dimensional tiling. Semantics are those of :mod:`domainvit.kernels.functional`.

Every call is treated as 3D: 1D and 2D inputs get leading axes of length 1 (kernel 1,
stride 1, dilation 1), which select exactly one key, so one set of kernels serves all
ranks. A program owns a *query tile*: a ``TM0 x TM1 x TM2`` block of consecutive in-group
queries of one dilation group, flattened into the rows of the matrix products. Windows
are clamped and monotone in the query (see :mod:`domainvit.kernels.windows`), so the keys
any query of the tile may see form one contiguous in-group range per axis, from the
first query's first key to the last query's last key. The forward pass loops over
``TN0 x TN1 x TN2`` key tiles inside that range only; tiles that no query can see are
never visited. A key tile that lies inside every query's window (the intersection of
the windows, from the last query's first key to the first query's last key) needs no
element mask, which is the common case for large windows. Dilation is index arithmetic:
in-group index ``j`` of group ``g`` is axis position ``g + j * dilation``; nothing is
copied or permuted.

The backward pass recomputes probabilities from the saved log-sum-exp (base 2):
``delta = rowsum(dO * O)`` first, then one kernel per key tile for dK/dV that loops over
the query tiles able to reach it (their in-group range comes from a small per-axis table
built on the host from the exact window formula) and over the query heads sharing the
key/value head, and one kernel per query tile for dQ. The dQ kernel also produces the
gradient of the relative position bias (fp32 atomics, or, in deterministic mode, a
fixed-order read-modify-write of a per-program partial row) and per-query-tile partial
gradients of the additional keys/values, summed afterwards in a fixed order.

Tile shapes come from :func:`triton.autotune` over a short list per rank, keyed on the
rank, the padded head_dim, the kernel-size bucket, the problem-size bucket, whether there
is an rpb, and the dtype; small 2D windows get extra tiles sized to the window. Under
``TRITON_INTERPRET=1`` (CPU tensors, for tests) one small fixed configuration is used.
"""

from __future__ import annotations

import bisect
import collections
import functools
import math
import os
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from ..call import AttentionCall
from ..windows import group_length, key_range

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
LOG2E = 1.4426950408889634
_LOG2E = tl.constexpr(LOG2E)
# Initial running maximum: finite, so that a row with no visible key in the first tile
# gives exp2(-inf - m) = 0 rather than exp2(-inf - (-inf)) = NaN.
_NEG_START = tl.constexpr(-1.0e30)
_MAX_HEAD_DIM = 128
# Integer arguments that only select autotuning results: never specialised on their value
# (Triton would otherwise build separate binaries for a value of 1 or a multiple of 16).
_TUNING_KEYS = ["NDIM", "KEY_BUCKET", "SIZE_BUCKET"]


# ----------------------------------------------------------------------------------------
# Geometry helpers shared by the kernels
# ----------------------------------------------------------------------------------------


@triton.jit
def _window(q, n, kernel, stride, CAUSAL: tl.constexpr):
    """First and last in-group key (inclusive) seen by in-group query ``q`` (scalar or
    tensor) in a group of ``n`` tokens; the formula of the functional module."""
    run_start = (q // stride) * stride
    if CAUSAL:
        leader = tl.minimum(run_start + stride - 1, n - 1)
        first = tl.maximum(leader - kernel + 1, 0)
        last = q
    else:
        left = kernel // 2
        right = kernel // 2 + kernel % 2 - 1
        leader = tl.minimum(run_start + stride // 2, n - 1)
        center = tl.minimum(tl.maximum(leader, left), n - 1 - right)
        first = center - left
        last = center + right
    return first, last


@triton.jit
def _tile_origin(pid, length, dilation, TILE: tl.constexpr):
    """Dilation group, group length and first in-group index of tile ``pid`` of an axis.

    An axis holds ``dilation`` groups of ``cdiv(cdiv(length, dilation), TILE)`` tiles each
    (shorter groups leave their last tile empty)."""
    per_group = tl.cdiv(tl.cdiv(length, dilation), TILE)
    group = pid // per_group
    n = (length - group + dilation - 1) // dilation
    return group, n, (pid % per_group) * TILE


@triton.jit
def _tiles_along(length, dilation, TILE: tl.constexpr):
    return dilation * tl.cdiv(tl.cdiv(length, dilation), TILE)


@triton.jit
def _block_coords(T0: tl.constexpr, T1: tl.constexpr, T2: tl.constexpr):
    """Per-axis offsets of the rows of a flattened ``T0 x T1 x T2`` block."""
    offs = tl.arange(0, T0 * T1 * T2)
    return offs // (T1 * T2), (offs // T2) % T1, offs % T2


@triton.jit
def _token(g0, g1, g2, i0, i1, i2, L1, L2, DIL0, DIL1, DIL2):
    """Flat token index (row-major over the 3 axes) of in-group indices ``i*``."""
    return ((g0 + i0 * DIL0) * L1 + (g1 + i1 * DIL1)) * L2 + (g2 + i2 * DIL2)


@triton.jit
def _bias_index(kj0, kj1, kj2, qi0, qi1, qi2, K0, K1, K2):
    """Flat rpb column of (query, key) pairs; clamped like the reference so that every
    index is in range even for pairs that are masked out."""
    b0 = tl.minimum(tl.maximum(kj0 - qi0 + K0 - 1, 0), 2 * K0 - 2)
    b1 = tl.minimum(tl.maximum(kj1 - qi1 + K1 - 1, 0), 2 * K1 - 2)
    b2 = tl.minimum(tl.maximum(kj2 - qi2 + K2 - 1, 0), 2 * K2 - 2)
    return (b0 * (2 * K1 - 1) + b1) * (2 * K2 - 1) + b2


@triton.jit
def _inside(kj0, kj1, kj2, f0, l0, f1, l1, f2, l2):
    return (kj0 >= f0) & (kj0 <= l0) & (kj1 >= f1) & (kj1 <= l1) & (kj2 >= f2) & (kj2 <= l2)


@triton.jit
def _query_tile(
    pid,
    L0,
    L1,
    L2,
    K0,
    K1,
    K2,
    S0,
    S1,
    S2,
    DIL0,
    DIL1,
    DIL2,
    C0: tl.constexpr,
    C1: tl.constexpr,
    C2: tl.constexpr,
    TM0: tl.constexpr,
    TM1: tl.constexpr,
    TM2: tl.constexpr,
):
    """Everything a query-tile program needs about its queries and their key range."""
    tiles2 = _tiles_along(L2, DIL2, TM2)
    tiles1 = _tiles_along(L1, DIL1, TM1)
    g0, n0, lo0 = _tile_origin(pid // (tiles1 * tiles2), L0, DIL0, TM0)
    g1, n1, lo1 = _tile_origin((pid // tiles2) % tiles1, L1, DIL1, TM1)
    g2, n2, lo2 = _tile_origin(pid % tiles2, L2, DIL2, TM2)
    r0, r1, r2 = _block_coords(TM0, TM1, TM2)
    q_valid = (lo0 + r0 < n0) & (lo1 + r1 < n1) & (lo2 + r2 < n2)
    # Rows past the end of a group stand in for the group's last query: their windows are
    # valid, their loads are masked and their results never stored.
    qi0 = tl.minimum(lo0 + r0, n0 - 1)
    qi1 = tl.minimum(lo1 + r1, n1 - 1)
    qi2 = tl.minimum(lo2 + r2, n2 - 1)
    token = _token(g0, g1, g2, qi0, qi1, qi2, L1, L2, DIL0, DIL1, DIL2)
    return g0, g1, g2, n0, n1, n2, lo0, lo1, lo2, qi0, qi1, qi2, q_valid, token


@triton.jit
def _key_block(
    a0,
    a1,
    a2,
    g0,
    g1,
    g2,
    n0,
    n1,
    n2,
    L1,
    L2,
    DIL0,
    DIL1,
    DIL2,
    TN0: tl.constexpr,
    TN1: tl.constexpr,
    TN2: tl.constexpr,
):
    """In-group indices, validity and tokens of the key block starting at ``a*``."""
    c0, c1, c2 = _block_coords(TN0, TN1, TN2)
    kj0, kj1, kj2 = a0 + c0, a1 + c1, a2 + c2
    k_valid = (kj0 < n0) & (kj1 < n1) & (kj2 < n2)
    token = _token(
        g0,
        g1,
        g2,
        tl.minimum(kj0, n0 - 1),
        tl.minimum(kj1, n1 - 1),
        tl.minimum(kj2, n2 - 1),
        L1,
        L2,
        DIL0,
        DIL1,
        DIL2,
    )
    return kj0, kj1, kj2, k_valid, token


@triton.jit
def _load_rows(base, rows, row_stride, valid, offs_d, head_dim):
    """``[len(rows), D_PAD]`` block of ``base[rows * row_stride + d]`` (zeros outside)."""
    ptrs = base + (rows[:, None] * row_stride + offs_d[None, :])
    return tl.load(ptrs, mask=valid[:, None] & (offs_d < head_dim)[None, :], other=0.0)


# ----------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=_TUNING_KEYS)
def _forward_kernel(
    Q,
    K,
    V,
    RPB,
    EK,
    EV,
    OUT,
    LSE,
    H,
    G,
    N,
    M,
    HEAD_DIM,
    L0,
    L1,
    L2,
    K0,
    K1,
    K2,
    S0,
    S1,
    S2,
    DIL0,
    DIL1,
    DIL2,
    qk_scale,
    NDIM,
    KEY_BUCKET,
    SIZE_BUCKET,
    C0: tl.constexpr,
    C1: tl.constexpr,
    C2: tl.constexpr,
    HAS_RPB: tl.constexpr,
    HAS_EXTRA: tl.constexpr,
    D_PAD: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    TM0: tl.constexpr,
    TM1: tl.constexpr,
    TM2: tl.constexpr,
    TN0: tl.constexpr,
    TN1: tl.constexpr,
    TN2: tl.constexpr,
):
    """Output and base-2 log-sum-exp of one query tile of one (batch, head)."""
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b, h = bh // H, bh % H
    kvh = h // G
    q_stride = H * HEAD_DIM
    kv_stride = (H // G) * HEAD_DIM
    (g0, g1, g2, n0, n1, n2, lo0, lo1, lo2, qi0, qi1, qi2, q_valid, q_token) = _query_tile(
        pid, L0, L1, L2, K0, K1, K2, S0, S1, S2, DIL0, DIL1, DIL2, C0, C1, C2, TM0, TM1, TM2
    )
    offs_d = tl.arange(0, D_PAD)
    q_off = b.to(tl.int64) * N * q_stride + h * HEAD_DIM
    kv_off = b.to(tl.int64) * N * kv_stride + kvh * HEAD_DIM
    q = _load_rows(Q + q_off, q_token, q_stride, q_valid, offs_d, HEAD_DIM)

    f0, l0 = _window(qi0, n0, K0, S0, C0)
    f1, l1 = _window(qi1, n1, K1, S1, C1)
    f2, l2 = _window(qi2, n2, K2, S2, C2)
    # Key range of the whole tile (union of windows) and keys every row sees
    # (intersection), from the tile's first and last valid query.
    top0, top1, top2 = lo0 + TM0 - 1, lo1 + TM1 - 1, lo2 + TM2 - 1
    first0, inner_hi0 = _window(tl.minimum(lo0, n0 - 1), n0, K0, S0, C0)
    inner_lo0, last0 = _window(tl.minimum(top0, n0 - 1), n0, K0, S0, C0)
    first1, inner_hi1 = _window(tl.minimum(lo1, n1 - 1), n1, K1, S1, C1)
    inner_lo1, last1 = _window(tl.minimum(top1, n1 - 1), n1, K1, S1, C1)
    first2, inner_hi2 = _window(tl.minimum(lo2, n2 - 1), n2, K2, S2, C2)
    inner_lo2, last2 = _window(tl.minimum(top2, n2 - 1), n2, K2, S2, C2)

    m_i = tl.full([TM0 * TM1 * TM2], _NEG_START, tl.float32)
    l_i = tl.zeros([TM0 * TM1 * TM2], tl.float32)
    acc = tl.zeros([TM0 * TM1 * TM2, D_PAD], tl.float32)
    rpb_base = RPB + h * (2 * K0 - 1) * (2 * K1 - 1) * (2 * K2 - 1)
    for a0 in range(first0, last0 + 1, TN0):
        for a1 in range(first1, last1 + 1, TN1):
            for a2 in range(first2, last2 + 1, TN2):
                kj0, kj1, kj2, k_valid, k_token = _key_block(
                    a0, a1, a2, g0, g1, g2, n0, n1, n2, L1, L2, DIL0, DIL1, DIL2, TN0, TN1, TN2
                )
                k = _load_rows(K + kv_off, k_token, kv_stride, k_valid, offs_d, HEAD_DIM)
                v = _load_rows(V + kv_off, k_token, kv_stride, k_valid, offs_d, HEAD_DIM)
                s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
                if HAS_RPB:
                    column = _bias_index(
                        kj0[None, :],
                        kj1[None, :],
                        kj2[None, :],
                        qi0[:, None],
                        qi1[:, None],
                        qi2[:, None],
                        K0,
                        K1,
                        K2,
                    )
                    s += tl.load(rpb_base + column).to(tl.float32) * _LOG2E
                fully_inside = (
                    (a0 >= inner_lo0)
                    & (a0 + TN0 - 1 <= inner_hi0)
                    & (a1 >= inner_lo1)
                    & (a1 + TN1 - 1 <= inner_hi1)
                    & (a2 >= inner_lo2)
                    & (a2 + TN2 - 1 <= inner_hi2)
                )
                if not fully_inside:
                    allowed = _inside(
                        kj0[None, :],
                        kj1[None, :],
                        kj2[None, :],
                        f0[:, None],
                        l0[:, None],
                        f1[:, None],
                        l1[:, None],
                        f2[:, None],
                        l2[:, None],
                    )
                    s = tl.where(allowed, s, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(s, 1))
                alpha = tl.math.exp2(m_i - m_new)
                p = tl.math.exp2(s - m_new[:, None])
                l_i = l_i * alpha + tl.sum(p, 1)
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
                m_i = m_new
    if HAS_EXTRA:
        offs_e = tl.arange(0, TN0 * TN1 * TN2)
        extra_off = b.to(tl.int64) * M * kv_stride + kvh * HEAD_DIM
        for e in range(0, M, TN0 * TN1 * TN2):
            e_valid = e + offs_e < M
            k = _load_rows(EK + extra_off, e + offs_e, kv_stride, e_valid, offs_d, HEAD_DIM)
            v = _load_rows(EV + extra_off, e + offs_e, kv_stride, e_valid, offs_d, HEAD_DIM)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
            s = tl.where(e_valid[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.math.exp2(m_i - m_new)
            p = tl.math.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
            m_i = m_new

    out = acc / l_i[:, None]
    o_ptrs = OUT + q_off + (q_token[:, None] * q_stride + offs_d[None, :])
    tl.store(
        o_ptrs, out.to(OUT.dtype.element_ty), mask=q_valid[:, None] & (offs_d < HEAD_DIM)[None, :]
    )
    lse_ptrs = LSE + b.to(tl.int64) * N * H + (q_token * H + h)
    tl.store(lse_ptrs, m_i + tl.math.log2(l_i), mask=q_valid)


# ----------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------


@triton.jit
def _delta_kernel(OUT, DO, DELTA, ROWS, HEAD_DIM, BLOCK_R: tl.constexpr, D_PAD: tl.constexpr):
    """``delta = rowsum(dO * O)`` in fp32 over ``[ROWS, HEAD_DIM]`` tables."""
    # int64: the tables may exceed 2**31 elements in all.
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_d = tl.arange(0, D_PAD)
    valid = rows < ROWS
    o = _load_rows(OUT, rows, HEAD_DIM, valid, offs_d, HEAD_DIM).to(tl.float32)
    do = _load_rows(DO, rows, HEAD_DIM, valid, offs_d, HEAD_DIM).to(tl.float32)
    tl.store(DELTA + rows, tl.sum(o * do, 1), mask=valid)


@triton.jit(do_not_specialize=_TUNING_KEYS)
def _backward_dq_kernel(
    Q,
    K,
    V,
    RPB,
    EK,
    EV,
    DO,
    LSE,
    DELTA,
    DQ,
    DRPB,
    DEXTRA_K,
    DEXTRA_V,
    H,
    G,
    N,
    M,
    HEAD_DIM,
    L0,
    L1,
    L2,
    K0,
    K1,
    K2,
    S0,
    S1,
    S2,
    DIL0,
    DIL1,
    DIL2,
    qk_scale,
    scale,
    NDIM,
    KEY_BUCKET,
    SIZE_BUCKET,
    C0: tl.constexpr,
    C1: tl.constexpr,
    C2: tl.constexpr,
    HAS_RPB: tl.constexpr,
    HAS_EXTRA: tl.constexpr,
    DETERMINISTIC: tl.constexpr,
    PRIVATE_RPB: tl.constexpr,
    D_PAD: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    TM0: tl.constexpr,
    TM1: tl.constexpr,
    TM2: tl.constexpr,
    TN0: tl.constexpr,
    TN1: tl.constexpr,
    TN2: tl.constexpr,
):
    """dQ of one query tile; also d(rpb) and the tile's partial d(additional k/v)."""
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b, h = bh // H, bh % H
    kvh = h // G
    q_stride = H * HEAD_DIM
    kv_stride = (H // G) * HEAD_DIM
    (g0, g1, g2, n0, n1, n2, lo0, lo1, lo2, qi0, qi1, qi2, q_valid, q_token) = _query_tile(
        pid, L0, L1, L2, K0, K1, K2, S0, S1, S2, DIL0, DIL1, DIL2, C0, C1, C2, TM0, TM1, TM2
    )
    offs_d = tl.arange(0, D_PAD)
    q_off = b.to(tl.int64) * N * q_stride + h * HEAD_DIM
    kv_off = b.to(tl.int64) * N * kv_stride + kvh * HEAD_DIM
    q = _load_rows(Q + q_off, q_token, q_stride, q_valid, offs_d, HEAD_DIM)
    do = _load_rows(DO + q_off, q_token, q_stride, q_valid, offs_d, HEAD_DIM)
    stat_ptrs = b.to(tl.int64) * N * H + (q_token * H + h)
    lse = tl.load(LSE + stat_ptrs, mask=q_valid, other=0.0)
    delta = tl.load(DELTA + stat_ptrs, mask=q_valid, other=0.0)

    f0, l0 = _window(qi0, n0, K0, S0, C0)
    f1, l1 = _window(qi1, n1, K1, S1, C1)
    f2, l2 = _window(qi2, n2, K2, S2, C2)
    top0, top1, top2 = lo0 + TM0 - 1, lo1 + TM1 - 1, lo2 + TM2 - 1
    first0, inner_hi0 = _window(tl.minimum(lo0, n0 - 1), n0, K0, S0, C0)
    inner_lo0, last0 = _window(tl.minimum(top0, n0 - 1), n0, K0, S0, C0)
    first1, inner_hi1 = _window(tl.minimum(lo1, n1 - 1), n1, K1, S1, C1)
    inner_lo1, last1 = _window(tl.minimum(top1, n1 - 1), n1, K1, S1, C1)
    first2, inner_hi2 = _window(tl.minimum(lo2, n2 - 1), n2, K2, S2, C2)
    inner_lo2, last2 = _window(tl.minimum(top2, n2 - 1), n2, K2, S2, C2)

    dq = tl.zeros([TM0 * TM1 * TM2, D_PAD], tl.float32)
    bias_columns = (2 * K0 - 1) * (2 * K1 - 1) * (2 * K2 - 1)
    rpb_base = RPB + h * bias_columns
    # This program's own row of partial bias gradients (``[programs, batch * heads,
    # columns]``), used in deterministic mode and whenever the rows fit in memory.
    drpb_row = DRPB + (pid.to(tl.int64) * tl.num_programs(1) + bh) * bias_columns
    for a0 in range(first0, last0 + 1, TN0):
        for a1 in range(first1, last1 + 1, TN1):
            for a2 in range(first2, last2 + 1, TN2):
                kj0, kj1, kj2, k_valid, k_token = _key_block(
                    a0, a1, a2, g0, g1, g2, n0, n1, n2, L1, L2, DIL0, DIL1, DIL2, TN0, TN1, TN2
                )
                k = _load_rows(K + kv_off, k_token, kv_stride, k_valid, offs_d, HEAD_DIM)
                v = _load_rows(V + kv_off, k_token, kv_stride, k_valid, offs_d, HEAD_DIM)
                s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
                if HAS_RPB:
                    column = _bias_index(
                        kj0[None, :],
                        kj1[None, :],
                        kj2[None, :],
                        qi0[:, None],
                        qi1[:, None],
                        qi2[:, None],
                        K0,
                        K1,
                        K2,
                    )
                    s += tl.load(rpb_base + column).to(tl.float32) * _LOG2E
                p = tl.math.exp2(s - lse[:, None])
                fully_inside = (
                    (a0 >= inner_lo0)
                    & (a0 + TN0 - 1 <= inner_hi0)
                    & (a1 >= inner_lo1)
                    & (a1 + TN1 - 1 <= inner_hi1)
                    & (a2 >= inner_lo2)
                    & (a2 + TN2 - 1 <= inner_hi2)
                )
                if not fully_inside:
                    allowed = _inside(
                        kj0[None, :],
                        kj1[None, :],
                        kj2[None, :],
                        f0[:, None],
                        l0[:, None],
                        f1[:, None],
                        l1[:, None],
                        f2[:, None],
                        l2[:, None],
                    )
                    p = tl.where(allowed, p, 0.0)
                dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
                # Gradient of the logits (natural units); zero for masked pairs and for
                # padded rows (their dO and delta are zero).
                ds = p * (dp - delta[:, None])
                dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)
                if HAS_RPB:
                    if DETERMINISTIC:
                        hit = ds != 0.0
                        low = tl.min(tl.where(hit, column, bias_columns))
                        high = tl.max(tl.where(hit, column, -1))
                        tl.debug_barrier()
                        for r in range(low, high + 1):
                            total = tl.sum(tl.sum(tl.where(column == r, ds, 0.0), 1), 0)
                            tl.store(drpb_row + r, tl.load(drpb_row + r) + total)
                        tl.debug_barrier()
                    elif PRIVATE_RPB:
                        # Atomics into the program's own row: programs never contend.
                        tl.atomic_add(drpb_row + column, ds, mask=ds != 0.0, sem="relaxed")
                    else:
                        tl.atomic_add(
                            DRPB + h * bias_columns + column, ds, mask=ds != 0.0, sem="relaxed"
                        )
    if HAS_EXTRA:
        offs_e = tl.arange(0, TN0 * TN1 * TN2)
        extra_off = b.to(tl.int64) * M * kv_stride + kvh * HEAD_DIM
        partial_off = (pid.to(tl.int64) * tl.num_programs(1) + bh) * M * HEAD_DIM
        for e in range(0, M, TN0 * TN1 * TN2):
            e_valid = e + offs_e < M
            k = _load_rows(EK + extra_off, e + offs_e, kv_stride, e_valid, offs_d, HEAD_DIM)
            v = _load_rows(EV + extra_off, e + offs_e, kv_stride, e_valid, offs_d, HEAD_DIM)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
            p = tl.where(e_valid[None, :], tl.math.exp2(s - lse[:, None]), 0.0)
            dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)
            d_k = tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=DOT_PRECISION) * scale
            d_v = tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=DOT_PRECISION)
            store_mask = e_valid[:, None] & (offs_d < HEAD_DIM)[None, :]
            partial = partial_off + (e + offs_e)[:, None] * HEAD_DIM + offs_d[None, :]
            tl.store(DEXTRA_K + partial, d_k, mask=store_mask)
            tl.store(DEXTRA_V + partial, d_v, mask=store_mask)

    dq_ptrs = DQ + q_off + (q_token[:, None] * q_stride + offs_d[None, :])
    tl.store(
        dq_ptrs,
        (dq * scale).to(DQ.dtype.element_ty),
        mask=q_valid[:, None] & (offs_d < HEAD_DIM)[None, :],
    )


@triton.jit(do_not_specialize=_TUNING_KEYS)
def _backward_dkdv_kernel(
    Q,
    K,
    V,
    RPB,
    DO,
    LSE,
    DELTA,
    DK,
    DV,
    QUERY_RANGE,
    H,
    G,
    N,
    HEAD_DIM,
    L0,
    L1,
    L2,
    K0,
    K1,
    K2,
    S0,
    S1,
    S2,
    DIL0,
    DIL1,
    DIL2,
    qk_scale,
    scale,
    NDIM,
    KEY_BUCKET,
    SIZE_BUCKET,
    C0: tl.constexpr,
    C1: tl.constexpr,
    C2: tl.constexpr,
    HAS_RPB: tl.constexpr,
    D_PAD: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    TM0: tl.constexpr,
    TM1: tl.constexpr,
    TM2: tl.constexpr,
    TN0: tl.constexpr,
    TN1: tl.constexpr,
    TN2: tl.constexpr,
):
    """dK and dV of one key tile of one (batch, kv head), over every query head of its
    group and every query tile that can see one of its keys.

    ``QUERY_RANGE`` is ``[L0 + L1 + L2, 2]``: per axis position of a key, the first and
    last in-group query whose window can contain it (monotone in the key, so a key tile
    ``[lo, hi]`` needs the queries from ``range[lo, 0]`` to ``range[hi, 1]``).
    """
    pid = tl.program_id(0)
    bkv = tl.program_id(1)
    kv_heads = H // G
    b, kvh = bkv // kv_heads, bkv % kv_heads
    q_stride = H * HEAD_DIM
    kv_stride = kv_heads * HEAD_DIM
    tiles2 = _tiles_along(L2, DIL2, TN2)
    tiles1 = _tiles_along(L1, DIL1, TN1)
    g0, n0, lo0 = _tile_origin(pid // (tiles1 * tiles2), L0, DIL0, TN0)
    g1, n1, lo1 = _tile_origin((pid // tiles2) % tiles1, L1, DIL1, TN1)
    g2, n2, lo2 = _tile_origin(pid % tiles2, L2, DIL2, TN2)
    kj0, kj1, kj2, k_valid, k_token = _key_block(
        lo0, lo1, lo2, g0, g1, g2, n0, n1, n2, L1, L2, DIL0, DIL1, DIL2, TN0, TN1, TN2
    )
    offs_d = tl.arange(0, D_PAD)
    kv_off = b.to(tl.int64) * N * kv_stride + kvh * HEAD_DIM
    k = _load_rows(K + kv_off, k_token, kv_stride, k_valid, offs_d, HEAD_DIM)
    v = _load_rows(V + kv_off, k_token, kv_stride, k_valid, offs_d, HEAD_DIM)

    # Query range of the tile per axis, from its first and last (valid) key.
    hi0 = tl.minimum(lo0 + TN0 - 1, n0 - 1)
    hi1 = tl.minimum(lo1 + TN1 - 1, n1 - 1)
    hi2 = tl.minimum(lo2 + TN2 - 1, n2 - 1)
    qs0 = tl.load(QUERY_RANGE + 2 * (g0 + tl.minimum(lo0, n0 - 1) * DIL0))
    qe0 = tl.load(QUERY_RANGE + 2 * (g0 + hi0 * DIL0) + 1)
    qs1 = tl.load(QUERY_RANGE + 2 * (L0 + g1 + tl.minimum(lo1, n1 - 1) * DIL1))
    qe1 = tl.load(QUERY_RANGE + 2 * (L0 + g1 + hi1 * DIL1) + 1)
    qs2 = tl.load(QUERY_RANGE + 2 * (L0 + L1 + g2 + tl.minimum(lo2, n2 - 1) * DIL2))
    qe2 = tl.load(QUERY_RANGE + 2 * (L0 + L1 + g2 + hi2 * DIL2) + 1)

    r0, r1, r2 = _block_coords(TM0, TM1, TM2)
    bias_columns = (2 * K0 - 1) * (2 * K1 - 1) * (2 * K2 - 1)
    dk = tl.zeros([TN0 * TN1 * TN2, D_PAD], tl.float32)
    dv = tl.zeros([TN0 * TN1 * TN2, D_PAD], tl.float32)
    for group_head in range(0, G):
        h = kvh * G + group_head
        q_off = b.to(tl.int64) * N * q_stride + h * HEAD_DIM
        for a0 in range(qs0, qe0 + 1, TM0):
            for a1 in range(qs1, qe1 + 1, TM1):
                for a2 in range(qs2, qe2 + 1, TM2):
                    q_valid = (a0 + r0 < n0) & (a1 + r1 < n1) & (a2 + r2 < n2)
                    qi0 = tl.minimum(a0 + r0, n0 - 1)
                    qi1 = tl.minimum(a1 + r1, n1 - 1)
                    qi2 = tl.minimum(a2 + r2, n2 - 1)
                    q_token = _token(g0, g1, g2, qi0, qi1, qi2, L1, L2, DIL0, DIL1, DIL2)
                    q = _load_rows(Q + q_off, q_token, q_stride, q_valid, offs_d, HEAD_DIM)
                    do = _load_rows(DO + q_off, q_token, q_stride, q_valid, offs_d, HEAD_DIM)
                    stat_ptrs = b.to(tl.int64) * N * H + (q_token * H + h)
                    lse = tl.load(LSE + stat_ptrs, mask=q_valid, other=0.0)
                    delta = tl.load(DELTA + stat_ptrs, mask=q_valid, other=0.0)
                    f0, l0 = _window(qi0, n0, K0, S0, C0)
                    f1, l1 = _window(qi1, n1, K1, S1, C1)
                    f2, l2 = _window(qi2, n2, K2, S2, C2)
                    # Transposed scores: keys are rows, queries columns.
                    s = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * qk_scale
                    if HAS_RPB:
                        column = _bias_index(
                            kj0[:, None],
                            kj1[:, None],
                            kj2[:, None],
                            qi0[None, :],
                            qi1[None, :],
                            qi2[None, :],
                            K0,
                            K1,
                            K2,
                        )
                        s += tl.load(RPB + h * bias_columns + column).to(tl.float32) * _LOG2E
                    allowed = (
                        _inside(
                            kj0[:, None],
                            kj1[:, None],
                            kj2[:, None],
                            f0[None, :],
                            l0[None, :],
                            f1[None, :],
                            l1[None, :],
                            f2[None, :],
                            l2[None, :],
                        )
                        & q_valid[None, :]
                    )
                    p = tl.where(allowed, tl.math.exp2(s - lse[None, :]), 0.0)
                    dv += tl.dot(p.to(do.dtype), do, input_precision=DOT_PRECISION)
                    dp = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
                    ds = p * (dp - delta[None, :])
                    dk += tl.dot(ds.to(q.dtype), q, input_precision=DOT_PRECISION)

    store_mask = k_valid[:, None] & (offs_d < HEAD_DIM)[None, :]
    rows = kv_off + (k_token[:, None] * kv_stride + offs_d[None, :])
    tl.store(DK + rows, (dk * scale).to(DK.dtype.element_ty), mask=store_mask)
    tl.store(DV + rows, dv.to(DV.dtype.element_ty), mask=store_mask)


# ----------------------------------------------------------------------------------------
# Tile configurations and launches
# ----------------------------------------------------------------------------------------


class _Candidate(NamedTuple):
    """One autotuning candidate: tile shapes, launch options and where it is tried."""

    query_tile: tuple[int, int, int]
    key_tile: tuple[int, int, int]
    warps: int
    stages: int
    #: kernel-size buckets it is tried for (:func:`_key_bucket`)
    buckets: tuple[int, ...]
    #: the largest padded head_dim it is tried for
    max_d_pad: int = _MAX_HEAD_DIM


# Candidates per rank. 2D/3D query tiles are compact blocks so that their union of windows
# stays small; key tiles are short rows along the last axis (contiguous in memory up to
# the head stride) stacked along the others. Large windows (bucket 2) favour 128-row
# tiles, small windows smaller key tiles that waste fewer masked slots.
_FORWARD_CONFIGS = {
    1: [
        _Candidate((1, 1, 128), (1, 1, 64), 8, 3, (0, 1, 2)),
        _Candidate((1, 1, 128), (1, 1, 128), 8, 2, (2,)),
        _Candidate((1, 1, 64), (1, 1, 32), 4, 3, (0, 1)),
    ],
    2: [
        _Candidate((1, 8, 16), (1, 4, 32), 8, 2, (2,)),
        _Candidate((1, 8, 16), (1, 2, 32), 8, 3, (0, 1, 2)),
        _Candidate((1, 8, 8), (1, 2, 16), 4, 3, (0, 1)),
        _Candidate((1, 8, 8), (1, 4, 16), 4, 2, (0, 1)),
    ],
    3: [
        _Candidate((2, 4, 8), (2, 2, 16), 4, 3, (0, 1, 2)),
        _Candidate((4, 4, 8), (1, 4, 16), 8, 2, (0, 1, 2)),
        _Candidate((4, 4, 4), (1, 2, 16), 4, 3, (0, 1)),
    ],
}
# The backward kernels hold more live tiles (q, dO, k, v and one or two fp32
# accumulators), so their blocks are smaller; configurations that spilled registers in
# sm_90 builds at head_dim 128 were dropped. dQ: (query tile, key step); dK/dV:
# (query step, key tile).
#
# Small 2D windows (bucket 0, head_dim up to 64) add tiles sized to the window. The work
# of a program is its tile against every key (dQ) or query (dK/dV) tile in reach, masked
# or not: for a 7x7 window on a large map, a 2x8 query tile needs an 8x14 key block,
# covered by one 8x16 step, so 2.6 pairs are computed per pair needed, against 4.4 for
# the best of the general tiles (8x8 queries by 2x16 keys); a 2x8 key tile against
# 8x16 query steps gives 3.0 against 4.4 for dK/dV. These kernels are register-bound
# (index, mask and score tiles live at once: about 220 registers per thread for the
# general tiles at head_dim 32 in sm_90 builds), so smaller tiles and 8-warp variants,
# at 100 to 160 registers, also buy occupancy.
_DQ_CONFIGS = {
    1: [
        _Candidate((1, 1, 64), (1, 1, 64), 4, 2, (0, 1, 2)),
        _Candidate((1, 1, 128), (1, 1, 64), 8, 2, (2,)),
        _Candidate((1, 1, 64), (1, 1, 32), 4, 2, (0, 1)),
    ],
    2: [
        _Candidate((1, 4, 16), (1, 2, 32), 4, 2, (0, 1, 2)),
        _Candidate((1, 8, 16), (1, 4, 16), 8, 2, (2,)),
        _Candidate((1, 8, 8), (1, 2, 16), 4, 2, (0, 1)),
        _Candidate((1, 2, 8), (1, 8, 16), 4, 1, (0,), 64),
        _Candidate((1, 2, 8), (1, 4, 16), 4, 2, (0,), 64),
        _Candidate((1, 2, 8), (1, 4, 16), 8, 2, (0,), 64),
        _Candidate((1, 4, 4), (1, 2, 16), 4, 2, (0,), 64),
    ],
    3: [
        _Candidate((2, 4, 8), (2, 2, 16), 4, 2, (0, 1, 2)),
        _Candidate((4, 4, 4), (1, 2, 16), 4, 2, (0, 1, 2)),
    ],
}
_DKDV_CONFIGS = {
    1: [
        _Candidate((1, 1, 32), (1, 1, 128), 8, 2, (0, 1, 2)),
        _Candidate((1, 1, 64), (1, 1, 64), 8, 2, (2,)),
        _Candidate((1, 1, 32), (1, 1, 32), 4, 2, (0, 1)),
    ],
    2: [
        _Candidate((1, 2, 16), (1, 8, 16), 8, 2, (0, 1, 2)),
        _Candidate((1, 4, 16), (1, 4, 16), 8, 2, (2,)),
        _Candidate((1, 4, 8), (1, 2, 16), 4, 2, (0, 1)),
        _Candidate((1, 8, 16), (1, 2, 8), 4, 1, (0,), 64),
        _Candidate((1, 4, 16), (1, 2, 8), 8, 2, (0,), 64),
        _Candidate((1, 2, 16), (1, 2, 8), 4, 2, (0,), 64),
        _Candidate((1, 4, 8), (1, 4, 4), 4, 2, (0,), 64),
    ],
    3: [
        _Candidate((1, 2, 16), (2, 4, 16), 8, 2, (0, 1, 2)),
        _Candidate((2, 2, 8), (1, 2, 16), 4, 2, (0, 1, 2)),
    ],
}
# Tiny tiles for the interpreter (numpy on the CPU): fast, and small enough that test
# shapes span several tiles per axis.
_INTERPRETER_CONFIG = {
    1: ((1, 1, 16), (1, 1, 16)),
    2: ((1, 4, 8), (1, 4, 8)),
    3: ((2, 4, 4), (2, 4, 4)),
}
# Kernel-size buckets: every kernel_size <= 8 (small windows), <= 16, larger.
_KEY_BUCKET_LIMITS = (8, 16)
# Problem-size buckets (query rows = batch x heads x tokens): below 2**17 rows launches
# are short and latency decides, from 2**21 rows on the grid fills the GPU many times.
# Tuned separately, so that a small call (a test, a low-resolution stage) does not choose
# the tiles of a large one.
_SIZE_BUCKET_LIMITS = (1 << 17, 1 << 21)
# Largest per-program d(rpb) buffer (fp32 elements) before programs share rows.
_PRIVATE_RPB_ELEMENTS = 1 << 26


def _key_bucket(kernel_size: tuple[int, ...]) -> int:
    return bisect.bisect_left(_KEY_BUCKET_LIMITS, max(kernel_size))


def _size_bucket(rows: int) -> int:
    return bisect.bisect_right(_SIZE_BUCKET_LIMITS, rows)


def _candidates(configs_by_rank: dict, ndim: int, key_bucket: int, d_pad: int) -> list:
    """The candidates of ``configs_by_rank`` tried for a call of this rank, kernel-size
    bucket and padded head_dim."""
    return [c for c in configs_by_rank[ndim] if key_bucket in c.buckets and d_pad <= c.max_d_pad]


def _autotuned(kernel, configs_by_rank: dict, reset_to_zero: list[str] | None = None):
    """``kernel`` autotuned over the candidates of the call's rank, kernel-size bucket and
    head_dim; tuned once per rank, padded head_dim, kernel-size bucket, problem-size
    bucket, with or without rpb, and dtype."""
    configs, tried = [], {}
    for ndim, candidates in configs_by_rank.items():
        for candidate in candidates:
            tm, tn = candidate.query_tile, candidate.key_tile
            meta = {**{f"TM{a}": tm[a] for a in range(3)}, **{f"TN{a}": tn[a] for a in range(3)}}
            configs.append(
                triton.Config(meta, num_warps=candidate.warps, num_stages=candidate.stages)
            )
            tried[id(configs[-1])] = (ndim, candidate)

    def prune(configs, named_args, **kwargs):
        ndim = kwargs["NDIM"]
        wanted = {
            id(c) for c in _candidates(configs_by_rank, ndim, kwargs["KEY_BUCKET"], kwargs["D_PAD"])
        }
        return [c for c in configs if tried[id(c)][0] == ndim and id(tried[id(c)][1]) in wanted]

    return triton.autotune(
        configs=configs,
        key=["NDIM", "D_PAD", "KEY_BUCKET", "SIZE_BUCKET", "HAS_RPB"],
        prune_configs_by={"early_config_prune": prune},
        reset_to_zero=reset_to_zero,
    )(kernel)


if INTERPRET:
    _forward, _backward_dq, _backward_dkdv = (
        _forward_kernel,
        _backward_dq_kernel,
        _backward_dkdv_kernel,
    )
else:
    _forward = _autotuned(_forward_kernel, _FORWARD_CONFIGS)
    # Autotuning runs every candidate on the same buffers; the accumulated d(rpb) and the
    # per-program partial rows (whose count depends on the tile shape) must start from
    # zero again for the chosen configuration, or stale rows of other candidates are summed.
    _backward_dq = _autotuned(
        _backward_dq_kernel, _DQ_CONFIGS, reset_to_zero=["DRPB", "DEXTRA_K", "DEXTRA_V"]
    )
    _backward_dkdv = _autotuned(_backward_dkdv_kernel, _DKDV_CONFIGS)

#: launches of the fused ops in this process ("forward", "backward"); see
#: :func:`launch_counts`
_LAUNCHES: collections.Counter = collections.Counter()


def launch_counts() -> dict[str, int]:
    """How many fused forward and backward passes this process has run (evidence that
    the Triton path ran, e.g. in a training run)."""
    return {"forward": _LAUNCHES["forward"], "backward": _LAUNCHES["backward"]}


def tuning_choices() -> list[dict]:
    """The tile configuration autotuning chose for every key tuned so far in this process:
    ``{"kernel", "key", "config"}`` per tuned key (empty under the interpreter)."""
    if INTERPRET:
        return []
    choices = []
    for name, tuned in (("forward", _forward), ("dq", _backward_dq), ("dkdv", _backward_dkdv)):
        for key, config in tuned.cache.items():
            choices.append({"kernel": name, "key": [str(k) for k in key], "config": str(config)})
    return choices


def _fixed_tiles(ndim: int) -> dict:
    """Launch meta-parameters for the interpreter (empty when autotuning chooses)."""
    if not INTERPRET:
        return {}
    tm, tn = _INTERPRETER_CONFIG[ndim]
    return {**{f"TM{a}": tm[a] for a in range(3)}, **{f"TN{a}": tn[a] for a in range(3)}}


def _tiles(lengths: tuple[int, ...], dilations: tuple[int, ...], meta: dict, prefix: str) -> int:
    return math.prod(
        d * triton.cdiv(triton.cdiv(length, d), meta[f"{prefix}{axis}"])
        for axis, (length, d) in enumerate(zip(lengths, dilations, strict=True))
    )


@functools.lru_cache(maxsize=256)
def _query_range_table(
    length: int, kernel_size: int, stride: int, dilation: int, is_causal: bool
) -> torch.Tensor:
    """``[length, 2]`` int32: per axis position of a key, the first and last in-group
    query (of the key's dilation group) whose window can contain it.

    Windows start and end monotonically in the query, so the queries seeing key ``j``
    run from the first whose window ends at or after ``j`` to the last whose window
    starts at or before ``j``.
    """
    table = torch.empty(length, 2, dtype=torch.int32)
    for group in range(dilation):
        n = int(group_length(length, dilation, torch.tensor(group)))
        query = torch.arange(n)
        first, last = key_range(query, torch.full_like(query, n), kernel_size, stride, is_causal)
        key = torch.arange(n)
        table[group::dilation, 0] = torch.searchsorted(last.contiguous(), key).to(torch.int32)
        table[group::dilation, 1] = (
            torch.searchsorted(first.contiguous(), key, right=True) - 1
        ).to(torch.int32)
    return table


class _Geometry:
    """The call's window arguments padded to 3 axes, in kernel-argument form."""

    def __init__(self, call: AttentionCall) -> None:
        pad = 3 - len(call.spatial_shape)
        self.ndim = len(call.spatial_shape)
        self.lengths = (1,) * pad + call.spatial_shape
        self.kernels = (1,) * pad + call.kernel_size
        self.strides = (1,) * pad + call.stride
        self.dilations = (1,) * pad + call.dilation
        self.causal = (False,) * pad + call.is_causal
        self.batch = call.query.shape[0]
        self.heads, self.kv_heads = call.heads, call.kv_heads
        self.head_dim = call.query.shape[-1]
        self.d_pad = max(16, triton.next_power_of_2(self.head_dim))
        self.tokens = math.prod(self.lengths)
        self.scale = call.scale
        self.key_bucket = _key_bucket(call.kernel_size)
        self.size_bucket = _size_bucket(self.batch * self.heads * self.tokens)
        self.bias_columns = math.prod(2 * k - 1 for k in self.kernels)

    def window_args(self) -> dict:
        names = ("L", "K", "S", "DIL")
        values = (self.lengths, self.kernels, self.strides, self.dilations)
        args = {
            f"{name}{axis}": v[axis]
            for name, v in zip(names, values, strict=True)
            for axis in range(3)
        }
        args.update({f"C{axis}": self.causal[axis] for axis in range(3)})
        return args

    def common_args(self, dtype: torch.dtype) -> dict:
        return dict(
            H=self.heads,
            G=self.heads // self.kv_heads,
            N=self.tokens,
            HEAD_DIM=self.head_dim,
            NDIM=self.ndim,
            KEY_BUCKET=self.key_bucket,
            SIZE_BUCKET=self.size_bucket,
            D_PAD=self.d_pad,
            DOT_PRECISION="ieee" if dtype == torch.float32 else "tf32",
            **self.window_args(),
        )

    def query_range(self, device: torch.device) -> torch.Tensor:
        tables = [
            _query_range_table(*args)
            for args in zip(
                self.lengths, self.kernels, self.strides, self.dilations, self.causal, strict=True
            )
        ]
        return torch.cat(tables).to(device)


def _deterministic() -> bool:
    return (
        os.environ.get("DOMAINVIT_DETERMINISTIC") == "1"
        or torch.are_deterministic_algorithms_enabled()
    )


class _TritonAttention(torch.autograd.Function):
    """Fused forward; backward recomputes probabilities from the saved log-sum-exp."""

    @staticmethod
    def forward(ctx, geometry, query, key, value, rpb, extra_k, extra_v):  # noqa: D102
        query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
        if extra_k is not None:
            extra_k, extra_v = extra_k.contiguous(), extra_v.contiguous()
        if rpb is not None:
            rpb = rpb.contiguous()
        out = torch.empty_like(query)
        lse = torch.empty(
            geometry.batch,
            geometry.tokens,
            geometry.heads,
            dtype=torch.float32,
            device=query.device,
        )
        extra = 0 if extra_k is None else extra_k.shape[1]
        ndim = geometry.ndim
        meta = _fixed_tiles(ndim)

        def grid(launch):
            launch = {**launch, **meta}
            return (
                _tiles(geometry.lengths, geometry.dilations, launch, "TM"),
                geometry.batch * geometry.heads,
            )

        _forward[grid](
            Q=query,
            K=key,
            V=value,
            RPB=query if rpb is None else rpb,
            EK=query if extra_k is None else extra_k,
            EV=query if extra_v is None else extra_v,
            OUT=out,
            LSE=lse,
            M=extra,
            qk_scale=geometry.scale * LOG2E,
            HAS_RPB=rpb is not None,
            HAS_EXTRA=extra > 0,
            **geometry.common_args(query.dtype),
            **meta,
        )
        _LAUNCHES["forward"] += 1
        ctx.geometry = geometry
        ctx.save_for_backward(query, key, value, rpb, extra_k, extra_v, out, lse)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        geometry = ctx.geometry
        query, key, value, rpb, extra_k, extra_v, out, lse = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        device = query.device
        meta = _fixed_tiles(geometry.ndim)
        rows = out.numel() // geometry.head_dim
        delta = torch.empty(rows, dtype=torch.float32, device=device)
        block_rows = 16 if INTERPRET else 64
        _delta_kernel[(triton.cdiv(rows, block_rows),)](
            out,
            grad_out,
            delta,
            rows,
            geometry.head_dim,
            BLOCK_R=block_rows,
            D_PAD=geometry.d_pad,
        )

        common = geometry.common_args(query.dtype)
        bias_args = dict(qk_scale=geometry.scale * LOG2E, scale=geometry.scale)
        dk, dv = torch.empty_like(key), torch.empty_like(value)
        _backward_dkdv[
            lambda launch: (
                _tiles(geometry.lengths, geometry.dilations, {**launch, **meta}, "TN"),
                geometry.batch * geometry.kv_heads,
            )
        ](
            Q=query,
            K=key,
            V=value,
            RPB=query if rpb is None else rpb,
            DO=grad_out,
            LSE=lse,
            DELTA=delta,
            DK=dk,
            DV=dv,
            QUERY_RANGE=geometry.query_range(device),
            HAS_RPB=rpb is not None,
            **bias_args,
            **common,
            **meta,
        )

        extra = 0 if extra_k is None else extra_k.shape[1]
        deterministic = _deterministic()
        dq = torch.empty_like(query)
        bh = geometry.batch * geometry.heads
        # Per-program partial rows are laid out [program, batch * heads, ...] for the
        # largest program count any candidate tile shape gives; rows of programs that
        # do not exist stay zero, so the sums below need not know the tuned shape.
        programs = _max_query_programs(geometry)
        zeros = functools.partial(torch.zeros, dtype=torch.float32, device=device)
        # One row of bias gradients per program unless that is too big (large kernels),
        # where all programs share one row per head.
        private_rpb = deterministic or (
            programs * bh * geometry.bias_columns <= _PRIVATE_RPB_ELEMENTS
        )
        if rpb is None:
            drpb = zeros(1)
        elif private_rpb:
            drpb = zeros(programs, bh, geometry.bias_columns)
        else:
            drpb = zeros(geometry.heads, geometry.bias_columns)
        partial_shape = (programs, bh, extra, geometry.head_dim) if extra else (1,)
        dextra_k, dextra_v = zeros(partial_shape), zeros(partial_shape)
        _backward_dq[
            lambda launch: (
                _tiles(geometry.lengths, geometry.dilations, {**launch, **meta}, "TM"),
                bh,
            )
        ](
            Q=query,
            K=key,
            V=value,
            RPB=query if rpb is None else rpb,
            EK=query if extra_k is None else extra_k,
            EV=query if extra_v is None else extra_v,
            DO=grad_out,
            LSE=lse,
            DELTA=delta,
            DQ=dq,
            DRPB=drpb,
            DEXTRA_K=dextra_k,
            DEXTRA_V=dextra_v,
            M=extra,
            HAS_RPB=rpb is not None,
            HAS_EXTRA=extra > 0,
            DETERMINISTIC=deterministic,
            PRIVATE_RPB=private_rpb,
            **bias_args,
            **common,
            **meta,
        )

        grad_rpb = grad_extra_k = grad_extra_v = None
        if rpb is not None:
            if private_rpb:
                drpb = drpb.view(programs, geometry.batch, geometry.heads, -1).sum((0, 1))
            grad_rpb = drpb.view(rpb.shape).to(rpb.dtype)
        if extra:
            group = geometry.heads // geometry.kv_heads
            shape = (programs, geometry.batch, geometry.kv_heads, group, extra, -1)

            def reduce(partial: torch.Tensor) -> torch.Tensor:
                # Sum over query tiles and the query heads sharing each kv head, then
                # back to the [B, M, kv_heads, D] layout.
                summed = partial.view(shape).sum((0, 3)).transpose(1, 2)
                return summed.to(extra_k.dtype).contiguous()

            grad_extra_k = reduce(dextra_k)
            grad_extra_v = reduce(dextra_v)
        _LAUNCHES["backward"] += 1
        return None, dq, dk, dv, grad_rpb, grad_extra_k, grad_extra_v


def _max_query_programs(geometry: _Geometry) -> int:
    """The most query-tile programs any dQ candidate tried for this call launches."""
    if INTERPRET:
        shapes = [_INTERPRETER_CONFIG[geometry.ndim][0]]
    else:
        candidates = _candidates(_DQ_CONFIGS, geometry.ndim, geometry.key_bucket, geometry.d_pad)
        shapes = [c.query_tile for c in candidates]
    return max(
        _tiles(geometry.lengths, geometry.dilations, {f"TM{a}": tm[a] for a in range(3)}, "TM")
        for tm in shapes
    )


def triton_supports(call: AttentionCall) -> bool:
    """CUDA/ROCm tensors (CPU ones too under ``TRITON_INTERPRET=1``), fp16/bf16/fp32,
    head_dim up to 128 (padded to a power of two of at least 16), 1D/2D/3D, fewer than
    2**31 elements per batch element."""
    device_ok = call.device.type == "cuda" or (INTERPRET and call.device.type == "cpu")
    return (
        device_ok
        and call.query.dtype in (torch.float16, torch.bfloat16, torch.float32)
        and call.query.shape[-1] <= _MAX_HEAD_DIM
        and 1 <= len(call.spatial_shape) <= 3
        # Offsets inside one batch element are int32.
        and call.query[0].numel() < 2**31
    )


def triton_attention(call: AttentionCall) -> torch.Tensor:
    """Fused neighbourhood attention of ``call`` (forward and backward in Triton)."""
    return _TritonAttention.apply(
        _Geometry(call),
        call.query,
        call.key,
        call.value,
        call.rpb,
        call.additional_keys,
        call.additional_values,
    )
