"""Image in, class out: classify PNG / JPEG / DICOM / NIfTI slices into ``<stem>.pred.json``.

Pictures (PNG, JPEG) are scaled from 0..255 like MedMNIST's uint8 images; scans (DICOM,
NIfTI) are windowed to their 0.5-99.5 percentile range first and shown as radiologists
read an axial slice (anterior up), the orientation of the brain-mnist crops.

Every image is checked against the checkpoint's training distribution first
(:mod:`domainvit.tasks.medcls.distribution`): a refused image never reaches the model
unless forced. Outputs per input ``<stem>``: ``<stem>.pred.json`` (the class, its index
and the probability of every class) and the sidecar ``<stem>.prediction.json`` (the
input check, and the confidence: the top probability and the normalised entropy).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from domainvit.confidence import max_probability, normalised_entropy
from domainvit.datasets.medical_io import MedicalImage, display_slice, read_image
from domainvit.distribution import InputCheck, InputGuard
from domainvit.errors import UserError
from domainvit.files import atomic_write
from domainvit.tasks.medcls.data import ClsData, model_input
from domainvit.tasks.medcls.distribution import compare_image, is_colour

#: ITU-R BT.601 luma weights, as PIL's ``convert("L")``
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def image_to_uint8(image: MedicalImage, in_chans: int, colour_to_grey: bool = False
                   ) -> np.ndarray:
    """``[H, W]`` or ``[H, W, 3]`` uint8 in display orientation, with the model's channels.

    A colour image given to a grayscale model is an error, unless ``colour_to_grey``
    (the input check refuses it first, and a forced prediction takes its luminance)."""
    array = image.array
    if array.shape[0] == 3 and in_chans == 1:
        if is_colour(image):
            if not colour_to_grey:
                raise UserError(f"{image.source_path.name} is a colour image; the model "
                                "takes grayscale images")
            array = np.tensordot(_LUMA, array, axes=1)[None]
        else:
            array = array[:1]
    if array.shape[0] != in_chans:
        raise UserError(f"{image.source_path.name} has {array.shape[0]} channels; the model "
                        f"takes {in_chans}")
    if image.kind == "image":
        scaled = np.clip(array, 0, 255)
    else:
        finite = array[np.isfinite(array)]
        low, high = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
        scaled = np.clip((np.nan_to_num(array) - low) / max(high - low, 1e-6), 0, 1) * 255
        scaled = display_slice(scaled)
    pixels = np.round(scaled).astype(np.uint8)
    return pixels[0] if in_chans == 1 else np.moveaxis(pixels, 0, -1)


def classify(model: nn.Module, pixels: np.ndarray, image_size: int) -> np.ndarray:
    """Class probabilities of one uint8 image."""
    device = next(model.parameters()).device
    x = model_input(pixels[None], image_size)
    return torch.softmax(model(x.to(device)).float(), dim=1)[0].cpu().numpy()


def checked_pixels(image: MedicalImage, in_chans: int, guard: InputGuard | None
                   ) -> tuple[np.ndarray, InputCheck | None]:
    """The image as the model takes it (:func:`image_to_uint8`), checked with ``guard``
    against the training distribution first (a refusal raises unless forced; without a
    guard a colour image to a grayscale model is an error)."""
    pixels = image_to_uint8(image, in_chans, colour_to_grey=guard is not None)
    check = (None if guard is None else
             guard.check(image.source_path.name, compare_image, image, pixels))
    return pixels, check


def confidence(probabilities: np.ndarray) -> dict:
    """The top probability and the normalised entropy of one image's class probabilities."""
    probabilities = np.asarray(probabilities)[:, None]
    return {"max_probability": round(float(max_probability(probabilities)[0]), 6),
            "normalised_entropy": round(float(normalised_entropy(probabilities)[0]), 6)}


def predict_images(model: nn.Module, cfg: ClsData, info: dict, inputs: list[Path],
                   out_dir: Path, guard: InputGuard) -> list[Path]:
    """Classify every input into ``out_dir``, each checked with ``guard`` first:
    ``<stem>.pred.json`` and the sidecar ``<stem>.prediction.json``."""
    from domainvit.outputs import SIDECAR_SUFFIX, output_stem, write_sidecar

    written = []
    names = list(info["class_names"])
    for path in inputs:
        image = read_image(path, spatial_dims=2)
        pixels, check = checked_pixels(image, info["in_chans"], guard)
        probs = classify(model, pixels, info["image_size"])
        best = int(probs.argmax())
        scores = {name: round(float(p), 6) for name, p in zip(names, probs, strict=True)}
        record = {"input": path.name, "label": names[best], "index": best,
                  "probabilities": scores}
        stem = output_stem(path)
        target = out_dir / f"{stem}.pred.json"
        with atomic_write(target) as temporary:
            temporary.write_text(json.dumps(record, indent=1))
        written.append(target)
        written.append(write_sidecar(out_dir / f"{stem}{SIDECAR_SUFFIX}", {
            "input": path.name, "outputs": [target.name], "input_check": check.record(),
            "label": names[best], "confidence": confidence(probs)}))
    return written
