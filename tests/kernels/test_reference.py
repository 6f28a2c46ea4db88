"""The dense reference backend against a per-query loop written from the spec formulas.

The tiled backend is tested against the reference, so the reference itself is checked
here, on tiny inputs, against code that follows the formulas of NATTEN's generalized
neighbourhood attention literally (one query at a time, plain Python integers).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from domainvit.kernels import na1d, na2d, na3d
from domainvit.kernels.windows import group_length, key_range

OPS = {1: na1d, 2: na2d, 3: na3d}


def spec_keys(i: int, length: int, k: int, s: int, d: int, causal: bool) -> list[tuple[int, int]]:
    """(axis index, rpb index) of every key of query ``i`` along one axis."""
    g, qi = i % d, i // d
    n = math.ceil((length - g) / d)
    if causal:
        leader = min((qi // s) * s + s - 1, n - 1)
        in_group = [j for j in range(n) if j <= qi and leader - j < k]
    else:
        leader = min((qi // s) * s + s // 2, n - 1)
        left, right = k // 2, k // 2 + k % 2 - 1
        center = min(max(leader, left), n - 1 - right)
        in_group = list(range(center - left, center + right + 1))
    return [(g + j * d, j - qi + k - 1) for j in in_group]


def loop_attention(q, k, v, kernel, stride, dilation, causal, rpb, extra_k, extra_v):
    batch, *spatial, heads, head_dim = q.shape
    group = heads // k.shape[-2]
    scale = head_dim**-0.5
    out = torch.zeros_like(q)
    for b, h in itertools.product(range(batch), range(heads)):
        kv_h = h // group
        for query in itertools.product(*(range(n) for n in spatial)):
            per_axis = [
                spec_keys(i, spatial[a], kernel[a], stride[a], dilation[a], causal[a])
                for a, i in enumerate(query)
            ]
            logits, values = [], []
            for combo in itertools.product(*per_axis):
                key = tuple(index for index, _ in combo)
                bias = rpb[(h, *(r for _, r in combo))] if rpb is not None else 0.0
                logits.append(q[(b, *query, h)] @ k[(b, *key, kv_h)] * scale + bias)
                values.append(v[(b, *key, kv_h)])
            if extra_k is not None:
                for m in range(extra_k.shape[1]):
                    logits.append(q[(b, *query, h)] @ extra_k[b, m, kv_h] * scale)
                    values.append(extra_v[b, m, kv_h])
            weights = torch.softmax(torch.stack(logits), dim=0)
            out[(b, *query, h)] = weights @ torch.stack(values)
    return out


CASES = [
    # spatial, kernel, stride, dilation, causal, kv_heads, rpb, extra tokens
    ((9,), (3,), (1,), (1,), (False,), 2, True, 0),
    ((11,), (4,), (2,), (2,), (False,), 1, True, 2),
    ((10,), (3,), (3,), (3,), (True,), 2, True, 0),
    ((10,), (5,), (2,), (1,), (True,), 2, False, 1),
    ((6, 7), (3, 2), (2, 1), (1, 3), (False, True), 1, True, 2),
    ((5, 5), (5, 4), (1, 4), (1, 1), (True, False), 2, True, 0),
    ((4, 5, 6), (2, 3, 3), (2, 1, 3), (2, 1, 2), (False, False, True), 2, True, 1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-k{c[1]}-s{c[2]}-d{c[3]}-c{c[4]}")
def test_reference_matches_per_query_loop_from_the_formulas(case):
    spatial, kernel, stride, dilation, causal, kv_heads, with_rpb, extra = case
    gen = torch.Generator().manual_seed(0)
    heads, head_dim = 2, 3

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    q = rand(2, *spatial, heads, head_dim)
    k, v = rand(2, *spatial, kv_heads, head_dim), rand(2, *spatial, kv_heads, head_dim)
    rpb = rand(heads, *(2 * n - 1 for n in kernel)) if with_rpb else None
    extra_k = rand(2, extra, kv_heads, head_dim) if extra else None
    extra_v = rand(2, extra, kv_heads, head_dim) if extra else None

    out = OPS[len(spatial)](
        q,
        k,
        v,
        kernel,
        stride,
        dilation,
        causal,
        rpb=rpb,
        additional_keys=extra_k,
        additional_values=extra_v,
        backend="reference",
    )
    expected = loop_attention(q, k, v, kernel, stride, dilation, causal, rpb, extra_k, extra_v)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("is_causal", [False, True])
def test_key_range_matches_the_formulas_for_every_small_geometry(is_causal):
    for length, k, s, d in itertools.product(range(2, 14), range(2, 6), range(1, 6), range(1, 4)):
        if s > k or k * d > length:
            continue
        index = torch.arange(length)
        group = index % d
        first, last = key_range(index // d, group_length(length, d, group), k, s, is_causal)
        for i in range(length):
            expected = [j for j, _ in spec_keys(i, length, k, s, d, is_causal)]
            got = list(range(i % d + first[i].item() * d, i % d + last[i].item() * d + 1, d))
            assert got == expected, (length, k, s, d, i)
            if not is_causal:
                assert len(got) == k
