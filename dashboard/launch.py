"""Settings of the dashboard server and the ``streamlit run`` command that starts it.

``domainvit dashboard`` passes every setting below on the command line, so the server
behaves the same from any working directory; ``.streamlit/config.toml`` at the
repository root holds the same values for a plain ``streamlit run dashboard/app.py``
started there (a test keeps the two in step). Nothing here imports Streamlit.

The settings keep the dashboard offline and quiet: no usage statistics, no browser
opened, no external-IP lookup at start (``browser.serverAddress`` is always set), no
file watcher, no developer menu, and no tracebacks in the browser (they go to the
terminal; the pages show the readers' own messages for bad uploads).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: the largest upload accepted, in MB (Streamlit's ``server.maxUploadSize``); the pages
#: check it again on the server side
MAX_UPLOAD_MB = 512
#: environment variable naming folders of extra checkpoints (``os.pathsep``-separated)
MODELS_ENV = "DOMAINVIT_MODELS"
DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "localhost"
_WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")

#: the Streamlit options every start of the dashboard uses
SERVER_OPTIONS: dict[str, object] = {
    "server.maxUploadSize": MAX_UPLOAD_MB,
    "server.headless": True,
    "server.fileWatcherType": "none",
    "server.enableXsrfProtection": True,
    "server.enableCORS": True,
    "browser.gatherUsageStats": False,
    "client.toolbarMode": "viewer",
    "client.showErrorDetails": "none",
}


def app_path() -> Path:
    """The Streamlit script of the dashboard (``dashboard/app.py``)."""
    return Path(__file__).resolve().parent / "app.py"


def _flag_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def streamlit_command(port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> list[str]:
    """The ``python -m streamlit run`` command line for the dashboard on ``address:port``.

    A wildcard ``address`` (``0.0.0.0``, ``::``) serves every network interface; the
    URL printed at start then names ``localhost``.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port must be in 1..65535, got {port}")
    options = {
        **SERVER_OPTIONS,
        "server.port": port,
        "server.address": address,
        # set, so that Streamlit does not ask a web service for the external address
        "browser.serverAddress": "localhost" if address in _WILDCARD_ADDRESSES else address,
    }
    flags = [f"--{name}={_flag_value(value)}" for name, value in options.items()]
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), *flags]


def models_folders(value: str | None = None) -> list[Path]:
    """The folders of extra checkpoints named by ``$DOMAINVIT_MODELS`` (or ``value``)."""
    text = os.environ.get(MODELS_ENV, "") if value is None else value
    return [Path(part).expanduser() for part in text.split(os.pathsep) if part.strip()]
