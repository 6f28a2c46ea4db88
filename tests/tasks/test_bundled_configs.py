"""Every config shipped with the medical, hyperspectral, lidar, holography and desmoke tasks
validates, and the GPU-scale models build and run on inputs of their working size."""

from __future__ import annotations

import pytest
import torch

from domainvit.config import load_config
from domainvit.engine import build_model
from domainvit.registry import get_task

MEDICAL = ("medseg", "medcls", "hsi", "lidar_place", "holography", "desmoke")


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


def test_paper_scale_holography_model_reconstructs_a_224_pixel_hologram():
    """HoloPASWIN at the published scale (224 x 224, 20 mm): a field of the hologram's
    shape, plain back-propagation before training, and the size of a Swin-T U-Net."""
    cfg = load_config("holography/holopaswin_paper")
    model = build_model(get_task("holography"), cfg).eval()
    hologram = torch.rand(1, 1, 224, 224) + 0.5
    z = torch.tensor([20e-3], dtype=torch.float64)
    with torch.no_grad():
        out = model(hologram, z)
        plain = model.back_propagate(hologram, z)
    assert out.shape == (1, 2, 224, 224)
    assert torch.allclose(torch.complex(out[:, 0], out[:, 1]), plain, atol=1e-5)
    assert 20e6 < sum(p.numel() for p in model.parameters()) < 60e6


def test_paper_scale_rganet_desmokes_a_256_pixel_frame():
    cfg = load_config("desmoke/rganet_paper")
    model = build_model(get_task("desmoke"), cfg).eval()
    assert sum(p.numel() for p in model.parameters()) > 10_000_000
    frame = torch.rand(1, 3, cfg.data.crop, cfg.data.crop)
    with torch.no_grad():
        out = model(frame)
    assert out.shape == frame.shape and torch.isfinite(out).all()
