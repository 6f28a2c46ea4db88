"""MedViTV2, the medcls classifier (domainvit.tasks.medcls.model), and its timm variants."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from domainvit.errors import UserError
from domainvit.tasks.medcls.model import (
    VARIANTS,
    FittedNeighborhoodAttention,
    FittedSpatialReductionAttention,
    GlobalFeaturePerception,
    LocalFeaturePerception,
    MedViTV2,
    MedViTV2Config,
    RSWAFBasis,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are small: on a shared 2-core machine a second intra-op thread mostly
    waits at barriers (a training step ran 15x slower with 2 threads than with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def micro(**kwargs) -> MedViTV2:
    torch.manual_seed(0)
    return MedViTV2(in_chans=1, num_classes=5, **dict(VARIANTS["micro"], **kwargs))


def images(batch: int, size: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [28, 64, 224])
def test_micro_gives_logits_at_medmnist_sizes(size):
    model = micro().eval()
    with torch.no_grad():
        logits = model(images(2, size))
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()


def test_tiny_gives_logits_at_64():
    torch.manual_seed(0)
    model = MedViTV2(in_chans=1, num_classes=5, **VARIANTS["tiny"]).eval()
    with torch.no_grad():
        assert model(images(1, 64)).shape == (1, 5)


def test_every_parameter_receives_a_gradient():
    model = micro()
    F.cross_entropy(model(images(2, 64)), torch.tensor([0, 3])).backward()
    missing = [
        name for name, param in model.named_parameters()
        if param.grad is None or not param.grad.abs().sum() > 0
    ]
    assert not missing


def test_blocks_follow_the_hybrid_layout_and_alternate_dilation():
    model = MedViTV2(**VARIANTS["tiny"])
    layout = [
        "".join("G" if isinstance(b, GlobalFeaturePerception) else "L" for b in stage.blocks)
        for stage in model.stages
    ]
    assert layout == ["LL", "LG", "LLGLLG", "G"]
    first_stage = model.stages[0].blocks
    assert [block.attn.dilation for block in first_stage] == [(8, 8), (1, 1)]
    assert [block.attn.sr_ratio for block in model.stages[2].blocks[2::3]] == [(2, 2)] * 2


def _changes_token(
    mix, x: torch.Tensor, perturbed: tuple[int, int], token: tuple[int, int]
) -> bool:
    with torch.no_grad():
        before = mix(x)[0, :, token[0], token[1]]
        x = x.clone()
        x[0, :, perturbed[0], perturbed[1]] += 5.0
        after = mix(x)[0, :, token[0], token[1]]
    return not torch.allclose(before, after, atol=1e-6)


@pytest.mark.parametrize("dilation", [2, 8])
def test_lfp_attention_is_dilated_neighbourhood_attention(dilation):
    # 16x16 map, kernel 7: dilation 2 fits, 8 is fitted down to 2 (7 * 2 <= 16 < 7 * 3).
    torch.manual_seed(0)
    block = LocalFeaturePerception(32, head_dim=32, kernel_size=7, dilation=dilation).eval()
    assert block.attn.fitted_window((16, 16)) == ((7, 7), (2, 2))
    x = images(1, 16, channels=32)
    # Token (8, 8) attends to the even rows and columns 2..14.
    for inside in [(2, 14), (14, 2), (8, 10), (4, 6)]:
        assert _changes_token(block.mix_tokens, x, inside, (8, 8)), inside
    for outside in [(9, 8), (8, 7), (0, 8), (8, 15), (9, 9)]:
        assert not _changes_token(block.mix_tokens, x, outside, (8, 8)), outside


def test_neighbourhood_window_shrinks_to_fit_small_maps():
    torch.manual_seed(0)
    attn = FittedNeighborhoodAttention(32, 1, kernel_size=7, dilation=4).eval()
    assert attn.fitted_window((4, 4)) == ((4, 4), (1, 1))
    assert attn.fitted_window((16, 3)) == ((7, 3), (2, 1))
    assert attn.fitted_window((1, 5)) == ((1, 5), (1, 1))

    def mix(x: torch.Tensor) -> torch.Tensor:
        return attn(x.movedim(1, -1)).movedim(-1, 1)

    # A map no larger than the kernel: every token sees every other.
    assert _changes_token(mix, images(1, 4, channels=32), (3, 3), (0, 0))
    row = torch.randn(1, 32, 1, 5)
    assert _changes_token(mix, row, (0, 4), (0, 0))
    # A single token attends only to itself: the output is its projected value.
    token = torch.randn(2, 1, 1, 32)
    with torch.no_grad():
        value = attn.split_heads(attn.qkv(token))[2].flatten(-2)
        torch.testing.assert_close(attn(token), attn.proj(value))


def test_spatial_reduction_keeps_tokens_past_the_last_whole_patch():
    torch.manual_seed(0)
    attn = FittedSpatialReductionAttention(32, 1, sr_ratio=4).eval()

    def mix(x: torch.Tensor) -> torch.Tensor:
        return attn(x.movedim(1, -1)).movedim(-1, 1)

    x = torch.randn(1, 32, 4, 6)
    assert mix(x).shape == x.shape
    # Columns 4-5 are not a whole 4x4 patch: plain PVT reduction would drop them.
    assert _changes_token(mix, x, (3, 5), (0, 0))
    assert mix(torch.randn(1, 32, 2, 3)).shape == (1, 32, 2, 3)


def test_rswaf_basis_matches_its_formula():
    basis = RSWAFBasis(num_grids=5, grid_min=-1.0, grid_max=1.5, width=0.7)
    x = torch.randn(3, 4, dtype=torch.float64) * 2
    out = basis(x)
    assert out.shape == (3, 4, 5)
    centres = [-1.0 + 2.5 * i / 4 for i in range(5)]
    for index in torch.cartesian_prod(torch.arange(3), torch.arange(4)).tolist():
        value = x[tuple(index)].item()
        expected = [1 - math.tanh((value - c) / 0.7) ** 2 for c in centres]
        assert out[tuple(index)].tolist() == pytest.approx(expected, rel=1e-6)
    assert RSWAFBasis(num_grids=8, grid_min=-2.0, grid_max=2.0).width == pytest.approx(4 / 7)


def test_timm_creates_the_registered_variants():
    torch.manual_seed(0)
    model = timm.create_model("medvitv2_micro", num_classes=5, in_chans=1)
    assert isinstance(model, MedViTV2) and model.in_chans == 1
    assert model(images(2, 64)).shape == (2, 5)
    features = timm.create_model("medvitv2_micro", in_chans=1, features_only=True)
    maps = features(images(1, 64))
    assert features.feature_info.channels() == [32, 64, 96, 128]
    assert features.feature_info.reduction() == [4, 8, 16, 32]
    assert [tuple(m.shape[2:]) for m in maps] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    with pytest.raises(UserError, match="no pretrained"):
        timm.create_model("medvitv2_tiny", pretrained=True)


def test_micro_overfits_a_small_labelled_batch():
    model = micro()
    x, y = images(8, 28, seed=1), torch.arange(8) % 4
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses


@pytest.mark.parametrize(
    ("shape", "message"),
    [((2, 3, 64, 64), r"\[B, 1, H, W\].*got shape \[2, 3, 64, 64\]"),
     ((1, 64, 64), r"\[B, 1, H, W\].*got shape \[1, 64, 64\]")],
)
def test_bad_input_is_a_user_error(shape, message):
    with pytest.raises(UserError, match=message):
        micro()(torch.randn(*shape))


def test_tiny_parameter_count_is_near_the_papers():
    count = sum(p.numel() for p in MedViTV2(in_chans=3, num_classes=1000, **VARIANTS["tiny"])
                .parameters())
    print(f"medvitv2_tiny: {count / 1e6:.2f}M parameters (paper: about 12M)")
    assert 9e6 < count < 15e6


def test_config_overrides_the_variant_and_rejects_bad_widths():
    cfg = MedViTV2Config(variant="micro", dims=(32, 64, 96, 160), drop_path_rate=0.1)
    model = MedViTV2.from_config(cfg, in_chans=1, num_classes=3)
    assert [info["num_chs"] for info in model.feature_info] == [32, 64, 96, 160]
    assert model.stages[3].blocks[0].drop_path1.drop_prob == pytest.approx(0.1)
    assert model(images(2, 28)).shape == (2, 3)
    with pytest.raises(ValidationError, match="dims\\[1\\]=48"):
        MedViTV2Config(variant="micro", dims=(32, 48, 96, 128))
    with pytest.raises(ValidationError):
        MedViTV2Config(variant="micro", depth=(1, 1, 1, 1))
