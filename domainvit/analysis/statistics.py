"""Statistics of predictions that hold for any task, and their figures.

Agreement of paired measurements (:func:`bland_altman`), one-vs-rest ROC curves
(:func:`roc_curves`, scikit-learn), calibration (:func:`reliability_bins` for the
reliability diagram, :func:`expected_calibration_error` from torchmetrics), accuracy when
only confident predictions are accepted (:func:`selective_accuracy`) and the largest
cells of a confusion matrix (:func:`top_confusions`). Inputs are arrays (probabilities
``[N, K]``, labels ``[N]``); nothing here knows a task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    bins have NaN confidence and accuracy. ``bins.attrs["ece"]`` is
    :func:`expected_calibration_error` of the same predictions."""
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
    bins = pd.DataFrame(rows)
    bins.attrs["ece"] = expected_calibration_error(probs, labels, n_bins)
    return bins


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15
                               ) -> float:
    """ECE of the top-class confidence over ``n_bins`` equal bins (torchmetrics', the
    number the medcls metrics report): the count-weighted mean of |accuracy - confidence|
    over the bins of :func:`reliability_bins`."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs = np.asarray(probs, dtype=np.float32)
    return float(multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(np.asarray(labels, np.int64)),
        probs.shape[1], n_bins=n_bins, norm="l1"))


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
    with the number of predictions per bin underneath; ``bins`` from
    :func:`reliability_bins` (its ECE in the title)."""
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
    ece = bins.attrs["ece"]
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
