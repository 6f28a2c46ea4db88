"""Point files in, class predictions out: ``.csv`` (x,y per row) or ``.npy`` ([N, 2])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from domainvit.confidence import ConfidenceSummary
from domainvit.distribution import Finding, InputGuard, quantile_shift, quantiles, warn
from domainvit.errors import UserError
from domainvit.files import atomic_write

MAX_POINTS = 10_000_000


def read_points(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            points = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            points = np.loadtxt(path, delimiter=",", ndmin=2, comments="#",
                                skiprows=_header_rows(path))
        else:
            raise UserError(f"{path}: expected a .csv or .npy file of points")
    except ValueError as exc:
        raise UserError(f"{path}: cannot read points ({exc})") from None
    if points.ndim != 2 or points.shape[1] != 2:
        raise UserError(f"{path}: expected an [N, 2] array of points, got shape "
                        f"{list(points.shape)}")
    if len(points) > MAX_POINTS:
        raise UserError(f"{path}: {len(points)} points is more than the limit {MAX_POINTS}")
    if not np.isfinite(points).all():
        raise UserError(f"{path}: contains NaN or infinite coordinates")
    return points.astype(np.float32)


def _header_rows(path: Path) -> int:
    with open(path) as handle:
        first = handle.readline()
    return 0 if not first or first.lstrip()[:1] in "-+.0123456789" else 1


def training_distribution(points: np.ndarray) -> dict:
    """The record of the training points: quantiles of their distance from the origin."""
    return {"units": "plane coordinates", "radius_quantiles": quantiles(
        np.linalg.norm(points, axis=1))}


def compare_points(reference: dict, points: np.ndarray) -> list[Finding]:
    """Warn when the points lie much farther out (or closer in) than the training points."""
    shift = quantile_shift(quantiles(np.linalg.norm(points, axis=1)),
                           reference["radius_quantiles"])
    if shift > 1.0:
        return [warn("extent", f"the points' distances from the origin differ from the "
                               f"training points' by {shift:.1f} times their 5-95% range")]
    return []


def predict_point_files(model: nn.Module, inputs: list[Path], out_dir: Path,
                        guard: InputGuard) -> list[Path]:
    from domainvit.outputs import SIDECAR_SUFFIX, output_stem, write_sidecar

    device = next(model.parameters()).device
    written = []
    for path in inputs:
        points = read_points(path)
        check = guard.check(path.name, compare_points, points)
        probs = torch.softmax(model(torch.from_numpy(points).to(device)), dim=-1).cpu().numpy()
        table = np.column_stack([points, probs.argmax(axis=1), probs])
        header = "x,y,label," + ",".join(f"p{i}" for i in range(probs.shape[1]))
        stem = output_stem(path)
        target = out_dir / f"{stem}.pred.csv"
        with atomic_write(target) as temporary:
            np.savetxt(temporary, table, delimiter=",", header=header, comments="",
                       fmt=["%.6g", "%.6g", "%d"] + ["%.6f"] * probs.shape[1])
        written.append(target)
        summary = ConfidenceSummary([str(k) for k in range(probs.shape[1])])
        summary.update(probs.T)
        written.append(write_sidecar(out_dir / f"{stem}{SIDECAR_SUFFIX}", {
            "input": path.name, "outputs": [target.name], "input_check": check.record(),
            "confidence": summary.as_dict()}))
    return written
