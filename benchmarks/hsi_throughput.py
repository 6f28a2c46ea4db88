"""Hyperspectral inference throughput: per-pixel VP-Hype, dense VP-Hype (``dense_block``)
and a random forest, side by side on one raster, with the dense path's peak memory.

    python benchmarks/hsi_throughput.py \\
        [--pixel-config hsi/quickstart_s2] \\
        [--pixel-checkpoint tasks/hsi/weights/quickstart_s2.safetensors] \\
        [--dense-config hsi/landcover_s2] \\
        [--dense-checkpoint tasks/hsi/weights/landcover_s2.safetensors] [--dense-set KEY=VALUE] \\
        [--raster ~/.cache/domainvit/sentinel2/scene.tif] [--window 512] \\
        [--accuracy "NAME=EVAL.json" ...] [--out benchmarks/results/hsi_dense_throughput.json]

The default dense model is the bundled ``hsi/landcover_s2`` (16 x 16 blocks), the default
per-pixel model the bundled ``hsi/quickstart_s2`` (one patch per pixel).

The raster defaults to the real Sentinel-2 scene of ``domainvit data prepare sentinel2``.
Every measurement runs in a fresh subprocess (its peak resident memory, ``ru_maxrss``, is
the measurement's own) through :func:`domainvit.tasks.hsi.predict.classify_raster`, the
path of ``domainvit predict`` after the input check (GeoTIFF read in tiles, class map,
confidence map and sidecar written); the reported time is the wall time of that call.
Measured: the per-pixel model and the dense model on the top-left ``window`` x ``window``
crop, the dense model on a crop twice as wide and on the whole raster (the peak memory of
the three dense runs shows that it is bounded by the tile, not the raster), and the
``predict`` of a 300-tree scikit-learn random forest (``n_jobs=2``) fitted on the
training pixels of the per-pixel model's training scene, on the same crop's spectra.
``--accuracy NAME=EVAL.json`` adds ``domainvit eval --json`` results (OA, AA, kappa) to the
record. Writes the JSON and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_hsi import cpu_name  # the benchmarks folder is on the path of its scripts

DEFAULT_RASTER = Path("~/.cache/domainvit/sentinel2/scene.tif")
DENSE_SET: tuple[str, ...] = ()  # the bundled dense config needs no override


def _load_model(config: str, checkpoint: str, overrides: list[str]):
    from domainvit.config import load_config
    from domainvit.engine import build_model, load_inference_weights
    from domainvit.registry import get_task

    cfg = load_config(config, overrides)
    model = build_model(get_task("hsi"), cfg)
    load_inference_weights(model, cfg, Path(checkpoint))
    return model.eval(), cfg


def _crop(raster: Path, size: int | None, folder: Path) -> Path:
    """The top-left ``size`` x ``size`` crop of ``raster`` (the raster itself for None)."""
    import rasterio

    from domainvit.datasets.raster.crop import crop_raster

    if size is None:
        return raster
    with rasterio.open(raster) as src:
        rows, cols = min(size, src.height), min(size, src.width)
    return crop_raster(raster, folder / f"crop{size}.tif", (0, rows, 0, cols))


def measure(kind: str, args: argparse.Namespace) -> dict:
    """One measurement, in this process: ``pixel``, ``dense`` or ``forest`` on a crop."""
    import rasterio

    from domainvit.registry import load_tasks

    load_tasks()
    raster = Path(args.raster).expanduser()
    size = None if args.size == 0 else args.size
    with tempfile.TemporaryDirectory() as tmp:
        crop = _crop(raster, size, Path(tmp))
        with rasterio.open(crop) as src:
            pixels = src.height * src.width
        if kind == "forest":
            seconds = _forest_seconds(args, crop)
        else:
            from domainvit.tasks.hsi.predict import classify_raster

            dense = kind == "dense"
            model, cfg = _load_model(args.dense_config if dense else args.pixel_config,
                                     args.dense_checkpoint if dense else args.pixel_checkpoint,
                                     args.dense_set if dense else [])
            start = time.perf_counter()
            classify_raster(model, cfg.data, crop, Path(tmp) / "out",
                            progress=lambda *_: None)
            seconds = time.perf_counter() - start
    return {"kind": kind, "pixels": pixels, "seconds": round(seconds, 2),
            "pixels_per_second": round(pixels / seconds, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _forest_seconds(args: argparse.Namespace, crop: Path) -> float:
    """Predict time of a 300-tree random forest on every pixel of ``crop``, fitted on the
    training pixels of the per-pixel model's training scene (the bands the model reads)."""
    from sklearn.ensemble import RandomForestClassifier

    from domainvit.datasets.raster.opening import open_raster
    from domainvit.tasks.hsi.data import load_scene, split_pixels
    from domainvit.tasks.hsi.predict import check_input

    model, cfg = _load_model(args.pixel_config, args.pixel_checkpoint, [])
    scene = load_scene(cfg.data)
    rows, cols = split_pixels(scene, "train")
    forest = RandomForestClassifier(n_estimators=args.trees, n_jobs=2, random_state=0)
    forest.fit(scene.cube[:, rows, cols].T, scene.labels[rows, cols] - 1)
    with open_raster(crop, check_valid=False) as src:
        bands, _ = check_input(model, src, None)
        from rasterio.windows import Window

        cube, _ = src.read(Window(0, 0, src.info.width, src.info.height), bands=bands)
    spectra = cube.reshape(cube.shape[0], -1).T
    start = time.perf_counter()
    forest.predict(spectra)
    return time.perf_counter() - start


def _run(kind: str, size: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--measure", kind, "--size", str(size),
               "--raster", str(args.raster), "--trees", str(args.trees),
               "--pixel-config", args.pixel_config, "--pixel-checkpoint", args.pixel_checkpoint,
               "--dense-config", args.dense_config, "--dense-checkpoint", args.dense_checkpoint]
    for override in args.dense_set:
        command += ["--dense-set", override]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{kind} on {size or 'the whole raster'} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{kind} {size or 'scene'}: {result}", file=sys.stderr)
    return result


LABELS = {"pixel": "VP-Hype per pixel", "dense": "VP-Hype dense", "forest": "random forest"}


def markdown(record: dict) -> str:
    lines = [f"# {record['benchmark']}", "",
             "| model | input | pixels | seconds | pixels/s | x per-pixel | peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for r in record["throughput"]:
        lines.append(f"| {LABELS[r['kind']]} | {r['input']} | {r['pixels']} | {r['seconds']} | "
                     f"{r['pixels_per_second']:.0f} | {r['speedup_vs_pixel']:.1f} | "
                     f"{r['peak_rss_mib']} |")
    if record.get("accuracy"):
        lines += ["", "| model (test split) | OA | AA | kappa |", "|---|---|---|---|"]
        lines += [f"| {name} | {r['oa']:.4f} | {r['aa']:.4f} | {r['kappa']:.4f} |"
                  for name, r in record["accuracy"].items()]
    m = record["machine"]
    lines += ["", f"CPU: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
              f"torch {m['torch']}, {m['platform']}; 1-min load average "
              f"{m['load_average_before']} before, {m['load_average_after']} after", "",
              "Models: " + record["models"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pixel-config", default="hsi/quickstart_s2")
    parser.add_argument("--pixel-checkpoint", default="tasks/hsi/weights/quickstart_s2.safetensors")
    parser.add_argument("--dense-config", default="hsi/landcover_s2")
    parser.add_argument("--dense-checkpoint",
                        default="tasks/hsi/weights/landcover_s2.safetensors")
    parser.add_argument("--dense-set", action="append", default=None,
                        help="config override of the dense model (repeatable)")
    parser.add_argument("--raster", default=str(DEFAULT_RASTER))
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--accuracy", action="append", default=[], metavar="NAME=EVAL.json")
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/hsi_dense_throughput.json"))
    parser.add_argument("--measure", choices=("pixel", "dense", "forest"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dense_set = args.dense_set or list(DENSE_SET)
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return 0
    raster = Path(args.raster).expanduser()
    if not raster.is_file() and Path(args.raster) == DEFAULT_RASTER:
        from domainvit.datasets.registry import prepare
        from domainvit.registry import load_tasks

        load_tasks()
        raster = prepare("sentinel2") / "scene.tif"
    args.raster = str(raster)
    accuracy = {}  # read first: a bad path fails before minutes of measurements
    for spec in args.accuracy:
        name, _, path = spec.rpartition("=")
        scores = json.loads(Path(path).read_text())
        scores = scores.get("metrics", scores)
        accuracy[name] = {k: round(float(scores[k]), 4) for k in ("oa", "aa", "kappa")}
    load_before = os.getloadavg()[0]
    runs = [("pixel", args.window), ("dense", args.window), ("forest", args.window),
            ("dense", 2 * args.window), ("dense", 0)]
    throughput = []
    for kind, size in runs:
        result = _run(kind, size, args)
        result["input"] = f"{size}x{size} crop" if size else f"whole {raster.name}"
        throughput.append(result)
    pixel_speed = throughput[0]["pixels_per_second"]
    for r in throughput:
        r["speedup_vs_pixel"] = round(r["pixels_per_second"] / pixel_speed, 2)
    record = {
        "benchmark": f"hsi: inference throughput on {raster.parent.name}/{raster.name}, "
                     f"per-pixel vs dense VP-Hype vs random forest",
        "raster": str(raster),
        "models": (f"per-pixel {args.pixel_config} ({args.pixel_checkpoint}); dense "
                   f"{args.dense_config} {' '.join(args.dense_set)} "
                   f"({args.dense_checkpoint}); random forest: {args.trees} trees, n_jobs=2, "
                   f"fitted on the training pixels of {args.pixel_config}'s scene, predict "
                   f"time only"),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": round(load_before, 2),
                    "load_average_after": round(os.getloadavg()[0], 2)},
        "throughput": throughput,
        "accuracy": accuracy,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
