"""Package list for setuptools, derived from the source tree.

``kernels/``, ``tasks/``, ``datasets/`` and ``dashboard/`` live at the top of the
repository but install as ``domainvit.kernels`` and so on. Setuptools' package discovery
cannot follow such a mapping, so the list is computed here from the folders themselves:
a new subpackage is picked up without editing any list (tests/test_packaging.py checks
the built wheel).
"""

from setuptools import find_packages, setup

MAPPED = {"kernels": "kernels", "tasks": "tasks", "datasets": "datasets",
          "dashboard": "dashboard"}

packages = ["domainvit"] + [f"domainvit.{p}" for p in find_packages("domainvit")]
package_dir = {"domainvit": "domainvit"}
for name, folder in MAPPED.items():
    package_dir[f"domainvit.{name}"] = folder
    packages.append(f"domainvit.{name}")
    packages += [f"domainvit.{name}.{p}" for p in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
