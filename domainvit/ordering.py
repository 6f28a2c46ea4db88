"""Space-filling-curve orderings of grid tokens and point sets (Morton / Z-order, Hilbert).

Ordering tokens along a space-filling curve turns "nearby in space" into "nearby in the
sequence", so that windows of consecutive tokens are compact regions. HOTFormerLoc's
octree window attention (Griffiths et al., CVPR 2025) builds its fixed point-count windows
this way: sort the points along the curve, then cut the sequence into chunks.

- :func:`morton_code` interleaves the bits of the coordinates (Morton 1966).
- :func:`hilbert_code` follows J. Skilling, "Programming the Hilbert curve", AIP Conf.
  Proc. 707 (2004): coordinates are converted to the "transposed" Hilbert index, whose
  bits interleaved like a Morton code give the index along the curve. Consecutive
  indices are always grid neighbours, which Morton codes do not guarantee.
- :func:`grid_order` and :func:`point_order` return permutations: ``tokens[perm]`` lists
  the tokens in curve order, and :func:`inverse_permutation` puts them back.

Coordinates are ``[..., D]`` with ``D`` = 2 or 3 and axis 0 first (``(row, col)`` or
``(depth, row, col)``); axis 0 gives the most significant bit of every level, so on a
2x2(x2) grid Morton order is row-major order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

Curve = Literal["morton", "hilbert"]
_CURVES = ("morton", "hilbert")
_CODE_BITS = 63  # codes are int64 and must stay non-negative


def _check_coords(coords_int: torch.Tensor, bits: int) -> int:
    """Validate integer coordinates ``[..., D]`` on a ``2**bits`` grid; return ``D``."""
    if not isinstance(coords_int, torch.Tensor):
        raise TypeError(f"coords_int must be a torch.Tensor, got {type(coords_int).__name__}")
    if coords_int.is_floating_point() or coords_int.is_complex() or coords_int.dtype == torch.bool:
        raise TypeError(
            f"coords_int must hold integers, got dtype {coords_int.dtype}; "
            "use point_order() for float coordinates"
        )
    if coords_int.dim() == 0 or coords_int.shape[-1] not in (2, 3):
        raise ValueError(
            f"coords_int must have shape [..., 2] or [..., 3], got {tuple(coords_int.shape)}"
        )
    ndim = coords_int.shape[-1]
    max_bits = _CODE_BITS // ndim
    if not isinstance(bits, int) or not 1 <= bits <= max_bits:
        raise ValueError(f"bits must be an int in [1, {max_bits}] for {ndim}D codes, got {bits}")
    if coords_int.numel() and (coords_int.min() < 0 or coords_int.max() >= 2**bits):
        raise ValueError(
            f"coords_int must lie in [0, {2**bits - 1}] (a grid of 2**bits={2**bits} cells per "
            f"axis), got values in [{int(coords_int.min())}, {int(coords_int.max())}]"
        )
    return ndim


def _interleave_bits(coords: torch.Tensor, bits: int) -> torch.Tensor:
    """Interleave the low ``bits`` bits of ``coords[..., d]``; axis 0 most significant."""
    ndim = coords.shape[-1]
    code = torch.zeros(coords.shape[:-1], dtype=torch.int64, device=coords.device)
    for level in range(bits):
        for axis in range(ndim):
            bit = (coords[..., axis] >> level) & 1
            code |= bit << (level * ndim + ndim - 1 - axis)
    return code


def morton_code(coords_int: torch.Tensor, bits: int) -> torch.Tensor:
    """Morton (Z-order) codes of integer grid coordinates.

    Args:
        coords_int: integer tensor ``[..., D]``, D = 2 or 3, values in ``[0, 2**bits)``.
        bits: bits per axis; ``D * bits`` must fit in 63 bits.

    Returns:
        int64 tensor ``[...]``: a bijection from the ``2**bits``-per-axis grid onto
        ``[0, 2**(D*bits))``.
    """
    _check_coords(coords_int, bits)
    return _interleave_bits(coords_int.long(), bits)


def hilbert_code(coords_int: torch.Tensor, bits: int) -> torch.Tensor:
    """Hilbert-curve indices of integer grid coordinates (Skilling 2004), vectorised.

    Args:
        coords_int: integer tensor ``[..., D]``, D = 2 or 3, values in ``[0, 2**bits)``.
        bits: bits per axis; ``D * bits`` must fit in 63 bits.

    Returns:
        int64 tensor ``[...]``: a bijection from the grid onto ``[0, 2**(D*bits))`` in which
        cells with consecutive indices are neighbours (Manhattan distance 1).
    """
    ndim = _check_coords(coords_int, bits)
    x = [coords_int[..., axis].long() for axis in range(ndim)]
    # Skilling's AxestoTranspose. Inverse undo: from the top bit down, reflect or swap the
    # low bits of axis 0 and axis i so that every level is seen in its standard orientation.
    q = 1 << (bits - 1)
    while q > 1:
        low = q - 1
        for axis in range(ndim):
            bit_set = (x[axis] & q) != 0
            swap = (x[0] ^ x[axis]) & low
            if axis == 0:
                x[0] = torch.where(bit_set, x[0] ^ low, x[0])
                continue
            swap = torch.where(bit_set, torch.zeros_like(swap), swap)
            x[0] = torch.where(bit_set, x[0] ^ low, x[0] ^ swap)
            x[axis] = x[axis] ^ swap
        q >>= 1
    # Gray encode.
    for axis in range(1, ndim):
        x[axis] = x[axis] ^ x[axis - 1]
    flip = torch.zeros_like(x[0])
    q = 1 << (bits - 1)
    while q > 1:
        flip = torch.where((x[ndim - 1] & q) != 0, flip ^ (q - 1), flip)
        q >>= 1
    transposed = torch.stack([axis_bits ^ flip for axis_bits in x], dim=-1)
    return _interleave_bits(transposed, bits)


def _curve_code(coords_int: torch.Tensor, bits: int, curve: str) -> torch.Tensor:
    if curve == "morton":
        return morton_code(coords_int, bits)
    if curve == "hilbert":
        return hilbert_code(coords_int, bits)
    raise ValueError(f"curve must be one of {_CURVES}, got {curve!r}")


def grid_order(
    shape: Sequence[int], curve: Curve = "morton", device: torch.device | str | None = None
) -> torch.Tensor:
    """Permutation of the flattened (row-major) cells of a 2D/3D grid into curve order.

    ``tokens.flatten(0, D - 1)[perm]`` lists the cells of ``tokens[*shape, ...]`` along the
    curve. Shapes that are not powers of two are ordered as the enclosing ``2**b`` grid
    with the cells outside ``shape`` dropped (so the Hilbert order may jump there).

    Args:
        shape: grid size per axis, 2 or 3 positive ints.
        curve: ``"morton"`` or ``"hilbert"``.
        device: device of the returned tensor.

    Returns:
        LongTensor ``[prod(shape)]``, a permutation of ``range(prod(shape))``.
    """
    shape = tuple(shape)
    if len(shape) not in (2, 3) or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"shape must be 2 or 3 positive ints, got {shape}")
    if curve not in _CURVES:
        raise ValueError(f"curve must be one of {_CURVES}, got {curve!r}")
    bits = max(1, max(math.ceil(math.log2(s)) for s in shape))
    axes = [torch.arange(s, device=device) for s in shape]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))
    return torch.argsort(_curve_code(coords, bits, curve))


def point_order(points: torch.Tensor, bits: int = 10, curve: Curve = "morton") -> torch.Tensor:
    """Permutation of a point set into curve order.

    The points are quantised to ``2**bits`` cells per axis over their bounding box. The
    cells are cubes (the longest side of the box sets the cell size, as in an octree), so
    that closeness along the curve means closeness in space along every axis. Points in
    the same cell keep their input order.

    Args:
        points: float tensor ``[..., N, D]``, D = 2 or 3; leading dimensions are batches,
            each quantised over its own bounding box.
        bits: quantisation bits per axis (``D * bits <= 63``).
        curve: ``"morton"`` or ``"hilbert"``.

    Returns:
        LongTensor ``[..., N]``: ``points.gather(-2, perm[..., None].expand_as(points))``
        (or ``points[perm]`` for one set) lists the points in curve order.
    """
    if not isinstance(points, torch.Tensor) or not points.is_floating_point():
        kind = points.dtype if isinstance(points, torch.Tensor) else type(points).__name__
        raise TypeError(f"points must be a floating-point tensor [..., N, D], got {kind}")
    if points.dim() < 2 or points.shape[-1] not in (2, 3):
        raise ValueError(f"points must have shape [..., N, 2] or [..., N, 3], got "
                         f"{tuple(points.shape)}")
    if curve not in _CURVES:
        raise ValueError(f"curve must be one of {_CURVES}, got {curve!r}")
    if points.shape[-2] == 0:
        return torch.empty(points.shape[:-1], dtype=torch.long, device=points.device)
    if not torch.isfinite(points).all():
        raise ValueError("points contain NaN or infinite coordinates")
    ndim = points.shape[-1]
    max_bits = _CODE_BITS // ndim
    if not isinstance(bits, int) or not 1 <= bits <= max_bits:
        raise ValueError(f"bits must be an int in [1, {max_bits}] for {ndim}D points, got {bits}")
    # Quantise in float64: float32 cannot resolve 2**bits cells over large coordinates.
    points = points.double()
    low = points.amin(dim=-2, keepdim=True)
    extent = (points.amax(dim=-2, keepdim=True) - low).amax(dim=-1, keepdim=True)
    cells = 2**bits
    scale = torch.where(extent > 0, cells / extent, torch.ones_like(extent))
    coords = ((points - low) * scale).floor().long().clamp_(0, cells - 1)
    return torch.argsort(_curve_code(coords, bits, curve), dim=-1, stable=True)


def inverse_permutation(perm: torch.Tensor) -> torch.Tensor:
    """The inverse of a permutation (or a batch of them along the last axis).

    ``inv[perm] == arange(N)``, so ``ordered[inv]`` restores the original order of
    ``ordered = tokens[perm]``.
    """
    if not isinstance(perm, torch.Tensor) or perm.dtype != torch.long or perm.dim() == 0:
        raise TypeError("perm must be a LongTensor of shape [..., N]")
    arange = torch.arange(perm.shape[-1], device=perm.device).expand_as(perm)
    return torch.empty_like(perm).scatter_(-1, perm, arange)
