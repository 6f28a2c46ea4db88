"""Point files in, class predictions out: ``.csv`` (x,y per row) or ``.npy`` ([N, 2])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from domainvit.errors import UserError

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


def predict_point_files(model: nn.Module, inputs: list[Path], out_dir: Path) -> list[Path]:
    from domainvit.outputs import output_stem

    device = next(model.parameters()).device
    written = []
    for path in inputs:
        points = read_points(path)
        probs = torch.softmax(model(torch.from_numpy(points).to(device)), dim=-1).cpu().numpy()
        table = np.column_stack([points, probs.argmax(axis=1), probs])
        header = "x,y,label," + ",".join(f"p{i}" for i in range(probs.shape[1]))
        target = out_dir / f"{output_stem(path)}.pred.csv"
        np.savetxt(target, table, delimiter=",", header=header, comments="",
                   fmt=["%.6g", "%.6g", "%d"] + ["%.6f"] * probs.shape[1])
        written.append(target)
    return written
