"""The neighbourhood-attention ops: ``na1d``, ``na2d``, ``na3d`` (the specification).

Follows NATTEN's generalized neighbourhood attention (Hassani et al., "Neighborhood
Attention Transformer", CVPR 2023; "Dilated Neighborhood Attention Transformer", 2022;
"Faster Neighborhood Attention", NeurIPS 2024) with NATTEN's heads-last functional
interface, plus relative position bias and global tokens in every backend.

Layout is heads-last: ``query`` is ``[B, *spatial, heads, head_dim]``; ``key`` and
``value`` are ``[B, *spatial, kv_heads, head_dim]`` where ``kv_heads`` divides ``heads``
(grouped-query attention: query head ``h`` reads key/value head
``h // (heads // kv_heads)``). ``kernel_size``, ``stride``, ``dilation`` and
``is_causal`` take one value for every axis or a tuple with one value per axis.

Per axis of length ``L`` with kernel ``k``, stride ``s`` and dilation ``d``, the query at
index ``i`` belongs to dilation group ``g = i % d`` at in-group index ``qi = i // d``;
the group holds ``n = ceil((L - g) / d)`` tokens. Keys come only from the same group, at
in-group indices ``j`` with

- not causal: ``leader = min((qi // s) * s + s // 2, n - 1)``, ``left = k // 2``,
  ``right = k // 2 + k % 2 - 1``, ``center = clamp(leader, left, n - 1 - right)`` and
  ``center - left <= j <= center + right`` (always exactly ``k`` keys: windows are
  clamped inside the input, never zero-padded);
- causal: ``leader = min((qi // s) * s + s - 1, n - 1)``, ``j <= qi`` and
  ``leader - j < k``.

``stride == kernel_size`` is blocked (Swin-style, non-overlapping) window attention. In
2D/3D a query's keys are the product of its per-axis key sets. ``rpb`` of shape
``[heads, 2*k1-1, (2*k2-1, (2*k3-1))]`` adds ``rpb[h, j1 - qi1 + k1 - 1, ...]`` (in-group,
i.e. dilated, units) to the logits. ``additional_keys`` / ``additional_values`` of shape
``[B, M, kv_heads, head_dim]`` are global tokens that every query attends to in the same
softmax, without bias. Logits are scaled by ``scale`` (default ``head_dim ** -0.5``).
The output has the shape and dtype of ``query``; gradients flow to every tensor input.

``backend`` is ``None`` (the fastest registered backend that supports the call, see
:func:`~domainvit.kernels.dispatch.choose_backend`), ``"torch"`` (tiles plus halo, memory
linear in tokens, any device) or ``"reference"`` (dense masked attention, quadratic
memory, for tests). All argument checking happens here, once, and raises
``TypeError``/``ValueError`` naming the bad argument and what is allowed; backends
receive an :class:`~domainvit.kernels.call.AttentionCall` and trust it.
"""

from __future__ import annotations

import numbers

import torch

from .call import AttentionCall
from .dispatch import backend_names, choose_backend, record_call

IntOrTuple = int | tuple[int, ...]
BoolOrTuple = bool | tuple[bool, ...]

_AXIS_NAMES = {1: "L", 2: "X, Y", 3: "X, Y, Z"}


def _argument_name(name: str, axis: int, ndim: int) -> str:
    return name if ndim == 1 else f"{name}[{axis}]"


def _per_axis(op: str, value: object, name: str, ndim: int, kind: type) -> tuple:
    """``value`` as a tuple of ``ndim`` values of ``kind`` (``int`` excludes ``bool``)."""

    def fits(item: object) -> bool:
        if kind is bool:
            return isinstance(item, bool)
        return isinstance(item, numbers.Integral) and not isinstance(item, bool)

    if fits(value):
        return (kind(value),) * ndim
    if isinstance(value, (tuple, list)) and len(value) == ndim and all(map(fits, value)):
        return tuple(kind(item) for item in value)
    article = "an" if kind is int else "a"
    raise TypeError(
        f"{op}: {name} must be {article} {kind.__name__} or a tuple of {ndim} {kind.__name__}s, "
        f"got {value!r}"
    )


def _check_tensor(op: str, tensor: object, name: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(tensor).__name__}")
    return tensor


def _check_same_kind(op: str, tensors: dict[str, torch.Tensor], query: torch.Tensor) -> None:
    for name, tensor in tensors.items():
        if tensor.dtype != query.dtype:
            raise TypeError(
                f"{op}: {name} has dtype {tensor.dtype} but query has {query.dtype}; "
                "all tensors must share query's dtype"
            )
        if tensor.device != query.device:
            raise ValueError(
                f"{op}: {name} is on device {tensor.device} but query is on {query.device}; "
                "all tensors must be on query's device"
            )


def _check_window(
    op: str,
    spatial: tuple[int, ...],
    kernel_size: IntOrTuple,
    stride: IntOrTuple,
    dilation: IntOrTuple,
    is_causal: BoolOrTuple,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[bool, ...]]:
    ndim = len(spatial)
    kernels = _per_axis(op, kernel_size, "kernel_size", ndim, int)
    strides = _per_axis(op, stride, "stride", ndim, int)
    dilations = _per_axis(op, dilation, "dilation", ndim, int)
    causal = _per_axis(op, is_causal, "is_causal", ndim, bool)
    for axis, length in enumerate(spatial):
        k_name, s_name, d_name = (
            _argument_name(name, axis, ndim) for name in ("kernel_size", "stride", "dilation")
        )
        k, s, d = kernels[axis], strides[axis], dilations[axis]
        where = f"spatial axis {axis} of query has {length} tokens"
        if not 2 <= k <= length:
            raise ValueError(f"{op}: {k_name}={k} must be in [2, {length}] ({where})")
        if d < 1:
            raise ValueError(f"{op}: {d_name}={d} must be >= 1")
        if k * d > length:
            raise ValueError(
                f"{op}: {k_name} * {d_name} = {k} * {d} = {k * d} must be <= {length} ({where})"
            )
        if not 1 <= s <= k:
            raise ValueError(f"{op}: {s_name}={s} must be in [1, {k}] (1 to {k_name})")
    return kernels, strides, dilations, causal


def _check_call(
    op: str,
    ndim: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple,
    dilation: IntOrTuple,
    is_causal: BoolOrTuple,
    scale: float | None,
    rpb: torch.Tensor | None,
    additional_keys: torch.Tensor | None,
    additional_values: torch.Tensor | None,
    backend: str | None,
) -> AttentionCall:
    if backend is not None and backend not in backend_names():
        raise ValueError(
            f"{op}: backend must be None or one of {', '.join(map(repr, backend_names()))}; "
            f"got {backend!r}"
        )
    query = _check_tensor(op, query, "query")
    key = _check_tensor(op, key, "key")
    value = _check_tensor(op, value, "value")
    if not query.is_floating_point():
        raise TypeError(f"{op}: query must have a floating-point dtype, got {query.dtype}")
    axes = _AXIS_NAMES[ndim]
    layout = f"[batch, {axes}, heads, head_dim]"
    if query.dim() != ndim + 3:
        raise ValueError(
            f"{op} expects query of rank {ndim + 3} ({layout}), "
            f"got rank {query.dim()} with shape {tuple(query.shape)}"
        )
    if key.shape != value.shape:
        raise ValueError(
            f"{op}: key and value must have the same shape, "
            f"got key {tuple(key.shape)} and value {tuple(value.shape)}"
        )
    heads, head_dim = query.shape[-2:]
    if key.dim() != query.dim() or key.shape[:-2] != query.shape[:-2] or key.shape[-1] != head_dim:
        expected = (*query.shape[:-2], "kv_heads", head_dim)
        raise ValueError(
            f"{op}: key and value must have shape [batch, {axes}, kv_heads, head_dim] = "
            f"{expected} to match query, "
            f"got {tuple(key.shape)}"
        )
    kv_heads = key.shape[-2]
    if kv_heads < 1 or heads % kv_heads:
        raise ValueError(f"{op}: key/value heads ({kv_heads}) must divide query heads ({heads})")
    tensors = {"key": key, "value": value}

    spatial = tuple(query.shape[1:-2])
    kernels, strides, dilations, causal = _check_window(
        op, spatial, kernel_size, stride, dilation, is_causal
    )

    if scale is None:
        scale = head_dim**-0.5
    elif not isinstance(scale, numbers.Real) or isinstance(scale, bool):
        raise TypeError(f"{op}: scale must be a real number or None, got {scale!r}")

    if rpb is not None:
        rpb = _check_tensor(op, rpb, "rpb")
        expected = (heads, *(2 * k - 1 for k in kernels))
        if tuple(rpb.shape) != expected:
            raise ValueError(
                f"{op}: rpb must have shape {expected} (heads, then 2*kernel_size-1 per axis), "
                f"got {tuple(rpb.shape)}"
            )
        tensors["rpb"] = rpb

    if (additional_keys is None) != (additional_values is None):
        given = "additional_keys" if additional_values is None else "additional_values"
        raise ValueError(
            f"{op}: additional_keys and additional_values must be given together (got only {given})"
        )
    if additional_keys is not None:
        additional_keys = _check_tensor(op, additional_keys, "additional_keys")
        additional_values = _check_tensor(op, additional_values, "additional_values")
        for name, tensor in (
            ("additional_keys", additional_keys),
            ("additional_values", additional_values),
        ):
            if tensor.dim() != 4 or (tensor.shape[0], *tensor.shape[2:]) != (
                query.shape[0],
                kv_heads,
                head_dim,
            ):
                raise ValueError(
                    f"{op}: {name} must have shape [batch, M, kv_heads, head_dim] = "
                    f"({query.shape[0]}, M, {kv_heads}, {head_dim}), got {tuple(tensor.shape)}"
                )
        if additional_keys.shape != additional_values.shape:
            raise ValueError(
                f"{op}: additional_keys and additional_values must have the same shape, got "
                f"{tuple(additional_keys.shape)} and {tuple(additional_values.shape)}"
            )
        tensors["additional_keys"] = additional_keys
        tensors["additional_values"] = additional_values
    _check_same_kind(op, tensors, query)

    return AttentionCall(
        query=query,
        key=key,
        value=value,
        kernel_size=kernels,
        stride=strides,
        dilation=dilations,
        is_causal=causal,
        scale=float(scale),
        rpb=rpb,
        additional_keys=additional_keys,
        additional_values=additional_values,
    )


def _neighborhood_attention(
    op: str,
    ndim: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    dilation: IntOrTuple = 1,
    is_causal: BoolOrTuple = False,
    scale: float | None = None,
    rpb: torch.Tensor | None = None,
    additional_keys: torch.Tensor | None = None,
    additional_values: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Check the arguments of ``op`` (``ndim`` spatial axes) and run the chosen backend."""
    call = _check_call(
        op,
        ndim,
        query,
        key,
        value,
        kernel_size,
        stride,
        dilation,
        is_causal,
        scale,
        rpb,
        additional_keys,
        additional_values,
        backend,
    )
    chosen = choose_backend(call, backend)
    record_call(chosen.name)
    return chosen.run(call)


def na1d(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    dilation: IntOrTuple = 1,
    is_causal: BoolOrTuple = False,
    scale: float | None = None,
    rpb: torch.Tensor | None = None,
    additional_keys: torch.Tensor | None = None,
    additional_values: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """1D neighbourhood attention over ``[B, L, heads, head_dim]`` (see module docstring).

    ``key``/``value``: ``[B, L, kv_heads, head_dim]``; ``rpb``: ``[heads, 2*k-1]``;
    ``additional_keys``/``additional_values``: ``[B, M, kv_heads, head_dim]``.
    Returns ``[B, L, heads, head_dim]``.
    """
    return _neighborhood_attention(
        "na1d",
        1,
        query,
        key,
        value,
        kernel_size,
        stride,
        dilation,
        is_causal,
        scale,
        rpb,
        additional_keys,
        additional_values,
        backend,
    )


def na2d(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    dilation: IntOrTuple = 1,
    is_causal: BoolOrTuple = False,
    scale: float | None = None,
    rpb: torch.Tensor | None = None,
    additional_keys: torch.Tensor | None = None,
    additional_values: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """2D neighbourhood attention over ``[B, X, Y, heads, head_dim]`` (see module docstring).

    ``key``/``value``: ``[B, X, Y, kv_heads, head_dim]``; ``rpb``:
    ``[heads, 2*k1-1, 2*k2-1]``; ``additional_keys``/``additional_values``:
    ``[B, M, kv_heads, head_dim]``. Returns ``[B, X, Y, heads, head_dim]``.
    """
    return _neighborhood_attention(
        "na2d",
        2,
        query,
        key,
        value,
        kernel_size,
        stride,
        dilation,
        is_causal,
        scale,
        rpb,
        additional_keys,
        additional_values,
        backend,
    )


def na3d(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    dilation: IntOrTuple = 1,
    is_causal: BoolOrTuple = False,
    scale: float | None = None,
    rpb: torch.Tensor | None = None,
    additional_keys: torch.Tensor | None = None,
    additional_values: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """3D neighbourhood attention over ``[B, X, Y, Z, heads, head_dim]`` (see module docstring).

    ``key``/``value``: ``[B, X, Y, Z, kv_heads, head_dim]``; ``rpb``:
    ``[heads, 2*k1-1, 2*k2-1, 2*k3-1]``; ``additional_keys``/``additional_values``:
    ``[B, M, kv_heads, head_dim]``. Returns ``[B, X, Y, Z, heads, head_dim]``.
    """
    return _neighborhood_attention(
        "na3d",
        3,
        query,
        key,
        value,
        kernel_size,
        stride,
        dilation,
        is_causal,
        scale,
        rpb,
        additional_keys,
        additional_values,
        backend,
    )
