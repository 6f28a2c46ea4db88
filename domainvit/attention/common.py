"""Argument and input checks shared by the attention modules, and channels-last padding.

Every module in :mod:`domainvit.attention` takes channels-last tokens ``[B, *spatial, C]``
and per-axis sizes given as one int or one int per spatial axis. The number of spatial
axes (``ndim``) is fixed at construction: an explicit ``ndim`` wins, otherwise the length
of a tuple size argument, otherwise 2. The checks live here so that every module words
its errors the same way and names the argument at fault.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F

SizeArg = int | Sequence[int]

_AXES = {1: "L", 2: "X, Y", 3: "X, Y, Z"}


def resolve_ndim(owner: str, ndim: int | None, **sizes: object) -> int:
    """The number of spatial axes of ``owner``: ``ndim`` if given, else the length of the
    sequence-valued ``sizes``, else 2; every sequence-valued size must agree with it."""
    lengths = {name: len(value) for name, value in sizes.items() if isinstance(value, Sequence)}
    if ndim is None:
        ndim = next(iter(lengths.values()), 2)
    if ndim not in (1, 2, 3):
        raise ValueError(f"{owner}: ndim must be 1, 2 or 3, got {ndim!r}")
    for name, length in lengths.items():
        if length != ndim:
            raise ValueError(
                f"{owner}: {name} has {length} values but the module is {ndim}D; "
                f"give one int or {ndim} ints"
            )
    return ndim


def per_axis(owner: str, value: SizeArg, name: str, ndim: int, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (one int, or ``ndim`` ints) as a tuple of ``ndim`` ints ``>= minimum``."""
    values = tuple(value) if isinstance(value, Sequence) else (value,) * ndim
    if len(values) != ndim or not all(
        isinstance(item, numbers.Integral) and not isinstance(item, bool) and item >= minimum
        for item in values
    ):
        raise ValueError(
            f"{owner}: {name} must be an int >= {minimum} or {ndim} such ints, got {value!r}"
        )
    return tuple(int(item) for item in values)


def head_dim(owner: str, dim: int, num_heads: int) -> int:
    """Channels per head; ``num_heads`` must divide ``dim``."""
    if num_heads < 1 or dim % num_heads:
        raise ValueError(f"{owner}: num_heads={num_heads} must divide dim={dim}")
    return dim // num_heads


def check_tokens(owner: str, x: torch.Tensor, dim: int, ndim: int | None) -> None:
    """Raise unless ``x`` is ``[B, *spatial, dim]`` with ``ndim`` spatial axes (any number
    of at least one when ``ndim`` is None)."""
    rank_ok = x.dim() >= 3 if ndim is None else x.dim() == ndim + 2
    if not rank_ok or x.shape[-1] != dim:
        axes = "*spatial" if ndim is None else _AXES[ndim]
        raise ValueError(
            f"{owner} expects channels-last tokens [B, {axes}, {dim}], got shape {tuple(x.shape)}"
        )


def pad_spatial(x: torch.Tensor, before: Sequence[int], after: Sequence[int]) -> torch.Tensor:
    """Zero-pad the spatial axes of channels-last ``x`` by ``before``/``after`` tokens."""
    if not any(before) and not any(after):
        return x
    padding = [0, 0]
    for lead, trail in zip(reversed(before), reversed(after), strict=True):
        padding += [lead, trail]
    return F.pad(x, padding)


def crop_spatial(x: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
    """The leading ``spatial`` tokens of each spatial axis of channels-last ``x``."""
    return x[(slice(None), *(slice(0, length) for length in spatial))]


def ceil_to_multiple(spatial: Sequence[int], multiple: Sequence[int]) -> tuple[int, ...]:
    """Each axis length rounded up to a multiple of its size in ``multiple``."""
    return tuple(-(-length // size) * size for length, size in zip(spatial, multiple, strict=True))


def attention_in_windows(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Attention inside each window: ``query`` ``[B, W, heads, N, D]``, ``key``/``value``
    ``[B, W, heads, M, D]``, ``mask`` (float, added to the logits) broadcastable to
    ``[W, heads, N, M]`` and shared by the batch. Returns ``[B, W, heads, N, D]``.

    The fused SDPA kernels accept only 4D inputs. Windows are merged into the batch when
    the mask is the same for every window, and into the heads when it is not, so that
    the mask always broadcasts over the batch instead of being repeated for it.
    """
    batch, windows, heads = query.shape[:3]
    if mask is not None and mask.dim() == 4 and mask.shape[0] > 1:
        mask = mask.expand(windows, heads, *mask.shape[-2:]).flatten(0, 1)
        merged = (t.flatten(1, 2) for t in (query, key, value))
        unmerge = (1, (windows, heads))
    else:
        merged = (t.flatten(0, 1) for t in (query, key, value))
        unmerge = (0, (batch, windows))
    out = F.scaled_dot_product_attention(*merged, attn_mask=mask, dropout_p=dropout_p)
    return out.unflatten(*unmerge)
