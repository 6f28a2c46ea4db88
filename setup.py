"""Package list for setuptools, derived from the source tree.

``kernels/``, ``tasks/``, ``datasets/`` and ``dashboard/`` live at the top of the
repository but install as ``domainvit.kernels`` and so on. Their ``__init__.py`` lives in
``domainvit/<name>/`` (the folders themselves must not be regular packages: see
``domainvit/_layout.py``), so each of those packages is built from two folders: its
``__init__.py`` from ``domainvit/<name>/``, its modules from ``<name>/``; the subpackages
(``tasks/hsi`` ...) map folder to package. Setuptools' package discovery cannot follow
such a mapping, so the list is computed here from the folders themselves: a new module or
subpackage is picked up without editing any list (tests/test_packaging.py checks the
built wheel).
"""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

MAPPED_FOLDERS = ("kernels", "tasks", "datasets", "dashboard")

packages = ["domainvit"] + [f"domainvit.{p}" for p in find_packages("domainvit")]
package_dir = {"domainvit": "domainvit"}
for folder in MAPPED_FOLDERS:
    for sub in find_packages(folder):
        package = f"domainvit.{folder}.{sub}"
        packages.append(package)
        package_dir[package] = f"{folder}/{sub.replace('.', '/')}"


class build_mapped_py(build_py):
    """``build_py`` that also takes the modules at the top of each mapped folder into
    its package (``kernels/call.py`` -> ``domainvit/kernels/call.py``)."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        prefix, _, folder = package.partition(".")
        if prefix == "domainvit" and folder in MAPPED_FOLDERS:
            modules += [(package, path.stem, str(path))
                        for path in sorted(Path(folder).glob("*.py"))]
        return modules


setup(packages=packages, package_dir=package_dir, cmdclass={"build_py": build_mapped_py})
