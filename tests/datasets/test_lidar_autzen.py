"""The ``lidar-autzen`` place-recognition benchmark: the real Autzen cloud read out of
laspy's sdist (a real ``pip download`` from PyPI), built once for the module; its areas,
the place folders' layout and files, the queries' positives, determinism, and the refusal
of files that are not the expected cloud."""

from __future__ import annotations

import csv
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("laspy")
pytest.importorskip("scipy")

from tqdm.auto import tqdm  # noqa: E402

from domainvit.datasets import lidar_autzen as la  # noqa: E402
from domainvit.datasets.pointcloud import read_place_folder, read_point_cloud  # noqa: E402
from domainvit.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The benchmark built by ``build_lidar_autzen`` (downloading the sdist), and a copy of
    the sdist it read."""
    root = tmp_path_factory.mktemp("lidar-autzen")
    kept = root / "sdist"
    kept.mkdir()
    real = la.pip_download

    def download_and_keep(requirement, dest, *, sdist, timeout=900):
        archive = real(requirement, dest, sdist=sdist, timeout=timeout)
        shutil.copy(archive, kept / archive.name)
        return archive

    folder = root / "built"
    folder.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(la, "pip_download", download_and_keep)
        la.build_lidar_autzen(folder, tqdm)
    (sdist,) = kept.iterdir()
    return folder, sdist


@pytest.fixture(scope="module")
def folder(built) -> Path:
    return built[0]


@pytest.fixture(scope="module")
def record(folder: Path) -> dict:
    return la.read_split_record(folder)


def _poses(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _xy(rows: list[dict], split: str) -> np.ndarray:
    return np.array([[float(r["x"]), float(r["y"])] for r in rows if r["split"] == split])


def test_the_cloud_is_the_real_autzen_strip_in_metres(record: dict):
    cloud = record["cloud"]
    assert cloud["points"] == 110_000
    # the file's 1177.5 x 562.7 international feet
    assert cloud["extent_m"][0] == pytest.approx(1177.46 * 0.3048, abs=0.05)
    assert cloud["extent_m"][1] == pytest.approx(562.70 * 0.3048, abs=0.05)
    assert cloud["density_per_m2"] == pytest.approx(1.787, abs=0.01)
    assert 120 < cloud["bounds_m"]["zmin"] < cloud["bounds_m"]["zmax"] < 165
    assert record["crs"]["file_units"] == "foot" and record["crs"]["units"] == "metre"
    assert "Lambert_Conformal_Conic" in record["crs"]["wkt"]
    source = record["source"]
    assert source["pypi"] == "laspy==2.7.0" and source["member"].endswith("autzen_trim.laz")
    assert "BSD-2-Clause" in source["license"] and "Autzen" in source["place"]
    assert len(source["sha256"]) == 64 and len(source["member_sha256"]) == 64


def test_layout(folder: Path, record: dict):
    assert (folder / "split.json").is_file() and (folder / "train" / "cloud.npy").is_file()
    for split in ("val", "test"):
        place = read_place_folder(folder / split)
        counts = record["counts"][split]
        assert len(place.database) == counts["database"] > 20
        assert len(place.queries) == counts["queries"] > 40
        assert place.bin_format == "kitti"
        assert all(e.path.suffix == ".bin" for e in place.database + place.queries)
        assert (folder / split / "poses.csv").read_text().startswith("split,file,x,y,z\n")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 30 * 2**20
    assert record["build_seconds"] < 60


def test_areas_are_disjoint_with_gaps(folder: Path, record: dict):
    radius = record["submap_radius_m"]
    train, val, test = (record[f"{name}_area"] for name in ("train", "val", "test"))
    assert train["xmax"] + 2 * radius <= val["xmin"] + 1e-6
    assert val["xmax"] + 2 * radius <= test["xmin"] + 1e-6
    bounds = record["cloud"]["bounds_m"]
    length = bounds["xmax"] - bounds["xmin"]
    assert test["xmax"] == pytest.approx(bounds["xmax"])
    assert test["xmax"] - test["xmin"] == pytest.approx(0.35 * length)
    assert train["xmin"] == pytest.approx(bounds["xmin"])
    cloud = la.read_train_cloud(folder)
    assert cloud.dtype == np.float64 and cloud.shape == (record["counts"]["train"]["points"], 4)
    assert cloud[:, 0].max() <= train["xmax"]
    # no training point in the gaps, the validation strip or the test area
    assert cloud[:, 0].max() < test["xmin"] - 2 * radius
    assert cloud[:, 0].max() < val["xmin"] - 2 * radius + 1e-6
    assert 0.0 <= cloud[:, 3].min() and cloud[:, 3].max() <= 1.0
    # every database submap, put back in world coordinates, lies in its own area
    for split in ("val", "test"):
        area = record[f"{split}_area"]
        for row in _poses(folder / split / "poses.csv"):
            if row["split"] != "database":
                continue
            local = np.fromfile(folder / split / "database" / row["file"], "<f4").reshape(-1, 4)
            x = local[:, 0].astype(np.float64) + float(row["x"])
            y = local[:, 1].astype(np.float64) + float(row["y"])
            assert x.min() >= area["xmin"] - 1e-3 and x.max() <= area["xmax"] + 1e-3
            assert y.min() >= area["ymin"] - 1e-3 and y.max() <= area["ymax"] + 1e-3


def test_every_query_has_a_positive(folder: Path, record: dict):
    from scipy.spatial import cKDTree

    for split in ("val", "test"):
        rows = _poses(folder / split / "poses.csv")
        db, q = _xy(rows, "database"), _xy(rows, "query")
        nearest, _ = cKDTree(db).query(q)
        assert nearest.max() <= record["positive_m"] == 25.0
        counts = record["counts"][split]
        assert counts["query_poses"] == (counts["queries"] + counts["queries_without_positive"]
                                         + counts["poses_dropped_sparse"]["query"])
        assert 0 < counts["chance_recall_at_1"] < 0.5


def test_submaps_are_kitti_records_in_local_coordinates(folder: Path, record: dict):
    radius = record["submap_radius_m"]
    for split in ("val", "test"):
        rows = _poses(folder / split / "poses.csv")
        for row in rows:
            sub = "database" if row["split"] == "database" else "queries"
            path = folder / split / sub / row["file"]
            assert path.stat().st_size % 16 == 0
            local = np.fromfile(path, "<f4").reshape(-1, 4)
            assert len(local) >= record["min_points"]
            assert np.hypot(local[:, 0], local[:, 1]).max() <= radius + 1e-3
            assert np.abs(local[:, :2]).max() <= radius + 1e-3
            assert 0.0 <= local[:, 3].min() and local[:, 3].max() <= 1.0
            # centred on the median z (a query before thinning, occlusion and noise)
            if row["split"] == "database":
                assert np.median(local[:, 2]) == pytest.approx(0.0, abs=1e-3)
            assert np.abs(local[:, 2]).max() < 40.0
            assert 120 < float(row["z"]) < 165
        # the reader of the point-cloud task takes them
        cloud = read_point_cloud(folder / split / "queries" / "000000.bin", bin_format="kitti")
        assert cloud.xyz.shape[1] == 3 and len(cloud.xyz) > 100


def test_queries_are_perturbed(folder: Path, record: dict):
    counts = record["counts"]["test"]
    assert 0 < counts["queries_occluded"] < counts["queries"]
    assert 0 < counts["queries_density_gradient"] < counts["queries"]
    # a query's file is cut 2-5 m away from its recorded pose and rotated, so it differs
    # from the database submap nearest to it
    rows = _poses(folder / "test" / "poses.csv")
    db = _xy(rows, "database")
    q0 = _xy(rows, "query")[0]
    nearest = int(np.argmin(np.linalg.norm(db - q0, axis=1)))
    query = np.fromfile(folder / "test" / "queries" / "000000.bin", "<f4").reshape(-1, 4)
    base = np.fromfile(folder / "test" / "database" / f"{nearest:06d}.bin",
                       "<f4").reshape(-1, 4)
    assert len(query) != len(base) or not np.allclose(query, base)


def test_second_build_is_identical(built, tmp_path: Path):
    folder, sdist = built
    again = tmp_path / "again"
    la.write_benchmark(la.read_sdist(sdist), again, tqdm)
    for split in ("val", "test"):
        assert (again / split / "poses.csv").read_bytes() == \
            (folder / split / "poses.csv").read_bytes()
        for sub in ("database", "queries"):
            names = sorted(p.name for p in (folder / split / sub).iterdir())
            assert names == sorted(p.name for p in (again / split / sub).iterdir())
            for name in names[::7]:
                assert (again / split / sub / name).read_bytes() == \
                    (folder / split / sub / name).read_bytes()
    assert np.array_equal(la.read_train_cloud(again), la.read_train_cloud(folder))


def test_split_record_and_readers_refuse_missing_files(tmp_path: Path):
    with pytest.raises(UserError, match="split.json"):
        la.read_split_record(tmp_path)
    (tmp_path / "train").mkdir()
    np.save(tmp_path / "train" / "cloud.npy", np.zeros((5, 3)))
    with pytest.raises(UserError, match=r"\[N, 4\]"):
        la.read_train_cloud(tmp_path)


def test_refuses_an_archive_without_the_cloud(tmp_path: Path):
    member = tmp_path / "README.md"
    member.write_text("not a cloud")
    archive = tmp_path / "laspy-2.7.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(member, arcname="laspy-2.7.0/README.md")
    with pytest.raises(UserError, match="autzen_trim.laz"):
        la.read_sdist(archive)


@pytest.mark.parametrize(("points", "message"), [
    (10, "holds 10 points; expected 110000"),
    (110_000, "no WKT coordinate-system record"),  # the units would be unknown
])
def test_refuses_another_cloud(tmp_path: Path, points: int, message: str):
    import laspy

    las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
    values = np.linspace(0.0, 100.0, points)
    las.x, las.y, las.z = values, values, values
    path = tmp_path / "other.las"
    las.write(path)
    with pytest.raises(UserError, match=message):
        la.read_autzen_laz(path)


def test_split_json_is_plain_json(folder: Path):
    record = json.loads((folder / "split.json").read_text())
    for key in ("crs", "test_area", "train_area", "val_area", "submap_radius_m",
                "positive_m", "negative_m", "source", "counts", "perturbations"):
        assert key in record
    assert record["negative_m"] == 50.0 and record["submap_radius_m"] == 20.0
