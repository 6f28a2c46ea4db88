"""Surgical smoke removal: RGA-Net (a hierarchical encoder-decoder with dual-stream hybrid
attention, axis-decomposed attention and reciprocal cross-gating) for endoscopic frames
and video, with the baselines that keep it honest (the input itself, the dark channel
prior, a U-Net).

Trains on smoke simulated on the fly with the atmospheric scattering model over real
tissue images; evaluates on the ``desmoke-tissue`` sample benchmark (held-out regions) or
any folder of real paired frames; predicts desmoked frames (PNG/JPEG/TIFF, 8 and 16 bit)
and videos (MP4/AVI, same frame rate and size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from domainvit.datasets.desmoke_tissue import DESMOKE_TISSUE, build_desmoke_tissue
from domainvit.datasets.registry import SampleDataset, register_sample_dataset
from domainvit.distribution import InputGuard
from domainvit.registry import register_task
from domainvit.task import ModelEntry, Task
from domainvit.tasks.desmoke.data import DesmokeData, build_dataset, sample_frames
from domainvit.tasks.desmoke.distribution import training_distribution
from domainvit.tasks.desmoke.loss import DesmokeLossWeights, desmoke_loss
from domainvit.tasks.desmoke.metrics import DesmokeMetrics
from domainvit.tasks.desmoke.predict import predict_media
from domainvit.tasks.desmoke.rganet import DesmokeUNet, DesmokeUNetConfig, RGANet, RGANetConfig

__all__ = ["DesmokeTask", "DesmokeUNet", "RGANet"]

register_sample_dataset(SampleDataset(
    name=DESMOKE_TISSUE,
    description="surgical smoke simulated with the atmospheric scattering model (fractal "
                "drifting density, tinted airlight, glare) over held-out regions of the "
                "real tissue images retina and immunohistochemistry of scikit-image: "
                "paired frames and short paired sequences",
    build=build_desmoke_tissue,
    tasks=("desmoke",),
))


@register_task
class DesmokeTask(Task):
    name = "desmoke"
    description = "surgical smoke removal from endoscopic frames and video (PNG/TIFF/MP4)"
    data_schema = DesmokeData
    models = (
        ModelEntry("rganet", RGANetConfig, RGANet.from_config,
                   "RGA-Net: shifted-window + FFT dual-stream blocks, multi-axis attention, "
                   "reciprocal cross-gating; predicts the inverse scattering map"),
        ModelEntry("unet", DesmokeUNetConfig, DesmokeUNet.from_config,
                   "convolutional U-Net with the same output: the learned baseline"),
    )
    eval_split = "test"
    #: validation and test frames may differ in size (a user's folder)
    eval_batch_size = 1
    monitor = "val/psnr"
    monitor_mode = "max"

    def build_dataset(self, data_cfg: DesmokeData, split: str) -> Dataset:
        return build_dataset(data_cfg, split)

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor],
                data_cfg: DesmokeData) -> torch.Tensor:
        return model(batch["input"], data_cfg.process_scale)

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = DesmokeLossWeights(**dict(zip(DesmokeLossWeights.model_fields,
                                                batch["loss_weights"][0].tolist(), strict=True)))
        return desmoke_loss(outputs, batch["target"], weights)["total"]

    def build_metrics(self, data_cfg: DesmokeData, during_training: bool = False) -> Any:
        # CIEDE2000 runs on the CPU in numpy: left out of the validation between epochs
        return DesmokeMetrics(colour=not during_training)

    def update_metrics(self, metrics: DesmokeMetrics, outputs: torch.Tensor,
                       batch: dict[str, torch.Tensor]) -> None:
        metrics.update(outputs, batch)  # the input too: the no-op baseline's PSNR

    def data_info(self, data_cfg: DesmokeData) -> dict[str, Any]:
        return {"distribution": training_distribution(data_cfg)}

    def predict_files(self, model: nn.Module, data_cfg: DesmokeData, inputs: list[Path],
                      out_dir: Path, guard: InputGuard) -> list[Path]:
        return predict_media(model, data_cfg, list(inputs), out_dir, guard)

    def sample_inputs(self, data_cfg: DesmokeData, folder: Path) -> list[Path]:
        return sample_frames(data_cfg, folder)
