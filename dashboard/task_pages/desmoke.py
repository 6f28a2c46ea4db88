"""The dashboard page of the desmoke task: remove surgical smoke from an endoscopic frame
or a short video, compare the frame before and after, see where the smoke was and how
dense, and download the desmoked frame or video with its prediction record.

The input (an upload, or one of the task's sample frames: smoke simulated over held-out
tissue of the sample benchmark) goes through the prediction path of ``domainvit
predict``: :func:`open_media` reads it (and refuses a bad file with one message), the
input check compares its (first) frame with the checkpoint's training distribution
(:func:`compare_frame`), then :func:`desmoke_frame` or, frame by frame with a progress
bar, :func:`desmoke_video` runs the model. The files are those :func:`predict_media`
writes: ``<stem>.desmoked.<suffix>`` (a frame at the input's bit depth, 8 or 16; a video
at its size and frame rate, MP4, or Motion JPEG AVI for an AVI) and
``<stem>.prediction.json`` (the input check, the smoke density before and after, the
processing scale, the speed).

The page's settings are those of the model's data config that prediction reads: the
processing scale (``data.process_scale``: the network runs on the frame scaled by 1, 0.5
or 0.25 and its smooth correction is applied at full resolution, quality against speed)
and, for a video, the temporal smoothing of the correction over frames
(``data.temporal_smoothing``, against flicker).

The smoke density is the dark channel prior's estimate (:func:`smoke_density`: 0 clear,
1 opaque), drawn as a heat image on one fixed scale for before and after; its mean over
the frame (over every tenth frame of a video) is the record's ``smoke_density_in`` and
``smoke_density_out``. Pictures are drawn :data:`DISPLAY_SIDE` pixels on their longer
side (the downloads hold every pixel).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from domainvit.dashboard import widgets
from domainvit.dashboard.checkpoints import LoadedModel
from domainvit.dashboard.uploads import derived_folder
from domainvit.datasets.frames import VIDEO_SUFFIXES, iter_video
from domainvit.distribution import InputCheck, InputGuard
from domainvit.task import Task
from domainvit.tasks.desmoke.data import DesmokeData
from domainvit.tasks.desmoke.dcp import smoke_density
from domainvit.tasks.desmoke.distribution import compare_frame
from domainvit.tasks.desmoke.predict import (
    FRAME_SUFFIXES,
    desmoke_media,
    open_media,
)

KEY = "desmoke"
UPLOAD_TYPES = tuple(suffix.lstrip(".") for suffix in (*FRAME_SUFFIXES, *VIDEO_SUFFIXES))
#: the processing scales offered, in words (the model's own is added when it is another)
SCALES = {1.0: "1 (full resolution: quality)", 0.5: "0.5 (faster)", 0.25: "0.25 (speed)"}
#: the strongest temporal smoothing offered (``data.temporal_smoothing`` is below 1)
MAX_SMOOTHING = 0.95
#: sample frames offered beside the upload (the task's sample inputs)
SAMPLE_COUNT = 2
#: the longer side of the pictures drawn, in pixels
DISPLAY_SIDE = 512
#: a video of more frames than this gets a note that it takes a while
LONG_VIDEO_FRAMES = 300
#: the least time between two updates of the progress bar (s)
PROGRESS_INTERVAL = 0.2
#: the heat colours of the smoke density, from clear (0) to opaque (1): inferno's stops
DENSITY_COLOURS = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9),
                            (252, 255, 164)], np.float64)
#: MIME types of the downloads, by the output's suffix
MIME_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".tif": "image/tiff", ".tiff": "image/tiff", ".mp4": "video/mp4",
              ".avi": "video/x-msvideo"}


@dataclass
class Desmoked:
    """A desmoked frame or video: pictures for the page, the written files, the record."""

    #: the input's file name as shown
    name: str
    #: ``"frame"`` or ``"video"``
    kind: str
    #: the (first) frame before and after, and their smoke density as heat images
    #: (uint8 RGB, :data:`DISPLAY_SIDE` on the longer side)
    before: np.ndarray
    after: np.ndarray
    density_before: np.ndarray
    density_after: np.ndarray
    #: the full-resolution size (width, height)
    size: tuple[int, int]
    #: the desmoked frame or video and the prediction record (``.prediction.json``)
    output: Path
    sidecar: Path
    record: dict[str, Any]


# --- pictures ------------------------------------------------------------------------------


def display_size(size: tuple[int, int], side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """(width, height) of a picture of ``size`` drawn ``side`` pixels on its longer side."""
    width, height = size
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def picture(rgb: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """uint8 ``[h, w, 3]`` of ``rgb`` (float in [0, 1], or uint8) resized to ``side`` on its
    longer side: area-averaged when smaller, pixels kept sharp when larger."""
    from PIL import Image

    if rgb.dtype != np.uint8:
        rgb = np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    size = display_size(image.size, side)
    method = Image.Resampling.BOX if size[0] < image.size[0] else Image.Resampling.NEAREST
    return np.asarray(image.resize(size, method))


def density_map(rgb: np.ndarray) -> np.ndarray:
    """The smoke density ``[H, W]`` in [0, 1] of an RGB frame ``[H, W, 3]`` (float in [0,
    1], or uint8): :func:`smoke_density`, whose mean is :func:`mean_density`."""
    frame = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb
    tensor = torch.as_tensor(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].float()
    return smoke_density(tensor)[0].numpy()


def heat(density: np.ndarray) -> np.ndarray:
    """A density map in [0, 1] as RGB uint8 along :data:`DENSITY_COLOURS`."""
    values = np.clip(np.nan_to_num(density, nan=0.0), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(DENSITY_COLOURS))
    rgb = np.stack([np.interp(values, stops, DENSITY_COLOURS[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def split_view(before: np.ndarray, after: np.ndarray, fraction: float) -> np.ndarray:
    """One picture of two of one shape: ``before`` left of the split at ``fraction`` of the
    width (0: all after, 1: all before), ``after`` right of it, a white line between."""
    if before.shape != after.shape:
        raise ValueError(f"the pictures differ in shape: {before.shape}, {after.shape}")
    width = before.shape[1]
    column = round(min(max(fraction, 0.0), 1.0) * width)
    composed = after.copy()
    composed[:, :column] = before[:, :column]
    line = slice(max(column - 1, 0), min(column + 1, width))
    if 0 < column < width:
        composed[:, line] = 255
    return composed


# --- prediction ----------------------------------------------------------------------------


def settings_config(data: DesmokeData, scale: float | None = None,
                    smoothing: float | None = None) -> DesmokeData:
    """The model's data config with the page's processing scale and temporal smoothing."""
    update: dict[str, float] = {}
    if scale is not None:
        update["process_scale"] = float(scale)
    if smoothing is not None:
        update["temporal_smoothing"] = float(smoothing)
    return data.model_validate({**data.model_dump(), **update}) if update else data


def first_frame(video: Path) -> np.ndarray:
    """The first frame of a video (uint8 ``[H, W, 3]``), the reader closed after it."""
    frames = iter_video(video)
    try:
        return next(frames)
    finally:
        frames.close()


def _progress_reporter(bar: Any, name: str, clock: Callable[[], float] = time.perf_counter,
                       ) -> Callable[[int, int | None], None]:
    """``progress(done, total)`` for :func:`desmoke_video`: the bar, the frame count, the
    speed and the time left (``total`` is the header's estimate, or None), updated at most
    every :data:`PROGRESS_INTERVAL` seconds and at the last frame."""
    started = clock()
    shown = [started]

    def progress(done: int, total: int | None) -> None:
        now = clock()
        if now - shown[0] < PROGRESS_INTERVAL and done != total:
            return
        shown[0] = now
        rate = done / max(now - started, 1e-9)
        text = f"Desmoking {name}: frame {done}"
        fraction = 0.0
        if total:
            fraction = min(done / total, 0.99)
            left = max(total - done, 0) / max(rate, 1e-9)
            text += f" of ~{total}, {rate:.1f} frames/s, about {math.ceil(left)} s left"
        else:
            text += f", {rate:.1f} frames/s"
        bar.progress(fraction, text=text)

    return progress


def desmoke_upload(loaded: LoadedModel, path: Path, guard: InputGuard,
                   scale: float | None = None, smoothing: float | None = None) -> Desmoked:
    """Open ``path``, check its (first) frame with ``guard``, desmoke it (a video frame by
    frame, with a progress bar) with the model's data config at the page's ``scale`` and
    ``smoothing``, and write the files of :func:`predict_media` beside it."""
    cfg = settings_config(loaded.config.data, scale, smoothing)
    media = open_media(path, getattr(loaded.model, "min_size", 16))
    check = guard.check(media.path.name, compare_frame, media.frame)
    folder = derived_folder(path)
    if media.kind == "video":
        with widgets.progress_bar(f"Desmoking {media.path.name} ...") as bar, \
                widgets.exclusive(loaded):
            (target, sidecar), record, _ = desmoke_media(
                loaded.model, cfg, media, folder, check,
                _progress_reporter(bar, media.path.name))
        after = first_frame(target)  # as the download holds it
    else:
        with st.spinner(f"Desmoking {media.path.name} ..."), widgets.exclusive(loaded):
            (target, sidecar), record, after = desmoke_media(loaded.model, cfg, media, folder,
                                                             check)
    height, width = media.frame.shape[:2]
    return Desmoked(media.path.name, media.kind, picture(media.frame), picture(after),
                    picture(heat(density_map(media.frame))), picture(heat(density_map(after))),
                    (width, height), target, sidecar, record)


# --- showing the result --------------------------------------------------------------------


def _token(shown: Desmoked) -> str:
    key = (str(shown.output), shown.record.get("process_scale"),
           shown.record.get("temporal_smoothing"))
    return hashlib.sha1(repr(key).encode()).hexdigest()[:8]


def _metrics(shown: Desmoked) -> None:
    record = shown.record
    before, after = record["smoke_density_in"], record["smoke_density_out"]
    width, height = shown.size
    columns = st.columns(4)
    columns[0].metric("Smoke density before", f"{before:.3f}",
                      help="The mean of the dark channel prior's smoke density estimate "
                           "(0 clear, 1 opaque)" + (" over every tenth frame"
                                                    if shown.kind == "video" else ""))
    columns[1].metric("Smoke density after", f"{after:.3f}", f"{after - before:+.3f}",
                      delta_color="inverse")
    columns[2].metric("Processing scale", f"{record['process_scale']:g}")
    if shown.kind == "video":
        columns[3].metric("Frames per second", f"{record['fps_processed']:.1f}",
                          f"{record['frames']} frames", delta_color="off", delta_arrow="off",
                          help="Desmoked per second of processing (reading and writing the "
                               "video included)")
        st.caption(f"{shown.name}: {record['frames']} frames of {width} x {height} pixels at "
                   f"{record['fps']:g} frames per second; temporal smoothing "
                   f"{record['temporal_smoothing']:g}.")
    else:
        columns[3].metric("Time", f"{record['seconds']:.2f} s", f"{record['bit_depth']} bit",
                          delta_color="off", delta_arrow="off")
        st.caption(f"{shown.name}: {width} x {height} pixels, {record['bit_depth']} bits per "
                   "channel.")


def show(shown: Desmoked) -> None:
    token = _token(shown)
    _metrics(shown)
    what = "first frame" if shown.kind == "video" else "frame"
    switch, slider = st.columns(2, vertical_alignment="center")
    with switch:
        densities = st.toggle(
            "Show the smoke density", key=f"{KEY}-density-{token}",
            help="The dark channel prior's estimate of where the smoke is and how dense, "
                 "before and after, as heat images on one scale: black is clear, yellow "
                 "opaque.")
    with slider:
        split = st.slider(
            "Before | after", 0, 100, 0, 1, format="%d%%", key=f"{KEY}-split-{token}",
            help="Slide to uncover the input in the right picture: left of the line before, "
                 "right of it after (0%: all after)")
    if densities:
        before, after = shown.density_before, shown.density_after
        captions = (f"Smoke density of the {what} before ({shown.name})",
                    f"Smoke density of the {what} after")
    else:
        before, after = shown.before, shown.after
        captions = (f"Before: the {what} ({shown.name})", f"After: the {what} desmoked")
    if split:
        captions = (captions[0], f"Before left of the line, after right of it ({split}%)")
    left, right = st.columns(2)
    with left:
        st.image(before, caption=captions[0])
    with right:
        st.image(split_view(before, after, split / 100), caption=captions[1])
    if densities:
        st.caption("Smoke density (dark channel prior, He et al. 2009): black 0 (clear) "
                   "to yellow 1 (opaque), the same scale before and after.")

    if shown.kind == "video":
        st.markdown("**The desmoked video**")
        if shown.output.suffix == ".mp4":
            player, _ = st.columns(2)
            player.video(str(shown.output), format="video/mp4")
        else:
            st.caption("Motion JPEG AVI, as the input came: browsers do not play it; "
                       "download it to watch it.")
    label = (f"the desmoked video ({shown.output.suffix.lstrip('.').upper()})"
             if shown.kind == "video" else
             f"the desmoked frame ({shown.output.suffix.lstrip('.').upper()}, "
             f"{8 if shown.output.suffix in ('.jpg', '.jpeg') else shown.record['bit_depth']}"
             " bit)")
    result, record = st.columns(2)
    with result:
        widgets.download(f"Download {label}", shown.output, shown.output.name,
                         MIME_TYPES.get(shown.output.suffix, "application/octet-stream"),
                         key=f"{KEY}-download-result-{token}")
    with record:
        widgets.download("Download the prediction record (JSON)", shown.sidecar,
                         shown.sidecar.name, "application/json",
                         key=f"{KEY}-download-sidecar-{token}")
    st.caption("The files `domainvit predict` writes: the frame at the input's size and bit "
               "depth (JPEG in, 8-bit JPEG out), or the video at its size and frame rate; "
               "the prediction record holds the input check, the smoke density before and "
               "after, the processing scale and the speed.")


# --- the page ------------------------------------------------------------------------------


def sample_labels() -> list[str]:
    return [f"sample frame {i + 1} (smoke simulated over held-out tissue)"
            for i in range(SAMPLE_COUNT)]


def uploaded_media() -> Path | None:
    return widgets.uploaded_file(
        "Frame or video", UPLOAD_TYPES, key=f"{KEY}-upload",
        help="One endoscopic colour frame (PNG, JPEG or TIFF, 8 or 16 bits per channel) or "
             "a short video (MP4 or AVI; MOV and MKV are read too)")


def describe(path: Path, min_size: int) -> dict[str, Any]:
    """What the page says about an input before desmoking it (its first frame read)."""
    media = open_media(path, min_size)
    height, width = media.frame.shape[:2]
    return {"kind": media.kind, "size": (width, height), "bit_depth": media.bit_depth,
            "fps": media.fps, "frames": media.frames}


def video_note(info: dict[str, Any], name: str) -> None:
    """How long a video is, and a note when it is long."""
    width, height = info["size"]
    frames, fps = info["frames"], info["fps"]
    length = (f"about {frames} frames ({frames / fps:.1f} s at {fps:g} frames per second)"
              if frames else f"{fps:g} frames per second (its header gives no length)")
    st.caption(f"{name}: a video of {length}, {width} x {height} pixels. Every frame is "
               "desmoked, with a progress bar; the settings below apply to all of them.")
    if frames and frames > LONG_VIDEO_FRAMES:
        st.info(f"A long video: about {frames} frames. Desmoking it takes a while (the "
                "progress bar shows the speed and the time left); a processing scale of 0.5 "
                "or 0.25 is faster.")


def settings_fields(info: dict[str, Any], data: DesmokeData) -> tuple[float, float]:
    """The processing scale and (for a video) the temporal smoothing."""
    labels = dict(SCALES)
    labels.setdefault(float(data.process_scale), f"{data.process_scale:g} (the model's)")
    scales = sorted(labels, reverse=True)
    scale_field, smoothing_field = st.columns(2) if info["kind"] == "video" else (st, None)
    scale = scale_field.radio(
        "Processing scale", scales, index=scales.index(float(data.process_scale)),
        format_func=labels.get, horizontal=True, key=f"{KEY}-scale",
        help="The network runs on the frame scaled by this factor; its smooth correction is "
             "applied to the full-resolution frame. Lower is faster, for a little quality.")
    smoothing = float(data.temporal_smoothing)
    if smoothing_field is not None:
        smoothing = smoothing_field.slider(
            "Temporal smoothing", 0.0, max(MAX_SMOOTHING, smoothing), smoothing, 0.05,
            key=f"{KEY}-smoothing",
            help="How much of the previous frame's correction is kept in each frame's (an "
                 "exponential moving average), against flicker: 0 none, higher is smoother "
                 "but slower to follow the smoke.")
    return float(scale), float(smoothing)


def render(task: Task) -> None:
    st.title("Surgical smoke removal")
    st.caption(task.description)
    checkpoint = widgets.model_picker(task)
    if checkpoint is None:
        return
    path, loaded = widgets.sample_or_upload(task, checkpoint, KEY, sample_labels(),
                                           uploaded_media)
    if path is None or loaded is None:
        return
    min_size = getattr(loaded.model, "min_size", 16)
    info = None
    with widgets.showing_user_errors():  # a bad file: its reader's one message, no settings
        info = widgets.session_result(f"{KEY}-opened", (str(path), min_size),
                                      lambda: describe(path, min_size))
    if info is None:
        return
    if info["kind"] == "video":
        video_note(info, path.name)
    scale, smoothing = settings_fields(info, loaded.config.data)
    force = st.checkbox(
        "Predict anyway", key=f"{KEY}-force",
        help="Predict an input the model refuses as unlike its training data. The result "
             "is then unreliable; the download's sidecar records the override.")
    with widgets.showing_user_errors():
        def compute() -> tuple[Desmoked, list[InputCheck]]:
            guard = InputGuard.from_meta(loaded.checkpoint.meta, force=force,
                                         report=lambda line: None)
            return desmoke_upload(loaded, path, guard, scale, smoothing), guard.checks

        shown, checks = widgets.session_result(
            f"{KEY}-result", (loaded.checkpoint.key, str(path), scale, smoothing, force),
            compute)
        widgets.input_check_notes(checks)
        show(shown)
