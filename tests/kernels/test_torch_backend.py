"""The tiled ``torch`` backend against the dense reference: outputs and every gradient.

Float64 throughout, so any disagreement beyond rounding is a bug in tiling, halos,
masks, bias indexing or the gathers (the reference is itself checked in
test_reference.py).
"""

from __future__ import annotations

import pytest
import torch

from domainvit.kernels import AttentionCall, na1d, na2d, na3d
from domainvit.kernels.backends import tiled

OPS = {1: na1d, 2: na2d, 3: na3d}
HEADS, HEAD_DIM = 4, 5


def make_inputs(
    spatial, kernel, kv_heads=HEADS, rpb=False, extra=0, batch=2, head_dim=HEAD_DIM, seed=0
):
    gen = torch.Generator().manual_seed(seed)
    kernel = kernel if isinstance(kernel, tuple) else (kernel,) * len(spatial)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)

    tensors = {
        "query": rand(batch, *spatial, HEADS, head_dim),
        "key": rand(batch, *spatial, kv_heads, head_dim),
        "value": rand(batch, *spatial, kv_heads, head_dim),
    }
    if rpb:
        tensors["rpb"] = rand(HEADS, *(2 * k - 1 for k in kernel))
    if extra:
        tensors["additional_keys"] = rand(batch, extra, kv_heads, head_dim)
        tensors["additional_values"] = rand(batch, extra, kv_heads, head_dim)
    return tensors


def assert_backends_agree(spatial, kernel, stride=1, dilation=1, is_causal=False, **inputs):
    tensors = make_inputs(spatial, kernel, **inputs)
    op = OPS[len(spatial)]
    window = dict(kernel_size=kernel, stride=stride, dilation=dilation, is_causal=is_causal)
    out = op(**tensors, **window, backend="torch")
    expected = op(**tensors, **window, backend="reference")
    assert out.shape == expected.shape == tensors["query"].shape
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)

    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    names = list(tensors)
    grads = torch.autograd.grad(out, [tensors[n] for n in names], upstream)
    expected_grads = torch.autograd.grad(expected, [tensors[n] for n in names], upstream)
    for name, grad, expected_grad in zip(names, grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-10, msg=name)


GEOMETRIES = [
    # 1D: odd/even kernels, dilation, stride, blocked, causal, several tiles, tiny
    ((17,), 5, 1, 1, False),
    ((17,), 4, 1, 3, False),
    ((19,), 3, 2, 1, False),
    ((16,), 4, 4, 1, False),
    ((17,), 5, 1, 1, True),
    ((23,), 5, 3, 2, True),
    ((150,), 7, 2, 3, False),
    ((131,), 6, 1, 1, True),
    ((5,), 5, 1, 1, False),
    ((5,), 5, 5, 1, True),
    # 2D: non-square, per-axis arguments, mixed causal axes, tiny
    ((9, 11), (3, 4), 1, 1, False),
    ((12, 13), 3, 1, 2, False),
    ((10, 13), (5, 3), (2, 3), 1, False),
    ((8, 12), 4, 4, 1, False),
    ((11, 10), (4, 3), (2, 1), (2, 1), (True, False)),
    ((9, 9), 3, 3, (1, 3), (False, True)),
    ((21, 19), 7, 1, 1, False),
    ((20, 18), (5, 6), (1, 3), (3, 1), (True, True)),
    ((4, 6), (4, 6), 1, 1, False),
    ((4, 6), (4, 6), (2, 3), 1, (True, False)),
    # 3D
    ((5, 6, 7), (3, 4, 5), (3, 2, 1), 1, False),
    ((6, 7, 6), 3, 1, 2, (False, True, False)),
    ((10, 9, 11), 3, (1, 3, 2), 1, False),
    ((4, 5, 3), (4, 5, 3), 1, 1, (True, False, True)),
    ((6, 6, 6), 2, 2, (3, 1, 2), True),
]


@pytest.mark.parametrize(
    "spatial, kernel, stride, dilation, is_causal",
    GEOMETRIES,
    ids=[f"{g[0]}-k{g[1]}-s{g[2]}-d{g[3]}-c{g[4]}" for g in GEOMETRIES],
)
def test_torch_backend_matches_reference_output_and_gradients(
    spatial, kernel, stride, dilation, is_causal
):
    assert_backends_agree(spatial, kernel, stride, dilation, is_causal)


FEATURES = {
    "rpb": dict(rpb=True),
    "extra_tokens": dict(extra=3),
    "gqa": dict(kv_heads=2),
    "mqa_rpb_extra": dict(kv_heads=1, rpb=True, extra=2),
    "batch1_rpb_gqa": dict(kv_heads=2, rpb=True, batch=1),
}

FEATURE_GEOMETRIES = [
    ((17,), 4, 2, 2, False),
    ((13,), 5, 1, 1, True),
    ((11, 10), (4, 3), (2, 1), (2, 1), (True, False)),
    ((12, 9), 3, 1, 1, False),
    ((8, 12), 4, 4, 1, False),
    ((5, 6, 10), (3, 4, 5), (3, 2, 1), (1, 1, 2), (False, False, True)),
]


@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize(
    "spatial, kernel, stride, dilation, is_causal",
    FEATURE_GEOMETRIES,
    ids=[f"{g[0]}-k{g[1]}" for g in FEATURE_GEOMETRIES],
)
def test_torch_backend_matches_reference_with_bias_global_tokens_and_grouped_heads(
    spatial, kernel, stride, dilation, is_causal, feature
):
    assert_backends_agree(spatial, kernel, stride, dilation, is_causal, **FEATURES[feature])


def test_torch_backend_accepts_non_contiguous_inputs():
    gen = torch.Generator().manual_seed(0)
    qkv = torch.randn(2, 9, 10, 3, HEADS, HEAD_DIM, generator=gen, dtype=torch.float64)
    q, k, v = qkv.unbind(3)
    assert not q.is_contiguous()
    out = na2d(q, k, v, 3, dilation=2, backend="torch")
    expected = na2d(
        q.contiguous(), k.contiguous(), v.contiguous(), 3, dilation=2, backend="reference"
    )
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_torch_backend_keeps_query_dtype_and_stays_close_in_low_precision(dtype):
    tensors = {
        name: t.detach().to(dtype)
        for name, t in make_inputs((10, 11), 3, kv_heads=2, rpb=True, extra=2).items()
    }
    out = na2d(**tensors, kernel_size=3, backend="torch")
    expected = na2d(
        **{n: t.double() for n, t in tensors.items()}, kernel_size=3, backend="reference"
    )
    assert out.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.double(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize(
    "spatial, kernel, stride, dilation, is_causal",
    [((7,), 3, 2, 2, False), ((4, 3), (3, 2), (1, 2), 1, (True, False))],
)
def test_torch_backend_passes_gradcheck_for_every_input(
    spatial, kernel, stride, dilation, is_causal
):
    tensors = make_inputs(spatial, kernel, kv_heads=2, rpb=True, extra=2, batch=1, head_dim=2)
    names = list(tensors)
    op = OPS[len(spatial)]

    def attention(*inputs):
        return op(
            **dict(zip(names, inputs, strict=True)),
            kernel_size=kernel,
            stride=stride,
            dilation=dilation,
            is_causal=is_causal,
            backend="torch",
        )

    assert torch.autograd.gradcheck(attention, tuple(tensors.values()))


@pytest.mark.parametrize(
    "spatial, kernel, stride, dilation, is_causal, features",
    [
        ((40,), 5, 2, 2, False, dict(rpb=True, extra=2, kv_heads=2)),
        ((19, 21), (3, 4), (1, 2), (2, 1), (False, True), dict(rpb=True, extra=1, kv_heads=1)),
        ((9, 10, 11), 3, 1, 1, False, dict(extra=2, kv_heads=2)),
    ],
    ids=["1d", "2d", "3d"],
)
def test_torch_backend_is_unchanged_when_tiles_run_one_per_batch(
    monkeypatch, spatial, kernel, stride, dilation, is_causal, features
):
    monkeypatch.setattr(tiled, "_CPU_BATCH_ELEMENTS", 1)
    assert_backends_agree(spatial, kernel, stride, dilation, is_causal, **features)


@pytest.mark.parametrize("kernel, stride, unmasked", [(4, 4, True), (4, 2, False), (3, 1, False)])
def test_blocked_attention_over_whole_blocks_needs_no_mask(kernel, stride, unmasked):
    q = torch.zeros(1, 8, 12, 2, 4)
    call = AttentionCall(q, q, q, (kernel,) * 2, (stride,) * 2, (1, 1), (False, False), 0.5)
    assert tiled.TileGrid(call).unmasked is unmasked


@pytest.mark.parametrize(
    "spatial, kernel, features",
    [
        ((16,), 4, {}),
        ((8, 12), (4, 3), {"rpb": True}),
        ((8, 12), 4, {"rpb": True, "extra": 3, "kv_heads": 2}),
        ((4, 6, 4), 2, {"rpb": True, "extra": 2}),
        ((6, 9), 3, {"kv_heads": 1, "extra": 1}),
    ],
)
def test_window_attention_that_divides_the_input_runs_as_one_batch_of_windows(
    monkeypatch, spatial, kernel, features
):
    calls = []
    original = tiled.blocked_attention
    monkeypatch.setattr(tiled, "blocked_attention", lambda call: calls.append(1) or original(call))
    assert_backends_agree(spatial, kernel, stride=kernel, **features)
    assert calls, "the window-partition path was not taken"


def test_window_attention_with_a_partial_last_window_uses_tiles(monkeypatch):
    monkeypatch.setattr(tiled, "blocked_attention", lambda call: pytest.fail("not divisible"))
    assert_backends_agree((10, 12), 4, stride=4, rpb=True)
