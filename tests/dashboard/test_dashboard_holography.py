"""The holography page: a sample hologram is reconstructed at its sidecar's distance (the
field ``domainvit predict`` writes), refined or found by autofocus with the focus curve
shown; an upload without a sidecar takes the model's parameters; the page's parameters
are checked, an unlike wavelength warned about; bad uploads give the reader's one
message; the downloads are the predicted files.

The model is a tiny HoloPASWIN left untrained (:func:`add_holography_model`): the page's
plumbing is under test, not the reconstruction's quality.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from domainvit import checkpoint as ckpt
from domainvit.config import validate_config
from domainvit.dashboard.launch import MODELS_ENV
from domainvit.dashboard.task_pages.holography import (
    AUTOFOCUS,
    GIVEN,
    REFINED,
    display_step,
    sample_labels,
)
from domainvit.distribution import InputGuard
from domainvit.engine import build_model, inference_config, load_inference_weights
from domainvit.registry import get_task
from domainvit.tasks.holography.data import HolographyData
from domainvit.tasks.holography.predict import predict_holograms
from tests.dashboard.conftest import (
    errors,
    open_task_page,
    save_untrained_model,
    upload,
)

KEY = "holography-upload"
TINY_MODEL = {"name": "holopaswin", "embed_dim": 8, "depths": [1, 1], "window_size": 4,
              "head_dim": 8, "stem_stride": 2, "full_res_chans": 4}
MODEL_NAME = "holography-tiny"
MODEL_LABEL = f"{MODEL_NAME} (holopaswin, models folder)"


def add_holography_model(folder: Path) -> str:
    """An untrained tiny HoloPASWIN for the quickstart data (``holo-cells``, 64 x 64) with
    its training record, saved into ``folder`` (a models folder); its label."""
    save_untrained_model(folder, "holography", MODEL_NAME, TINY_MODEL,
                         {"dataset": "holo-cells"})
    return MODEL_LABEL


@pytest.fixture(scope="module")
def holo_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("holo-models")
    add_holography_model(folder)
    return folder


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Path]:
    """The task's sample holograms (16-bit PNGs with their sidecars)."""
    folder = tmp_path_factory.mktemp("holo-samples")
    return get_task("holography").sample_inputs(HolographyData(), folder)


@pytest.fixture
def page(holo_models, monkeypatch) -> AppTest:
    monkeypatch.setenv(MODELS_ENV, str(holo_models))
    return open_task_page("holography", MODEL_LABEL)


def _charts(at: AppTest) -> list[dict]:
    """The page's plotly figures (data and layout), in page order."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _values(values) -> np.ndarray:
    """A trace's array: a JSON list, or plotly's typed array (``dtype``, base64 ``bdata``)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def _predicted(holo_models: Path, path: Path, out: Path, **data) -> Path:
    """The field ``domainvit predict`` writes for ``path`` with the model of the page."""
    checkpoint = holo_models / f"{MODEL_NAME}.safetensors"
    meta = ckpt.read_meta(checkpoint)
    cfg = inference_config(validate_config(dict(meta["config"]), checkpoint.name), meta)
    model = build_model(get_task("holography"), cfg)
    load_inference_weights(model, cfg, checkpoint)
    out.mkdir()
    with torch.no_grad():
        written = predict_holograms(model.eval(), cfg.data.model_copy(update=data), [path],
                                    out, InputGuard.from_meta(meta, report=lambda line: None))
    return next(p for p in written if p.name.endswith(".field.npy"))


def _no_result(at: AppTest) -> None:
    assert not at.get("plotly_chart") and not at.get("download_button") and not at.metric


def test_a_sample_is_reconstructed_at_its_sidecar_distance_as_domainvit_predict_does(
        page, holo_models, samples, downloaded, tmp_path):
    at = page
    at.radio(key="holography-input").set_value(sample_labels()[0]).run()
    assert not at.exception and not errors(at)
    assert not at.warning, [w.value for w in at.warning]  # a sample is like the training's
    given = json.loads(samples[0].with_suffix(".json").read_text())["z_mm"]
    # filled in from the sample's sidecar: its distance, refined by autofocus
    assert at.number_input(key="holography-z").value == pytest.approx(given)
    assert at.number_input(key="holography-wavelength").value == pytest.approx(532.0)
    assert at.number_input(key="holography-pixel").value == pytest.approx(4.65)
    assert at.radio(key="holography-distance").value == REFINED
    assert any("sidecar holo_0.json" in c.value for c in at.caption)
    fields, focus = _charts(at)
    assert [t["type"] for t in fields["data"]] == ["heatmap"] * 4
    assert [t["name"] for t in fields["data"]] == ["holopaswin"] * 2 + ["back-propagation"] * 2
    assert fields["layout"]["coloraxis2"]["colorscale"][0][1] == "#e2d9e2"  # cyclic phase
    # the curve with the chosen and the given distance marked
    assert [shape["x0"] for shape in focus["layout"]["shapes"]][1] == pytest.approx(given)
    assert at.metric[0].delta == "refined by autofocus"
    assert any(c.value.startswith(f"The distance z: refined by autofocus around the given "
                                  f"{given:g} mm") for c in at.caption)

    at.radio(key="holography-distance").set_value(GIVEN).run()
    assert not at.exception and not errors(at)
    assert at.metric[0].value == f"{given:.3f} mm" and at.metric[0].delta == "as given"
    assert len(_charts(at)) == 1  # no focus curve
    assert any("No autofocus" in c.value for c in at.caption)
    field = np.load(io.BytesIO(downloaded(at, "holography-download-field")))
    expected = np.load(_predicted(holo_models, samples[0], tmp_path / "cli", refine_mm=0.0))
    assert field.dtype == np.complex64 and field.shape == (64, 64)
    np.testing.assert_allclose(field, expected, atol=1e-5)
    amplitude = iio.imread(io.BytesIO(downloaded(at, "holography-download-amplitude")))
    phase = iio.imread(io.BytesIO(downloaded(at, "holography-download-phase")))
    assert amplitude.dtype == phase.dtype == np.uint16 and amplitude.shape == (64, 64)
    record = json.loads(downloaded(at, "holography-download-record"))
    assert record["z_source"] == "given" and record["z_mm"] == pytest.approx(given)
    assert "focus_curve" not in record
    sidecar = json.loads(downloaded(at, "holography-download-sidecar"))
    assert sidecar["input_check"]["outcome"] == "ok"


def test_an_upload_takes_the_models_parameters_and_is_focused_automatically(
        page, holo_models, samples, downloaded, tmp_path):
    at = upload(page, KEY, samples[1], name="my hologram.png")  # no sidecar comes with it
    assert not at.exception and not errors(at)
    assert at.radio(key="holography-distance").value == AUTOFOCUS
    assert at.number_input(key="holography-z").disabled
    assert any("data config (the file has no sidecar)" in c.value for c in at.caption)
    fields, focus = _charts(at)
    assert len(fields["data"]) == 4
    curve = focus["data"][0]
    z = _values(curve["x"])
    assert z.min() == pytest.approx(3.0) and z.max() == pytest.approx(9.0)  # the trained range
    assert len(_values(curve["y"])) == len(z)
    (chosen,) = focus["layout"]["shapes"]
    record = json.loads(downloaded(at, "holography-download-record"))
    assert record["input"] == "my_hologram.png" and record["z_source"] == "autofocus"
    assert chosen["x0"] == pytest.approx(record["z_mm"], abs=1e-4)
    assert record["focus_curve"]["z_mm"] == pytest.approx(z.tolist(), abs=1e-4)
    assert at.metric[0].delta == "found by autofocus"
    assert any(c.value.startswith("The distance z: by autofocus over the trained range")
               for c in at.caption)
    plain = tmp_path / "my_hologram.png"  # as the CLI sees it: no sidecar, z_mm auto
    shutil.copyfile(samples[1], plain)
    expected = np.load(_predicted(holo_models, plain, tmp_path / "cli"))
    field = np.load(io.BytesIO(downloaded(at, "holography-download-field")))
    np.testing.assert_allclose(field, expected, atol=1e-5)


def test_the_parameters_are_checked_and_an_unlike_wavelength_warned_about(page):
    at = page
    at.radio(key="holography-input").set_value(sample_labels()[0]).run()
    at.number_input(key="holography-wavelength").set_value(50.0).run()
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and "wavelength 50.0 nm is outside the physical range" in shown[0]
    _no_result(at)

    at.number_input(key="holography-wavelength").set_value(532.0)
    at.radio(key="holography-distance").set_value(GIVEN)
    at.number_input(key="holography-z").set_value(500.0).run()
    shown = errors(at)
    assert len(shown) == 1 and "distance 500 mm is beyond the band limit" in shown[0], shown
    _no_result(at)

    at.number_input(key="holography-z").set_value(4.0)
    at.number_input(key="holography-wavelength").set_value(633.0).run()
    assert not at.exception and not errors(at)
    warned = [w.value for w in at.warning]
    assert warned == ["Unlike the training data: wavelength 633 nm differs from the "
                      "training's 532 nm. The result may be unreliable there."], warned
    assert at.metric[0].value == "4.000 mm" and at.metric[1].value == "633 nm"

    # another input brings its own parameters
    at.radio(key="holography-input").set_value(sample_labels()[1]).run()
    assert not at.exception and not errors(at) and not at.warning
    assert at.number_input(key="holography-wavelength").value == pytest.approx(532.0)
    assert at.radio(key="holography-distance").value == REFINED


def test_a_grey_frame_saved_as_colour_is_taken_with_a_note(page, samples, tmp_path):
    grey = (iio.imread(samples[0]) >> 8).astype(np.uint8)
    path = tmp_path / "grey-as-rgb.png"
    iio.imwrite(path, np.repeat(grey[..., None], 3, axis=2))
    at = upload(page, KEY, path)
    assert not at.exception and not errors(at)
    assert any("colour channels are identical" in i.value for i in at.info)
    assert len(_charts(at)) == 2


def _bad_upload(case: str, folder: Path, sample: Path) -> tuple[Path, str]:
    frame = iio.imread(sample)
    if case == "colour":
        path = folder / "colour.png"
        grey = (frame >> 8).astype(np.uint8)
        iio.imwrite(path, np.stack([grey, grey // 2, grey // 3], axis=-1))
        return path, "colour.png: a colour image (its channels differ)"
    if case == "tiny":
        path = folder / "tiny.png"
        iio.imwrite(path, frame[:8, :8])
        return path, "tiny.png: 8x8 pixels is smaller than the model's minimum"
    if case == "not an image":
        path = folder / "notes.png"
        path.write_text("not a picture")
        return path, "notes.png: cannot read it as a hologram"
    if case == "flat":
        path = folder / "flat.npy"
        np.save(path, np.full((64, 64), 0.5, np.float32))
        return path, "flat.npy: all dark or flat"
    path = folder / "big.png"
    shutil.copyfile(sample, path)
    return path, "larger than the 1000 bytes upload limit"


@pytest.mark.parametrize("case", ["colour", "tiny", "not an image", "flat", "too large"])
def test_a_bad_upload_gives_one_message(page, samples, tmp_path, monkeypatch, case):
    from domainvit.dashboard import uploads

    if case == "too large":
        monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    path, message = _bad_upload(case, tmp_path, samples[0])
    at = upload(page, KEY, path)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and message in shown[0], shown
    assert "Traceback" not in shown[0]
    _no_result(at)


def test_a_large_field_is_drawn_with_every_nth_pixel():
    assert display_step((64, 64)) == 1
    assert display_step((512, 300)) == 1
    assert display_step((2048, 1024)) == 4
    assert display_step((1, 513, 10)) == 2
