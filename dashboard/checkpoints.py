"""The checkpoints the dashboard offers, and building a model from one of them.

Two sources, listed per task by the ``task`` in each checkpoint's metadata:

- bundled: the trained checkpoints committed with each task,
  ``tasks/<task>/weights/*.safetensors``;
- the folders named by ``$DOMAINVIT_MODELS`` (``os.pathsep``-separated), searched
  recursively for ``*.safetensors`` (run directories included: ``best`` and ``last``).

Each checkpoint's JSON sidecar (``<name>.json``, written with it) is read for listing
and for the config that builds the model; a checkpoint without a sidecar falls back to
the copy of the metadata in its safetensors header. Nothing is unpickled. Nothing here
imports Streamlit: the pages cache :func:`load_model` with ``st.cache_resource``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domainvit.checkpoint import read_meta
from domainvit.dashboard.launch import models_folders
from domainvit.errors import CheckpointError
from domainvit.task import Task

BUNDLED = "bundled"
MODELS_FOLDER = "models folder"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file and its metadata (the sidecar's content)."""

    path: Path
    #: how the pages name it: the file stem for bundled ones, else the path inside its folder
    name: str
    source: str
    meta: dict[str, Any] = field(compare=False, repr=False)

    @property
    def task(self) -> str:
        return str(self.meta.get("task", ""))

    @property
    def model(self) -> str:
        return str(self.meta.get("model", ""))

    @property
    def label(self) -> str:
        return f"{self.name} ({self.model}, {self.source})"

    @property
    def key(self) -> str:
        """Changes when the file is replaced, so a cached model is rebuilt."""
        stat = self.path.stat()
        return f"{self.path}:{stat.st_mtime_ns}:{stat.st_size}"


@dataclass(frozen=True)
class UnreadableCheckpoint:
    path: Path
    reason: str


@dataclass
class Catalogue:
    """Checkpoints by task name, and the files that could not be listed (with why)."""

    by_task: dict[str, list[Checkpoint]]
    unreadable: list[UnreadableCheckpoint]
    folders: list[Path]

    def for_task(self, name: str) -> list[Checkpoint]:
        return self.by_task.get(name, [])


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata of checkpoint ``path``: its sidecar, else its safetensors header."""
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{sidecar.name}: unreadable sidecar ({exc})") from None
    else:
        try:
            meta = read_meta(path)
        except CheckpointError as exc:
            raise CheckpointError(f"{path.name}: no sidecar, and {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path.name}: the metadata holds no training config")
    return meta


def _bundled_files(task: Task) -> list[Path]:
    folder = task.config_dir().parent / "weights"
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def _folder_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    # hidden names are temporary files of a checkpoint being written
    return sorted(p for p in folder.rglob("*.safetensors")
                  if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def discover(tasks: list[Task], models_env: str | None = None) -> Catalogue:
    """Every usable checkpoint of ``tasks``: bundled ones first, then the models folders.

    ``models_env`` overrides ``$DOMAINVIT_MODELS``.
    """
    known = {task.name for task in tasks}
    found: list[tuple[Path, str, str]] = []
    for task in tasks:
        found += [(p, p.stem, BUNDLED) for p in _bundled_files(task)]
    folders = models_folders(models_env)
    for folder in folders:
        found += [(p, p.relative_to(folder).with_suffix("").as_posix(), MODELS_FOLDER)
                  for p in _folder_files(folder)]
    by_task: dict[str, list[Checkpoint]] = {name: [] for name in sorted(known)}
    unreadable: list[UnreadableCheckpoint] = []
    seen: set[Path] = set()
    for path, name, source in found:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            meta = read_metadata(path)
        except CheckpointError as exc:
            unreadable.append(UnreadableCheckpoint(path, str(exc)))
            continue
        task = meta.get("task")
        if task not in known:
            unreadable.append(UnreadableCheckpoint(
                path, f"a checkpoint of task {task!r}, which is not registered here"))
            continue
        by_task[task].append(Checkpoint(path, name, source, meta))
    return Catalogue(by_task, unreadable, folders)


@dataclass
class LoadedModel:
    """A model ready to predict, its validated run config, and a lock that keeps one
    session at a time in its forward passes (the model is shared by every session)."""

    checkpoint: Checkpoint
    model: Any
    config: Any
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def load_model(checkpoint: Checkpoint) -> LoadedModel:
    """Build the model from the checkpoint's config and load its (EMA) weights, in eval
    mode, on the GPU when there is one. Raises :class:`~domainvit.errors.UserError`
    subclasses for a config or checkpoint that does not fit."""
    import torch

    from domainvit.config import validate_config
    from domainvit.engine import build_model, inference_config, load_inference_weights
    from domainvit.registry import get_task

    source = str(checkpoint.path.with_suffix(".json").name)
    cfg = inference_config(validate_config(dict(checkpoint.meta["config"]), source),
                           checkpoint.meta)
    model = build_model(get_task(cfg.task), cfg)
    load_inference_weights(model, cfg, checkpoint.path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return LoadedModel(checkpoint, model.to(device).eval(), cfg)


def card(meta: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint's card shows: training summary, data and metrics."""
    config = meta.get("config", {})
    train = config.get("train", {})
    optim = config.get("optim", {})
    data = config.get("data", {})
    model = {k: v for k, v in config.get("model", {}).items() if v is not None}
    training = {
        "epochs": train.get("epochs"),
        "batch size": train.get("batch_size"),
        "optimizer": optim.get("name"),
        "learning rate": optim.get("lr"),
        "EMA": (train.get("ema") or {}).get("enabled"),
        "saved at epoch": meta.get("epoch"),
        "step": meta.get("step"),
        "saved": meta.get("saved_at"),
    }
    data_summary = {key: data[key] for key in ("dataset", "root", "npz", "image") if
                    data.get(key) is not None}
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items()
               if isinstance(v, (int, float))}
    return {"model": model, "training": {k: v for k, v in training.items() if v is not None},
            "data": data_summary, "metrics": metrics}
