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

import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from domainvit.dashboard.launch import MAX_UPLOAD_MB
from domainvit.errors import UserError
from domainvit.files import (
    DOUBLE_SUFFIXES,
    MAX_EXTRACTED_BYTES,
    atomic_write,
    format_size,
    safe_extract,
    split_suffix,
)

MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024**2
#: the most members a zip upload may hold: a raster and its header or sidecars, not a
#: whole archive of scans (domainvit.files.MAX_ARCHIVE_MEMBERS is for archives we fetch)
MAX_ZIP_MEMBERS = 64
#: the longest file name kept (the suffix included)
MAX_NAME_LENGTH = 100

_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
#: an Analyze pair's header keeps its ``.img.hdr`` whole too
_DOUBLE_SUFFIXES = (*DOUBLE_SUFFIXES, ".img.hdr")


class Upload(Protocol):
    """What an upload offers (Streamlit's ``UploadedFile``)."""

    name: str
    size: int

    def seek(self, offset: int, whence: int = 0) -> int: ...
    def read(self, size: int = -1) -> bytes: ...


def safe_file_name(name: str, default: str = "upload") -> str:
    """A file name made from ``name`` that is safe to create in a folder of ours."""
    last = re.split(r"[\\/]", name)[-1]
    stem, suffix = split_suffix(last, _DOUBLE_SUFFIXES)
    stem = _UNSAFE_CHARACTERS.sub("_", stem).lstrip(".")
    suffix = _UNSAFE_CHARACTERS.sub("_", suffix)
    if not stem.strip("_"):
        stem = default
    stem = stem[: max(1, MAX_NAME_LENGTH - len(suffix))]
    return stem + suffix[:MAX_NAME_LENGTH]


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
    written = 0
    # an upload lives in a scratch folder that dies with the session: no fsync needed
    with atomic_write(target, durable=False) as temporary, open(temporary, "wb") as sink:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            check_upload_size(shown, written, limit)
            sink.write(chunk)


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


def extract_zip(archive: Path, folder: Path, shown: str | None = None,
                max_bytes: int = MAX_EXTRACTED_BYTES,
                max_members: int = MAX_ZIP_MEMBERS) -> list[Path]:
    """Extract the files of a zip upload side by side into ``folder``; their paths.

    Member folders are dropped and each name goes through :func:`safe_file_name`, so
    ``scene/x.hdr`` and ``scene/x.img`` become ``x.hdr`` and ``x.img`` (a pair stays a
    pair). An archive with absolute or ``..`` member paths, links, more than
    ``max_members`` files, two files of the same name, or more than ``max_bytes`` of
    content (counted while inflating) is refused with a UserError, and nothing of it is
    kept (:func:`domainvit.files.safe_extract`).
    """
    shown = shown or archive.name
    files = safe_extract(archive, folder, max_members=max_members, max_bytes=max_bytes,
                         rename=lambda _, name: safe_file_name(PurePosixPath(
                             name.replace("\\", "/")).name),
                         shown=shown)
    if not files:
        raise UserError(f"{shown} holds no files")
    return list(files)


def remove_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
