"""What the lidar_place models were trained on, and how an input cloud is compared with it.

The record (:func:`training_distribution`) holds, over submaps cut from the training
area as training cuts them (without the augmentations): the units (metres), the submap
radius, and quantiles of three per-cloud statistics (:func:`cloud_statistics`): the
horizontal point density inside the radius (points per m²), the vertical spread (5-95%
of z, metres) and the horizontal reach (95th percentile of the points' distance from
the cloud's centre); and whether the training clouds had intensity.

An input is compared in this order, most fundamental first (:func:`compare_cloud`):

1. units: a cloud whose horizontal reach is under :data:`UNITS_SHARE` of the training
   reach's 1% quantile (latitude and longitude in degrees against a model of metres) is
   refused;
2. coverage: a reach under :data:`REACH_SHARE` of the training reach's 1% quantile (a
   cloud much smaller than the submaps the model knows): warned; a reach over
   :data:`EXTENT_FACTOR` times its 99% quantile (a whole survey tile rather than a
   submap, of which only the radius around the centre is described): warned;
3. density: after pre-processing (which thins denser clouds to the point budget) fewer
   points than :data:`DENSITY_SHARE` of the training's 0.5% quantile: warned; the
   model was tested down to a quarter of the training density;
4. vertical spread more than :data:`SPREAD_FACTOR` times outside the training range
   (e.g. a spinning ground scanner against aerial training data): warned;
5. intensity missing when the training clouds had it: warned (taken as 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainvit.datasets.pointcloud import PointCloud
from domainvit.distribution import Finding, quantiles, refuse, warn

#: a reach below this share of the training's 1% quantile is refused (other units)
UNITS_SHARE = 0.05
#: reach below this share of the training's 1% quantile warns
REACH_SHARE = 0.5
#: reach above this many times the training's 99% quantile warns
EXTENT_FACTOR = 3.0
#: pre-processed points below this share of the training's 0.5% quantile warn
DENSITY_SHARE = 0.25
#: vertical spread this many times below the training's 0.5% or above its 99.5% warns
SPREAD_FACTOR = 3.0


def cloud_statistics(xyz: np.ndarray, radius: float) -> dict[str, float]:
    """Per-cloud statistics: ``density`` (points per m² inside ``radius`` of the
    centre), ``spread`` (5-95% of z, m), ``reach`` (95th percentile of the horizontal
    distance from the centre, m) and ``points`` inside the radius."""
    centre = np.array([xyz[:, 0].mean(), xyz[:, 1].mean()])
    distance = np.hypot(xyz[:, 0] - centre[0], xyz[:, 1] - centre[1])
    inside = distance <= radius
    z = xyz[inside, 2] if inside.any() else xyz[:, 2]
    low, high = np.percentile(z, [5, 95])
    return {"density": float(inside.sum() / (np.pi * radius**2)),
            "spread": float(high - low),
            "reach": float(np.percentile(distance, 95)),
            "points": float(inside.sum())}


def training_distribution(clouds: list[PointCloud], radius: float, points: int) -> dict[str, Any]:
    """The record of training submaps (local coordinates, metres)."""
    stats = [cloud_statistics(c.xyz, radius) for c in clouds]
    return {
        "units": "metres",
        "radius_m": radius,
        "points": points,
        "intensity": all(c.intensity is not None for c in clouds),
        **{f"{key}_quantiles": quantiles(np.array([s[key] for s in stats]))
           for key in ("density", "spread", "reach", "points")},
    }


def compare_cloud(reference: dict[str, Any], cloud: PointCloud, kept: int) -> list[Finding]:
    """Findings for ``cloud``, of which ``kept`` points survive pre-processing."""
    radius = reference["radius_m"]
    stats = cloud_statistics(cloud.xyz, radius)
    found: list[Finding] = []
    reach_q = reference["reach_quantiles"]
    if stats["reach"] < UNITS_SHARE * reach_q[1]:
        return [refuse("units", f"the points lie within {stats['reach']:.3g} units of their "
                                f"centre, the training submaps within {reach_q[1]:.3g}-"
                                f"{reach_q[-2]:.3g} {reference['units']}: other units "
                                f"(latitude/longitude degrees?)")]
    if stats["reach"] < REACH_SHARE * reach_q[1]:
        found.append(warn("coverage", f"the cloud reaches {stats['reach']:.3g} m from its "
                                      f"centre; the training submaps reach "
                                      f"{reach_q[1]:.3g}-{reach_q[-2]:.3g} m"))
    elif stats["reach"] > EXTENT_FACTOR * reach_q[-2]:
        found.append(warn("coverage", f"the cloud reaches {stats['reach']:.3g} m from its "
                                      f"centre; only the {radius:g} m around its centre are "
                                      f"described, as the training submaps were"))
    points_q = reference["points_quantiles"]
    floor = DENSITY_SHARE * min(points_q[0], reference["points"])
    if kept < floor:
        found.append(warn("density", f"{kept} points remain after pre-processing "
                                     f"({stats['density']:.3g} per m²); the training "
                                     f"submaps had {points_q[0]:.0f}-{points_q[-1]:.0f} "
                                     f"({reference['density_quantiles'][4]:.3g} per m² at the "
                                     f"median)"))
    spread_q = reference["spread_quantiles"]
    if not spread_q[0] / SPREAD_FACTOR <= stats["spread"] <= spread_q[-1] * SPREAD_FACTOR:
        found.append(warn("height", f"the points' heights spread over {stats['spread']:.1f} m "
                                    f"(5-95%); the training submaps' over "
                                    f"{spread_q[0]:.1f}-{spread_q[-1]:.1f} m"))
    if reference["intensity"] and cloud.intensity is None:
        found.append(warn("intensity", "the file has no intensity; the model was trained "
                                       "with it and reads 0 instead"))
    return found
