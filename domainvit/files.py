"""Files written atomically and archives extracted safely: the one copy the package uses.

:func:`atomic_write` is how every file of ours comes into being (checkpoints, predictions,
class maps, NIfTI outputs, uploads, caches): the writer fills a temporary file beside the
destination, which is renamed over it only when the writer finished without an error, so
a crash or a failed write leaves either the old file or the new one, never half of one.

:func:`safe_extract` is how every archive is opened (zip uploads, zipped DICOM series,
PyPI sdists): each member is checked before anything is written (no absolute or ``..``
paths, no links or devices, at most ``max_members`` files and ``max_bytes`` of content,
counted again while inflating because an archive's directory can lie), and an archive
that breaks a rule is refused as a whole. Tar members go through :mod:`tarfile`'s
``"data"`` extraction filter (PEP 706) as well.

:func:`cache_root` is the folder (``$DOMAINVIT_DATA``, default ``~/.cache/domainvit``)
under which sample datasets and caches live.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from domainvit.errors import UserError

__all__ = [
    "DOUBLE_SUFFIXES",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_EXTRACTED_BYTES",
    "atomic_write",
    "cache_root",
    "format_size",
    "folder_files",
    "natural_key",
    "safe_extract",
    "split_suffix",
]

#: default most files an archive may hold
MAX_ARCHIVE_MEMBERS = 10_000
#: default most bytes an archive may inflate to
MAX_EXTRACTED_BYTES = 2 * 1024**3

_CHUNK = 1 << 20
#: suffixes of two parts that belong together (``scan.nii.gz``: ``scan`` + ``.nii.gz``)
DOUBLE_SUFFIXES = (".nii.gz", ".tar.gz")


def cache_root() -> Path:
    """``$DOMAINVIT_DATA`` (default ``~/.cache/domainvit``): sample data and caches."""
    root = os.environ.get("DOMAINVIT_DATA")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "domainvit"


def natural_key(path: str | os.PathLike) -> list:
    """Sort key of a file name with its numbers compared as numbers (``frame2`` before
    ``frame10``)."""
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", Path(path).name)]


def folder_files(folder: str | os.PathLike) -> list[Path]:
    """The regular files directly in ``folder`` (not hidden), in natural order."""
    return sorted((p for p in Path(folder).iterdir()
                   if p.is_file() and not p.name.startswith(".")), key=natural_key)


def format_size(count: int) -> str:
    """``count`` bytes for people: ``"512 bytes"``, ``"4.0 MiB"``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def split_suffix(name: str, double_suffixes: Sequence[str] = DOUBLE_SUFFIXES
                 ) -> tuple[str, str]:
    """``(stem, suffix)`` of the file name ``name``, a two-part suffix of
    ``double_suffixes`` kept whole (``"scan.nii.gz"`` -> ``("scan", ".nii.gz")``)."""
    lower = name.lower()
    for suffix in double_suffixes:
        if lower.endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    path = Path(name)
    return path.stem, path.suffix


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_write(path: str | os.PathLike, *, suffix: str | None = None,
                 durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block ends.

    Use as ``with atomic_write(out) as temporary: writer(temporary)``. The temporary file
    exists (empty) when the block starts and is in the destination folder, so the rename
    never crosses file systems; its name starts with a dot and ends in ``suffix``
    (default: the suffix of ``path``, ``.nii.gz`` and ``.tar.gz`` kept whole), because
    writers such as nibabel, rasterio and ``np.save`` choose the format by suffix. When the
    block raises, the temporary file is removed and ``path`` is left as it was. With
    ``durable`` (the default) the file and its folder are flushed to disk before and after
    the rename, so a power cut cannot leave an empty file under the final name; scratch
    files that die with their folder can skip that.
    """
    path = Path(path)
    suffix = split_suffix(path.name)[1] if suffix is None else suffix
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{stem}.{secrets.token_hex(6)}.partial{suffix}")
    # created here rather than by mkstemp, so the final file gets the usual umask permissions
    temporary.open("xb").close()
    try:
        yield temporary
        if durable:
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    if durable:
        _fsync_folder(path.parent)


# ---------------------------------------------------------------------------------------
# Archives


def _escapes(name: str) -> bool:
    """An absolute path, a Windows drive, or a ``..`` component, in either slash style."""
    normalised = name.replace("\\", "/")
    return (normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised) is not None
            or ".." in PurePosixPath(normalised).parts)


def _unsafe_path_error(shown: str, name: str) -> UserError:
    return UserError(f"{shown} has an unsafe member with an absolute or '..' path ({name!r}): "
                     "refusing to extract it")


def _link_error(shown: str, name: str) -> UserError:
    return UserError(f"{shown} has a link or special member {name!r}: refusing to extract it")


def _zip_files(handle: zipfile.ZipFile, shown: str) -> list[tuple[str, int, object]]:
    files = []
    for member in handle.infolist():
        if _escapes(member.filename):
            raise _unsafe_path_error(shown, member.filename)
        if member.is_dir():
            continue
        kind = stat.S_IFMT(member.external_attr >> 16)  # Unix file type, where the tool kept it
        if kind and kind != stat.S_IFREG:  # a symlink (or device) stored by Info-ZIP
            raise _link_error(shown, member.filename)
        files.append((member.filename, member.file_size, member))
    return files


def _tar_files(handle: tarfile.TarFile, shown: str, dest: Path) -> list[tuple[str, int, object]]:
    files = []
    for member in handle.getmembers():
        if _escapes(member.name):
            raise _unsafe_path_error(shown, member.name)
        if not (member.isfile() or member.isdir()):
            raise _link_error(shown, member.name)
        try:
            tarfile.data_filter(member, str(dest))
        except tarfile.FilterError as error:
            raise UserError(f"{shown}: refusing to extract {member.name!r} "
                            f"({_reason(error)})") from None
        if member.isfile():
            files.append((member.name, member.size, member))
    return files


def _reason(error: BaseException) -> str:
    """The first line of a library's message (tarfile's lists every method it tried)."""
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(":") if lines else type(error).__name__


def _open_archive(archive: Path, shown: str, expected: str) -> zipfile.ZipFile | tarfile.TarFile:
    hint = f": expected {expected}" if expected else ""
    if zipfile.is_zipfile(archive) or archive.suffix.lower() == ".zip":
        try:
            return zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as error:
            raise UserError(f"{shown} is not a readable zip archive "
                            f"({_reason(error)}){hint}") from None
    try:
        return tarfile.open(archive)
    except (tarfile.TarError, OSError) as error:
        raise UserError(f"{shown} is not a readable tar archive ({_reason(error)}){hint}") from None


def _copy_counted(source: BinaryIO, target: Path, budget: int, shown: str,
                  limit: int) -> int:
    written = 0
    with atomic_write(target, durable=False) as temporary, open(temporary, "wb") as sink:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                raise UserError(f"{shown} inflates to more than {format_size(limit)}")
            sink.write(chunk)
    return written


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *,
                 max_members: int = MAX_ARCHIVE_MEMBERS,
                 max_bytes: int = MAX_EXTRACTED_BYTES,
                 select: Callable[[str], bool] | None = None,
                 rename: Callable[[int, str], str] | None = None,
                 shown: str | None = None, expected: str = "") -> dict[Path, str]:
    """Extract the regular files of a zip or tar ``archive`` into ``dest``.

    Returns ``{extracted path: member name}`` in archive order; an archive without files
    returns ``{}`` (the caller decides whether that is an error).

    Args:
        archive: a zip file (by content or a ``.zip`` name), else any tar ``tarfile``
            opens (``.tar``, ``.tar.gz``, ...).
        dest: the folder to extract into; created only once the archive passed the checks.
        max_members: the most files (folders not counted) the archive may hold.
        max_bytes: the most bytes its files may hold, by the archive's directory and again
            while inflating.
        select: keep only the members whose name it accepts (the others are checked but
            not written, and not counted against the limits).
        rename: ``rename(index, member name)`` -> the file's path relative to ``dest``
            (default: the member's path); ``index`` counts the selected files from 0. Two
            members that map to one name are refused.
        shown: the archive's name in messages (default: its file name).
        expected: what the archive should hold, for messages (``"a zip of one DICOM
            series"``).

    Raises:
        UserError: naming the archive and the rule it breaks (unreadable, a member with an
            absolute or ``..`` path, a link or device member, more than ``max_members``
            files, more than ``max_bytes`` of content, two files of one name); nothing of
            the archive is left in ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    shown = shown or archive.name
    with _open_archive(archive, shown, expected) as handle:
        is_zip = isinstance(handle, zipfile.ZipFile)
        members = (_zip_files(handle, shown) if is_zip
                   else _tar_files(handle, shown, dest.resolve()))
        if select is not None:
            members = [m for m in members if select(m[0])]
        if len(members) > max_members:
            raise UserError(f"{shown} holds {len(members)} files, more than the {max_members} "
                            "accepted")
        declared = sum(size for _, size, _ in members)
        if declared > max_bytes:
            raise UserError(f"{shown} (uncompressed) is {format_size(declared)}, larger than "
                            f"the {format_size(max_bytes)} limit")
        targets: dict[Path, tuple[str, object]] = {}
        for index, (name, _, member) in enumerate(members):
            relative = rename(index, name) if rename is not None else name.replace("\\", "/")
            if _escapes(relative):
                raise _unsafe_path_error(shown, relative)
            target = dest / relative
            if target in targets:
                raise UserError(f"{shown} holds two files named {relative} (in different "
                                "folders, or differing only in characters that are replaced)")
            targets[target] = (name, member)
        written: dict[Path, str] = {}
        budget = max_bytes
        try:
            for target, (name, member) in targets.items():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    source = handle.open(member) if is_zip else handle.extractfile(member)
                    with source:
                        budget -= _copy_counted(source, target, budget, shown, max_bytes)
                except (zipfile.BadZipFile, tarfile.TarError, zlib.error, OSError, EOFError,
                        RuntimeError, NotImplementedError, ValueError) as error:
                    # damaged (gzip.BadGzipFile is an OSError), encrypted (RuntimeError) or
                    # compressed in a way zipfile does not read (NotImplementedError)
                    raise UserError(f"cannot extract {name!r} from {shown} "
                                    f"({_reason(error)})") from None
                written[target] = name
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    return written
