"""The spectral library of the simulated scene: real band sets and laboratory spectra, and
the spectra derived from them.

Of the labelled hyperspectral benchmark cubes (Indian Pines, Salinas, Pavia, WHU-Hi) only
Indian Pines ships in a package archive (the ``indian-pines`` sample dataset,
:mod:`domainvit.datasets.indian_pines`); for a scene at known band sets with parcels of
controlled difficulty, :func:`build_hsi_parcels` simulates one with physics on top of real
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
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainvit.datasets.hsi_scenes.sensors import resample_spectrum
from domainvit.errors import UserError

#: where Debian's python3-spectral puts the package (used when it is not importable)
DEBIAN_SPECTRAL = Path("/usr/lib/python3/dist-packages/spectral")


_SPECTRAL_DATA = Path("tests") / "data"


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
