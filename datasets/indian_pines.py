"""The real AVIRIS Indian Pines scene with its ground truth: the ``indian-pines`` sample
benchmark of the hyperspectral task, and its spatially disjoint splits.

The data (Baumgardner, Biehl and Landgrebe 2015, "220 Band AVIRIS Hyperspectral Image Data
Set: June 12, 1992 Indian Pine Test Site 3", Purdue University Research Repository,
doi:10.4231/R7RX991C; CC BY 3.0) ships in PyPI's ``tensorly==0.10.0`` wheel as
``tensorly/datasets/data/Indian_pines_corrected.npy`` (145 x 145 x 200 uint16) and
``Indian_pines_gt.npy`` (145 x 145 uint8, labels 0..16). :func:`build_indian_pines`
fetches the wheel with ``pip download`` (:func:`~domainvit.datasets.hsi_scenes.download.
pip_download`) and reads the two members straight out of the zip, each capped in size,
with ``np.load(allow_pickle=False)``: tensorly is never imported and nothing is unpickled.
The arrays are checked against the published facts (shape, 16 classes, the per-class pixel
counts of :data:`CLASSES`, 10249 labelled pixels) before anything is written.

Bands. The cube is the "corrected" scene: the 220 bands of the 92AV3C file (the AVIRIS
channels 1-224 less 1, 33, 97 and 161, by the band file's channel column) minus the
water-absorption bands 104-108, 150-163 and 220, numbered 1-220 in the 92AV3C order
(AVIRIS channels 107-111, 153-160, 162-167 and 224): 200 bands. (They are numbers of the
220-band file, not of the 224 AVIRIS channels: 224 - 20 would leave 204.) Their centres
and FWHM are the 92AV3C band file of Debian's ``python3-spectral``
(``spectral/tests/data/92AV3C.spc``, :func:`~domainvit.datasets.hsi_scenes.spectra.
aviris_bands`), the same file ``hsi-parcels`` is built on. Checked against the cube (the
scene's mean spectrum, radiance = value - 1000): the radiance minima of the kept bands fall
at 764 nm (the oxygen A band, 760 nm), 937 nm and 1129 nm (the water-vapour bands at 940
and 1135 nm), and the bands either side of the removed runs (1353/1412 nm and
1809/1943 nm) are nearly dark (mean radiance 19-88 counts, against thousands in the
visible and near infrared), as the edges of the 1380 and 1880 nm absorptions should be.
The centres keep the file's order, which is the cube's: ascending within each of AVIRIS's
spectrometers and stepping back where they overlap (696.5 -> 686.9 nm and 1282.6 ->
1273.0 nm; the third step, near 1885 nm, lies in a removed run), so they are not sorted
overall.

Values. The cube holds the scene data values of the Purdue distribution unchanged: scaled
at-sensor *radiance*, not reflectance (Purdue's documentation of the scene: radiance =
(value - 1000) / 500; every value here lies in 955..9604). ``scene.tif`` stores them as
they are, in the hyperspectral sample-scene format (:mod:`~domainvit.datasets.hsi_scenes.
conventions`), whose ``reflectance_scale`` tag of 10000 is what the hyperspectral readers
divide by: models see value / 10000 (0.10..0.96). The dataset tag ``quantity`` and
``meta.json`` say what the numbers are.

Grid. The arrays carry no georeferencing. ``scene.tif`` is placed on the *nominal* grid of
the simulated scene (UTM 16N, 20 m pixels: AVIRIS's ground sampling at the 1992 flight
altitude, near the site), so that the raster tools that need a CRS work; the corner is
not surveyed, and the tag ``georeferencing`` says so. Do not overlay it with other maps.

Splits (:func:`indian_pines_split`, seeds 0, 1, 2): the scene is cut into 16 x 16-pixel
blocks (the last row and column of blocks are one pixel wide: 145 = 9 x 16 + 1), and half
of the 100 blocks, drawn by a seeded shuffle, are test blocks: all their labelled pixels
are test pixels. Of the other blocks, every pixel within ``patch_radius`` pixels
(Chebyshev distance) of a test block is dropped (the guard margin), so no training or
validation patch of side ``2 * patch_radius + 1`` contains a test pixel. Per class, 10%
of the class's labelled pixels in the training blocks (at least 3, but no more than the
class has outside the margin) are drawn from the pixels outside the margin as the
training pixels; the rest of those pixels are the validation pixels. A draw of test
blocks is kept only if every class has at least 3 pixels outside the margin (every class
can be learnt: the hyperspectral task refuses a training split without some class) and
test pixels; the shuffle is redrawn (same seed, next draw) until one is. The one
exception is a class whose pixels all lie in a single block, which cannot be on both
sides: it is kept for training and has no test pixels. In Indian Pines that is
Grass-pasture-mowed (28 pixels in one block), so the test sets hold 15 classes and the
average accuracy is over those. The small classes sit in one to four blocks each, so
only about one draw in 300 qualifies at ``patch_radius`` 4 (seeds 0, 1, 2 keep draws
167, 1142 and 179, under a second each), and the condition pins a few blocks down:
Alfalfa has 45 pixels in one block and 1 in the next, so every split trains on those 45
and tests on the single other pixel (its per-class accuracy is 0 or 1).
:func:`~domainvit.datasets.splits.block_split` is not used: it requires every class on
both sides and takes a fixed validation share.
The prepared folder holds the split maps of the three seeds for ``patch_radius`` 4 (9 x 9
patches, the hyperspectral task's default): ``split.tif`` (seed 0), ``split_seed1.tif``,
``split_seed2.tif``. Classical baselines on these splits:
``benchmarks/hsi_indian_pines_baselines.py``.

Derived files are built into the local cache by :func:`domainvit.datasets.registry.
prepare`, never committed.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainvit.datasets.hsi_scenes.conventions import (
    CLASSES_FILE,
    FWHM_TAG,
    LABELS_FILE,
    META_FILE,
    REFLECTANCE_SCALE,
    SCENE_FILE,
    SPLIT_CODES,
    SPLIT_FILE,
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VAL,
    WAVELENGTH_TAG,
)
from domainvit.datasets.hsi_scenes.download import pip_download
from domainvit.datasets.hsi_scenes.parcels import PIXEL_SIZE_M, SCENE_CRS, scene_transform
from domainvit.datasets.hsi_scenes.spectra import aviris_bands
from domainvit.datasets.hsi_scenes.writers import _json_default, _write_mask, write_reflectance
from domainvit.errors import UserError
from domainvit.files import safe_extract

#: the sample dataset's name
INDIAN_PINES = "indian-pines"


#: the wheel that ships the cube and its ground truth
TENSORLY = "tensorly==0.10.0"


CUBE_MEMBER = "tensorly/datasets/data/Indian_pines_corrected.npy"


LABELS_MEMBER = "tensorly/datasets/data/Indian_pines_gt.npy"


#: the most bytes the two members may inflate to together (the cube is 8.4 MB, the
#: labels 21 kB)
MAX_MEMBER_BYTES = 17 * 1024**2


#: rows, columns, bands of the corrected cube
SHAPE = (145, 145, 200)


#: the bands (1-based, of the 220 of 92AV3C) that the corrected cube leaves out
REMOVED_BANDS: tuple[int, ...] = (*range(104, 109), *range(150, 164), 220)


@dataclass(frozen=True)
class IndianPinesClass:
    name: str
    #: labelled pixels in the published ground truth
    pixels: int
    description: str
    color: tuple[int, int, int]


#: label 0 is unlabelled; label i is CLASSES[i - 1] (published names and pixel counts; the
#: descriptions and colours are those of the ``hsi/indian_pines`` config's classes)
CLASSES: tuple[IndianPinesClass, ...] = (
    IndianPinesClass("Alfalfa", 46,
                     "alfalfa: a dense green leafy forage crop",
                     (255, 254, 137)),
    IndianPinesClass("Corn-notill", 1428,
                     "corn planted without tillage: young corn rows over last year's crop "
                     "residue",
                     (3, 28, 241)),
    IndianPinesClass("Corn-mintill", 830,
                     "corn with minimum tillage: young corn rows over partly covered soil",
                     (255, 89, 1)),
    IndianPinesClass("Corn", 237,
                     "corn on clean tilled soil: young corn rows over bare soil",
                     (5, 255, 133)),
    IndianPinesClass("Grass-pasture", 483,
                     "grass pasture: green grazed grassland",
                     (255, 2, 251)),
    IndianPinesClass("Grass-trees", 730,
                     "grass with scattered trees: green grass under and between tree crowns",
                     (89, 1, 255)),
    IndianPinesClass("Grass-pasture-mowed", 28,
                     "mowed grass pasture: short cut green grass",
                     (3, 171, 255)),
    IndianPinesClass("Hay-windrowed", 478,
                     "windrowed hay: cut dry hay lying in rows on stubble",
                     (12, 255, 7)),
    IndianPinesClass("Oats", 20,
                     "oats: a green small-grain cereal crop",
                     (172, 175, 84)),
    IndianPinesClass("Soybean-notill", 972,
                     "soybean planted without tillage: young soybean rows over crop residue",
                     (160, 78, 158)),
    IndianPinesClass("Soybean-mintill", 2455,
                     "soybean with minimum tillage: young soybean rows over partly covered "
                     "soil",
                     (101, 173, 255)),
    IndianPinesClass("Soybean-clean", 593,
                     "soybean on clean tilled soil: young soybean rows over bare soil",
                     (60, 91, 112)),
    IndianPinesClass("Wheat", 205,
                     "wheat: a dense green small-grain cereal crop",
                     (104, 192, 63)),
    IndianPinesClass("Woods", 1265,
                     "woods: closed deciduous forest canopy",
                     (139, 69, 46)),
    IndianPinesClass("Buildings-Grass-Trees-Drives", 386,
                     "buildings with grass, trees and drives: roofs and pavement mixed with "
                     "lawns and tree crowns",
                     (119, 255, 172)),
    IndianPinesClass("Stone-Steel-Towers", 93,
                     "stone and steel towers: bright man-made structures",
                     (254, 255, 3)),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
NUM_CLASSES = len(CLASSES)


#: the split seeds prepared and benchmarked
SPLIT_SEEDS = (0, 1, 2)


#: side of the square blocks the scene is split into (pixels)
SPLIT_BLOCK = 16


#: share of the blocks that are test blocks
TEST_SHARE = 0.5


#: share of each class's labelled training-block pixels drawn for training, and its floor
TRAIN_FRACTION = 0.1


MIN_TRAIN = 3


#: guard margin of the prepared splits: the radius of the hyperspectral task's default
#: 9 x 9 patch
PATCH_RADIUS = 4


#: the most draws of test blocks tried before a split is declared impossible (each takes
#: under a millisecond on Indian Pines; about one in 300 qualifies)
MAX_DRAWS = 20_000


def split_file(seed: int) -> str:
    """The file name of the prepared split map of ``seed``: ``split.tif`` for seed 0 (the
    task's default ``data.split``), ``split_seed<seed>.tif`` otherwise."""
    return SPLIT_FILE if seed == 0 else f"split_seed{seed}.tif"


def kept_bands() -> np.ndarray:
    """0-based indices into the 220 bands of 92AV3C of the corrected cube's 200 bands."""
    return np.setdiff1d(np.arange(220), np.asarray(REMOVED_BANDS) - 1)


def band_centres() -> tuple[np.ndarray, np.ndarray]:
    """Centres and FWHM (nm) of the corrected cube's 200 bands, in the cube's order."""
    centres, fwhm = aviris_bands()
    keep = kept_bands()
    return centres[keep], fwhm[keep]


# --- reading the wheel ---------------------------------------------------------------------


def _load_npy(path: Path, member: str, shown: str) -> np.ndarray:
    """One extracted ``.npy`` member, without pickles."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{shown}: {member} is not a plain .npy array ({err})") from None


def check_arrays(cube: np.ndarray, labels: np.ndarray, shown: str) -> None:
    """Refuse arrays that are not the published Indian Pines cube and ground truth."""
    if cube.shape != SHAPE or cube.dtype.kind not in "ui":
        raise UserError(f"{shown}: the cube is {cube.dtype} {list(cube.shape)}; expected "
                        f"integer {list(SHAPE)} (the corrected Indian Pines scene)")
    if cube.min() < 1 or cube.max() > np.iinfo(np.uint16).max:
        raise UserError(f"{shown}: cube values {cube.min()}..{cube.max()} do not fit the "
                        f"uint16 scene format with 0 as nodata")
    if labels.shape != SHAPE[:2] or labels.dtype.kind not in "ui":
        raise UserError(f"{shown}: the ground truth is {labels.dtype} {list(labels.shape)}; "
                        f"expected an integer {list(SHAPE[:2])} map")
    if labels.max() > NUM_CLASSES:
        raise UserError(f"{shown}: ground-truth labels go up to {labels.max()}; expected "
                        f"0..{NUM_CLASSES}")
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=NUM_CLASSES + 1)[1:]
    expected = [c.pixels for c in CLASSES]
    if counts.tolist() != expected:
        raise UserError(f"{shown}: ground-truth class counts {counts.tolist()} differ from "
                        f"the published {expected}")


def read_wheel(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """The cube ``(145, 145, 200)`` uint16 and the labels ``(145, 145)`` uint8 from the
    tensorly wheel ``wheel``: its two members extracted with the archive limits of
    :func:`domainvit.files.safe_extract` (at most :data:`MAX_MEMBER_BYTES`, counted while
    inflating) and checked (:func:`check_arrays`)."""
    wheel = Path(wheel)
    wanted = (CUBE_MEMBER, LABELS_MEMBER)
    with tempfile.TemporaryDirectory(prefix="indian-pines-") as tmp:
        files = safe_extract(wheel, tmp, max_members=len(wanted),
                             max_bytes=MAX_MEMBER_BYTES, select=wanted.__contains__,
                             expected=f"the {TENSORLY} wheel")
        found = {member: path for path, member in files.items()}
        for member in wanted:
            if member not in found:
                raise UserError(f"{wheel.name} has no {member}: it is not the {TENSORLY} "
                                f"wheel that ships Indian Pines")
        cube, labels = (_load_npy(found[member], member, wheel.name) for member in wanted)
    check_arrays(cube, labels, wheel.name)
    return cube.astype(np.uint16, copy=False), labels.astype(np.uint8, copy=False)


# --- the split -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IndianPinesSplit:
    """Boolean ``(H, W)`` masks of the training, validation and test pixels of one split
    (disjoint, labelled pixels only) and ``info``: the blocks and the per-class counts."""

    seed: int
    patch_radius: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    info: dict

    def split_map(self) -> np.ndarray:
        """The split as a map of :data:`~domainvit.datasets.hsi_scenes.conventions.
        SPLIT_CODES` (0 none, 1 train, 2 val, 3 test), uint8."""
        codes = np.zeros(self.train.shape, dtype=np.uint8)
        codes[self.train] = SPLIT_TRAIN
        codes[self.val] = SPLIT_VAL
        codes[self.test] = SPLIT_TEST
        return codes


def indian_pines_split(labels: np.ndarray, seed: int, patch_radius: int = PATCH_RADIUS,
                       max_draws: int = MAX_DRAWS) -> IndianPinesSplit:
    """The spatially disjoint split of ``labels`` (0 unlabelled, 1..K) for ``seed`` (the
    rules: the module's docstring).

    :data:`SPLIT_BLOCK`-pixel blocks, :data:`TEST_SHARE` of them test blocks, drawn until
    every class has at least ``min(MIN_TRAIN, its pixels)`` pixels outside the guard
    margin of ``patch_radius`` (Chebyshev) around the test blocks, and test pixels unless
    all its pixels lie in one block; per class :data:`TRAIN_FRACTION` of its labelled
    training-block pixels (at least :data:`MIN_TRAIN`, fewer only if fewer remain) are
    training pixels, the other pixels outside the margin validation pixels.
    Deterministic for a seed; seeds differ in the blocks and in the pixels drawn.

    Raises:
        ValueError: ``patch_radius`` is negative, ``labels`` has no labelled pixel, or no
            draw of ``max_draws`` qualifies.
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2D map, got shape {list(labels.shape)}")
    if patch_radius < 0:
        raise ValueError(f"patch_radius must be >= 0, got {patch_radius}")
    labelled = labels > 0
    classes = np.unique(labels[labelled])
    if len(classes) == 0:
        raise ValueError("the label map has no labelled pixels")
    h, w = labels.shape
    per_row = -(-w // SPLIT_BLOCK)
    n_blocks = -(-h // SPLIT_BLOCK) * per_row
    block_id = (np.arange(h)[:, None] // SPLIT_BLOCK) * per_row \
        + np.arange(w)[None, :] // SPLIT_BLOCK
    total = np.bincount(labels[labelled], minlength=int(classes.max()) + 1)
    need_train = np.minimum(MIN_TRAIN, total[classes])
    need_test = np.array([len(np.unique(block_id[labels == c])) > 1 for c in classes])
    guard = np.ones((2 * patch_radius + 1,) * 2, dtype=bool)
    n_test = int(round(TEST_SHARE * n_blocks))
    rng = np.random.default_rng(seed)
    draw = 0
    while True:
        draw += 1
        if draw > max_draws:
            raise ValueError(f"no draw of {max_draws} puts at least {MIN_TRAIN} pixels of "
                             f"every class outside the {patch_radius}-pixel guard margin "
                             f"and test pixels of every class that spans blocks")
        test_blocks = np.zeros(n_blocks, dtype=bool)
        test_blocks[rng.permutation(n_blocks)[:n_test]] = True
        in_test = test_blocks[block_id]
        near_test = ndimage.binary_dilation(in_test, structure=guard) if patch_radius \
            else in_test
        pool = ~near_test & labelled
        in_pool = np.bincount(labels[pool], minlength=len(total))[classes]
        tested = np.bincount(labels[in_test & labelled], minlength=len(total))[classes]
        if np.all(in_pool >= need_train) and np.all(tested[need_test] > 0):
            break
    train = np.zeros(labels.shape, dtype=bool)
    per_class = {}
    for c in classes:
        candidates = np.flatnonzero((pool & (labels == c)).ravel())
        in_train_blocks = int(np.count_nonzero(~in_test & (labels == c)))
        n_train = min(max(MIN_TRAIN, int(round(TRAIN_FRACTION * in_train_blocks))),
                      len(candidates))
        train.ravel()[rng.choice(candidates, size=n_train, replace=False)] = True
        per_class[int(c)] = {"train_blocks": in_train_blocks, "train": n_train,
                             "val": len(candidates) - n_train,
                             "margin": in_train_blocks - len(candidates),
                             "test": int(np.count_nonzero(in_test & (labels == c)))}
    info = {"block": SPLIT_BLOCK, "margin": patch_radius, "blocks_per_row": per_row,
            "draw": draw, "test_blocks": np.flatnonzero(test_blocks).tolist(),
            "classes_without_test": [int(c) for c, n in zip(classes, tested, strict=True)
                                     if n == 0],
            "per_class": per_class}
    return IndianPinesSplit(seed=seed, patch_radius=patch_radius, train=train,
                            val=pool & ~train, test=in_test & labelled, info=info)


# --- building and reading the prepared folder ----------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_indian_pines(cube: np.ndarray, labels: np.ndarray, folder: Path) -> dict:
    """Write the scene, labels, three split maps and classes.json into ``folder``; returns
    what meta.json records about them."""
    from rasterio.crs import CRS

    crs, transform = CRS.from_string(SCENE_CRS), scene_transform()
    centres, fwhm = band_centres()
    numbers = kept_bands() + 1
    write_reflectance(
        folder / SCENE_FILE, np.ascontiguousarray(cube.transpose(2, 0, 1)), crs, transform,
        [f"B{n:03d}" for n in numbers], centres, fwhm,
        [{"band_92av3c": int(n)} for n in numbers], sensor="AVIRIS",
        quantity="scaled at-sensor radiance, not reflectance: radiance = (value - 1000) / 500 "
                 "(Purdue); readers divide by reflectance_scale",
        georeferencing=f"nominal: {PIXEL_SIZE_M:g} m pixels on {SCENE_CRS} near the site; the "
                       f"corner is not surveyed",
        source=f"AVIRIS Indian Pine Test Site 3, 12 June 1992 (Purdue, doi:10.4231/R7RX991C, "
               f"CC BY 3.0), from PyPI {TENSORLY}")
    _write_mask(folder / LABELS_FILE, labels, crs, transform, unlabelled="0",
                classes=",".join(CLASS_NAMES))
    splits = {}
    for seed in SPLIT_SEEDS:
        split = indian_pines_split(labels, seed)
        _write_mask(folder / split_file(seed), split.split_map(), crs, transform, seed=seed,
                    block=SPLIT_BLOCK, patch_radius=PATCH_RADIUS,
                    **{f"code_{k}": v for k, v in SPLIT_CODES.items()})
        splits[split_file(seed)] = {"seed": seed, **split.info,
                                    "train": int(split.train.sum()),
                                    "val": int(split.val.sum()), "test": int(split.test.sum())}
    classes = [{"name": c.name, "description": c.description, "color": list(c.color)}
               for c in CLASSES]
    (folder / CLASSES_FILE).write_text(json.dumps(classes, indent=1))
    return {"bands": {"count": len(centres), "band_92av3c": numbers.tolist(),
                      "removed_92av3c": list(REMOVED_BANDS),
                      "wavelength_nm": centres.round(3).tolist(),
                      "fwhm_nm": fwhm.round(3).tolist()},
            "splits": {"block": SPLIT_BLOCK, "test_share": TEST_SHARE,
                       "train_fraction": TRAIN_FRACTION, "min_train": MIN_TRAIN,
                       "patch_radius": PATCH_RADIUS, "files": splits}}


def build_indian_pines(folder: Path, progress: type) -> None:
    """The real Indian Pines benchmark into ``folder``: fetch the tensorly wheel, read and
    check the cube and ground truth, write the scene files and meta.json."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tensorly-") as tmp:
        wheel = pip_download(TENSORLY, Path(tmp), sdist=False)
        cube, labels = read_wheel(wheel)
        digest = _sha256(wheel.read_bytes())
    written = write_indian_pines(cube, labels, Path(folder))
    meta = {
        "name": INDIAN_PINES,
        "description": "AVIRIS Indian Pines (corrected, 200 bands) with its 16-class ground "
                       "truth; spatially disjoint block splits",
        "source": {"pypi": TENSORLY, "wheel": wheel.name, "sha256": digest,
                   "members": {CUBE_MEMBER: _sha256(cube.tobytes()),
                               LABELS_MEMBER: _sha256(labels.tobytes())},
                   "citation": "Baumgardner, M. F., Biehl, L. L., Landgrebe, D. A. (2015). "
                               "220 Band AVIRIS Hyperspectral Image Data Set: June 12, 1992 "
                               "Indian Pine Test Site 3. Purdue University Research "
                               "Repository. doi:10.4231/R7RX991C",
                   "license": "CC BY 3.0 (data); tensorly is BSD-3",
                   "band_file": "92AV3C.spc of Debian's python3-spectral"},
        "quantity": "scaled at-sensor radiance (Purdue: radiance = (value - 1000) / 500), "
                    "stored unchanged; not reflectance",
        "reflectance_scale": REFLECTANCE_SCALE,
        "georeferencing": "nominal (the arrays carry none): the simulated scene's grid",
        "crs": SCENE_CRS, "pixel_size_m": PIXEL_SIZE_M, "shape": list(SHAPE),
        "classes": list(CLASS_NAMES), "class_pixels": [c.pixels for c in CLASSES],
        "labelled_pixels": int(sum(c.pixels for c in CLASSES)),
        "split_codes": SPLIT_CODES, "value_range": [int(cube.min()), int(cube.max())],
        **written,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))


@dataclass(frozen=True)
class IndianPinesScene:
    """A prepared scene: ``cube (H, W, B)`` uint16 scene values, ``labels (H, W)``,
    band centres and FWHM (nm)."""

    cube: np.ndarray
    labels: np.ndarray
    wavelengths: np.ndarray
    fwhm: np.ndarray


def read_indian_pines(folder: Path) -> IndianPinesScene:
    """Read the scene and labels of a prepared ``indian-pines`` folder."""
    import rasterio

    folder = Path(folder)
    with rasterio.open(folder / SCENE_FILE) as src:
        cube = src.read().transpose(1, 2, 0)
        tags = [src.tags(band) for band in range(1, src.count + 1)]
    with rasterio.open(folder / LABELS_FILE) as src:
        labels = src.read(1)
    wavelengths = np.array([float(t[WAVELENGTH_TAG]) for t in tags])
    fwhm = np.array([float(t[FWHM_TAG]) for t in tags])
    return IndianPinesScene(cube, labels, wavelengths, fwhm)


def read_split(folder: Path, seed: int) -> IndianPinesSplit:
    """The prepared split map of ``seed`` in ``folder`` as masks."""
    import rasterio

    path = Path(folder) / split_file(seed)
    if not path.is_file():
        raise UserError(f"no split map for seed {seed} in {folder} (prepared seeds: "
                        f"{', '.join(map(str, SPLIT_SEEDS))})")
    with rasterio.open(path) as src:
        codes = src.read(1)
        radius = int(src.tags().get("patch_radius", PATCH_RADIUS))
    return IndianPinesSplit(seed=seed, patch_radius=radius, train=codes == SPLIT_TRAIN,
                            val=codes == SPLIT_VAL, test=codes == SPLIT_TEST, info={})
