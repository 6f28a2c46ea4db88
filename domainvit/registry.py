"""The task registry: every task package registers one :class:`~domainvit.task.Task`
(the contract, in :mod:`domainvit.task`).

Task packages register themselves on import. Every task, built in or from another
distribution, is declared in the ``domainvit.tasks`` entry-point group (ours in
pyproject.toml), which :func:`load_tasks` reads, so the registry (core) never names the
task packages (a layer above it).
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from domainvit._layout import source_tree_root
from domainvit.errors import UserError
from domainvit.task import Task


@dataclass
class _Registry:
    tasks: dict[str, Task] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    loaded: bool = False


_REGISTRY = _Registry()


def register_task(task_cls: type[Task]) -> type[Task]:
    """Class decorator: register one instance of ``task_cls`` under ``task_cls.name``."""
    if not task_cls.name:
        raise ValueError(f"{task_cls.__qualname__} has no name")
    existing = _REGISTRY.tasks.get(task_cls.name)
    if existing is not None and type(existing).__qualname__ != task_cls.__qualname__:
        raise ValueError(f"task name {task_cls.name!r} is registered twice")
    _REGISTRY.tasks[task_cls.name] = task_cls()
    return task_cls


#: the entry-point group in which task packages declare themselves (``name = "module"``)
TASK_ENTRY_POINTS = "domainvit.tasks"


def declared_tasks() -> list[EntryPoint]:
    """The entry points of every task package: from the installed distributions, except
    that in a source checkout the checkout's own pyproject.toml stands in for domainvit's
    installed metadata, so ``PYTHONPATH=.`` finds the built-in tasks and an editable
    install never needs reinstalling after a task is added."""
    declared: list[EntryPoint] = []
    root = source_tree_root()
    if root is not None:
        with open(root / "pyproject.toml", "rb") as handle:
            project = tomllib.load(handle).get("project", {})
        group = project.get("entry-points", {}).get(TASK_ENTRY_POINTS, {})
        declared += [EntryPoint(name, value, TASK_ENTRY_POINTS) for name, value in group.items()]
    for entry in entry_points(group=TASK_ENTRY_POINTS):
        dist = entry.dist.name if entry.dist is not None else None
        ours_from_checkout = root is not None and dist == "domainvit"
        # (a distribution found twice on the path lists its entry points twice)
        if not ours_from_checkout and (entry.name, entry.value) not in {
                (seen.name, seen.value) for seen in declared}:
            declared.append(entry)
    return declared


def _import_task_module(module: str, label: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        missing = (exc.name or "") if isinstance(exc, ModuleNotFoundError) else ""
        if not missing or missing.partition(".")[0] == module.partition(".")[0]:
            # a name or a module of the task's own package that does not import is a
            # bug, never a reason for the task to drop out of the registry unnoticed
            exc.add_note(f"(while loading task {label!r} from {module})")
            raise
        # A task whose optional dependency is missing is listed as unavailable, with the
        # missing module, instead of breaking every other task.
        _REGISTRY.unavailable[label] = f"missing dependency: {missing}"


def load_tasks() -> dict[str, Task]:
    """Import every declared task package (:func:`declared_tasks`) once; return the registry.

    A task whose optional dependency is not installed is recorded in
    :func:`unavailable_tasks`; any other import error propagates.
    """
    if not _REGISTRY.loaded:
        for entry in declared_tasks():
            _import_task_module(entry.module, entry.name)
        _REGISTRY.loaded = True
    return _REGISTRY.tasks


def unavailable_tasks() -> dict[str, str]:
    load_tasks()
    return dict(_REGISTRY.unavailable)


def find_task(name: str) -> Task | None:
    """The task registered as ``name``, or None.

    The package declared under that name is imported first and alone: a command about one
    task does not import every other task and its dependencies (MONAI, the hyperspectral
    and video stacks), which takes seconds. Only a name no package of its own declares
    (or registers) loads them all.
    """
    def known() -> bool:
        return name in _REGISTRY.tasks or name in _REGISTRY.unavailable

    if not known() and not _REGISTRY.loaded:
        for entry in declared_tasks():
            if entry.name == name:
                _import_task_module(entry.module, entry.name)
    if not known():
        load_tasks()
    return _REGISTRY.tasks.get(name)


def get_task(name: str) -> Task:
    task = find_task(name)
    if task is not None:
        return task
    if name in _REGISTRY.unavailable:
        raise UserError(f"task {name!r} is not available here ({_REGISTRY.unavailable[name]})")
    known = ", ".join(sorted(_REGISTRY.tasks)) or "none"
    raise UserError(f"unknown task {name!r} (registered tasks: {known})")


def iter_tasks() -> Iterable[Task]:
    tasks = load_tasks()
    return [tasks[name] for name in sorted(tasks)]
