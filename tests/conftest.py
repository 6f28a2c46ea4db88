"""Shared fixtures: an isolated data cache, real test inputs, and helpers to run the real
CLI and read what a prediction wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# Every test (and every subprocess it starts) builds sample data into a private cache,
# made once per session and removed when it ends. (In hooks, not at import: test modules
# import this file again as ``tests.conftest``.)
def pytest_configure(config):
    config.domainvit_test_data = tempfile.mkdtemp(prefix="domainvit-test-data-")
    os.environ["DOMAINVIT_DATA"] = config.domainvit_test_data


def pytest_unconfigure(config):
    folder = getattr(config, "domainvit_test_data", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m domainvit ARGS`` in a fresh process, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "domainvit", *args], cwd=cwd or ROOT, capture_output=True,
        text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def write_geotiff(path: Path, data, crs: str | None = "EPSG:32616", **tags) -> Path:
    """A ``[bands, H, W]`` array as a GeoTIFF on a 20 m UTM grid (no CRS with ``crs=None``),
    nodata 0, with ``tags``."""
    import rasterio
    from affine import Affine

    profile = {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2],
               "count": data.shape[0], "dtype": data.dtype, "nodata": 0,
               "transform": Affine(20.0, 0.0, 500000.0, 0.0, -20.0, 4480000.0)}
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(data)
        dataset.update_tags(**tags)
    return path


def load_trained(task: str, config: Path, checkpoint: Path) -> tuple:
    """``(model, config, meta)`` of a checkpoint trained from ``config`` by a test, built
    as ``domainvit predict`` builds it (the recorded data facts filled in), in eval mode."""
    from domainvit import checkpoint as ckpt
    from domainvit.config import load_config
    from domainvit.engine import build_model, inference_config, load_inference_weights
    from domainvit.registry import get_task

    meta = ckpt.read_meta(checkpoint)
    cfg = inference_config(load_config(str(config)), meta)
    model = build_model(get_task(task), cfg)
    load_inference_weights(model, cfg, checkpoint)
    return model.eval(), cfg, meta


@pytest.fixture
def smoke_config(tmp_path: Path) -> Path:
    """A fast smoke-task config written to a file (dropout off unless a test turns it on)."""
    path = tmp_path / "smoke.yaml"
    path.write_text(
        "task: smoke\n"
        "seed: 3\n"
        "model: {name: smoke_mlp, hidden: 64, depth: 2, dropout: 0.0}\n"
        "train: {epochs: 3, batch_size: 32, log_every: 2, checkpoint_every: 5}\n"
        "optim: {name: adamw, lr: 0.02}\n"
        "schedule: {name: cosine, warmup_steps: 4}\n"
    )
    return path


@pytest.fixture(scope="session")
def ct_slice() -> Path:
    """pydicom's CT_small.dcm: a real CT slice, 128x128 in Hounsfield units (air at -896)."""
    import pydicom

    return Path(pydicom.data.get_testdata_file("CT_small.dcm", download=False))


def read_sidecar(out: Path, stem: str) -> dict:
    """The sidecar ``<stem>.prediction.json`` a prediction wrote into ``out``."""
    return json.loads((out / f"{stem}.prediction.json").read_text())
