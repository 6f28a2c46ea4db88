"""The ``data:`` section of holography configs and the datasets it builds.

``dataset: holo-cells`` is the prepared sample benchmark (its validation and test
holograms are files, the quickstart settings fixed: 64 x 64, 532 nm, 4.65 um, z 3-9 mm);
``dataset: synthetic`` simulates every split with the settings of the config (the
paper-scale config: 224 x 224 at 20 mm). Training holograms are simulated on the fly from
procedural objects either way (a new object, distance and noise each draw).

Items: ``input`` the hologram scaled to mean 1 ``[1, H, W]``; ``z`` the distance the model
is given (metres; in training a jittered distance on part of the draws, see
``z_jitter_mm``); ``z_true``; ``target`` the object field ``[2, H, W]`` (real, imaginary).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch.utils.data import Dataset

from domainvit.datasets.holo_cells import (
    BENCHMARK,
    BENCHMARK_COUNTS,
    HOLO_CELLS,
    NOISE_SETTINGS,
    HologramSimulator,
    SimulationSettings,
    load_benchmark,
    normalise_hologram,
)
from domainvit.datasets.registry import prepare
from domainvit.errors import UserError
from domainvit.files import atomic_write
from domainvit.optics import critical_distance
from domainvit.schema import StrictModel
from domainvit.tasks.holography.focus import METRICS
from domainvit.tasks.holography.loss import HoloLossWeights

__all__ = ["HolographyData", "build_dataset", "sample_holograms", "simulation_settings"]


class HolographyData(StrictModel):
    dataset: Literal["holo-cells", "synthetic"] = HOLO_CELLS
    size: int = Field(BENCHMARK.size, ge=16)
    wavelength_nm: float = Field(BENCHMARK.wavelength_m * 1e9, gt=0)
    pixel_um: float = Field(BENCHMARK.pixel_m * 1e6, gt=0)
    z_min_mm: float = Field(BENCHMARK.z_range_m[0] * 1e3, gt=0)
    z_max_mm: float = Field(BENCHMARK.z_range_m[1] * 1e3, gt=0)
    #: ASM padding factor (against circular wrap-around), in the model and the simulator
    pad_factor: float = Field(BENCHMARK.pad_factor, ge=1.0, le=4.0)
    noise: tuple[str, ...] = BENCHMARK.noise
    bits: tuple[int, ...] = BENCHMARK.bits
    seed: int = 0
    #: training holograms per epoch (simulated on the fly)
    train_samples: int = Field(4096, gt=0)
    #: validation / test holograms (``synthetic`` only: the sample benchmark has its own)
    val_samples: int = Field(BENCHMARK_COUNTS["val"], gt=0)
    test_samples: int = Field(BENCHMARK_COUNTS["test"], gt=0)
    #: training: the share of draws where the model is told a wrong distance, and how
    #: wrong (uniform in +-z_jitter_mm), so it learns to finish focusing
    jitter_fraction: float = Field(0.5, ge=0.0, le=1.0)
    z_jitter_mm: float = Field(0.6, ge=0.0)
    #: prediction: the object distance; ``auto`` runs autofocus over [z_min_mm, z_max_mm]
    #: (a file's ``holo.json`` sidecar or ``--set data.z_mm=...`` gives it per run)
    z_mm: float | Literal["auto"] = "auto"
    #: prediction with a given distance: autofocus searches +-refine_mm around it (0: the
    #: distance is used as given)
    refine_mm: float = Field(1.0, ge=0.0)
    #: the sharpness metric of autofocus (``focus.METRICS``); None: the module's default
    autofocus_metric: str | None = None
    #: the loss terms' weights
    loss: HoloLossWeights = HoloLossWeights()

    @model_validator(mode="after")
    def _check(self) -> HolographyData:
        if self.z_max_mm < self.z_min_mm:
            raise ValueError(f"z_max_mm {self.z_max_mm} is below z_min_mm {self.z_min_mm}")
        if self.autofocus_metric is not None and self.autofocus_metric not in METRICS:
            raise ValueError(f"unknown autofocus_metric {self.autofocus_metric!r}; known: "
                             f"{list(METRICS)}")
        unknown = [n for n in self.noise if n not in NOISE_SETTINGS]
        if unknown:
            raise ValueError(f"unknown noise settings {unknown}; known: {list(NOISE_SETTINGS)}")
        reach = critical_distance(int(round(self.size * self.pad_factor)), self.pixel_m,
                                  self.wavelength_m, 0.5) * 1e3
        if self.z_max_mm > reach:
            raise ValueError(f"z_max_mm {self.z_max_mm:g} is beyond the band limit of a "
                             f"{self.size}-pixel grid padded x{self.pad_factor:g} "
                             f"({reach:.3g} mm keeps half the band): a larger size reaches "
                             f"farther")
        if self.dataset == HOLO_CELLS:
            fixed = {"size": BENCHMARK.size, "wavelength_nm": BENCHMARK.wavelength_m * 1e9,
                     "pixel_um": BENCHMARK.pixel_m * 1e6,
                     "z_min_mm": BENCHMARK.z_range_m[0] * 1e3,
                     "z_max_mm": BENCHMARK.z_range_m[1] * 1e3}
            changed = [k for k, v in fixed.items() if not np.isclose(getattr(self, k), v)]
            if changed:
                raise ValueError(f"the {HOLO_CELLS} benchmark is simulated with fixed "
                                 f"{', '.join(changed)}; use dataset: synthetic to simulate "
                                 f"other settings")
        return self

    @property
    def wavelength_m(self) -> float:
        return self.wavelength_nm * 1e-9

    @property
    def pixel_m(self) -> float:
        return self.pixel_um * 1e-6

    @property
    def z_range_m(self) -> tuple[float, float]:
        return (self.z_min_mm * 1e-3, self.z_max_mm * 1e-3)


def simulation_settings(cfg: HolographyData) -> SimulationSettings:
    if cfg.dataset == HOLO_CELLS:
        return replace(BENCHMARK, noise=tuple(cfg.noise), bits=tuple(cfg.bits))
    return replace(BENCHMARK, size=cfg.size, wavelength_m=cfg.wavelength_m,
                   pixel_m=cfg.pixel_m, z_range_m=cfg.z_range_m, pad_factor=cfg.pad_factor,
                   noise=tuple(cfg.noise), bits=tuple(cfg.bits), seed=cfg.seed)


def _item(cfg: HolographyData, counts: np.ndarray, field: np.ndarray, z_given: float,
          z_true: float) -> dict:
    field = torch.from_numpy(np.ascontiguousarray(field))
    weights = cfg.loss
    return {
        "input": torch.as_tensor(normalise_hologram(counts))[None],
        "target": torch.stack([field.real, field.imag]).float(),
        "z": torch.tensor(z_given, dtype=torch.float64),
        "z_true": torch.tensor(z_true, dtype=torch.float64),
        # what the loss needs of the config (Task.loss sees the batch only)
        "optics": torch.tensor([cfg.wavelength_m, cfg.pixel_m, cfg.pad_factor],
                               dtype=torch.float64),
        "loss_weights": torch.tensor([weights.complex_l1, weights.amplitude_l1,
                                      weights.phase_l1, weights.spectrum_l1, weights.physics]),
    }


class SimulatedHolograms(Dataset):
    """Training: a fresh simulated hologram each draw (seeded from torch's generator, so
    runs are reproducible under the engine's seed)."""

    def __init__(self, cfg: HolographyData) -> None:
        self.cfg = cfg
        self.simulator = HologramSimulator(simulation_settings(cfg), "train")

    def __len__(self) -> int:
        return self.cfg.train_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        draw = int(torch.randint(0, 2**62, (1,)))
        sample = self.simulator.sample(index, epoch=draw)
        rng = np.random.default_rng(draw)
        z_given = sample["z_m"]
        if rng.random() < self.cfg.jitter_fraction:
            z_given += rng.uniform(-1, 1) * self.cfg.z_jitter_mm * 1e-3
            z_given = max(z_given, 1e-4)
        return _item(self.cfg, sample["counts"], sample["field"], z_given, sample["z_m"])


class FixedHolograms(Dataset):
    """Validation and test: fixed holograms (the prepared benchmark's, or simulated once)."""

    def __init__(self, cfg: HolographyData, arrays: dict[str, np.ndarray]) -> None:
        self.cfg = cfg
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays["z_m"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        a = self.arrays
        z = float(a["z_m"][index])
        return _item(self.cfg, a["holograms"][index], a["fields"][index], z, z)


def split_arrays(cfg: HolographyData, split: str) -> dict[str, np.ndarray]:
    """The fixed holograms of ``val`` or ``test``."""
    if cfg.dataset == HOLO_CELLS:
        return load_benchmark(prepare(HOLO_CELLS), split)
    count = cfg.val_samples if split == "val" else cfg.test_samples
    return HologramSimulator(simulation_settings(cfg), split).samples(count)


def build_dataset(cfg: HolographyData, split: str) -> Dataset:
    if split == "train":
        if cfg.dataset == HOLO_CELLS:
            prepare(HOLO_CELLS)  # the benchmark's validation set is needed anyway
        return SimulatedHolograms(cfg)
    if split not in ("val", "test"):
        raise UserError(f"holography has the splits train, val and test, not {split!r}")
    return FixedHolograms(cfg, split_arrays(cfg, split))


def sample_holograms(cfg: HolographyData, folder: Path, count: int = 3) -> list[Path]:
    """``count`` test holograms as 16-bit PNGs with their ``.json`` sidecars (wavelength,
    pixel pitch, distance): what a user's measured holograms look like."""
    import imageio.v3 as iio

    arrays = split_arrays(cfg, "test")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(min(count, len(arrays["z_m"]))):
        path = folder / f"holo_{i}.png"
        # the raw counts of a ``bits``-bit sensor, left-aligned in 16 bits as cameras write
        counts = arrays["holograms"][i].astype(np.uint32) << (16 - int(arrays["bits"][i]))
        with atomic_write(path) as temporary:
            iio.imwrite(temporary, counts.astype(np.uint16))
        sidecar = path.with_suffix(".json")
        with atomic_write(sidecar) as temporary:
            Path(temporary).write_text(json.dumps({
                "wavelength_nm": cfg.wavelength_nm, "pixel_um": cfg.pixel_um,
                "z_mm": round(float(arrays["z_m"][i]) * 1e3, 4)}, indent=2) + "\n")
        written.append(path)
    return written
