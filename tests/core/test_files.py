"""Atomic writes and safe archive extraction (domainvit.files): a failed write leaves the
old file, and zip and tar archives that try to escape, link, or inflate past the limits are
refused as a whole."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from domainvit.errors import UserError
from domainvit.files import atomic_write, cache_root, format_size, safe_extract


def test_atomic_write_renames_into_place_with_the_writers_suffix(tmp_path: Path):
    target = tmp_path / "sub" / "scan.nii.gz"
    with atomic_write(target) as temporary:
        assert temporary.parent == target.parent and temporary.exists()
        assert temporary.name.startswith(".") and temporary.name.endswith(".nii.gz")
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["scan.nii.gz"]


def test_failed_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "last.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_write(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


def test_atomic_write_honours_the_umask(tmp_path: Path):
    previous = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.json") as temporary:
            temporary.write_text("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_cache_root_follows_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DOMAINVIT_DATA", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("DOMAINVIT_DATA")
    assert cache_root() == Path.home() / ".cache" / "domainvit"


def test_format_size():
    assert format_size(1000) == "1000 bytes"
    assert format_size(4 * 1024**2) == "4.0 MiB"


# --- archives: every case for zip and for tar ------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how Info-ZIP stores a symlink
            archive.writestr(info, target)
    return path


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return path


ARCHIVES = {"zip": ("a.zip", _zip), "tar": ("a.tar.gz", _tar)}


@pytest.fixture(params=sorted(ARCHIVES))
def make(request, tmp_path: Path):
    name, build = ARCHIVES[request.param]
    return lambda members, links=None: build(tmp_path / name, members, links)


def test_good_archive_is_extracted_with_its_folders(make, tmp_path: Path):
    archive = make({"pkg/a.txt": b"alpha", "pkg/sub/b.txt": b"beta"})
    files = safe_extract(archive, tmp_path / "out")
    assert files == {tmp_path / "out" / "pkg" / "a.txt": "pkg/a.txt",
                     tmp_path / "out" / "pkg" / "sub" / "b.txt": "pkg/sub/b.txt"}
    assert (tmp_path / "out" / "pkg" / "sub" / "b.txt").read_bytes() == b"beta"


def test_select_and_rename_choose_what_is_written_where(make, tmp_path: Path):
    archive = make({"p/data/s2/x.jp2": b"1", "p/data/l8/y.tif": b"2", "p/data/s2/z.jp2": b"3"})
    files = safe_extract(archive, tmp_path / "out", select=lambda name: "/s2/" in name,
                         rename=lambda index, _: f"{index:03d}")
    assert files == {tmp_path / "out" / "000": "p/data/s2/x.jp2",
                     tmp_path / "out" / "001": "p/data/s2/z.jp2"}
    assert (tmp_path / "out" / "001").read_bytes() == b"3"


@pytest.mark.parametrize("bad", ["../evil", "pkg/../../evil", "/tmp/evil-abs", "C:/evil"])
def test_traversal_is_refused_before_anything_is_written(make, tmp_path: Path, bad: str):
    archive = make({"pkg/ok.txt": b"fine", bad: b"evil"})
    with pytest.raises(UserError, match=r"a\.(zip|tar\.gz) has an unsafe member .*'\.\.' path"):
        safe_extract(archive, tmp_path / "out" / "inner")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil").exists()


def test_symlink_member_is_refused(make, tmp_path: Path):
    archive = make({"pkg/ok.txt": b"x"}, {"pkg/link": "/etc/passwd"})
    with pytest.raises(UserError, match="link or special member 'pkg/link'"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_too_many_members_names_the_limit(make, tmp_path: Path):
    archive = make({f"f{i}.txt": b"x" for i in range(5)})
    with pytest.raises(UserError, match="holds 5 files, more than the 4 accepted"):
        safe_extract(archive, tmp_path / "out", max_members=4)
    assert len(safe_extract(archive, tmp_path / "out", max_members=5)) == 5


def test_too_large_names_the_limit_and_leaves_nothing(make, tmp_path: Path):
    archive = make({"a.bin": bytes(600), "b.bin": bytes(600)})
    with pytest.raises(UserError, match=r"\(uncompressed\) is 1.2 KiB, larger than the "
                                        r"1000 bytes limit"):
        safe_extract(archive, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "out").exists()


def test_sizes_that_lie_are_refused_and_leave_nothing(tmp_path: Path):
    archive = _zip(tmp_path / "bomb.zip", {"a.bin": bytes(600), "b.bin": bytes(4096)})
    # rewrite b.bin's sizes in both directory records, as a hostile archive would
    data = bytearray(archive.read_bytes())
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.index(signature)
        while data[at + name_at:at + name_at + 5] != b"b.bin":
            at = data.index(signature, at + 1)
        data[at + size_at:at + size_at + 4] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(UserError, match="from bomb.zip"):
        safe_extract(archive, tmp_path / "out", max_bytes=1000)
    assert not any((tmp_path / "out").rglob("*"))  # a.bin, already written, removed again


def test_two_members_of_one_name_are_refused(make, tmp_path: Path):
    archive = make({"a/scene.hdr": b"1", "b/scene.hdr": b"2"})
    with pytest.raises(UserError, match="two files named scene.hdr"):
        safe_extract(archive, tmp_path / "out", rename=lambda _, name: Path(name).name)


def test_unreadable_archive_says_what_was_expected(tmp_path: Path):
    for name, kind in (("fake.zip", "zip"), ("fake.tar.gz", "tar")):
        (tmp_path / name).write_bytes(b"not an archive")
        with pytest.raises(UserError, match=f"{name} is not a readable {kind} archive .*: "
                                            "expected a series"):
            safe_extract(tmp_path / name, tmp_path / "out", expected="a series")
