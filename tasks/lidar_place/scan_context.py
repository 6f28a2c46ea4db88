"""Scan Context (Kim and Kim, "Scan Context: Egocentric Spatial Descriptor for Place
Recognition within 3D Point Cloud Map", IROS 2018): the hand-made baseline of lidar place
recognition, written from the paper's description.

Descriptor (:func:`scan_context`). The points of a submap, in its local frame (centred on
its pose), are binned on a polar grid of ``rings`` equal-width rings out to
``max_radius`` and ``sectors`` equal azimuth sectors; a bin holds the greatest height of
its points, height being z above the submap's lowest point, so an empty bin is 0. Points
beyond ``max_radius`` are ignored. The paper uses 20 rings, 60 sectors and 80 m for a
car's 3D scanner; here ``max_radius`` is the submap radius (the paper's 80 m scaled to the
submap).

Distance (:func:`scan_context_distance`). Two descriptors are compared column by column
(a column is one sector, all rings): the distance is the mean over columns of one minus
the cosine similarity of corresponding columns, and a column empty in both descriptors is
skipped (a column empty in one only counts as dissimilar, similarity 0). Because a
rotation of the sensor about z shifts the columns, the distance is the minimum over all
column shifts of the second descriptor, which also gives the relative heading
(``shift * 360 / sectors`` degrees). All shifts are evaluated at once from the matrix of
column dot products.

Retrieval (:class:`ScanContextIndex`). The paper's two steps: the ring key (a
rotation-invariant vector with one number per ring, :func:`ring_key`) of the query
selects the nearest ``candidates`` (10) database ring keys with a k-d tree
(scikit-learn's ``NearestNeighbors``), and those candidates are ranked by the Scan
Context distance. For recall at N beyond the candidates the remaining database entries
follow the candidates in order of ring-key distance (their Scan Context distance is not
computed and is reported as ``inf``); ``candidates=len(database)`` ranks the whole
database by the Scan Context distance.

Ring key. The paper defines it as each ring's occupancy ratio (the share of non-empty
bins); its authors' code uses each ring's mean bin value. :func:`ring_key` computes the
mean by default (``mode="mean"``), which on aerial lidar, where nearly every bin holds a
ground point and the occupancy is near 1 in every ring, is the one that discriminates;
``mode="occupancy"`` gives the paper's ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

#: the paper's grid
RINGS = 20
SECTORS = 60

#: ring-key candidates re-ranked by the Scan Context distance (the paper's 10)
CANDIDATES = 10


def scan_context(xyz: np.ndarray, *, rings: int = RINGS, sectors: int = SECTORS,
                 max_radius: float) -> np.ndarray:
    """The Scan Context ``[rings, sectors]`` (float64) of the local points ``xyz``
    ``[N, 3]`` (or more columns; the first three are x, y, z).

    Ring ``i`` covers radii ``[i, i + 1) * max_radius / rings``; sector ``j`` covers
    azimuths ``[j, j + 1) * 360 / sectors`` degrees counted from the +x axis towards +y, so
    rotating the points by ``k * 360 / sectors`` degrees rolls the columns by ``k``. A bin
    is the greatest height above the lowest point of ``xyz`` (all points, including those
    beyond ``max_radius``) of its points; 0 when empty.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] < 3:
        raise ValueError(f"xyz must be [N, 3], got shape {list(xyz.shape)}")
    if max_radius <= 0 or rings < 1 or sectors < 1:
        raise ValueError("max_radius, rings and sectors must be positive")
    desc = np.zeros((rings, sectors))
    if len(xyz) == 0:
        return desc
    height = xyz[:, 2] - xyz[:, 2].min()
    radius = np.hypot(xyz[:, 0], xyz[:, 1])
    inside = radius < max_radius
    ring = (radius[inside] * (rings / max_radius)).astype(np.int64)
    azimuth = np.mod(np.arctan2(xyz[inside, 1], xyz[inside, 0]), 2.0 * np.pi)
    sector = np.minimum((azimuth * (sectors / (2.0 * np.pi))).astype(np.int64), sectors - 1)
    np.maximum.at(desc.reshape(-1), ring * sectors + sector, height[inside])
    return desc


def ring_key(desc: np.ndarray, mode: Literal["mean", "occupancy"] = "mean") -> np.ndarray:
    """The rotation-invariant ring key ``[rings]`` of a Scan Context (or ``[..., rings]``
    of a stack of them): each ring's mean bin value, or with ``mode="occupancy"`` the share
    of its bins that are not empty (the paper's definition)."""
    desc = np.asarray(desc, dtype=np.float64)
    if mode == "mean":
        return desc.mean(axis=-1)
    if mode == "occupancy":
        return (desc > 0).mean(axis=-1)
    raise ValueError(f"mode must be 'mean' or 'occupancy', got {mode!r}")


def shift_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The Scan Context distance of ``a`` and ``b`` rolled by each column shift:
    ``[sectors]``, entry ``s`` comparing ``a`` with ``np.roll(b, s, axis=1)``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"descriptors must be two [rings, sectors] arrays of one shape, "
                         f"got {list(a.shape)} and {list(b.shape)}")
    sectors = a.shape[1]
    gram = a.T @ b  # gram[i, j] = a[:, i] . b[:, j]
    norm_a = np.linalg.norm(a, axis=0)
    norm_b = np.linalg.norm(b, axis=0)
    # rolled by s, column j of b comes from column (j - s) mod sectors
    j = np.arange(sectors)
    source = np.mod(j[None, :] - np.arange(sectors)[:, None], sectors)  # [shift, column]
    dot = gram[j[None, :], source]
    nb = norm_b[source]
    na = np.broadcast_to(norm_a[None, :], nb.shape)
    both = (na > 0) & (nb > 0)
    similarity = np.divide(dot, na * nb, out=np.zeros_like(dot), where=both)
    counted = (na > 0) | (nb > 0)
    n = counted.sum(axis=1)
    total = np.where(counted, 1.0 - similarity, 0.0).sum(axis=1)
    # two descriptors with no occupied column at all are not evidence of a match
    return np.divide(total, n, out=np.ones(sectors), where=n > 0)


def scan_context_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """``(distance, shift)``: the least Scan Context distance over column shifts of ``b``
    (0 for identical descriptors, at most 1 for non-negative ones) and the shift that gives
    it: ``np.roll(b, shift, axis=1)`` is aligned with ``a``, i.e. ``a``'s points are
    ``b``'s rotated by ``shift * 360 / sectors`` degrees (counter-clockwise)."""
    per_shift = shift_distances(a, b)
    shift = int(np.argmin(per_shift))
    return float(per_shift[shift]), shift


class ScanContextIndex:
    """Database Scan Contexts, searched as the paper does (the module's docstring).

    ``descriptors``: ``[N, rings, sectors]`` (or a sequence of ``[rings, sectors]``).
    ``candidates``: how many ring-key neighbours are re-ranked by the Scan Context
    distance. ``ring_key_mode``: see :func:`ring_key`.
    """

    def __init__(self, descriptors: np.ndarray | Sequence[np.ndarray], *,
                 candidates: int = CANDIDATES,
                 ring_key_mode: Literal["mean", "occupancy"] = "mean") -> None:
        from sklearn.neighbors import NearestNeighbors

        self.descriptors = np.asarray(descriptors, dtype=np.float64)
        if self.descriptors.ndim != 3 or len(self.descriptors) == 0:
            raise ValueError(f"descriptors must be a non-empty [N, rings, sectors] stack, "
                             f"got shape {list(self.descriptors.shape)}")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        self.candidates = min(candidates, len(self.descriptors))
        self.ring_key_mode = ring_key_mode
        self.ring_keys = ring_key(self.descriptors, ring_key_mode)
        self._tree = NearestNeighbors(algorithm="kd_tree").fit(self.ring_keys)

    def __len__(self) -> int:
        return len(self.descriptors)

    def query(self, desc: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best database indices for the query Scan Context ``desc`` (all when
        ``k`` is None), best first, and their distances: the Scan Context distance for the
        re-ranked candidates, ``inf`` for the entries after them (ranked by ring-key
        distance)."""
        desc = np.asarray(desc, dtype=np.float64)
        if desc.shape != self.descriptors.shape[1:]:
            raise ValueError(f"query descriptor is {list(desc.shape)}; the database's are "
                             f"{list(self.descriptors.shape[1:])}")
        n = len(self)
        k = n if k is None else min(k, n)
        depth = max(k, self.candidates)
        _, order = self._tree.kneighbors(ring_key(desc, self.ring_key_mode)[None, :],
                                         n_neighbors=depth)
        order = order[0]
        head = order[: self.candidates]
        scores = np.array([scan_context_distance(desc, self.descriptors[i])[0]
                           for i in head])
        ranked = np.argsort(scores, kind="stable")
        indices = np.concatenate([head[ranked], order[self.candidates:]])[:k]
        distances = np.concatenate([scores[ranked],
                                    np.full(depth - self.candidates, np.inf)])[:k]
        return indices, distances

    def rank_all(self, queries: np.ndarray | Sequence[np.ndarray], k: int | None = None
                 ) -> list[np.ndarray]:
        """:meth:`query`'s ranked indices for each query descriptor, as
        :func:`~domainvit.tasks.lidar_place.metrics.ranked_recall` takes them."""
        return [self.query(desc, k)[0] for desc in queries]
