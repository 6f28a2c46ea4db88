"""Load check of the dashboard: concurrent browser sessions uploading an image and getting
its classification from one server, with the server's memory watched.

    python benchmarks/bench_dashboard_load.py [--sessions 8] [--rounds 2] \\
        [--out benchmarks/results/dashboard_load.json]

Starts ``domainvit dashboard`` on a free local port and drives Debian's Chromium
(``/usr/bin/chromium``) with Playwright, one browser context (one Streamlit session) per
simulated user, on the medcls page (the lightest prediction: 50 forward passes of a
64-pixel model) with the bundled quickstart checkpoint (its sidecar records the classes
and image size, so no sample dataset is built):

1. warm-up: one session opens the home page (the server imports every task), then the
   medcls page, uploads a brain MRI slice (PNG) and waits for the probabilities and the
   saliency map (the model is built and cached);
2. load, ``--rounds`` times: ``--sessions`` sessions open the page, upload the slice at the
   same moment and each waits for its result.

Reported: each session's latency from its upload to its finished result, the errors on
the pages (must be none), and the server process's memory (RSS, sampled every 0.1 s, and
the kernel's peak VmHWM) after start, after the imports, after the warm-up, at the peak
of each round and after them. The model is cached once per server (``st.cache_resource``)
and shared under a lock (predictions run one after another), so memory must stay
bounded: a round of sessions may grow the peak RSS over the warm-up by less than one
model's worth per session (the weights' size), and a later round must not grow it further
than the first did (plus 5%). Writes the JSON and a markdown summary (``.md``); exits
non-zero when a session failed or a memory check did not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from domainvit.dashboard import testing as live

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "tasks" / "medcls" / "weights" / "quickstart.safetensors"
#: the label of :data:`CHECKPOINT` in the page's model choice
MEDCLS_MODEL = "quickstart (medvitv2, bundled)"
SESSION_TIMEOUT_S = 600.0
#: a later round may grow the peak RSS by this fraction of the first round's peak
PLATEAU_TOLERANCE = 0.05
MB = 1 << 20


class MemoryWatch:
    """RSS of a process sampled in a thread; ``mark(name)`` records the RSS now, the
    highest sample since the previous mark, and the kernel's peak (VmHWM) so far."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.window_peak = 0
        self.marks: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._rss()
            except psutil.Error:
                return
            with self._lock:
                self.window_peak = max(self.window_peak, rss)
            self._stop.wait(self.every)

    def hwm(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")

    def __enter__(self) -> MemoryWatch:
        self.window_peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self, name: str) -> dict[str, float]:
        rss = self._rss()
        with self._lock:
            peak, self.window_peak = max(self.window_peak, rss), rss
        self.marks[name] = {"rss_mb": rss / MB, "peak_rss_mb": peak / MB,
                            "vm_hwm_mb": self.hwm() / MB}
        return self.marks[name]


def _result(page):
    return page.get_by_test_id("stImageContainer").filter(has_text="occlusion saliency for")


def _finished(page) -> bool:
    """The run after the upload has ended with a result or an error on the page."""
    if page.locator(live.IDLE).count() == 0:
        return False
    return _result(page).count() > 0 or page.locator(live.ERRORS).count() > 0


def run_sessions(browser, url: str, image: Path, count: int) -> list[dict]:
    """``count`` sessions upload ``image`` together; each one's latency and errors."""
    sessions = []
    for _ in range(count):
        context = browser.new_context(viewport=live.VIEWPORT)
        page = context.new_page()
        sessions.append({"context": context, "page": page})
        live.open_page(page, url, "medcls")
        live.pick_model(page, MEDCLS_MODEL)
    for session in sessions:  # the uploads start without waiting for each other
        session["start"] = time.perf_counter()
        live.upload(session["page"], image)
    pending = list(sessions)
    deadline = time.perf_counter() + SESSION_TIMEOUT_S
    while pending and time.perf_counter() < deadline:
        for session in list(pending):
            if _finished(session["page"]):
                session["latency_s"] = time.perf_counter() - session["start"]
                pending.remove(session)
        time.sleep(0.05)
    results = []
    for index, session in enumerate(sessions):
        page = session["page"]
        errors = live.page_errors(page)
        if "latency_s" not in session:
            errors.append(f"no result within {SESSION_TIMEOUT_S:.0f} s")
        elif not errors and not (page.get_by_test_id("stMetric").is_visible()
                                 and _result(page).locator("img").is_visible()):
            errors.append("the top class or the saliency map is not shown")
        results.append({"session": index + 1, "latency_s": session.get("latency_s"),
                        "errors": errors})
        session["context"].close()
    return results


def _weights_mb() -> float:
    from safetensors.torch import load_file

    return sum(t.numel() * t.element_size() for t in load_file(CHECKPOINT).values()) / MB


def _summary(values: list[float]) -> dict:
    if not values:
        return {"per_session": [], "min": None, "median": None, "max": None}
    return {"per_session": values, "min": min(values), "median": statistics.median(values),
            "max": max(values)}


def markdown(record: dict) -> str:
    memory = record["memory_mb"]
    lines = [
        f"# Dashboard load check: {record['sessions']} concurrent sessions, "
        f"{record['rounds']} rounds",
        "",
        f"Each session opens the medcls page in its own browser context, uploads "
        f"{record['upload']} and waits for the class probabilities and the occlusion "
        f"saliency map (50 forward passes); model `{record['model']}` "
        f"({record['weights_mb']:.1f} MB of weights). One server, Debian's Chromium driven "
        "by Playwright.",
        "",
        f"**Errors: {record['error_count']}. Memory bounded: "
        f"{'yes' if record['memory_bounded'] else 'no'}.**",
        "",
        "| latency from upload to result (s) | min | median | max | per session |",
        "|---|---|---|---|---|",
        f"| one session alone (warm-up: builds the model) | | | "
        f"{record['warmup_latency_s']:.2f} | |",
    ]
    for index, latency in enumerate(record["latency_s"], start=1):
        if latency["per_session"]:
            lines.append(
                f"| round {index}: {record['sessions']} sessions at once | "
                f"{latency['min']:.2f} | {latency['median']:.2f} | {latency['max']:.2f} | "
                f"{', '.join(f'{v:.1f}' for v in latency['per_session'])} |")
    lines += [
        "",
        "| server memory (MB) | RSS at the end | peak RSS in the phase (0.1 s samples) | "
        "VmHWM so far |",
        "|---|---|---|---|",
    ]
    for name, mark in memory["marks"].items():
        lines.append(f"| {name} | {mark['rss_mb']:.0f} | {mark['peak_rss_mb']:.0f} | "
                     f"{mark['vm_hwm_mb']:.0f} |")
    lines += [
        "",
        f"Model built and first prediction (warm-up): +{memory['warmup_growth']:.0f} MB. "
        f"Peak growth over the warm-up's RSS per round: "
        f"{', '.join(f'+{g:.0f} MB' for g in memory['round_growth'])} "
        f"(bound: {record['sessions']} sessions x {record['weights_mb']:.1f} MB of weights "
        f"= {memory['per_session_bound']:.0f} MB, what a model per session would add at "
        f"least; a later round at most {PLATEAU_TOLERANCE:.0%} above the first round's "
        "peak).",
        "",
        f"Machine: {record['machine']['cpus']} CPUs (load average "
        f"{record['machine']['load_average']} at the start), OMP_NUM_THREADS="
        f"{record['machine']['omp_num_threads']}, {record['machine']['platform']}; "
        f"Chromium {record['machine']['chromium']}, Streamlit "
        f"{record['machine']['streamlit']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "dashboard_load.json")
    args = parser.parse_args()

    import streamlit
    from playwright.sync_api import sync_playwright

    load_average = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    rounds: list[list[dict]] = []
    with tempfile.TemporaryDirectory(prefix="domainvit-load-") as tmp:
        folder = Path(tmp)
        image = live.write_brain_png(folder / "colin27-axial.png")
        with live.running_dashboard(folder / "server.log") as server, \
                MemoryWatch(server.process.pid) as memory, sync_playwright() as playwright:
            memory.mark("server started")
            browser = live.launch_chromium(playwright)
            try:
                page = browser.new_page(viewport=live.VIEWPORT)
                live.open_page(page, server.url)
                page.close()
                memory.mark("tasks imported (home page)")
                warmup = run_sessions(browser, server.url, image, 1)[0]
                memory.mark("warm-up: model built, one prediction")
                for index in range(args.rounds):
                    rounds.append(run_sessions(browser, server.url, image, args.sessions))
                    memory.mark(f"round {index + 1}: {args.sessions} sessions at once")
                time.sleep(5)
                memory.mark("5 s after the last round")
                chromium = browser.version
            finally:
                browser.close()
            alive = server.process.poll() is None
            log_tail = server.log_tail()

    errors = [f"warm-up: {e}" for e in warmup["errors"]]
    errors += [f"round {i + 1}, session {r['session']}: {e}"
               for i, results in enumerate(rounds) for r in results for e in r["errors"]]
    if not alive:
        errors.append(f"the server stopped during the load:\n{log_tail}")
    marks = memory.marks
    after_warmup = marks["warm-up: model built, one prediction"]["rss_mb"]
    peaks = [marks[f"round {i + 1}: {args.sessions} sessions at once"]["peak_rss_mb"]
             for i in range(args.rounds)]
    weights_mb = _weights_mb()
    per_session_bound = args.sessions * weights_mb
    round_growth = [peak - after_warmup for peak in peaks]
    bounded = (round_growth[0] < per_session_bound and
               all(peak <= peaks[0] * (1 + PLATEAU_TOLERANCE) for peak in peaks[1:]))
    record = {
        "sessions": args.sessions,
        "rounds": args.rounds,
        "model": MEDCLS_MODEL,
        "weights_mb": weights_mb,
        "upload": "a 64 x 64 PNG slice of the Colin27 brain MRI",
        "warmup_latency_s": warmup["latency_s"],
        "latency_s": [_summary([r["latency_s"] for r in results
                                if r["latency_s"] is not None]) for results in rounds],
        "error_count": len(errors),
        "errors": errors,
        "memory_mb": {
            "marks": marks,
            "warmup_growth": after_warmup - marks["tasks imported (home page)"]["rss_mb"],
            "round_growth": round_growth,
            "per_session_bound": per_session_bound,
        },
        "memory_bounded": bool(bounded),
        "machine": {"cpus": os.cpu_count(), "load_average": load_average,
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "chromium": chromium, "streamlit": streamlit.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 0 if not errors and bounded else 1


if __name__ == "__main__":
    sys.exit(main())
