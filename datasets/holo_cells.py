"""Synthetic inline holograms of real and procedural phase objects (``holo-cells``).

No real inline holograms with ground truth are packaged anywhere we can reach, so the
holograms are simulated with the physics a real in-line set-up has, from objects whose
complex transmission is the ground truth:

- **objects** ``t = exp(-absorption) exp(i phase)`` on a unit background (plane reference
  wave): procedural **cells** (elliptical thickness profiles with a nucleus, granular
  texture and on some a dark halo; a few of any size up to most of the field, or a
  culture of many small ones), **beads** (spheres: phase proportional to ``sqrt(R^2 - r^2)``),
  absorbing **particles** and mixtures, phase up to 0.5-3.5 rad with weak absorption, on
  a background with a weak ripple and on some a slow phase drift; and the **real phase
  image** ``skimage.data.cell()`` (a phase map retrieved from a digital hologram), cropped
  at random scales;
- **propagation** over a distance ``z`` drawn per sample, with
  :func:`domainvit.optics.propagate` (evanescent band removed, band limit, padding; the
  sensor sees the field on the object's grid, so what diffracts outside is lost as on a
  real finite sensor);
- **noise** as HoloPASWIN's generator models it, in eight settings (none; speckle; shot;
  speckle+shot; read; dark; speckle+shot+read; all four): multiplicative speckle with a
  contrast and a correlation length, Poisson shot noise at a photon count per background
  pixel, dark current (Poisson electrons), Gaussian read noise, then an ADC of 8-16 bits
  with the background at a random fraction of full scale, lowered where the brightest
  focus of the frame would saturate (a saturated frame is refused at prediction).

**Splits by source object**: training objects are procedural, drawn from seed streams
disjoint from validation's and test's; the real ``cell()`` image is never trained on: it
is a test source of its own (``source == "real-cell"``), so the test set measures
transfer to a real measured object. Every sample is deterministic given its split, index
and the base seed.

``prepare holo-cells`` writes the benchmark at the quickstart settings (64 x 64 pixels,
532 nm, 4.65 um, z 3-9 mm): ``val.npz`` and ``test.npz`` with ``holograms`` (raw counts,
uint16), ``bits``, ``fields`` (complex64 ground truth), ``z_m``, ``noise``, ``source``;
and ``split.json`` saying how they were made. Training samples are simulated on the fly
from the same generator, so every epoch sees new objects, distances and noise.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from domainvit.errors import UserError
from domainvit.optics import propagate

__all__ = [
    "HOLO_CELLS",
    "NOISE_SETTINGS",
    "SPLIT_CODES",
    "HologramSimulator",
    "SimulationSettings",
    "build_holo_cells",
    "load_benchmark",
    "normalise_hologram",
]

HOLO_CELLS = "holo-cells"

#: HoloPASWIN's eight noise settings, by name: the noise sources each turns on
NOISE_SETTINGS: dict[str, tuple[str, ...]] = {
    "none": (),
    "speckle": ("speckle",),
    "shot": ("shot",),
    "speckle+shot": ("speckle", "shot"),
    "read": ("read",),
    "dark": ("dark",),
    "speckle+shot+read": ("speckle", "shot", "read"),
    "all": ("speckle", "shot", "read", "dark"),
}

#: one seed stream per split (objects of different splits never share a seed)
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
OBJECT_KINDS = ("cells", "cells", "beads", "particles", "mixed")  # cells twice as often


@dataclass(frozen=True)
class SimulationSettings:
    """What a hologram set is simulated with. Lengths in metres."""

    size: int = 64
    wavelength_m: float = 532e-9
    pixel_m: float = 4.65e-6
    z_range_m: tuple[float, float] = (3e-3, 9e-3)
    pad_factor: float = 2.0
    noise: tuple[str, ...] = tuple(NOISE_SETTINGS)
    bits: tuple[int, ...] = (8, 10, 12, 14, 16)
    phase_max_rad: tuple[float, float] = (0.5, 3.5)
    speckle_contrast: tuple[float, float] = (0.02, 0.1)
    speckle_correlation_px: tuple[float, float] = (1.0, 3.0)
    photons: tuple[float, float] = (500.0, 20000.0)
    read_electrons: tuple[float, float] = (1.0, 10.0)
    dark_electrons: tuple[float, float] = (2.0, 40.0)
    exposure: tuple[float, float] = (0.25, 0.6)
    seed: int = 0
    real_cell_fraction: float = 0.3  # of the test split
    kinds: tuple[str, ...] = field(default=OBJECT_KINDS)

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        unknown = [n for n in self.noise if n not in NOISE_SETTINGS]
        if unknown:
            raise ValueError(f"unknown noise settings {unknown}: choose from "
                             f"{list(NOISE_SETTINGS)}")
        if not 0 < self.z_range_m[0] <= self.z_range_m[1]:
            raise ValueError(f"z range must be positive and ordered, got {self.z_range_m}")
        if any(b < 8 or b > 16 for b in self.bits):
            raise ValueError(f"bits must be in 8..16, got {self.bits}")


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian noise smoothed with a Gaussian of ``sigma`` pixels, unit standard deviation."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return noise / max(float(noise.std()), 1e-12)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(size) + 0.5) / size
    return np.meshgrid(coords, coords, indexing="ij")


def _cells(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Thickness of cells (ellipses with a nucleus, granular texture and, on some, the
    dark halo of a phase retrieved from a real hologram) and of their absorbers: a few
    cells of any size up to most of the field, or a culture of many small ones."""
    yy, xx = _grid(size)
    thickness = np.zeros((size, size))
    culture = rng.random() < 0.25
    count = rng.integers(8, 21) if culture else rng.integers(1, 7)
    for _ in range(count):
        cy, cx = rng.uniform(0.05, 0.95, 2) if culture else rng.uniform(0.15, 0.85, 2)
        radius = (rng.uniform(0.06, 0.14) if culture
                  else float(np.exp(rng.uniform(np.log(0.06), np.log(0.4)))))
        aspect = rng.uniform(0.6, 1.0)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / radius
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / (radius * aspect)
        r2 = u**2 + v**2
        body = np.sqrt(np.clip(1 - r2, 0, None)) ** rng.uniform(0.5, 1.5)
        nu, nv = rng.uniform(-0.3, 0.3, 2)
        nucleus_r = rng.uniform(0.3, 0.5)
        nucleus = np.sqrt(np.clip(1 - ((u - nu)**2 + (v - nv)**2) / nucleus_r**2, 0, None))
        texture = 1 + rng.uniform(0.05, 0.3) * _smooth_noise(rng, (size, size),
                                                             rng.uniform(0.7, 2.5))
        cell = (body + rng.uniform(0.2, 0.6) * nucleus) * texture * (body > 0)
        if rng.random() < 0.4:  # a dark ring just outside the membrane
            ring = np.exp(-((np.sqrt(r2) - 1.15) / 0.12) ** 2)
            cell = cell - rng.uniform(0.05, 0.2) * ring
        thickness += cell
    return thickness, np.clip(thickness, 0, None)


def _beads(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = _grid(size)
    thickness = np.zeros((size, size))
    for _ in range(rng.integers(1, 11)):
        cy, cx = rng.uniform(0.05, 0.95, 2)
        radius = rng.uniform(0.025, 0.09)
        thickness += np.sqrt(np.clip(1 - ((yy - cy)**2 + (xx - cx)**2) / radius**2, 0, None))
    return thickness, 0.3 * thickness


def _particles(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Small absorbing blobs: strong absorption, little phase."""
    yy, xx = _grid(size)
    absorber = np.zeros((size, size))
    for _ in range(rng.integers(3, 31)):
        cy, cx = rng.uniform(0.02, 0.98, 2)
        sigma = rng.uniform(0.5, 2.0) / size
        absorber += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy)**2 + (xx - cx)**2) / (2 * sigma**2))
    return 0.15 * absorber, absorber


def procedural_object(rng: np.random.Generator, settings: SimulationSettings) -> np.ndarray:
    """A procedural object's complex transmission ``[size, size]`` (complex64)."""
    kind = settings.kinds[rng.integers(len(settings.kinds))]
    size = settings.size
    if kind == "mixed":
        parts = [_cells(rng, size), _particles(rng, size), _beads(rng, size)]
        thickness = sum(p[0] for p in parts[:2]) + 0.5 * parts[2][0]
        absorber = sum(p[1] for p in parts)
    else:
        thickness, absorber = {"cells": _cells, "beads": _beads,
                               "particles": _particles}[kind](rng, size)
    peak = max(float(thickness.max()), 1e-6)
    phase = thickness / peak * rng.uniform(*settings.phase_max_rad)
    # a real background is never flat: a weak smooth phase ripple, on some a slow drift
    phase += rng.uniform(0.005, 0.04) * _smooth_noise(rng, (size, size), rng.uniform(1, 6))
    if rng.random() < 0.3:
        yy, xx = _grid(size)
        phase += rng.uniform(-0.3, 0.3) * (yy - 0.5) + rng.uniform(-0.3, 0.3) * (xx - 0.5)
    kappa = rng.uniform(0.0, 0.15) if kind != "particles" else rng.uniform(0.5, 1.5)
    absorption = kappa * absorber / max(float(absorber.max()), 1e-6)
    return (np.exp(-absorption) * np.exp(1j * phase)).astype(np.complex64)


def _real_cell_image() -> np.ndarray:
    from skimage import data

    image = data.cell().astype(np.float64)
    background = float(np.median(image))
    return (image - background) / (float(np.percentile(image, 99.9)) - background)


# the cell's centre (row, column) and radius in pixels in skimage.data.cell()
_CELL_CENTRE = (375, 428)
_CELL_RADIUS = 68


def real_cell_object(rng: np.random.Generator, settings: SimulationSettings,
                     image: np.ndarray) -> np.ndarray:
    """A crop of the real phase image around its cell, at a random scale and position,
    resampled to the grid, as a complex transmission with weak absorption."""
    from skimage.transform import resize

    side = int(rng.uniform(2.4, 4.8) * _CELL_RADIUS)
    side = min(side, *image.shape)
    slack = max(side // 2 - _CELL_RADIUS - 4, 0)
    row = _CELL_CENTRE[0] + int(rng.integers(-slack, slack + 1)) - side // 2
    col = _CELL_CENTRE[1] + int(rng.integers(-slack, slack + 1)) - side // 2
    row = int(np.clip(row, 0, image.shape[0] - side))
    col = int(np.clip(col, 0, image.shape[1] - side))
    crop = image[row:row + side, col:col + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = resize(crop, (settings.size, settings.size), anti_aliasing=True)
    phase = crop * rng.uniform(*settings.phase_max_rad)
    absorption = rng.uniform(0.0, 0.1) * np.clip(crop, 0, None)
    return (np.exp(-absorption) * np.exp(1j * phase)).astype(np.complex64)


def normalise_hologram(counts: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Raw counts ``[..., H, W]`` -> intensity with mean 1 per frame (float32): how every
    hologram is scaled before the model or a baseline sees it."""
    if isinstance(counts, torch.Tensor):
        counts = counts.float()
        return counts / counts.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    counts = np.asarray(counts, dtype=np.float32)
    return counts / np.maximum(counts.mean(axis=(-2, -1), keepdims=True), 1e-12)


class HologramSimulator:
    """Samples of one split: ``sample(index)`` gives the raw hologram counts, the bit
    depth, the complex ground truth, ``z`` (m), the noise setting and the object source.
    Deterministic given ``(settings.seed, split, index, epoch)``."""

    def __init__(self, settings: SimulationSettings, split: str) -> None:
        if split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {list(SPLIT_CODES)}, got {split!r}")
        self.settings = settings
        self.split = split
        self._image: np.ndarray | None = None

    def rng(self, index: int, epoch: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.settings.seed, SPLIT_CODES[self.split], epoch, index])

    def object_field(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        settings = self.settings
        if self.split == "test" and rng.random() < settings.real_cell_fraction:
            if self._image is None:
                self._image = _real_cell_image()
            return real_cell_object(rng, settings, self._image), "real-cell"
        return procedural_object(rng, settings), "procedural"

    def hologram(self, obj: np.ndarray, z: float, noise: str, bits: int,
                 rng: np.random.Generator) -> np.ndarray:
        """The raw counts (uint16) a sensor with ``bits`` bits records of ``obj`` at ``z``."""
        settings = self.settings
        with torch.no_grad():
            sensor = propagate(torch.from_numpy(obj), z, settings.wavelength_m, settings.pixel_m,
                               pad_factor=settings.pad_factor)
        intensity = sensor.abs().square().numpy().astype(np.float64)
        sources = NOISE_SETTINGS[noise]
        if "speckle" in sources:
            contrast = rng.uniform(*settings.speckle_contrast)
            speckle = _smooth_noise(rng, intensity.shape,
                                    rng.uniform(*settings.speckle_correlation_px))
            intensity = intensity * np.clip(1 + contrast * speckle, 0, None)
        photons = rng.uniform(*settings.photons)
        electrons = intensity * photons
        if "shot" in sources:
            electrons = rng.poisson(electrons).astype(np.float64)
        if "dark" in sources:
            electrons = electrons + rng.poisson(rng.uniform(*settings.dark_electrons),
                                                electrons.shape)
        if "read" in sources:
            electrons = electrons + rng.normal(0, rng.uniform(*settings.read_electrons),
                                               electrons.shape)
        # the background at a random share of full scale, with headroom for the brightest
        # focus of the frame (a saturated frame is refused at prediction, so none is made)
        full_well = max(photons / rng.uniform(*settings.exposure),
                        1.02 * photons * float(intensity.max()))
        top = 2**bits - 1
        return np.clip(np.round(electrons / full_well * top), 0, top).astype(np.uint16)

    def sample(self, index: int, epoch: int = 0) -> dict:
        settings = self.settings
        rng = self.rng(index, epoch)
        obj, source = self.object_field(rng)
        if rng.random() < 0.5 and source == "procedural":
            obj = np.ascontiguousarray(np.rot90(obj, int(rng.integers(1, 4))))
        z = float(rng.uniform(*settings.z_range_m))
        noise = settings.noise[rng.integers(len(settings.noise))]
        bits = int(settings.bits[rng.integers(len(settings.bits))])
        counts = self.hologram(obj, z, noise, bits, rng)
        return {"counts": counts, "bits": bits, "field": obj, "z_m": z, "noise": noise,
                "source": source}

    def samples(self, count: int, progress: type | None = None) -> dict[str, np.ndarray]:
        """``count`` samples stacked into arrays (what ``val.npz``/``test.npz`` hold)."""
        indices = range(count)
        if progress is not None:
            indices = progress(indices, desc=f"{HOLO_CELLS} {self.split}", unit="hologram")
        items = [self.sample(i) for i in indices]
        return {
            "holograms": np.stack([s["counts"] for s in items]),
            "bits": np.array([s["bits"] for s in items], dtype=np.int16),
            "fields": np.stack([s["field"] for s in items]),
            "z_m": np.array([s["z_m"] for s in items]),
            "noise": np.array([s["noise"] for s in items]),
            "source": np.array([s["source"] for s in items]),
        }


#: the prepared benchmark: quickstart settings, sample counts per split
BENCHMARK = SimulationSettings()
BENCHMARK_COUNTS = {"val": 160, "test": 320}


def settings_record(settings: SimulationSettings) -> dict:
    return json.loads(json.dumps(asdict(settings)))


def build_holo_cells(folder: Path, progress: type) -> None:
    """The ``holo-cells`` benchmark into ``folder``: validation and test holograms with
    their complex ground truth, and ``split.json``."""
    started = time.perf_counter()
    folder = Path(folder)
    for split, count in BENCHMARK_COUNTS.items():
        arrays = HologramSimulator(BENCHMARK, split).samples(count, progress)
        np.savez_compressed(folder / f"{split}.npz", **arrays)
    record = {
        "name": HOLO_CELLS,
        "description": "simulated inline holograms of procedural and real phase objects "
                       "with their complex ground truth",
        "settings": settings_record(BENCHMARK),
        "counts": BENCHMARK_COUNTS,
        "train": "simulated on the fly from procedural objects (seed stream 1); never the "
                 "real cell image",
        "sources": {
            "procedural": "cells, beads, absorbing particles and mixtures (seed streams: "
                          "train 1, val 2, test 3)",
            "real-cell": "skimage.data.cell(), a phase image retrieved from a digital "
                         "hologram; test split only",
        },
        "noise_settings": {k: list(v) for k, v in NOISE_SETTINGS.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (folder / "split.json").write_text(json.dumps(record, indent=2) + "\n")


def load_benchmark(folder: Path, split: str) -> dict[str, np.ndarray]:
    """A prepared split's arrays (``val`` or ``test``)."""
    path = Path(folder) / f"{split}.npz"
    if not path.is_file():
        raise UserError(f"{path} is missing: run `domainvit data prepare --force {HOLO_CELLS}`")
    with np.load(path, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}
