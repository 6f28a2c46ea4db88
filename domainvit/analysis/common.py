"""Helpers every analysis shares: bundled checkpoints, models, confusion matrices, legends,
saved figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from domainvit.config import RunConfigBase


def bundled_checkpoint(task: str, name: str) -> Path:
    """The checkpoint ``name`` shipped in ``tasks/<task>/weights/`` (may not exist)."""
    from domainvit.registry import get_task

    return get_task(task).config_dir().parent / "weights" / f"{name}.safetensors"


def load_model(config: str | Path, checkpoint: str | Path,
               overrides: Sequence[str] = ()) -> tuple[nn.Module, RunConfigBase]:
    """The model of ``config`` with the inference weights of ``checkpoint`` (EMA weights
    when it has them), in eval mode on the CPU, and the validated config with the data
    facts the checkpoint recorded (as ``domainvit predict`` loads it)."""
    from domainvit import checkpoint as ckpt
    from domainvit.config import load_config
    from domainvit.engine import build_model, inference_config, load_inference_weights
    from domainvit.registry import get_task

    cfg = load_config(str(config), list(overrides))
    cfg = inference_config(cfg, ckpt.read_meta(ckpt.resolve_checkpoint(Path(checkpoint))))
    model = build_model(get_task(cfg.task), cfg)
    load_inference_weights(model, cfg, Path(checkpoint))
    return model.eval(), cfg


def confusion_fractions(cm: np.ndarray) -> np.ndarray:
    """Rows of a confusion matrix (reference classes) divided by their totals; rows of
    classes without reference samples are 0."""
    from sklearn.metrics import confusion_matrix

    # scikit-learn normalises from samples: each cell becomes one sample weighted by its
    # count, so that the matrix is normalised by scikit-learn's own rule
    cm = np.asarray(cm, dtype=np.float64)
    k = len(cm)
    classes = np.arange(k)
    return confusion_matrix(np.repeat(classes, k), np.tile(classes, k), labels=classes,
                            sample_weight=cm.ravel(), normalize="true")


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], title: str,
                          reference: str = "reference class",
                          predicted: str = "predicted class") -> Figure:
    """A confusion matrix as row fractions (colour and, for up to 15 classes, numbers):
    row ``i`` is where the samples of class ``i`` went, so the diagonal is each class's
    recall (sensitivity)."""
    import matplotlib.pyplot as plt

    fractions = confusion_fractions(cm)
    k = len(class_names)
    size = max(5.0, 0.55 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel(predicted)
    ax.set_ylabel(reference)
    ax.set_title(title)
    if k <= 15:
        counts = np.asarray(cm)
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, f"{fractions[i, j]:.2f}", ha="center", va="center",
                            fontsize=8, color="white" if fractions[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the reference class's samples")
    return fig


def legend_patches(names: Sequence[str], colours: Sequence[Sequence[int]]) -> list[Any]:
    """Legend handles: one filled square per class in its colour (RGB 0-255)."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=np.asarray(c) / 255.0, edgecolor="black", linewidth=0.5, label=n)
            for n, c in zip(names, colours, strict=True)]


def save_figure(fig: Figure, folder: str | Path, name: str, dpi: int = 110) -> Path:
    """Write ``fig`` to ``folder/name.png`` (folders made as needed); returns the path."""
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
