"""The brain-mnist classification benchmark: test metrics and robustness to corruptions.

Evaluates a trained model (config + checkpoint) on the test split (crops of the MNI152
template: another brain than the training one) clean and under every MedMNIST-C-style
corruption of :mod:`domainvit.datasets.corruptions` at severities 1, 3 and 5.

    python benchmarks/bench_medcls.py medcls/quickstart runs/medcls/checkpoints/best.safetensors \
        [--out benchmarks/results/medcls_brain_mnist.json]

writes the JSON and a markdown table (same name, ``.md``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from domainvit.registry import load_tasks
from domainvit.tasks.medcls.robustness import markdown_table, robustness

METRICS = ("accuracy", "balanced_accuracy", "auc_macro", "ece")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/medcls_brain_mnist.json"))
    args = parser.parse_args(argv)
    load_tasks()
    rows = robustness(args.config, args.checkpoint)
    record = {
        "benchmark": "brain-mnist test split (MNI152 crops), clean and corrupted",
        "config": args.config,
        "machine": {"torch": torch.__version__, "python": platform.python_version()},
        "rows": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                 for row in rows],
    }
    clean = rows[0]
    text = (f"# {record['benchmark']}\n\n`{args.config}`: "
            + ", ".join(f"{m} {clean[m]:.3f}" for m in METRICS if m in clean)
            + "\n\nAccuracy under corruption:\n\n" + markdown_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
