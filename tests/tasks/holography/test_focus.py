"""Autofocus (``domainvit.tasks.holography.focus``) on simulated inline holograms of phase
objects with noise: it finds the object distance, returns the whole focus curve sorted, and
refuses bad arguments."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from domainvit.optics import propagate
from domainvit.tasks.holography.focus import (
    DEFAULT_METRIC,
    METRICS,
    FocusResult,
    autofocus,
    sharpness,
)
from tests.tasks.holography.conftest import OBJECTS, PIXEL, WAVELENGTH

Z_RANGE = (2e-3, 10e-3)


def _errors_mm(simulate, size: int, distances: list[float], metric: str = DEFAULT_METRIC,
               ) -> list[float]:
    errors = []
    for kind in OBJECTS:
        for seed, z in enumerate(distances):
            hologram, _ = simulate(kind, size, z, seed)
            found = autofocus(hologram, WAVELENGTH, PIXEL, Z_RANGE, metric=metric).z
            errors.append(abs(found - z) * 1e3)
    return errors


def test_autofocus_finds_the_distance_of_every_kind_of_object(simulate):
    # 64 x 64 pixels: every kind of object at 3, 6 and 9 mm, with 1% shot and read noise
    errors = _errors_mm(simulate, 64, [3e-3, 6e-3, 9e-3])
    assert np.median(errors) < 0.35, errors  # measured: 0.17 mm
    assert sum(error < 1.0 for error in errors) >= 10, errors
    # a criterion that misleads on phase objects is far off on the same holograms
    assert np.median(_errors_mm(simulate, 64, [3e-3, 6e-3, 9e-3], "tamura")) > 1.0


@pytest.mark.slow
def test_autofocus_is_precise_on_a_larger_sensor(simulate):
    errors = _errors_mm(simulate, 128, [4e-3, 8e-3])
    assert np.median(errors) < 0.2, errors  # measured: 0.07 mm
    assert max(errors) < 0.5, errors  # measured: 0.23 mm


@pytest.mark.parametrize("z", [3e-3, 6e-3, 9e-3])
def test_autofocus_focuses_the_real_cell_image(simulate, z):
    hologram, _ = simulate("cell_image", 64, z, seed=7)
    result = autofocus(hologram, WAVELENGTH, PIXEL, Z_RANGE)
    assert abs(result.z - z) < 0.25e-3


def test_the_default_criterion_peaks_at_the_object_plane(simulate):
    hologram, _ = simulate("beads", 128, 5e-3, seed=3, noise=False)
    distances = torch.linspace(4e-3, 6e-3, 41, dtype=torch.float64)
    amplitude = hologram.sqrt().to(torch.complex64).expand(len(distances), -1, -1)
    scores = sharpness(propagate(amplitude, -distances, WAVELENGTH, PIXEL))
    assert scores.shape == (41,) and scores.dtype == torch.float64
    assert abs(float(distances[scores.argmax()]) - 5e-3) <= 0.1e-3, scores
    # a clear peak, not a ripple: it stands well above the curve's median
    assert float(scores.max()) > float(scores.median()) + 0.05


def test_the_focus_curve_is_returned_sorted_with_every_distance(simulate):
    hologram, _ = simulate("particles", 64, 6e-3, seed=1)
    result = autofocus(hologram, WAVELENGTH, PIXEL, Z_RANGE, coarse_steps=12, refine_levels=2)
    assert isinstance(result, FocusResult) and result.metric == DEFAULT_METRIC
    assert result.distances.shape == result.scores.shape
    assert np.all(np.diff(result.distances) > 0)
    assert result.distances[0] == pytest.approx(2e-3) and result.distances[-1] == 10e-3
    assert np.isin(np.linspace(*Z_RANGE, 12), result.distances).all()  # the coarse grid
    assert len(result.distances) > 12  # and the refinements
    assert result.z == result.distances[int(np.argmax(result.scores))]
    # the finest points lie around the answer
    gaps = np.diff(result.distances)
    finest = int(np.argmin(gaps))
    assert abs(result.distances[finest] - result.z) < 1e-3
    coarse = autofocus(hologram, WAVELENGTH, PIXEL, Z_RANGE, coarse_steps=12, refine_levels=0)
    assert np.allclose(coarse.distances, np.linspace(*Z_RANGE, 12))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.z = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("metric", METRICS)
def test_every_criterion_scores_batches_item_by_item(metric):
    generator = torch.Generator().manual_seed(0)
    fields = torch.randn(3, 16, 16, dtype=torch.complex64, generator=generator) + 2
    batched = sharpness(fields, metric)
    single = torch.stack([sharpness(field, metric) for field in fields])
    assert batched.shape == (3,) and torch.allclose(batched, single)
    assert torch.isfinite(batched).all()


@pytest.mark.parametrize(("change", "message"), [
    ({"hologram": torch.ones(2, 32, 32)}, "2-D"),
    ({"hologram": torch.ones(32, 32, dtype=torch.complex64)}, "real intensity"),
    ({"hologram": torch.ones(4, 4)}, "at least 8"),
    ({"hologram": torch.full((32, 32), float("nan"))}, "NaN"),
    ({"wavelength": 0.0}, "wavelength"),
    ({"pixel": -1e-6}, "pixel"),
    ({"z_range": (5e-3, 2e-3)}, "0 < low < high"),
    ({"z_range": (0.0, 2e-3)}, "0 < low < high"),
    ({"z_range": (1e-3,)}, "two distances"),
    ({"metric": "variance"}, "metric"),
    ({"coarse_steps": 2}, "coarse_steps"),
    ({"refine_levels": -1}, "refine_levels"),
    ({"refine_levels": 1.5}, "refine_levels"),
    ({"pad_factor": 0.5}, "pad_factor"),
])
def test_bad_arguments_are_refused_clearly(change, message):
    arguments = {"hologram": torch.ones(32, 32), "wavelength": WAVELENGTH, "pixel": PIXEL,
                 "z_range": Z_RANGE} | change
    with pytest.raises(ValueError, match=message):
        autofocus(**arguments)


def test_sharpness_refuses_unknown_criteria_and_real_fields():
    with pytest.raises(ValueError, match="metric"):
        sharpness(torch.ones(8, 8, dtype=torch.complex64), "brenner")
    with pytest.raises(TypeError):
        sharpness(torch.ones(8, 8), "tamura")
