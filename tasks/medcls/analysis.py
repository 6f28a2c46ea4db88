"""Clinical analysis of the classification models (the notebook
``notebooks/clinical_analysis.ipynb``): region classification of the ``brain-mnist``
test split (crops of the MNI152 brain).

:func:`classify_images` gives class probabilities (the preprocessing of evaluation,
:func:`~domainvit.tasks.medcls.data.model_input`), :func:`classification_summary` the
task's metrics (:func:`domainvit.tasks.medcls.metrics.score`), and
:func:`corruption_accuracy` accuracy under each corruption and severity
(:mod:`domainvit.datasets.corruptions`, the protocol of
:func:`domainvit.tasks.medcls.robustness`). ROC curves, calibration and selective
accuracy of the probabilities are task-free: :mod:`domainvit.analysis.statistics`.

Every ``plot_*`` function draws the data of one of these into a matplotlib figure and
returns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from domainvit.config import RunConfigBase


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

    from domainvit.tasks.medcls.data import model_input

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = model_input(images[start:start + batch_size], image_size)
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
