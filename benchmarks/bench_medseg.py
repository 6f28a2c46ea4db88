"""The brain-lobes segmentation benchmark, scored in each test scan's native 1 mm space.

For each trained model (config + checkpoint) every test volume (the MNI152 template in
random poses) goes through the same path as ``domainvit predict``: read, resample to the
model's spacing, sliding windows, back to the scan's grid, label map written as NIfTI.
The written label map is scored against the scan's own label map with MONAI's Dice and
95% Hausdorff distance (mm). The "copy the atlas" baseline (the Colin27 lobe map
resampled onto each scan through the affines, blind to the pose) is scored the same way.
The wall time of each prediction (file in, file out) is recorded too.

    python benchmarks/bench_medseg.py medseg/quickstart3d=runs/qs3d/checkpoints/best.safetensors \
        [more CONFIG=CHECKPOINT ...] [--out benchmarks/results/medseg_brain_lobes.json]

writes the JSON and a markdown table (same name, ``.md``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from domainvit.config import load_config
from domainvit.datasets import brain
from domainvit.datasets.registry import prepare
from domainvit.engine import predict
from domainvit.registry import load_tasks
from domainvit.tasks.medseg.metrics import SegmentationMetrics


def score(metrics: SegmentationMetrics, predicted: np.ndarray, truth: np.ndarray) -> None:
    metrics.update_labels(torch.from_numpy(predicted.astype(np.int64))[None, None],
                          torch.from_numpy(truth.astype(np.int64))[None, None])


def summary(metrics: SegmentationMetrics) -> dict[str, float]:
    return {name: round(float(value), 4) for name, value in metrics.compute().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="CONFIG=CHECKPOINT")
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/medseg_brain_lobes.json"))
    args = parser.parse_args(argv)
    load_tasks()
    root = prepare(brain.BRAIN_LOBES)
    cases = sorted((root / "test").glob("*_t1.nii.gz"))
    truths = {c: np.asarray(nib.load(str(c).replace("_t1.", "_lobes.")).dataobj) for c in cases}
    atlas = nib.load(root / "train" / "colin27_lobes.nii.gz")
    spacing = (1.0, 1.0, 1.0)

    baseline = SegmentationMetrics(brain.CLASS_NAMES, spacing)
    for case in cases:
        score(baseline, brain.atlas_copy(atlas, nib.load(case)), truths[case])
    results = {"atlas copy": {**summary(baseline), "predict_seconds": None}}

    for spec in args.models:
        config, _, checkpoint = spec.partition("=")
        cfg = load_config(config)
        metrics = SegmentationMetrics(brain.CLASS_NAMES, spacing)
        seconds = []
        with tempfile.TemporaryDirectory() as out:
            for case in cases:
                start = time.perf_counter()
                (written, *_) = predict(config, checkpoint, [str(case)], out)
                seconds.append(time.perf_counter() - start)
                score(metrics, np.asarray(nib.load(written).dataobj), truths[case])
                print(f"{config}: {case.name} in {seconds[-1]:.1f} s", file=sys.stderr)
        name = f"{cfg.model.name} {cfg.data.spatial_dims}D ({config})"
        results[name] = {**summary(metrics), "predict_seconds": round(float(np.median(seconds)), 2)}

    record = {
        "benchmark": "brain-lobes test split: MNI152 in 4 random poses, scored at 1 mm",
        "machine": {"cpu_count": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "platform": platform.platform()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


def markdown(record: dict) -> str:
    classes = brain.CLASS_NAMES[1:]
    lines = [f"# {record['benchmark']}", "",
             f"torch {record['machine']['torch']}, {record['machine']['cpu_count']} threads.", "",
             "| method | mean Dice | HD95 (mm) | predict s/scan | "
             + " | ".join(classes) + " |",
             "|---" * (4 + len(classes)) + "|"]
    for name, r in record["results"].items():
        seconds = "-" if r["predict_seconds"] is None else f"{r['predict_seconds']:.1f}"
        lines.append(f"| {name} | {r['dice']:.3f} | {r['hd95_mm']:.1f} | {seconds} | "
                     + " | ".join(f"{r[f'dice_{c}']:.3f}" for c in classes) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
