"""The input check before every prediction (domainvit.distribution), the confidence
summaries (domainvit.confidence), and both through ``domainvit predict`` and
``domainvit data-info`` on the smoke task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from domainvit import checkpoint as ckpt
from domainvit.cli import main
from domainvit.confidence import ConfidenceSummary, max_probability, normalised_entropy
from domainvit.distribution import (
    QUANTILES,
    InputGuard,
    OutOfDistributionError,
    quantile_shift,
    quantiles,
    refuse,
    warn,
)
from domainvit.errors import UserError


def _compare(reference, *findings):
    assert reference == {"units": "metres"}
    return list(findings)


def test_a_refusal_raises_naming_the_first_cause_and_the_override():
    lines: list[str] = []
    guard = InputGuard({"units": "metres"}, report=lines.append)
    with pytest.raises(OutOfDistributionError) as caught:
        guard.check("scan.dcm", _compare, warn("intensity", "intensities far out"),
                    refuse("modality", "scan.dcm is CT; the model was trained on MR"),
                    refuse("spacing", "a later, less fundamental refusal"))
    message = str(caught.value)
    assert isinstance(caught.value, UserError)
    assert message.startswith("scan.dcm: scan.dcm is CT; the model was trained on MR.")
    assert "later" not in message and "--force" in message
    assert "\n" not in message
    assert not lines and not guard.checks  # nothing predicted, nothing reported


def test_force_predicts_and_the_record_says_forced():
    lines: list[str] = []
    guard = InputGuard({"units": "metres"}, force=True, report=lines.append)
    check = guard.check("scan.dcm", _compare, warn("intensity", "intensities far out"),
                        refuse("modality", "CT, not MR"))
    assert check.forced and check.outcome == "forced"
    record = check.record()
    assert record["forced"] and record["outcome"] == "forced"
    assert [f["aspect"] for f in record["refusals"]] == ["modality"]
    assert [f["aspect"] for f in record["warnings"]] == ["intensity"]
    # refusals are reported first, marked as overridden
    assert lines == ["scan.dcm: predicted anyway (forced): CT, not MR",
                     "scan.dcm: intensities far out"]
    assert guard.checks == [check]


def test_warnings_are_reported_and_predicting_goes_on():
    lines: list[str] = []
    guard = InputGuard({"units": "metres"}, report=lines.append)
    check = guard.check("a.csv", _compare, warn("extent", "points far out"))
    assert check.outcome == "warn" and not check.forced
    assert lines == ["a.csv: points far out"]
    assert guard.check("b.csv", _compare).outcome == "ok"
    assert len(lines) == 1


def test_force_without_refusal_is_not_recorded_as_forced():
    check = InputGuard({"units": "metres"}, force=True, report=lambda _: None).check(
        "a.csv", _compare)
    assert check.outcome == "ok" and not check.forced


def test_a_checkpoint_without_a_record_predicts_unchecked_with_one_warning():
    lines: list[str] = []
    guard = InputGuard.from_meta({"data_info": {"class_names": ["a"]}}, report=lines.append)
    assert guard.reference is None
    for name in ("a", "b"):
        check = guard.check(name, lambda reference: pytest.fail("compared without a record"))
        assert check.outcome == "unchecked" and not check.checked
    assert len(lines) == 1 and "records no training distribution" in lines[0]


def test_quantiles_and_their_shift():
    rng = np.random.default_rng(0)
    reference = quantiles(rng.normal(0, 1, 100_000))
    assert len(reference) == len(QUANTILES)
    assert reference[QUANTILES.index(0.5)] == pytest.approx(0, abs=0.02)
    same = quantiles(rng.normal(0, 1, 100_000))
    assert quantile_shift(same, reference) < 0.05
    # moved by the whole central range (about 3.3 sigma): a shift of about 1
    moved = quantiles(rng.normal(3.29, 1, 100_000))
    assert quantile_shift(moved, reference) == pytest.approx(1.0, abs=0.05)
    assert quantiles(np.array([np.nan, np.inf])) == []
    with pytest.raises(ValueError):
        quantile_shift([0.0, 1.0], reference)


def test_confidence_summary_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 20, 30))
    probs = np.exp(logits) / np.exp(logits).sum(axis=0)
    valid = rng.random((20, 30)) > 0.2
    summary = ConfidenceSummary(["a", "b", "c"])
    # two tiles give the same as one
    summary.update(probs[:, :10], valid[:10])
    summary.update(probs[:, 10:], valid[10:])
    result = summary.as_dict()
    top, labels = probs.max(axis=0), probs.argmax(axis=0)
    entropy = -(probs * np.log(probs)).sum(axis=0) / np.log(3)
    assert result["elements"] == int(valid.sum())
    assert result["mean_max_probability"] == pytest.approx(top[valid].mean(), abs=1e-6)
    assert result["mean_normalised_entropy"] == pytest.approx(entropy[valid].mean(), abs=1e-6)
    for index, name in enumerate("abc"):
        chosen = valid & (labels == index)
        entry = result["per_class"][name]
        assert entry["elements"] == int(chosen.sum())
        assert entry["mean_max_probability"] == pytest.approx(top[chosen].mean(), abs=1e-6)
    np.testing.assert_allclose(max_probability(probs), top, rtol=1e-6)
    np.testing.assert_allclose(normalised_entropy(probs), entropy, rtol=1e-5)
    one_hot = np.eye(3)[:, [0, 1, 2, 0]]
    assert normalised_entropy(one_hot).max() < 1e-6
    assert normalised_entropy(np.full((3, 2), 1 / 3)) == pytest.approx(1.0)


def test_a_class_without_elements_has_no_mean():
    summary = ConfidenceSummary(["a", "b"])
    summary.update(np.array([[0.9], [0.1]]))
    assert summary.as_dict()["per_class"]["b"] == {
        "elements": 0, "mean_max_probability": None, "mean_normalised_entropy": None}


# --- through the CLI, on the smoke task ---------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("distribution")
    config = folder / "smoke.yaml"
    config.write_text("task: smoke\nmodel: {name: smoke_mlp, hidden: 16}\n"
                      "train: {epochs: 1, batch_size: 64}\n")
    assert main(["train", str(config), "--set", f"run_dir={folder / 'run'}"]) == 0
    return config, folder / "run" / "checkpoints" / "best.safetensors"


def test_predict_warns_on_far_points_and_records_it(smoke_run, tmp_path, capsys):
    config, checkpoint = smoke_run
    assert "radius_quantiles" in ckpt.read_meta(checkpoint)["data_info"]["distribution"]
    near, far = tmp_path / "near.csv", tmp_path / "far.csv"
    near.write_text("x,y\n0.2,0.1\n-0.5,0.3\n0.1,-0.7\n")
    far.write_text("x,y\n40,30\n-50,20\n35,-45\n")
    assert main(["predict", str(config), "--checkpoint", str(checkpoint), str(near),
                 str(far), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "far.csv" in err and "near.csv" not in err
    records = {name: json.loads((tmp_path / "out" / f"{name}.prediction.json").read_text())
               for name in ("near", "far")}
    assert records["near"]["input_check"]["outcome"] == "ok"
    assert records["far"]["input_check"]["outcome"] == "warn"
    assert records["far"]["input_check"]["warnings"][0]["aspect"] == "extent"
    confidence = records["near"]["confidence"]
    assert confidence["elements"] == 3 and 1 / 3 <= confidence["mean_max_probability"] <= 1


def test_data_info_records_the_distribution_in_an_old_checkpoint(smoke_run, tmp_path, capsys):
    config, checkpoint = smoke_run
    tensors, meta = ckpt.load_checkpoint(checkpoint)
    old = tmp_path / "old.safetensors"
    ckpt.save_checkpoint(old, tensors, {**meta, "data_info": {}})
    points = tmp_path / "p.csv"
    points.write_text("0.1,0.2\n")
    assert main(["predict", str(config), "--checkpoint", str(old), str(points),
                 "--out", str(tmp_path / "a")]) == 0
    assert "records no training distribution" in capsys.readouterr().err
    assert json.loads((tmp_path / "a" / "p.prediction.json").read_text())[
        "input_check"]["outcome"] == "unchecked"

    assert main(["data-info", str(config), "--checkpoint", str(old)]) == 0
    new_tensors, new_meta = ckpt.load_checkpoint(old)
    assert new_meta["data_info"] == meta["data_info"]
    assert set(new_tensors) == set(tensors)
    assert all(np.array_equal(new_tensors[k].numpy(), tensors[k].numpy()) for k in tensors)
    assert json.loads(ckpt.sidecar_path(old).read_text())["data_info"] == meta["data_info"]
    assert main(["predict", str(config), "--checkpoint", str(old), str(points),
                 "--out", str(tmp_path / "b")]) == 0
    assert "records no training distribution" not in capsys.readouterr().err


def test_data_info_refuses_a_checkpoint_of_another_task(smoke_run, tmp_path, capsys):
    config, checkpoint = smoke_run
    tensors, meta = ckpt.load_checkpoint(checkpoint)
    other = tmp_path / "other.safetensors"
    ckpt.save_checkpoint(other, tensors, {**meta, "task": "medseg"})
    assert main(["data-info", str(config), "--checkpoint", str(other)]) == 1
    assert "checkpoint of task 'medseg'" in capsys.readouterr().err
