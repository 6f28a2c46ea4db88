"""domainvit: vision transformers for medical imaging, remote sensing and 3D perception.

All task models share one core: hierarchical local/global attention, computed by the
neighbourhood-attention ops in :mod:`domainvit.kernels`.

The repository keeps ``kernels/``, ``tasks/``, ``datasets/`` and ``dashboard/`` at the top
level; an installed wheel maps them into this namespace (``[tool.setuptools.package-dir]``).
When the package is imported straight from a source checkout (``PYTHONPATH=.``, no
install), the checkout's root is added to this package's search path so that
``domainvit.kernels`` and the other mapped packages resolve the same way.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

_MAPPED_PACKAGES = ("kernels", "tasks", "datasets", "dashboard")


def _extend_path_in_source_checkout() -> None:
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and all(
        (root / name / "__init__.py").is_file() for name in _MAPPED_PACKAGES
    ):
        if str(root) not in __path__:
            __path__.append(str(root))


_extend_path_in_source_checkout()
