"""Holography on the held-out test set of ``holo-cells``: HoloPASWIN against plain ASM
back-propagation, iterative twin-image removal and the U-Net, in focus, with the distance
off by 0.5 mm, and with autofocus.

    python benchmarks/holography_results.py \\
        [--checkpoint tasks/holography/weights/quickstart.safetensors] \\
        [--unet tasks/holography/weights/quickstart_unet.safetensors] \\
        [--limit N] [--out benchmarks/results/holography_holo_cells.json]

Test set: the prepared ``holo-cells`` test split (``domainvit data prepare holo-cells``):
held-out procedural objects (seed stream 3) and crops of the real phase image
``skimage.data.cell()``, which no model trained on; z 3-9 mm, the eight noise settings,
8-16 bit. Scores (``tasks/holography/metrics.py``): phase and amplitude PSNR and SSIM
after removing the global phase offset (phase data range 2 pi, amplitude 1), RMS phase
error; means over holograms, overall and per source.

Distances:
- ``in focus``: the true distance; ``in focus, refined``: the true distance refined by
  autofocus within ``data.refine_mm`` (what refinement costs when the distance is right);
- ``z +0.5 mm`` / ``z -0.5 mm``: the true distance off by 0.5 mm, given as is (no method
  corrects it, the models only by what they learned from the distance jitter);
- ``z +0.5 mm, refined``: the same, then autofocus within ``data.refine_mm`` (1 mm) of it,
  inside the trained range: what ``domainvit predict`` does with a given distance;
- ``autofocus``: no distance given; autofocus over the trained range (3-9 mm).
The autofocus error (mm) is reported for the last two. ``--limit`` scores the first N
holograms (a quick check of the script; its numbers mean little). Writes the JSON and a
markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_hsi import cpu_name  # the benchmarks folder is on the path of its scripts

from domainvit.analysis.common import load_model
from domainvit.datasets.holo_cells import HOLO_CELLS, load_benchmark, normalise_hologram
from domainvit.datasets.registry import prepare
from domainvit.tasks.holography import analysis as ha

OFFSET_MM = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path,
                        default=Path("tasks/holography/weights/quickstart.safetensors"))
    parser.add_argument("--unet", type=Path,
                        default=Path("tasks/holography/weights/quickstart_unet.safetensors"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--twin-iterations", type=int, default=50)
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/holography_holo_cells.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    arrays = load_benchmark(prepare(HOLO_CELLS), "test")
    if args.limit:
        arrays = {k: v[:args.limit] for k, v in arrays.items()}
    holograms = normalise_hologram(arrays["holograms"])
    truth, z_true, sources = arrays["fields"], arrays["z_m"], arrays["source"]
    models = {"HoloPASWIN": load_model("holography/quickstart", args.checkpoint),
              "U-Net": load_model("holography/quickstart_unet", args.unet)}
    data = models["HoloPASWIN"][1].data
    wavelength, pixel, pad = data.wavelength_m, data.pixel_m, data.pad_factor

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr)

    log("autofocus over the trained range")
    z_auto = ha.autofocus_distances(holograms, data)
    log("autofocus around z + 0.5 mm and around z")
    z_refined = ha.refine_distances(holograms, z_true + OFFSET_MM * 1e-3, data)
    z_refined_true = ha.refine_distances(holograms, z_true, data)
    conditions = {
        "in focus": z_true,
        "in focus, refined": z_refined_true,
        f"z +{OFFSET_MM} mm": z_true + OFFSET_MM * 1e-3,
        f"z -{OFFSET_MM} mm": z_true - OFFSET_MM * 1e-3,
        f"z +{OFFSET_MM} mm, refined": z_refined,
        "autofocus": z_auto,
    }
    methods = {
        "ASM back-propagation": lambda z: ha.backprop_fields(holograms, z, wavelength, pixel,
                                                             pad),
        "twin-image removal": lambda z: ha.twin_fields(holograms, z, wavelength, pixel, pad,
                                                       iterations=args.twin_iterations),
    }
    for name, (model, _) in models.items():
        methods[name] = (lambda m: lambda z: ha.model_fields(m, holograms, z, wavelength,
                                                             pixel))(model)
    results: dict[str, dict] = {}
    for method, run in methods.items():
        results[method] = {}
        for condition, z in conditions.items():
            log(f"{method}: {condition}")
            results[method][condition] = ha.summarise(ha.score_fields(run(z), truth), sources)
    focus_errors = {
        "autofocus": np.abs(z_auto - z_true) * 1e3,
        f"z +{OFFSET_MM} mm, refined": np.abs(z_refined - z_true) * 1e3,
        "in focus, refined": np.abs(z_refined_true - z_true) * 1e3,
    }
    record = {
        "benchmark": f"{HOLO_CELLS} test split",
        "holograms": int(len(z_true)),
        "sources": {s: int((sources == s).sum()) for s in sorted(set(sources.tolist()))},
        "checkpoints": {"HoloPASWIN": str(args.checkpoint), "U-Net": str(args.unet)},
        "parameters": {name: sum(p.numel() for p in m.parameters())
                       for name, (m, _) in models.items()},
        "results": results,
        "autofocus_error_mm": {k: {"median": float(np.median(v)), "mean": float(np.mean(v)),
                                   "p90": float(np.percentile(v, 90)),
                                   "max": float(np.max(v))}
                               for k, v in focus_errors.items()},
        "machine": {"cpu": cpu_name(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "seconds": round(time.perf_counter() - started, 1),
        "limit": args.limit,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


def markdown(record: dict) -> str:
    conditions = list(next(iter(record["results"].values())))
    lines = [
        f"# Holography on {record['benchmark']} ({record['holograms']} holograms: "
        + ", ".join(f"{n} {s}" for s, n in record["sources"].items()) + ")",
        "",
        "Phase PSNR (dB, data range 2 pi, global phase offset removed), mean over holograms:",
        "",
        "| method | " + " | ".join(conditions) + " |",
        "|---|" + "---|" * len(conditions),
    ]
    for method, by_condition in record["results"].items():
        lines.append(f"| {method} | " + " | ".join(
            f"{by_condition[c]['all']['phase_psnr']:.2f}" for c in conditions) + " |")
    lines += ["", "In focus, every score (all holograms; real-cell crops only in brackets):", "",
              "| method | phase PSNR | phase SSIM | phase RMSE (rad) | amplitude PSNR | "
              "amplitude SSIM |", "|---|---|---|---|---|---|"]
    for method, by_condition in record["results"].items():
        scores = by_condition["in focus"]
        real = scores.get("real-cell", {})
        cells = []
        for key, fmt in (("phase_psnr", ".2f"), ("phase_ssim", ".3f"), ("phase_rmse", ".3f"),
                         ("amplitude_psnr", ".2f"), ("amplitude_ssim", ".3f")):
            text = format(scores["all"][key], fmt)
            if real:
                text += f" ({format(real[key], fmt)})"
            cells.append(text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Autofocus error (mm):", "", "| search | median | mean | p90 | max |",
              "|---|---|---|---|---|"]
    for search, e in record["autofocus_error_mm"].items():
        lines.append(f"| {search} | {e['median']:.3f} | {e['mean']:.3f} | {e['p90']:.3f} | "
                     f"{e['max']:.3f} |")
    lines += ["", "Parameters: " + ", ".join(f"{k} {v:,}" for k, v in
                                               record["parameters"].items()),
              f"Machine: {record['machine']['cpu']}, torch {record['machine']['torch']}; "
              f"{record['seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
