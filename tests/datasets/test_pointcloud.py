"""Lidar point clouds: every file format read back, the processing steps, and the
place-recognition folder layouts, each with the one-line errors a user sees.

Files are written in tmp_path with laspy (LAS, LAZ), Open3D (PLY, PCD) and numpy
(NPY, XYZ, BIN).
"""

from __future__ import annotations

import csv
from pathlib import Path

import laspy
import numpy as np
import open3d as o3d
import pytest

from domainvit.datasets import pointcloud
from domainvit.datasets.pointcloud import (
    POINT_SUFFIXES,
    PointCloud,
    is_place_folder,
    outside_sector,
    preprocess,
    read_place_folder,
    read_point_cloud,
    remove_ground,
    rotate_z,
    voxel_downsample,
)
from domainvit.errors import UserError

# 101 intensities 0..100: the 1st and 99th percentiles are 1 and 99
RAW_INTENSITY = np.arange(101, dtype=np.float64)


def expected_intensity(raw: np.ndarray) -> np.ndarray:
    return np.clip((raw - 1.0) / 98.0, 0.0, 1.0)


def sample_xyz(count: int = 101, seed: int = 0) -> np.ndarray:
    """Points around (500 000, 4 000 000) m with millimetre detail."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(0, 50, (count, 3)), 3) + [500_000.0, 4_000_000.0, 30.0]


def raises(match: str):
    """pytest.raises(UserError) whose message must also be a single line."""
    return pytest.raises(UserError, match=match)


def one_line(info) -> None:
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------
# Formats


def write_las(path: Path, xyz: np.ndarray, intensity: np.ndarray | None = None) -> None:
    header = laspy.LasHeader(point_format=1, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor(xyz.min(axis=0))
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if intensity is not None:
        las.intensity = intensity.astype(np.uint16)
    las.write(path)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_round_trip(tmp_path, suffix):
    xyz = sample_xyz()
    write_las(tmp_path / f"scan{suffix}", xyz, RAW_INTENSITY)
    cloud = read_point_cloud(tmp_path / f"scan{suffix}")
    assert cloud.xyz.dtype == np.float64 and cloud.source == f"scan{suffix}"
    np.testing.assert_allclose(cloud.xyz, xyz, rtol=0, atol=0.0005)
    assert cloud.intensity.dtype == np.float32
    np.testing.assert_allclose(cloud.intensity, expected_intensity(RAW_INTENSITY), atol=1e-6)
    assert cloud.intensity[50] == pytest.approx(0.5)


def test_las_zero_intensity_is_none(tmp_path):
    write_las(tmp_path / "scan.las", sample_xyz())
    assert read_point_cloud(tmp_path / "scan.las").intensity is None


def test_laz_without_backend(tmp_path, monkeypatch):
    write_las(tmp_path / "scan.laz", sample_xyz())
    monkeypatch.setattr(laspy.LazBackend, "detect_available", staticmethod(lambda: ()))
    with raises(r"scan\.laz: reading \.laz needs the lazrs backend "
                r"\(pip install 'laspy\[lazrs\]'\)") as info:
        read_point_cloud(tmp_path / "scan.laz")
    one_line(info)


@pytest.mark.parametrize("suffix", [".ply", ".pcd"])
def test_open3d_round_trip(tmp_path, suffix):
    xyz = sample_xyz()
    cloud = o3d.t.geometry.PointCloud()
    cloud.point.positions = o3d.core.Tensor(xyz)
    cloud.point.intensity = o3d.core.Tensor(RAW_INTENSITY.astype(np.float32)[:, None])
    assert o3d.t.io.write_point_cloud(str(tmp_path / f"scan{suffix}"), cloud)
    read = read_point_cloud(tmp_path / f"scan{suffix}")
    np.testing.assert_array_equal(read.xyz, xyz)
    np.testing.assert_allclose(read.intensity, expected_intensity(RAW_INTENSITY), atol=1e-6)


@pytest.mark.parametrize("suffix", [".ply", ".pcd"])
def test_open3d_without_intensity(tmp_path, suffix):
    xyz = sample_xyz()[:, :3] - [500_000.0, 4_000_000.0, 0.0]
    legacy = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    assert o3d.io.write_point_cloud(str(tmp_path / f"scan{suffix}"), legacy)
    read = read_point_cloud(tmp_path / f"scan{suffix}")
    np.testing.assert_allclose(read.xyz, xyz, atol=1e-4)  # Open3D may store float32
    assert read.intensity is None


def test_xyz_text(tmp_path):
    xyz = sample_xyz()
    np.savetxt(tmp_path / "three.xyz", xyz, fmt="%.3f", header="x y z")
    rows = [f"{x:.3f},{y:.3f},{z:.3f},{i:g}" for (x, y, z), i in zip(xyz, RAW_INTENSITY,
                                                                       strict=True)]
    (tmp_path / "four.xyz").write_text("\n".join(rows) + "\n")
    three, four = read_point_cloud(tmp_path / "three.xyz"), read_point_cloud(tmp_path / "four.xyz")
    np.testing.assert_allclose(three.xyz, xyz, rtol=0, atol=1e-9)
    assert three.intensity is None
    np.testing.assert_allclose(four.xyz, xyz, rtol=0, atol=1e-9)
    np.testing.assert_allclose(four.intensity, expected_intensity(RAW_INTENSITY), atol=1e-6)


def test_npy(tmp_path):
    xyz = sample_xyz()
    np.save(tmp_path / "three.npy", xyz)
    np.save(tmp_path / "four.npy", np.column_stack([xyz, RAW_INTENSITY]))
    np.testing.assert_array_equal(read_point_cloud(tmp_path / "three.npy").xyz, xyz)
    four = read_point_cloud(tmp_path / "four.npy")
    np.testing.assert_array_equal(four.xyz, xyz)
    np.testing.assert_allclose(four.intensity, expected_intensity(RAW_INTENSITY), atol=1e-6)


def test_bin_kitti_and_oxford(tmp_path):
    kitti = np.column_stack([sample_xyz()[:, :3] - [500_000, 4_000_000, 0],
                             RAW_INTENSITY / 100]).astype(np.float32)
    kitti.tofile(tmp_path / "000001.bin")
    read = read_point_cloud(tmp_path / "000001.bin")
    np.testing.assert_array_equal(read.xyz, kitti[:, :3].astype(np.float64))
    np.testing.assert_allclose(read.intensity, expected_intensity(RAW_INTENSITY), atol=1e-5)
    oxford = np.random.default_rng(1).uniform(-1, 1, (4096, 3))
    oxford.tofile(tmp_path / "1400505893134088.bin")
    read = read_point_cloud(tmp_path / "1400505893134088.bin", bin_format="oxford")
    np.testing.assert_array_equal(read.xyz, oxford)
    assert read.intensity is None


def test_constant_intensity_is_none(tmp_path):
    np.save(tmp_path / "flat.npy", np.column_stack([sample_xyz(), np.full(101, 7.0)]))
    assert read_point_cloud(tmp_path / "flat.npy").intensity is None


# ---------------------------------------------------------------------------------------
# Errors of read_point_cloud


def test_unknown_suffix(tmp_path):
    (tmp_path / "scan.e57").write_bytes(b"x")
    with raises(r"scan\.e57: unknown point-cloud file type '\.e57'; expected one of "
                + ", ".join(POINT_SUFFIXES).replace(".", r"\.")) as info:
        read_point_cloud(tmp_path / "scan.e57")
    one_line(info)


def test_size_limit_checked_before_reading(tmp_path, monkeypatch):
    np.zeros((1000, 4), np.float32).tofile(tmp_path / "big.bin")
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: pytest.fail("read despite the limit"))
    with raises(r"big\.bin is 15\.6 KiB; the limit is 1\.0 KiB") as info:
        read_point_cloud(tmp_path / "big.bin", max_bytes=1024)
    one_line(info)


def test_missing_file(tmp_path):
    with raises(r"absent\.las: cannot read it") as info:
        read_point_cloud(tmp_path / "absent.las")
    one_line(info)


@pytest.mark.parametrize(("name", "content", "match"), [
    ("bad.las", b"LASF" + bytes(300), r"bad\.las is not a readable LAS/LAZ file"),
    ("bad.laz", b"not a laz file at all", r"bad\.laz is not a readable LAS/LAZ file"),
    ("bad.ply", b"garbage\n", r"bad\.ply: no points could be read \(an empty, corrupt or "
                              r"non-PLY file\)"),
    ("bad.pcd", b"garbage\n", r"bad\.pcd: no points could be read"),
    ("bad.xyz", b"1 2 three\n", r"bad\.xyz is not a readable XYZ text file"),
    ("two.xyz", b"1 2\n3 4\n", r"two\.xyz has 2 columns; expected 3 \(x y z\) or 4"),
    ("bad.npy", b"\x93NUMPY garbage", r"bad\.npy is not a readable \.npy array"),
    ("odd.bin", bytes(40), r"odd\.bin has 40 bytes, not a whole number of 16-byte kitti "
                           r"point records"),
])
def test_corrupt_files(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with raises(match) as info:
        read_point_cloud(tmp_path / name)
    one_line(info)


def test_npy_wrong_shape_and_pickle(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(12))
    with raises(r"flat\.npy holds a float64 array of shape \(12,\); expected numbers of "
                r"shape \[N, 3\]"):
        read_point_cloud(tmp_path / "flat.npy")
    np.save(tmp_path / "objects.npy", np.array([[1, 2, 3]], dtype=object), allow_pickle=True)
    with raises(r"objects\.npy is not a readable \.npy array"):
        read_point_cloud(tmp_path / "objects.npy")


def test_oxford_record_size(tmp_path):
    np.zeros((5, 4), np.float32).tofile(tmp_path / "kitti.bin")  # 80 bytes
    with raises(r"kitti\.bin has 80 bytes, not a whole number of 24-byte oxford"):
        read_point_cloud(tmp_path / "kitti.bin", bin_format="oxford")


@pytest.mark.parametrize(("make", "match"), [
    (lambda p: np.save(p / "c.npy", np.zeros((0, 3))), r"c\.npy holds no points"),
    (lambda p: (p / "c.bin").write_bytes(b""), r"c\.bin holds no points"),
    (lambda p: (p / "c.xyz").write_text("# nothing\n"), r"c\.xyz holds no points"),
    (lambda p: np.save(p / "c.npy", [[0, 0, 0], [1, np.nan, 0], [np.inf, 0, 0]]),
     r"c\.npy has NaN or infinite coordinates in 2 of 3 points"),
    (lambda p: np.save(p / "c.npy", [[1.0, 2.0, 3.0]]),
     r"c\.npy holds a single point; a point cloud needs at least 2 points"),
])
def test_degenerate_clouds(tmp_path, make, match):
    make(tmp_path)
    name = next(tmp_path.iterdir())
    with raises(match) as info:
        read_point_cloud(name)
    one_line(info)


def test_point_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(pointcloud, "MAX_POINTS", 100)
    np.zeros((101, 4), np.float32).tofile(tmp_path / "many.bin")
    np.save(tmp_path / "many.npy", np.zeros((101, 3)))
    write_las(tmp_path / "many.las", sample_xyz(101))
    np.savetxt(tmp_path / "many.xyz", np.zeros((101, 3)))
    for name in ("many.bin", "many.npy", "many.las", "many.xyz"):
        with raises(rf"{name.replace('.', '[.]')} holds 101 points; at most 100 are read"):
            read_point_cloud(tmp_path / name)
    np.save(tmp_path / "enough.npy", np.zeros((100, 3)))
    assert read_point_cloud(tmp_path / "enough.npy").xyz.shape == (100, 3)


# ---------------------------------------------------------------------------------------
# Processing


def test_voxel_downsample_means():
    xyz = np.array([[0.1, 0.1, 0.1], [0.3, 0.5, 0.9], [1.5, 0.2, 0.2], [0.0, 0.0, 0.0]])
    intensity = np.array([0.2, 0.4, 1.0, 0.0], np.float32)
    means, mean_intensity = voxel_downsample(xyz + 5e5, 1.0, intensity)
    np.testing.assert_allclose(means - 5e5, [[0.4 / 3, 0.2, 1.0 / 3], [1.5, 0.2, 0.2]],
                               atol=1e-9)
    np.testing.assert_allclose(mean_intensity, [0.2, 1.0], atol=1e-6)
    alone, none = voxel_downsample(xyz, 10.0)
    np.testing.assert_allclose(alone, [xyz.mean(axis=0)])
    assert none is None


def test_voxel_downsample_matches_a_loop():
    rng = np.random.default_rng(3)
    xyz = rng.uniform(-20, 20, (3000, 3))
    means, _ = voxel_downsample(xyz, 2.5)
    groups: dict[tuple, list] = {}
    low = xyz.min(axis=0)
    for point in xyz:
        groups.setdefault(tuple(np.floor((point - low) / 2.5).astype(int)), []).append(point)
    expected = np.array([np.mean(groups[key], axis=0) for key in sorted(groups)])
    np.testing.assert_allclose(means, expected, atol=1e-12)


def test_remove_ground_plane_and_box():
    rng = np.random.default_rng(4)
    plane = np.column_stack([rng.uniform(0, 20, (4000, 2)), rng.uniform(-0.05, 0.05, 4000)])
    plane[:, 2] += 0.02 * plane[:, 0]  # a gentle slope: 0.4 m over the scene
    box = np.column_stack([rng.uniform(8, 12, (500, 2)), rng.uniform(0.5, 2.0, 500)])
    xyz = np.vstack([plane, box]) + [5e5, 4e6, 100.0]
    keep = remove_ground(xyz, cell=2.0, height=0.3)
    assert keep.dtype == bool and keep.shape == (4500,)
    assert not keep[:4000].any() and keep[4000:].all()


def test_preprocess_subset_and_padding():
    xyz = sample_xyz(1000)
    intensity = np.linspace(0, 1, 1000, dtype=np.float32)
    cloud = PointCloud(xyz, intensity, "scan.las")
    centre, array = preprocess(cloud, points=256, voxel=None, rng=np.random.default_rng(0))
    assert array.shape == (256, 5) and array.dtype == np.float32
    assert (array[:, 4] == 1).all()
    expected_centre = [xyz[:, 0].mean(), xyz[:, 1].mean(), np.median(xyz[:, 2])]
    np.testing.assert_allclose(centre, expected_centre, rtol=0, atol=1e-9)
    # every row is one of the points, with its own intensity, no point twice
    local = xyz - centre
    rows = [int(np.argmin(np.abs(local - row[:3]).sum(axis=1))) for row in array]
    assert len(set(rows)) == 256
    np.testing.assert_allclose(array[:, :3], local[rows], atol=1e-4)
    np.testing.assert_allclose(array[:, 3], intensity[rows])
    again = preprocess(cloud, points=256, voxel=None, rng=np.random.default_rng(0))[1]
    np.testing.assert_array_equal(array, again)

    _, padded = preprocess(cloud, points=1500, voxel=None, rng=np.random.default_rng(0))
    assert (padded[:1000, 4] == 1).all()
    assert (padded[1000:] == 0).all()
    _, plain = preprocess(PointCloud(xyz, None, "s"), points=1000, voxel=None,
                          rng=np.random.default_rng(0))
    assert (plain[:, 3] == 0).all()


def test_preprocess_keeps_centimetres_far_from_origin():
    # 1 cm steps at 500 km east, 4000 km north: float32 of the raw values would lose them
    offsets = np.arange(11) * 0.01
    xyz = np.column_stack([5e5 + offsets, 4e6 + offsets, 120 + offsets])
    _, array = preprocess(PointCloud(xyz, None, "s"), points=11, voxel=None,
                          rng=np.random.default_rng(0))
    steps = np.diff(array[:, :3], axis=0)
    np.testing.assert_allclose(steps, 0.01, atol=1e-6)
    np.testing.assert_allclose(array[5, :3], 0.0, atol=1e-6)


def test_preprocess_voxel_radius_and_ground():
    grid = np.stack(np.meshgrid(np.arange(20.0), np.arange(20.0), [0.0, 3.0]), -1)
    xyz = grid.reshape(-1, 3) + [5e5 + 0.5, 4e6 + 0.5, 0.0]  # 800 points, 400 on the ground
    dense = np.repeat(xyz, 3, axis=0) + np.tile([[0.0, 0.0, 0.0], [0.1, 0, 0], [0.2, 0, 0]],
                                                (800, 1))
    cloud = PointCloud(dense, None, "s.las")
    _, array = preprocess(cloud, points=1000, voxel=1.0, rng=np.random.default_rng(0))
    assert array[:, 4].sum() == 800  # three points a voxel become one
    _, array = preprocess(cloud, points=1000, voxel=1.0, ground=True,
                          rng=np.random.default_rng(0))
    valid = array[array[:, 4] == 1]
    assert len(valid) == 400 and np.ptp(valid[:, 2]) == 0  # the ground layer is gone
    centre, array = preprocess(cloud, points=1000, voxel=1.0, radius=5.0,
                               rng=np.random.default_rng(0))
    valid = array[array[:, 4] == 1]
    np.testing.assert_allclose(centre[:2], [5e5 + 10.1, 4e6 + 10.0], atol=1e-9)
    assert 2 * 70 <= len(valid) <= 2 * 90  # about pi * 5^2 columns of two points
    assert np.hypot(valid[:, 0], valid[:, 1]).max() <= 5.0 + 1e-6


def test_preprocess_errors():
    flat = PointCloud(np.column_stack([np.arange(11.0), np.zeros(11), np.zeros(11)]), None,
                      "flat.las")
    with raises(r"flat\.las: no points left after ground removal; needs at least 2") as info:
        preprocess(flat, points=8, voxel=None, ground=True, rng=np.random.default_rng(0))
    one_line(info)
    with raises(r"flat\.las: a single point left after the crop to 0\.5 m"):
        preprocess(flat, points=8, voxel=None, radius=0.5, rng=np.random.default_rng(0))
    with raises(r"flat\.las: all points fall in one voxel of 100 m") as info:
        preprocess(flat, points=8, voxel=100.0, rng=np.random.default_rng(0))
    one_line(info)


def test_processing_handles_a_million_points():
    xyz = np.random.default_rng(5).uniform(0, 100, (1_000_000, 3)) + [5e5, 4e6, 0]
    cloud = PointCloud(xyz, None, "big")
    centre, array = preprocess(cloud, points=4096, voxel=0.5, ground=True, radius=40.0,
                               rng=np.random.default_rng(0))
    assert array.shape == (4096, 5) and (array[:, 4] == 1).all()


# ---------------------------------------------------------------------------------------
# Place-recognition folders


def write_csv(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def make_ours(root: Path, rows: list[list] | None = None) -> Path:
    (root / "database").mkdir(parents=True)
    (root / "queries" / "drive2").mkdir(parents=True)
    for name in ("database/000000.bin", "database/000001.bin", "queries/drive2/000007.bin"):
        np.zeros((4, 4), np.float32).tofile(root / name)
    np.save(root / "queries" / "q.npy", np.zeros((2, 3)))
    header = ["split", "file", "x", "y", "z"]
    write_csv(root / "poses.csv", [header] + (rows or [
        ["database", "000000.bin", "500000.5", "4000000.25", "10"],
        ["database", "000001.bin", "500010", "4000000", "0"],
        ["query", "drive2/000007.bin", "500004", "4000001", "0"],
        ["query", "q.npy", "1", "2", "3"],
    ]))
    return root


def test_read_place_folder_ours(tmp_path):
    folder = read_place_folder(make_ours(tmp_path / "places"))
    assert folder.bin_format == "kitti" and folder.root == tmp_path / "places"
    assert [e.path for e in folder.database] == [tmp_path / "places/database/000000.bin",
                                                 tmp_path / "places/database/000001.bin"]
    assert [e.path.name for e in folder.queries] == ["000007.bin", "q.npy"]
    assert {e.split for e in folder.database} == {"database"}
    assert {e.split for e in folder.queries} == {"query"}
    np.testing.assert_array_equal(folder.database[0].position, [500000.5, 4000000.25, 10.0])
    assert folder.database[0].position.dtype == np.float64
    np.testing.assert_array_equal(folder.queries[1].position, [1, 2, 3])
    assert read_point_cloud(folder.queries[0].path, bin_format=folder.bin_format).xyz.shape \
        == (4, 3)


@pytest.mark.parametrize(("rows", "match"), [
    ([["database", "000000.bin", "1", "2", "3"]], r"places/poses\.csv has no query entries"),
    ([["query", "q.npy", "1", "2", "3"]], r"places/poses\.csv has no database entries"),
    ([["map", "000000.bin", "1", "2", "3"]],
     r"places/poses\.csv line 2: split is 'map'; expected database or query"),
    ([["database", "../database/000000.bin", "1", "2", "3"]],
     r"line 2: file '\.\./database/000000\.bin' is not a relative path inside database/"),
    ([["query", "/etc/passwd.bin", "1", "2", "3"]],
     r"line 2: file '/etc/passwd\.bin' is not a relative path inside queries/"),
    ([["query", "..\\x.bin", "1", "2", "3"]], r"line 2: file '\.\.\\\\x\.bin' is not a relative"),
    ([["query", "C:/x.bin", "1", "2", "3"]], r"line 2: file 'C:/x\.bin' is not a relative"),
    ([["query", "notes.txt", "1", "2", "3"]],
     r"line 2: file 'notes\.txt' is not a point-cloud file"),
    ([["database", "000000.bin", "east", "2", "3"]], r"line 2: x is 'east', not a number"),
    ([["database", "000000.bin", "1", "inf", "3"]], r"line 2: y is 'inf', not a finite number"),
    ([["database", "000000.bin", "1", "2"]], r"line 2: 4 values; the header has 5"),
    ([["database", f"{i:06d}.bin", "1", "2", "3"] for i in range(9)],
     r"places/poses\.csv names 7 file\(s\) that do not exist: database/000002\.bin, "
     r"database/000003\.bin, database/000004\.bin, database/000005\.bin, "
     r"database/000006\.bin and 2 more"),
])
def test_poses_errors(tmp_path, rows, match):
    with raises(match) as info:
        read_place_folder(make_ours(tmp_path / "places", rows))
    one_line(info)


@pytest.mark.parametrize(("header", "match"), [
    (["split", "file", "x", "y"], r"has columns split,file,x,y \(missing z\); expected "
                                  r"split,file,x,y,z"),
    (["split", "file", "x", "y", "z", "yaw"], r"\(unexpected yaw\)"),
])
def test_poses_columns(tmp_path, header, match):
    root = make_ours(tmp_path / "places")
    write_csv(root / "poses.csv", [header, ["database", "000000.bin"] + ["1"] * (len(header) - 2)])
    with raises(match) as info:
        read_place_folder(root)
    one_line(info)


def test_place_folder_roots(tmp_path):
    with raises(r"place-recognition folder .*absent does not exist"):
        read_place_folder(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with raises(r"file is not a folder"):
        read_place_folder(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with raises(r"empty: no place-recognition layout found; expected poses\.csv") as info:
        read_place_folder(tmp_path / "empty")
    one_line(info)
    root = make_ours(tmp_path / "places")
    (root / "queries/drive2/000007.bin").unlink()
    (root / "queries/q.npy").unlink()
    (root / "queries/drive2").rmdir()
    (root / "queries").rmdir()
    with raises(r"places: poses\.csv is there but the folder queries/ is not"):
        read_place_folder(root)


def make_oxford(root: Path, runs: dict[str, list[tuple[int, float, float]]]) -> Path:
    for run, rows in runs.items():
        submaps = root / run / "pointcloud_20m"
        submaps.mkdir(parents=True)
        write_csv(root / run / "pointcloud_locations_20m.csv",
                  [["timestamp", "northing", "easting"]] + [list(row) for row in rows])
        for stamp, _, _ in rows:
            np.zeros((8, 3)).tofile(submaps / f"{stamp}.bin")
        # the training submaps beside them are not the ones listed
        (root / run / "pointcloud_20m_10overlap").mkdir()
        write_csv(root / run / "pointcloud_locations_20m_10overlap.csv",
                  [["timestamp", "northing", "easting"], [1, 2, 3]])
    return root


OXFORD_RUNS = {
    "2014-12-09-13-21-02": [(1418132416737115, 5735712.5, 620084.25),
                            (1418132417736837, 5735722.0, 620080.0)],
    "2014-05-19-13-20-57": [(1400505893134088, 5735700.0, 620090.0)],
    "2015-02-03-08-45-10": [(1422953119393950, 5735600.0, 620500.0)],
}


def test_read_place_folder_oxford(tmp_path):
    folder = read_place_folder(make_oxford(tmp_path / "oxford", OXFORD_RUNS))
    assert folder.bin_format == "oxford"
    # the first run by name is the database
    assert [e.path for e in folder.database] == [
        tmp_path / "oxford/2014-05-19-13-20-57/pointcloud_20m/1400505893134088.bin"]
    np.testing.assert_array_equal(folder.database[0].position, [620090.0, 5735700.0, 0.0])
    assert [e.path.name for e in folder.queries] == [
        "1418132416737115.bin", "1418132417736837.bin", "1422953119393950.bin"]
    np.testing.assert_array_equal(folder.queries[0].position, [620084.25, 5735712.5, 0.0])
    assert read_point_cloud(folder.queries[0].path, bin_format=folder.bin_format).xyz.shape \
        == (8, 3)


def test_oxford_errors(tmp_path):
    root = make_oxford(tmp_path / "one", {"run": [(1, 2.0, 3.0)]})
    with raises(r"one has one PointNetVLAD run \(run\) and so no query entries") as info:
        read_place_folder(root)
    one_line(info)

    root = make_oxford(tmp_path / "missing", OXFORD_RUNS)
    (root / "2015-02-03-08-45-10/pointcloud_20m/1422953119393950.bin").unlink()
    with raises(r"2015-02-03-08-45-10/pointcloud_locations_20m\.csv names 1 file\(s\) that do "
                r"not exist: 2015-02-03-08-45-10/pointcloud_20m/1422953119393950\.bin"):
        read_place_folder(root)

    root = make_oxford(tmp_path / "escape", OXFORD_RUNS)
    write_csv(root / "2015-02-03-08-45-10/pointcloud_locations_20m.csv",
              [["timestamp", "northing", "easting"], ["../../x", 1, 2]])
    with raises(r"line 2: timestamp '\.\./\.\./x' is not a plain file name"):
        read_place_folder(root)

    root = make_oxford(tmp_path / "columns", OXFORD_RUNS)
    write_csv(root / "2015-02-03-08-45-10/pointcloud_locations_20m.csv",
              [["timestamp", "x", "y"], [1, 1, 2]])
    with raises(r"has columns timestamp,x,y \(missing northing, easting\)"):
        read_place_folder(root)

    root = make_oxford(tmp_path / "nan", OXFORD_RUNS)
    write_csv(root / "2015-02-03-08-45-10/pointcloud_locations_20m.csv",
              [["timestamp", "northing", "easting"], [1, "nan", 2]])
    with raises(r"line 2: northing is 'nan', not a finite number"):
        read_place_folder(root)

    root = make_oxford(tmp_path / "nofolder", OXFORD_RUNS)
    for path in (root / "2015-02-03-08-45-10/pointcloud_20m").iterdir():
        path.unlink()
    (root / "2015-02-03-08-45-10/pointcloud_20m").rmdir()
    with raises(r"nofolder: 2015-02-03-08-45-10/pointcloud_locations_20m\.csv is there but "
                r"its submap folder 2015-02-03-08-45-10/pointcloud_20m/ is not"):
        read_place_folder(root)


def test_rotate_z_turns_counter_clockwise_and_keeps_the_other_columns():
    points = np.array([[1.0, 0.0, 5.0, 0.7], [0.0, 2.0, -1.0, 0.1]])
    turned = rotate_z(points, np.pi / 2)
    np.testing.assert_allclose(turned, [[0.0, 1.0, 5.0, 0.7], [-2.0, 0.0, -1.0, 0.1]],
                               atol=1e-12)
    np.testing.assert_array_equal(points[0], [1.0, 0.0, 5.0, 0.7])  # the input is kept


def test_outside_sector_drops_the_points_inside_it():
    angles = np.radians([10.0, 50.0, 100.0, 200.0, 350.0])
    points = np.column_stack([np.cos(angles), np.sin(angles), np.zeros(5)])
    # the sector from 340 to 60 degrees (it wraps through 0)
    keep = outside_sector(points, np.radians(340.0), np.radians(80.0))
    assert keep.tolist() == [False, False, True, True, False]


def test_is_place_folder_tells_layouts_from_plain_folders(tmp_path):
    assert not is_place_folder(tmp_path)
    (tmp_path / "poses.csv").write_text("split,file,x,y,z\n")
    assert is_place_folder(tmp_path)
    oxford = tmp_path / "oxford"
    (oxford / "run1").mkdir(parents=True)
    assert not is_place_folder(oxford)
    (oxford / "run1" / "pointcloud_locations_20m.csv").write_text("timestamp,northing,easting\n")
    assert is_place_folder(oxford)
