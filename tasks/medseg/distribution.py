"""What a medseg model was trained on, and how a scan is compared with it.

The record (``data_info["distribution"]`` of every checkpoint, :func:`training_distribution`)
holds the modality of the training scans (``data.modality``, a DICOM Modality code) and
their contrast, the spacing of the training files and the spacing the model works at,
the largest field of view of a training scan, and the quantiles of the intensities the
model sees: after resampling to ``data.spacing`` and its z-score over the nonzero voxels
(MONAI ``NormalizeIntensity(nonzero=True)``), over those nonzero voxels. The limit on how
far an input's quantiles may lie from them is calibrated on the splits themselves: the
quantile shift of every training, validation and test scan is recorded, and the limit
is :data:`SHIFT_FACTOR` times the largest, at least :data:`SHIFT_FLOOR`.

:func:`compare_scan` checks a scan against the record, the most fundamental difference
first:

1. refuse a DICOM Modality other than the training scans' (CT, PT, ... to an MR model);
2. refuse intensities in Hounsfield units (:func:`hounsfield_evidence`: air at -1000)
   when the model was not trained on CT;
3. warn when the voxel spacing along an axis is finer than a third of the finest
   training spacing, or coarser than :data:`SPACING_RATIO` times the coarser of the
   training files' spacing and the spacing the model works at (not for PNG/JPEG
   pictures, which carry no pixel size);
4. warn when the field of view along an axis is more than :data:`FIELD_RATIO` times the
   largest training field of view on that axis (a body, not a head);
5. warn when the quantiles of the normalised intensities lie further from the
   training's than the recorded limit (:func:`domainvit.distribution.quantile_shift`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainvit.datasets.medical_io import MedicalImage, modality_findings, modality_name
from domainvit.distribution import Finding, quantile_shift, quantiles, warn
from domainvit.errors import UserError

__all__ = [
    "FIELD_RATIO",
    "SHIFT_FACTOR",
    "SHIFT_FLOOR",
    "SPACING_RATIO",
    "compare_scan",
    "foreground",
    "training_distribution",
]

#: an input's spacing may be this many times coarser than the training scans' (or the
#: model's working spacing, whichever is coarser), or finer by the same factor
SPACING_RATIO = 3.0
#: an input's field of view may be this many times the largest training one, per axis
FIELD_RATIO = 2.0
#: the intensity-shift limit is this many times the largest shift of a training,
#: validation or test scan ...
SHIFT_FACTOR = 2.0
#: ... and at least this (in units of the training's 5-95% intensity range)
SHIFT_FLOOR = 0.4
#: the most voxels of one training scan pooled into the reference quantiles
VOXELS_PER_SCAN = 500_000

_AXES = ("L-R", "P-A", "I-S")

def foreground(normalised: np.ndarray) -> np.ndarray:
    """The voxels the model's z-score was taken over (the nonzero ones), flat."""
    values = np.asarray(normalised, dtype=np.float32).ravel()
    return values[(values != 0) & np.isfinite(values)]


def _describe(reference: dict[str, Any]) -> str:
    modality = reference["modality"]
    what = modality_name(modality)
    return f"{what} ({reference['contrast']})" if reference.get("contrast") else what


def _ras_geometry(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Spacing and field of view (mm) per RAS axis of a NIfTI file, from its header."""
    import nibabel as nib

    header = nib.load(path).header
    zooms = np.asarray(header.get_zooms()[:3], float)
    shape = np.asarray(header.get_data_shape()[:3], float)
    order = nib.orientations.io_orientation(header.get_best_affine())[:, 0].astype(int)
    spacing, extent = np.zeros(3), np.zeros(3)
    spacing[order], extent[order] = zooms, zooms * shape
    return spacing, extent


def _normalised_scans(cfg: Any, split: str) -> list[tuple[Path, np.ndarray]]:
    """Each scan of ``split`` as the model sees it: its normalised foreground voxels."""
    from domainvit.tasks.medseg.data import case_files, preprocessing

    transform = preprocessing(cfg.spacing, keys=("image",))
    scans = []
    for case in case_files(cfg, split):
        image = transform({"image": case["image"]})["image"].as_tensor().numpy()
        scans.append((Path(case["image"]), foreground(image)))
    return scans


def _subsample(values: np.ndarray, count: int, seed: int) -> np.ndarray:
    if values.size <= count:
        return values
    return np.random.default_rng(seed).choice(values, count, replace=False)


def training_distribution(cfg: Any) -> dict[str, Any]:
    """The record of the training scans of data config ``cfg`` (JSON values only)."""
    train = _normalised_scans(cfg, "train")
    pooled = np.concatenate([_subsample(values, VOXELS_PER_SCAN, seed)
                             for seed, (_, values) in enumerate(train)])
    reference = quantiles(pooled)
    geometry = [_ras_geometry(path) for path, _ in train]
    spacings = np.array([spacing for spacing, _ in geometry])
    extents = np.array([extent for _, extent in geometry])

    calibration: dict[str, list[float]] = {
        "train": [round(quantile_shift(quantiles(values), reference), 4)
                  for _, values in train]}
    for split in ("val", "test"):
        try:
            scans = _normalised_scans(cfg, split)
        except UserError:  # a dataset of one's own without that split
            continue
        calibration[split] = [round(quantile_shift(quantiles(values), reference), 4)
                              for _, values in scans]
    largest = max(shift for shifts in calibration.values() for shift in shifts)
    return {
        "modality": cfg.modality,
        "contrast": cfg.contrast,
        "units": ("Hounsfield units" if cfg.modality == "CT" else
                  "signal intensity (arbitrary units)"),
        "normalisation": "z-score over the nonzero voxels at the working spacing",
        "spacing_mm": {"min": [round(float(v), 4) for v in spacings.min(axis=0)],
                       "max": [round(float(v), 4) for v in spacings.max(axis=0)]},
        "working_spacing_mm": [float(v) for v in cfg.spacing],
        "field_of_view_mm": [round(float(v), 2) for v in extents.max(axis=0)],
        "intensity_quantiles": [round(v, 5) for v in reference],
        "intensity_shift": {"limit": round(max(SHIFT_FLOOR, SHIFT_FACTOR * largest), 4),
                            "calibration": calibration},
        "rules": {"spacing_ratio": SPACING_RATIO, "field_of_view_ratio": FIELD_RATIO},
    }


def _image_axes(image: MedicalImage) -> list[int]:
    """The RAS axes of ``image.array``'s spatial axes (a 2D slice keeps two of three)."""
    return [axis for axis in range(3) if axis != image.squeezed_axis]


def _spacing_findings(reference: dict[str, Any], image: MedicalImage) -> list[Finding]:
    ratio = float(reference["rules"]["spacing_ratio"])
    finest = np.asarray(reference["spacing_mm"]["min"], float)
    coarsest = np.maximum(np.asarray(reference["spacing_mm"]["max"], float),
                          np.asarray(reference["working_spacing_mm"], float))
    found = []
    for axis, spacing in zip(_image_axes(image), image.spacing, strict=True):
        low, high = finest[axis] / ratio, coarsest[axis] * ratio
        if spacing < low or spacing > high:
            side = "finer" if spacing < low else "coarser"
            found.append(warn("spacing", (
                f"its voxels are {spacing:.3g} mm along {_AXES[axis]}, {side} than the "
                f"{low:.3g}-{high:.3g} mm the model takes without warning (trained on "
                f"{finest[axis]:.3g} mm scans seen at "
                f"{reference['working_spacing_mm'][axis]:.3g} mm)")))
    return found[:1]


def _field_findings(reference: dict[str, Any], image: MedicalImage) -> list[Finding]:
    ratio = float(reference["rules"]["field_of_view_ratio"])
    training = np.asarray(reference["field_of_view_mm"], float)
    for axis, size, spacing in zip(_image_axes(image), image.spatial_shape, image.spacing,
                                   strict=True):
        extent = size * spacing
        if extent > ratio * training[axis]:
            return [warn("field of view", (
                f"its field of view is {extent:.0f} mm along {_AXES[axis]}, more than "
                f"{ratio:g} times the training scans' {training[axis]:.0f} mm (a larger "
                f"part of the body than the model has seen)"))]
    return []


def _intensity_findings(reference: dict[str, Any], normalised: np.ndarray) -> list[Finding]:
    values = foreground(normalised)
    if values.size == 0:
        return [warn("intensity", "it has no nonzero voxels to normalise")]
    shift = quantile_shift(quantiles(values), reference["intensity_quantiles"])
    limit = float(reference["intensity_shift"]["limit"])
    if shift > limit:
        return [warn("intensity", (
            f"its normalised intensity quantiles differ from the training scans' by "
            f"{shift:.2f} times their 5-95% range, more than the {limit:.2f} allowed "
            f"(another contrast or preparation than the training's "
            f"{_describe(reference)}, or not a scan)"))]
    return []


def compare_scan(reference: dict[str, Any], image: MedicalImage,
                 normalised: np.ndarray | Sequence[float]) -> list[Finding]:
    """The findings of ``image`` against the training record, most fundamental first.

    ``normalised`` is the scan as the model sees it (resampled to the working spacing,
    z-scored over its nonzero voxels)."""
    found = modality_findings(image, reference["modality"], _describe(reference))
    if image.kind != "image":  # pictures carry no pixel size
        found += _spacing_findings(reference, image)
        found += _field_findings(reference, image)
    found += _intensity_findings(reference, np.asarray(normalised))
    return found
