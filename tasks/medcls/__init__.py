"""Medical image classification: MedViTV2 on MedMNIST-format data.

Trains on any MedMNIST ``.npz`` (by default the ``brain-mnist`` sample benchmark: crops
of Colin27 for training, of the MNI152 template for testing, labelled by brain region),
reports accuracy, balanced accuracy, macro AUC, calibration error and confusion matrix,
measures robustness under MedMNIST-C-style corruptions (:func:`robustness`), and
classifies PNG / JPEG / DICOM / NIfTI slices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from domainvit.datasets.brain import BRAIN_MNIST, build_brain_mnist
from domainvit.datasets.registry import SampleDataset, register_sample_dataset
from domainvit.distribution import InputGuard
from domainvit.registry import register_task
from domainvit.task import ModelEntry, Task
from domainvit.tasks.medcls.data import ClsData, MedMNISTDataset, dataset_info, sample_inputs
from domainvit.tasks.medcls.distribution import training_distribution
from domainvit.tasks.medcls.metrics import ClassificationMetrics
from domainvit.tasks.medcls.model import MedViTV2, MedViTV2Config
from domainvit.tasks.medcls.predict import predict_images
from domainvit.tasks.medcls.robustness import robustness

__all__ = ["MedClsTask", "robustness"]

register_sample_dataset(SampleDataset(
    name=BRAIN_MNIST,
    description="MedMNIST-format 64x64 brain crops labelled by region: Colin27 "
                "(train, val) and the MNI152 template (test), random poses",
    build=build_brain_mnist,
    tasks=("medcls",),
))


def _build_medvitv2(cfg: MedViTV2Config, data: ClsData) -> nn.Module:
    info = dataset_info(data)
    return MedViTV2.from_config(cfg, in_chans=info["in_chans"], num_classes=info["num_classes"])


@register_task
class MedClsTask(Task):
    name = "medcls"
    description = "medical image classification (MedViTV2) on MedMNIST-format data"
    data_schema = ClsData
    models = (ModelEntry("medvitv2", MedViTV2Config, _build_medvitv2,
                         "MedViTV2: dilated neighbourhood attention (LFP) and spatial-"
                         "reduction + conv attention with KAN feed-forward (GFP)"),)
    eval_split = "test"
    monitor = "val/accuracy"
    monitor_mode = "max"

    def build_dataset(self, data_cfg: ClsData, split: str) -> Dataset:
        return MedMNISTDataset(data_cfg, split)

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(outputs, batch["target"])

    def data_info(self, data_cfg: ClsData) -> dict[str, Any]:
        info = dataset_info(data_cfg)
        return {**{key: info[key] for key in ("class_names", "image_size", "in_chans")},
                "distribution": training_distribution(data_cfg, info)}

    def build_metrics(self, data_cfg: ClsData, during_training: bool = False) -> Any:
        return ClassificationMetrics(dataset_info(data_cfg)["num_classes"])

    def predict_files(self, model: nn.Module, data_cfg: ClsData, inputs: list[Path],
                      out_dir: Path, guard: InputGuard) -> list[Path]:
        return predict_images(model, data_cfg, dataset_info(data_cfg), inputs, out_dir, guard)

    def sample_inputs(self, data_cfg: ClsData, folder: Path) -> list[Path]:
        return sample_inputs(data_cfg, folder)
