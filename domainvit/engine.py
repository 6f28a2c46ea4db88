"""One training, evaluation and prediction loop for every task.

A task (:class:`domainvit.task.Task`) supplies the model, datasets, loss and metrics;
this module does the rest: devices and mixed precision, DDP under ``torchrun``,
optimizers and schedules, gradient accumulation and clipping, EMA weights, progress
bars, ``metrics.jsonl`` and TensorBoard logs, best-checkpoint selection, and resumable
checkpoints that restore a killed run bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from domainvit import checkpoint as ckpt
from domainvit.config import RunConfigBase, config_to_dict, dump_config, load_config
from domainvit.distributed import (
    DistInfo,
    ResumableDistributedSampler,
    ShardSampler,
    all_ranks_true,
    barrier,
    init_distributed,
)
from domainvit.distribution import InputGuard
from domainvit.errors import CheckpointError, ConfigError, NonFiniteLossError, UserError
from domainvit.files import folder_files
from domainvit.optim import build_optimizer, build_scheduler
from domainvit.outputs import output_stem
from domainvit.registry import get_task
from domainvit.task import Task

# --- devices, precision, seeding ------------------------------------------------------


def setup_device(choice: str) -> tuple[torch.device, DistInfo]:
    """The device for ``train.device`` (this rank's GPU under torchrun), after joining the
    process group that torchrun describes (NCCL on GPUs, Gloo on CPUs)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' requested but no CUDA device is available")
    use_cuda = choice == "cuda" or (choice == "auto" and torch.cuda.is_available())
    info = init_distributed("cuda" if use_cuda else "cpu")
    return (torch.device("cuda", info.local_rank) if use_cuda else torch.device("cpu")), info


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` on ``device`` (None: plain float32)."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision: 'fp16' needs a CUDA device; use 'bf16' or 'fp32'")
    return torch.float16 if precision == "fp16" else torch.bfloat16


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # CPU kernels are deterministic for a fixed thread count; the switch matters on GPUs
    # (and costs seconds of imports, so it is left off elsewhere).
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def rng_state() -> tuple[dict[str, torch.Tensor], Any]:
    tensors: dict[str, torch.Tensor] = {}
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return tensors, ckpt.flatten_state(state, "rng", tensors)


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def build_model(task: Task, cfg: RunConfigBase) -> nn.Module:
    return task.model_entry(cfg.model.name).build(cfg.model, cfg.data)


# --- checkpoints of a run ---------------------------------------------------------------


def checkpoint_meta(cfg: RunConfigBase, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "task": cfg.task,
        "model": cfg.model.name,
        "config": config_to_dict(cfg),
        "versions": ckpt.library_versions(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    }


def inference_config(cfg: RunConfigBase, meta: dict[str, Any]) -> RunConfigBase:
    """``cfg`` with the data facts a checkpoint recorded (``data_info``, see
    :meth:`Task.data_info`) filled into the ``data:`` fields the config leaves unset, so
    that building the model reads no training data."""
    info = meta.get("data_info") or {}
    data = cfg.data
    fields = type(data).model_fields
    unset = {k: v for k, v in info.items() if k in fields and getattr(data, k) is None}
    if not unset:
        return cfg
    pinned = type(data).model_validate({**data.model_dump(), **unset})
    return cfg.model_copy(update={"data": pinned})


def load_inference_weights(model: nn.Module, cfg: RunConfigBase, path: Path) -> dict[str, Any]:
    """Load the weights to predict with (EMA weights when the checkpoint has them)."""
    path = ckpt.resolve_checkpoint(Path(path))
    tensors, meta = ckpt.load_checkpoint(path)
    if meta.get("task") != cfg.task:
        raise CheckpointError(
            f"{path} is a checkpoint of task {meta.get('task')!r} (model "
            f"{meta.get('model')!r}), but the config is for task {cfg.task!r}"
        )
    if meta.get("model") != cfg.model.name:
        raise CheckpointError(
            f"{path} is a checkpoint of model {meta.get('model')!r}, but the config builds "
            f"{cfg.model.name!r}"
        )
    ema_weights = ckpt.unprefixed("ema", tensors)
    if ema_weights:
        ema_weights = {k.removeprefix("module."): v for k, v in ema_weights.items()
                       if k.startswith("module.")}
    ckpt.load_weights_into(model, ema_weights or ckpt.unprefixed("model", tensors), path)
    return meta


# --- data loading ------------------------------------------------------------------------


def _loader_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    # A generator of the loader's own keeps the loader from drawing on the global RNG
    # (which DataLoader does at every iter()), so a resumed epoch sees the same RNG
    # stream as an uninterrupted one.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 1009 + rank)


def eval_loader(dataset: Dataset, batch_size: int, info: DistInfo, workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=max(1, batch_size // info.world_size),
        sampler=ShardSampler(len(dataset), info.rank, info.world_size),
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
    )


@torch.no_grad()
def run_evaluation(
    task: Task,
    data_cfg: Any,
    model: nn.Module,
    loader: DataLoader,
    metrics: Any,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    show_progress: bool,
    desc: str,
    curves: bool = False,
) -> dict[str, Any]:
    """Loss and task metrics over ``loader`` (of the data described by ``data_cfg``),
    reduced across DDP ranks: the scalar metrics as floats and, with ``curves``, the
    one-dimensional ones (recall at N = 1..25) as lists of floats."""
    from torchmetrics import MeanMetric

    model.eval()
    metrics.reset()
    mean_loss = MeanMetric().to(device)
    for batch in tqdm(loader, desc=desc, leave=False, disable=not show_progress,
                      file=sys.stderr):
        batch = task.prepare_batch(to_device(batch, device), data_cfg, training=False)
        with _autocast(device, amp_dtype):
            outputs = task.forward(model, batch, data_cfg)
            loss = task.loss(outputs, batch)
        mean_loss.update(loss.float(), weight=_batch_size(batch))
        task.update_metrics(metrics, _float_outputs(outputs), batch)
    result = {"loss": float(mean_loss.compute())}
    for name, value in metrics.compute().items():
        value = torch.as_tensor(value).detach().float().cpu()  # floats are allowed too
        if value.numel() == 1:
            result[name] = float(value)
        elif curves and value.dim() == 1:
            result[name] = value.tolist()
    return result


def _float_outputs(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor) and outputs.is_floating_point():
        return outputs.float()
    return outputs


def _batch_size(batch: dict[str, torch.Tensor]) -> int:
    return len(next(iter(batch.values())))


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# --- training ------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Where a run is: the next (epoch, batch) to process and the optimizer step count."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_value: float | None = None
    #: running sum and count of the current epoch's training losses (for its mean)
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    best_epoch: int | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Trains ``cfg`` in ``run_dir``; every rank constructs one, rank 0 writes files."""

    def __init__(self, cfg: RunConfigBase, run_dir: Path, resume: bool = False) -> None:
        self.cfg = cfg
        self.task = get_task(cfg.task)
        self.run_dir = Path(run_dir)
        self.tcfg = cfg.train
        self.device, self.info = setup_device(self.tcfg.device)
        self.amp_dtype = autocast_dtype(self.tcfg.precision, self.device)
        if self.tcfg.batch_size % self.info.world_size:
            raise ConfigError(
                f"train.batch_size={self.tcfg.batch_size} must be divisible by the number "
                f"of processes ({self.info.world_size})"
            )
        self.rank_batch = self.tcfg.batch_size // self.info.world_size
        self.monitor = self.tcfg.monitor or self.task.monitor
        self.monitor_mode = self.tcfg.monitor_mode or self.task.monitor_mode

        seed_everything(cfg.seed, self.tcfg.deterministic, self.device)
        self.train_set = self.task.build_dataset(cfg.data, "train")
        self.val_set = self.task.build_dataset(cfg.data, "val")
        self.sampler = ResumableDistributedSampler(
            self.train_set, self.info.world_size, self.info.rank, cfg.seed
        )
        self.batches_per_epoch = len(self.sampler) // self.rank_batch
        self.steps_per_epoch = self.batches_per_epoch // self.tcfg.grad_accum
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the training set has {len(self.train_set)} samples, fewer than one "
                f"optimizer step needs (train.batch_size={self.tcfg.batch_size} x "
                f"train.grad_accum={self.tcfg.grad_accum})"
            )
        self.total_steps = self.steps_per_epoch * self.tcfg.epochs

        model = build_model(self.task, cfg)
        if not resume:
            self.task.init_model(model, cfg)
        self.data_info = self.task.data_info(cfg.data)
        model = model.to(self.device)
        self.ema = (
            AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.tcfg.ema.decay),
                          use_buffers=True)
            if self.tcfg.ema.enabled else None
        )
        self.model = (
            DistributedDataParallel(model, device_ids=[self.device.index]
                                    if self.device.type == "cuda" else None)
            if self.info.enabled else model
        )
        self.optimizer = build_optimizer(model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, self.total_steps)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.metrics = self.task.build_metrics(cfg.data, during_training=True).to(self.device)
        # Training randomness (dropout, augmentation) differs per rank; the model's
        # initial weights above are the same on every rank.
        torch.manual_seed(cfg.seed + self.info.rank)
        self.state = TrainState()
        if resume:
            self._restore(self.last_path)
        self.writer = None

    # paths
    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def last_path(self) -> Path:
        return self.ckpt_dir / "last.safetensors"

    @property
    def best_path(self) -> Path:
        return self.ckpt_dir / "best.safetensors"

    # checkpoints
    def _save_last(self) -> None:
        tensors = ckpt.prefixed("model", unwrap(self.model).state_dict())
        if self.ema is not None:
            tensors.update(ckpt.prefixed("ema", self.ema.state_dict()))
        skeleton = {
            "optimizer": ckpt.flatten_state(self.optimizer.state_dict(), "optimizer", tensors),
            "scheduler": ckpt.flatten_state(self.scheduler.state_dict(), "scheduler", tensors),
            "scaler": ckpt.flatten_state(self.scaler.state_dict(), "scaler", tensors),
        }
        rng_tensors, skeleton["rng"] = rng_state()
        tensors.update(rng_tensors)
        meta = checkpoint_meta(
            self.cfg, "train_state", state=vars(self.state), trainer=skeleton,
            world_size=self.info.world_size, data_info=self.data_info,
        )
        ckpt.save_checkpoint(self.last_path, tensors, meta)

    def _save_best(self, metrics: dict[str, float]) -> None:
        weights = (self.ema.module if self.ema is not None else unwrap(self.model)).state_dict()
        meta = checkpoint_meta(self.cfg, "weights", epoch=self.state.epoch,
                               step=self.state.step, metrics=metrics, data_info=self.data_info)
        ckpt.save_checkpoint(self.best_path, ckpt.prefixed("model", weights), meta)

    def _restore(self, path: Path) -> None:
        if not path.is_file():
            raise CheckpointError(f"{self.run_dir} has no checkpoint to resume from ({path})")
        tensors, meta = ckpt.load_checkpoint(path)
        if meta.get("kind") != "train_state" or meta.get("task") != self.cfg.task:
            raise CheckpointError(f"{path} is not a resumable checkpoint of task "
                                  f"{self.cfg.task!r}")
        if meta.get("world_size", 1) != self.info.world_size:
            raise CheckpointError(
                f"{path} was written by {meta['world_size']} processes; resume with the "
                f"same number (now {self.info.world_size}) so the data order stays the same"
            )
        ckpt.load_weights_into(unwrap(self.model), ckpt.unprefixed("model", tensors), path)
        if self.ema is not None:
            self.ema.load_state_dict(ckpt.unprefixed("ema", tensors))
        trainer = meta["trainer"]
        self.optimizer.load_state_dict(ckpt.unflatten_state(trainer["optimizer"], tensors))
        self.scheduler.load_state_dict(ckpt.unflatten_state(trainer["scheduler"], tensors))
        self.scaler.load_state_dict(ckpt.unflatten_state(trainer["scaler"], tensors))
        restore_rng_state(ckpt.unflatten_state(trainer["rng"], tensors))
        self.state = TrainState(**meta["state"])

    # logging
    def _open_logs(self) -> None:
        if not self.info.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        metrics_file = self.run_dir / "metrics.jsonl"
        if metrics_file.exists():
            # Drop records written after the checkpoint we resumed from.
            kept = [line for line in metrics_file.read_text().splitlines()
                    if line and json.loads(line)["step"] <= self.state.step]
            metrics_file.write_text("".join(line + "\n" for line in kept))
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"),
                                    purge_step=self.state.step or None)

    def _log_epoch(self, record: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if "/" in key:
                self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def _is_better(self, value: float) -> bool:
        best = self.state.best_value
        if best is None:
            return True
        return value > best if self.monitor_mode == "max" else value < best

    # the loop
    def fit(self) -> dict[str, float]:
        self._open_logs()
        show = self.info.is_main
        model, accum = self.model, self.tcfg.grad_accum
        epochs = tqdm(range(self.state.epoch, self.tcfg.epochs), desc="epochs", disable=not show,
                      initial=self.state.epoch, total=self.tcfg.epochs, file=sys.stderr)
        for epoch in epochs:
            model.train()
            self.sampler.set_epoch(epoch)
            first_batch = self.state.batch if epoch == self.state.epoch else 0
            self.sampler.set_start(first_batch * self.rank_batch)
            loader = DataLoader(
                self.train_set, batch_size=self.rank_batch, sampler=self.sampler,
                num_workers=self.tcfg.num_workers, drop_last=True,
                generator=_loader_generator(self.cfg.seed, epoch, self.info.rank),
            )
            usable = self.steps_per_epoch * accum
            bar = tqdm(total=self.steps_per_epoch, initial=first_batch // accum,
                       desc=f"epoch {epoch + 1}", leave=False, disable=not show,
                       file=sys.stderr)
            if first_batch == 0:
                self.state.epoch_loss_sum, self.state.epoch_loss_count = 0.0, 0
            epoch_start = time.time()
            for batch_index, batch in enumerate(loader, start=first_batch):
                if batch_index >= usable:
                    break
                batch = self.task.prepare_batch(to_device(batch, self.device), self.cfg.data,
                                                training=True)
                sync = (batch_index + 1) % accum == 0
                no_sync = model.no_sync() if self.info.enabled and not sync else (
                    contextlib.nullcontext())
                with no_sync:
                    with _autocast(self.device, self.amp_dtype):
                        outputs = self.task.forward(model, batch, self.cfg.data)
                        loss = self.task.loss(outputs, batch)
                    loss_value = loss.detach().float()
                    finite = bool(torch.isfinite(loss_value))
                    if not all_ranks_true(finite, self.device):
                        self._stop_non_finite(loss_value, epoch, batch_index)
                    self.scaler.scale(loss / accum).backward()
                self.state.epoch_loss_sum += float(loss_value)
                self.state.epoch_loss_count += 1
                if not sync:
                    continue
                self._optimizer_step()
                self.state.step += 1
                self.state.batch = batch_index + 1
                bar.update(1)
                if self.state.step % self.tcfg.log_every == 0 and show:
                    lr = self.scheduler.get_last_lr()[0]
                    mean_loss = self.state.epoch_loss_sum / self.state.epoch_loss_count
                    bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
                    self.writer.add_scalar("train/loss_step", float(loss_value), self.state.step)
                    self.writer.add_scalar("train/lr", lr, self.state.step)
                if (self.tcfg.checkpoint_every and self.state.step % self.tcfg.checkpoint_every
                        == 0 and self.state.batch < usable and self.info.is_main):
                    self._save_last()
            bar.close()
            self.state.epoch, self.state.batch = epoch + 1, 0
            self._end_epoch(epoch, time.time() - epoch_start)
        if self.writer is not None:
            self.writer.close()
        barrier()
        return self.state.last_metrics

    def _optimizer_step(self) -> None:
        if self.tcfg.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(unwrap(self.model))

    def _stop_non_finite(self, loss: torch.Tensor, epoch: int, batch_index: int) -> None:
        last = self.last_path if self.last_path.is_file() else None
        raise NonFiniteLossError(
            f"loss is {float(loss)} at step {self.state.step + 1} (epoch {epoch + 1}, batch "
            f"{batch_index + 1}); the run stopped without saving this step. Last good "
            f"checkpoint: {last or 'none'}. Lower optim.lr or set train.clip_grad_norm."
        )

    def _end_epoch(self, epoch: int, seconds: float) -> None:
        totals = torch.tensor([self.state.epoch_loss_sum, self.state.epoch_loss_count],
                              dtype=torch.float64, device=self.device)
        if self.info.enabled:
            torch.distributed.all_reduce(totals)
        record: dict[str, Any] = {
            "epoch": epoch + 1, "step": self.state.step,
            "train/loss": float(totals[0] / max(totals[1], 1)),
            "train/lr": self.scheduler.get_last_lr()[0], "time/epoch_s": round(seconds, 3),
        }
        validate = (epoch + 1) % self.tcfg.val_every == 0 or epoch + 1 == self.tcfg.epochs
        if validate:
            eval_model = self.ema.module if self.ema is not None else unwrap(self.model)
            val = run_evaluation(
                self.task, self.cfg.data, eval_model,
                eval_loader(self.val_set, self.task.eval_batch_size or self.tcfg.batch_size,
                            self.info, self.tcfg.num_workers),
                self.metrics, self.device, self.amp_dtype, self.info.is_main, "validate",
            )
            record.update({f"val/{k}": v for k, v in val.items()})
            self.state.last_metrics = {f"val/{k}": v for k, v in val.items()}
            if self.monitor not in record:
                known = ", ".join(k for k in record if k.startswith("val/"))
                raise ConfigError(f"train.monitor: {self.monitor!r} is not a validation "
                                  f"metric of this task (available: {known})")
            if self._is_better(record[self.monitor]):
                self.state.best_value, self.state.best_epoch = record[self.monitor], epoch + 1
                if self.info.is_main:
                    self._save_best(self.state.last_metrics)
        self._log_epoch(record)
        if self.info.is_main:
            self._save_last()
            summary = ", ".join(f"{k}={v:.4g}" for k, v in record.items()
                                if k.startswith(("train/loss", "val/")))
            tqdm.write(f"epoch {epoch + 1}/{self.tcfg.epochs}: {summary}", file=sys.stderr)


def default_run_dir(cfg: RunConfigBase) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.task}-{cfg.model.name}-{stamp}"


def prepare_run(config: str, overrides: Sequence[str], resume: str | None) -> tuple[
        RunConfigBase, Path]:
    """Validate the config and settle the run directory (new run, or one to resume)."""
    cfg = load_config(config, list(overrides))
    if resume is None:
        run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
        if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
            raise UserError(f"run directory {run_dir} already holds a run; resume it with "
                            f"--resume {run_dir} or choose another run_dir")
        cfg = cfg.model_copy(update={"run_dir": str(run_dir)})
        return cfg, run_dir
    run_dir = Path(resume)
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise UserError(f"--resume {run_dir}: not a run directory (no config.yaml)")
    saved = load_config(saved_path)
    cfg = cfg.model_copy(update={"run_dir": str(run_dir)})
    changed = _changed_keys(config_to_dict(saved), config_to_dict(cfg))
    changed = [k for k in changed if k not in _RESUMABLE_CHANGES]
    if changed:
        raise ConfigError(
            f"--resume {run_dir}: the config differs from the run's config.yaml at "
            f"{', '.join(changed)}; resume with the run's own config"
        )
    return cfg, run_dir


#: settings a resumed run may change (e.g. train for more epochs)
_RESUMABLE_CHANGES = {"train.epochs", "train.log_every", "train.checkpoint_every"}


def _changed_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [c for k in keys
                for c in _changed_keys(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def train(config: str, overrides: Sequence[str] = (), resume: str | None = None) -> Path:
    """Train from a config; returns the run directory."""
    cfg, run_dir = prepare_run(config, overrides, resume)
    trainer = Trainer(cfg, run_dir, resume=resume is not None)
    if trainer.info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, run_dir / "config.yaml")
        print(f"run directory: {run_dir}", file=sys.stderr)
    trainer.fit()
    return run_dir


def evaluate(config: str, checkpoint: str, overrides: Sequence[str] = (),
             split: str | None = None) -> dict[str, Any]:
    """Metrics of a checkpoint on a split of the config's data (default: the task's):
    scalars as floats, one-dimensional metrics (recall at N) as lists."""
    cfg = load_config(config, list(overrides))
    task = get_task(cfg.task)
    device, info = setup_device(cfg.train.device)
    model = build_model(task, cfg).to(device)
    load_inference_weights(model, cfg, Path(checkpoint))
    dataset = task.build_dataset(cfg.data, split or task.eval_split)
    loader = eval_loader(dataset, task.eval_batch_size or cfg.train.batch_size, info,
                         cfg.train.num_workers)
    metrics = task.build_metrics(cfg.data).to(device)
    scores = run_evaluation(task, cfg.data, model, loader, metrics, device,
                            autocast_dtype(cfg.train.precision, device), info.is_main,
                            f"evaluate {split or task.eval_split}", curves=True)
    barrier()  # metrics gather across ranks: no rank leaves while another still exchanges
    return scores


def _input_files(inputs: Sequence[str]) -> list[Path]:
    """The input files: a file as given, a folder as the files directly in it (natural
    order: a folder of video frames keeps its order)."""
    paths: list[Path] = []
    for given in map(Path, inputs):
        if given.is_dir():
            files = folder_files(given)
            if not files:
                raise UserError(f"input folder {given} holds no files")
            paths.extend(files)
        elif given.is_file():
            paths.append(given)
        else:
            raise UserError(f"input not found: {given}")
    return paths


def predict(config: str, checkpoint: str, inputs: Sequence[str], out_dir: str,
            overrides: Sequence[str] = (), force: bool = False) -> list[Path]:
    """Predict every input file (a folder: every file in it) into ``out_dir``; under
    torchrun each rank takes a shard.

    Each input is checked against the checkpoint's training distribution first
    (:mod:`domainvit.distribution`): one the model cannot take raises
    :class:`~domainvit.distribution.OutOfDistributionError` naming what differs, unless
    ``force``; unusual ones are predicted with a warning on stderr. Each input's sidecar
    (``<stem>.prediction.json``) records the outcome."""
    paths = _input_files(inputs)
    stems: dict[str, Path] = {}
    for path in paths:
        other = stems.setdefault(output_stem(path), path)
        if other != path:
            raise UserError(f"inputs {other} and {path} would write the same output name "
                            f"{output_stem(path)!r}; rename one")
    cfg = load_config(config, list(overrides))
    task = get_task(cfg.task)
    device, info = setup_device(cfg.train.device)
    meta = ckpt.read_meta(ckpt.resolve_checkpoint(Path(checkpoint)))
    cfg = inference_config(cfg, meta)
    model = build_model(task, cfg).to(device)
    load_inference_weights(model, cfg, Path(checkpoint))
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shard = paths[info.rank::info.world_size]
    guard = InputGuard.from_meta(meta, force=force)
    with torch.no_grad():
        written = task.predict_files(model, cfg.data, shard, out, guard)
    barrier()
    return written


def record_data_info(config: str, checkpoint: str, overrides: Sequence[str] = ()) -> dict:
    """Record the data facts and the training distribution of ``config``'s data
    (:meth:`Task.data_info`) in ``checkpoint``, keeping its weights and everything else:
    for checkpoints saved before a field of ``data_info`` existed. Returns the record."""
    cfg = load_config(config, list(overrides))
    path = ckpt.resolve_checkpoint(Path(checkpoint))
    tensors, meta = ckpt.load_checkpoint(path)
    if meta.get("task") != cfg.task:
        raise CheckpointError(f"{path} is a checkpoint of task {meta.get('task')!r}, but the "
                              f"config is for task {cfg.task!r}")
    info = get_task(cfg.task).data_info(cfg.data)
    ckpt.save_checkpoint(path, tensors, {**meta, "data_info": info})
    return info
