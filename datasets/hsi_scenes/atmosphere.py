"""An analytic atmosphere for the Sentinel-2 bands: surface reflectance to top-of-atmosphere
(TOA) reflectance and back.

The coupling of surface and atmosphere is the one of Tanré et al. (1979) as used by 6S
(Vermote et al. 1997, "Second Simulation of the Satellite Signal in the Solar Spectrum,
6S: an overview", IEEE TGRS 35(3)), for a Lambertian surface of reflectance rho_s::

    rho_TOA = Tg * (rho_path + T_down(mu_s) * T_up(mu_v) * rho_s / (1 - S * rho_s))

per band, with mu_s = cos(sun zenith), mu_v = cos(view zenith). The terms:

- **Rayleigh optical thickness** (Hansen & Travis 1974, Space Sci. Rev. 16, eq. 2.29,
  lambda in um, scaled by surface pressure P)::

      tau_R = 0.008569 lambda^-4 (1 + 0.0113 lambda^-2 + 0.00013 lambda^-4) * P / 1013.25

- **Aerosol optical thickness**, Angstrom's law: tau_a = AOT550 (lambda / 550 nm)^-alpha.
- **Path reflectance**: single scattering by a homogeneous layer of molecules and aerosol
  (e.g. Liou 2002, "An Introduction to Atmospheric Radiation", sec. 6.3; Gordon & Wang
  1994), exact for single scattering::

      rho_path = (tau_R P_R(Theta) + w_a tau_a P_HG(Theta)) / (4 mu_s mu_v)
                 * (1 - exp(-tau' M)) / (tau' M),     M = 1/mu_s + 1/mu_v

  with the scattering angle cos Theta = -mu_s mu_v - sin(theta_s) sin(theta_v) cos(phi)
  (phi = 0: sensor on the sun's side, backscattering), the Rayleigh phase function with
  depolarisation (Hansen & Travis 1974, eq. 2.15; delta = 0.0279, Young 1980)
  P_R = 3/(4(1+2d)) ((1+3d) + (1-d) cos^2 Theta), d = delta / (2 - delta), and for the
  aerosol the Henyey-Greenstein (1941) function HG(g) = (1 - g^2) / (1 + g^2 - 2 g cos
  Theta)^(3/2) with an optional backward lobe (two-term HG, Kattawar 1975):
  P_a = (1 - f_b) HG(g) + f_b HG(-0.4); f_b = 0 is the plain HG, whose side and back
  scattering (Theta 120-170 deg, the Sentinel-2 geometry) is about half of a Mie phase
  function's; the effective asymmetry is g_eff = (1 - f_b) g - 0.4 f_b.
  In the attenuation factor tau is the delta-scaled extinction tau' of the transmittances
  below (light scattered forward stays in the beam), which stands in for the multiple
  scattering the formula leaves out; without it the path reflectance of a hazy atmosphere
  would fall in the blue as the aerosol load rises. Multiple scattering is otherwise left
  out: in the blue this underestimates the Rayleigh path reflectance by roughly 10-20 %,
  which lies within the range of the aerosol term that the simulation varies.
- **Transmittances** (direct + diffuse), the two-stream / delta approximation in which a
  molecule scatters half its light forward and an aerosol particle the fraction
  (1 + g) / 2 (e.g. Tanré et al. 1979; Kaufman 1989)::

      T(mu) = exp(-tau' / mu),  tau' = tau_R / 2 + tau_a (1 - w_a (1 + g_eff) / 2),
      direct part exp(-tau / mu)

  the diffuse part is T - direct (what a cloud shadow still receives).
- **Spherical albedo** (reflectance of the atmosphere for isotropic light from below), a
  thin-layer two-stream estimate: the mean slant path of isotropic light is 2 tau, of which
  the backscattered share (1/2 for molecules, (1 - g)/2 for aerosol) returns::

      S = (tau_R + w_a tau_a (1 - g_eff)) exp(-tau)

- **Gaseous transmittance** Tg = Tg_H2O Tg_O3 Tg_mixed over the two-way air mass
  m = 1/mu_s + 1/mu_v:

  * water vapour (column W, g/cm2), the saturated-line form of SMAC (Rahman & Dedieu 1994,
    Int. J. Remote Sens. 15(1)): Tg_H2O = exp(-a (m W)^b) with per-band (a, b) of
    :data:`WATER_VAPOUR`. The coefficients are ours, set so that W = 2 g/cm2 and m = 2 give
    transmittances of the order tabulated for the Sentinel-2 bands (B09 945 nm ~0.45,
    B08 ~0.96, B12 ~0.95, B8A/B11 ~0.99; B10 at 1375 nm ~1e-4: the cirrus band sees
    almost nothing of the surface); they are not a fit to a line-by-line model.
  * ozone (column U, atm-cm), Beer's law through the Chappuis band, approximated by a
    Gaussian cross-section of peak 5.0e-21 cm2 at 595 nm and width (sd) 60 nm (Chappuis
    band of e.g. Serdyuchenko et al. 2014: ~4e-21 cm2 at 560 nm, ~2.5e-21 at 665 nm),
    band-averaged over the Gaussian spectral response: Tg_O3 = <exp(-sigma(lambda) N_L U m)>,
    N_L = 2.687e19 molecules/cm2 per atm-cm (Loschmidt).
  * O2, CO2 and CH4 (well mixed): Tg_mixed = exp(-c (m P / 1013.25)^0.5) with per-band c of
    :data:`MIXED_GASES` (O2 B-band wing in B05, O2 A-band wing in B07, CO2/CH4 in B11/B12;
    ours, of the order of 6S's band values).

The inverse (:func:`surface_reflectance`) is the exact algebraic inverse for the same
parameters: y = rho_TOA / Tg - rho_path, rho_s = y / (T_down T_up + S y).

Everything is vectorised numpy: the band axis is last, parameters are scalars.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from domainvit.datasets.hsi_scenes.sensors import (
    S2_BAND_NAMES,
    sentinel2_bands,
    spectral_response_matrix,
)

#: standard surface pressure (hPa)
P0_HPA = 1013.25


#: Loschmidt number: molecules per cm2 in a 1 atm-cm column
LOSCHMIDT = 2.687e19


#: King-factor depolarisation ratio of air (Young 1980)
RAYLEIGH_DEPOLARISATION = 0.0279


#: water vapour Tg = exp(-a (m W)^b) per Sentinel-2 band: (a, b), W in g/cm2 (see the
#: module docstring: our coefficients, of the order of tabulated S2 band transmittances)
WATER_VAPOUR: dict[str, tuple[float, float]] = {
    "B01": (0.0, 0.6), "B02": (0.0005, 0.6), "B03": (0.001, 0.6), "B04": (0.002, 0.6),
    "B05": (0.008, 0.6), "B06": (0.003, 0.6), "B07": (0.003, 0.6), "B08": (0.018, 0.6),
    "B8A": (0.005, 0.6), "B09": (0.36, 0.6), "B10": (3.8, 0.55), "B11": (0.004, 0.6),
    "B12": (0.020, 0.6),
}


#: O2 / CO2 / CH4: Tg = exp(-c (m P / P0)^0.5) per band (ours, see the module docstring)
MIXED_GASES: dict[str, float] = {
    "B01": 0.0, "B02": 0.0, "B03": 0.0, "B04": 0.001, "B05": 0.005, "B06": 0.001,
    "B07": 0.003, "B08": 0.002, "B8A": 0.0, "B09": 0.0, "B10": 0.003, "B11": 0.012,
    "B12": 0.040,
}


@dataclass(frozen=True)
class Atmosphere:
    """The state of the atmosphere and the geometry of one acquisition.

    ``aot550``: aerosol optical thickness at 550 nm; ``angstrom``: Angstrom exponent;
    ``ssa``: aerosol single-scattering albedo; ``asymmetry``: Henyey-Greenstein g of the
    forward lobe; ``backscatter_lobe``: weight f_b of the backward HG(-0.4) lobe;
    ``water_vapour``: column (g/cm2); ``ozone``: column (atm-cm; 0.3 = 300 DU);
    ``pressure``: surface pressure (hPa); angles in degrees (``relative_azimuth`` 0: the
    sensor on the sun's side of the pixel, looking into the backscatter).
    """

    aot550: float = 0.1
    angstrom: float = 1.3
    ssa: float = 0.93
    asymmetry: float = 0.68
    backscatter_lobe: float = 0.0
    water_vapour: float = 2.0
    ozone: float = 0.32
    pressure: float = P0_HPA
    sun_zenith: float = 35.0
    view_zenith: float = 5.0
    relative_azimuth: float = 90.0

    def to_dict(self) -> dict:
        return {k: round(float(v), 5) for k, v in asdict(self).items()}


def rayleigh_optical_thickness(wavelength_nm: np.ndarray, pressure: float = P0_HPA) -> np.ndarray:
    """Rayleigh optical thickness (Hansen & Travis 1974, eq. 2.29), scaled by P / 1013.25."""
    lam = np.asarray(wavelength_nm, dtype=np.float64) / 1000.0
    return 0.008569 * lam ** -4 * (1 + 0.0113 * lam ** -2 + 0.00013 * lam ** -4) * (
        pressure / P0_HPA)


def aerosol_optical_thickness(wavelength_nm: np.ndarray, aot550: float,
                              angstrom: float) -> np.ndarray:
    """Angstrom's law: tau_a = AOT550 (lambda / 550)^-alpha."""
    return aot550 * (np.asarray(wavelength_nm, dtype=np.float64) / 550.0) ** -angstrom


def scattering_angle_cos(sun_zenith: float, view_zenith: float, relative_azimuth: float) -> float:
    """cos Theta = -mu_s mu_v - sin(theta_s) sin(theta_v) cos(phi) (angles in degrees)."""
    ts, tv, phi = (math.radians(a) for a in (sun_zenith, view_zenith, relative_azimuth))
    return -math.cos(ts) * math.cos(tv) - math.sin(ts) * math.sin(tv) * math.cos(phi)


def rayleigh_phase(cos_theta: float | np.ndarray) -> np.ndarray:
    """Rayleigh phase function with depolarisation (Hansen & Travis 1974, eq. 2.15)."""
    d = RAYLEIGH_DEPOLARISATION / (2 - RAYLEIGH_DEPOLARISATION)
    c = np.asarray(cos_theta, dtype=np.float64)
    return 3.0 / (4.0 * (1 + 2 * d)) * ((1 + 3 * d) + (1 - d) * c ** 2)


def henyey_greenstein(cos_theta: float | np.ndarray, g: float) -> np.ndarray:
    """Henyey-Greenstein phase function (1941), normalised to 4 pi over the sphere."""
    c = np.asarray(cos_theta, dtype=np.float64)
    return (1 - g ** 2) / (1 + g ** 2 - 2 * g * c) ** 1.5


#: asymmetry of the backward lobe of the two-term Henyey-Greenstein aerosol phase function
BACK_LOBE_G = -0.4


def aerosol_phase(cos_theta: float | np.ndarray, atm: Atmosphere) -> np.ndarray:
    """Two-term Henyey-Greenstein (Kattawar 1975): (1 - f_b) HG(g) + f_b HG(-0.4)."""
    f = atm.backscatter_lobe
    return ((1 - f) * henyey_greenstein(cos_theta, atm.asymmetry)
            + f * henyey_greenstein(cos_theta, BACK_LOBE_G))


def aerosol_asymmetry(atm: Atmosphere) -> float:
    """The effective asymmetry parameter of :func:`aerosol_phase`."""
    return (1 - atm.backscatter_lobe) * atm.asymmetry + atm.backscatter_lobe * BACK_LOBE_G


def ozone_cross_section(wavelength_nm: np.ndarray) -> np.ndarray:
    """Chappuis-band ozone absorption cross-section (cm2), a Gaussian approximation
    (peak 5.0e-21 cm2 at 595 nm, sd 60 nm)."""
    lam = np.asarray(wavelength_nm, dtype=np.float64)
    return 5.0e-21 * np.exp(-0.5 * ((lam - 595.0) / 60.0) ** 2)


@dataclass(frozen=True)
class BandOptics:
    """The per-band terms of the coupling formula (arrays over the bands)."""

    tau_rayleigh: np.ndarray
    tau_aerosol: np.ndarray
    rho_path: np.ndarray
    t_down: np.ndarray          # total (direct + diffuse) downward transmittance
    t_down_direct: np.ndarray   # its direct part exp(-tau / mu_s)
    t_up: np.ndarray
    spherical_albedo: np.ndarray
    tg: np.ndarray              # total gaseous transmittance
    tg_water: np.ndarray

    @property
    def t_down_diffuse(self) -> np.ndarray:
        return self.t_down - self.t_down_direct


def _band_weights(centers: np.ndarray, fwhm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wl = np.arange(380.0, 2601.0, 1.0)
    return wl, spectral_response_matrix(wl, centers, fwhm)


def band_optics(atm: Atmosphere, centers: np.ndarray | None = None,
                fwhm: np.ndarray | None = None,
                band_names: tuple[str, ...] | None = None) -> BandOptics:
    """The atmosphere's terms for the Sentinel-2 bands (default) or any bands (then gases
    only where ``band_names`` are Sentinel-2 names; other bands get Tg from ozone only).
    Optical thicknesses are averaged over each band's Gaussian response."""
    if centers is None:
        band_names, centers, fwhm = sentinel2_bands()
    centers = np.atleast_1d(np.asarray(centers, dtype=np.float64))
    if fwhm is None:
        fwhm = np.full_like(centers, 1.0)
    wl, weights = _band_weights(centers, np.asarray(fwhm, dtype=np.float64))
    tau_r = weights @ rayleigh_optical_thickness(wl, atm.pressure)
    tau_a = weights @ aerosol_optical_thickness(wl, atm.aot550, atm.angstrom)
    tau = tau_r + tau_a
    mu_s = math.cos(math.radians(atm.sun_zenith))
    mu_v = math.cos(math.radians(atm.view_zenith))
    m = 1 / mu_s + 1 / mu_v
    cos_t = scattering_angle_cos(atm.sun_zenith, atm.view_zenith, atm.relative_azimuth)
    g_eff = aerosol_asymmetry(atm)
    effective = tau_r / 2 + tau_a * (1 - atm.ssa * (1 + g_eff) / 2)
    x = effective * m
    attenuation = np.where(x > 1e-9, -np.expm1(-x) / np.maximum(x, 1e-12), 1.0)
    scatter = tau_r * rayleigh_phase(cos_t) + atm.ssa * tau_a * aerosol_phase(cos_t, atm)
    rho_path = scatter / (4 * mu_s * mu_v) * attenuation
    t_down = np.exp(-effective / mu_s)
    t_up = np.exp(-effective / mu_v)
    direct = np.exp(-tau / mu_s)
    s = (tau_r + atm.ssa * tau_a * (1 - g_eff)) * np.exp(-tau)
    # gases
    tg_o3 = weights @ np.exp(-ozone_cross_section(wl) * LOSCHMIDT * atm.ozone * m)
    if band_names is not None and all(n in WATER_VAPOUR for n in band_names):
        a, b = (np.array([WATER_VAPOUR[n][i] for n in band_names]) for i in (0, 1))
        tg_w = np.exp(-a * (m * atm.water_vapour) ** b)
        c = np.array([MIXED_GASES[n] for n in band_names])
        tg_mix = np.exp(-c * np.sqrt(m * atm.pressure / P0_HPA))
    else:
        tg_w = np.ones_like(centers)
        tg_mix = np.ones_like(centers)
    return BandOptics(tau_rayleigh=tau_r, tau_aerosol=tau_a, rho_path=rho_path, t_down=t_down,
                      t_down_direct=direct, t_up=t_up, spherical_albedo=s,
                      tg=tg_w * tg_o3 * tg_mix, tg_water=tg_w)


def toa_reflectance(rho_s: np.ndarray, optics: BandOptics,
                    direct: np.ndarray | float = 1.0,
                    diffuse: np.ndarray | float = 1.0) -> np.ndarray:
    """Surface reflectance ``rho_s[..., bands]`` -> TOA reflectance (module docstring).

    ``direct`` (0-1, broadcast against ``rho_s[..., 0]``) scales the direct sun beam reaching
    the surface (0 in a cloud shadow) and ``diffuse`` the skylight (a cloud also hides part of
    the sky): T_down is replaced by diffuse * (T_down - T_direct) + direct * T_direct.
    """
    rho_s = np.asarray(rho_s)
    direct = np.asarray(direct, dtype=np.float64)[..., None]
    diffuse = np.asarray(diffuse, dtype=np.float64)[..., None]
    t_down = diffuse * optics.t_down_diffuse + direct * optics.t_down_direct
    coupled = t_down * optics.t_up * rho_s / (1 - optics.spherical_albedo * rho_s)
    return optics.tg * (optics.rho_path + coupled)


def surface_reflectance(rho_toa: np.ndarray, optics: BandOptics) -> np.ndarray:
    """TOA reflectance -> surface reflectance for a fully lit Lambertian surface: the exact
    inverse of :func:`toa_reflectance` (direct = diffuse = 1) for the same parameters."""
    y = np.asarray(rho_toa) / optics.tg - optics.rho_path
    return y / (optics.t_down * optics.t_up + optics.spherical_albedo * y)


def random_atmosphere(rng: np.random.Generator) -> Atmosphere:
    """A random clear-sky atmosphere and geometry, the ranges the scene builder draws from:
    AOT550 log-uniform 0.03-0.6, Angstrom 0.3-2.0, single-scattering albedo 0.88-0.98,
    forward g 0.6-0.75 with a backward lobe of weight 0.03-0.12, water vapour 0.4-4.5
    g/cm2, ozone 250-420 DU, pressure 960-1030 hPa, sun zenith 20-70 deg, view zenith
    0-12 deg, relative azimuth 0-180 deg."""
    return Atmosphere(
        aot550=float(math.exp(rng.uniform(math.log(0.03), math.log(0.6)))),
        angstrom=float(rng.uniform(0.3, 2.0)), ssa=float(rng.uniform(0.88, 0.98)),
        asymmetry=float(rng.uniform(0.6, 0.75)),
        backscatter_lobe=float(rng.uniform(0.03, 0.12)), water_vapour=float(rng.uniform(0.4, 4.5)),
        ozone=float(rng.uniform(0.25, 0.42)), pressure=float(rng.uniform(960.0, 1030.0)),
        sun_zenith=float(rng.uniform(20.0, 70.0)), view_zenith=float(rng.uniform(0.0, 12.0)),
        relative_azimuth=float(rng.uniform(0.0, 180.0)),
    )


__all__ = ["Atmosphere", "BandOptics", "band_optics", "toa_reflectance", "surface_reflectance",
           "random_atmosphere", "rayleigh_optical_thickness", "aerosol_optical_thickness",
           "rayleigh_phase", "henyey_greenstein", "S2_BAND_NAMES"]
