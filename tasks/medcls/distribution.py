"""What a medcls model was trained on, and how an image is compared with it.

The record (``data_info["distribution"]`` of every checkpoint, :func:`training_distribution`)
holds the modality of the training images (``data.modality``, a DICOM Modality code; the
sample dataset's, or ``None`` when unknown: :func:`~domainvit.tasks.medcls.data.modality_of`),
their channels and stored size, and a description of what the images look like to the
model (:func:`image_features`, on the image resized to the model's input size, 0..1
scale): the fraction of foreground pixels (above 2/255: brain crops have a black
background, photographs rarely do), and the 1-99% quantiles of the foreground
intensities and of the foreground gradient magnitude (how sharp and how textured the
image is). The record keeps the mean and the inverse covariance of these features over
the training images, and an image's distance from them is the Mahalanobis distance, the
classical typicality score of a feature vector. Its limit is calibrated on the splits
themselves: the distance of every training, validation and test image is measured,
and the limit is :data:`DISTANCE_FACTOR` times a high quantile
(:data:`CALIBRATION_QUANTILE`) of those distances.

:func:`compare_image` checks an image against the record, the most fundamental
difference first:

1. refuse a DICOM Modality other than the training images' (CT to a model of MR slices);
2. refuse intensities in Hounsfield units (air at -1000, :func:`hounsfield_evidence`)
   when the model was not trained on CT (rules 1 and 2 need the training modality: a
   ``.npz`` of one's own without ``data.modality`` skips them);
3. refuse a colour image (three channels that differ) given to a grayscale model: a
   photograph, a stained slide or a dermatoscope picture, not a grey scan (forced, it is
   converted to grey by luminance);
4. warn when the image is far from square (it is resized to a square, distorting it);
5. warn when the image's features lie further from the training images' than the
   calibrated limit, naming the features that differ most.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainvit.datasets.medical_io import MedicalImage, modality_findings, modality_name
from domainvit.distribution import QUANTILES, Finding, refuse, warn
from domainvit.errors import UserError
from domainvit.tasks.medcls.data import load_split, modality_of, to_tensor

__all__ = [
    "ASPECT_LIMIT",
    "CALIBRATION_QUANTILE",
    "DISTANCE_FACTOR",
    "compare_image",
    "image_features",
    "is_colour",
    "mahalanobis",
    "training_distribution",
]

#: the distance limit is this many times the calibration quantile of the splits' distances ...
DISTANCE_FACTOR = 1.5
#: ... taken at this quantile of the per-image distances of all splits (a few of
#: thousands of crops are extreme: almost all background)
CALIBRATION_QUANTILE = 0.999
#: an image more than this many times wider than high (or higher than wide) is warned
#: about: the model takes a square and the resize distorts it
ASPECT_LIMIT = 1.5
#: the most images of one split the record is made from
MAX_IMAGES = 4000
#: pixels above this (on the 0..1 scale) are foreground
FOREGROUND = 2 / 255
#: the quantiles of the foreground intensities and gradients in the features
FEATURE_QUANTILES = QUANTILES[1:-1]
#: the groups of features, for messages: (name, slice of the feature vector)
GROUPS = (("the share of foreground pixels", slice(0, 1)),
          ("the intensities", slice(1, 1 + len(FEATURE_QUANTILES))),
          ("the edges and texture (gradient magnitudes)",
           slice(1 + len(FEATURE_QUANTILES), 1 + 2 * len(FEATURE_QUANTILES))))
#: added to the covariance's diagonal (features on the 0..1 scale)
RIDGE = 1e-4


def is_colour(image: MedicalImage) -> bool:
    """Whether ``image`` has three channels that differ (not grey stored as RGB)."""
    array = image.array
    return array.shape[0] == 3 and not (np.allclose(array[0], array[1])
                                        and np.allclose(array[0], array[2]))


def image_features(pixels: np.ndarray, image_size: int) -> np.ndarray:
    """The feature vector of uint8 ``pixels`` (``[H, W]`` or ``[H, W, C]``) as the model
    sees them, resized to ``image_size``: the foreground share, then the
    :data:`FEATURE_QUANTILES` of the foreground intensities and of the foreground
    gradient magnitudes (of the whole image when it has almost no foreground)."""
    x = to_tensor(np.asarray(pixels)[None], image_size)[0].numpy().astype(np.float64)
    x = x.mean(axis=0)  # colour models: the luminance's statistics
    rows, cols = np.gradient(x)
    gradient = np.hypot(rows, cols)
    foreground = x > FOREGROUND
    keep = foreground if foreground.sum() >= 16 else np.ones_like(foreground)
    return np.concatenate([[float(foreground.mean())],
                           np.quantile(x[keep], FEATURE_QUANTILES),
                           np.quantile(gradient[keep], FEATURE_QUANTILES)])


def mahalanobis(features: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Mahalanobis distances of feature vectors ``[..., F]`` from ``mean`` under the
    inverse covariance ``precision``."""
    centred = np.asarray(features, np.float64) - mean
    return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", centred, precision, centred), 0))


def _describe(reference: dict[str, Any]) -> str:
    modality = reference.get("modality")
    what = modality_name(modality) if modality else "medical"
    channels = "grayscale" if reference["in_chans"] == 1 else "colour"
    contrast = f", {reference['contrast']}" if reference.get("contrast") else ""
    return f"{channels} {what} images{contrast}"


def _features(images: np.ndarray, image_size: int) -> np.ndarray:
    return np.array([image_features(pixels, image_size) for pixels in images[:MAX_IMAGES]])


def training_distribution(cfg: Any, info: dict[str, Any]) -> dict[str, Any]:
    """The record of the training images of data config ``cfg`` (JSON values only);
    ``info`` is :func:`~domainvit.tasks.medcls.data.dataset_info` of ``cfg``."""
    size = int(info["image_size"])
    images, _ = load_split(cfg, "train")
    order = np.random.default_rng(0).permutation(len(images))[:MAX_IMAGES]
    train = _features(images[order], size)
    mean = train.mean(axis=0)
    covariance = np.cov(train.T) + RIDGE * np.eye(train.shape[1])
    precision = np.linalg.inv(covariance)
    distances = {"train": mahalanobis(train, mean, precision)}
    for split in ("val", "test"):
        try:
            split_images, _ = load_split(cfg, split)
        except UserError:  # a dataset of one's own without that split
            continue
        distances[split] = mahalanobis(_features(split_images, size), mean, precision)
    pooled = np.concatenate(list(distances.values()))
    calibrated = float(np.quantile(pooled, CALIBRATION_QUANTILE))
    return {
        **dict(zip(("modality", "contrast"), modality_of(cfg), strict=True)),
        "units": "8-bit display intensities (MedMNIST uint8; scans windowed to their "
                 "0.5-99.5 percentiles)",
        "in_chans": int(info["in_chans"]),
        "image_size": size,
        "stored_size": [int(v) for v in images.shape[1:3]],
        "features": {
            "quantiles": list(FEATURE_QUANTILES),
            "mean": [round(float(v), 6) for v in mean],
            "std": [round(float(v), 6) for v in np.sqrt(np.diag(covariance))],
            "precision": [[float(v) for v in row] for row in precision],
        },
        "distance": {
            "limit": round(DISTANCE_FACTOR * calibrated, 4),
            "calibration": {"quantile": CALIBRATION_QUANTILE, "factor": DISTANCE_FACTOR,
                            "value": round(calibrated, 4),
                            "splits": {name: {"images": int(v.size),
                                              "median": round(float(np.median(v)), 4),
                                              "max": round(float(v.max()), 4)}
                                       for name, v in distances.items()}},
        },
        "rules": {"aspect_limit": ASPECT_LIMIT},
    }


def compare_image(reference: dict[str, Any], image: MedicalImage,
                  pixels: np.ndarray) -> list[Finding]:
    """The findings of ``image`` against the training record, most fundamental first.

    ``pixels`` is the image as the model takes it (uint8, display orientation, the
    model's channels: :func:`~domainvit.tasks.medcls.predict.image_to_uint8`)."""
    trained_on = _describe(reference)
    found = modality_findings(image, reference.get("modality"), trained_on, noun="image")
    if reference["in_chans"] == 1 and is_colour(image):
        found.append(refuse("colour", (
            f"it is a colour image (three channels that differ: a photograph or a stained "
            f"slide, not a grey scan); the model was trained on {trained_on}")))
    height, width = image.spatial_shape
    aspect = max(height, width) / max(min(height, width), 1)
    if aspect > float(reference["rules"]["aspect_limit"]):
        found.append(warn("size", (
            f"it is {width}x{height} pixels, {aspect:.1f} times as long as it is wide; the "
            f"model takes square {reference['image_size']}-pixel images, so it is "
            f"distorted by the resize")))
    record = reference["features"]
    features = image_features(pixels, int(reference["image_size"]))
    mean = np.asarray(record["mean"])
    distance = float(mahalanobis(features, mean, np.asarray(record["precision"])))
    limit = float(reference["distance"]["limit"])
    if distance > limit:
        z = np.abs(features - mean) / np.asarray(record["std"])
        ranked = sorted(GROUPS, key=lambda group: -float(z[group[1]].max()))
        found.append(warn("appearance", (
            f"its intensity and texture statistics lie {distance:.1f} from the training "
            f"images' (Mahalanobis distance), beyond the {limit:.1f} allowed; most unlike "
            f"in {ranked[0][0]} (not an image of the kind the model was trained on: "
            f"{trained_on})")))
    return found
