"""Classification data in MedMNIST's ``.npz`` format, with optional corruptions.

A MedMNIST file holds ``train_images``, ``val_images``, ``test_images`` (uint8,
``[N, H, W]`` grayscale or ``[N, H, W, 3]`` RGB) and ``*_labels`` (``[N, 1]`` class
indices). Any real MedMNIST ``.npz`` (PathMNIST, OrganAMNIST, ... at 28/64/128/224) loads
as it is; without one, the ``brain-mnist`` sample benchmark
(:mod:`domainvit.datasets.brain`) is used: 64x64 crops of Colin27 (train, val) and of the
MNI152 template (test), labelled by the brain region at their centre.

``corruption`` / ``severity`` apply a MedMNIST-C-style corruption
(:mod:`domainvit.datasets.corruptions`) to the evaluated split, for robustness reports.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import NormalizeIntensity
from pydantic import Field, field_validator
from torch.utils.data import Dataset

from domainvit.datasets.brain import BRAIN_MNIST
from domainvit.datasets.corruptions import CORRUPTIONS, corrupt
from domainvit.datasets.registry import prepare
from domainvit.errors import UserError
from domainvit.schema import StrictModel

SPLITS = ("train", "val", "test")
#: MedMNIST's normalisation of [0, 1] intensities to [-1, 1]
_TO_SYMMETRIC = NormalizeIntensity(subtrahend=0.5, divisor=0.5)
#: the largest ``.npz`` accepted (bytes on disk)
MAX_NPZ_BYTES = 8 * 1024**3


class ClsAugment(StrictModel):
    rotate_degrees: float = Field(10.0, ge=0, le=180)
    #: largest relative change of size
    scale: float = Field(0.1, ge=0, lt=1)
    #: largest shift, as a fraction of the image size
    translate: float = Field(0.05, ge=0, lt=0.5)
    #: mirror left-right (off by default: it swaps hemispheres in brain data)
    hflip: bool = False


class ClsData(StrictModel):
    #: a sample dataset (``domainvit data list``) used when ``npz`` is unset
    dataset: str = BRAIN_MNIST
    #: a MedMNIST-format .npz of your own
    npz: Path | None = None
    #: class names, in label order (default: from the sample dataset, else numbered)
    class_names: list[str] | None = None
    #: resize images to this size (None: as stored)
    image_size: int | None = Field(None, ge=8, le=1024)
    #: image channels, 1 (grey) or 3 (RGB) (None: as stored). Checkpoints record the
    #: class names, size and channels, so predicting with one never reads the data.
    in_chans: Literal[1, 3] | None = None
    augment: ClsAugment = ClsAugment()
    #: the DICOM Modality code of the images (``MR``, ``CT``, ``SM`` for slides, ``XC``
    #: for photographs); None: the sample dataset's, unknown for a .npz of your own.
    #: Images of another modality are refused at prediction
    #: (:mod:`domainvit.tasks.medcls.distribution`)
    modality: str | None = Field(None, pattern=r"^[A-Z]{2,16}$")
    #: the contrast or kind of the images, recorded for people (not compared)
    contrast: str | None = None
    #: a corruption applied to every evaluated split (robustness evaluation)
    corruption: str | None = None
    severity: int = Field(3, ge=1, le=5)

    @field_validator("corruption")
    @classmethod
    def _known_corruption(cls, value: str | None) -> str | None:
        if value is not None and value not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {value!r} (choose from {', '.join(CORRUPTIONS)})")
        return value


#: modality and contrast of the sample datasets' images
SAMPLE_MODALITIES = {BRAIN_MNIST: ("MR", "T1-weighted brain crops")}


def modality_of(cfg: ClsData) -> tuple[str | None, str | None]:
    """The modality and contrast of the configured images: the config's, else the sample
    dataset's (None for a .npz of your own that does not say)."""
    sample = SAMPLE_MODALITIES.get(cfg.dataset, (None, None)) if cfg.npz is None else (None, None)
    return cfg.modality or sample[0], cfg.contrast or sample[1]


def npz_path(cfg: ClsData) -> Path:
    if cfg.npz is None:
        folder = prepare(cfg.dataset)
        found = sorted(folder.glob("*.npz"))
        if len(found) != 1:
            raise UserError(f"sample dataset {cfg.dataset} should hold one .npz, found "
                            f"{len(found)} in {folder}")
        return found[0]
    path = cfg.npz.expanduser()
    if not path.is_file():
        raise UserError(f"data.npz {path} does not exist")
    if path.stat().st_size > MAX_NPZ_BYTES:
        raise UserError(f"{path} is larger than {MAX_NPZ_BYTES // 1024**3} GiB")
    return path


def load_split(cfg: ClsData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, H, W(, 3)]`` uint8 and labels ``[N]`` int64 of one split."""
    if split not in SPLITS:
        raise UserError(f"classification data has no split {split!r} (splits: "
                        f"{', '.join(SPLITS)})")
    path = npz_path(cfg)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            wanted = (f"{split}_images", f"{split}_labels")
            missing = [k for k in wanted if k not in keys]
            if missing:
                raise UserError(f"{path.name} has no {', '.join(missing)} (a MedMNIST .npz "
                                f"holds {{train,val,test}}_{{images,labels}}; found "
                                f"{', '.join(sorted(keys))})")
            images, labels = archive[wanted[0]], archive[wanted[1]]
    except (ValueError, OSError) as exc:
        raise UserError(f"{path.name} is not a readable .npz ({exc})") from None
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise UserError(f"{path.name}: {split}_images has shape {list(images.shape)}; expected "
                        "[N, H, W] or [N, H, W, 3]")
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise UserError(f"{path.name}: {split}_labels has {labels.shape[1]} columns, a "
                        "multi-label set (like ChestMNIST); this task trains single-label "
                        "classifiers")
    labels = labels.reshape(-1).astype(np.int64)
    if len(labels) != len(images):
        raise UserError(f"{path.name}: {len(images)} {split} images but {len(labels)} labels")
    if len(labels) and labels.min() < 0:
        raise UserError(f"{path.name}: negative class labels in {split}_labels")
    return images, labels


def dataset_info(cfg: ClsData) -> dict[str, object]:
    """Classes, channels and image size of the configured data: from the config when it
    sets all three (a checkpoint's config, see :meth:`MedClsTask.data_info`), else from
    the train split."""
    if cfg.class_names is not None and cfg.image_size is not None and cfg.in_chans is not None:
        return {"class_names": list(cfg.class_names), "num_classes": len(cfg.class_names),
                "in_chans": cfg.in_chans, "image_size": cfg.image_size}
    images, labels = load_split(cfg, "train")
    names = cfg.class_names
    if names is None and cfg.npz is None:
        listing = npz_path(cfg).with_name("classes.json")
        if listing.is_file():
            names = json.loads(listing.read_text())["names"]
    num_classes = len(names) if names else int(labels.max()) + 1
    if labels.max() >= num_classes:
        raise UserError(f"labels go up to {labels.max()} but {num_classes} class names are given")
    names = list(names) if names else [f"class_{i}" for i in range(num_classes)]
    return {"class_names": names, "num_classes": num_classes,
            "in_chans": stored_channels(cfg, images),
            "image_size": cfg.image_size or int(images.shape[1])}


def stored_channels(cfg: ClsData, images: np.ndarray) -> int:
    """1 or 3: the channels of ``images``; an error when ``data.in_chans`` says otherwise."""
    channels = 3 if images.ndim == 4 and images.shape[-1] == 3 else 1
    if cfg.in_chans is not None and cfg.in_chans != channels:
        raise UserError(f"data.in_chans is {cfg.in_chans} but the images have {channels} "
                        "channel(s)")
    return channels


def to_tensor(images: np.ndarray, image_size: int | None = None) -> torch.Tensor:
    """uint8 ``[N, H, W(, C)]`` -> float ``[N, C, H, W]`` in [0, 1], resized if asked."""
    images = np.ascontiguousarray(images)
    # read-only arrays (a PIL image's buffer) are copied: torch needs writable memory
    x = torch.from_numpy(images if images.flags.writeable else images.copy())
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = x.float() / 255.0
    if image_size is not None and x.shape[-1] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear",
                          align_corners=False, antialias=True)
    return x


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] intensities (:func:`to_tensor`, after any augmentation) -> [-1, 1], as
    MedMNIST normalises; every model input of this task goes through it."""
    return _TO_SYMMETRIC(x).as_tensor()


def model_input(images: np.ndarray, image_size: int | None = None) -> torch.Tensor:
    """uint8 images ``[N, H, W(, C)]`` -> the model's input ``[N, C, H, W]``: scaled,
    resized (:func:`to_tensor`) and normalised (:func:`normalize`), as in evaluation."""
    return normalize(to_tensor(images, image_size))


class MedMNISTDataset(Dataset):
    def __init__(self, cfg: ClsData, split: str) -> None:
        images, labels = load_split(cfg, split)
        stored_channels(cfg, images)
        if cfg.class_names is not None and len(labels) and labels.max() >= len(cfg.class_names):
            raise UserError(f"{split} labels go up to {labels.max()} but "
                            f"{len(cfg.class_names)} class names are given")
        if split != "train" and cfg.corruption is not None:
            images = corrupt(images, cfg.corruption, cfg.severity, seed=0)
        self.images = to_tensor(images, cfg.image_size)
        self.labels = torch.from_numpy(labels)
        self.augment = cfg.augment if split == "train" else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.images[index]
        if self.augment is not None:
            image = random_affine(image, self.augment)
        return {"input": normalize(image), "target": self.labels[index]}


def random_affine(image: torch.Tensor, aug: ClsAugment) -> torch.Tensor:
    """A random rotation, scale and shift of ``[C, H, W]`` (torch's global generator)."""
    angle = math.radians(float(torch.empty(()).uniform_(-aug.rotate_degrees, aug.rotate_degrees)))
    scale = 1.0 + float(torch.empty(()).uniform_(-aug.scale, aug.scale))
    shift = torch.empty(2).uniform_(-aug.translate, aug.translate) * 2
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, float(shift[0])], [sin, cos, float(shift[1])]])
    if aug.hflip and bool(torch.rand(()) < 0.5):
        theta[0, :2] *= -1
    grid = F.affine_grid(theta[None], [1, *image.shape], align_corners=False)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0]


def sample_inputs(cfg: ClsData, folder: Path, count: int = 2) -> list[Path]:
    """The first ``count`` test images, as PNG files."""
    from PIL import Image

    images, labels = load_split(cfg, "test")
    paths = []
    for index in range(min(count, len(images))):
        path = folder / f"test_{index}_class{labels[index]}.png"
        Image.fromarray(np.squeeze(images[index])).save(path)
        paths.append(path)
    return paths
