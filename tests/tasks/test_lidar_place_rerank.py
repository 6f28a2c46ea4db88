"""Geometric re-ranking of place matches: height-map alignment recovers a known yaw and
offset, tells the same place from another, the fused order follows its rule, and the
evaluation metric re-ranks with the clouds' files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from domainvit.tasks.lidar_place.data import LidarPlaceData
from domainvit.tasks.lidar_place.metrics import PlaceRecallMetrics
from domainvit.tasks.lidar_place.rerank import (
    CloudReranker,
    HeightMapMatcher,
    fused_order,
)


def _world(seed: int, extent: float = 80.0) -> np.ndarray:
    """A synthetic aerial survey: flat ground with boxes of random sizes and heights."""
    rng = np.random.default_rng(seed)
    parts = [np.column_stack([rng.uniform(-extent, extent, (40_000, 2)),
                              rng.normal(0.0, 0.05, 40_000)])]
    for _ in range(60):
        cx, cy = rng.uniform(-extent, extent, 2)
        w, d = rng.uniform(3, 12, 2)
        n = 300
        parts.append(np.column_stack([rng.uniform(cx - w / 2, cx + w / 2, n),
                                      rng.uniform(cy - d / 2, cy + d / 2, n),
                                      np.full(n, rng.uniform(3, 15))]))
    return np.concatenate(parts)


def _cut(world: np.ndarray, centre: tuple[float, float], radius: float = 20.0,
         yaw_deg: float = 0.0, keep: float = 1.0, seed: int = 0) -> np.ndarray:
    """The points within ``radius`` of ``centre``, in a frame centred there, rotated by
    ``-yaw_deg`` (so that rotating them by ``yaw_deg`` restores the world's axes)."""
    local = world - np.array([centre[0], centre[1], 0.0])
    local = local[np.hypot(local[:, 0], local[:, 1]) <= radius]
    local = local[np.random.default_rng(seed).random(len(local)) < keep]
    a = np.deg2rad(-yaw_deg)
    c, s = np.cos(a), np.sin(a)
    return np.column_stack([c * local[:, 0] - s * local[:, 1],
                            s * local[:, 0] + c * local[:, 1], local[:, 2]])


@pytest.mark.parametrize("yaw, offset", [(40.0, (6.0, -4.0)), (215.0, (-3.0, 8.0))])
def test_alignment_recovers_the_yaw_and_offset_of_the_query(yaw, offset):
    world = _world(0)
    matcher = HeightMapMatcher(30.0, cell_m=1.0, yaw_step_deg=5.0)
    candidate = _cut(world, (0.0, 0.0))
    query = _cut(world, offset, yaw_deg=yaw, keep=0.5, seed=1)
    found = matcher.align(matcher.query_spectra(query), candidate)
    assert found.yaw_deg == pytest.approx(yaw)
    assert found.offset_xy == pytest.approx(offset, abs=1.0)
    assert 0.5 < found.overlap <= 1.0
    assert found.score > 0.5


def test_the_same_place_scores_above_another_place():
    world = _world(0)
    matcher = HeightMapMatcher(30.0)
    query = matcher.query_spectra(_cut(world, (4.0, 3.0), yaw_deg=123.0, keep=0.4, seed=2))
    same = matcher.align(query, _cut(world, (0.0, 0.0)))
    elsewhere = [matcher.align(query, _cut(world, centre)) for centre in
                 ((55.0, 0.0), (-50.0, 40.0), (0.0, -55.0))]
    assert all(same.score > other.score + 0.1 for other in elsewhere), \
        (same.score, [o.score for o in elsewhere])


def test_height_maps_keep_the_highest_point_of_a_cell_above_the_base():
    matcher = HeightMapMatcher(2.0, cell_m=1.0)
    xyz = np.array([[0.2, 0.2, 10.0], [0.3, 0.4, 13.0], [-1.5, -1.5, 10.0], [5.0, 0.0, 50.0]])
    heights, occupied = matcher.height_map(xyz)
    assert occupied.sum() == 2  # the point 5 m out is off the grid
    assert heights.max() == pytest.approx(13.0 - np.percentile(xyz[:, 2], 2.0))
    rotated, rotated_occupied = matcher.height_maps(xyz, [0.0, 90.0, 180.0])
    assert rotated.shape == (3, matcher.cells, matcher.cells)
    np.testing.assert_array_equal(rotated_occupied[0], occupied)
    # 180 degrees takes the cell of (0.2, 0.2) to that of (-0.2, -0.2)
    assert rotated[2].max() == pytest.approx(heights.max())
    assert not np.array_equal(rotated_occupied[2], occupied)


def test_fused_order_sums_descriptor_and_geometric_ranks():
    # descriptor order 7, 3, 9 (then 1, not re-ranked); geometric ranks 2, 0, 1
    assert fused_order(np.array([7, 3, 9, 1]), np.array([0.1, 0.9, 0.5])).tolist() == \
        [3, 7, 9, 1]
    # a tie of the sums goes to the better geometric rank
    assert fused_order(np.array([4, 8]), np.array([0.2, 0.6])).tolist() == [8, 4]
    # geometry that agrees with the descriptors changes nothing
    assert fused_order(np.array([5, 6, 2]), np.array([0.9, 0.5, 0.1])).tolist() == [5, 6, 2]


def test_the_metric_re_ranks_with_the_clouds_files(tmp_path):
    """Descriptors that put another place first: the descriptor ranking misses, the
    re-ranked one finds the place; re-ranking without the files is refused."""
    world = _world(3)
    files = {"a": _cut(world, (0.0, 0.0)), "b": _cut(world, (60.0, 0.0)),
             "q": _cut(world, (3.0, -2.0), yaw_deg=75.0, keep=0.5, seed=4)}
    for name, xyz in files.items():
        np.save(tmp_path / f"{name}.npy", xyz)
    positions = {"a": (0.0, 0.0), "b": (60.0, 0.0), "q": (3.0, -2.0)}
    descriptors = {"a": [0.0, 1.0], "b": [1.0, 0.0], "q": [1.0, 0.0]}
    names = ["a", "b", "q"]
    outputs = torch.tensor([descriptors[n] for n in names])
    target = torch.tensor([[*positions[n], 0.0, float(n == "q")] for n in names])
    paths = [str(tmp_path / f"{n}.npy") for n in names]

    plain = PlaceRecallMetrics(max_n=2)
    plain.update(outputs, target, paths, ["kitti"] * 3)
    assert plain.compute()["recall_at_1"].item() == 0.0

    reranker = CloudReranker(LidarPlaceData(rerank_top_k=2))
    reranked = PlaceRecallMetrics(max_n=2, reranker=reranker)
    reranked.update(outputs, target, paths, ["kitti"] * 3)
    scores = reranked.compute()
    assert scores["recall_at_1"].item() == 1.0
    assert scores["recall_at_n"][1].item() == 1.0
    # the database clouds are kept for the next queries, the query is not
    assert sorted(Path(path).stem for path, _ in reranker._points) == ["a", "b"]

    without_files = PlaceRecallMetrics(max_n=2, reranker=reranker)
    without_files.update(outputs, target)
    with pytest.raises(ValueError, match="no paths"):
        without_files.compute()
