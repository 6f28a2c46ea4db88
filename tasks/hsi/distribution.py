"""What the hsi models were trained on, and how an input raster is compared with it.

The record (:func:`training_distribution`, stored in the checkpoint's
``data_info["distribution"]``) holds, from the training image's valid pixels: the sensor
(the image's ``sensor`` tag), the band centres the model reads, the units (reflectance
0..1), the ground sampling distance, per-band reflectance quantiles and a spectral
typicality reference: a PCA of the band-standardised spectra with Hotelling's T^2 (the
Mahalanobis distance inside the kept components) and the squared residual Q outside them,
and their 99.5th percentiles on the training pixels. A pixel beyond either limit is
*atypical*: its spectrum is unlike every training spectrum in shape or in brightness.

An input is compared in this order, most fundamental first (:func:`compare_raster`):

1. the band set (:func:`model_bands`, an error that ``force`` cannot override: the model
   cannot read bands the raster lacks). A raster without wavelengths whose bands are
   named like the model's (``B02`` or ``B2`` for the model's ``B02 492.4 nm``: Sentinel-2
   stacks as ``gdal_merge`` or rasterio leave them) is read by those names, in whatever
   order it holds them, and a missing band is named;
2. the units: bands declaring a unit that is not reflectance, or values that are not
   reflectance under the scale assumed for a file that declares none (digital numbers):
   refused;
3. a raster without wavelengths or band names the model knows, whose band count
   matches: warned (taken in the model's order);
4. the ground sampling distance, more than :data:`GSD_FACTOR` times from the training
   one: warned;
5. reflectance beyond the training range: in some band more than
   :data:`RANGE_SHARE` of the valid pixels lie outside the training 0.5-99.5% range
   widened by :data:`RANGE_MARGIN` times its 5-95% spread: warned;
6. atypical spectra: more than :data:`ATYPICAL_SHARE` of the valid pixels beyond the
   typicality limits: warned, with the share.

The statistics of an input come from :meth:`RasterSource.sample` (at most 65536 pixels in
blocks spread over the raster), read before the overflow guard, so the cause of values
that are not reflectance is named as units rather than as a corrupt file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from domainvit.datasets.raster.info import RasterInfo
from domainvit.datasets.raster.sources import DEFAULT_REFLECTANCE_RANGE, RasterSource
from domainvit.distribution import QUANTILES, Finding, quantiles, refuse, warn
from domainvit.errors import UserError

#: the share of the sampled valid pixels that may lie outside the plausible reflectance
#: range (-0.5..1.5) under an assumed scale before the input is refused as not reflectance
#: (the raster reader's own limit for suspect pixels)
UNITS_SHARE = 1e-3

#: declared band units that mean reflectance
REFLECTANCE_UNITS = {"", "1", "reflectance", "unitless", "dimensionless", "none", "-",
                     "surface reflectance", "toa reflectance", "sr"}

#: a ground sampling distance this many times larger or smaller than the training one warns
GSD_FACTOR = 2.0

#: per band, the training 0.5-99.5% range is widened by this many times its 5-95% spread
RANGE_MARGIN = 0.5

#: more than this share of valid pixels outside the widened range in a band warns
RANGE_SHARE = 0.05

#: the percentile of the training pixels' T^2 and Q that bounds a typical spectrum
TYPICAL_PERCENTILE = 99.5

#: more than this share of valid pixels with atypical spectra warns
ATYPICAL_SHARE = 0.10

#: the PCA keeps the fewest components explaining this share of the standardised variance
TYPICAL_VARIANCE = 0.995

#: at most this many components (and fewer than bands)
TYPICAL_MAX_COMPONENTS = 20

#: training pixels used for the record (a fixed random subsample of larger images)
RECORD_PIXELS = 200_000


# --- the record --------------------------------------------------------------------------


def _rounded(values: Any) -> Any:
    """Floats (nested lists of them) to 6 significant digits, for a compact record."""
    if isinstance(values, (list, tuple, np.ndarray)):
        return [_rounded(v) for v in values]
    return float(f"{float(values):.6g}")


def _gsd_m(info: RasterInfo) -> float | None:
    """The pixel size in metres of a north-up raster in a projected CRS in metres."""
    crs = info.crs
    if crs is None or not crs.is_projected:
        return None
    if not (crs.linear_units or "").lower().startswith("met"):
        return None
    t = info.transform
    if t.b or t.d:
        return None
    return float(np.sqrt(abs(t.a * t.e)))


def fit_typicality(spectra: np.ndarray) -> dict[str, Any]:
    """The typicality reference of ``spectra [N, B]``: a PCA of the band-standardised
    spectra (scikit-learn), with the 99.5th percentiles of the pixels' T^2 and Q."""
    from sklearn.decomposition import PCA

    spectra = np.asarray(spectra, np.float64)
    mean = spectra.mean(axis=0)
    scale = spectra.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1e-6)
    z = (spectra - mean) / scale
    bands = spectra.shape[1]
    full = PCA(n_components=min(bands, len(z)), random_state=0).fit(z)
    explained = np.cumsum(full.explained_variance_ratio_)
    k = int(np.searchsorted(explained, TYPICAL_VARIANCE) + 1)
    k = max(1, min(k, TYPICAL_MAX_COMPONENTS, bands - 1))
    reference = {"mean": _rounded(mean), "scale": _rounded(scale),
                 "components": _rounded(full.components_[:k]),
                 "variances": _rounded(np.maximum(full.explained_variance_[:k], 1e-12))}
    t2, q = typicality_scores(reference, spectra)
    reference["t2_limit"] = float(np.percentile(t2, TYPICAL_PERCENTILE))
    reference["q_limit"] = float(np.percentile(q, TYPICAL_PERCENTILE))
    reference["percentile"] = TYPICAL_PERCENTILE
    return reference


def typicality_scores(reference: dict[str, Any], spectra: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Hotelling's T^2 inside the reference's components and the squared residual Q
    outside them, per spectrum of ``spectra [N, B]``."""
    z = (np.asarray(spectra, np.float64) - np.asarray(reference["mean"])) \
        / np.asarray(reference["scale"])
    components = np.asarray(reference["components"])
    scores = z @ components.T
    t2 = (scores ** 2 / np.asarray(reference["variances"])).sum(axis=1)
    q = (z ** 2).sum(axis=1) - (scores ** 2).sum(axis=1)
    return t2, np.maximum(q, 0.0)


def atypical(reference: dict[str, Any], spectra: np.ndarray) -> np.ndarray:
    """Whether each spectrum lies beyond the typicality limits."""
    t2, q = typicality_scores(reference, spectra)
    return (t2 > reference["t2_limit"]) | (q > reference["q_limit"])


def training_distribution(spectra: np.ndarray, info: RasterInfo,
                          wavelengths: np.ndarray | None) -> dict[str, Any]:
    """The record of the training image: ``spectra [N, B]`` its valid pixels' reflectance,
    ``info`` the image's :class:`RasterInfo` (sensor, grid), ``wavelengths`` the band
    centres the model reads (nm)."""
    spectra = np.asarray(spectra, np.float32)
    if len(spectra) > RECORD_PIXELS:
        keep = np.random.default_rng(0).choice(len(spectra), RECORD_PIXELS, replace=False)
        spectra = spectra[np.sort(keep)]
    return {
        "sensor": info.sensor or "unknown",
        "units": "reflectance (0..1)",
        "bands": int(spectra.shape[1]),
        "band_centres_nm": None if wavelengths is None else
        [round(float(w), 3) for w in wavelengths],
        "band_names": list(info.band_names),
        "gsd_m": _gsd_m(info),
        "crs": None if info.crs is None else info.crs.to_string(),
        "pixels": int(len(spectra)),
        "quantile_levels": list(QUANTILES),
        "band_quantiles": [_rounded(quantiles(spectra[:, b]))
                           for b in range(spectra.shape[1])],
        "typicality": fit_typicality(spectra),
    }


# --- the band set --------------------------------------------------------------------------


def _span(wavelengths) -> str:
    return f"{np.min(wavelengths):.0f}-{np.max(wavelengths):.0f} nm"


def input_bands(info: RasterInfo) -> str:
    """The input's band set in words: ``7 bands, no wavelengths``, ``4 bands at 490-842
    nm``."""
    if info.wavelengths is None:
        return f"{info.count} band{'s' * (info.count != 1)}, no wavelengths"
    return f"{info.count} band{'s' * (info.count != 1)} at {_span(info.wavelengths)}"


def model_band_set(reference: dict[str, Any] | None, expected: np.ndarray | None,
                   count: int) -> str:
    """The model's band set in words: ``the 13 Sentinel-2 MSI bands at 443-2202 nm``."""
    sensor = (reference or {}).get("sensor")
    sensor = f" {sensor}" if sensor and sensor != "unknown" else ""
    where = f" at {_span(expected)}" if expected is not None else ""
    return f"the {count}{sensor} bands{where}"


#: a band name's key: ``B`` and the band number (``B02``, ``b2``, ``B02 492.4 nm``) or ``B8A``
_BAND_KEY = re.compile(r"^\s*B0*(\d{1,2}|8A)\b", re.IGNORECASE)


def band_key(name: str | None) -> str | None:
    """The key of a band name: ``"B02"`` for ``"B2"``, ``"b02"`` or ``"B02 492.4 nm"``,
    ``"B8A"`` for ``"B8A"``; None for a name of another form."""
    match = _BAND_KEY.match(name or "")
    if match is None:
        return None
    token = match.group(1).upper()
    return "B8A" if token == "8A" else f"B{int(token):02d}"


def bands_by_name(reference: dict[str, Any] | None, info: RasterInfo
                  ) -> tuple[np.ndarray | None, list[str]] | None:
    """The raster's bands identified by name against the model's band names: ``None``
    when names cannot identify them (the raster has wavelengths or does not name its
    bands, or some band name of either side has no key, or keys repeat); else the 0-based
    bands in the model's order (None when some are missing) and the model's names of the
    missing bands."""
    names = (reference or {}).get("band_names") or []
    if info.wavelengths is not None or not names or not info.band_names_declared:
        return None
    model_keys = [band_key(name) for name in names]
    raster_keys = [band_key(name) for name in info.band_names]
    for keys in (model_keys, raster_keys):
        if None in keys or len(set(keys)) != len(keys):
            return None
    where = {key: index for index, key in enumerate(raster_keys)}
    missing = [name for name, key in zip(names, model_keys, strict=True) if key not in where]
    if missing:
        return None, missing
    return np.array([where[key] for key in model_keys], dtype=np.int64), []


def model_bands(expected: np.ndarray | None, in_bands: int, info: RasterInfo,
                reference: dict[str, Any] | None = None, tolerance_nm: float = 5.0
                ) -> np.ndarray:
    """The raster's bands the model reads, in the model's order (0-based indices).

    Raises :class:`UserError` naming the input's band set and the model's when the raster
    lacks any of them: by wavelength when both sides know theirs (each expected centre
    needs a band within ``tolerance_nm``; extra bands are left out), else by count. A
    missing band is an error ``force`` cannot override: the model has nothing to read.
    """
    from domainvit.datasets.raster.bands import match_bands

    reads = model_band_set(reference, expected, in_bands)
    have = f"{info.path.name}: {input_bands(info)}; the model reads {reads}"
    by_name = bands_by_name(reference, info)
    if by_name is not None:
        chosen, missing = by_name
        if chosen is not None:
            return chosen
        shown = ", ".join(missing[:9]) + (f" and {len(missing) - 9} more"
                                          if len(missing) > 9 else "")
        raise UserError(f"{have}; by their names ({', '.join(info.band_names)}) it lacks "
                        f"{len(missing)} of them: {shown}")
    if expected is not None and info.wavelengths is not None:
        chosen = match_bands(info, expected, tolerance_nm)
        if chosen is not None:
            return chosen
        available = np.asarray(info.wavelengths, np.float64)
        missing = [float(c) for c in expected
                   if not np.min(np.abs(available - c)) <= tolerance_nm]
        names = (reference or {}).get("band_names") or []
        named = dict(zip(map(float, expected), names, strict=False)) \
            if len(names) == len(expected) else {}
        labels = [named.get(c, "") if "nm" in named.get(c, "")
                  else f"{named.get(c, '')} {c:.0f} nm".strip() for c in missing]
        shown = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6
                                         else "")
        raise UserError(f"{have}; it lacks {len(missing) or 'some'} of them"
                        f"{': ' + shown if shown else ''} (tolerance {tolerance_nm:g} nm)")
    if info.count != in_bands:
        raise UserError(have)
    return np.arange(info.count)


# --- the comparison ------------------------------------------------------------------------


@dataclass(frozen=True)
class RasterSample:
    """What an input raster is compared by: its info and the sampled valid pixels'
    reflectance ``[N, B]`` in the model's band order (before the overflow guard)."""

    info: RasterInfo
    spectra: np.ndarray

    @classmethod
    def read(cls, source: RasterSource, bands: np.ndarray) -> RasterSample:
        return cls(source.info, source.sample(bands))


def _units(reference: dict[str, Any], sample: RasterSample) -> list[Finding]:
    info = sample.info
    declared = sorted({u for u in info.units if u.strip().lower() not in REFLECTANCE_UNITS})
    if declared:
        return [refuse("units", f"its bands are in {', '.join(declared)}, not reflectance; "
                                f"the model reads {reference['units']}")]
    spectra = sample.spectra
    if info.scale_declared or not len(spectra):
        return []
    low, high = DEFAULT_REFLECTANCE_RANGE
    outside = ((spectra < low) | (spectra > high)).any(axis=1)
    share = float(outside.mean())
    if share <= UNITS_SHARE:
        return []
    raw = spectra.astype(np.float64) * info.reflectance_scale
    kind = "integer" if np.dtype(info.dtype).kind in "ui" else "float"
    assumed = (f"reflectance x {info.reflectance_scale:g}" if info.reflectance_scale != 1
               else "reflectance")
    return [refuse("units", (
        f"{info.dtype} values up to {np.max(raw):.6g} (median {np.median(raw):.6g}) with no "
        f"reflectance scale declared: {share:.0%} of the valid pixels are not plausible "
        f"as {assumed}, so these are digital numbers ({kind} counts or radiance), not "
        f"reflectance; the model reads {reference['units']}, from a file that declares "
        f"its scale (a reflectance_scale tag)"))]


def _gsd(reference: dict[str, Any], info: RasterInfo) -> list[Finding]:
    trained, given = reference.get("gsd_m"), _gsd_m(info)
    if not trained or not given:
        return []
    ratio = max(given / trained, trained / given)
    if ratio < GSD_FACTOR:
        return []
    return [warn("spacing", f"its ground sampling distance is {given:g} m, {ratio:.1f} times "
                            f"{'finer' if given < trained else 'coarser'} than the training "
                            f"image's {trained:g} m")]


def _ranges(reference: dict[str, Any], spectra: np.ndarray) -> list[Finding]:
    levels = reference.get("quantile_levels", list(QUANTILES))
    lo_i, hi_i = levels.index(0.005), levels.index(0.995)
    q05, q95 = levels.index(0.05), levels.index(0.95)
    names = reference.get("band_names") or []
    flagged = []
    for band, q in enumerate(reference["band_quantiles"]):
        if not q:
            continue
        margin = RANGE_MARGIN * (q[q95] - q[q05])
        low, high = q[lo_i] - margin, q[hi_i] + margin
        values = spectra[:, band]
        share = float(((values < low) | (values > high)).mean())
        if share > RANGE_SHARE:
            name = names[band] if len(names) == len(reference["band_quantiles"]) \
                else f"band {band + 1}"
            median = float(np.median(values))
            flagged.append((share, name, median, q[lo_i], q[hi_i]))
    if not flagged:
        return []
    share, name, median, low, high = max(flagged)
    return [warn("reflectance", (
        f"its reflectance lies outside the training range in {len(flagged)} of "
        f"{len(reference['band_quantiles'])} bands (most in {name}: {share:.0%} of the "
        f"valid pixels, median {median:.3f}, training 0.5-99.5% {low:.3f}-{high:.3f})"))]


def _typicality(reference: dict[str, Any], spectra: np.ndarray) -> list[Finding]:
    share = float(atypical(reference["typicality"], spectra).mean())
    if share <= ATYPICAL_SHARE:
        return []
    limit = reference["typicality"].get("percentile", TYPICAL_PERCENTILE)
    return [warn("spectra", (
        f"{share:.0%} of its valid pixels have spectra unlike the training pixels (beyond "
        f"the {limit:g}th percentile of the training spectra's distance in the typicality "
        f"PCA; {100 - limit:.1f}% of training pixels are)"))]


def compare_raster(reference: dict[str, Any], sample: RasterSample) -> list[Finding]:
    """The findings for an input raster whose band set the model can read (see the module
    docs), most fundamental first."""
    info = sample.info
    findings = _units(reference, sample)
    if findings:  # values that are not reflectance: their ranges say nothing more
        return findings
    if (info.wavelengths is None and reference.get("band_centres_nm")
            and bands_by_name(reference, info) is None):
        expected = np.asarray(reference["band_centres_nm"])
        findings.append(warn("bands", (
            f"{input_bands(info)}: taken to be "
            f"{model_band_set(reference, expected, reference['bands'])} in the same order")))
    findings += _gsd(reference, info)
    spectra = sample.spectra
    if len(spectra):
        findings += _ranges(reference, spectra)
        findings += _typicality(reference, spectra)
    return findings
