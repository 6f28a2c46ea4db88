"""What the training record of a desmoke model holds, and how a frame is compared with it.

The record: the modality (RGB frames in [0, 1]), and the quantiles, over simulated
training frames (smoky inputs), of four per-frame statistics:

- ``brightness``: the mean of the frame;
- ``saturation``: the mean HSV saturation (smoke desaturates, tissue is saturated red);
- ``red_share``: the mean of ``R / (R + G + B)``, the colour cast of the scene (tissue
  under an endoscope light is red; a scene of another colour is another kind of image);
- ``dark_channel``: the median of the dark channel (the per-pixel minimum over the colour
  channels, 15-pixel minimum filter), which rises with smoke density (He et al. 2009).

The rule (``compare_frame``), for a frame already read (bad files are refused when read,
see :mod:`domainvit.datasets.frames`): nothing is refused; a warning for each statistic
outside the training frames' 0.5-99.5% range widened by half of it
(:func:`domainvit.distribution.outside_quantiles`), most fundamental first: the colour
cast, the saturation, the brightness, the smoke density.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import minimum_filter

from domainvit.datasets.desmoke_tissue import SmokeSimulator
from domainvit.distribution import Finding, outside_quantiles, quantiles, warn

__all__ = ["compare_frame", "frame_statistics", "training_distribution"]

#: simulated training frames the record is computed from
RECORD_FRAMES = 192
#: what each statistic is called in a warning, in the order they are checked
STATISTICS = {
    "red_share": "colour cast (mean red share R/(R+G+B))",
    "saturation": "mean saturation",
    "brightness": "mean brightness",
    "dark_channel": "smoke level (median dark channel)",
}


def frame_statistics(frame: np.ndarray) -> dict[str, float]:
    """The recorded statistics of one RGB frame ``[H, W, 3]`` (or ``[3, H, W]``) in [0, 1]."""
    frame = np.asarray(frame, dtype=np.float32)
    if frame.shape[0] == 3 and frame.shape[-1] != 3:
        frame = frame.transpose(1, 2, 0)
    high, low = frame.max(axis=-1), frame.min(axis=-1)
    saturation = np.where(high > 1e-6, (high - low) / np.maximum(high, 1e-6), 0.0)
    total = frame.sum(axis=-1)
    red_share = np.where(total > 1e-3, frame[..., 0] / np.maximum(total, 1e-3), 1 / 3)
    patch = max(1, min(15, *frame.shape[:2]))
    return {
        "brightness": float(frame.mean()),
        "saturation": float(saturation.mean()),
        "red_share": float(red_share.mean()),
        "dark_channel": float(np.median(minimum_filter(low, size=patch))),
    }


def training_distribution(cfg: Any) -> dict[str, Any]:
    from domainvit.tasks.desmoke.data import smoke_settings

    simulator = SmokeSimulator(smoke_settings(cfg), "train", seed=cfg.seed)
    stats = [frame_statistics(simulator.pair(i)["smoky"]) for i in range(RECORD_FRAMES)]
    return {
        "modality": "RGB endoscopic frames with surgical smoke, values in [0, 1]",
        "crop": cfg.crop,
        **{f"{name}_quantiles": quantiles(np.array([s[name] for s in stats]))
           for name in STATISTICS},
    }


def compare_frame(reference: dict[str, Any], frame: np.ndarray) -> list[Finding]:
    """Warnings for ``frame`` (RGB in [0, 1]) against the training record."""
    findings = []
    values = frame_statistics(frame)
    for name, what in STATISTICS.items():
        trained = outside_quantiles(values[name], reference[f"{name}_quantiles"])
        if trained is not None:
            findings.append(warn(name, f"the frame's {what}, {values[name]:.3g}, is outside "
                                       f"the training frames' {trained[0]:.3g}-"
                                       f"{trained[1]:.3g}"))
    return findings
