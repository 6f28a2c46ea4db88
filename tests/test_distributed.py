"""DDP under torchrun with 2 Gloo processes on the CPU: same result as one process with
the same global batch; predictions sharded across ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from domainvit import checkpoint as ckpt
from domainvit.outputs import SIDECAR_SUFFIX
from tests.conftest import ROOT

# starts torchrun process groups (make test-fast leaves them out)
pytestmark = pytest.mark.slow


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "domainvit", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_gloo_processes_match_one_process(smoke_config: Path, tmp_path: Path):
    sets = ["--set", "train.epochs=2", "--set", "train.checkpoint_every=100"]
    torchrun("train", str(smoke_config), *sets, "--set", f"run_dir={tmp_path / 'ddp'}")
    torchrun("train", str(smoke_config), *sets, "--set", f"run_dir={tmp_path / 'one'}",
             nproc=1)
    ddp, meta_ddp = ckpt.load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.safetensors")
    one, meta_one = ckpt.load_checkpoint(tmp_path / "one" / "checkpoints" / "last.safetensors")
    assert meta_ddp["world_size"] == 2 and meta_one["world_size"] == 1
    assert meta_ddp["state"]["step"] == meta_one["state"]["step"] == 2 * 16
    weights_ddp, weights_one = ckpt.unprefixed("model", ddp), ckpt.unprefixed("model", one)
    for key in weights_one:
        torch.testing.assert_close(weights_ddp[key], weights_one[key], rtol=1e-4, atol=1e-5)
    # Metrics are reduced across ranks: the sharded validation equals the 1-process one.
    last_ddp = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[-1])
    last_one = json.loads((tmp_path / "one" / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("val/accuracy", "val/loss", "train/loss"):
        assert abs(last_ddp[key] - last_one[key]) < 1e-4, key


def test_predict_shards_inputs_across_ranks(smoke_config: Path, tmp_path: Path):
    torchrun("train", str(smoke_config), "--set", "train.epochs=1", "--set",
             f"run_dir={tmp_path / 'run'}", nproc=1)
    inputs = []
    for index in range(5):
        path = tmp_path / f"points{index}.csv"
        path.write_text(f"{index / 10},0.5\n")
        inputs.append(str(path))
    result = torchrun("predict", str(smoke_config), "--checkpoint", str(tmp_path / "run"),
                      *inputs, "--out", str(tmp_path / "out"))
    printed = sorted(Path(line).name for line in result.stdout.split())
    expected = sorted(f"points{index}{suffix}" for index in range(5)
                      for suffix in (".pred.csv", SIDECAR_SUFFIX))
    assert printed == expected  # each input predicted exactly once, by one rank
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == expected
