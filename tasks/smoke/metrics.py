"""The smoke task's metrics (torchmetrics: reduced across DDP ranks on ``compute``)."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from domainvit.tasks.smoke.data import NUM_CLASSES


def build_metrics() -> MetricCollection:
    return MetricCollection({
        "accuracy": MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro"),
        "balanced_accuracy": MulticlassAccuracy(num_classes=NUM_CLASSES, average="macro"),
    })
