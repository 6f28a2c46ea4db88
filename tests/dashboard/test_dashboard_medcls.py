"""The medcls page: class probabilities (those ``domainvit predict`` writes), the top
class and an occlusion saliency map; a CT is refused unless "Predict anyway" is ticked;
bad uploads give the readers' messages."""

from __future__ import annotations

import io
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from domainvit.config import validate_config
from domainvit.dashboard.task_pages.medcls import occlusion_saliency
from domainvit.datasets.brain import CLASS_NAMES, MRICRON_TEMPLATES
from domainvit.distribution import InputGuard
from domainvit.engine import build_model, load_inference_weights
from domainvit.registry import get_task
from domainvit.tasks.medcls.data import dataset_info
from domainvit.tasks.medcls.predict import confidence, predict_images
from tests.dashboard.conftest import MEDCLS_MODEL, errors, upload

KEY = "medcls-upload"


@pytest.fixture(scope="module")
def brain_png(tmp_path_factory) -> bytes:
    """An axial slice of Colin27 around the cerebellum at 2.5 mm, as the model sees it
    (anterior up), saved as an 8-bit PNG."""
    scan = nib.load(MRICRON_TEMPLATES / "ch2.nii.gz")
    axial = np.asarray(scan.dataobj)[::2, ::2, 40].astype(float)
    picture = np.rot90(axial)[20:84, 10:74]
    buffer = io.BytesIO()
    Image.fromarray(np.round(picture / picture.max() * 255).astype(np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


def _expected_probabilities(models_dir, path, tmp_path) -> dict[str, float]:
    from domainvit import checkpoint as ckpt

    checkpoint = models_dir / "medcls-quickstart.safetensors"
    meta = ckpt.load_checkpoint(checkpoint)[1]
    cfg = validate_config(meta["config"], "test")
    model = build_model(get_task("medcls"), cfg)
    load_inference_weights(model, cfg, checkpoint)
    guard = InputGuard.from_meta(meta, force=True, report=lambda line: None)
    with torch.no_grad():
        written = predict_images(model.eval(), cfg.data, dataset_info(cfg.data), [path],
                                 tmp_path, guard)
    return json.loads(written[0].read_text())["probabilities"]


def test_a_ct_slice_is_refused_until_predicted_anyway(open_page, ct_slice):
    at = upload(open_page("medcls", MEDCLS_MODEL), KEY, ct_slice)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and "CT_small.dcm: it is a CT image (DICOM Modality CT)" in shown[0]
    assert not at.metric and not at.image
    at.checkbox(key="medcls-force").check().run()
    assert not at.exception and not errors(at)
    assert any(w.value.startswith("Predicted anyway, although the model refuses this input: "
                                  "it is a CT image") for w in at.warning)
    assert at.metric[0].label == "Top class"


@pytest.mark.parametrize("sample", ["dicom", "png"])
def test_an_image_gets_probabilities_top_class_and_saliency(
        open_page, models_dir, ct_slice, brain_png, tmp_path, sample):
    path = ct_slice
    if sample == "png":
        path = tmp_path / "brain-slice.png"
        path.write_bytes(brain_png)
    at = upload(open_page("medcls", MEDCLS_MODEL), KEY, path)
    if sample == "dicom":  # a CT to the MR model: predicted only when asked to
        at.checkbox(key="medcls-force").check().run()
    assert not at.exception and not errors(at)
    if sample == "png":  # the MR slice is what the model was trained on
        assert not at.warning, [w.value for w in at.warning]

    expected = _expected_probabilities(models_dir, path, tmp_path)
    table = at.dataframe[0].value
    assert list(table["class"]) == list(CLASS_NAMES[1:])
    np.testing.assert_allclose(table["probability"], [expected[c] for c in table["class"]],
                               atol=1e-4)
    top = max(expected, key=expected.get)
    metric = at.metric[0]
    assert metric.label == "Top class" and metric.value == top
    assert at.get("vega_lite_chart"), "the probabilities are drawn as a bar chart"
    image = at.image[0]
    assert len(image.value) == 2 and image.captions[1] == f"occlusion saliency for {top}"
    assert any("Saliency by occlusion" in c.value for c in at.caption)
    # the prediction's confidence: the top probability and the normalised entropy
    entropy = confidence(np.array([expected[c] for c in CLASS_NAMES[1:]]))["normalised_entropy"]
    assert any(c.value.startswith(f"Confidence: top probability {expected[top]:.1%}, "
                                  f"normalised entropy {entropy:.2f}") for c in at.caption)


def test_bad_image_upload_shows_the_readers_message(open_page, tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    at = upload(open_page("medcls", MEDCLS_MODEL), KEY, path)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and "cannot read scan.png as an image" in shown[0]
    assert not at.metric and not at.image


class QuadrantModel(nn.Module):
    """Class 0 when the top-left quadrant is bright, class 1 otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        brightness = x[..., :half, :half].mean(dim=(1, 2, 3))
        return torch.stack([brightness, -brightness], dim=1) * self.scale


def test_occlusion_saliency_points_at_the_pixels_the_decision_rests_on():
    pixels = np.full((64, 64), 40, np.uint8)
    pixels[:32, :32] = 250
    calls = []
    saliency = occlusion_saliency(QuadrantModel().eval(), pixels, 64, target=0,
                                  progress=lambda done, total: calls.append((done, total)))
    assert saliency.shape == (64, 64)
    assert saliency[:24, :24].min() > 0.01
    assert np.abs(saliency[40:, 40:]).max() < 1e-6
    assert calls[-1] == (49, 49) and len(calls) == 49
