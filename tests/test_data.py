"""Sample-data preparation: cached under $DOMAINVIT_DATA, idempotent, never half-built."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainvit.cli import main
from domainvit.datasets import registry
from domainvit.errors import UserError


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DOMAINVIT_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_prepare_builds_once_into_data_root(data_root: Path, capsys):
    assert main(["data", "prepare", "smoke-spirals"]) == 0
    built = data_root / "smoke-spirals" / "spirals.npz"
    assert built.is_file()
    stamp = built.stat().st_mtime_ns
    assert main(["data", "prepare", "smoke-spirals"]) == 0
    assert built.stat().st_mtime_ns == stamp  # second call did not rebuild
    main(["data", "list"])
    out = capsys.readouterr().out
    assert f"data folder: {data_root}" in out and "smoke-spirals [prepared]" in out


def test_failed_build_leaves_nothing_that_looks_prepared(data_root: Path, monkeypatch):
    def failing_build(folder: Path, progress) -> None:
        (folder / "half.npz").write_bytes(b"partial")
        raise RuntimeError("source file missing")

    entry = registry.SampleDataset("broken-set", "fails half way", failing_build)
    monkeypatch.setitem(registry._DATASETS, "broken-set", entry)
    with pytest.raises(RuntimeError):
        registry.prepare("broken-set")
    assert not registry.is_prepared("broken-set")
    assert not (data_root / "broken-set").exists()
    assert list(data_root.iterdir()) == []  # staging folder removed too


def test_unknown_dataset_is_a_user_error(data_root: Path):
    with pytest.raises(UserError, match="unknown sample dataset 'imagenet'.*smoke-spirals"):
        registry.prepare("imagenet")
