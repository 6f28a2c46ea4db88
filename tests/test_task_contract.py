"""The task contract (:mod:`domainvit.task`), checked for every registered task.

As timm's tests iterate over ``list_models()``, these iterate over the registry: a new
task is tested the moment it registers. For each task: build the model of its quickstart
config, one training step, save a checkpoint, rebuild the model from the checkpoint
alone, predict the task's sample inputs without touching the training data, and open
its dashboard page on that checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch.utils.data import DataLoader

from domainvit import checkpoint as ckpt
from domainvit.config import load_config, validate_config
from domainvit.dashboard.launch import MODELS_ENV, app_path
from domainvit.datasets import registry as data_registry
from domainvit.distribution import InputGuard
from domainvit.engine import build_model, checkpoint_meta, inference_config, load_inference_weights
from domainvit.outputs import SIDECAR_SUFFIX, output_stem
from domainvit.registry import get_task, iter_tasks
from domainvit.task import Task, TaskMetrics
from tests.dashboard.conftest import FIRST_RUN_TIMEOUT, RUN_TIMEOUT

TASKS = [task.name for task in iter_tasks()]


def has_page(task: Task) -> bool:
    """Whether the dashboard has a page module for ``task`` (as ``dashboard/app.py`` finds
    them; that module is the Streamlit script, not imported here)."""
    return importlib.util.find_spec(f"domainvit.dashboard.task_pages.{task.name}") is not None


def quickstart_config(task: Task) -> Path:
    configs = task.bundled_configs()
    names = sorted(name for name in configs if name.startswith("quickstart"))
    assert names, f"task {task.name} bundles no quickstart config: {sorted(configs)}"
    return configs[names[0]]


def test_the_registry_holds_the_built_in_tasks():
    assert {"smoke", "medseg", "medcls", "hsi"} <= set(TASKS)


@pytest.fixture(scope="module", params=TASKS)
def trained(request, tmp_path_factory) -> tuple[Task, Path, object]:
    """``(task, checkpoint, config)``: the task's quickstart model after one training step,
    saved as the engine saves a best checkpoint."""
    task = get_task(request.param)
    cfg = load_config(str(quickstart_config(task)))
    torch.manual_seed(0)
    model = build_model(task, cfg)
    task.init_model(model, cfg)
    loader = DataLoader(task.build_dataset(cfg.data, "train"), batch_size=2, shuffle=False)
    batch = next(iter(loader))
    assert {"input", "target"} <= set(batch)
    model.train()
    batch = task.prepare_batch(batch, cfg.data, training=True)
    loss = task.loss(task.forward(model, batch, cfg.data), batch)
    assert loss.dim() == 0 and math.isfinite(float(loss.detach()))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss.backward()
    optimizer.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "one training step changed no weight"

    folder = tmp_path_factory.mktemp(f"contract-{task.name}")
    path = folder / "contract.safetensors"
    meta = checkpoint_meta(cfg, "weights", epoch=1, step=1, metrics={},
                           data_info=task.data_info(cfg.data))
    ckpt.save_checkpoint(path, ckpt.prefixed("model", model.eval().state_dict()), meta)
    return task, path, model


def test_metrics_follow_the_protocol(trained):
    task, path, _ = trained
    cfg = validate_config(dict(ckpt.read_meta(path)["config"]), path.name)
    metrics = task.build_metrics(cfg.data)
    assert isinstance(metrics, TaskMetrics)
    assert isinstance(task.build_metrics(cfg.data, during_training=True), TaskMetrics)


def test_the_model_is_rebuilt_from_the_checkpoint_alone_and_predicts_sample_files(
        trained, tmp_path, monkeypatch):
    task, path, trained_model = trained
    meta = ckpt.read_meta(path)
    cfg = load_config(str(quickstart_config(task)))
    inputs = task.sample_inputs(cfg.data, tmp_path)
    assert inputs and all(p.is_file() for p in inputs)

    def no_training_data(name, *args, **kwargs):
        raise AssertionError(f"prediction asked for the sample dataset {name}")

    # from here on, nothing may read (or build) the training data
    monkeypatch.setattr(data_registry, "prepare", no_training_data)
    cfg = inference_config(validate_config(dict(meta["config"]), path.name), meta)
    model = build_model(task, cfg)
    load_inference_weights(model, cfg, path)
    model.eval()
    for name, value in trained_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    out = tmp_path / "out"
    out.mkdir()
    reported: list[str] = []
    guard = InputGuard.from_meta(meta, report=reported.append)
    assert guard.reference, "the checkpoint records no training distribution"
    with torch.no_grad():
        written = task.predict_files(model, cfg.data, inputs, out, guard)
    assert written and all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert all(p.parent == out for p in written)
    # the sample inputs are in distribution: checked, neither refused nor warned about
    assert len(guard.checks) == len(inputs)
    assert [c.outcome for c in guard.checks] == ["ok"] * len(inputs), reported
    assert not reported
    # every input's sidecar records its check
    for path in inputs:
        sidecar = out / f"{output_stem(path)}{SIDECAR_SUFFIX}"
        assert sidecar in written, sorted(p.name for p in written)
        record = json.loads(sidecar.read_text())
        assert record["input_check"]["outcome"] == "ok"


def test_the_dashboard_page_renders_on_the_checkpoint(trained, monkeypatch):
    task, path, _ = trained
    monkeypatch.setenv(MODELS_ENV, str(path.parent))
    at = AppTest.from_file(str(app_path()), default_timeout=RUN_TIMEOUT)
    at.run(timeout=FIRST_RUN_TIMEOUT)
    assert not at.exception, at.exception
    buttons = [b.key for b in at.button]
    if not has_page(task):
        # a task without a page module is listed on the home page without a way in
        assert f"open-{task.name}" not in buttons
        assert task.name in [h.value for h in at.header]
        return
    key = f"{task.name}-model"
    at.button(key=f"open-{task.name}").click().run()
    assert not at.exception, at.exception
    (choice,) = [o for o in at.selectbox(key=key).options if "contract" in o]
    at.selectbox(key=key).select(choice).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key=key).value == choice
    assert at.get("file_uploader"), "the page offers an upload"


def test_every_task_but_the_engine_smoke_test_has_a_dashboard_page():
    without = {name for name in TASKS if not has_page(get_task(name))}
    assert without <= {"smoke"}, without
