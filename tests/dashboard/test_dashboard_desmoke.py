"""The desmoke page: a sample frame is desmoked into the file ``domainvit predict`` writes
(at another processing scale too), with the smoke density before and after; a 16-bit
upload gives a 16-bit download; a short video gives a video of its frame count, size
and frame rate, a long one a note; an unlike frame a warning; bad uploads the reader's
one message.

The model is a tiny RGA-Net left untrained (:func:`add_desmoke_model`) whose head is
given small random weights and a fixed gain and offset, so that its output differs from
its input (a zero head returns the input): the page's plumbing is under test, not the
desmoking's quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from domainvit import checkpoint as ckpt
from domainvit.config import validate_config
from domainvit.dashboard.launch import MODELS_ENV
from domainvit.dashboard.task_pages import desmoke as page_module
from domainvit.dashboard.task_pages.desmoke import (
    DENSITY_COLOURS,
    _progress_reporter,
    display_size,
    heat,
    picture,
    sample_labels,
    split_view,
)
from domainvit.datasets.frames import read_frame, read_video, video_info, write_frame, write_video
from domainvit.distribution import InputGuard
from domainvit.engine import build_model, inference_config, load_inference_weights
from domainvit.registry import get_task
from domainvit.tasks.desmoke.data import DesmokeData
from domainvit.tasks.desmoke.predict import predict_media
from tests.dashboard.conftest import (
    errors,
    open_task_page,
    save_untrained_model,
    upload,
)

KEY = "desmoke-upload"
TINY_MODEL = {"name": "rganet", "widths": [8, 16, 32, 32], "hybrid_depth": 2,
              "decoder_hybrid_depth": 1, "axis_depth": 1, "head_dim": 16, "window_size": 4,
              "block_size": 2, "mlp_ratio": 1.0}
MODEL_NAME = "desmoke-tiny"
MODEL_LABEL = f"{MODEL_NAME} (rganet, models folder)"
#: the head's gain ``a`` and offset ``b`` (``J = I (1 + a) + b``): a contrast stretch
HEAD_GAIN, HEAD_OFFSET = 0.3, -0.15


def add_desmoke_model(folder: Path) -> str:
    """An untrained tiny RGA-Net for the quickstart data (``desmoke-tissue``) with its
    training record, saved into ``folder`` (a models folder); its label. The head (zero
    at initialisation: the model would return its input) gets small random weights and
    the bias of a contrast stretch, so the output differs from the input."""
    def stretch(model: torch.nn.Module) -> None:
        torch.nn.init.normal_(model.head.weight, std=0.01)
        model.head.bias.copy_(torch.tensor([HEAD_GAIN] * 3 + [HEAD_OFFSET] * 3))

    save_untrained_model(folder, "desmoke", MODEL_NAME, TINY_MODEL,
                         {"dataset": "desmoke-tissue"}, stretch)
    return MODEL_LABEL


@pytest.fixture(scope="module")
def desmoke_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("desmoke-models")
    add_desmoke_model(folder)
    return folder


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Path]:
    """The task's sample frames (8-bit PNGs of the sample benchmark's test split)."""
    folder = tmp_path_factory.mktemp("desmoke-samples")
    return get_task("desmoke").sample_inputs(DesmokeData(), folder)


@pytest.fixture
def page(desmoke_models, monkeypatch) -> AppTest:
    monkeypatch.setenv(MODELS_ENV, str(desmoke_models))
    return open_task_page("desmoke", MODEL_LABEL)


def _predicted(models: Path, path: Path, out: Path, **data) -> list[Path]:
    """The files ``domainvit predict`` writes for ``path`` with the model of the page."""
    checkpoint = models / f"{MODEL_NAME}.safetensors"
    meta = ckpt.read_meta(checkpoint)
    cfg = inference_config(validate_config(dict(meta["config"]), checkpoint.name), meta)
    model = build_model(get_task("desmoke"), cfg)
    load_inference_weights(model, cfg, checkpoint)
    out.mkdir()
    with torch.no_grad():
        return predict_media(model.eval(), cfg.data.model_copy(update=data), [path], out,
                             InputGuard.from_meta(meta, report=lambda line: None))


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("seconds", "fps_processed")}


def _download_button_keys(at: AppTest) -> list[str]:
    return [b.key for b in at.get("download_button")]


def _no_result(at: AppTest) -> None:
    assert not at.get("download_button") and not at.image and not at.metric


def _frames(count: int, height: int, width: int, source: Path) -> list[np.ndarray]:
    """``count`` uint8 frames: windows of ``source`` sliding right by 3 pixels a frame."""
    frame, _ = read_frame(source)
    pixels = np.round(frame * 255).astype(np.uint8)
    return [pixels[8:8 + height, 3 * i:3 * i + width] for i in range(count)]


# --- the page ------------------------------------------------------------------------------


def test_a_sample_frame_is_desmoked_as_domainvit_predict_does(
        page, desmoke_models, samples, downloaded, tmp_path):
    at = page
    assert at.radio(key="desmoke-input").value == "Upload a file"
    _no_result(at)
    at.radio(key="desmoke-input").set_value(sample_labels()[0]).run()
    assert not at.exception and not errors(at)
    assert not at.warning, [w.value for w in at.warning]  # a sample is like the training's
    assert at.radio(key="desmoke-scale").value == 1.0
    assert not at.get("slider") or all(s.label != "Temporal smoothing" for s in at.slider)
    labels = [m.label for m in at.metric]
    assert labels[:2] == ["Smoke density before", "Smoke density after"]

    written = _predicted(desmoke_models, samples[0], tmp_path / "cli")
    expected = next(p for p in written if p.name == "smoky_0.desmoked.png")
    assert downloaded(at, "desmoke-download-result") == expected.read_bytes()
    cli_record = json.loads(next(p for p in written if p.name.endswith(".prediction.json"))
                            .read_text())
    record = json.loads(downloaded(at, "desmoke-download-sidecar"))
    assert _without_timing(record) == _without_timing(cli_record)
    assert record["input_check"]["outcome"] == "ok" and record["bit_depth"] == 8
    assert at.metric[0].value == f"{record['smoke_density_in']:.3f}"
    assert at.metric[1].value == f"{record['smoke_density_out']:.3f}"
    assert record["smoke_density_out"] != record["smoke_density_in"]
    desmoked, _ = read_frame(expected)
    original, _ = read_frame(samples[0])
    assert desmoked.shape == original.shape and not np.array_equal(desmoked, original)

    # before and after side by side; the split slider uncovers the input in the right one
    assert len(at.image) == 2
    assert _image_captions(at) == ["Before: the frame (smoky_0.png)", "After: the frame desmoked"]
    split = next(s for s in at.slider if s.label == "Before | after")
    assert split.value == 0
    split.set_value(20).run()
    assert not at.exception and not errors(at)
    assert _image_captions(at)[1] == "Before left of the line, after right of it (20%)"
    # the density maps instead of the frames
    at.toggle[0].set_value(True).run()
    assert not at.exception and not errors(at)
    assert _image_captions(at)[0] == "Smoke density of the frame before (smoky_0.png)"
    assert any("black 0 (clear)" in c.value for c in at.caption)

    # another processing scale: the file domainvit predict writes at that scale
    at.radio(key="desmoke-scale").set_value(0.25).run()
    assert not at.exception and not errors(at)
    record = json.loads(downloaded(at, "desmoke-download-sidecar"))
    assert record["process_scale"] == 0.25 and at.metric[2].value == "0.25"
    expected = next(p for p in _predicted(desmoke_models, samples[0], tmp_path / "quarter",
                                          process_scale=0.25)
                    if p.name == "smoky_0.desmoked.png")
    assert downloaded(at, "desmoke-download-result") == expected.read_bytes()


def _image_captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def test_a_16_bit_png_gives_a_16_bit_download(page, desmoke_models, samples, downloaded,
                                               tmp_path):
    frame, _ = read_frame(samples[1])
    deep = write_frame(tmp_path / "deep frame.png", frame, 16)
    at = upload(page, KEY, deep)
    assert not at.exception and not errors(at)
    assert at.metric[3].delta == "16 bit"
    assert any("16 bits per channel" in c.value for c in at.caption)
    button = next(b for b in at.get("download_button")
                  if b.key.startswith("desmoke-download-result"))
    assert button.proto.label == "Download the desmoked frame (PNG, 16 bit)"
    data = downloaded(at, "desmoke-download-result")
    result = tmp_path / "downloaded.png"
    result.write_bytes(data)
    desmoked, depth = read_frame(result)
    assert depth == 16 and desmoked.shape == frame.shape
    saved = tmp_path / "deep_frame.png"  # as the upload is saved: a safe name
    saved.write_bytes(deep.read_bytes())
    expected = next(p for p in _predicted(desmoke_models, saved, tmp_path / "cli")
                    if p.name == "deep_frame.desmoked.png")
    assert data == expected.read_bytes()
    record = json.loads(downloaded(at, "desmoke-download-sidecar"))
    assert record["input"] == "deep_frame.png" and record["bit_depth"] == 16


def test_a_short_mp4_gives_an_mp4_of_its_frames_size_and_rate(page, samples, downloaded,
                                                               tmp_path, monkeypatch):
    monkeypatch.setattr(page_module, "LONG_VIDEO_FRAMES", 4)
    clip = write_video(tmp_path / "clip.mp4", _frames(6, 48, 64, samples[0]), 12.0, (64, 48))
    at = upload(page, KEY, clip)
    assert not at.exception and not errors(at)
    assert any("a video of about 6 frames" in c.value for c in at.caption)
    assert any("A long video: about 6 frames" in i.value for i in at.info)
    smoothing = next(s for s in at.slider if s.label == "Temporal smoothing")
    assert smoothing.value == 0.0
    smoothing.set_value(0.5).run()
    assert not at.exception and not errors(at)
    assert len(at.get("video")) == 1
    assert any(c.startswith("Before: the first frame") for c in _image_captions(at))
    assert at.metric[3].delta == "6 frames"
    button = next(b for b in at.get("download_button")
                  if b.key.startswith("desmoke-download-result"))
    assert button.proto.label == "Download the desmoked video (MP4)"
    result = tmp_path / "downloaded.mp4"
    result.write_bytes(downloaded(at, "desmoke-download-result"))
    info = video_info(result)
    video, fps = read_video(result)
    assert video.shape == (6, 48, 64, 3) and fps == pytest.approx(12.0)
    assert info["size"] == (64, 48)
    record = json.loads(downloaded(at, "desmoke-download-sidecar"))
    assert record["kind"] == "video" and record["frames"] == 6
    assert record["fps"] == pytest.approx(12.0) and record["temporal_smoothing"] == 0.5
    assert record["outputs"] == ["clip.desmoked.mp4"]
    original, _ = read_video(clip)
    assert np.abs(video.astype(int) - original.astype(int)).mean() > 2  # it was desmoked


def test_an_avi_gives_an_avi_which_the_page_offers_to_download(page, samples, downloaded,
                                                               tmp_path):
    clip = write_video(tmp_path / "clip.avi", _frames(3, 32, 48, samples[1]), 5.0, (48, 32))
    at = upload(page, KEY, clip)
    assert not at.exception and not errors(at)
    assert not at.get("video")
    assert any("browsers do not play it" in c.value for c in at.caption)
    result = tmp_path / "downloaded.avi"
    result.write_bytes(downloaded(at, "desmoke-download-result"))
    video, fps = read_video(result)
    assert video.shape == (3, 32, 48, 3) and fps == pytest.approx(5.0)


def test_an_unlike_frame_is_warned_about_and_desmoked(page, tmp_path):
    green = tmp_path / "green.png"
    Image.fromarray(np.full((64, 64, 3), (0, 200, 0), np.uint8)).save(green)
    at = upload(page, KEY, green)
    assert not at.exception and not errors(at)
    warned = [w.value for w in at.warning]
    assert warned and all(w.startswith("Unlike the training data: the frame's") for w in warned)
    assert any("colour cast" in w for w in warned), warned
    assert any(k.startswith("desmoke-download-result") for k in _download_button_keys(at))


def _no_frames_video(path: Path) -> Path:
    writer = imageio_ffmpeg.write_frames(str(path), (16, 16), ffmpeg_log_level="quiet",
                                         macro_block_size=1)
    writer.send(None)
    writer.close()
    return path


def _bad_upload(case: str, folder: Path, sample: Path) -> tuple[Path, str]:
    if case == "grayscale":
        path = folder / "grey.png"
        Image.fromarray(np.full((64, 64), 120, np.uint8), "L").save(path)
        return path, "grey.png: a single-channel (grayscale) image"
    if case == "tiny":
        path = folder / "tiny.png"
        Image.fromarray(np.full((8, 12, 3), 120, np.uint8)).save(path)
        return path, "tiny.png is 12x8; the model needs at least 16 pixels on a side"
    if case == "not an image":
        path = folder / "notes.png"
        path.write_text("not a picture")
        return path, "notes.png: cannot be read as a PNG image"
    if case == "corrupt video":
        path = folder / "noise.mp4"
        path.write_bytes(np.random.default_rng(0).bytes(5000))
        return path, "noise.mp4: cannot be read as a video"
    if case == "no frames":
        return _no_frames_video(folder / "nothing.mp4"), "nothing.mp4: holds no video frames"
    if case == "empty":
        path = folder / "empty.mp4"
        path.write_bytes(b"")
        return path, "empty.mp4 is empty"
    path = folder / "big.png"
    path.write_bytes(sample.read_bytes())
    return path, "larger than the 1000 bytes upload limit"


@pytest.mark.parametrize("case", ["grayscale", "tiny", "not an image", "corrupt video",
                                  "no frames", "empty", "too large"])
def test_a_bad_upload_gives_one_message(page, samples, tmp_path, monkeypatch, case):
    from domainvit.dashboard import uploads

    if case == "too large":
        monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    path, message = _bad_upload(case, tmp_path, samples[0])
    at = upload(page, KEY, path)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and message in shown[0], shown
    assert "Traceback" not in shown[0]
    _no_result(at)
    assert not [r for r in at.radio if r.key == "desmoke-scale"]  # no settings for it


# --- the page's pieces ---------------------------------------------------------------------


def test_pictures_are_drawn_at_the_display_size():
    assert display_size((64, 48)) == (512, 384)
    assert display_size((1920, 1080)) == (512, 288)
    frame = np.random.default_rng(0).random((48, 64, 3)).astype(np.float32)
    shown = picture(frame)
    assert shown.dtype == np.uint8 and shown.shape == (384, 512, 3)
    # enlarged pixels stay sharp: every 8 x 8 block is one pixel of the frame
    np.testing.assert_array_equal(shown[::8, ::8], np.round(frame * 255).astype(np.uint8))
    assert picture(np.zeros((1080, 1920, 3), np.uint8)).shape == (288, 512, 3)


def test_the_split_view_puts_before_left_of_the_line_and_after_right_of_it():
    before = np.zeros((4, 10, 3), np.uint8)
    after = np.full((4, 10, 3), 100, np.uint8)
    np.testing.assert_array_equal(split_view(before, after, 0.0), after)
    np.testing.assert_array_equal(split_view(before, after, 1.0), before)
    half = split_view(before, after, 0.5)
    assert (half[:, :4] == 0).all() and (half[:, 4:6] == 255).all() and (half[:, 6:] == 100).all()
    with pytest.raises(ValueError, match="differ in shape"):
        split_view(before, after[:, :5], 0.5)


def test_the_density_heat_runs_from_clear_to_opaque():
    colours = heat(np.array([[0.0, 1.0, 2.0, np.nan]]))
    np.testing.assert_array_equal(colours[0, 0], DENSITY_COLOURS[0])
    np.testing.assert_array_equal(colours[0, 1], DENSITY_COLOURS[-1])
    np.testing.assert_array_equal(colours[0, 2], DENSITY_COLOURS[-1])  # clipped
    np.testing.assert_array_equal(colours[0, 3], DENSITY_COLOURS[0])


class _Bar:
    def __init__(self) -> None:
        self.shown: list[tuple[float, str]] = []

    def progress(self, value: float, text: str) -> None:
        self.shown.append((value, text))


def test_the_video_progress_counts_frames_and_the_time_left():
    clock = iter([0.0, 1.0, 1.05, 2.0, 3.0])
    bar = _Bar()
    report = _progress_reporter(bar, "clip.mp4", clock=lambda: next(clock))  # started at 0 s
    report(2, 4)  # 1 s: 2 frames/s, 1 s left
    report(3, 4)  # 1.05 s: too soon after the last update, not shown
    report(4, 4)  # the last frame is always shown
    assert bar.shown == [(0.5, "Desmoking clip.mp4: frame 2 of ~4, 2.0 frames/s, about 1 s left"),
                         (0.99, "Desmoking clip.mp4: frame 4 of ~4, 2.0 frames/s, about 0 s "
                                "left")]
    report(5, None)  # no estimate of the frame count
    assert bar.shown[-1] == (0.0, "Desmoking clip.mp4: frame 5, 1.7 frames/s")
