"""Classification metrics computed on everything an evaluation saw.

Per-sample class probabilities and labels are collected in torchmetrics ``CatMetric``
buffers, which torchmetrics gathers across DDP ranks on ``compute``; a task's
``score(probs, target)`` then computes its field's metrics (with scikit-learn) at once,
as metrics such as AUC, kappa or per-class accuracy need all samples together.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import CatMetric


class CollectedClassification:
    """``update(logits [N, K], target [N])``; ``compute()`` returns
    ``self.score(probs [N, K], target [N])``, which subclasses define."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.probs = CatMetric()
        self.targets = CatMetric()

    def to(self, device: torch.device) -> CollectedClassification:
        self.probs.to(device)
        self.targets.to(device)
        return self

    def reset(self) -> None:
        self.probs.reset()
        self.targets.reset()

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.probs.update(torch.softmax(logits.float(), dim=1))
        self.targets.update(target.reshape(-1).float())

    def compute(self) -> dict[str, Any]:
        probs = self.probs.compute().reshape(-1, self.num_classes).cpu()
        target = self.targets.compute().reshape(-1).long().cpu()
        return self.score(probs, target)

    def score(self, probs: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        raise NotImplementedError
