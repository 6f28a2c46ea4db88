"""Uploaded files on the server: size limit, safe names, private folders, zip archives.

A file name chosen by a user never becomes a path as it is: :func:`safe_file_name`
keeps its last component, replaces every character outside ``[A-Za-z0-9._-]`` and
leading dots, and keeps the suffix the readers look at (``.nii.gz``, ``.hdr``, ...).
Each upload is written into a fresh folder of its own (so two uploads never collide)
inside a folder private to the browser session (mode 0700), and written under a
temporary name first, so a failed upload leaves no partial file that looks complete.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from domainvit.dashboard.launch import MAX_UPLOAD_MB
from domainvit.errors import UserError

MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024**2
#: the most bytes a zip upload may inflate to
MAX_EXTRACTED_BYTES = 2 * 1024**3
#: the most members a zip upload may hold
MAX_ZIP_MEMBERS = 64
#: the longest file name kept (the suffix included)
MAX_NAME_LENGTH = 100

_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_DOUBLE_SUFFIXES = (".nii.gz", ".img.hdr", ".tar.gz")


class Upload(Protocol):
    """What an upload offers (Streamlit's ``UploadedFile``)."""

    name: str
    size: int

    def seek(self, offset: int, whence: int = 0) -> int: ...
    def read(self, size: int = -1) -> bytes: ...


def _split_suffix(name: str) -> tuple[str, str]:
    lower = name.lower()
    for suffix in _DOUBLE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    stem, dot, suffix = name.rpartition(".")
    return (stem, dot + suffix) if dot and suffix else (name, "")


def safe_file_name(name: str, default: str = "upload") -> str:
    """A file name made from ``name`` that is safe to create in a folder of ours."""
    last = re.split(r"[\\/]", name)[-1]
    stem, suffix = _split_suffix(last)
    stem = _UNSAFE_CHARACTERS.sub("_", stem).lstrip(".")
    suffix = _UNSAFE_CHARACTERS.sub("_", suffix)
    if not stem.strip("_"):
        stem = default
    stem = stem[: max(1, MAX_NAME_LENGTH - len(suffix))]
    return stem + suffix[:MAX_NAME_LENGTH]


def format_size(count: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def check_upload_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise UserError(f"{name} is {format_size(size)}, larger than the "
                        f"{format_size(limit)} upload limit")
    if size == 0:
        raise UserError(f"{name} is empty")


def private_folder(prefix: str = "domainvit-dashboard-") -> tempfile.TemporaryDirectory:
    """A new folder readable only by this user, removed when the returned object is
    garbage-collected (with the session that holds it) or at exit."""
    return tempfile.TemporaryDirectory(prefix=prefix)


def _copy_atomic(source: BinaryIO, target: Path, limit: int, shown: str) -> None:
    partial = target.with_name(f".{target.name}.partial")
    written = 0
    try:
        with open(partial, "xb") as sink:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                check_upload_size(shown, written, limit)
                sink.write(chunk)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def save_upload(upload: Upload, folder: Path, limit: int | None = None) -> Path:
    """Write ``upload`` into a new sub-folder of ``folder`` under a safe name; the path.

    Raises UserError when the upload is empty or larger than ``limit`` bytes (default:
    :data:`MAX_UPLOAD_BYTES`).
    """
    limit = MAX_UPLOAD_BYTES if limit is None else limit
    check_upload_size(upload.name, upload.size, limit)
    target_dir = Path(tempfile.mkdtemp(prefix="upload-", dir=folder))
    target = target_dir / safe_file_name(upload.name)
    upload.seek(0)
    _copy_atomic(upload, target, limit, upload.name)
    return target


def derived_folder(upload: Path, name: str = "results") -> Path:
    """A folder beside a saved upload for what is made from it. Its name starts with a
    dot, which no name from :func:`safe_file_name` does, so it never meets an upload."""
    folder = upload.parent / f".{name}"
    folder.mkdir(exist_ok=True)
    return folder


def _unsafe_member(name: str) -> bool:
    normalised = name.replace("\\", "/")
    return (normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised) is not None
            or ".." in PurePosixPath(normalised).parts)


def extract_zip(archive: Path, folder: Path, shown: str | None = None,
                max_bytes: int = MAX_EXTRACTED_BYTES,
                max_members: int = MAX_ZIP_MEMBERS) -> list[Path]:
    """Extract the files of a zip upload side by side into ``folder``; their paths.

    Member folders are dropped and each name goes through :func:`safe_file_name`, so
    ``scene/x.hdr`` and ``scene/x.img`` become ``x.hdr`` and ``x.img`` (a pair stays a
    pair). An archive with absolute or ``..`` member paths, more than ``max_members``
    files, two files of the same name, or more than ``max_bytes`` of content (counted
    while inflating) is refused with a UserError, and nothing of it is kept.
    """
    shown = shown or archive.name
    try:
        handle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{shown} is not a readable zip archive ({exc})") from None
    with handle:
        members = [m for m in handle.infolist() if not m.is_dir()]
        if not members:
            raise UserError(f"{shown} holds no files")
        if len(members) > max_members:
            raise UserError(f"{shown} holds {len(members)} files; at most {max_members} "
                            "are accepted")
        names: dict[str, zipfile.ZipInfo] = {}
        for member in members:
            if _unsafe_member(member.filename):
                raise UserError(f"{shown} has a member with an absolute or '..' path "
                                f"({member.filename!r}): refusing to extract it")
            name = safe_file_name(PurePosixPath(member.filename.replace("\\", "/")).name)
            if name in names:
                raise UserError(f"{shown} holds two files named {name} (in different "
                                "folders, or differing only in characters that are "
                                "replaced): give one raster per archive")
            names[name] = member
        if sum(m.file_size for m in members) > max_bytes:
            raise UserError(f"{shown} inflates to more than {format_size(max_bytes)}")
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        remaining = max_bytes
        try:
            for name, member in names.items():
                target = folder / name
                try:
                    with handle.open(member) as source:
                        # count what is really inflated: the sizes in the directory can lie
                        _copy_atomic(source, target, remaining, f"{shown} ({member.filename})")
                except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError,
                        NotImplementedError, ValueError) as exc:
                    raise UserError(f"cannot extract {member.filename!r} from {shown} "
                                    f"({exc})") from None
                written.append(target)
                remaining -= target.stat().st_size
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    return written


def remove_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
