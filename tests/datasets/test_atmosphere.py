"""The analytic atmosphere of the simulated Sentinel-2 scenes (Tanré et al. 1979 / 6S
coupling): Rayleigh and aerosol optical thickness, path reflectance, transmittances,
gaseous absorption and the exact inverse."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from domainvit.datasets.hsi_scenes.atmosphere import (
    Atmosphere,
    aerosol_optical_thickness,
    band_optics,
    henyey_greenstein,
    random_atmosphere,
    rayleigh_optical_thickness,
    rayleigh_phase,
    surface_reflectance,
    toa_reflectance,
)
from domainvit.datasets.hsi_scenes.sensors import S2_BAND_NAMES

B = {name: i for i, name in enumerate(S2_BAND_NAMES)}


def test_rayleigh_optical_thickness_matches_tables_and_scales_with_pressure():
    # Hansen & Travis 1974 / Bodhaine et al. 1999: ~0.0973 at 550 nm, ~0.236 at 443 nm
    assert rayleigh_optical_thickness(550.0) == pytest.approx(0.0973, rel=0.02)
    assert rayleigh_optical_thickness(443.0) == pytest.approx(0.236, rel=0.03)
    assert rayleigh_optical_thickness(550.0, 506.625) == pytest.approx(
        rayleigh_optical_thickness(550.0) / 2)


def test_angstrom_law():
    assert aerosol_optical_thickness(550.0, 0.2, 1.5) == pytest.approx(0.2)
    assert aerosol_optical_thickness(1100.0, 0.2, 1.0) == pytest.approx(0.1)


def test_phase_functions_are_normalised():
    mu = np.linspace(-1, 1, 20001)
    for p in (rayleigh_phase(mu), henyey_greenstein(mu, 0.7)):
        assert np.trapezoid(p, mu) / 2 == pytest.approx(1.0, abs=1e-3)


def test_without_aerosol_the_path_is_rayleigh_and_falls_as_lambda_to_the_minus_four():
    clear = Atmosphere(aot550=0.0, sun_zenith=30.0, view_zenith=0.0)
    centres = np.array([450.0, 500.0, 600.0, 700.0, 800.0])
    optics = band_optics(clear, centres, np.full(5, 1.0))
    assert np.all(optics.tau_aerosol == 0)
    assert np.all(np.diff(optics.rho_path) < 0)
    slope = np.polyfit(np.log(centres), np.log(optics.rho_path), 1)[0]
    assert -4.5 < slope < -3.7
    # and adding aerosol adds path reflectance
    hazy = band_optics(replace(clear, aot550=0.3), centres, np.full(5, 1.0))
    assert np.all(hazy.rho_path > optics.rho_path)


def test_dark_water_is_brighter_at_toa_in_the_blue_and_bright_targets_darker_under_haze():
    optics = band_optics(Atmosphere(aot550=0.1))
    water = np.full(13, 0.01)
    toa = toa_reflectance(water, optics)
    assert toa[B["B01"]] > 3 * water[B["B01"]] and toa[B["B02"]] > water[B["B02"]]
    bright = np.full(13, 0.5)
    hazy = band_optics(Atmosphere(aot550=0.5, ssa=0.9, sun_zenith=60.0))
    assert toa_reflectance(bright, hazy)[B["B8A"]] < 0.5
    assert toa_reflectance(bright, hazy)[B["B08"]] < toa_reflectance(bright, band_optics(
        Atmosphere(aot550=0.05, ssa=0.9, sun_zenith=60.0)))[B["B08"]]


def test_transmittances_lie_in_0_1_and_fall_with_aerosol_and_zenith():
    base = band_optics(Atmosphere(aot550=0.1, sun_zenith=30.0))
    hazy = band_optics(Atmosphere(aot550=0.4, sun_zenith=30.0))
    low_sun = band_optics(Atmosphere(aot550=0.1, sun_zenith=65.0))
    for o in (base, hazy, low_sun):
        for t in (o.t_down, o.t_up, o.tg, o.t_down_direct):
            assert np.all((t > 0) & (t <= 1))
        assert np.all(o.t_down_direct <= o.t_down)
        assert np.all((o.spherical_albedo > 0) & (o.spherical_albedo < 0.5))
    assert np.all(hazy.t_down < base.t_down) and np.all(hazy.t_up < base.t_up)
    assert np.all(low_sun.t_down < base.t_down)
    # skylight is a larger share of the illumination in the blue
    diffuse_share = base.t_down_diffuse / base.t_down
    assert diffuse_share[B["B01"]] > diffuse_share[B["B04"]] > diffuse_share[B["B12"]]


def test_water_vapour_darkens_b09_strongly_and_b10_almost_entirely():
    dry = band_optics(Atmosphere(water_vapour=0.5))
    wet = band_optics(Atmosphere(water_vapour=4.0))
    assert wet.tg_water[B["B09"]] < 0.5 < dry.tg_water[B["B09"]]
    assert wet.tg_water[B["B09"]] < 0.7 * dry.tg_water[B["B09"]]
    assert dry.tg[B["B10"]] < 0.05 and wet.tg[B["B10"]] < 1e-3
    for band in ("B01", "B02", "B03", "B04", "B8A", "B11"):
        assert wet.tg_water[B[band]] > 0.97
    # ozone's Chappuis band: B03 absorbs more than B02 and B01
    assert dry.tg[B["B03"]] < dry.tg[B["B02"]] < dry.tg[B["B01"]] + 1e-9
    # a surface seen in B10 is nearly invisible
    assert toa_reflectance(np.full(13, 0.3), wet)[B["B10"]] < 0.003


def test_forward_then_inverse_is_the_identity():
    rng = np.random.default_rng(0)
    rho = rng.uniform(0.0, 0.8, size=(50, 13))
    for _ in range(5):
        optics = band_optics(random_atmosphere(rng))
        back = surface_reflectance(toa_reflectance(rho, optics), optics)
        keep = np.array([n != "B10" for n in S2_BAND_NAMES])  # Tg ~ 1e-4: ill-conditioned
        np.testing.assert_allclose(back[:, keep], rho[:, keep], rtol=1e-9, atol=1e-9)


def test_a_shadowed_surface_is_darker_and_bluer():
    optics = band_optics(Atmosphere(aot550=0.15, sun_zenith=40.0))
    rho = np.full(13, 0.2)
    lit = toa_reflectance(rho, optics) - optics.tg * optics.rho_path
    shade = toa_reflectance(rho, optics, direct=0.0) - optics.tg * optics.rho_path
    assert np.all(shade < lit)
    ratio = shade / lit
    assert ratio[B["B02"]] > 2 * ratio[B["B11"]]


def test_random_atmospheres_stay_in_the_documented_ranges():
    rng = np.random.default_rng(3)
    for _ in range(100):
        a = random_atmosphere(rng)
        assert 0.03 <= a.aot550 <= 0.6 and 20 <= a.sun_zenith <= 70 and 0 <= a.view_zenith <= 12
