"""Perception analysis of the lidar place-recognition models (the notebook
``notebooks/perception_analysis.ipynb`` and ``benchmarks/lidar_place_results.py``):
retrieval scores of HOTFormerLoc, the PointNet baseline and Scan Context on a place
folder, and how they change when the queries are perturbed.

Models. :func:`~domainvit.analysis.common.load_model` (re-exported here) loads a config
and a checkpoint as ``domainvit predict`` does (the data facts the checkpoint recorded
filled into the config, the EMA weights when it has them), in eval mode on the CPU.

Descriptors. :func:`describe_folder` gives the descriptors and positions of a place
folder's database and queries with the pre-processing of evaluation and prediction
(:func:`~domainvit.tasks.lidar_place.data.cloud_rows`, the random subset seeded by the
file's name, :func:`~domainvit.tasks.lidar_place.data.file_rng`), in batches as
``predict`` describes them. An optional ``transform`` perturbs the *queries only* before
the pre-processing; the database stays as it is. :func:`model_scores` scores the result
with :func:`~domainvit.tasks.lidar_place.metrics.retrieval_scores`,
:func:`scan_context_scores` scores Scan Context
(:class:`~domainvit.tasks.lidar_place.scan_context.ScanContextIndex` on the clouds as
stored: their local frame is centred on the pose, as a scanner's is).

Perturbations. A transform is a callable ``transform(cloud, rng) -> cloud`` on a
:class:`~domainvit.datasets.pointcloud.PointCloud` in its local frame (the pose at the
origin). The ones here (:func:`rotate`, :func:`thin`, :func:`densify`, :func:`noise`,
:func:`occlude`, :func:`offset`) are :class:`Perturbation` objects that carry their kind
and strength for the tables. Each query is perturbed with its own generator, seeded by
the query's file name and a ``seed`` (:func:`perturbation_rng`), so a perturbed query is
the same whatever the order or subset of queries, and from run to run.

The queries of ``lidar-autzen`` are already perturbed when the benchmark is built (a
random heading, 60-100 % of the points, half of them with a density gradient or an
occluded sector, 0.05-0.2 m of noise, a 2-5 m pose error; see
:mod:`domainvit.datasets.lidar_autzen`); a perturbation here comes on top of those. As
their headings are uniformly random, a further fixed rotation leaves the *distribution*
of headings unchanged: the rotation sweep measures whether a query's result depends on
its heading (a rotation-invariant method scores the same at every angle, and
:func:`robustness_table` reports how many top-1 matches stay the same).

Re-ranking. :func:`rerank_ranks` re-ranks any method's rankings geometrically
(:func:`reranked_scores` scores a model that way;
:class:`~domainvit.tasks.lidar_place.rerank.CloudReranker`, the first
``data.rerank_top_k`` matches, :data:`RERANK_TOP_K` when the config sets none), with the
same perturbed queries; :func:`robustness_table` adds a re-ranked row per method when asked.

:func:`robustness_table` runs the sweeps for several models and Scan Context;
:func:`recall_curves`, :func:`query_outcomes` and the ``plot_*`` functions give the
notebook's figures (each ``plot_*`` returns a matplotlib figure).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from domainvit.analysis.common import load_model  # noqa: F401 (re-exported)
from domainvit.datasets.pointcloud import (
    PlaceEntry,
    PlaceFolder,
    PointCloud,
    outside_sector,
    rotate_z,
)
from domainvit.tasks.lidar_place.metrics import (
    MAX_N,
    POSITIVE_M,
    nearest_neighbours,
    one_percent,
    positives,
    ranked_recall,
    retrieval_scores,
)
from domainvit.tasks.lidar_place.rerank import DEFAULT_TOP_K

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from torch import nn

    from domainvit.tasks.lidar_place.data import LidarPlaceData

#: a query transform: ``transform(cloud, rng) -> cloud`` (local frame, pose at the origin)
Transform = Callable[[PointCloud, np.random.Generator], PointCloud]

#: the horizontal jitter (m, standard deviation) of :func:`densify`'s copies
DENSIFY_JITTER_M = 0.3

#: the method name of Scan Context in tables and figures
SCAN_CONTEXT = "Scan Context"
#: what a re-ranked method is called in the tables
RERANKED = "{} + re-ranking"
#: the matches re-ranked when a config turns re-ranking off
RERANK_TOP_K = DEFAULT_TOP_K


# --- models and folders ------------------------------------------------------------------


def benchmark_folder(split: str = "test", dataset: str | None = None) -> PlaceFolder:
    """The ``val`` or ``test`` place folder of the sample benchmark (``lidar-autzen``
    unless ``dataset`` names another), prepared on first use."""
    from domainvit.datasets.lidar_autzen import LIDAR_AUTZEN
    from domainvit.datasets.pointcloud import read_place_folder
    from domainvit.datasets.registry import prepare
    from domainvit.registry import load_tasks

    load_tasks()  # the task registers its sample dataset
    return read_place_folder(prepare(dataset or LIDAR_AUTZEN) / split)


def subset_queries(folder: PlaceFolder, count: int | None) -> PlaceFolder:
    """``folder`` with ``count`` of its queries, evenly spaced through the list (so that
    every query trajectory is represented); the whole folder when ``count`` is None or
    not smaller."""
    if count is None or count >= len(folder.queries):
        return folder
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    index = np.linspace(0, len(folder.queries) - 1, count).round().astype(int)
    return replace(folder, queries=[folder.queries[i] for i in np.unique(index)])


def positions(entries: Sequence[PlaceEntry]) -> np.ndarray:
    """``[N, 3]`` float64 positions of place-folder entries."""
    return np.array([e.position for e in entries], dtype=np.float64).reshape(-1, 3)


def chance_recall_at_1(folder: PlaceFolder, positive_m: float = POSITIVE_M) -> float:
    """The expected recall@1 of a random ranking: the mean over the queries with a true
    match of their share of true matches in the database (as ``split.json`` records it
    per split)."""
    true = positives(positions(folder.database), positions(folder.queries), positive_m)
    shares = [len(t) / len(folder.database) for t in true if len(t)]
    return float(np.mean(shares)) if shares else float("nan")


def _data(cfg: Any) -> LidarPlaceData:
    """The data config of a run config (or the data config itself)."""
    return getattr(cfg, "data", cfg)


# --- perturbations -----------------------------------------------------------------------


def perturbation_rng(name: str, seed: int = 0) -> np.random.Generator:
    """The generator that perturbs the query file ``name``: seeded by the name and
    ``seed``, and distinct from the pre-processing generator of the file."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


@dataclass(frozen=True)
class Perturbation:
    """A query transform with its ``kind`` and ``strength`` (for tables), applied by
    calling it: ``perturbation(cloud, rng) -> cloud``."""

    kind: str
    strength: float
    label: str
    apply: Transform = field(repr=False, compare=False)

    def __call__(self, cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        return self.apply(cloud, rng)


def _select(cloud: PointCloud, keep: np.ndarray) -> PointCloud:
    if int(np.count_nonzero(keep)) < 2:  # a usable cloud: the two nearest the pose
        keep = np.zeros(len(cloud.xyz), dtype=bool)
        keep[np.argsort(np.hypot(cloud.xyz[:, 0], cloud.xyz[:, 1]))[:2]] = True
    intensity = None if cloud.intensity is None else cloud.intensity[keep]
    return PointCloud(cloud.xyz[keep], intensity, cloud.source)


def rotate(deg: float, *, random: bool = False) -> Perturbation:
    """Rotation about z (counter-clockwise, about the pose): by ``deg`` degrees, or with
    ``random`` by an angle drawn uniformly from ``[-deg, deg]`` for each query."""

    def apply(cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        angle = np.radians(rng.uniform(-deg, deg) if random else deg)
        return PointCloud(rotate_z(cloud.xyz, angle), cloud.intensity, cloud.source)

    label = f"rotation up to ±{deg:g}°" if random else f"rotation {deg:g}°"
    return Perturbation("rotation", float(deg), label, apply)


def thin(keep: float) -> Perturbation:
    """Lower density: a random ``keep`` share of the points (at least two) is kept."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")

    def apply(cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        count = len(cloud.xyz)
        chosen = rng.choice(count, size=max(2, int(round(keep * count))), replace=False)
        mask = np.zeros(count, dtype=bool)
        mask[chosen] = True
        return _select(cloud, mask)

    return Perturbation("density", float(keep), f"density x{keep:g} (thinned)", apply)


def densify(factor: int, jitter_m: float = DENSIFY_JITTER_M) -> Perturbation:
    """Higher density: every point is kept and repeated ``factor - 1`` more times,
    displaced horizontally by gaussian jitter of ``jitter_m`` metres (standard deviation,
    in x and y) with its height and intensity.

    This simulates a denser survey of the same surfaces (``factor`` times the returns per
    m²; the jitter is below the sample cloud's point spacing of about 0.75 m), not finer
    detail: the copies add no structure that the original points do not show. Note that
    pre-processing keeps ``data.points`` points of a cloud, so a densified query reaches
    the model as a random subset of originals and copies."""
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"factor must be a whole number >= 1, got {factor}")
    factor = int(factor)

    def apply(cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        copies = np.repeat(cloud.xyz[None], factor, axis=0)
        copies[1:, :, :2] += rng.normal(scale=jitter_m, size=(factor - 1, len(cloud.xyz), 2))
        intensity = None if cloud.intensity is None else np.tile(cloud.intensity, factor)
        return PointCloud(copies.reshape(-1, 3), intensity, cloud.source)

    return Perturbation("density", float(factor), f"density x{factor} (densified)", apply)


def noise(sigma_m: float) -> Perturbation:
    """Gaussian noise of ``sigma_m`` metres (standard deviation) on x, y and z of every
    point."""

    def apply(cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        xyz = cloud.xyz + rng.normal(scale=sigma_m, size=cloud.xyz.shape)
        return PointCloud(xyz, cloud.intensity, cloud.source)

    return Perturbation("noise", float(sigma_m), f"noise σ {sigma_m:g} m", apply)


def occlude(sector_deg: float) -> Perturbation:
    """An occluded sector: the points whose azimuth (seen from the pose) lies in a sector
    of ``sector_deg`` degrees starting at a random azimuth are removed."""

    def apply(cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        start = rng.uniform(0.0, 2.0 * np.pi)
        return _select(cloud, outside_sector(cloud.xyz, start, np.radians(sector_deg)))

    return Perturbation("occlusion", float(sector_deg), f"occluded sector {sector_deg:g}°",
                        apply)


def offset(metres: float, radius: float = 20.0) -> Perturbation:
    """A displaced crop: the points farther than ``radius`` (horizontal) from a centre
    ``metres`` away from the pose, in a random direction, are dropped; the cloud keeps
    the lens where the two discs overlap (the pose stays the query's recorded position,
    as for a localisation error)."""

    def apply(cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        heading = rng.uniform(0.0, 2.0 * np.pi)
        centre = metres * np.array([np.cos(heading), np.sin(heading)])
        distance = np.hypot(cloud.xyz[:, 0] - centre[0], cloud.xyz[:, 1] - centre[1])
        return _select(cloud, distance <= radius)

    return Perturbation("offset", float(metres), f"crop centre offset {metres:g} m", apply)


def default_sweeps(radius: float = 20.0) -> list[Perturbation]:
    """The sweeps of the results benchmark: rotation 0, 90, 180°; density x0.25, x0.5
    (thinned) and x4 (densified); noise 0.1, 0.3 m; occluded sectors of 90 and 180°;
    crop centre offsets of 5 and 10 m."""
    return [rotate(0), rotate(90), rotate(180), thin(0.25), thin(0.5), densify(4),
            noise(0.1), noise(0.3), occlude(90), occlude(180), offset(5, radius),
            offset(10, radius)]


# --- descriptors and scores --------------------------------------------------------------


def read_clouds(entries: Sequence[PlaceEntry], bin_format: str = "kitti",
                transform: Transform | None = None, seed: int = 0) -> list[PointCloud]:
    """The clouds of place-folder entries, each perturbed by ``transform`` (with
    :func:`perturbation_rng` of its file name) when given."""
    from domainvit.datasets.pointcloud import read_point_cloud

    clouds = []
    for entry in entries:
        cloud = read_point_cloud(entry.path, bin_format=bin_format)
        if transform is not None:
            cloud = transform(cloud, perturbation_rng(entry.path.name, seed))
        clouds.append(cloud)
    return clouds


def describe_entries(model: nn.Module, cfg: Any, entries: Sequence[PlaceEntry],
                     bin_format: str = "kitti", *, transform: Transform | None = None,
                     seed: int = 0) -> np.ndarray:
    """Descriptors ``[len(entries), D]`` of place-folder clouds, pre-processed as in
    evaluation (``cloud_rows`` with the file's ``file_rng``), after ``transform``."""
    from domainvit.tasks.lidar_place.data import cloud_rows, file_rng
    from domainvit.tasks.lidar_place.predict import describe

    data = _data(cfg)
    rows = [cloud_rows(cloud, data, file_rng(entry.path.name))[1] for entry, cloud in
            zip(entries, read_clouds(entries, bin_format, transform, seed), strict=True)]
    return describe(model, rows)


def describe_folder(model: nn.Module, cfg: Any, folder: PlaceFolder, *,
                    transform: Transform | None = None, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(db_desc, db_pos, q_desc, q_pos)`` of a place folder: descriptors ``[N, D]`` and
    positions ``[N, 3]`` of the database, then of the queries; ``transform`` perturbs the
    queries only (``seed`` seeds it)."""
    db_desc = describe_entries(model, cfg, folder.database, folder.bin_format)
    q_desc = describe_entries(model, cfg, folder.queries, folder.bin_format,
                              transform=transform, seed=seed)
    return db_desc, positions(folder.database), q_desc, positions(folder.queries)


def model_scores(model: nn.Module, cfg: Any, folder: PlaceFolder,
                 transform: Transform | None = None, *, seed: int = 0,
                 max_n: int = MAX_N) -> dict[str, Any]:
    """:func:`~domainvit.tasks.lidar_place.metrics.retrieval_scores` of a model on a place
    folder (true matches within ``data.positive_m``), the queries perturbed by
    ``transform`` when given."""
    db_desc, db_pos, q_desc, q_pos = describe_folder(model, cfg, folder, transform=transform,
                                                     seed=seed)
    return retrieval_scores(db_desc, db_pos, q_desc, q_pos,
                            positive_m=_data(cfg).positive_m, max_n=max_n)


def scan_context_descriptors(entries: Sequence[PlaceEntry], bin_format: str = "kitti", *,
                             radius: float = 20.0, transform: Transform | None = None,
                             seed: int = 0) -> np.ndarray:
    """Scan Contexts ``[N, rings, sectors]`` of place-folder clouds in their stored local
    frame (centred on the pose), ``max_radius`` = ``radius``, after ``transform``."""
    from domainvit.tasks.lidar_place.scan_context import scan_context

    return np.stack([scan_context(cloud.xyz, max_radius=radius)
                     for cloud in read_clouds(entries, bin_format, transform, seed)])


def _depth(folder: PlaceFolder, max_n: int) -> int:
    return max(max_n, one_percent(len(folder.database)))


def scan_context_ranks(folder: PlaceFolder, transform: Transform | None = None,
                       radius: float = 20.0, *, seed: int = 0, max_n: int = MAX_N,
                       database: np.ndarray | None = None) -> list[np.ndarray]:
    """Scan Context's ranking of the database for every query (the paper's search,
    :class:`~domainvit.tasks.lidar_place.scan_context.ScanContextIndex`); ``database``:
    the database's Scan Contexts when already computed."""
    from domainvit.tasks.lidar_place.scan_context import ScanContextIndex

    if database is None:
        database = scan_context_descriptors(folder.database, folder.bin_format, radius=radius)
    queries = scan_context_descriptors(folder.queries, folder.bin_format, radius=radius,
                                       transform=transform, seed=seed)
    return ScanContextIndex(database).rank_all(queries, k=_depth(folder, max_n))


def scan_context_scores(folder: PlaceFolder, transform: Transform | None = None,
                        radius: float = 20.0, *, seed: int = 0,
                        positive_m: float = POSITIVE_M, max_n: int = MAX_N
                        ) -> dict[str, Any]:
    """:func:`~domainvit.tasks.lidar_place.metrics.ranked_recall` of Scan Context on a
    place folder, the queries perturbed by ``transform`` when given."""
    ranks = scan_context_ranks(folder, transform, radius, seed=seed, max_n=max_n)
    return ranked_recall(ranks, positions(folder.database), positions(folder.queries),
                         positive_m=positive_m, max_n=max_n)


def model_ranks(model: nn.Module, cfg: Any, folder: PlaceFolder,
                transform: Transform | None = None, *, seed: int = 0, max_n: int = MAX_N,
                database: np.ndarray | None = None) -> list[np.ndarray]:
    """A model's ranking of the database for every query (nearest descriptors first, as
    :func:`model_scores` ranks); ``database``: the database descriptors when already
    computed."""
    if database is None:
        database = describe_entries(model, cfg, folder.database, folder.bin_format)
    queries = describe_entries(model, cfg, folder.queries, folder.bin_format,
                               transform=transform, seed=seed)
    return list(nearest_neighbours(database, queries, _depth(folder, max_n)))


def rerank_ranks(cfg: Any, folder: PlaceFolder, ranks: Sequence[np.ndarray],
                 transform: Transform | None = None, *, seed: int = 0) -> list[np.ndarray]:
    """Per-query rankings re-ranked geometrically: the first ``data.rerank_top_k`` matches
    (:data:`RERANK_TOP_K` when the config sets none) of each, the queries perturbed by
    ``transform`` (with ``seed``) as the rankings were computed."""
    from domainvit.tasks.lidar_place.rerank import CloudReranker

    data = _data(cfg)
    if not data.rerank_top_k:
        data = data.model_copy(update={"rerank_top_k": RERANK_TOP_K})
    reranker = CloudReranker(data)
    queries = read_clouds(folder.queries, folder.bin_format, transform, seed)
    return [reranker.rerank(reranker.points(cloud, entry.path.name), np.asarray(order),
                            [folder.database[i].path for i in order], folder.bin_format)[0]
            for entry, cloud, order in zip(folder.queries, queries, ranks, strict=True)]


def reranked_scores(model: nn.Module, cfg: Any, folder: PlaceFolder,
                    transform: Transform | None = None, *, seed: int = 0,
                    max_n: int = MAX_N) -> dict[str, Any]:
    """:func:`model_scores` with each query's first matches re-ranked geometrically
    (:func:`rerank_ranks`), as ``domainvit eval`` scores with re-ranking on."""
    ranks = model_ranks(model, cfg, folder, transform, seed=seed, max_n=max_n)
    return ranked_recall(rerank_ranks(cfg, folder, ranks, transform, seed=seed),
                         positions(folder.database), positions(folder.queries),
                         positive_m=_data(cfg).positive_m, max_n=max_n)


# --- tables and curves -------------------------------------------------------------------


def results_table(scores: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per method of :func:`model_scores` / :func:`scan_context_scores` results:
    recall@1, @1 %, @5, @25 (or the deepest N scored), MRR and the queries counted."""
    import pandas as pd

    rows = {}
    for method, s in scores.items():
        curve = s["recall_at_n"]
        rows[method] = {"recall@1": s["recall_at_1"],
                        f"recall@1% (N={s['one_percent_n']})": s["recall_at_1pct"],
                        "recall@5": curve[min(5, len(curve)) - 1],
                        f"recall@{len(curve)}": curve[-1], "MRR": s["mrr"],
                        "queries": s["queries"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def recall_curves(scores: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Recall@N (rows N = 1..max_n) of every method (columns)."""
    import pandas as pd

    table = pd.DataFrame({method: s["recall_at_n"] for method, s in scores.items()})
    table.index = pd.RangeIndex(1, len(table) + 1, name="N")
    return table


def robustness_table(models: Mapping[str, tuple[nn.Module, Any]], folder: PlaceFolder,
                     sweeps: Sequence[Perturbation], *, scan_context: bool = True,
                     radius: float | None = None, seed: int = 0,
                     positive_m: float | None = None, max_n: int = MAX_N,
                     reranked: Sequence[str] = (),
                     progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every method on the unperturbed queries and under every perturbation of ``sweeps``.

    ``models``: name -> ``(model, cfg)``; with ``scan_context`` Scan Context as well (at
    ``radius``, default the first model's ``data.radius`` or 20 m); every method named in
    ``reranked`` also re-ranked (:func:`rerank_ranks` with the first model's config),
    called :data:`RERANKED`. True matches lie within
    ``positive_m`` (default the first model's ``data.positive_m`` or 25 m). The database
    of each method is described once; only the queries are perturbed.

    Returns rows ``{method, perturbation, strength, label, recall_at_1, recall_at_1pct,
    recall_at_5, mrr, queries, top1_unchanged}``, first a row with perturbation ``"none"``
    (strength 0) per method; ``top1_unchanged`` is the share of queries whose best match
    is the one they get unperturbed.
    """
    first = next(iter(models.values()), None)
    first_data = None if first is None else _data(first[1])
    radius = radius if radius is not None else (first_data.radius if first_data else 20.0)
    positive_m = positive_m if positive_m is not None else (
        first_data.positive_m if first_data else POSITIVE_M)
    db_pos, q_pos = positions(folder.database), positions(folder.queries)
    methods: dict[str, Callable[[Transform | None], list[np.ndarray]]] = {}
    for name, (model, cfg) in models.items():
        database = describe_entries(model, cfg, folder.database, folder.bin_format)
        methods[name] = (lambda t, m=model, c=cfg, d=database: model_ranks(
            m, c, folder, t, seed=seed, max_n=max_n, database=d))
    if scan_context:
        sc_database = scan_context_descriptors(folder.database, folder.bin_format,
                                               radius=radius)
        methods[SCAN_CONTEXT] = lambda t: scan_context_ranks(
            folder, t, radius, seed=seed, max_n=max_n, database=sc_database)
    for name in reranked:
        if first is None or name not in methods:
            raise ValueError(f"cannot re-rank {name!r}: the methods are {list(methods)}")
        methods[RERANKED.format(name)] = (
            lambda t, r=methods[name]: rerank_ranks(first[1], folder, r(t), t, seed=seed))
    rows = []
    for method, rank in methods.items():
        clean_top1 = None
        for perturbation in [None, *sweeps]:
            if progress is not None:
                progress(f"{method}: {perturbation.label if perturbation else 'unperturbed'}")
            ranks = rank(perturbation)
            scores = ranked_recall(ranks, db_pos, q_pos, positive_m=positive_m, max_n=max_n)
            top1 = np.array([r[0] if len(r) else -1 for r in ranks])
            if clean_top1 is None:
                clean_top1 = top1
            rows.append({
                "method": method,
                "perturbation": perturbation.kind if perturbation else "none",
                "strength": perturbation.strength if perturbation else 0.0,
                "label": perturbation.label if perturbation else "unperturbed",
                "recall_at_1": scores["recall_at_1"],
                "recall_at_1pct": scores["recall_at_1pct"],
                "recall_at_5": scores["recall_at_n"][min(5, max_n) - 1],
                "mrr": scores["mrr"], "queries": scores["queries"],
                "top1_unchanged": float(np.mean(top1 == clean_top1)) if len(top1) else
                float("nan")})
    return rows


def query_outcomes(ranks: Sequence[np.ndarray], folder: PlaceFolder,
                   positive_m: float = POSITIVE_M) -> pd.DataFrame:
    """Per query: its position (x, y), its best match's index and position, the
    horizontal distance between them (m), whether it is a true match (within
    ``positive_m``) and whether the query has a true match in the database at all."""
    import pandas as pd

    db_pos, q_pos = positions(folder.database), positions(folder.queries)
    true = positives(db_pos, q_pos, positive_m)
    rows = []
    for entry, pos, ranking, t in zip(folder.queries, q_pos, ranks, true, strict=True):
        best = int(ranking[0])
        rows.append({"query": entry.path.name, "x": pos[0], "y": pos[1], "top1": best,
                     "top1_x": db_pos[best, 0], "top1_y": db_pos[best, 1],
                     "metres": float(np.hypot(*(db_pos[best, :2] - pos[:2]))),
                     "correct": bool(best in set(t.tolist())), "has_positive": bool(len(t))})
    return pd.DataFrame(rows)


# --- figures -----------------------------------------------------------------------------

#: a colour per method, in the order methods usually come
METHOD_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _colours(methods: Sequence[str]) -> dict[str, str]:
    return {m: METHOD_COLOURS[i % len(METHOD_COLOURS)] for i, m in enumerate(methods)}


def plot_recall_curves(curves: pd.DataFrame, chance: float | None = None,
                       title: str = "Recall@N on the held-out area") -> Figure:
    """Recall@N against N for every method (the columns of :func:`recall_curves`), with
    the chance level of recall@1 when given."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    colours = _colours(list(curves.columns))
    for method in curves.columns:
        ax.plot(curves.index, curves[method], marker="o", markersize=3, label=method,
                color=colours[method])
    if chance is not None and np.isfinite(chance):
        ax.axhline(chance, color="grey", linestyle=":", label=f"chance recall@1 ({chance:.2f})")
    ax.set_xlabel("N (database entries retrieved)")
    ax.set_ylabel("recall@N")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(1, curves.index.max())
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right")
    return fig


def plot_robustness(table: Sequence[Mapping[str, Any]] | pd.DataFrame,
                    kinds: Sequence[str] = ("rotation", "density", "noise"),
                    metric: str = "recall_at_1", chance: float | None = None) -> Figure:
    """``metric`` against the perturbation's strength, one panel per kind of
    perturbation, a line per method (rows of :func:`robustness_table`). The unperturbed
    score is drawn at the strength that leaves a query unchanged (0 for rotation, noise,
    occlusion and offset; a density factor of 1)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(list(table) if not isinstance(table, pd.DataFrame) else table)
    methods = list(dict.fromkeys(frame["method"]))
    colours = _colours(methods)
    units = {"rotation": "rotation about z (°)", "density": "point density (x the query's)",
             "noise": "noise σ (m)", "occlusion": "occluded sector (°)",
             "offset": "crop centre offset (m)"}
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.8),
                             layout="constrained", squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for method in methods:
            rows = frame[(frame["method"] == method) & (frame["perturbation"] == kind)]
            clean = frame[(frame["method"] == method) & (frame["perturbation"] == "none")]
            neutral = 1.0 if kind == "density" else 0.0
            x = list(rows["strength"])
            y = list(rows[metric])
            if len(clean) and neutral not in x:
                x.append(neutral)
                y.append(float(clean[metric].iloc[0]))
            order = np.argsort(x)
            ax.plot(np.asarray(x)[order], np.asarray(y)[order], marker="o", label=method,
                    color=colours[method])
        if kind == "density":
            ax.set_xscale("log", base=2)
            ticks = sorted({1.0, *frame.loc[frame["perturbation"] == kind, "strength"]})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
            ax.axvline(1.0, color="grey", linewidth=0.8)
        if chance is not None and np.isfinite(chance) and metric == "recall_at_1":
            ax.axhline(chance, color="grey", linestyle=":", label="chance recall@1")
        ax.set_xlabel(units.get(kind, kind))
        ax.set_ylabel(metric.replace("_at_", "@").replace("_", " "))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(kind)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    return fig


def plot_top1_map(folder: PlaceFolder, outcomes: Mapping[str, pd.DataFrame],
                  title: str = "Held-out area: is the best match a true match?") -> Figure:
    """A panel per method: the database poses (grey squares) and the queries, green when
    their best match lies within the positive distance and red otherwise, a red line
    from each wrong query to the pose of its best match. Coordinates in metres from the
    south-west corner of the database poses."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    db = positions(folder.database)
    origin = db[:, :2].min(axis=0)
    fig, axes = plt.subplots(1, len(outcomes), figsize=(5.2 * len(outcomes), 5.0),
                             layout="constrained", squeeze=False, sharey=True)
    for ax, (method, frame) in zip(axes[0], outcomes.items(), strict=True):
        ax.scatter(db[:, 0] - origin[0], db[:, 1] - origin[1], marker="s", s=18,
                   color="0.6", zorder=1)
        wrong = frame[~frame["correct"]]
        for _, r in wrong.iterrows():
            ax.plot([r["x"] - origin[0], r["top1_x"] - origin[0]],
                    [r["y"] - origin[1], r["top1_y"] - origin[1]], color="tab:red",
                    linewidth=0.6, alpha=0.6, zorder=2)
        colour = np.where(frame["correct"], "tab:green", "tab:red")
        ax.scatter(frame["x"] - origin[0], frame["y"] - origin[1], c=colour, s=16,
                   edgecolors="black", linewidths=0.3, zorder=3)
        ax.set_aspect("equal")
        scored = frame[frame["has_positive"]]
        ax.set_title(f"{method}: top-1 right for {scored['correct'].mean():.0%}")
        ax.set_xlabel("x (m)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("y (m)")
    handles = [Line2D([], [], marker="s", color="0.6", linestyle="", label="database pose"),
               Line2D([], [], marker="o", color="tab:green", linestyle="",
                      label="query, top-1 right"),
               Line2D([], [], marker="o", color="tab:red", linestyle="",
                      label="query, top-1 wrong (line: to its top-1)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    fig.suptitle(title)
    return fig
