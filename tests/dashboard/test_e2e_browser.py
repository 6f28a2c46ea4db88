"""The dashboard in a real browser: ``domainvit dashboard`` started headless on a free
port, driven by Debian's Chromium through Playwright. On each task page a sample file is
uploaded, the result is waited for, screenshotted (into the test's output folder) and
checked on the page: the label overlay and its legend (medseg), the probability chart and
the saliency map (medcls), the class map, its legend and the spectrum (hsi), the 3D view
of a query cloud, its matches and the map of the database (lidar_place, with a held-out
query of the sample benchmark), the field's amplitude and phase beside back-propagation's
and the focus curve (holography, with a sample hologram), the frame before and after
desmoking and the smoke density maps (desmoke, with a sample frame).

``DOMAINVIT_SCREENSHOTS=DIR`` also saves one PNG per page into ``DIR`` (home.png,
medseg.png, medcls.png, hsi.png, lidar_place.png, holography.png, desmoke.png); the
README's screenshots are made this way::

    DOMAINVIT_SCREENSHOTS=docs/screenshots pytest tests/dashboard/test_e2e_browser.py

The medseg and medcls pages use the test checkpoints of ``conftest.py`` (no sample
dataset is built); the hsi page uses the bundled quickstart checkpoint; the lidar_place
page the bundled quickstart checkpoint when it is there, else one trained for the test
(``test_dashboard_lidar_place.add_lidar_model``); the holography page an untrained tiny
model (``test_dashboard_holography.add_holography_model``); the desmoke page an untrained
tiny RGA-Net whose head makes a contrast stretch
(``test_dashboard_desmoke.add_desmoke_model``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from domainvit.dashboard import testing as live
from domainvit.datasets.brain import CLASS_NAMES
from domainvit.datasets.hsi_scenes.conventions import SCENE_FILE
from domainvit.registry import get_task
from domainvit.tasks.holography.data import HolographyData
from tests.dashboard.conftest import MEDCLS_MODEL, MEDSEG_MODEL, ROOT, add_medical_models
from tests.dashboard.test_dashboard_desmoke import add_desmoke_model
from tests.dashboard.test_dashboard_desmoke import sample_labels as desmoke_samples
from tests.dashboard.test_dashboard_holography import add_holography_model
from tests.dashboard.test_dashboard_lidar_place import EASY_LABEL, add_lidar_model

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # reported by the ``browser`` fixture as a failure, not a skip
    sync_playwright = None

# a real browser against a live server (make test-fast leaves it out)
pytestmark = pytest.mark.slow

SCREENSHOTS_ENV = "DOMAINVIT_SCREENSHOTS"
HSI_MODEL = "quickstart (vphype, bundled)"
#: a page screenshot at least this varied is not blank
MIN_GREY_STD = 10.0
MIN_COLOURS = 64


@pytest.fixture(scope="module")
def e2e_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("e2e-models")
    add_medical_models(folder, tmp_path_factory.mktemp("e2e-classes"))
    return folder


@pytest.fixture(scope="module")
def lidar_model(e2e_models) -> str:
    """The label of the lidar_place model, put into the models folder before the server
    starts (so its first listing has it)."""
    return add_lidar_model(e2e_models)[0]


@pytest.fixture(scope="module")
def holography_model(e2e_models) -> str:
    """The label of the holography model (in the models folder before the server starts)."""
    return add_holography_model(e2e_models)


@pytest.fixture(scope="module")
def desmoke_model(e2e_models) -> str:
    """The label of the desmoke model (in the models folder before the server starts)."""
    return add_desmoke_model(e2e_models)


@pytest.fixture(scope="module")
def server(e2e_models, lidar_model, holography_model, desmoke_model,
           tmp_path_factory) -> Iterator[live.Server]:
    log = tmp_path_factory.mktemp("e2e-server") / "server.log"
    with live.running_dashboard(log, models=e2e_models) as running:
        yield running
        assert running.process.poll() is None, (
            f"the server stopped during the tests:\n{running.log_tail()}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if sync_playwright is None:
        pytest.fail("the browser tests need Playwright: pip install -e '.[test]' (the "
                    "browser itself is Debian's chromium, installed by scripts/setup.sh)")
    with sync_playwright() as playwright:
        try:
            chromium = live.launch_chromium(playwright)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server, tmp_path) -> Iterator[object]:
    """A fresh browser session; its last state is kept as ``page-at-end.png`` in the
    test's output folder (what a failed test saw), next to the server's log."""
    context = browser.new_context(viewport=live.VIEWPORT)
    tab = context.new_page()
    try:
        yield tab
    finally:
        try:
            tab.screenshot(path=str(tmp_path / "page-at-end.png"), timeout=10_000)
        except Exception:  # the picture is a diagnostic; the test's own outcome stands
            pass
        context.close()


@pytest.fixture
def screenshot(tmp_path) -> Callable[[object, str], dict[str, float]]:
    """``screenshot(page, name)``: the page, 1280 pixels wide and as tall as its content
    (at most 1600), as ``name.png`` in the test's output folder (and in
    ``$DOMAINVIT_SCREENSHOTS``); asserts that it is not blank."""
    extra = os.environ.get(SCREENSHOTS_ENV)

    def take(tab, name: str) -> dict[str, float]:
        live.fit_to_content(tab)
        live.settle(tab)
        data = tab.screenshot()
        live.save_png(data, tmp_path / f"{name}.png", max_bytes=1 << 30)
        if extra:
            live.save_png(data, Path(extra) / f"{name}.png")
        stats = live.picture_stats(data)
        assert stats["grey_std"] > MIN_GREY_STD and stats["colours"] > MIN_COLOURS, (
            f"the screenshot of the {name} page looks blank: {stats} ({tmp_path / name}.png)")
        return stats

    return take


def _bundled_hsi_classes() -> list[str]:
    sidecar = json.loads((ROOT / "tasks/hsi/weights/quickstart.json").read_text())
    return [entry["name"] for entry in sidecar["config"]["data"]["classes"]]


def _element_picture(locator) -> dict[str, float]:
    return live.picture_stats(locator.screenshot())


# --- sample files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def brain_png(tmp_path_factory) -> Path:
    return live.write_brain_png(tmp_path_factory.mktemp("e2e-images") / "colin27-axial.png")


# --- pages ---------------------------------------------------------------------------------


def test_home_page_lists_every_task(page, server, screenshot):
    live.open_page(page, server.url)
    for task in ("medseg", "medcls", "hsi", "lidar_place", "holography", "desmoke"):
        assert page.get_by_role("button", name=f"Open the {task} page").is_visible()
        assert page.get_by_test_id("stSidebarNav").get_by_text(task, exact=True).count() == 1
    assert not live.page_errors(page)
    screenshot(page, "home")


def test_medseg_page_shows_the_label_overlay_with_its_legend(page, server, screenshot,
                                                             brain_nifti):
    live.open_page(page, server.url, "medseg")
    live.pick_model(page, MEDSEG_MODEL)
    live.upload(page, brain_nifti)
    overlay = page.get_by_test_id("stImageContainer").filter(has_text="Labels over the scan")
    live.wait_result(page, overlay)

    picture = overlay.locator("img")
    # the image element is drawn before its data arrives: wait until it has a size
    picture.wait_for(state="visible", timeout=30_000)
    assert picture.is_visible()
    assert picture.evaluate("img => img.naturalWidth") > 100
    stats = _element_picture(picture)
    # the scan is grey; the coloured pixels are the labels drawn over it
    assert stats["coloured"] > 0.05, f"no label colours in the overlay image: {stats}"
    legend = page.locator(".domainvit-legend")
    assert legend.is_visible()
    for name in CLASS_NAMES[1:]:
        assert legend.get_by_text(name, exact=True).count() == 1, f"{name} not in the legend"
    assert page.get_by_role("button", name="Download the label map (NIfTI)").is_visible()
    screenshot(page, "medseg")


def test_medcls_page_shows_probabilities_and_saliency(page, server, screenshot, brain_png):
    live.open_page(page, server.url, "medcls")
    live.pick_model(page, MEDCLS_MODEL)
    live.upload(page, brain_png)
    saliency = page.get_by_test_id("stImageContainer").filter(has_text="occlusion saliency for")
    live.wait_result(page, saliency)

    metric = page.get_by_test_id("stMetric")
    assert "Top class" in metric.inner_text()
    top = metric.get_by_test_id("stMetricValue").inner_text().strip()
    assert top in CLASS_NAMES[1:]
    assert saliency.get_by_text(f"occlusion saliency for {top}").is_visible()
    chart = page.get_by_test_id("stVegaLiteChart")
    chart.locator("canvas, svg").first.wait_for()
    assert chart.is_visible()
    stats = _element_picture(saliency.locator("img"))
    assert stats["coloured"] > 0.01, f"no saliency colour over the image: {stats}"
    screenshot(page, "medcls")


def test_hsi_page_shows_the_class_map_legend_and_spectrum(page, server, screenshot,
                                                          hsi_scene_dir):
    live.open_page(page, server.url, "hsi")
    live.pick_model(page, HSI_MODEL)
    live.upload(page, hsi_scene_dir / SCENE_FILE)
    class_map = page.get_by_test_id("stImageContainer").filter(has_text="Class map")
    live.wait_result(page, class_map)

    stats = _element_picture(class_map.locator("img"))
    assert stats["coloured"] > 0.5 and stats["colours"] > 5, f"not a class map: {stats}"
    legend = page.locator(".domainvit-legend")
    for name in _bundled_hsi_classes():
        assert legend.get_by_text(name, exact=True).count() == 1, f"{name} not in the legend"
    assert page.get_by_test_id("stImageContainer").filter(has_text="RGB preview").is_visible()
    page.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first.wait_for()
    assert page.get_by_text("Spectrum of a pixel").is_visible()
    assert page.get_by_role("button", name="Download the class map (GeoTIFF)").is_visible()
    screenshot(page, "hsi")


def test_lidar_place_page_shows_the_cloud_its_matches_and_the_map(page, server, screenshot,
                                                                 lidar_model):
    live.open_page(page, server.url, "lidar_place")
    live.pick_model(page, lidar_model)
    page.get_by_test_id("stRadio").get_by_text(EASY_LABEL, exact=True).click()
    charts = page.get_by_test_id("stPlotlyChart")
    live.wait_result(page, charts.nth(1))

    assert charts.count() == 2
    # plotly draws the 3D view with WebGL on a canvas and the map as SVG
    cloud, places = charts.nth(0), charts.nth(1)
    cloud.locator(".js-plotly-plot canvas").first.wait_for(timeout=30_000)
    assert "WebGL is not supported" not in cloud.inner_text()
    markers = places.locator(".scatterlayer .trace").nth(0).locator("path.point")
    markers.first.wait_for(timeout=30_000)
    assert markers.count() > 20  # every database cloud at its position
    for rank in range(1, 6):
        assert places.locator(".scatterlayer .textpoint text").filter(
            has_text=str(rank)).count() >= 1, f"rank {rank} not on the map"
    assert page.get_by_text("The 5 best matches in the database").is_visible()
    table = page.get_by_test_id("stDataFrame")
    assert table.is_visible() and table.bounding_box()["height"] > 100
    stats = _element_picture(cloud)
    assert stats["coloured"] > 0.01, f"no height colours in the 3D view: {stats}"
    screenshot(page, "lidar_place")


def test_holography_page_shows_the_field_beside_back_propagation_and_the_focus_curve(
        page, server, screenshot, holography_model, tmp_path):
    hologram = get_task("holography").sample_inputs(HolographyData(), tmp_path / "holo")[1]
    upload = tmp_path / hologram.name  # without its sidecar: the page focuses automatically
    upload.write_bytes(hologram.read_bytes())
    live.open_page(page, server.url, "holography")
    live.pick_model(page, holography_model)
    live.upload(page, upload)
    charts = page.get_by_test_id("stPlotlyChart")
    live.wait_result(page, charts.nth(1))

    assert charts.count() == 2
    fields, focus = charts.nth(0), charts.nth(1)
    # plotly draws each heatmap as an image in its SVG: four, amplitude and phase of both
    heatmaps = fields.locator(".heatmaplayer image")
    heatmaps.first.wait_for(timeout=30_000)
    assert heatmaps.count() == 4
    for title in ("holopaswin: amplitude", "holopaswin: phase",
                  "back-propagation: amplitude", "back-propagation: phase"):
        assert fields.get_by_text(title, exact=True).count() == 1, f"{title} not shown"
    stats = _element_picture(fields)
    assert stats["coloured"] > 0.01, f"no phase colours in the fields: {stats}"
    focus.locator(".scatterlayer path.js-line").first.wait_for(timeout=30_000)
    assert focus.get_by_text("chosen", exact=False).count() == 1
    metric = page.get_by_test_id("stMetric").first
    assert "Distance z" in metric.inner_text() and "by autofocus" in metric.inner_text()
    assert page.get_by_role("button", name="Download the complex field (.npy)").is_visible()
    screenshot(page, "holography")


def test_desmoke_page_shows_the_frame_before_and_after_and_the_smoke_density(
        page, server, screenshot, desmoke_model):
    live.open_page(page, server.url, "desmoke")
    live.pick_model(page, desmoke_model)
    page.get_by_test_id("stRadio").get_by_text(desmoke_samples()[0], exact=True).click()
    images = page.get_by_test_id("stImageContainer")
    after = images.filter(has_text="After: the frame desmoked")
    live.wait_result(page, after)

    before = images.filter(has_text="Before: the frame")
    pictures = {}
    for name, container in (("before", before), ("after", after)):
        picture = container.locator("img")
        # the image element is drawn before its data arrives: wait until it has a size
        picture.wait_for(state="visible", timeout=30_000)
        assert picture.evaluate("img => img.naturalWidth") == 512, name
        pictures[name] = _element_picture(picture)
    # the model's contrast stretch shows
    assert pictures["after"]["grey_std"] > pictures["before"]["grey_std"] + 1, pictures
    metrics = page.get_by_test_id("stMetric")
    assert "Smoke density before" in metrics.nth(0).inner_text()
    assert "Smoke density after" in metrics.nth(1).inner_text()
    assert page.get_by_test_id("stSlider").filter(has_text="Before | after").is_visible()
    assert page.get_by_role("button", name="Download the desmoked frame (PNG, 8 bit)").is_visible()
    assert page.get_by_role("button", name="Download the prediction record (JSON)").is_visible()
    screenshot(page, "desmoke")

    page.get_by_text("Show the smoke density", exact=True).click()
    density = images.filter(has_text="Smoke density of the frame after")
    live.wait_result(page, density)
    picture = density.locator("img")
    picture.wait_for(state="visible", timeout=30_000)
    stats = _element_picture(picture)
    assert stats["coloured"] > 0.2 and stats["colours"] > 16, f"not a heat map: {stats}"
