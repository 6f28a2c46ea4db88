"""Backend registry and the one function that picks a backend for a call.

Follows NATTEN's design of one functional front door over several backends chosen by a
single dispatch function. Each backend declares what it can run through a ``supports``
predicate over the checked :class:`~domainvit.kernels.call.AttentionCall`; automatic
choice walks the registry in order of preference (fastest first) and takes the first
that supports the call. A fused Triton backend for CUDA tensors slots in ahead of
``torch`` with a predicate such as ``call.device.type == "cuda"``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .backends.reference import reference_attention
from .backends.tiled import tiled_attention
from .call import AttentionCall

try:
    from .backends.triton_na import triton_attention, triton_supports
except ImportError:  # an install without Triton (e.g. macOS, Windows): torch backend only
    triton_attention = triton_supports = None


@dataclass(frozen=True)
class Backend:
    """A way to compute neighbourhood attention.

    ``automatic`` says whether ``backend=None`` may choose it (the dense reference is
    for tests only and must be asked for by name).
    """

    name: str
    run: Callable[[AttentionCall], torch.Tensor]
    supports: Callable[[AttentionCall], bool]
    automatic: bool = True


def _any_call(call: AttentionCall) -> bool:
    return True


BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        *((Backend("triton", triton_attention, triton_supports),) if triton_attention else ()),
        Backend("torch", tiled_attention, _any_call),
        Backend("reference", reference_attention, _any_call, automatic=False),
    )
}


def backend_names() -> tuple[str, ...]:
    """Names accepted by the ``backend`` argument of the ops."""
    return tuple(BACKENDS)


def choose_backend(call: AttentionCall, name: str | None = None) -> Backend:
    """The backend named ``name``, or the preferred automatic one that supports ``call``.

    ``name`` must already be one of :func:`backend_names` (the front door checks it).
    """
    if name is not None:
        backend = BACKENDS[name]
        if not backend.supports(call):
            raise ValueError(
                f"backend={name!r} does not support this call (device {call.device.type}, "
                f"dtype {call.query.dtype}); use backend=None to choose automatically"
            )
        return backend
    for backend in BACKENDS.values():
        if backend.automatic and backend.supports(call):
            return backend
    raise ValueError(
        f"no backend supports this call (device {call.device.type}, dtype {call.query.dtype})"
    )


#: calls run by each backend in this process (see :func:`backend_calls`)
_CALLS: Counter = Counter()


def record_call(name: str) -> None:
    """Count one call run by backend ``name`` (the functional front door does this)."""
    _CALLS[name] += 1


def backend_calls() -> dict[str, int]:
    """How many neighbourhood-attention calls each backend has run in this process, e.g.
    ``{"triton": 120}`` after a training run on a GPU: the evidence of which path ran."""
    return dict(_CALLS)


def reset_backend_calls() -> None:
    _CALLS.clear()
