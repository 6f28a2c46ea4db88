"""The trained quickstart checkpoints shipped in the repository meet the quality targets
on the test brain (MNI152, another brain than the Colin27 they were trained on)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from domainvit.datasets import brain
from domainvit.datasets.registry import prepare
from domainvit.engine import evaluate
from domainvit.registry import load_tasks

ROOT = Path(__file__).resolve().parents[2]


def weights(task: str, name: str) -> Path:
    path = ROOT / "tasks" / task / "weights" / f"{name}.safetensors"
    assert path.is_file() and path.with_suffix(".json").is_file()
    return path


def test_medcls_quickstart_classifies_the_test_brain():
    metrics = evaluate("medcls/quickstart", str(weights("medcls", "quickstart")))
    assert metrics["accuracy"] >= 0.90
    assert metrics["auc_macro"] >= 0.95


@pytest.mark.parametrize("name", ["quickstart3d"])
def test_medseg_quickstart_beats_the_atlas_copy_on_the_test_brain(name):
    load_tasks()
    metrics = evaluate(f"medseg/{name}", str(weights("medseg", name)))
    root = prepare(brain.BRAIN_LOBES)
    atlas = nib.load(root / "train" / "colin27_lobes.nii.gz")
    baseline = []
    for case in sorted((root / "test").glob("*_lobes.nii.gz")):
        truth = np.asarray(nib.load(case).dataobj)
        copied = brain.atlas_copy(atlas, nib.load(case))
        baseline += [2 * np.sum((copied == k) & (truth == k))
                     / (np.sum(copied == k) + np.sum(truth == k))
                     for k in range(1, brain.NUM_CLASSES)]
    assert metrics["dice"] >= 0.80
    assert metrics["dice"] > np.mean(baseline) + 0.15
