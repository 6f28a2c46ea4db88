"""Holography analysis: every method on the same held-out holograms, in focus, defocused and
with autofocus; used by ``benchmarks/holography_results.py`` and the perception notebook.

Methods: plain ASM back-propagation, iterative twin-image removal (``twin.py``), and any
trained model (HoloPASWIN, the U-Net). Distances: the true one; the true one off by
``+-offset_mm`` (given as is to the method; the models' predictor may also refine it with
autofocus); and autofocus over the trained range. Scores per hologram come from
:func:`~domainvit.tasks.holography.metrics.field_scores`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from domainvit.optics import propagate
from domainvit.tasks.holography.metrics import field_scores
from domainvit.tasks.holography.predict import HoloParams, choose_distance
from domainvit.tasks.holography.twin import remove_twin_image

__all__ = [
    "autofocus_distances",
    "backprop_fields",
    "model_fields",
    "refine_distances",
    "score_fields",
    "summarise",
    "twin_fields",
]

def backprop_fields(holograms: np.ndarray, z_m: np.ndarray, wavelength_m: float,
                    pixel_m: float, pad_factor: float = 2.0) -> np.ndarray:
    """Plain ASM back-propagation of mean-1 holograms ``[N, H, W]`` over ``z_m [N]``."""
    amplitude = torch.as_tensor(holograms, dtype=torch.float32).clamp_min(0).sqrt()
    with torch.no_grad():
        distances = -torch.as_tensor(z_m, dtype=torch.float64)
        fields = propagate(amplitude.to(torch.complex64), distances, wavelength_m, pixel_m,
                           pad_factor=pad_factor)
    return fields.numpy()


def twin_fields(holograms: np.ndarray, z_m: np.ndarray, wavelength_m: float, pixel_m: float,
                pad_factor: float = 2.0, batch_size: int = 64, **options: Any) -> np.ndarray:
    """Iterative twin-image removal of each hologram (in batches)."""
    out = []
    for start in range(0, len(holograms), batch_size):
        part = torch.as_tensor(holograms[start:start + batch_size], dtype=torch.float32)
        z = torch.as_tensor(z_m[start:start + batch_size], dtype=torch.float64)
        out.append(remove_twin_image(part, z, wavelength_m, pixel_m, pad_factor=pad_factor,
                                     **options).numpy())
    return np.concatenate(out)


@torch.no_grad()
def model_fields(model: nn.Module, holograms: np.ndarray, z_m: np.ndarray,
                 wavelength_m: float, pixel_m: float, batch_size: int = 32) -> np.ndarray:
    """A trained model's fields of mean-1 holograms ``[N, H, W]`` at distances ``z_m``."""
    model.eval()
    out = []
    for start in range(0, len(holograms), batch_size):
        x = torch.as_tensor(holograms[start:start + batch_size], dtype=torch.float32)[:, None]
        z = torch.as_tensor(z_m[start:start + batch_size], dtype=torch.float64)
        y = model(x, z, wavelength_m, pixel_m).float()
        out.append(torch.complex(y[:, 0], y[:, 1]).numpy())
    return np.concatenate(out)


def autofocus_distances(holograms: np.ndarray, data_cfg: Any) -> np.ndarray:
    """The distance (m) ``predict`` chooses for each hologram when given none: autofocus
    over the trained range."""
    return _chosen(holograms, ["auto"] * len(holograms), data_cfg)


def refine_distances(holograms: np.ndarray, z_m: np.ndarray, data_cfg: Any) -> np.ndarray:
    """The distance (m) ``predict`` chooses for each hologram given ``z_m``: refined by
    autofocus within ``data_cfg.refine_mm``."""
    return _chosen(holograms, [float(z) * 1e3 for z in z_m], data_cfg)


def _chosen(holograms: np.ndarray, given: Sequence[float | str], data_cfg: Any) -> np.ndarray:
    chosen = []
    for hologram, z_mm in zip(holograms, given, strict=True):
        params = HoloParams(data_cfg.wavelength_nm, data_cfg.pixel_um, z_mm)
        z, _, _ = choose_distance("hologram", torch.as_tensor(hologram), params, data_cfg,
                                  data_cfg.pad_factor)
        chosen.append(z * 1e-3)
    return np.array(chosen)


def score_fields(pred: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-hologram scores (``field_scores``) as numpy arrays."""
    scores = field_scores(torch.as_tensor(pred), torch.as_tensor(truth))
    return {name: value.numpy() for name, value in scores.items()}


def summarise(scores: dict[str, np.ndarray], groups: Sequence[str] | None = None,
              ) -> dict[str, dict[str, float]]:
    """Means of per-hologram scores, over all holograms and per group (the source)."""
    result = {"all": {name: float(np.mean(v)) for name, v in scores.items()}}
    if groups is not None:
        groups = np.asarray(groups)
        for group in sorted(set(groups.tolist())):
            keep = groups == group
            result[group] = {name: float(np.mean(v[keep])) for name, v in scores.items()}
    return result
