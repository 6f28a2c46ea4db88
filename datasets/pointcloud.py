"""Lidar point clouds in: files, down-sampling, ground removal, place-recognition folders.

Used by the lidar place-recognition task. :func:`read_point_cloud` reads one file into a
:class:`PointCloud` (float64 coordinates in metres as stored, intensity normalised to
0..1); :func:`preprocess` turns it into the fixed-size float32 array a model takes;
:func:`read_place_folder` lists a folder of database and query clouds with their
positions.

File formats (:data:`POINT_SUFFIXES`):

- ``.las`` / ``.laz``: ASPRS LAS through laspy, scaled coordinates (``las.x`` ...);
  ``.laz`` needs laspy's lazrs backend (``pip install 'laspy[lazrs]'``).
- ``.ply`` / ``.pcd``: through Open3D's tensor reader, which keeps an ``intensity``
  attribute when the file has one.
- ``.xyz``: text, one point a line, 3 or 4 columns (x y z [intensity]) separated by
  spaces or commas; ``#`` starts a comment.
- ``.npy``: a numeric array of shape [N, 3] or [N, 4] (4th column intensity).
- ``.bin``: headerless records; ``bin_format="kitti"`` reads float32 x, y, z, intensity
  (16 bytes a point, KITTI / SemanticKITTI velodyne scans), ``"oxford"`` float64 x, y, z
  (24 bytes a point, the PointNetVLAD benchmark submaps; those are centred and scaled
  to [-1, 1], not metres).

Intensity is normalised per file: clipped to its 1st-99th percentiles and scaled to
0..1. A file without intensity, or whose intensity is constant (LAS files often store
zeros), gets ``intensity=None``.

Place-recognition folders (:func:`read_place_folder`), two layouts:

1. Ours::

       ROOT/poses.csv            header split,file,x,y,z
       ROOT/database/<file>      split "database": the map
       ROOT/queries/<file>       split "query": clouds to localise

   ``file`` is relative to its split's folder (``000012.bin``, ``drive3/000012.laz``),
   any suffix of :data:`POINT_SUFFIXES`; x, y, z are metres in a projected CRS (z may
   be 0). ``.bin`` files are read as KITTI records.

2. The PointNetVLAD / Oxford RobotCar benchmark (``benchmark_datasets/oxford``)::

       ROOT/<run>/pointcloud_locations_20m.csv     timestamp,northing,easting
       ROOT/<run>/pointcloud_20m/<timestamp>.bin   float64 x, y, z

   A run is a folder holding a ``pointcloud_locations_<name>.csv``, whose submaps lie in
   ``pointcloud_<name>/``; where a run has several, ``_20m`` (the disjoint evaluation
   submaps) is taken, else the first by name. The first run by name is the database,
   every other run gives queries. A position is (easting, northing, 0).

Every problem with a user's file or folder is one :class:`~domainvit.errors.UserError`
line naming it, raised before anything is written. File names read from a CSV become
paths only after they are checked to stay inside their folder.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from domainvit.errors import UserError
from domainvit.files import format_size

#: the point-cloud file suffixes :func:`read_point_cloud` reads
POINT_SUFFIXES = (".las", ".laz", ".ply", ".pcd", ".xyz", ".npy", ".bin")
#: the default size limit of one file
MAX_FILE_BYTES = 512 * 2**20
#: the most points one file may hold
MAX_POINTS = 50_000_000
#: how ``.bin`` records are laid out: bytes a point and the record's dtype and columns
BIN_FORMATS = {"kitti": (16, "<f4", 4), "oxford": (24, "<f8", 3)}
#: the columns of ``poses.csv`` (layout 1) and of a PointNetVLAD locations file (layout 2)
POSES_COLUMNS = ("split", "file", "x", "y", "z")
OXFORD_COLUMNS = ("timestamp", "northing", "easting")
#: how many missing files an error names
_SHOWN_MISSING = 5


@dataclass(frozen=True)
class PointCloud:
    """One point cloud as read from a file."""

    #: float64 [N, 3], metres, as in the file (not centred)
    xyz: np.ndarray
    #: float32 [N] normalised per file to 0..1, ``None`` if the file has none
    intensity: np.ndarray | None
    #: the file name, for messages
    source: str


@dataclass(frozen=True)
class PlaceEntry:
    """One cloud of a place-recognition folder and where it was taken."""

    split: str  # "database" or "query"
    path: Path
    position: np.ndarray  # float64 [3] metres (x, y, z), a projected CRS; z may be 0


@dataclass(frozen=True)
class PlaceFolder:
    """A place-recognition folder: the database (map) clouds and the queries."""

    root: Path
    database: list[PlaceEntry]
    queries: list[PlaceEntry]
    bin_format: str  # "kitti" or "oxford"


# ---------------------------------------------------------------------------------------
# Reading one file


def _too_many(shown: str, count: int) -> None:
    if count > MAX_POINTS:
        raise UserError(f"{shown} holds {count:,} points; at most {MAX_POINTS:,} are read "
                        "from one file")


def _read_las(path: Path, shown: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        import laspy
    except ImportError as error:
        raise UserError(f"{shown}: reading {path.suffix} files needs laspy "
                        "(pip install 'laspy[lazrs]')") from error
    if path.suffix.lower() == ".laz" and not laspy.LazBackend.detect_available():
        raise UserError(f"{shown}: reading .laz needs the lazrs backend "
                        "(pip install 'laspy[lazrs]')")
    try:
        with laspy.open(path) as reader:
            _too_many(shown, int(reader.header.point_count))
            las = reader.read()
    except UserError:
        raise
    except Exception as error:  # laspy raises its own and numpy's errors on bad files
        raise UserError(f"{shown} is not a readable LAS/LAZ file: {_reason(error)}") from error
    xyz = np.column_stack([np.asarray(las.x, dtype=np.float64),
                           np.asarray(las.y, dtype=np.float64),
                           np.asarray(las.z, dtype=np.float64)])
    intensity = (np.asarray(las.intensity) if "intensity" in las.point_format.dimension_names
                 else None)
    return xyz, intensity


def _read_open3d(path: Path, shown: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        import open3d as o3d
    except ImportError as error:
        raise UserError(f"{shown}: reading {path.suffix} files needs open3d "
                        "(pip install open3d)") from error
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        cloud = o3d.t.io.read_point_cloud(str(path))
    if "positions" not in cloud.point or cloud.point.positions.shape[0] == 0:
        # Open3D returns an empty cloud for a file it cannot parse
        raise UserError(f"{shown}: no points could be read (an empty, corrupt or "
                        f"non-{path.suffix[1:].upper()} file)")
    xyz = cloud.point.positions.numpy().astype(np.float64)
    intensity = cloud.point.intensity.numpy().reshape(-1) if "intensity" in cloud.point else None
    return xyz, intensity


def _read_xyz(path: Path, shown: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with open(path, encoding="utf-8") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            table = np.loadtxt((line.replace(",", " ") for line in handle),
                               dtype=np.float64, comments="#", ndmin=2)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{shown} is not a readable XYZ text file (x y z [intensity] a "
                        f"line): {_reason(error)}") from error
    if table.size == 0:
        return np.zeros((0, 3)), None
    if table.shape[1] not in (3, 4):
        raise UserError(f"{shown} has {table.shape[1]} columns; expected 3 (x y z) or 4 "
                        "(x y z intensity)")
    return table[:, :3], (table[:, 3] if table.shape[1] == 4 else None)


def _read_npy(path: Path, shown: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"{shown} is not a readable .npy array: {_reason(error)}") from error
    if array.ndim != 2 or array.shape[1] not in (3, 4) or array.dtype.kind not in "fiu":
        raise UserError(f"{shown} holds a {array.dtype} array of shape {array.shape}; "
                        "expected numbers of shape [N, 3] (x y z) or [N, 4] (x y z intensity)")
    _too_many(shown, array.shape[0])
    table = np.asarray(array, dtype=np.float64)
    return table[:, :3], (table[:, 3] if table.shape[1] == 4 else None)


def _read_bin(path: Path, shown: str, size: int, bin_format: str
              ) -> tuple[np.ndarray, np.ndarray | None]:
    record, dtype, columns = BIN_FORMATS[bin_format]
    if size % record:
        raise UserError(f"{shown} has {size} bytes, not a whole number of {record}-byte "
                        f"{bin_format} point records")
    _too_many(shown, size // record)
    table = np.fromfile(path, dtype=dtype).reshape(-1, columns)
    xyz = table[:, :3].astype(np.float64)
    return xyz, (table[:, 3] if columns == 4 else None)


def _reason(error: BaseException) -> str:
    """The first line of an exception's message (or its type), for a one-line error."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def normalise_intensity(values: np.ndarray) -> np.ndarray | None:
    """``values`` clipped to their 1st-99th percentiles and scaled to 0..1 (float32);
    ``None`` when they carry nothing (constant, or not a finite value)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(values)
    if not finite.any():
        return None
    low, high = np.percentile(values[finite], [1.0, 99.0])
    if not high > low:
        return None
    scaled = (np.clip(values, low, high) - low) / (high - low)
    return np.where(finite, scaled, 0.0).astype(np.float32)


def read_point_cloud(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES,
                     bin_format: str = "kitti") -> PointCloud:
    """Read one point-cloud file (any of :data:`POINT_SUFFIXES`; ``bin_format`` says how
    ``.bin`` records are laid out: ``"kitti"`` or ``"oxford"``)."""
    path = Path(path)
    shown = path.name
    suffix = path.suffix.lower()
    if suffix not in POINT_SUFFIXES:
        raise UserError(f"{shown}: unknown point-cloud file type {suffix or '(no suffix)'!r}; "
                        f"expected one of {', '.join(POINT_SUFFIXES)}")
    if bin_format not in BIN_FORMATS:
        raise UserError(f"unknown bin_format {bin_format!r}; expected one of "
                        f"{', '.join(BIN_FORMATS)}")
    try:
        status = path.stat()
    except OSError as error:
        raise UserError(f"{shown}: cannot read it: {_reason(error)}") from error
    if not path.is_file():
        raise UserError(f"{shown} is not a file")
    if status.st_size > max_bytes:
        raise UserError(f"{shown} is {format_size(status.st_size)}; the limit is "
                        f"{format_size(max_bytes)}")
    if suffix in (".las", ".laz"):
        xyz, intensity = _read_las(path, shown)
    elif suffix in (".ply", ".pcd"):
        xyz, intensity = _read_open3d(path, shown)
    elif suffix == ".xyz":
        xyz, intensity = _read_xyz(path, shown)
    elif suffix == ".npy":
        xyz, intensity = _read_npy(path, shown)
    else:
        xyz, intensity = _read_bin(path, shown, status.st_size, bin_format)
    count = xyz.shape[0]
    _too_many(shown, count)
    if count == 0:
        raise UserError(f"{shown} holds no points")
    bad = int(np.count_nonzero(~np.isfinite(xyz).all(axis=1)))
    if bad:
        raise UserError(f"{shown} has NaN or infinite coordinates in {bad:,} of {count:,} "
                        "points")
    if count == 1:
        raise UserError(f"{shown} holds a single point; a point cloud needs at least 2 points")
    return PointCloud(xyz=np.ascontiguousarray(xyz, dtype=np.float64),
                      intensity=None if intensity is None else normalise_intensity(intensity),
                      source=shown)


# ---------------------------------------------------------------------------------------
# Processing


def _grid_index(coords: np.ndarray, edge: float) -> np.ndarray:
    """The index (0..cells-1, int64) of the occupied grid cell of edge ``edge`` holding
    each row of ``coords``, cells numbered in sorted order."""
    cells = np.floor((coords - coords.min(axis=0)) / edge).astype(np.int64)
    extent = cells.max(axis=0) + 1
    if math.prod(int(e) for e in extent) < 2**62:
        key = np.ravel_multi_index(cells.T, extent)
        return np.unique(key, return_inverse=True)[1].reshape(-1)
    return np.unique(cells, axis=0, return_inverse=True)[1].reshape(-1)


def voxel_downsample(xyz: np.ndarray, voxel: float, intensity: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """The mean of the points (float64 [M, 3]) and of their intensity (float32 [M], or
    ``None``) in each occupied voxel of edge ``voxel`` metres, voxels in grid order."""
    if not (voxel > 0 and math.isfinite(voxel)):
        raise ValueError(f"voxel must be a positive number of metres, not {voxel!r}")
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) == 0:
        return xyz.reshape(0, 3), (None if intensity is None else np.zeros(0, np.float32))
    index = _grid_index(xyz, voxel)
    groups = int(index.max()) + 1
    counts = np.bincount(index, minlength=groups).astype(np.float64)
    origin = xyz.min(axis=0)  # summed relative to it, so that large coordinates keep precision
    local = xyz - origin
    means = np.column_stack([np.bincount(index, local[:, axis], groups) for axis in range(3)])
    means = means / counts[:, None] + origin
    if intensity is None:
        return means, None
    summed = np.bincount(index, np.asarray(intensity, dtype=np.float64), groups)
    return means, (summed / counts).astype(np.float32)


def remove_ground(xyz: np.ndarray, *, cell: float = 2.0, height: float = 0.3) -> np.ndarray:
    """Boolean mask of the points kept: those more than ``height`` m above the lowest
    point of their ``cell`` x ``cell`` m column."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) == 0:
        return np.zeros(0, dtype=bool)
    index = _grid_index(xyz[:, :2], cell)
    order = np.argsort(index, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(index[order]) != 0])
    lowest = np.minimum.reduceat(xyz[order, 2], starts)
    return xyz[:, 2] > lowest[index] + height


def _centre(xyz: np.ndarray) -> np.ndarray:
    """The mean of x and y and the median of z."""
    return np.array([xyz[:, 0].mean(), xyz[:, 1].mean(), np.median(xyz[:, 2])])


def preprocess(cloud: PointCloud, *, points: int, voxel: float | None,
               radius: float | None = None, ground: bool = False,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(centre, array)``: the float64 [3] centre subtracted and a float32 [points, 5]
    array of columns x, y, z (metres from the centre), intensity (0 without one) and
    valid (1 for a point, 0 for an all-zero padding row).

    Steps: ground removal (``ground``, :func:`remove_ground`); a horizontal crop to
    ``radius`` m around the centre of what is left; the centre (mean x, y, median z) of
    the points kept, subtracted in float64; :func:`voxel_downsample` (``voxel`` m); a
    random subset of ``points`` (``rng``) if more remain, padding rows if fewer.
    """
    if points < 1:
        raise ValueError(f"points must be at least 1, not {points}")
    xyz, intensity = cloud.xyz, cloud.intensity
    done = []
    if ground:
        keep = remove_ground(xyz)
        xyz, intensity = xyz[keep], (None if intensity is None else intensity[keep])
        done.append("ground removal")
    if radius is not None and len(xyz):
        offset = xyz[:, :2] - _centre(xyz)[:2]
        keep = np.einsum("ij,ij->i", offset, offset) <= radius * radius
        xyz, intensity = xyz[keep], (None if intensity is None else intensity[keep])
        done.append(f"the crop to {radius:g} m")
    if len(xyz) < 2:
        left = "no points" if len(xyz) == 0 else "a single point"
        after = f" left after {' and '.join(done)}" if done else ""
        raise UserError(f"{cloud.source}: {left}{after}; needs at least 2 points")
    centre = _centre(xyz)
    local = xyz - centre
    if voxel is not None:
        local, intensity = voxel_downsample(local, voxel, intensity)
        if len(local) == 1:
            raise UserError(f"{cloud.source}: all points fall in one voxel of {voxel:g} m; "
                            "use a smaller voxel")
    if len(local) > points:
        chosen = np.sort(rng.choice(len(local), size=points, replace=False))
        local = local[chosen]
        intensity = None if intensity is None else intensity[chosen]
    count = len(local)
    array = np.zeros((points, 5), dtype=np.float32)
    array[:count, :3] = local
    if intensity is not None:
        array[:count, 3] = intensity
    array[:count, 4] = 1.0
    return centre, array


# ---------------------------------------------------------------------------------------
# Place-recognition folders


def rotate_z(xyz: np.ndarray, angle: float) -> np.ndarray:
    """``xyz`` ``[N, >=2]`` rotated counter-clockwise about the z axis by ``angle``
    radians (columns after x and y unchanged); a new array."""
    c, s = np.cos(angle), np.sin(angle)
    out = xyz.copy()
    out[:, 0], out[:, 1] = c * xyz[:, 0] - s * xyz[:, 1], s * xyz[:, 0] + c * xyz[:, 1]
    return out


def outside_sector(xyz: np.ndarray, start: float, width: float) -> np.ndarray:
    """A mask of the points whose azimuth seen from the origin lies outside the sector of
    ``width`` radians starting at ``start`` (counter-clockwise): the points an occluder
    in that sector leaves."""
    azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
    return np.mod(azimuth - start, 2.0 * np.pi) >= width


def _safe_name(name: str) -> bool:
    """A relative path that stays inside its folder: not empty, not absolute, no drive,
    no ``..`` component, in either slash style."""
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    return (bool(name.strip()) and not normalised.startswith("/") and "\x00" not in name
            and re.match(r"^[A-Za-z]:", normalised) is None and ".." not in parts)


def _number(text: str, shown: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{shown} line {line}: {column} is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{shown} line {line}: {column} is {text!r}, not a finite number")
    return value


def _read_table(path: Path, shown: str, required: tuple[str, ...], exact: bool
                ) -> list[tuple[int, dict[str, str]]]:
    """The rows of the CSV file ``path`` as ``(line, {column: text})``, its header
    checked against ``required`` (and no other column when ``exact``)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            missing = [name for name in required if name not in header]
            extra = [name for name in header if name not in required] if exact else []
            if missing or extra:
                problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
                    [f"unexpected {', '.join(extra)}"] if extra else [])
                raise UserError(f"{shown} has columns {','.join(header) or '(none)'} "
                                f"({'; '.join(problems)}); expected {','.join(required)}")
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise UserError(f"{shown} line {reader.line_num}: {len(row)} values; "
                                    f"the header has {len(header)}")
                rows.append((reader.line_num, dict(zip(header, map(str.strip, row), strict=True))))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{shown} is not a readable CSV file: {_reason(error)}") from error
    return rows


def _check_exist(entries: list[PlaceEntry], root: Path, shown: str) -> None:
    missing = [entry.path for entry in entries if not entry.path.is_file()]
    if missing:
        names = ", ".join(str(path.relative_to(root)) for path in missing[:_SHOWN_MISSING])
        more = f" and {len(missing) - _SHOWN_MISSING} more" if len(missing) > _SHOWN_MISSING else ""
        raise UserError(f"{shown} names {len(missing)} file(s) that do not exist: "
                        f"{names}{more}")


def _read_ours(root: Path) -> PlaceFolder:
    poses = root / "poses.csv"
    shown = f"{root.name}/poses.csv"
    folders = {"database": root / "database", "query": root / "queries"}
    for folder in folders.values():
        if not folder.is_dir():
            raise UserError(f"{root.name}: poses.csv is there but the folder {folder.name}/ "
                            "is not; expected database/ and queries/ beside poses.csv")
    entries = []
    for line, row in _read_table(poses, shown, POSES_COLUMNS, exact=True):
        split, name = row["split"], row["file"]
        if split not in folders:
            raise UserError(f"{shown} line {line}: split is {split!r}; expected database "
                            "or query")
        if not _safe_name(name):
            raise UserError(f"{shown} line {line}: file {name!r} is not a relative path "
                            f"inside {folders[split].name}/ (absolute, '..' or empty)")
        if Path(name).suffix.lower() not in POINT_SUFFIXES:
            raise UserError(f"{shown} line {line}: file {name!r} is not a point-cloud file; "
                            f"expected one of {', '.join(POINT_SUFFIXES)}")
        position = np.array([_number(row[axis], shown, line, axis) for axis in "xyz"])
        entries.append(PlaceEntry(split, folders[split] / name.replace("\\", "/"), position))
    _check_exist(entries, root, shown)
    return _place_folder(root, entries, "kitti", shown)


def is_place_folder(root: Path) -> bool:
    """Whether ``root`` is laid out as a place-recognition folder (``poses.csv``, or
    PointNetVLAD run folders), which :func:`read_place_folder` then reads or refuses with
    the reason; otherwise it is a plain folder of clouds."""
    return (root / "poses.csv").is_file() or any(
        run.is_dir() and _locations_file(run) is not None for run in root.iterdir())


def _locations_file(run: Path) -> Path | None:
    """The PointNetVLAD locations CSV of a run folder (``_20m`` first), or ``None``."""
    found = sorted(run.glob("pointcloud_locations_*.csv"))
    preferred = run / "pointcloud_locations_20m.csv"
    return preferred if preferred in found else (found[0] if found else None)


def _read_oxford(root: Path, runs: list[tuple[Path, Path]]) -> PlaceFolder:
    if len(runs) == 1:
        raise UserError(f"{root.name} has one PointNetVLAD run ({runs[0][0].name}) and so no "
                        "query entries; the first run is the database, the others the queries")
    entries = []
    for number, (run, locations) in enumerate(runs):
        shown = f"{run.name}/{locations.name}"
        submaps = run / ("pointcloud_" + locations.stem.removeprefix("pointcloud_locations_"))
        if not submaps.is_dir():
            raise UserError(f"{root.name}: {shown} is there but its submap folder "
                            f"{run.name}/{submaps.name}/ is not")
        split = "database" if number == 0 else "query"
        run_entries = []
        for line, row in _read_table(locations, shown, OXFORD_COLUMNS, exact=False):
            stamp = row["timestamp"]
            if not _safe_name(stamp) or "/" in stamp or "\\" in stamp:
                raise UserError(f"{shown} line {line}: timestamp {stamp!r} is not a plain "
                                "file name")
            northing = _number(row["northing"], shown, line, "northing")
            easting = _number(row["easting"], shown, line, "easting")
            run_entries.append(PlaceEntry(split, submaps / f"{stamp}.bin",
                                          np.array([easting, northing, 0.0])))
        _check_exist(run_entries, root, shown)
        entries += run_entries
    return _place_folder(root, entries, "oxford", root.name)


def _place_folder(root: Path, entries: list[PlaceEntry], bin_format: str,
                  shown: str) -> PlaceFolder:
    database = [entry for entry in entries if entry.split == "database"]
    queries = [entry for entry in entries if entry.split == "query"]
    for split, chosen in (("database", database), ("query", queries)):
        if not chosen:
            raise UserError(f"{shown} has no {split} entries; a place-recognition folder "
                            "needs both database and query clouds")
    return PlaceFolder(root=root, database=database, queries=queries, bin_format=bin_format)


def read_place_folder(root: str | os.PathLike) -> PlaceFolder:
    """The database and query clouds of a place-recognition folder, in either layout of
    the module docstring (``poses.csv`` with ``database/`` and ``queries/``, or
    PointNetVLAD run folders)."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"place-recognition folder {root} does not exist")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; expected a place-recognition folder")
    if (root / "poses.csv").is_file():
        return _read_ours(root)
    runs = []
    for run in sorted(path for path in root.iterdir() if path.is_dir()):
        locations = _locations_file(run)
        if locations is not None:
            runs.append((run, locations))
    if runs:
        return _read_oxford(root, runs)
    raise UserError(f"{root.name}: no place-recognition layout found; expected poses.csv "
                    "(split,file,x,y,z) with database/ and queries/, or PointNetVLAD run "
                    "folders <run>/pointcloud_locations_*.csv with <run>/pointcloud_*/")
