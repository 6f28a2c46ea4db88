"""The smoke task: 2-D spiral points in three classes, an MLP, seconds on a CPU.

It exists to exercise the whole engine (configs, checkpoints, resume, DDP, eval,
predict, sample-data preparation) quickly; it is not a model anyone needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from domainvit.datasets.registry import SampleDataset, register_sample_dataset
from domainvit.distribution import InputGuard
from domainvit.registry import register_task
from domainvit.task import ModelEntry, Task
from domainvit.tasks.smoke.data import (
    SPIRALS,
    SmokeData,
    SpiralDataset,
    build_spirals,
    sample_inputs,
)
from domainvit.tasks.smoke.metrics import build_metrics
from domainvit.tasks.smoke.model import SmokeMLP, SmokeMLPConfig
from domainvit.tasks.smoke.predict import predict_point_files, training_distribution

register_sample_dataset(SampleDataset(
    name=SPIRALS,
    description="three interleaved 2-D spirals with noise (train/val/test)",
    build=build_spirals,
    tasks=("smoke",),
))


@register_task
class SmokeTask(Task):
    name = "smoke"
    description = "spiral-point classification with an MLP (engine smoke test, CPU seconds)"
    data_schema = SmokeData
    models = (ModelEntry("smoke_mlp", SmokeMLPConfig,
                         lambda cfg, data: SmokeMLP.from_config(cfg),
                         "MLP with dropout"),)
    eval_split = "test"
    monitor = "val/accuracy"
    monitor_mode = "max"

    def build_dataset(self, data_cfg: SmokeData, split: str) -> Dataset:
        return SpiralDataset(data_cfg, split)

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(outputs, batch["target"])

    def build_metrics(self, data_cfg: SmokeData, during_training: bool = False) -> Any:
        return build_metrics()

    def data_info(self, data_cfg: SmokeData) -> dict[str, Any]:
        points = SpiralDataset(data_cfg, "train").points.numpy()
        return {"distribution": training_distribution(points)}

    def predict_files(self, model: nn.Module, data_cfg: SmokeData, inputs: list[Path],
                      out_dir: Path, guard: InputGuard) -> list[Path]:
        return predict_point_files(model, inputs, out_dir, guard)

    def sample_inputs(self, data_cfg: SmokeData, folder: Path) -> list[Path]:
        return sample_inputs(data_cfg, folder)
