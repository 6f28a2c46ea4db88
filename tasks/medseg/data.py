"""Segmentation data: labelled NIfTI volumes through MONAI transforms, 2D or 3D.

A dataset is a folder with ``train/``, ``val/`` and ``test/`` sub-folders of
``<case><image_suffix>`` scans beside ``<case><label_suffix>`` label maps, plus an
optional ``classes.json`` (``{"names": [...]}``, background first). By default it is
the ``brain-lobes`` sample dataset (:mod:`domainvit.datasets.brain`): Colin27 for
training, Colin27 in random poses for validation, the MNI152 template in random poses
for testing.

Every volume is read once, reoriented to RAS, resampled to the configured spacing and
z-normalised over the brain (MONAI); training draws random poses, contrast, bias field,
blur and noise from it (``samples_per_epoch`` per epoch). 2D models train on axial
slices of the posed volumes; every model is evaluated on whole volumes, so 2D and 3D
numbers compare directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch.utils.data import Dataset

from domainvit.datasets.brain import BRAIN_LOBES
from domainvit.datasets.registry import prepare
from domainvit.errors import UserError
from domainvit.schema import StrictModel

SPLITS = ("train", "val", "test")


class AugmentConfig(StrictModel):
    #: largest rotation about each axis (degrees)
    rotate_degrees: float = Field(15.0, ge=0, le=180)
    #: largest relative change of size
    scale: float = Field(0.1, ge=0, lt=1)
    #: largest shift along each axis (mm)
    translate_mm: float = Field(20.0, ge=0)
    #: probability of each intensity change (contrast, bias field, blur, noise)
    intensity_prob: float = Field(0.5, ge=0, le=1)


class SegData(StrictModel):
    #: a sample dataset (``domainvit data list``) used when ``root`` is unset
    dataset: str = BRAIN_LOBES
    #: a folder of your own with train/ val/ test/ sub-folders
    root: Path | None = None
    image_suffix: str = "_t1.nii.gz"
    label_suffix: str = "_lobes.nii.gz"
    #: classes including background; read from ``classes.json`` when unset
    num_classes: int | None = Field(None, ge=2)
    #: class names, background first (default: from ``classes.json``, else numbered).
    #: Checkpoints record them, so predicting with one never reads the data.
    class_names: list[str] | None = Field(None, min_length=2)
    #: the DICOM Modality code of the training scans (``MR``, ``CT``, ...): a scan of
    #: another modality is refused at prediction (:mod:`domainvit.tasks.medseg.distribution`)
    modality: str = Field("MR", pattern=r"^[A-Z]{2,16}$")
    #: the contrast or sequence of the training scans, recorded for people (not compared)
    contrast: str | None = "T1-weighted, brain-extracted"
    #: 3 for volumetric models, 2 for slice-wise models
    spatial_dims: Literal[2, 3] = 3
    #: voxel size the model works at (mm, RAS order)
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0)
    #: training crop and sliding-window size (voxels; 2 or 3 values)
    roi_size: list[int] = Field(default_factory=lambda: [64, 80, 64])
    #: random training samples drawn per epoch
    samples_per_epoch: int = Field(64, gt=0)
    augment: AugmentConfig = AugmentConfig()
    #: overlap of sliding windows at evaluation and prediction
    sw_overlap: float = Field(0.25, ge=0, lt=1)
    sw_batch_size: int = Field(4, gt=0)
    #: keep only the largest connected region of each class in evaluated and predicted
    #: label maps
    largest_component: bool = True

    @model_validator(mode="after")
    def _roi_matches_dims(self) -> SegData:
        if len(self.roi_size) != self.spatial_dims:
            raise ValueError(f"roi_size has {len(self.roi_size)} values; spatial_dims is "
                             f"{self.spatial_dims}")
        if any(s < 8 for s in self.roi_size):
            raise ValueError(f"roi_size {self.roi_size} is too small (at least 8 per axis)")
        return self


def dataset_root(cfg: SegData) -> Path:
    if cfg.root is None:
        return prepare(cfg.dataset)
    root = cfg.root.expanduser()
    if not root.is_dir():
        raise UserError(f"data.root {root} is not a folder")
    return root


def class_names(cfg: SegData) -> list[str]:
    """The class names (background first): ``data.class_names``, else from
    ``classes.json``, else numbered."""
    if cfg.class_names is not None:
        if cfg.num_classes is not None and cfg.num_classes != len(cfg.class_names):
            raise UserError(f"data.num_classes is {cfg.num_classes} but data.class_names "
                            f"names {len(cfg.class_names)} classes")
        return list(cfg.class_names)
    if cfg.num_classes is not None and cfg.root is not None:
        listing = cfg.root.expanduser() / "classes.json"
        if not listing.is_file():
            return ["background"] + [f"class_{i}" for i in range(1, cfg.num_classes)]
    root = dataset_root(cfg)
    listing = root / "classes.json"
    if listing.is_file():
        names = json.loads(listing.read_text())["names"]
        if cfg.num_classes is not None and cfg.num_classes != len(names):
            raise UserError(f"data.num_classes is {cfg.num_classes} but {listing} names "
                            f"{len(names)} classes")
        return list(names)
    if cfg.num_classes is None:
        raise UserError(f"{root} has no classes.json: set data.num_classes")
    return ["background"] + [f"class_{i}" for i in range(1, cfg.num_classes)]


def case_files(cfg: SegData, split: str) -> list[dict[str, str]]:
    if split not in SPLITS:
        raise UserError(f"segmentation data has no split {split!r} (splits: {', '.join(SPLITS)})")
    folder = dataset_root(cfg) / split
    images = sorted(folder.glob(f"*{cfg.image_suffix}"))
    if not images:
        raise UserError(f"no scans matching *{cfg.image_suffix} in {folder}")
    cases = []
    for image in images:
        label = image.with_name(image.name[: -len(cfg.image_suffix)] + cfg.label_suffix)
        if not label.is_file():
            raise UserError(f"{image} has no label map {label.name}")
        cases.append({"image": str(image), "label": str(label)})
    return cases


def preprocessing(spacing: tuple[float, float, float], keys: tuple[str, ...] = ("image", "label")):
    """Load, RAS, resample to ``spacing``, z-normalise the brain (MONAI dict transforms)."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        LoadImaged,
        NormalizeIntensityd,
        Orientationd,
        Spacingd,
    )

    modes = tuple("nearest" if key == "label" else "bilinear" for key in keys)
    return Compose([
        LoadImaged(keys=keys, image_only=True),
        EnsureChannelFirstd(keys=keys),
        Orientationd(keys=keys, axcodes="RAS"),
        Spacingd(keys=keys, pixdim=spacing, mode=modes),
        NormalizeIntensityd(keys="image", nonzero=True),
    ])


def _load_cases(cfg: SegData, split: str) -> list[dict[str, torch.Tensor]]:
    from tqdm.auto import tqdm

    transform = preprocessing(cfg.spacing)
    loaded = []
    for case in tqdm(case_files(cfg, split), desc=f"load {split}", unit="scan", leave=False):
        item = transform(case)
        loaded.append({"image": item["image"].as_tensor().float(),
                       "label": item["label"].as_tensor().round().to(torch.uint8)})
    return loaded


def augmentation(cfg: SegData, spatial_size: tuple[int, int, int]):
    """Random pose (rotation, scale, shift) and MR intensity changes, in 3D."""
    from monai.transforms import (
        Compose,
        RandAdjustContrastd,
        RandAffined,
        RandBiasFieldd,
        RandGaussianNoised,
        RandGaussianSmoothd,
    )

    aug = cfg.augment
    p = aug.intensity_prob
    radians = math.radians(aug.rotate_degrees)
    shift = [aug.translate_mm / s for s in cfg.spacing]
    return Compose([
        RandAffined(keys=("image", "label"), prob=1.0, rotate_range=(radians,) * 3,
                    scale_range=(aug.scale,) * 3, translate_range=shift,
                    spatial_size=spatial_size, mode=("bilinear", "nearest"),
                    padding_mode="zeros"),
        RandAdjustContrastd(keys="image", prob=p, gamma=(0.7, 1.5)),
        RandBiasFieldd(keys="image", prob=p, coeff_range=(0.0, 0.3)),
        RandGaussianSmoothd(keys="image", prob=p, sigma_x=(0.0, 1.0), sigma_y=(0.0, 1.0),
                            sigma_z=(0.0, 1.0)),
        RandGaussianNoised(keys="image", prob=p, std=0.1),
    ])


class SegTrainDataset(Dataset):
    """``samples_per_epoch`` random augmented crops (3D) or axial slices (2D).

    Randomness comes from torch's global generator (one seed per item), which the
    engine seeds and restores on resume, so a resumed run draws the same samples.
    """

    def __init__(self, cfg: SegData) -> None:
        self.cfg = cfg
        self.cases = _load_cases(cfg, "train")
        if cfg.spatial_dims == 3:
            self.transform = augmentation(cfg, tuple(cfg.roi_size))
        else:
            # A tilted head tilts every slice: 2D samples are the central plane of a slab
            # posed in 3D, the slab thick enough for the largest tilt and shift.
            self.transform = augmentation(cfg, (*cfg.roi_size, 1))
            aug = cfg.augment
            reach = max(cfg.roi_size) / 2 * math.sin(math.radians(aug.rotate_degrees))
            self.half_slab = int(math.ceil((reach + aug.translate_mm / cfg.spacing[2])
                                           * (1 + aug.scale))) + 1
            self.filled_slices = [torch.nonzero(c["label"].flatten(0, 2).amax(0) > 0).flatten()
                                  for c in self.cases]

    def __len__(self) -> int:
        return self.cfg.samples_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        seed = int(torch.randint(0, 2**31 - 1, ()))
        rng = np.random.default_rng(seed)
        which = int(rng.integers(len(self.cases)))
        case = {"image": self.cases[which]["image"], "label": self.cases[which]["label"]}
        if self.cfg.spatial_dims == 2:
            filled = self.filled_slices[which]
            z = int(filled[rng.integers(len(filled))])
            case = {key: _slab(value, z, self.half_slab) for key, value in case.items()}
        self.transform.set_random_state(seed=seed)
        item = self.transform(case)
        image = torch.as_tensor(item["image"]).float()
        label = torch.as_tensor(item["label"]).round().long()
        if self.cfg.spatial_dims == 2:
            image, label = image[..., 0], label[..., 0]
        return {"input": image, "target": label}


def _slab(volume: torch.Tensor, z: int, half: int) -> torch.Tensor:
    """Axial slices ``z - half .. z + half`` of ``[C, X, Y, Z]``, zero-padded past the ends."""
    depth = volume.shape[-1]
    lo, hi = max(z - half, 0), min(z + half + 1, depth)
    slab = volume[..., lo:hi]
    return torch.nn.functional.pad(slab, (lo - (z - half), (z + half + 1) - hi))


class SegVolumeDataset(Dataset):
    """Whole volumes at the working spacing, for validation and testing."""

    def __init__(self, cfg: SegData, split: str) -> None:
        self.cases = _load_cases(cfg, split)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        case = self.cases[index]
        return {"input": case["image"], "target": case["label"].long()}


def build_dataset(cfg: SegData, split: str) -> Dataset:
    if split == "train":
        return SegTrainDataset(cfg)
    return SegVolumeDataset(cfg, split)


def sample_inputs(cfg: SegData, folder: Path, size: int = 64) -> list[Path]:
    """The centre ``size``-voxel cube (at most) of the first test scan, as a NIfTI file
    whose affine places it where it was in the scan."""
    import nibabel as nib

    source = Path(case_files(cfg, "test")[0]["image"])
    image = nib.load(source)
    crop = tuple(slice(max(0, (n - size) // 2), max(0, (n - size) // 2) + min(n, size))
                 for n in image.shape[:3])
    path = folder / f"crop_{source.name}"
    nib.save(image.slicer[crop], path)
    return [path]
