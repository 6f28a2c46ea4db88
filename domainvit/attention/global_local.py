"""Global-local attention: a neighbourhood plus a few global tokens for every query.

Each token attends, in one softmax, to its neighbourhood (as
:class:`NeighborhoodAttention`) and to a small set of global tokens passed to the kernels
as additional keys/values:

- pooled tokens: keys and values average-pooled over ``pool_ratio`` patches, a
  low-resolution summary of the whole map (the sub-sampled global attention of Chu et
  al., "Twins: Revisiting the Design of Spatial Attention in Vision Transformers",
  NeurIPS 2021);
- relay tokens: learned tokens that first gather information from every token and are
  then read by every token (the relay tokens of Griffiths et al., "HOTFormerLoc", CVPR
  2025; carrier tokens in Hatamizadeh et al., "FasterViT", ICLR 2024; registers in
  Darcet et al., "Vision Transformers Need Registers", ICLR 2024).

Both cost linear time in the number of tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import SizeArg, per_axis, resolve_ndim
from .neighborhood import NeighborhoodAttention

_ADAPTIVE_AVG_POOL = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}


class GlobalLocalAttention(NeighborhoodAttention):
    """Neighbourhood attention plus pooled and/or relay global tokens, 1D/2D/3D.

    ``pool_ratio`` (int or one per axis): keys and values are average-pooled over patches
    of that many tokens (the last patch of an axis may be smaller) and every query
    attends to the pooled tokens. ``num_relay_tokens``: learned tokens (truncated normal,
    std 0.02) that share this layer's projections. In each forward they are first
    updated, ``relay + proj(attention(relay -> all tokens and relays))``, and their keys
    and values are then added to every query's. Relay tokens are kept internal: each
    forward starts again from the learned tokens and only ``x``'s update is returned.
    At least one of ``pool_ratio`` and ``num_relay_tokens`` must be set. The other
    arguments are those of :class:`NeighborhoodAttention` (not causal: global tokens see
    the whole map).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: SizeArg,
        dilation: SizeArg = 1,
        pool_ratio: SizeArg | None = None,
        num_relay_tokens: int = 0,
        stride: SizeArg = 1,
        rpb: bool = True,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        kv_heads: int | None = None,
        ndim: int | None = None,
        backend: str | None = None,
    ) -> None:
        owner = type(self).__name__
        if pool_ratio is None and not num_relay_tokens:
            raise ValueError(
                f"{owner}: set pool_ratio and/or num_relay_tokens > 0 (without global tokens "
                "use NeighborhoodAttention)"
            )
        if not isinstance(num_relay_tokens, int) or num_relay_tokens < 0:
            raise ValueError(
                f"{owner}: num_relay_tokens must be an int >= 0, got {num_relay_tokens!r}"
            )
        ndim = resolve_ndim(
            owner,
            ndim,
            kernel_size=kernel_size,
            dilation=dilation,
            stride=stride,
            pool_ratio=pool_ratio,
        )
        super().__init__(
            dim,
            num_heads,
            kernel_size,
            dilation=dilation,
            stride=stride,
            rpb=rpb,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=proj_drop,
            kv_heads=kv_heads,
            ndim=ndim,
            backend=backend,
        )
        self.pool_ratio = None
        if pool_ratio is not None:
            self.pool_ratio = per_axis(owner, pool_ratio, "pool_ratio", ndim)
        if num_relay_tokens:
            self.relay_tokens = nn.Parameter(torch.empty(num_relay_tokens, dim))
            nn.init.trunc_normal_(self.relay_tokens, std=0.02)
        else:
            self.register_parameter("relay_tokens", None)

    def extra_repr(self) -> str:
        relay = 0 if self.relay_tokens is None else self.relay_tokens.shape[0]
        return f"{super().extra_repr()}, pool_ratio={self.pool_ratio}, num_relay_tokens={relay}"

    def _pooled(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values average-pooled over ``pool_ratio`` patches: ``[B, M, kv_heads, D]``."""
        spatial = key.shape[1:-2]
        kv = torch.cat([key, value], dim=-2).flatten(-2).movedim(-1, 1)
        out_size = [
            math.ceil(length / ratio)
            for length, ratio in zip(spatial, self.pool_ratio, strict=True)
        ]
        # Autocast may run the pooling in float32; the kernels need query's dtype.
        pooled = _ADAPTIVE_AVG_POOL[self.ndim](kv, out_size).to(key.dtype)
        pooled = pooled.flatten(2).transpose(1, 2)
        return pooled.unflatten(-1, (2 * self.kv_heads, self.head_dim)).chunk(2, dim=-2)

    def _relays(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``[B, R, kv_heads, D]`` of the relay tokens after they attended
        to every token (and to each other)."""
        relay = self.relay_tokens.to(key.dtype).expand(key.shape[0], -1, -1)
        relay_query, relay_key, relay_value = self.split_heads(self.qkv(relay))
        keys = torch.cat([key.flatten(1, -3), relay_key], dim=1)
        values = torch.cat([value.flatten(1, -3), relay_value], dim=1)
        gathered = F.scaled_dot_product_attention(
            relay_query.transpose(1, 2),
            keys.transpose(1, 2),
            values.transpose(1, 2),
            enable_gqa=self.kv_heads != self.num_heads,
        )
        relay = relay + self.proj(gathered.transpose(1, 2).flatten(-2))
        _, relay_key, relay_value = self.split_heads(self.qkv(relay))
        return relay_key, relay_value

    def global_tokens(
        self, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Pooled tokens, then relay tokens, as additional keys/values."""
        parts = []
        if self.pool_ratio is not None:
            parts.append(self._pooled(key, value))
        if self.relay_tokens is not None:
            parts.append(self._relays(key, value))
        keys, values = zip(*parts, strict=True)
        return torch.cat(keys, dim=1), torch.cat(values, dim=1)
