"""Query clouds in, place descriptors and ranked database matches out.

For each query file ``predict`` writes ``<stem>.descriptor.npy`` (float32 [D], L2
normalised), ``<stem>.matches.csv`` (the ``data.top_k`` nearest database clouds: rank,
file, descriptor distance, the entry's x, y, z and, when the query's own pose is known,
the horizontal distance in metres; with ``data.rerank_top_k`` the first ones re-ranked
geometrically, each with its geometric score, the query's yaw onto it and the offset of
the query's centre from the entry cloud's centre in metres) and ``<stem>.prediction.json``.

The database (``data.database``) is a place folder (``poses.csv`` with ``database/`` and
``queries/``, or the PointNetVLAD layout: its database clouds with their positions) or a
plain folder of cloud files (no positions). Its descriptors are computed once and cached
beside it in :data:`CACHE_NAME` (one entry per file, keyed by the file's size and
modification time and by the model's weights and pre-processing settings: a changed file
is recomputed, the others are reused); a read-only database is described in memory only.
A query's pose is known when it sits in the ``queries/`` folder of a place folder whose
``poses.csv`` lists it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from domainvit.datasets.pointcloud import (
    POINT_SUFFIXES,
    PointCloud,
    is_place_folder,
    read_place_folder,
    read_point_cloud,
)
from domainvit.distribution import InputGuard
from domainvit.errors import UserError
from domainvit.files import atomic_write
from domainvit.outputs import SIDECAR_SUFFIX, output_stem, write_sidecar
from domainvit.tasks.lidar_place.data import (
    LidarPlaceData,
    cloud_rows,
    dataset_folder,
    file_rng,
)
from domainvit.tasks.lidar_place.distribution import compare_cloud
from domainvit.tasks.lidar_place.metrics import nearest_neighbours
from domainvit.tasks.lidar_place.rerank import Alignment, CloudReranker

#: the database descriptor cache, beside the database's files
CACHE_NAME = ".domainvit-descriptors.npz"
#: clouds per forward pass
BATCH = 16
#: database clouds at most
MAX_DATABASE = 200_000


@dataclass(frozen=True)
class Database:
    """The described database: files (relative names), positions (NaN when unknown) and
    descriptors."""

    root: Path
    names: list[str]
    positions: np.ndarray
    descriptors: np.ndarray
    #: how many descriptors came from the cache
    cached: int
    #: how the database's ``.bin`` files are read
    bin_format: str = "kitti"


def rows_of(cloud: PointCloud, cfg: LidarPlaceData, name: str) -> np.ndarray:
    return cloud_rows(cloud, cfg, file_rng(name))[1]


def model_fingerprint(model: nn.Module, cfg: LidarPlaceData) -> str:
    """A hash of the model's weights and the pre-processing settings."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    settings = {k: getattr(cfg, k) for k in ("radius", "points", "voxel", "ground")}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def describe(model: nn.Module, rows: list[np.ndarray]) -> np.ndarray:
    """Descriptors ``[len(rows), D]`` of pre-processed clouds, in batches."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), BATCH):
            batch = torch.from_numpy(np.stack(rows[start:start + BATCH])).to(device)
            out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _database_entries(root: Path) -> tuple[list[tuple[str, Path]], np.ndarray, str]:
    """(relative name, path) of the database clouds, their positions, the .bin format."""
    if not root.is_dir():
        raise UserError(f"database {root} is not a folder")
    if is_place_folder(root):
        folder = read_place_folder(root)
        entries = [(str(e.path.relative_to(root)), e.path) for e in folder.database]
        positions = np.array([e.position for e in folder.database], dtype=np.float64)
        return entries, positions, folder.bin_format
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and p.suffix.lower() in POINT_SUFFIXES)
    if not files:
        raise UserError(f"database {root} holds no point-cloud files "
                        f"({', '.join(POINT_SUFFIXES)}) and no poses.csv")
    return ([(p.name, p) for p in files], np.full((len(files), 3), np.nan), "kitti")


def _signature(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _read_cache(path: Path, fingerprint: str) -> dict[str, tuple[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["fingerprint"]) != fingerprint:
                return {}
            return {str(n): (str(s), d) for n, s, d in
                    zip(data["names"], data["signatures"], data["descriptors"], strict=True)}
    except (OSError, ValueError, KeyError):
        return {}  # no cache, or an unreadable one: described afresh


def _write_cache(path: Path, fingerprint: str, names: list[str], signatures: list[str],
                 descriptors: np.ndarray) -> bool:
    buffer = io.BytesIO()
    np.savez(buffer, fingerprint=np.array(fingerprint), names=np.array(names),
             signatures=np.array(signatures), descriptors=descriptors)
    try:
        with atomic_write(path) as temporary:
            temporary.write_bytes(buffer.getvalue())
    except OSError:
        return False  # a read-only database: the descriptors stay in memory
    return True


def describe_database(model: nn.Module, cfg: LidarPlaceData, root: Path,
                      progress: bool | Callable[[int, int], None] = True) -> Database:
    """The database's descriptors, from the cache where files are unchanged. ``progress``:
    a bar on stderr (``True``), none, or a callback ``(files read, files to read)``."""
    entries, positions, bin_format = _database_entries(root)
    if len(entries) > MAX_DATABASE:
        raise UserError(f"database {root} holds {len(entries)} clouds, more than the limit "
                        f"{MAX_DATABASE}")
    fingerprint = model_fingerprint(model, cfg)
    cache = _read_cache(root / CACHE_NAME, fingerprint)
    names = [name for name, _ in entries]
    signatures = [_signature(path) for _, path in entries]
    todo = [i for i, (name, sig) in enumerate(zip(names, signatures, strict=True))
            if cache.get(name, ("",))[0] != sig]
    rows = []
    report = progress if callable(progress) else None
    for done, i in enumerate(tqdm(todo, desc=f"describing {root.name}", unit="cloud",
                                  file=sys.stderr,
                                  disable=report is not None or not progress or len(todo) < 2)):
        cloud = read_point_cloud(entries[i][1], bin_format=bin_format)
        rows.append(rows_of(cloud, cfg, names[i]))
        if report is not None:
            report(done + 1, len(todo))
    fresh = describe(model, rows)
    descriptors = np.zeros((len(entries), fresh.shape[1] if len(todo) else
                            next(iter(cache.values()))[1].shape[0]), np.float32)
    fresh_index = {i: j for j, i in enumerate(todo)}
    for i, name in enumerate(names):
        descriptors[i] = fresh[fresh_index[i]] if i in fresh_index else cache[name][1]
    if todo:
        _write_cache(root / CACHE_NAME, fingerprint, names, signatures, descriptors)
    return Database(root, names, positions, descriptors, len(entries) - len(todo),
                    bin_format)


def default_database(cfg: LidarPlaceData) -> Path:
    """``data.database``, or the sample dataset's held-out place folder."""
    if cfg.database is not None:
        return Path(cfg.database)
    root = dataset_folder(cfg) / "test"
    print(f"data.database is not set: retrieving from the sample database {root}",
          file=sys.stderr)
    return root


def query_position(path: Path, known: dict[Path, dict[Path, np.ndarray]] | None = None
                   ) -> np.ndarray | None:
    """The query's pose, when it is listed in its place folder's ``poses.csv``. ``known``
    keeps the poses of each folder read, so that many queries of one folder read its
    ``poses.csv`` once."""
    root = path.parent.parent
    if path.parent.name != "queries" or not (root / "poses.csv").is_file():
        return None
    known = {} if known is None else known
    if root not in known:
        try:
            folder = read_place_folder(root)
        except UserError:
            folder = None
        known[root] = {} if folder is None else {
            entry.path.resolve(): entry.position for entry in folder.queries}
    return known[root].get(path.resolve())


def match(database: Database, descriptor: np.ndarray, top_k: int,
          position: np.ndarray | None, reranker: CloudReranker | None = None,
          query_points: np.ndarray | None = None) -> list[dict]:
    """The ``top_k`` nearest database entries of one descriptor, nearest first; with a
    ``reranker`` (and the query's re-ranking points), its first ``rerank_top_k`` matches
    re-ranked geometrically, each with its alignment."""
    order = nearest_neighbours(database.descriptors, descriptor[None],
                               max(top_k, reranker.top_k if reranker else 0))[0]
    distance = np.linalg.norm(database.descriptors - descriptor[None], axis=1)
    alignments: list[Alignment] = []
    if reranker is not None and reranker.top_k and query_points is not None:
        order, alignments = reranker.rerank(
            query_points, order, [database.root / database.names[i] for i in order],
            database.bin_format)
    rows = []
    for rank, i in enumerate(order[:top_k], start=1):
        x, y, z = database.positions[i]
        metres = (float(np.hypot(x - position[0], y - position[1]))
                  if position is not None and np.isfinite(x) else None)
        aligned = alignments[rank - 1] if rank <= len(alignments) else None
        rows.append({"rank": rank, "file": database.names[i],
                     "descriptor_distance": float(distance[i]), "x": x, "y": y, "z": z,
                     "metres": metres, "alignment": aligned})
    return rows


def _best_match(row: dict) -> dict:
    best = {k: v for k, v in row.items() if k in ("file", "descriptor_distance", "metres")}
    if row.get("alignment") is not None:
        a = row["alignment"]
        best.update(geometric_score=a.score, yaw_deg=a.yaw_deg,
                    offset_xy_m=list(a.offset_xy))
    return best


def _matches_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "file", "descriptor_distance", "x", "y", "z", "metres",
                     "geometric_score", "yaw_deg", "offset_x_m", "offset_y_m"])
    for r in rows:
        a = r.get("alignment")
        writer.writerow([r["rank"], r["file"], f"{r['descriptor_distance']:.6f}",
                         *("" if not np.isfinite(v) else f"{v:.3f}"
                           for v in (r["x"], r["y"], r["z"])),
                         "" if r["metres"] is None else f"{r['metres']:.2f}",
                         *(("", "", "", "") if a is None else
                           (f"{a.score:.4f}", f"{a.yaw_deg:g}", f"{a.offset_xy[0]:.1f}",
                            f"{a.offset_xy[1]:.1f}"))])
    return out.getvalue()


def predict_clouds(model: nn.Module, cfg: LidarPlaceData, inputs: list[Path], out_dir: Path,
                   guard: InputGuard, database: Database | None = None) -> list[Path]:
    """Describe each query cloud, match it against the database, write the outputs."""
    reranker = CloudReranker(cfg) if cfg.rerank_top_k else None
    clouds = []
    for path in inputs:  # read and check every input before anything is written
        cloud = read_point_cloud(path)
        rows = rows_of(cloud, cfg, path.name)
        check = guard.check(path.name, compare_cloud, cloud, int(rows[:, 4].sum()))
        points = None if reranker is None else reranker.points(cloud, path.name)
        clouds.append((path, rows, check, points))
    if database is None:
        database = describe_database(model, cfg, default_database(cfg))
    written, known = [], {}
    for path, rows, check, points in clouds:
        descriptor = describe(model, [rows])[0]
        position = query_position(path, known)
        found = match(database, descriptor, cfg.top_k, position, reranker, points)
        stem = output_stem(path)
        target = out_dir / f"{stem}.descriptor.npy"
        with atomic_write(target) as temporary, open(temporary, "wb") as handle:
            np.save(handle, descriptor.astype(np.float32))
        table = out_dir / f"{stem}.matches.csv"
        with atomic_write(table) as temporary:
            temporary.write_text(_matches_csv(found))
        written += [target, table]
        written.append(write_sidecar(out_dir / f"{stem}{SIDECAR_SUFFIX}", {
            "input": path.name, "outputs": [target.name, table.name],
            "input_check": check.record(),
            "database": {"folder": str(database.root), "clouds": len(database.names),
                         "from_cache": database.cached},
            "query_position": None if position is None else [float(v) for v in position],
            "reranked": 0 if reranker is None else min(reranker.top_k, len(database.names)),
            "best_match": _best_match(found[0])}))
    return written


def sample_queries(cfg: LidarPlaceData, folder: Path, count: int = 2) -> list[Path]:
    """Copies of a few held-out query clouds of the sample dataset."""
    import shutil

    place = read_place_folder(dataset_folder(cfg) / "test")
    written = []
    for entry in place.queries[:count]:
        target = folder / entry.path.name
        shutil.copyfile(entry.path, target)
        written.append(target)
    return written


