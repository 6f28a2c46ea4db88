"""The holography task end to end with a tiny model: the simulator (deterministic, split by
source, its noise and quantisation), the data config, the models (any size, the residual
on the back-propagated field), the loss and metrics, training that beats plain
back-propagation, ``predict`` (files, scalings, sidecars, autofocus) and bad inputs
through the CLI (one line, nothing written)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml

from domainvit import checkpoint as ckpt
from domainvit.datasets.holo_cells import (
    HologramSimulator,
    SimulationSettings,
    normalise_hologram,
)
from domainvit.distribution import InputGuard
from domainvit.engine import evaluate, train
from domainvit.errors import UserError
from domainvit.optics import propagate
from domainvit.registry import load_tasks
from domainvit.tasks.holography.data import HolographyData, build_dataset
from domainvit.tasks.holography.loss import HoloLossWeights, holo_loss
from domainvit.tasks.holography.metrics import field_scores
from domainvit.tasks.holography.paswin import HoloPASWIN, HoloUNet
from domainvit.tasks.holography.predict import parameters_for, predict_holograms, read_hologram
from tests.conftest import load_trained, run_cli

OPTICS = (532e-9, 4.65e-6, (3e-3, 9e-3))
TINY_MODEL = {"name": "holopaswin", "embed_dim": 8, "depths": [1, 1], "window_size": 4,
              "head_dim": 8, "stem_stride": 2, "full_res_chans": 4, "drop_path_rate": 0.0}
SMALL = SimulationSettings(size=32, z_range_m=(2e-3, 5e-3))


def tiny_paswin() -> HoloPASWIN:
    return HoloPASWIN(*OPTICS, embed_dim=8, depths=(1, 1), window_size=4, head_dim=8,
                      full_res_chans=4)


# --- the simulator -------------------------------------------------------------------------


def test_samples_are_deterministic_and_splits_draw_different_objects():
    train = HologramSimulator(SMALL, "train")
    a, b = train.sample(3), train.sample(3)
    assert np.array_equal(a["counts"], b["counts"]) and np.array_equal(a["field"], b["field"])
    assert not np.array_equal(train.sample(3, epoch=1)["field"], a["field"])
    val = HologramSimulator(SMALL, "val").sample(3)
    assert not np.allclose(val["field"], a["field"])


def test_the_real_phase_image_is_a_test_source_only():
    sources = {split: {HologramSimulator(SMALL, split).sample(i)["source"] for i in range(30)}
               for split in ("train", "val", "test")}
    assert sources["train"] == sources["val"] == {"procedural"}
    assert sources["test"] == {"procedural", "real-cell"}


def test_a_noiseless_hologram_is_the_propagated_intensity_up_to_quantisation():
    settings = SimulationSettings(size=32, z_range_m=(2e-3, 5e-3), noise=("none",), bits=(16,))
    simulator = HologramSimulator(settings, "train")
    sample = simulator.sample(0)
    intensity = propagate(torch.from_numpy(sample["field"]), sample["z_m"],
                          settings.wavelength_m, settings.pixel_m).abs().square().numpy()
    ratio = sample["counts"] / intensity
    # one gain for every pixel (the exposure), quantisation steps aside
    assert np.std(ratio) / np.mean(ratio) < 2e-3
    assert sample["counts"].max() < 2**16


def test_bit_depth_limits_the_levels_and_noise_changes_the_frame():
    settings = SimulationSettings(size=32, z_range_m=(2e-3, 5e-3), noise=("none",), bits=(8,))
    obj = HologramSimulator(settings, "train").sample(0)["field"]
    sim = HologramSimulator(settings, "train")
    rng = np.random.default_rng(0)
    clean = sim.hologram(obj, 5e-3, "none", 8, rng)
    assert clean.max() <= 255
    noisy = sim.hologram(obj, 5e-3, "all", 8, np.random.default_rng(0))
    assert not np.array_equal(clean, noisy)
    assert abs(float(normalise_hologram(clean).mean()) - 1) < 1e-5


# --- data config -----------------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"size": 96}, "fixed size"),
    ({"z_min_mm": 10.0}, "below"),
    ({"noise": ["fog"]}, "unknown noise"),
    ({"dataset": "synthetic", "size": 32}, "band limit"),
    ({"autofocus_metric": "sharpest"}, "unknown autofocus_metric"),
])
def test_bad_data_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        HolographyData(**changes)


def test_training_items_jitter_the_given_distance_only_when_asked():
    exact = build_dataset(HolographyData(dataset="synthetic", size=32, z_max_mm=5.0,
                                         jitter_fraction=0.0), "train")
    item = exact[0]
    assert item["input"].shape == (1, 32, 32) and item["target"].shape == (2, 32, 32)
    assert float(item["z"]) == float(item["z_true"])
    jittered = build_dataset(HolographyData(dataset="synthetic", size=32, z_max_mm=5.0,
                                            jitter_fraction=1.0, z_jitter_mm=0.5), "train")
    gaps = [abs(float(i["z"] - i["z_true"])) for i in (jittered[k] for k in range(8))]
    assert all(0 < g <= 0.5e-3 + 1e-12 for g in gaps)


# --- models, loss, metrics -------------------------------------------------------------------


def tiny_paswin_overlap() -> HoloPASWIN:
    return HoloPASWIN(*OPTICS, embed_dim=8, depths=(1, 1), window_size=4, head_dim=8,
                      full_res_chans=4, stem="overlap")


def tiny_paswin_quickstart_shape() -> HoloPASWIN:
    """The quickstart's layout: a convolutional level at half resolution, then windows
    with Mix-FFN blocks at 1/4 and 1/8."""
    return HoloPASWIN(*OPTICS, embed_dim=8, depths=(1, 1), window_size=4, head_dim=8,
                      full_res_chans=4, conv_widths=(6,), mlp_kind="mix")


@pytest.mark.parametrize("build", [tiny_paswin, tiny_paswin_overlap,
                                   tiny_paswin_quickstart_shape,
                                   lambda: HoloUNet(*OPTICS, widths=(4, 8))])
def test_models_keep_any_input_shape_and_start_as_back_propagation(build):
    model = build().eval()
    hologram = torch.rand(2, 1, 37, 53) + 0.5
    z = torch.tensor([4e-3, 6e-3], dtype=torch.float64)
    with torch.no_grad():
        out = model(hologram, z)
        plain = model.back_propagate(hologram, z)
    assert out.shape == (2, 2, 37, 53)
    # the residual head starts at zero: the untrained model is plain back-propagation
    assert torch.allclose(torch.complex(out[:, 0], out[:, 1]), plain, atol=1e-6)
    with pytest.raises(ValueError, match="at least"):
        model(torch.rand(1, 1, 8, 40), z[:1])


def test_the_loss_of_the_truth_is_below_the_loss_of_back_propagation():
    settings = SimulationSettings(size=32, z_range_m=(2e-3, 5e-3), noise=("none",), bits=(16,))
    sample = HologramSimulator(settings, "train").sample(1)
    hologram = torch.as_tensor(normalise_hologram(sample["counts"]))[None, None]
    field = torch.from_numpy(sample["field"])
    target = torch.stack([field.real, field.imag])[None]
    z = torch.tensor([sample["z_m"]], dtype=torch.float64)
    args = (hologram, z, 532e-9, 4.65e-6, 2.0, HoloLossWeights())
    truth = holo_loss(target, target, *args)
    assert float(truth["complex_l1"]) == 0 and float(truth["phase_l1"]) == 0
    assert float(truth["physics"]) < 0.02
    plain = tiny_paswin().back_propagate(hologram, z)
    plain = torch.stack([plain.real, plain.imag], dim=1)
    assert float(holo_loss(plain, target, *args)["total"]) > 5 * float(truth["total"])


def test_phase_scores_ignore_the_global_offset_and_2pi_jumps():
    rng = np.random.default_rng(0)
    phase = torch.as_tensor(rng.uniform(-1, 1, (2, 24, 24)), dtype=torch.float32)
    truth = torch.polar(torch.ones_like(phase), phase)
    shifted = truth * torch.polar(torch.tensor(1.0), torch.tensor(2.5))
    scores = field_scores(shifted, truth)
    assert float(scores["phase_rmse"].max()) < 1e-3
    assert float(scores["phase_psnr"].min()) > 70
    # a +-e error pattern with zero mean: RMSE e, PSNR 20 log10(2 pi / e)
    error = 0.1 * torch.where(torch.arange(24 * 24).reshape(24, 24) % 2 == 0, 1.0, -1.0)
    scores = field_scores(truth * torch.polar(torch.ones_like(error), error), truth)
    assert np.allclose(scores["phase_rmse"].numpy(), 0.1, atol=2e-3)
    assert np.allclose(scores["phase_psnr"].numpy(), 20 * math.log10(2 * math.pi / 0.1),
                       atol=0.2)


# --- training, eval, predict -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(config, checkpoint) of a tiny HoloPASWIN after a short training on 32 x 32
    holograms simulated with the sample settings."""
    load_tasks()
    tmp = tmp_path_factory.mktemp("holo_run")
    cfg = {"task": "holography", "seed": 0, "run_dir": str(tmp / "run"), "model": TINY_MODEL,
           "data": {"dataset": "synthetic", "size": 32, "z_min_mm": 2.0, "z_max_mm": 5.0,
                    "train_samples": 768,
                    "val_samples": 32, "test_samples": 48},
           "train": {"epochs": 2, "batch_size": 16, "log_every": 16, "val_every": 1},
           "optim": {"name": "adamw", "lr": 0.003}}
    path = tmp / "holo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = train(str(path))
    return path, ckpt.resolve_checkpoint(run)


def _model(trained):
    return load_trained("holography", *trained)


def test_a_short_training_beats_plain_back_propagation(trained):
    config, checkpoint = trained
    model, cfg, _ = _model(trained)
    dataset = build_dataset(cfg.data, "test")
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        plain = model.back_propagate(batch["input"], batch["z"])
    truth = torch.complex(batch["target"][:, 0], batch["target"][:, 1])
    plain_psnr = float(field_scores(plain, truth)["phase_psnr"].mean())
    scores = evaluate(str(config), str(checkpoint))
    assert scores["phase_psnr"] > plain_psnr + 1.0, (scores["phase_psnr"], plain_psnr)


def _write_png(path: Path, frame: np.ndarray, **params) -> Path:
    iio.imwrite(path, frame)
    if params:
        path.with_suffix(".json").write_text(json.dumps(params))
    return path


def _hologram_counts(size: int = 32, bits: int = 12) -> np.ndarray:
    settings = SimulationSettings(size=size, z_range_m=(2e-3, 5e-3), noise=("shot",),
                                  bits=(bits,))
    sample = HologramSimulator(settings, "test").sample(0)
    return sample["counts"], sample["z_m"]


def test_predict_writes_the_field_images_and_the_chosen_distance(trained, tmp_path):
    model, cfg, meta = _model(trained)
    counts, z = _hologram_counts()
    path = _write_png(tmp_path / "holo.png", counts[:, :28], wavelength_nm=532,
                      pixel_um=4.65, z_mm=z * 1e3)
    out = tmp_path / "out"
    cfg_data = cfg.data.model_copy(update={"refine_mm": 0.0})
    written = predict_holograms(model, cfg_data, [path], out, InputGuard.from_meta(meta))
    assert sorted(p.name for p in written) == sorted(
        ["holo.field.npy", "holo.amplitude.png", "holo.phase.png", "holo.json",
         "holo.prediction.json"])
    field = np.load(out / "holo.field.npy")
    assert field.dtype == np.complex64 and field.shape == (32, 28)  # non-square kept
    amplitude = iio.imread(out / "holo.amplitude.png")
    assert amplitude.dtype == np.uint16
    assert np.allclose(amplitude / 32768.0, np.minimum(np.abs(field), 2), atol=1e-4)
    phase = iio.imread(out / "holo.phase.png") / 65535 * 2 * np.pi - np.pi
    assert np.allclose(np.angle(field), phase, atol=1e-3)
    record = json.loads((out / "holo.json").read_text())
    assert record["z_source"] == "given" and abs(record["z_mm"] - z * 1e3) < 1e-3
    sidecar = json.loads((out / "holo.prediction.json").read_text())
    assert sidecar["input_check"]["outcome"] in ("ok", "warn")


def test_predict_without_a_distance_runs_autofocus(trained, tmp_path):
    model, cfg, meta = _model(trained)
    counts, z = _hologram_counts()
    path = tmp_path / "holo.npy"
    np.save(path, counts.astype(np.float32))
    written = predict_holograms(model, cfg.data.model_copy(update={"z_mm": "auto"}), [path],
                                tmp_path / "out", InputGuard.from_meta(meta))
    record = json.loads((tmp_path / "out" / "holo.json").read_text())
    assert record["z_source"] == "autofocus" and len(written) == 5
    curve = record["focus_curve"]
    assert len(curve["z_mm"]) == len(curve["score"]) >= 10
    assert curve["z_mm"] == sorted(curve["z_mm"])
    assert cfg.data.z_min_mm <= record["z_mm"] <= cfg.data.z_max_mm


def test_predicting_into_the_input_folder_keeps_the_question_asked(trained, tmp_path):
    """Written beside its input, the record replaces the input's sidecar; read back, it
    gives the distance asked for (autofocus, or the given one), not the one chosen."""
    model, cfg, meta = _model(trained)
    counts, z = _hologram_counts()
    auto = _write_png(tmp_path / "auto.png", counts.astype(np.uint16), z_mm="auto")
    given = _write_png(tmp_path / "given.png", counts.astype(np.uint16), z_mm=4.0)
    guard = InputGuard.from_meta(meta)
    for _ in range(2):
        predict_holograms(model, cfg.data, [auto, given], tmp_path, guard)
        assert json.loads((tmp_path / "auto.json").read_text())["z_source"] == "autofocus"
        record = json.loads((tmp_path / "given.json").read_text())
        assert record["z_source"] in ("given", "refined") and record["z_given_mm"] == 4.0
    assert parameters_for(auto, cfg.data).z_mm == "auto"
    assert parameters_for(given, cfg.data).z_mm == 4.0


def test_a_sidecar_overrides_the_config_and_a_grey_rgb_frame_is_converted(trained, tmp_path):
    counts, _ = _hologram_counts(bits=8)
    rgb = np.repeat(counts.astype(np.uint8)[..., None], 3, axis=2)
    path = _write_png(tmp_path / "grey.png", rgb, wavelength_nm=633.0)
    frame, notes = read_hologram(path)
    assert frame.shape == counts.shape and notes and "identical" in notes[0]
    model, cfg, meta = _model(trained)
    reported = []
    predict_holograms(model, cfg.data.model_copy(update={"z_mm": 4.0, "refine_mm": 0.0}),
                      [path], tmp_path / "out", InputGuard.from_meta(meta,
                                                                     report=reported.append))
    record = json.loads((tmp_path / "out" / "grey.json").read_text())
    assert record["wavelength_nm"] == 633.0 and record["z_mm"] == 4.0
    assert any("wavelength" in line for line in reported)  # 633 nm is not the training's


def _bad_inputs() -> dict:
    counts, z = _hologram_counts(bits=12)
    ok = {"wavelength_nm": 532, "pixel_um": 4.65, "z_mm": 4.0}
    saturated = counts.astype(np.uint16) << 4
    saturated[:8] = 65535

    def colour(p):
        rgb = np.stack([counts >> 4, counts >> 5, counts >> 6], axis=-1).astype(np.uint8)
        _write_png(p, rgb, **ok)

    return {
        "notes.txt": lambda p: p.write_text("not a hologram"),
        "broken.png": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n broken"),
        "colour.png": colour,
        "tiny.png": lambda p: _write_png(p, counts[:10, :10].astype(np.uint16), **ok),
        "saturated.png": lambda p: _write_png(p, saturated, **ok),
        "dark.png": lambda p: _write_png(p, np.zeros((32, 32), np.uint16), **ok),
        "nan.npy": lambda p: np.save(p, np.full((32, 32), np.nan)),
        "stack.npy": lambda p: np.save(p, np.ones((2, 32, 32))),
        "wavelength.png": lambda p: _write_png(p, counts.astype(np.uint16),
                                               **{**ok, "wavelength_nm": 53200}),
        "pixel.png": lambda p: _write_png(p, counts.astype(np.uint16), **{**ok, "pixel_um": -1}),
        "distance.png": lambda p: _write_png(p, counts.astype(np.uint16), **{**ok, "z_mm": 0}),
        "farfield.png": lambda p: _write_png(p, counts.astype(np.uint16), **{**ok, "z_mm": 500}),
        "sidecar.png": lambda p: (_write_png(p, counts.astype(np.uint16)),
                                  p.with_suffix(".json").write_text("[1, 2")),
    }


BAD = sorted(_bad_inputs())


@pytest.mark.parametrize("name", BAD)
def test_bad_holograms_are_refused_by_name_and_write_nothing(trained, tmp_path, name):
    model, cfg, meta = _model(trained)
    path = tmp_path / name
    _bad_inputs()[name](path)
    out = tmp_path / "out"
    with pytest.raises(UserError) as refused:
        predict_holograms(model, cfg.data, [path], out, InputGuard.from_meta(meta))
    message = str(refused.value)
    assert name.split(".")[0] in message and "\n" not in message
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", ["colour.png", "farfield.png"])
def test_bad_holograms_are_one_line_from_the_cli(trained, tmp_path, name):
    config, checkpoint = trained
    path = tmp_path / name
    _bad_inputs()[name](path)
    out = tmp_path / "out"
    done = run_cli("predict", str(config), "--checkpoint", str(checkpoint), str(path),
                   "--out", str(out))
    assert done.returncode != 0
    lines = [line for line in done.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("domainvit: error:"), done.stderr
    assert name in lines[0] and "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_read_hologram_names_what_is_wrong(tmp_path):
    counts, _ = _hologram_counts()
    path = tmp_path / "flat.npy"
    np.save(path, np.full((32, 32), 7.0))
    with pytest.raises(UserError, match="flat"):
        read_hologram(path)
    np.save(path, -np.abs(counts.astype(np.float32)))
    with pytest.raises(UserError, match="negative"):
        read_hologram(path)
