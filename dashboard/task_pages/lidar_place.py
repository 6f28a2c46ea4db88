"""The dashboard page of the lidar_place task: describe a query point cloud, retrieve the
nearest places of a database, and show the cloud, the top matches and a map of them.

The query (an upload in any of :data:`~domainvit.datasets.pointcloud.POINT_SUFFIXES`, or
a held-out query of the ``lidar-autzen`` sample benchmark) goes through the prediction
path of ``domainvit predict`` (:func:`read_point_cloud`, :func:`rows_of`, the check
against the checkpoint's training distribution with :func:`compare_cloud`, then
:func:`describe`), so its descriptor is the one written to ``<stem>.descriptor.npy``
(pre-processing is seeded by the file's name: an upload is named by its sanitised name).

The database is the checkpoint's (:func:`default_database`: ``data.database``, else the
sample benchmark's held-out ``test/`` place folder) or a folder on the server named in
the page's text field. It is described once per model and folder
(:func:`describe_database`, which also keeps the descriptors in its cache file beside the
database when the folder is writable) and held in memory by the server; matching a query
against it (:func:`match`) is a nearest-neighbour search over the descriptors.

The page shows the query cloud in 3D coloured by height (at most
:data:`MAX_SHOWN_POINTS` points of it, a fixed random subset), the :data:`TOP_N` nearest
database clouds (descriptor distance, and the horizontal distance in metres when both
the query's pose and the database's positions are known) and a map of the database's
positions with the matches ranked and the query's pose.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from domainvit.dashboard import widgets
from domainvit.dashboard.checkpoints import LoadedModel
from domainvit.datasets.pointcloud import POINT_SUFFIXES, read_place_folder, read_point_cloud
from domainvit.distribution import InputGuard
from domainvit.errors import UserError
from domainvit.task import Task
from domainvit.tasks.lidar_place.data import LidarPlaceData
from domainvit.tasks.lidar_place.distribution import compare_cloud
from domainvit.tasks.lidar_place.predict import (
    Database,
    default_database,
    describe,
    describe_database,
    match,
    query_position,
    rows_of,
)
from domainvit.tasks.lidar_place.rerank import CloudReranker

KEY = "lidar_place"
UPLOAD_TYPES = tuple(suffix.lstrip(".") for suffix in POINT_SUFFIXES)
#: matches shown in the table and on the map
TOP_N = 5
#: points of the query drawn in the 3D view at most (a browser draws them all)
MAX_SHOWN_POINTS = 20_000
#: the sample benchmark and the held-out queries the page offers (file names in its
#: ``test/queries``; their poses are in its ``poses.csv``)
SAMPLE_DATASET = "lidar-autzen"
SAMPLE_QUERIES = ("000056.bin", "000007.bin", "000019.bin")
#: colours of the ranked matches on the map (rank 1 first)
RANK_COLOURS = ("#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf")


@dataclass
class Query:
    """A described query cloud."""

    #: the file's name as shown
    name: str
    #: the points drawn in the 3D view (at most :data:`MAX_SHOWN_POINTS`)
    shown: np.ndarray
    #: points in the file
    points: int
    #: points that feed the model after pre-processing
    kept: int
    descriptor: np.ndarray
    #: the query's recorded pose (x, y, z), when its place folder lists it
    position: np.ndarray | None
    #: the points geometric re-ranking aligns (None: the config does not re-rank)
    rerank_points: np.ndarray | None = None


def thinned(xyz: np.ndarray, limit: int = MAX_SHOWN_POINTS) -> np.ndarray:
    """At most ``limit`` points of ``xyz``: a fixed random subset, in file order."""
    if len(xyz) <= limit:
        return xyz
    chosen = np.random.default_rng(0).choice(len(xyz), size=limit, replace=False)
    return xyz[np.sort(chosen)]


def describe_query(loaded: LoadedModel, path: Path, guard: InputGuard) -> Query:
    """Read the cloud, check it against the training distribution with ``guard``, then
    compute its descriptor (as ``domainvit predict`` does)."""
    cfg: LidarPlaceData = loaded.config.data
    cloud = read_point_cloud(path)
    rows = rows_of(cloud, cfg, path.name)
    kept = int(rows[:, 4].sum())
    guard.check(path.name, compare_cloud, cloud, kept)
    with st.spinner("Describing the cloud ..."), widgets.exclusive(loaded):
        descriptor = describe(loaded.model, [rows])[0]
    reranker = _reranker(cfg)
    points = None if reranker is None else reranker.points(cloud, path.name)
    return Query(path.name, thinned(cloud.xyz), len(cloud.xyz), kept, descriptor,
                 query_position(path), points)


# --- the database --------------------------------------------------------------------------


@st.cache_resource(max_entries=8, show_spinner=False)
def _default_folder(checkpoint_key: str, _cfg: LidarPlaceData) -> Path:
    """The checkpoint's default database (the sample dataset is prepared on first use)."""
    return default_database(_cfg)


def _signature(folder: Path) -> str:
    """Changes when files are added to or removed from the database or its poses change."""
    parts = []
    for path in (folder, folder / "database", folder / "poses.csv"):
        if path.exists():
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_mtime_ns}:{stat.st_size}")
    return "|".join(parts)


@st.cache_resource(max_entries=4, show_spinner=False)
def _described(folder: str, signature: str, checkpoint_key: str, _loaded: LoadedModel,
               _progress: Callable[[int, int], None]) -> Database:
    return describe_database(_loaded.model, _loaded.config.data, Path(folder),
                             progress=_progress)


def database_folder(text: str) -> Path:
    """The folder typed into the page, checked: an absolute path of an existing folder."""
    folder = Path(text.strip()).expanduser()
    if not folder.is_absolute():
        raise UserError(f"database folder {text.strip()!r}: give the folder's absolute path "
                        "on the server")
    if not folder.exists():
        raise UserError(f"database folder {folder} does not exist on the server")
    if not folder.is_dir():
        raise UserError(f"database folder {folder} is not a folder")
    return folder.resolve()


def chosen_database(loaded: LoadedModel) -> Database | None:
    """The text field for the database folder and the described database (None: it
    cannot be used, with the reason on the page)."""
    cfg: LidarPlaceData = loaded.config.data
    try:
        default = _default_folder(loaded.checkpoint.key, cfg)
    except UserError as exc:
        default, reason = None, str(exc)
    text = st.text_input(
        "Database folder", key=f"{KEY}-database",
        placeholder=str(default) if default else "a folder on the server",
        help="A place folder (database/, queries/ and poses.csv, or the PointNetVLAD "
             "layout) or a plain folder of point-cloud files, on the server running the "
             "dashboard. Empty: the model's database"
             + (f" ({default})" if default else "") + ". Its descriptors are computed "
             "once per model and kept in a cache file beside it where it is writable.")
    try:
        if text.strip():
            folder = database_folder(text)
        elif default is not None:
            folder = default
        else:
            raise UserError(f"the model names no database ({reason}); type a database "
                            "folder above")
        text = f"Describing the database {folder} (once per model and folder) ..."
        with widgets.progress_bar(text) as bar, widgets.exclusive(loaded):
            def report(done: int, total: int) -> None:
                bar.progress(done / total, text=f"{text} {done}/{total} clouds")

            return _described(str(folder), _signature(folder), loaded.checkpoint.key, loaded,
                              report)
    except (UserError, OSError) as exc:
        st.error(str(exc))
        return None


# --- showing the result --------------------------------------------------------------------


@st.cache_resource(max_entries=4)
def _reranker_for(settings: str) -> CloudReranker:
    return CloudReranker(LidarPlaceData.model_validate_json(settings))


def _reranker(cfg: LidarPlaceData) -> CloudReranker | None:
    """The geometric reranker of a config (kept across reruns: it keeps the database
    clouds it has read), None when the config does not re-rank."""
    return _reranker_for(cfg.model_dump_json()) if cfg.rerank_top_k else None


def cloud_figure(query: Query):
    import plotly.graph_objects as go

    x, y, z = query.shown.T
    figure = go.Figure(go.Scatter3d(
        x=x, y=y, z=z, mode="markers", name=query.name, hoverinfo="skip",
        marker={"size": 1.5, "color": z, "colorscale": "Viridis", "opacity": 0.9,
                "colorbar": {"title": {"text": "height (m)"}, "thickness": 12}}))
    figure.update_layout(height=460, margin={"l": 0, "r": 0, "t": 10, "b": 0},
                         scene={"aspectmode": "data", "xaxis_title": "x (m)",
                                "yaxis_title": "y (m)", "zaxis_title": "z (m)"})
    return figure


def match_table(found: list[dict], with_metres: bool) -> pd.DataFrame:
    frame = pd.DataFrame({"rank": [r["rank"] for r in found],
                          "file": [r["file"] for r in found],
                          "descriptor distance": [round(r["descriptor_distance"], 4)
                                                  for r in found]})
    if any(r.get("alignment") is not None for r in found):
        frame["geometric score"] = [None if r.get("alignment") is None
                                    else round(r["alignment"].score, 3) for r in found]
        frame["yaw (deg)"] = [None if r.get("alignment") is None
                              else r["alignment"].yaw_deg for r in found]
    if with_metres:
        frame["metres"] = [None if r["metres"] is None else round(r["metres"], 1)
                           for r in found]
    return frame


def map_figure(database: Database, found: list[dict], query: Query):
    import plotly.graph_objects as go

    xy = database.positions[:, :2]
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="markers", name="database",
        marker={"size": 6, "color": "#9a9a9a"}, text=database.names,
        hovertemplate="%{text}<br>x %{x:.1f} m, y %{y:.1f} m<extra></extra>"))
    if query.position is not None:
        figure.add_trace(go.Scatter(
            x=[query.position[0]], y=[query.position[1]], mode="markers", name="query",
            marker={"size": 18, "symbol": "star", "color": "black"},
            hovertemplate="the query's recorded pose<br>x %{x:.1f} m, y %{y:.1f} m"
                          "<extra></extra>"))
    # the matches last, so that their ranks are drawn over the query's star
    ranked = [r for r in found if np.isfinite(r["x"]) and np.isfinite(r["y"])]
    figure.add_trace(go.Scatter(
        x=[r["x"] for r in ranked], y=[r["y"] for r in ranked], mode="markers+text",
        name=f"top {len(found)}", text=[str(r["rank"]) for r in ranked],
        textposition="top center", textfont={"size": 14},
        customdata=[[r["file"], r["descriptor_distance"]] for r in ranked],
        hovertemplate="rank %{text}: %{customdata[0]}<br>descriptor distance "
                      "%{customdata[1]:.4f}<extra></extra>",
        marker={"size": 13, "color": [RANK_COLOURS[(r["rank"] - 1) % len(RANK_COLOURS)]
                                      for r in ranked],
                "line": {"width": 1, "color": "black"}}))
    figure.update_layout(height=460, margin={"l": 0, "r": 0, "t": 10, "b": 0},
                         xaxis_title="x (m)", yaxis_title="y (m)",
                         yaxis={"scaleanchor": "x", "scaleratio": 1},
                         legend={"orientation": "h", "y": -0.15})
    return figure


def show(query: Query, loaded: LoadedModel) -> None:
    cfg: LidarPlaceData = loaded.config.data
    database = chosen_database(loaded)
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{query.name}**")
        st.plotly_chart(cloud_figure(query), key=f"{KEY}-cloud")
        drawn = len(query.shown)
        st.caption(f"{query.points:,} points, coloured by height"
                   + (f" ({drawn:,} of them drawn)" if drawn < query.points else "")
                   + f"; {query.kept:,} points within {cfg.radius:g} m of the centre feed "
                   f"the model (at most {cfg.points:,}).")
    if database is None:
        return
    reranker = _reranker(cfg)
    with st.spinner("Matching ...") if reranker else contextlib.nullcontext():
        found = match(database, query.descriptor, min(TOP_N, len(database.names)),
                      query.position, reranker, query.rerank_points)
    with_metres = any(r["metres"] is not None for r in found)
    with left:
        st.markdown(f"**The {len(found)} best matches in the database**")
        st.dataframe(match_table(found, with_metres), hide_index=True, key=f"{KEY}-matches",
                     column_config={
                         "descriptor distance": st.column_config.NumberColumn(format="%.4f"),
                         "metres": st.column_config.NumberColumn(format="%.1f")})
        note = (f"Database `{database.root}`: {len(database.names)} clouds. Descriptor "
                "distance: Euclidean, between L2-normalised descriptors (0 to 2).")
        if reranker is not None:
            note += (f" The {reranker.top_k} nearest by descriptor are re-ranked by how well "
                     "the clouds' height maps align (geometric score, -1 to 1; yaw: the "
                     "query's rotation onto the match).")
        if with_metres:
            note += (" Metres: horizontal distance between the match's recorded position "
                     "and the query's recorded pose; within "
                     f"{cfg.positive_m:g} m counts as the same place.")
        elif query.position is None:
            note += " The query's pose is not known (an upload), so no distance in metres."
        st.caption(note)
    with right:
        st.markdown("**Map of the database**")
        if not np.isfinite(database.positions[:, :2]).any():
            st.info("The database records no positions (a plain folder of clouds), so "
                    "there is no map.")
            return
        st.plotly_chart(map_figure(database, found, query), key=f"{KEY}-map")
        st.caption(f"Grey: every database cloud at its recorded position; coloured and "
                   f"numbered: the {len(found)} best matches"
                   + ("; star: the query's recorded pose." if query.position is not None
                      else "."))


# --- the page ------------------------------------------------------------------------------


def sample_query(name: str):
    """``make(folder)`` for a held-out query of the sample benchmark: the query file in
    the prepared dataset itself (read only, so that its recorded pose is found)."""
    def make(folder: Path) -> Path:
        from domainvit.datasets.registry import prepare

        place = read_place_folder(prepare(SAMPLE_DATASET) / "test")
        for entry in place.queries:
            if entry.path.name == name:
                return entry.path
        raise UserError(f"the {SAMPLE_DATASET} test queries have no {name}")
    return make


def render(task: Task) -> None:
    widgets.task_page(
        task, "Lidar place recognition", "Point cloud", UPLOAD_TYPES, key=KEY,
        help=("A query submap: LAS/LAZ, PLY, PCD, XYZ text (x y z [intensity]), NPY "
              "([N, 3] or [N, 4]) or a KITTI .bin (float32 x, y, z, intensity), in metres"),
        predict=describe_query, show=show,
        samples=[(f"held-out query {name} ({SAMPLE_DATASET} test area)", sample_query(name))
                 for name in SAMPLE_QUERIES])
