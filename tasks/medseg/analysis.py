"""Clinical analysis of the segmentation models (the notebook
``notebooks/clinical_analysis.ipynb``): lobe segmentation of the ``brain-lobes`` test
split (the MNI152 brain in random poses).

:func:`segment_case` runs a checkpoint on one test scan exactly as ``domainvit predict``
does (native grid, RAS); :func:`region_scores` gives Dice and the 95% Hausdorff distance
per region and case (MONAI, through
:class:`~domainvit.tasks.medseg.metrics.SegmentationMetrics`), :func:`volume_table` the
predicted and reference volume of every region in mL, and
:func:`~domainvit.analysis.statistics.bland_altman` their agreement (bias and 95% limits
of agreement), drawn by :func:`plot_bland_altman`.

Every ``plot_*`` function draws the data of one of these into a matplotlib figure and
returns it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from domainvit.analysis.common import legend_patches
from domainvit.analysis.statistics import bland_altman
from domainvit.datasets.medical_io import display_slice

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from domainvit.config import RunConfigBase


@dataclass
class SegmentedCase:
    """One scan with its reference and predicted label maps, all on the scan's own grid in
    RAS order (axis 0 towards the patient's right, 1 anterior, 2 superior)."""

    name: str
    image: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray
    #: voxel size in mm along the three axes
    spacing: tuple[float, float, float]

    @property
    def voxel_ml(self) -> float:
        """The volume of one voxel in mL (1 mL = 1000 mm³)."""
        return float(np.prod(self.spacing)) / 1000.0


def case_files(cfg: RunConfigBase, split: str = "test") -> list[tuple[Path, Path]]:
    """``(scan, label map)`` paths of a split of the config's segmentation data (the
    sample dataset is built on first use)."""
    from domainvit.tasks.medseg.data import case_files as listing

    return [(Path(c["image"]), Path(c["label"])) for c in listing(cfg.data, split)]


def case_name(path: Path, suffix: str = "_t1.nii.gz") -> str:
    return path.name[: -len(suffix)] if path.name.endswith(suffix) else path.stem


def _read_labels(path: Path) -> np.ndarray:
    from domainvit.datasets.medical_io import read_image

    return np.rint(read_image(path, spatial_dims=3).array[0]).astype(np.uint8)


def segment_case(model: nn.Module, cfg: RunConfigBase, scan: Path, labels: Path
                 ) -> SegmentedCase:
    """Segment ``scan`` with ``model`` (the path of ``domainvit predict``: resampled to the
    model's spacing, sliding windows, class scores mapped back onto the scan's grid) and
    read its reference label map."""
    import torch

    from domainvit.datasets.medical_io import read_image
    from domainvit.tasks.medseg.predict import segment_scan

    image = read_image(scan, spatial_dims=3)
    with torch.no_grad():
        predicted = segment_scan(model, image, cfg.data)
    reference = _read_labels(labels)
    if reference.shape != predicted.shape:
        raise ValueError(f"{labels.name} is {reference.shape}, the scan {predicted.shape}")
    spacing = tuple(float(s) for s in image.spacing)
    return SegmentedCase(case_name(scan, cfg.data.image_suffix), image.array[0], reference,
                         predicted, spacing)


def atlas_copy_case(case: SegmentedCase, scan: Path, atlas_labels: Path) -> SegmentedCase:
    """The same case "segmented" by copying an atlas's label map onto the scan through the
    two images' affines, blind to the pose (the brain-lobes baseline)."""
    import nibabel as nib

    from domainvit.datasets.brain import atlas_copy

    target = nib.load(str(scan))
    copied = atlas_copy(nib.load(str(atlas_labels)), target)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(copied, target.affine))
    predicted = np.asarray(canonical.dataobj, dtype=np.uint8)
    if predicted.shape != case.reference.shape:
        raise ValueError(f"the atlas copy is {predicted.shape}, the case {case.reference.shape}")
    return SegmentedCase(case.name, case.image, case.reference, predicted, case.spacing)


def score_case(case: SegmentedCase, class_names: Sequence[str]) -> pd.DataFrame:
    """Dice and 95% Hausdorff distance (mm) of every region (background excluded) of one
    case, from MONAI. A region missing from both maps has NaN scores."""
    import torch

    from domainvit.tasks.medseg.metrics import SegmentationMetrics

    metrics = SegmentationMetrics(class_names, case.spacing)
    with warnings.catch_warnings():
        # MONAI's own call of a deprecated argument of get_mask_edges, not ours
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy",
                                category=FutureWarning)
        metrics.update_labels(torch.from_numpy(case.predicted.astype(np.int64))[None, None],
                              torch.from_numpy(case.reference.astype(np.int64))[None, None])
    dice = metrics.dice.aggregate().float()[0].numpy()
    hd95 = metrics.hd95.aggregate().float()[0].numpy()
    hd95 = np.where(np.isfinite(hd95), hd95, np.nan)
    return pd.DataFrame({"case": case.name, "region": list(class_names[1:]),
                         "dice": dice.astype(np.float64), "hd95_mm": hd95.astype(np.float64)})


def region_scores(cases: Sequence[SegmentedCase], class_names: Sequence[str],
                  method: str = "model") -> pd.DataFrame:
    """:func:`score_case` of every case, one row per case and region, with a ``method``
    column (to put several methods in one table)."""
    frame = pd.concat([score_case(c, class_names) for c in cases], ignore_index=True)
    frame.insert(0, "method", method)
    return frame


def region_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per region and method: mean Dice, its standard deviation over the cases, and mean
    HD95 (mm); regions in the order of ``scores``, with a last row ``mean`` over
    regions (the benchmark's mean Dice and HD95)."""
    order = list(dict.fromkeys(scores["region"]))
    grouped = scores.groupby(["region", "method"], sort=False)
    table = grouped.agg(dice=("dice", "mean"), dice_sd=("dice", "std"),
                        hd95_mm=("hd95_mm", "mean"), cases=("case", "count"))
    table = table.unstack("method")
    table = table.reindex(order)
    means = table.mean(numeric_only=True)
    table.loc["mean"] = means
    table.columns = [f"{metric} ({method})" for metric, method in table.columns]
    return table


def region_volumes(labels: np.ndarray, voxel_ml: float, num_classes: int) -> np.ndarray:
    """Volume in mL of labels ``1..num_classes - 1`` of a label map."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=num_classes)[1:num_classes]
    return counts * float(voxel_ml)


def volume_table(cases: Sequence[SegmentedCase], class_names: Sequence[str]) -> pd.DataFrame:
    """Reference and predicted volume (mL) of every region of every case, their difference
    (predicted - reference, mL) and the difference in % of the reference volume."""
    rows = []
    k = len(class_names)
    for case in cases:
        reference = region_volumes(case.reference, case.voxel_ml, k)
        predicted = region_volumes(case.predicted, case.voxel_ml, k)
        for name, ref, pred in zip(class_names[1:], reference, predicted, strict=True):
            rows.append({"case": case.name, "region": name, "reference_ml": ref,
                         "predicted_ml": pred, "difference_ml": pred - ref,
                         "difference_pct": 100.0 * (pred - ref) / ref if ref else np.nan})
    return pd.DataFrame(rows)


def _brain_centre(labels: np.ndarray) -> tuple[int, int, int]:
    voxels = np.argwhere(labels > 0)
    if len(voxels) == 0:
        return tuple(s // 2 for s in labels.shape)
    return tuple(int(round(v)) for v in voxels.mean(axis=0))


_VIEWS = (("axial", 2, "left - right (mm)", "posterior - anterior (mm)"),
          ("coronal", 1, "left - right (mm)", "inferior - superior (mm)"),
          ("sagittal", 0, "posterior - anterior (mm)", "inferior - superior (mm)"))


def plot_case_slices(case: SegmentedCase, class_names: Sequence[str],
                     colours: np.ndarray, centre: Sequence[int] | None = None,
                     alpha: float = 0.45) -> Figure:
    """Axial, coronal and sagittal slices through the brain's centre (or ``centre``, voxel
    indices) with the reference labels, the model's labels, and the voxels where they
    disagree drawn over the scan. Images are in neurological convention (the patient's
    left on the left of axial and coronal views); axes in mm."""
    import matplotlib.pyplot as plt

    centre = tuple(centre) if centre is not None else _brain_centre(case.reference)
    palette = np.asarray(colours, dtype=np.float64) / 255.0
    finite = case.image[np.isfinite(case.image)]
    low, high = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
    rows = (("reference", case.reference), ("model", case.predicted), ("disagreement", None))
    fig, axes = plt.subplots(3, 3, figsize=(12, 12), layout="constrained")
    for col, (view, axis, xlabel, ylabel) in enumerate(_VIEWS):
        plane = display_slice(case.image, axis, centre[axis])
        gray = np.clip((plane - low) / max(high - low, 1e-6), 0, 1)
        in_plane = [a for a in range(3) if a != axis]
        extent = (0, case.image.shape[in_plane[0]] * case.spacing[in_plane[0]],
                  0, case.image.shape[in_plane[1]] * case.spacing[in_plane[1]])
        for row, (what, labels) in enumerate(rows):
            ax = axes[row, col]
            rgb = np.repeat(gray[..., None], 3, axis=2)
            if labels is not None:
                shown = display_slice(labels, axis, centre[axis]).astype(np.int64)
                mask = shown > 0
                rgb[mask] = (1 - alpha) * rgb[mask] + alpha * palette[shown[mask]]
            else:
                ref = display_slice(case.reference, axis, centre[axis])
                pred = display_slice(case.predicted, axis, centre[axis])
                wrong = (ref != pred) & ((ref > 0) | (pred > 0))
                rgb[wrong] = (0.3 * rgb[wrong] + 0.7 * np.array([1.0, 0.1, 0.1]))
            ax.imshow(rgb, extent=extent, interpolation="nearest")
            ax.set_title(f"{view} slice {centre[axis]}: {what}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
    handles = legend_patches(class_names[1:], np.asarray(colours)[1:])
    handles += legend_patches(["model differs from reference"], [(255, 25, 25)])
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=9)
    fig.suptitle(f"{case.name}: lobe labels over the T1 scan")
    return fig


def plot_region_scores(scores: pd.DataFrame) -> Figure:
    """Bar charts of Dice (higher is better) and HD95 in mm (lower is better) per region,
    one bar per method, error bars: standard deviation over cases (when more than one)."""
    import matplotlib.pyplot as plt

    regions = list(dict.fromkeys(scores["region"]))
    methods = list(dict.fromkeys(scores["method"]))
    x = np.arange(len(regions))
    width = 0.8 / len(methods)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 8), sharex=True, layout="constrained")
    for i, method in enumerate(methods):
        part = scores[scores["method"] == method].groupby("region", sort=False)
        offset = (i - (len(methods) - 1) / 2) * width
        for ax, column in ((top, "dice"), (bottom, "hd95_mm")):
            mean = part[column].mean().reindex(regions)
            sd = part[column].std().reindex(regions).fillna(0.0)
            ax.bar(x + offset, mean, width, yerr=sd if part.size().max() > 1 else None,
                   capsize=2, label=method)
    top.set_ylabel("Dice (1 = perfect overlap)")
    top.set_ylim(0, 1)
    top.set_title("Dice per region (higher is better)")
    bottom.set_ylabel("95% Hausdorff distance (mm)")
    bottom.set_title("95% Hausdorff distance per region (lower is better)")
    bottom.set_xticks(x, regions, rotation=30, ha="right")
    bottom.set_xlabel("region")
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="method", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_bland_altman(volumes: pd.DataFrame, colours: np.ndarray | None = None) -> Figure:
    """Predicted against reference volume per region (left) and the Bland-Altman plot of
    the same pairs (right): difference against mean, with the bias and the 95% limits of
    agreement. One colour per region."""
    import matplotlib.pyplot as plt

    agreement = bland_altman(volumes["predicted_ml"], volumes["reference_ml"])
    regions = list(dict.fromkeys(volumes["region"]))
    palette = (np.asarray(colours, dtype=np.float64)[1:] / 255.0 if colours is not None
               else plt.get_cmap("tab20")(np.arange(len(regions)) % 20))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), layout="constrained")
    for colour, region in zip(palette, regions, strict=True):
        rows = volumes["region"] == region
        style = {"color": colour, "edgecolor": "black", "linewidth": 0.5, "s": 45}
        left.scatter(volumes.loc[rows, "reference_ml"], volumes.loc[rows, "predicted_ml"],
                     label=region, **style)
        right.scatter(agreement["means"][rows.to_numpy()],
                      agreement["differences"][rows.to_numpy()], label=region, **style)
    top = float(max(volumes["reference_ml"].max(), volumes["predicted_ml"].max())) * 1.05
    left.plot([0, top], [0, top], color="gray", linestyle="--", label="identity")
    left.set_xlim(0, top)
    left.set_ylim(0, top)
    left.set_xlabel("reference volume (mL)")
    left.set_ylabel("predicted volume (mL)")
    left.set_title("Region volumes: model against reference")
    left.legend(fontsize=8, loc="upper left")
    lines = [right.axhline(agreement["bias"], color="black",
                           label=f"bias (mean difference) {agreement['bias']:+.1f} mL")]
    for key in ("upper", "lower"):
        lines.append(right.axhline(agreement[key], color="black", linestyle="--",
                                   label=f"{key} 95% limit of agreement "
                                         f"{agreement[key]:+.1f} mL"))
    right.axhline(0, color="gray", linewidth=0.8)
    right.set_xlabel("mean of predicted and reference volume (mL)")
    right.set_ylabel("predicted - reference volume (mL)")
    right.set_title(f"Bland-Altman plot ({agreement['n']} region volumes)")
    right.legend(handles=lines, fontsize=8, loc="best")
    return fig
