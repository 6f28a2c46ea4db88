"""The ``lidar-autzen`` sample benchmark of lidar place recognition: submaps of a real
aerial lidar cloud, split into spatially disjoint training, validation and test areas.

Source. ``tests/data/autzen_trim.laz`` of PyPI's ``laspy==2.7.0`` sdist (BSD-2-Clause):
an aerial lidar strip over Autzen Stadium, Eugene, Oregon, written by PDAL 1.0.0 in 2015.
:func:`build_lidar_autzen` fetches the sdist with ``pip download``
(:func:`~domainvit.datasets.hsi_scenes.download.pip_download`), extracts that one member
with :func:`domainvit.files.safe_extract` (one file, at most :data:`MAX_MEMBER_BYTES`)
and reads it with laspy (the lazrs backend decompresses LAZ).

Units. The file's coordinate system (its WKT record) is NAD83(HARN) Lambert Conformal
Conic for Oregon with the *international foot* as unit, so the numbers in the file are
feet: the cloud is 1177.5 x 562.7 ft, that is 358.9 x 171.5 m, with 110,000 points
(1.79 points per m^2 over its bounding box; 0.17 per ft^2). The heights are feet as well
(406-521 ft = 124-159 m; the ground-class points' median is 130 m). Every
coordinate written here is in metres (the file's value x 0.3048), in the file's map
projection otherwise unchanged; ``split.json`` keeps the WKT. The strip is one flight line
(one point source, 6.5 s of GPS time: 55 m/s over the 359 m, a survey aircraft's speed;
read as metres the strip would have been flown at 181 m/s). Intensity is 0..254 and is
stored divided by the cloud's maximum (0..1).

Areas (split along x, the strip's long side; ``split.json`` records the bounds). With
``R`` the submap radius (:data:`SUBMAP_RADIUS_M`, 20 m) and ``L`` the x extent:

* test: the last :data:`TEST_SHARE` (35 %) of x, 125.6 m;
* a gap of ``2 R`` (40 m) before it;
* validation: the last :data:`VAL_SHARE` (25 %) of what lies before that gap (48.3 m);
* a gap of ``2 R`` before the validation strip;
* training: the rest, from the cloud's start (105 m; with the validation strip and its
  gap, the first 54 % of x).

Every submap is cut from its own area's points only, so no file of one split holds a point
of another; and as each gap is a submap diameter wide, two submaps centred in different
areas would not overlap even if they were cut from the whole cloud, so a structure near a
boundary is not seen from two splits. The radius is 20 m, not the 50 m a 1.2 km strip
would allow, because the strip is 359 m long: 50 m submaps would need a 100 m gap, which
with a 126 m test area leaves 133 m for training and validation together. A 20 m submap
holds about 2,200 points at the strip's mean density, as a 50 m one would at 0.17 points
per m^2.

Difficulty. The areas are small against the 25 m threshold of the field
(:data:`POSITIVE_M`): a query has 6-9 database entries within 25 m on average, so a random
ranking already reaches a recall@1 of about 0.24 (validation) and 0.14 (test);
``split.json`` records it per split (``chance_recall_at_1``), and scores are to be read
against it. With about 40 database entries, recall@1 % is recall@1.

Layout of the prepared folder:

* ``split.json``: the areas, radius, thresholds, source and licence, counts
  (:func:`read_split_record`);
* ``train/cloud.npy``: float64 ``[N, 4]`` x, y, z (world metres) and intensity (0..1) of
  the training area's points, from which the task draws training submaps on the fly
  (:func:`read_train_cloud`);
* ``val/`` and ``test/``: place folders (``database/``, ``queries/`` of KITTI-style
  ``.bin`` files, float32 x, y, z, intensity, 16 bytes a point; ``poses.csv`` with header
  ``split,file,x,y,z``, split ``database`` or ``query``, file relative to its split
  folder).

Submaps. A submap holds the area's points within ``R`` (horizontal) of its pose, in local
coordinates: minus the pose's x, y and minus the submap's median z; ``poses.csv`` holds
the pose in world metres with z = that median, so the world coordinates are float64 until
they are centred. Poses lie on synthetic trajectories, a pose every :data:`SPACING_M`
(10 m) of arc length in the database and every :data:`QUERY_SPACING_M` (5 m) in the
queries, each a straight line bent by a smooth sinusoidal sideways wobble. The database
takes :func:`_lane_count` lanes along the area's long side, evenly spread, and one
trajectory across it; the queries take other trajectories: beside each database lane, 3-8
m to one side (:data:`QUERY_LANE_OFFSET_M`), driven the other way, a crossing at another
place and a diagonal. A pose whose submap has fewer than :data:`MIN_POINTS` points is
dropped (a third of the test area, low and flat, has almost no returns). Each query is perturbed
(:data:`PERTURBATIONS`): its file is cut around a pose displaced by 2-5 m (``poses.csv``
keeps the undisplaced pose: a localisation error), a random rotation about z (0-360 deg),
random dropout keeping 60-100 % of the points, in half of the queries a density gradient
(the keeping probability falls linearly from 1 to 0.3-0.7 across the submap in a random
direction: a change of density that uniform dropout does not make), in half an occluded
sector of 30-90 deg with no points, and gaussian noise of 0.05-0.2 m on every coordinate;
points pushed beyond ``R`` are dropped. Only queries with a database pose within
:data:`POSITIVE_M` (25 m, horizontal) are kept. Everything is drawn from a fixed seed:
two builds write identical files.

Derived files are built into the local cache by :func:`domainvit.datasets.registry.
prepare`, never committed. The task package registers the builder as a sample dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainvit.datasets.hsi_scenes.download import pip_download
from domainvit.datasets.pointcloud import outside_sector, rotate_z
from domainvit.errors import UserError
from domainvit.files import safe_extract

#: the sample dataset's name
LIDAR_AUTZEN = "lidar-autzen"

#: the sdist that ships the cloud, and the member
LASPY_SDIST = "laspy==2.7.0"
MEMBER_SUFFIX = "/tests/data/autzen_trim.laz"

#: the most bytes the member may inflate to (it is 603 kB)
MAX_MEMBER_BYTES = 4 * 1024**2

#: the points the file holds
EXPECTED_POINTS = 110_000

#: metres per international foot, the unit of the file's coordinate system
FOOT_M = 0.3048

#: horizontal radius of a submap (m)
SUBMAP_RADIUS_M = 20.0

#: a database entry within this horizontal distance of a query is a true match (m)
POSITIVE_M = 25.0

#: entries farther than this are negatives for training (m)
NEGATIVE_M = 50.0

#: arc length between consecutive poses of a database trajectory (m)
SPACING_M = 10.0

#: arc length between consecutive poses of a query trajectory (m)
QUERY_SPACING_M = 5.0

#: how far (m) a query lane runs beside the database lane it follows
QUERY_LANE_OFFSET_M = (3.0, 8.0)

#: the share of the x range that is the held-out test area
TEST_SHARE = 0.35

#: the share of the area before the test gap that is the validation strip
VAL_SHARE = 0.25

#: a submap with fewer points is not written
MIN_POINTS = 300

#: the seed of every draw
SEED = 20_250_611

#: the ranges of the query perturbations (see the module docstring)
PERTURBATIONS = {
    "pose_offset_m": [2.0, 5.0],
    "rotation_deg": [0.0, 360.0],
    "keep_fraction": [0.6, 1.0],
    "density_gradient_probability": 0.5,
    "density_gradient_min_keep": [0.3, 0.7],
    "occlusion_probability": 0.5,
    "occlusion_sector_deg": [30.0, 90.0],
    "noise_sigma_m": [0.05, 0.2],
}

SPLIT_FILE = "split.json"
TRAIN_CLOUD = "train/cloud.npy"
POSES_FILE = "poses.csv"
BIN_RECORD_BYTES = 16


# --- reading the source ------------------------------------------------------------------


@dataclass(frozen=True)
class AutzenCloud:
    """The cloud in metres: ``xyz`` float64 ``[N, 3]``, ``intensity`` float64 ``[N]`` in
    0..1 (divided by ``intensity_scale``), and what the file says about itself."""

    xyz: np.ndarray
    intensity: np.ndarray
    intensity_scale: float
    wkt: str
    info: dict


def _wkt(las, shown: str) -> str:
    for vlr in las.header.vlrs:
        text = getattr(vlr, "string", None)
        if isinstance(text, str) and text.startswith("PROJCS"):
            return text.rstrip("\x00")
    raise UserError(f"{shown} has no WKT coordinate-system record: the units are unknown")


def read_autzen_laz(path: Path, shown: str | None = None) -> AutzenCloud:
    """Read ``autzen_trim.laz`` (laspy, lazrs backend) into metres, checking that it is
    the expected file: :data:`EXPECTED_POINTS` points, a projected WKT in international
    feet."""
    import laspy

    path = Path(path)
    shown = shown or path.name
    try:
        las = laspy.read(path)
    except Exception as err:  # laspy raises its own and lazrs' errors
        raise UserError(f"{shown} is not a readable LAZ file ({err})") from None
    if las.header.point_count != EXPECTED_POINTS:
        raise UserError(f"{shown} holds {las.header.point_count} points; expected "
                        f"{EXPECTED_POINTS} (laspy's autzen_trim.laz)")
    wkt = _wkt(las, shown)
    # the last UNIT of a PROJCS is the unit of its axes
    units = re.findall(r'UNIT\["([^"]+)",\s*([0-9.eE+-]+)', wkt)
    if not units or abs(float(units[-1][1]) - FOOT_M) > 1e-9:
        raise UserError(f"{shown}: the coordinate system's unit is "
                        f"{units[-1] if units else 'missing'}; expected the foot "
                        f"({FOOT_M} m)")
    xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1)
    xyz = xyz.astype(np.float64) * FOOT_M
    raw = np.asarray(las.intensity).astype(np.float64)
    scale = float(raw.max()) if raw.max() > 0 else 1.0
    gps = np.asarray(las.gps_time)
    name = re.match(r'PROJCS\["([^"]+)"', wkt)
    info = {
        "points": int(len(xyz)),
        "file_units": units[-1][0],
        "crs_name": name.group(1) if name else "",
        "gps_time_span_s": round(float(gps.max() - gps.min()), 3),
        "point_source_ids": sorted(int(v) for v in np.unique(np.asarray(las.point_source_id))),
        "generating_software": las.header.generating_software.strip("\x00 "),
        "creation_date": str(las.header.creation_date),
        "classification_counts": {
            str(int(c)): int(n)
            for c, n in zip(*np.unique(np.asarray(las.classification), return_counts=True),
                            strict=True)},
    }
    return AutzenCloud(xyz=xyz, intensity=raw / scale, intensity_scale=scale, wkt=wkt,
                       info=info)


def read_sdist(sdist: Path) -> AutzenCloud:
    """The cloud from the laspy sdist ``sdist``: the one member extracted with the limits
    of :func:`~domainvit.files.safe_extract`, then :func:`read_autzen_laz`."""
    sdist = Path(sdist)
    with tempfile.TemporaryDirectory(prefix="lidar-autzen-") as tmp:
        files = safe_extract(sdist, tmp, max_members=1, max_bytes=MAX_MEMBER_BYTES,
                             select=lambda name: name.endswith(MEMBER_SUFFIX),
                             rename=lambda index, name: "autzen_trim.laz",
                             expected=f"the {LASPY_SDIST} sdist")
        if not files:
            raise UserError(f"{sdist.name} has no ...{MEMBER_SUFFIX}: it is not the "
                            f"{LASPY_SDIST} sdist")
        (path, member), = files.items()
        cloud = read_autzen_laz(path, f"{sdist.name}:{member}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    cloud.info.update(member=member, member_sha256=digest)
    return cloud


# --- the areas ---------------------------------------------------------------------------


def _box(xmin: float, xmax: float, ymin: float, ymax: float) -> dict[str, float]:
    return {"xmin": float(xmin), "xmax": float(xmax), "ymin": float(ymin), "ymax": float(ymax)}


def split_areas(xy: np.ndarray, radius: float = SUBMAP_RADIUS_M) -> dict[str, dict]:
    """The training, validation and test boxes of the cloud ``xy`` (the rules: the module's
    docstring); each spans the cloud's y range."""
    xmin, ymin = xy.min(axis=0)
    xmax, ymax = xy.max(axis=0)
    gap = 2.0 * radius
    test_x = xmax - TEST_SHARE * (xmax - xmin)
    before = test_x - gap
    val_x = before - VAL_SHARE * (before - xmin)
    train_x = val_x - gap
    if train_x <= xmin + gap:
        raise ValueError(f"a submap radius of {radius} m leaves no training area in a "
                         f"{xmax - xmin:.0f} m long cloud")
    return {"train_area": _box(xmin, train_x, ymin, ymax),
            "val_area": _box(val_x, before, ymin, ymax),
            "test_area": _box(test_x, xmax, ymin, ymax)}


def _inside(xy: np.ndarray, box: dict) -> np.ndarray:
    return ((xy[:, 0] >= box["xmin"]) & (xy[:, 0] <= box["xmax"])
            & (xy[:, 1] >= box["ymin"]) & (xy[:, 1] <= box["ymax"]))


# --- trajectories ------------------------------------------------------------------------


def _resample(line: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` of arc length along the dense polyline ``line``."""
    steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    at = np.arange(0.0, arc[-1] + 1e-9, spacing)
    return np.stack([np.interp(at, arc, line[:, 0]), np.interp(at, arc, line[:, 1])], axis=1)


def _wobbly_line(start: np.ndarray, end: np.ndarray, rng: np.random.Generator,
                 box: dict, spacing: float) -> np.ndarray:
    """Poses every ``spacing`` m along the segment ``start -> end`` bent by a smooth
    sinusoidal sideways wobble (amplitude 2-6 m, wavelength 60-120 m), kept in ``box``."""
    length = float(np.linalg.norm(end - start))
    t = np.linspace(0.0, 1.0, max(2, int(length) + 1))
    direction = (end - start) / length
    normal = np.array([-direction[1], direction[0]])
    amplitude, wavelength = rng.uniform(2.0, 6.0), rng.uniform(60.0, 120.0)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    side = amplitude * np.sin(2.0 * np.pi * t * length / wavelength + phase)
    line = start + t[:, None] * (end - start) + side[:, None] * normal
    line[:, 0] = np.clip(line[:, 0], box["xmin"], box["xmax"])
    line[:, 1] = np.clip(line[:, 1], box["ymin"], box["ymax"])
    return _resample(line, spacing)


def _lane_count(width: float) -> int:
    """Database lanes across a side of ``width`` m: one per 40 m, two to three."""
    return int(np.clip(round(width / 40.0), 2, 3))


def trajectories(box: dict, rng: np.random.Generator, spacing: float = SPACING_M,
                 query_spacing: float = QUERY_SPACING_M) -> dict[str, list[np.ndarray]]:
    """The database and query trajectories of an area: ``{"database": [poses [n, 2]],
    "query": [...]}`` (see the module docstring)."""
    lo = np.array([box["xmin"], box["ymin"]])
    hi = np.array([box["xmax"], box["ymax"]])
    long_axis = int(np.argmax(hi - lo))
    short_axis = 1 - long_axis
    width = (hi - lo)[short_axis]
    margin = 4.0

    def point(along: float, across: float) -> np.ndarray:
        p = np.empty(2)
        p[long_axis], p[short_axis] = along, across
        return p

    a0, a1 = lo[long_axis] + margin, hi[long_axis] - margin
    s0, s1 = lo[short_axis] + margin, hi[short_axis] - margin
    lanes = _lane_count(width)
    offsets = [s0 + (i + 0.5) * (s1 - s0) / lanes for i in range(lanes)]
    database = [_wobbly_line(point(a0, at), point(a1, at), rng, box, spacing)
                for at in offsets]
    crossings = a0 + (a1 - a0) * rng.permutation([0.3, 0.7])
    database.append(_wobbly_line(point(crossings[0], s0), point(crossings[1], s1), rng, box,
                                 spacing))
    # queries: each database lane driven the other way 3-8 m to one side, a crossing
    # elsewhere and a diagonal
    query = []
    for at in offsets:
        side = rng.choice([-1.0, 1.0]) * rng.uniform(*QUERY_LANE_OFFSET_M)
        at = float(np.clip(at + side, s0, s1))
        query.append(_wobbly_line(point(a1, at), point(a0, at), rng, box, query_spacing))
    query.append(_wobbly_line(point(crossings[1], s1), point(crossings[0], s0), rng, box,
                              query_spacing))
    query.append(_wobbly_line(point(a0, s1), point(a1, s0), rng, box, query_spacing))
    return {"database": database, "query": query}


# --- submaps -----------------------------------------------------------------------------


def local_submap(points: np.ndarray, tree, centre: np.ndarray, radius: float
                 ) -> tuple[np.ndarray, float]:
    """The rows of ``points`` ``[N, 4]`` (world x, y, z, intensity) within ``radius``
    (horizontal) of ``centre`` (x, y), in local coordinates (minus the centre, minus the
    median z), in the cloud's order; and that median z. ``tree`` is a ``cKDTree`` of
    ``points[:, :2]``."""
    rows = np.sort(np.asarray(tree.query_ball_point(centre, radius), dtype=np.int64))
    sub = points[rows].copy()
    if len(sub) == 0:
        return sub, float("nan")
    median_z = float(np.median(sub[:, 2]))
    sub[:, 0] -= centre[0]
    sub[:, 1] -= centre[1]
    sub[:, 2] -= median_z
    return sub, median_z


def perturb_query(local: np.ndarray, rng: np.random.Generator, radius: float
                  ) -> tuple[np.ndarray, dict]:
    """A query's local points ``[N, 4]`` rotated, thinned, occluded and noised
    (:data:`PERTURBATIONS`); returns the points and what was drawn."""
    p = PERTURBATIONS
    angle = rng.uniform(*np.radians(p["rotation_deg"]))
    out = rotate_z(local, angle)
    keep_fraction = rng.uniform(*p["keep_fraction"])
    keep = rng.random(len(out)) < keep_fraction
    gradient = rng.random() < p["density_gradient_probability"]
    min_keep = rng.uniform(*p["density_gradient_min_keep"])
    towards = rng.uniform(0.0, 2.0 * np.pi)
    if gradient:
        along = (out[:, 0] * np.cos(towards) + out[:, 1] * np.sin(towards)) / radius
        keep &= rng.random(len(out)) < 1.0 - (1.0 - min_keep) * (along + 1.0) / 2.0
    occluded = rng.random() < p["occlusion_probability"]
    width = np.radians(rng.uniform(*p["occlusion_sector_deg"]))
    start = rng.uniform(0.0, 2.0 * np.pi)
    if occluded:
        keep &= outside_sector(out, start, width)
    out = out[keep]
    sigma = rng.uniform(*p["noise_sigma_m"])
    out[:, :3] += rng.normal(scale=sigma, size=(len(out), 3))
    out = out[np.hypot(out[:, 0], out[:, 1]) <= radius]
    drawn = {"rotation_deg": float(np.degrees(angle)), "keep_fraction": float(keep_fraction),
             "density_gradient": bool(gradient), "occluded_deg":
             float(np.degrees(width)) if occluded else 0.0, "noise_sigma_m": float(sigma)}
    return out, drawn


def write_kitti_bin(path: Path, local: np.ndarray) -> None:
    """``local`` ``[N, 4]`` as a KITTI-style ``.bin``: little-endian float32 x, y, z,
    intensity, 16 bytes a point."""
    np.ascontiguousarray(local[:, :4], dtype="<f4").tofile(path)


def _write_place_folder(folder: Path, points: np.ndarray, box: dict,
                        rng: np.random.Generator, radius: float, progress: type) -> dict:
    """Database and query submaps of the area ``box`` of ``points`` into ``folder``; the
    counts."""
    from scipy.spatial import cKDTree

    area = points[_inside(points[:, :2], box)]
    tree = cKDTree(area[:, :2])
    paths = trajectories(box, rng)
    (folder / "database").mkdir(parents=True)
    (folder / "queries").mkdir()
    rows = ["split,file,x,y,z"]
    db_xy, sparse = [], {"database": 0, "query": 0}
    for line in paths["database"]:
        for pose in line:
            local, median_z = local_submap(area, tree, pose, radius)
            if len(local) < MIN_POINTS:
                sparse["database"] += 1
                continue
            name = f"{len(db_xy):06d}.bin"
            write_kitti_bin(folder / "database" / name, local)
            rows.append(f"database,{name},{pose[0]:.4f},{pose[1]:.4f},{median_z:.4f}")
            db_xy.append(pose)
    db_xy = np.asarray(db_xy)
    db_tree = cKDTree(db_xy)
    kept, no_positive, sizes, chance = 0, 0, [], []
    occluded = gradient = 0
    candidates = [pose for line in paths["query"] for pose in line]
    for pose in progress(candidates, desc=f"{LIDAR_AUTZEN} {folder.name}", unit="query",
                         leave=False):
        # every draw is made whether or not the query is kept, so that one dropped query
        # does not change the others
        offset = rng.uniform(*PERTURBATIONS["pose_offset_m"])
        heading = rng.uniform(0.0, 2.0 * np.pi)
        query_rng = np.random.default_rng(rng.integers(2**63))
        if not db_tree.query_ball_point(pose, POSITIVE_M):
            no_positive += 1
            continue
        cut_at = pose + offset * np.array([np.cos(heading), np.sin(heading)])
        local, median_z = local_submap(area, tree, cut_at, radius)
        if len(local) < MIN_POINTS:
            sparse["query"] += 1
            continue
        local, drawn = perturb_query(local, query_rng, radius)
        if len(local) < MIN_POINTS:
            sparse["query"] += 1
            continue
        name = f"{kept:06d}.bin"
        write_kitti_bin(folder / "queries" / name, local)
        rows.append(f"query,{name},{pose[0]:.4f},{pose[1]:.4f},{median_z:.4f}")
        chance.append(len(db_tree.query_ball_point(pose, POSITIVE_M)) / len(db_xy))
        kept += 1
        sizes.append(len(local))
        occluded += drawn["occluded_deg"] > 0
        gradient += drawn["density_gradient"]
    (folder / POSES_FILE).write_text("\n".join(rows) + "\n")
    return {"database": len(db_xy), "queries": kept,
            "query_poses": len(candidates), "queries_without_positive": no_positive,
            "poses_dropped_sparse": sparse, "queries_occluded": int(occluded),
            "queries_density_gradient": int(gradient),
            "trajectories": {"database": len(paths["database"]),
                             "query": len(paths["query"])},
            "area_points": int(len(area)),
            # the expected recall@1 of a random ranking: a query's share of positives
            "chance_recall_at_1": round(float(np.mean(chance)), 4) if chance else 0.0,
            "median_query_points": int(np.median(sizes)) if sizes else 0}


# --- the builder and readers -------------------------------------------------------------


def write_benchmark(cloud: AutzenCloud, folder: Path, progress: type,
                    radius: float = SUBMAP_RADIUS_M) -> dict:
    """The areas, ``train/cloud.npy`` and the ``val``/``test`` place folders of ``cloud``
    into ``folder``; returns what ``split.json`` records about them."""
    folder = Path(folder)
    points = np.concatenate([cloud.xyz, cloud.intensity[:, None]], axis=1)
    areas = split_areas(points[:, :2], radius)
    (folder / "train").mkdir(parents=True, exist_ok=True)
    train = points[_inside(points[:, :2], areas["train_area"])]
    np.save(folder / TRAIN_CLOUD, np.ascontiguousarray(train, dtype=np.float64))
    counts = {"train": {"points": int(len(train))}}
    for index, split in enumerate(("val", "test")):
        rng = np.random.default_rng([SEED, index])
        counts[split] = _write_place_folder(folder / split, points, areas[f"{split}_area"],
                                            rng, radius, progress)
    return {**areas, "gaps_m": {"train_val": areas["val_area"]["xmin"]
                                - areas["train_area"]["xmax"],
                                "val_test": areas["test_area"]["xmin"]
                                - areas["val_area"]["xmax"]},
            "counts": counts}


def build_lidar_autzen(folder: Path, progress: type) -> None:
    """The ``lidar-autzen`` benchmark into ``folder``: fetch laspy's sdist, read the Autzen
    cloud, write the training cloud, the validation and test place folders and
    ``split.json``."""
    started = time.perf_counter()
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="laspy-sdist-") as tmp:
        sdist = pip_download(LASPY_SDIST, Path(tmp), sdist=True)
        cloud = read_sdist(sdist)
        sdist_name = sdist.name
        sdist_sha256 = hashlib.sha256(sdist.read_bytes()).hexdigest()
    written = write_benchmark(cloud, folder, progress)
    lo, hi = cloud.xyz.min(axis=0), cloud.xyz.max(axis=0)
    extent = hi - lo
    record = {
        "name": LIDAR_AUTZEN,
        "description": "lidar place recognition on a real aerial lidar strip (Autzen "
                       "Stadium, Eugene, Oregon): a training cloud and spatially disjoint "
                       "validation and test place folders with perturbed queries",
        "crs": {"name": cloud.info["crs_name"], "wkt": cloud.wkt,
                "file_units": cloud.info["file_units"], "units": "metre",
                "note": f"every coordinate is the file's value x {FOOT_M} (feet to "
                        f"metres), horizontal and vertical; the projection is unchanged"},
        "source": {"pypi": LASPY_SDIST, "sdist": sdist_name, "sha256": sdist_sha256,
                   "member": cloud.info["member"], "member_sha256": cloud.info["member_sha256"],
                   "license": "BSD-2-Clause (the laspy sdist that ships the file)",
                   "place": "Autzen Stadium, Eugene, Oregon, USA",
                   "written_by": f"{cloud.info['generating_software']} "
                                 f"({cloud.info['creation_date']})"},
        "cloud": {"points": cloud.info["points"],
                  "extent_m": [round(float(v), 3) for v in extent],
                  "bounds_m": {"xmin": float(lo[0]), "xmax": float(hi[0]),
                               "ymin": float(lo[1]), "ymax": float(hi[1]),
                               "zmin": float(lo[2]), "zmax": float(hi[2])},
                  "density_per_m2": round(cloud.info["points"] / float(extent[0] * extent[1]),
                                          4),
                  "intensity_scale": cloud.intensity_scale,
                  "gps_time_span_s": cloud.info["gps_time_span_s"],
                  "point_source_ids": cloud.info["point_source_ids"],
                  "classification_counts": cloud.info["classification_counts"]},
        "test_area": written["test_area"], "val_area": written["val_area"],
        "train_area": written["train_area"], "gaps_m": written["gaps_m"],
        "split_axis": "x", "test_share": TEST_SHARE, "val_share": VAL_SHARE,
        "submap_radius_m": SUBMAP_RADIUS_M, "positive_m": POSITIVE_M,
        "negative_m": NEGATIVE_M, "spacing_m": SPACING_M,
        "query_spacing_m": QUERY_SPACING_M, "min_points": MIN_POINTS,
        "bin_format": "kitti",
        "local_frame": "submap points minus the pose's x, y and minus the submap's median "
                       "z (poses.csv: x, y, z = that median, world metres)",
        "train_cloud": {"file": TRAIN_CLOUD, "columns": ["x", "y", "z", "intensity"],
                        "dtype": "float64"},
        "perturbations": PERTURBATIONS,
        "counts": written["counts"],
        "seed": SEED,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (folder / SPLIT_FILE).write_text(json.dumps(record, indent=1))


def read_split_record(folder: Path) -> dict:
    """``split.json`` of a prepared ``lidar-autzen`` folder."""
    path = Path(folder) / SPLIT_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path} ({err}): is {folder} a prepared "
                        f"{LIDAR_AUTZEN} folder?") from None


def read_train_cloud(folder: Path) -> np.ndarray:
    """The training cloud of a prepared folder: float64 ``[N, 4]`` (world x, y, z in
    metres, intensity 0..1)."""
    path = Path(folder) / TRAIN_CLOUD
    try:
        cloud = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path} ({err})") from None
    if cloud.ndim != 2 or cloud.shape[1] != 4 or cloud.dtype != np.float64:
        raise UserError(f"{path} is {cloud.dtype} {list(cloud.shape)}; expected float64 "
                        f"[N, 4] (x, y, z, intensity)")
    return cloud
