"""One checked neighbourhood-attention call, as every backend receives it.

The functional front door (:mod:`domainvit.kernels.functional`) validates the user's
arguments once and hands backends this normalised record: per-axis tuples instead of
int-or-tuple arguments, a resolved ``scale``, and tensors known to agree in shape, dtype
and device. Backends and their ``supports`` predicates read it and never re-check.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AttentionCall:
    """Arguments of one ``na1d``/``na2d``/``na3d`` call after validation.

    Tensors are heads-last: ``query`` is ``[B, *spatial, heads, head_dim]``, ``key`` and
    ``value`` are ``[B, *spatial, kv_heads, head_dim]`` with ``kv_heads`` dividing
    ``heads``; ``rpb`` is ``[heads, 2*k1-1, ...]``; ``additional_keys`` and
    ``additional_values`` are ``[B, M, kv_heads, head_dim]``.
    """

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    is_causal: tuple[bool, ...]
    scale: float
    rpb: torch.Tensor | None = None
    additional_keys: torch.Tensor | None = None
    additional_values: torch.Tensor | None = None

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.query.shape[1:-2])

    @property
    def heads(self) -> int:
        return self.query.shape[-2]

    @property
    def kv_heads(self) -> int:
        return self.key.shape[-2]

    @property
    def device(self) -> torch.device:
        return self.query.device
