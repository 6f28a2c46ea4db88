"""Smoke-removal metrics (``domainvit.tasks.desmoke.metrics``): PSNR, SSIM and CIEDE2000
against known values (CIEDE2000 against Sharma, Wu and Dalal's 2005 test data), the
temporal flicker of videos, and the accumulating ``DesmokeMetrics``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb

from domainvit.task import TaskMetrics
from domainvit.tasks.desmoke.metrics import (
    MAX_PSNR,
    DesmokeMetrics,
    ciede2000,
    ciede2000_lab,
    flicker,
    psnr,
    ssim,
    temporal_change,
)


def _images(n: int = 2, size: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_psnr_of_known_errors_and_identical_images():
    target = torch.full((2, 3, 16, 16), 0.5)
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01
    pred[1, :, :8] += 0.1  # MSE 0.005
    torch.testing.assert_close(psnr(pred, target),
                               torch.tensor([20.0, 10 * math.log10(1 / 0.005)]))
    images = _images()
    assert psnr(images, images).tolist() == [MAX_PSNR, MAX_PSNR]


def test_ssim_is_one_for_identical_images_and_lower_for_noisy_ones():
    images = _images(size=32)
    torch.testing.assert_close(ssim(images, images), torch.ones(2))
    noisy = (images + 0.2 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1)))
    scores = ssim(noisy.clamp(0, 1), images)
    assert scores.shape == (2,) and (scores < 0.9).all()


@pytest.mark.parametrize(("lab1", "lab2", "expected"), [
    # pairs 1, 7, 9 and 17 of Sharma, Wu and Dalal (2005), Table 1
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
])
def test_ciede2000_of_textbook_pairs(lab1, lab2, expected):
    assert ciede2000_lab(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def test_ciede2000_of_images():
    images = _images()
    assert ciede2000(images, images).abs().max() < 1e-9
    # Sharma's pair 7 is inside the sRGB gamut: images of its two colours
    rgb = lab2rgb(np.array([[[50.0, 0.0, 0.0], [50.0, -1.0, 2.0]]]))[0]
    pred = torch.tensor(rgb[0]).reshape(1, 3, 1, 1).expand(1, 3, 4, 5)
    target = torch.tensor(rgb[1]).reshape(1, 3, 1, 1).expand(1, 3, 4, 5)
    assert ciede2000(pred, target).item() == pytest.approx(2.3669, abs=1e-3)


def test_flicker_counts_only_change_the_clean_video_lacks():
    clean = torch.rand(1, 3, 16, 16).expand(5, 3, 16, 16)  # a static scene
    assert flicker(clean.clone(), clean) == 0.0
    offset = torch.tensor([0.1, -0.1, 0.1, -0.1, 0.1]).reshape(5, 1, 1, 1)
    flickering = clean + offset  # brightness jumping by 0.2 from frame to frame
    assert flicker(flickering, clean) == pytest.approx(0.2)
    assert temporal_change(flickering) == pytest.approx(0.2)
    moving = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    # an output that changes exactly as the clean video does has no flicker, even if off
    assert flicker(moving + 0.05, moving) == pytest.approx(0.0, abs=1e-6)
    assert temporal_change(moving) > 0.2
    with pytest.raises(ValueError):
        flicker(moving[:1], moving[:1])


def _batch(seed: int, channels: int = 3) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    target = _images(2, 24, seed)
    smoky = 0.5 * target + 0.4
    noise = 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(seed + 9))
    inputs = torch.cat([smoky, torch.rand(2, channels - 3, 24, 24)], dim=1)
    return target + noise, {"input": inputs, "target": target}


def test_desmoke_metrics_accumulate_over_batches():
    assert isinstance(DesmokeMetrics(), TaskMetrics)
    (out1, b1), (out2, b2) = _batch(0, channels=6), _batch(1, channels=6)
    metrics = DesmokeMetrics()
    metrics.update(out1, b1)
    metrics.update(out2, b2)
    split = metrics.compute()
    metrics.reset()
    metrics.update(torch.cat([out1, out2]), {k: torch.cat([b1[k], b2[k]]) for k in b1})
    whole = metrics.compute()
    assert set(whole) == {"psnr", "ssim", "ciede2000", "input_psnr", "psnr_gain"}
    assert split == pytest.approx(whole, rel=1e-6)
    # the input scores use the smoky frame only (the first three of six channels)
    target = torch.cat([b1["target"], b2["target"]])
    smoky = torch.cat([b1["input"][:, :3], b2["input"][:, :3]])
    assert whole["input_psnr"] == pytest.approx(float(psnr(smoky, target).mean()), rel=1e-6)
    outputs = torch.clamp(torch.cat([out1, out2]), 0, 1)
    assert whole["psnr"] == pytest.approx(float(psnr(outputs, target).mean()), rel=1e-6)
    assert whole["psnr_gain"] == pytest.approx(whole["psnr"] - whole["input_psnr"])
    assert whole["psnr_gain"] > 5


def test_desmoke_metrics_clamp_outputs_and_take_a_bare_target():
    target = _images()
    target[:, :, :4] = 1.0
    outputs = target.clone()
    outputs[:, :, :4] = 1.5  # clamped to 1: a perfect prediction
    metrics = DesmokeMetrics(colour=False)
    metrics.update(outputs, target)
    scores = metrics.compute()
    assert scores == pytest.approx({"psnr": MAX_PSNR, "ssim": 1.0})
