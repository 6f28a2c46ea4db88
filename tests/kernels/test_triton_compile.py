"""Ahead-of-time builds of the fused Triton kernels for sm_80 and sm_90, with no GPU.

``triton.compile`` on an ``ASTSource`` runs the whole pipeline (Triton IR, PTX, and a
cubin through the ptxas that ships inside the triton package), so every kernel variant
the GPU run will launch is known to build. The sm_90 PTX must use tensor cores (``wgmma``
or ``mma``), not only scalar FMAs: otherwise the kernels would be correct but an order of
magnitude slow. Tile shapes are the first autotuning candidate of each rank.
"""

from __future__ import annotations

import pytest
import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from domainvit.kernels.backends import triton_na
from domainvit.kernels.functional import _check_call

FLOAT_ARGS = {"qk_scale", "scale"}
FP32_POINTERS = {"LSE", "DELTA", "DRPB", "DEXTRA_K", "DEXTRA_V"}
TENSOR_POINTERS = {"Q", "K", "V", "RPB", "EK", "EV", "OUT", "DO", "DQ", "DK", "DV"}
# The launcher marks these 16-divisible when they are (pointers from torch, head_dim a
# multiple of 16), which is what enables vectorised loads; the builds here do the same.
DIVISIBLE = {"HEAD_DIM"}

KERNELS = {
    "forward": (triton_na._forward_kernel, triton_na._FORWARD_CONFIGS),
    "dq": (triton_na._backward_dq_kernel, triton_na._DQ_CONFIGS),
    "dkdv": (triton_na._backward_dkdv_kernel, triton_na._DKDV_CONFIGS),
}


def build(
    kernel: str,
    dtype: str,
    head_dim: int,
    ndim: int = 2,
    capability: int = 90,
    rpb: bool = False,
    extra: bool = False,
    deterministic: bool = False,
    private_rpb: bool = True,
    precision: str = "tf32",
    candidate=None,
):
    fn, configs = KERNELS[kernel]
    candidate = candidate or configs[ndim][0]
    tm, tn = candidate.query_tile, candidate.key_tile
    warps, stages = candidate.warps, candidate.stages
    constexprs = {
        **{f"C{axis}": axis == 2 for axis in range(3)},
        **{f"TM{axis}": tm[axis] for axis in range(3)},
        **{f"TN{axis}": tn[axis] for axis in range(3)},
        "HAS_RPB": rpb,
        "D_PAD": head_dim,
        "DOT_PRECISION": precision,
    }
    if kernel != "dkdv":
        constexprs["HAS_EXTRA"] = extra
    if kernel == "dq":
        constexprs["DETERMINISTIC"] = deterministic
        constexprs["PRIVATE_RPB"] = private_rpb
    signature = {}
    for name in fn.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in FLOAT_ARGS:
            signature[name] = "fp32"
        elif name == "QUERY_RANGE":
            signature[name] = "*i32"
        elif name in FP32_POINTERS:
            signature[name] = "*fp32"
        elif name in TENSOR_POINTERS:
            signature[name] = f"*{dtype}"
        else:
            signature[name] = "i32"
    attrs = {
        (fn.arg_names.index(name),): [["tt.divisibility", 16]]
        for name, kind in signature.items()
        if kind.startswith("*") or name in DIVISIBLE
    }
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(
        source,
        target=GPUTarget("cuda", capability, 32),
        options={"num_warps": warps, "num_stages": stages},
    )


def assert_tensor_cores(compiled) -> None:
    ptx = compiled.asm["ptx"]
    assert "mma" in ptx, "no tensor-core instruction (mma/wgmma) in the PTX"
    assert compiled.asm["cubin"], "ptxas produced no cubin"


@pytest.mark.parametrize("head_dim", [32, 64, 128])
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_forward_builds_with_tensor_cores_for_sm90(dtype: str, head_dim: int) -> None:
    assert_tensor_cores(build("forward", dtype, head_dim))


@pytest.mark.parametrize("head_dim", [32, 64, 128])
@pytest.mark.parametrize("kernel", ["dq", "dkdv"])
def test_backward_builds_with_tensor_cores_for_sm90(kernel: str, head_dim: int) -> None:
    assert_tensor_cores(build(kernel, "bf16", head_dim))


@pytest.mark.parametrize("kernel", ["dq", "dkdv"])
def test_backward_builds_in_fp16_with_rpb(kernel: str) -> None:
    assert_tensor_cores(build(kernel, "fp16", 64, rpb=True))


@pytest.mark.parametrize("kernel", ["forward", "dq", "dkdv"])
def test_kernels_build_for_sm80(kernel: str) -> None:
    compiled = build(kernel, "bf16", 64, capability=80, rpb=True)
    assert "mma.sync" in compiled.asm["ptx"]


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("kernel", ["forward", "dkdv"])
def test_1d_and_3d_tilings_build(kernel: str, ndim: int) -> None:
    assert_tensor_cores(build(kernel, "bf16", 64, ndim=ndim))


def test_dq_with_bias_gradient_shared_across_programs_builds() -> None:
    assert_tensor_cores(build("dq", "bf16", 64, rpb=True, private_rpb=False))


def test_dq_with_extra_tokens_and_deterministic_bias_gradient_builds() -> None:
    assert_tensor_cores(build("dq", "bf16", 64, rpb=True, extra=True, deterministic=True))


def test_fp32_forward_builds_with_ieee_dots() -> None:
    assert build("forward", "fp32", 32, precision="ieee").asm["cubin"]


def _call(device: str = "cpu", head_dim: int = 16, dtype=torch.float32):
    q = torch.zeros(1, 6, 6, 2, head_dim, dtype=dtype, device=device)
    return _check_call("na2d", 2, q, q, q, 3, 1, 1, False, None, None, None, None, None)


def test_cpu_tensors_are_not_supported_outside_the_interpreter() -> None:
    assert not triton_na.INTERPRET
    assert not triton_na.triton_supports(_call())


@pytest.mark.parametrize("d_pad", [16, 32, 64, 128])
@pytest.mark.parametrize("bucket", [0, 1, 2])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_autotuning_tries_only_the_candidates_of_the_calls_rank_bucket_and_head_dim(
    ndim: int, bucket: int, d_pad: int
) -> None:
    for tuned, table in [
        (triton_na._forward, triton_na._FORWARD_CONFIGS),
        (triton_na._backward_dq, triton_na._DQ_CONFIGS),
        (triton_na._backward_dkdv, triton_na._DKDV_CONFIGS),
    ]:
        kept = tuned.early_config_prune(
            tuned.configs, {}, NDIM=ndim, KEY_BUCKET=bucket, D_PAD=d_pad
        )
        expected = [
            (c.query_tile, c.key_tile, c.warps, c.stages)
            for c in table[ndim]
            if bucket in c.buckets and d_pad <= c.max_d_pad
        ]
        found = [
            (
                *(tuple(c.kwargs[f"{tile}{a}"] for a in range(3)) for tile in ("TM", "TN")),
                c.num_warps,
                c.num_stages,
            )
            for c in kept
        ]
        assert found == expected
        # Small 2D windows at small head_dim try the window-sized tiles too; otherwise
        # at most three candidates keep tuning to seconds.
        assert 1 <= len(kept) <= (6 if (ndim, bucket) == (2, 0) and d_pad <= 64 else 3)


@pytest.mark.parametrize("kernel", ["dq", "dkdv"])
def test_small_window_tiles_are_tried_for_2d_small_windows_at_small_head_dim(kernel) -> None:
    table = KERNELS[kernel][1]
    small = triton_na._candidates(table, 2, 0, 32)
    assert len(small) > len(triton_na._candidates(table, 2, 1, 32))
    assert triton_na._candidates(table, 2, 0, 128) == triton_na._candidates(table, 2, 1, 128)
    # a 2x8 query tile for dQ, a 2x8 key tile for dK/dV
    tile = "query_tile" if kernel == "dq" else "key_tile"
    assert any(getattr(c, tile) == (1, 2, 8) for c in small)


def test_kernel_size_and_problem_size_buckets() -> None:
    assert [triton_na._key_bucket((k,)) for k in (3, 7, 8, 9, 16, 17, 80)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    assert triton_na._key_bucket((3, 9)) == 1
    limits = triton_na._SIZE_BUCKET_LIMITS
    rows = [1, limits[0] - 1, limits[0], limits[1] - 1, limits[1]]
    assert [triton_na._size_bucket(r) for r in rows] == [0, 0, 1, 1, 2]
    # case (b) of the GPU benchmark (batch 64, 3 heads, 56x56) and a small test call
    assert triton_na._size_bucket(64 * 3 * 56 * 56) != triton_na._size_bucket(2 * 3 * 23 * 30)


@pytest.mark.parametrize("tuned", ["_forward", "_backward_dq", "_backward_dkdv"])
def test_tuning_is_keyed_on_problem_size_and_rpb(tuned: str) -> None:
    # A tiny call (a correctness check) must not pick the tiles of a large one, and the
    # bias gradient changes which tiles are fastest.
    autotuner = getattr(triton_na, tuned)
    assert {"NDIM", "D_PAD", "KEY_BUCKET", "SIZE_BUCKET", "HAS_RPB"} <= set(autotuner.keys)
    # keys that only select tuning results are not specialised on (no extra binaries)
    assert set(triton_na._TUNING_KEYS) <= {
        p.name for p in autotuner.fn.params if p.do_not_specialize
    }


@pytest.mark.parametrize("kernel", ["dq", "dkdv"])
def test_every_small_window_candidate_builds_for_sm90_with_rpb(kernel: str) -> None:
    # What the GPU builds for a 7x7 window at head_dim 32 with a bias (the benchmark's
    # case b): every candidate it may try.
    for candidate in triton_na._candidates(KERNELS[kernel][1], 2, 0, 32):
        assert_tensor_cores(build(kernel, "bf16", 32, rpb=True, candidate=candidate))


def test_autotuning_zeroes_every_buffer_the_dq_kernel_accumulates_into() -> None:
    # Autotuning runs each candidate on the same output buffers; d(rpb) accumulates and
    # the per-program partial rows of d(additional k/v) depend on the tile shape, so all
    # must be zeroed again before the chosen configuration runs (a GPU run once summed
    # stale rows of another candidate into d(additional k/v)).
    assert set(triton_na._backward_dq.reset_to_zero) == {"DRPB", "DEXTRA_K", "DEXTRA_V"}
