"""The angular spectrum method (``domainvit.optics``) against cases with known answers: a
Gaussian beam's width and Gouy phase, energy conservation, forward-then-back identity, the
evanescent cut, the band limit, padding against wrap-around, batched distances, and the
gradient (the adjoint of propagation over ``z`` is propagation over ``-z``)."""

from __future__ import annotations

import math

import pytest
import torch

from domainvit.optics import (
    band_fraction,
    band_limit_frequency,
    critical_distance,
    frequency_grid,
    pad_field,
    propagate,
    transfer_function,
)

WAVELENGTH = 532e-9


def _grid(n: int, pixel: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred coordinates (m), float64 ``[n, n]`` each (rows: y)."""
    axis = (torch.arange(n, dtype=torch.float64) - n // 2) * pixel
    return torch.meshgrid(axis, axis, indexing="ij")


def _band_limited_field(n: int, fraction: float, seed: int = 0) -> torch.Tensor:
    """A random complex field whose spectrum holds only |f| < ``fraction`` of Nyquist."""
    generator = torch.Generator().manual_seed(seed)
    spectrum = torch.randn(n, n, dtype=torch.complex128, generator=generator)
    fx, fy = frequency_grid((n, n), 1.0)  # cycles per pixel: Nyquist is 0.5
    spectrum[(fx**2 + fy**2).sqrt() >= 0.5 * fraction] = 0
    return torch.fft.ifft2(spectrum).to(torch.complex64)


def _inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    return complex((a.to(torch.complex128) * b.to(torch.complex128).conj()).sum())


def test_gaussian_beam_width_and_gouy_phase_follow_the_analytic_beam():
    pixel, n, waist = 2e-6, 256, 20e-6
    rayleigh = math.pi * waist**2 / WAVELENGTH  # 2.36 mm
    y, x = _grid(n, pixel)
    r2 = x**2 + y**2
    beam = torch.exp(-r2 / waist**2).to(torch.complex64)
    distances = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64) * rayleigh
    out = propagate(beam.expand(4, -1, -1), distances, WAVELENGTH, pixel, pad_value="zero")
    intensity = out.abs().to(torch.float64) ** 2
    # 1/e^2 radius from the second moment: <r^2> = w^2 / 2 for I ~ exp(-2 r^2 / w^2)
    width = torch.sqrt(2 * (intensity * r2).sum(dim=(-2, -1)) / intensity.sum(dim=(-2, -1)))
    expected = waist * torch.sqrt(1 + (distances / rayleigh) ** 2)
    assert torch.allclose(width, expected, rtol=5e-3), (width / expected).tolist()
    # on axis: 1 / (1 + i z / zR), amplitude and Gouy phase -atan(z / zR) (no carrier)
    centre = out[:, n // 2, n // 2].to(torch.complex128)
    expected_centre = 1 / (1 + 1j * distances / rayleigh)
    assert torch.allclose(centre, expected_centre.to(torch.complex128), atol=2e-3)


def test_energy_is_conserved_for_band_limited_content():
    field = _band_limited_field(128, 0.4)
    for z in (1e-3, 5e-3, -3e-3):
        # unpadded, the propagation is unitary on the band the field occupies
        out = propagate(field, z, WAVELENGTH, 4.65e-6, pad_factor=1.0)
        before = field.abs().double().pow(2).sum()
        after = out.abs().double().pow(2).sum()
        assert abs(float(after / before) - 1) < 1e-5
    assert band_fraction(128, 4.65e-6, WAVELENGTH, 5e-3) > 0.4  # the band is kept


def test_forward_then_back_is_the_identity():
    field = _band_limited_field(128, 0.4, seed=1)
    there = propagate(field, 4e-3, WAVELENGTH, 4.65e-6, pad_factor=1.0)
    back = propagate(there, -4e-3, WAVELENGTH, 4.65e-6, pad_factor=1.0)
    assert (back - field).abs().max() < 1e-5 * field.abs().max()
    assert (there - field).abs().max() > 0.1 * field.abs().max()  # it did propagate
    # padded: a compact object whose diffraction stays inside the padded window
    y, x = _grid(64, 4.65e-6)
    blob = 1 + 0.5j * torch.exp(-(x**2 + y**2) / (20e-6) ** 2)
    there = propagate(blob.to(torch.complex64), 2e-3, WAVELENGTH, 4.65e-6, pad_factor=3.0)
    back = propagate(there, -2e-3, WAVELENGTH, 4.65e-6, pad_factor=3.0)
    assert (back - blob).abs().max() < 1e-4


def test_evanescent_waves_are_removed_not_passed():
    pixel, n, z = WAVELENGTH / 4, 64, 2e-6  # the grid holds frequencies up to 2 / lambda
    fy, fx = (torch.arange(n, dtype=torch.float64) * pixel,) * 2
    x = torch.meshgrid(fy, fx, indexing="ij")[1]
    step = 1 / (n * pixel)  # 1 / (16 lambda)
    evanescent = torch.exp(2j * math.pi * 24 * step * x).to(torch.complex64)  # 1.5 / lambda
    propagating = torch.exp(2j * math.pi * 8 * step * x).to(torch.complex64)  # 0.5 / lambda
    transfer = transfer_function((n, n), WAVELENGTH, pixel, z, band_limit=False)
    assert transfer[0, 24] == 0 and transfer[0, -24] == 0
    assert torch.isclose(transfer[0, 8].abs(), torch.tensor(1.0))
    gone = propagate(evanescent, z, WAVELENGTH, pixel, pad_factor=1.0, band_limit=False)
    assert gone.abs().max() < 1e-5
    kept = propagate(propagating, z, WAVELENGTH, pixel, pad_factor=1.0, band_limit=False)
    # a plane wave at angle: amplitude 1, phase 2 pi z (sqrt(1/l^2 - f^2) - 1/l)
    f = 8 * step
    phase = 2 * math.pi * z * (math.sqrt(1 / WAVELENGTH**2 - f**2) - 1 / WAVELENGTH)
    expected = propagating * torch.polar(torch.tensor(1.0), torch.tensor(phase))
    assert (kept - expected).abs().max() < 1e-4


def test_band_limit_cuts_beyond_its_frequency_and_agrees_with_critical_distance():
    n, pixel, z = 128, 4.65e-6, 30e-3  # far beyond the critical distance of 128 pixels
    limit = band_limit_frequency(n, pixel, WAVELENGTH, z)
    fx, fy = frequency_grid((n, n), pixel)
    transfer = transfer_function((n, n), WAVELENGTH, pixel, z, band_limit=True)
    outside = (fx.abs() >= limit) | (fy.abs() >= limit)
    assert outside.any() and (transfer[outside] == 0).all()
    inside = (fx.abs() < 0.95 * limit) & (fy.abs() < 0.95 * limit)
    assert torch.allclose(transfer[inside].abs(), torch.ones(()), atol=1e-6)
    unlimited = transfer_function((n, n), WAVELENGTH, pixel, z, band_limit=False)
    assert torch.allclose(unlimited.abs(), torch.ones(()), atol=1e-6)  # all propagating
    # the fraction is the limit over Nyquist; the critical distance inverts it
    assert band_fraction(n, pixel, WAVELENGTH, z) == pytest.approx(limit * 2 * pixel)
    for fraction in (0.25, 0.5, 0.9):
        distance = critical_distance(n, pixel, WAVELENGTH, fraction)
        assert band_fraction(n, pixel, WAVELENGTH, distance) == pytest.approx(fraction)
        assert band_fraction(n, pixel, WAVELENGTH, 1.1 * distance) < fraction
    assert band_fraction(n, pixel, WAVELENGTH, 1e-6) == 1.0  # short: the whole band
    with pytest.raises(ValueError):
        critical_distance(n, pixel, WAVELENGTH, 0.0)


def test_padding_prevents_circular_wrap_around():
    n, pixel, z = 64, 4.65e-6, 4e-3
    y, x = _grid(n, pixel)
    right = (n // 2 - 4) * pixel  # a small spot 4 pixels from the right edge
    spot = torch.exp(-((x - right) ** 2 + y**2) / (1.5 * pixel) ** 2).to(torch.complex64)

    def left_edge_energy(out: torch.Tensor) -> float:
        return float(out[:, :8].abs().pow(2).sum() / out.abs().pow(2).sum())

    wrapped = propagate(spot, z, WAVELENGTH, pixel, pad_factor=1.0, pad_value="zero")
    padded = propagate(spot, z, WAVELENGTH, pixel, pad_factor=2.0, pad_value="zero")
    assert left_edge_energy(wrapped) > 0.05
    assert left_edge_energy(padded) < 0.01 * left_edge_energy(wrapped)
    field, widths = pad_field(spot, 2.0, "zero")
    assert field.shape == (128, 128) and sum(widths) == 128


def test_batched_distances_equal_one_call_per_item():
    field = _band_limited_field(32, 0.8, seed=2).expand(3, 2, -1, -1).clone()
    field[1] *= 0.5j
    distances = torch.tensor([1e-3, -2e-3, 6e-3], dtype=torch.float64)
    batched = propagate(field, distances, WAVELENGTH, 4.65e-6)
    single = torch.stack([propagate(field[i], float(d), WAVELENGTH, 4.65e-6)
                          for i, d in enumerate(distances)])
    assert torch.allclose(batched, single, atol=1e-6)
    with pytest.raises(ValueError, match="one per item"):
        propagate(field, distances[:2], WAVELENGTH, 4.65e-6)


def test_backward_is_the_adjoint_and_the_gradient_matches_it():
    n, pixel, z = 32, 4.65e-6, 3e-3
    generator = torch.Generator().manual_seed(3)
    u = torch.randn(n, n, dtype=torch.complex64, generator=generator)
    v = torch.randn(n, n, dtype=torch.complex64, generator=generator)
    forward = _inner(propagate(u, z, WAVELENGTH, pixel, pad_factor=1.0), v)
    adjoint = _inner(u, propagate(v, -z, WAVELENGTH, pixel, pad_factor=1.0))
    assert abs(forward - adjoint) < 1e-4 * abs(forward)
    # the gradient of L = sum(w |P u|^2) is 2 P^H (w P u) = 2 P_{-z}(w P u)
    weight = torch.rand(n, n, generator=generator)
    leaf = u.clone().requires_grad_(True)
    out = propagate(leaf, z, WAVELENGTH, pixel, pad_factor=1.0)
    loss = (weight * out.abs() ** 2).sum()
    loss.backward()
    analytic = 2 * propagate(weight * out.detach(), -z, WAVELENGTH, pixel, pad_factor=1.0)
    assert torch.allclose(leaf.grad, analytic, atol=1e-4 * float(analytic.abs().max()))
    # and a finite difference along a random direction agrees (dL = Re <grad, du>)
    direction = torch.randn(n, n, dtype=torch.complex64, generator=generator)
    step = 1e-2

    def loss_at(field: torch.Tensor) -> float:
        result = propagate(field, z, WAVELENGTH, pixel, pad_factor=1.0)
        return float((weight.double() * result.abs().double() ** 2).sum())

    numeric = (loss_at(u + step * direction) - loss_at(u - step * direction)) / (2 * step)
    predicted = _inner(direction, leaf.grad).real
    assert numeric == pytest.approx(predicted, rel=1e-3)


def test_plane_wave_keeps_phase_zero_and_real_fields_are_refused():
    plane = torch.ones(16, 16, dtype=torch.complex64)
    out = propagate(plane, 7e-3, WAVELENGTH, 4.65e-6)
    assert torch.allclose(out, plane, atol=1e-5)
    with pytest.raises(TypeError):
        propagate(torch.ones(16, 16), 1e-3, WAVELENGTH, 4.65e-6)
