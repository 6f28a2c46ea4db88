"""The training engine: exact resume (also after SIGKILL), non-finite loss, gradient
accumulation, EMA, schedules, evaluation and prediction."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from domainvit import checkpoint as ckpt
from domainvit.config import ScheduleConfig, load_config
from domainvit.engine import Trainer, evaluate, predict, train
from domainvit.errors import NonFiniteLossError, UserError
from domainvit.optim import lr_factor
from domainvit.outputs import output_stem
from tests.conftest import ROOT


def model_weights(run_dir: Path, name: str = "last") -> dict[str, torch.Tensor]:
    tensors, _ = ckpt.load_checkpoint(run_dir / "checkpoints" / f"{name}.safetensors")
    return ckpt.unprefixed("model", tensors)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def test_training_learns_and_writes_run_files(smoke_config: Path, tmp_path: Path):
    run = train(str(smoke_config), [f"run_dir={tmp_path / 'run'}", "train.epochs=8"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 9))
    assert records[-1]["val/accuracy"] > 0.85
    assert records[-1]["val/accuracy"] > records[0]["val/accuracy"]
    assert records[-1]["train/loss"] < records[0]["train/loss"]
    saved = load_config(run / "config.yaml")
    assert saved.run_dir == str(run) and saved.train.epochs == 8
    assert any((run / "tensorboard").iterdir())
    _, meta = ckpt.load_checkpoint(run / "checkpoints" / "best.safetensors")
    best = max(records, key=lambda r: r["val/accuracy"])
    assert meta["metrics"]["val/accuracy"] == best["val/accuracy"]
    assert set(meta["versions"]) >= {"torch", "domainvit", "python"}


class _Interrupt(Exception):
    pass


def _interrupt_at(monkeypatch, step: int) -> None:
    original = Trainer._optimizer_step

    def step_then_maybe_stop(self):
        if self.state.step == step:
            raise _Interrupt
        original(self)

    monkeypatch.setattr(Trainer, "_optimizer_step", step_then_maybe_stop)


@pytest.mark.parametrize("stop_step", [12, 16], ids=["mid-epoch", "epoch-end"])
def test_resume_reproduces_uninterrupted_run(smoke_config: Path, tmp_path: Path, monkeypatch,
                                             stop_step: int):
    # 16 steps per epoch; checkpoint_every=5 puts the last mid-epoch checkpoint at step 10,
    # so the interrupted run loses steps 11..12 (or 11..16) and must redo them exactly.
    sets = ["model.dropout=0.3", "train.ema.enabled=true", "train.ema.decay=0.8"]
    full = train(str(smoke_config), [*sets, f"run_dir={tmp_path / 'full'}"])
    with monkeypatch.context() as patch:
        _interrupt_at(patch, stop_step)
        with pytest.raises(_Interrupt):
            train(str(smoke_config), [*sets, f"run_dir={tmp_path / 'cut'}"])
    _, meta = ckpt.load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert meta["state"]["step"] == (10 if stop_step == 12 else 16)
    train(str(smoke_config), sets, resume=str(tmp_path / "cut"))
    assert_same_weights(model_weights(full), model_weights(tmp_path / "cut"))
    assert_same_weights(model_weights(full, "best"), model_weights(tmp_path / "cut", "best"))
    lines_full = (full / "metrics.jsonl").read_text().splitlines()
    lines_cut = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(line).items() if k != "time/epoch_s"}
             for line in lines_full]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "time/epoch_s"}
                     for line in lines_cut]


def test_sigkill_then_resume_gives_identical_weights(tmp_path: Path):
    config = tmp_path / "long.yaml"
    config.write_text(
        "task: smoke\nseed: 5\nmodel: {name: smoke_mlp, hidden: 128, dropout: 0.2}\n"
        "train: {epochs: 20, batch_size: 32, checkpoint_every: 4}\n"
        "optim: {lr: 0.005}\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def command(*extra: str) -> list[str]:
        return [sys.executable, "-m", "domainvit", "train", str(config), *extra]

    subprocess.run(command("--set", f"run_dir={tmp_path / 'full'}"), check=True, cwd=ROOT,
                   env=env, capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(command("--set", f"run_dir={killed}"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sidecar = killed / "checkpoints" / "last.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(sidecar.read_text())["state"]["step"] >= 60:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _, meta = ckpt.load_checkpoint(killed / "checkpoints" / "last.safetensors")
    assert 60 <= meta["state"]["step"] < 20 * 16, "the run was not killed mid-run"
    subprocess.run(command("--resume", str(killed)), check=True, cwd=ROOT, env=env,
                   capture_output=True, timeout=600)
    assert_same_weights(model_weights(tmp_path / "full"), model_weights(killed))


def test_non_finite_loss_stops_naming_the_step_and_saves_nothing_from_it(
        tmp_path: Path, smoke_config: Path):
    poisoned = tmp_path / "poisoned.yaml"
    poisoned.write_text(smoke_config.read_text().replace("lr: 0.02", "lr: 1.0e+30"))
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf) at step \d+ \(epoch 1, "
                                                 r"batch \d+\).*Last good checkpoint: .*last"):
        train(str(poisoned), [f"run_dir={run}", "train.checkpoint_every=1"])
    tensors, meta = ckpt.load_checkpoint(run / "checkpoints" / "last.safetensors")
    weights = ckpt.unprefixed("model", tensors)
    assert meta["state"]["step"] >= 1
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_gradient_accumulation_matches_full_batch(smoke_config: Path, tmp_path: Path):
    full = train(str(smoke_config), [f"run_dir={tmp_path / 'a'}", "train.batch_size=32"])
    accum = train(str(smoke_config), [f"run_dir={tmp_path / 'b'}", "train.batch_size=16",
                                      "train.grad_accum=2"])
    a, b = model_weights(full), model_weights(accum)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_ema_weights_are_used_for_best_checkpoint(smoke_config: Path, tmp_path: Path):
    run = train(str(smoke_config), [f"run_dir={tmp_path / 'ema'}", "train.ema.enabled=true",
                                     "train.ema.decay=0.9", "train.epochs=2"])
    tensors, _ = ckpt.load_checkpoint(run / "checkpoints" / "last.safetensors")
    live = ckpt.unprefixed("model", tensors)
    ema = ckpt.unprefixed("ema", tensors)
    assert not torch.equal(live["head.weight"], ema["module.head.weight"])
    best = model_weights(run, "best")
    assert torch.equal(best["head.weight"], ema["module.head.weight"])


def test_fresh_run_refuses_to_overwrite_existing_run(smoke_config: Path, tmp_path: Path):
    run = train(str(smoke_config), [f"run_dir={tmp_path / 'r'}", "train.epochs=1"])
    before = (run / "checkpoints" / "last.safetensors").read_bytes()
    with pytest.raises(UserError, match="already holds a run"):
        train(str(smoke_config), [f"run_dir={run}"])
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == before


def test_resume_rejects_a_different_config(smoke_config: Path, tmp_path: Path):
    run = train(str(smoke_config), [f"run_dir={tmp_path / 'r'}", "train.epochs=1"])
    with pytest.raises(UserError, match="differs .* at model.hidden"):
        train(str(smoke_config), ["model.hidden=128"], resume=str(run))


def test_evaluate_reproduces_validation_metrics(smoke_config: Path, tmp_path: Path):
    run = train(str(smoke_config), [f"run_dir={tmp_path / 'r'}"])
    _, meta = ckpt.load_checkpoint(run / "checkpoints" / "best.safetensors")
    metrics = evaluate(str(smoke_config), str(run / "checkpoints" / "best.safetensors"),
                       split="val")
    assert metrics["accuracy"] == pytest.approx(meta["metrics"]["val/accuracy"])
    assert metrics["loss"] == pytest.approx(meta["metrics"]["val/loss"], rel=1e-5)


def test_predict_writes_one_file_per_input(smoke_config: Path, tmp_path: Path):
    run = train(str(smoke_config), [f"run_dir={tmp_path / 'r'}"])
    (tmp_path / "a.csv").write_text("x,y\n0.5,0.1\n-0.3,0.2\n")
    (tmp_path / "b.csv").write_text("0.1,0.9\n")
    out = predict(str(smoke_config), str(run), [str(tmp_path / "a.csv"),
                                                str(tmp_path / "b.csv")], str(tmp_path / "out"))
    assert sorted(p.name for p in out) == ["a.pred.csv", "a.prediction.json", "b.pred.csv",
                                           "b.prediction.json"]
    rows = (tmp_path / "out" / "a.pred.csv").read_text().splitlines()
    assert rows[0] == "x,y,label,p0,p1,p2" and len(rows) == 3
    probs = [float(v) for v in rows[1].split(",")[3:]]
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-4)


def test_predict_takes_a_folder_as_its_files_in_natural_order(smoke_config: Path,
                                                                tmp_path: Path):
    run = train(str(smoke_config), [f"run_dir={tmp_path / 'r'}"])
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("f10.csv", "f2.csv", ".hidden.csv"):
        (frames / name).write_text("0.5,0.1\n")
    (frames / "sub").mkdir()
    out = predict(str(smoke_config), str(run), [str(frames)], str(tmp_path / "out"))
    assert [p.name for p in out] == ["f2.pred.csv", "f2.prediction.json", "f10.pred.csv",
                                     "f10.prediction.json"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no files"):
        predict(str(smoke_config), str(run), [str(tmp_path / "empty")], str(tmp_path / "o2"))
    with pytest.raises(UserError, match="input not found"):
        predict(str(smoke_config), str(run), [str(tmp_path / "nothing.csv")],
                str(tmp_path / "o3"))


def test_predict_rejects_inputs_that_would_collide(smoke_config: Path, tmp_path: Path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "scan.csv").write_text("0,0\n")
    with pytest.raises(UserError, match="same output name 'scan'"):
        predict(str(smoke_config), str(tmp_path), [str(tmp_path / "x" / "scan.csv"),
                                                   str(tmp_path / "y" / "scan.csv")],
                str(tmp_path / "out"))


@pytest.mark.parametrize("path,stem", [
    ("scans/brain.nii.gz", "brain"), ("SCENE.TAR.GZ", "SCENE"), ("points.csv", "points"),
    ("../up/.hidden file.npy", "hidden_file"), ("é ü.png", "_"), ("...", "input"),
])
def test_output_names_keep_the_stem_and_only_safe_characters(path: str, stem: str):
    assert output_stem(Path(path)) == stem


def test_schedule_warmup_then_cosine_to_floor():
    cfg = ScheduleConfig(name="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(cfg, 0, 110) == pytest.approx(0.1)
    assert lr_factor(cfg, 9, 110) == pytest.approx(1.0)
    assert lr_factor(cfg, 60, 110) == pytest.approx(0.55)
    assert lr_factor(cfg, 110, 110) == pytest.approx(0.1)


def test_step_schedule_decays_every_step_size():
    cfg = ScheduleConfig(name="step", step_size=5, gamma=0.5)
    assert [lr_factor(cfg, s, 100) for s in (0, 4, 5, 10)] == [1.0, 1.0, 0.5, 0.25]


def test_inference_config_fills_only_the_data_fields_a_config_leaves_unset():
    from domainvit.config import validate_config
    from domainvit.engine import inference_config
    from domainvit.registry import load_tasks

    load_tasks()
    cfg = validate_config({"task": "medcls", "model": {"name": "medvitv2", "variant": "micro"},
                           "data": {"npz": "scans.npz", "image_size": 32}}, "test config")
    meta = {"data_info": {"class_names": ["a", "b"], "image_size": 28, "in_chans": 3,
                          "not_a_field": 1}}
    pinned = inference_config(cfg, meta)
    assert pinned.data.class_names == ["a", "b"] and pinned.data.in_chans == 3
    assert pinned.data.image_size == 32  # set by the config: the config wins
    assert cfg.data.class_names is None  # the given config is not changed
    assert inference_config(cfg, {}) is cfg
    with pytest.raises(ValueError, match="in_chans"):
        inference_config(cfg, {"data_info": {"in_chans": 2}})


def test_checkpoints_record_the_tasks_data_info(smoke_config: Path, tmp_path: Path):
    train(str(smoke_config), [f"run_dir={tmp_path / 'run'}"])
    for name in ("best", "last"):
        meta = ckpt.read_meta(tmp_path / "run" / "checkpoints" / f"{name}.safetensors")
        # the smoke task takes no data fields from its data, only the record of its
        # training points' distribution
        assert set(meta["data_info"]) == {"distribution"}
        assert len(meta["data_info"]["distribution"]["radius_quantiles"]) == 9
        assert meta["task"] == "smoke"
