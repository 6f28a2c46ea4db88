"""The dark channel prior baseline (``domainvit.tasks.desmoke.dcp``): the dark channel
separates clear from smoky images, the airlight comes from the haziest region, the
guided filter matches a brute-force reference and keeps edges, and on images made with
the scattering model the recovery is far closer to the clean scene than the input."""

from __future__ import annotations

import pytest
import torch

from domainvit.tasks.desmoke.dcp import (
    DarkChannelSettings,
    atmospheric_light,
    box_mean,
    dark_channel,
    dehaze_dark_channel,
    guided_filter,
    smoke_density,
)
from domainvit.tasks.desmoke.metrics import psnr

# saturated colours: each has a zero channel, so a scene made of them has dark channel 0
PALETTE = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1],
                        [1, 0.5, 0], [0.6, 0, 1]])
AIRLIGHT = torch.tensor([0.85, 0.8, 0.75])


def scene(size: int = 96, block: int = 8, seed: int = 0) -> torch.Tensor:
    """A colourful clear image ``[1, 3, size, size]``: blocks of saturated colours."""
    g = torch.Generator().manual_seed(seed)
    n = size // block
    colours = PALETTE[torch.randint(len(PALETTE), (n, n), generator=g)]
    colours = colours * (0.4 + 0.6 * torch.rand(n, n, 1, generator=g))
    image = colours.permute(2, 0, 1).repeat_interleave(block, 1).repeat_interleave(block, 2)
    return image[None].float()


def smoky(clear: torch.Tensor, t: torch.Tensor, airlight: torch.Tensor = AIRLIGHT):
    """The scattering model ``I = J t + A (1 - t)``."""
    a = airlight[:, None, None]
    return clear * t + a * (1 - t)


def test_dark_channel_of_clear_and_smoky_images():
    clear = scene()
    assert dark_channel(clear, 15).abs().max() < 1e-6
    hazy = smoky(clear, torch.tensor(0.4))
    # the dark channel of a uniform layer is at least min(A) (1 - t) = 0.45
    assert dark_channel(hazy, 15).min() >= 0.45 - 1e-6
    assert dark_channel(clear, 15).shape == (1, 96, 96)


@pytest.mark.parametrize(("patch", "shape"), [(3, (9, 11)), (15, (5, 7)), (4, (8, 8))])
def test_dark_channel_matches_explicit_windows(patch, shape):
    image = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(1))
    size = min(patch, *shape)
    size -= 1 - size % 2  # the patch is clamped to the image and made odd
    r = size // 2
    darkest = image.amin(dim=1)
    expected = torch.empty_like(darkest)
    for i in range(shape[0]):
        for j in range(shape[1]):
            window = darkest[:, max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]
            expected[:, i, j] = window.amin(dim=(1, 2))
    torch.testing.assert_close(dark_channel(image, patch), expected)


def test_airlight_comes_from_the_haziest_region_not_a_small_white_object():
    clear = scene(seed=2)
    clear[..., 60:65, 10:15] = 1.0  # a small white object, smaller than the patch
    t = torch.full((1, 1, 96, 96), 0.9)
    t[..., 64:, 64:] = 0.02  # dense smoke in one corner
    image = smoky(clear, t, torch.tensor([0.7, 0.8, 0.9]))
    row, col = divmod(int(image.mean(dim=1).flatten().argmax()), 96)
    assert 60 <= row < 65 and 10 <= col < 15  # the brightest pixel is the white object's
    airlight = atmospheric_light(image, dark_channel(image, 15), 0.001)
    torch.testing.assert_close(airlight[0], torch.tensor([0.7, 0.8, 0.9]), atol=0.03, rtol=0)


def _guided_reference(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float):
    """Algorithm 1 of the guided filter with explicit windows clipped to the image."""
    h, w = guide.shape

    def window(x, i, j):
        return x[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]

    a, b = torch.empty_like(src), torch.empty_like(src)
    for i in range(h):
        for j in range(w):
            gi, pi = window(guide, i, j), window(src, i, j)
            cov = (gi * pi).mean() - gi.mean() * pi.mean()
            a[i, j] = cov / (gi.var(unbiased=False) + eps)
            b[i, j] = pi.mean() - a[i, j] * gi.mean()
    out = torch.empty_like(src)
    for i in range(h):
        for j in range(w):
            out[i, j] = window(a, i, j).mean() * guide[i, j] + window(b, i, j).mean()
    return out


@pytest.mark.parametrize("radius", [0, 2, 5, 30])
def test_guided_filter_matches_a_brute_force_reference(radius):
    g = torch.Generator().manual_seed(3)
    guide = torch.rand(1, 1, 9, 12, generator=g, dtype=torch.float64)
    src = torch.rand(1, 2, 9, 12, generator=g, dtype=torch.float64)
    got = guided_filter(guide, src, radius, 1e-2)
    for c in range(2):
        expected = _guided_reference(guide[0, 0], src[0, c], radius, 1e-2)
        torch.testing.assert_close(got[0, c], expected, rtol=0, atol=1e-10)


def test_box_mean_of_a_constant_is_the_constant():
    x = torch.full((2, 1, 7, 30), 0.3, dtype=torch.float64)
    torch.testing.assert_close(box_mean(x, 4), x)


def test_guided_filter_keeps_a_step_edge_and_a_constant():
    guide = torch.zeros(1, 1, 40, 40)
    guide[..., 20:] = 1.0
    noisy = guide + 0.05 * torch.randn(1, 1, 40, 40, generator=torch.Generator().manual_seed(4))
    out = guided_filter(guide, noisy, 8, 1e-3)
    # the step survives (a box filter of radius 8 would spread it over 17 columns) ...
    assert (out[..., 19] < 0.1).all() and (out[..., 20] > 0.9).all()
    assert box_mean(noisy, 8)[..., 20].mean() < 0.75
    # ... and the noise is smoothed away
    assert (out - guide).abs().mean() < 0.5 * (noisy - guide).abs().mean()
    constant = torch.full((1, 3, 40, 40), 0.7)
    textured = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(guided_filter(textured, constant, 8, 1e-3), constant)


def test_dehazing_recovers_airlight_and_scene():
    clear = scene()
    t = torch.full((1, 1, 96, 96), 0.6)  # a known constant transmission ...
    t[..., :16, :16] = 0.03  # ... and one dense patch of smoke, where A shows
    image = smoky(clear, t)
    out = dehaze_dark_channel(image)
    assert out["clean"].shape == image.shape and out["transmission"].shape == (1, 96, 96)
    assert 0 <= out["clean"].min() and out["clean"].max() <= 1
    torch.testing.assert_close(out["airlight"][0], AIRLIGHT, atol=0.03, rtol=0)
    # measured: transmission 0.62 for the true 0.6; PSNR 12.3 -> 20.7 dB over the image,
    # 12.7 -> 32.1 dB away from the dense patch (where t0 limits any recovery)
    away = (..., slice(32, None), slice(32, None))
    assert abs(out["transmission"][0][away[1:]].mean() - 0.6) < 0.04
    assert psnr(out["clean"], clear) > psnr(image, clear) + 5
    assert psnr(out["clean"][away], clear[away]) > psnr(image[away], clear[away]) + 12


def test_a_batch_gives_what_single_images_give_and_small_images_work():
    images = torch.cat([smoky(scene(64, seed=s), torch.tensor(0.5 + 0.2 * s)) for s in (0, 1)])
    batched = dehaze_dark_channel(images)
    for k in range(2):
        single = dehaze_dark_channel(images[k:k + 1])
        for name, value in single.items():
            torch.testing.assert_close(batched[name][k:k + 1], value)
    tiny = dehaze_dark_channel(torch.rand(2, 3, 5, 7), DarkChannelSettings(guided_radius=40))
    assert tiny["clean"].shape == (2, 3, 5, 7) and torch.isfinite(tiny["clean"]).all()


def test_smoke_density_shows_where_the_smoke_is():
    t = torch.ones(1, 1, 96, 96)
    t[..., :, :48] = 0.3  # smoke over the left half
    t[..., :8, :8] = 0.02
    density = smoke_density(smoky(scene(seed=6), t))
    assert density.shape == (1, 96, 96) and density.min() >= 0 and density.max() <= 1
    assert density[0, 8:, :40].mean() > 0.6 and density[0, :, 56:].mean() < 0.1
    # it is (1 - t) / omega of the refined transmission
    out = dehaze_dark_channel(smoky(scene(seed=6), t))
    torch.testing.assert_close(density, ((1 - out["transmission"]) / 0.95).clamp(0, 1),
                               atol=1e-5, rtol=0)


def test_settings_are_checked():
    with pytest.raises(ValueError):
        DarkChannelSettings(omega=0)
    with pytest.raises(ValueError):
        dehaze_dark_channel(torch.rand(1, 1, 8, 8))
