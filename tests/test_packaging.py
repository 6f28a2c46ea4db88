"""The built wheel holds every package of the source tree under the ``domainvit`` namespace,
with the bundled configs, and each package imports from the installed copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

MAPPED = {"domainvit": "domainvit", "kernels": "domainvit.kernels", "tasks": "domainvit.tasks",
          "datasets": "domainvit.datasets", "dashboard": "domainvit.dashboard"}


def source_packages() -> set[str]:
    names = set()
    for folder, package in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            names.add(".".join([package, *relative.parts]))
    return names


def source_modules() -> set[str]:
    """Every module of the source tree, as its path in the wheel."""
    paths = set()
    for folder, package in MAPPED.items():
        for module in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in module.parts:
                relative = module.relative_to(ROOT / folder)
                paths.add(str(Path(*package.split("."), relative)))
    return paths


def source_configs() -> set[str]:
    return {str(p.relative_to(ROOT / "tasks")) for p in (ROOT / "tasks").rglob("configs/*.yaml")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source tree: a build in the checkout would reuse
    its ``build/`` folder, which keeps modules that have since moved or gone."""
    source = tmp_path_factory.mktemp("source") / "domainvit"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs",
        "outputs"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(out), str(source)], check=True, capture_output=True,
                   timeout=600)
    (wheel_path,) = out.glob("domainvit-*.whl")
    return wheel_path


def test_wheel_contains_every_package_and_config(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    packaged = {str(Path(f).parent).replace("/", ".") for f in files if f.endswith("__init__.py")}
    assert packaged == source_packages()
    assert {f for f in files if f.endswith(".py")} == source_modules()
    configs = {f.removeprefix("domainvit/tasks/") for f in files if f.endswith(".yaml")}
    assert configs == source_configs() and configs
    assert not any(f.startswith(("kernels/", "tasks/", "tests/")) for f in files)


def test_every_package_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                    "--target", str(target), str(wheel)], check=True, capture_output=True,
                   timeout=600)
    script = (
        "import importlib, sys, domainvit\n"
        f"assert domainvit.__file__.startswith({str(target)!r}), domainvit.__file__\n"
        f"for name in sorted({sorted(source_packages())!r}):\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(target)!r}), module.__file__\n"
        "from domainvit.kernels import na2d\n"
        f"assert sys.modules[na2d.__module__].__file__.startswith({str(target)!r})\n"
        "import kernels, datasets\n"
        f"assert not kernels.__file__.startswith({str(target)!r}), kernels.__file__\n"
        f"assert not datasets.__file__.startswith({str(target)!r}), datasets.__file__\n"
        "assert hasattr(datasets, 'load_dataset') and not hasattr(kernels, 'na2d')\n"
        "from domainvit.registry import load_tasks\n"
        "print(sorted(load_tasks()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "smoke" in result.stdout
