"""Classical baselines on the real Indian Pines scene, on its spatially disjoint splits.

    python benchmarks/hsi_indian_pines_baselines.py [--folder DIR] [--seeds 0 1 2] \\
        [--out benchmarks/results/hsi_indian_pines_baselines.json]

The splits are the ``indian-pines`` sample dataset's (:func:`domainvit.datasets.
indian_pines.indian_pines_split`, read from the prepared split maps, guard margin 4):
16 x 16-pixel blocks, half of them test blocks, 10% of each class's training-block pixels
for training (at least 3), the other pixels outside the guard margin for validation.
On single-pixel spectra, standardised with the training pixels' mean and deviation
(scikit-learn):

- an RBF SVM whose C and gamma are chosen on the validation pixels (overall accuracy) from
  the grid :data:`SVM_GRID`, then used as trained on the training pixels;
- a random forest of 300 trees.

Reports overall accuracy (OA), average per-class accuracy (AA, over the classes with test
pixels: Grass-pasture-mowed lies in one block and is never tested) and Cohen's kappa on
the test pixels, per seed and as mean ± sample standard deviation over the seeds; writes
the JSON and a markdown table (``.md``). Without ``--folder`` the dataset is prepared in
the data cache (``domainvit data prepare indian-pines``) if it is not already.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from domainvit.datasets.indian_pines import (
    CLASS_NAMES,
    INDIAN_PINES,
    SPLIT_SEEDS,
    read_indian_pines,
    read_split,
    split_file,
)
from domainvit.datasets.registry import dataset_dir, is_prepared, prepare
from domainvit.errors import UserError
from domainvit.registry import load_tasks
from domainvit.tasks.hsi.metrics import score_labels

KEYS = ("oa", "aa", "kappa")


#: the SVM's C and gamma candidates (gamma "scale" is 1 / bands for standardised spectra)
SVM_GRID = {"C": (1.0, 10.0, 100.0, 1000.0), "gamma": ("scale", 0.001, 0.01, 0.1)}


SVM, FOREST = "SVM (RBF) on pixel spectra", "random forest (300 trees) on pixel spectra"


def _scores(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    scores = score_labels(predicted, target, list(CLASS_NAMES))
    return {k: round(float(scores[k]), 4) for k in KEYS}


def run_seed(cube: np.ndarray, labels: np.ndarray, split, seed: int) -> dict[str, dict]:
    """Both baselines on one split: scores on the test pixels, the chosen SVM parameters."""
    pixels = {name: (cube[mask].astype(np.float64), labels[mask].astype(np.int64) - 1)
              for name, mask in (("train", split.train), ("val", split.val),
                                 ("test", split.test))}
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        pixels["train"], pixels["val"], pixels["test"])
    best = None
    for c, gamma in product(SVM_GRID["C"], SVM_GRID["gamma"]):
        model = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=c, gamma=gamma))
        model.fit(x_train, y_train)
        val_oa = float((model.predict(x_val) == y_val).mean())
        if best is None or val_oa > best[0]:
            best = (val_oa, c, gamma, model)
    val_oa, c, gamma, svm = best
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(
        n_estimators=300, random_state=seed, n_jobs=1))
    forest.fit(x_train, y_train)
    return {
        SVM: {**_scores(svm.predict(x_test), y_test), "C": c, "gamma": gamma,
              "val_oa": round(val_oa, 4)},
        FOREST: _scores(forest.predict(x_test), y_test),
    }


def summary(per_seed: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Per model: the per-seed rows, and mean and sample standard deviation of each key."""
    models = next(iter(per_seed.values())).keys()
    out = {}
    for model in models:
        rows = {seed: per_seed[seed][model] for seed in per_seed}
        values = {k: np.array([row[k] for row in rows.values()]) for k in KEYS}
        ddof = 1 if len(rows) > 1 else 0
        out[model] = {"mean": {k: round(float(v.mean()), 4) for k, v in values.items()},
                      "std": {k: round(float(v.std(ddof=ddof)), 4) for k, v in values.items()},
                      "per_seed": {str(seed): row for seed, row in rows.items()}}
    return out


def markdown(record: dict) -> str:
    lines = [f"# {record['benchmark']}", "",
             f"Mean ± sample standard deviation over split seeds "
             f"{', '.join(map(str, record['seeds']))} (test pixels; AA over the classes with "
             f"test pixels).", "",
             "| model | OA | AA | kappa |", "|---|---|---|---|"]
    for name, r in record["results"].items():
        cells = [f"{r['mean'][k]:.3f} ± {r['std'][k]:.3f}" for k in KEYS]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += ["", "| model | seed | OA | AA | kappa | chosen on val |", "|---|---|---|---|---|---|"]
    for name, r in record["results"].items():
        for seed, row in r["per_seed"].items():
            chosen = (f"C={row['C']:g}, gamma={row['gamma']}, val OA {row['val_oa']:.3f}"
                      if "C" in row else "-")
            lines.append(f"| {name} | {seed} | {row['oa']:.3f} | {row['aa']:.3f} | "
                         f"{row['kappa']:.3f} | {chosen} |")
    lines += ["", "| split | train | val | test | classes without test pixels |",
              "|---|---|---|---|---|"]
    for seed, s in record["splits"].items():
        missing = ", ".join(CLASS_NAMES[c - 1] for c in s["classes_without_test"]) or "-"
        lines.append(f"| seed {seed} ({s['file']}) | {s['train']} | {s['val']} | "
                     f"{s['test']} | {missing} |")
    m = record["machine"]
    prepared = (f"; preparing the dataset (download, checks, files) took "
                f"{record['prepare_seconds']} s" if record["prepare_seconds"] else "")
    lines += ["", f"{record['seconds']} s for the baselines{prepared}, on {m['threads']} "
                  f"CPU threads (scikit-learn {m['sklearn']}, {m['platform']}; 1-min load average "
                  f"{m['load_average_before']} before, {m['load_average_after']} after)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/hsi_indian_pines_baselines.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path,
                        help="a prepared indian-pines folder (default: the data cache's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SPLIT_SEEDS))
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/hsi_indian_pines_baselines.json"))
    args = parser.parse_args(argv)
    try:
        folder = args.folder
        prepare_seconds = None
        if folder is None:
            load_tasks()  # the hsi task registers the dataset
            if not is_prepared(INDIAN_PINES):
                started = time.perf_counter()
                prepare(INDIAN_PINES)
                prepare_seconds = round(time.perf_counter() - started, 1)
            folder = dataset_dir(INDIAN_PINES)
        scene = read_indian_pines(folder)
        splits = {seed: read_split(folder, seed) for seed in args.seeds}
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    meta = json.loads((folder / "meta.json").read_text())["splits"]["files"]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    per_seed = {}
    for seed, split in splits.items():
        per_seed[seed] = run_seed(scene.cube, scene.labels, split, seed)
        print(f"seed {seed}: {per_seed[seed]}", file=sys.stderr)
    seconds = round(time.perf_counter() - started, 1)
    record = {
        "benchmark": "indian-pines: classical baselines on spatially disjoint 16 x 16 block "
                     "splits, 10% of training-block labels for training",
        "seeds": list(splits),
        "machine": {"threads": os.cpu_count(), "sklearn": sklearn.__version__,
                    "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": round(load_before, 2),
                    "load_average_after": round(os.getloadavg()[0], 2)},
        "seconds": seconds, "prepare_seconds": prepare_seconds,
        "svm_grid": SVM_GRID,
        "splits": {str(seed): {"file": split_file(seed),
                               "train": int(split.train.sum()), "val": int(split.val.sum()),
                               "test": int(split.test.sum()),
                               "classes_without_test": meta[split_file(seed)][
                                   "classes_without_test"]}
                   for seed, split in splits.items()},
        "results": summary(per_seed),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
