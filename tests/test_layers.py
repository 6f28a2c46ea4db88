"""The layers of the package hold: every import points down the stack.

``kernels`` <- ``domainvit`` core <- ``tasks`` <- ``dashboard``, with ``datasets`` above
core and below the tasks (which use it, as does the dashboard; it imports neither).
``domainvit._layout`` (standard library only) is below them all. The command line
(``domainvit.cli``, ``domainvit.__main__``) is core, and the one core module allowed to
reach up, by name: it starts the dashboard (:mod:`domainvit.dashboard.launch`) and runs
``domainvit data`` on the sample-data registry (:mod:`domainvit.datasets.registry`).
Only the dashboard imports Streamlit, and no package or benchmark imports the tests.

Every import counts: at module level, inside functions, under ``TYPE_CHECKING``, and
``importlib.import_module`` / ``__import__`` with a literal name. The check parses each
module's source (``ast``) and maps files to modules the way :mod:`domainvit._layout`
does. import-linter cannot do this job: its graph (grimp) finds modules by walking a
package's directory, so it would see none of the modules in the top-level ``kernels/``,
``tasks/``, ``datasets/`` and ``dashboard/`` folders of a checkout, and it does not read
``import_module`` calls.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from domainvit._layout import MAPPED_FOLDERS
from tests.conftest import ROOT

LAYOUT, KERNELS, CORE, DATASETS, TASKS, DASHBOARD = (
    "layout", "kernels", "core", "datasets", "tasks", "dashboard")

#: the layers each layer may import (itself included)
ALLOWED: dict[str, frozenset[str]] = {
    LAYOUT: frozenset({LAYOUT}),
    KERNELS: frozenset({LAYOUT, KERNELS}),
    CORE: frozenset({LAYOUT, KERNELS, CORE}),
    DATASETS: frozenset({LAYOUT, KERNELS, CORE, DATASETS}),
    TASKS: frozenset({LAYOUT, KERNELS, CORE, DATASETS, TASKS}),
    DASHBOARD: frozenset({LAYOUT, KERNELS, CORE, DATASETS, TASKS, DASHBOARD}),
}

#: the command line's reach above core: module -> the modules of higher layers it may import
ENTRY_POINT_EXCEPTIONS: dict[str, frozenset[str]] = {
    name: frozenset({"domainvit.dashboard.launch", "domainvit.datasets.registry"})
    for name in ("domainvit.cli", "domainvit.__main__")
}

#: third-party packages only some layers may import
RESTRICTED_DISTRIBUTIONS = {"streamlit": frozenset({DASHBOARD})}


def layer_of(module: str) -> str | None:
    """The layer of a module of ours, or ``None`` for anything else."""
    parts = module.split(".")
    if parts[0] != "domainvit":
        return None
    if len(parts) == 1:
        return CORE
    if parts[1] == "_layout":
        return LAYOUT
    return parts[1] if parts[1] in MAPPED_FOLDERS else CORE


def package_modules(root: Path) -> dict[str, Path]:
    """Every module of the package in the checkout at ``root``, by its dotted name: the
    files of ``domainvit/`` and of the mapped top-level folders (``tasks/x.py`` is
    ``domainvit.tasks.x``)."""
    modules: dict[str, Path] = {}
    sources = [(root / "domainvit", ("domainvit",))]
    sources += [(root / folder, ("domainvit", folder)) for folder in MAPPED_FOLDERS]
    for folder, prefix in sources:
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(prefix + parts)] = path
    return modules


@dataclass(frozen=True)
class Import:
    line: int
    module: str


def _absolute(name: str | None, level: int, module: str, is_package: bool) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _literal_import_call(node: ast.Call) -> str | None:
    """The module name of ``importlib.import_module("...")``, ``import_module("...")``
    or ``__import__("...")`` with a literal first argument."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) \
        else None


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every module that ``source`` (the text of ``module``) imports, wherever it does."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, module, is_package)
            for alias in node.names:
                # ``from domainvit import tasks`` imports the module domainvit.tasks
                child = f"{base}.{alias.name}"
                found.append(Import(node.lineno, child if child in known else base))
        elif isinstance(node, ast.Call):
            name = _literal_import_call(node)
            if name is not None:
                found.append(Import(node.lineno, name))
    # one line may import several names of one module
    return sorted(set(found), key=lambda item: (item.line, item.module))


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    source_layer: str
    target: str
    target_layer: str

    def __str__(self) -> str:
        return (f"{self.path}:{self.line}: {self.source_layer} -> {self.target_layer} "
                f"(imports {self.target})")


def _is_within(module: str, allowed: frozenset[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in allowed)


def layer_violations(root: Path) -> list[Violation]:
    """Every import in the checkout at ``root`` that breaks the layers, in file order."""
    modules = package_modules(root)
    known = set(modules)
    violations: list[Violation] = []
    for module, path in modules.items():
        layer = layer_of(module)
        shown = path.relative_to(root)
        for item in imports_of(path.read_text(), module, path.name == "__init__.py", known):
            target_layer = layer_of(item.module)
            top = item.module.partition(".")[0]
            if top == "tests":
                violations.append(Violation(shown, item.line, layer, item.module, "tests"))
            elif top in RESTRICTED_DISTRIBUTIONS and layer not in RESTRICTED_DISTRIBUTIONS[top]:
                violations.append(Violation(shown, item.line, layer, item.module, top))
            elif target_layer is not None and target_layer not in ALLOWED[layer]:
                if _is_within(item.module, ENTRY_POINT_EXCEPTIONS.get(module, frozenset())):
                    continue
                violations.append(Violation(shown, item.line, layer, item.module, target_layer))
    for path in sorted((root / "benchmarks").glob("**/*.py")):
        for item in imports_of(path.read_text(), path.stem, False, known):
            if item.module.partition(".")[0] == "tests":
                violations.append(Violation(path.relative_to(root), item.line, "benchmarks",
                                            item.module, "tests"))
    return violations


def test_every_import_points_down_the_layers():
    violations = layer_violations(ROOT)
    assert not violations, "imports against the layers:\n" + "\n".join(map(str, violations))


def test_the_check_sees_the_whole_package():
    modules = package_modules(ROOT)
    for name in ("domainvit.cli", "domainvit.kernels.functional", "domainvit.tasks.smoke",
                 "domainvit.datasets.registry", "domainvit.dashboard.app"):
        assert name in modules, name
    assert {layer_of(name) for name in modules} == set(ALLOWED)


# --- the check itself, on a small tree of wrong imports -------------------------------


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A checkout with one module per layer, every import allowed."""
    _write(tmp_path, "domainvit/__init__.py", "")
    _write(tmp_path, "domainvit/_layout.py", "import pathlib\n")
    _write(tmp_path, "domainvit/engine.py", "from domainvit.kernels import na2d\n")
    _write(tmp_path, "domainvit/cli.py",
           "def dashboard():\n    from domainvit.dashboard.launch import PORT\n")
    for folder in MAPPED_FOLDERS:
        _write(tmp_path, f"domainvit/{folder}/__init__.py",
               "from domainvit._layout import mapped_package_path\n")
    _write(tmp_path, "kernels/functional.py", "import torch\n")
    _write(tmp_path, "datasets/io.py", "from domainvit.engine import predict\n")
    _write(tmp_path, "tasks/seg/__init__.py",
           "from domainvit.datasets.io import read\nfrom . import model\n")
    _write(tmp_path, "tasks/seg/model.py", "from ...engine import predict\n")
    _write(tmp_path, "dashboard/launch.py", "PORT = 8501\n")
    _write(tmp_path, "dashboard/app.py",
           "import streamlit\nfrom domainvit.tasks.seg import model\n")
    _write(tmp_path, "benchmarks/bench.py", "from domainvit.tasks.seg import model\n")
    return tmp_path


def test_the_check_passes_a_tree_that_keeps_the_layers(tree: Path):
    assert layer_violations(tree) == []


@pytest.mark.parametrize("relative,source,expected", [
    # core reaching up from inside a function, by an import statement and by name
    ("domainvit/analysis.py", "def f():\n    import domainvit.tasks.seg\n",
     "domainvit/analysis.py:2: core -> tasks (imports domainvit.tasks.seg)"),
    ("domainvit/registry.py",
     "import importlib\n\ndef load():\n    importlib.import_module('domainvit.dashboard.app')\n",
     "domainvit/registry.py:4: core -> dashboard (imports domainvit.dashboard.app)"),
    ("domainvit/config.py", "from domainvit import datasets\n",
     "domainvit/config.py:1: core -> datasets (imports domainvit.datasets)"),
    # the command line may start the dashboard, nothing more of it
    ("domainvit/cli.py", "def run():\n    from domainvit.dashboard.app import main\n",
     "domainvit/cli.py:2: core -> dashboard (imports domainvit.dashboard.app)"),
    ("kernels/dispatch.py", "from domainvit.attention import build_attention\n",
     "kernels/dispatch.py:1: kernels -> core (imports domainvit.attention)"),
    ("datasets/raster.py", "from domainvit.tasks.seg.model import Net\n",
     "datasets/raster.py:1: datasets -> tasks (imports domainvit.tasks.seg.model)"),
    ("tasks/seg/view.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                          "    from domainvit.dashboard import widgets\n",
     "tasks/seg/view.py:3: tasks -> dashboard (imports domainvit.dashboard)"),
    # a relative import is resolved against the module's package
    ("tasks/seg/page.py", "from ...dashboard.launch import PORT\n",
     "tasks/seg/page.py:1: tasks -> dashboard (imports domainvit.dashboard.launch)"),
    ("tasks/seg/show.py", "def show():\n    import streamlit as st\n",
     "tasks/seg/show.py:2: tasks -> streamlit (imports streamlit)"),
    ("benchmarks/load.py", "from tests.dashboard import live\n",
     "benchmarks/load.py:1: benchmarks -> tests (imports tests.dashboard)"),
])
def test_the_check_fails_on_a_wrong_import(tree: Path, relative: str, source: str,
                                           expected: str):
    _write(tree, relative, source)
    assert [str(v) for v in layer_violations(tree)] == [expected]
