"""GPU check and benchmark of the fused Triton neighbourhood-attention backend.

``python benchmarks/bench_na_gpu.py --out DIR`` first checks correctness on the GPU (the
``triton`` and ``torch`` backends against the dense ``reference`` in float32, forward
and every gradient, on small cases in bf16/fp16, plus the deterministic rpb gradient)
and exits non-zero if the Triton backend is wrong. It then times three cases, forward
and forward+backward, for: our Triton backend, our ``torch`` backend, dense SDPA over
all tokens (flash/cuDNN, no mask: the cost neighbourhood attention avoids) and
``flex_attention`` compiled with a block mask expressing the same clamped window.

Effective TFLOP/s counts only the neighbourhood's work, ``4 * B * H * N * window * D``
for the forward and 3.5 times that for forward+backward (the backward is 2.5 times the
forward, as FlashAttention counts it), for every method alike. Results go to
``DIR/bench_na_gpu.json`` and ``DIR/bench_na_gpu.md``. Every case and method runs in its
own try/except, so an OOM or a compile error is recorded rather than fatal, and methods
that would overrun the time budget are skipped (and recorded as skipped).

For the Triton backend it also records, per case, the backward's effective throughput
as a fraction of the forward's, the tile configuration autotuning chose and the time of
every candidate it tried, a profile of case (b)'s forward+backward by kernel, and, after
timing, a check of case (b) at its full size (with the tiles tuned for it) against the
dense reference. ``--warm NAME`` runs one check or case once and exits: started in
parallel, such processes compile Triton's kernels (cached on disk) and flex_attention's
(Inductor's cache) on every core, and ``--wait-pids`` makes the main run wait for them
after its checks, so that compilation stays out of the timed part.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
import triton.testing

from domainvit.kernels.backends import triton_na
from domainvit.kernels.backends.reference import reference_attention
from domainvit.kernels.backends.tiled import tiled_attention
from domainvit.kernels.backends.triton_na import triton_attention, triton_supports
from domainvit.kernels.call import AttentionCall
from domainvit.kernels.functional import _check_call

FORWARD_BACKWARD_FLOPS = 3.5
START = time.time()


def log(message: str) -> None:
    print(f"[{time.time() - START:6.1f}s] {message}", flush=True)


def make_call(spatial, kernel, heads, head_dim, batch=1, dtype=torch.bfloat16, kv_heads=None,
              stride=1, dilation=1, is_causal=False, rpb=False, extra=0, seed=0,
              requires_grad=True) -> AttentionCall:
    gen = torch.Generator(device="cuda").manual_seed(seed)
    ndim = len(spatial)
    kernels = kernel if isinstance(kernel, tuple) else (kernel,) * ndim

    def rand(*shape, scale=1.0):
        tensor = torch.randn(*shape, generator=gen, device="cuda", dtype=dtype) * scale
        return tensor.requires_grad_(requires_grad)

    kv_heads = kv_heads or heads
    q = rand(batch, *spatial, heads, head_dim)
    k = rand(batch, *spatial, kv_heads, head_dim)
    v = rand(batch, *spatial, kv_heads, head_dim)
    bias = rand(heads, *(2 * x - 1 for x in kernels), scale=0.5) if rpb else None
    extra_k = rand(batch, extra, kv_heads, head_dim) if extra else None
    extra_v = rand(batch, extra, kv_heads, head_dim) if extra else None
    return _check_call(f"na{ndim}d", ndim, q, k, v, kernel, stride, dilation, is_causal, None,
                       bias, extra_k, extra_v, None)


def call_inputs(call: AttentionCall) -> list[torch.Tensor]:
    tensors = [call.query, call.key, call.value, call.rpb, call.additional_keys,
               call.additional_values]
    return [t for t in tensors if t is not None]


def as_float32(call: AttentionCall) -> AttentionCall:
    def convert(t):
        return None if t is None else t.detach().float().requires_grad_(True)

    return AttentionCall(
        convert(call.query), convert(call.key), convert(call.value), call.kernel_size,
        call.stride, call.dilation, call.is_causal, call.scale, convert(call.rpb),
        convert(call.additional_keys), convert(call.additional_values),
    )


# ----------------------------------------------------------------------------------------
# Correctness
# ----------------------------------------------------------------------------------------

# Share autotuning keys (rank, padded head_dim, kernel-size bucket, dtype) with the
# benchmark cases where possible, so the checks also warm their tuning.
CHECKS = [
    ("2d large window d128 bf16", dict(spatial=(40, 37), kernel=(21, 19), heads=2, head_dim=128)),
    ("2d k7 rpb dilation stride d32 bf16", dict(
        spatial=(23, 30), kernel=7, heads=3, head_dim=32, batch=2, rpb=True, dilation=(2, 1),
        stride=(1, 2))),
    ("3d causal rpb extra gqa d64 bf16", dict(
        spatial=(10, 9, 12), kernel=(3, 5, 3), heads=4, kv_heads=2, head_dim=64, rpb=True,
        extra=5, is_causal=(True, False, False))),
    ("1d dilation stride extra gqa d64 fp16", dict(
        spatial=(300,), kernel=17, heads=4, kv_heads=1, head_dim=64, dtype=torch.float16,
        dilation=2, stride=3, extra=4)),
]
TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 1e-2}


def relative_errors(run: Callable, call: AttentionCall, reference: dict) -> dict:
    out = run(call)
    upstream = torch.randn(out.shape, generator=torch.Generator(device="cuda").manual_seed(1),
                           device="cuda", dtype=out.dtype)
    grads = torch.autograd.grad(out, call_inputs(call), upstream)
    errors = {}
    for name, value in zip(["output", *reference["names"]], [out, *grads], strict=True):
        expected = reference[name]
        errors[name] = ((value.float() - expected).abs().max() / expected.abs().max()).item()
    return errors


def reference_results(call: AttentionCall) -> dict:
    exact = as_float32(call)
    out = reference_attention(exact)
    upstream = torch.randn(out.shape, generator=torch.Generator(device="cuda").manual_seed(1),
                           device="cuda", dtype=call.query.dtype).float()
    inputs = call_inputs(exact)
    names = ["grad_query", "grad_key", "grad_value"]
    names += ["grad_rpb"] if call.rpb is not None else []
    if call.additional_keys is not None:
        names += ["grad_additional_keys", "grad_additional_values"]
    grads = torch.autograd.grad(out, inputs, upstream)
    return {"output": out.detach(), "names": names, **dict(zip(names, grads, strict=True))}


def check_correctness() -> tuple[bool, list[dict]]:
    records, ok = [], True
    for name, spec in CHECKS:
        record = {"check": name}
        try:
            call = make_call(**spec)
            assert triton_supports(call), "triton_supports() is False for a CUDA call"
            reference = reference_results(call)
            record["triton"] = relative_errors(triton_attention, call, reference)
            record["torch"] = relative_errors(tiled_attention, call, reference)
            tolerance = TOLERANCE[call.query.dtype]
            record["ok"] = all(e <= tolerance for e in record["triton"].values())
        except Exception as error:  # noqa: BLE001 (recorded and reported)
            record.update(ok=False, error=f"{type(error).__name__}: {error}")
        ok &= record["ok"]
        log(f"check {name}: {'ok' if record['ok'] else 'FAILED'} "
            f"triton {fmt_errors(record.get('triton'))} torch {fmt_errors(record.get('torch'))}"
            + (f" error {record['error']}" if "error" in record else ""))
        records.append(record)

    record = {"check": "deterministic rpb gradient (DOMAINVIT_DETERMINISTIC=1)"}
    try:
        os.environ["DOMAINVIT_DETERMINISTIC"] = "1"
        call = make_call(**CHECKS[1][1])
        reference = reference_results(call)
        runs = []
        for _ in range(2):
            out = triton_attention(call)
            runs.append(torch.autograd.grad(out, [call.rpb], torch.ones_like(out))[0])
        record["errors"] = relative_errors(triton_attention, call, reference)
        record["bitwise_equal"] = bool(torch.equal(runs[0], runs[1]))
        record["ok"] = record["bitwise_equal"] and all(
            e <= TOLERANCE[torch.bfloat16] for e in record["errors"].values()
        )
    except Exception as error:  # noqa: BLE001
        record.update(ok=False, error=f"{type(error).__name__}: {error}")
    finally:
        os.environ.pop("DOMAINVIT_DETERMINISTIC", None)
    ok &= record["ok"]
    log(f"check deterministic rpb: {'ok' if record['ok'] else 'FAILED'} {record}")
    records.append(record)
    return ok, records


def fmt_errors(errors: dict | None) -> str:
    if not errors:
        return "-"
    return "{" + ", ".join(f"{k.removeprefix('grad_')}: {v:.1e}" for k, v in errors.items()) + "}"


# ----------------------------------------------------------------------------------------
# Benchmarks
# ----------------------------------------------------------------------------------------

CASES = {
    "a_2d_256x256_h24_d128_w80": dict(spatial=(256, 256), kernel=80, heads=24, head_dim=128),
    "b_2d_56x56_b64_h3_d32_w7_rpb": dict(
        spatial=(56, 56), kernel=7, heads=3, head_dim=32, batch=64, rpb=True),
    "c_3d_32x32x32_h8_d64_w7": dict(spatial=(32, 32, 32), kernel=7, heads=8, head_dim=64),
}
# Timed with the triton backend only, to tell what the bias costs in case (b).
DIAGNOSTIC_CASES = {
    "b_without_rpb": dict(spatial=(56, 56), kernel=7, heads=3, head_dim=32, batch=64),
}
PROFILED_CASE = "b_2d_56x56_b64_h3_d32_w7_rpb"


def time_ms(fn: Callable[[], object], grad_to_none: list[torch.Tensor]) -> float:
    """Median milliseconds of ``fn`` (its first call, which compiles/tunes, excluded)."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    once = start.elapsed_time(end)
    if once > 500:  # very slow methods: one timed call is enough
        return once
    if once > 50:  # slow methods: a few plain repeats instead of do_bench's many
        times = [once]
        for _ in range(2):
            for t in grad_to_none:
                t.grad = None
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return sorted(times)[1]
    return triton.testing.do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none,
                                   return_mode="median")


def window_mask_mod(call: AttentionCall):
    """A flex_attention mask_mod for clamped windows (stride 1, dilation 1, not causal)."""
    spatial = call.spatial_shape
    strides = [math.prod(spatial[axis + 1:]) for axis in range(len(spatial))]

    def coords(index):
        return [(index // stride) % length for stride, length in zip(strides, spatial, strict=True)]

    def mask_mod(b, h, q_idx, kv_idx):
        allowed = None
        for qc, kc, length, k in zip(coords(q_idx), coords(kv_idx), spatial, call.kernel_size,
                                     strict=True):
            left, right = k // 2, k // 2 + k % 2 - 1
            center = torch.clamp(qc, left, length - 1 - right)
            inside = (kc >= center - left) & (kc <= center + right)
            allowed = inside if allowed is None else allowed & inside
        return allowed

    return mask_mod, coords


def make_methods(call: AttentionCall) -> dict[str, Callable[[], Callable[[], torch.Tensor]]]:
    """Per method, a builder returning the zero-argument forward to time."""
    batch, head_dim = call.query.shape[0], call.query.shape[-1]

    def tokens_major(t):  # [B, *spatial, H, D] -> [B, H, N, D] (a view)
        return t.reshape(batch, -1, t.shape[-2], head_dim).transpose(1, 2)

    def sdpa():
        from torch.nn.attention import SDPBackend, sdpa_kernel

        q, k, v = (tokens_major(t) for t in (call.query, call.key, call.value))

        def run():
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
                return F.scaled_dot_product_attention(q, k, v, scale=call.scale)

        return run

    def flex():
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        mask_mod, coords = window_mask_mod(call)
        tokens = math.prod(call.spatial_shape)
        try:
            block_mask = create_block_mask(mask_mod, None, None, tokens, tokens, device="cuda",
                                           _compile=True)
        except TypeError:
            block_mask = create_block_mask(mask_mod, None, None, tokens, tokens, device="cuda")
        score_mod = None
        if call.rpb is not None:
            # Bias as a constant (flex's gradient for captured tensors is not compared).
            table = call.rpb.detach()

            def score_mod(score, b, h, q_idx, kv_idx):
                # Clamped: flex also scores the masked pairs of partial blocks.
                index = [torch.clamp(kc - qc + k - 1, 0, 2 * k - 2) for qc, kc, k in
                         zip(coords(q_idx), coords(kv_idx), call.kernel_size, strict=True)]
                return score + table[(h, *index)]

        compiled = torch.compile(flex_attention, dynamic=False)
        q, k, v = (tokens_major(t) for t in (call.query, call.key, call.value))

        def run():
            return compiled(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=call.scale)

        return run

    return {
        "triton": lambda: lambda: triton_attention(call),
        "torch": lambda: lambda: tiled_attention(call),
        "sdpa_dense": sdpa,
        "flex_attention": flex,
    }


def measure(call: AttentionCall, method: str) -> dict:
    """Forward and forward+backward times and effective TFLOP/s of one method."""
    flops = 4 * call.query.shape[0] * call.heads * math.prod(call.spatial_shape) \
        * math.prod(call.kernel_size) * call.query.shape[-1]
    forward = make_methods(call)[method]()
    inputs = call_inputs(call)
    upstream = torch.randn_like(call.query)

    def forward_backward():
        out = forward()
        if out.shape != upstream.shape:  # token-major methods: back to heads-last
            out = out.transpose(1, 2).reshape(upstream.shape)
        out.backward(upstream)

    record = {}
    with torch.no_grad():
        record["forward_ms"] = time_ms(forward, [])
    record["forward_tflops"] = flops / record["forward_ms"] / 1e9
    record["forward_backward_ms"] = time_ms(forward_backward, inputs)
    record["forward_backward_tflops"] = (
        FORWARD_BACKWARD_FLOPS * flops / record["forward_backward_ms"] / 1e9
    )
    backward_ms = record["forward_backward_ms"] - record["forward_ms"]
    if backward_ms > 0:
        record["backward_ms"] = backward_ms
        record["backward_tflops"] = 2.5 * flops / backward_ms / 1e9
        # the backward's effective throughput as a fraction of the forward's
        record["backward_to_forward"] = record["backward_tflops"] / record["forward_tflops"]
    for t in inputs:
        t.grad = None
    return record


TUNED = {"forward": "_forward", "dq": "_backward_dq", "dkdv": "_backward_dkdv"}


def tuning_state() -> dict[str, int]:
    return {name: len(getattr(triton_na, attr).cache) for name, attr in TUNED.items()}


def tuning_record(before: dict[str, int]) -> dict:
    """The configuration chosen for, and the median time of every candidate tried for,
    each kernel tuned since ``before`` (one new key per kernel at most: one case)."""
    try:
        return _tuning_record(before)
    except Exception as error:  # noqa: BLE001 (Triton's internals may differ)
        return {"error": f"{type(error).__name__}: {error}"}


def _tuning_record(before: dict[str, int]) -> dict:
    record = {}
    for name, attr in TUNED.items():
        tuner = getattr(triton_na, attr)
        if len(tuner.cache) == before[name]:
            continue
        key, config = list(tuner.cache.items())[-1]
        timings = getattr(tuner, "configs_timings", None) or {}
        record[name] = {
            "key": [str(k) for k in key],
            "chosen": str(config),
            "candidates_ms": {str(c): (t[0] if isinstance(t, (list, tuple)) else t)
                              for c, t in timings.items()},
        }
    return record


def profile_backward(call: AttentionCall, repeats: int = 5) -> list[dict]:
    """GPU time per kernel (and per host-side op's kernels) of the triton forward+backward."""
    from torch.profiler import ProfilerActivity, profile

    inputs = call_inputs(call)
    upstream = torch.randn_like(call.query)
    for _ in range(2):
        triton_attention(call).backward(upstream)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            for t in inputs:
                t.grad = None
            triton_attention(call).backward(upstream)
        torch.cuda.synchronize()
    rows = []
    for event in prof.key_averages():
        device_us = getattr(event, "device_time_total", None)
        if device_us is None:
            device_us = getattr(event, "cuda_time_total", 0)
        if device_us > 0 and event.count:
            rows.append({"kernel": event.key[:120], "calls_per_pass": event.count / repeats,
                         "ms_per_pass": device_us / 1e3 / repeats})
    rows.sort(key=lambda r: -r["ms_per_pass"])
    for t in inputs:
        t.grad = None
    return rows[:15]


def chunked_reference(call: AttentionCall, upstream: torch.Tensor, chunk: int = 8) -> dict:
    """The dense reference in float32, batch chunk by batch chunk (its memory is quadratic
    in tokens): output and gradients of every input."""
    names = ["output", "grad_query", "grad_key", "grad_value"]
    parts: dict[str, list] = {n: [] for n in names}
    grad_rpb = None
    for start in range(0, call.query.shape[0], chunk):
        def part(t, start=start):
            return t[start:start + chunk].detach().float().requires_grad_(True)

        rpb = None if call.rpb is None else call.rpb.detach().float().requires_grad_(True)
        sub = AttentionCall(part(call.query), part(call.key), part(call.value),
                            call.kernel_size, call.stride, call.dilation, call.is_causal,
                            call.scale, rpb)
        out = reference_attention(sub)
        tensors = [sub.query, sub.key, sub.value] + ([rpb] if rpb is not None else [])
        grads = torch.autograd.grad(out, tensors, upstream[start:start + chunk].float())
        for name, value in zip(names, [out, *grads[:3]], strict=True):
            parts[name].append(value.detach())
        if rpb is not None:
            grad_rpb = grads[3] if grad_rpb is None else grad_rpb + grads[3]
        del out, grads
    result = {n: torch.cat(v) for n, v in parts.items()}
    if grad_rpb is not None:
        result["grad_rpb"] = grad_rpb
    return result


def check_at_size(call: AttentionCall) -> dict:
    """The triton backend with the tiles tuned for this call against the reference."""
    record = {"check": "case b at full size, tiles tuned for it, bf16"}
    try:
        device = call.query.device
        upstream = torch.randn(call.query.shape, generator=torch.Generator(device=device)
                               .manual_seed(2), device=device, dtype=call.query.dtype)
        expected = chunked_reference(call, upstream)
        out = triton_attention(call)
        inputs = [call.query, call.key, call.value] + ([call.rpb] if call.rpb is not None
                                                       else [])
        grads = torch.autograd.grad(out, inputs, upstream)
        names = ["output", "grad_query", "grad_key", "grad_value", "grad_rpb"]
        record["triton"] = {
            name: ((value.float() - expected[name]).abs().max()
                   / expected[name].abs().max()).item()
            for name, value in zip(names, [out, *grads], strict=False)
        }
        tolerance = TOLERANCE.get(call.query.dtype, 1e-4)
        record["ok"] = all(e <= tolerance for e in record["triton"].values())
    except Exception as error:  # noqa: BLE001 (recorded and reported)
        record.update(ok=False, error=f"{type(error).__name__}: {str(error)[:500]}")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return record


def benchmark(budget_s: float) -> list[dict]:
    records = []
    calls = {}
    # Methods in order of priority across cases, so that a tight budget drops the
    # slowest-to-compile comparison (flex) last.
    for method in ("triton", "torch", "sdpa_dense", "flex_attention"):
        for case, spec in CASES.items():
            record = {"case": case, "method": method}
            records.append(record)
            if time.time() - START > budget_s:
                record["error"] = "skipped: time budget exhausted"
                log(f"{case} {method}: skipped (budget)")
                continue
            try:
                if case not in calls:
                    calls[case] = make_call(**spec)
                before = tuning_state()
                record.update(measure(calls[case], method))
                if method == "triton":
                    record["tuning"] = tuning_record(before)
            except Exception as error:  # noqa: BLE001 (recorded, the run goes on)
                record["error"] = f"{type(error).__name__}: {str(error)[:500]}"
                torch.cuda.empty_cache()
            log(f"{case} {method}: " + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in record.items() if k not in ("case", "method", "tuning")))
    return records, calls


def diagnostics(budget_s: float, calls: dict) -> dict:
    """Case (b) without its bias (triton), a profile of case (b) by kernel, and the check of
    case (b) at full size."""
    result: dict = {"cases": []}
    for case, spec in DIAGNOSTIC_CASES.items():
        record = {"case": case, "method": "triton"}
        if time.time() - START > budget_s:
            record["error"] = "skipped: time budget exhausted"
        else:
            try:
                before = tuning_state()
                record.update(measure(make_call(**spec), "triton"))
                record["tuning"] = tuning_record(before)
            except Exception as error:  # noqa: BLE001
                record["error"] = f"{type(error).__name__}: {str(error)[:500]}"
        log(f"diagnostic {case}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in record.items() if isinstance(v, float)))
        result["cases"].append(record)
    call = calls.get(PROFILED_CASE)
    if call is not None:
        try:
            result["profile_" + PROFILED_CASE] = profile_backward(call)
            for row in result["profile_" + PROFILED_CASE][:8]:
                log(f"profile {row['ms_per_pass']:.3f} ms x{row['calls_per_pass']:.0f} "
                    f"{row['kernel']}")
        except Exception as error:  # noqa: BLE001
            result["profile_error"] = f"{type(error).__name__}: {str(error)[:500]}"
        result["check_at_size"] = check_at_size(call)
        log(f"check at size: {result['check_at_size']}")
    return result


def warm(name: str) -> int:
    """Run one check or case once (compiles and tunes; nothing is recorded)."""
    specs = {**dict(CHECKS), **CASES, **DIAGNOSTIC_CASES}
    if name == "deterministic":
        os.environ["DOMAINVIT_DETERMINISTIC"] = "1"
        name = CHECKS[1][0]
    call = make_call(**specs[name])
    out = triton_attention(call)
    out.backward(torch.randn_like(out))
    if name in CASES:
        with torch.no_grad():
            triton_attention(call)
        for method in ("flex_attention",):
            try:
                forward = make_methods(call)[method]()
                with torch.no_grad():
                    forward()
                out = forward()
                out.backward(torch.randn_like(out))
            except Exception as error:  # noqa: BLE001 (the main run records it)
                log(f"warm {name} {method}: {type(error).__name__}: {str(error)[:200]}")
    torch.cuda.synchronize()
    log(f"warm {name}: done")
    return 0


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # an exited child its parent has not reaped yet


def wait_for(pids: list[int], limit_s: float) -> None:
    start = time.time()
    while any(_running(pid) for pid in pids) and time.time() - start < limit_s:
        time.sleep(0.5)
    log(f"waited {time.time() - start:.1f} s for the warm-up processes")


def markdown(meta: dict, records: list[dict], diagnostics: dict | None = None) -> str:
    lines = [
        f"# Neighbourhood attention on {meta['device']}",
        "",
        f"torch {meta['torch']}, triton {meta['triton']}, python {meta['python']}. "
        "Effective TFLOP/s = 4*B*H*N*window*D / time (forward+backward: x3.5; backward "
        "alone: x2.5 over the difference of the two times).",
        "",
        "| case | method | fwd ms | fwd TFLOP/s | fwd+bwd ms | fwd+bwd TFLOP/s "
        "| bwd TFLOP/s | note |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(record, key):
        value = record.get(key)
        return "-" if value is None else f"{value:.2f}"

    for r in records:
        lines.append(
            f"| {r['case']} | {r['method']} | {cell(r, 'forward_ms')} "
            f"| {cell(r, 'forward_tflops')} | {cell(r, 'forward_backward_ms')} "
            f"| {cell(r, 'forward_backward_tflops')} | {cell(r, 'backward_tflops')} "
            f"| {r.get('error', '')} |"
        )
    lines += ["", "Backward / forward effective throughput of triton (bwd TFLOP/s over fwd "
              "TFLOP/s):", ""]
    for r in records:
        if r["method"] == "triton" and r.get("backward_to_forward"):
            lines.append(f"- {r['case']}: {100 * r['backward_to_forward']:.1f}% (backward "
                         f"{r['backward_ms']:.3f} ms, forward {r['forward_ms']:.3f} ms)")
    lines += ["", "Speed-ups of triton (time ratio, higher is better):", ""]
    by_key = {(r["case"], r["method"]): r for r in records}
    for case in CASES:
        ours = by_key.get((case, "triton"), {})
        parts = []
        for other in ("torch", "sdpa_dense", "flex_attention"):
            theirs = by_key.get((case, other), {})
            for mode in ("forward_ms", "forward_backward_ms"):
                if ours.get(mode) and theirs.get(mode):
                    parts.append(f"vs {other} {mode[:-3]} {theirs[mode] / ours[mode]:.2f}x")
        lines.append(f"- {case}: " + ("; ".join(parts) or "-"))
    tuned = [r for r in records if r["method"] == "triton" and r.get("tuning")]
    if tuned:
        lines += ["", "Tiles chosen by autotuning for each case (and the candidates' median ms):",
                  ""]
        for r in tuned:
            for kernel, t in r["tuning"].items():
                if kernel == "error":
                    continue
                tried = "; ".join(f"{c}: {ms:.3f}" for c, ms in t["candidates_ms"].items())
                lines.append(f"- {r['case']} {kernel}: **{t['chosen']}** ({tried})")
    if diagnostics:
        for r in diagnostics.get("cases", []):
            if r.get("backward_to_forward"):
                lines += ["", f"Diagnostic {r['case']} (triton): forward {r['forward_ms']:.3f} ms, "
                          f"forward+backward {r['forward_backward_ms']:.3f} ms, backward / forward "
                          f"throughput {100 * r['backward_to_forward']:.1f}%."]
        rows = diagnostics.get("profile_" + PROFILED_CASE)
        if rows:
            lines += ["", f"GPU time per pass of {PROFILED_CASE}'s triton forward+backward "
                      "(torch.profiler):", "", "| kernel | calls | ms |", "|---|---|---|"]
            lines += [f"| `{row['kernel'][:80]}` | {row['calls_per_pass']:.0f} "
                      f"| {row['ms_per_pass']:.3f} |" for row in rows[:10]]
        check = diagnostics.get("check_at_size")
        if check:
            errors = fmt_errors(check.get("triton"))
            lines += ["", f"{check['check']}: {'ok' if check.get('ok') else 'FAILED'} "
                      f"{errors} {check.get('error', '')}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--budget", type=float, default=240.0,
                        help="seconds after which remaining benchmark methods are skipped")
    parser.add_argument("--keep-going", action="store_true",
                        help="benchmark even if a correctness check failed (recorded in the JSON)")
    parser.add_argument("--warm", metavar="NAME",
                        help="run one check or case once (compile and tune) and exit")
    parser.add_argument("--wait-pids", default="",
                        help="after the checks, wait for these (warm-up) processes to end")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    if args.warm:
        return warm(args.warm)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
    }
    log(f"{meta}")
    ok, checks = check_correctness()
    result = {**meta, "checks": checks, "checks_ok": ok, "results": []}
    json_path = args.out / "bench_na_gpu.json"
    json_path.write_text(json.dumps(result, indent=2))
    if not ok:
        log(f"correctness checks FAILED; see {json_path}")
        if not args.keep_going:
            return 1
    if args.wait_pids:
        wait_for([int(pid) for pid in args.wait_pids.split()], limit_s=args.budget)
    result["results"], calls = benchmark(args.budget)
    result["diagnostics"] = diagnostics(args.budget + 60, calls)
    ok &= result["diagnostics"].get("check_at_size", {}).get("ok", True)
    result["checks_ok"] = ok
    result["total_s"] = time.time() - START
    json_path.write_text(json.dumps(result, indent=2))
    text = markdown(meta, result["results"], result["diagnostics"])
    (args.out / "bench_na_gpu.md").write_text(text)
    log(f"wrote {json_path} and bench_na_gpu.md")
    print(text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
