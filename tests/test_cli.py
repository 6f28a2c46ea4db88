"""The command line: help everywhere, the task list (unavailable tasks included), JSON
output, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch.distributed as dist

from domainvit import checkpoint as ckpt
from domainvit.cli import build_parser, main
from domainvit.registry import declared_tasks
from tests.conftest import ROOT, run_cli

COMMANDS = [["list"], ["train"], ["eval"], ["predict"], ["data"], ["data", "list"],
            ["data", "prepare"], ["dashboard"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: domainvit" in capsys.readouterr().out


def test_list_shows_tasks_models_and_configs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "smoke:" in out and "model  smoke_mlp" in out and "config smoke/quickstart" in out


def test_every_task_package_is_declared_as_an_entry_point():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "entry-points"]["domainvit.tasks"]
    packages = {p.name for p in (ROOT / "tasks").iterdir() if (p / "__init__.py").is_file()}
    assert declared == {name: f"domainvit.tasks.{name}" for name in packages}
    assert {entry.name for entry in declared_tasks()} >= packages


def _task_distribution(folder: Path, package_source: str) -> dict[str, str]:
    """A distribution ``fake-tasks`` in ``folder`` that declares the task ``fake`` (its
    package's source is ``package_source``); the environment that puts it on the path."""
    (folder / "fake_tasks").mkdir()
    (folder / "fake_tasks" / "__init__.py").write_text(package_source)
    info = folder / "fake_tasks-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-tasks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[domainvit.tasks]\nfake = fake_tasks\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder),
                                                         os.environ.get("PYTHONPATH")]))}


def test_list_names_the_missing_dependency_of_an_unavailable_task(tmp_path: Path):
    env = _task_distribution(tmp_path, "import lidar_reader_not_installed\n")
    result = run_cli("list", env=env)
    assert result.returncode == 0, result.stderr
    assert "fake: unavailable (missing dependency: lidar_reader_not_installed)" in result.stdout
    assert "smoke:" in result.stdout


@pytest.mark.parametrize("source,error", [
    ("import fake_tasks.model\n", "ModuleNotFoundError: No module named 'fake_tasks.model'"),
    ("from domainvit.registry import register_tusk\n",
     "ImportError: cannot import name 'register_tusk' from 'domainvit.registry'"),
], ids=["missing module", "missing name"])
def test_an_import_error_of_our_own_code_is_a_bug_not_an_unavailable_task(
        tmp_path: Path, source: str, error: str):
    result = run_cli("list", env=_task_distribution(tmp_path, source))
    assert result.returncode == 1 and "unavailable" not in result.stdout
    assert error in result.stderr
    assert "(while loading task 'fake' from fake_tasks)" in result.stderr


def test_a_command_about_one_task_imports_no_other_task():
    """Resolving ``TASK/NAME`` and building the task import that task's package alone:
    the others' imports (MONAI, the video and hyperspectral stacks) cost seconds per
    command."""
    script = ("import sys\n"
              "from domainvit.config import resolve_config_path\n"
              "from domainvit.registry import get_task\n"
              "print(resolve_config_path('lidar_place/quickstart').name)\n"
              "get_task('lidar_place')\n"
              "print(sorted({m.split('.')[2] for m in sys.modules\n"
              "              if m.startswith('domainvit.tasks.')}))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["quickstart.yaml", "['lidar_place']"]


def test_an_unavailable_task_named_alone_says_what_it_misses(tmp_path: Path):
    env = _task_distribution(tmp_path, "import lidar_reader_not_installed\n")
    config = tmp_path / "fake.yaml"
    config.write_text("task: fake\n")
    result = run_cli("train", str(config), env=env)
    _one_line_error(result, "task 'fake' is not available here "
                            "(missing dependency: lidar_reader_not_installed)")
    result = run_cli("train", str(config), "--set", "task=nonesuch", env=env)
    _one_line_error(result, "unknown task 'nonesuch' (registered tasks: desmoke, holography,")


def test_a_command_leaves_the_process_group_it_ran_in(capsys):
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        assert main(["list"]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "smoke.yaml"
    config.write_text("task: smoke\nmodel: {name: smoke_mlp, hidden: 16}\n"
                      "train: {epochs: 1, batch_size: 64}\n")
    assert main(["train", str(config), "--set", f"run_dir={folder / 'run'}"]) == 0
    return config, folder / "run"


def test_eval_json_prints_exactly_one_object(trained_run):
    config, run = trained_run
    result = run_cli("eval", str(config), "--checkpoint", str(run), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert set(metrics) == {"loss", "accuracy", "balanced_accuracy"}
    assert all(isinstance(v, float) for v in metrics.values())


def _one_line_error(result, pattern: str) -> None:
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("domainvit: error: ")
    assert pattern in lines[-1], lines[-1]


def test_missing_config_is_one_line(tmp_path: Path):
    _one_line_error(run_cli("train", str(tmp_path / "none.yaml")), "not found")


def test_malformed_config_is_one_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: smoke\n  model: : :\n")
    _one_line_error(run_cli("train", str(bad)), "invalid YAML at line")


def test_unknown_task_is_one_line(tmp_path: Path):
    bad = tmp_path / "t.yaml"
    bad.write_text("task: segment_everything\nmodel: {name: x}\n")
    _one_line_error(run_cli("train", str(bad)), "unknown task 'segment_everything'")


def test_unknown_model_is_one_line(trained_run, capsys):
    config, _ = trained_run
    assert main(["train", str(config), "--set", "model.name=vit_huge"]) == 1
    err = capsys.readouterr().err
    assert "model.name" in err and "smoke_mlp" in err and len(err.strip().splitlines()) == 1


def test_checkpoint_of_another_task_is_rejected(trained_run, tmp_path: Path, capsys):
    config, run = trained_run
    tensors, meta = ckpt.load_checkpoint(run / "checkpoints" / "best.safetensors")
    other = tmp_path / "other.safetensors"
    ckpt.save_checkpoint(other, tensors, {**meta, "task": "medseg", "model": "transdae_2d"})
    assert main(["eval", str(config), "--checkpoint", str(other)]) == 1
    assert "checkpoint of task 'medseg'" in capsys.readouterr().err


def test_checkpoint_with_other_shapes_is_rejected(trained_run, capsys):
    config, run = trained_run
    assert main(["eval", str(config), "--checkpoint", str(run), "--set", "model.hidden=8"]) == 1
    assert "shape mismatch" in capsys.readouterr().err


def test_corrupted_checkpoint_is_one_line(trained_run, tmp_path: Path):
    config, run = trained_run
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((run / "checkpoints" / "best.safetensors").read_bytes()[:100])
    _one_line_error(run_cli("eval", str(config), "--checkpoint", str(broken)),
                    "corrupted or not a safetensors file")


def test_bad_prediction_input_is_one_line(trained_run, tmp_path: Path, capsys):
    config, run = trained_run
    bad = tmp_path / "cube.npy"
    import numpy as np

    np.save(bad, np.zeros((4, 3)))
    assert main(["predict", str(config), "--checkpoint", str(run), str(bad), "--out",
                 str(tmp_path / "o")]) == 1
    assert "expected an [N, 2] array of points, got shape [4, 3]" in capsys.readouterr().err


def test_resume_keeps_last_checkpoint_when_config_is_wrong(trained_run, capsys):
    config, run = trained_run
    before = (run / "checkpoints" / "last.safetensors").read_bytes()
    assert main(["train", str(config), "--resume", str(run), "--set", "optim.lr=5"]) == 1
    assert "optim.lr" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == before

