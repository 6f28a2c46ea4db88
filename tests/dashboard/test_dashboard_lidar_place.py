"""The lidar_place page: a held-out query of the sample benchmark retrieves its place (the
matches ``domainvit predict`` writes), shown as a table, a 3D view of the cloud and a
map of the database; an atypical cloud is warned about, a cloud in degrees refused until
"Predict anyway" is ticked; bad uploads and bad database folders give one message.

The model is the bundled quickstart checkpoint when it is there; without it, a
checkpoint trained here for one short epoch (:func:`add_lidar_model`, about 20 s on a
laptop CPU), whose retrieval is weak but well above chance on the easy query used here.
"""

from __future__ import annotations

import base64
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from domainvit import checkpoint as ckpt
from domainvit.config import validate_config
from domainvit.dashboard.launch import MODELS_ENV
from domainvit.dashboard.task_pages.lidar_place import (
    MAX_SHOWN_POINTS,
    SAMPLE_DATASET,
    SAMPLE_QUERIES,
    thinned,
)
from domainvit.datasets.pointcloud import read_place_folder
from domainvit.datasets.registry import prepare
from domainvit.distribution import InputGuard
from domainvit.engine import build_model, inference_config, load_inference_weights
from domainvit.registry import get_task
from domainvit.tasks.lidar_place.predict import CACHE_NAME, predict_clouds
from tests.dashboard.conftest import ROOT, errors, open_task_page, upload

KEY = "lidar_place-upload"
BUNDLED = ROOT / "tasks" / "lidar_place" / "weights" / "quickstart.safetensors"
BUNDLED_MODEL = "quickstart (hotformerloc, bundled)"
TINY_MODEL = "lidar-tiny/checkpoints/best (hotformerloc, models folder)"
#: the easy held-out query (its nearest database clouds are within a few metres)
EASY_QUERY = SAMPLE_QUERIES[0]
EASY_LABEL = f"held-out query {EASY_QUERY} ({SAMPLE_DATASET} test area)"


def add_lidar_model(folder: Path) -> tuple[str, Path]:
    """The label and file of the lidar_place model the tests use: the bundled quickstart
    checkpoint when it is there, else one trained into ``folder`` (a models folder) for
    one epoch of 16 places."""
    if BUNDLED.is_file():
        return BUNDLED_MODEL, BUNDLED
    from domainvit.engine import train

    run = train("lidar_place/quickstart", ["train.epochs=1", "data.samples_per_epoch=16",
                                           f"run_dir={folder / 'lidar-tiny'}"])
    return TINY_MODEL, run / "checkpoints" / "best.safetensors"


@pytest.fixture(scope="module")
def lidar_model(tmp_path_factory) -> tuple[Path, str, Path]:
    """(models folder, the model's label, its checkpoint)."""
    folder = tmp_path_factory.mktemp("lidar-models")
    return folder, *add_lidar_model(folder)


@pytest.fixture(scope="module")
def test_area() -> Path:
    return prepare(SAMPLE_DATASET) / "test"


@pytest.fixture
def page(lidar_model, monkeypatch) -> AppTest:
    folder, label, _ = lidar_model
    monkeypatch.setenv(MODELS_ENV, str(folder))
    return open_task_page("lidar_place", label)


def _charts(at: AppTest) -> list[list[dict]]:
    """The traces of the page's plotly charts, in page order."""
    return [json.loads(chart.proto.spec)["data"] for chart in at.get("plotly_chart")]


def _values(values) -> np.ndarray:
    """A trace's array: a JSON list, or plotly's typed array (``dtype``, base64 ``bdata``)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def _predicted_matches(lidar_model, query: Path, tmp_path) -> list[dict]:
    """The matches.csv ``domainvit predict`` writes for ``query``."""
    path = lidar_model[2]
    meta = ckpt.load_checkpoint(path)[1]
    cfg = inference_config(validate_config(meta["config"], "test"), meta)
    model = build_model(get_task("lidar_place"), cfg)
    load_inference_weights(model, cfg, path)
    guard = InputGuard.from_meta(meta, report=lambda line: None)
    with torch.no_grad():
        written = predict_clouds(model.eval(), cfg.data, [query], tmp_path, guard)
    table = next(p for p in written if p.name.endswith(".matches.csv"))
    with open(table) as handle:
        return list(csv.DictReader(handle))


def test_a_sample_query_retrieves_its_place_as_domainvit_predict_does(
        page, lidar_model, test_area, tmp_path):
    at = page
    at.radio(key="lidar_place-input").set_value(EASY_LABEL).run()
    assert not at.exception and not errors(at)
    assert not at.warning, [w.value for w in at.warning]  # a held-out query is typical

    table = at.dataframe[0].value
    assert list(table.columns) == ["rank", "file", "descriptor distance", "geometric score",
                                   "yaw (deg)", "metres"]
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert table["metres"].iloc[0] <= 25.0, table  # the best match is the same place
    expected = _predicted_matches(lidar_model, test_area / "queries" / EASY_QUERY, tmp_path)
    assert list(table["file"]) == [row["file"] for row in expected[:5]]
    np.testing.assert_allclose(table["descriptor distance"],
                               [float(row["descriptor_distance"]) for row in expected[:5]],
                               atol=1e-3)
    np.testing.assert_allclose(table["metres"], [float(row["metres"]) for row in expected[:5]],
                               atol=0.1)
    np.testing.assert_allclose(table["geometric score"],
                               [float(row["geometric_score"]) for row in expected[:5]],
                               atol=1e-3)

    cloud, places = _charts(at)
    assert [trace["type"] for trace in cloud] == ["scatter3d"]
    points = (test_area / "queries" / EASY_QUERY).stat().st_size // 16
    assert len(_values(cloud[0]["x"])) == points and "colorscale" in cloud[0]["marker"]
    assert [trace["name"] for trace in places] == ["database", "query", "top 5"]
    database = read_place_folder(test_area).database
    assert len(_values(places[0]["x"])) == len(database)
    assert places[2]["text"] == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(_values(places[2]["x"]), [float(row["x"]) for row in expected[:5]],
                               atol=1e-3)
    query = next(e for e in read_place_folder(test_area).queries if e.path.name == EASY_QUERY)
    np.testing.assert_allclose([_values(places[1]["x"])[0], _values(places[1]["y"])[0]],
                               query.position[:2])
    assert any("within 25 m counts as the same place" in c.value for c in at.caption)


def test_an_uploaded_database_cloud_finds_itself_without_metres(page, test_area, tmp_path):
    path = tmp_path / "my scan.bin"  # saved under a safe name; read as KITTI records
    shutil.copyfile(test_area / "database" / "000012.bin", path)
    at = upload(page, KEY, path)
    assert not at.exception and not errors(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["rank", "file", "descriptor distance", "geometric score",
                                   "yaw (deg)"]
    assert table["file"].iloc[0] == "database/000012.bin"
    assert any("query's pose is not known" in c.value for c in at.caption)
    # the map is drawn without the query's pose
    assert [trace["name"] for trace in _charts(at)[1]] == ["database", "top 5"]


def test_an_atypical_cloud_is_warned_about_and_still_matched(page, tmp_path):
    """A cloud covering 3 m around its centre (the training submaps reach 20 m)."""
    rng = np.random.default_rng(0)
    radius, angle = 3.0 * np.sqrt(rng.random(4000)), rng.uniform(0, 2 * np.pi, 4000)
    cloud = np.stack([radius * np.cos(angle), radius * np.sin(angle),
                      rng.uniform(0, 8, 4000), rng.random(4000)], axis=1)
    path = tmp_path / "small.npy"
    np.save(path, cloud)
    at = upload(page, KEY, path)
    assert not at.exception and not errors(at)
    warned = [w.value for w in at.warning]
    assert any(w.startswith("Unlike the training data: the cloud reaches 2.92 m from its "
                            "centre; the training submaps reach") for w in warned), warned
    assert len(at.dataframe[0].value) == 5


def test_a_cloud_in_degrees_is_refused_until_predicted_anyway(page, tmp_path):
    rng = np.random.default_rng(1)
    lon_lat = np.array([-123.07, 44.06]) + rng.uniform(-2e-4, 2e-4, (3000, 2))
    path = tmp_path / "degrees.xyz"
    np.savetxt(path, np.column_stack([lon_lat, rng.uniform(120, 140, 3000)]))
    at = upload(page, KEY, path)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and "degrees.xyz: the points lie within" in shown[0], shown
    assert "latitude/longitude degrees" in shown[0] and "Traceback" not in shown[0]
    assert not at.dataframe and not at.get("plotly_chart")
    at.checkbox(key="lidar_place-force").check().run()
    assert not at.exception and not errors(at)
    assert any(w.value.startswith("Predicted anyway, although the model refuses this input")
               for w in at.warning)
    assert len(at.dataframe[0].value) == 5


def _bad_upload(case: str, folder: Path) -> tuple[Path, str]:
    if case == "empty file":
        path = folder / "empty.las"
        path.write_bytes(b"")
        return path, "empty.las is empty"
    if case == "no points":
        path = folder / "nothing.xyz"
        path.write_text("# x y z\n")
        return path, "nothing.xyz holds no points"
    if case == "NaN":
        cloud = np.random.default_rng(2).uniform(-10, 10, (500, 3))
        cloud[7, 1] = np.nan
        path = folder / "holes.npy"
        np.save(path, cloud)
        return path, "holes.npy has NaN or infinite coordinates in 1 of 500 points"
    if case == "bin size":
        path = folder / "scan.bin"
        path.write_bytes(np.zeros(100, "<f4").tobytes()[:-2])
        return path, "scan.bin has 398 bytes, not a whole number of 16-byte kitti"
    path = folder / "big.npy"
    np.save(path, np.zeros((200, 3)))
    return path, "larger than the 1000 bytes upload limit"


@pytest.mark.parametrize("case", ["empty file", "no points", "NaN", "bin size", "too large"])
def test_a_bad_upload_gives_one_message(page, tmp_path, monkeypatch, case):
    from domainvit.dashboard import uploads

    if case == "too large":
        monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    path, message = _bad_upload(case, tmp_path)
    at = upload(page, KEY, path)
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and message in shown[0], shown
    assert "Traceback" not in shown[0]
    assert not at.dataframe and not at.get("plotly_chart")


def test_another_database_folder_is_checked_and_used(page, test_area, tmp_path):
    at = page
    at.radio(key="lidar_place-input").set_value(EASY_LABEL).run()
    field = at.text_input(key="lidar_place-database")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    for typed, message in (("relative/folder", "give the folder's absolute path"),
                           (str(tmp_path / "missing"), "does not exist on the server"),
                           (str(a_file), "is not a folder"),
                           (str(tmp_path), "holds no point-cloud files")):
        field.set_value(typed).run()
        assert not at.exception
        shown = errors(at)
        assert len(shown) == 1 and message in shown[0], (typed, shown)
        assert len(_charts(at)) == 1 and not at.dataframe  # the cloud, no matches

    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("000003.bin", "000017.bin", "000030.bin", "000038.bin"):
        shutil.copyfile(test_area / "database" / name, plain / name)
    field.set_value(str(plain)).run()
    assert not at.exception and not errors(at)
    table = at.dataframe[0].value
    assert sorted(table["file"]) == ["000003.bin", "000017.bin", "000030.bin", "000038.bin"]
    assert "metres" not in table.columns  # a plain folder records no positions
    assert any("records no positions" in i.value for i in at.info)
    assert (plain / CACHE_NAME).is_file()  # described once, kept beside the database


def test_the_3d_view_draws_at_most_its_point_budget():
    xyz = np.random.default_rng(3).normal(size=(MAX_SHOWN_POINTS + 5000, 3))
    shown = thinned(xyz)
    assert shown.shape == (MAX_SHOWN_POINTS, 3)
    assert np.array_equal(shown, thinned(xyz))  # the same subset every time
    rows = {tuple(r) for r in xyz}
    assert all(tuple(r) in rows for r in shown[:100])
    small = xyz[:10]
    assert thinned(small) is small
