"""Sentinel-2 product facts from a raster's tags and name: the processing level (L1C
top-of-atmosphere or L2A surface reflectance), the processing baseline, and the
radiometric offset that baseline 04.00 and later add to the digital numbers.

Since processing baseline 04.00 (products from 25 January 2022 on) the L1C and L2A
digital numbers carry an offset of +1000, so that reflectance is
``(DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE`` for L1C and ``(DN + BOA_ADD_OFFSET) /
BOA_QUANTIFICATION_VALUE`` for L2A, with the offsets at -1000 and the quantification
values at 10000 (ESA's notice of processing baseline 04.00, and the Sentinel-2 Products
Specification Document from issue 14.8 on). Read as ``DN / 10000``
such a product is 0.1 too bright in every band: water looks like soil.

Where the facts come from, first found wins:

- the offset: a ``RADIO_ADD_OFFSET`` or ``BOA_ADD_OFFSET`` tag of the dataset or of every
  band (GDAL's SENTINEL2 driver and tools that copy the product metadata write them);
- the baseline: a ``PROCESSING_BASELINE`` tag (``"04.00"``), else the ``_Nxxyy_`` field of
  a product name (``S2B_MSIL1C_20230105T155519_N0509_R054_T18TWL_...``) in the
  ``PRODUCT_URI``/``PRODUCT_NAME`` tag, the file's name or a folder above it (a ``.SAFE``);
- the level: a ``PROCESSING_LEVEL``/``PRODUCT_TYPE`` tag (``Level-1C``, ``S2MSI2A``), else
  ``MSIL1C``/``MSIL2A`` in the product name.

A baseline of 04.00 or later without an offset tag takes the documented -1000.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OFFSET_BASELINE", "OFFSET_DN", "S2Product", "sentinel2_product"]

#: the first processing baseline whose digital numbers carry the offset
OFFSET_BASELINE = (4, 0)
#: the offset of those baselines, in digital numbers (RADIO_ADD_OFFSET, BOA_ADD_OFFSET)
OFFSET_DN = -1000.0

_PRODUCT_NAME = re.compile(r"MSI(L1C|L2A)_\d{8}T\d{6}_N(\d{2})(\d{2})_", re.IGNORECASE)
_BASELINE_TAG = re.compile(r"^\s*(\d{1,2})\.(\d{2})\s*$")
_LEVEL_TAG = re.compile(r"(?:Level-?|S2MSI|MSI)(1C|2A)\b", re.IGNORECASE)
_OFFSET_TAGS = ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET")
_NAME_TAGS = ("PRODUCT_URI", "PRODUCT_NAME", "PRODUCT_ID")


@dataclass(frozen=True)
class S2Product:
    """What a raster says of the Sentinel-2 product it comes from."""

    #: ``"L1C"`` (top-of-atmosphere) or ``"L2A"`` (surface reflectance); None if unknown
    level: str | None
    #: the processing baseline as ``(major, minor)``; None if unknown
    baseline: tuple[int, int] | None
    #: the offset added to the digital numbers (DN), 0 for baselines before 04.00
    offset_dn: float
    #: where the offset came from: ``"tag"``, ``"baseline"`` or ``"none"``
    offset_source: str

    @property
    def baseline_text(self) -> str | None:
        return None if self.baseline is None else f"{self.baseline[0]:02d}.{self.baseline[1]:02d}"


def _offset_tag(tags: Mapping[str, str], band_tags: Sequence[Mapping[str, str]]
                ) -> float | None:
    """The offset a dataset tag declares, else one that every band declares alike."""
    for key in _OFFSET_TAGS:
        if key in tags:
            values = {tags[key]}
        elif band_tags and all(key in band for band in band_tags):
            values = {band[key] for band in band_tags}
        else:
            continue
        if len(values) == 1:
            try:
                return float(values.pop())
            except ValueError:
                continue
    return None


def sentinel2_product(path: Path, tags: Mapping[str, str],
                      band_tags: Sequence[Mapping[str, str]] = ()) -> S2Product | None:
    """The Sentinel-2 product facts of the raster at ``path`` with dataset ``tags`` and
    per-band ``band_tags``; None when nothing marks it as a Sentinel-2 product."""
    upper = {str(k).upper(): str(v) for k, v in tags.items()}
    bands = [{str(k).upper(): str(v) for k, v in b.items()} for b in band_tags]
    names = [upper[key] for key in _NAME_TAGS if key in upper]
    names += [part for part in (Path(path).name, *(p.name for p in Path(path).parents))
              if part]
    product = next((m for m in map(_PRODUCT_NAME.search, names) if m), None)

    baseline = None
    tag = _BASELINE_TAG.match(upper.get("PROCESSING_BASELINE", ""))
    if tag:
        baseline = (int(tag.group(1)), int(tag.group(2)))
    elif product:
        baseline = (int(product.group(2)), int(product.group(3)))
    level = None
    for key in ("PROCESSING_LEVEL", "PRODUCT_TYPE"):
        found = _LEVEL_TAG.search(upper.get(key, ""))
        if found:
            level = "L" + found.group(1).upper()
            break
    if level is None and product:
        level = product.group(1).upper()

    offset = _offset_tag(upper, bands)
    if offset is None and baseline is None and level is None:
        return None
    if offset is not None:
        return S2Product(level, baseline, offset, "tag")
    if baseline is not None and baseline >= OFFSET_BASELINE:
        return S2Product(level, baseline, OFFSET_DN, "baseline")
    return S2Product(level, baseline, 0.0, "none")
