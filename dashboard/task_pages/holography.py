"""The dashboard page of the holography task: reconstruct the complex object field of an
inline hologram, show its amplitude and phase beside those of plain back-propagation,
the distance used and how it was chosen, the autofocus curve, and download the field.

The hologram (an upload, or one of the task's sample holograms) goes through the
prediction path of ``domainvit predict``: :func:`read_hologram`, then
:func:`reconstruct`, which chooses the distance, checks the hologram against the
checkpoint's training distribution and runs the model; the downloads are the files of
:func:`write_reconstruction`. The physical parameters are the page's: wavelength, pixel
pitch and distance, filled in for each new input from its JSON sidecar where it has one
(the sample holograms do, an upload does not) and otherwise from the checkpoint's data
config, as ``domainvit predict`` would take them. The distance is found by autofocus
over the trained range, or given and refined by autofocus within ``data.refine_mm`` of
it, or given and used as is.

The four images share one zoom (zooming into one zooms into all) and a colour scale per
quantity: amplitude in grey, phase on a cyclic colour map over [-pi, pi]. Holograms
larger than :data:`MAX_SHOWN_SIDE` pixels are drawn with every n-th pixel (the downloads
hold every pixel).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from domainvit.dashboard import widgets
from domainvit.dashboard.checkpoints import LoadedModel
from domainvit.dashboard.uploads import derived_folder
from domainvit.distribution import InputCheck, InputGuard
from domainvit.errors import UserError
from domainvit.outputs import SIDECAR_SUFFIX, output_stem
from domainvit.task import Task
from domainvit.tasks.holography.data import HolographyData
from domainvit.tasks.holography.predict import (
    SUFFIXES,
    HoloParams,
    Reconstruction,
    parameters_for,
    read_hologram,
    reconstruct,
    write_reconstruction,
)

KEY = "holography"
UPLOAD_TYPES = tuple(suffix.lstrip(".") for suffix in SUFFIXES)
#: how the distance is chosen (the page's radio): autofocus over the trained range,
#: the given distance refined by autofocus, or the given distance as it is
AUTOFOCUS, REFINED, GIVEN = "autofocus", "refined", "given"
#: sample holograms offered beside the upload (the first of the task's sample inputs)
SAMPLE_COUNT = 3
#: the longest side drawn; larger fields are drawn with every n-th pixel
MAX_SHOWN_SIDE = 512
#: the amplitude colour scale reaches at least this (the background's amplitude is 1)
MIN_AMPLITUDE_TOP = 1.2


#: how the distance was chosen, in short (by the reconstruction's ``z_source``)
CHOSEN = {AUTOFOCUS: "found by autofocus", REFINED: "refined by autofocus", GIVEN: "as given"}
#: the downloads offered: (kind of file, label, MIME type)
DOWNLOADS = (("field", "the complex field (.npy)", "application/octet-stream"),
             ("amplitude", "the amplitude (PNG)", "image/png"),
             ("phase", "the phase (PNG)", "image/png"),
             ("record", "the reconstruction record (JSON)", "application/json"),
             ("sidecar", "the prediction record (JSON)", "application/json"))


@dataclass
class Hologram:
    """A reconstructed hologram and the files written from it."""

    #: the file's name as shown
    name: str
    #: the frame scaled to mean 1, as the model sees it
    intensity: np.ndarray
    result: Reconstruction
    #: the trained range of distances (mm)
    trained_mm: tuple[float, float]
    #: the search range around a given distance (mm; refinement only)
    refine_mm: float
    #: the written files by kind: field, amplitude, phase, record, sidecar
    files: dict[str, Path] = field(default_factory=dict)


def _kind(path: Path) -> str:
    for kind, suffix in (("field", ".field.npy"), ("amplitude", ".amplitude.png"),
                         ("phase", ".phase.png"), ("sidecar", SIDECAR_SUFFIX),
                         ("record", ".json")):
        if path.name.endswith(suffix):
            return kind
    return path.name


def reconstruct_upload(loaded: LoadedModel, path: Path, params: HoloParams, mode: str,
                       guard: InputGuard) -> Hologram:
    """Read the hologram, check ``params``, reconstruct it (the distance chosen as
    ``mode`` says, the hologram checked with ``guard``) and write its files beside it."""
    cfg: HolographyData = loaded.config.data
    if mode == GIVEN:
        cfg = cfg.model_copy(update={"refine_mm": 0.0})
    frame, notes = read_hologram(path, getattr(loaded.model, "min_size", 16))
    params.check(path.name)
    with st.spinner("Reconstructing ..."), widgets.exclusive(loaded):
        result, check = reconstruct(loaded.model, cfg, frame, params, path.name, guard)
    result.notes.extend(notes)
    written = write_reconstruction(result, output_stem(path), derived_folder(path), path.name,
                                   check)
    values = frame.astype(np.float64)
    intensity = (values / max(values.mean(), 1e-12)).astype(np.float32)
    return Hologram(path.name, intensity, result, (cfg.z_min_mm, cfg.z_max_mm),
                    cfg.refine_mm, {_kind(p): p for p in written})


# --- the parameters ------------------------------------------------------------------------


def file_parameters(path: Path, cfg: HolographyData) -> tuple[HoloParams, str]:
    """The parameters ``domainvit predict`` takes for ``path`` (its sidecar's where it
    has one, else the config's) and where they come from, in words."""
    config = HoloParams(cfg.wavelength_nm, cfg.pixel_um, cfg.z_mm)
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return config, "the model's data config (the file has no sidecar)"
    try:
        return parameters_for(path, cfg), f"the file's sidecar {sidecar.name}"
    except UserError as exc:
        return config, f"the model's data config, not the sidecar ({exc})"


def _fill_in(path: Path, loaded: LoadedModel) -> str:
    """Put the input's parameters into the page's fields when the input or the model
    changed (or the fields were not drawn last time); where they come from, in words."""
    cfg: HolographyData = loaded.config.data
    origin = (str(path), loaded.checkpoint.key)
    params, source = file_parameters(path, cfg)
    state = st.session_state
    if state.get(f"{KEY}-filled-from") != origin or f"{KEY}-wavelength" not in state:
        state[f"{KEY}-wavelength"] = float(params.wavelength_nm)
        state[f"{KEY}-pixel"] = float(params.pixel_um)
        if params.z_mm == "auto":
            state[f"{KEY}-distance"] = AUTOFOCUS
            state[f"{KEY}-z"] = round((cfg.z_min_mm + cfg.z_max_mm) / 2, 3)
        else:
            state[f"{KEY}-distance"] = REFINED if cfg.refine_mm > 0 else GIVEN
            state[f"{KEY}-z"] = float(params.z_mm)
        state[f"{KEY}-filled-from"] = origin
    return source


def parameter_fields(path: Path, loaded: LoadedModel) -> tuple[HoloParams, str]:
    """The page's fields for the physical parameters; the parameters and the distance
    mode (:data:`AUTOFOCUS`, :data:`REFINED` or :data:`GIVEN`)."""
    cfg: HolographyData = loaded.config.data
    source = _fill_in(path, loaded)
    modes = {AUTOFOCUS: f"autofocus over the trained range ({cfg.z_min_mm:g}-"
                        f"{cfg.z_max_mm:g} mm)"}
    if cfg.refine_mm > 0:
        modes[REFINED] = f"given, refined by autofocus (within {cfg.refine_mm:g} mm)"
    modes[GIVEN] = "given, used as it is"
    if st.session_state[f"{KEY}-distance"] not in modes:
        st.session_state[f"{KEY}-distance"] = GIVEN
    mode = st.radio("Distance", list(modes), format_func=modes.get, horizontal=True,
                    key=f"{KEY}-distance",
                    help="Hologram to object distance. Autofocus propagates the hologram "
                         "back over a range of distances and takes the sharpest.")
    wavelength, pixel, distance = st.columns(3)
    wavelength_nm = wavelength.number_input(
        "Wavelength (nm)", step=1.0, format="%.1f", key=f"{KEY}-wavelength",
        help="The illumination's wavelength in vacuum")
    pixel_um = pixel.number_input(
        "Pixel pitch (um)", step=0.05, format="%.3f", key=f"{KEY}-pixel",
        help="The camera's pixel pitch (times the magnification's inverse behind a lens)")
    z_mm = distance.number_input(
        "Distance (mm)", step=0.1, format="%.3f", key=f"{KEY}-z", disabled=mode == AUTOFOCUS,
        help="From the sensor to the object plane")
    st.caption(f"Filled in from {source}; the model was trained at {cfg.wavelength_nm:g} nm, "
               f"{cfg.pixel_um:g} um pixels and {cfg.z_min_mm:g}-{cfg.z_max_mm:g} mm.")
    params = HoloParams(float(wavelength_nm), float(pixel_um),
                        "auto" if mode == AUTOFOCUS else float(z_mm))
    return params, mode


# --- showing the result --------------------------------------------------------------------


def display_step(shape: tuple[int, ...], limit: int = MAX_SHOWN_SIDE) -> int:
    """Every how many pixels a field of ``shape`` is drawn."""
    return max(1, math.ceil(max(shape[-2:]) / limit))


def field_figure(shown: Hologram, model_name: str):
    """Amplitude and phase of the model's field (top) and of back-propagation (bottom),
    with one zoom and one colour scale per quantity."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    result = shown.result
    step = display_step(result.field.shape)
    height, width = result.field.shape
    rows, cols = np.arange(0, height, step), np.arange(0, width, step)
    fields = [(model_name, result.field[::step, ::step]),
              ("back-propagation", result.backprop[::step, ::step])]
    top = max(MIN_AMPLITUDE_TOP, *(float(np.percentile(np.abs(f), 99.5)) for _, f in fields))
    figure = make_subplots(rows=2, cols=2, shared_xaxes="all", shared_yaxes="all",
                           horizontal_spacing=0.14, vertical_spacing=0.08,
                           subplot_titles=[f"{name}: {part}" for name, _ in fields
                                           for part in ("amplitude", "phase")])
    for row, (name, values) in enumerate(fields, start=1):
        for col, (part, data, axis) in enumerate(
                (("amplitude", np.abs(values), "coloraxis"),
                 ("phase", np.angle(values), "coloraxis2")), start=1):
            figure.add_trace(go.Heatmap(
                z=data.astype(np.float32), x=cols, y=rows, coloraxis=axis, name=name,
                hovertemplate=f"{name}<br>row %{{y}}, column %{{x}}<br>{part} %{{z:.3f}}"
                              "<extra></extra>"), row=row, col=col)
    figure.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    figure.update_xaxes(constrain="domain")
    figure.update_layout(
        height=620, margin={"l": 0, "r": 0, "t": 30, "b": 0},
        coloraxis={"colorscale": "gray", "cmin": 0.0, "cmax": top,
                   "colorbar": {"title": {"text": "amplitude"}, "x": 0.435, "len": 0.9,
                                "thickness": 12}},
        coloraxis2={"colorscale": "twilight", "cmin": -math.pi, "cmax": math.pi,
                    "colorbar": {"title": {"text": "phase (rad)"}, "x": 1.0, "len": 0.9,
                                 "thickness": 12, "tickvals": [-math.pi, 0, math.pi],
                                 "ticktext": ["-π", "0", "π"]}})
    return figure


def focus_figure(shown: Hologram):
    """The autofocus curve: sharpness against distance, the chosen distance marked (and
    the given one, when it was refined)."""
    import plotly.graph_objects as go

    result = shown.result
    focus = result.focus
    distances = np.asarray(focus.distances, dtype=np.float64) * 1e3
    figure = go.Figure(go.Scatter(
        x=distances, y=np.asarray(focus.scores, dtype=np.float64), mode="lines+markers",
        name=focus.metric, marker={"size": 4},
        hovertemplate="z %{x:.3f} mm<br>sharpness %{y:.4g}<extra></extra>"))
    figure.add_vline(x=result.z_mm, line={"color": "#d62728", "width": 2},
                     annotation_text=f"chosen {result.z_mm:.3f} mm",
                     annotation_position="top")
    if result.z_source == REFINED:
        figure.add_vline(x=float(result.params.z_mm), line={"color": "#7f7f7f", "dash": "dash"},
                         annotation_text="given", annotation_position="bottom")
    figure.update_layout(height=320, margin={"l": 0, "r": 0, "t": 30, "b": 0},
                         xaxis_title="distance z (mm)",
                         yaxis_title=f"sharpness ({focus.metric})", showlegend=False)
    return figure


def how_chosen(shown: Hologram) -> str:
    """How the distance was chosen, in words."""
    result = shown.result
    if result.z_source == GIVEN:
        return "as given"
    low, high = (float(np.min(result.focus.distances)) * 1e3,
                 float(np.max(result.focus.distances)) * 1e3)
    searched = f"searched {low:.3g}-{high:.3g} mm, metric {result.focus.metric}"
    if result.z_source == REFINED:
        return (f"refined by autofocus around the given {float(result.params.z_mm):g} mm "
                f"({searched})")
    return f"by autofocus over the trained range ({searched})"


def hologram_picture(intensity: np.ndarray) -> np.ndarray:
    """The hologram in grey (uint8), its 0.5-99.5% range stretched."""
    step = display_step(intensity.shape)
    values = intensity[::step, ::step]
    low, high = np.percentile(values, [0.5, 99.5])
    scaled = (values - low) / max(high - low, 1e-12)
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def show(shown: Hologram, loaded: LoadedModel) -> None:
    result = shown.result
    token = hashlib.sha1(str(shown.files.get("field", shown.name)).encode()).hexdigest()[:8]
    distance, wavelength, pixel = st.columns(3)
    distance.metric("Distance z", f"{result.z_mm:.3f} mm", CHOSEN[result.z_source],
                    delta_color="off", delta_arrow="off")
    wavelength.metric("Wavelength", f"{result.params.wavelength_nm:g} nm")
    pixel.metric("Pixel pitch", f"{result.params.pixel_um:g} um")
    st.caption(f"The distance z: {how_chosen(shown)}.")
    for note in result.notes:
        st.info(f"{note[0].upper()}{note[1:]}.")

    model_name = loaded.checkpoint.model or "model"
    st.plotly_chart(field_figure(shown, model_name), key=f"{KEY}-fields")
    step = display_step(result.field.shape)
    st.caption(
        f"Top: the object-plane field of the model ({model_name}); bottom: the hologram "
        f"propagated back by the angular spectrum method alone, at the same {result.z_mm:.3f} "
        "mm (its twin image and noise are what the model is trained to remove). Amplitude: "
        "1 is the background (the colour scale is shared); phase in radians, on a cyclic "
        "scale. Zooming into one image zooms into all four."
        + (f" One pixel in {step} along each side is drawn." if step > 1 else ""))

    left, right = st.columns(2)
    with left:
        st.image(hologram_picture(shown.intensity),
                 caption=f"The hologram {shown.name} ({result.field.shape[0]} x "
                         f"{result.field.shape[1]} pixels, contrast stretched)", width=320)
    with right:
        if result.focus is not None:
            st.markdown("**Autofocus**")
            st.plotly_chart(focus_figure(shown), key=f"{KEY}-focus")
            low, high = shown.trained_mm
            st.caption(f"The sharpness of the back-propagated field at each distance "
                       f"searched; the sharpest is chosen (the model was trained at "
                       f"{low:g}-{high:g} mm).")
        else:
            st.caption("No autofocus: the distance was used as given.")

    offered = [(kind, label, mime) for kind, label, mime in DOWNLOADS if kind in shown.files]
    # the field and its images in a row, the two records in a row below
    for row in (offered[:3], offered[3:]):
        for column, (kind, label, mime) in zip(st.columns(len(row)) if row else [], row,
                                               strict=True):
            with column:
                widgets.download(f"Download {label}", shown.files[kind],
                                 shown.files[kind].name, mime,
                                 key=f"{KEY}-download-{kind}-{token}")
    st.caption("The files `domainvit predict` writes: the field as complex64 in the "
               "hologram's shape; the PNGs scaled as the record says (amplitude x 32768, "
               "phase from -pi..pi onto 0..65535); the reconstruction record holds the "
               "parameters, the distance, how it was chosen and the focus curve; the "
               "prediction record holds the input check.")


# --- the page ------------------------------------------------------------------------------


def sample_labels() -> list[str]:
    return [f"sample hologram {i + 1} (the model's sample benchmark)"
            for i in range(SAMPLE_COUNT)]


def uploaded_hologram() -> Path | None:
    return widgets.uploaded_file(
        "Hologram", UPLOAD_TYPES, key=f"{KEY}-upload",
        help="One inline hologram: the camera's monochrome intensity frame as PNG or TIFF "
             "(8-16 bit) or .npy (a 2-D array of counts or intensities)")


def render(task: Task) -> None:
    st.title("Inline holography")
    st.caption(task.description)
    checkpoint = widgets.model_picker(task)
    if checkpoint is None:
        return
    path, loaded = widgets.sample_or_upload(task, checkpoint, KEY, sample_labels(),
                                           uploaded_hologram)
    if path is None or loaded is None:
        return
    params, mode = parameter_fields(path, loaded)
    force = st.checkbox(
        "Predict anyway", key=f"{KEY}-force",
        help="Predict an input the model refuses as unlike its training data. The result "
             "is then unreliable; the download's sidecar records the override.")
    with widgets.showing_user_errors():
        def compute() -> tuple[Hologram, list[InputCheck]]:
            guard = InputGuard.from_meta(loaded.checkpoint.meta, force=force,
                                         report=lambda line: None)
            return reconstruct_upload(loaded, path, params, mode, guard), guard.checks

        shown, checks = widgets.session_result(
            f"{KEY}-result", (loaded.checkpoint.key, str(path), params, mode, force), compute)
        widgets.input_check_notes(checks)
        show(shown, loaded)
