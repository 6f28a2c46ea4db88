"""``domainvit dashboard``: the Streamlit settings it passes (the same as the repository's
``.streamlit/config.toml``), its argument checks, and a real start of the server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from domainvit.cli import main
from domainvit.dashboard.launch import MAX_UPLOAD_MB, SERVER_OPTIONS, streamlit_command

ROOT = Path(__file__).resolve().parents[2]


def _flags(command: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in command if arg.startswith("--"))


def test_the_command_passes_the_settings_of_the_repository_config():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    from_file = {f"{section}.{key}": value for section, values in config.items()
                 for key, value in values.items()}
    assert from_file == SERVER_OPTIONS
    flags = _flags(streamlit_command(8600, "127.0.0.1"))
    for name, value in SERVER_OPTIONS.items():
        expected = str(value).lower() if isinstance(value, bool) else str(value)
        assert flags[name] == expected
    assert flags["server.maxUploadSize"] == str(MAX_UPLOAD_MB) == "512"
    assert flags["browser.gatherUsageStats"] == "false"
    assert flags["server.port"] == "8600" and flags["server.address"] == "127.0.0.1"
    # set, so that Streamlit never asks a web service for the machine's external address
    assert flags["browser.serverAddress"] == "127.0.0.1"
    assert _flags(streamlit_command(8600, "0.0.0.0"))["browser.serverAddress"] == "localhost"


@pytest.mark.parametrize("args, message", [
    (["--models", "/no/such/folder"], "--models /no/such/folder: not a folder"),
    (["--port", "70000"], "--port 70000: expected a port number"),
])
def test_bad_arguments_are_one_line_errors(args, message, capsys):
    assert main(["dashboard", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_dashboard_command_starts_a_server_that_answers(tmp_path):
    port = _free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "domainvit", "dashboard", "--port", str(port),
             "--address", "127.0.0.1", "--models", str(tmp_path)],
            stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        answer = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as response:
                    answer = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert answer == "ok", log.read_text()[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert f"URL: http://127.0.0.1:{port}" in log.read_text()
