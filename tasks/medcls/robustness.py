"""Robustness under MedMNIST-C-style corruptions: accuracy per corruption and severity."""

from __future__ import annotations

from collections.abc import Sequence

from domainvit.datasets.corruptions import CORRUPTIONS


def robustness(config: str, checkpoint: str, corruptions: Sequence[str] = CORRUPTIONS,
               severities: Sequence[int] = (1, 3, 5), split: str | None = None,
               overrides: Sequence[str] = ()) -> list[dict[str, object]]:
    """Evaluate a checkpoint on clean data and on every corruption at every severity.

    Returns one row per evaluation: ``corruption`` (``"none"`` for clean data),
    ``severity`` (0 for clean) and the task's metrics.
    """
    from domainvit.engine import evaluate

    rows = [{"corruption": "none", "severity": 0,
             **evaluate(config, checkpoint, overrides, split)}]
    for name in corruptions:
        for severity in severities:
            extra = [f"data.corruption={name}", f"data.severity={severity}"]
            metrics = evaluate(config, checkpoint, [*overrides, *extra], split)
            rows.append({"corruption": name, "severity": severity, **metrics})
    return rows


def markdown_table(rows: list[dict[str, object]], metric: str = "accuracy") -> str:
    """Rows of :func:`robustness` as a corruption x severity table of one metric."""
    severities = sorted({int(r["severity"]) for r in rows if r["corruption"] != "none"})
    clean = next(r for r in rows if r["corruption"] == "none")
    lines = [f"| corruption | {' | '.join(f'severity {s}' for s in severities)} |",
             "|---" * (len(severities) + 1) + "|",
             f"| none (clean) | {float(clean[metric]):.3f}{' |' * len(severities)}"]
    for name in dict.fromkeys(r["corruption"] for r in rows if r["corruption"] != "none"):
        values = {int(r["severity"]): float(r[metric]) for r in rows if r["corruption"] == name}
        lines.append(f"| {name} | " + " | ".join(f"{values[s]:.3f}" for s in severities) + " |")
    return "\n".join(lines) + "\n"



