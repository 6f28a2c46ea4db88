"""The fused Triton backend against the dense reference, on the CPU under TRITON_INTERPRET=1.

``TRITON_INTERPRET`` must be set before Triton kernels are defined, and other test files
in the same pytest process may already have imported Triton, so the cases run in fresh
worker processes (this file run as a script), two at a time; each worker prints JSON with
the largest error of the output and of every gradient against the ``reference`` backend
in float32. Shapes are tiny (the interpreter runs every program in numpy) but span
several interpreter tiles per axis, so tile edges, clamped windows and skipped key tiles
are all exercised; large kernels reach the mask-free fast path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
TOLERANCE = 2e-5  # float32 rounding on values of order one

# Ordered so that the expensive cases (3D, and the one also run deterministically)
# alternate between the workers.
CASES = {
    "3d_causal_rpb": dict(
        spatial=(4, 5, 6), kernel=3, is_causal=(True, False, False), rpb=True, heads=1
    ),
    "3d_dilation_stride_rpb_extra_gqa": dict(
        spatial=(5, 4, 6),
        kernel=(2, 3, 3),
        dilation=(2, 1, 1),
        stride=(2, 1, 3),
        rpb=True,
        extra=2,
        kv_heads=1,
    ),
    "2d_dilation_stride_rpb_extra_gqa": dict(
        spatial=(9, 7),
        kernel=(3, 4),
        stride=(1, 2),
        dilation=(2, 1),
        rpb=True,
        extra=3,
        kv_heads=1,
    ),
    # kernel == length on axis 0 and a wide window on axis 1: most key tiles lie inside
    # every window of their query tile (the mask-free path), the rest do not.
    "2d_large_kernel_head_dim_32": dict(spatial=(8, 20), kernel=(8, 17), head_dim=32, heads=1),
    "1d_odd_kernel": dict(spatial=(20,), kernel=5),
    "2d_blocked_causal_rpb": dict(
        spatial=(8, 9), kernel=(4, 3), stride=(4, 3), is_causal=(False, True), rpb=True
    ),
    "2d_basic": dict(spatial=(9, 7), kernel=3),
    "2d_stride_even_kernel_causal_extra": dict(
        spatial=(10, 7), kernel=(4, 6), stride=(2, 3), is_causal=(True, False), extra=2
    ),
    "2d_head_dim_24_batch_2": dict(spatial=(6, 5), kernel=3, head_dim=24, batch=2),
    "1d_even_dilated_strided_causal_rpb_extra_gqa": dict(
        spatial=(19,),
        kernel=4,
        stride=2,
        dilation=2,
        is_causal=True,
        rpb=True,
        extra=3,
        kv_heads=1,
    ),
    "1d_large_kernel_rpb": dict(spatial=(40,), kernel=33, rpb=True),
}
DETERMINISTIC_CASE = "2d_dilation_stride_rpb_extra_gqa"
# One case per rank, run again under every tile shape the GPU autotuner may pick (the
# interpreter otherwise uses one small shape), so that no configuration first runs on a
# GPU. Shapes leave partial tiles at the edges of the larger GPU tiles.
GPU_TILE_CASES = {
    1: dict(spatial=(150,), kernel=9, dilation=2, rpb=True, extra=2, kv_heads=1),
    2: dict(spatial=(9, 21), kernel=(3, 5), stride=(1, 2), rpb=True, extra=2, heads=1),
    3: dict(spatial=(3, 5, 17), kernel=(2, 3, 3), rpb=True, extra=2, heads=1),
}


def _inputs(
    spatial, kernel, heads=2, kv_heads=None, head_dim=16, batch=1, rpb=False, extra=0, seed=0, **_
):
    import torch

    gen = torch.Generator().manual_seed(seed)
    kv_heads = kv_heads or heads
    kernel = kernel if isinstance(kernel, tuple) else (kernel,) * len(spatial)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, requires_grad=True)

    tensors = {
        "query": rand(batch, *spatial, heads, head_dim),
        "key": rand(batch, *spatial, kv_heads, head_dim),
        "value": rand(batch, *spatial, kv_heads, head_dim),
    }
    if rpb:
        tensors["rpb"] = rand(heads, *(2 * k - 1 for k in kernel))
    if extra:
        tensors["additional_keys"] = rand(batch, extra, kv_heads, head_dim)
        tensors["additional_values"] = rand(batch, extra, kv_heads, head_dim)
    return tensors


def _run_case(case: dict) -> dict:
    """Output and gradients of the triton backend and the reference: ``{name: [error,
    reference magnitude]}`` plus the raw rpb gradient (for the determinism check)."""
    import torch

    from domainvit.kernels.backends.reference import reference_attention
    from domainvit.kernels.backends.triton_na import triton_attention, triton_supports
    from domainvit.kernels.functional import _check_call

    tensors = _inputs(**case)
    ndim = len(case["spatial"])
    call = _check_call(
        f"na{ndim}d",
        ndim,
        tensors["query"],
        tensors["key"],
        tensors["value"],
        case["kernel"],
        case.get("stride", 1),
        case.get("dilation", 1),
        case.get("is_causal", False),
        None,
        tensors.get("rpb"),
        tensors.get("additional_keys"),
        tensors.get("additional_values"),
        None,
    )
    assert triton_supports(call)
    out = triton_attention(call)
    expected = reference_attention(call)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    names = list(tensors)
    grads = torch.autograd.grad(out, [tensors[n] for n in names], upstream)
    expected_grads = torch.autograd.grad(expected, [tensors[n] for n in names], upstream)
    result = {"output": [(out - expected).abs().max().item(), expected.abs().max().item()]}
    for name, grad, reference in zip(names, grads, expected_grads, strict=True):
        result[f"grad_{name}"] = [
            (grad - reference).abs().max().item(),
            reference.abs().max().item(),
        ]
    if "rpb" in tensors:
        result["rpb_grad_values"] = grads[names.index("rpb")].flatten().tolist()
    return result


def _gpu_tile_shapes(ndim: int) -> list[tuple]:
    from domainvit.kernels.backends import triton_na

    shapes = []
    for configs in (triton_na._FORWARD_CONFIGS, triton_na._DQ_CONFIGS, triton_na._DKDV_CONFIGS):
        for candidate in configs[ndim]:
            shape = (candidate.query_tile, candidate.key_tile)
            if shape not in shapes:  # candidates may differ in warps or stages only
                shapes.append(shape)
    return shapes


def _worker(names: list[str]) -> None:
    from domainvit.kernels.backends import triton_na

    results = {}
    for name in names:
        if name.startswith("gpu_tiles_"):
            ndim = int(name.removeprefix("gpu_tiles_"))
            for shape in _gpu_tile_shapes(ndim):
                triton_na._INTERPRETER_CONFIG[ndim] = shape
                results[f"{name}{shape}"] = _run_case(GPU_TILE_CASES[ndim])
        else:
            results[name] = _run_case(CASES[name])
    os.environ["DOMAINVIT_DETERMINISTIC"] = "1"
    if DETERMINISTIC_CASE in names:
        results["deterministic"] = [_run_case(CASES[DETERMINISTIC_CASE]) for _ in range(2)]
    # every case above ran one fused forward and one backward
    runs = sum(len(r) if isinstance(r, list) else 1 for r in results.values())
    results[f"launches_{os.getpid()}"] = {"runs": runs, **triton_na.launch_counts()}
    print(json.dumps(results))


@pytest.fixture(scope="module")
def results() -> dict:
    names = list(CASES) + [f"gpu_tiles_{ndim}" for ndim in GPU_TILE_CASES]
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": str(ROOT),
        "DOMAINVIT_DETERMINISTIC": "0",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, *names[index::WORKERS]],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(WORKERS)
    ]
    merged = {}
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-4000:]
        merged.update(json.loads(stdout.strip().splitlines()[-1]))
    return merged


def _assert_matches(result: dict, case: dict) -> None:
    expected = {"output", "grad_query", "grad_key", "grad_value"}
    if case.get("rpb"):
        expected.add("grad_rpb")
    if case.get("extra"):
        expected |= {"grad_additional_keys", "grad_additional_values"}
    assert expected <= set(result)
    for quantity in expected:
        error, magnitude = result[quantity]
        assert magnitude > 0, quantity
        assert error <= TOLERANCE * max(1.0, magnitude), (quantity, error, magnitude)


@pytest.mark.parametrize("name", list(CASES))
def test_output_and_every_gradient_match_reference(results: dict, name: str) -> None:
    _assert_matches(results[name], CASES[name])


@pytest.mark.parametrize("ndim", list(GPU_TILE_CASES))
def test_every_gpu_tile_shape_matches_reference(results: dict, ndim: int) -> None:
    runs = {name: r for name, r in results.items() if name.startswith(f"gpu_tiles_{ndim}(")}
    assert len(runs) >= 3
    for name, result in runs.items():
        try:
            _assert_matches(result, GPU_TILE_CASES[ndim])
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from error


def test_launch_counters_count_every_fused_forward_and_backward(results: dict) -> None:
    counts = [r for name, r in results.items() if name.startswith("launches_")]
    assert len(counts) == WORKERS
    for count in counts:
        assert count["forward"] == count["backward"] == count["runs"] > 0


def test_deterministic_rpb_gradient_is_reproducible_and_correct(results: dict) -> None:
    first, second = results["deterministic"]
    assert first["rpb_grad_values"] == second["rpb_grad_values"]
    error, magnitude = first["grad_rpb"]
    assert error <= TOLERANCE * max(1.0, magnitude)
    atomic = results[DETERMINISTIC_CASE]["rpb_grad_values"]
    assert max(abs(a - b) for a, b in zip(first["rpb_grad_values"], atomic, strict=True)) < 1e-4


if __name__ == "__main__":
    _worker(sys.argv[1:])
