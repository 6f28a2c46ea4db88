"""Per-output confidence of a class map: the maximum softmax probability and the entropy.

A segmentation or a class map is written with a confidence map beside it (the maximum
class probability of every pixel or voxel) and a summary in its sidecar: the mean
maximum probability and the mean normalised entropy (entropy / log K, 0 for a one-hot
prediction, 1 for a uniform one) over the whole output and per predicted class. Both
are the standard, uncalibrated softmax confidences (Hendrycks & Gimpel's baseline for
misclassified and out-of-distribution inputs): low values flag regions to look at; high
values are no guarantee.

:class:`ConfidenceSummary` accumulates tiles (a raster classified tile by tile) so no
whole-scene probability array is ever held.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ConfidenceSummary", "max_probability", "normalised_entropy"]


def max_probability(probabilities: np.ndarray) -> np.ndarray:
    """The maximum class probability of every element of ``[K, *spatial]`` probabilities."""
    return np.asarray(probabilities, np.float32).max(axis=0)


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy / log K of every element of ``[K, *spatial]`` probabilities, in 0..1."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)
    count = p.shape[0]
    return (-(p * np.log(p)).sum(axis=0) / math.log(count)).astype(np.float32) \
        if count > 1 else np.zeros(p.shape[1:], np.float32)


class ConfidenceSummary:
    """Mean maximum probability and normalised entropy, overall and per predicted class.

    ``update(probabilities, valid)`` adds ``[K, *spatial]`` class probabilities (elements
    where ``valid`` is false are left out); :meth:`as_dict` is the sidecar's summary.
    """

    def __init__(self, class_names: Sequence[str]) -> None:
        self.names = list(class_names)
        count = len(self.names)
        self._n = np.zeros(count, np.int64)
        self._max = np.zeros(count, np.float64)
        self._entropy = np.zeros(count, np.float64)

    def update(self, probabilities: np.ndarray, valid: np.ndarray | None = None) -> None:
        probabilities = np.asarray(probabilities)
        if probabilities.shape[0] != len(self.names):
            raise ValueError(f"{probabilities.shape[0]} class probabilities for "
                             f"{len(self.names)} class names")
        keep = (np.ones(probabilities.shape[1:], bool) if valid is None
                else np.asarray(valid, bool))
        keep &= np.isfinite(probabilities).all(axis=0)
        if not keep.any():
            return
        flat = probabilities[:, keep]
        labels = flat.argmax(axis=0)
        top = flat.max(axis=0).astype(np.float64)
        entropy = normalised_entropy(flat).astype(np.float64)
        count = len(self.names)
        self._n += np.bincount(labels, minlength=count)
        self._max += np.bincount(labels, weights=top, minlength=count)
        self._entropy += np.bincount(labels, weights=entropy, minlength=count)

    def as_dict(self) -> dict[str, Any]:
        total = int(self._n.sum())

        def mean(values: np.ndarray, n: int | np.ndarray) -> float | None:
            return round(float(values / n), 6) if n else None

        return {
            "elements": total,
            "mean_max_probability": mean(self._max.sum(), total),
            "mean_normalised_entropy": mean(self._entropy.sum(), total),
            "per_class": {
                name: {"elements": int(n), "mean_max_probability": mean(m, n),
                       "mean_normalised_entropy": mean(e, n)}
                for name, n, m, e in zip(self.names, self._n, self._max, self._entropy,
                                         strict=True)
            },
        }
