"""Synthetic surgical-smoke pairs on real tissue images (``desmoke-tissue``).

Surgical smoke is an aerosol from electrocautery between the endoscope and the tissue;
no smoky/clean pair of one real scene can be recorded, so smoke is added to clean images
of real tissue with the scattering that produces it:

- **tissue**: the two colour tissue images of scikit-image, ``data.retina()`` (a 1411 x
  1411 fundus photograph: vessels on red-orange tissue, black outside the fundus disc) and
  ``data.immunohistochemistry()`` (512 x 512, stained tissue), cropped at a random
  position (crops are kept only when at least ``min_tissue`` of them lies inside the
  fundus disc) and scale (0.5-2x), flipped and rotated by multiples of 90 degrees; colour
  jittered (gamma, saturation and a small hue rotation in YIQ, contrast, brightness, and a
  gain on green and blue below that on red, towards the reds and pinks of surgical
  scenes); on some, specular highlights: small saturated blobs where wet tissue mirrors
  the endoscope's light.
- **smoke** by the atmospheric scattering model (Koschmieder; Narasimhan & Nayar, IJCV
  2002): ``I = J t + A (1 - t)`` with transmission ``t = exp(-beta d)``, where ``J`` is the
  clean tissue, ``A`` the airlight and ``d`` in [0, 1] the smoke's density along the line
  of sight. ``d`` is fractal noise, a sum of octaves of smooth (cubic B-spline) value noise
  with amplitudes falling as ``p**k`` per octave (a 1/f-like spectrum), passed through a
  logistic of random gain and offset (clear patches, dense plumes, nearly clear and dense
  samples) and shaped by a soft plume envelope; ``beta`` is drawn per sample. The airlight
  is near white with a small tint off the grey axis (smoke is not perfectly grey). The
  light source scattered back by the smoke adds a soft glare ``g G(x) d A`` (``G`` a broad
  Gaussian, so it is strongest where the smoke is dense), the smoky image is desaturated
  towards its luminance by ``s (1 - t)``, and a little Gaussian sensor noise is added; the
  result is clipped to [0, 1]. ``transmission`` is the ``t`` of the model.
- **video**: the density drifts (every octave advected with one velocity) and evolves (the
  noise lattice is interpolated along time too), and the camera moves slowly (the crop
  window shifts smoothly, sub-pixel, with a little wobble), frame to frame.

**Splits by region**: each image is cut into rectangles (half-open ``[start, end)`` rows
and columns, in source pixels) with guard bands of 32 pixels between them, and a crop is
resampled only from its split's rectangle, so no validation or test pixel is ever seen in
training:

- ``retina`` (1411 x 1411): train columns 0-800, val columns 832-1024, test columns
  1056-1411, all rows (crops inside the fundus disc);
- ``immunohistochemistry`` (512 x 512): train columns 0-304 (all rows); val rows 352-512
  and test rows 0-320, both of columns 336-512;
- ``coffee``, ``chelsea`` and ``astronaut`` (natural colour photographs of scikit-image),
  whole, in training only (one draw in five): scenes of other colours, so that a model
  learns the smoke rather than the two tissues' palettes (trained on the tissue images
  alone, the models made smoky photographs worse than they were).

A crop's scale is drawn within what its rectangle holds (the narrow validation regions
give zoomed-in crops at large sizes). Sample ``i`` of a split at epoch ``e`` is drawn from
``numpy.random.default_rng([seed, split code, stream, e, i])`` (split codes train 1, val
2, test 3; stream 0 for pairs, 1 for sequences), so it is always the same.

``prepare desmoke-tissue`` writes ``val/`` (48 pairs) and ``test/`` (96 pairs) of 256 x
256 pixels in the DesmokeData layout (``0.png`` smoky, ``0_gt.png`` clean, 8-bit RGB),
``test_video/seq0`` ... ``seq3`` (16 frames of 128 x 128 each, same layout per frame) and
``split.json`` saying how they were made. Training pairs are simulated on the fly.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from domainvit.files import atomic_write

__all__ = ["DESMOKE_TISSUE", "REGIONS", "SPLIT_CODES", "SmokeSettings", "SmokeSimulator",
           "build_desmoke_tissue", "scatter", "settings_record", "tissue_sources"]

DESMOKE_TISSUE = "desmoke-tissue"
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
PAIR_STREAM, SEQUENCE_STREAM = 0, 1
GUARD = 32
#: per image and split, the rectangle ``((row0, row1), (col0, col1))`` crops come from
REGIONS: dict[str, dict[str, tuple[tuple[int, int], tuple[int, int]]]] = {
    "retina": {"train": ((0, 1411), (0, 800)), "val": ((0, 1411), (832, 1024)),
               "test": ((0, 1411), (1056, 1411))},
    "immunohistochemistry": {"train": ((0, 512), (0, 304)), "val": ((352, 512), (336, 512)),
                             "test": ((0, 320), (336, 512))},
    # natural colour photographs, whole and for training only: scenes of other colours, so
    # the models learn the smoke rather than the two tissues' palettes
    "coffee": {"train": ((0, 400), (0, 600))},
    "chelsea": {"train": ((0, 300), (0, 451))},
    "astronaut": {"train": ((0, 512), (0, 512))},
}
#: the sources with no validation or test region
TRAIN_ONLY = ("coffee", "chelsea", "astronaut")
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_LUMA = _YIQ[0].astype(np.float32)


@dataclass(frozen=True)
class SmokeSettings:
    """What pairs are simulated with; ranges are ``(low, high)`` drawn uniformly."""

    size: int = 96  # crop side in pixels
    beta: tuple[float, float] = (0.2, 2.5)  # scattering coefficient x path length
    coverage: tuple[float, float] = (-1.5, 1.5)  # density offset: clear ... dense
    gain: tuple[float, float] = (1.5, 4.0)  # logistic gain: soft ... sharp plume edges
    clear_probability: float = 0.1  # samples with nearly no smoke
    octaves: int = 5
    persistence: tuple[float, float] = (0.45, 0.65)  # amplitude ratio between octaves
    cells: tuple[float, float] = (1.5, 3.0)  # coarsest octave's noise cells across a frame
    airlight: tuple[float, float] = (0.8, 0.97)  # grey level of A
    tint: tuple[float, float] = (0.015, 0.06)  # distance of A from the grey axis
    glare_probability: float = 0.5
    glare: tuple[float, float] = (0.1, 0.4)
    desaturation: tuple[float, float] = (0.0, 0.5)
    noise: tuple[float, float] = (0.002, 0.012)  # sensor noise standard deviation
    scale: tuple[float, float] = (0.5, 2.0)  # output pixels per source pixel
    brightness: tuple[float, float] = (0.8, 1.1)
    contrast: tuple[float, float] = (0.8, 1.2)
    gamma: tuple[float, float] = (0.8, 1.25)
    saturation: tuple[float, float] = (0.75, 1.2)
    hue: float = 0.03  # largest hue rotation, in turns
    redness: tuple[float, float] = (0.0, 0.15)
    specular_probability: float = 0.3
    min_tissue: float = 0.9  # share of a crop that must lie in the fundus disc
    sources: tuple[str, ...] = ("retina", "immunohistochemistry", *TRAIN_ONLY)
    #: training draws; validation and test draw from the tissue images alone (0.6 / 0.4)
    source_weights: tuple[float, ...] = (0.48, 0.32, 0.08, 0.06, 0.06)
    smoke_speed: tuple[float, float] = (0.2, 2.0)  # output pixels per frame
    camera_speed: tuple[float, float] = (0.2, 1.0)  # output pixels per frame
    evolution: tuple[float, float] = (0.02, 0.06)  # noise cells per frame, coarsest octave

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        unknown = [s for s in self.sources if s not in REGIONS]
        if unknown or len(self.sources) != len(self.source_weights) or not self.sources:
            raise ValueError(f"sources must be some of {list(REGIONS)} with one weight each")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale range must be positive and ordered, got {self.scale}")
        if not 0 <= self.beta[0] <= self.beta[1]:
            raise ValueError(f"beta range must be non-negative and ordered, got {self.beta}")


def settings_record(settings: SmokeSettings) -> dict:
    """The settings as JSON values (for ``split.json`` and checkpoints)."""
    return json.loads(json.dumps(asdict(settings)))


@functools.cache
def tissue_sources() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (float32 RGB [H, W, 3] in [0, 1], tissue mask [H, W])}``: the mask is the
    fundus disc (eroded by 8 pixels off its dark rim) or everything."""
    from skimage import data

    retina = data.retina()
    disc = ndimage.binary_fill_holes(retina.max(axis=-1) > 20)
    disc = ndimage.binary_erosion(disc, iterations=8)
    sources = {"retina": (retina.astype(np.float32) / 255, disc)}
    for name in ("immunohistochemistry", *TRAIN_ONLY):
        image = getattr(data, name)()
        sources[name] = (image.astype(np.float32) / 255, np.ones(image.shape[:2], bool))
    return sources


def scatter(clean: np.ndarray, transmission: np.ndarray, airlight: np.ndarray) -> np.ndarray:
    """The scattering model ``I = J t + A (1 - t)``: clean ``J`` ``[..., 3, H, W]``,
    transmission ``t`` ``[..., H, W]``, airlight ``A`` ``[3]``."""
    t = transmission[..., None, :, :]
    return clean * t + airlight[:, None, None] * (1 - t)


def _bspline(coords: np.ndarray, period: int) -> np.ndarray:
    """Weights ``[len(coords), period]`` of the cubic B-spline through a periodic lattice."""
    base = np.floor(coords).astype(int)
    f = coords - base
    taps = ((1 - f) ** 3 / 6, (3 * f**3 - 6 * f**2 + 4) / 6,
            (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6, f**3 / 6)
    weights = np.zeros((len(coords), period))
    rows = np.arange(len(coords))
    for k, tap in enumerate(taps):
        np.add.at(weights, (rows, (base - 1 + k) % period), tap)
    return weights


class _Fractal:
    """Fractal value noise over ``size x size`` pixels that drifts and evolves: octave
    ``k`` has ``cells * 2**k`` lattice cells across the frame, amplitude ``p**k``, and is
    interpolated (separably, cubic B-splines) in space and time."""

    def __init__(self, rng: np.random.Generator, s: SmokeSettings, frames: int) -> None:
        self.size, self.layers = s.size, []
        cells, p = rng.uniform(*s.cells), rng.uniform(*s.persistence)
        rate = rng.uniform(*s.evolution)
        for k in range(s.octaves):
            n = cells * 2**k
            period, speed = 2 * int(np.ceil(n)) + 4, rate * 2 ** (k / 2)
            steps = int(np.ceil(frames * speed)) + 4
            self.layers.append((n, p**k, speed, rng.uniform(0, period, 3),
                                rng.standard_normal((steps, period, period))))

    def __call__(self, frame: float, shift: np.ndarray) -> np.ndarray:
        pixels = (np.arange(self.size) + 0.5) / self.size
        total = np.zeros((self.size, self.size))
        for n, amplitude, speed, offset, lattice in self.layers:
            period, steps = lattice.shape[1], lattice.shape[0]
            when = _bspline(np.array([offset[2] % steps + frame * speed]), steps)[0]
            plane = np.tensordot(when, lattice, axes=1)
            wy = _bspline(pixels * n + offset[0] - shift[0] * n / self.size, period)
            wx = _bspline(pixels * n + offset[1] - shift[1] * n / self.size, period)
            total += amplitude * (wy @ plane @ wx.T)
        return total


def _blob(size: int, centre: np.ndarray, sigma: np.ndarray | float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] + 0.5
    sigma = np.broadcast_to(sigma, (2,))
    return np.exp(-0.5 * (((yy - centre[0]) / sigma[0]) ** 2 + ((xx - centre[1]) / sigma[1]) ** 2))


class SmokeSimulator:
    """Smoky/clean pairs and sequences of one split, deterministic given
    ``(seed, split, index, epoch)``."""

    def __init__(self, settings: SmokeSettings, split: str, seed: int = 0) -> None:
        if split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {list(SPLIT_CODES)}, got {split!r}")
        self.settings, self.split, self.seed = settings, split, seed
        self._tables: dict[str, np.ndarray] = {}

    def rng(self, stream: int, index: int, epoch: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_CODES[self.split], stream, epoch, index])

    def pair(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]:
        """``smoky`` and ``clean`` (float32 ``[3, H, W]`` in [0, 1]), ``transmission``
        ``[H, W]`` and ``airlight`` ``[3]``."""
        sample = self._render(self.rng(PAIR_STREAM, index, epoch), 1)
        return {k: v if k == "airlight" else v[0] for k, v in sample.items()}

    def sequence(self, index: int, frames: int, epoch: int = 0) -> dict[str, np.ndarray]:
        """As :meth:`pair` with a leading time axis (``airlight`` is one for the sequence)."""
        return self._render(self.rng(SEQUENCE_STREAM, index, epoch), frames)

    # --- the clean tissue ------------------------------------------------------------

    def region(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """The image and tissue mask of this split's rectangle of ``source``."""
        image, mask = tissue_sources()[source]
        (r0, r1), (c0, c1) = REGIONS[source][self.split]
        return image[r0:r1, c0:c1], mask[r0:r1, c0:c1]

    def _tissue_share(self, source: str, mask: np.ndarray, y: int, x: int, w: int) -> float:
        if source not in self._tables:
            table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
            table[1:, 1:] = mask.cumsum(0).cumsum(1)
            self._tables[source] = table
        t = self._tables[source]
        return (t[y + w, x + w] - t[y, x + w] - t[y + w, x] + t[y, x]) / (w * w)

    def window_path(self, rng: np.random.Generator, source: str, frames: int
                    ) -> tuple[np.ndarray, float]:
        """Top-left corners ``[T, 2]`` (source pixels, in the region) and side of the crop
        window, moving smoothly over ``frames``."""
        s = self.settings
        image, mask = self.region(source)
        room = min(image.shape[:2]) - 2
        low, high = s.size / s.scale[1], min(s.size / s.scale[0], room)
        if room < low:
            raise ValueError(f"a {s.size}-pixel crop at scale {s.scale[1]} needs {low:.0f} "
                             f"source pixels; the {self.split} region of {source} has {room}")
        side = float(np.exp(rng.uniform(np.log(low), np.log(max(high, low)))))
        stride = side / s.size
        steps = np.arange(frames)[:, None]
        angle, phase = rng.uniform(0, 2 * np.pi, 2)
        drift = steps * rng.uniform(*s.camera_speed) * stride * np.array([np.sin(angle),
                                                                          np.cos(angle)])
        wobble = rng.uniform(0, 0.5) * stride * np.sin(0.4 * steps + phase + np.array([0, 1]))
        path = drift + wobble
        span = image.shape[0] - side - 1, image.shape[1] - side - 1
        lo, hi = -path.min(0), np.array(span) - path.max(0)
        if (hi < lo).any():  # the travel does not fit: keep the camera still
            path, lo, hi = np.zeros_like(path), np.zeros(2), np.array(span)
        best, best_share = None, -1.0
        for _ in range(64):
            origin = rng.uniform(lo, hi)
            corners = origin + path
            share = min(self._tissue_share(source, mask, int(y), int(x), int(np.ceil(side)))
                        for y, x in corners[[0, -1]])
            if share > best_share:
                best, best_share = corners, share
            if share >= s.min_tissue:
                break
        return best, side

    def _clean(self, rng: np.random.Generator, frames: int) -> np.ndarray:
        """Clean tissue ``[T, H, W, 3]``: crop, resample, jitter, highlights, flip."""
        s = self.settings
        names = [n for n in s.sources if self.split in REGIONS[n]]
        weights = np.array([w for n, w in zip(s.sources, s.source_weights, strict=True)
                            if n in names])
        source = names[rng.choice(len(names), p=weights / weights.sum())]
        image, _ = self.region(source)
        corners, side = self.window_path(rng, source, frames)
        stride = side / s.size
        sigma = max(0.0, (stride - 1) / 2)  # anti-aliasing before sampling coarser
        margin = int(np.ceil(3 * sigma)) + 2
        y0 = max(int(corners[:, 0].min()) - margin, 0)
        x0 = max(int(corners[:, 1].min()) - margin, 0)
        y1 = min(int(np.ceil(corners[:, 0].max() + side)) + margin, image.shape[0])
        x1 = min(int(np.ceil(corners[:, 1].max() + side)) + margin, image.shape[1])
        patch = image[y0:y1, x0:x1]
        if sigma > 0:
            patch = ndimage.gaussian_filter(patch, (sigma, sigma, 0), mode="nearest")
        grid = (np.arange(s.size) + 0.5) * stride - 0.5
        out = np.empty((frames, s.size, s.size, 3), np.float32)
        for f, (y, x) in enumerate(corners):
            yy, xx = np.meshgrid(grid + y - y0, grid + x - x0, indexing="ij")
            for c in range(3):
                out[f, ..., c] = ndimage.map_coordinates(patch[..., c], [yy, xx], order=1,
                                                         mode="nearest")
        out = self._jitter(rng, out)
        if rng.random() < s.specular_probability:  # highlights fixed on the tissue
            light = np.zeros(out.shape[:3], np.float32)
            for _ in range(rng.integers(1, 9)):
                spot = rng.uniform(corners.min(0), corners.max(0) + side)
                radius = rng.uniform(0.004, 0.02) * s.size * rng.uniform(0.6, 1.6, 2)
                for f, corner in enumerate(corners):
                    light[f] += _blob(s.size, (spot - corner) / stride, radius)
            light = np.clip(1.5 * light, 0, 1)[..., None]
            out = out + (1 - out) * light
        out = np.rot90(out, int(rng.integers(4)), axes=(1, 2))
        return out[:, :, ::-1] if rng.random() < 0.5 else out

    def _jitter(self, rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
        s = self.settings
        gamma, saturation = rng.uniform(*s.gamma), rng.uniform(*s.saturation)
        turn = 2 * np.pi * rng.uniform(-s.hue, s.hue)
        inner = np.diag([1.0, saturation, saturation])
        inner[1:, 1:] = saturation * np.array([[np.cos(turn), -np.sin(turn)],
                                               [np.sin(turn), np.cos(turn)]])
        matrix = (np.linalg.inv(_YIQ) @ inner @ _YIQ).astype(np.float32)
        rgb = np.clip(rgb, 0, 1) ** gamma @ matrix.T
        mean = float((rgb[0] @ _LUMA).mean())
        rgb = (rgb - mean) * rng.uniform(*s.contrast) + mean
        red = rng.uniform(*s.redness)
        gains = rng.uniform(*s.brightness) * np.array([1, 1 - red, 1 - red / 2], np.float32)
        return np.clip(rgb * gains, 0, 1).astype(np.float32)

    # --- the smoke -------------------------------------------------------------------

    def _render(self, rng: np.random.Generator, frames: int) -> dict[str, np.ndarray]:
        s = self.settings
        clean = np.ascontiguousarray(self._clean(rng, frames).transpose(0, 3, 1, 2))
        field = _Fractal(rng, s, frames)
        angle = rng.uniform(0, 2 * np.pi)
        velocity = rng.uniform(*s.smoke_speed) * np.array([np.sin(angle), np.cos(angle)])
        gain, coverage = rng.uniform(*s.gain), rng.uniform(*s.coverage)
        thin = rng.uniform(0, 0.1) if rng.random() < s.clear_probability else 1.0
        plume_at = rng.uniform(0, s.size, 2)
        plume = rng.uniform(0, 0.7), rng.uniform(0.25, 0.7) * s.size
        noise = np.stack([field(f, velocity * f) for f in range(frames)])
        noise = (noise - noise[0].mean()) / max(float(noise[0].std()), 1e-9)
        density = 1 / (1 + np.exp(-gain * (noise + coverage)))
        for f in range(frames):
            envelope = _blob(s.size, plume_at + velocity * f, plume[1])
            density[f] *= 1 - plume[0] + plume[0] * envelope
        density = (thin * density).astype(np.float32)
        t = np.exp(-rng.uniform(*s.beta) * density).astype(np.float32)

        grey = np.ones(3) / np.sqrt(3)
        axis = np.cross(grey, rng.standard_normal(3))
        airlight = rng.uniform(*s.airlight) + rng.uniform(*s.tint) * axis / np.linalg.norm(axis)
        airlight = np.clip(airlight, 0.7, 1.0).astype(np.float32)
        smoky = scatter(clean, t, airlight)
        if rng.random() < s.glare_probability:
            glow = _blob(s.size, rng.uniform(0, s.size, 2), rng.uniform(0.15, 0.4) * s.size)
            smoky += rng.uniform(*s.glare) * (glow * density)[:, None] * airlight[:, None, None]
        luminance = np.einsum("c,tchw->thw", _LUMA, smoky)[:, None]
        smoky += rng.uniform(*s.desaturation) * (1 - t[:, None]) * (luminance - smoky)
        smoky += rng.normal(0, rng.uniform(*s.noise), smoky.shape).astype(np.float32)
        return {"smoky": np.clip(smoky, 0, 1).astype(np.float32),
                "clean": clean.astype(np.float32), "transmission": t, "airlight": airlight}


#: the prepared benchmark: 256-pixel pairs, 128-pixel sequences
BENCHMARK = SmokeSettings(size=256)
VIDEO = SmokeSettings(size=128)
BENCHMARK_COUNTS = {"val": 48, "test": 96}
VIDEO_SEQUENCES, VIDEO_FRAMES = 4, 16


def _write_pair(folder: Path, stem: str, smoky: np.ndarray, clean: np.ndarray) -> None:
    from domainvit.datasets.frames import write_frame

    # the build folder is renamed into place when complete, so no file needs its own fsync
    write_frame(folder / f"{stem}.png", smoky.transpose(1, 2, 0), 8, durable=False)
    write_frame(folder / f"{stem}_gt.png", clean.transpose(1, 2, 0), 8, durable=False)


def build_desmoke_tissue(folder: Path, progress: type) -> None:
    """The ``desmoke-tissue`` benchmark into ``folder`` (see the module docstring)."""
    started = time.perf_counter()
    folder = Path(folder)
    for split, count in BENCHMARK_COUNTS.items():
        simulator = SmokeSimulator(BENCHMARK, split)
        for i in progress(range(count), desc=f"{DESMOKE_TISSUE} {split}", unit="pair"):
            pair = simulator.pair(i)
            _write_pair(folder / split, str(i), pair["smoky"], pair["clean"])
    simulator = SmokeSimulator(VIDEO, "test")
    for n in progress(range(VIDEO_SEQUENCES), desc=f"{DESMOKE_TISSUE} test_video",
                      unit="sequence"):
        sequence = simulator.sequence(n, VIDEO_FRAMES)
        for f in range(VIDEO_FRAMES):
            _write_pair(folder / "test_video" / f"seq{n}", str(f), sequence["smoky"][f],
                        sequence["clean"][f])
    regions = {source: {split: {"rows": list(rows), "cols": list(cols)}
                        for split, (rows, cols) in splits.items()}
               for source, splits in REGIONS.items()}
    record = {
        "name": DESMOKE_TISSUE,
        "description": "synthetic surgical smoke (atmospheric scattering with fractal, "
                       "drifting density, tinted airlight, glare and sensor noise) on real "
                       "tissue images of scikit-image, split by region",
        "settings": {"pairs": settings_record(BENCHMARK), "video": settings_record(VIDEO)},
        "counts": {**BENCHMARK_COUNTS, "test_video": {"sequences": VIDEO_SEQUENCES,
                                                      "frames": VIDEO_FRAMES}},
        "layout": "DesmokeData: <i>.png smoky, <i>_gt.png clean (8-bit RGB PNG)",
        "regions": {"images": {"retina": "skimage.data.retina()",
                               "immunohistochemistry": "skimage.data.immunohistochemistry()"},
                    "guard_px": GUARD, "rectangles": regions,
                    "note": "half-open [start, end) rows and columns in source pixels; every "
                            "crop is resampled only from its split's rectangle"},
        "seed_streams": {"rng": "default_rng([seed, split code, stream, epoch, index])",
                         "seed": 0, "split_codes": SPLIT_CODES,
                         "streams": {"pairs": PAIR_STREAM, "sequences": SEQUENCE_STREAM},
                         "train": "simulated on the fly (split code 1)"},
        "seconds": round(time.perf_counter() - started, 1),
    }
    with atomic_write(folder / "split.json", durable=False) as temporary:
        temporary.write_text(json.dumps(record, indent=2) + "\n")
