"""Hyperspectral benchmark: VP-Hype checkpoints against scikit-learn baselines on the
spatially disjoint 2%-label split of the hsi-parcels scene, and full-scene throughput.

    python benchmarks/bench_hsi.py [CONFIG=CHECKPOINT ...] \\
        [--throughput CONFIG=CHECKPOINT=RASTER ...] [--out benchmarks/results/hsi_parcels.json]

For each model: OA, AA and kappa on the test pixels (``domainvit eval``). Baselines: an
RBF SVM and a random forest (scikit-learn) on standardised single-pixel spectra, trained
on the same 2% of pixels. ``--throughput`` classifies a whole raster with ``domainvit
predict`` and reports pixels per second. Writes the JSON and a markdown table (``.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from domainvit.config import load_config
from domainvit.engine import evaluate, predict
from domainvit.registry import load_tasks
from domainvit.tasks.hsi.data import load_scene, split_pixels
from domainvit.tasks.hsi.metrics import score_labels

KEYS = ("oa", "aa", "kappa")


def baselines(config: str) -> dict[str, dict[str, float]]:
    """SVM (C and gamma chosen on the val pixels) and random forest on raw spectra."""
    cfg = load_config(config)
    scene = load_scene(cfg.data)
    sets = {}
    for split in ("train", "val", "test"):
        rows, cols = split_pixels(scene, split)
        sets[split] = (scene.cube[:, rows, cols].T, scene.labels[rows, cols] - 1)
    x_fit = np.concatenate([sets["train"][0], sets["val"][0]])
    y_fit = np.concatenate([sets["train"][1], sets["val"][1]])
    fold = np.r_[np.full(len(sets["train"][1]), -1), np.zeros(len(sets["val"][1]))]
    svm = GridSearchCV(make_pipeline(StandardScaler(), SVC(kernel="rbf")),
                       {"svc__C": [1, 10, 100, 1000], "svc__gamma": ["scale", 0.001, 0.01]},
                       cv=PredefinedSplit(fold), refit=False).fit(x_fit, y_fit)
    models = {
        "SVM (RBF) on pixel spectra": make_pipeline(StandardScaler(), SVC(
            kernel="rbf", C=svm.best_params_["svc__C"], gamma=svm.best_params_["svc__gamma"])),
        "random forest on pixel spectra": RandomForestClassifier(n_estimators=300,
                                                                 random_state=0, n_jobs=1),
    }
    results = {}
    for name, model in models.items():
        model.fit(*sets["train"])
        scores = score_labels(model.predict(sets["test"][0]), sets["test"][1],
                              cfg.data.class_names)
        results[name] = {k: round(float(scores[k]), 4) for k in KEYS}
    return results


def throughput(config: str, checkpoint: str, raster: str) -> dict[str, float]:
    with rasterio.open(raster) as src:
        pixels = src.width * src.height
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        predict(config, checkpoint, [raster], out)
        seconds = time.perf_counter() - start
    path = Path(raster)
    return {"raster": f"{path.parent.name}/{path.name}", "pixels": pixels,
            "seconds": round(seconds, 1), "pixels_per_second": round(pixels / seconds, 1)}


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def markdown(record: dict) -> str:
    lines = [f"# {record['benchmark']}"]
    if record["results"]:
        lines += ["", "| model | OA | AA | kappa |", "|---|---|---|---|"]
        lines += [f"| {name} | {r['oa']:.3f} | {r['aa']:.3f} | {r['kappa']:.3f} |"
                  for name, r in record["results"].items()]
    if record["throughput"]:
        lines += ["", "| model | raster | pixels | seconds | pixels/s |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {r['raster']} | {r['pixels']} | {r['seconds']} | "
                  f"{r['pixels_per_second']} |" for name, r in record["throughput"].items()]
    m = record["machine"]
    machine = f"CPU threads: {m['threads']}, torch {m['torch']}, {m['platform']}"
    if "cpu" in m:
        machine = (f"CPU: {m['cpu']}, {m['threads']} threads, torch {m['torch']}, "
                   f"{m['platform']}; 1-min load average {m['load_average_before']} before, "
                   f"{m['load_average_after']} after")
    lines += ["", machine, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", metavar="CONFIG=CHECKPOINT")
    parser.add_argument("--throughput", nargs="*", default=[],
                        metavar="CONFIG=CHECKPOINT=RASTER")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hsi_parcels.json"))
    args = parser.parse_args(argv)
    load_tasks()
    load_before = os.getloadavg()[0]
    results = {}
    for spec in args.models:
        config, _, checkpoint = spec.partition("=")
        metrics = evaluate(config, checkpoint)
        results[f"VP-Hype ({config})"] = {k: round(float(metrics[k]), 4) for k in KEYS}
        print(f"{config}: {results[f'VP-Hype ({config})']}", file=sys.stderr)
    if args.models:
        results.update(baselines(args.models[0].partition("=")[0]))
    speeds = {}
    for spec in args.throughput:
        config, checkpoint, raster = spec.split("=")
        speeds[config] = throughput(config, checkpoint, raster)
        print(f"{config}: {speeds[config]}", file=sys.stderr)
    load = os.getloadavg()[0]
    record = {
        "benchmark": ("hsi-parcels: test blocks (spatially disjoint), trained on 2% of labels"
                      if results else "hsi: full-scene inference (domainvit predict, raster "
                      "to GeoTIFF class map)"),
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "platform": platform.platform(),
                    "cpu": cpu_name(), "load_average_before": round(load_before, 2),
                    "load_average_after": round(load, 2)},
        "results": results, "throughput": speeds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
