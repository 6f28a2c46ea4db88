"""Lidar place recognition on the held-out area of ``lidar-autzen``: HOTFormerLoc, the
PointNet baseline and Scan Context, clean and with perturbed queries.

    python benchmarks/lidar_place_results.py \\
        [--checkpoint tasks/lidar_place/weights/quickstart.safetensors] \\
        [--pointnet tasks/lidar_place/weights/quickstart_pointnet.safetensors] \\
        [--folder PLACE_FOLDER] [--seed 0] [--quick] \\
        [--out benchmarks/results/lidar_place_autzen.json]

Models: HOTFormerLoc (``lidar_place/quickstart`` with ``--checkpoint``), the PointNet
baseline (``lidar_place/quickstart_pointnet`` with ``--pointnet``) and Scan Context
(20 rings, 60 sectors, out to the submap radius; ring-key search, 10 candidates
re-ranked; on the clouds as stored). The models describe every cloud as ``domainvit
eval`` does (:mod:`domainvit.tasks.lidar_place.analysis`), so their clean scores are
``eval``'s. Each method is also scored with its first 5 matches re-ranked geometrically
(:mod:`domainvit.tasks.lidar_place.rerank`, the settings of ``lidar_place/quickstart``:
``domainvit eval`` with that config re-ranks the same way), in both tables for the two
models and in the first for Scan Context.

The place folder is the ``test`` folder of the prepared ``lidar-autzen`` benchmark
(``domainvit data prepare lidar-autzen``), or ``--folder``. A query's true matches are
the database entries within 25 m (horizontal). Reported: recall@1, recall@1 % (N =
max(1, round(database / 100))), recall@5, recall@25, the mean reciprocal rank (MRR), the
number of queries, and the chance level of recall@1 (a random ranking: the mean share of
true matches in the database; ``split.json`` records it per split, and the record keeps
both).

Robustness (a second table): the queries perturbed on top of the perturbations the
benchmark already gives them (:func:`~domainvit.tasks.lidar_place.analysis.
default_sweeps`): a rotation about z of 0, 90 and 180°; the density lowered to 0.25 and
0.5 (a random share of the points kept) and raised x4 (every point repeated with 0.3 m
of horizontal jitter: a denser survey of the same surfaces); gaussian noise of 0.1 and
0.3 m; an occluded sector of 90 and 180°; the crop centre moved 5 and 10 m (the points
beyond the radius around the moved centre dropped). Each perturbation is seeded by the
query's file name and ``--seed``. The database is never perturbed. As the benchmark's
queries already have random headings, the rotation rows show whether results depend on
the heading; ``top-1 kept`` is the share of queries whose best match stays the one they
get unperturbed.

``--quick`` scores 8 queries (evenly spaced through the list) to check the script; its
numbers mean nothing. Writes the JSON and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_hsi import cpu_name  # the benchmarks folder is on the path of its scripts

from domainvit.datasets.pointcloud import read_place_folder
from domainvit.errors import UserError
from domainvit.tasks.lidar_place import analysis as lp
from domainvit.tasks.lidar_place.metrics import MAX_N, ranked_recall

HOTFORMER, POINTNET = "HOTFormerLoc", "PointNet"
QUICK_QUERIES = 8
KEYS = ("recall_at_1", "recall_at_1pct", "recall_at_5", "recall_at_25", "mrr")


def machine(load_before: float) -> dict:
    """The machine of a measurement: CPU, cores, torch threads and versions, and the
    1-minute load average before (given) and now."""
    return {"cpu": cpu_name(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2)}


def summary(scores: dict) -> dict:
    """The reported numbers of one method's :func:`ranked_recall` result."""
    curve = scores["recall_at_n"]
    return {"recall_at_1": round(scores["recall_at_1"], 4),
            "recall_at_1pct": round(scores["recall_at_1pct"], 4),
            "one_percent_n": scores["one_percent_n"],
            "recall_at_5": round(curve[4], 4), "recall_at_25": round(curve[24], 4),
            "mrr": round(scores["mrr"], 4), "queries": scores["queries"],
            "queries_without_positive": scores["queries_without_positive"],
            "recall_at_n": [round(v, 4) for v in curve]}


def _split_chance(folder: Path) -> float | None:
    """``chance_recall_at_1`` of ``split.json`` beside a lidar-autzen split folder."""
    record = folder.parent / "split.json"
    try:
        counts = json.loads(record.read_text())["counts"]
        return counts[folder.name]["chance_recall_at_1"]
    except (OSError, ValueError, KeyError):
        return None


def markdown(record: dict) -> str:
    n1 = next(iter(record["results"].values()))["one_percent_n"]
    lines = [f"# {record['benchmark']}", "",
             f"Place folder `{record['folder']}`: {record['database']} database submaps, "
             f"{record['queries']} queries; a true match lies within "
             f"{record['positive_m']:g} m. Chance recall@1 (random ranking): "
             f"{record['chance_recall_at_1']:.3f}.", "",
             f"| method | recall@1 | recall@1% (N={n1}) | recall@5 | recall@25 | MRR | "
             f"queries |", "|---|---|---|---|---|---|---|"]
    for method, r in record["results"].items():
        lines.append(f"| {method} | {r['recall_at_1']:.3f} | {r['recall_at_1pct']:.3f} | "
                     f"{r['recall_at_5']:.3f} | {r['recall_at_25']:.3f} | {r['mrr']:.3f} | "
                     f"{r['queries']} |")
    methods = list(record["results"])
    lines += ["", "Robustness: recall@1 / recall@5 (kept: the share of queries whose best "
                  "match is the unperturbed one). The queries are perturbed on top of the "
                  "benchmark's own perturbations (they already have random headings), the "
                  "database is not; density x4: every point repeated with 0.3 m of "
                  "horizontal jitter (a denser survey of the same surfaces); crop centre "
                  "offset: the points beyond the radius around a displaced centre dropped; "
                  f"seed {record['seed']}.", "",
              "| perturbation | " + " | ".join(methods) + " |",
              "|---|" + "---|" * len(methods)]
    by_label: dict[str, dict[str, dict]] = {}
    for row in record["robustness"]:
        by_label.setdefault(row["label"], {})[row["method"]] = row
    for label, cells in by_label.items():
        shown = [f"{cells[m]['recall_at_1']:.3f} / {cells[m]['recall_at_5']:.3f} "
                 f"(kept {cells[m]['top1_unchanged']:.2f})" if m in cells else "-"
                 for m in methods]
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    m = record["machine"]
    lines += ["", f"{record['seconds']} s in all; CPU: {m['cpu']}, {m['cores']} cores, "
                  f"{m['torch_threads']} torch threads, torch {m['torch']}, {m['platform']}; "
                  f"1-min load average {m['load_average_before']} before, "
                  f"{m['load_average_after']} after", "", "Models: " + record["models"], ""]
    if record["quick"]:
        lines.insert(2, f"**--quick: {record['queries']} queries only, a check of the script; "
                        f"the numbers mean nothing.**\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/lidar_place_results.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path,
                        default=Path("tasks/lidar_place/weights/quickstart.safetensors"),
                        help="HOTFormerLoc checkpoint (config lidar_place/quickstart)")
    parser.add_argument("--pointnet", type=Path,
                        default=Path("tasks/lidar_place/weights/quickstart_pointnet.safetensors"),
                        help="PointNet checkpoint (config lidar_place/quickstart_pointnet)")
    parser.add_argument("--folder", type=Path,
                        help="a place folder (default: lidar-autzen's test folder)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_QUERIES} queries only, to check the script")
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/lidar_place_autzen.json"))
    args = parser.parse_args(argv)
    try:
        for path in (args.checkpoint, args.pointnet):
            if not path.exists():
                raise UserError(f"checkpoint {path} does not exist")
        models = {HOTFORMER: lp.load_model("lidar_place/quickstart", args.checkpoint),
                  POINTNET: lp.load_model("lidar_place/quickstart_pointnet", args.pointnet)}
        folder = (read_place_folder(args.folder) if args.folder is not None
                  else lp.benchmark_folder("test"))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    data = models[HOTFORMER][1].data
    if args.quick:
        folder = lp.subset_queries(folder, QUICK_QUERIES)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    ranks = {name: lp.model_ranks(model, cfg, folder, seed=args.seed)
             for name, (model, cfg) in models.items()}
    ranks[lp.SCAN_CONTEXT] = lp.scan_context_ranks(folder, radius=data.radius)
    db_pos, q_pos = lp.positions(folder.database), lp.positions(folder.queries)
    results = {}
    for name, ranking in ranks.items():
        print(f"re-ranking {name} ...", file=sys.stderr)
        for shown, r in ((name, ranking), (lp.RERANKED.format(name), lp.rerank_ranks(
                models[HOTFORMER][1], folder, ranking, seed=args.seed))):
            results[shown] = summary(ranked_recall(r, db_pos, q_pos,
                                                   positive_m=data.positive_m, max_n=MAX_N))
    for name, r in results.items():
        print(f"{name}: " + ", ".join(f"{k} {r[k]:.3f}" for k in KEYS), file=sys.stderr)
    robustness = lp.robustness_table(
        models, folder, lp.default_sweeps(data.radius), radius=data.radius,
        positive_m=data.positive_m, seed=args.seed, reranked=(HOTFORMER, POINTNET),
        progress=lambda step: print(f"robustness: {step}", file=sys.stderr))
    robustness = [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                  for row in robustness]
    seconds = round(time.perf_counter() - started, 1)
    root = folder.root.resolve()
    record = {
        "benchmark": "lidar_place: place recognition on the held-out area of lidar-autzen "
                     "(HOTFormerLoc, PointNet, Scan Context)",
        "folder": str(root), "quick": args.quick,
        "database": len(folder.database), "queries": len(folder.queries),
        "positive_m": data.positive_m, "radius_m": data.radius, "points": data.points,
        "chance_recall_at_1": round(lp.chance_recall_at_1(folder, data.positive_m), 4),
        "chance_recall_at_1_split_json": _split_chance(root),
        "seed": args.seed,
        "models": (f"{HOTFORMER}: lidar_place/quickstart ({args.checkpoint}); {POINTNET}: "
                   f"lidar_place/quickstart_pointnet ({args.pointnet}); "
                   f"{lp.SCAN_CONTEXT}: 20 rings x 60 sectors to {data.radius:g} m, "
                   f"ring-key search with 10 candidates re-ranked; + re-ranking: the first "
                   f"{data.rerank_top_k or lp.RERANK_TOP_K} matches re-ranked by height-map "
                   f"alignment ({data.rerank_cell_m:g} m cells, "
                   f"{data.rerank_yaw_step_deg:g} degree yaw steps, "
                   f"{data.rerank_reach:g} x the radius)"),
        "machine": machine(load_before),
        "seconds": seconds,
        "results": results,
        "robustness": robustness,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
