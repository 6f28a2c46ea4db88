"""Geometric re-ranking of retrieved places: bird's-eye height maps of the query and of
each of the top candidates, aligned over yaw and horizontal shift.

A global descriptor ranks the database; the right place is usually among the first few
(recall@5 is far above recall@1) but not always first. Re-ranking looks at the geometry
itself: each cloud becomes a height map (the highest point per ``cell_m`` cell, above the
cloud's 2nd-percentile height), the query's map is rotated in ``yaw_step_deg`` steps, and
for every yaw the masked normalised cross-correlation with the candidate's map is computed
for every shift at once with FFTs (Padfield 2012, "Masked object registration in the
Fourier domain", IEEE TIP 21(5): only cells occupied in both maps count, and the heights'
means and deviations are those of the overlap; an overlap of fewer than
:data:`MIN_OVERLAP_CELLS` cells, or a flat one, is not scored). A candidate's geometric
score is the best correlation weighted by the square root of the share of the query's
cells that overlap (a small overlap can correlate perfectly by chance). The top ``top_k``
candidates are then ordered by the sum of their descriptor rank and geometric rank (ties:
geometric rank); candidates beyond ``top_k`` keep their order. The best alignment also
gives the query's yaw and offset relative to the candidate, which ``predict`` reports.

Written here rather than taken from a library: scikit-image's masked registration
(``skimage.registration.phase_cross_correlation`` with masks) returns the best shift but
not the correlation at it nor the overlap, which are what the score needs; a 3-D
registration (open3d's ICP or RANSAC on features) on a few thousand sparse aerial points
per submap needs an initial pose and is slower by orders of magnitude.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import fft

if TYPE_CHECKING:
    from domainvit.datasets.pointcloud import PointCloud
    from domainvit.tasks.lidar_place.data import LidarPlaceData

#: matches re-ranked by default (``data.rerank_top_k``): recall@5 is near recall@25 on
#: the sample benchmark, recall@1 far below it
DEFAULT_TOP_K = 5
#: height maps hold the highest point above this percentile of the cloud's heights
BASE_PERCENTILE = 2.0
#: a shift whose overlap has fewer occupied cells than this is not scored
MIN_OVERLAP_CELLS = 10
#: nor one whose heights in the overlap vary by less than this (metres, standard
#: deviation) in either map: flat ground matches flat ground anywhere
MIN_RELIEF_M = 0.1


@dataclass(frozen=True)
class Alignment:
    """The best alignment of a query's height map onto a candidate's."""

    #: masked correlation at the best yaw and shift x sqrt(overlap), -1..1 (higher: better)
    score: float
    #: the rotation about z (degrees, counter-clockwise) that takes the query onto the
    #: candidate
    yaw_deg: float
    #: where the query cloud's centre lies in the candidate cloud's frame (metres, x and y,
    #: relative to the candidate cloud's centre)
    offset_xy: tuple[float, float]
    #: the share of the query's occupied cells that overlap the candidate's
    overlap: float


class HeightMapMatcher:
    """Height maps of clouds centred on their own centre (metres), ``radius`` m at most
    from it horizontally, and their alignment (:meth:`align`)."""

    def __init__(self, radius: float, cell_m: float = 1.0, yaw_step_deg: float = 5.0
                 ) -> None:
        if radius <= 0 or cell_m <= 0 or not 0 < yaw_step_deg <= 360:
            raise ValueError(f"radius {radius}, cell_m {cell_m} and yaw_step_deg "
                             f"{yaw_step_deg} must be positive (yaw step at most 360)")
        self.radius = float(radius)
        self.cell = float(cell_m)
        self.cells = int(np.ceil(2 * radius / cell_m)) + 1
        # large enough that no shift wraps around onto another
        self.size = fft.next_fast_len(2 * self.cells)
        self.yaws = np.arange(0.0, 360.0, yaw_step_deg)

    def height_maps(self, xyz: np.ndarray, yaws_deg: np.ndarray | list[float]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(heights, occupied)``, each ``[len(yaws_deg), cells, cells]``: per cell the
        highest point above the cloud's base height, after rotating the cloud by each yaw
        (degrees) about its centre; points beyond the grid are left out."""
        xyz = np.asarray(xyz, dtype=np.float64)
        yaws = np.deg2rad(np.asarray(yaws_deg, dtype=np.float64))
        n = self.cells
        top = np.full((len(yaws), n * n), -np.inf)
        if len(xyz):
            c, s = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
            x = c * xyz[None, :, 0] - s * xyz[None, :, 1]
            y = s * xyz[None, :, 0] + c * xyz[None, :, 1]
            z = np.broadcast_to(xyz[:, 2] - np.percentile(xyz[:, 2], BASE_PERCENTILE),
                                x.shape)
            i = np.floor((x + self.radius) / self.cell).astype(np.int64)
            j = np.floor((y + self.radius) / self.cell).astype(np.int64)
            inside = (i >= 0) & (i < n) & (j >= 0) & (j < n)
            which = np.broadcast_to(np.arange(len(yaws))[:, None], x.shape)
            np.maximum.at(top, (which[inside], i[inside] * n + j[inside]), z[inside])
        occupied = np.isfinite(top)
        heights = np.where(occupied, top, 0.0)
        return heights.reshape(-1, n, n), occupied.reshape(-1, n, n)

    def height_map(self, xyz: np.ndarray, yaw_deg: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`height_maps` at one yaw: ``(heights, occupied)``, ``[cells, cells]``."""
        heights, occupied = self.height_maps(xyz, [yaw_deg])
        return heights[0], occupied[0]

    def _spectra(self, heights: np.ndarray, occupied: np.ndarray) -> np.ndarray:
        """``[..., 3, size, size // 2 + 1]`` spectra of the masked heights, the mask and
        the masked squared heights (maps ``[..., cells, cells]``)."""
        mask = occupied.astype(np.float64)
        n = self.cells
        stack = np.zeros((*heights.shape[:-2], 3, self.size, self.size))
        stack[..., 0, :n, :n] = heights * mask
        stack[..., 1, :n, :n] = mask
        stack[..., 2, :n, :n] = heights * heights * mask
        return fft.rfft2(stack, workers=-1)

    def query_spectra(self, xyz: np.ndarray) -> tuple[np.ndarray, int]:
        """The spectra of the query's height map at every yaw ``[yaws, 3, ...]`` and its
        number of occupied cells (at yaw 0)."""
        heights, occupied = self.height_maps(xyz, self.yaws)
        return self._spectra(heights, occupied), int(occupied[0].sum())

    def align(self, query: tuple[np.ndarray, int], xyz: np.ndarray) -> Alignment:
        """The best alignment of a query (:meth:`query_spectra`) onto the cloud ``xyz``."""
        spectra, query_cells = query
        target = self._spectra(*self.height_map(xyz))
        if query_cells == 0 or not target[1, 0, 0].real > 0:
            return Alignment(-1.0, 0.0, (0.0, 0.0), 0.0)
        conj = np.conj(target)
        qh, qm, qh2 = spectra[:, 0], spectra[:, 1], spectra[:, 2]
        th, tm, th2 = conj[0], conj[1], conj[2]
        shape = (self.size, self.size)
        # correlations over every shift s: sum over x of q(x + s) t(x)
        def correlate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return fft.irfft2(a * b, s=shape, workers=-1)

        overlap = np.rint(correlate(qm, tm))
        sum_q, sum_t, sum_qt = correlate(qh, tm), correlate(qm, th), correlate(qh, th)
        sum_q2, sum_t2 = correlate(qh2, tm), correlate(qm, th2)
        count = np.maximum(overlap, 1.0)
        covariance = sum_qt - sum_q * sum_t / count
        var_q = sum_q2 - sum_q ** 2 / count
        var_t = sum_t2 - sum_t ** 2 / count
        # an overlap that is flat in either map (heights within centimetres) says nothing
        relief = np.minimum(var_q, var_t) > MIN_RELIEF_M ** 2 * count
        correlation = np.clip(covariance / np.sqrt(np.maximum(var_q * var_t, 1e-12)), -1, 1)
        share = np.clip(overlap / query_cells, 0, 1)
        score = np.where((overlap >= MIN_OVERLAP_CELLS) & relief,
                         correlation * np.sqrt(share), -1.0)
        best = np.unravel_index(int(np.argmax(score)), score.shape)
        yaw, si, sj = best
        # a query cell at index k + s lies on the target's cell k
        shift = np.array([si, sj], dtype=np.float64)
        shift[shift >= self.size // 2] -= self.size
        offset = -shift * self.cell
        return Alignment(float(score[best]), float(self.yaws[yaw]),
                         (float(offset[0]), float(offset[1])), float(share[best]))


def fused_order(order: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``order`` (database indices, best descriptor first) with its first ``len(scores)``
    entries re-ordered by descriptor rank + geometric rank (``scores``: the geometric
    score of each, higher is better; ties go to the better geometric rank)."""
    order = np.asarray(order)
    k = len(scores)
    geometric_rank = np.argsort(np.argsort(-np.asarray(scores), kind="stable"), kind="stable")
    fused = geometric_rank + np.arange(k)
    top = np.lexsort((geometric_rank, fused))
    return np.concatenate([order[:k][top], order[k:]])


def rerank(matcher: HeightMapMatcher, order: np.ndarray, query_xyz: np.ndarray,
           candidate_xyz: list[np.ndarray]) -> tuple[np.ndarray, list[Alignment]]:
    """Re-rank the first ``len(candidate_xyz)`` entries of ``order`` (their clouds, in
    ``order``'s order): the new order and the alignments, in the new order."""
    query = matcher.query_spectra(query_xyz)
    alignments = [matcher.align(query, xyz) for xyz in candidate_xyz]
    new = fused_order(order, np.array([a.score for a in alignments]))
    position = {int(i): n for n, i in enumerate(np.asarray(order)[:len(alignments)])}
    return new, [alignments[position[int(i)]] for i in new[:len(alignments)]]


#: clouds whose re-ranking points a :class:`CloudReranker` keeps in memory
CACHED_CLOUDS = 256


class CloudReranker:
    """Re-ranks a query's matches by reading the clouds: each cloud centred where the
    model's pre-processing centres it (``cloud_rows``), with every point within
    ``rerank_reach`` x ``radius`` of that centre (not the model's sample of
    ``data.points``). Read clouds are kept for the next queries (up to
    :data:`CACHED_CLOUDS`)."""

    def __init__(self, cfg: LidarPlaceData) -> None:
        self.cfg = cfg
        self.top_k = cfg.rerank_top_k
        self.reach = cfg.rerank_reach * cfg.radius
        self.matcher = HeightMapMatcher(self.reach, cfg.rerank_cell_m,
                                        cfg.rerank_yaw_step_deg)
        self._points: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def points(self, cloud: PointCloud, name: str) -> np.ndarray:
        """The re-ranking points of a cloud read from the file ``name``: ``[N, 3]``
        metres from the centre the model's pre-processing uses."""
        from domainvit.tasks.lidar_place.data import cloud_rows, file_rng

        centre = cloud_rows(cloud, self.cfg, file_rng(name))[0]
        local = cloud.xyz - centre
        near = np.einsum("ij,ij->i", local[:, :2], local[:, :2]) <= self.reach ** 2
        return local[near]

    def file_points(self, path: Path | str, bin_format: str = "kitti", keep: bool = True
                    ) -> np.ndarray:
        """:meth:`points` of a cloud file; ``keep``: remember them for the next call (a
        database cloud is a candidate of many queries, a query is read once)."""
        from domainvit.datasets.pointcloud import read_point_cloud

        key = (str(path), bin_format)
        if key not in self._points:
            cloud = read_point_cloud(Path(path), bin_format=bin_format)
            points = self.points(cloud, Path(path).name)
            if not keep:
                return points
            self._points[key] = points
            if len(self._points) > CACHED_CLOUDS:
                self._points.popitem(last=False)
        self._points.move_to_end(key)
        return self._points[key]

    def rerank(self, query: np.ndarray, order: np.ndarray, candidates: list[Path | str],
               bin_format: str = "kitti") -> tuple[np.ndarray, list[Alignment]]:
        """:func:`rerank` of ``order`` for the query's re-ranking points ``query``;
        ``candidates``: the files of ``order``'s entries (at least its first
        ``rerank_top_k``)."""
        k = min(self.top_k, len(order))
        clouds = [self.file_points(path, bin_format) for path in candidates[:k]]
        return rerank(self.matcher, order, query, clouds)
