"""Names of the files a prediction writes, made from the names of its inputs.

One helper for every writer of outputs (``domainvit predict``, each task's
``predict_files``, the dashboard's downloads), so that the engine's check that no two
inputs collide uses exactly the names the tasks then write.
"""

from __future__ import annotations

import re
from pathlib import Path

from domainvit.files import split_suffix

__all__ = ["output_stem"]

_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def output_stem(path: str | Path) -> str:
    """A safe file-name stem for the prediction of ``path``: its name without folders and
    suffix, with characters outside ``A-Za-z0-9._-`` replaced by ``_`` and no leading
    dot (``"input"`` when nothing is left)."""
    name, _ = split_suffix(Path(path).name)
    return _UNSAFE_CHARACTERS.sub("_", name).lstrip(".") or "input"
