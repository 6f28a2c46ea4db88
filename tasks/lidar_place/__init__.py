"""Lidar place recognition: HOTFormerLoc (hierarchical octree transformer) descriptors of
point-cloud submaps, retrieval against a database of known places.

Trains on submaps cut on the fly from the training area of the ``lidar-autzen`` sample
benchmark (real aerial lidar) with rotation, dropout, occlusion and noise; scores any
place folder (``ROOT/database``, ``ROOT/queries``, ``ROOT/poses.csv``, or the
PointNetVLAD/Oxford layout) by Recall@N, Recall@1% and MRR; predicts the database
matches of query clouds (LAS/LAZ/PLY/PCD/XYZ/NPY/BIN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from domainvit.datasets.lidar_autzen import LIDAR_AUTZEN, build_lidar_autzen
from domainvit.datasets.registry import SampleDataset, register_sample_dataset
from domainvit.distribution import InputGuard
from domainvit.registry import register_task
from domainvit.task import ModelEntry, Task
from domainvit.tasks.lidar_place.data import (
    MIN_PLACE_POINTS,
    LidarPlaceData,
    TrainingPlaces,
    build_dataset,
)
from domainvit.tasks.lidar_place.distribution import training_distribution
from domainvit.tasks.lidar_place.hotformer import (
    HOTFormerLoc,
    HOTFormerLocConfig,
    PointNetConfig,
    PointNetDescriptor,
)
from domainvit.tasks.lidar_place.loss import truncated_smooth_ap
from domainvit.tasks.lidar_place.metrics import PlaceRecallMetrics
from domainvit.tasks.lidar_place.predict import predict_clouds, sample_queries
from domainvit.tasks.lidar_place.rerank import CloudReranker

__all__ = ["HOTFormerLoc", "LidarPlaceTask", "PointNetDescriptor"]

register_sample_dataset(SampleDataset(
    name=LIDAR_AUTZEN,
    description="real aerial lidar (Autzen Stadium, from the PyPI sdist of laspy): a "
                "training area and held-out database/query place folders cut along "
                "synthetic trajectories, with rotated, thinned, occluded and noisy queries",
    build=build_lidar_autzen,
    tasks=("lidar_place",),
))

#: training submaps the recorded distribution is computed from
RECORD_SUBMAPS = 256


@register_task
class LidarPlaceTask(Task):
    name = "lidar_place"
    description = ("lidar place recognition (HOTFormerLoc octree transformer) on "
                   "LAS/LAZ/PLY/PCD/XYZ/NPY/BIN submaps")
    data_schema = LidarPlaceData
    models = (
        ModelEntry("hotformerloc", HOTFormerLocConfig,
                   lambda cfg, data: HOTFormerLoc.from_config(cfg, extent=data.radius),
                   "HOTFormerLoc: octree windows (dilated), relay tokens across a 3-level "
                   "octree pyramid, pyramid attentional pooling"),
        ModelEntry("pointnet", PointNetConfig,
                   lambda cfg, data: PointNetDescriptor.from_config(cfg, extent=data.radius),
                   "PointNet-style global descriptor (shared MLP and max pool): the "
                   "learned baseline"),
    )
    eval_split = "test"
    eval_batch_size = 32
    monitor = "val/recall_at_1"
    monitor_mode = "max"

    def build_dataset(self, data_cfg: LidarPlaceData, split: str) -> Dataset:
        return build_dataset(data_cfg, split)

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor],
                data_cfg: LidarPlaceData) -> torch.Tensor:
        points = batch["input"]
        if points.dim() == 4:  # training items: [places, views, points, 5]
            points = points.flatten(0, 1)
        return model(points)

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        positions = batch["target"].reshape(-1, batch["target"].shape[-1])[:, :2]
        positive_m, negative_m = batch["thresholds"][0].tolist()
        return truncated_smooth_ap(outputs.float(), positions, positive_m=positive_m,
                                   negative_m=negative_m)

    def build_metrics(self, data_cfg: LidarPlaceData, during_training: bool = False) -> Any:
        # validation during training ranks by descriptors only: re-ranking reads every
        # cloud again
        reranker = (CloudReranker(data_cfg) if data_cfg.rerank_top_k and not during_training
                    else None)
        return PlaceRecallMetrics(positive_m=data_cfg.positive_m, reranker=reranker)

    def update_metrics(self, metrics: Any, outputs: Any,
                       batch: dict[str, torch.Tensor]) -> None:
        metrics.update(outputs, batch["target"], batch.get("path"), batch.get("bin_format"))

    def data_info(self, data_cfg: LidarPlaceData) -> dict[str, Any]:
        places = TrainingPlaces(data_cfg.model_copy(update={"augment": False}))
        rng = np.random.default_rng(0)
        clouds = [places.submap(rng.uniform(places.low, places.high), data_cfg.radius)
                  for _ in range(RECORD_SUBMAPS)]
        clouds = [c for c in clouds if len(c.xyz) >= MIN_PLACE_POINTS]  # as training draws
        return {"distribution": training_distribution(clouds, data_cfg.radius,
                                                      data_cfg.points)}

    def predict_files(self, model: nn.Module, data_cfg: LidarPlaceData, inputs: list[Path],
                      out_dir: Path, guard: InputGuard) -> list[Path]:
        return predict_clouds(model, data_cfg, list(inputs), out_dir, guard)

    def sample_inputs(self, data_cfg: LidarPlaceData, folder: Path) -> list[Path]:
        return sample_queries(data_cfg, folder)
