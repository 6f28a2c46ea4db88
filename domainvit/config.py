"""Run configs: YAML validated by pydantic v2, with ``--set key.path=value`` overrides.

The engine's sections (``train``, ``optim``, ``schedule``) are defined here; each task
contributes the schema of its ``data:`` section and one schema per model for the
``model:`` section (selected by ``model.name``). Every schema derives from
:class:`domainvit.schema.StrictModel`, which forbids unknown keys, so a typo is an error
that names the file and the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model

from domainvit.errors import ConfigError, UserError
from domainvit.registry import find_task, get_task, load_tasks
from domainvit.schema import StrictModel
from domainvit.task import Task


class OptimConfig(StrictModel):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False


class ScheduleConfig(StrictModel):
    """Learning-rate schedule, stepped once per optimizer step."""

    name: Literal["constant", "cosine", "step"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    #: cosine: the final learning rate as a fraction of ``optim.lr``
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    #: step: multiply the learning rate by ``gamma`` every ``step_size`` optimizer steps
    step_size: int = Field(1000, gt=0)
    gamma: float = Field(0.1, gt=0, le=1)


class EmaConfig(StrictModel):
    enabled: bool = False
    decay: float = Field(0.999, gt=0, lt=1)


class TrainConfig(StrictModel):
    epochs: int = Field(10, gt=0)
    #: global batch size per forward pass, split evenly across DDP processes
    batch_size: int = Field(32, gt=0)
    grad_accum: int = Field(1, gt=0)
    clip_grad_norm: float | None = Field(None, gt=0)
    #: ``auto``: bfloat16 autocast on GPUs that support it, float32 elsewhere
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(0, ge=0)
    #: also save the resumable state every N optimizer steps (always at epoch ends)
    checkpoint_every: int | None = Field(None, gt=0)
    val_every: int = Field(1, gt=0)
    log_every: int = Field(10, gt=0)
    #: metric that selects ``best.safetensors`` (default: the task's)
    monitor: str | None = None
    monitor_mode: Literal["min", "max"] | None = None
    deterministic: bool = True
    ema: EmaConfig = EmaConfig()


class RunConfigBase(StrictModel):
    task: str
    seed: int = 0
    #: where the run writes its files; default ``runs/<task>-<model>-<time>``
    run_dir: str | None = None
    train: TrainConfig = TrainConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()


def run_config_schema(task: Task) -> type[RunConfigBase]:
    """The full schema of a run of ``task``: engine sections plus the task's sections."""
    schemas = [entry.schema for entry in task.models]
    if not schemas:
        raise UserError(f"task {task.name!r} registers no models")
    if len(schemas) == 1:
        model_type: Any = schemas[0]
    else:
        model_type = Annotated[Union[tuple(schemas)], Field(discriminator="name")]  # noqa: UP007
    data_default = (
        Field(default_factory=task.data_schema) if _all_defaults(task.data_schema) else ...
    )
    return create_model(
        f"{task.name.title().replace('_', '')}RunConfig",
        __base__=RunConfigBase,
        task=(Literal[task.name], ...),
        model=(model_type, ...),
        data=(task.data_schema, data_default),
    )


def _all_defaults(schema: type[BaseModel]) -> bool:
    return all(not field.is_required() for field in schema.model_fields.values())


def resolve_config_path(spec: str | Path) -> Path:
    """A config file path, or ``TASK/NAME`` for a config bundled with a task."""
    path = Path(spec)
    if path.is_file():
        return path
    if not path.suffix and len(path.parts) == 2:
        task_name, config_name = path.parts
        task = find_task(task_name)
        if task is not None:
            bundled = task.bundled_configs()
            if config_name in bundled:
                return bundled[config_name]
    raise ConfigError(
        f"config file {str(spec)!r} not found (bundled configs are named TASK/NAME; "
        "see `domainvit list`)"
    )


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``raw``."""
    result = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = result
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {item!r}: {prefix} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def validate_config(raw: dict[str, Any], source: str) -> RunConfigBase:
    """Validate a raw config mapping; ``source`` names it in error messages."""
    task_name = raw.get("task")
    if task_name is None:
        known = ", ".join(sorted(load_tasks())) or "none"
        raise ConfigError(f"{source}: task: field required (registered tasks: {known})")
    if not isinstance(task_name, str):
        raise ConfigError(f"{source}: task: expected a task name, got {task_name!r}")
    try:
        task = get_task(task_name)
    except UserError as exc:
        raise ConfigError(f"{source}: task: {exc}") from None
    schema = run_config_schema(task)
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not in the schema; check the spelling)"
        elif err["type"] != "missing":
            msg = f"{msg} (got {err['input']!r})"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def load_config(spec: str | Path, overrides: list[str] | None = None) -> RunConfigBase:
    """Read, override and validate a config; errors name the file and the key path."""
    path = resolve_config_path(spec)
    raw = apply_overrides(read_yaml(path), overrides or [])
    source = str(path) + (" with --set overrides" if overrides else "")
    return validate_config(raw, source)


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def dump_config(cfg: BaseModel, path: Path) -> None:
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
