"""Classification metrics: accuracy, macro AUC and the confusion matrix from scikit-learn,
expected calibration error from torchmetrics.

Probabilities and labels are collected over the whole evaluation
(:class:`domainvit.metrics.CollectedClassification`); scikit-learn then scores them.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    roc_auc_score,
)
from torchmetrics.functional.classification import multiclass_calibration_error

from domainvit.metrics import CollectedClassification


class ClassificationMetrics(CollectedClassification):
    """``update(logits, target)``; ``compute()`` -> accuracy, balanced accuracy, macro AUC
    (one-vs-rest), expected calibration error (15 bins) and the confusion matrix."""

    def score(self, probs: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return score(probs, target, self.num_classes)


def score(probs: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor]:
    """The metrics of class probabilities ``[N, K]`` against labels ``[N]``."""
    p, y = probs.numpy().astype(np.float64), target.numpy()
    pred = p.argmax(axis=1)
    result = {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "ece": float(multiclass_calibration_error(probs, target, num_classes, n_bins=15)),
    }
    present = np.unique(y)
    if len(present) == num_classes:
        # rows renormalised: scikit-learn checks they sum to one in float64
        result["auc_macro"] = roc_auc_score(y, p / p.sum(axis=1, keepdims=True),
                                            multi_class="ovr", average="macro")
    scalars = {name: torch.tensor(float(value)) for name, value in result.items()}
    scalars["confusion_matrix"] = torch.from_numpy(
        confusion_matrix(y, pred, labels=list(range(num_classes))))
    return scalars
