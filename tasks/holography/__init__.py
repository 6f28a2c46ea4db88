"""Holography: physics-aware reconstruction of inline holograms (HoloPASWIN, a shifted-window
transformer on the angular-spectrum back-propagated field), with distance conditioning,
autofocus and the baselines that keep it honest (plain back-propagation, iterative
twin-image removal, a U-Net).

Trains on holograms simulated on the fly from procedural phase objects; evaluates on the
``holo-cells`` sample benchmark (held-out procedural objects and the real phase image
``skimage.data.cell()``); predicts the complex object field of hologram files
(PNG/TIFF 8-16 bit or ``.npy`` intensity) with their physical parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from domainvit.datasets.holo_cells import HOLO_CELLS, build_holo_cells
from domainvit.datasets.registry import SampleDataset, register_sample_dataset
from domainvit.distribution import InputGuard
from domainvit.registry import register_task
from domainvit.task import ModelEntry, Task
from domainvit.tasks.holography.data import HolographyData, build_dataset, sample_holograms
from domainvit.tasks.holography.distribution import training_distribution
from domainvit.tasks.holography.loss import HoloLossWeights, holo_loss
from domainvit.tasks.holography.metrics import HoloMetrics
from domainvit.tasks.holography.paswin import (
    HoloPASWIN,
    HoloPASWINConfig,
    HoloUNet,
    HoloUNetConfig,
)
from domainvit.tasks.holography.predict import predict_holograms

__all__ = ["HoloPASWIN", "HoloUNet", "HolographyTask"]

register_sample_dataset(SampleDataset(
    name=HOLO_CELLS,
    description="simulated inline holograms (angular spectrum, speckle/shot/read/dark "
                "noise, 8-16 bit) of procedural cells, beads and particles and of the real "
                "phase image skimage.data.cell(), with the complex ground truth",
    build=build_holo_cells,
    tasks=("holography",),
))


@register_task
class HolographyTask(Task):
    name = "holography"
    description = ("inline holography: complex object field from a hologram "
                   "(PNG/TIFF/NPY), with autofocus")
    data_schema = HolographyData
    models = (
        ModelEntry("holopaswin", HoloPASWINConfig, HoloPASWIN.from_config,
                   "HoloPASWIN: shifted-window transformer encoder and convolutional "
                   "decoder correcting the back-propagated field, conditioned on z"),
        ModelEntry("unet", HoloUNetConfig, HoloUNet.from_config,
                   "convolutional U-Net on the same input: the learned baseline"),
    )
    eval_split = "test"
    monitor = "val/phase_psnr"
    monitor_mode = "max"

    def build_dataset(self, data_cfg: HolographyData, split: str) -> Dataset:
        return build_dataset(data_cfg, split)

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor],
                data_cfg: HolographyData) -> torch.Tensor:
        return model(batch["input"], batch["z"], data_cfg.wavelength_m, data_cfg.pixel_m)

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        wavelength, pixel, pad = batch["optics"][0].tolist()
        weights = HoloLossWeights(**dict(zip(HoloLossWeights.model_fields,
                                             batch["loss_weights"][0].tolist(), strict=True)))
        return holo_loss(outputs, batch["target"], batch["input"], batch["z_true"],
                         wavelength, pixel, pad, weights)["total"]

    def build_metrics(self, data_cfg: HolographyData, during_training: bool = False) -> Any:
        return HoloMetrics()

    def data_info(self, data_cfg: HolographyData) -> dict[str, Any]:
        return {"distribution": training_distribution(data_cfg)}

    def predict_files(self, model: nn.Module, data_cfg: HolographyData, inputs: list[Path],
                      out_dir: Path, guard: InputGuard) -> list[Path]:
        return predict_holograms(model, data_cfg, list(inputs), out_dir, guard)

    def sample_inputs(self, data_cfg: HolographyData, folder: Path) -> list[Path]:
        return sample_holograms(data_cfg, folder)
