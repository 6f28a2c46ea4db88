"""Checkpoints: safetensors tensors plus a JSON sidecar, written atomically.

Nothing here unpickles: weights, optimizer and RNG tensors go into one safetensors file;
everything else (config, step, metrics, versions, the non-tensor parts of optimizer and
scheduler state) is JSON. The JSON is stored twice: inside the safetensors header (the
copy that is read back, so tensors and metadata can never disagree) and as a sidecar
``<name>.json`` for people and tools. Each file is written by
:func:`domainvit.files.atomic_write` (a temporary name, flushed to disk and renamed over
the old one), so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from domainvit.errors import CheckpointError
from domainvit.files import atomic_write

FORMAT_VERSION = 1
_META_KEY = "domainvit"


def library_versions() -> dict[str, str]:
    import domainvit

    return {
        "domainvit": domainvit.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and ``meta`` to ``path`` (safetensors) and its JSON sidecar."""
    meta = {"format": FORMAT_VERSION, **meta}
    text = json.dumps(meta, sort_keys=True)
    # safetensors refuses tensors that share storage (tied weights): store copies.
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_write(path) as temporary:
        save_file(plain, temporary, metadata={_META_KEY: text})
    with atomic_write(sidecar_path(path)) as temporary:
        temporary.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; errors say what is wrong."""
    return _read(Path(path), with_tensors=True)


def read_meta(path: Path) -> dict[str, Any]:
    """The metadata of a checkpoint, read from its header without loading the tensors."""
    return _read(Path(path), with_tensors=False)[1]


def _read(path: Path, with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = ({name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
                       if with_tensors else {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupted or not a safetensors file ({exc})"
        ) from None
    if _META_KEY not in header:
        raise CheckpointError(f"{path} is a safetensors file but not a domainvit checkpoint")
    try:
        meta = json.loads(header[_META_KEY])
    except json.JSONDecodeError:
        raise CheckpointError(f"checkpoint {path} has a corrupted metadata header") from None
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {meta['format']}; this domainvit reads up to "
            f"{FORMAT_VERSION} (upgrade domainvit)"
        )
    return tensors, meta


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run directory (its best checkpoint, else its last)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"run directory {path} holds no checkpoint")
    return path


# --- nested state <-> (tensors, JSON) -------------------------------------------------
# Optimizer, scheduler and RNG states are nested dicts/lists/tuples of tensors and plain
# values, with integer dict keys (optimizer parameter ids). They are split into a flat
# dict of tensors for safetensors and a JSON skeleton that records where each tensor
# goes and which containers were tuples or had integer keys.


def flatten_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": {k: flatten_state(v, f"{prefix}.{k}", tensors)
                                 for k, v in obj.items()}}
        if all(isinstance(k, int) for k in obj):
            return {"__intdict__": [[k, flatten_state(v, f"{prefix}.{k}", tensors)]
                                    for k, v in obj.items()]}
        raise TypeError(f"cannot store dict with keys {list(obj)[:3]} at {prefix}")
    if isinstance(obj, (list, tuple)):
        items = [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if hasattr(obj, "dtype") and hasattr(obj, "tolist"):  # numpy arrays and scalars
        tensors[prefix] = torch.from_numpy(np.asarray(obj).copy())
        return {"__ndarray__": prefix}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix}")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if "__ndarray__" in skeleton:
        return tensors[skeleton["__ndarray__"]].numpy()
    if "__tuple__" in skeleton:
        return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
    if "__intdict__" in skeleton:
        return {int(k): unflatten_state(v, tensors) for k, v in skeleton["__intdict__"]}
    return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"].items()}


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    head = f"{prefix}/"
    return {k[len(head):]: v for k, v in tensors.items() if k.startswith(head)}


def load_weights_into(model: nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Load a state dict, with one clear error for missing, unexpected or mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    mismatched = [
        f"{k} is {list(weights[k].shape)} in the checkpoint but {list(v.shape)} in the model"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    problems = []
    if mismatched:
        problems.append("shape mismatch: " + "; ".join(mismatched[:3]))
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if problems:
        raise CheckpointError(
            f"checkpoint {source} does not fit the model built from the config: "
            + "; ".join(problems)
        )
    model.load_state_dict(weights)
