"""Channel (transposed) attention: attention between channels instead of between tokens.

Follows the cross-covariance attention of Ali et al., "XCiT: Cross-Covariance Image
Transformers", NeurIPS 2021, also the multi-Dconv head transposed attention of Zamir et
al., "Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022
(without Restormer's depthwise convolutions, so that the module works on any number of
spatial axes). Per head, queries and keys are L2-normalised along the tokens, the
``head_dim x head_dim`` attention map between channels is scaled by a learned
temperature, and the softmax mixes value channels. Cost is linear in the number of
tokens, and the attention map does not depend on the order of the tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import check_tokens, head_dim


class ChannelAttention(nn.Module):
    """XCiT/Restormer transposed attention over channels, any ``[B, *spatial, dim]``.

    ``temperature``: one learned scale per head (initialised to 1), in place of
    ``head_dim ** -0.5``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = head_dim(type(self).__name__, dim, num_heads)
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(type(self).__name__, x, self.dim, None)
        qkv = self.qkv(x).flatten(1, -2).unflatten(-1, (3, self.num_heads, self.head_dim))
        # [B, heads, head_dim, N]: channels play the part of tokens, tokens of features.
        query, key, value = qkv.permute(2, 0, 3, 4, 1)
        # Autocast may normalise in float32; SDPA needs one dtype for all three.
        query = (F.normalize(query, dim=-1) * self.temperature).to(value.dtype)
        key = F.normalize(key, dim=-1).to(value.dtype)
        out = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.attn_drop if self.training else 0.0, scale=1.0
        )
        return self.proj_drop(self.proj(out.permute(0, 3, 1, 2).flatten(-2).reshape(x.shape)))
