"""The attention modules of the core (domainvit.attention) and build_attention.

Most modules are checked against a dense, obviously-correct computation built here
from the module's own weights, in float64; the locality claims (which tokens a query
can see) are checked through the exact zero pattern of input gradients.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from domainvit.attention import (
    ATTENTION_KINDS,
    ChannelAttention,
    GlobalLocalAttention,
    HaloAttention,
    LinearAttention,
    MultiAxisAttention,
    NeighborhoodAttention,
    PartitionAttention,
    ShiftedWindowAttention,
    SpatialReductionAttention,
    build_attention,
)
from domainvit.kernels import na1d, na2d, na3d

NA_OPS = {1: na1d, 2: na2d, 3: na3d}

# Options for every kind that work on the small inputs below (1D, 2D and 3D).
KIND_OPTIONS = {
    "neighborhood": {"kernel_size": 3, "dilation": 1},
    "swin": {"window_size": 3, "shift": True},
    "maxvit": {"block_size": 2},
    "halo": {"block_size": 2, "halo_size": 1},
    "global_local": {"kernel_size": 3, "pool_ratio": 2, "num_relay_tokens": 2},
    "spatial_reduction": {"sr_ratio": 2},
    "channel": {},
    "linear": {},
}
# Sizes deliberately not multiples of the windows and blocks above.
SHAPES = {1: (2, 11, 16), 2: (2, 7, 5, 16), 3: (1, 5, 4, 7, 16)}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def token_coords(spatial: tuple[int, ...]) -> torch.Tensor:
    """Row-major integer coordinates ``[N, ndim]`` of every token of a map."""
    axes = [torch.arange(length) for length in spatial]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(spatial))


def dense_attention(module, x, allowed, bias=None):
    """Softmax attention over all tokens of ``x`` with ``module.qkv``/``module.proj``,
    restricted to ``allowed`` ``[N, N]`` and with ``bias`` ``[heads, N, N]`` added."""
    heads = module.num_heads
    tokens = x.flatten(1, -2)
    query, key, value = (t.unflatten(-1, (heads, -1)) for t in module.qkv(tokens).chunk(3, dim=-1))
    logits = torch.einsum("bqhd,bkhd->bhqk", query, key) / math.sqrt(query.shape[-1])
    if bias is not None:
        logits = logits + bias
    weights = logits.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    out = torch.einsum("bhqk,bkhd->bqhd", weights, value).flatten(-2)
    return module.proj(out).reshape(x.shape)


def partition_reference(module: PartitionAttention, x: torch.Tensor) -> torch.Tensor:
    """Swin / MaxViT partition attention written as dense masked attention over the real
    tokens: which pairs may attend is derived from positions, not from the partitioning."""
    spatial = tuple(x.shape[1:-1])
    coords = token_coords(spatial)
    allowed = torch.ones(len(coords), len(coords), dtype=torch.bool)
    index = torch.zeros(len(coords), len(coords), dtype=torch.long)
    for axis, (length, size) in enumerate(zip(spatial, module.partition_size, strict=True)):
        padded = math.ceil(length / size) * size
        position = coords[:, axis]
        if module.grid:
            stride = padded // size
            window, in_window = position % stride, position // stride
            same = window[:, None] == window[None, :]
        else:
            shift = size // 2 if module.shift and padded > size else 0
            shifted = (position - shift) % padded
            window, in_window = shifted // size, shifted % size
            # same window after the roll, and not brought together by the wrap-around
            near = (position[:, None] - position[None, :]).abs() < size
            same = (window[:, None] == window[None, :]) & near
        allowed &= same
        index = index * (2 * size - 1) + (in_window[None, :] - in_window[:, None] + size - 1)
    return dense_attention(module, x, allowed, module.relative_position_bias.table[:, index])


def halo_reference(module: HaloAttention, x: torch.Tensor) -> torch.Tensor:
    """Halo attention as dense masked attention over the real tokens only."""
    spatial = tuple(x.shape[1:-1])
    coords = token_coords(spatial)
    allowed = torch.ones(len(coords), len(coords), dtype=torch.bool)
    index = torch.zeros(len(coords), len(coords), dtype=torch.long)
    for axis, (block, halo) in enumerate(zip(module.block_size, module.halo_size, strict=True)):
        position = coords[:, axis]
        start = position // block * block
        first, last = start - halo, start + block + halo - 1
        allowed &= (position[None, :] >= first[:, None]) & (position[None, :] <= last[:, None])
        in_block = position - start
        in_window = position[None, :] - first[:, None]
        extent = 2 * block + 2 * halo - 1
        offset = (in_window - in_block[:, None] + block - 1).clamp(0, extent - 1)  # masked if out
        index = index * extent + offset
    return dense_attention(module, x, allowed, module.relative_position_bias.table[:, index])


def receptive_field(module, x: torch.Tensor, query: tuple[int, ...]) -> torch.Tensor:
    """Boolean map of the input tokens the output at ``query`` depends on (exact zeros of
    the input gradient: masked attention weights are exactly zero)."""
    x = x.clone().requires_grad_(True)
    out = module(x)
    (out[(0, *query)] * torch.randn(out.shape[-1], dtype=x.dtype)).sum().backward()
    return x.grad[0].abs().sum(-1) > 0


def box(spatial, lows, highs) -> torch.Tensor:
    """Boolean map that is True on ``lows[a] <= index < highs[a]`` along every axis."""
    mask = torch.zeros(spatial, dtype=torch.bool)
    mask[tuple(slice(max(low, 0), high) for low, high in zip(lows, highs, strict=True))] = True
    return mask


# -- every kind ------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
def test_every_kind_keeps_the_channels_last_shape(kind, ndim):
    module = build_attention(kind, 16, 4, ndim, **KIND_OPTIONS[kind])
    x = torch.randn(SHAPES[ndim])
    out = module(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
def test_every_parameter_receives_a_gradient(kind):
    module = build_attention(kind, 16, 4, 2, **KIND_OPTIONS[kind])
    out = module(torch.randn(SHAPES[2]))
    (out * torch.randn_like(out)).sum().backward()
    params = dict(module.named_parameters())
    assert params
    no_grad = [name for name, param in params.items() if param.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    assert all(torch.isfinite(param.grad).all() for param in params.values())


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
def test_every_kind_runs_under_bfloat16_autocast(kind, ndim):
    module = build_attention(kind, 16, 4, ndim, **KIND_OPTIONS[kind])
    x = torch.randn(SHAPES[ndim])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x)
    out.float().sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(param.grad).all() for param in module.parameters())


@pytest.mark.parametrize("kind", [k for k in ATTENTION_KINDS if k not in ("channel", "linear")])
def test_spatial_kinds_reject_tokens_of_another_rank_or_width(kind):
    module = build_attention(kind, 16, 4, 2, **KIND_OPTIONS[kind])
    with pytest.raises(ValueError, match=r"expects channels-last tokens \[B, X, Y, 16\]"):
        module(torch.randn(1, 6, 6, 6, 16))
    with pytest.raises(ValueError, match="got shape"):
        module(torch.randn(1, 6, 6, 8))


# -- build_attention -------------------------------------------------------------------


def test_build_attention_names_the_kinds_when_the_kind_is_unknown():
    with pytest.raises(ValueError, match="unknown attention kind 'dense'") as error:
        build_attention("dense", 16, 4, 2)
    for kind in ATTENTION_KINDS:
        assert kind in str(error.value)


def test_build_attention_rejects_options_the_kind_does_not_take():
    with pytest.raises(ValueError, match="'swin'.*does not take option.*kernel_size"):
        build_attention("swin", 16, 4, 2, kernel_size=7)
    with pytest.raises(ValueError, match="'halo'.*needs option.*halo_size"):
        build_attention("halo", 16, 4, 2, block_size=4)


def test_build_attention_expands_int_sizes_to_ndim_axes():
    assert build_attention("neighborhood", 16, 4, 3, kernel_size=3).kernel_size == (3, 3, 3)
    assert build_attention("swin", 16, 4, 1, window_size=4).partition_size == (4,)
    maxvit = build_attention("maxvit", 16, 4, 3, block_size=2)
    assert maxvit.grid_attention.partition_size == (2, 2, 2)
    global_local = build_attention("global_local", 16, 4, 1, kernel_size=3, pool_ratio=2)
    assert global_local.pool_ratio == (2,)
    assert build_attention("spatial_reduction", 16, 4, 3, sr_ratio=2).reduction.stride == (2,) * 3


def test_build_attention_rejects_a_size_tuple_of_another_length_than_ndim():
    with pytest.raises(ValueError, match="block_size has 2 values but the module is 3D"):
        build_attention("halo", 16, 4, 3, block_size=(2, 2), halo_size=1)


def test_num_heads_must_divide_dim():
    with pytest.raises(ValueError, match="num_heads=5 must divide dim=16"):
        build_attention("linear", 16, 5, 2)


# -- neighbourhood attention -----------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((2, 13, 16), {"kernel_size": 5, "stride": 2, "is_causal": True, "ndim": 1}),
        ((2, 9, 8, 16), {"kernel_size": 3, "dilation": (2, 1), "kv_heads": 2}),
        ((1, 5, 6, 4, 16), {"kernel_size": (3, 3, 2), "stride": (1, 3, 2)}),
    ],
)
def test_neighborhood_attention_is_projections_around_the_reference_op(shape, options):
    module = NeighborhoodAttention(16, 4, **options).double()
    x = torch.randn(shape, dtype=torch.float64)
    kv_heads = options.get("kv_heads", 4)
    weight, bias = module.qkv.weight, module.qkv.bias
    query, key, value = F.linear(x, weight, bias).split([16, 4 * kv_heads, 4 * kv_heads], -1)
    out = NA_OPS[len(shape) - 2](
        query.unflatten(-1, (4, 4)),
        key.unflatten(-1, (kv_heads, 4)),
        value.unflatten(-1, (kv_heads, 4)),
        options["kernel_size"],
        stride=options.get("stride", 1),
        dilation=options.get("dilation", 1),
        is_causal=options.get("is_causal", False),
        rpb=module.rpb,
        backend="reference",
    )
    expected = module.proj(out.flatten(-2))
    torch.testing.assert_close(module(x), expected)


def test_neighborhood_attention_without_rpb_has_no_bias_parameter():
    module = NeighborhoodAttention(16, 4, kernel_size=3, rpb=False)
    assert module.rpb is None
    assert "rpb" not in dict(module.named_parameters())


def test_neighborhood_attention_refuses_attention_dropout_it_cannot_apply():
    with pytest.raises(ValueError, match="attn_drop=0.1 is not supported"):
        NeighborhoodAttention(16, 4, kernel_size=3, attn_drop=0.1)


def test_neighborhood_attention_query_sees_only_its_window():
    module = NeighborhoodAttention(8, 2, kernel_size=3).double()
    field = receptive_field(module, torch.randn(1, 9, 9, 8, dtype=torch.float64), (4, 0))
    assert torch.equal(field, box((9, 9), (3, 0), (6, 3)))  # clamped at the left border


# -- Swin and MaxViT partitions --------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "window", "shift"),
    [
        ((2, 8, 8, 16), 4, False),
        ((2, 8, 8, 16), 4, True),
        ((2, 7, 6, 16), 4, True),  # padded and shifted
        ((1, 5, 9, 16), (4, 3), True),  # one window along axis 0: no shift there
        ((1, 5, 6, 7, 16), (2, 4, 3), True),
        ((2, 11, 16), 4, True),
    ],
)
def test_shifted_window_attention_matches_dense_masked_attention(shape, window, shift):
    module = ShiftedWindowAttention(16, 4, window, shift=shift, ndim=len(shape) - 2).double()
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(module(x), partition_reference(module, x))


def test_shifted_windows_keep_regions_brought_together_by_the_roll_apart():
    module = ShiftedWindowAttention(8, 2, window_size=4, shift=True).double()
    x = torch.randn(1, 8, 8, 8, dtype=torch.float64)
    # After rolling by 2, token (0, 0) shares a window with rows/cols {6, 7, 0, 1}, but
    # only rows/cols {0, 1} are its neighbours in the image.
    field = receptive_field(module, x, (0, 0))
    assert torch.equal(field, box((8, 8), (0, 0), (2, 2)))
    out = module(x)
    for token, same_region in (((7, 7), False), ((0, 7), False), ((1, 1), True)):
        perturbed = x.clone()
        perturbed[(0, *token)] += 1.0
        changed = not torch.equal(module(perturbed)[0, 0, 0], out[0, 0, 0])
        assert changed == same_region, token


def test_unshifted_windows_are_independent():
    module = ShiftedWindowAttention(8, 2, window_size=(4, 2), shift=False).double()
    x = torch.randn(1, 8, 6, 8, dtype=torch.float64)
    for query in [(0, 0), (5, 3), (7, 5)]:
        low = (query[0] // 4 * 4, query[1] // 2 * 2)
        expected = box((8, 6), low, (low[0] + 4, low[1] + 2))
        assert torch.equal(receptive_field(module, x, query), expected)


def test_padding_is_masked_out_not_attended():
    # With 7 tokens and windows of 4, the second window holds 3 real tokens and one pad.
    module = ShiftedWindowAttention(8, 2, window_size=4, ndim=1).double()
    x = torch.randn(1, 7, 8, dtype=torch.float64)
    allowed = (torch.arange(7)[:, None] // 4) == (torch.arange(7)[None, :] // 4)
    bias_index = torch.arange(7)[None, :] % 4 - torch.arange(7)[:, None] % 4 + 3
    expected = dense_attention(
        module, x, allowed, module.relative_position_bias.table[:, bias_index]
    )
    torch.testing.assert_close(module(x), expected)


@pytest.mark.parametrize(("shape", "grid"), [((2, 8, 8, 16), 2), ((1, 7, 9, 16), (2, 3))])
def test_grid_attention_matches_dense_attention_on_a_strided_grid(shape, grid):
    module = PartitionAttention(16, 4, grid, grid=True).double()
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(module(x), partition_reference(module, x))


def test_grid_attention_mixes_tokens_strided_across_the_whole_map():
    module = PartitionAttention(8, 2, 2, grid=True).double()
    field = receptive_field(module, torch.randn(1, 8, 8, 8, dtype=torch.float64), (1, 2))
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[1::4, 2::4] = True
    assert torch.equal(field, expected)


def test_multi_axis_attention_reaches_every_token_but_its_block_part_does_not():
    module = MultiAxisAttention(8, 2, block_size=4, grid_size=2).double()
    x = torch.randn(1, 8, 8, 8, dtype=torch.float64)
    assert receptive_field(module, x, (1, 2)).all()
    block_only = receptive_field(module.block_attention, x, (1, 2))
    assert torch.equal(block_only, box((8, 8), (0, 0), (4, 4)))


def test_shift_is_for_block_partitions_only():
    with pytest.raises(ValueError, match="shift applies to block partitions only"):
        PartitionAttention(16, 4, 4, grid=True, shift=True)


# -- halo attention --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "block", "halo"),
    [
        ((2, 8, 8, 16), 4, 1),
        ((2, 7, 10, 16), (3, 4), (2, 1)),  # padded to whole blocks
        ((1, 13, 16), 4, 3),
        ((1, 4, 5, 6, 16), 2, 1),
        ((1, 6, 6, 16), 3, 0),
    ],
)
def test_halo_attention_matches_dense_attention_over_real_tokens(shape, block, halo):
    # The reference has no padding at all, so this also shows that the zero-padded halo
    # at the borders and the padding to whole blocks have no effect.
    module = HaloAttention(16, 4, block, halo, ndim=len(shape) - 2).double()
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(module(x), halo_reference(module, x))


def test_halo_query_sees_only_its_block_and_halo():
    module = HaloAttention(8, 2, block_size=3, halo_size=1).double()
    x = torch.randn(1, 9, 9, 8, dtype=torch.float64)
    for query in [(0, 0), (4, 5), (8, 3)]:
        low = tuple(index // 3 * 3 - 1 for index in query)
        expected = box((9, 9), low, tuple(start + 5 for start in low))
        assert torch.equal(receptive_field(module, x, query), expected)


# -- global-local attention ------------------------------------------------------------


def _far_token_changes_output(module) -> bool:
    x = torch.randn(1, 12, 12, 16, dtype=torch.float64)
    perturbed = x.clone()
    perturbed[0, 11, 11] += 1.0
    return not torch.equal(module(x)[0, 0, 0], module(perturbed)[0, 0, 0])


def test_far_token_reaches_a_query_only_through_global_tokens():
    local = NeighborhoodAttention(16, 4, kernel_size=3).double()
    pooled = GlobalLocalAttention(16, 4, kernel_size=3, pool_ratio=4).double()
    relays = GlobalLocalAttention(16, 4, kernel_size=3, num_relay_tokens=2).double()
    assert not _far_token_changes_output(local)
    assert _far_token_changes_output(pooled)
    assert _far_token_changes_output(relays)


def test_pooled_tokens_are_the_average_keys_and_values_of_each_patch():
    module = GlobalLocalAttention(16, 4, kernel_size=3, pool_ratio=4, kv_heads=2).double()
    x = torch.randn(2, 8, 12, 16, dtype=torch.float64)
    query, key, value = module.qkv(x).split([16, 8, 8], dim=-1)

    def pool(t):  # [B, 8, 12, 8] -> [B, 2 * 3, kv_heads, head_dim]
        return t.reshape(2, 2, 4, 3, 4, 8).mean(dim=(2, 4)).reshape(2, 6, 2, 4)

    out = na2d(
        query.unflatten(-1, (4, 4)),
        key.unflatten(-1, (2, 4)),
        value.unflatten(-1, (2, 4)),
        3,
        rpb=module.rpb,
        additional_keys=pool(key),
        additional_values=pool(value),
        backend="reference",
    )
    torch.testing.assert_close(module(x), module.proj(out.flatten(-2)))


def test_global_local_attention_needs_global_tokens():
    with pytest.raises(ValueError, match="set pool_ratio and/or num_relay_tokens"):
        GlobalLocalAttention(16, 4, kernel_size=3)


def test_relay_tokens_are_internal_and_not_returned():
    module = GlobalLocalAttention(16, 4, kernel_size=3, num_relay_tokens=3, ndim=1)
    x = torch.randn(2, 10, 16)
    assert module(x).shape == x.shape
    assert module.relay_tokens.shape == (3, 16)


# -- spatial-reduction, linear and channel attention -----------------------------------


@pytest.mark.parametrize(
    ("shape", "ratio"), [((2, 8, 6, 16), 2), ((1, 9, 16), 3), ((1, 4, 4, 4, 16), 1)]
)
def test_spatial_reduction_attention_matches_dense_attention_on_the_reduced_map(shape, ratio):
    ndim = len(shape) - 2
    module = SpatialReductionAttention(16, 4, sr_ratio=ratio, ndim=ndim).double()
    x = torch.randn(shape, dtype=torch.float64)
    context = x
    if ratio > 1:
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[ndim]
        reduced = conv(x.movedim(-1, 1), module.reduction.weight, module.reduction.bias, ratio)
        context = F.layer_norm(
            reduced.movedim(1, -1), (16,), module.norm.weight, module.norm.bias, module.norm.eps
        )
    query = module.q(x).flatten(1, -2).unflatten(-1, (4, 4))
    key, value = (t.unflatten(-1, (4, 4)) for t in module.kv(context.flatten(1, -2)).chunk(2, -1))
    weights = (torch.einsum("bqhd,bkhd->bhqk", query, key) / 2).softmax(-1)
    expected = module.proj(torch.einsum("bhqk,bkhd->bqhd", weights, value).flatten(-2))
    torch.testing.assert_close(module(x), expected.reshape(x.shape))


def test_spatial_reduction_attention_rejects_maps_smaller_than_the_ratio():
    with pytest.raises(ValueError, match="at least sr_ratio"):
        SpatialReductionAttention(16, 4, sr_ratio=4)(torch.randn(1, 3, 8, 16))


@pytest.mark.parametrize("shape", [(2, 10, 16), (2, 5, 6, 16)])
def test_linear_attention_equals_its_dense_n_by_n_form(shape):
    module = LinearAttention(16, 4).double()
    x = torch.randn(shape, dtype=torch.float64)
    query, key, value = (
        t.unflatten(-1, (4, 4)) for t in module.qkv(x.flatten(1, -2)).chunk(3, dim=-1)
    )
    weights = torch.einsum("bqhd,bkhd->bhqk", query.softmax(-1), key.softmax(1))
    expected = module.proj(torch.einsum("bhqk,bkhd->bqhd", weights, value).flatten(-2))
    torch.testing.assert_close(module(x), expected.reshape(x.shape))


def test_channel_attention_permuting_tokens_permutes_outputs():
    module = ChannelAttention(16, 4).double()
    x = torch.randn(2, 6, 5, 16, dtype=torch.float64)
    perm = torch.randperm(30)
    permuted = x.flatten(1, 2)[:, perm].reshape(x.shape)
    expected = module(x).flatten(1, 2)[:, perm].reshape(x.shape)
    torch.testing.assert_close(module(permuted), expected)


def test_channel_attention_mixes_channels_by_normalised_cross_covariance():
    module = ChannelAttention(16, 4).double()
    with torch.no_grad():
        module.temperature.copy_(torch.tensor([0.5, 1.0, 2.0, 4.0]).view(4, 1, 1))
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    query, key, value = (t.unflatten(-1, (4, 4)) for t in module.qkv(x).chunk(3, dim=-1))
    query, key = F.normalize(query, dim=1), F.normalize(key, dim=1)  # along the tokens
    logits = torch.einsum("bnhc,bnhd->bhcd", query, key) * module.temperature
    out = torch.einsum("bhcd,bnhd->bnhc", logits.softmax(-1), value)
    torch.testing.assert_close(module(x), module.proj(out.flatten(-2)))
