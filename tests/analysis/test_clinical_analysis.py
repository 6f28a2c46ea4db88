"""The clinical analyses (medseg, medcls and the task-free statistics) on small inputs
with known answers: Bland-Altman, volumes, Dice/HD95 per region, reliability bins and ECE
(against torchmetrics), ROC, confusions, selective accuracy, corruption accuracy, and the
figures' titles and axis labels."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from domainvit.analysis import statistics as stats
from domainvit.analysis.common import confusion_fractions, plot_confusion_matrix, save_figure
from domainvit.tasks.medcls import analysis as cls
from domainvit.tasks.medseg import analysis as seg

matplotlib.use("Agg")

NAMES = ["background", "left", "right"]


def _axes_are_labelled(fig) -> None:
    import matplotlib.pyplot as plt

    drawn = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
    assert drawn
    for ax in drawn:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_title(), "every panel has a title"
        # panels stacked on a shared x axis show its label once, under the lowest
        shared = ax.get_shared_x_axes().get_siblings(ax)
        assert any(other.get_xlabel() for other in shared), ax.get_title()
        assert ax.get_ylabel(), ax.get_title()
    plt.close(fig)


# --- Bland-Altman and volumes ----------------------------------------------------------


def test_bland_altman_on_known_numbers():
    result = stats.bland_altman([10, 12, 14, 20], [9, 13, 11, 18])
    np.testing.assert_allclose(result["differences"], [1, -1, 3, 2])
    np.testing.assert_allclose(result["means"], [9.5, 12.5, 12.5, 19])
    assert result["bias"] == pytest.approx(1.25)
    sd = np.sqrt(8.75 / 3)  # squared deviations 0.0625 + 5.0625 + 3.0625 + 0.5625, n - 1 = 3
    assert result["sd"] == pytest.approx(sd)
    assert result["lower"] == pytest.approx(1.25 - 1.96 * sd)
    assert result["upper"] == pytest.approx(1.25 + 1.96 * sd)
    assert result["n"] == 4


def test_bland_altman_refuses_unpaired_or_single_values():
    with pytest.raises(ValueError, match="same length"):
        stats.bland_altman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least two"):
        stats.bland_altman([1], [2])


def _case(reference: np.ndarray, predicted: np.ndarray, spacing=(1.0, 1.0, 1.0),
          name: str = "case") -> seg.SegmentedCase:
    image = np.random.default_rng(0).random(reference.shape).astype(np.float32)
    return seg.SegmentedCase(name, image, reference.astype(np.uint8),
                                  predicted.astype(np.uint8), spacing)


def _cubes(shift: int = 0) -> np.ndarray:
    labels = np.zeros((24, 20, 20), np.uint8)
    labels[2 + shift:12 + shift, 2:12, 2:12] = 1  # 1000 voxels
    labels[14:22, 4:9, 4:9] = 2  # 200 voxels
    return labels


def test_region_volumes_and_volume_table_in_millilitres():
    reference, predicted = _cubes(), _cubes(shift=1)
    predicted[14:22, 4:9, 4:9] = 0
    predicted[14:22, 4:9, 4:8] = 2  # 160 voxels
    case = _case(reference, predicted, spacing=(2.0, 2.0, 2.0))  # 8 mm³ = 0.008 mL a voxel
    assert case.voxel_ml == pytest.approx(0.008)
    np.testing.assert_allclose(seg.region_volumes(reference, 0.008, 3), [8.0, 1.6])
    table = seg.volume_table([case], NAMES)
    assert list(table["region"]) == ["left", "right"]
    np.testing.assert_allclose(table["reference_ml"], [8.0, 1.6])
    np.testing.assert_allclose(table["predicted_ml"], [8.0, 1.28])
    np.testing.assert_allclose(table["difference_ml"], [0.0, -0.32])
    np.testing.assert_allclose(table["difference_pct"], [0.0, -20.0])


def test_score_case_gives_dice_and_hd95_per_region_in_mm():
    reference = _cubes()
    perfect = seg.score_case(_case(reference, reference), NAMES)
    np.testing.assert_allclose(perfect["dice"], [1.0, 1.0])
    np.testing.assert_allclose(perfect["hd95_mm"], [0.0, 0.0])

    shifted = _cubes(shift=2)  # region 1 moved by 2 voxels: overlap 8 x 10 x 10
    scores = seg.score_case(_case(reference, shifted), NAMES)
    assert scores.loc[0, "dice"] == pytest.approx(2 * 800 / 2000)
    assert scores.loc[0, "hd95_mm"] == pytest.approx(2.0)
    assert scores.loc[1, "dice"] == pytest.approx(1.0)
    # the same shift on 3 mm voxels is 6 mm
    coarse = seg.score_case(_case(reference, shifted, spacing=(3.0, 3.0, 3.0)), NAMES)
    assert coarse.loc[0, "hd95_mm"] == pytest.approx(6.0)


def test_region_scores_and_summary_compare_methods():
    reference = _cubes()
    model = [_case(reference, reference, name="a"), _case(reference, _cubes(2), name="b")]
    baseline = [_case(reference, _cubes(2), name="a"), _case(reference, _cubes(2), name="b")]
    scores = pd.concat([seg.region_scores(model, NAMES, "model"),
                        seg.region_scores(baseline, NAMES, "atlas copy")])
    assert len(scores) == 2 * 2 * 2
    summary = seg.region_summary(scores)
    assert list(summary.index) == ["left", "right", "mean"]
    assert summary.loc["left", "dice (model)"] == pytest.approx(0.9)
    assert summary.loc["left", "dice (atlas copy)"] == pytest.approx(0.8)
    assert summary.loc["left", "dice_sd (model)"] == pytest.approx(np.std([1.0, 0.8], ddof=1))
    assert summary.loc["mean", "dice (model)"] == pytest.approx((0.9 + 1.0) / 2)
    assert summary.loc["left", "cases (model)"] == 2


def test_segmentation_figures_are_labelled(tmp_path):
    reference = _cubes()
    cases = [_case(reference, _cubes(2), name="a"), _case(reference, _cubes(1), name="b")]
    colours = np.array([(0, 0, 0), (255, 0, 0), (0, 0, 255)], np.uint8)
    scores = seg.region_scores(cases, NAMES)
    figures = {"slices": seg.plot_case_slices(cases[0], NAMES, colours),
               "scores": seg.plot_region_scores(scores),
               "volumes": seg.plot_bland_altman(seg.volume_table(cases, NAMES),
                                                     colours)}
    for name, fig in figures.items():
        assert fig.legends or any(ax.get_legend() for ax in fig.axes), name
        path = save_figure(fig, tmp_path / "figures", name)
        assert path.stat().st_size > 5000
        _axes_are_labelled(fig)


# --- classification ------------------------------------------------------------------------


def test_reliability_bins_on_known_confidences():
    probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.9, 0.1], [1.0, 0.0], [0.5, 0.5]])
    labels = np.array([0, 0, 0, 1, 0, 0])  # correct: yes, no, yes, no, yes, yes
    bins = stats.reliability_bins(probs, labels, n_bins=4)
    np.testing.assert_allclose(bins["lower"], [0, 0.25, 0.5, 0.75])
    assert list(bins["count"]) == [0, 0, 3, 3]  # 0.5 opens the third bin; 1.0 is in the last
    assert bins["confidence"].iloc[:2].isna().all()
    np.testing.assert_allclose(bins["confidence"].iloc[2:], [0.6, 0.9])
    np.testing.assert_allclose(bins["accuracy"].iloc[2:], [2 / 3, 2 / 3])
    np.testing.assert_allclose(bins["gap"].iloc[2:], [2 / 3 - 0.6, 2 / 3 - 0.9])
    assert stats.expected_calibration_error(probs, labels, 4) == pytest.approx((0.2 + 0.7) / 6)
    assert bins.attrs["ece"] == pytest.approx((0.2 + 0.7) / 6)


def test_reliability_bins_and_their_ece_match_torchmetrics():
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 5)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 5, 500)
    bins = stats.reliability_bins(probs, labels, 15)
    used = bins[bins["count"] > 0]
    from_bins = float((used["count"] * used["gap"].abs()).sum() / used["count"].sum())
    theirs = float(multiclass_calibration_error(torch.from_numpy(probs).float(),
                                                torch.from_numpy(labels), 5, n_bins=15))
    # the diagram's bins and the reported number agree with torchmetrics
    assert from_bins == pytest.approx(theirs, abs=1e-5)
    assert bins.attrs["ece"] == pytest.approx(theirs, abs=1e-6)


def test_classification_summary_roc_and_confusions():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1],
                      [0.3, 0.6, 0.1], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7], [0.1, 0.6, 0.3]])
    summary = cls.classification_summary(probs, labels)
    assert summary["accuracy"] == pytest.approx(6 / 8)
    cm = summary["confusion_matrix"]
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 2, 0], [0, 1, 2]])
    np.testing.assert_allclose(confusion_fractions(cm)[0], [2 / 3, 1 / 3, 0])
    confusions = stats.top_confusions(cm, ["a", "b", "c"])
    assert list(confusions["reference"]) == ["a", "c"]
    assert list(confusions["predicted"]) == ["b", "b"]
    np.testing.assert_allclose(confusions["share_of_reference"], [1 / 3, 1 / 3])

    curves = stats.roc_curves(probs, labels, ["a", "b", "c"])
    assert set(curves) == {"a", "b", "c"}
    assert curves["c"]["auc"] == pytest.approx(1.0)  # every c scores above every other
    # b: positives score 0.8, 0.6; negatives 0.05, 0.3, 0.7, 0.1, 0.1, 0.6: 0.8 beats all 6,
    # 0.6 beats 4 and ties 1 -> 10.5 of 12 pairs
    assert curves["b"]["auc"] == pytest.approx(10.5 / 12)
    fpr, tpr = curves["b"]["fpr"], curves["b"]["tpr"]
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)


def test_selective_accuracy_and_subsampling():
    probs = np.array([[0.95, 0.05], [0.55, 0.45], [0.2, 0.8], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 0])  # correct: yes, no, yes, no
    table = stats.selective_accuracy(probs, labels, thresholds=(0.0, 0.7, 0.99))
    np.testing.assert_allclose(table["coverage"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(table["accuracy"].iloc[:2], [0.5, 1.0])
    assert np.isnan(table["accuracy"].iloc[2])
    assert list(table["referred"]) == [0, 2, 4]

    many = np.repeat(np.arange(4), [10, 3, 7, 1])
    keep = cls.subsample_per_class(many, 5, seed=3)
    assert list(np.bincount(many[keep])) == [5, 3, 5, 1]
    assert np.all(np.diff(keep) > 0)


class _BrightnessModel(nn.Module):
    """Class 1 when the mean intensity (normalised to [-1, 1]) is above 0, else class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3))
        return torch.stack([-mean, mean], dim=1) * self.scale


def test_corruption_accuracy_and_tables():
    from domainvit.tasks.medcls.robustness import markdown_table

    images = np.concatenate([np.full((6, 16, 16), 50, np.uint8),
                             np.full((6, 16, 16), 200, np.uint8)])
    labels = np.repeat([0, 1], 6)
    model = _BrightnessModel().eval()
    probs = cls.classify_images(model, images, batch_size=5)
    np.testing.assert_array_equal(probs.argmax(1), labels)
    np.testing.assert_allclose(probs, cls.classify_images(model, images, batch_size=100))

    rows = cls.corruption_accuracy(model, images, labels, ["brightness", "contrast"], (1, 5))
    assert list(rows["corruption"]) == ["none", "brightness", "brightness", "contrast",
                                        "contrast"]
    assert list(rows["severity"]) == [0, 1, 5, 1, 5]
    assert rows["accuracy"].iloc[0] == 1.0
    # +0.1 keeps the dark images dark; +0.5 makes them bright: half the images turn wrong
    assert rows.loc[1, "accuracy"] == 1.0 and rows.loc[2, "accuracy"] == 0.5
    assert rows.loc[2, "balanced_accuracy"] == 0.5
    # the model stays sure of itself when it turns wrong: confidence is no warning here
    assert (rows["mean_confidence"] > 0.9).all()

    table = cls.robustness_table(rows)
    assert list(table.columns) == ["clean", "severity 1", "severity 5"]
    assert list(table.index) == ["brightness", "contrast"]
    assert table.loc["brightness", "severity 5"] == 0.5
    assert "| brightness | 1.000 | 0.500 |" in markdown_table(rows.to_dict("records"))


def test_classification_figures_are_labelled():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    probs = rng.dirichlet(np.ones(3), size=60)
    probs[np.arange(60), labels] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    rows = pd.DataFrame({"corruption": ["none", "noise", "noise"], "severity": [0, 1, 3],
                         "accuracy": [0.9, 0.7, 0.4]})
    images = rng.integers(0, 255, (60, 16, 16)).astype(np.uint8)
    for fig in (stats.plot_roc_curves(stats.roc_curves(probs, labels, NAMES)),
                stats.plot_reliability(stats.reliability_bins(probs, labels, 10)),
                cls.plot_corruptions(rows, chance=1 / 3),
                plot_confusion_matrix(np.array([[5, 1, 0], [0, 6, 0], [2, 0, 4]]), NAMES,
                                      "confusion")):
        assert any(ax.get_legend() for ax in fig.axes) or "confusion" in fig.axes[0].get_title()
        _axes_are_labelled(fig)
    fig = cls.example_images(images, labels, NAMES)
    assert fig.get_suptitle()
