"""Where the code of ``domainvit.kernels``, ``.tasks``, ``.datasets`` and ``.dashboard`` lives.

The repository keeps those four packages in folders at its top level (``kernels/``,
``tasks/``, ``datasets/``, ``dashboard/``), so that the tree reads like the architecture.
Those folders hold no ``__init__.py``: at the top of a checkout, which is on ``sys.path``
whenever Python starts there (``python -m``, pytest, a notebook), a regular package named
``kernels`` or ``datasets`` would shadow the PyPI distributions of those names. Without
one, the folders are mere namespace portions, which Python consults only after every
regular package on the path, so ``import kernels`` finds the installed distribution.

Each mapped package is therefore a regular package inside ``domainvit/``
(``domainvit/kernels/__init__.py``: its public API) whose search path also takes in the
top-level folder. An installed wheel has the folders' modules copied beside that
``__init__.py`` (``setup.py``), and the extension below finds nothing to add. Imports
nothing but the standard library, so ``domainvit.kernels`` keeps needing only torch and
Triton.
"""

from __future__ import annotations

from pathlib import Path

#: the mapped packages: ``domainvit.<name>`` holds the modules of the top-level ``<name>/``
MAPPED_FOLDERS = ("kernels", "tasks", "datasets", "dashboard")


def source_tree_root() -> Path | None:
    """The root of the source checkout this package runs from, or ``None`` when it runs
    from an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and all((root / name).is_dir() for name in MAPPED_FOLDERS):
        return root
    return None


def mapped_package_path(package_path: list[str], folder: str) -> list[str]:
    """``package_path`` (a mapped package's ``__path__``) with the top-level ``folder`` of
    the source checkout added, where there is one."""
    if folder not in MAPPED_FOLDERS:
        raise ValueError(f"{folder!r} is not a mapped folder: {', '.join(MAPPED_FOLDERS)}")
    root = source_tree_root()
    if root is None:
        return package_path
    source = str(root / folder)
    return package_path if source in package_path else [*package_path, source]
