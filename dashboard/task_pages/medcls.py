"""The dashboard page of the medcls task: classify an uploaded image, show the class
probabilities, the top class and an occlusion saliency map over the image.

The image goes through the prediction path of ``domainvit predict``
(:func:`read_image` as a 2D image, :func:`checked_pixels`, which checks it against the
checkpoint's training distribution, then :func:`classify`), so the probabilities are the
ones written to ``<stem>.pred.json``; the page shows the top probability and the
normalised entropy as the prediction's confidence.

Saliency by occlusion (Zeiler & Fergus, "Visualizing and understanding convolutional
networks", ECCV 2014): a square a quarter of the image wide slides over it in steps of
half its width (7 x 7 positions), each time covered with the image's mean intensity; a
pixel's saliency is the mean drop of the top class's probability over the squares that
covered it. It needs only forward passes of :func:`classify` (49 of them, about a second
on a laptop CPU for the 64-pixel quickstart model) and shows which part of the image
the decision rests on, at the resolution of half a square.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch
from torch import nn

from domainvit.dashboard import widgets
from domainvit.dashboard.checkpoints import LoadedModel
from domainvit.datasets.medical_io import read_image
from domainvit.distribution import InputGuard
from domainvit.task import Task
from domainvit.tasks.medcls.data import dataset_info
from domainvit.tasks.medcls.predict import checked_pixels, classify, confidence

UPLOAD_TYPES = ("png", "jpg", "jpeg", "dcm", "nii", "nii.gz")
#: the occluding square's side as a fraction of the image's shorter side
OCCLUSION_FRACTION = 0.25
#: colour of the saliency overlay (RGB)
SALIENCY_COLOUR = np.array([255.0, 40.0, 0.0])


@dataclass
class Classification:
    #: the image as the model sees it (uint8, display orientation)
    pixels: np.ndarray
    probabilities: np.ndarray
    names: list[str]
    #: drop of the top class's probability per pixel (positive: supports the class)
    saliency: np.ndarray

    @property
    def top(self) -> int:
        return int(self.probabilities.argmax())


def _positions(length: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, max(length - patch, 0) + 1, stride))
    if starts[-1] + patch < length:  # cover the far edge too
        starts.append(length - patch)
    return starts


@torch.no_grad()
def occlusion_saliency(model: nn.Module, pixels: np.ndarray, image_size: int, target: int,
                       progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Mean drop of class ``target``'s probability when squares of ``pixels`` (uint8
    ``[H, W]`` or ``[H, W, C]``) are covered with the mean intensity; ``[H, W]`` float."""
    height, width = pixels.shape[:2]
    patch = max(2, round(min(height, width) * OCCLUSION_FRACTION))
    stride = max(1, patch // 2)
    fill = np.round(pixels.mean(axis=(0, 1))).astype(np.uint8)
    baseline = float(classify(model, pixels, image_size)[target])
    drop = np.zeros((height, width))
    covered = np.zeros((height, width))
    squares = [(r, c) for r in _positions(height, patch, stride)
               for c in _positions(width, patch, stride)]
    for done, (row, col) in enumerate(squares, start=1):
        occluded = pixels.copy()
        occluded[row:row + patch, col:col + patch] = fill
        window = (slice(row, row + patch), slice(col, col + patch))
        drop[window] += baseline - float(classify(model, occluded, image_size)[target])
        covered[window] += 1
        if progress is not None:
            progress(done, len(squares))
    return drop / np.maximum(covered, 1)


def saliency_overlay(pixels: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """RGB uint8: the image in grey, coloured where occluding it lowers the top class."""
    grey = pixels.astype(np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    positive = np.clip(saliency, 0, None)
    weight = (positive / positive.max() if positive.max() > 0 else positive)[..., None] * 0.7
    rgb = (1 - weight) * grey[..., None] + weight * SALIENCY_COLOUR
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


@st.cache_resource(max_entries=8, show_spinner=False)
def _dataset_info(checkpoint_key: str, _data_cfg) -> dict:
    """Class names, channels and image size of a model's data (read once per model)."""
    return dataset_info(_data_cfg)


def classify_upload(loaded: LoadedModel, path: Path, guard: InputGuard) -> Classification:
    info = _dataset_info(loaded.checkpoint.key, loaded.config.data)
    image = read_image(path, spatial_dims=2)
    pixels, _ = checked_pixels(image, info["in_chans"], guard)
    with widgets.progress_bar("Classifying ...") as bar, widgets.exclusive(loaded), \
            torch.no_grad():
        probabilities = classify(loaded.model, pixels, info["image_size"])
        saliency = occlusion_saliency(
            loaded.model, pixels, info["image_size"], int(probabilities.argmax()),
            lambda done, total: bar.progress(
                done / total, text=f"Saliency: occluded square {done} of {total}"))
    return Classification(pixels, probabilities, list(info["class_names"]), saliency)


def show(result: Classification) -> None:
    top = result.top
    left, right = st.columns(2)
    with left:
        st.metric("Top class", result.names[top], f"probability {result.probabilities[top]:.1%}",
                  delta_color="off", delta_arrow="off")
        entropy = confidence(result.probabilities)["normalised_entropy"]
        st.caption(f"Confidence: top probability {result.probabilities[top]:.1%}, normalised "
                   f"entropy {entropy:.2f} (0: all on one class, 1: spread evenly). Softmax "
                   "confidences are uncalibrated: low values flag an image to look at, high "
                   "values are no guarantee.")
        frame = pd.DataFrame({"class": result.names, "probability": result.probabilities})
        st.bar_chart(frame, x="class", y="probability", horizontal=True, sort="-probability")
        st.dataframe(frame.round(4), hide_index=True)
    with right:
        st.image([result.pixels, saliency_overlay(result.pixels, result.saliency)],
                 caption=["the image as the model sees it",
                          f"occlusion saliency for {result.names[top]}"],
                 width=256)
        st.caption(
            "Saliency by occlusion: a square a quarter of the image wide is slid over it "
            "in half-square steps and covered with the mean intensity; the colour shows how "
            f"much the probability of {result.names[top]} drops where the square covered "
            "the image (uncoloured: no drop)."
        )


def render(task: Task) -> None:
    widgets.task_page(
        task, "Medical image classification", "Image", UPLOAD_TYPES, key="medcls",
        help="PNG/JPEG, a DICOM file (.dcm) or a NIfTI slice (.nii, .nii.gz)",
        predict=classify_upload, show=lambda result, _: show(result))
