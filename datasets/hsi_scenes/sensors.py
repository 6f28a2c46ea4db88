"""Sensor models: Sentinel-2 bands, spectral response (Gaussian band passes), resampling a
spectrum to a band set, and the atmospheric noise gain of a band.
"""

from __future__ import annotations

import math

import numpy as np

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


def atmospheric_noise_gain(centers: np.ndarray) -> np.ndarray:
    """Relative noise per band: 1 / an analytic atmospheric transmittance (water vapour
    at 940, 1135, 1380, 1880 nm; CO2 near 2010 nm), times detector roll-off at the edges."""
    depth = np.zeros_like(centers, dtype=np.float64)
    for centre, width, d in ((940, 25, 0.5), (1135, 30, 0.6), (1380, 40, 3.6),
                             (1880, 55, 4.0), (2010, 15, 0.3)):
        depth += d * np.exp(-0.5 * ((centers - centre) / width) ** 2)
    edges = 1.0 + 2.0 * np.exp(-(centers - 400.0) / 25.0) + 2.5 * np.exp((centers - 2500.0) / 35.0)
    return np.minimum(np.exp(depth) * edges, 40.0)
