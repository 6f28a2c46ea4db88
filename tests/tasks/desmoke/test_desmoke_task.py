"""The desmoke task end to end with a tiny RGA-Net: a short training that beats the input,
``eval`` on a user's folder of real pairs in both layouts, ``predict`` on frames (8 and
16 bit, PNG/TIFF/JPEG, odd sizes, tiled) and video (same size, frame rate and frame
count), temporal smoothing, the input check, and bad inputs through the CLI (one line,
nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from domainvit import checkpoint as ckpt
from domainvit.datasets.desmoke_tissue import DESMOKE_TISSUE, SmokeSettings, SmokeSimulator
from domainvit.datasets.frames import (
    find_pairs,
    iter_video,
    read_frame,
    video_info,
    write_frame,
    write_video,
)
from domainvit.datasets.registry import prepare
from domainvit.distribution import InputGuard
from domainvit.engine import evaluate, train
from domainvit.errors import UserError
from domainvit.registry import load_tasks
from domainvit.tasks.desmoke.data import DesmokeData
from domainvit.tasks.desmoke.distribution import compare_frame
from domainvit.tasks.desmoke.metrics import flicker
from domainvit.tasks.desmoke.predict import desmoke_frame, predict_media
from tests.conftest import load_trained, run_cli

TINY_MODEL = {"name": "rganet", "widths": [8, 16, 32, 32], "hybrid_depth": 2,
              "decoder_hybrid_depth": 1, "axis_depth": 1, "head_dim": 16, "window_size": 4,
              "block_size": 2, "mlp_ratio": 1.0}


def _pairs_folder(folder: Path, count: int, size: int = 64, layout: str = "desmokedata",
                  split: str = "test") -> Path:
    """``count`` simulated pairs written as a user's folder in ``layout``."""
    simulator = SmokeSimulator(SmokeSettings(size=size), split)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pair = simulator.pair(i)
        smoky, clean = pair["smoky"].transpose(1, 2, 0), pair["clean"].transpose(1, 2, 0)
        if layout == "desmokedata":
            write_frame(folder / f"{i}.png", smoky, 8)
            write_frame(folder / f"{i}_gt.png", clean, 8)
        else:
            (folder / "smoky").mkdir(exist_ok=True)
            (folder / "clean").mkdir(exist_ok=True)
            write_frame(folder / "smoky" / f"frame{i:03d}.png", smoky, 8)
            write_frame(folder / "clean" / f"frame{i:03d}.png", clean, 8)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(config, checkpoint) of a tiny RGA-Net after a short training on simulated smoke
    (validation on a small folder of pairs, so the module stays quick)."""
    load_tasks()
    tmp = tmp_path_factory.mktemp("desmoke_run")
    val = _pairs_folder(tmp / "pairs" / "val", 8, split="val")
    _pairs_folder(tmp / "pairs" / "test", 12)
    cfg = {"task": "desmoke", "seed": 0, "run_dir": str(tmp / "run"), "model": TINY_MODEL,
           "data": {"dataset": "desmoke-tissue", "crop": 48, "train_samples": 384,
                    "root": str(val.parent)},
           "train": {"epochs": 3, "batch_size": 16, "log_every": 8, "val_every": 3},
           "optim": {"name": "adamw", "lr": 0.004}}
    path = tmp / "desmoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = train(str(path))
    return path, ckpt.resolve_checkpoint(run)


def _model(trained):
    return load_trained("desmoke", *trained)


def test_a_short_training_removes_smoke(trained):
    config, checkpoint = trained
    scores = evaluate(str(config), str(checkpoint))
    assert scores["psnr_gain"] > 1.0, scores
    assert scores["psnr"] == pytest.approx(scores["input_psnr"] + scores["psnr_gain"])
    assert 0 < scores["ciede2000"] < 30


@pytest.mark.parametrize("layout", ["desmokedata", "parallel"])
def test_eval_scores_a_users_folder_from_the_cli(trained, tmp_path, layout):
    config, checkpoint = trained
    root = _pairs_folder(tmp_path / "mine", 5, size=40, layout=layout)
    done = run_cli("eval", str(config), "--checkpoint", str(checkpoint),
                   "--set", f"data.root={root}", "--json")
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    assert scores["input_psnr"] > 0 and "ciede2000" in scores
    # the same numbers as scoring the files directly
    smoky = [read_frame(s)[0] for s, _ in find_pairs(root)]
    clean = [read_frame(c)[0] for _, c in find_pairs(root)]
    mse = [np.mean((s - c) ** 2) for s, c in zip(smoky, clean, strict=True)]
    expected = float(np.mean([10 * np.log10(1 / m) for m in mse]))
    assert scores["input_psnr"] == pytest.approx(expected, abs=0.05)


def test_a_folder_without_pairs_is_one_line_from_the_cli(trained, tmp_path):
    config, checkpoint = trained
    (tmp_path / "empty").mkdir()
    done = run_cli("eval", str(config), "--checkpoint", str(checkpoint),
                   "--set", f"data.root={tmp_path / 'empty'}", "--json")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "empty" in lines[0], done.stderr


@pytest.mark.parametrize("name, bits", [("frame.png", 8), ("deep.png", 16),
                                        ("scan.tif", 16), ("photo.jpg", 8)])
def test_predict_keeps_size_and_bit_depth(trained, tmp_path, name, bits):
    model, cfg, meta = _model(trained)
    pair = SmokeSimulator(SmokeSettings(size=64), "test").pair(3)
    frame = pair["smoky"].transpose(1, 2, 0)[:, :53]  # odd width
    path = write_frame(tmp_path / name, frame, bits)
    out = tmp_path / "out"
    written = predict_media(model, cfg.data, [path], out, InputGuard.from_meta(meta))
    stem, suffix = name.split(".")
    assert sorted(p.name for p in written) == sorted(
        [f"{stem}.desmoked.{suffix}", f"{stem}.prediction.json"])
    result, result_bits = read_frame(out / f"{stem}.desmoked.{suffix}")
    assert result.shape == frame.shape and result_bits == bits
    expected, _ = desmoke_frame(model, cfg.data, read_frame(path)[0])
    error = np.abs(result - expected)
    if suffix == "jpg":  # lossy: close on average
        assert error.mean() < 0.02
    else:  # exact to the last level of the bit depth
        assert error.max() <= 1.0 / (2**bits - 1)
    sidecar = json.loads((out / f"{stem}.prediction.json").read_text())
    assert sidecar["bit_depth"] == bits and sidecar["input_check"]["outcome"] == "ok"
    assert 0 <= sidecar["smoke_density_out"] <= 1


def test_large_frames_are_tiled_like_whole_frames(trained, tmp_path):
    model, cfg, _ = _model(trained)
    torch.manual_seed(0)
    frame = SmokeSimulator(SmokeSettings(size=192), "test").pair(1)["smoky"].transpose(1, 2, 0)
    whole, _ = desmoke_frame(model, cfg.data, frame)
    tiled, _ = desmoke_frame(model, cfg.data.model_copy(update={"tile": 96,
                                                                "tile_overlap": 32}), frame)
    assert tiled.shape == frame.shape
    # the smooth correction fields blend: tiles differ from the whole frame only by what
    # the context each tile sees changes (the blending itself is exact: test_rganet.py)
    assert np.abs(tiled - whole).mean() < 0.05


def _video(path: Path, frames: int = 6, size: int = 64, fps: float = 12.5) -> Path:
    sequence = SmokeSimulator(SmokeSettings(size=size), "test").sequence(0, frames)
    images = (sequence["smoky"].transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
    write_video(path, images[:, :, :50], fps, (50, size))
    return path


def test_predict_writes_a_video_of_the_same_size_rate_and_length(trained, tmp_path):
    model, cfg, meta = _model(trained)
    path = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    written = predict_media(model, cfg.data, [path], out, InputGuard.from_meta(meta))
    assert sorted(p.name for p in written) == ["clip.desmoked.mp4", "clip.prediction.json"]
    info = video_info(out / "clip.desmoked.mp4")
    assert tuple(info["size"]) == (50, 64) and info["fps"] == pytest.approx(12.5)
    assert len(list(iter_video(out / "clip.desmoked.mp4"))) == 6
    sidecar = json.loads((out / "clip.prediction.json").read_text())
    assert sidecar["frames"] == 6 and sidecar["fps"] == pytest.approx(12.5)


def test_temporal_smoothing_reduces_flicker(trained):
    model, cfg, _ = _model(trained)
    sequence = SmokeSimulator(SmokeSettings(size=48), "test").sequence(1, 8)
    frames = sequence["smoky"].transpose(0, 2, 3, 1).copy()
    frames[1::2] = np.clip(frames[1::2] * 0.85 + 0.1, 0, 1)  # smoke pulsing frame to frame

    def run(smoothing: float) -> np.ndarray:
        data = cfg.data.model_copy(update={"temporal_smoothing": smoothing})
        previous, out = None, []
        for frame in frames:
            result, previous = desmoke_frame(model, data, frame, previous)
            out.append(result.transpose(2, 0, 1))
        return torch.as_tensor(np.stack(out))

    clean = torch.as_tensor(sequence["clean"])
    assert flicker(run(0.7), clean) < flicker(run(0.0), clean)


def test_sample_frames_pass_and_a_green_frame_is_warned_about(trained):
    _, cfg, meta = _model(trained)
    reference = meta["data_info"]["distribution"]
    test_pairs = find_pairs(prepare(DESMOKE_TISSUE) / "test")
    for smoky, _ in test_pairs[:6]:
        assert compare_frame(reference, read_frame(smoky)[0]) == []
    green = np.zeros((64, 64, 3), np.float32)
    green[..., 1] = 0.7
    aspects = [f.aspect for f in compare_frame(reference, green)]
    assert aspects[0] == "red_share" and all(f == "warn" for f in
                                             [f.level for f in compare_frame(reference, green)])


def _grayscale(path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((40, 40), 120, np.uint8)).save(path)


BAD = {
    "grey.png": _grayscale,
    "tiny.png": lambda p: write_frame(p, np.full((8, 40, 3), 0.5), 8),
    "broken.mp4": lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 300),
    "empty.mp4": lambda p: p.write_bytes(b""),
    "notes.txt": lambda p: p.write_text("smoke"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_inputs_are_refused_by_name_and_write_nothing(trained, tmp_path, name):
    model, cfg, meta = _model(trained)
    good = write_frame(tmp_path / "good.png", np.full((32, 32, 3), 0.5), 8)
    path = tmp_path / name
    BAD[name](path)
    out = tmp_path / "out"
    with pytest.raises(UserError) as refused:
        predict_media(model, cfg.data, [good, path], out, InputGuard.from_meta(meta))
    message = str(refused.value)
    assert name in message and "\n" not in message
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", ["grey.png", "broken.mp4"])
def test_bad_inputs_are_one_line_from_the_cli(trained, tmp_path, name):
    config, checkpoint = trained
    path = tmp_path / name
    BAD[name](path)
    out = tmp_path / "out"
    done = run_cli("predict", str(config), "--checkpoint", str(checkpoint), str(path),
                   "--out", str(out))
    assert done.returncode != 0
    lines = [line for line in done.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("domainvit: error:"), done.stderr
    assert name in lines[0] and "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_video_without_frames_is_refused(trained, tmp_path):
    model, cfg, meta = _model(trained)
    path = _video(tmp_path / "clip.mp4", frames=3)
    # keep the container, drop the frames: a header-only copy
    silent = tmp_path / "silent.mp4"
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-vn",
                    "-f", "lavfi", "-i", "anullsrc", "-t", "0.2", "-map", "1:a", "-c:a", "aac",
                    str(silent)], check=True, capture_output=True)
    with pytest.raises(UserError, match="silent.mp4"):
        predict_media(model, cfg.data, [silent], tmp_path / "out", InputGuard.from_meta(meta))


def test_bad_data_configs_are_refused():
    with pytest.raises(ValueError, match="root"):
        DesmokeData(dataset="folder")
    with pytest.raises(ValueError, match="tile_overlap"):
        DesmokeData(tile=64, tile_overlap=40)
    with pytest.raises(ValueError, match="beta"):
        DesmokeData(beta=(2.0, 1.0))


def test_training_on_a_users_folder_needs_its_train_pairs(tmp_path):
    from domainvit.tasks.desmoke.data import build_dataset

    root = _pairs_folder(tmp_path / "mine", 3, size=40)
    cfg = DesmokeData(dataset="folder", root=root, crop=32, train_samples=4)
    with pytest.raises(UserError, match="train"):
        build_dataset(cfg, "train")
    shutil.copytree(root, root / "train")
    item = build_dataset(cfg, "train")[0]
    assert item["input"].shape == item["target"].shape == (3, 32, 32)
