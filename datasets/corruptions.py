"""Image corruptions at five severities, for robustness evaluation of classifiers.

Follows MedMNIST-C (Di Salvo et al., "MedMNIST-C: Comprehensive benchmark and improved
classifier robustness by simulating realistic image corruptions", 2024), itself after
ImageNet-C (Hendrycks & Dietterich, ICLR 2019): a clean test set is corrupted by each
corruption at severities 1..5 and a classifier's accuracy is reported per corruption and
severity. Acquisition-specific corruptions come from MR physics:

- ``bias_field``: a smooth multiplicative field, ``exp`` of a random low-order Legendre
  polynomial (the model of MONAI's ``RandBiasField`` and of N4 bias correction);
- ``motion``: rigid translations of the patient while some phase-encode lines were
  acquired, i.e. linear phase ramps on those k-space lines (Fourier shift theorem),
  seen in the magnitude image as ghosts along the phase-encode axis (rows here);
- ``ghosting``: odd and even phase-encode lines received with different gains (the
  odd/even echo mismatch of EPI; torchio's ``RandomGhosting`` models it the same way),
  which adds a copy of the object shifted by half the field of view.

Inputs are MedMNIST-style uint8 batches ``[N, H, W]`` or ``[N, H, W, C]``; outputs have
the same shape and dtype, clipped to 0..255. Everything is deterministic given ``seed``,
and the random draws do not depend on the severity: a higher severity applies the same
noise, field or motion, only stronger, so the damage grows monotonically.

Sizes (blur widths, motion shifts) are given in pixels of a 28x28 image, MedMNIST's base
size, and scale with the image side, so a severity looks alike at 28, 64, 128 or 224.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import legendre
from scipy import ndimage

from domainvit.errors import UserError

#: MedMNIST's base image side: the unit of the sizes in SEVERITY_PARAMETERS
REFERENCE_SIDE = 28

#: per corruption, the parameters of severities 1..5 (the one table to tune)
SEVERITY_PARAMETERS: dict[str, tuple] = {
    # standard deviation of additive Gaussian noise, intensities in [0, 1]
    "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),
    # Gaussian blur sigma, in pixels at 28x28
    "gaussian_blur": (0.5, 0.75, 1.0, 1.25, 1.5),
    # contrast kept: intensities pulled towards the image mean by this factor
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.1),
    # intensity added, in [0, 1]
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    # largest |log gain| of the bias field (0.6: gains from 0.55 to 1.8)
    "bias_field": (0.15, 0.3, 0.45, 0.6, 0.8),
    # (fraction of phase-encode lines acquired after a movement, largest shift in pixels
    # at 28x28)
    "motion": ((0.05, 0.5), (0.1, 1.0), (0.15, 1.5), (0.2, 2.0), (0.3, 3.0)),
    # intensity of the half-FOV ghost relative to the object
    "ghosting": (0.05, 0.1, 0.15, 0.2, 0.3),
}

#: the corruption names accepted by :func:`corrupt`
CORRUPTIONS: tuple[str, ...] = tuple(SEVERITY_PARAMETERS)
SEVERITIES = (1, 2, 3, 4, 5)

#: degree of the bias-field polynomial: low, so the field varies over the whole image
BIAS_FIELD_DEGREE = 3
#: fraction of phase-encode lines around the k-space centre that motion leaves intact
#: (acquired first in centric ordering; they carry the image contrast)
MOTION_FREE_CENTRE = 0.08


def modulate_kspace_lines(images: np.ndarray, lines: np.ndarray,
                          factor: np.ndarray) -> np.ndarray:
    """Multiply phase-encode lines of the images' k-space by ``factor``.

    ``images`` is real ``[..., H, W]``; k-space is its 2D FFT, whose rows (frequency
    index ``lines``, FFT order) are the phase-encode lines. ``factor`` (complex: a phase
    ``exp(1j * phi)``, real: a gain) is broadcastable to ``[..., len(lines), W]``.
    Returns the complex image: an MR scanner shows its magnitude.
    """
    kspace = np.fft.fft2(images)
    kspace[..., lines, :] *= factor
    return np.fft.ifft2(kspace)


def _check_arguments(images: np.ndarray, name: str, severity: int) -> None:
    if name not in SEVERITY_PARAMETERS:
        raise UserError(f"unknown corruption {name!r}: expected one of {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or severity not in SEVERITIES:
        raise UserError(f"severity must be an integer 1..5, got {severity!r}")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise UserError(f"expected uint8 images (as MedMNIST stores them), got {got}")
    if images.ndim not in (3, 4):
        raise UserError(f"expected a batch [N, H, W] or [N, H, W, C], got shape "
                        f"{'x'.join(map(str, images.shape))}")


def _bias_fields(rng: np.random.Generator, count: int, height: int, width: int,
                 strength: float) -> np.ndarray:
    """``count`` smooth gain fields ``[count, H, W]`` with ``max |log gain| == strength``."""
    rows, cols = np.linspace(-1.0, 1.0, height), np.linspace(-1.0, 1.0, width)
    order = np.add.outer(np.arange(BIAS_FIELD_DEGREE + 1), np.arange(BIAS_FIELD_DEGREE + 1))
    fields = np.empty((count, height, width))
    for index in range(count):
        coefficients = rng.uniform(-1.0, 1.0, order.shape)
        # the constant term would only rescale the image; keep the total degree low
        coefficients[(order == 0) | (order > BIAS_FIELD_DEGREE)] = 0.0
        log_gain = legendre.leggrid2d(rows, cols, coefficients)
        fields[index] = np.exp(strength * log_gain / np.abs(log_gain).max())
    return fields


def _motion(images: np.ndarray, rng: np.random.Generator, fraction: float,
            max_shift: float) -> np.ndarray:
    """Magnitude images after random translations during a fraction of the PE lines."""
    count, height, width = images.shape[0], images.shape[-2], images.shape[-1]
    frequencies = np.fft.fftfreq(height)
    eligible = np.flatnonzero(np.abs(frequencies) > MOTION_FREE_CENTRE / 2)
    moved = min(int(round(fraction * height)), eligible.size)
    row_frequency = frequencies[:, None]
    column_frequency = np.fft.fftfreq(width)[None, :]
    result = np.empty(images.shape)
    for index in range(count):
        # the same draws at every severity: lines are a prefix of one permutation and
        # shifts one unit draw scaled by max_shift, so stronger means a superset
        order = rng.permutation(eligible)
        unit_shifts = rng.uniform(-1.0, 1.0, (eligible.size, 2))
        lines = order[:moved]
        shifts = max_shift * unit_shifts[:moved]
        # Fourier shift theorem: a shift (dy, dx) multiplies k-space by
        # exp(-2 pi i (ky dy + kx dx)) on the lines acquired while it lasted
        phase = -2.0 * np.pi * (row_frequency[lines] * shifts[:, :1]
                                + column_frequency * shifts[:, 1:])
        result[index] = np.abs(modulate_kspace_lines(images[index], lines, np.exp(1j * phase)))
    return result


def _ghosting(images: np.ndarray, intensity: float) -> np.ndarray:
    odd_lines = np.arange(1, images.shape[-2], 2)
    # the odd lines alone are (image - image shifted by H/2) / 2, so a gain 1 - 2a on
    # them gives (1 - a) image + a shifted image: a ghost of intensity a
    return np.abs(modulate_kspace_lines(images, odd_lines, 1.0 - 2.0 * intensity))


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Corrupt a batch of uint8 images with corruption ``name`` at ``severity`` (1..5).

    Args:
        images: uint8 ``[N, H, W]`` or ``[N, H, W, C]`` (MedMNIST layout).
        name: one of :data:`CORRUPTIONS`.
        severity: 1 (mild) to 5 (strong); parameters in :data:`SEVERITY_PARAMETERS`.
        seed: seeds every random draw; the same seed gives the same result.

    Returns:
        The corrupted images, same shape, uint8, clipped to 0..255.
    """
    _check_arguments(images, name, severity)
    parameter = SEVERITY_PARAMETERS[name][severity - 1]
    rng = np.random.default_rng(seed)
    # work channel-first in [0, 1]: [N, C, H, W]
    channels_last = images.ndim == 4
    clean = (np.moveaxis(images, -1, 1) if channels_last else images[:, None]) / 255.0
    count, _, height, width = clean.shape
    scale = min(height, width) / REFERENCE_SIDE

    if name == "gaussian_noise":
        corrupted = clean + parameter * rng.standard_normal(clean.shape)
    elif name == "gaussian_blur":
        sigma = parameter * scale
        corrupted = ndimage.gaussian_filter(clean, sigma=(0, 0, sigma, sigma), mode="nearest")
    elif name == "contrast":
        mean = clean.mean(axis=(1, 2, 3), keepdims=True)
        corrupted = mean + parameter * (clean - mean)
    elif name == "brightness":
        corrupted = clean + parameter
    elif name == "bias_field":
        # one gain per position, shared by the channels: it is the coil's sensitivity
        corrupted = clean * _bias_fields(rng, count, height, width, parameter)[:, None]
    elif name == "motion":
        fraction, max_shift = parameter
        corrupted = _motion(clean, rng, fraction, max_shift * scale)
    else:
        corrupted = _ghosting(clean, parameter)

    quantised = np.clip(np.rint(corrupted * 255.0), 0, 255).astype(np.uint8)
    return np.moveaxis(quantised, 1, -1) if channels_last else quantised[:, 0]
