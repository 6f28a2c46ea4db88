"""The simulated Sentinel-2 land-cover scene: the ``s2-landcover`` sample dataset's builder.

A mosaic of tiles (default 4 x 5 tiles of 128 x 128 pixels of 10 m), each its own
landscape, atmosphere and product level, for training a land-cover model that must label
real Sentinel-2 L1C (top-of-atmosphere) and L2A (surface reflectance) scenes:

- **Layout** per tile: agricultural parcels (a Voronoi tessellation,
  :func:`.simulator.voronoi_parcels`) of green cropland, grassland and bare soil, with
  unlabelled field margins (asphalt/grass); forest patches (a thresholded smooth random
  field); usually a town block; either a coast (sea, a turbid near-shore band, a beach
  strip, sometimes marsh behind it) or inland water (a meandering river, a lake, marsh
  along their banks).
- **Surface**: every patch (parcel or sub-patch) draws a spectrum from its class's bank
  (:func:`.landcover.class_banks`); each pixel mixes in a second spectrum of its class
  (0-30 %) and a brightness (topography, 3-4 %); pixels at class borders are mixed by a
  Gaussian blur (sd 0.6 pixel) of the surface reflectance.
- **Atmosphere and level** (:mod:`.atmosphere`): each tile draws its own aerosol, water
  vapour, ozone, pressure and sun/view geometry. Every tile is taken to the top of the
  atmosphere (with cloud shadows lit by skylight only); about half the tiles stay there
  (**L1C**), sometimes with thin cirrus; the others (**L2A**) are atmospherically
  corrected with a deliberately imperfect estimate of the atmosphere (AOT x exp(N(0,
  0.3)), water vapour x exp(N(0, 0.15)), Angstrom + N(0, 0.3)), which leaves the residual
  errors of a real correction. B10 (cirrus), which L2A products drop, is simulated (it
  shapes the clouds' other bands) but not written: the scene has the 12 bands both levels
  share.
- **Clouds** (in some tiles) are composed at the top of the atmosphere
  (:func:`.landcover.cloud_toa`): opacity alpha from a smooth field, rho = (1 - alpha)
  rho_ground + alpha rho_cloud; their shadows are the opacity field displaced away from
  the sun (cloud base 0.3-1.5 km times tan(sun zenith), capped at the tile's padding),
  where the direct beam is cut and a part of the sky hidden.
- **Sensor**: a per-band blur for the native resolution (sd 0.5 / 1.0 / 2.5 pixels for
  the 10 / 20 / 60 m bands, which the real scene has bilinearly resampled to 10 m) and
  noise from the Sentinel-2 signal-to-noise ratios (:data:`.sensors._S2_SNR`) at the
  top of the atmosphere (so it is amplified by the L2A correction).

Labels: the surface class; thick cloud (alpha > 0.5) is ``cloud``, cloud edges
(0.1 < alpha <= 0.5) are unlabelled; deep shadow (direct beam < 30 %) on land not under
cloud is ``cloud-shadow``, the penumbra unlabelled; shadowed water keeps its water class;
field margins are unlabelled.

Split: whole tiles are test tiles (at least one L1C and one L2A, every class present), so
the test pixels see atmospheres the training never saw; train and validation pixels are
sampled per class from the other tiles, beyond a guard margin of the test tiles.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from domainvit.datasets.hsi_scenes.atmosphere import (
    Atmosphere,
    band_optics,
    random_atmosphere,
    surface_reflectance,
    toa_reflectance,
)
from domainvit.datasets.hsi_scenes.conventions import (
    CLASSES_FILE,
    LABELS_FILE,
    META_FILE,
    NODATA,
    REFLECTANCE_SCALE,
    S2_LANDCOVER,
    SCENE_FILE,
    SPLIT_CODES,
    SPLIT_FILE,
    SPLIT_NONE,
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VAL,
    TILES_FILE,
)
from domainvit.datasets.hsi_scenes.landcover import (
    CLASS_NAMES,
    CLASSES,
    SURFACE_CLASSES,
    class_banks,
    cloud_toa,
)
from domainvit.datasets.hsi_scenes.sensors import _S2_SNR, S2_BANDS, sentinel2_bands
from domainvit.datasets.hsi_scenes.simulator import smooth_field, voronoi_parcels
from domainvit.datasets.hsi_scenes.writers import (
    _json_default,
    _write_mask,
    to_counts,
    write_reflectance,
)

SEED = 20260611


#: the scene's grid: UTM 31N, 10 m pixels (the Sentinel-2 10 m grid), upper-left corner
SCENE_CRS = "EPSG:32631"


PIXEL_SIZE_M = 10.0

#: Sentinel-2 bands simulated but not written to scene.tif (L2A products drop B10)
DROPPED_BANDS = ("B10",)


SCENE_ORIGIN = (500_000.0, 5_800_000.0)


OPEN_WATER, TURBID, FOREST, CROP, GRASS, SOIL, SAND, WETLAND, BUILT, CLOUD, SHADOW = range(1, 12)


#: surface code of the unlabelled field margins (a spectrum, label 0)
ROAD = 12


@dataclass
class LandcoverConfig:
    """Knobs of :func:`make_landcover_scene` (defaults: the published dataset)."""

    tile: int = 128
    rows: int = 4
    cols: int = 5
    seed: int = SEED
    bank_size: int = 1500
    test_tiles: int = 5
    margin: int = 7
    train_fraction: float = 0.5
    val_fraction: float = 0.1
    min_train: int = 20
    min_val: int = 5
    cloud_share: float = 0.5      # share of tiles with clouds
    cirrus_share: float = 0.35    # share of L1C tiles with thin cirrus
    pad: int = 48                 # canvas margin for clouds (caps the shadow displacement)


@dataclass
class LandcoverScene:
    reflectance: np.ndarray   # (H, W, 13) float32
    labels: np.ndarray        # (H, W) uint8
    split: np.ndarray         # (H, W) uint8
    valid: np.ndarray         # (H, W) bool
    tiles: list[dict]
    config: LandcoverConfig
    meta: dict = field(default_factory=dict)


# --- layout ------------------------------------------------------------------------------

def _coords(t: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:t, 0:t].astype(np.float64)
    return rows + 0.5, cols + 0.5


def tile_layout(t: int, kind: str, town: bool, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Surface class codes (1-9, :data:`ROAD` for margins) and patch ids of one tile."""
    from scipy import ndimage

    parcels, roads = voronoi_parcels(t, float(rng.uniform(14, 28)), 0.5, rng)
    n = int(parcels.max()) + 1
    field_class = rng.choice([CROP, GRASS, SOIL], size=n, p=[0.4, 0.3, 0.3])
    surface = field_class[parcels].astype(np.uint8)
    surface[roads] = ROAD
    patches, _ = voronoi_parcels(t, float(rng.uniform(9, 16)), 0.0, rng)
    patch = parcels.copy()
    forest = smooth_field((t, t), float(rng.uniform(6, 12)), rng)
    surface[forest > np.quantile(forest, 1 - rng.uniform(0.12, 0.3))] = FOREST
    is_field = np.isin(surface, (CROP, GRASS, SOIL, ROAD))
    rows, cols = _coords(t)
    if town:
        cy, cx = rng.uniform(0.2, 0.8, 2) * t
        half = rng.uniform(0.1, 0.22, 2) * t
        wobble = 3.0 * smooth_field((t, t), 6.0, rng)
        inside = (np.abs(rows - cy) < half[0] + wobble) & (np.abs(cols - cx) < half[1] + wobble)
        surface[inside] = BUILT
    if kind == "coast":
        angle = rng.uniform(0, 2 * math.pi)
        along = (rows - t / 2) * math.sin(angle) + (cols - t / 2) * math.cos(angle)
        d = along - rng.uniform(-0.25, 0.05) * t + 6.0 * smooth_field((t, t), 12.0, rng)
        turbid_w = rng.uniform(4, 22) + 3.0 * smooth_field((t, t), 5.0, rng)
        beach_w = rng.uniform(3, 10)
        surface[d < 0] = OPEN_WATER
        surface[(d < 0) & (d > -turbid_w)] = TURBID
        surface[(d >= 0) & (d < beach_w)] = SAND
        if rng.random() < 0.6:
            marsh = smooth_field((t, t), 4.0, rng) > 0.2
            surface[(d >= beach_w) & (d < beach_w + rng.uniform(5, 14)) & marsh] = WETLAND
    else:
        water = np.zeros((t, t), bool)
        # a meandering river across the tile
        amp, length, phase = rng.uniform(4, 18), rng.uniform(0.6, 1.5) * t, rng.uniform(0, 6.3)
        y0 = rng.uniform(0.25, 0.75) * t
        centre = y0 + amp * np.sin(2 * math.pi * cols / length + phase)
        width = rng.uniform(1.5, 4.0) * (1 + 0.2 * smooth_field((t, t), 8.0, rng))
        river = np.abs(rows - centre) < width
        if rng.random() < 0.5:
            river = river.T
        water |= river
        surface[river] = TURBID if rng.random() < 0.65 else OPEN_WATER
        if rng.random() < 0.8:  # a lake
            cy, cx = rng.uniform(0.15, 0.85, 2) * t
            ry, rx = rng.uniform(8, 24, 2)
            wob = 0.25 * smooth_field((t, t), 6.0, rng)
            lake = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 < 1 + wob
            surface[lake] = OPEN_WATER if rng.random() < 0.75 else TURBID
            water |= lake
        if rng.random() < 0.8:  # marsh along the banks
            dist = ndimage.distance_transform_edt(~water)
            marsh = (dist > 0) & (dist < rng.uniform(3, 10)) & (
                smooth_field((t, t), 4.0, rng) > -0.2)
            surface[marsh & (surface != BUILT)] = WETLAND
    # patches: parcels for fields, small Voronoi cells for everything else
    patch = np.where(is_field & np.isin(surface, (CROP, GRASS, SOIL, ROAD)), parcels,
                     patches + n)
    return surface, patch


def tile_surface(surface: np.ndarray, patch: np.ndarray, banks: dict[str, np.ndarray],
                 rng: np.random.Generator) -> np.ndarray:
    """Surface reflectance (t, t, 13) of a layout: a bank spectrum per (patch, class),
    0-30 % of a second spectrum per pixel, brightness per pixel and topography."""
    t = surface.shape[0]
    out = np.zeros((t, t, 13), dtype=np.float32)
    topo = 0.04 * smooth_field((t, t), 5.0, rng)
    names = {**{i + 1: n for i, n in enumerate(SURFACE_CLASSES)}, ROAD: "road"}
    for code, name in names.items():
        where = surface == code
        if not where.any():
            continue
        bank = banks[name]
        keys, inverse = np.unique(patch[where], return_inverse=True)
        base = bank[rng.integers(0, len(bank), keys.size)][inverse]
        other = bank[rng.integers(0, len(bank), inverse.size)]
        w = rng.uniform(0.0, 0.3, inverse.size).astype(np.float32)[:, None]
        spec = (1 - w) * base + w * other
        water = code in (OPEN_WATER, TURBID)
        log_b = rng.normal(0, 0.01 if water else 0.03, inverse.size)
        if not water:
            log_b = log_b + topo[where]
        out[where] = spec * np.exp(log_b).astype(np.float32)[:, None]
    return out


# --- one tile ------------------------------------------------------------------------------

def _band_blur(cube: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    sigma = {10: 0.5, 20: 1.0, 60: 2.5}
    out = np.empty_like(cube)
    for i, band in enumerate(S2_BANDS):
        out[..., i] = ndimage.gaussian_filter(cube[..., i], sigma[band[3]], mode="nearest")
    return out


def _noise(toa: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    snr = np.asarray(_S2_SNR, dtype=np.float32)
    sd = (0.1 / snr) * np.sqrt(np.maximum(toa, 0) / 0.1 + 0.05)
    return toa + sd * rng.standard_normal(toa.shape, dtype=np.float32)


def simulate_tile(index: int, level: str, kind: str, town: bool, clouds: bool,
                  config: LandcoverConfig, banks: dict[str, np.ndarray],
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """One tile: reflectance (t, t, 13) at its level, labels, and its parameters."""
    from scipy import ndimage

    t, pad = config.tile, config.pad
    surface, patch = tile_layout(t, kind, town, rng)
    rho_s = tile_surface(surface, patch, banks, rng)
    rho_s = ndimage.gaussian_filter(rho_s, sigma=(0.6, 0.6, 0), mode="nearest")
    labels = np.where(surface == ROAD, 0, surface).astype(np.uint8)
    atm = random_atmosphere(rng)
    optics = band_optics(atm)
    info: dict = {"tile": index, "level": level, "kind": kind, "town": town,
                  "atmosphere": atm.to_dict()}
    alpha = np.zeros((t, t), np.float32)
    direct = np.ones((t, t), np.float32)
    diffuse = np.ones((t, t), np.float32)
    if clouds:
        big = t + 2 * pad
        cover = float(rng.uniform(0.08, 0.3))
        f = smooth_field((big, big), float(rng.uniform(5, 10)), rng)
        soft = float(rng.uniform(0.3, 0.8))
        a_big = np.clip((f - np.quantile(f, 1 - cover)) / soft, 0, 1).astype(np.float32)
        base_km = float(rng.uniform(0.3, 1.5))
        azimuth = float(rng.uniform(0, 2 * math.pi))
        dist = min(base_km * 1000 * math.tan(math.radians(atm.sun_zenith)) / PIXEL_SIZE_M,
                   pad - 1)
        dy, dx = int(round(dist * math.cos(azimuth))), int(round(dist * math.sin(azimuth)))
        alpha = a_big[pad:pad + t, pad:pad + t]
        shade = a_big[pad - dy:pad - dy + t, pad - dx:pad - dx + t]
        direct = np.clip(1 - 1.5 * shade, 0, 1).astype(np.float32)
        diffuse = (1 - 0.4 * ndimage.gaussian_filter(shade, 4.0)).astype(np.float32)
        top_km = float(rng.uniform(1.0, 10.0))
        m = 1 / math.cos(math.radians(atm.sun_zenith)) + 1 / math.cos(
            math.radians(atm.view_zenith))
        cloud, _ = cloud_toa(1, rng, atm.water_vapour, m, np.array([top_km]))
        texture = np.exp(0.08 * smooth_field((t, t), 3.0, rng)) * (0.75 + 0.25 * alpha)
        info["clouds"] = {"cover": round(cover, 3), "base_km": round(base_km, 2),
                          "top_km": round(top_km, 2),
                          "shadow_shift_px": [dy, dx], "toa": cloud[0].round(4).tolist()}
    toa = toa_reflectance(rho_s, optics, direct, diffuse).astype(np.float32)
    if clouds:
        cloud_px = cloud[0][None, None, :] * texture[..., None]
        toa = (1 - alpha[..., None]) * toa + alpha[..., None] * cloud_px
        labels[alpha > 0.1] = 0
        labels[alpha > 0.5] = CLOUD
        # shadow on land is its own class; shadowed water stays water (it is what a user
        # maps, and a shadow on dark water is hardly darker than the water itself, so
        # the class would teach the model to call dark water "shadow")
        free = (alpha <= 0.1) & ~np.isin(labels, (OPEN_WATER, TURBID))
        labels[free & (direct < 0.8)] = 0
        labels[free & (direct < 0.3)] = SHADOW
    if level == "L1C" and rng.random() < config.cirrus_share:
        amp = float(rng.uniform(0.004, 0.03))
        r_ci = (amp * np.clip(smooth_field((t, t), 10.0, rng) + 1.0, 0, None) / 2).astype(
            np.float32)
        toa = toa * (1 - r_ci[..., None]) + r_ci[..., None]
        info["cirrus"] = round(amp, 4)
    toa = _noise(_band_blur(toa), rng)
    if level == "L2A":
        estimate = replace(
            atm, aot550=float(atm.aot550 * math.exp(rng.normal(0, 0.3))),
            water_vapour=float(atm.water_vapour * math.exp(rng.normal(0, 0.15))),
            angstrom=float(np.clip(atm.angstrom + rng.normal(0, 0.3), 0.0, 2.5)))
        out = surface_reflectance(toa, band_optics(estimate)).astype(np.float32)
        b10 = S2_BANDS.index(next(b for b in S2_BANDS if b[0] == "B10"))
        out[..., b10] = toa[..., b10]
        info["correction_atmosphere"] = estimate.to_dict()
    else:
        out = toa
    return np.clip(out, 0.0, 1.5), labels, info


# --- scene and split -------------------------------------------------------------------------

def _tile_plan(config: LandcoverConfig, rng: np.random.Generator) -> list[dict]:
    n = config.rows * config.cols
    levels = np.array(["L1C", "L2A"] * (n // 2 + 1))[:n]
    kinds = np.array(["coast", "inland"] * (n // 2 + 1))[:n]
    levels, kinds = rng.permutation(levels), rng.permutation(kinds)
    towns = rng.random(n) < 0.85
    clouds = np.zeros(n, bool)
    clouds[rng.permutation(n)[:max(1, int(round(config.cloud_share * n)))]] = True
    return [{"tile": i, "row": i // config.cols, "col": i % config.cols,
             "level": str(levels[i]), "kind": str(kinds[i]), "town": bool(towns[i]),
             "clouds": bool(clouds[i])} for i in range(n)]


def split_tiles(labels: np.ndarray, tile_index: np.ndarray, plan: list[dict],
                config: LandcoverConfig, rng: np.random.Generator
                ) -> tuple[np.ndarray, dict]:
    """Whole test tiles (>= 1 L1C and >= 1 L2A when there are both, every class present in
    test and in the eligible training pixels), then per-class train/val sampling beyond
    the guard margin (Chebyshev, ``config.margin`` pixels) of the test tiles."""
    from scipy import ndimage

    classes = np.unique(labels[labels > 0])
    n = len(plan)
    levels = {p["level"] for p in plan}
    guard = np.ones((2 * config.margin + 1,) * 2, bool)
    for _ in range(500):
        chosen = rng.permutation(n)[:config.test_tiles]
        if len(levels) > 1 and len({plan[i]["level"] for i in chosen}) < 2:
            continue
        in_test = np.isin(tile_index, chosen)
        eligible = ~ndimage.binary_dilation(in_test, structure=guard) & (labels > 0)
        test = in_test & (labels > 0)
        if all(np.count_nonzero(test & (labels == c)) > 0
               and np.count_nonzero(eligible & (labels == c)) >= config.min_train + config.min_val
               for c in classes):
            break
    else:
        raise RuntimeError("no choice of test tiles holds every class in both parts: "
                           "enlarge the scene")
    split = np.full(labels.shape, SPLIT_NONE, np.uint8)
    split[test] = SPLIT_TEST
    per_class = {}
    for c in classes:
        pool = np.flatnonzero((eligible & (labels == c)).ravel())
        n_train = min(max(config.min_train, int(round(config.train_fraction * pool.size))),
                      pool.size - config.min_val)
        n_val = min(max(config.min_val, int(round(config.val_fraction * pool.size))),
                    pool.size - n_train)
        pick = rng.choice(pool, n_train + n_val, replace=False)
        split.ravel()[pick[:n_train]] = SPLIT_TRAIN
        split.ravel()[pick[n_train:]] = SPLIT_VAL
        per_class[CLASS_NAMES[c - 1]] = {
            "train": int(n_train), "val": int(n_val),
            "test": int(np.count_nonzero(test & (labels == c))),
            "labelled": int(np.count_nonzero(labels == c))}
    info = {"test_tiles": sorted(int(i) for i in chosen), "margin": config.margin,
            "train_fraction": config.train_fraction, "val_fraction": config.val_fraction,
            "per_class": per_class}
    return split, info


def make_landcover_scene(progress: type | None = None, **overrides: object) -> LandcoverScene:
    """Simulate the mosaic (module docstring); deterministic for a seed."""
    config = LandcoverConfig(**overrides)  # type: ignore[arg-type]
    plan_rng, split_rng, *tile_rngs = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(
            2 + config.rows * config.cols))
    plan = _tile_plan(config, plan_rng)
    bar = progress(total=len(plan) + 2, desc=S2_LANDCOVER, unit="step") if progress else None
    banks = class_banks(config.bank_size, config.seed)
    if bar is not None:
        bar.update()
    t = config.tile
    h, w = config.rows * t, config.cols * t
    reflectance = np.zeros((h, w, 13), np.float32)
    labels = np.zeros((h, w), np.uint8)
    tile_index = np.zeros((h, w), np.int32)
    tiles = []
    for p, rng in zip(plan, tile_rngs, strict=True):
        r0, c0 = p["row"] * t, p["col"] * t
        refl, lab, info = simulate_tile(p["tile"], p["level"], p["kind"], p["town"],
                                        p["clouds"], config, banks, rng)
        reflectance[r0:r0 + t, c0:c0 + t] = refl
        labels[r0:r0 + t, c0:c0 + t] = lab
        tile_index[r0:r0 + t, c0:c0 + t] = p["tile"]
        tiles.append({**p, "rows": [r0, r0 + t], "cols": [c0, c0 + t], **info})
        if bar is not None:
            bar.update()
    split, split_info = split_tiles(labels, tile_index, plan, config, split_rng)
    for tile in tiles:
        tile["split"] = "test" if tile["tile"] in split_info["test_tiles"] else "train"
    if bar is not None:
        bar.update()
        bar.close()
    meta = {"seed": config.seed, "size": [h, w], "config": asdict(config),
            "split": split_info}
    return LandcoverScene(reflectance=reflectance, labels=labels, split=split,
                          valid=np.ones((h, w), bool), tiles=tiles, config=config, meta=meta)


# --- files -------------------------------------------------------------------------------

def scene_transform():
    from rasterio.transform import Affine

    return Affine(PIXEL_SIZE_M, 0.0, SCENE_ORIGIN[0], 0.0, -PIXEL_SIZE_M, SCENE_ORIGIN[1])


def write_landcover_scene(scene: LandcoverScene, folder: Path) -> None:
    """scene.tif (the 12 bands but B10, with the tags of hsi-parcels' scene_s2.tif),
    labels.tif, split.tif,
    classes.json, tiles.json and meta.json into ``folder``."""
    from rasterio.crs import CRS

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    crs = CRS.from_string(SCENE_CRS)
    transform = scene_transform()
    names, centres, widths = sentinel2_bands()
    # the 12 bands L1C and L2A products share: L2A drops B10 (cirrus), so a model trained
    # on them reads both levels (and picks its 12 out of an L1C file's 13)
    keep = [i for i, name in enumerate(names) if name not in DROPPED_BANDS]
    counts = to_counts(scene.reflectance, scene.valid)[keep]
    write_reflectance(folder / SCENE_FILE, counts, crs,
                      transform, [names[i] for i in keep], centres[keep], widths[keep],
                      [{"resolution_m": S2_BANDS[i][3]} for i in keep],
                      sensor="Sentinel-2A MSI (simulated)",
                      product_levels="per tile, see tiles.json (L1C: TOA, L2A: surface)")
    _write_mask(folder / LABELS_FILE, scene.labels, crs, transform, unlabelled="0",
                classes=",".join(CLASS_NAMES))
    _write_mask(folder / SPLIT_FILE, scene.split, crs, transform,
                **{f"code_{k}": v for k, v in SPLIT_CODES.items()})
    classes = [{"name": n, "description": d, "color": list(c)} for n, d, c in CLASSES]
    (folder / CLASSES_FILE).write_text(json.dumps(classes, indent=1))
    summary = [{k: tile[k] for k in ("tile", "rows", "cols", "level", "kind", "split")}
               for tile in scene.tiles]
    (folder / TILES_FILE).write_text(json.dumps(summary, indent=1))
    meta = {
        "name": S2_LANDCOVER,
        "description": ("simulated Sentinel-2 land-cover mosaic: tiles of PROSAIL "
                        "vegetation, semi-analytic water, soil, sand and town spectra, each "
                        "tile at L1C (through an analytic atmosphere) or L2A (imperfectly "
                        "corrected) level"),
        "sources": {
            "vegetation": "PROSPECT-D + 4SAIL (PyPI prosail)",
            "soil": "prosail soil_reflectance.txt (dry/wet), varied",
            "water": "Lee et al. 1999/2002 semi-analytic model, PROSPECT water absorption",
            "concrete": "ECOSTRESS runway concrete (python3-spectral test data)",
            "atmosphere": "Tanre et al. 1979 / 6S coupling, analytic terms (atmosphere.py)",
            "sentinel2_bands": "Sentinel-2A MSI centres/bandwidths (ESA)",
        },
        "crs": SCENE_CRS, "pixel_size_m": PIXEL_SIZE_M, "transform": list(transform)[:6],
        "bands": len(keep), "band_names": [names[i] for i in keep],
        "reflectance_scale": REFLECTANCE_SCALE, "nodata": NODATA,
        "note": ("L1C tiles: TOA reflectance x 10000, no offset (processing baseline before "
                 "04.00); L2A tiles: surface reflectance x 10000, no offset; B10 is left out "
                 "(L2A products drop it)."),
        "split_codes": SPLIT_CODES, "classes": list(CLASS_NAMES),
        "tiles": scene.tiles, **scene.meta,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))


def build_s2_landcover(folder: Path, progress: type, **overrides: object) -> None:
    """The simulated Sentinel-2 land-cover mosaic (module docstring) into ``folder``."""
    started = time.perf_counter()
    scene = make_landcover_scene(progress=progress, **overrides)
    write_landcover_scene(scene, Path(folder))
    meta_path = Path(folder) / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["build_seconds"] = round(time.perf_counter() - started, 1)
    meta_path.write_text(json.dumps(meta, indent=1, default=_json_default))


__all__ = ["CLASSES", "CLASS_NAMES", "LandcoverConfig", "LandcoverScene", "build_s2_landcover",
           "make_landcover_scene", "write_landcover_scene", "Atmosphere"]
