"""Neighbourhood attention: every token attends to a window of keys around itself.

Follows Hassani et al., "Neighborhood Attention Transformer", CVPR 2023, and Hassani and
Shi, "Dilated Neighborhood Attention Transformer", 2022: a qkv projection, the
neighbourhood-attention ops of :mod:`domainvit.kernels` (sliding, dilated, strided or
causal windows, clamped at the borders, with a learned relative position bias), and an
output projection. Key/value heads may be fewer than query heads (grouped-query
attention).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from domainvit.kernels import na1d, na2d, na3d

from .common import SizeArg, check_tokens, head_dim, per_axis, resolve_ndim

_NEIGHBORHOOD_OPS = {1: na1d, 2: na2d, 3: na3d}


class NeighborhoodAttention(nn.Module):
    """Neighbourhood attention (Hassani et al., CVPR 2023), 1D/2D/3D, channels-last.

    ``kernel_size``, ``dilation``, ``stride`` and ``is_causal`` take one value for every
    axis or one per axis, with the meaning of :func:`domainvit.kernels.na2d`
    (``stride == kernel_size`` is blocked window attention). ``rpb`` adds a learned
    relative position bias ``[heads, 2*k-1, ...]`` (truncated normal, std 0.02).
    ``kv_heads`` (default ``num_heads``) must divide ``num_heads``. ``attn_drop`` exists for
    a uniform signature but must be 0: the fused kernels never form the attention
    weights, so they cannot drop them. ``backend`` is passed to the ops (None: fastest).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: SizeArg,
        dilation: SizeArg = 1,
        stride: SizeArg = 1,
        is_causal: bool | tuple[bool, ...] = False,
        rpb: bool = True,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        kv_heads: int | None = None,
        ndim: int | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.ndim = resolve_ndim(
            owner,
            ndim,
            kernel_size=kernel_size,
            dilation=dilation,
            stride=stride,
            is_causal=is_causal,
        )
        self.kernel_size = per_axis(owner, kernel_size, "kernel_size", self.ndim, minimum=2)
        self.dilation = per_axis(owner, dilation, "dilation", self.ndim)
        self.stride = per_axis(owner, stride, "stride", self.ndim)
        if any(s > k for s, k in zip(self.stride, self.kernel_size, strict=True)):
            raise ValueError(
                f"{owner}: stride={self.stride} must not exceed kernel_size={self.kernel_size}"
            )
        causal = tuple(is_causal) if isinstance(is_causal, Sequence) else (is_causal,) * self.ndim
        if not all(isinstance(flag, bool) for flag in causal):
            raise ValueError(f"{owner}: is_causal must be a bool or {self.ndim} bools")
        self.is_causal = causal
        if attn_drop:
            raise ValueError(
                f"{owner}: attn_drop={attn_drop} is not supported (the neighbourhood kernels "
                "never materialise attention weights); use proj_drop or drop path instead"
            )
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = head_dim(owner, dim, num_heads)
        self.kv_heads = num_heads if kv_heads is None else kv_heads
        if self.kv_heads < 1 or num_heads % self.kv_heads:
            raise ValueError(f"{owner}: kv_heads={kv_heads} must divide num_heads={num_heads}")
        self.backend = backend
        self.qkv = nn.Linear(dim, (num_heads + 2 * self.kv_heads) * self.head_dim, bias=qkv_bias)
        if rpb:
            self.rpb = nn.Parameter(
                torch.empty(num_heads, *(2 * kernel - 1 for kernel in self.kernel_size))
            )
            nn.init.trunc_normal_(self.rpb, std=0.02)
        else:
            self.register_parameter("rpb", None)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, kv_heads={self.kv_heads}, "
            f"kernel_size={self.kernel_size}, dilation={self.dilation}, stride={self.stride}, "
            f"is_causal={self.is_causal}"
        )

    def split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split the output of ``self.qkv`` into heads-last query, key and value
        (``[..., heads, head_dim]``, ``[..., kv_heads, head_dim]`` twice)."""
        q_width, kv_width = self.num_heads * self.head_dim, self.kv_heads * self.head_dim
        query, key, value = qkv.split([q_width, kv_width, kv_width], dim=-1)
        return (
            query.unflatten(-1, (self.num_heads, self.head_dim)),
            key.unflatten(-1, (self.kv_heads, self.head_dim)),
            value.unflatten(-1, (self.kv_heads, self.head_dim)),
        )

    def global_tokens(
        self, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Keys and values ``[B, M, kv_heads, head_dim]`` every query attends to besides its
        neighbourhood; none here (see :class:`GlobalLocalAttention`)."""
        return None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(type(self).__name__, x, self.dim, self.ndim)
        query, key, value = self.split_heads(self.qkv(x))
        extra_keys, extra_values = self.global_tokens(key, value)
        out = _NEIGHBORHOOD_OPS[self.ndim](
            query,
            key,
            value,
            self.kernel_size,
            stride=self.stride,
            dilation=self.dilation,
            is_causal=self.is_causal,
            rpb=None if self.rpb is None else self.rpb.to(query.dtype),
            additional_keys=extra_keys,
            additional_values=extra_values,
            backend=self.backend,
        )
        return self.proj_drop(self.proj(out.flatten(-2)))
