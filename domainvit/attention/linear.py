"""Linear (efficient) attention: softmax-normalised queries and keys, cost linear in tokens.

Follows Shen et al., "Efficient Attention: Attention with Linear Complexities", WACV
2021: per head, queries are softmax-normalised over their features and keys over the
tokens, so ``softmax_features(Q) (softmax_tokens(K)^T V)`` can be computed right to left:
the keys first summarise the values into ``head_dim`` global context vectors, which every
query then mixes. It equals the dense ``(softmax(Q) softmax(K)^T) V`` without ever
forming the ``N x N`` map. TransDAE's efficient spatial attention (Azad et al. 2024)
takes this form.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import check_tokens, head_dim


class LinearAttention(nn.Module):
    """Efficient attention (Shen et al., WACV 2021) over any ``[B, *spatial, dim]``."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = head_dim(type(self).__name__, dim, num_heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(type(self).__name__, x, self.dim, None)
        qkv = self.qkv(x).flatten(1, -2).unflatten(-1, (3, self.num_heads, self.head_dim))
        query, key, value = qkv.unbind(2)  # [B, N, heads, head_dim]
        query = query.softmax(dim=-1)
        key = key.softmax(dim=1)
        context = torch.einsum("bnhd,bnhe->bhde", key, value)
        out = torch.einsum("bnhd,bhde->bnhe", query, context)
        return self.proj_drop(self.proj(out.flatten(-2).reshape(x.shape)))
