"""Spiral points: the smoke task's sample dataset and its torch ``Dataset``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import Dataset

from domainvit.datasets.registry import prepare
from domainvit.errors import UserError
from domainvit.schema import StrictModel

SPIRALS = "smoke-spirals"
NUM_CLASSES = 3
SPLIT_SIZES = {"train": 512, "val": 192, "test": 192}


class SmokeData(StrictModel):
    #: use only the first N training samples (all when unset)
    train_limit: int | None = Field(None, gt=0)


def spiral_points(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, NUM_CLASSES, size=count)
    radius = rng.uniform(0.1, 1.0, size=count)
    angle = 1.5 * np.pi * radius + labels * (2.0 * np.pi / NUM_CLASSES)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    points += rng.normal(scale=0.05, size=points.shape)
    return points.astype(np.float32), labels.astype(np.int64)


def build_spirals(folder: Path, progress: type) -> None:
    rng = np.random.default_rng(20261127)
    arrays = {}
    for split, count in progress(SPLIT_SIZES.items(), desc=SPIRALS, unit="split"):
        arrays[f"{split}_points"], arrays[f"{split}_labels"] = spiral_points(count, rng)
    np.savez(folder / "spirals.npz", **arrays)


class SpiralDataset(Dataset):
    def __init__(self, cfg: SmokeData, split: str) -> None:
        if split not in SPLIT_SIZES:
            raise UserError(f"smoke task has no split {split!r} (splits: "
                            f"{', '.join(SPLIT_SIZES)})")
        with np.load(prepare(SPIRALS) / "spirals.npz") as data:
            points, labels = data[f"{split}_points"], data[f"{split}_labels"]
        if split == "train" and cfg.train_limit:
            points, labels = points[: cfg.train_limit], labels[: cfg.train_limit]
        self.points = torch.from_numpy(points)
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input": self.points[index], "target": self.labels[index]}


def sample_inputs(cfg: SmokeData, folder: Path, count: int = 32) -> list[Path]:
    """A CSV of ``count`` test-split points (``x,y`` with a header), as predict reads."""
    with np.load(prepare(SPIRALS) / "spirals.npz") as data:
        points = data["test_points"][:count]
    path = folder / "spiral_points.csv"
    np.savetxt(path, points, delimiter=",", header="x,y", comments="", fmt="%.6f")
    return [path]
