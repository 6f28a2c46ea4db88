"""Remote-sensing classification metrics from scikit-learn: overall accuracy (OA),
average per-class accuracy (AA), Cohen's kappa, per-class accuracy, confusion matrix."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix

from domainvit.metrics import CollectedClassification


def score_labels(pred: np.ndarray, target: np.ndarray, class_names: list[str]
                 ) -> dict[str, torch.Tensor]:
    """OA, AA, kappa, ``acc_<class>`` per class (NaN for a class absent from ``target``)
    and the confusion matrix (rows: reference, columns: predicted) of label indices."""
    k = len(class_names)
    cm = confusion_matrix(target, pred, labels=list(range(k)))
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / support, np.nan)
    result = {
        "oa": torch.tensor(float(accuracy_score(target, pred))),
        "aa": torch.tensor(float(np.nanmean(per_class))),
        "kappa": torch.tensor(float(cohen_kappa_score(target, pred, labels=list(range(k))))),
    }
    for name, value in zip(class_names, per_class, strict=True):
        result[f"acc_{name.replace(' ', '_')}"] = torch.tensor(float(value))
    result["confusion_matrix"] = torch.from_numpy(cm)
    return result


class HSIMetrics(CollectedClassification):
    """``update(logits, target)``; ``compute()`` -> :func:`score_labels`.

    Takes per-pixel batches (``logits [N, K]``, ``target [N]``) and dense models' maps
    (``logits [N, K, b, b]``, ``target [N, b, b]`` with -1 where a pixel is not scored):
    the scored pixels of a map count as pixels, so OA, AA and kappa keep their
    definitions."""

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        if logits.ndim == 4:
            logits = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
            target = target.reshape(-1)
            scored = target >= 0
            logits, target = logits[scored], target[scored]
        super().update(logits, target)

    def __init__(self, class_names: list[str]) -> None:
        super().__init__(len(class_names))
        self.class_names = list(class_names)

    def score(self, probs: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return score_labels(probs.argmax(1).numpy(), target.numpy(), self.class_names)
