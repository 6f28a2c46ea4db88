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


def test_eval_under_torchrun_prints_one_object_equal_to_one_process(smoke_config: Path,
                                                                   tmp_path: Path):
    torchrun("train", str(smoke_config), "--set", "train.epochs=1", "--set",
             f"run_dir={tmp_path / 'run'}", nproc=1)
    args = ("eval", str(smoke_config), "--checkpoint", str(tmp_path / "run"), "--json")
    sharded = torchrun(*args).stdout
    single = json.loads(torchrun(*args, nproc=1).stdout)
    scores = json.loads(sharded)  # the whole of stdout is one object: rank 0's
    assert scores.keys() == single.keys()
    for key, value in single.items():
        assert abs(scores[key] - value) < 1e-5, key


def _metric_inputs() -> dict[str, list]:
    """Per-sample inputs of the metrics that keep Python state: 5 holography fields, 5
    desmoke frames, 12 lidar descriptors (4 of them queries)."""
    g = torch.Generator().manual_seed(0)
    holo_true = torch.randn(5, 2, 16, 16, generator=g) * 0.1 + torch.tensor([1.0, 0.0])[
        None, :, None, None]
    holo_pred = holo_true + 0.05 * torch.randn(5, 2, 16, 16, generator=g)
    clean = torch.rand(5, 3, 16, 16, generator=g)
    smoky = (clean + 0.3 * torch.rand(5, 3, 16, 16, generator=g)).clamp(0, 1)
    frames = (clean + 0.05 * torch.randn(5, 3, 16, 16, generator=g)).clamp(0, 1)
    positions = torch.rand(12, 3, generator=g, dtype=torch.float64) * 100
    targets = torch.cat([positions, (torch.arange(12) % 3 == 0).double()[:, None]], 1)
    descriptors = torch.nn.functional.normalize(
        positions.float()[:, :2] @ torch.randn(2, 8, generator=g) + 0.1 * torch.randn(
            12, 8, generator=g), dim=1)
    return {"holo": [holo_pred, holo_true], "desmoke": [frames, clean, smoky],
            "lidar": [descriptors, targets]}


def _scores(rank: int, world_size: int) -> dict[str, dict]:
    """Each metric updated with every ``world_size``-th sample from ``rank`` (as the
    evaluation's ShardSampler deals them), then computed."""
    from domainvit.tasks.desmoke.metrics import DesmokeMetrics
    from domainvit.tasks.holography.metrics import HoloMetrics
    from domainvit.tasks.lidar_place.metrics import PlaceRecallMetrics

    inputs = _metric_inputs()
    holo, desmoke, lidar = HoloMetrics(), DesmokeMetrics(), PlaceRecallMetrics(max_n=3)
    for i in range(rank, 5, world_size):
        pred, true = (t[i:i + 1] for t in inputs["holo"])
        holo.update(pred, true)
        frames, clean, smoky = (t[i:i + 1] for t in inputs["desmoke"])
        desmoke.update(frames, {"target": clean, "input": smoky})
    for i in range(rank, 12, world_size):
        lidar.update(*(t[i:i + 1] for t in inputs["lidar"]))
    lidar_scores = lidar.compute()
    return {"holo": holo.compute(), "desmoke": desmoke.compute(),
            "lidar": {k: float(v) for k, v in lidar_scores.items() if v.ndim == 0}}


def _score_rank(rank: int, world_size: int, store: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world_size)
    try:
        scores = _scores(rank, world_size)
        dist.barrier()  # no rank leaves while another still exchanges with it
    finally:
        dist.destroy_process_group()
    Path(out, f"rank{rank}.json").write_text(json.dumps(scores))


def test_metrics_kept_in_python_gather_every_rank(tmp_path: Path):
    """Holography, desmoke and lidar evaluations keep per-sample scores or sums in Python:
    under DDP, each rank's ``compute`` covers every rank's shard, as one process does."""
    import torch.multiprocessing as mp

    mp.spawn(_score_rank, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    single = json.loads(json.dumps(_scores(0, 1)))
    for rank in (0, 1):
        ranked = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert ranked.keys() == single.keys()
        for metric, values in single.items():
            assert values and ranked[metric].keys() == values.keys(), metric
            for key, value in values.items():
                assert abs(ranked[metric][key] - value) < 1e-6 * max(1.0, abs(value)), (
                    metric, key, ranked[metric][key], value)
