"""Checkpoint files: nested training state round-trips without pickle; bad files are
reported clearly; a failed write leaves the previous checkpoint intact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from domainvit import checkpoint as ckpt
from domainvit.errors import CheckpointError


def _trained_optimizer(name: str) -> torch.optim.Optimizer:
    model = torch.nn.Linear(3, 2)
    opt = (torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.9)) if name == "adamw"
           else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    for _ in range(2):
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    return opt


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_optimizer_state_round_trips(tmp_path: Path, name: str):
    opt = _trained_optimizer(name)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = ckpt.flatten_state(opt.state_dict(), "optimizer", tensors)
    ckpt.save_checkpoint(tmp_path / "c.safetensors", tensors, {"optimizer": skeleton})
    loaded, meta = ckpt.load_checkpoint(tmp_path / "c.safetensors")
    restored = ckpt.unflatten_state(meta["optimizer"], loaded)
    original = opt.state_dict()
    assert restored["param_groups"] == original["param_groups"]
    assert set(restored["state"]) == set(original["state"])  # integer keys kept
    for index, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(restored["state"][index][key], value)


def test_rng_state_with_numpy_and_tuples_round_trips(tmp_path: Path):
    state = {"numpy": np.random.get_state(), "torch": torch.get_rng_state(), "t": (1, 2.5)}
    tensors: dict[str, torch.Tensor] = {}
    skeleton = ckpt.flatten_state(state, "rng", tensors)
    ckpt.save_checkpoint(tmp_path / "r.safetensors", tensors, {"rng": skeleton})
    loaded, meta = ckpt.load_checkpoint(tmp_path / "r.safetensors")
    restored = ckpt.unflatten_state(meta["rng"], loaded)
    assert restored["t"] == (1, 2.5)
    np.random.set_state(restored["numpy"])
    a = np.random.rand(3)
    np.random.set_state(state["numpy"])
    assert np.array_equal(a, np.random.rand(3))


def test_sidecar_matches_embedded_metadata(tmp_path: Path):
    path = tmp_path / "w.safetensors"
    ckpt.save_checkpoint(path, {"model/w": torch.ones(2)}, {"step": 7})
    sidecar = json.loads(path.with_suffix(".json").read_text())
    _, meta = ckpt.load_checkpoint(path)
    assert sidecar == meta and meta["step"] == 7


def test_truncated_file_is_reported_as_corrupted(tmp_path: Path):
    path = tmp_path / "w.safetensors"
    ckpt.save_checkpoint(path, {"model/w": torch.ones(1000)}, {"step": 1})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupted or not a safetensors file"):
        ckpt.load_checkpoint(path)


def test_foreign_safetensors_file_is_rejected(tmp_path: Path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a domainvit checkpoint"):
        ckpt.load_checkpoint(path)


def test_failed_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch):
    path = tmp_path / "last.safetensors"
    ckpt.save_checkpoint(path, {"model/w": torch.ones(3)}, {"step": 1})
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"model/w": torch.zeros(3)}, {"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]


def test_shape_mismatch_names_the_tensor(tmp_path: Path):
    model = torch.nn.Linear(4, 2)
    weights = {"weight": torch.zeros(2, 5), "bias": torch.zeros(2)}
    with pytest.raises(CheckpointError, match=r"weight is \[2, 5\] in the checkpoint but \[2, 4\]"):
        ckpt.load_weights_into(model, weights, tmp_path / "x.safetensors")
