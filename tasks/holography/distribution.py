"""What the training record of a holography model holds, and how a hologram is compared
with it.

The record: the physical set-up the model was trained for (wavelength, pixel pitch, the
range of distances, the hologram size) and robust statistics of the training holograms
scaled to mean 1: the quantiles, over holograms, of each hologram's contrast (standard
deviation) and of its 1st and 99th percentiles (dark fringes and bright foci). Pooled
intensity quantiles are not used: one hologram's intensities differ from the pooled ones
by nature (a cell focusing light has a bright spot that most holograms lack).

The rule (``compare``), for a hologram already read and scaled: nothing is refused here
(bad files are refused when read, see ``predict.py``); warnings, most fundamental first:
a wavelength or pixel pitch more than 5% from the training's (the network learned the
diffraction of one set-up; the physics front end adapts, the learned correction may not);
a distance outside the trained range; a contrast, 1st or 99th percentile outside the
training holograms' 0.5-99.5% range widened by half of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainvit.datasets.holo_cells import HologramSimulator, normalise_hologram
from domainvit.distribution import Finding, outside_quantiles, quantiles, warn

__all__ = ["compare_hologram", "training_distribution"]

#: training holograms the record is computed from
RECORD_HOLOGRAMS = 128
#: relative difference of wavelength or pixel pitch that is warned about
PHYSICS_TOLERANCE = 0.05


def training_distribution(cfg: Any) -> dict[str, Any]:
    from domainvit.tasks.holography.data import simulation_settings

    simulator = HologramSimulator(simulation_settings(cfg), "train")
    holograms = np.stack([normalise_hologram(simulator.sample(i)["counts"])
                          for i in range(RECORD_HOLOGRAMS)])
    return {
        "modality": "inline hologram intensity, scaled to mean 1",
        "wavelength_nm": cfg.wavelength_nm,
        "pixel_um": cfg.pixel_um,
        "z_range_mm": [cfg.z_min_mm, cfg.z_max_mm],
        "size": cfg.size,
        # per hologram: contrast, and the 1st and 99th percentiles (dark fringes, foci)
        "contrast_quantiles": quantiles(holograms.std(axis=(1, 2))),
        "p01_quantiles": quantiles(np.percentile(holograms, 1, axis=(1, 2))),
        "p99_quantiles": quantiles(np.percentile(holograms, 99, axis=(1, 2))),
    }


def compare_hologram(reference: dict[str, Any], hologram: np.ndarray, wavelength_nm: float,
                     pixel_um: float, z_mm: float) -> list[Finding]:
    """Warnings for ``hologram`` (scaled to mean 1) recorded with these parameters."""
    findings = []
    for name, value, unit in (("wavelength_nm", wavelength_nm, "nm"),
                              ("pixel_um", pixel_um, "um")):
        trained = reference[name]
        if abs(value - trained) > PHYSICS_TOLERANCE * trained:
            findings.append(warn(name.split("_")[0], f"{name.split('_')[0]} {value:g} {unit} "
                                 f"differs from the training's {trained:g} {unit}"))
    low, high = reference["z_range_mm"]
    if not low <= z_mm <= high:
        findings.append(warn("distance", f"distance {z_mm:.3g} mm lies outside the trained "
                                         f"range {low:g}-{high:g} mm"))
    low_q, high_q = np.percentile(hologram, [1, 99])
    for aspect, value, key, what in (
            ("contrast", float(np.std(hologram)), "contrast_quantiles",
             "contrast (standard deviation of the mean-1 intensity)"),
            ("dark", float(low_q), "p01_quantiles", "1st percentile of the mean-1 intensity"),
            ("bright", float(high_q), "p99_quantiles",
             "99th percentile of the mean-1 intensity")):
        trained = outside_quantiles(value, reference[key])
        if trained is not None:
            findings.append(warn(aspect, f"the hologram's {what}, {value:.3g}, is outside the "
                                         f"training holograms' {trained[0]:.3g}-"
                                         f"{trained[1]:.3g}"))
    return findings
