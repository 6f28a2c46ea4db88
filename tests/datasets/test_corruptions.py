"""MedMNIST-C-style corruptions: shapes kept, seeded, stronger with severity, physically right.

The test images are real: scikit-image's bundled Shepp-Logan phantom (an object on a
black background, so ghosts outside it can be measured) and fundus photo (RGB).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import data, transform

from domainvit.datasets.corruptions import (
    CORRUPTIONS,
    SEVERITY_PARAMETERS,
    corrupt,
    modulate_kspace_lines,
)
from domainvit.errors import UserError

SIDE = 64


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def phantoms() -> np.ndarray:
    """Three 64x64 uint8 phantoms (one shifted, one dimmer): a grayscale batch [3, H, W]."""
    phantom = transform.resize(data.shepp_logan_phantom(), (SIDE, SIDE), anti_aliasing=True)
    phantom = phantom / phantom.max()
    return np.stack([to_uint8(phantom), to_uint8(np.roll(phantom, 3, axis=1)),
                     to_uint8(0.7 * phantom)])


@pytest.fixture(scope="module")
def fundus() -> np.ndarray:
    """Two 48x48 RGB crops of the fundus photo: a colour batch [2, H, W, 3]."""
    retina = transform.resize(data.retina(), (96, 96), anti_aliasing=True)
    return np.stack([to_uint8(retina[24:72, 24:72]), to_uint8(retina[10:58, 30:78])])


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def detail_energy(images: np.ndarray) -> float:
    """Spectral energy between 1/16 and 1/4 cycles per pixel: fine detail, but still
    above the quantisation noise that dominates higher frequencies after a strong blur."""
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(images.astype(np.float64)), axes=(-2, -1)))
    radius = np.hypot(*(np.indices(images.shape[-2:]) - SIDE // 2))
    band = (radius > SIDE / 16) & (radius <= SIDE / 4)
    return float((spectrum[..., band] ** 2).sum())


def test_the_table_has_five_severities_for_every_corruption():
    assert set(CORRUPTIONS) >= {"gaussian_noise", "gaussian_blur", "contrast", "bias_field",
                                "motion"}
    assert all(len(SEVERITY_PARAMETERS[name]) == 5 for name in CORRUPTIONS)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_and_dtype_are_kept_for_gray_and_rgb_batches(name, phantoms, fundus):
    for images in (phantoms, fundus):
        corrupted = corrupt(images, name, 3)
        assert corrupted.shape == images.shape and corrupted.dtype == np.uint8


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_same_seed_same_result(name, phantoms):
    np.testing.assert_array_equal(corrupt(phantoms, name, 4, seed=7),
                                  corrupt(phantoms, name, 4, seed=7))


@pytest.mark.parametrize("name", ["gaussian_noise", "bias_field", "motion"])
def test_random_corruptions_change_with_the_seed(name, phantoms):
    assert not np.array_equal(corrupt(phantoms, name, 4, seed=1),
                              corrupt(phantoms, name, 4, seed=2))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_damage_grows_strictly_with_severity(name, phantoms, fundus):
    for images in (phantoms, fundus):
        damage = [mean_abs_difference(corrupt(images, name, severity, seed=5), images)
                  for severity in range(1, 6)]
        assert damage[0] > 0
        assert np.all(np.diff(damage) > 0), damage


def test_blur_removes_fine_detail_more_at_each_severity(phantoms):
    energies = [detail_energy(phantoms)]
    energies += [detail_energy(corrupt(phantoms, "gaussian_blur", s)) for s in range(1, 6)]
    assert np.all(np.diff(energies) < 0), energies
    assert energies[-1] < 0.1 * energies[0]


def test_contrast_pulls_towards_the_mean_without_moving_it(phantoms):
    corrupted = corrupt(phantoms, "contrast", 3).astype(np.float64)
    clean = phantoms.astype(np.float64)
    keep = SEVERITY_PARAMETERS["contrast"][2]
    np.testing.assert_allclose(corrupted.mean(axis=(1, 2)), clean.mean(axis=(1, 2)), atol=0.5)
    np.testing.assert_allclose(corrupted.std(axis=(1, 2)), keep * clean.std(axis=(1, 2)),
                               rtol=0.02)


def test_bias_field_is_a_smooth_gain_that_keeps_black_black(phantoms):
    corrupted = corrupt(phantoms, "bias_field", 5, seed=3).astype(np.float64)
    clean = phantoms.astype(np.float64)
    assert np.all(corrupted[clean == 0] == 0)  # multiplicative: nothing added

    rows, cols = np.indices((SIDE, SIDE)) / (SIDE - 1) * 2 - 1
    terms = np.stack([rows**i * cols**j for i in range(4) for j in range(4 - i)], axis=-1)
    for image, result in zip(clean, corrupted, strict=True):
        # where quantisation leaves the gain measurable and nothing saturated
        bright = (image >= 60) & (result < 255)
        log_gain = np.log(result[bright] / image[bright])
        fit, *_ = np.linalg.lstsq(terms[bright], log_gain, rcond=None)
        residual = log_gain - terms[bright] @ fit
        # a cubic explains the gain to within quantisation error: it is smooth
        assert np.abs(residual).std() < 0.02
        assert np.ptp(terms[bright] @ fit) > 0.3  # and it is not negligible


def test_kspace_modulation_changes_exactly_the_chosen_lines():
    image = np.random.default_rng(0).random((16, 12))
    lines = np.array([1, 5, 14])
    phase = np.exp(1j * np.random.default_rng(1).uniform(-np.pi, np.pi, (3, 12)))

    result = modulate_kspace_lines(image, lines, phase)

    before, after = np.fft.fft2(image), np.fft.fft2(result)
    untouched = np.setdiff1d(np.arange(16), lines)
    np.testing.assert_allclose(after[untouched], before[untouched], atol=1e-10)
    np.testing.assert_allclose(after[lines], before[lines] * phase, atol=1e-10)
    np.testing.assert_allclose(np.abs(after), np.abs(before), atol=1e-10)


def test_motion_puts_ghosts_outside_the_object_along_the_phase_encode_axis(phantoms):
    clean = phantoms[0]
    outside = ~ndimage.binary_dilation(clean > 0, iterations=2)
    assert clean[outside].max() == 0
    ghost_energy = [float((corrupt(clean[None], "motion", s, seed=4)[0][outside]
                           .astype(np.float64) ** 2).sum()) for s in range(1, 6)]
    assert ghost_energy[0] > 0
    assert np.all(np.diff(ghost_energy) > 0), ghost_energy

    # ghosts run along the phase-encode axis (rows): the columns beside the object stay
    # darker than the rows above and below it
    corrupted = corrupt(clean[None], "motion", 5, seed=4)[0].astype(np.float64)
    object_rows = np.flatnonzero((clean > 0).any(axis=1))
    object_cols = np.flatnonzero((clean > 0).any(axis=0))
    above_below = np.delete(corrupted[:, object_cols], object_rows, axis=0)
    left_right = np.delete(corrupted[object_rows], object_cols, axis=1)
    assert above_below.mean() > left_right.mean()


def test_ghosting_copies_the_object_half_a_field_of_view_away():
    image = np.zeros((1, 32, 32), np.uint8)
    image[0, 4:10, 12:20] = 200
    ghosted = corrupt(image, "ghosting", 5)[0].astype(np.float64)
    intensity = SEVERITY_PARAMETERS["ghosting"][4]
    np.testing.assert_allclose(ghosted[20:26, 12:20], 200 * intensity, atol=1.0)
    np.testing.assert_allclose(ghosted[4:10, 12:20], 200 * (1 - intensity), atol=1.0)
    ghosted[20:26, 12:20] = ghosted[4:10, 12:20] = 0
    assert ghosted.max() <= 1  # nothing anywhere else


def test_unknown_corruption_lists_the_valid_ones(phantoms):
    with pytest.raises(UserError, match="unknown corruption 'fog': expected one of") as caught:
        corrupt(phantoms, "fog", 1)
    assert all(name in str(caught.value) for name in CORRUPTIONS)


@pytest.mark.parametrize("severity", [0, 6, 2.5, True])
def test_severity_outside_one_to_five_is_refused(phantoms, severity):
    with pytest.raises(UserError, match="severity must be an integer 1..5"):
        corrupt(phantoms, "contrast", severity)


def test_non_uint8_or_unbatched_images_are_refused(phantoms):
    with pytest.raises(UserError, match="expected uint8 images"):
        corrupt(phantoms.astype(np.float32), "contrast", 1)
    with pytest.raises(UserError, match=r"expected a batch \[N, H, W\]"):
        corrupt(phantoms[0, 0], "contrast", 1)
