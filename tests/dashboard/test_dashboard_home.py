"""The home page: tasks with their pages, models and checkpoint cards; page registration
from the task registry alone; checkpoints from ``$DOMAINVIT_MODELS``."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from domainvit.dashboard.launch import MODELS_ENV, app_path
from domainvit.registry import _REGISTRY, register_task
from domainvit.task import Task
from domainvit.tasks.smoke import SmokeTask
from tests.dashboard.conftest import FIRST_RUN_TIMEOUT, MEDSEG_MODEL


def _home(monkeypatch, models: str = "") -> AppTest:
    monkeypatch.setenv(MODELS_ENV, models)
    at = AppTest.from_file(str(app_path()), default_timeout=60).run(timeout=FIRST_RUN_TIMEOUT)
    assert not at.exception, at.exception
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def test_home_lists_tasks_their_pages_models_and_bundled_checkpoint_cards(monkeypatch):
    at = _home(monkeypatch)
    headers = [h.value for h in at.header]
    for task in ("medseg", "medcls", "hsi"):
        assert task in headers
        assert at.button(key=f"open-{task}").label == f"Open the {task} page"
    assert "`transdae`" in _markdown(at) and "`medvitv2`" in _markdown(at)
    # a card per bundled checkpoint, with the metrics of its sidecar
    assert "quickstart3d (transdae)" in [s.value for s in at.subheader]
    sidecar = json.loads(app_path().parents[1].joinpath(
        "tasks/medcls/weights/quickstart.json").read_text())
    accuracy = f"{sidecar['metrics']['val/accuracy']:.4g}"
    tables = [t.value for t in at.table]
    assert any("val/accuracy" in t.index and accuracy in t["value"].tolist() for t in tables)
    assert not at.error


def test_checkpoints_from_the_models_folder_are_listed_and_bad_ones_explained(
        monkeypatch, tmp_path, models_dir):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "broken.safetensors").write_bytes(b"not a checkpoint")
    at = _home(monkeypatch, f"{models_dir}:{extra}")
    assert "medseg-quickstart3d (transdae)" in [s.value for s in at.subheader]
    assert any("broken.safetensors" in w.value and "no sidecar" in w.value for w in at.warning)
    at.button(key="open-medseg").click().run()
    assert MEDSEG_MODEL in at.selectbox(key="medseg-model").options


def render_probe_page(task: Task) -> None:
    st.title(f"probe page of {task.name}")


class ProbeTask(SmokeTask):
    name = "dashboard_probe"
    description = "a task registered by the test"


@pytest.fixture
def probe_task(monkeypatch):
    """A registered task with a page module ``domainvit.dashboard.task_pages.dashboard_probe``
    (put into ``sys.modules``: the source tree is left alone)."""
    name = f"domainvit.dashboard.task_pages.{ProbeTask.name}"
    page = types.ModuleType(name)
    page.__spec__ = importlib.machinery.ModuleSpec(name, None)
    page.render = render_probe_page
    monkeypatch.setitem(sys.modules, name, page)
    register_task(ProbeTask)
    yield
    del _REGISTRY.tasks[ProbeTask.name]


def test_a_registered_task_gets_its_page_without_changing_the_app(monkeypatch, probe_task):
    at = _home(monkeypatch)
    assert "dashboard_probe" in [h.value for h in at.header]
    at.button(key="open-dashboard_probe").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["probe page of dashboard_probe"]


def test_a_task_without_checkpoints_says_how_to_get_one(monkeypatch, tmp_path):
    from domainvit.dashboard import checkpoints

    monkeypatch.setattr(checkpoints, "_bundled_files", lambda task: [])
    at = _home(monkeypatch, str(tmp_path))
    at.button(key="open-hsi").click().run()
    assert not at.exception and not at.error
    note = at.info[0].value
    assert "No checkpoint for the hsi task" in note and MODELS_ENV in note
    assert not at.get("file_uploader")


def test_streamlit_runs_the_app_script_not_a_folder_of_page_scripts(monkeypatch):
    # a folder named pages/ beside the script would make Streamlit run its modules as
    # page scripts until st.navigation is first called (a fresh server's first visit)
    from streamlit.runtime.pages_manager import PagesManager

    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)
    PagesManager(str(app_path()))
    assert PagesManager.uses_pages_directory is False
