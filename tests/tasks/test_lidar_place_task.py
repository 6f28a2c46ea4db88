"""The lidar_place task end to end with a tiny model: training on the sample benchmark,
``eval --set data.root=`` on a place folder of one's own, ``predict`` with the database
cache, the training-distribution check, and bad inputs through the CLI (one line, nothing
written)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from domainvit import checkpoint as ckpt
from domainvit.datasets.pointcloud import PointCloud, read_place_folder, read_point_cloud
from domainvit.datasets.registry import prepare
from domainvit.distribution import InputGuard
from domainvit.engine import train
from domainvit.registry import load_tasks
from domainvit.tasks.lidar_place.distribution import compare_cloud
from domainvit.tasks.lidar_place.predict import CACHE_NAME, describe_database, predict_clouds
from tests.conftest import load_trained, run_cli

TINY_MODEL = {"name": "hotformerloc", "depth": 5, "stem_downsample": 1, "channels": [16, 32],
              "blocks": [1, 1], "heads": [2, 4], "window": 16, "pool_tokens": [4, 2, 2],
              "descriptor_dim": 32, "mlp_ratio": 2.0, "drop_path_rate": 0.0}


@pytest.fixture(scope="module")
def benchmark() -> Path:
    load_tasks()
    return prepare("lidar-autzen")


@pytest.fixture(scope="module")
def place_root(benchmark, tmp_path_factory) -> Path:
    """A place folder of one's own: 12 database clouds and 6 queries of the held-out
    area, with .npy queries (another format than the database's .bin)."""
    source = read_place_folder(benchmark / "test")
    root = tmp_path_factory.mktemp("places")
    (root / "database").mkdir()
    (root / "queries").mkdir()
    rows = []
    for entry in source.database[:12]:
        shutil.copyfile(entry.path, root / "database" / entry.path.name)
        rows.append(["database", entry.path.name, *entry.position])
    for entry in source.queries[:6]:
        cloud = read_point_cloud(entry.path)
        name = entry.path.with_suffix(".npy").name
        np.save(root / "queries" / name, np.column_stack([cloud.xyz, cloud.intensity]))
        rows.append(["query", name, *entry.position])
    with open(root / "poses.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "file", "x", "y", "z"])
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def trained(benchmark, tmp_path_factory) -> tuple[Path, Path]:
    """(config, checkpoint) of a tiny model after a few steps on the sample benchmark."""
    tmp = tmp_path_factory.mktemp("lidar_run")
    cfg = {"task": "lidar_place", "seed": 0, "run_dir": str(tmp / "run"),
           "model": TINY_MODEL,
           "data": {"dataset": "lidar-autzen", "points": 512, "views": 2,
                    "samples_per_epoch": 8},
           "train": {"epochs": 1, "batch_size": 4, "log_every": 1, "val_every": 1}}
    path = tmp / "lidar.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = train(str(path))
    return path, ckpt.resolve_checkpoint(run)


def _model(trained):
    return load_trained("lidar_place", *trained)


@pytest.fixture(scope="module")
def evaluated(trained, place_root) -> dict[int, dict]:
    """``eval --set data.root=`` on the place folder, by ``data.rerank_top_k`` (0: the
    descriptor ranking; 5: the default re-ranking)."""
    config, checkpoint = trained
    scores = {}
    for k in (0, 5):
        done = run_cli("eval", str(config), "--checkpoint", str(checkpoint), "--set",
                       f"data.root={place_root}", "--set", f"data.rerank_top_k={k}", "--json")
        assert done.returncode == 0, done.stderr
        scores[k] = json.loads(done.stdout)
    return scores


@pytest.mark.parametrize("rerank_top_k", [0, 5])
def test_eval_scores_a_place_folder_of_ones_own(evaluated, rerank_top_k):
    scores = evaluated[rerank_top_k]
    assert scores["queries"] + scores["queries_without_positive"] == 6
    assert 0.0 <= scores["recall_at_1"] <= scores["mrr"] + 1e-9
    assert scores["mrr"] <= 1.0 + 1e-9
    assert len(scores["recall_at_n"]) == 25
    assert all(a <= b + 1e-12 for a, b in zip(scores["recall_at_n"],
                                              scores["recall_at_n"][1:], strict=False))


def test_eval_re_ranking_reorders_only_the_first_matches(evaluated):
    """``data.rerank_top_k=5`` re-orders each query's first five matches: recall@N from
    N = 5 on is the descriptor ranking's."""
    assert evaluated[5]["recall_at_n"][4:] == pytest.approx(evaluated[0]["recall_at_n"][4:])
    assert evaluated[5]["queries"] == evaluated[0]["queries"]


def test_predict_with_re_ranking_reports_the_alignment(trained, place_root, tmp_path):
    model, cfg, meta = _model(trained)
    data = cfg.data.model_copy(update={"database": place_root, "top_k": 8,
                                       "rerank_top_k": 5})
    query = sorted((place_root / "queries").iterdir())[1]
    predict_clouds(model, data, [query], tmp_path, InputGuard.from_meta(meta))
    with open(tmp_path / f"{query.stem}.matches.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    for row in rows[:5]:
        assert -1.0 <= float(row["geometric_score"]) <= 1.0
        assert 0.0 <= float(row["yaw_deg"]) < 360.0
        assert abs(float(row["offset_x_m"])) <= 2 * 1.5 * data.radius
    assert all(row["geometric_score"] == "" for row in rows[5:])
    # the first five are the descriptor's first five, re-ordered; the rest keep their order
    distances = [float(r["descriptor_distance"]) for r in rows]
    assert max(distances[:5]) <= min(distances[5:]) + 1e-9
    assert distances[5:] == sorted(distances[5:])
    sidecar = json.loads((tmp_path / f"{query.stem}.prediction.json").read_text())
    assert sidecar["reranked"] == 5
    assert sidecar["best_match"]["file"] == rows[0]["file"]
    assert sidecar["best_match"]["geometric_score"] == pytest.approx(
        float(rows[0]["geometric_score"]), abs=1e-4)


def test_predict_writes_descriptor_and_matches_and_caches_the_database(trained, place_root,
                                                                     tmp_path):
    model, cfg, meta = _model(trained)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={
        "database": place_root, "top_k": 5, "rerank_top_k": 0})})  # descriptor order
    query = sorted((place_root / "queries").iterdir())[0]
    guard = InputGuard.from_meta(meta)
    written = predict_clouds(model, cfg.data, [query], tmp_path, guard)
    names = sorted(p.name for p in written)
    stem = query.stem
    assert names == sorted([f"{stem}.descriptor.npy", f"{stem}.matches.csv",
                            f"{stem}.prediction.json"])
    descriptor = np.load(tmp_path / f"{stem}.descriptor.npy")
    assert descriptor.shape == (32,) and abs(np.linalg.norm(descriptor) - 1) < 1e-5
    with open(tmp_path / f"{stem}.matches.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    distances = [float(r["descriptor_distance"]) for r in rows]
    assert distances == sorted(distances)
    # the query's pose is known (its place folder lists it): metres are filled in
    position = next(e.position for e in read_place_folder(place_root).queries
                    if e.path.name == query.name)
    first = rows[0]
    assert float(first["metres"]) == pytest.approx(
        np.hypot(float(first["x"]) - position[0], float(first["y"]) - position[1]), abs=0.01)
    sidecar = json.loads((tmp_path / f"{stem}.prediction.json").read_text())
    assert sidecar["input_check"]["outcome"] in ("ok", "warn")
    # the cache: every descriptor reused, then one file changed and only it recomputed
    assert (place_root / CACHE_NAME).is_file()
    again = describe_database(model, cfg.data, place_root, progress=False)
    assert again.cached == 12
    changed = sorted((place_root / "database").iterdir())[0]
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls = []
    third = describe_database(model, cfg.data, place_root,
                              progress=lambda done, total: calls.append((done, total)))
    assert third.cached == 11 and calls == [(1, 1)]  # only the changed file is read
    np.testing.assert_allclose(third.descriptors, again.descriptors, atol=1e-5)


def test_the_distribution_check(trained, place_root):
    _, _, meta = _model(trained)
    reference = meta["data_info"]["distribution"]
    query = read_point_cloud(sorted((place_root / "queries").iterdir())[0])
    assert compare_cloud(reference, query, 512) == []
    # a cloud of 3 m: coverage; no intensity: intensity; very few points: density
    small = PointCloud(query.xyz[np.hypot(*(query.xyz[:, :2] - query.xyz[:, :2].mean(0)).T)
                                 < 3.0], None, "small")
    aspects = [f.aspect for f in compare_cloud(reference, small, 40)]
    assert aspects == ["coverage", "density", "intensity"]
    assert all(f.level == "warn" for f in compare_cloud(reference, small, 40))
    # longitude/latitude degrees: refused
    degrees = PointCloud(np.column_stack([-123.07 + query.xyz[:, 0] * 1e-5,
                                          44.05 + query.xyz[:, 1] * 1e-5, query.xyz[:, 2]]),
                         query.intensity, "degrees")
    found = compare_cloud(reference, degrees, 512)
    assert found[0].level == "refuse" and found[0].aspect == "units"
    # a survey tile ten times wider than a submap: only its centre is described
    wide = PointCloud(query.xyz * np.array([10.0, 10.0, 1.0]), query.intensity, "wide")
    assert "coverage" in [f.aspect for f in compare_cloud(reference, wide, 512)]
    # a ground scanner's tall scene: heights spread far beyond the aerial training data
    tall = PointCloud(query.xyz * np.array([1.0, 1.0, 40.0]), query.intensity, "tall")
    assert [f.aspect for f in compare_cloud(reference, tall, 512)] == ["height"]


BAD_INPUTS = {
    "empty.npy": lambda p: np.save(p, np.zeros((0, 3))),
    "nan.npy": lambda p: np.save(p, np.array([[0.0, 0, 0], [np.nan, 1, 1], [2, 2, 2]])),
    "single.npy": lambda p: np.save(p, np.array([[1.0, 2.0, 3.0]])),
    "odd.bin": lambda p: p.write_bytes(b"\x00" * 17),
    "same_voxel.npy": lambda p: np.save(p, np.full((50, 3), 7.0) + np.arange(50)[:, None]
                                        * 1e-4),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_query_files_are_one_line_and_write_nothing(trained, place_root, tmp_path, name):
    config, checkpoint = trained
    path = tmp_path / name
    BAD_INPUTS[name](path)
    out = tmp_path / "out"
    args = ["predict", str(config), "--checkpoint", str(checkpoint), str(path), "--out",
            str(out), "--set", f"data.database={place_root}"]
    if name == "same_voxel.npy":
        args += ["--set", "data.voxel=1.0"]
    done = run_cli(*args)
    assert done.returncode != 0
    lines = [line for line in done.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("domainvit: error:"), done.stderr
    assert name in lines[0]
    assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_database_whose_poses_name_missing_files_is_one_line(trained, place_root,
                                                                 tmp_path):
    config, checkpoint = trained
    broken = tmp_path / "broken"
    shutil.copytree(place_root, broken)
    victim = sorted((broken / "database").iterdir())[0]
    victim.unlink()
    query = sorted((place_root / "queries").iterdir())[0]
    out = tmp_path / "out"
    done = run_cli("predict", str(config), "--checkpoint", str(checkpoint), str(query),
                   "--out", str(out), "--set", f"data.database={broken}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert victim.name in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())
