"""Image in, class out: classify PNG / JPEG / DICOM / NIfTI slices into ``<stem>.pred.json``.

Pictures (PNG, JPEG) are scaled from 0..255 like MedMNIST's uint8 images; scans (DICOM,
NIfTI) are windowed to their 0.5-99.5 percentile range first and shown as radiologists
read an axial slice (anterior up), the orientation of the brain-mnist crops.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from domainvit.datasets.medical_io import MedicalImage, display_slice, read_image
from domainvit.errors import UserError
from domainvit.files import atomic_write
from domainvit.tasks.medcls.data import ClsData, model_input


def image_to_uint8(image: MedicalImage, in_chans: int) -> np.ndarray:
    """``[H, W]`` or ``[H, W, 3]`` uint8 in display orientation, with the model's channels."""
    array = image.array
    if array.shape[0] == 3 and in_chans == 1:
        if not (np.allclose(array[0], array[1]) and np.allclose(array[0], array[2])):
            raise UserError(f"{image.source_path.name} is a colour image; the model takes "
                            "grayscale images")
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


def predict_images(model: nn.Module, cfg: ClsData, info: dict, inputs: list[Path],
                   out_dir: Path) -> list[Path]:
    from domainvit.outputs import output_stem

    written = []
    names = info["class_names"]
    for path in inputs:
        image = read_image(path, spatial_dims=2)
        probs = classify(model, image_to_uint8(image, info["in_chans"]), info["image_size"])
        best = int(probs.argmax())
        scores = {name: round(float(p), 6) for name, p in zip(names, probs, strict=True)}
        record = {"input": path.name, "label": names[best], "index": best,
                  "probabilities": scores}
        target = out_dir / f"{output_stem(path)}.pred.json"
        with atomic_write(target) as temporary:
            temporary.write_text(json.dumps(record, indent=1))
        written.append(target)
    return written
