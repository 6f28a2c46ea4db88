"""Every config shipped with the medical, hyperspectral and lidar tasks validates, and
the GPU-scale models build and run on inputs of their working size."""

from __future__ import annotations

import pytest
import torch

from domainvit.config import load_config
from domainvit.engine import build_model
from domainvit.registry import get_task

MEDICAL = ("medseg", "medcls", "hsi", "lidar_place")


@pytest.mark.parametrize("task", MEDICAL)
def test_task_ships_quickstart_and_paper_scale_configs(task):
    configs = get_task(task).bundled_configs()
    assert any(name.startswith("quickstart") for name in configs)
    assert any(not name.startswith("quickstart") for name in configs)
    for name in configs:
        cfg = load_config(f"{task}/{name}")
        assert cfg.task == task


@pytest.mark.parametrize("name", ["synapse_transdae", "synapse_macmd"])
def test_paper_scale_segmentation_models_build_for_nine_classes(name):
    cfg = load_config(f"medseg/{name}")
    model = build_model(get_task("medseg"), cfg).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 1, *cfg.data.roi_size))
    assert logits.shape == (1, 9, *cfg.data.roi_size)


def test_paper_scale_hyperspectral_model_builds_for_salinas():
    cfg = load_config("hsi/salinas")
    model = build_model(get_task("hsi"), cfg).eval()
    p = cfg.data.patch_size
    with torch.no_grad():
        logits = model(torch.rand(2, cfg.model.in_bands, p, p))
    assert logits.shape == (2, len(cfg.data.classes)) and torch.isfinite(logits).all()


def test_paper_scale_hotformerloc_builds_and_describes_a_cloud():
    cfg = load_config("lidar_place/hotformerloc_paper")
    model = build_model(get_task("lidar_place"), cfg).eval()
    assert (cfg.model.channels, cfg.model.blocks, cfg.model.heads) == ((128, 256), (4, 10),
                                                                       (8, 16))
    g = torch.Generator().manual_seed(0)
    rows = torch.zeros(1, cfg.data.points, 5)
    rows[..., :2] = (torch.rand(1, cfg.data.points, 2, generator=g) * 2 - 1) * 18
    rows[..., 2] = torch.randn(1, cfg.data.points, generator=g) * 3
    rows[..., 4] = 1.0
    with torch.no_grad():
        descriptor = model(rows)
    assert descriptor.shape == (1, 256)
    torch.testing.assert_close(descriptor.norm(dim=1), torch.ones(1))
