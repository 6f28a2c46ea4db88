"""Hyperspectral pixel data: a reflectance cube, a label map, a train/val/test split.

A scene is a cube (GeoTIFF/COG or any GDAL raster, ENVI, ``.npy``/``.mat``; read by
:mod:`domainvit.datasets.raster`), a label map of the same size (0 = unlabelled,
classes 1..K) and a split map (0 none, 1 train, 2 val, 3 test). By default the
``hsi-parcels`` sample benchmark (:mod:`domainvit.datasets.hsi_scenes`) is used, whose
split holds out spatially disjoint blocks and trains on 2% of the labelled pixels.
Without a split map (e.g. Salinas or Indian Pines ``.mat`` files), one is made the same
way (:func:`domainvit.datasets.splits.block_split`): random pixel splits put
training and test pixels side by side, so their patches overlap and accuracy is
inflated.

Each sample is the ``patch x patch`` window of reflectance around a labelled pixel
(mirrored at the scene's edges, zero where the input is nodata) and the pixel's class.
For dense models (``dense_block = b > 0``, :class:`BlockWindows`) a sample is a window of
side ``patch - 1 + b`` and a ``b x b`` target map of the pixels of its central block.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch.utils.data import Dataset

from domainvit.datasets.hsi_scenes.conventions import HSI_PARCELS
from domainvit.datasets.raster.crop import crop_raster
from domainvit.datasets.raster.opening import open_raster
from domainvit.datasets.registry import prepare
from domainvit.datasets.splits import block_split
from domainvit.errors import UserError
from domainvit.schema import StrictModel

SPLITS = {"train": 1, "val": 2, "test": 3}


class HSIClass(StrictModel):
    name: str = Field(min_length=1)
    #: a sentence for the textual prompt (e.g. "maize at an early growth stage")
    description: str = ""
    #: map colour (RGB); default: a colour from a fixed palette
    color: tuple[int, int, int] | None = None


class HSIData(StrictModel):
    #: a sample dataset (``domainvit data list``), used when ``root`` is unset
    dataset: str = HSI_PARCELS
    #: a folder with your own scene (the file names below are relative to it)
    root: Path | None = None
    image: str = "scene.tif"
    labels: str = "labels.tif"
    #: split map (1 train, 2 val, 3 test); null: made by spatially disjoint blocks
    split: str | None = "split.tif"
    #: the classes in label order (1..K): names and descriptions feed the text prompts
    classes: list[HSIClass] = Field(min_length=2)
    #: side of the square window around each pixel (odd)
    patch_size: int = Field(9, ge=3, le=63)
    #: band centres in nm for .npy/.mat cubes (GDAL rasters carry their own)
    wavelengths: list[float] | None = None
    #: axis order of .npy/.mat cubes
    layout: Literal["hwb", "bhw"] = "hwb"
    #: the array in a .mat file holding the cube / the labels (default: the only 3D / 2D one)
    mat_key: str | None = None
    # split made when ``split`` is null or ``train_fraction`` is set
    train_fraction: float | None = Field(None, gt=0, le=0.9)
    val_fraction: float = Field(0.01, ge=0, lt=0.5)
    split_block: int = Field(32, ge=4)
    split_margin: int | None = Field(None, ge=0)
    split_seed: int = 0
    #: training samples per epoch (None: every training pixel once)
    samples_per_epoch: int | None = Field(None, gt=0)
    augment: bool = True
    #: training augmentation: sd of Gaussian noise added to the reflectance of every pixel
    #: (makes the model lean on spatial context, as real sensor noise rewards)
    noise_std: float = Field(0.0, ge=0)
    #: training augmentation: mixup of patches and labels with Beta(mixup, mixup) weights
    #: (0: off)
    mixup: float = Field(0.0, ge=0)
    #: a dense model: the side of the pixel block every window classifies in one pass
    #: (0: one centre pixel per patch); the model is built with it, as with patch_size
    dense_block: int = Field(0, ge=0, le=64)
    # prediction
    tile_size: int = Field(256, ge=16)
    predict_batch_size: int = Field(512, gt=0)
    write_probabilities: bool = False

    @field_validator("patch_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd (the pixel sits at the centre), got {value}")
        return value

    @model_validator(mode="after")
    def _dense_fits(self) -> HSIData:
        if self.dense_block and self.mixup:
            raise ValueError(f"mixup={self.mixup} mixes the labels of single pixels; a dense "
                             f"model (dense_block={self.dense_block}) trains on target maps "
                             f"with unlabelled pixels: set mixup to 0")
        if self.dense_block > self.tile_size:
            raise ValueError(f"dense_block={self.dense_block} does not fit in a prediction "
                             f"tile (tile_size={self.tile_size}): raise tile_size")
        return self

    @model_validator(mode="after")
    def _names_unique(self) -> HSIData:
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"classes: names must be unique, got {names}")
        return self

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]


#: colours for classes without one (tab20-like, readable on maps)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
           (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
           (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229)]


def class_colors(data: HSIData) -> list[tuple[int, int, int]]:
    return [c.color or PALETTE[i % len(PALETTE)] for i, c in enumerate(data.classes)]


def scene_folder(data: HSIData) -> Path:
    return Path(data.root).expanduser() if data.root is not None else prepare(data.dataset)


@dataclass(frozen=True)
class Scene:
    """A loaded scene: ``cube [bands, H, W]`` float32 reflectance (0 at nodata), ``valid
    [H, W]``, ``labels [H, W]`` (0..K), ``split [H, W]`` (0..3), band centres in nm."""

    cube: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    wavelengths: np.ndarray | None
    path: Path


def read_label_map(path: Path, what: str) -> np.ndarray:
    """A 2D integer map from a GeoTIFF (band 1), ``.npy`` or ``.mat`` file."""
    if not path.is_file():
        raise UserError(f"{what} map not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif suffix == ".mat":
        from scipy.io import loadmat

        try:
            arrays = {k: v for k, v in loadmat(path).items()
                      if not k.startswith("__") and getattr(v, "ndim", 0) == 2}
        except (ValueError, NotImplementedError, OSError) as exc:
            raise UserError(f"cannot read {what} map {path}: {exc}") from None
        if len(arrays) != 1:
            raise UserError(f"{path} holds {len(arrays)} 2D arrays ({', '.join(arrays)}); "
                            f"expected exactly one {what} map")
        array = next(iter(arrays.values()))
    else:
        import rasterio
        from rasterio.errors import RasterioError

        try:
            with rasterio.open(path) as src:
                array = src.read(1)
        except RasterioError as exc:
            raise UserError(f"cannot read {what} map {path}: {exc}") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise UserError(f"{what} map {path} must be a 2D integer array, got "
                        f"{array.dtype} {list(array.shape)}")
    return np.asarray(array, dtype=np.int64)


@functools.lru_cache(maxsize=2)
def _load_scene(folder: Path, data_json: str) -> Scene:
    data = HSIData.model_validate_json(data_json)
    image = folder / data.image
    with open_raster(image, wavelengths=data.wavelengths, layout=data.layout.upper(),
                     key=data.mat_key) as src:
        cube, valid = src.read()
        wavelengths = src.info.wavelengths
    labels = read_label_map(folder / data.labels, "label")
    if labels.shape != cube.shape[1:]:
        raise UserError(f"label map {folder / data.labels} is {list(labels.shape)} but the "
                        f"image is {list(cube.shape[1:])}")
    k = len(data.classes)
    if labels.min() < 0 or labels.max() > k:
        raise UserError(f"label map {folder / data.labels} has labels up to {labels.max()} "
                        f"but data.classes lists {k} classes (labels 1..{k}, 0 unlabelled)")
    labels[~valid] = 0
    if data.split is not None and data.train_fraction is None:
        split = read_label_map(folder / data.split, "split")
        if split.shape != labels.shape:
            raise UserError(f"split map {folder / data.split} is {list(split.shape)} but the "
                            f"image is {list(labels.shape)}")
        split = np.where(labels > 0, split, 0)
    else:
        margin = data.patch_size // 2 if data.split_margin is None else data.split_margin
        try:
            split, _ = block_split(labels, block=data.split_block, margin=margin,
                                   train_fraction=data.train_fraction or 0.02,
                                   val_fraction=data.val_fraction, seed=data.split_seed,
                                   valid=valid)
        except ValueError as exc:
            raise UserError(f"{image}: {exc}") from None
    cube = np.where(valid[None], cube, 0.0).astype(np.float32, copy=False)
    return Scene(cube, valid, labels, split.astype(np.uint8), wavelengths, image)


def load_scene(data: HSIData) -> Scene:
    """The scene of ``data`` (cached: the train, val and test sets share one copy)."""
    keep = data.model_dump_json(include={"image", "labels", "split", "classes", "wavelengths",
                                         "layout", "mat_key", "train_fraction",
                                         "val_fraction", "split_block", "split_margin",
                                         "split_seed", "patch_size"})
    return _load_scene(scene_folder(data).resolve(), keep)


def split_pixels(scene: Scene, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of the labelled pixels of ``split``."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    return np.nonzero((scene.split == SPLITS[split]) & (scene.labels > 0))


def training_index(index: int, count: int, length: int) -> int:
    """The training pixel of sample ``index`` of an epoch of ``length`` samples over
    ``count`` training pixels: every pixel in turn when an epoch covers them all
    (``length >= count``), else a random one, so that an epoch shorter than the training
    set still draws from all of it (a sampler over ``range(length)`` alone would only
    ever see the first ``length`` pixels, the top rows of the scene)."""
    if length >= count:
        return index % count
    return int(torch.randint(count, ()))


class PixelPatches(Dataset):
    """``{"input": [bands, P, P] reflectance, "target": class index}`` per labelled pixel
    of a split; training patches are randomly flipped/rotated, brightness-scaled and
    (``noise_std``) noised."""

    def __init__(self, data: HSIData, split: str) -> None:
        scene = load_scene(data)
        self.rows, self.cols = split_pixels(scene, split)
        if len(self.rows) == 0:
            raise UserError(f"the {split} split of {scene.path} has no labelled pixels")
        self.targets = scene.labels[self.rows, self.cols] - 1
        missing = sorted(set(range(len(data.classes))) - set(self.targets.tolist()))
        if split == "train" and missing:
            names = ", ".join(data.classes[i].name for i in missing)
            raise UserError(f"the training split has no pixels of class(es) {names}")
        r = data.patch_size // 2
        self.radius = r
        self.cube = F.pad(torch.from_numpy(scene.cube)[None], (r, r, r, r), mode="reflect")[0] \
            if min(scene.cube.shape[1:]) > r else None
        if self.cube is None:
            raise UserError(f"the scene {list(scene.cube.shape[1:])} is smaller than the "
                            f"patch radius {r}")
        self.train = split == "train"
        self.augment = data.augment and self.train
        self.noise_std = data.noise_std
        self.length = (data.samples_per_epoch or len(self.rows)) if self.train else len(self.rows)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = training_index(index, len(self.rows), self.length) if self.train else index
        row, col, p = int(self.rows[index]), int(self.cols[index]), 2 * self.radius + 1
        patch = self.cube[:, row:row + p, col:col + p]
        if self.augment:
            patch = torch.rot90(patch, int(torch.randint(4, ())), dims=(1, 2))
            if torch.rand(()) < 0.5:
                patch = patch.flip(2)
            patch = patch * (0.9 + 0.2 * torch.rand(()))
            if self.noise_std:
                patch = patch + self.noise_std * torch.randn_like(patch)
        return {"input": patch.contiguous(),
                "target": torch.tensor(int(self.targets[index]), dtype=torch.long)}


def pixel_dataset(data: HSIData, split: str) -> Dataset:
    """The dataset of ``split``: :class:`PixelPatches`, or :class:`BlockWindows` when
    ``data.dense_block`` is set (dense models)."""
    return BlockWindows(data, split) if data.dense_block else PixelPatches(data, split)


def pad_block_grid(cube: np.ndarray, margin: int, block: int) -> np.ndarray:
    """``cube [..., h, w]`` padded for dense classification on a ``block`` grid anchored at
    its top-left pixel: mirrored by ``margin`` on every side, then mirrored at the bottom
    and right until ``h`` and ``w`` are multiples of ``block`` (both with ``np.pad``'s
    reflect, which also covers arrays smaller than the padding). Prediction pads every
    tile the same way (:func:`domainvit.tasks.hsi.predict.classify_tile`), so evaluation
    windows equal prediction windows."""
    widths = [(0, 0)] * (cube.ndim - 2)
    padded = np.pad(cube, widths + [(margin, margin)] * 2, mode="reflect") if margin else cube
    extra_h, extra_w = (-cube.shape[-2]) % block, (-cube.shape[-1]) % block
    if extra_h or extra_w:
        padded = np.pad(padded, widths + [(0, extra_h), (0, extra_w)], mode="reflect")
    return padded


class BlockWindows(Dataset):
    """The dataset of a dense model (``data.dense_block = b``): ``{"input": [bands, W, W]
    reflectance, "target": [b, b] class indices, -1 where not scored}`` with ``W = patch -
    1 + b`` (the block and half a patch of context on each side).

    Training: one window per sample, around a labelled training pixel placed at a random
    position of the central block; the target map holds every training-split pixel of the
    block (other splits' pixels and unlabelled ones are -1), so a window teaches all the
    training pixels it covers. Windows and maps are rotated/flipped together, then the
    reflectance is brightness-scaled and (``noise_std``) noised, as :class:`PixelPatches`.

    Evaluation (val/test): the scene is cut into ``b x b`` blocks on the grid anchored at
    its top-left pixel (padded as :func:`pad_block_grid`); one window per block holding a
    pixel of the split, whose map holds that split's pixels. Every pixel of the split is
    scored once, in the position prediction classifies it in (tiles are multiples of
    ``b``), so the scores are those of the predicted map.
    """

    def __init__(self, data: HSIData, split: str) -> None:
        scene = load_scene(data)
        rows, cols = split_pixels(scene, split)
        if len(rows) == 0:
            raise UserError(f"the {split} split of {scene.path} has no labelled pixels")
        labels = np.where((scene.split == SPLITS[split]) & (scene.labels > 0),
                          scene.labels.astype(np.int64) - 1, -1)
        present = set(np.unique(labels[rows, cols]).tolist())
        missing = sorted(set(range(len(data.classes))) - present)
        if split == "train" and missing:
            names = ", ".join(data.classes[i].name for i in missing)
            raise UserError(f"the training split has no pixels of class(es) {names}")
        b, m = data.dense_block, data.patch_size // 2
        self.block, self.margin, self.window = b, m, data.patch_size - 1 + b
        self.train = split == "train"
        self.augment = data.augment and self.train
        self.noise_std = data.noise_std
        if self.train:
            # room for a block starting up to b - 1 pixels above/left of any pixel
            pad = m + b - 1
            self.cube = torch.from_numpy(np.pad(scene.cube, [(0, 0), (pad, pad), (pad, pad)],
                                                mode="reflect"))
            self.labels = torch.from_numpy(np.pad(labels, b - 1, constant_values=-1))
            self.rows, self.cols = rows, cols
            self.length = data.samples_per_epoch or len(rows)
        else:
            self.cube = torch.from_numpy(pad_block_grid(scene.cube, m, b))
            grid_h, grid_w = (self.cube.shape[1] - 2 * m), (self.cube.shape[2] - 2 * m)
            self.labels = torch.from_numpy(np.pad(
                labels, [(0, grid_h - labels.shape[0]), (0, grid_w - labels.shape[1])],
                constant_values=-1))
            scored = (self.labels >= 0).reshape(grid_h // b, b, grid_w // b, b).any(3).any(1)
            self.rows, self.cols = (v.numpy() * b for v in torch.nonzero(scored, as_tuple=True))
            self.length = len(self.rows)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = training_index(index, len(self.rows), self.length) if self.train else index
        b, w = self.block, self.window
        if self.train:
            # block top-left (padded coordinates) so that the pixel sits at a random offset
            top = int(self.rows[index]) + b - 1 - int(torch.randint(b, ()))
            left = int(self.cols[index]) + b - 1 - int(torch.randint(b, ()))
        else:
            top, left = int(self.rows[index]), int(self.cols[index])
        window = self.cube[:, top:top + w, left:left + w]
        target = self.labels[top:top + b, left:left + b]
        if self.augment:
            # the block is the window's centre: rotating/flipping both keeps them aligned
            k = int(torch.randint(4, ()))
            window, target = torch.rot90(window, k, dims=(1, 2)), torch.rot90(target, k)
            if torch.rand(()) < 0.5:
                window, target = window.flip(2), target.flip(1)
            window = window * (0.9 + 0.2 * torch.rand(()))
            if self.noise_std:
                window = window + self.noise_std * torch.randn_like(window)
        return {"input": window.contiguous(), "target": target.contiguous()}


def training_spectra(data: HSIData) -> np.ndarray:
    """Spectra ``[N, bands]`` of the training pixels (what the PCA is fitted on)."""
    scene = load_scene(data)
    rows, cols = split_pixels(scene, "train")
    return scene.cube[:, rows, cols].T


def sample_inputs(data: HSIData, folder: Path, size: int = 32) -> list[Path]:
    """The top-left ``size`` x ``size`` window of the scene's image, with its georeferencing
    and band tags, as a GeoTIFF."""
    import rasterio

    source = scene_folder(data) / data.image
    with rasterio.open(source) as src:
        height, width = src.height, src.width
    target = folder / f"window_{Path(data.image).stem}.tif"
    return [crop_raster(source, target, (0, min(size, height), 0, min(size, width)))]


def training_record(data: HSIData) -> dict:
    """The training distribution of ``data``'s image for the checkpoint
    (:func:`domainvit.tasks.hsi.distribution.training_distribution`): its valid pixels,
    sensor, grid and band centres."""
    from domainvit.tasks.hsi.distribution import training_distribution

    scene = load_scene(data)
    with open_raster(scene.path, wavelengths=data.wavelengths, layout=data.layout.upper(),
                     key=data.mat_key, check_valid=False) as src:
        info = src.info
    return training_distribution(scene.cube[:, scene.valid].T, info, scene.wavelengths)
