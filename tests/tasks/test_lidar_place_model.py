"""HOTFormerLoc's parts: the PyTorch octree, octree windows against ``na1d``'s own
semantics, relay tokens, the batch-independence of descriptors, the truncated Smooth-AP
loss and the PointNet baseline."""

from __future__ import annotations

import pytest
import torch

from domainvit.kernels import na1d
from domainvit.ordering import morton_code
from domainvit.tasks.lidar_place.hotformer import (
    HOTFormerLoc,
    HOTFormerLocConfig,
    PointNetConfig,
    PointNetDescriptor,
    WindowAttention,
    position_features,
)
from domainvit.tasks.lidar_place.loss import truncated_smooth_ap
from domainvit.tasks.lidar_place.octree import (
    build_leaves,
    node_centres,
    padded,
    quantise,
    window_plan,
)

TINY = HOTFormerLocConfig(depth=5, stem_downsample=1, channels=(16, 32), blocks=(2, 1),
                          heads=(2, 4), window=8, pool_tokens=(4, 2, 2), descriptor_dim=32,
                          drop_path_rate=0.0, mlp_ratio=2.0)


def clouds(batch: int, count: int, seed: int = 0, valid: int | None = None) -> torch.Tensor:
    """``[batch, count, 5]`` rows: random points within 18 m, intensity, valid flags."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.zeros(batch, count, 5)
    rows[..., :2] = (torch.rand(batch, count, 2, generator=g) * 2 - 1) * 18
    rows[..., 2] = torch.randn(batch, count, generator=g) * 3
    rows[..., 3] = torch.rand(batch, count, generator=g)
    rows[..., 4] = 1.0
    if valid is not None:
        rows[:, valid:] = 0.0
    return rows


def test_leaves_are_the_occupied_cells_in_sample_then_morton_order():
    xyz = torch.tensor([[[0.9, 0.9, 0.9], [-0.9, -0.9, -0.9], [-0.88, -0.9, -0.9]],
                        [[0.1, -0.5, 0.2], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    leaves, flat, to_leaf = build_leaves(xyz, valid, depth=3)
    cells = quantise(xyz.reshape(-1, 3)[flat], 3)
    expected = sorted({(int(b), int(morton_code(c, 3)))
                       for b, c in zip(flat // 3, cells, strict=True)})
    assert [(int(s), int(k - s * 8**3)) for s, k in zip(leaves.sample, leaves.keys,
                                                         strict=True)] == expected
    assert leaves.counts.tolist() == [2, 2]  # the two close points share a leaf
    assert to_leaf[1] == to_leaf[2]
    # centres lie in their cells
    assert torch.equal(quantise(leaves.centre, 3), quantise(node_centres(
        leaves.keys - leaves.sample * 8**3, 3, torch.float32), 3))
    parent, index = leaves.coarsen()
    assert torch.equal(parent.keys[index], leaves.keys // 8)
    assert torch.equal(parent.sample[index], leaves.sample)


@pytest.mark.parametrize("count, window, dilation", [(37, 8, 1), (37, 8, 4), (5, 8, 1),
                                                     (64, 16, 2), (9, 2, 4)])
def test_octree_windows_match_na1d_blocked_and_dilated(count, window, dilation):
    """Self-attention in the planned windows is ``na1d(kernel_size=stride=window,
    dilation)`` on the whole sequence: clamped last windows, never padding."""
    torch.manual_seed(0)
    attn = WindowAttention(16, 2).double()
    x = torch.randn(count, 16, dtype=torch.float64)
    got = attn(x, window_plan(torch.tensor([count]), window, dilation))
    q, k, v = attn.qkv(x).view(1, count, 3, 2, 8).unbind(2)
    size = min(window, -(-count // dilation))
    want = na1d(q, k, v, kernel_size=size, stride=size, dilation=dilation)
    want = attn.proj(want.reshape(count, 16))
    torch.testing.assert_close(got, want)


def test_window_plan_answers_for_every_node_once_and_keeps_samples_apart():
    counts = torch.tensor([13, 3, 8])
    plan = window_plan(counts, window=4, dilation=2)
    answered = torch.cat([g.nodes[g.own] for g in plan.groups])
    assert sorted(answered.tolist()) == list(range(int(counts.sum())))
    sample_of_node = torch.repeat_interleave(torch.arange(3), counts)
    for group in plan.groups:
        samples = sample_of_node[group.nodes]
        assert (samples == samples[:, :1]).all()
        assert torch.equal(plan.window_sample[group.window], samples[:, 0])
        # a window's own nodes answer to it
        assert (plan.node_window[group.nodes[group.own]]
                == group.window[:, None].expand_as(group.nodes)[group.own]).all()


def test_each_window_attends_to_its_own_relay_token():
    torch.manual_seed(0)
    attn = WindowAttention(8, 2).double()
    x = torch.randn(12, 8, dtype=torch.float64)
    plan = window_plan(torch.tensor([12]), window=4)
    relay = torch.randn(plan.num_windows, 8, dtype=torch.float64)
    base = attn(x, plan, relay)
    changed = relay.clone()
    changed[1] += 5.0
    moved = attn(x, plan, changed)
    in_window_1 = plan.node_window == 1
    assert not torch.allclose(base[in_window_1], moved[in_window_1])
    torch.testing.assert_close(base[~in_window_1], moved[~in_window_1])


def test_padded_keeps_each_sample_in_its_row():
    values = torch.arange(6.0)[:, None]
    out, mask = padded(values, torch.tensor([0, 0, 0, 2, 2, 2]), 3)
    assert mask.tolist() == [[True] * 3, [False] * 3, [True] * 3]
    assert out[2, :, 0].tolist() == [3.0, 4.0, 5.0]


@pytest.fixture(scope="module")
def tiny() -> HOTFormerLoc:
    torch.manual_seed(0)
    return HOTFormerLoc(TINY, extent=20.0).eval()


def test_descriptors_are_normalised_and_independent_of_the_batch_and_padding(tiny):
    rows = clouds(3, 200, valid=150)
    with torch.no_grad():
        together = tiny(rows)
        alone = tiny(rows[1:2, :150])  # the same cloud without its padding rows
    assert together.shape == (3, 32)
    torch.testing.assert_close(together.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(together[1], alone[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[0], together[1], atol=1e-3)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = HOTFormerLoc(TINY, extent=20.0)
    (model(clouds(2, 300)) @ torch.randn(32)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None
               or not torch.isfinite(p.grad).all()]
    assert not missing


def test_the_model_refuses_inconsistent_configs():
    with pytest.raises(ValueError, match="pool_tokens"):
        HOTFormerLocConfig(levels=3, pool_tokens=(8, 4))
    with pytest.raises(ValueError, match="too shallow"):
        HOTFormerLocConfig(depth=4, stem_downsample=2, levels=3, pool_tokens=(1, 1, 1))


def test_pointnet_ignores_padding_rows():
    torch.manual_seed(0)
    model = PointNetDescriptor(PointNetConfig(descriptor_dim=16), extent=20.0).eval()
    rows = clouds(1, 100, valid=60)
    with torch.no_grad():
        torch.testing.assert_close(model(rows), model(rows[:, :60]))


def test_smooth_ap_is_low_when_neighbours_rank_first_and_high_when_not():
    positions = torch.tensor([[0.0, 0.0], [5.0, 0.0], [100.0, 0.0], [105.0, 0.0]])
    right = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]]), dim=1)
    wrong = right[[0, 2, 1, 3]]
    good = truncated_smooth_ap(right, positions)
    bad = truncated_smooth_ap(wrong, positions)
    assert good < 0.01 and bad > 0.4
    descriptors = wrong.clone().requires_grad_(True)
    truncated_smooth_ap(descriptors, positions).backward()
    assert torch.isfinite(descriptors.grad).all() and descriptors.grad.abs().sum() > 0


def test_smooth_ap_ignores_clouds_between_the_thresholds():
    positions = torch.tensor([[0.0, 0.0], [10.0, 0.0], [40.0, 0.0], [200.0, 0.0]])
    d = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0], [0.9, 0.3], [1.0, 0.01], [0.0, 1.0]]), dim=1)
    # cloud 2 (40 m away) is neither positive nor negative: its similarity does not count
    assert truncated_smooth_ap(d, positions) < 0.01


def test_cylindrical_positions_are_range_azimuth_over_pi_and_height():
    centre = torch.tensor([[0.0, 0.5, 0.2], [-0.3, 0.0, -0.1]])
    cyl = position_features(centre, "cylindrical")
    torch.testing.assert_close(cyl, torch.tensor([[0.5, 0.5, 0.2], [0.3, 1.0, -0.1]]))
    assert torch.equal(position_features(centre, "cartesian"), centre)
    torch.manual_seed(0)
    model = HOTFormerLoc(TINY.model_copy(update={"coordinates": "cylindrical"}), extent=20.0)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(clouds(2, 200))).all()
