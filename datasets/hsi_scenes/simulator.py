"""The simulated AVIRIS parcel scene: parcels, land-cover classes, mixing, variability,
sensor blur and noise, and the spatially disjoint split.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from domainvit.datasets.hsi_scenes.conventions import HSI_PARCELS
from domainvit.datasets.hsi_scenes.sensors import (
    _S2_SNR,
    atmospheric_noise_gain,
    resample_spectrum,
    sentinel2_bands,
)
from domainvit.datasets.hsi_scenes.spectra import aviris_bands, band_endmembers, spectral_derivative
from domainvit.datasets.splits import block_split

SEED = 20261127


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
