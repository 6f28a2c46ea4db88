"""Iterative twin-image removal (``domainvit.tasks.holography.twin``) on simulated inline
holograms: it recovers the object's phase better than plain back-propagation, its automatic
support covers the object and not the whole field, its result obeys the constraints, and
batches give what single holograms give."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domainvit.optics import propagate
from domainvit.tasks.holography.twin import estimate_support, remove_twin_image
from tests.tasks.holography.conftest import OBJECTS, PIXEL, WAVELENGTH


def _phase_error(prediction: torch.Tensor, target: np.ndarray,
                 region: np.ndarray | None = None) -> float:
    """RMS phase difference (rad) after removing the global phase offset."""
    prediction = prediction.detach().numpy().astype(np.complex128)
    offset = np.angle(np.sum(prediction * np.conj(target)))
    difference = np.angle(prediction * np.exp(-1j * offset) * np.conj(target))
    if region is not None:
        difference = difference[region]
    return float(np.sqrt(np.mean(difference**2)))


def _plain(hologram: torch.Tensor, z: float) -> torch.Tensor:
    return propagate(hologram.clamp_min(0).sqrt().to(torch.complex64), -z, WAVELENGTH, PIXEL)


@pytest.mark.parametrize("kind", list(OBJECTS))
def test_twin_removal_lowers_the_phase_error(simulate, kind):
    z = 6e-3
    hologram, target = simulate(kind, 64, z, seed=1)
    plain = _plain(hologram, z)
    cleaned = remove_twin_image(hologram, z, WAVELENGTH, PIXEL)
    assert cleaned.dtype == torch.complex64 and cleaned.shape == hologram.shape
    region = np.abs(target - 1) > 0.05  # the object itself
    # measured (whole field / in the object): cells 0.52 -> 0.21 / 1.2 -> 0.48 rad, beads
    # 0.23 -> 0.04 / 1.0 -> 0.13, particles 0.06 -> 0.01, the cell image 0.04 -> 0.01
    assert _phase_error(cleaned, target) < 0.6 * _phase_error(plain, target)
    assert _phase_error(cleaned, target, region) < 0.6 * _phase_error(plain, target, region)


def test_absorption_positivity_alone_helps_and_a_support_helps_more(simulate):
    z = 3e-3
    hologram, target = simulate("beads", 64, z, seed=0)
    plain = _phase_error(_plain(hologram, z), target)
    positivity = _phase_error(remove_twin_image(hologram, z, WAVELENGTH, PIXEL, support=None),
                              target)
    supported = _phase_error(remove_twin_image(hologram, z, WAVELENGTH, PIXEL), target)
    assert supported < positivity < plain


def test_the_auto_support_covers_the_object_and_not_the_whole_field(simulate):
    for seed, kind in enumerate(OBJECTS):
        z = 4e-3 + 1e-3 * seed
        hologram, target = simulate(kind, 64, z, seed=seed)
        support = estimate_support(_plain(hologram, z))
        assert support.dtype == torch.bool and support.shape == hologram.shape
        region = torch.from_numpy(np.abs(target - 1) > 0.05)
        assert 0.05 < float(support.float().mean()) <= 0.6, kind  # measured 0.17-0.43
        assert float((support & region).sum() / region.sum()) > 0.9, kind


def test_a_support_covering_everything_is_no_support():
    # what made the published baseline plain back-propagation: outside a full support
    # nothing is constrained
    generator = torch.Generator().manual_seed(0)
    noise = 1 + 0.3 * torch.randn(32, 32, dtype=torch.complex64, generator=generator)
    support = estimate_support(noise, max_fraction=0.5)
    assert float(support.float().mean()) <= 0.5
    flat = estimate_support(torch.ones(2, 16, 16, dtype=torch.complex64))
    assert flat.shape == (2, 16, 16) and not flat.any()


def test_the_result_obeys_the_constraints(simulate):
    z = 5e-3
    hologram, _ = simulate("cells", 64, z, seed=2)
    support = estimate_support(_plain(hologram, z))
    cleaned = remove_twin_image(hologram, z, WAVELENGTH, PIXEL, iterations=10, support=support)
    assert float(cleaned.abs().max()) <= 1 + 1e-6  # absorption is not negative
    assert torch.allclose(cleaned[~support], torch.ones(()).to(torch.complex64))
    positive = remove_twin_image(hologram, z, WAVELENGTH, PIXEL, iterations=10,
                                 phase_sign="positive")
    assert float(positive.angle().min()) >= 0
    plain = remove_twin_image(hologram, z, WAVELENGTH, PIXEL, iterations=0)
    assert torch.allclose(plain, _plain(hologram, z))


def test_a_batch_with_one_distance_each_equals_single_holograms(simulate):
    distances = [3e-3, 7e-3]
    pairs = [simulate("beads", 32, z, seed=seed) for seed, z in enumerate(distances)]
    batch = torch.stack([hologram for hologram, _ in pairs])
    together = remove_twin_image(batch, torch.tensor(distances), WAVELENGTH, PIXEL,
                                 iterations=20)
    for index, (hologram, _) in enumerate(pairs):
        alone = remove_twin_image(hologram, distances[index], WAVELENGTH, PIXEL, iterations=20)
        assert (together[index] - alone).abs().max() < 1e-3


@pytest.mark.parametrize(("change", "message"), [
    ({"hologram": torch.ones(2, 2, 16, 16)}, r"\[H, W\] or \[B, H, W\]"),
    ({"hologram": torch.ones(16, 16, dtype=torch.complex64)}, "real intensity"),
    ({"hologram": torch.full((16, 16), float("inf"))}, "NaN or infinite"),
    ({"z": torch.tensor([1e-3, 2e-3])}, "batch"),
    ({"z": 0.0}, "non-zero"),
    ({"iterations": -1}, "iterations"),
    ({"support": "everything"}, "support"),
    ({"support": torch.ones(8, 8, dtype=torch.bool)}, "support"),
    ({"phase_sign": "both"}, "phase_sign"),
    ({"wavelength": -1.0}, "positive"),
])
def test_bad_arguments_are_refused_clearly(change, message):
    arguments = {"hologram": torch.ones(16, 16), "z": 3e-3, "wavelength": WAVELENGTH,
                 "pixel": PIXEL} | change
    with pytest.raises(ValueError, match=message):
        remove_twin_image(**arguments)
    with pytest.raises(ValueError, match="max_fraction"):
        estimate_support(torch.ones(8, 8, dtype=torch.complex64), max_fraction=1.0)
