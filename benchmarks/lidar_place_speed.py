"""Lidar place recognition speed: descriptors per second of HOTFormerLoc against the points
per submap, with PointNet and Scan Context for reference.

    python benchmarks/lidar_place_speed.py \\
        [--checkpoint tasks/lidar_place/weights/quickstart.safetensors] \\
        [--pointnet tasks/lidar_place/weights/quickstart_pointnet.safetensors] \\
        [--points 1024 2048 4096 16384] [--batches 16 1] [--repeats 5] [--warmup 1] \\
        [--threads N] [--device cpu|cuda] [--quick] \\
        [--out benchmarks/results/lidar_place_speed.json]

Submaps. :data:`SUBMAPS` real submaps of the submap radius (20 m, the models' octree
extent) are cut from the training cloud of the prepared ``lidar-autzen`` benchmark
(``train/cloud.npy``, real aerial lidar; a few thousand points in 20 m, the record lists
how many) around random centres (seeded) with at least :data:`MIN_REAL_POINTS` points,
in local coordinates (minus the centre, minus the median height), the intensity
normalised as a file's is. For ``P`` points per submap, a submap with fewer than ``P``
real points is *densified*: every point is repeated ``ceil(P / n)`` times (once more
while the pre-processing's crop leaves fewer than ``P``) with 0.3 m of horizontal
gaussian jitter (:func:`domainvit.tasks.lidar_place.analysis.densify`: a denser survey
of the same surfaces; the sample data has no denser cloud). The pre-processing of
evaluation (``data.points = P``) then keeps exactly ``P`` points, so every row reaching
the model is a point, none is padding. The radius stays the models' 20 m: a larger cut
would put points outside the octree box of the checkpoint (its ``extent``), which clamps
them onto the box's faces. The record lists the real points of the submaps, the
densification factors and the occupied octree cells the HOTFormerLoc checkpoint sees at
each ``P`` (its attention runs over octree nodes, not points: once the points are mapped
to their cells, its cost follows the occupied cells).

Measured, on pre-processed submaps already on the device: the model's forward pass (no
gradients) on batches of 16 and of 1 submaps, ``--warmup`` untimed passes, then the
median of ``--repeats`` timed passes; descriptors per second = batch / median seconds.
The pre-processing (crop, centre, random subset; CPU) is timed apart, per submap. Scan
Context (NumPy, one submap at a time on the CPU): its descriptor of the ``P`` points and
the query of that descriptor against an index of the held-out test database (ring-key
search, 10 candidates re-ranked), medians over the submaps.

Growth: ``(time at 16,384 points / time at 4,096) / 4``, the time per descriptor at
four times the points relative to four times the time: at most 1 means the time grows
at most linearly with the points. Torch uses ``--threads`` threads (default: every
core). ``--device cuda`` measures the models on the GPU (synchronised around every
timed pass). ``--quick`` (4,096 and 16,384 points, batches 2 and 1, one repeat) checks
the script; its numbers mean little. Writes the JSON and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from lidar_place_results import machine  # the benchmarks folder is on the path

from domainvit.datasets.lidar_autzen import LIDAR_AUTZEN, read_train_cloud
from domainvit.datasets.pointcloud import PointCloud, normalise_intensity
from domainvit.datasets.registry import prepare
from domainvit.errors import UserError
from domainvit.registry import load_tasks
from domainvit.tasks.lidar_place import analysis as lp
from domainvit.tasks.lidar_place.data import cloud_rows, file_rng
from domainvit.tasks.lidar_place.octree import build_leaves

HOTFORMER, POINTNET = "HOTFormerLoc", "PointNet"
#: real submaps cut (the largest batch takes the first of them)
SUBMAPS = 16
#: a submap centre needs at least this many real points within the radius
MIN_REAL_POINTS = 1500
SEED = 0


def real_submaps(folder: Path, radius: float, count: int, seed: int = SEED
                 ) -> list[PointCloud]:
    """``count`` submaps of ``radius`` m cut from the training cloud of a prepared
    lidar-autzen folder around random centres with at least :data:`MIN_REAL_POINTS`
    points, in local coordinates."""
    from scipy.spatial import cKDTree

    cloud = read_train_cloud(folder)
    tree = cKDTree(cloud[:, :2])
    low, high = cloud[:, :2].min(axis=0) + radius, cloud[:, :2].max(axis=0) - radius
    rng = np.random.default_rng(seed)
    submaps = []
    for _ in range(100 * count):
        centre = rng.uniform(low, high)
        index = np.asarray(tree.query_ball_point(centre, radius), dtype=np.int64)
        if len(index) < MIN_REAL_POINTS:
            continue
        xyz = cloud[index, :3] - np.array([*centre, 0.0])
        xyz[:, 2] -= np.median(xyz[:, 2])
        submaps.append(PointCloud(xyz, normalise_intensity(cloud[index, 3]),
                                  f"train submap {len(submaps)}"))
        if len(submaps) == count:
            return submaps
    raise UserError(f"found {len(submaps)} of {count} submaps with {MIN_REAL_POINTS} points "
                    f"in {folder / 'train'}")


def submap_rows(submaps: list[PointCloud], data, points: int) -> tuple[np.ndarray, list, list]:
    """``[len(submaps), points, 5]`` pre-processed rows at ``points`` points each (a
    submap densified by the smallest factor that leaves at least ``points`` points after
    the pre-processing's crop), the densification factors and the pre-processing seconds
    per submap."""
    data = data.model_copy(update={"points": points})
    rows, factors, seconds = [], [], []
    for real in submaps:
        factor = max(1, math.ceil(points / len(real.xyz)))
        while True:  # the crop around the cloud's centre may drop a few edge points
            cloud = (real if factor == 1 else
                     lp.densify(factor)(real, lp.perturbation_rng(real.source, SEED)))
            start = time.perf_counter()
            row = cloud_rows(cloud, data, file_rng(f"{real.source}.bin"))[1]
            elapsed = time.perf_counter() - start
            if int(row[:, 4].sum()) == points:
                break
            factor += 1
        rows.append(row)
        seconds.append(elapsed)
        factors.append(factor)
    return np.stack(rows), factors, seconds


def octree_cells(model: torch.nn.Module, rows: np.ndarray) -> dict[str, float]:
    """Mean occupied octree cells per submap at the model's leaf depth and at the depth
    of its first attention stage."""
    points = torch.from_numpy(rows)
    leaves, _, _ = build_leaves(points[..., :3] / model.extent.cpu(), points[..., 4] > 0.5,
                                model.cfg.depth)
    down = 8 ** model.cfg.stem_downsample
    stage = torch.unique(leaves.keys // down).numel()
    return {"leaves": round(leaves.keys.numel() / len(rows), 1),
            "stage1_nodes": round(stage / len(rows), 1)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(model: torch.nn.Module, batch: torch.Tensor, warmup: int, repeats: int
               ) -> list[float]:
    """Seconds of ``repeats`` timed forward passes after ``warmup`` untimed ones."""
    device = batch.device
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            model(batch)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def time_scan_context(rows: np.ndarray, index, radius: float) -> tuple[float, float]:
    """Median seconds per submap of Scan Context's descriptor and of its query."""
    from domainvit.tasks.lidar_place.scan_context import scan_context

    describe, query = [], []
    for r in rows:
        xyz = r[r[:, 4] > 0.5, :3]
        start = time.perf_counter()
        desc = scan_context(xyz, max_radius=radius)
        describe.append(time.perf_counter() - start)
        start = time.perf_counter()
        index.query(desc, k=25)
        query.append(time.perf_counter() - start)
    return statistics.median(describe), statistics.median(query)


def growth(rows: list[dict], method: str, batch: int, low: int = 4096, high: int = 16384
           ) -> dict | None:
    by_points = {r["points"]: r for r in rows if r["method"] == method and r["batch"] == batch}
    if low not in by_points or high not in by_points:
        return None
    ratio = (by_points[high]["ms_per_descriptor"] / by_points[low]["ms_per_descriptor"]
             / (high / low))
    return {"method": method, "batch": batch, "from_points": low, "to_points": high,
            "ratio": round(ratio, 3), "at_most_linear": bool(ratio <= 1.0)}


def markdown(record: dict) -> str:
    lines = [f"# {record['benchmark']}", ""]
    if record["quick"]:
        lines += ["**--quick: a check of the script; the numbers mean little.**", ""]
    columns = [(r["method"], r["batch"]) for r in record["models"]]
    columns = list(dict.fromkeys(columns))
    lines += ["Descriptors per second (median of the timed passes; ms per descriptor in "
              "brackets). Scan Context: one submap at a time, descriptor + query.", "",
              "| points | " + " | ".join(f"{m} batch {b}" for m, b in columns)
              + " | Scan Context | octree leaves (stage-1 nodes) |",
              "|---|" + "---|" * (len(columns) + 2)]
    for points in record["points"]:
        cells = []
        for method, batch in columns:
            r = next((r for r in record["models"] if r["method"] == method
                      and r["batch"] == batch and r["points"] == points), None)
            cells.append("-" if r is None else
                         f"{r['descriptors_per_second']:.1f} ({r['ms_per_descriptor']:.1f})")
        sc = next(r for r in record["scan_context"] if r["points"] == points)
        cells.append(f"{sc['submaps_per_second']:.1f} ({sc['descriptor_ms'] + sc['query_ms']:.2f})")
        cells.append(f"{record['octree'][str(points)]['leaves']:.0f} "
                     f"({record['octree'][str(points)]['stage1_nodes']:.0f})")
        lines.append(f"| {points} | " + " | ".join(cells) + " |")
    if record["growth"]:
        lines += ["", "Growth (time per descriptor at 16,384 points / at 4,096, divided by 4; "
                      "at most 1: at most linear in the points):", "",
                  "| method | batch | ratio | at most linear |", "|---|---|---|---|"]
        lines += [f"| {g['method']} | {g['batch']} | {g['ratio']:.3f} | "
                  f"{'yes' if g['at_most_linear'] else 'no'} |" for g in record["growth"]]
    sub = record["submaps"]
    lines += ["", f"Submaps: {sub['count']} real {sub['radius_m']:g} m submaps of "
                  f"lidar-autzen's training cloud ({sub['real_points_min']}-"
                  f"{sub['real_points_max']} real points, median {sub['real_points_median']}); "
                  f"densified where they hold fewer points than measured (factors per point "
                  f"count: {sub['densify_factors']}), 0.3 m horizontal jitter. "
                  f"Pre-processing (ms per submap, CPU): "
                  + ", ".join(f"{p}: {v}" for p, v in record["preprocess_ms"].items()) + ".",
              ""]
    m = record["machine"]
    lines += [f"Device: {record['device']}; {record['repeats']} timed passes after "
              f"{record['warmup']} warm-up. CPU: {m['cpu']}, {m['cores']} cores, "
              f"{m['torch_threads']} torch threads, torch {m['torch']}, {m['platform']}; "
              f"1-min load average {m['load_average_before']} before, "
              f"{m['load_average_after']} after", "", "Models: " + record["checkpoints"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/lidar_place_speed.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path,
                        default=Path("tasks/lidar_place/weights/quickstart.safetensors"))
    parser.add_argument("--pointnet", type=Path,
                        default=Path("tasks/lidar_place/weights/quickstart_pointnet.safetensors"))
    parser.add_argument("--points", type=int, nargs="+", default=[1024, 2048, 4096, 16384])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads (default: every core)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="a short check of the script")
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/lidar_place_speed.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.points, args.batches, args.repeats = [4096, 16384], [2, 1], 1
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 1
    if max(args.batches) > SUBMAPS or min(args.batches) < 1 or args.repeats < 1:
        print(f"error: batches must be 1 to {SUBMAPS}, repeats at least 1", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        for path in (args.checkpoint, args.pointnet):
            if not path.exists():
                raise UserError(f"checkpoint {path} does not exist")
        models = {HOTFORMER: lp.load_model("lidar_place/quickstart", args.checkpoint),
                  POINTNET: lp.load_model("lidar_place/quickstart_pointnet", args.pointnet)}
        load_tasks()
        dataset = prepare(LIDAR_AUTZEN)
        data = models[HOTFORMER][1].data
        submaps = real_submaps(dataset, data.radius, SUBMAPS)
        test = lp.benchmark_folder("test")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    from domainvit.tasks.lidar_place.scan_context import ScanContextIndex

    index = ScanContextIndex(lp.scan_context_descriptors(test.database, test.bin_format,
                                                         radius=data.radius))
    load_before = os.getloadavg()[0]
    rows, scan_rows, preprocess, octree, factors = [], [], {}, {}, {}
    for points in args.points:
        batch_rows, used, seconds = submap_rows(submaps, data, points)
        factors[str(points)] = sorted(set(used))
        preprocess[str(points)] = round(1000 * statistics.median(seconds), 2)
        octree[str(points)] = octree_cells(models[HOTFORMER][0], batch_rows)
        for name, (model, _) in models.items():
            model.to(device)
            for batch in args.batches:
                tensor = torch.from_numpy(batch_rows[:batch]).to(device)
                times = time_model(model, tensor, args.warmup, args.repeats)
                median = statistics.median(times)
                rows.append({"method": name, "points": points, "batch": batch,
                             "seconds_per_batch": round(median, 5),
                             "timed_seconds": [round(t, 5) for t in times],
                             "descriptors_per_second": round(batch / median, 2),
                             "ms_per_descriptor": round(1000 * median / batch, 3)})
                print(f"{name} {points} points batch {batch}: "
                      f"{batch / median:.1f} descriptors/s", file=sys.stderr)
        describe_s, query_s = time_scan_context(batch_rows, index, data.radius)
        scan_rows.append({"points": points, "descriptor_ms": round(1000 * describe_s, 3),
                          "query_ms": round(1000 * query_s, 3),
                          "submaps_per_second": round(1.0 / (describe_s + query_s), 1)})
    growths = [g for name in (HOTFORMER, POINTNET) for batch in args.batches
               if (g := growth(rows, name, batch)) is not None]
    sc = {r["points"]: r for r in scan_rows}
    if 4096 in sc and 16384 in sc:
        ratio = ((sc[16384]["descriptor_ms"] + sc[16384]["query_ms"])
                 / (sc[4096]["descriptor_ms"] + sc[4096]["query_ms"]) / 4)
        growths.append({"method": lp.SCAN_CONTEXT, "batch": 1, "from_points": 4096,
                        "to_points": 16384, "ratio": round(ratio, 3),
                        "at_most_linear": bool(ratio <= 1.0)})
    real = [len(s.xyz) for s in submaps]
    record = {
        "benchmark": "lidar_place: descriptors per second against points per submap "
                     "(HOTFormerLoc, PointNet, Scan Context)",
        "quick": args.quick, "device": (torch.cuda.get_device_name(device)
                                        if device.type == "cuda" else "cpu"),
        "points": args.points, "batches": args.batches, "repeats": args.repeats,
        "warmup": args.warmup,
        "checkpoints": (f"{HOTFORMER}: lidar_place/quickstart ({args.checkpoint}); "
                        f"{POINTNET}: lidar_place/quickstart_pointnet ({args.pointnet}); "
                        f"{lp.SCAN_CONTEXT}: 20 x 60, index of the {len(test.database)} "
                        f"test database submaps"),
        "submaps": {"count": len(submaps), "radius_m": data.radius,
                    "source": f"{LIDAR_AUTZEN} train/cloud.npy",
                    "real_points_min": int(min(real)), "real_points_max": int(max(real)),
                    "real_points_median": int(np.median(real)),
                    "densify_factors": factors, "densify_jitter_m": lp.DENSIFY_JITTER_M},
        "octree": octree, "preprocess_ms": preprocess,
        "models": rows, "scan_context": scan_rows, "growth": growths,
        "machine": machine(load_before),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
