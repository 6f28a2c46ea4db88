"""Segmentation metrics from MONAI: Dice and 95% Hausdorff distance (mm) per class.

:class:`SegmentationMetrics` gives MONAI's cumulative metrics the ``update`` /
``compute`` / ``reset`` / ``to`` interface the engine drives (MONAI gathers the
per-volume values across DDP ranks when it aggregates).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.metrics import DiceMetric, HausdorffDistanceMetric
from monai.networks.utils import one_hot


def keep_largest_components(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Keep each class's largest connected region in label maps ``[B, 1, *spatial]``
    (MONAI): stray islands far from an organ or lobe are the usual source of large
    Hausdorff distances."""
    from monai.transforms import KeepLargestConnectedComponent

    keep = KeepLargestConnectedComponent(applied_labels=list(range(1, num_classes)),
                                         is_onehot=False, independent=True)
    return torch.stack([torch.as_tensor(keep(item)) for item in labels])


class SegmentationMetrics:
    """Mean and per-class Dice, mean 95% Hausdorff distance in mm, over whole volumes."""

    def __init__(self, class_names: Sequence[str], spacing: Sequence[float],
                 hausdorff: bool = True, largest_component: bool = False) -> None:
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.spacing = list(spacing)
        self.largest_component = largest_component
        self.dice = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
        self.hd95 = (HausdorffDistanceMetric(include_background=False, percentile=95,
                                             reduction="none") if hausdorff else None)

    def to(self, device: torch.device) -> SegmentationMetrics:
        return self  # MONAI's buffers follow the tensors they are given

    def reset(self) -> None:
        self.dice.reset()
        if self.hd95 is not None:
            self.hd95.reset()

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add volumes: ``logits [B, K, *spatial]``, ``target [B, 1, *spatial]`` labels."""
        labels = logits.argmax(1, keepdim=True)
        if self.largest_component:
            labels = keep_largest_components(labels, self.num_classes)
        self.update_labels(labels, target)

    def update_labels(self, labels: torch.Tensor, target: torch.Tensor) -> None:
        """Add volumes given as predicted label maps ``[B, 1, *spatial]``."""
        pred = one_hot(labels, self.num_classes)
        truth = one_hot(target.reshape(labels.shape), self.num_classes)
        self.dice(pred, truth)
        if self.hd95 is not None:
            spacing = self.spacing[: pred.ndim - 2]
            self.hd95(pred, truth, spacing=spacing)

    def compute(self) -> dict[str, torch.Tensor]:
        dice = self.dice.aggregate()  # [cases, classes - 1]
        per_class = torch.nanmean(dice.float(), dim=0)
        result = {"dice": torch.nanmean(per_class)}
        for name, value in zip(self.class_names[1:], per_class, strict=True):
            result[f"dice_{name}"] = value
        if self.hd95 is not None:
            hd = self.hd95.aggregate().float()
            hd = torch.where(torch.isfinite(hd), hd, torch.nan)
            result["hd95_mm"] = torch.nanmean(torch.nanmean(hd, dim=0))
        return result
