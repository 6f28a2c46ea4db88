"""The attention modules of the domainvit core, and :func:`build_attention`.

Every module maps channels-last tokens ``[B, *spatial, C]`` to the same shape; modules
with a window, block or kernel size work in 1D, 2D or 3D, chosen by the length of that
size or by an explicit ``ndim`` (an int size with no ``ndim`` means 2D):

- :class:`NeighborhoodAttention` -- sliding / dilated / strided / causal windows
  (NAT, DiNAT), on the ops of :mod:`domainvit.kernels`;
- :class:`GlobalLocalAttention` -- a neighbourhood plus pooled and/or relay global tokens;
- :class:`ShiftedWindowAttention` -- Swin's (shifted) windows;
- :class:`PartitionAttention` and :class:`MultiAxisAttention` -- MaxViT's block and grid
  attention;
- :class:`HaloAttention` -- HaloNet's blocks with halos;
- :class:`SpatialReductionAttention` -- PVT's reduced keys/values;
- :class:`ChannelAttention` -- XCiT/Restormer transposed attention over channels;
- :class:`LinearAttention` -- efficient attention with linear cost.

:func:`build_attention` builds any of them by name for configurable backbones.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .channel import ChannelAttention
from .global_local import GlobalLocalAttention
from .halo import HaloAttention
from .linear import LinearAttention
from .maxvit import MultiAxisAttention
from .neighborhood import NeighborhoodAttention
from .spatial_reduction import SpatialReductionAttention
from .window import PartitionAttention, RelativePositionBias, ShiftedWindowAttention

ATTENTION_KINDS: dict[str, type[nn.Module]] = {
    "neighborhood": NeighborhoodAttention,
    "swin": ShiftedWindowAttention,
    "maxvit": MultiAxisAttention,
    "halo": HaloAttention,
    "global_local": GlobalLocalAttention,
    "spatial_reduction": SpatialReductionAttention,
    "channel": ChannelAttention,
    "linear": LinearAttention,
}

_BUILT_BY_FACTORY = ("self", "dim", "num_heads", "ndim")


def build_attention(kind: str, dim: int, num_heads: int, ndim: int, **options: Any) -> nn.Module:
    """The attention module of ``kind`` for ``[B, *spatial, dim]`` tokens with ``ndim``
    spatial axes.

    ``kind`` is one of :data:`ATTENTION_KINDS`; ``options`` are that class's other
    constructor arguments (e.g. ``kernel_size``/``dilation`` for ``"neighborhood"``,
    ``window_size``/``shift`` for ``"swin"``, ``block_size`` for ``"maxvit"``). ``ndim``
    is authoritative: an int size is used along all ``ndim`` axes, and a tuple of another
    length is an error. ``"channel"`` and ``"linear"`` accept any number of spatial axes.
    Note that ``"maxvit"`` returns a residual unit with its own norms (see
    :class:`MultiAxisAttention`); every other kind returns a plain token mixer.

    Raises ``ValueError`` for an unknown kind, an option the kind does not take, or a
    missing required option.
    """
    if kind not in ATTENTION_KINDS:
        raise ValueError(
            f"unknown attention kind {kind!r}; expected one of {', '.join(ATTENTION_KINDS)}"
        )
    if ndim not in (1, 2, 3):
        raise ValueError(f"build_attention: ndim must be 1, 2 or 3, got {ndim!r}")
    cls = ATTENTION_KINDS[kind]
    parameters = inspect.signature(cls.__init__).parameters
    accepted = [name for name in parameters if name not in _BUILT_BY_FACTORY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"attention kind {kind!r} ({cls.__name__}) does not take option(s) "
            f"{', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    missing = [
        name
        for name in accepted
        if parameters[name].default is inspect.Parameter.empty and name not in options
    ]
    if missing:
        raise ValueError(
            f"attention kind {kind!r} ({cls.__name__}) needs option(s) {', '.join(missing)}"
        )
    if "ndim" in parameters:
        options["ndim"] = ndim
    return cls(dim, num_heads, **options)


__all__ = [
    "ATTENTION_KINDS",
    "ChannelAttention",
    "GlobalLocalAttention",
    "HaloAttention",
    "LinearAttention",
    "MultiAxisAttention",
    "NeighborhoodAttention",
    "PartitionAttention",
    "RelativePositionBias",
    "ShiftedWindowAttention",
    "SpatialReductionAttention",
    "build_attention",
]
