"""domainvit.tasks.hsi.analysis on small scenes with known answers: per-class
producer's and user's accuracy, scores and error maps of a window, class spectra, RGB
composites, the scene classifier against the model's own patches, GeoTIFF crops and
class-map checks, areas, and the figures' titles and axis labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from affine import Affine

from domainvit.datasets.raster.crop import crop_raster
from domainvit.tasks.hsi import analysis as rs
from domainvit.tasks.hsi.data import Scene

matplotlib.use("Agg")

CLASSES = ["crop", "water", "road"]
COLOURS = [(200, 200, 40), (30, 90, 200), (170, 170, 170)]
CRS = "EPSG:32616"


def _scene(tmp_path: Path) -> Scene:
    """8 x 8 pixels, 4 bands: left half crop (1), right half water (2), a road (3) in the
    bottom row; rows 0-3 train (1), rows 4-7 test (3); pixel (7, 0) is nodata."""
    labels = np.ones((8, 8), np.int64)
    labels[:, 4:] = 2
    labels[7, :] = 3
    split = np.where(np.arange(8)[:, None] < 4, 1, 3) * np.ones((1, 8), np.int64)
    valid = np.ones((8, 8), bool)
    valid[7, 0] = False
    labels[~valid] = 0
    spectra = {1: [0.05, 0.08, 0.04, 0.40], 2: [0.06, 0.05, 0.03, 0.01],
               3: [0.20, 0.21, 0.22, 0.25]}
    cube = np.zeros((4, 8, 8), np.float32)
    for label, values in spectra.items():
        cube[:, labels == label] = np.asarray(values, np.float32)[:, None]
    cube[:, 0, 0] += 0.02  # one brighter crop pixel: a spread to measure
    return Scene(cube, valid, labels, split.astype(np.uint8),
                 np.array([490.0, 560.0, 665.0, 842.0]), tmp_path / "scene.tif")


def test_accuracy_table_producers_and_users_accuracy():
    cm = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    table = rs.accuracy_table(cm, CLASSES)
    assert list(table.index) == CLASSES
    assert list(table["reference_pixels"]) == [10, 10, 0]
    np.testing.assert_allclose(table["producer_accuracy"].iloc[:2], [0.8, 0.9])
    np.testing.assert_allclose(table["user_accuracy"].iloc[:2], [8 / 9, 9 / 11])
    assert table.loc["road"].iloc[1:].isna().all()


def test_score_window_and_error_map_count_only_test_pixels(tmp_path: Path):
    scene = _scene(tmp_path)
    predicted = scene.labels.copy()
    predicted[5, 1] = 2  # a wrong test pixel (crop called water)
    predicted[1, 1] = 3  # a wrong training pixel: not scored
    scores = rs.score_window(predicted, scene, CLASSES)
    # test rows 4-7: crop 12 + water 12 + road 7 (one nodata) = 31 pixels, one wrong
    assert scores["pixels"] == 31
    assert scores["oa"] == pytest.approx(30 / 31)
    assert scores["per_class"]["crop"] == pytest.approx(11 / 12)
    assert scores["aa"] == pytest.approx((11 / 12 + 1 + 1) / 3)
    np.testing.assert_array_equal(scores["confusion_matrix"],
                                  [[11, 1, 0], [0, 12, 0], [0, 0, 7]])
    summary = rs.summary_table(scores)
    assert summary.loc["test pixels", "value"] == 31

    errors = rs.error_map(predicted, scene)
    assert (errors[:4] == 0).all()  # training rows
    assert errors[5, 1] == 2 and errors[7, 0] == 0 and (errors == 2).sum() == 1
    assert (errors == 1).sum() == 30

    # a window: rows 4-7, columns 4-7 (water and road only), predicted for that window
    window = (4, 8, 4, 8)
    part = rs.score_window(predicted[4:, 4:], scene, CLASSES, window)
    assert part["pixels"] == 16 and part["oa"] == 1.0
    assert np.isnan(part["per_class"]["crop"])
    with pytest.raises(ValueError, match="no test pixels"):
        rs.score_window(predicted[:4, :4], scene, CLASSES, (0, 4, 0, 4))


def test_centre_window_and_ascending_runs():
    assert rs.centre_window(256, 200, 64) == (96, 160, 68, 132)
    assert rs.centre_window(50, 40, 64) == (0, 50, 0, 40)
    assert rs.centre_window(50, 40, None) == (0, 50, 0, 40)
    runs = rs.ascending_runs(np.array([400, 500, 600, 550, 650, 700, 690]))
    assert runs == [slice(0, 3), slice(3, 6), slice(6, 7)]


def test_class_spectra_and_rgb_composite(tmp_path: Path):
    scene = _scene(tmp_path)
    spectra = rs.class_spectra(scene, CLASSES)
    assert list(dict.fromkeys(spectra["class"])) == CLASSES
    crop = spectra[spectra["class"] == "crop"]
    assert crop["pixels"].iloc[0] == 7 * 4  # rows 0-6 of the left half
    np.testing.assert_allclose(crop["wavelength_nm"], scene.wavelengths)
    expected_mean = np.array([0.05, 0.08, 0.04, 0.40]) + 0.02 / 28
    np.testing.assert_allclose(crop["mean"], expected_mean, rtol=1e-5)
    assert (crop["sd"] > 0).all()
    water = spectra[spectra["class"] == "water"]
    np.testing.assert_allclose(water["sd"], 0, atol=1e-7)

    rgb = rs.rgb_composite(scene.cube, scene.wavelengths, scene.valid)
    assert rs.rgb_bands(scene.wavelengths, 4) == [2, 1, 0]  # 665, 560, 490 nm
    assert rs.rgb_bands(None, 5) == [3, 2, 1]
    assert rgb.shape == (8, 8, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_array_equal(rgb[7, 0], 0)  # nodata is black
    assert rgb[7, 3].mean() > rgb[3, 6].mean()  # the road is brighter than the water


def test_classify_scene_matches_the_model_on_each_patch(tmp_path: Path):
    from domainvit.tasks.hsi.model import VPHype, VPHypeConfig

    cfg = VPHypeConfig(in_bands=4, pca_components=3, conv_channels=[4], embed_dim=8, depth=1,
                       num_heads=2, kernel_size=3, d_state=2, expand=1, visual_prompts=2,
                       text_prompts=False)
    torch.manual_seed(0)
    model = VPHype(cfg, num_classes=3, patch_size=5)
    model.set_pca(torch.zeros(4), torch.eye(4)[:3], torch.ones(3))
    model.eval()
    scene = _scene(tmp_path)
    rng = np.random.default_rng(0)
    noisy = scene.cube + rng.normal(0, 0.02, scene.cube.shape).astype(np.float32)
    scene = Scene(noisy * scene.valid, scene.valid, scene.labels, scene.split,
                  scene.wavelengths, scene.path)
    labels, probs = rs.classify_scene(model, scene, 5, window=(2, 8, 1, 6), tile=4)
    assert labels.shape == (6, 5) and probs.shape == (3, 6, 5)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
    padded = torch.nn.functional.pad(torch.from_numpy(scene.cube)[None], (2, 2, 2, 2),
                                     mode="reflect")[0]
    for row, col in [(2, 1), (4, 3), (7, 5), (6, 2)]:
        patch = padded[:, row:row + 5, col:col + 5][None]
        with torch.no_grad():
            expected = torch.softmax(model(patch), 1)[0].numpy()
        np.testing.assert_allclose(probs[:, row - 2, col - 1], expected, atol=1e-5)
    assert (labels > 0).all()  # the window starts at column 1: (7, 0), nodata, is outside
    whole, _ = rs.classify_scene(model, scene, 5)
    assert whole[7, 0] == 0 and (whole[scene.valid] > 0).all()
    np.testing.assert_array_equal(whole[2:8, 1:6][labels > 0], labels[labels > 0])


def _geotiff(path: Path, data: np.ndarray, transform: Affine, crs: str | None = CRS,
             tags: dict | None = None) -> Path:
    profile = {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2],
               "count": data.shape[0], "dtype": data.dtype.name, "transform": transform,
               "nodata": 0}
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**(tags or {}))
        for band in range(1, data.shape[0] + 1):
            dst.update_tags(band, wavelength=str(400 + 100 * band))
            dst.set_band_description(band, f"B{band} {400 + 100 * band} nm")
    return path


def test_crop_raster_keeps_crs_band_metadata_and_moves_the_transform(tmp_path: Path):
    data = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30) + 1
    transform = Affine(10.0, 0, 500_000.0, 0, -10.0, 4_200_000.0)
    source = _geotiff(tmp_path / "scene.tif", data, transform,
                      tags={"reflectance_scale": "10000"})
    crop = crop_raster(source, tmp_path / "out" / "crop.tif", (5, 15, 10, 22))
    with rasterio.open(crop) as src:
        assert src.crs.to_string() == CRS and src.shape == (10, 12) and src.count == 3
        assert src.transform == Affine(10.0, 0, 500_100.0, 0, -10.0, 4_199_950.0)
        np.testing.assert_array_equal(src.read(), data[:, 5:15, 10:22])
        assert src.tags()["reflectance_scale"] == "10000"
        assert src.tags(2)["wavelength"] == "600"
        assert src.descriptions == ("B1 500 nm", "B2 600 nm", "B3 700 nm")
        assert src.nodata == 0
    assert rs.raster_shape(crop) == (10, 12)
    extent, crs = rs.raster_extent_km(crop)
    assert extent == pytest.approx((500.1, 500.22, 4199.85, 4199.95))
    assert crs == CRS


def test_check_class_map_reads_back_crs_and_grid(tmp_path: Path):
    transform = Affine(20.0, 0, 499_000.0, 0, -20.0, 4_479_000.0)
    source = _geotiff(tmp_path / "scene.tif", np.ones((2, 6, 5), np.uint16), transform)
    labels = np.array([[1, 1, 2, 2, 3]] * 6, np.uint8)[None]
    tags = {f"class_{i + 1}": name for i, name in enumerate(CLASSES)}
    good = _geotiff(tmp_path / "good.tif", labels, transform, tags=tags)
    report = rs.check_class_map(good, source)
    assert report["same_crs"] and report["same_grid"]
    assert report["epsg"] == 32616 and report["shape"] == (6, 5) and report["dtype"] == "uint8"
    read, names = rs.read_class_map(good)
    np.testing.assert_array_equal(read, labels[0])
    assert names == CLASSES

    other_crs = _geotiff(tmp_path / "utm17.tif", labels, transform, crs="EPSG:32617")
    with pytest.raises(ValueError, match="does not lie on the grid"):
        rs.check_class_map(other_crs, source)
    shifted = _geotiff(tmp_path / "shifted.tif", labels, transform @ Affine.translation(1, 0))
    with pytest.raises(ValueError, match="does not lie on the grid"):
        rs.check_class_map(shifted, source)
    no_crs = _geotiff(tmp_path / "nocrs.tif", labels, transform, crs=None)
    with pytest.raises(ValueError, match="has no CRS"):
        rs.check_class_map(no_crs, source)

    assert rs.pixel_area_m2(good) == pytest.approx(400.0)
    areas = rs.class_areas(np.array([[0, 1, 1], [2, 2, 2]]), CLASSES, 400.0)
    assert list(areas["pixels"]) == [2, 3, 0]
    np.testing.assert_allclose(areas["area_ha"], [0.08, 0.12, 0.0])
    np.testing.assert_allclose(areas["share"], [0.4, 0.6, 0.0])


def test_raster_spectra_samples_valid_pixels(tmp_path: Path):
    data = np.full((3, 10, 10), 1000, np.uint16)
    data[:, :5] = 3000
    data[:, 0, :] = 0  # a nodata row
    path = _geotiff(tmp_path / "r.tif", data, Affine(10, 0, 0, 0, -10, 100),
                    tags={"reflectance_scale": "10000", "wavelength_units": "nm"})
    whole = rs.raster_spectra(path)
    assert whole["pixels"].iloc[0] == 90
    np.testing.assert_allclose(whole["mean"], (40 * 0.3 + 50 * 0.1) / 90, rtol=1e-5)
    np.testing.assert_allclose(whole["wavelength_nm"], [500, 600, 700])
    sample = rs.raster_spectra(path, samples=20, seed=1)
    assert sample["pixels"].iloc[0] == 20
    assert ((sample["p10"] >= 0.1 - 1e-6) & (sample["p90"] <= 0.3 + 1e-6)).all()


def test_remote_sensing_figures_are_labelled(tmp_path: Path):
    import matplotlib.pyplot as plt

    scene = _scene(tmp_path)
    rgb = rs.rgb_composite(scene.cube, scene.wavelengths, scene.valid)
    errors = rs.error_map(scene.labels, scene)
    sweep = pd.DataFrame({"fraction": [0.01, 0.05], "train_pixels": [20, 100],
                          "oa": [0.6, 0.8], "aa": [0.55, 0.75], "kappa": [0.5, 0.7]})
    spectra = rs.class_spectra(scene, CLASSES)
    target = spectra[spectra["class"] == "road"].drop(columns="class")
    figures = [
        rs.plot_maps(rgb, scene.labels, scene.labels, CLASSES, COLOURS,
                     (499.0, 499.16, 4478.84, 4479.0), CRS),
        rs.plot_error_map(rgb, errors),
        rs.plot_class_accuracy(rs.accuracy_table(np.eye(3) * 5, CLASSES), COLOURS),
        rs.plot_class_spectra(spectra, COLOURS),
        rs.plot_fraction_sweep(sweep, {"reference": 0.9}),
        rs.plot_raster_classes(rgb, scene.labels, CLASSES, COLOURS, None, "",
                               "a raster"),
        rs.plot_domain_gap(spectra, target, COLOURS),
    ]
    for fig in figures:
        panels = [ax for ax in fig.axes if ax.has_data()]
        assert panels
        for ax in panels:
            assert ax.get_title()
            assert ax.get_ylabel() or any(o.get_ylabel() for o in
                                          ax.get_shared_y_axes().get_siblings(ax))
            assert ax.get_xlabel() or any(o.get_xlabel() for o in
                                          ax.get_shared_x_axes().get_siblings(ax))
        assert fig.legends or any(ax.get_legend() for ax in fig.axes)
        plt.close(fig)
    assert "easting (km, EPSG:32616)" in figures[0].axes[0].get_xlabel()
