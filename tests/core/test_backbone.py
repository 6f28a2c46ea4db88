"""The hierarchical backbone and its timm registration (domainvit.backbone), and its layers
(domainvit.layers)."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

import domainvit.backbone  # noqa: F401  (registers the variants with timm)
from domainvit.backbone import DomainViT
from domainvit.errors import UserError
from domainvit.layers import PatchMerging

VARIANTS = [
    "domainvit_nat_tiny",
    "domainvit_nat_small",
    "domainvit_swin_tiny",
    "domainvit_swin_small",
    "domainvit_maxvit_tiny",
    "domainvit_maxvit_small",
    "domainvit_nat3d_tiny",
]
TINY = dict(embed_dim=16, depths=(1, 1, 1, 1))
WIDTHS = [16, 32, 64, 128]


def is_3d(name: str) -> bool:
    return "3d" in name


def sample_input(name: str, batch: int = 2) -> torch.Tensor:
    """Non-square inputs: every axis length differs (the 3D stem has stride 2, total 16)."""
    generator = torch.Generator().manual_seed(0)
    if is_3d(name):
        return torch.randn(batch, 1, 16, 32, 48, generator=generator)
    return torch.randn(batch, 3, 64, 96, generator=generator)


def reductions(name: str) -> list[int]:
    stem = 2 if is_3d(name) else 4
    return [stem * 2**i for i in range(4)]


def test_registry_lists_every_variant():
    assert set(VARIANTS) <= set(timm.list_models("domainvit_*"))


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_classifies_non_square_input_and_trains_every_parameter(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7, drop_path_rate=0.0, **TINY)
    x = sample_input(name)
    features = model.forward_features(x)
    total = reductions(name)[-1]
    assert features.shape == (2, WIDTHS[-1], *(size // total for size in x.shape[2:]))
    logits = model.forward_head(features)
    assert logits.shape == (2, 7)
    torch.testing.assert_close(logits, model(x))
    logits.square().sum().backward()
    without_gradient = [
        param_name for param_name, param in model.named_parameters()
        if param.grad is None or not param.grad.abs().sum() > 0
    ]
    assert without_gradient == []


@pytest.mark.parametrize("name", VARIANTS)
def test_features_only_maps_match_feature_info(name):
    model = timm.create_model(name, features_only=True, **TINY)
    x = sample_input(name, batch=1)
    maps = model(x)
    assert model.feature_info.channels() == WIDTHS
    assert model.feature_info.reduction() == reductions(name)
    assert len(maps) == 4
    for fmap, channels, reduction in zip(
        maps, model.feature_info.channels(), model.feature_info.reduction(), strict=True
    ):
        assert fmap.shape == (1, channels, *(size // reduction for size in x.shape[2:]))


def test_out_indices_selects_stages_and_relaxes_the_input_multiple():
    model = timm.create_model(
        "domainvit_swin_tiny", features_only=True, out_indices=(0, 2), **TINY
    )
    assert model.feature_info.channels() == [16, 64]
    assert model.feature_info.reduction() == [4, 16]
    # only stages 0-2 run, so a multiple of 16 (not 32) is enough
    maps = model(torch.randn(1, 3, 48, 80))
    assert [tuple(fmap.shape) for fmap in maps] == [(1, 16, 12, 20), (1, 64, 3, 5)]
    last = timm.create_model("domainvit_nat_tiny", features_only=True, out_indices=(-1,), **TINY)
    assert last.feature_info.channels() == [128]
    assert last(torch.randn(1, 3, 64, 32))[0].shape == (1, 128, 2, 1)


@pytest.mark.parametrize(
    ("name", "shape", "multiple", "suggested"),
    [
        ("domainvit_nat_tiny", (3, 64, 90), 32, "(64, 96)"),
        ("domainvit_swin_tiny", (3, 70, 64), 32, "(96, 64)"),
        ("domainvit_nat3d_tiny", (1, 16, 16, 20), 16, "(16, 16, 32)"),
    ],
)
def test_input_not_divisible_by_the_total_stride_is_a_clear_error(name, shape, multiple, suggested):
    model = timm.create_model(name, **TINY)
    with pytest.raises(ValueError, match=f"must be a multiple of {multiple}") as error:
        model(torch.randn(1, *shape))
    assert suggested in str(error.value)


def test_wrong_channels_or_rank_is_a_clear_error():
    model = timm.create_model("domainvit_nat_tiny", **TINY)
    with pytest.raises(ValueError, match=r"expected input of shape \[B, 3, H, W\]"):
        model(torch.randn(1, 1, 64, 64))
    volume_model = timm.create_model("domainvit_nat3d_tiny", **TINY)
    with pytest.raises(ValueError, match=r"\[B, 1, D, H, W\]"):
        volume_model(torch.randn(1, 1, 64, 64))


def test_drop_path_rises_linearly_from_zero_over_all_blocks():
    model = timm.create_model(
        "domainvit_swin_tiny", embed_dim=16, depths=(1, 2, 3, 2), drop_path_rate=0.35
    )
    rates = [
        (block.drop_path1.drop_prob, block.drop_path2.drop_prob)
        for stage in model.stages for block in stage.blocks
    ]
    assert all(attn_rate == mlp_rate for attn_rate, mlp_rate in rates)
    expected = torch.linspace(0, 0.35, 8).tolist()
    assert [attn_rate for attn_rate, _ in rates] == pytest.approx(expected)


def test_stage_options_cycle_over_blocks():
    model = timm.create_model("domainvit_swin_tiny", embed_dim=16, depths=(1, 1, 3, 1))
    assert [block.attn.shift for block in model.stages[2].blocks] == [False, True, False]
    nat = timm.create_model("domainvit_nat_tiny", embed_dim=16, depths=(1, 1, 2, 1))
    assert [block.attn.dilation for block in nat.stages[0].blocks] == [(1, 1)]
    assert [block.attn.dilation for block in nat.stages[2].blocks] == [(1, 1), (2, 2)]


def test_neighbourhood_blocks_work_on_maps_smaller_than_their_window():
    # 32x32 leaves 8x8 tokens in stage 0 (dilation 8 needs 56) and 1x1 in stage 3 (kernel 7)
    model = timm.create_model("domainvit_nat_tiny", num_classes=3, **TINY).eval()
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_pretrained_weights_are_refused_with_a_clear_error():
    with pytest.raises(UserError, match="no pretrained weights are published"):
        timm.create_model("domainvit_swin_tiny", pretrained=True, **TINY)


def test_pretrained_loads_a_local_weights_file(tmp_path):
    source = timm.create_model("domainvit_nat_tiny", **TINY)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = timm.create_model(
        "domainvit_nat_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **TINY
    )
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_pickled_weights_files_are_refused(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"not opened")
    with pytest.raises(UserError, match="must be a .safetensors file"):
        timm.create_model("domainvit_nat_tiny", pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(path)), **TINY)


def test_forward_intermediates_match_features_only_and_forward_features():
    x = sample_input("domainvit_maxvit_tiny")
    torch.manual_seed(1)
    model = timm.create_model("domainvit_maxvit_tiny", **TINY).eval()
    torch.manual_seed(1)
    features = timm.create_model("domainvit_maxvit_tiny", features_only=True, **TINY).eval()
    torch.manual_seed(1)
    getter = timm.create_model(
        "domainvit_maxvit_tiny", features_only=True, feature_cls="getter", out_indices=(1, 2),
        **TINY,
    ).eval()
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        for taken, expected in zip(intermediates, features(x), strict=True):
            torch.testing.assert_close(taken, expected)
        for taken, expected in zip(getter(x), intermediates[1:3], strict=True):
            torch.testing.assert_close(taken, expected)
        channels_last = model.forward_intermediates(x, indices=1, output_fmt="NHWC",
                                                    intermediates_only=True)
    torch.testing.assert_close(channels_last[0], intermediates[-1].movedim(1, -1))


def test_global_pool_and_reset_classifier():
    model = timm.create_model("domainvit_swin_tiny", num_classes=5, **TINY).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        torch.testing.assert_close(pooled, features.mean(dim=(2, 3)))
        model.reset_classifier(4, global_pool="")
        assert model(x).shape == (2, 4, 2, 3)
        model.reset_classifier(0, global_pool="max")
        torch.testing.assert_close(model(x), features.amax(dim=(2, 3)))
    assert model.get_classifier().__class__.__name__ == "Identity"
    with pytest.raises(ValueError, match="global_pool must be one of"):
        model.reset_classifier(3, global_pool="token")


def test_grad_checkpointing_gives_the_same_result():
    torch.manual_seed(0)
    model = timm.create_model("domainvit_nat_tiny", drop_path_rate=0.0, **TINY)
    x = torch.randn(1, 3, 64, 64)
    expected = model(x)
    model.set_grad_checkpointing(True)
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("ndim", [2, 3])
def test_patch_merging_concatenates_each_2x2_group(ndim):
    merge = PatchMerging(4, 6, ndim=ndim, kind="merge")
    spatial = (4, 6, 2)[:ndim]
    x = torch.randn(2, *spatial, 4)
    offsets = torch.cartesian_prod(*[torch.arange(2)] * ndim).reshape(-1, ndim)
    groups = [x[(slice(None), *(slice(int(o), None, 2) for o in offset))] for offset in offsets]
    expected = merge.reduction(merge.norm(torch.cat(groups, dim=-1)))
    torch.testing.assert_close(merge(x), expected)


def test_no_weight_decay_names_position_tables_and_learned_tokens():
    model = DomainViT(
        embed_dim=16, depths=(1, 1), attn_kind=("neighborhood", "global_local"),
        attn_options=({"kernel_size": 3}, {"kernel_size": 3, "num_relay_tokens": 2}),
        num_classes=0,
    )
    assert model.no_weight_decay() == {
        "stages.0.blocks.0.attn.rpb", "stages.1.blocks.0.attn.rpb",
        "stages.1.blocks.0.attn.relay_tokens",
    }
    assert model(torch.randn(1, 3, 16, 24)).shape == (1, 32)


def test_bad_configuration_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"attn_options must be None, one dict, or a sequence"):
        DomainViT(embed_dim=16, depths=(1, 1, 1, 1), attn_options=[{"kernel_size": 3}] * 3)
    with pytest.raises(ValueError, match="does not take option"):
        DomainViT(embed_dim=16, depths=(1,), attn_kind="swin", attn_options={"kernel_size": 3})
    with pytest.raises(ValueError, match="attn_kind must be one value or a sequence of 2"):
        DomainViT(embed_dim=16, depths=(1, 1), attn_kind=("swin",))
    with pytest.raises(ValueError, match="not divisible by 3 heads"):
        DomainViT(embed_dim=16, depths=(1,), num_heads=3, attn_options={"kernel_size": 3})
    with pytest.raises(ValueError, match="ndim must be 2"):
        DomainViT(ndim=1, depths=(1,))


@pytest.mark.parametrize("ndim", [2, 3])
def test_mix_feed_forward_mixes_each_token_with_its_neighbours_only(ndim):
    torch.manual_seed(0)
    spatial = (5, 6) if ndim == 2 else (4, 5, 6)
    tokens = torch.randn(1, *spatial, 8)
    centre = tuple(length // 2 for length in spatial)
    neighbour = (centre[0] + 1, *centre[1:])
    far = (0, *[0] * (ndim - 1))
    for kind, mixes in (("mlp", False), ("mix", True)):
        block = DomainViT(ndim=ndim, embed_dim=8, depths=(1,), mlp_kind=kind,
                          attn_kind="swin", attn_options={"window_size": 2}).stages[0].blocks[0]
        moved = tokens.clone()
        moved[(0, *neighbour)] += 1.0
        moved[(0, *far)] += 1.0
        change = (block.mlp(moved) - block.mlp(tokens)).abs().sum(-1)[0]
        # a token's update depends on a token next to it only through the depthwise conv
        assert bool(change[centre] > 1e-6) is mixes
        # and never on one further away than one step along each axis
        assert change[tuple(length - 1 for length in spatial)] < 1e-6
    with pytest.raises(ValueError, match="mlp_kind must be one of"):
        DomainViT(embed_dim=8, depths=(1,), mlp_kind="conv")
