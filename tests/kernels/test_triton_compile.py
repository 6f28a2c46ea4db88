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
):
    fn, configs = KERNELS[kernel]
    tm, tn, warps, stages, _ = configs[ndim][0]
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


@pytest.mark.parametrize("bucket", [0, 1])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_autotuning_tries_only_the_candidates_of_the_calls_rank_and_bucket(
    ndim: int, bucket: int
) -> None:
    for tuned, table in [
        (triton_na._forward, triton_na._FORWARD_CONFIGS),
        (triton_na._backward_dq, triton_na._DQ_CONFIGS),
        (triton_na._backward_dkdv, triton_na._DKDV_CONFIGS),
    ]:
        kept = tuned.early_config_prune(tuned.configs, {}, NDIM=ndim, KEY_BUCKET=bucket)
        expected = [(tm, tn) for tm, tn, _, _, buckets in table[ndim] if bucket in buckets]
        shapes = [
            tuple(tuple(c.kwargs[f"{tile}{a}"] for a in range(3)) for tile in ("TM", "TN"))
            for c in kept
        ]
        assert shapes == expected and 1 <= len(kept) <= 3


def test_autotuning_zeroes_every_buffer_the_dq_kernel_accumulates_into() -> None:
    # Autotuning runs each candidate on the same output buffers; d(rpb) accumulates and
    # the per-program partial rows of d(additional k/v) depend on the tile shape, so all
    # must be zeroed again before the chosen configuration runs (a GPU run once summed
    # stale rows of another candidate into d(additional k/v)).
    assert set(triton_na._backward_dq.reset_to_zero) == {"DRPB", "DEXTRA_K", "DEXTRA_V"}
