"""The ``desmoke-tissue`` smoke simulator and benchmark: determinism by seed, disjoint
regions per split (checked on coordinate-coded images), the scattering model, the tinted
airlight, plume variety, temporal coherence of sequences, and the written layout."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skimage")
pytest.importorskip("scipy")

from tqdm.auto import tqdm  # noqa: E402

from domainvit.datasets import desmoke_tissue as dt  # noqa: E402
from domainvit.datasets.frames import find_pairs, read_frame  # noqa: E402

SMALL = dt.SmokeSettings(size=48)
#: no colour jitter or highlights: the clean crop is the resampled source
PLAIN = dataclasses.replace(SMALL, brightness=(1, 1), contrast=(1, 1), gamma=(1, 1),
                            saturation=(1, 1), hue=0.0, redness=(0, 0), specular_probability=0)
#: the scattering model alone: no glare, desaturation or noise
MODEL_ONLY = dataclasses.replace(SMALL, glare_probability=0, desaturation=(0, 0), noise=(0, 0))


def test_a_sample_is_fixed_by_seed_split_epoch_and_index():
    first = dt.SmokeSimulator(SMALL, "train", seed=4).pair(7, epoch=2)
    again = dt.SmokeSimulator(SMALL, "train", seed=4).pair(7, epoch=2)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    others = [dt.SmokeSimulator(SMALL, "train", seed=5).pair(7, epoch=2),
              dt.SmokeSimulator(SMALL, "train", seed=4).pair(7, epoch=3),
              dt.SmokeSimulator(SMALL, "train", seed=4).pair(8, epoch=2),
              dt.SmokeSimulator(SMALL, "val", seed=4).pair(7, epoch=2)]
    for other in others:
        assert not np.array_equal(first["smoky"], other["smoky"])
    draws = {(split, stream): dt.SmokeSimulator(SMALL, split).rng(stream, 7).random(4).tolist()
             for split in dt.SPLIT_CODES for stream in (dt.PAIR_STREAM, dt.SEQUENCE_STREAM)}
    assert len({tuple(d) for d in draws.values()}) == len(draws)  # a seed stream each
    sequence = dt.SmokeSimulator(SMALL, "test").sequence(1, 4)
    np.testing.assert_array_equal(sequence["smoky"],
                                  dt.SmokeSimulator(SMALL, "test").sequence(1, 4)["smoky"])


def test_pairs_and_sequences_have_the_documented_shapes_and_ranges():
    pair = dt.SmokeSimulator(SMALL, "val").pair(0)
    assert {k: v.shape for k, v in pair.items()} == {
        "smoky": (3, 48, 48), "clean": (3, 48, 48), "transmission": (48, 48), "airlight": (3,)}
    sequence = dt.SmokeSimulator(SMALL, "val").sequence(0, 5)
    assert {k: v.shape for k, v in sequence.items()} == {
        "smoky": (5, 3, 48, 48), "clean": (5, 3, 48, 48), "transmission": (5, 48, 48),
        "airlight": (3,)}
    for sample in (pair, sequence):
        for key, value in sample.items():
            assert value.dtype == np.float32, key
            assert 0 <= value.min() and value.max() <= 1, key


def test_split_regions_are_disjoint_with_a_guard_band_and_inside_their_images():
    sources = dt.tissue_sources()
    for source, splits in dt.REGIONS.items():
        height, width = sources[source][0].shape[:2]
        # the tissue images hold every split; the natural photographs train only
        assert set(splits) == ({"train"} if source in dt.TRAIN_ONLY else set(dt.SPLIT_CODES))
        for (rows, cols) in splits.values():
            assert 0 <= rows[0] < rows[1] <= height and 0 <= cols[0] < cols[1] <= width
        for (a, (ra, ca)), (b, (rb, cb)) in itertools.combinations(splits.items(), 2):
            row_gap = max(rb[0] - ra[1], ra[0] - rb[1])
            col_gap = max(cb[0] - ca[1], ca[0] - cb[1])
            assert max(row_gap, col_gap) >= dt.GUARD, (source, a, b)


@pytest.fixture
def coded_sources(monkeypatch):
    """The tissue images replaced by ramps coding each pixel's row (red), column (green)
    and source (blue), with the real tissue masks."""
    real = dt.tissue_sources()
    coded = {}
    for code, (name, (image, mask)) in enumerate(real.items()):
        height, width = image.shape[:2]
        rows, cols = np.mgrid[:height, :width]
        coded[name] = (np.stack([rows / (height - 1), cols / (width - 1),
                                 np.full(rows.shape, (code + 1) / 8)], -1).astype(np.float32),
                       mask)
    monkeypatch.setattr(dt, "tissue_sources", lambda: coded)
    return coded


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_clean_pixel_is_resampled_from_its_splits_region(coded_sources, split):
    names = list(coded_sources)
    seen = set()
    for size in (32, 96):
        settings = dataclasses.replace(PLAIN, size=size, source_weights=(1.0,) * len(names))
        simulator = dt.SmokeSimulator(settings, split)
        samples = [simulator.pair(i)["clean"][None] for i in range(24)]
        samples += [simulator.sequence(i, 6)["clean"] for i in range(4)]
        for clean in samples:
            source = names[int(round(float(clean[0, 2, 0, 0]) * 8)) - 1]
            seen.add(source)
            image = coded_sources[source][0]
            (r0, r1), (c0, c1) = dt.REGIONS[source][split]
            rows = clean[:, 0] * (image.shape[0] - 1)
            cols = clean[:, 1] * (image.shape[1] - 1)
            assert rows.min() >= r0 - 1e-3 and rows.max() <= r1 - 1 + 1e-3, (source, split)
            assert cols.min() >= c0 - 1e-3 and cols.max() <= c1 - 1 + 1e-3, (source, split)
    assert seen == {n for n in names if split in dt.REGIONS[n]}


def test_crops_of_the_retina_lie_in_the_fundus_disc():
    simulator = dt.SmokeSimulator(dataclasses.replace(PLAIN, sources=("retina",),
                                                      source_weights=(1.0,)), "test")
    for i in range(10):
        clean = simulator.pair(i)["clean"]
        assert (clean.max(axis=0) < 20 / 255).mean() < 0.1  # the black outside the disc


def test_the_smoky_image_is_the_scattering_model_without_glare_and_noise():
    simulator = dt.SmokeSimulator(MODEL_ONLY, "train")
    for i in range(6):
        pair = simulator.pair(i)
        t, airlight = pair["transmission"], pair["airlight"]
        expected = pair["clean"] * t + airlight[:, None, None] * (1 - t)
        np.testing.assert_allclose(pair["smoky"], expected, atol=1e-6)
        np.testing.assert_allclose(dt.scatter(pair["clean"], t, airlight), expected, atol=1e-6)
        assert t.min() >= np.exp(-MODEL_ONLY.beta[1]) - 1e-6 and t.max() <= 1


def test_glare_adds_light_only_where_there_is_smoke():
    settings = dataclasses.replace(MODEL_ONLY, glare_probability=1.0, glare=(0.3, 0.4))
    simulator = dt.SmokeSimulator(settings, "train")
    brightest = 0.0
    for i in range(8):
        pair = simulator.pair(i)
        t = pair["transmission"]
        extra = (pair["smoky"] - dt.scatter(pair["clean"], t, pair["airlight"])).min(axis=0)
        unclipped = pair["smoky"].max(axis=0) < 1
        assert extra[unclipped].min() >= -1e-6  # glare only adds light
        assert extra[t > 0.999].max(initial=0) < 0.003  # none where there is no smoke
        brightest = max(brightest, float(extra.max()))
    assert brightest > 0.05


def test_the_airlight_is_near_white_with_a_tint_off_grey():
    simulator = dt.SmokeSimulator(SMALL, "test")
    airlights = np.stack([simulator.pair(i)["airlight"] for i in range(40)])
    assert airlights.min() >= 0.7 and airlights.max() <= 1.0
    assert (np.ptp(airlights, axis=1) > 0.01).all()  # never grey
    assert np.ptp(airlights, axis=0).max() > 0.05  # tints vary between samples


def test_smoke_ranges_from_nearly_clear_to_dense_and_is_not_uniform():
    simulator = dt.SmokeSimulator(SMALL, "train")
    t = np.stack([simulator.pair(i)["transmission"] for i in range(60)])
    means = t.mean(axis=(1, 2))
    assert means.max() > 0.95 and means.min() < 0.5
    assert np.median(t.std(axis=(1, 2))) > 0.05  # plumes: dense and clear in one frame


def test_sequences_are_temporally_coherent_and_the_camera_moves():
    simulator = dt.SmokeSimulator(dt.SmokeSettings(size=64), "test")
    sequences = [simulator.sequence(i, 12) for i in range(4)]
    for key in ("smoky", "clean", "transmission"):
        steps = np.mean([np.abs(np.diff(s[key], axis=0)).mean() for s in sequences])
        between = np.mean([np.abs(a[key][0] - b[key][0]).mean()
                           for a, b in itertools.combinations(sequences, 2)])
        assert steps < 0.25 * between, key
    for sequence in sequences:
        motion = np.abs(sequence["clean"][-1] - sequence["clean"][0]).mean()
        assert motion > 2 * np.abs(np.diff(sequence["clean"], axis=0)).mean(axis=(1, 2, 3)).min()
        assert np.abs(sequence["transmission"][-1] - sequence["transmission"][0]).mean() > 0.005


def test_bad_settings_and_splits_are_refused():
    with pytest.raises(ValueError, match="size"):
        dt.SmokeSettings(size=8)
    with pytest.raises(ValueError, match="sources"):
        dt.SmokeSettings(sources=("kidney",), source_weights=(1.0,))
    with pytest.raises(ValueError, match="split"):
        dt.SmokeSimulator(SMALL, "holdout")
    too_big = dt.SmokeSettings(size=1024, sources=("immunohistochemistry",),
                               source_weights=(1.0,))
    with pytest.raises(ValueError, match="val region of immunohistochemistry"):
        dt.SmokeSimulator(too_big, "val").pair(0)


def test_the_settings_record_is_json_and_complete():
    record = dt.settings_record(dt.SmokeSettings())
    assert json.loads(json.dumps(record)) == record
    assert record["size"] == 96 and record["beta"] == [0.2, 2.5]
    assert set(record) == {f.name for f in dataclasses.fields(dt.SmokeSettings)}


def test_a_small_build_writes_the_desmokedata_layout(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(dt, "BENCHMARK_COUNTS", {"val": 2, "test": 3})
    monkeypatch.setattr(dt, "VIDEO_SEQUENCES", 2)
    monkeypatch.setattr(dt, "VIDEO_FRAMES", 3)
    dt.build_desmoke_tissue(tmp_path, tqdm)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.json", "test", "test_video",
                                                          "val"]
    pairs = find_pairs(tmp_path / "val")
    assert [(s.name, c.name) for s, c in pairs] == [("0.png", "0_gt.png"), ("1.png", "1_gt.png")]
    smoky, depth = read_frame(pairs[1][0])
    clean, _ = read_frame(pairs[1][1])
    expected = dt.SmokeSimulator(dt.BENCHMARK, "val").pair(1)
    assert depth == 8 and smoky.shape == (256, 256, 3)
    np.testing.assert_allclose(smoky, expected["smoky"].transpose(1, 2, 0), atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(clean, expected["clean"].transpose(1, 2, 0), atol=0.5 / 255 + 1e-6)
    assert len(find_pairs(tmp_path / "test")) == 3
    for n in range(2):
        frames = find_pairs(tmp_path / "test_video" / f"seq{n}")
        assert [s.name for s, _ in frames] == ["0.png", "1.png", "2.png"]
        assert read_frame(frames[0][0])[0].shape == (128, 128, 3)
    record = json.loads((tmp_path / "split.json").read_text())
    assert record["name"] == dt.DESMOKE_TISSUE
    assert record["counts"]["val"] == 2 and record["counts"]["test_video"]["frames"] == 3
    assert record["regions"]["rectangles"]["retina"]["test"] == {"rows": [0, 1411],
                                                                  "cols": [1056, 1411]}
    assert record["seed_streams"]["split_codes"] == {"train": 1, "val": 2, "test": 3}
    assert not list(tmp_path.rglob(".*partial*"))


@pytest.mark.slow
def test_the_full_build_has_its_counts_and_takes_under_a_minute(tmp_path: Path):
    dt.build_desmoke_tissue(tmp_path, tqdm)
    assert len(find_pairs(tmp_path / "val")) == 48
    assert len(find_pairs(tmp_path / "test")) == 96
    for n in range(4):
        assert len(find_pairs(tmp_path / "test_video" / f"seq{n}")) == 16
    assert json.loads((tmp_path / "split.json").read_text())["seconds"] < 60
