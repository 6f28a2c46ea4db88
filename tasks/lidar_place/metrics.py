"""Place-recognition retrieval metrics: recall@1, recall@1 %, recall@N and the mean
reciprocal rank of queries against a database of submaps with known positions.

A retrieved database entry is a true match when its position lies within ``positive_m``
metres of the query's, measured horizontally (x, y). Queries with no database entry that
close cannot be matched at all and are left out of every score (and counted). Recall@N is
the share of the counted queries with a true match among their N nearest database
descriptors; recall@1 % takes N = max(1, round(database size / 100)); the MRR averages
1 / (rank of the first true match) over the counted queries, a query without one in the
first ``max_n`` contributing 0.

:func:`ranked_recall` scores any per-query ranking of the database (Scan Context's own
search, :mod:`~domainvit.tasks.lidar_place.scan_context`); :func:`retrieval_scores` ranks
by euclidean distance between descriptors (faiss when it is installed, scikit-learn's
``NearestNeighbors`` otherwise) and calls it. :class:`PlaceRecallMetrics` collects
descriptors during an evaluation (the task's ``TaskMetrics``) and, given a reranker,
re-ranks each query's first matches geometrically
(:class:`~domainvit.tasks.lidar_place.rerank.CloudReranker`) before scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from domainvit.distributed import gather_objects

#: the usual thresholds of the field (PointNetVLAD's 25 m)
POSITIVE_M = 25.0
MAX_N = 25


def one_percent(database_size: int) -> int:
    """N of recall@1 %: max(1, round(database size / 100))."""
    return max(1, int(round(database_size / 100)))


def _xy(positions: np.ndarray, name: str) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] < 2:
        raise ValueError(f"{name} must be [N, 2] or [N, 3] positions, got shape "
                         f"{list(positions.shape)}")
    return positions[:, :2]


def positives(db_pos: np.ndarray, q_pos: np.ndarray, positive_m: float = POSITIVE_M
              ) -> list[np.ndarray]:
    """For each query, the indices of the database entries within ``positive_m`` of it
    (horizontal distance)."""
    from scipy.spatial import cKDTree

    db_xy, q_xy = _xy(db_pos, "db_pos"), _xy(q_pos, "q_pos")
    if len(db_xy) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(len(q_xy))]
    found = cKDTree(db_xy).query_ball_point(q_xy, positive_m)
    return [np.asarray(sorted(f), dtype=np.int64) for f in found]


def ranked_recall(ranks: Sequence[np.ndarray], db_pos: np.ndarray, q_pos: np.ndarray, *,
                  positive_m: float = POSITIVE_M, max_n: int = MAX_N) -> dict[str, Any]:
    """The scores of per-query rankings of the database.

    ``ranks[q]``: database indices, best first, for query ``q`` (at least the first
    ``max(max_n, N of recall@1 %)`` of them, or the whole database when it is smaller;
    shorter rankings count as misses beyond their end).

    Returns ``recall_at_1``, ``recall_at_1pct``, ``recall_at_n`` (a list, N = 1..max_n),
    ``mrr``, ``queries`` (the counted queries), ``queries_without_positive`` and
    ``one_percent_n``; the scores are NaN when no query counts.
    """
    if len(ranks) != len(q_pos):
        raise ValueError(f"{len(ranks)} rankings for {len(q_pos)} queries")
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    n_db = len(_xy(db_pos, "db_pos"))
    k1 = one_percent(n_db)
    depth = max(max_n, k1)
    true_sets = positives(db_pos, q_pos, positive_m)
    first_hit = []  # 1-based rank of the first true match, depth + 1 for none
    without = 0
    for ranking, true in zip(ranks, true_sets, strict=True):
        if len(true) == 0:
            without += 1
            continue
        top = np.asarray(ranking, dtype=np.int64)[:depth]
        hits = np.flatnonzero(np.isin(top, true))
        first_hit.append(int(hits[0]) + 1 if len(hits) else depth + 1)
    counted = len(first_hit)
    if counted == 0:
        nan = float("nan")
        return {"recall_at_1": nan, "recall_at_1pct": nan, "recall_at_n": [nan] * max_n,
                "mrr": nan, "queries": 0, "queries_without_positive": without,
                "one_percent_n": k1}
    first = np.asarray(first_hit)
    recall_at_n = [float(np.mean(first <= n)) for n in range(1, max_n + 1)]
    reciprocal = np.where(first <= max_n, 1.0 / first, 0.0)
    return {"recall_at_1": recall_at_n[0], "recall_at_1pct": float(np.mean(first <= k1)),
            "recall_at_n": recall_at_n, "mrr": float(reciprocal.mean()), "queries": counted,
            "queries_without_positive": without, "one_percent_n": k1}


def nearest_neighbours(db_desc: np.ndarray, q_desc: np.ndarray, k: int) -> np.ndarray:
    """``[Q, min(k, N)]`` database indices by euclidean descriptor distance, nearest
    first: faiss's exact flat index when faiss is importable, else scikit-learn."""
    db = np.ascontiguousarray(db_desc, dtype=np.float32)
    q = np.ascontiguousarray(q_desc, dtype=np.float32)
    if db.ndim != 2 or q.ndim != 2 or db.shape[1] != q.shape[1]:
        raise ValueError(f"descriptors must be [N, D] and [Q, D], got {list(db.shape)} and "
                         f"{list(q.shape)}")
    k = min(k, len(db))
    if len(q) == 0 or k == 0:
        return np.zeros((len(q), k), dtype=np.int64)
    try:
        import faiss
    except ImportError:
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=k).fit(db).kneighbors(q, return_distance=False)
    index = faiss.IndexFlatL2(db.shape[1])
    index.add(db)
    return index.search(q, k)[1].astype(np.int64)


def retrieval_scores(db_desc: np.ndarray, db_pos: np.ndarray, q_desc: np.ndarray,
                     q_pos: np.ndarray, *, positive_m: float = POSITIVE_M,
                     max_n: int = MAX_N) -> dict[str, Any]:
    """:func:`ranked_recall` of the queries' nearest database descriptors (euclidean)."""
    if len(db_desc) != len(db_pos) or len(q_desc) != len(q_pos):
        raise ValueError(f"{len(db_desc)} database descriptors for {len(db_pos)} positions, "
                         f"{len(q_desc)} query descriptors for {len(q_pos)}")
    depth = max(max_n, one_percent(len(db_desc)))
    ranks = nearest_neighbours(db_desc, q_desc, depth)
    return ranked_recall(list(ranks), db_pos, q_pos, positive_m=positive_m, max_n=max_n)


class PlaceRecallMetrics:
    """``update(descriptors [B, D], target [B, 4], paths, bin_formats)`` with ``target``
    = (x, y, z, is_query): the database and the queries of an evaluation arrive mixed in
    batches; ``compute()`` -> :func:`ranked_recall` of the queries' nearest database
    descriptors, the scalars as 0-d tensors (as the engine logs them) and
    ``recall_at_n`` as a 1-d tensor. With a ``reranker`` (and the clouds' ``paths``), each
    query's first ``reranker.top_k`` matches are re-ranked geometrically first.

    The descriptors stay on the CPU whatever ``to`` is given (a database of thousands of
    descriptors is small, and nearest-neighbour search runs on the CPU). Under DDP each
    rank holds a shard; ``compute`` gathers every rank's with ``all_gather_object``.
    """

    def __init__(self, *, positive_m: float = POSITIVE_M, max_n: int = MAX_N,
                 reranker: Any = None) -> None:
        self.positive_m = positive_m
        self.max_n = max_n
        self.reranker = reranker
        self.reset()

    def to(self, device: torch.device) -> PlaceRecallMetrics:
        return self

    def reset(self) -> None:
        self._descriptors: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._files: list[tuple[str, str]] = []

    def update(self, outputs: torch.Tensor, target: torch.Tensor,
               paths: Sequence[str] | None = None,
               bin_formats: Sequence[str] | None = None) -> None:
        if outputs.ndim != 2 or target.ndim != 2 or target.shape[1] != 4 \
                or len(outputs) != len(target):
            raise ValueError(f"expected descriptors [B, D] and targets [B, 4] (x, y, z, "
                             f"is_query), got {list(outputs.shape)} and "
                             f"{list(target.shape)}")
        self._descriptors.append(outputs.detach().float().cpu())
        self._targets.append(target.detach().double().cpu())
        if paths is not None:
            formats = bin_formats if bin_formats is not None else ["kitti"] * len(paths)
            if len(paths) != len(outputs) or len(formats) != len(outputs):
                raise ValueError(f"{len(paths)} paths and {len(formats)} formats for "
                                 f"{len(outputs)} descriptors")
            self._files.extend(zip(paths, formats, strict=True))

    def _collected(self) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
        parts = gather_objects(([d.numpy() for d in self._descriptors],
                                [t.numpy() for t in self._targets], self._files))
        desc = [d for part in parts for d in part[0]]
        targets = [t for part in parts for t in part[1]]
        files = [f for part in parts for f in part[2]]
        width = next((d.shape[1] for d in desc), 0)
        return (np.concatenate(desc) if desc else np.zeros((0, width), np.float32),
                np.concatenate(targets) if targets else np.zeros((0, 4)), files)

    def compute(self) -> dict[str, Any]:
        desc, targets, files = self._collected()
        is_query = targets[:, 3] > 0.5
        db_desc, q_desc = desc[~is_query], desc[is_query]
        ranks = list(nearest_neighbours(db_desc, q_desc,
                                        max(self.max_n, one_percent(len(db_desc)))))
        if self.reranker is not None and self.reranker.top_k > 0:
            if len(files) != len(desc):
                raise ValueError("re-ranking needs every cloud's file: update() was given "
                                 "no paths")
            db_files = [f for f, q in zip(files, is_query, strict=True) if not q]
            q_files = [f for f, q in zip(files, is_query, strict=True) if q]
            db_format = db_files[0][1] if db_files else "kitti"
            ranks = [self.reranker.rerank(self.reranker.file_points(*query, keep=False),
                                          order, [db_files[i][0] for i in order],
                                          db_format)[0]
                     for query, order in zip(q_files, ranks, strict=True)]
        scores = ranked_recall(ranks, targets[~is_query, :3], targets[is_query, :3],
                               positive_m=self.positive_m, max_n=self.max_n)
        result: dict[str, Any] = {
            name: torch.tensor(float(value), dtype=torch.float64)
            for name, value in scores.items() if name != "recall_at_n"}
        result["recall_at_n"] = torch.tensor(scores["recall_at_n"], dtype=torch.float64)
        return result
