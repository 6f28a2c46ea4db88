"""Band centres in nm, from the raster's metadata or a sidecar file.

Wavelengths (always in nm in :class:`RasterInfo`) come from, first match wins: the caller's
``wavelengths``; per-band ``wavelength`` tags (our GeoTIFF convention, and what GDAL >= 3.10
sets for ENVI headers), with ``wavelength_units`` from the band or the dataset; the band's
``CENTRAL_WAVELENGTH_UM`` in GDAL's ``IMAGERY`` domain; band descriptions containing
``"<number> nm"`` (``"B001 400.0 nm"``); the ENVI header's ``wavelength`` list (GDAL's
``ENVI`` metadata domain, ``wavelength units`` honoured); and finally a sidecar next to the
file: ``<stem>.bands.json`` (a list of numbers, or ``{"wavelengths": [...], "units": "nm",
"fwhm": [...], "band_names": [...]}``) or ``<stem>.bands.txt`` (numbers separated by
spaces, commas or newlines; ``#`` starts a comment). Units: nm, micrometers
(``um``/``µm``/``micrometers``/``microns``), mm, or wavenumbers (``cm-1``); without a
usable unit, a list whose values are all below 30 is taken as micrometers (no optical
sensor has bands below 30 nm), any other as nm.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from domainvit.errors import UserError

_NM_IN_DESCRIPTION = re.compile(r"(?<![\w.])([-+]?\d+(?:\.\d+)?)\s*nm\b", re.IGNORECASE)


_MICROMETER_GUESS_BELOW = 30.0


def _unit_factor(units: str | None) -> float | Literal["wavenumber"] | None:
    """Multiplier to nm for ``units``; None when missing or not a length."""
    if units is None:
        return None
    name = units.strip().strip("{}").strip().lower().replace(" ", "")
    if name in ("nm", "nanometer", "nanometers", "nanometre", "nanometres"):
        return 1.0
    if name in ("um", "µm", "μm", "micrometer", "micrometers", "micrometre", "micrometres",
                "micron", "microns"):
        return 1000.0
    if name in ("mm", "millimeter", "millimeters", "millimetre", "millimetres"):
        return 1e6
    if name in ("cm-1", "1/cm", "wavenumber", "wavenumbers", "cm^-1"):
        return "wavenumber"
    return None


def _to_nm(values: Sequence[float] | np.ndarray, units: str | None) -> np.ndarray:
    """Wavelengths in nm from ``values`` in ``units`` (guessed from magnitude when unknown)."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    factor = _unit_factor(units)
    if factor == "wavenumber":
        with np.errstate(divide="ignore"):
            return 1e7 / array
    if factor is None:
        finite = array[np.isfinite(array)]
        factor = 1000.0 if finite.size and np.max(np.abs(finite)) < _MICROMETER_GUESS_BELOW else 1.0
    return array * factor


def _parse_number_list(text: str) -> list[float] | None:
    """``'{0.45, 0.55}'`` (an ENVI header list) -> floats; None when not all numbers."""
    parts = [part for part in re.split(r"[\s,{}]+", text) if part]
    try:
        return [float(part) for part in parts]
    except ValueError:
        return None


def _validated_wavelengths(values: np.ndarray, count: int, where: str) -> np.ndarray:
    if values.size != count:
        raise UserError(f"{where}: {values.size} wavelengths for a raster of {count} bands")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise UserError(f"{where} has wavelengths that are not positive numbers")
    return values


def _sidecar_paths(path: Path) -> tuple[Path, Path]:
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.bands.json"), path.with_name(f"{stem}.bands.txt")


def _read_sidecar(path: Path, count: int) -> dict[str, Any] | None:
    """Wavelengths (nm), fwhm and band names from ``<stem>.bands.json``/``.txt``."""
    json_path, text_path = _sidecar_paths(path)
    if json_path.is_file():
        try:
            content = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"cannot read band sidecar {json_path.name}: {error}") from error
        if isinstance(content, list):
            content = {"wavelengths": content}
        if not isinstance(content, dict) or not isinstance(content.get("wavelengths"), list):
            raise UserError(f"band sidecar {json_path.name} must be a list of wavelengths or "
                            f'{{"wavelengths": [...], "units": "nm", "fwhm": [...], '
                            f'"band_names": [...]}}')
        units = content.get("units", "nm")
        try:
            wavelengths = _to_nm(content["wavelengths"], units)
            fwhm = _to_nm(content["fwhm"], units) if content.get("fwhm") is not None else None
        except (TypeError, ValueError) as error:
            raise UserError(f"band sidecar {json_path.name} holds values that are not "
                            f"numbers: {error}") from error
        if _unit_factor(units) == "wavenumber" and fwhm is not None:
            fwhm = None  # a width in cm-1 is not a width in nm; dropped rather than guessed
        wavelengths = _validated_wavelengths(wavelengths, count, f"band sidecar {json_path.name}")
        if fwhm is not None and fwhm.size != count:
            raise UserError(f"band sidecar {json_path.name} lists {fwhm.size} fwhm values "
                            f"for {count} bands")
        names = content.get("band_names")
        if names is not None and (not isinstance(names, list) or len(names) != count):
            raise UserError(f"band sidecar {json_path.name}: band_names must list {count} names")
        return {"wavelengths": wavelengths, "fwhm": fwhm,
                "band_names": [str(name) for name in names] if names else None}
    if text_path.is_file():
        try:
            lines = text_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read band sidecar {text_path.name}: {error}") from error
        numbers = _parse_number_list(" ".join(line.split("#", 1)[0] for line in lines))
        if numbers is None:
            raise UserError(f"band sidecar {text_path.name} must hold only numbers (band "
                            f"centres in nm), separated by spaces, commas or newlines")
        wavelengths = _validated_wavelengths(_to_nm(numbers, None), count,
                                             f"band sidecar {text_path.name}")
        return {"wavelengths": wavelengths, "fwhm": None, "band_names": None}
    return None


def _gdal_band_list(dataset: Any, key: str) -> list[str] | None:
    """One tag value per band, or None when any band lacks it."""
    values = [dataset.tags(band).get(key) for band in range(1, dataset.count + 1)]
    return None if any(value is None for value in values) else values


def _floats(values: Sequence[str] | None) -> np.ndarray | None:
    if values is None:
        return None
    try:
        return np.array([float(value) for value in values], dtype=np.float64)
    except ValueError:
        return None


def _gdal_wavelengths(dataset: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Band centres and widths in nm from a GDAL dataset's metadata (see module docs)."""
    count = dataset.count
    tags = dataset.tags()
    envi = dataset.tags(ns="ENVI") if "ENVI" in (dataset.tag_namespaces() or []) else {}
    default_units = tags.get("wavelength_units") or envi.get("wavelength_units")

    def band_units() -> str | None:
        units = {dataset.tags(band).get("wavelength_units") for band in range(1, count + 1)}
        units.discard(None)
        return units.pop() if len(units) == 1 else default_units

    def fwhm_from(units: str | None) -> np.ndarray | None:
        values = _floats(_gdal_band_list(dataset, "fwhm"))
        if values is None and envi.get("fwhm"):
            values = np.array(_parse_number_list(envi["fwhm"]) or [], dtype=np.float64)
        if values is None or values.size != count or _unit_factor(units) == "wavenumber":
            return None
        return _to_nm(values, units)

    # per-band tags: our GeoTIFF convention; GDAL >= 3.10 sets them from ENVI headers
    values = _floats(_gdal_band_list(dataset, "wavelength"))
    if values is not None:
        units = band_units()
        return _to_nm(values, units), fwhm_from(units)
    # GDAL's IMAGERY domain (>= 3.10): CENTRAL_WAVELENGTH_UM / FWHM_UM
    imagery = [dataset.tags(band, ns="IMAGERY") for band in range(1, count + 1)]
    values = _floats([item.get("CENTRAL_WAVELENGTH_UM") for item in imagery]
                     if all("CENTRAL_WAVELENGTH_UM" in item for item in imagery) else None)
    if values is not None:
        widths = _floats([item.get("FWHM_UM") for item in imagery]
                         if all("FWHM_UM" in item for item in imagery) else None)
        return values * 1000.0, None if widths is None else widths * 1000.0
    # band descriptions such as "B001 400.0 nm"
    descriptions = dataset.descriptions or ()
    matches = [_NM_IN_DESCRIPTION.search(text or "") for text in descriptions]
    if len(matches) == count and all(matches):
        return np.array([float(match.group(1)) for match in matches]), fwhm_from("nm")
    # the ENVI header's wavelength list
    if envi.get("wavelength"):
        numbers = _parse_number_list(envi["wavelength"])
        if numbers is not None and len(numbers) == count:
            units = envi.get("wavelength_units")
            return _to_nm(numbers, units), fwhm_from(units)
    return None, None
