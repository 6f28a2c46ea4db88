"""CPU benchmark of the neighbourhood-attention ops of ``domainvit.kernels``.

Measures the ``torch`` backend (tiles plus halo, NATTEN's generalized neighbourhood
attention on plain torch ops) against two baselines written here: dense attention over
all tokens with the boolean neighbourhood mask (``scaled_dot_product_attention``; the
same mask the reference backend builds), and the classic unfold/gather formulation that
gathers every query's ``kernel_size**ndim`` keys and values. A last pair puts blocked
window attention (``stride == kernel_size == 8`` with relative position bias, inside
the same qkv/proj linears) next to timm's Swin ``WindowAttention``.

Every case runs forward + backward (float32, batch 1, 4 heads, head_dim 32) in its own
subprocess. Time is the median of a few repetitions after one warm-up; memory is the
rise of the process's peak resident set (``resource.getrusage(...).ru_maxrss``) over
the warm-up and repetitions, measured from just after the inputs were made (a step on
a small input runs first, so code pages and one-off buffers are not counted).

    python benchmarks/bench_na_cpu.py [--out benchmarks/results/na_cpu.json]

writes the JSON and a markdown table (same name, ``.md``) with the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from domainvit.kernels import AttentionCall, na2d, na3d
from domainvit.kernels.backends.reference import dense_mask
from domainvit.kernels.windows import key_range

HEADS, HEAD_DIM = 4, 32
ROOT = Path(__file__).resolve().parent.parent

# name -> (implementation, spatial shape, kernel size, repetitions, reason to skip or None)
CASES: dict[str, tuple[str, tuple[int, ...], int, int, str | None]] = {
    "na2d_k7_128_torch": ("torch", (128, 128), 7, 5, None),
    "na2d_k7_128_dense": ("dense", (128, 128), 7, 2, None),
    "na2d_k7_128_gather": ("gather", (128, 128), 7, 3, None),
    "na2d_k7_256_torch": ("torch", (256, 256), 7, 5, None),
    "na2d_k7_256_dense": (
        "dense",
        (256, 256),
        7,
        0,
        "65,536 x 65,536 mask and scores are too big; the 20x target is at 128x128",
    ),
    "na2d_k7_256_gather": ("gather", (256, 256), 7, 2, None),
    "na3d_k5_16_torch": ("torch", (16, 16, 16), 5, 5, None),
    "na3d_k5_16_dense": ("dense", (16, 16, 16), 5, 3, None),
    "na3d_k5_16_gather": ("gather", (16, 16, 16), 5, 3, None),
    "na3d_k5_32_torch": ("torch", (32, 32, 32), 5, 3, None),
    "na3d_k5_32_dense": (
        "dense",
        (32, 32, 32),
        5,
        0,
        "32,768 x 32,768 scores are too big for this machine",
    ),
    "na3d_k5_32_gather": (
        "gather",
        (32, 32, 32),
        5,
        0,
        "125 gathered keys and values per query: over 10 GiB with products and gradients",
    ),
    "blocked8_rpb_128_torch": ("blocked", (128, 128), 8, 5, None),
    "blocked8_rpb_128_timm_swin": ("swin", (128, 128), 8, 5, None),
}


def gather_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kernel_size: int
) -> torch.Tensor:
    """Unfold/gather neighbourhood attention (stride 1, dilation 1, not causal): gather
    each query's clamped window of keys and values, then a small softmax per query."""
    batch, *spatial, heads, head_dim = query.shape
    tokens = math.prod(spatial)
    window = torch.zeros(1, 1, dtype=torch.long)
    for length in spatial:
        first, _ = key_range(torch.arange(length), torch.tensor(length), kernel_size, 1, False)
        axis_window = first[:, None] + torch.arange(kernel_size)
        window = (window[:, None, :, None] * length + axis_window[None, :, None, :]).reshape(
            window.shape[0] * length, -1
        )
    index = window.reshape(-1)
    keys = key.reshape(batch, tokens, heads * head_dim).index_select(1, index)
    values = value.reshape(batch, tokens, heads * head_dim).index_select(1, index)
    keys = keys.view(batch, tokens, -1, heads, head_dim)
    values = values.view(batch, tokens, -1, heads, head_dim)
    # Broadcast multiply-and-sum beats einsum's many tiny matrix products here.
    logits = (query.reshape(batch, tokens, 1, heads, head_dim) * keys).sum(-1)
    weights = torch.softmax(logits * head_dim**-0.5, dim=2)
    return (weights[..., None] * values).sum(2).reshape(query.shape)


def make_step(implementation: str, spatial: tuple[int, ...], kernel: int) -> Callable[[], None]:
    """A closure running one forward + backward of the case on fixed random inputs."""
    gen = torch.Generator().manual_seed(0)
    op = {2: na2d, 3: na3d}[len(spatial)]

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).requires_grad_()

    if implementation in ("torch", "dense", "gather"):
        q, k, v = (leaf(1, *spatial, HEADS, HEAD_DIM) for _ in range(3))
        if implementation == "torch":
            return lambda: op(q, k, v, kernel, backend="torch").sum().backward()
        if implementation == "gather":
            return lambda: gather_attention(q, k, v, kernel).sum().backward()
        ndim = len(spatial)
        call = AttentionCall(
            q, k, v, (kernel,) * ndim, (1,) * ndim, (1,) * ndim, (False,) * ndim, HEAD_DIM**-0.5
        )
        mask = dense_mask(call)

        def dense() -> None:
            heads_first = [t.reshape(1, -1, HEADS, HEAD_DIM).transpose(1, 2) for t in (q, k, v)]
            F.scaled_dot_product_attention(*heads_first, attn_mask=mask).sum().backward()

        return dense

    channels = HEADS * HEAD_DIM
    x = leaf(1, *spatial, channels)
    if implementation == "blocked":
        qkv, proj = torch.nn.Linear(channels, 3 * channels), torch.nn.Linear(channels, channels)
        rpb = torch.zeros(HEADS, 2 * kernel - 1, 2 * kernel - 1, requires_grad=True)

        def blocked() -> None:
            q, k, v = qkv(x).view(1, *spatial, 3, HEADS, HEAD_DIM).unbind(-3)
            out = op(q, k, v, kernel, stride=kernel, rpb=rpb, backend="torch")
            proj(out.reshape(1, *spatial, channels)).sum().backward()

        return blocked

    from timm.models.swin_transformer import WindowAttention, window_partition, window_reverse

    attention = WindowAttention(channels, HEADS, window_size=kernel)

    def swin() -> None:
        windows = window_partition(x, (kernel, kernel)).view(-1, kernel * kernel, channels)
        out = attention(windows).view(-1, kernel, kernel, channels)
        window_reverse(out, (kernel, kernel), *spatial).sum().backward()

    return swin


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _max_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def run_case(name: str) -> dict:
    implementation, spatial, kernel, reps, _ = CASES[name]
    # A first step on a small input pages in code and one-off buffers, so that the
    # memory rise below is the case's own.
    make_step(implementation, (2 * kernel,) * len(spatial), kernel)()
    step = make_step(implementation, spatial, kernel)
    before = _max_rss_mib()
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "time_s": statistics.median(times[1:]),
        "min_time_s": min(times[1:]),
        "warmup_s": times[0],
        "reps": reps,
        "peak_rise_mib": _max_rss_mib() - before,
    }


def run_in_subprocess(name: str) -> dict:
    implementation, spatial, kernel, reps, skip = CASES[name]
    record = {
        "case": name,
        "implementation": implementation,
        "spatial": list(spatial),
        "kernel_size": kernel,
    }
    if implementation == "swin" and importlib.util.find_spec("timm") is None:
        skip = "timm not installed"
    if skip:
        return {**record, "skipped": skip}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, __file__, "--case", name], capture_output=True, text=True, env=env
    )
    if done.returncode:
        return {**record, "skipped": f"failed: {done.stderr.strip().splitlines()[-1]}"}
    return {**record, **json.loads(done.stdout.strip().splitlines()[-1])}


def ratios(results: dict[str, dict]) -> list[dict]:
    """The benchmark's claims: each a measured ratio and the target it is held to."""

    def value(name: str, key: str) -> float | None:
        return results[name].get(key)

    def ratio(numerator: str, denominator: str, key: str) -> float | None:
        top, bottom = value(numerator, key), value(denominator, key)
        return None if top is None or bottom is None else top / bottom

    rows = [
        (
            "na2d k7 128x128: dense masked / torch time",
            "na2d_k7_128_dense",
            "na2d_k7_128_torch",
            "time_s",
            ">= 20",
        ),
        (
            "na2d k7 128x128: unfold-gather / torch time",
            "na2d_k7_128_gather",
            "na2d_k7_128_torch",
            "time_s",
            ">= 2",
        ),
        (
            "na2d k7 256x256: unfold-gather / torch time",
            "na2d_k7_256_gather",
            "na2d_k7_256_torch",
            "time_s",
            ">= 2",
        ),
        (
            "na2d k7 torch time, 256x256 / 128x128 (4x tokens)",
            "na2d_k7_256_torch",
            "na2d_k7_128_torch",
            "time_s",
            "<= 4.6",
        ),
        (
            "na2d k7 torch peak memory rise, 256x256 / 128x128",
            "na2d_k7_256_torch",
            "na2d_k7_128_torch",
            "peak_rise_mib",
            "<= 4.6",
        ),
        (
            "na3d k5 16^3: dense masked / torch time",
            "na3d_k5_16_dense",
            "na3d_k5_16_torch",
            "time_s",
            "(none)",
        ),
        (
            "na3d k5 16^3: unfold-gather / torch time",
            "na3d_k5_16_gather",
            "na3d_k5_16_torch",
            "time_s",
            "(none)",
        ),
        (
            "na3d k5 torch time, 32^3 / 16^3 (8x tokens)",
            "na3d_k5_32_torch",
            "na3d_k5_16_torch",
            "time_s",
            "<= 9.2",
        ),
        (
            "na3d k5 torch peak memory rise, 32^3 / 16^3",
            "na3d_k5_32_torch",
            "na3d_k5_16_torch",
            "peak_rise_mib",
            "<= 9.2",
        ),
        (
            "blocked 8x8 + rpb 128x128: timm Swin WindowAttention / torch time",
            "blocked8_rpb_128_timm_swin",
            "blocked8_rpb_128_torch",
            "time_s",
            ">= 1",
        ),
    ]
    out = []
    for label, numerator, denominator, key, target in rows:
        measured = ratio(numerator, denominator, key)
        if measured is None:
            missing = [
                results[n]["skipped"] for n in (numerator, denominator) if "skipped" in results[n]
            ]
            out.append(
                {"ratio": label, "value": None, "target": target, "note": "; ".join(missing)}
            )
            continue
        bound = float(target.split()[1]) if target[0] in "<>" else None
        met = (
            None
            if bound is None
            else (measured >= bound if target[0] == ">" else measured <= bound)
        )
        out.append({"ratio": label, "value": round(measured, 2), "target": target, "met": met})
    return out


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Neighbourhood attention on the CPU (`benchmarks/bench_na_cpu.py`)",
        "",
        f"{env['cpu']}, {env['threads']} torch threads, torch {env['torch']}, Python "
        f"{env['python']}; load average {env['load_before']} before, {env['load_after']} after.",
        "Forward + backward, float32, batch 1, 4 heads, head_dim 32. Time: median of the "
        "repetitions after one warm-up. Memory: rise of the peak resident set "
        "(`resource.getrusage` `ru_maxrss`, one subprocess per case) from just after the "
        "inputs were made, after a first step on a small input has paged in code and "
        "one-off buffers; it counts everything a training step allocates (activations, "
        "input gradients, temporaries).",
        "",
        "| ratio | measured | target | met |",
        "| --- | ---: | ---: | --- |",
    ]
    for row in report["ratios"]:
        shown = "skipped: " + row["note"] if row["value"] is None else f"{row['value']:.2f}"
        met = {True: "yes", False: "NO", None: ""}[row.get("met")]
        lines.append(f"| {row['ratio']} | {shown} | {row['target']} | {met} |")
    lines += [
        "",
        "| case | implementation | tokens | time (s) | min (s) | peak rise (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for result in report["results"]:
        tokens = math.prod(result["spatial"])
        if "skipped" in result:
            lines.append(
                f"| {result['case']} | {result['implementation']} | {tokens} | "
                f"skipped: {result['skipped']} | | |"
            )
            continue
        lines.append(
            f"| {result['case']} | {result['implementation']} | {tokens} | "
            f"{result['time_s']:.3f} | {result['min_time_s']:.3f} | "
            f"{result['peak_rise_mib']:.0f} |"
        )
    lines += [
        "",
        "Implementations: `torch` = `domainvit.kernels` torch backend (tiles plus halo, one "
        "fused SDPA per batch of tiles); `dense` = SDPA over all tokens with the boolean "
        "neighbourhood mask; `gather` = unfold/gather of each query's window (written in the "
        "benchmark); `blocked` = qkv linear, `na2d(kernel 8, stride 8, rpb)`, proj linear; "
        "`swin` = timm `WindowAttention` (window 8, its own qkv/proj and bias table) with "
        "`window_partition`/`window_reverse`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/na_cpu.json")
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return

    load_before = os.getloadavg()
    results = {}
    for name in CASES:
        results[name] = run_in_subprocess(name)
        print(json.dumps(results[name]), flush=True)
    report = {
        "environment": {
            "cpu": _cpu_name(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "results": list(results.values()),
        "ratios": ratios(results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
