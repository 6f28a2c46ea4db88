"""Uploads on the server: user file names never become paths as they are, the size limit
holds, nothing partial is left, and zip uploads cannot write outside their folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from domainvit.dashboard.uploads import extract_zip, safe_file_name, save_upload
from domainvit.errors import UserError


@pytest.mark.parametrize("name, expected", [
    ("scan.nii.gz", "scan.nii.gz"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\brain scan (1).nii.gz", "brain_scan_1_.nii.gz"),
    ("/abs/.hidden.tif", "hidden.tif"),
    ("..", "upload"),
    (".nii.gz", "upload.nii.gz"),
    ("x.img.hdr", "x.img.hdr"),
    ("ünïcødé.png", "_n_c_d_.png"),
])
def test_file_names_are_reduced_to_a_safe_last_component(name, expected):
    assert safe_file_name(name) == expected


def test_long_names_are_shortened_keeping_the_suffix():
    name = safe_file_name("a" * 500 + ".nii.gz")
    assert len(name) == 100 and name.endswith(".nii.gz")


class FakeUpload(io.BytesIO):
    def __init__(self, name: str, data: bytes, size: int | None = None) -> None:
        super().__init__(data)
        self.name = name
        self.size = len(data) if size is None else size


def test_an_upload_is_saved_in_a_fresh_folder_inside_the_given_one(tmp_path):
    first = save_upload(FakeUpload("../../x.nii.gz", b"abc"), tmp_path)
    second = save_upload(FakeUpload("../../x.nii.gz", b"defg"), tmp_path)
    for path in (first, second):
        assert path.name == "x.nii.gz" and path.parent.parent == tmp_path
    assert first.parent != second.parent
    assert first.read_bytes() == b"abc" and second.read_bytes() == b"defg"


@pytest.mark.parametrize("declared", [None, 10])
def test_an_upload_over_the_limit_is_refused_and_nothing_is_left(tmp_path, declared):
    # also when the declared size is below the limit but the content is not
    with pytest.raises(UserError, match="larger than the 100 bytes upload limit"):
        save_upload(FakeUpload("big.png", bytes(200), size=declared), tmp_path, limit=100)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_empty_upload_is_refused(tmp_path):
    with pytest.raises(UserError, match="empty.png is empty"):
        save_upload(FakeUpload("empty.png", b""), tmp_path)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_zip_members_are_extracted_flat_under_safe_names(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"flight 1/scene.hdr": b"ENVI", "flight 1/scene.img": b"x"})
    files = extract_zip(archive, tmp_path / "out")
    assert sorted(p.name for p in files) == ["scene.hdr", "scene.img"]
    assert all(p.parent == tmp_path / "out" for p in files)


@pytest.mark.parametrize("member", ["../evil.hdr", "/etc/evil.hdr", "a/../../evil.hdr",
                                    "C:/evil.hdr"])
def test_zip_slip_members_are_refused_before_anything_is_written(tmp_path, member):
    archive = _zip(tmp_path / "a.zip", {"ok.img": b"x", member: b"y"})
    with pytest.raises(UserError, match="absolute or '..' path"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.hdr").exists()


def test_zip_that_inflates_past_the_limit_leaves_nothing(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"a.img": bytes(600), "b.img": bytes(600)})
    with pytest.raises(UserError):
        extract_zip(archive, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_zip_with_two_files_of_one_name_is_refused(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"a/scene.hdr": b"1", "b/scene.hdr": b"2"})
    with pytest.raises(UserError, match="two files named scene.hdr"):
        extract_zip(archive, tmp_path / "out")


def test_a_file_that_is_not_a_zip_says_so(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="fake.zip is not a readable zip archive"):
        extract_zip(path, tmp_path / "out")
