"""The dashboard page of the medseg task: segment an uploaded scan, look at it slice by slice
with the labels over it, measure each region, and download the label map.

The prediction is the one ``domainvit predict`` makes (:func:`read_image`,
:func:`segment_scan`, :func:`write_label_nifti`), so the downloaded NIfTI is the same
file: the input's grid, affine and qform/sform. The overlay is drawn by
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
    write_label_nifti,
    write_overlay_png,
)
from domainvit.outputs import output_stem
from domainvit.task import Task
from domainvit.tasks.medseg.data import SegData, class_names
from domainvit.tasks.medseg.predict import segment_scan

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


@dataclass
class Segmentation:
    image: MedicalImage
    #: labels on ``image.array``'s (RAS) grid
    labels: np.ndarray
    #: the label map NIfTI on the input's own grid
    label_map: Path
    names: list[str]


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


def segment_upload(loaded: LoadedModel, path: Path) -> Segmentation:
    cfg: SegData = loaded.config.data
    with widgets.progress_bar(f"Reading {path.name} ...") as bar:
        # a 3D model needs one volume; a 2D model takes 2D images and volumes alike
        image = read_image(path, spatial_dims=3 if cfg.spatial_dims == 3 else None)
        total = expected_windows(image, cfg)

        def report(done: int) -> None:
            bar.progress(min(done / total, 0.99), text=f"Segmenting: window {done} of ~{total}")

        bar.progress(0.0, text=f"Segmenting: ~{total} windows")
        with widgets.exclusive(loaded), counting_windows(loaded.model, report), \
                torch.no_grad():
            labels = segment_scan(loaded.model, image, cfg)
        bar.progress(1.0, text="Writing the label map ...")
        label_map = write_label_nifti(
            labels, image, derived_folder(path) / f"{output_stem(path)}.seg.nii.gz")
    return Segmentation(image, labels, label_map, class_names(cfg))


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


def _slice(result: Segmentation, axis: int | None, index: int) -> tuple[np.ndarray, np.ndarray,
                                                                        tuple[float, float]]:
    """A slice of intensities and labels oriented for display (anterior or superior up,
    the patient's left on the left), and the size of its pixels (rows, columns)."""
    intensity, labels, spacing = result.image.array[0], result.labels, result.image.spacing
    if axis is None:  # a 2D image
        if result.image.kind == "image":  # PNG/JPEG arrays are already in display order
            return intensity, labels, (1.0, 1.0)
        return display_slice(intensity), display_slice(labels), (spacing[1], spacing[0])
    kept = [a for a in range(3) if a != axis]
    return (display_slice(intensity, axis, index), display_slice(labels, axis, index),
            (spacing[kept[1]], spacing[kept[0]]))


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
        opacity = st.slider("Label opacity", 0.0, 1.0, 0.45, 0.05, key=f"medseg-opacity-{token}")
        intensity, labels, pixel_size = _slice(result, axis, index)
        overlay = write_overlay_png(intensity, labels, result.label_map.parent / "view.png",
                                    alpha=opacity)
        if axis is None and result.image.kind != "image":
            orientation = "the slice rotated as in the axial view of a volume"
        st.image(_display_png(overlay, pixel_size), caption=f"Labels over the scan: {orientation}")
        widgets.legend(result.names[1:], label_colours(len(result.names) - 1))
    with numbers:
        unit, sizes = region_sizes(result)
        frame = pd.DataFrame({"region": result.names[1:], unit: np.round(sizes, 3)})
        st.markdown("**Regions**")
        st.dataframe(frame, hide_index=True, key=f"medseg-regions-{token}")
        st.caption(f"{result.image.kind} of {'x'.join(map(str, result.image.spatial_shape))} "
                   f"voxels at {' x '.join(f'{s:.3g}' for s in result.image.spacing)} mm"
                   if result.image.kind != "image" else
                   "PNG/JPEG pictures carry no pixel size: sizes are in pixels")
        widgets.download("Download the label map (NIfTI)", result.label_map,
                         result.label_map.name, "application/gzip", key=f"medseg-download-{token}")
        st.caption("The label map lies on the upload's own grid, with its affine (and "
                   "qform/sform): the file `domainvit predict` writes.")


def render(task: Task) -> None:
    widgets.task_page(
        task, "Medical image segmentation", "Scan", UPLOAD_TYPES, key="medseg",
        help=("NIfTI (.nii, .nii.gz), a DICOM file (.dcm), a DICOM series as a .zip, or a "
              "PNG/JPEG picture"),
        predict=segment_upload, show=lambda result, _: show(result))
