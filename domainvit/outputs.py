"""Names of the files a prediction writes, made from the names of its inputs.

One helper for every writer of outputs (``domainvit predict``, each task's
``predict_files``, the dashboard's downloads), so that the engine's check that no two
inputs collide uses exactly the names the tasks then write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from domainvit.files import atomic_write, split_suffix

__all__ = ["SIDECAR_SUFFIX", "output_stem", "write_sidecar"]

#: the suffix of a prediction's sidecar: ``<stem>.prediction.json`` beside its outputs
SIDECAR_SUFFIX = ".prediction.json"

_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def output_stem(path: str | Path) -> str:
    """A safe file-name stem for the prediction of ``path``: its name without folders and
    suffix, with characters outside ``A-Za-z0-9._-`` replaced by ``_`` and no leading
    dot (``"input"`` when nothing is left)."""
    name, _ = split_suffix(Path(path).name)
    return _UNSAFE_CHARACTERS.sub("_", name).lstrip(".") or "input"


def write_sidecar(path: str | Path, record: dict[str, Any]) -> Path:
    """Write a prediction's sidecar (JSON: the input, the checkpoint, the input check of
    :mod:`domainvit.distribution`, the confidence summary, the files written) atomically;
    returns ``path``."""
    path = Path(path)
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    return path
