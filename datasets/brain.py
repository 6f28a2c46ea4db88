"""Real brain scans and a lobe atlas, for the medical sample benchmarks.

Two different brains in the same (MNI) space, both shipped by offline package archives:

- Colin27 (``ch2bet.nii.gz``, one subject's averaged T1, brain-extracted) with the AAL
  atlas drawn on it, from Debian's ``mricron-data`` (``/usr/share/mricron/templates``);
- the MNI152 2009a template (an average of 152 subjects) and its brain mask, bundled
  with ``nilearn``.

The 116 AAL regions are grouped into lobes per hemisphere plus deep grey matter and
the cerebellum (:data:`REGIONS`). AAL labels only the grey matter, so every other voxel
of the brain mask takes the label of its nearest labelled voxel: the result is a lobar
parcellation of the whole brain (grey and white matter), the usual target of lobe
segmentation. The MNI152 labels are the Colin27 parcellation resampled through the two
images' affines (never by array shape) and cut to the MNI152 brain mask.

Volumes that test a model are moved by random rigid-plus-scale transforms
(:func:`random_pose`) and resampled back onto their own grid with the header unchanged,
as a head positioned differently in the scanner would be: a model that only memorised
where each region sits in the array fails, and so does copying the atlas
(:func:`atlas_copy`), which is reported beside every model.

The atlases carry their own terms (use, don't redistribute): derived files are built
into the local cache by :func:`domainvit.datasets.registry.prepare`, never committed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainvit.errors import UserError

#: where Debian's mricron-data installs its templates (override: $DOMAINVIT_MRICRON)
MRICRON_TEMPLATES = Path("/usr/share/mricron/templates")


@dataclass(frozen=True)
class Region:
    name: str
    aal: tuple[int, ...]
    color: tuple[int, int, int]


def _aal_range(first: int, last: int, side: str) -> tuple[int, ...]:
    """AAL indices ``first..last`` of one hemisphere (odd = left, even = right)."""
    parity = 1 if side == "L" else 0
    return tuple(i for i in range(first, last + 1) if i % 2 == parity)


def _lobe(side: str, *ranges: tuple[int, int]) -> tuple[int, ...]:
    return tuple(i for first, last in ranges for i in _aal_range(first, last, side))


# AAL (Tzourio-Mazoyer et al. 2002) indices grouped into lobes. Cingulate gyri join the
# lobe they border (anterior/middle: frontal, posterior: parietal); the insula and the
# mesial temporal structures (hippocampus, parahippocampal gyrus, amygdala, fusiform)
# join the temporal lobe; the paracentral lobule joins the frontal lobe.
_FRONTAL = ((1, 28), (31, 34), (69, 70))
_PARIETAL = ((35, 36), (57, 68))
_TEMPORAL = ((29, 30), (37, 42), (55, 56), (79, 90))
_OCCIPITAL = ((43, 54),)
_DEEP_GREY = ((71, 78),)

#: label 0 is background; label i is REGIONS[i - 1]
REGIONS: tuple[Region, ...] = (
    Region("frontal_L", _lobe("L", *_FRONTAL), (230, 25, 75)),
    Region("frontal_R", _lobe("R", *_FRONTAL), (250, 130, 150)),
    Region("parietal_L", _lobe("L", *_PARIETAL), (60, 180, 75)),
    Region("parietal_R", _lobe("R", *_PARIETAL), (170, 255, 195)),
    Region("temporal_L", _lobe("L", *_TEMPORAL), (0, 130, 200)),
    Region("temporal_R", _lobe("R", *_TEMPORAL), (70, 240, 240)),
    Region("occipital_L", _lobe("L", *_OCCIPITAL), (245, 130, 48)),
    Region("occipital_R", _lobe("R", *_OCCIPITAL), (255, 215, 180)),
    Region("deep_grey_L", _lobe("L", *_DEEP_GREY), (145, 30, 180)),
    Region("deep_grey_R", _lobe("R", *_DEEP_GREY), (220, 190, 255)),
    Region("cerebellum", tuple(range(91, 117)), (255, 225, 25)),
)
CLASS_NAMES: tuple[str, ...] = ("background",) + tuple(r.name for r in REGIONS)
NUM_CLASSES = len(CLASS_NAMES)


def mricron_dir() -> Path:
    folder = Path(os.environ.get("DOMAINVIT_MRICRON", MRICRON_TEMPLATES))
    needed = [folder / name for name in ("ch2bet.nii.gz", "aal.nii.gz")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise UserError(
            f"Colin27 and the AAL atlas were not found ({', '.join(missing)}): install "
            "Debian's mricron-data (`sudo apt-get install mricron-data`; scripts/setup.sh "
            "does it) or point $DOMAINVIT_MRICRON at a folder holding ch2bet.nii.gz and "
            "aal.nii.gz"
        )
    return folder


def _load(path: Path):
    import nibabel as nib

    return nib.load(str(path))


def _as_image(data: np.ndarray, affine: np.ndarray):
    import nibabel as nib

    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=4)  # MNI space
    image.set_sform(affine, code=4)
    return image


def lobe_lookup() -> np.ndarray:
    """A table mapping AAL index (0..116) to lobe label (0..NUM_CLASSES-1)."""
    table = np.zeros(117, dtype=np.uint8)
    for label, region in enumerate(REGIONS, start=1):
        table[list(region.aal)] = label
    return table


def fill_to_mask(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give every voxel of ``mask`` the label of its nearest labelled voxel; 0 outside."""
    from scipy import ndimage

    _, nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    filled = labels[tuple(nearest)]
    return np.where(mask, filled, 0).astype(np.uint8)


def colin27():
    """Colin27 T1 (brain-extracted) and its lobe parcellation, as nibabel images."""
    folder = mricron_dir()
    t1 = _load(folder / "ch2bet.nii.gz")
    aal = _load(folder / "aal.nii.gz")
    if t1.shape != aal.shape or not np.allclose(t1.affine, aal.affine):
        raise UserError(f"{folder}: ch2bet and aal are not on the same grid")
    intensity = np.asarray(t1.dataobj, dtype=np.float32)
    lobes = lobe_lookup()[np.asarray(aal.dataobj, dtype=np.int64)]
    labels = fill_to_mask(lobes, intensity > 0)
    return _as_image(intensity, t1.affine), _as_image(labels, t1.affine)


def mni152(colin_labels):
    """The MNI152 T1 template (masked to the brain) and the Colin27 parcellation on it."""
    from nibabel.processing import resample_from_to
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    template = load_mni152_template(resolution=1)
    mask = np.asarray(load_mni152_brain_mask(resolution=1).dataobj) > 0
    intensity = np.asarray(template.dataobj, dtype=np.float32) * mask
    moved = resample_from_to(colin_labels, (template.shape, template.affine), order=0)
    labels = fill_to_mask(np.asarray(moved.dataobj, dtype=np.uint8), mask)
    return _as_image(intensity, template.affine), _as_image(labels, template.affine)


def random_pose(rng: np.random.Generator, centre: np.ndarray, max_degrees: float = 12.0,
                max_shift_mm: float = 10.0, max_scale: float = 0.08) -> np.ndarray:
    """A random world-space transform: rotation and isotropic scale about ``centre``, shift."""
    from scipy.spatial.transform import Rotation

    angles = rng.uniform(-max_degrees, max_degrees, size=3)
    linear = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    linear = linear * rng.uniform(1 - max_scale, 1 + max_scale)
    transform = np.eye(4)
    transform[:3, :3] = linear
    transform[:3, 3] = centre - linear @ centre + rng.uniform(-max_shift_mm, max_shift_mm, 3)
    return transform


def brain_centre(labels) -> np.ndarray:
    """World coordinates (mm) of the centre of the labelled brain."""
    voxels = np.argwhere(np.asarray(labels.dataobj) > 0).mean(axis=0)
    return (labels.affine @ np.append(voxels, 1.0))[:3]


def move(image, labels, transform: np.ndarray):
    """Move the head by the world transform and resample it onto its own, unchanged grid."""
    from nibabel.processing import resample_from_to

    def resampled(source, order: int, dtype: type) -> object:
        posed = _as_image(np.asarray(source.dataobj), transform @ source.affine)
        data = resample_from_to(posed, (image.shape, image.affine), order=order).dataobj
        return _as_image(np.asarray(data, dtype=dtype), image.affine)

    return resampled(image, 1, np.float32), resampled(labels, 0, np.uint8)


def atlas_copy(atlas_labels, target_grid) -> np.ndarray:
    """The "copy the atlas" baseline: the atlas resampled onto a scan's grid by affines."""
    from nibabel.processing import resample_from_to

    moved = resample_from_to(atlas_labels, (target_grid.shape, target_grid.affine), order=0)
    return np.asarray(moved.dataobj, dtype=np.uint8)


def class_colors() -> np.ndarray:
    """RGB colours per label (row 0, background, is black)."""
    return np.array([(0, 0, 0)] + [r.color for r in REGIONS], dtype=np.uint8)


# --- sample datasets ----------------------------------------------------------------------

#: the segmentation benchmark: 1 mm volumes and lobe label maps (NIfTI)
BRAIN_LOBES = "brain-lobes"
#: the classification benchmark: MedMNIST-format crops labelled by the region at their centre
BRAIN_MNIST = "brain-mnist"

_SEG_POSES = {"val": 3, "test": 4}
_SEED = 20261127


def _save(image, path: Path) -> None:
    import nibabel as nib

    nib.save(image, str(path))


def _write_classes(folder: Path, names: tuple[str, ...], **extra: object) -> None:
    import json

    (folder / "classes.json").write_text(json.dumps({"names": list(names), **extra}, indent=1))


def _posed(image, labels, count: int, rng: np.random.Generator):
    centre = brain_centre(labels)
    for _ in range(count):
        yield move(image, labels, random_pose(rng, centre))


def build_brain_lobes(folder: Path, progress: type) -> None:
    """Colin27 for training, Colin27 in random poses for validation, MNI152 in random
    poses for testing; each split a folder of ``*_t1.nii.gz`` + ``*_lobes.nii.gz``."""
    rng = np.random.default_rng(_SEED)
    steps = progress(total=2 + sum(_SEG_POSES.values()), desc=BRAIN_LOBES, unit="step")
    colin_t1, colin_lobes = colin27()
    mni_t1, mni_lobes = mni152(colin_lobes)
    for split in ("train", "val", "test"):
        (folder / split).mkdir()
    _save(colin_t1, folder / "train" / "colin27_t1.nii.gz")
    _save(colin_lobes, folder / "train" / "colin27_lobes.nii.gz")
    steps.update()
    sources = {"val": ("colin27", colin_t1, colin_lobes), "test": ("mni152", mni_t1, mni_lobes)}
    for split, (name, t1, lobes) in sources.items():
        for i, (moved_t1, moved_lobes) in enumerate(_posed(t1, lobes, _SEG_POSES[split], rng)):
            _save(moved_t1, folder / split / f"{name}_pose{i}_t1.nii.gz")
            _save(moved_lobes, folder / split / f"{name}_pose{i}_lobes.nii.gz")
            steps.update()
    _write_classes(folder, CLASS_NAMES, colors=class_colors().tolist())
    steps.update()
    steps.close()


#: MedMNIST-format crop size (pixels) and pixel spacing (mm)
CROP_SIZE = 64
CROP_SPACING_MM = 2.5
_CROPS_PER_CLASS = {"train": 400, "val": 60, "test": 120}
_CLS_POSES = {"train": 6, "val": 2, "test": 4}
#: crop centres lie at least this far (mm) inside their region, so the label is unambiguous
_MIN_DEPTH_MM = 3.0


def region_crops(t1, lobes, per_class: int, rng: np.random.Generator,
                 min_depth_mm: float = _MIN_DEPTH_MM) -> tuple[np.ndarray, np.ndarray]:
    """Axial ``CROP_SIZE``-pixel crops (``CROP_SPACING_MM``) centred inside each region."""
    from scipy import ndimage

    volume = np.asarray(t1.dataobj, dtype=np.float32)
    labels = np.asarray(lobes.dataobj)
    voxel_mm = float(np.abs(np.linalg.det(t1.affine[:3, :3])) ** (1 / 3))
    brain = volume[labels > 0]
    scale = 255.0 / max(float(np.percentile(brain, 99.5)), 1e-6)
    offsets = (np.arange(CROP_SIZE) - CROP_SIZE / 2 + 0.5) * CROP_SPACING_MM / voxel_mm
    images, targets = [], []
    # One distance transform for all regions: the distance of every voxel to the nearest
    # voxel whose 6-neighbourhood holds another label.
    boundary = np.zeros(labels.shape, dtype=bool)
    for axis in range(3):
        step = np.diff(labels, axis=axis) != 0
        boundary[tuple(slice(1, None) if a == axis else slice(None) for a in range(3))] |= step
        boundary[tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))] |= step
    depth = ndimage.distance_transform_edt(~boundary) * voxel_mm
    for label in range(1, NUM_CLASSES):
        candidates = np.argwhere((labels == label) & (depth >= min_depth_mm))
        for x, y, z in candidates[rng.choice(len(candidates), size=per_class)]:
            # MNI volumes are stored x (left-right), y (back-front), z (up): an axial crop
            # spans x and y at one z.
            xs, ys = np.meshgrid(x + offsets, y + offsets, indexing="ij")
            crop = ndimage.map_coordinates(volume, [xs, ys, np.full_like(xs, z)], order=1)
            # displayed as an axial slice is read: anterior at the top
            images.append(np.clip(np.rot90(crop) * scale, 0, 255).astype(np.uint8))
            targets.append(label - 1)
    order = rng.permutation(len(targets))
    return np.stack(images)[order], np.array(targets, dtype=np.uint8)[order, None]


def build_brain_mnist(folder: Path, progress: type) -> None:
    """``brainmnist.npz`` with MedMNIST's keys (``{train,val,test}_{images,labels}``):
    train and val from Colin27 in random poses, test from MNI152 in random poses."""
    rng = np.random.default_rng(_SEED + 1)
    steps = progress(total=sum(_CLS_POSES.values()), desc=BRAIN_MNIST, unit="volume")
    colin_t1, colin_lobes = colin27()
    mni_t1, mni_lobes = mni152(colin_lobes)
    sources = {"train": (colin_t1, colin_lobes), "val": (colin_t1, colin_lobes),
               "test": (mni_t1, mni_lobes)}
    arrays = {}
    for split, (t1, lobes) in sources.items():
        per_pose = -(-_CROPS_PER_CLASS[split] // _CLS_POSES[split])
        images, labels = [], []
        for moved_t1, moved_lobes in _posed(t1, lobes, _CLS_POSES[split], rng):
            crop_images, crop_labels = region_crops(moved_t1, moved_lobes, per_pose, rng)
            images.append(crop_images)
            labels.append(crop_labels)
            steps.update()
        arrays[f"{split}_images"] = np.concatenate(images)
        arrays[f"{split}_labels"] = np.concatenate(labels)
    np.savez_compressed(folder / "brainmnist.npz", **arrays)
    _write_classes(folder, CLASS_NAMES[1:], spacing_mm=CROP_SPACING_MM)
    steps.close()
