"""Scan in, label map out: segment NIfTI / DICOM / PNG inputs in their native space.

Each scan is read with :func:`domainvit.datasets.medical_io.read_image` (RAS), resampled
to the model's spacing (pictures, which have no pixel size, are taken at the model's
spacing) and z-normalised as in training, checked against the checkpoint's training
distribution (:mod:`domainvit.tasks.medseg.distribution`; a refused scan never reaches
the model unless forced), segmented by sliding windows (MONAI; 2D models go slice by
slice through a volume), and the class probabilities are resampled back through
MONAI's inverse of the spacing transform before the argmax, so the label map lies on
the input's own grid with the input's affine.

Outputs per input ``<stem>``: ``<stem>.seg.nii.gz`` (label map),
``<stem>.confidence.nii.gz`` (the maximum softmax probability of every voxel, float32,
on the same grid), ``<stem>.overlay.png`` (the input, or the axial slice with the most
labelled voxels, with the labels drawn over it) and ``<stem>.prediction.json`` (the
input check and the mean maximum probability and normalised entropy per region).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from domainvit.confidence import ConfidenceSummary, max_probability
from domainvit.datasets.medical_io import (
    MedicalImage,
    display_slice,
    read_image,
    write_label_nifti,
    write_map_nifti,
    write_overlay_png,
)
from domainvit.distribution import InputCheck, InputGuard
from domainvit.errors import UserError
from domainvit.tasks.medseg.data import SegData, class_names
from domainvit.tasks.medseg.distribution import compare_scan
from domainvit.tasks.medseg.metrics import keep_largest_components


def _sliding_window(model: nn.Module, images: torch.Tensor, cfg: SegData) -> torch.Tensor:
    from monai.inferers import sliding_window_inference

    return sliding_window_inference(
        images, roi_size=cfg.roi_size, sw_batch_size=cfg.sw_batch_size, predictor=model,
        overlap=cfg.sw_overlap, mode="gaussian", progress=False,
    )


def segment_volume(model: nn.Module, images: torch.Tensor, cfg: SegData) -> torch.Tensor:
    """Class scores ``[B, K, *spatial]`` of images ``[B, C, *spatial]`` at the model's spacing.

    A 2D model given volumes segments their axial slices (the last axis) as a batch.
    """
    if cfg.spatial_dims == 3 or images.ndim == 4:
        return _sliding_window(model, images, cfg)
    batch, channels, *plane, depth = images.shape
    slices = images.permute(0, 4, 1, 2, 3).reshape(batch * depth, channels, *plane)
    scores = torch.cat([_sliding_window(model, part, cfg)
                        for part in slices.split(max(cfg.sw_batch_size, 16))])
    return scores.reshape(batch, depth, -1, *plane).permute(0, 2, 3, 4, 1)


def _check_scan(image: MedicalImage, model: nn.Module) -> None:
    name = image.source_path.name
    channels = image.array.shape[0]
    expected = model.in_chans
    if channels != expected:
        raise UserError(f"{name} has {channels} channels; the model takes {expected} "
                        "(a grayscale scan)")
    if not np.isfinite(image.array).any():
        raise UserError(f"{name} holds no finite intensities")


def _resampled_input(image: MedicalImage, cfg: SegData):
    """The scan as the model sees it: resampled to the model's spacing and z-normalised
    over its nonzero voxels, with the spacing transform (None for pictures)."""
    from monai.data import MetaTensor
    from monai.transforms import NormalizeIntensity, Spacing

    scan = MetaTensor(torch.from_numpy(np.nan_to_num(image.array)),
                      affine=torch.from_numpy(image.affine))
    # A picture (PNG, JPEG) carries no pixel size: it is taken at the model's spacing.
    spacing = (None if image.kind == "image" else
               Spacing(pixdim=cfg.spacing[: image.spatial_dims], mode="bilinear"))
    resampled = scan if spacing is None else spacing(scan)
    return spacing, NormalizeIntensity(nonzero=True)(resampled)


def _check_size(image: MedicalImage, scan: torch.Tensor, cfg: SegData, model: nn.Module) -> None:
    # windows are padded to the ROI; a scan must still show more than a few voxels
    minimum = max(8, model.min_size)
    work_shape = tuple(scan.shape[1:])
    plane = work_shape[: cfg.spatial_dims] if cfg.spatial_dims == 2 else work_shape
    if min(plane) < minimum:
        raise UserError(
            f"{image.source_path.name} is {'x'.join(map(str, work_shape))} voxels at "
            f"{cfg.spacing[0]:g} mm, too small for this model (at least {minimum} per axis)")


@dataclass
class SegmentedScan:
    """A scan's segmentation on its own (RAS) grid, with the model's confidence."""

    #: the label map (uint8)
    labels: np.ndarray
    #: the maximum class probability of every voxel (float32, 0..1)
    confidence: np.ndarray
    #: mean maximum probability and normalised entropy, overall and per region
    #: (:class:`~domainvit.confidence.ConfidenceSummary`)
    summary: dict[str, Any]
    #: the input check (None when the scan was segmented unchecked)
    check: InputCheck | None = None


def segment(model: nn.Module, image: MedicalImage, cfg: SegData,
            guard: InputGuard | None = None) -> SegmentedScan:
    """Check ``image`` against the training distribution with ``guard``
    (:func:`~domainvit.tasks.medseg.distribution.compare_scan` on the scan as the model
    sees it; a refusal raises unless forced), then segment it: labels and the maximum
    softmax probability on its own (RAS) grid. Without a guard the scan is not checked
    (evaluation of known data)."""
    # what the model cannot take at all first (channels, size), then what it may refuse
    _check_scan(image, model)
    spacing, scan = _resampled_input(image, cfg)
    _check_size(image, scan, cfg, model)
    check = (None if guard is None else
             guard.check(image.source_path.name, compare_scan, image, scan.as_tensor().numpy()))
    device = next(model.parameters()).device
    scores = segment_volume(model, scan.as_tensor()[None].float().to(device), cfg)[0]
    scores = torch.softmax(scores.float(), dim=0).cpu()
    if spacing is not None:
        # back to the input grid through MONAI's record of the resampling it did
        scores = spacing.inverse(scan.clone().set_array(scores))
    probabilities = torch.as_tensor(scores).numpy()
    labels = torch.from_numpy(probabilities.argmax(0)[None])
    if cfg.largest_component:
        labels = keep_largest_components(labels[None], probabilities.shape[0])[0]
    summary = ConfidenceSummary(class_names(cfg))
    summary.update(probabilities)
    return SegmentedScan(labels[0].numpy().astype(np.uint8), max_probability(probabilities),
                         summary.as_dict(), check)


def segment_scan(model: nn.Module, image: MedicalImage, cfg: SegData) -> np.ndarray:
    """The label map of ``image`` on its own (RAS) grid (unchecked: for known data)."""
    return segment(model, image, cfg).labels


def _overlay_slice(image: MedicalImage, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2D image itself, or the axial slice of a volume with the most labelled voxels;
    rotated so that anterior (or the picture's top) is up."""
    intensity = image.array[0]
    if labels.ndim == 2:
        picture = image.kind == "image"  # PNG/JPEG arrays are already in display order
        return (intensity, labels) if picture else (display_slice(intensity),
                                                    display_slice(labels))
    z = int(np.argmax((labels > 0).sum(axis=(0, 1))))
    return display_slice(intensity, 2, z), display_slice(labels, 2, z)


def predict_scans(model: nn.Module, cfg: SegData, inputs: list[Path], out_dir: Path,
                  guard: InputGuard) -> list[Path]:
    """Segment every input into ``out_dir``, each checked with ``guard`` first: label
    map, confidence map and overlay (:func:`write_segmentation`), and the sidecar."""
    from tqdm.auto import tqdm

    from domainvit.outputs import SIDECAR_SUFFIX, output_stem, write_sidecar

    written = []
    for path in tqdm(inputs, desc="segment", unit="scan", disable=len(inputs) < 2):
        # a 3D model needs one volume (read_image names 2D images and 4D series); a 2D
        # model takes 2D images and volumes alike
        image = read_image(path, spatial_dims=3 if cfg.spatial_dims == 3 else None)
        result = segment(model, image, cfg, guard)
        stem = output_stem(path)
        outputs = write_segmentation(result, image, out_dir, stem)
        written += outputs
        written.append(write_sidecar(out_dir / f"{stem}{SIDECAR_SUFFIX}", {
            "input": path.name, "outputs": [p.name for p in outputs],
            "input_check": result.check.record(), "confidence": result.summary}))
    return written


def write_segmentation(result: SegmentedScan, image: MedicalImage, out_dir: Path,
                       stem: str) -> list[Path]:
    """``<stem>.seg.nii.gz``, ``<stem>.confidence.nii.gz`` (both on the input's grid) and
    ``<stem>.overlay.png`` in ``out_dir``."""
    return [
        write_label_nifti(result.labels, image, out_dir / f"{stem}.seg.nii.gz"),
        write_map_nifti(result.confidence, image, out_dir / f"{stem}.confidence.nii.gz"),
        write_overlay_png(*_overlay_slice(image, result.labels), out_dir / f"{stem}.overlay.png"),
    ]
