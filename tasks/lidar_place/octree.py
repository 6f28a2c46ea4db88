"""An octree of a batch of point clouds, built in PyTorch (runs on any device).

HOTFormerLoc (Griffiths et al., CVPR 2025) works on octree nodes in Morton order; its
published code builds the octree with a CUDA-only extension. Here the octree is a few
tensor operations, so the model also runs on a CPU:

- points in ``[-1, 1)^3`` are quantised on a ``2**depth`` grid per axis and keyed by
  their Morton code (:func:`domainvit.ordering.morton_code`); a key of sample ``b`` is
  ``b * 8**depth + morton``, so one sort orders the nodes by sample, then along the
  Z-curve, and a parent's key is its child's key ``// 8`` at every depth;
- the occupied nodes of one depth are the unique keys; the nodes of the depth above are
  the unique parents, with an index from each child to its parent
  (:meth:`OctreeLevel.coarsen`);
- windows of ``W`` consecutive nodes of one sample (:func:`window_plan`) are compact
  regions of space, the octree windows of OctFormer/HOTFormerLoc. With a dilation ``d``
  the nodes of a sample are first split into ``d`` groups by position modulo ``d`` (the
  dilated windows of NATTEN and OctFormer). A sample's last window, when fewer than
  ``W`` nodes are left, takes the last ``W`` nodes of its group as keys and answers only
  for its own nodes: every window has exactly ``min(W, n)`` real nodes and none is
  padding, the semantics of ``na1d`` with ``kernel_size == stride`` (clamped windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from domainvit.ordering import morton_code


@dataclass(frozen=True)
class OctreeLevel:
    """The occupied nodes of one depth of a batch's octree, sorted by key."""

    depth: int
    #: int64 [T]: ``sample * 8**depth + morton``, ascending
    keys: torch.Tensor
    #: int64 [T]: the sample of each node
    sample: torch.Tensor
    #: float [T, 3]: the node's centre in ``[-1, 1]^3`` (axis order x, y, z)
    centre: torch.Tensor
    #: the number of samples in the batch
    batch: int

    @property
    def counts(self) -> torch.Tensor:
        """int64 [B]: the number of nodes of each sample."""
        return torch.bincount(self.sample, minlength=self.batch)

    def coarsen(self) -> tuple[OctreeLevel, torch.Tensor]:
        """The level one depth up and, for each node here, the index of its parent there."""
        parents, child_to_parent = torch.unique_consecutive(self.keys // 8,
                                                             return_inverse=True)
        depth = self.depth - 1
        sample = parents // (8**depth)
        level = OctreeLevel(depth, parents, sample,
                            node_centres(parents - sample * 8**depth, depth, self.centre.dtype),
                            self.batch)
        return level, child_to_parent


def _deinterleave(codes: torch.Tensor, depth: int) -> torch.Tensor:
    """Integer grid coordinates ``[T, 3]`` of 3-D Morton codes (axis 0 most significant)."""
    coords = torch.zeros(codes.shape + (3,), dtype=torch.int64, device=codes.device)
    for level in range(depth):
        for axis in range(3):
            bit = (codes >> (level * 3 + 2 - axis)) & 1
            coords[..., axis] |= bit << level
    return coords


def node_centres(codes: torch.Tensor, depth: int, dtype: torch.dtype) -> torch.Tensor:
    """Centres in ``[-1, 1]^3`` of the cells of Morton codes at ``depth``."""
    cell = 2.0 / 2**depth
    return (_deinterleave(codes, depth).to(dtype) + 0.5) * cell - 1.0


def quantise(xyz: torch.Tensor, depth: int) -> torch.Tensor:
    """Integer cells ``[..., 3]`` on a ``2**depth`` grid of points in ``[-1, 1]`` (clamped)."""
    cells = torch.floor((xyz + 1.0) * (2**depth / 2.0)).long()
    return cells.clamp_(0, 2**depth - 1)


def build_leaves(xyz: torch.Tensor, valid: torch.Tensor, depth: int
                 ) -> tuple[OctreeLevel, torch.Tensor, torch.Tensor]:
    """The leaf level of the octree of a batch of clouds.

    Args:
        xyz: ``[B, N, 3]`` points scaled to ``[-1, 1]`` (outside is clamped onto the box).
        valid: ``[B, N]`` bool, false for padding rows.
        depth: the leaves' depth (``2**depth`` cells per axis).

    Returns:
        the leaf level, the flat indices ``[P]`` of the valid points into ``[B * N]``, and
        for each of them the index of its leaf.
    """
    batch, count = xyz.shape[:2]
    flat = torch.nonzero(valid.reshape(-1), as_tuple=True)[0]
    sample = flat // count
    cells = quantise(xyz.reshape(-1, 3)[flat], depth)
    keys = sample * 8**depth + morton_code(cells, depth)
    leaves, point_to_leaf = torch.unique(keys, sorted=True, return_inverse=True)
    leaf_sample = leaves // 8**depth
    level = OctreeLevel(depth, leaves, leaf_sample,
                        node_centres(leaves - leaf_sample * 8**depth, depth, xyz.dtype), batch)
    return level, flat, point_to_leaf


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of ``values[i]`` over the ``i`` with ``index[i] == j``, for ``j < size``."""
    total = values.new_zeros((size,) + values.shape[1:]).index_add_(0, index, values)
    count = torch.bincount(index, minlength=size).clamp_(min=1).to(values.dtype)
    return total / count.view(-1, *([1] * (values.dim() - 1)))


def scatter_max(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Maximum of ``values[i]`` over the ``i`` with ``index[i] == j`` (every ``j`` occurs)."""
    out = values.new_full((size,) + values.shape[1:], float("-inf"))
    expanded = index.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    return out.scatter_reduce(0, expanded, values, reduce="amax", include_self=True)


@dataclass(frozen=True)
class WindowGroup:
    """Windows of one length: which nodes each gathers and which answers it gives."""

    #: int64 [nW, L]: node indices of each window (keys and queries)
    nodes: torch.Tensor
    #: bool [nW, L]: whether the window answers for that node (false where a clamped last
    #: window overlaps the window before it)
    own: torch.Tensor
    #: int64 [nW]: the window's index in the level's list of windows
    window: torch.Tensor


@dataclass(frozen=True)
class WindowPlan:
    """The octree windows of one level: groups of equal-length windows."""

    groups: tuple[WindowGroup, ...]
    #: int64 [T]: the window that answers for each node
    node_window: torch.Tensor
    #: int64 [nW]: the sample of each window
    window_sample: torch.Tensor

    @property
    def num_windows(self) -> int:
        return int(self.window_sample.numel())


def window_plan(counts: torch.Tensor, window: int, dilation: int = 1) -> WindowPlan:
    """Windows of ``window`` consecutive nodes per sample (and dilation group).

    ``counts`` [B] holds the nodes per sample, stored one sample after another. With a
    dilation ``d``, the nodes ``i, i + d, i + 2d, ...`` of a sample form group ``i % d``,
    cut into windows as one sequence. The last window of a sequence of ``n`` nodes with
    ``n % window != 0`` is clamped: it covers the sequence's last ``window`` nodes and
    answers for the ``n % window`` nodes the previous windows left (for ``n < window``
    the window is the whole sequence).
    """
    if window < 1 or dilation < 1:
        raise ValueError(f"window and dilation must be >= 1, got {window} and {dilation}")
    device = counts.device
    counts = counts.long()
    batch = counts.numel()
    # the sequences: one per (sample, dilation group) that holds nodes, in that order
    sample = torch.arange(batch, device=device).repeat_interleave(dilation)
    group = torch.arange(dilation, device=device).repeat(batch)
    length = ((counts[sample] - group + dilation - 1) // dilation).clamp(min=0)
    keep = length > 0
    sample, group, length = sample[keep], group[keep], length[keep]
    first_node = (torch.cumsum(counts, 0) - counts)[sample] + group
    size = length.clamp(max=window)
    per_seq = (length + size - 1) // size
    # the windows, in sequence order: window j of a sequence starts at node j * size,
    # clamped so that it ends at the sequence's end
    seq = torch.arange(len(length), device=device).repeat_interleave(per_seq)
    j = torch.arange(len(seq), device=device) - (torch.cumsum(per_seq, 0) - per_seq)[seq]
    w_size, w_len = size[seq], length[seq]
    first = j * w_size
    lo = torch.minimum(first, w_len - w_size)
    ids = torch.arange(len(seq), device=device)
    node_window = torch.empty(int(counts.sum()), dtype=torch.int64, device=device)
    groups = []
    for value in torch.unique(w_size).tolist():
        chosen = w_size == value
        t = torch.arange(value, device=device)
        nodes = first_node[seq[chosen], None] + (lo[chosen, None] + t) * dilation
        own = t >= (first - lo)[chosen, None]
        window_ids = ids[chosen]
        node_window[nodes[own]] = window_ids[:, None].expand_as(nodes)[own]
        groups.append(WindowGroup(nodes, own, window_ids))
    return WindowPlan(tuple(groups), node_window, sample[seq])


def padded(values: torch.Tensor, sample: torch.Tensor, batch: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat per-node values ``[T, C]`` (sorted by sample) as ``[B, Tmax, C]`` and a bool
    mask ``[B, Tmax]`` of the real entries."""
    counts = torch.bincount(sample, minlength=batch)
    width = max(int(counts.max()), 1) if counts.numel() else 1
    offsets = torch.cumsum(counts, 0) - counts
    position = torch.arange(sample.numel(), device=values.device) - offsets[sample]
    out = values.new_zeros((batch, width) + values.shape[1:])
    out[sample, position] = values
    mask = torch.zeros(batch, width, dtype=torch.bool, device=values.device)
    mask[sample, position] = True
    return out, mask
