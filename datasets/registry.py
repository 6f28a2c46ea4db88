"""Sample datasets: named builders that derive data into a local cache folder.

Tasks register the datasets they train on (see ../shared/DATA.md for the offline
sources). ``prepare`` builds one into ``$DOMAINVIT_DATA/<name>`` (default
``~/.cache/domainvit/<name>``): the builder writes into a temporary sibling folder that
is renamed into place when complete, so an interrupted build never leaves a folder that
looks prepared, and two processes preparing at once cannot corrupt each other.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from domainvit.errors import UserError
from domainvit.files import cache_root

#: the marker a finished build leaves in its folder
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class SampleDataset:
    """A dataset built on demand. ``build(folder, progress)`` fills ``folder``.

    ``progress`` is a ``tqdm`` class to wrap long loops with (writing to stderr).
    """

    name: str
    description: str
    build: Callable[[Path, type], None]
    tasks: tuple[str, ...] = ()


_DATASETS: dict[str, SampleDataset] = {}


def register_sample_dataset(dataset: SampleDataset) -> SampleDataset:
    existing = _DATASETS.get(dataset.name)
    if existing is not None and existing.build.__qualname__ != dataset.build.__qualname__:
        raise ValueError(f"sample dataset {dataset.name!r} is registered twice")
    _DATASETS[dataset.name] = dataset
    return dataset


def sample_datasets() -> list[SampleDataset]:
    return [_DATASETS[name] for name in sorted(_DATASETS)]


def dataset_dir(name: str) -> Path:
    return cache_root() / name


def is_prepared(name: str) -> bool:
    return (dataset_dir(name) / COMPLETE_MARKER).is_file()


def get_sample_dataset(name: str) -> SampleDataset:
    if name not in _DATASETS:
        known = ", ".join(sorted(_DATASETS)) or "none"
        raise UserError(f"unknown sample dataset {name!r} (registered: {known})")
    return _DATASETS[name]


def prepare(name: str, force: bool = False) -> Path:
    """Build dataset ``name`` unless it is already prepared; return its folder."""
    from tqdm.auto import tqdm

    entry = get_sample_dataset(name)
    target = dataset_dir(name)
    if is_prepared(name) and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=target.parent))
    try:
        print(f"preparing sample dataset {name} in {target}", file=sys.stderr)
        entry.build(staging, tqdm)
        (staging / COMPLETE_MARKER).write_text("")
        if force and target.exists():
            shutil.rmtree(target)
        elif target.exists() and not is_prepared(name):
            shutil.rmtree(target)  # a folder left by an older, unfinished layout
        try:
            os.rename(staging, target)
        except OSError:
            if not is_prepared(name):  # another process did not win the race either
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
