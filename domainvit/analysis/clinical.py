"""Clinical analysis of the medical models: lobe segmentation and region classification.

Segmentation (task ``medseg``, the ``brain-lobes`` test split: the MNI152 brain in
random poses): :func:`segment_case` runs a checkpoint on one test scan exactly as
``domainvit predict`` does (native grid, RAS); :func:`region_scores` gives Dice and the
95% Hausdorff distance per region and case (MONAI, through
:class:`~domainvit.tasks.medseg.metrics.SegmentationMetrics`), :func:`volume_table` the
predicted and reference volume of every region in mL, and :func:`bland_altman` their
agreement (bias and 95% limits of agreement).

Classification (task ``medcls``, the ``brain-mnist`` test split: crops of the MNI152
brain): :func:`classify_images` gives class probabilities, :func:`classification_summary`
the task's metrics (:func:`domainvit.tasks.medcls.metrics.score`), :func:`roc_curves`
one-vs-rest ROC curves, :func:`reliability_bins` the reliability diagram (calibration),
:func:`selective_accuracy` accuracy when only confident predictions are accepted, and
:func:`corruption_accuracy` accuracy under each corruption and severity
(:mod:`domainvit.datasets.corruptions`, the protocol of
:func:`domainvit.tasks.medcls.robustness`).

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

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from domainvit.config import RunConfigBase

# --- segmentation -----------------------------------------------------------------------


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


def bland_altman(predicted: Sequence[float], reference: Sequence[float]) -> dict[str, object]:
    """Bland-Altman agreement of paired measurements.

    Returns ``means`` (the mean of each pair), ``differences`` (predicted - reference),
    ``bias`` (mean difference), ``sd`` (sample standard deviation of the differences),
    ``lower`` and ``upper`` (the 95% limits of agreement, bias -/+ 1.96 sd) and ``n``.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if predicted.shape != reference.shape or predicted.ndim != 1:
        raise ValueError("bland_altman needs two 1D sequences of the same length")
    if len(predicted) < 2:
        raise ValueError("bland_altman needs at least two pairs")
    differences = predicted - reference
    bias = float(differences.mean())
    sd = float(differences.std(ddof=1))
    return {"means": (predicted + reference) / 2, "differences": differences, "bias": bias,
            "sd": sd, "lower": bias - 1.96 * sd, "upper": bias + 1.96 * sd,
            "n": len(differences)}


def _brain_centre(labels: np.ndarray) -> tuple[int, int, int]:
    voxels = np.argwhere(labels > 0)
    if len(voxels) == 0:
        return tuple(s // 2 for s in labels.shape)
    return tuple(int(round(v)) for v in voxels.mean(axis=0))


def _view(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice ``index`` along ``axis`` of a RAS volume, turned for display: neurological
    convention (the patient's left on the image's left), anterior (axial) or superior
    (coronal, sagittal) at the top, anterior on the right of sagittal views."""
    plane = np.take(volume, index, axis=axis)
    return np.rot90(plane)


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
        gray = np.clip((_view(case.image, axis, centre[axis]) - low) / max(high - low, 1e-6),
                       0, 1)
        in_plane = [a for a in range(3) if a != axis]
        extent = (0, case.image.shape[in_plane[0]] * case.spacing[in_plane[0]],
                  0, case.image.shape[in_plane[1]] * case.spacing[in_plane[1]])
        for row, (what, labels) in enumerate(rows):
            ax = axes[row, col]
            rgb = np.repeat(gray[..., None], 3, axis=2)
            if labels is not None:
                shown = _view(labels, axis, centre[axis]).astype(np.int64)
                mask = shown > 0
                rgb[mask] = (1 - alpha) * rgb[mask] + alpha * palette[shown[mask]]
            else:
                ref = _view(case.reference, axis, centre[axis])
                pred = _view(case.predicted, axis, centre[axis])
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


# --- classification ----------------------------------------------------------------------


def split_images(cfg: RunConfigBase, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``[N, H, W(, 3)]`` and labels ``[N]`` of a split of the config's
    classification data (the sample dataset is built on first use)."""
    from domainvit.tasks.medcls.data import load_split

    return load_split(cfg.data, split)


def class_names(cfg: RunConfigBase) -> list[str]:
    from domainvit.tasks.medcls.data import dataset_info

    return list(dataset_info(cfg.data)["class_names"])


def subsample_per_class(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``per_class`` samples of every class (at random)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class]
              for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def classify_images(model: nn.Module, images: np.ndarray, image_size: int | None = None,
                    batch_size: int = 128) -> np.ndarray:
    """Class probabilities ``[N, K]`` of uint8 images, preprocessed as in evaluation
    (scaled to [0, 1], resized to ``image_size`` if given, normalised to [-1, 1])."""
    import torch

    from domainvit.tasks.medcls.data import to_tensor

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = (to_tensor(images[start:start + batch_size], image_size) - 0.5) / 0.5
            out.append(torch.softmax(model(x.to(device)).float(), dim=1).cpu())
    return torch.cat(out).numpy()


def classification_summary(probs: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    """The medcls metrics of probabilities ``[N, K]``: accuracy, balanced accuracy, ECE
    (15 bins), macro one-vs-rest AUC (when every class is present) and the confusion
    matrix (rows: reference, columns: predicted)."""
    import torch

    from domainvit.tasks.medcls.metrics import score

    result = score(torch.from_numpy(np.asarray(probs, np.float32)),
                   torch.from_numpy(np.asarray(labels, np.int64)), probs.shape[1])
    summary: dict[str, object] = {k: float(v) for k, v in result.items()
                                  if k != "confusion_matrix"}
    summary["confusion_matrix"] = result["confusion_matrix"].numpy()
    return summary


def top_confusions(cm: np.ndarray, class_names: Sequence[str], count: int = 5
                   ) -> pd.DataFrame:
    """The ``count`` largest off-diagonal cells of a confusion matrix: which reference
    class is most often called which, with the share of that class's samples."""
    cm = np.asarray(cm)
    totals = cm.sum(axis=1)
    cells = [(cm[i, j], i, j) for i in range(len(cm)) for j in range(len(cm))
             if i != j and cm[i, j] > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return pd.DataFrame([{"reference": class_names[i], "predicted": class_names[j],
                          "samples": int(n), "share_of_reference": n / totals[i]}
                         for n, i, j in cells[:count]],
                        columns=["reference", "predicted", "samples", "share_of_reference"])


def roc_curves(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
               ) -> dict[str, dict[str, object]]:
    """One-vs-rest ROC curve of every class present in ``labels``: ``fpr``, ``tpr``,
    ``thresholds`` (scikit-learn) and ``auc``."""
    from sklearn.metrics import auc, roc_curve

    curves = {}
    labels = np.asarray(labels)
    for k, name in enumerate(class_names):
        positive = labels == k
        if not positive.any() or positive.all():
            continue
        fpr, tpr, thresholds = roc_curve(positive, probs[:, k])
        curves[name] = {"fpr": fpr, "tpr": tpr, "thresholds": thresholds,
                        "auc": float(auc(fpr, tpr))}
    return curves


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15
                     ) -> pd.DataFrame:
    """The reliability diagram's data: the top-class confidence of every sample falls in
    one of ``n_bins`` equal bins of [0, 1] (bin ``i`` holds ``lower <= confidence <
    upper``; a confidence of exactly 1 goes to the last bin, as in torchmetrics). Per
    bin: ``count``, mean ``confidence``, ``accuracy`` (share of correct top-class
    predictions) and ``gap`` = accuracy - confidence (negative: over-confident). Empty
    bins have NaN confidence and accuracy."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges) - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = index == b
        n = int(inside.sum())
        conf = float(confidence[inside].mean()) if n else np.nan
        acc = float(correct[inside].mean()) if n else np.nan
        rows.append({"lower": edges[b], "upper": edges[b + 1], "count": n,
                     "confidence": conf, "accuracy": acc, "gap": acc - conf})
    return pd.DataFrame(rows)


def expected_calibration_error(bins: pd.DataFrame) -> float:
    """ECE of :func:`reliability_bins`: the count-weighted mean of |accuracy - confidence|."""
    used = bins[bins["count"] > 0]
    return float((used["count"] * used["gap"].abs()).sum() / used["count"].sum())


def selective_accuracy(probs: np.ndarray, labels: np.ndarray,
                       thresholds: Sequence[float] = (0.0, 0.5, 0.7, 0.9, 0.95, 0.99)
                       ) -> pd.DataFrame:
    """Accuracy when only predictions with top-class confidence >= a threshold are
    accepted, and the ``coverage`` (share of samples accepted); the others would go to a
    human reader."""
    probs = np.asarray(probs)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    rows = []
    for t in thresholds:
        accepted = confidence >= t
        rows.append({"threshold": float(t), "coverage": float(accepted.mean()),
                     "accuracy": float(correct[accepted].mean()) if accepted.any() else np.nan,
                     "referred": int((~accepted).sum())})
    return pd.DataFrame(rows)


def corruption_accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray,
                        corruptions: Sequence[str], severities: Sequence[int] = (1, 3, 5),
                        image_size: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Accuracy, balanced accuracy and the mean top-class confidence on the clean images
    and under every corruption at every severity (corruptions seeded with ``seed``, as
    :func:`domainvit.tasks.medcls.robustness` does with the whole test split). One row per
    evaluation, ``corruption`` ``"none"`` and ``severity`` 0 for the clean images; the
    rows also suit :func:`domainvit.tasks.medcls.robustness.markdown_table`."""
    from sklearn.metrics import balanced_accuracy_score

    from domainvit.datasets.corruptions import corrupt

    def row(name: str, severity: int, batch: np.ndarray) -> dict[str, object]:
        probs = classify_images(model, batch, image_size)
        pred = probs.argmax(axis=1)
        return {"corruption": name, "severity": severity,
                "accuracy": float(np.mean(pred == labels)),
                "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
                "mean_confidence": float(probs.max(axis=1).mean())}

    rows = [row("none", 0, images)]
    for name in corruptions:
        for severity in severities:
            rows.append(row(name, int(severity), corrupt(images, name, int(severity), seed)))
    return pd.DataFrame(rows)


def robustness_table(rows: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Rows of :func:`corruption_accuracy` as a corruption x severity table (the clean
    value in the ``clean`` column of every row, for comparison)."""
    clean = float(rows.loc[rows["corruption"] == "none", metric].iloc[0])
    corrupted = rows[rows["corruption"] != "none"]
    table = corrupted.pivot(index="corruption", columns="severity", values=metric)
    table = table.reindex(list(dict.fromkeys(corrupted["corruption"])))
    table.columns = [f"severity {s}" for s in table.columns]
    table.insert(0, "clean", clean)
    return table


def example_images(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
                   ) -> Figure:
    """One test image per class, as the classifier sees them."""
    import matplotlib.pyplot as plt

    k = len(class_names)
    cols = min(k, 6)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), layout="constrained")
    for ax in np.ravel(axes):
        ax.axis("off")
    for c, ax in zip(range(k), np.ravel(axes), strict=False):
        found = np.flatnonzero(np.asarray(labels) == c)
        if len(found):
            ax.imshow(images[found[0]], cmap="gray", vmin=0, vmax=255)
            ax.set_title(class_names[c], fontsize=9)
    fig.suptitle("Test crops, one per class (64 x 64 pixels of 2.5 mm, anterior at the top)")
    return fig


def plot_roc_curves(curves: dict[str, dict[str, object]], title: str = "ROC curves "
                    "(each class against the rest)", zoom: float = 0.1) -> Figure:
    """The ROC curve of every class (AUC in the legend) and the chance diagonal (left), and
    the same curves enlarged on false positive rates up to ``zoom`` (right), where good
    classifiers differ."""
    import matplotlib.pyplot as plt

    fig, (full, near) = plt.subplots(1, 2, figsize=(14, 6.5), layout="constrained")
    cmap = plt.get_cmap("tab20")
    for ax in (full, near):
        for i, (name, curve) in enumerate(curves.items()):
            ax.plot(curve["fpr"], curve["tpr"], color=cmap(i % 20), linewidth=1.5,
                    label=f"{name} (AUC {curve['auc']:.3f})")
        ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="chance (AUC 0.5)")
        ax.set_xlabel("false positive rate (1 - specificity)")
        ax.set_ylabel("true positive rate (sensitivity)")
        ax.grid(alpha=0.3)
    # the enlarged panel starts a little below the lowest sensitivity at a fifth of ``zoom``
    lowest = min((float(np.interp(zoom / 5, c["fpr"], c["tpr"])) for c in curves.values()),
                 default=0.0)
    full.set_xlim(0, 1)
    full.set_ylim(0, 1.01)
    full.set_title(title)
    near.set_xlim(0, zoom)
    near.set_ylim(max(0.0, lowest - 0.05), 1.005)
    near.set_title(f"Enlarged: false positive rates up to {zoom:g}")
    near.legend(fontsize=8, loc="lower right")
    return fig


def plot_reliability(bins: pd.DataFrame, title: str = "Reliability diagram") -> Figure:
    """Accuracy against confidence per bin (bars) beside perfect calibration (diagonal),
    with the number of predictions per bin underneath."""
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 8), sharex=True,
                                      height_ratios=(3, 1), layout="constrained")
    width = bins["upper"] - bins["lower"]
    used = bins["count"] > 0
    top.bar(bins.loc[used, "lower"], bins.loc[used, "accuracy"], width=width[used],
            align="edge", edgecolor="black", color="tab:blue", alpha=0.8,
            label="accuracy in the bin")
    top.scatter((bins.loc[used, "confidence"]), bins.loc[used, "accuracy"], color="black",
                s=14, zorder=3, label="mean confidence in the bin")
    top.plot([0, 1], [0, 1], color="tab:red", linestyle="--", label="perfect calibration")
    ece = expected_calibration_error(bins)
    top.set_title(f"{title} (ECE {ece:.3f})")
    top.set_ylabel("accuracy (fraction correct)")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.legend(loc="upper left", fontsize=9)
    top.grid(alpha=0.3)
    bottom.bar(bins["lower"], bins["count"], width=width, align="edge", edgecolor="black",
               color="gray")
    bottom.set_yscale("symlog")
    bottom.set_title("Predictions per confidence bin")
    bottom.set_xlabel("top-class confidence (predicted probability)")
    bottom.set_ylabel("predictions")
    return fig


def plot_corruptions(rows: pd.DataFrame, metric: str = "accuracy",
                     chance: float | None = None) -> Figure:
    """``metric`` against severity, one line per corruption, with the clean value (and
    chance level, if given) as horizontal lines."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
    clean = float(rows.loc[rows["corruption"] == "none", metric].iloc[0])
    corrupted = rows[rows["corruption"] != "none"]
    for name in dict.fromkeys(corrupted["corruption"]):
        part = corrupted[corrupted["corruption"] == name].sort_values("severity")
        ax.plot(part["severity"], part[metric], marker="o", label=name)
    ax.axhline(clean, color="black", linestyle="--", label=f"clean ({clean:.3f})")
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", label=f"chance ({chance:.3f})")
    ax.set_xticks(sorted(corrupted["severity"].unique()))
    ax.set_xlabel("corruption severity (1 mild - 5 strong)")
    ax.set_ylabel(metric.replace("_", " ") + " (fraction)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{metric.replace('_', ' ').capitalize()} under image corruptions")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    return fig
