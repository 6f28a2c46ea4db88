"""No folder of the checkout shadows an installed distribution.

Python puts the directory it starts in first on ``sys.path`` (``python -m``, pytest, a
notebook), so a regular package at the top of the checkout named like a PyPI
distribution (``kernels``, ``datasets``) would be imported in its place, breaking every
library that uses it. The top-level folders ``kernels/``, ``tasks/``, ``datasets/`` and
``dashboard/`` are therefore not packages of their own; they are ``domainvit.<name>``
(``domainvit/_layout.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from domainvit._layout import MAPPED_FOLDERS
from tests.conftest import ROOT

#: the checkout's one top-level package (``tests/`` is a namespace portion too)
OWN_TOP_LEVEL = {"domainvit"}


def run_at_root(script: str) -> dict:
    """Run ``script`` with ``python -c`` at the root of the checkout (which puts the root
    first on ``sys.path``) and return the JSON it prints."""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def importable_at_root(name: str) -> bool:
    """Whether the root of the checkout holds a regular package or module ``name``."""
    return (ROOT / name / "__init__.py").is_file() or (ROOT / f"{name}.py").is_file()


def test_no_top_level_folder_of_the_checkout_is_a_regular_package_but_its_own():
    shadowing = {path.name for path in ROOT.iterdir()
                 if path.name.isidentifier() and importable_at_root(path.name)}
    assert shadowing == OWN_TOP_LEVEL
    assert not any(importable_at_root(name) for name in MAPPED_FOLDERS)


def test_no_installed_distribution_is_shadowed_by_the_checkout():
    installed = set(packages_distributions())
    assert {"kernels", "datasets"} <= installed, "the test extra installs both"
    shadowed = {name for name in installed - OWN_TOP_LEVEL if importable_at_root(name)}
    assert not shadowed


def test_pypi_kernels_and_datasets_import_from_the_repository_root():
    found = run_at_root(
        "import json, sysconfig, kernels, datasets, sentence_transformers\n"
        "from importlib.metadata import version\n"
        "print(json.dumps({'kernels': kernels.__file__, 'datasets': datasets.__file__,\n"
        "                  'site': sysconfig.get_paths()['purelib'],\n"
        "                  'st': sentence_transformers.__file__,\n"
        "                  'datasets_version': datasets.__version__,\n"
        "                  'datasets_dist': version('datasets')}))\n"
    )
    for name in ("kernels", "datasets", "st"):
        assert Path(found[name]).is_relative_to(found["site"]), (name, found[name])
    assert found["datasets_version"] == found["datasets_dist"]


def test_domainvit_packages_resolve_to_the_checkout_beside_the_pypi_ones():
    found = run_at_root(
        "import json, sysconfig, kernels, datasets\n"
        "import domainvit.kernels, domainvit.datasets.registry, domainvit.tasks.smoke\n"
        "import domainvit.dashboard.launch\n"
        "from domainvit.kernels import na1d\n"
        "print(json.dumps({'na1d': na1d.__module__,\n"
        "    'kernels': domainvit.kernels.__file__,\n"
        "    'registry': domainvit.datasets.registry.__file__,\n"
        "    'smoke': domainvit.tasks.smoke.__file__,\n"
        "    'launch': domainvit.dashboard.launch.__file__,\n"
        "    'site': sysconfig.get_paths()['purelib'],\n"
        "    'pypi_kernels': kernels.__file__}))\n"
    )
    assert found["na1d"] == "domainvit.kernels.functional"
    assert Path(found["kernels"]) == ROOT / "domainvit" / "kernels" / "__init__.py"
    assert Path(found["registry"]) == ROOT / "datasets" / "registry.py"
    assert Path(found["smoke"]) == ROOT / "tasks" / "smoke" / "__init__.py"
    assert Path(found["launch"]) == ROOT / "dashboard" / "launch.py"
    assert Path(found["pypi_kernels"]).is_relative_to(found["site"])
