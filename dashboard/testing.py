"""A real dashboard server driven by a real browser, as ``streamlit.testing`` drives a
script without one: the helpers of the end-to-end browser test
(``tests/dashboard/test_e2e_browser.py``) and of the load benchmark
(``benchmarks/bench_dashboard_load.py``). Playwright is imported only by the callers
that drive a browser.

The server is ``domainvit dashboard`` in a process group of its own, so stopping it
ends everything it started. The browser is Debian's Chromium (``/usr/bin/chromium``,
installed by ``scripts/setup.sh``), driven by Playwright without any browser download
of its own. Streamlit marks its app element with the script's state
(``data-test-script-state``): a page is settled when that reads ``notRunning``.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Debian's Chromium (``apt-get install chromium``; ``scripts/setup.sh`` installs it)
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 900}
#: the app element once a script run has ended
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
#: what a page shows for a failure: an ``st.error`` or an exception
ERRORS = '[data-testid="stAlertContentError"], [data-testid="stException"]'
#: the first page load imports every task (torch, MONAI, ...): slow on a busy machine
FIRST_LOAD_TIMEOUT_MS = 180_000
RESULT_TIMEOUT_MS = 180_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().decode().strip() == "ok"
    except OSError:
        return False


def stop_server(process: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


@contextmanager
def running_dashboard(log: Path, models: Path | None = None,
                      start_timeout: float = 120.0) -> Iterator[Server]:
    """``domainvit dashboard`` on a free local port, started in ``log``'s folder and
    answering its health check; stopped (its whole process group) when the block ends,
    also when it fails."""
    port = free_port()
    command = [sys.executable, "-m", "domainvit", "dashboard", "--port", str(port),
               "--address", "127.0.0.1"]
    if models is not None:
        command += ["--models", str(models)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=log.parent,
                                   start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + start_timeout
        while not _healthy(server.url):
            if process.poll() is not None:
                raise RuntimeError(f"the dashboard server exited with code {process.returncode} "
                                   f"before answering; its output:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard server did not answer {server.url}"
                                   f"/_stcore/health within {start_timeout:.0f} s; its "
                                   f"output:\n{server.log_tail()}")
            time.sleep(0.25)
        yield server
    finally:
        stop_server(process)


def launch_chromium(playwright):
    """Headless Debian Chromium under Playwright (nothing is downloaded)."""
    if not CHROMIUM.is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium; "
                           "install it with scripts/setup.sh (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


# --- pages ---------------------------------------------------------------------------------


def wait_idle(page, timeout_ms: float = RESULT_TIMEOUT_MS) -> None:
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def open_page(page, url: str, task: str = "",
              timeout_ms: float = FIRST_LOAD_TIMEOUT_MS) -> None:
    """Go to the dashboard page of ``task`` (the home page for ``""``) and wait until it
    has been drawn: its model choice (a task page) or its page buttons (home)."""
    page.goto(f"{url}/{task}")
    ready = (page.get_by_test_id("stSelectbox").filter(has_text="Model") if task else
             page.get_by_test_id("stButton").filter(has_text="Open the").first)
    ready.wait_for(timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def pick_model(page, label: str) -> None:
    """Choose ``label`` in the page's model choice."""
    from playwright.sync_api import expect

    choice = page.get_by_test_id("stSelectbox").filter(has_text="Model")
    shown = choice.locator("input")  # the chosen option is the value of its input
    if shown.input_value() == label:
        return
    choice.click()
    page.get_by_role("option", name=label, exact=True).click()
    expect(shown).to_have_value(label)
    wait_idle(page)


def upload(page, path: Path) -> None:
    """Give ``path`` to the page's file uploader (the upload starts; this does not wait)."""
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))


def wait_result(page, result, timeout_ms: float = RESULT_TIMEOUT_MS) -> None:
    """Wait for the locator ``result`` or an error message, then for the run to end; an
    error on the page fails with its text."""
    result.or_(page.locator(ERRORS)).first.wait_for(timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    messages = page_errors(page)
    if messages:
        raise AssertionError(f"the page shows an error: {messages}")


def page_errors(page) -> list[str]:
    return [element.inner_text() for element in page.locator(ERRORS).all()]


def settle(page) -> None:
    """Wait for every image to be loaded and every placeholder to be filled, and drop the
    keyboard focus and the mouse (a focused widget is drawn with a highlighted border)."""
    page.wait_for_function(
        "() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.mouse.move(VIEWPORT["width"] - 20, VIEWPORT["height"] // 2)  # the main area's margin
    page.wait_for_timeout(500)  # charts and tables draw after their data arrives


def fit_to_content(page, max_height: int = 1600) -> None:
    """Make the viewport as tall as the page's content (at most ``max_height``), so that a
    screenshot shows the whole page (Streamlit scrolls inside its main element)."""
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"],
                            "height": max(VIEWPORT["height"], min(int(height), max_height))})
    page.wait_for_timeout(300)


# --- pictures ------------------------------------------------------------------------------


def write_brain_png(path: Path) -> Path:
    """A 64-pixel axial slice of the Colin27 MRI (mricron-data) at 2 mm, anterior up, as
    an 8-bit PNG: a sample image for the medcls page."""
    import nibabel as nib
    import numpy as np
    from PIL import Image

    from domainvit.datasets.brain import MRICRON_TEMPLATES

    scan = nib.load(MRICRON_TEMPLATES / "ch2.nii.gz")
    axial = np.rot90(np.asarray(scan.dataobj)[::2, ::2, 40].astype(float))[20:84, 10:74]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(axial / axial.max() * 255).astype(np.uint8)).save(path, "PNG")
    return path


def save_png(data: bytes, path: Path, max_bytes: int = 400_000) -> Path:
    """Write the PNG ``data``; one larger than ``max_bytes`` is reduced to 256 colours."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if len(data) > max_bytes:
        with Image.open(io.BytesIO(data)) as picture:
            reduced = picture.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
            buffer = io.BytesIO()
            reduced.save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
    path.write_bytes(data)
    return path


def picture_stats(data: bytes) -> dict[str, float]:
    """Of a PNG: the standard deviation of its grey levels, its number of distinct colours,
    and the fraction of clearly coloured pixels (channels more than 40 apart; a greyscale
    scan has none, a label overlay or class map has many)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as picture:
        rgb = np.asarray(picture.convert("RGB")).astype(int)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return {"grey_std": float(rgb.mean(axis=2).std()),
            "colours": float(len(np.unique(rgb.reshape(-1, 3), axis=0))),
            "coloured": float((spread > 40).mean())}
