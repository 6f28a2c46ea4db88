"""Hologram files in, complex object fields out.

Reads PNG/TIFF (8-16 bit) or ``.npy`` intensity; the physical parameters
(``wavelength_nm``, ``pixel_um``, ``z_mm`` or ``"auto"``) come from the config (the
checkpoint's, changed with ``--set data.z_mm=...``) and, per file, from a JSON sidecar
beside it (``holo.png`` -> ``holo.json``), whose values win for its file. Writes, per
hologram ``<stem>``:

- ``<stem>.field.npy``: the object-plane field, complex64, the hologram's shape;
- ``<stem>.amplitude.png``: 16-bit, amplitude x 32768 (1.0, the background, is 32768;
  clipped at 2);
- ``<stem>.phase.png``: 16-bit, phase in [-pi, pi) mapped linearly onto 0..65535;
- ``<stem>.json``: the parameters used, the distance chosen and how (given, refined by
  autofocus around the given one, or autofocus over the trained range), the focus curve
  when autofocus ran, and the PNG scalings;
- ``<stem>.prediction.json``: the input check's record and the outputs' names.

A bad file (not an image, colour with different channels, smaller than the model's
minimum, saturated, all dark, parameters outside physical ranges, or a distance beyond
the band limit of the grid) is refused with one message and nothing is written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from domainvit.datasets.holo_cells import normalise_hologram
from domainvit.distribution import InputGuard
from domainvit.errors import UserError
from domainvit.files import atomic_write
from domainvit.optics import band_fraction, critical_distance
from domainvit.outputs import SIDECAR_SUFFIX, output_stem, write_sidecar
from domainvit.tasks.holography.distribution import compare_hologram
from domainvit.tasks.holography.focus import FocusResult, autofocus

__all__ = [
    "HoloParams",
    "Reconstruction",
    "parameters_for",
    "predict_holograms",
    "read_hologram",
    "reconstruct",
]

SUFFIXES = (".png", ".tif", ".tiff", ".npy")
MAX_FILE_BYTES = 512 * 2**20
MAX_PIXELS = 4096 * 4096
#: a frame with at least this share of its pixels at the top of its range is saturated
SATURATED_SHARE = 0.01
#: the least share of the band a distance may leave the grid (see ``domainvit.optics``)
MIN_BAND_FRACTION = 0.5
#: physical ranges of the parameters
WAVELENGTH_NM = (150.0, 2500.0)
PIXEL_UM = (0.05, 100.0)
Z_MM = (0.001, 2000.0)
AMPLITUDE_SCALE = 32768.0


@dataclass(frozen=True)
class HoloParams:
    """A hologram's physical parameters: wavelength (nm), pixel pitch (um), distance (mm)
    or ``"auto"``."""

    wavelength_nm: float
    pixel_um: float
    z_mm: float | str

    def check(self, name: str) -> None:
        for label, value, (low, high), unit in (
                ("wavelength", self.wavelength_nm, WAVELENGTH_NM, "nm"),
                ("pixel pitch", self.pixel_um, PIXEL_UM, "um")):
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and low <= value <= high):
                raise UserError(f"{name}: {label} {value!r} {unit} is outside the physical "
                                f"range {low:g}-{high:g} {unit}")
        if self.z_mm != "auto":
            if not (isinstance(self.z_mm, (int, float)) and math.isfinite(self.z_mm)
                    and Z_MM[0] <= self.z_mm <= Z_MM[1]):
                raise UserError(f"{name}: distance z_mm {self.z_mm!r} is outside "
                                f"{Z_MM[0]:g}-{Z_MM[1]:g} mm (or give \"auto\")")


def parameters_for(path: Path, data_cfg: Any) -> HoloParams:
    """The parameters of the hologram at ``path``: the config's, with the values of the
    sidecar ``<stem>.json`` beside it where there is one."""
    values: dict[str, Any] = {"wavelength_nm": data_cfg.wavelength_nm,
                              "pixel_um": data_cfg.pixel_um, "z_mm": data_cfg.z_mm}
    sidecar = Path(path).with_suffix(".json")
    if sidecar.is_file() and sidecar != Path(path):
        try:
            given = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{sidecar}: not a readable JSON file ({exc})") from None
        if not isinstance(given, dict):
            raise UserError(f"{sidecar}: expected a JSON object with wavelength_nm, pixel_um "
                            f"and z_mm")
        if "z_source" in given:
            # a reconstruction's own record (``--out`` was the input's folder): the distance
            # asked for is ``z_given_mm`` (None: autofocus), not the one chosen, so running
            # again asks the same question instead of drifting by a refinement each time
            given = {**given, "z_mm": given.get("z_given_mm") or "auto"}
        for key in values:
            if key in given:
                values[key] = given[key]
    params = HoloParams(**values)
    params.check(Path(path).name)
    return params


def read_hologram(path: Path, min_size: int = 16) -> tuple[np.ndarray, list[str]]:
    """The raw intensity frame ``[H, W]`` of a hologram file (its own dtype) and notes on
    how it was converted; a :class:`UserError` naming the file for one it cannot take."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"{name}: expected a hologram as {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise UserError(f"{name}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(f"{name}: larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        if suffix == ".npy":
            frame = np.load(path, allow_pickle=False)
        elif suffix == ".png":
            import imageio.v3 as iio

            frame = iio.imread(path)
        else:
            import tifffile

            frame = tifffile.imread(path)
    except Exception as exc:  # the readers raise many kinds on a broken file
        raise UserError(f"{name}: cannot read it as a hologram ({type(exc).__name__}: "
                        f"{exc})") from None
    frame = np.asarray(frame)
    notes = []
    if frame.ndim == 3 and frame.shape[-1] in (3, 4):
        colour = frame[..., :3]
        if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(
                colour[..., 0], colour[..., 2]):
            frame = colour[..., 0]
            notes.append("the file's three colour channels are identical (a grey frame "
                         "saved as colour): one was kept")
        else:
            raise UserError(f"{name}: a colour image (its channels differ); an inline "
                            f"hologram is one intensity at one wavelength: save the camera's "
                            f"monochrome frame, or the channel of the laser's colour")
    if frame.ndim != 2:
        raise UserError(f"{name}: expected one 2-D intensity frame, got an array of shape "
                        f"{list(frame.shape)}")
    if frame.dtype == bool or not (np.issubdtype(frame.dtype, np.integer)
                                   or np.issubdtype(frame.dtype, np.floating)):
        raise UserError(f"{name}: expected integer counts or float intensities, got "
                        f"{frame.dtype}")
    if min(frame.shape) < min_size:
        raise UserError(f"{name}: {frame.shape[0]}x{frame.shape[1]} pixels is smaller than "
                        f"the model's minimum of {min_size} pixels on a side")
    if frame.size > MAX_PIXELS:
        raise UserError(f"{name}: {frame.size} pixels is more than the limit {MAX_PIXELS}")
    values = frame.astype(np.float64)
    if not np.isfinite(values).all():
        raise UserError(f"{name}: contains NaN or infinite values")
    if values.min() < 0:
        raise UserError(f"{name}: contains negative intensities")
    if values.max() <= 0 or values.std() == 0:
        raise UserError(f"{name}: all dark or flat (no hologram recorded): check the "
                        f"illumination and the exposure")
    if np.issubdtype(frame.dtype, np.integer):
        top = np.iinfo(frame.dtype).max
        if values.mean() < 1e-3 * top and values.max() < 64:
            raise UserError(f"{name}: nearly all dark (mean {values.mean():.2g} of a "
                            f"{top}-count range): too few levels to reconstruct from")
        high = values.max()
        if high >= 0.98 * top and (values >= high).mean() >= SATURATED_SHARE:
            raise UserError(f"{name}: saturated: {(values >= high).mean():.1%} of the "
                            f"pixels are at the top of the range; reduce the exposure")
    elif (values >= values.max()).mean() >= SATURATED_SHARE:
        raise UserError(f"{name}: {(values >= values.max()).mean():.1%} of the pixels share "
                        f"the maximum value: a clipped (saturated) frame")
    return frame, notes


def check_band_limit(name: str, shape: tuple[int, int], params: HoloParams, z_mm: float,
                     pad_factor: float) -> None:
    n = int(round(min(shape) * pad_factor))
    fraction = band_fraction(n, params.pixel_um * 1e-6, params.wavelength_nm * 1e-9,
                             z_mm * 1e-3)
    if fraction < MIN_BAND_FRACTION:
        limit = critical_distance(n, params.pixel_um * 1e-6, params.wavelength_nm * 1e-9,
                                  MIN_BAND_FRACTION) * 1e3
        raise UserError(f"{name}: distance {z_mm:g} mm is beyond the band limit of a "
                        f"{shape[0]}x{shape[1]} grid of {params.pixel_um:g} um pixels: only "
                        f"{fraction:.0%} of the band would survive (at most {limit:.3g} mm "
                        f"keeps half; a larger frame reaches farther)")


@dataclass
class Reconstruction:
    """One hologram's reconstruction and what it was made with."""

    field: np.ndarray  # complex64 [H, W], the model's object-plane field
    backprop: np.ndarray  # complex64 [H, W], plain ASM back-propagation at the same z
    z_mm: float
    z_source: str  # "given", "refined" or "autofocus"
    params: HoloParams
    focus: FocusResult | None = None
    notes: list[str] = field(default_factory=list)


def choose_distance(name: str, hologram: torch.Tensor, params: HoloParams, data_cfg: Any,
                    pad_factor: float) -> tuple[float, str, FocusResult | None]:
    """The distance (mm) to reconstruct at: autofocus over the trained range for
    ``"auto"``, or around the given one within ``data_cfg.refine_mm``."""
    wavelength, pixel = params.wavelength_nm * 1e-9, params.pixel_um * 1e-6
    n = int(round(min(hologram.shape[-2:]) * pad_factor))
    reach = critical_distance(n, pixel, wavelength, MIN_BAND_FRACTION) * 1e3
    metric = {"metric": data_cfg.autofocus_metric} if data_cfg.autofocus_metric else {}
    if params.z_mm == "auto":
        low, high = data_cfg.z_min_mm, min(data_cfg.z_max_mm, reach)
        if high <= low:
            raise UserError(f"{name}: this grid cannot reach the trained distances "
                            f"({data_cfg.z_min_mm:g}-{data_cfg.z_max_mm:g} mm) within its "
                            f"band limit ({reach:.3g} mm); give z_mm")
        source = "autofocus"
    else:
        z_mm = float(params.z_mm)
        check_band_limit(name, tuple(hologram.shape[-2:]), params, z_mm, pad_factor)
        if not data_cfg.refine_mm:
            return z_mm, "given", None
        low = max(z_mm - data_cfg.refine_mm, Z_MM[0])
        high = min(z_mm + data_cfg.refine_mm, reach)
        if data_cfg.z_min_mm <= z_mm <= data_cfg.z_max_mm:
            # a distance inside the trained range is refined inside it
            low, high = max(low, data_cfg.z_min_mm), min(high, data_cfg.z_max_mm)
        source = "refined"
    focus = autofocus(hologram, wavelength, pixel, (low * 1e-3, high * 1e-3),
                      pad_factor=pad_factor, **metric)
    return focus.z * 1e3, source, focus


@torch.no_grad()
def reconstruct(model: nn.Module, data_cfg: Any, frame: np.ndarray, params: HoloParams,
                name: str = "hologram", guard: InputGuard | None = None,
                ) -> tuple[Reconstruction, Any]:
    """Reconstruct one raw frame: scale, choose the distance, check the input against the
    training record (``guard``), run the model. Returns the reconstruction and the
    check (None without a guard)."""
    model.eval()
    device = next(model.parameters()).device
    hologram = torch.as_tensor(normalise_hologram(frame.astype(np.float32)))
    pad_factor = getattr(model, "pad_factor", data_cfg.pad_factor)
    z_mm, source, focus = choose_distance(name, hologram, params, data_cfg, pad_factor)
    check = None
    if guard is not None:
        check = guard.check(name, compare_hologram, hologram.numpy(), params.wavelength_nm,
                            params.pixel_um, z_mm)
    z = torch.tensor([z_mm * 1e-3], dtype=torch.float64, device=device)
    batch = hologram[None, None].to(device)
    wavelength, pixel = params.wavelength_nm * 1e-9, params.pixel_um * 1e-6
    out = model(batch, z, wavelength, pixel).float().cpu()
    backprop = model.back_propagate(batch, z, wavelength, pixel).cpu()
    field_ = torch.complex(out[0, 0], out[0, 1]).numpy().astype(np.complex64)
    return Reconstruction(field_, backprop[0].numpy().astype(np.complex64), z_mm, source,
                          params, focus), check


def amplitude_png(field_: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.abs(field_) * AMPLITUDE_SCALE), 0, 65535).astype(np.uint16)


def phase_png(field_: np.ndarray) -> np.ndarray:
    phase = (np.angle(field_) + np.pi) / (2 * np.pi)
    return np.clip(np.round(phase * 65535), 0, 65535).astype(np.uint16)


def write_reconstruction(result: Reconstruction, stem: str, out_dir: Path, input_name: str,
                         check: Any) -> list[Path]:
    """The files of one reconstruction (see the module docstring); returns their paths."""
    import imageio.v3 as iio

    out_dir = Path(out_dir)
    written = []
    target = out_dir / f"{stem}.field.npy"
    with atomic_write(target) as temporary:
        np.save(temporary, result.field)
    written.append(target)
    for kind, image in (("amplitude", amplitude_png(result.field)),
                        ("phase", phase_png(result.field))):
        target = out_dir / f"{stem}.{kind}.png"
        with atomic_write(target) as temporary:
            iio.imwrite(temporary, image)
        written.append(target)
    record = {
        "input": input_name,
        "wavelength_nm": result.params.wavelength_nm,
        "pixel_um": result.params.pixel_um,
        "z_mm": round(result.z_mm, 5),
        "z_source": result.z_source,
        "z_given_mm": None if result.params.z_mm == "auto" else result.params.z_mm,
        "png_scaling": {"amplitude": f"amplitude x {AMPLITUDE_SCALE:g} (16-bit, clipped at 2)",
                        "phase": "(phase + pi) / (2 pi) x 65535 (16-bit)"},
        "notes": result.notes,
    }
    if result.focus is not None:
        record["focus_curve"] = {"metric": result.focus.metric,
                                 "z_mm": [round(float(z) * 1e3, 5) for z in result.focus.distances],
                                 "score": [float(s) for s in result.focus.scores]}
    target = out_dir / f"{stem}.json"
    with atomic_write(target) as temporary:
        Path(temporary).write_text(json.dumps(record, indent=2) + "\n")
    written.append(target)
    written.append(write_sidecar(out_dir / f"{stem}{SIDECAR_SUFFIX}", {
        "input": input_name, "outputs": [p.name for p in written],
        "input_check": check.record() if check is not None else None,
        "z_mm": record["z_mm"], "z_source": result.z_source}))
    return written


def predict_holograms(model: nn.Module, data_cfg: Any, inputs: list[Path], out_dir: Path,
                      guard: InputGuard) -> list[Path]:
    """The task's predictor: every input is read and checked before anything is written."""
    min_size = getattr(model, "min_size", 16)
    loaded = []
    for path in inputs:
        frame, notes = read_hologram(path, min_size)
        params = parameters_for(path, data_cfg)
        if params.z_mm != "auto":
            check_band_limit(Path(path).name, frame.shape, params, float(params.z_mm),
                             getattr(model, "pad_factor", data_cfg.pad_factor))
        loaded.append((Path(path), frame, notes, params))
    written = []
    for path, frame, notes, params in loaded:
        result, check = reconstruct(model, data_cfg, frame, params, path.name, guard)
        result.notes.extend(notes)
        written.extend(write_reconstruction(result, output_stem(path), out_dir, path.name,
                                            check))
    return written
