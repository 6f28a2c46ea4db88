"""The dashboard page of the medseg task: segment an uploaded scan, look at it slice by slice
with the labels (or the model's confidence) over it, measure each region, and download
the label map and the confidence map.

The prediction is the one ``domainvit predict`` makes (:func:`read_image`,
:func:`segment`, which checks the upload against the checkpoint's training distribution
before the model runs, and :func:`write_segmentation`), so the downloaded NIfTI files
are the same files: the input's grid, affine and qform/sform. The overlay is drawn by
:func:`write_overlay_png` with :data:`LABEL_COLOURS`, the colours of the legend.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch
from torch import nn

from domainvit.dashboard import widgets
from domainvit.dashboard.checkpoints import LoadedModel
from domainvit.dashboard.uploads import derived_folder
from domainvit.datasets.medical_io import (
    LABEL_COLOURS,
    MedicalImage,
    display_slice,
    read_image,
    write_overlay_png,
)
from domainvit.distribution import InputGuard
from domainvit.outputs import output_stem
from domainvit.task import Task
from domainvit.tasks.medseg.data import SegData, class_names
from domainvit.tasks.medseg.predict import segment, write_segmentation

#: upload types (a DICOM series goes in a .zip)
UPLOAD_TYPES = ("nii", "nii.gz", "dcm", "zip", "png", "jpg", "jpeg")
#: slice axes of a RAS volume, and how a slice is shown
AXES = {"axial": 2, "coronal": 1, "sagittal": 0}
ORIENTATION = {
    "axial": "anterior up, the patient's left on the left",
    "coronal": "superior up, the patient's left on the left",
    "sagittal": "superior up, anterior on the right",
}
#: the longer side of the displayed slice, in screen pixels
DISPLAY_SIZE = 512


#: the colour ramp of the confidence map (viridis' ends and middle): low to high
CONFIDENCE_COLOURS = np.array([(68, 1, 84), (33, 145, 140), (253, 231, 37)], np.float64)


@dataclass
class Segmentation:
    image: MedicalImage
    #: labels on ``image.array``'s (RAS) grid
    labels: np.ndarray
    #: the label map NIfTI on the input's own grid
    label_map: Path
    names: list[str]
    #: the maximum softmax probability on ``image.array``'s grid
    confidence: np.ndarray | None = None
    #: the confidence map NIfTI on the input's own grid
    confidence_map: Path | None = None
    #: the confidence summary (:class:`~domainvit.confidence.ConfidenceSummary`)
    summary: dict | None = None


def expected_windows(image: MedicalImage, cfg: SegData) -> int:
    """About how many sliding windows the model sees for ``image`` (for the progress bar):
    the windows over the scan at the model's spacing, times the slices of a volume that a
    2D model segments one by one."""
    shape = image.spatial_shape
    if image.kind != "image":  # pictures are taken at the model's spacing as they are
        shape = tuple(max(1, round(n * s / t))
                      for n, s, t in zip(shape, image.spacing, cfg.spacing, strict=False))
    count = 1
    for size, roi in zip(shape, cfg.roi_size, strict=False):
        size = max(size, roi)  # smaller scans are padded to the window
        step = max(int(roi * (1 - cfg.sw_overlap)), 1)
        count *= 1 if size == roi else math.ceil((size - roi) / step) + 1
    return count * math.prod(shape[len(cfg.roi_size):])


@contextmanager
def counting_windows(model: nn.Module, report: Callable[[int], None]) -> Iterator[None]:
    """Call ``report(windows so far)`` after every forward pass of ``model``."""
    done = 0

    def hook(module: nn.Module, args: tuple, output: object) -> None:
        nonlocal done
        done += int(args[0].shape[0])
        report(done)

    handle = model.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def segment_upload(loaded: LoadedModel, path: Path, guard: InputGuard) -> Segmentation:
    cfg: SegData = loaded.config.data
    with widgets.progress_bar(f"Reading {path.name} ...") as bar:
        # a 3D model needs one volume; a 2D model takes 2D images and volumes alike
        image = read_image(path, spatial_dims=3 if cfg.spatial_dims == 3 else None)
        total = expected_windows(image, cfg)

        def report(done: int) -> None:
            bar.progress(min(done / total, 0.99), text=f"Segmenting: window {done} of ~{total}")

        bar.progress(0.0, text=f"Checking and segmenting: ~{total} windows")
        with widgets.exclusive(loaded), counting_windows(loaded.model, report), \
                torch.no_grad():
            result = segment(loaded.model, image, cfg, guard)
        bar.progress(1.0, text="Writing the label and confidence maps ...")
        label_map, confidence_map, _ = write_segmentation(
            result, image, derived_folder(path), output_stem(path))
    return Segmentation(image, result.labels, label_map, class_names(cfg),
                        result.confidence, confidence_map, result.summary)


def region_confidence(result: Segmentation) -> np.ndarray:
    """The mean maximum probability of every region (label 1..K-1; NaN where the model
    assigns it no voxel), from the confidence summary."""
    per_class = (result.summary or {}).get("per_class", {})
    values = [(per_class.get(name) or {}).get("mean_max_probability")
              for name in result.names[1:]]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def confidence_rgb(confidence: np.ndarray, classes: int) -> np.ndarray:
    """The confidence map as RGB uint8: from chance (``1/classes``) to certainty along
    :data:`CONFIDENCE_COLOURS`."""
    low = 1.0 / max(classes, 2)
    scaled = np.clip((np.nan_to_num(confidence, nan=low) - low) / (1.0 - low), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(CONFIDENCE_COLOURS))
    rgb = np.stack([np.interp(scaled, stops, CONFIDENCE_COLOURS[:, c]) for c in range(3)],
                   axis=-1)
    return np.round(rgb).astype(np.uint8)


def label_colours(count: int) -> np.ndarray:
    """The overlay colours of labels 1..count (those of :func:`write_overlay_png`)."""
    return LABEL_COLOURS[np.arange(count) % len(LABEL_COLOURS)].astype(int)


def region_sizes(result: Segmentation) -> tuple[str, np.ndarray]:
    """The unit and size of every region (label 1..K-1): mL for volumes, cm² for slices
    with a pixel size, pixels for pictures (which have none)."""
    counts = np.bincount(result.labels.ravel(), minlength=len(result.names))[1:]
    image = result.image
    if image.kind == "image":
        return "pixels", counts.astype(float)
    element = float(np.prod(image.spacing))  # mm³ or mm²
    if result.labels.ndim == 3:
        return "volume (mL)", counts * element / 1000.0
    return "area (cm²)", counts * element / 100.0


def _oriented(result: Segmentation, array: np.ndarray, axis: int | None,
              index: int) -> np.ndarray:
    """A slice of ``array`` (on the scan's RAS grid) oriented for display: anterior or
    superior up, the patient's left on the left."""
    if axis is None:  # a 2D image
        # PNG/JPEG arrays are already in display order
        return array if result.image.kind == "image" else display_slice(array)
    return display_slice(array, axis, index)


def _slice(result: Segmentation, axis: int | None, index: int) -> tuple[np.ndarray, np.ndarray,
                                                                        tuple[float, float]]:
    """A slice of intensities and labels oriented for display, and the size of its pixels
    (rows, columns)."""
    spacing = result.image.spacing
    if axis is None:
        pixel = (1.0, 1.0) if result.image.kind == "image" else (spacing[1], spacing[0])
    else:
        kept = [a for a in range(3) if a != axis]
        pixel = (spacing[kept[1]], spacing[kept[0]])
    return (_oriented(result, result.image.array[0], axis, index),
            _oriented(result, result.labels, axis, index), pixel)


def _write_rgb_png(rgb: np.ndarray, path: Path) -> Path:
    from PIL import Image

    from domainvit.files import atomic_write

    with atomic_write(path) as temporary:
        Image.fromarray(rgb, mode="RGB").save(temporary, format="PNG")
    return path


def _display_png(path: Path, pixel_size: tuple[float, float]) -> bytes:
    """The overlay PNG resized to square millimetres and ``DISPLAY_SIZE``, voxels kept sharp."""
    from PIL import Image

    with Image.open(path) as picture:
        height_mm = picture.height * pixel_size[0]
        width_mm = picture.width * pixel_size[1]
        scale = DISPLAY_SIZE / max(height_mm, width_mm)
        size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
        buffer = io.BytesIO()
        picture.resize(size, Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def show(result: Segmentation) -> None:
    token = hashlib.sha1(str(result.label_map).encode()).hexdigest()[:8]
    viewer, numbers = st.columns([3, 2])
    with viewer:
        axis, index, orientation = None, 0, "as the picture"
        if result.labels.ndim == 3:
            axis_name = st.radio("Axis", list(AXES), horizontal=True, key=f"medseg-axis-{token}")
            axis = AXES[axis_name]
            others = tuple(a for a in range(3) if a != axis)
            labelled = (result.labels > 0).sum(axis=others)
            index = st.slider("Slice", 0, result.labels.shape[axis] - 1,
                              int(np.argmax(labelled)), key=f"medseg-slice-{axis_name}-{token}")
            orientation = f"{axis_name} slice {index}, {ORIENTATION[axis_name]}"
        show_confidence = result.confidence is not None and st.toggle(
            "Show the model's confidence", key=f"medseg-confidence-{token}",
            help="The maximum softmax probability of every voxel instead of the labels: "
                 "from chance (dark) to certain (yellow). Low values mark where the model "
                 "hesitates; high values are no guarantee.")
        intensity, labels, pixel_size = _slice(result, axis, index)
        if axis is None and result.image.kind != "image":
            orientation = "the slice rotated as in the axial view of a volume"
        if show_confidence:
            rgb = confidence_rgb(_oriented(result, result.confidence, axis, index),
                                 len(result.names))
            view = _write_rgb_png(rgb, result.label_map.parent / "confidence-view.png")
            st.image(_display_png(view, pixel_size),
                     caption=f"The model's confidence (maximum probability): {orientation}")
            st.caption(f"dark: chance (1/{len(result.names)}), yellow: certain (1.0)")
        else:
            opacity = st.slider("Label opacity", 0.0, 1.0, 0.45, 0.05,
                                key=f"medseg-opacity-{token}")
            overlay = write_overlay_png(intensity, labels, result.label_map.parent / "view.png",
                                        alpha=opacity)
            st.image(_display_png(overlay, pixel_size),
                     caption=f"Labels over the scan: {orientation}")
            widgets.legend(result.names[1:], label_colours(len(result.names) - 1))
    with numbers:
        unit, sizes = region_sizes(result)
        columns = {"region": result.names[1:], unit: np.round(sizes, 3)}
        if result.summary is not None:
            columns["mean confidence"] = np.round(region_confidence(result), 3)
        frame = pd.DataFrame(columns)
        st.markdown("**Regions**")
        st.dataframe(frame, hide_index=True, key=f"medseg-regions-{token}")
        st.caption(f"{result.image.kind} of {'x'.join(map(str, result.image.spatial_shape))} "
                   f"voxels at {' x '.join(f'{s:.3g}' for s in result.image.spacing)} mm"
                   if result.image.kind != "image" else
                   "PNG/JPEG pictures carry no pixel size: sizes are in pixels")
        if result.summary is not None and result.summary.get("mean_max_probability") is not None:
            st.caption(
                f"Mean confidence {result.summary['mean_max_probability']:.3f} over the whole "
                f"scan (normalised entropy {result.summary['mean_normalised_entropy']:.3f}); "
                "per region: the mean maximum probability of the voxels the model assigns "
                "to it.")
        widgets.download("Download the label map (NIfTI)", result.label_map,
                         result.label_map.name, "application/gzip", key=f"medseg-download-{token}")
        if result.confidence_map is not None:
            widgets.download("Download the confidence map (NIfTI)", result.confidence_map,
                             result.confidence_map.name, "application/gzip",
                             key=f"medseg-confidence-download-{token}")
        st.caption("The maps lie on the upload's own grid, with its affine (and "
                   "qform/sform): the files `domainvit predict` writes.")


def render(task: Task) -> None:
    widgets.task_page(
        task, "Medical image segmentation", "Scan", UPLOAD_TYPES, key="medseg",
        help=("NIfTI (.nii, .nii.gz), a DICOM file (.dcm), a DICOM series as a .zip, or a "
              "PNG/JPEG picture"),
        predict=segment_upload, show=lambda result, _: show(result))
