"""One epoch of every task through ``domainvit train``, timed per step, on a GPU or the CPU.

``python benchmarks/gpu_train.py --device cuda --out DIR`` trains each run of
:data:`RUNS` (a task's quickstart config, cut to one epoch) in a fresh process through
the ``domainvit train`` command (:func:`domainvit.cli.main`), with bf16 autocast on a GPU
and float32 on the CPU. Each process records, beside what ``domainvit train`` writes:

- the wall time of every optimizer step (device synchronised), split into data loading
  (from the previous step's end until the batch is on the device) and compute (forward,
  backward and optimizer step); medians skip the first :data:`WARMUP_STEPS` steps, which
  include Triton's compilation and autotuning (reported apart as the first step's time);
- peak memory: GPU memory allocated and reserved by PyTorch's allocator, or the process's
  peak resident set on the CPU;
- which neighbourhood-attention backend ran: the calls each backend served
  (``domainvit.kernels.dispatch.backend_calls``) and the fused Triton forward and
  backward passes (``triton_na.launch_counts``), counted in the training process itself.

Results go to ``DIR/gpu_train_<device>.json`` and ``.md`` (or under ``--results``).
``--warm`` first runs every selected run for two steps, all at once, so that Triton's
compilations (cached on disk) happen in parallel instead of inside the timed runs.
``--merge GPU.json CPU.json --out PREFIX`` writes ``PREFIX.json`` and ``PREFIX.md`` with
both side by side. On a machine with several GPUs ``--ddp`` also trains the smoke and
medcls runs under ``torchrun`` across all of them (DDP over NCCL), the way multi-GPU
training is launched.

Sample data comes from ``$DOMAINVIT_DATA`` (``domainvit data prepare NAME``); a run whose
dataset or dependency is missing is recorded as failed, with its error, and the others go on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP_STEPS = 3

#: name -> (bundled config, extra overrides, what it exercises)
RUNS: dict[str, tuple[str, list[str], str]] = {
    "smoke": ("smoke/quickstart", [], "MLP on spirals (no attention)"),
    "medcls": ("medcls/quickstart", [], "MedViTV2-micro, dilated 2D neighbourhood attention"),
    "medseg_macmd": ("medseg/quickstart_macmd", [], "MACMD on a NAT encoder, 2D neighbourhood "
                     "attention with rpb"),
    "medseg_3d": ("medseg/quickstart3d", [], "3D TransDAE (linear + channel attention)"),
    "hsi": ("hsi/quickstart_s2", [], "VP-Hype, Mamba + 2D neighbourhood attention with "
            "prompt tokens as extra keys"),
}


# ----------------------------------------------------------------------------------------
# One run (in its own process)
# ----------------------------------------------------------------------------------------


class _EnoughSteps(Exception):
    """Stops a warm-up run after its steps."""


def run_one(name: str, device: str, out: Path, max_steps: int | None) -> dict:
    import torch

    from domainvit import cli, engine
    from domainvit.kernels import dispatch

    try:
        from domainvit.kernels.backends import triton_na
    except ImportError:  # no Triton: the torch backend only
        triton_na = None

    config, extra, what = RUNS[name]
    run_dir = out / "runs" / name
    precision = "bf16" if device == "cuda" else "fp32"
    overrides = ["train.epochs=1", f"run_dir={run_dir}", f"train.device={device}",
                 f"train.precision={precision}", *extra]
    record: dict = {"run": name, "config": config, "what": what, "overrides": overrides,
                    "device_kind": device}
    cuda = device == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    arrivals: list[float] = []
    ends: list[float] = []
    state = {"training": True, "eval_s": 0.0, "depth": 0}

    original_to_device = engine.to_device

    def to_device(batch, target):
        # to_device recurses into dicts and lists: time the outermost call only
        state["depth"] += 1
        try:
            moved = original_to_device(batch, target)
        finally:
            state["depth"] -= 1
        if state["training"] and state["depth"] == 0:
            sync()
            arrivals.append(time.perf_counter())
        return moved

    original_evaluation = engine.run_evaluation

    def run_evaluation(*args, **kwargs):
        state["training"] = False
        start = time.perf_counter()
        try:
            return original_evaluation(*args, **kwargs)
        finally:
            state["training"] = True
            state["eval_s"] += time.perf_counter() - start

    original_step = engine.Trainer._optimizer_step

    def optimizer_step(trainer):
        original_step(trainer)
        sync()
        ends.append(time.perf_counter())
        record.update(device=str(trainer.device), autocast=str(trainer.amp_dtype),
                      world_size=trainer.info.world_size,
                      steps_per_epoch=trainer.steps_per_epoch,
                      batch_size=trainer.tcfg.batch_size,
                      parameters=sum(p.numel() for p in engine.unwrap(trainer.model)
                                     .parameters()))
        if max_steps and len(ends) >= max_steps:
            raise _EnoughSteps

    engine.to_device = to_device
    engine.run_evaluation = run_evaluation
    engine.Trainer._optimizer_step = optimizer_step

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    dispatch.reset_backend_calls()
    start = time.perf_counter()
    argv = ["train", config, *[arg for o in overrides for arg in ("--set", o)]]
    try:
        record["exit_code"] = cli.main(argv)
    except _EnoughSteps:
        record["exit_code"] = 0
        record["stopped_after_steps"] = max_steps
    record["wall_s"] = round(time.perf_counter() - start, 2)
    record["eval_s"] = round(state["eval_s"], 2)
    record["steps"] = len(ends)
    if ends:
        starts = [arrivals[0]] + ends[:-1]  # each step from the previous one's end
        step_ms = [(e - s) * 1e3 for s, e in zip(starts, ends, strict=True)]
        compute_ms = [(e - a) * 1e3 for a, e in zip(arrivals, ends, strict=False)]
        timed = slice(WARMUP_STEPS, None) if len(ends) > WARMUP_STEPS + 2 else slice(1, None)
        record["first_step_s"] = round(compute_ms[0] / 1e3, 3)
        if step_ms[timed]:
            record["step_ms_median"] = round(statistics.median(step_ms[timed]), 3)
            record["compute_ms_median"] = round(statistics.median(compute_ms[timed]), 3)
            record["data_ms_median"] = round(
                statistics.median(s - c for s, c in zip(step_ms[timed], compute_ms[timed],
                                                        strict=True)), 3)
            record["samples_per_s"] = round(
                record["batch_size"] / (record["step_ms_median"] / 1e3), 1)
    if cuda:
        record["peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        record["peak_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    else:
        record["peak_rss_mib"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    record["backend_calls"] = dispatch.backend_calls()
    if triton_na is not None:
        record["triton_launches"] = triton_na.launch_counts()
        record["triton_tuning"] = triton_na.tuning_choices()
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        lines = [json.loads(line) for line in metrics.read_text().splitlines() if line]
        if lines:
            record["epoch_record"] = lines[-1]
    return record


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------


def _child(name: str, device: str, out: Path, max_steps: int | None) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--device", device,
               "--out", str(out)]
    return command + (["--max-steps", str(max_steps)] if max_steps else [])


def _env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _collect(name: str, process: subprocess.Popen, out: Path, timeout: float,
             started: float) -> dict:
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        stderr = (stderr or "") + f"\n[killed after {timeout:.0f} s]"
    result_file = out / f"{name}.result.json"
    record = (json.loads(result_file.read_text()) if result_file.is_file()
              else {"run": name, "config": RUNS[name][0]})
    record["process_exit_code"] = process.returncode
    record["process_s"] = round(time.time() - started, 1)
    record["ok"] = process.returncode == 0 and record.get("exit_code") == 0
    # the end of the run's log (progress bars dropped): the error when it failed
    lines = [line for line in (stderr or "").replace("\r", "\n").splitlines()
             if line.strip() and "it/s]" not in line and "s/it]" not in line]
    record["log_tail"] = "\n".join(lines[-40:])[-6000:]
    return record


def run_all(names: list[str], device: str, out: Path, max_steps: int | None, parallel: bool,
            timeout: float, on_record=None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    records = []
    if parallel:
        started = time.time()
        processes = {n: subprocess.Popen(_child(n, device, out, max_steps), env=_env(),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True, cwd=ROOT) for n in names}
        for name, process in processes.items():
            records.append(_collect(name, process, out, timeout, started))
    else:
        for name in names:
            started = time.time()
            process = subprocess.Popen(_child(name, device, out, max_steps), env=_env(),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       text=True, cwd=ROOT)
            records.append(_collect(name, process, out, timeout, started))
            _log(f"{name}: {_summary(records[-1])}")
            if on_record is not None:
                on_record(records)
    return records


def run_ddp(out: Path, timeout: float) -> dict:
    """Smoke and medcls under torchrun over every GPU of this machine (if more than one)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    record: dict = {"gpus": gpus}
    if gpus < 2:
        record["ran"] = False
        record["why"] = f"{gpus} GPU(s) on this machine: DDP needs at least 2"
        return record
    record["ran"] = True
    record["runs"] = []
    for name in ("smoke", "medcls"):
        config = RUNS[name][0]
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}",
                   "-m", "domainvit", "train", config, "--set", "train.epochs=1",
                   "--set", f"run_dir={out / 'runs' / (name + '_ddp')}",
                   "--set", "train.precision=bf16"]
        started = time.time()
        done = subprocess.run(command, env=_env(), capture_output=True, text=True, cwd=ROOT,
                              timeout=timeout, check=False)
        record["runs"].append({"run": name, "command": " ".join(command[1:]),
                               "exit_code": done.returncode,
                               "wall_s": round(time.time() - started, 1),
                               "log_tail": done.stderr[-3000:]})
    return record


def _summary(r: dict) -> str:
    if not r.get("ok"):
        return "FAILED " + r.get("log_tail", "")[-600:]
    parts = [f"steps {r.get('steps')}", f"step {r.get('step_ms_median')} ms",
             f"compute {r.get('compute_ms_median')} ms", f"first {r.get('first_step_s')} s"]
    if "peak_allocated_mib" in r:
        parts.append(f"peak {r['peak_allocated_mib']} MiB")
    if "peak_rss_mib" in r:
        parts.append(f"rss {r['peak_rss_mib']} MiB")
    parts.append(f"calls {r.get('backend_calls')} triton {r.get('triton_launches')}")
    return ", ".join(parts)


START = time.time()


def _log(message: str) -> None:
    print(f"[{time.time() - START:6.1f}s] {message}", flush=True)


def environment() -> dict:
    import torch

    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        import triton

        meta["triton"] = triton.__version__
    except ImportError:
        meta["triton"] = None
    if torch.cuda.is_available():
        meta["gpu"] = torch.cuda.get_device_name()
        meta["gpus"] = torch.cuda.device_count()
    return meta


# ----------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------


def _cell(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _calls(r: dict) -> str:
    calls = r.get("backend_calls") or {}
    launches = r.get("triton_launches") or {}
    text = ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "none"
    if launches.get("forward"):
        text += f" (fused fwd {launches['forward']} / bwd {launches['backward']})"
    return text


def markdown(meta: dict, records: list[dict], title: str) -> str:
    lines = [f"# {title}", "", ", ".join(f"{k} {v}" for k, v in meta.items()), "",
             "| run | config | ok | steps | step ms | compute ms | data ms | first step s "
             "| peak MiB | attention calls |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        peak = r.get("peak_allocated_mib", r.get("peak_rss_mib"))
        lines.append(
            f"| {r['run']} | {r['config']} | {'yes' if r.get('ok') else 'FAILED'} "
            f"| {_cell(r.get('steps'))} | {_cell(r.get('step_ms_median'), 2)} "
            f"| {_cell(r.get('compute_ms_median'), 2)} | {_cell(r.get('data_ms_median'), 2)} "
            f"| {_cell(r.get('first_step_s'), 2)} | {_cell(peak)} | {_calls(r)} |")
    return "\n".join(lines) + "\n"


def merged_markdown(gpu: dict, cpu: dict) -> str:
    by_run = {r["run"]: r for r in cpu["runs"]}
    g, c = gpu["environment"], cpu["environment"]
    lines = [
        "# One epoch of every task on the GPU and on the CPU",
        "",
        f"GPU: {g.get('gpu')}, torch {g['torch']}, Triton {g.get('triton')}, Python "
        f"{g['python']}; bf16 autocast, backend chosen automatically (Triton on the GPU). "
        f"CPU: {c['cpu_count']} cores, torch {c['torch']}, float32. Each run is a task's "
        "quickstart config with `--set train.epochs=1`, through `domainvit train` "
        "(`python benchmarks/gpu_train.py`). Step: median wall time of an optimizer step "
        f"after the first {WARMUP_STEPS} (data loading included); compute: from the batch "
        "on the device to the step's end. Peak memory: GPU memory allocated by PyTorch "
        "(reserved in brackets); on the CPU the process's peak resident set. Attention "
        "calls: the neighbourhood-attention calls each backend ran inside the training "
        "process, with the fused Triton forward/backward passes.",
        "",
        "| run | config | GPU step ms | GPU compute ms | CPU step ms | step speed-up "
        "| GPU peak MiB | CPU peak RSS MiB | GPU first step s | GPU attention calls "
        "| CPU attention calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in gpu["runs"]:
        other = by_run.get(r["run"], {})
        speedup = None
        if r.get("step_ms_median") and other.get("step_ms_median"):
            speedup = f"{other['step_ms_median'] / r['step_ms_median']:.1f}x"
        peak = "-"
        if r.get("peak_allocated_mib") is not None:
            peak = f"{r['peak_allocated_mib']:.0f} ({r['peak_reserved_mib']:.0f})"
        gpu_step = _cell(r.get("step_ms_median"), 2) if r.get("ok") else "FAILED"
        lines.append(
            f"| {r['run']} | {r['config']} | {gpu_step} | {_cell(r.get('compute_ms_median'), 2)} "
            f"| {_cell(other.get('step_ms_median'), 1)} | {speedup or '-'} | {peak} "
            f"| {_cell(other.get('peak_rss_mib'), 0)} | {_cell(r.get('first_step_s'), 1)} "
            f"| {_calls(r)} | {_calls(other) if other else '-'} |")
    ddp = gpu.get("ddp")
    if ddp:
        lines += ["", f"DDP: {ddp.get('why') if not ddp.get('ran') else ddp}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_train"),
                        help="where the runs train (run directories, per-run records)")
    parser.add_argument("--results", type=Path,
                        help="where gpu_train_<device>.json/.md go (default: --out)")
    parser.add_argument("--runs", default=",".join(RUNS),
                        help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--warm", action="store_true",
                        help="first run everything for two steps at once (parallel compiles)")
    parser.add_argument("--warm-only", action="store_true", help="only the parallel warm-up")
    parser.add_argument("--ddp", action="store_true", help="also DDP over several GPUs")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--max-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--merge", nargs=2, metavar=("GPU_JSON", "CPU_JSON"))
    args = parser.parse_args()

    if args.merge:
        gpu, cpu = (json.loads(Path(p).read_text()) for p in args.merge)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(json.dumps({"gpu": gpu, "cpu": cpu}, indent=2))
        Path(f"{args.out}.md").write_text(merged_markdown(gpu, cpu))
        print(merged_markdown(gpu, cpu))
        return 0
    if args.one:
        record = run_one(args.one, args.device, args.out, args.max_steps)
        (args.out / f"{args.one}.result.json").write_text(json.dumps(record, indent=2))
        return 0 if record.get("exit_code") == 0 else 1

    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    meta = environment()
    _log(f"{meta}")
    result: dict = {"environment": meta, "warmup_steps_skipped": WARMUP_STEPS}
    if args.warm or args.warm_only:
        warm = run_all(names, args.device, args.out / "warm", 2, True, args.timeout)
        result["warm"] = [{k: r.get(k) for k in ("run", "ok", "process_s", "log_tail")}
                          for r in warm]
        _log("warm-up: " + ", ".join(f"{r['run']} {'ok' if r['ok'] else 'FAILED'} "
                                     f"{r['process_s']} s" for r in warm))
        if args.warm_only:
            return 0 if all(r["ok"] for r in warm) else 1
    results = args.results or args.out
    results.mkdir(parents=True, exist_ok=True)
    stem = results / f"gpu_train_{args.device}"

    def save(records: list[dict]) -> None:  # after every run: a cut-off job keeps the rest
        result["runs"] = records
        result["total_s"] = round(time.time() - START, 1)
        Path(f"{stem}.json").write_text(json.dumps(result, indent=2))

    save(run_all(names, args.device, args.out, None, False, args.timeout, save))
    if args.ddp:
        result["ddp"] = run_ddp(args.out, args.timeout)
        _log(f"ddp: {result['ddp'].get('why', 'ran')}")
    save(result["runs"])
    Path(f"{stem}.md").write_text(markdown(meta, result["runs"],
                                           f"One epoch per task ({args.device})"))
    print(markdown(meta, result["runs"], f"One epoch per task ({args.device})"), flush=True)
    return 0 if all(r.get("ok") for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
