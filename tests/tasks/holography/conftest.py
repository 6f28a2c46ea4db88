"""A small inline-hologram simulator for the holography tests: phase objects with weak
absorption on a unit background, propagated with :func:`domainvit.optics.propagate` on a
grid twice the sensor's and cropped to it (what diffracts off the sensor is lost, as on a
real one), with Poisson and Gaussian noise, normalised to a background of 1."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from domainvit.optics import propagate

WAVELENGTH = 532e-9
PIXEL = 4.65e-6


def _cells(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """1-3 elliptical blobs with a nucleus near the centre."""
    yy, xx = np.mgrid[:n, :n].astype(np.float64)
    phase, amplitude = np.zeros((n, n)), np.ones((n, n))
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(n / 2 - 16, n / 2 + 16, 2)
        a, b = rng.uniform(4, 12, 2)
        angle = rng.uniform(0, np.pi)
        u = ((yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)) / a
        v = (-(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)) / b
        body = 1 / (1 + np.exp((np.sqrt(u**2 + v**2) - 1) / 0.08))
        du, dv = rng.uniform(-0.3, 0.3, 2)
        nucleus = np.exp(-((u - du) ** 2 + (v - dv) ** 2) / (2 * 0.25**2)) * body
        phase += rng.uniform(0.8, 2.0) * body + rng.uniform(0.3, 1.0) * nucleus
        amplitude *= 1 - rng.uniform(0, 0.1) * body - rng.uniform(0, 0.1) * nucleus
    return amplitude, phase / phase.max() * rng.uniform(1, 3)


def _beads(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """1-4 spheres: phase ~ sqrt(R^2 - r^2)."""
    yy, xx = np.mgrid[:n, :n].astype(np.float64)
    phase, amplitude = np.zeros((n, n)), np.ones((n, n))
    for _ in range(rng.integers(1, 5)):
        cy, cx = rng.uniform(0.25 * n, 0.75 * n, 2)
        radius = rng.uniform(3, 0.1 * n)
        height = np.sqrt(np.clip(radius**2 - (yy - cy) ** 2 - (xx - cx) ** 2, 0, None)) / radius
        phase += rng.uniform(1, 3) * height
        amplitude *= 1 - rng.uniform(0, 0.15) * height
    return amplitude, phase / phase.max() * rng.uniform(1, 3)


def _particles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """2-6 small absorbing discs with a little phase."""
    yy, xx = np.mgrid[:n, :n].astype(np.float64)
    phase, amplitude = np.zeros((n, n)), np.ones((n, n))
    for _ in range(rng.integers(2, 7)):
        cy, cx = rng.uniform(0.2 * n, 0.8 * n, 2)
        radius = rng.uniform(1.5, 4)
        disc = 1 / (1 + np.exp((np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) - radius) / 0.5))
        amplitude *= 1 - rng.uniform(0.1, 0.2) * disc
        phase += rng.uniform(0, 1) * disc
    return amplitude, phase


def _cell_image(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The real phase image ``skimage.data.cell()`` around its cell, phase = image / 255 *
    2 rad less its background, rotated and scaled at random, tapered into the background."""
    from skimage import data
    from skimage.transform import resize, rotate

    image = data.cell().astype(np.float64)[380:600, 300:520]
    image = rotate(image, rng.uniform(0, 360), mode="edge")
    size = int(rng.uniform(0.35, 0.6) * n)
    crop = resize(image, (size, size), anti_aliasing=True)
    window = np.sqrt(np.hanning(size)[:, None] * np.hanning(size)[None])
    phase = np.zeros((n, n))
    top, left = rng.integers(n // 2 - size // 2 - n // 8, n // 2 - size // 2 + n // 8 + 1, 2)
    phase[top:top + size, left:left + size] = (crop - np.median(image)) / 255 * 2 * window
    return np.ones((n, n)), phase


OBJECTS: dict[str, Callable] = {"cells": _cells, "beads": _beads, "particles": _particles,
                                "cell_image": _cell_image}


def simulate_hologram(kind: str, size: int, z: float, seed: int, noise: bool = True,
                      ) -> tuple[torch.Tensor, np.ndarray]:
    """An inline hologram ``[size, size]`` (float32, background 1) of a random object of
    ``kind`` at ``z`` metres, and the object's complex transmission (complex128)."""
    rng = np.random.default_rng(seed)
    amplitude, phase = OBJECTS[kind](rng, size)
    obj = amplitude * np.exp(1j * phase)
    canvas = np.ones((2 * size, 2 * size), dtype=np.complex128)
    lo = size // 2
    canvas[lo:lo + size, lo:lo + size] = obj
    with torch.no_grad():
        sensor = propagate(torch.from_numpy(canvas).to(torch.complex64), z, WAVELENGTH, PIXEL)
    intensity = sensor.abs().double().numpy()[lo:lo + size, lo:lo + size] ** 2
    if noise:  # 1% shot noise (10^4 photons per background pixel) and 1% read noise
        intensity = rng.poisson(intensity * 1e4) / 1e4 + 0.01 * rng.standard_normal(
            intensity.shape)
    intensity = intensity / np.median(intensity)
    return torch.from_numpy(intensity.astype(np.float32)), obj


@pytest.fixture
def simulate() -> Callable[..., tuple[torch.Tensor, np.ndarray]]:
    return simulate_hologram
