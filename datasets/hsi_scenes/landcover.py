"""Surface reflectance of the ``s2-landcover`` classes: per-class spectrum generators on a
1 nm grid (400-2500 nm) with broad within-class variability, resampled to the 13
Sentinel-2 bands (:func:`class_banks`).

Sources and models (one generator per class; all parameters drawn at random per spectrum):

- **Vegetation** (forest, green cropland, grassland, wetland, and straw/litter as a
  residue component): PROSPECT-D leaf optics (Féret et al. 2017, RSE 193) and the 4SAIL
  canopy model (Verhoef et al. 2007, IEEE TGRS 45) of PyPI's ``prosail`` (J. Gómez-Dans),
  over a soil background built from prosail's own dry and wet soil spectra
  (``soil_reflectance.txt``): rsoil0 = b (p dry + (1 - p) wet) x colour factor.
  Forest canopies are further darkened by crown shadow: rho = rho_c ((1 - f) + f k),
  k = 0.1 + 0.6 rho_c (a shaded crown is lit by skylight and by light transmitted through
  leaves, more of it where leaves scatter more). Wetland canopies grow over a background
  of water mixed with wet soil, with open-water gaps.
- **Water** (open and turbid): the semi-analytic model of Lee et al. (1999, Appl. Opt. 38;
  coefficients of Lee et al. 2002, Appl. Opt. 41)::

      u = bb / (a + bb),   rrs = (g0 + g1 u) u,  g0 = 0.089, g1 = 0.125
      Rrs = 0.52 rrs / (1 - 1.7 rrs),   rho = pi Rrs

  a = a_w + a_ph + a_g + a_nap, bb = bb_w + bb_p with pure-water absorption a_w from
  PROSPECT's liquid-water specific absorption (prosail's ``prospect_d_spectra.txt``, cm-1
  -> m-1; 0.010 m-1 at 440 nm, 0.40 at 665, 4.6 at 865, close to Pope & Fry 1997),
  pure-water backscattering bb_w = 0.0038 (400 / lambda)^4.32 (Morel 1974, as in Lee et
  al. 1999), phytoplankton a_ph = 0.06 Chl^0.65 shape(lambda) (Prieur & Sathyendranath
  1981; shape: Gaussian bands at 440 and 675 nm, red/blue ratio 0.45 after Bricaud et al.
  1995), CDOM a_g = a_g(440) exp(-S (lambda - 440)) (Bricaud et al. 1981), non-algal
  particles a_nap = SPM a*_nap exp(-0.0123 (lambda - 443)) (Babin et al. 2003), particle
  backscattering of phytoplankton after Morel & Maritorena (2001, JGR 106)
  bb_p = (0.002 + 0.01 (0.5 - 0.25 log10 Chl)) 0.416 Chl^0.766 (lambda / 550)^nu, and of
  sediment SPM bb*_p (555 / lambda)^gamma. Shallow turbid water sees the bottom through
  the two-flow attenuation exp(-2 K d), K = a + bb (Maritorena et al. 1994). Surface
  effects: Fresnel reflection of skylight (0.02 x a bluish sky, ~lambda^-2.5), sun glint
  (flat) and a little foam.
- **Bare soil**: prosail's dry/wet soil pair with brightness 0.35-1.3, moisture,
  iron-oxide colour (visible slope), a clay/hydroxyl absorption near 2200 nm and crop
  residue (straw) mixed in.
- **Sand**: prosail's dry soil with its absorptions removed (its upper convex hull, which
  takes out the iron-oxide charge-transfer fall in the blue, the ferric 900 nm band and
  the water bands), the visible rise flattened (hull^gamma, gamma 0.35-0.75: quartz and
  carbonate sand is whitish) and brightened to 0.35-0.7 at 1600 nm; damp sand gets part
  of the wet-soil water absorption back.
- **Built-up**: per-pixel Dirichlet mixtures of concrete (the ECOSTRESS runway concrete of
  :mod:`.spectra`), asphalt/dark roofs (dark, slowly rising), red tile roofs (concrete
  with an iron-oxide visible fall), bright metal/white roofs, shadow, street trees and
  lawns (the cropland generator) and bare ground.
- **Cloud** (at the top of the atmosphere, not a surface: :func:`cloud_toa`) and **cloud
  shadow** (a surface lit by skylight only) are made by the scene composer
  (:mod:`.landcover_scene`) through :mod:`.atmosphere`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from domainvit.datasets.hsi_scenes.sensors import resample_spectrum, sentinel2_bands
from domainvit.errors import UserError

#: the 1 nm grid of every generator (prosail's grid)
WAVELENGTHS = np.arange(400.0, 2501.0, 1.0)


#: (name, description, RGB colour); label i is CLASSES[i - 1], 0 is unlabelled
CLASSES: list[tuple[str, str, tuple[int, int, int]]] = [
    ("open-water", "open water: sea, lakes and reservoirs, dark in every band with a weak "
     "blue-green peak", (20, 60, 160)),
    ("turbid-water", "turbid water: sediment-laden rivers, bays and shallow coast, brighter "
     "in green and red with some near-infrared", (80, 160, 200)),
    ("forest", "forest: closed tree canopy, dark in the visible and bright in the "
     "near-infrared, with crown shadow", (0, 100, 0)),
    ("green-cropland", "green cropland: crops and green fields, the brightest near-infrared "
     "and a deep red absorption", (120, 200, 40)),
    ("grassland", "grassland: pasture and meadows, a mixture of green and dry grass over "
     "soil", (190, 220, 120)),
    ("bare-soil", "bare soil: ploughed or bare fields, dry or wet, with some crop residue",
     (150, 90, 40)),
    ("sand-beach", "sand and beach: bright quartz or shell sand, rising through the visible "
     "and flat in the short-wave infrared", (240, 220, 150)),
    ("wetland", "wetland: marsh vegetation standing in water or on wet soil",
     (100, 170, 150)),
    ("built-up", "built-up: towns and villages, roofs, streets and pavement with shadow "
     "and some trees", (220, 40, 40)),
    ("cloud", "cloud: thick cloud, bright and white in the visible, darker in the "
     "short-wave infrared", (255, 255, 255)),
    ("cloud-shadow", "cloud shadow: land in the shadow of a cloud, lit only by "
     "the sky, dark and bluish", (60, 60, 80)),
]


CLASS_NAMES: tuple[str, ...] = tuple(c[0] for c in CLASSES)


#: the surface classes with a spectrum generator (cloud and cloud shadow are made by the
#: scene composer)
SURFACE_CLASSES: tuple[str, ...] = CLASS_NAMES[:9]


def label_of(name: str) -> int:
    """The label code (1..11) of a class name."""
    return CLASS_NAMES.index(name) + 1


def require_prosail():
    """The ``prosail`` module, or a :class:`UserError` saying how to install it."""
    try:
        import prosail
    except ImportError as err:
        raise UserError("the s2-landcover simulation needs the PROSAIL canopy model: "
                        "pip install 'domainvit[geo]' (or pip install 'prosail>=2.0.5')"
                        ) from err
    return prosail


@functools.lru_cache(maxsize=1)
def _library() -> dict[str, np.ndarray]:
    """prosail's tables on the 1 nm grid: dry and wet soil, water absorption (m-1)."""
    lib = require_prosail().spectral_lib
    return {"dry": np.asarray(lib.soil.rsoil1, dtype=np.float64),
            "wet": np.asarray(lib.soil.rsoil2, dtype=np.float64),
            "a_water": np.asarray(lib.prospectd.kw, dtype=np.float64) * 100.0}


def _u(rng: np.random.Generator, lo: float, hi: float, n: int | None = None) -> np.ndarray:
    return rng.uniform(lo, hi, n)


def _logu(rng: np.random.Generator, lo: float, hi: float, n: int | None = None) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _gauss(wl: np.ndarray, centre: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((wl - centre) / sd) ** 2)


# --- water -------------------------------------------------------------------------------

def water_reflectance(chl: np.ndarray, cdom440: np.ndarray, spm: np.ndarray,
                      bbp_star: np.ndarray | float = 0.012, gamma: np.ndarray | float = 0.6,
                      a_nap_star: np.ndarray | float = 0.04,
                      cdom_slope: np.ndarray | float = 0.015) -> np.ndarray:
    """Water-leaving reflectance rho = pi Rrs (Lee et al. 1999/2002; module docstring) on
    :data:`WAVELENGTHS`; parameters are arrays of n spectra (or scalars): Chl (mg/m3),
    a_g(440) (m-1), SPM (g/m3), bb*_p (m2/g), gamma, a*_nap(443) (m2/g), CDOM slope (nm-1).
    Returns (n, 2101)."""
    wl = WAVELENGTHS[None, :]
    col = [np.atleast_1d(np.asarray(v, dtype=np.float64))[:, None]
           for v in (chl, cdom440, spm, bbp_star, gamma, a_nap_star, cdom_slope)]
    chl, cdom440, spm, bbp_star, gamma, a_nap_star, cdom_slope = col
    a_w = _library()["a_water"][None, :]
    shape = 0.95 * _gauss(wl, 440.0, 35.0) + 0.45 * _gauss(wl, 675.0, 12.0) + 0.05
    a_ph = 0.06 * chl ** 0.65 * shape
    a_g = cdom440 * np.exp(-cdom_slope * (wl - 440.0))
    a_nap = spm * a_nap_star * np.exp(-0.0123 * (wl - 443.0))
    bb_w = 0.0038 * (400.0 / wl) ** 4.32
    log_chl = np.log10(chl)
    nu = np.where(chl < 2.0, 0.5 * (log_chl - 0.3), 0.0)
    bb_ph = (0.002 + 0.01 * (0.5 - 0.25 * log_chl)) * 0.416 * chl ** 0.766 * (wl / 550.0) ** nu
    bb_sed = spm * bbp_star * (555.0 / wl) ** gamma
    a = a_w + a_ph + a_g + a_nap
    bb = bb_w + bb_ph + bb_sed
    u = bb / (a + bb)
    rrs = (0.089 + 0.125 * u) * u
    rrs_above = 0.52 * rrs / (1 - 1.7 * rrs)
    return math.pi * rrs_above


def _surface_effects(n: int, rng: np.random.Generator, glint: tuple[float, float],
                     foam: float) -> np.ndarray:
    """Fresnel-reflected skylight, sun glint and foam: (n, 2101)."""
    wl = WAVELENGTHS[None, :]
    sky = 0.02 * _u(rng, 0.05, 0.3, n)[:, None] * (wl / 550.0) ** -2.5
    sun = _logu(rng, *glint, n)[:, None] * np.ones_like(wl)
    white = foam * rng.beta(0.3, 8.0, n)[:, None] * (1.0 - 0.6 * (wl - 400.0) / 2100.0)
    return sky + sun + white


def open_water(n: int, rng: np.random.Generator) -> np.ndarray:
    """Deep, clear-to-moderately-coloured sea and lakes: Chl 0.03-15 mg/m3, CDOM 0.002-0.6
    m-1, a little suspended matter (0-3 g/m3), plus skylight reflection, glint and foam."""
    rho = water_reflectance(_logu(rng, 0.03, 15.0, n), _logu(rng, 0.002, 0.6, n),
                            _logu(rng, 0.01, 3.0, n), _u(rng, 0.006, 0.02, n),
                            _u(rng, 0.0, 1.2, n), _u(rng, 0.02, 0.06, n),
                            _u(rng, 0.011, 0.02, n))
    return rho + _surface_effects(n, rng, (0.0003, 0.012), 0.1)


def turbid_water(n: int, rng: np.random.Generator) -> np.ndarray:
    """Sediment-laden rivers, estuaries and shallow coast: SPM 3-200 g/m3, Chl 1-40,
    CDOM 0.05-2 m-1; a third are shallow (0.3-3 m) over sand or wet soil."""
    spm = _logu(rng, 3.0, 200.0, n)
    rho = water_reflectance(_logu(rng, 1.0, 40.0, n), _logu(rng, 0.05, 2.0, n), spm,
                            _u(rng, 0.005, 0.016, n), _u(rng, 0.0, 1.2, n),
                            _u(rng, 0.02, 0.06, n), _u(rng, 0.011, 0.02, n))
    shallow = rng.random(n) < 0.33
    if shallow.any():
        k = shallow.sum()
        bottom = np.where(rng.random(k)[:, None] < 0.5, sand(k, rng),
                          soil_background(k, rng, wet=True))
        depth = _u(rng, 0.3, 3.0, k)[:, None]
        # K ~ a + bb (m-1), approximated from the deep-water reflectance's inverse:
        # high absorption where rho is low; use pure water + sediment attenuation
        a_w = _library()["a_water"][None, :]
        kd = a_w + 0.05 * spm[shallow, None] * (555.0 / WAVELENGTHS[None, :]) ** 0.5 + 0.2
        through = np.exp(-2.0 * kd * depth)
        rho[shallow] = rho[shallow] * (1 - through) + 0.5 * bottom * through
    return rho + _surface_effects(n, rng, (0.0003, 0.01), 0.2)


# --- soils and sand ----------------------------------------------------------------------

def soil_background(n: int, rng: np.random.Generator, wet: bool = False,
                    brightness: tuple[float, float] = (0.35, 1.3)) -> np.ndarray:
    """Soil spectra from prosail's dry/wet pair: brightness b, moisture p, iron colour,
    clay 2200 nm absorption: (n, 2101). ``wet``: moisture drawn towards the wet end."""
    lib = _library()
    wl = WAVELENGTHS[None, :]
    b = _u(rng, *brightness, n)[:, None]
    p = (rng.beta(1.2, 3.0, n) if wet else rng.beta(2.2, 1.2, n))[:, None]  # 1 = dry
    base = b * (p * lib["dry"][None, :] + (1 - p) * lib["wet"][None, :])
    redness = _u(rng, -0.35, 0.9, n)[:, None]   # > 0: redder (more iron oxide)
    colour = np.exp(-redness * np.clip(650.0 - wl, 0, None) / 250.0)
    clay = 1.0 - _u(rng, 0.0, 0.15, n)[:, None] * _gauss(wl, 2205.0, 30.0)
    return np.clip(base * colour * clay, 0.005, 0.95)


def bare_soil(n: int, rng: np.random.Generator, straw: np.ndarray | None = None) -> np.ndarray:
    """Ploughed and bare fields: :func:`soil_background` plus 0-40 % crop residue."""
    soil = soil_background(n, rng)
    if straw is None or len(straw) == 0:
        return soil
    residue = 0.4 * rng.beta(0.7, 2.5, n)[:, None]
    return (1 - residue) * soil + residue * straw[rng.integers(0, len(straw), n)]


def sand(n: int, rng: np.random.Generator) -> np.ndarray:
    """Beach sand: the dry soil's upper convex hull (iron and water bands removed),
    flattened (hull^gamma) and scaled to 0.2-0.7 at 1600 nm (damp, shell-rich or
    heavy-mineral sands are darker than dry quartz dunes); damp sand gets part of the wet
    soil's water absorption back."""
    from domainvit.datasets.hsi_scenes.spectra import upper_hull

    lib = _library()
    hull = upper_hull(WAVELENGTHS, lib["dry"])
    gamma = _u(rng, 0.35, 0.75, n)[:, None]
    shaped = (hull / hull[1200])[None, :] ** gamma
    level = _u(rng, 0.2, 0.7, n)[:, None]
    water_depth = np.clip(-np.log(lib["wet"] / hull), 0, None)  # wet-soil absorbance
    water_depth -= water_depth[400]  # relative to 800 nm
    damp = _u(rng, 0.0, 0.25, n)[:, None] * rng.beta(0.6, 2.0, n)[:, None] * 4
    return np.clip(level * shaped * np.exp(-damp * np.clip(water_depth, 0, None)), 0.01, 0.95)


# --- vegetation (PROSAIL) ----------------------------------------------------------------

#: PROSAIL parameter ranges per vegetation kind: uniform (lo, hi)
VEGETATION = {
    "forest": {"n": (1.4, 2.5), "cab": (25, 70), "car": (5, 15), "cbrown": (0.0, 0.25),
               "cw": (0.006, 0.02), "cm": (0.006, 0.025), "lai": (3.0, 7.0),
               "lidfa": (35, 70), "hspot": (0.05, 0.5), "soil_b": (0.2, 0.6)},
    "green-cropland": {"n": (1.2, 2.0), "cab": (35, 85), "car": (6, 18), "cbrown": (0.0, 0.1),
                       "cw": (0.008, 0.03), "cm": (0.003, 0.008), "lai": (1.5, 6.0),
                       "lidfa": (30, 75), "hspot": (0.01, 0.2), "soil_b": (0.35, 1.3)},
    "grassland": {"n": (1.3, 2.2), "cab": (15, 55), "car": (4, 12), "cbrown": (0.0, 1.0),
                  "cw": (0.004, 0.02), "cm": (0.003, 0.01), "lai": (0.5, 3.0),
                  "lidfa": (40, 70), "hspot": (0.01, 0.2), "soil_b": (0.35, 1.3)},
    "wetland": {"n": (1.3, 2.0), "cab": (10, 55), "car": (4, 12), "cbrown": (0.0, 1.0),
                "cw": (0.01, 0.03), "cm": (0.004, 0.01), "lai": (0.4, 3.0),
                "lidfa": (60, 85), "hspot": (0.01, 0.2), "soil_b": (0.3, 0.8)},
    "straw": {"n": (1.5, 2.5), "cab": (0.0, 4.0), "car": (0.0, 3.0), "cbrown": (0.3, 1.2),
              "cw": (0.0002, 0.002), "cm": (0.005, 0.015), "lai": (2.0, 5.0),
              "lidfa": (30, 70), "hspot": (0.05, 0.3), "soil_b": (0.5, 1.2)},
}


def vegetation(kind: str, n: int, rng: np.random.Generator,
               straw: np.ndarray | None = None) -> np.ndarray:
    """``n`` PROSAIL canopy reflectances (SDR) of a vegetation kind (:data:`VEGETATION`)
    with sun zenith 20-70, view zenith 0-12, relative azimuth 0-180 deg, over a random
    soil background: (n, 2101)."""
    prosail = require_prosail()
    ranges = VEGETATION[kind]
    draws = {k: _u(rng, lo, hi, n) for k, (lo, hi) in ranges.items()}
    tts, tto, psi = _u(rng, 20, 70, n), _u(rng, 0, 12, n), _u(rng, 0, 180, n)
    if kind == "wetland":
        water = open_water(n, rng) * 0.5 + 0.5 * turbid_water(n, rng)
        mix = rng.beta(2.0, 1.5, n)[:, None]
        background = mix * water + (1 - mix) * soil_background(n, rng, wet=True)
    else:
        background = soil_background(n, rng, wet=kind == "forest",
                                     brightness=tuple(ranges["soil_b"]))
    out = np.empty((n, WAVELENGTHS.size))
    for i in range(n):
        out[i] = prosail.run_prosail(
            draws["n"][i], draws["cab"][i], draws["car"][i], draws["cbrown"][i],
            draws["cw"][i], draws["cm"][i], draws["lai"][i], draws["lidfa"][i],
            draws["hspot"][i], tts[i], tto[i], psi[i], prospect_version="D", typelidf=2,
            rsoil0=background[i])
    if kind == "forest":
        # crown shadow: up to half of the view in broadleaf stands, and more in clumped
        # needleleaf (evergreen) stands, whose near-infrared is far lower (conifer NIR
        # reflectance of 0.12-0.25 against 0.3-0.5 for broadleaf canopies)
        needle = rng.random(n) < 0.5
        shade = np.where(needle, _u(rng, 0.35, 0.8, n), _u(rng, 0.1, 0.5, n))[:, None]
        out = out * ((1 - shade) + shade * (0.1 + 0.6 * out))
    elif kind == "grassland" and straw is not None and len(straw):
        litter = 0.5 * rng.beta(0.8, 2.0, n)[:, None]
        out = (1 - litter) * out + litter * straw[rng.integers(0, len(straw), n)]
    elif kind == "wetland":
        # open water between the stems of a flooded marsh: from a few percent to most of
        # the pixel
        gaps = 0.8 * rng.beta(1.2, 1.5, n)[:, None]
        out = (1 - gaps) * out + gaps * open_water(n, rng)
    return np.clip(out, 0.0, 1.0)


# --- built-up ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _concrete() -> np.ndarray:
    from domainvit.datasets.hsi_scenes.spectra import load_endmembers

    wl, refl = load_endmembers()["concrete"]
    return np.interp(WAVELENGTHS, wl, refl)


def built_up(n: int, rng: np.random.Generator, green: np.ndarray,
             soil: np.ndarray) -> np.ndarray:
    """Town pixels: Dirichlet mixtures of concrete, asphalt/dark roofs, red tiles, bright
    roofs, shadow, vegetation (rows of ``green``) and bare ground (rows of ``soil``)."""
    wl = WAVELENGTHS[None, :]
    concrete = _concrete()[None, :] * _u(rng, 0.6, 1.2, n)[:, None]
    asphalt = (0.04 + 0.07 * (wl - 400.0) / 2100.0) * _u(rng, 0.7, 1.8, n)[:, None]
    tile = _concrete()[None, :] * _u(rng, 0.5, 0.9, n)[:, None] * (
        0.3 + 0.7 / (1 + np.exp(-(wl - 580.0) / 25.0)))
    bright = _u(rng, 0.45, 0.75, n)[:, None] * (1 - 0.2 * (wl - 400.0) / 2100.0)
    shadow = 0.12 * concrete * (wl / 550.0) ** -1.0
    parts = [concrete, asphalt, tile, bright, shadow,
             green[rng.integers(0, len(green), n)], soil[rng.integers(0, len(soil), n)]]
    alpha = np.array([2.0, 2.0, 1.0, 0.4, 1.0, 1.0, 0.3])
    frac = rng.dirichlet(alpha * _u(rng, 0.8, 3.0), n)
    return sum(frac[:, i:i + 1] * p for i, p in enumerate(parts))


# --- banks -------------------------------------------------------------------------------

def _to_s2(spectra: np.ndarray) -> np.ndarray:
    _, centres, widths = sentinel2_bands()
    return resample_spectrum(WAVELENGTHS, spectra, centres, widths).astype(np.float32)


@functools.lru_cache(maxsize=4)
def class_banks(n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """A bank of ``n`` random surface spectra per surface class (:data:`SURFACE_CLASSES`)
    resampled to the 13 Sentinel-2 bands: name -> (n, 13) float32, plus ``"straw"``
    (residue) and ``"road"`` (field margins: asphalt/grass). Deterministic for
    (n, seed) and cached in memory (PROSAIL takes about 1 ms a spectrum)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n, 2027]))
    straw = vegetation("straw", max(20, n // 4), rng)
    crop = vegetation("green-cropland", n, rng)
    soil = bare_soil(n, rng, straw)
    fine = {
        "open-water": open_water(n, rng),
        "turbid-water": turbid_water(n, rng),
        "forest": vegetation("forest", n, rng),
        "green-cropland": crop,
        "grassland": vegetation("grassland", n, rng, straw),
        "bare-soil": soil,
        "sand-beach": sand(n, rng),
        "wetland": vegetation("wetland", n, rng),
    }
    fine["built-up"] = built_up(n, rng, crop, soil)
    grass = fine["grassland"]
    road_mix = rng.beta(2, 2, n)[:, None]
    asphalt = (0.05 + 0.08 * (WAVELENGTHS[None, :] - 400.0) / 2100.0) * _u(
        rng, 0.8, 1.6, n)[:, None]
    fine["road"] = road_mix * asphalt + (1 - road_mix) * grass[rng.permutation(n)]
    fine["straw"] = straw
    return {k: _to_s2(v) for k, v in fine.items()}


# --- clouds (top of atmosphere) ----------------------------------------------------------

def cloud_toa(n: int, rng: np.random.Generator, water_vapour: float, airmass: float,
              top_km: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """TOA reflectance of thick clouds in the 13 bands, and their top heights (km).

    A cloud is above most of the water vapour, so its signal is not attenuated like the
    surface's: VNIR reflectance c (0.3-0.9, nearly flat, plus the Rayleigh scattering of the
    air above the top, ~0.03 (lambda/443)^-4 p_top/p0), SWIR lower (droplets and ice absorb:
    B11 = c r11, B12 = c r11 r12, ice tops (> 6 km) lower), and B09 / B10 attenuated only
    by the water vapour above the top, W exp(-z / 2 km) (water-vapour scale height 2 km),
    with :data:`.atmosphere.WATER_VAPOUR`'s band coefficients: the 1375 nm cirrus band is
    bright for high tops and dark for low ones."""
    from domainvit.datasets.hsi_scenes.atmosphere import WATER_VAPOUR

    names, centres, _ = sentinel2_bands()
    if top_km is None:
        top_km = _u(rng, 1.0, 10.0, n)
    top_km = np.asarray(top_km, dtype=np.float64)
    c = _u(rng, 0.3, 0.9, n)[:, None]
    ice = top_km > 6.0
    r11 = np.where(ice, _u(rng, 0.45, 0.7, n), _u(rng, 0.65, 0.92, n))[:, None]
    r12 = np.where(ice, _u(rng, 0.4, 0.7, n), _u(rng, 0.6, 0.85, n))[:, None]
    out = np.repeat(c, len(names), axis=1) * (1 - 0.03 * ((centres - 443) / 1800)[None, :])
    p_top = np.exp(-top_km / 8.0)[:, None]   # pressure scale height 8 km
    out = out + 0.03 * (centres[None, :] / 443.0) ** -4 * p_top
    idx = {name: i for i, name in enumerate(names)}
    out[:, idx["B11"]] *= r11[:, 0]
    out[:, idx["B12"]] *= (r11 * r12)[:, 0]
    above = water_vapour * np.exp(-top_km / 2.0)
    for band in ("B09", "B10", "B8A", "B08", "B11", "B12"):
        a, b = WATER_VAPOUR[band]
        out[:, idx[band]] *= np.exp(-a * (airmass * above) ** b)
    out[:, idx["B10"]] *= 0.9  # weak ice/water absorption at 1375 nm
    return out.astype(np.float32), top_km
