"""The task contract: what a task package supplies and what the engine, the CLI and the
dashboard may rely on. The docstrings here are the specification.

A task is one field problem (brain segmentation, hyperspectral pixel classification, ...).
It supplies what differs between fields, the model builders, the datasets, the loss, the
metrics and file-level prediction, and :mod:`domainvit.engine` does everything else
(training loop, checkpoints, resume, DDP, evaluation). A task package subclasses
:class:`Task`, decorates it with :func:`domainvit.registry.register_task` and is declared
in the ``domainvit.tasks`` entry-point group.

Data flows in one shape everywhere:

- a **batch** is a dict of tensors with ``batch["input"]`` (what the model is called on)
  and ``batch["target"]`` (what the loss and the metrics compare with: class indices,
  label volumes, or class probabilities after :meth:`Task.prepare_batch` mixed them);
  a task may add keys its own :meth:`Task.forward` reads, never keys that carry state
  from one hook to the next;
- the **data config** (the validated ``data:`` section) is passed to every hook that
  needs it; models do not carry it;
- what prediction needs from the training data travels in the checkpoint
  (:meth:`Task.data_info`) or as attributes the model declares in its constructor (its
  buffers, ``in_chans``); nothing is attached to a model after it is built.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from pydantic import BaseModel
from torch import nn
from torch.utils.data import Dataset

from domainvit.distribution import InputGuard
from domainvit.errors import UserError

__all__ = ["ModelEntry", "Task", "TaskMetrics", "TaskPredictor"]


@dataclass(frozen=True)
class ModelEntry:
    """A model a task can train: its builder and the schema of its ``model:`` section.

    ``schema`` must be a pydantic model with a ``name: Literal["<name>"]`` field; the
    builder takes the validated section and the task's validated ``data:`` section and
    returns the model, with everything it needs at prediction time as declared
    attributes.
    """

    name: str
    schema: type[BaseModel]
    build: Callable[[Any, Any], nn.Module]
    description: str = ""


@runtime_checkable
class TaskMetrics(Protocol):
    """The metrics of a task, as :meth:`Task.build_metrics` returns them.

    A ``torchmetrics.Metric`` or ``MetricCollection`` satisfies it (and is synchronised
    across DDP ranks by torchmetrics); so does any object with these four methods.
    """

    def to(self, device: torch.device) -> TaskMetrics:
        """Move the metric state to ``device``; return the metrics."""
        ...

    def reset(self) -> None:
        """Forget every update (called before each evaluation)."""
        ...

    def update(self, outputs: Any, target: torch.Tensor) -> None:
        """Add one batch: the outputs of :meth:`Task.forward` in evaluation (float32) and
        ``batch["target"]``."""
        ...

    def compute(self) -> dict[str, Any]:
        """The metrics over every update so far, by name (``"dice"``, ``"oa"``): scalars
        as floats or 0-d tensors; other tensors (a confusion matrix) are allowed and
        kept out of the scalar logs."""
        ...


@runtime_checkable
class TaskPredictor(Protocol):
    """File-level prediction, as :meth:`Task.predict_files` does it (also used by the
    dashboard and the notebooks through the task's ``predict`` module)."""

    def __call__(self, model: nn.Module, data_cfg: Any, inputs: Sequence[Path],
                 out_dir: Path, guard: InputGuard) -> list[Path]:
        """Read each input file (raising :class:`~domainvit.errors.UserError` with a
        message naming the file for one it cannot take), check it against the training
        distribution with ``guard.check`` before the model sees it (which raises on a
        refusal unless forced), predict with ``model`` in eval mode, write the results
        into ``out_dir`` atomically, in the formats the field's tools read, with a sidecar
        ``<stem>.prediction.json`` (:func:`domainvit.outputs.write_sidecar`) holding the
        check's record and, for class maps, the confidence summary; return the paths
        written."""
        ...


class Task(ABC):
    """One field problem. Subclasses set the class attributes and implement the hooks.

    The abstract methods are what every task must supply; the others have defaults that
    fit a model called on ``batch["input"]`` and metrics updated with
    ``(outputs, batch["target"])``.
    """

    #: the registry name (``domainvit train <name>/<config>``) and the dashboard page name
    name: str = ""
    description: str = ""
    #: the schema of the ``data:`` section
    data_schema: type[BaseModel]
    models: Sequence[ModelEntry] = ()
    #: the split ``domainvit eval`` uses when none is given
    eval_split: str = "val"
    #: evaluation batch size (whole volumes of different sizes need 1); ``None``: the
    #: training batch size
    eval_batch_size: int | None = None
    #: the metric the engine selects the best checkpoint by, and whether higher is better
    monitor: str = "val/loss"
    monitor_mode: str = "min"

    @abstractmethod
    def build_dataset(self, data_cfg: Any, split: str) -> Dataset:
        """The dataset of ``split`` (``"train"``, ``"val"``, ``"test"``), yielding batches'
        items: dicts with ``"input"`` and ``"target"`` tensors. Builds the task's sample
        data on first use when the config names it."""

    @abstractmethod
    def loss(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The scalar training loss of ``outputs`` (from :meth:`forward`) against
        ``batch["target"]``."""

    @abstractmethod
    def build_metrics(self, data_cfg: Any, during_training: bool = False) -> TaskMetrics:
        """The task's metrics (:class:`TaskMetrics`). ``during_training`` is true for the
        validation between epochs, where a task may leave out metrics that are slow to
        compute."""

    @abstractmethod
    def predict_files(self, model: nn.Module, data_cfg: Any, inputs: Sequence[Path],
                      out_dir: Path, guard: InputGuard) -> list[Path]:
        """Predict files: the task's :class:`TaskPredictor`. ``data_cfg`` is the
        checkpoint's data config with :meth:`data_info` filled in, so prediction never
        needs the training data; ``guard`` holds the checkpoint's training distribution
        (:mod:`domainvit.distribution`)."""

    @abstractmethod
    def sample_inputs(self, data_cfg: Any, folder: Path) -> list[Path]:
        """A few small input files of the kind :meth:`predict_files` reads, written into
        ``folder`` from the task's sample data (what a new user can try the model on; the
        contract test predicts them)."""

    def init_model(self, model: nn.Module, cfg: Any) -> None:
        """Set a new model's data-dependent state before training from scratch (e.g. a
        PCA fitted on the training data, or weights to fine-tune from); ``cfg`` is the
        whole run config. Not called when a run resumes: the checkpoint has that state.
        Default: nothing."""
        return None

    def data_info(self, data_cfg: Any) -> dict[str, Any]:
        """Values of ``data:`` fields that the model and its outputs take from the data
        when the config leaves them unset (class names, channels, image size), and under
        ``"distribution"`` the record of the training inputs that every prediction is
        checked against (:mod:`domainvit.distribution`: modality and units, spacing or
        ground sampling distance, robust statistics; JSON values only).

        Every checkpoint records them, and prediction from a checkpoint fills them into
        its config, so predicting never needs the training data. Default: none (inputs
        are then predicted unchecked, with a warning).
        """
        return {}

    def prepare_batch(self, batch: dict[str, torch.Tensor], data_cfg: Any,
                      training: bool) -> dict[str, torch.Tensor]:
        """The batch the engine runs, after it is moved to the device: a task may augment
        training batches here (mixup: mixed inputs, and class probabilities as the
        target). Must not change evaluation batches' targets. Default: unchanged."""
        return batch

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor], data_cfg: Any) -> Any:
        """The model's outputs on a batch, in training (``model.training``) and in
        evaluation (where a task may run sliding windows or test-time settings from
        ``data_cfg``). Default: ``model(batch["input"])``."""
        return model(batch["input"])

    def update_metrics(self, metrics: TaskMetrics, outputs: Any,
                       batch: dict[str, torch.Tensor]) -> None:
        """Add an evaluation batch to ``metrics``. Default:
        ``metrics.update(outputs, batch["target"])``."""
        metrics.update(outputs, batch["target"])

    def config_dir(self) -> Path:
        """The folder of the task's bundled configs (``configs/`` beside its package)."""
        return Path(inspect.getfile(type(self))).resolve().parent / "configs"

    def bundled_configs(self) -> dict[str, Path]:
        """Configs shipped with the task, by name (``quickstart``: ``configs/quickstart.yaml``)."""
        folder = self.config_dir()
        if not folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(folder.glob("*.yaml"))}

    def model_entry(self, name: str) -> ModelEntry:
        """The model entry named ``name``; a :class:`UserError` naming the known ones."""
        for entry in self.models:
            if entry.name == name:
                return entry
        known = ", ".join(m.name for m in self.models) or "none"
        raise UserError(f"task {self.name!r} has no model {name!r} (available: {known})")
