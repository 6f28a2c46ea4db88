"""Medical image segmentation: TransDAE (2D and 3D) and MACMD (2D) on NIfTI volumes.

Trains on labelled volumes (by default the ``brain-lobes`` sample benchmark: lobes of
Colin27 for training, the MNI152 template in random poses for testing), evaluates on
whole volumes by sliding windows (MONAI), and predicts label maps written back in each
scan's native space (NIfTI with the scan's affine; PNG overlays for 2D images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from domainvit.datasets.brain import BRAIN_LOBES, build_brain_lobes
from domainvit.datasets.registry import SampleDataset, register_sample_dataset
from domainvit.distribution import InputGuard
from domainvit.errors import ConfigError
from domainvit.registry import register_task
from domainvit.task import ModelEntry, Task
from domainvit.tasks.medseg.data import SegData, build_dataset, class_names, sample_inputs
from domainvit.tasks.medseg.distribution import training_distribution
from domainvit.tasks.medseg.macmd import MACMD, MACMDConfig
from domainvit.tasks.medseg.metrics import SegmentationMetrics
from domainvit.tasks.medseg.predict import predict_scans, segment_volume
from domainvit.tasks.medseg.transdae import TransDAE, TransDAEConfig

register_sample_dataset(SampleDataset(
    name=BRAIN_LOBES,
    description="brain lobes (AAL grouped) on Colin27 (train, val in random poses) and "
                "the MNI152 template in random poses (test); 1 mm NIfTI",
    build=build_brain_lobes,
    tasks=("medseg",),
))


def _build(model_cls: type[nn.Module]):
    def build(cfg: Any, data: SegData) -> nn.Module:
        if cfg.spatial_dims != data.spatial_dims:
            raise ConfigError(f"model.spatial_dims is {cfg.spatial_dims} but "
                              f"data.spatial_dims is {data.spatial_dims}")
        return model_cls.from_config(cfg, in_chans=1, num_classes=len(class_names(data)))

    return build


@register_task
class MedSegTask(Task):
    name = "medseg"
    description = "medical image segmentation (TransDAE 2D/3D, MACMD 2D) on NIfTI volumes"
    data_schema = SegData
    models = (
        ModelEntry("transdae", TransDAEConfig, _build(TransDAE),
                   "TransDAE: dual (linear spatial + channel) attention U-shaped "
                   "transformer, 2D or 3D"),
        ModelEntry("macmd", MACMDConfig, _build(MACMD),
                   "MACMD decoder (multi-dilated gates, attention pooling, channel "
                   "mixing, deep supervision) on a NAT or MaxViT encoder, 2D"),
    )
    eval_split = "test"
    eval_batch_size = 1
    monitor = "val/dice"
    monitor_mode = "max"

    def __init__(self) -> None:
        self._loss: nn.Module | None = None

    def build_dataset(self, data_cfg: SegData, split: str) -> Dataset:
        return build_dataset(data_cfg, split)

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor], data_cfg: SegData) -> Any:
        if model.training:
            return model(batch["input"])
        # whole volumes in evaluation: sliding windows with the data config's settings
        return segment_volume(model, batch["input"], data_cfg)

    def loss(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from monai.losses import DeepSupervisionLoss, DiceCELoss

        if self._loss is None:
            # the MACMD recipe: 0.4 cross-entropy + 0.6 Dice; deep-supervision heads
            # weighted 1, 1/2, 1/4 (MONAI's "exp" mode)
            dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, lambda_ce=0.4,
                                 lambda_dice=0.6)
            self._loss = DeepSupervisionLoss(dice_ce, weight_mode="exp")
        # float labels: the loss resizes them (nearest) for coarse auxiliary logits
        target = batch["target"].float()
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        return self._loss(list(outputs), target)

    def data_info(self, data_cfg: SegData) -> dict[str, Any]:
        return {"class_names": class_names(data_cfg),
                "distribution": training_distribution(data_cfg)}

    def build_metrics(self, data_cfg: SegData, during_training: bool = False) -> Any:
        # the 95% Hausdorff distance takes seconds per volume: final evaluations only
        return SegmentationMetrics(class_names(data_cfg), data_cfg.spacing,
                                   hausdorff=not during_training,
                                   largest_component=data_cfg.largest_component)

    def predict_files(self, model: nn.Module, data_cfg: SegData, inputs: list[Path],
                      out_dir: Path, guard: InputGuard) -> list[Path]:
        return predict_scans(model, data_cfg, inputs, out_dir, guard)

    def sample_inputs(self, data_cfg: SegData, folder: Path) -> list[Path]:
        return sample_inputs(data_cfg, folder)
