"""RGA-Net and the U-Net baseline: the output map, any size, the speed path, the parts."""

from __future__ import annotations

import pytest
import torch

from domainvit.tasks.desmoke.loss import DesmokeLossWeights, desmoke_loss
from domainvit.tasks.desmoke.predict import correction_fields
from domainvit.tasks.desmoke.rganet import (
    CrossGate,
    DesmokeUNet,
    FourierUnit,
    RGANet,
)

TINY = dict(widths=(8, 16, 32, 32), hybrid_depth=2, decoder_hybrid_depth=1, axis_depth=1,
            head_dim=16, window_size=4, block_size=2, mlp_ratio=1.0)


def _randomise_head(model: torch.nn.Module) -> None:
    torch.manual_seed(1)
    torch.nn.init.normal_(model.head.weight, std=0.05)
    torch.nn.init.normal_(model.head.bias, std=0.05)


@pytest.mark.parametrize("cls, kwargs", [(RGANet, TINY), (DesmokeUNet, {"widths": (8, 8, 16, 16)})])
def test_untrained_model_returns_its_input_and_keeps_any_size(cls, kwargs):
    model = cls(**kwargs).eval()
    frames = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        out = model(frames)
    assert out.shape == frames.shape
    assert torch.allclose(out, frames)  # zero-initialised head: J = I
    _randomise_head(model)
    with torch.no_grad():
        out = model(frames)
    assert out.shape == frames.shape and not torch.allclose(out, frames)


def test_output_is_the_affine_map_of_the_fields():
    model = RGANet(**TINY).eval()
    _randomise_head(model)
    frames = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        fields = model.correction(frames)
        out = model(frames)
    gain, offset = fields[:, :3], fields[:, 3:]
    assert torch.allclose(out, frames * (1 + gain) + offset, atol=1e-6)


def test_inverse_scattering_is_representable():
    """With 1 + a = 1/t and b = -A(1-t)/t the map recovers J exactly."""
    clean = torch.rand(1, 3, 16, 16)
    t, airlight = 0.4, torch.tensor([0.95, 0.9, 0.85]).view(1, 3, 1, 1)
    smoky = clean * t + airlight * (1 - t)
    fields = torch.cat([torch.full_like(clean, 1 / t - 1),
                        (-airlight * (1 - t) / t).expand_as(clean)], dim=1)
    assert torch.allclose(RGANet.apply(smoky, fields), clean, atol=1e-5)


def test_process_scale_runs_the_network_smaller_and_keeps_the_size():
    model = RGANet(**TINY).eval()
    _randomise_head(model)
    calls = []
    original = model.fields
    model.fields = lambda x: calls.append(tuple(x.shape[-2:])) or original(x)
    frames = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        out = model(frames, scale=0.5)
    assert calls == [(32, 48)]
    assert out.shape == frames.shape
    with pytest.raises(ValueError, match="scale"):
        model(frames, scale=1.5)


def test_too_small_and_wrong_channels_are_refused():
    model = RGANet(**TINY)
    with pytest.raises(ValueError, match="at least 16"):
        model(torch.rand(1, 3, 12, 40))
    with pytest.raises(ValueError, match="RGB"):
        model(torch.rand(1, 1, 32, 32))


def test_fourier_unit_is_global_and_starts_at_zero():
    unit = FourierUnit(4)
    x = torch.rand(1, 4, 16, 16)
    assert torch.count_nonzero(unit(x)) == 0  # zero-initialised projection
    torch.nn.init.normal_(unit.proj.weight)
    changed = x.clone()
    changed[..., 0, 0] += 1.0
    difference = (unit(changed) - unit(x)).abs()
    assert difference[..., 15, 15].sum() > 1e-4  # the far corner feels the change


def test_cross_gate_lets_each_stream_gate_the_other():
    gate = CrossGate(8, 4, 4)
    x, skip = torch.rand(1, 8, 4, 4), torch.rand(1, 4, 8, 8)
    out = gate(x, skip)
    assert out.shape == (1, 4, 8, 8)
    # the skip's gate depends on x: changing x changes how much of the skip passes
    with torch.no_grad():
        gate.fuse = torch.nn.Identity()
        base = gate(x, skip)[:, :4]
        other = gate(x + 1, skip)[:, :4]
    assert not torch.allclose(base, other)


def test_tiles_blend_to_the_untiled_fields_for_a_local_model():
    """A model whose fields are pointwise in the frame gives the same fields tiled."""
    class Pointwise(torch.nn.Module):
        def correction(self, frames, scale=1.0):
            return torch.cat([frames * 0.5, frames ** 2], dim=1)

    model, frames = Pointwise(), torch.rand(1, 3, 150, 170)
    whole = model.correction(frames)
    tiled = correction_fields(model, frames, 1.0, tile=64, overlap=16)
    assert torch.allclose(tiled, whole, atol=1e-6)


def test_loss_terms_vanish_at_the_target_and_grow_with_error():
    target = torch.rand(2, 3, 32, 32)
    weights = DesmokeLossWeights()
    assert float(desmoke_loss(target, target, weights)["total"]) < 1e-5
    close = desmoke_loss(target + 0.02, target, weights)
    far = desmoke_loss(target + 0.2 * torch.rand_like(target), target, weights)
    for name in ("l1", "ssim", "frequency"):
        assert float(far[name]) > float(close[name]) > 0
    only_l1 = desmoke_loss(target + 0.1, target, DesmokeLossWeights(ssim=0, frequency=0))
    assert float(only_l1["total"]) == pytest.approx(float(only_l1["l1"]))


def test_training_step_reduces_the_loss():
    torch.manual_seed(0)
    model = RGANet(**TINY)
    clean = torch.rand(4, 3, 32, 32)
    smoky = clean * 0.5 + 0.45
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = desmoke_loss(model(smoky), clean, DesmokeLossWeights())["total"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
