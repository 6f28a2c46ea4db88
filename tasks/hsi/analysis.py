"""Remote-sensing analysis of the hyperspectral models (the notebook
``notebooks/remote_sensing_analysis.ipynb``): the benchmark scene and a real Sentinel-2
scene.

Benchmark (task ``hsi``, the ``hsi-parcels`` scene with its spatially disjoint split):
:func:`classify_scene` classifies every pixel of the scene (or of a window of it) the way
``domainvit predict`` classifies raster tiles
(:func:`~domainvit.tasks.hsi.predict.classify_tile`: PCA of the tile once, then the
patch around every pixel); :func:`score_window` gives OA, AA, kappa, per-class accuracy
and the confusion matrix of the test pixels (:func:`~domainvit.tasks.hsi.metrics.
score_labels`), :func:`accuracy_table` the per-class producer's and user's accuracy,
:func:`error_map` where the test pixels were right or wrong, :func:`class_spectra` the
mean reflectance of every class with its spread, and :func:`train_fraction_sweep` the
test accuracy of small models trained on different fractions of the training labels.

Sentinel-2 (the real ``sentinel2`` scene, no labels): ``datasets.raster.crop.crop_raster`` cuts a
GeoTIFF window (keeping CRS, transform and band metadata), :func:`classify_file` writes
its class map with :func:`~domainvit.tasks.hsi.predict.classify_raster`, and
:func:`check_class_map` reopens the map and compares its CRS and grid with the input's.

Every ``plot_*`` function draws such data into a matplotlib figure and returns it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from domainvit.analysis.common import legend_patches
from domainvit.tasks.hsi.preview import RGB_NM, read_rgb, rgb_bands, stretch_rgb

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from domainvit.config import RunConfigBase
    from domainvit.tasks.hsi.data import HSIData, Scene

#: strong water-vapour absorptions (nm): the noisiest bands of airborne reflectance
WATER_VAPOUR_NM = ((1340.0, 1460.0), (1790.0, 1960.0))

#: a window of a raster, in pixels: ``(row0, row1, col0, col1)`` (end exclusive)
Window = tuple[int, int, int, int]

# --- the benchmark scene -----------------------------------------------------------------


def load_benchmark(cfg: RunConfigBase) -> Scene:
    """The scene of the config's data (the sample dataset is built on first use)."""
    from domainvit.tasks.hsi.data import load_scene

    return load_scene(cfg.data)


def centre_window(height: int, width: int, size: int | None) -> Window:
    """The central ``size x size`` window of a ``height x width`` raster (the whole raster
    when ``size`` is None or not smaller)."""
    if size is None:
        return (0, height, 0, width)
    rows, cols = min(size, height), min(size, width)
    row0, col0 = (height - rows) // 2, (width - cols) // 2
    return (row0, row0 + rows, col0, col0 + cols)


def _window_slices(window: Window) -> tuple[slice, slice]:
    return slice(window[0], window[1]), slice(window[2], window[3])


def classify_scene(model: nn.Module, scene: Scene, patch_size: int,
                   window: Window | None = None, tile: int = 64, batch_size: int = 512
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``[h, w]`` (1..K, 0 at nodata) and class probabilities ``[K, h, w]`` of every
    pixel of ``window`` (default: the whole scene).

    Each pixel's patch takes its neighbours from the whole scene (mirrored at the scene's
    edges, as in training), tile by tile through
    :func:`~domainvit.tasks.hsi.predict.classify_tile`."""
    import torch

    from domainvit.tasks.hsi.predict import classify_tile

    bands, height, width = scene.cube.shape
    row0, row1, col0, col1 = window or (0, height, 0, width)
    r = patch_size // 2
    padded = np.pad(scene.cube, ((0, 0), (r, r), (r, r)), mode="reflect")
    device = next(model.parameters()).device
    probs = np.zeros((model.num_classes, row1 - row0, col1 - col0), np.float32)
    with torch.no_grad():
        for top in range(row0, row1, tile):
            for left in range(col0, col1, tile):
                bottom, right = min(top + tile, row1), min(left + tile, col1)
                cube = np.ascontiguousarray(padded[:, top:bottom + 2 * r, left:right + 2 * r])
                out = classify_tile(model, cube, r, batch_size, device).cpu().numpy()
                probs[:, top - row0:bottom - row0, left - col0:right - col0] = out
    labels = (probs.argmax(0) + 1).astype(np.uint8)
    labels[~scene.valid[row0:row1, col0:col1]] = 0
    return labels, probs


def score_window(predicted: np.ndarray, scene: Scene, class_names: Sequence[str],
                 window: Window | None = None, split: str = "test") -> dict[str, object]:
    """OA, AA, kappa, ``per_class`` accuracy (a Series; NaN for classes without pixels),
    the ``confusion_matrix`` (rows: reference, columns: predicted) and the number of
    ``pixels`` scored, over the ``split`` pixels inside ``window``. ``predicted``: labels
    1..K of the window."""
    from domainvit.tasks.hsi.data import SPLITS
    from domainvit.tasks.hsi.metrics import score_labels

    height, width = scene.labels.shape
    rows, cols = _window_slices(window or (0, height, 0, width))
    reference = scene.labels[rows, cols]
    scored = (scene.split[rows, cols] == SPLITS[split]) & (reference > 0)
    if not scored.any():
        raise ValueError(f"the window holds no {split} pixels")
    result = score_labels(predicted[scored].astype(np.int64) - 1,
                          reference[scored].astype(np.int64) - 1, list(class_names))
    per_class = pd.Series({name: float(result[f"acc_{name.replace(' ', '_')}"])
                           for name in class_names}, name="accuracy")
    return {"oa": float(result["oa"]), "aa": float(result["aa"]),
            "kappa": float(result["kappa"]), "per_class": per_class,
            "confusion_matrix": result["confusion_matrix"].numpy(),
            "pixels": int(scored.sum())}


def accuracy_table(cm: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Per class, from a confusion matrix (rows: reference, columns: predicted): reference
    pixels, producer's accuracy (recall: the share of the class's pixels labelled
    correctly) and user's accuracy (precision: the share of pixels labelled as the class
    that are the class). NaN where the class has no reference / predicted pixels."""
    cm = np.asarray(cm, dtype=np.float64)
    correct = np.diag(cm)
    reference, predicted = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        producer = np.where(reference > 0, correct / reference, np.nan)
        user = np.where(predicted > 0, correct / predicted, np.nan)
    return pd.DataFrame({"reference_pixels": reference.astype(np.int64),
                         "producer_accuracy": producer, "user_accuracy": user},
                        index=pd.Index(list(class_names), name="class"))


def summary_table(scores: dict[str, object]) -> pd.DataFrame:
    """OA, AA and kappa of :func:`score_window` as a one-column table."""
    return pd.DataFrame({"value": [scores["oa"], scores["aa"], scores["kappa"],
                                   scores["pixels"]]},
                        index=["overall accuracy (OA)", "average accuracy (AA)",
                               "Cohen's kappa", "test pixels"])


def error_map(predicted: np.ndarray, scene: Scene, window: Window | None = None,
              split: str = "test") -> np.ndarray:
    """``[h, w]`` int8 over ``window``: 0 pixel not scored (unlabelled or not in
    ``split``), 1 correct, 2 wrong."""
    from domainvit.tasks.hsi.data import SPLITS

    height, width = scene.labels.shape
    rows, cols = _window_slices(window or (0, height, 0, width))
    reference = scene.labels[rows, cols]
    scored = (scene.split[rows, cols] == SPLITS[split]) & (reference > 0)
    out = np.zeros(reference.shape, np.int8)
    out[scored] = np.where(predicted[scored] == reference[scored], 1, 2)
    return out


def rgb_composite(cube: np.ndarray, wavelengths: np.ndarray | None, valid: np.ndarray,
                  nm: Sequence[float] = RGB_NM) -> np.ndarray:
    """A true-colour composite of a cube ``[bands, h, w]``
    (:func:`~domainvit.tasks.hsi.preview.rgb_bands`,
    :func:`~domainvit.tasks.hsi.preview.stretch_rgb`)."""
    return stretch_rgb(cube[rgb_bands(wavelengths, cube.shape[0], nm)], valid)


def class_spectra(scene: Scene, class_names: Sequence[str]) -> pd.DataFrame:
    """Reflectance of every class over all its labelled pixels, per band: ``mean``,
    ``sd`` and the 10th and 90th percentiles (``p10``, ``p90``), with the band's
    ``wavelength_nm`` (NaN when unknown) and ``pixels``; in the cube's band order."""
    wavelengths = (np.asarray(scene.wavelengths, np.float64) if scene.wavelengths is not None
                   else np.full(scene.cube.shape[0], np.nan))
    frames = []
    for k, name in enumerate(class_names, start=1):
        rows, cols = np.nonzero(scene.labels == k)
        if len(rows) == 0:
            continue
        spectra = scene.cube[:, rows, cols].astype(np.float64)
        frames.append(pd.DataFrame({
            "class": name, "band": np.arange(len(wavelengths)), "wavelength_nm": wavelengths,
            "mean": spectra.mean(axis=1), "sd": spectra.std(axis=1),
            "p10": np.percentile(spectra, 10, axis=1), "p90": np.percentile(spectra, 90, axis=1),
            "pixels": len(rows)}))
    return pd.concat(frames, ignore_index=True)


def ascending_runs(wavelengths: np.ndarray) -> list[slice]:
    """Runs of bands whose centres increase; imaging spectrometers with several detectors
    (AVIRIS has four) step back where two detectors overlap, so each run is drawn as its
    own line."""
    wavelengths = np.asarray(wavelengths)
    breaks = np.flatnonzero(np.diff(wavelengths) <= 0) + 1
    edges = [0, *breaks.tolist(), len(wavelengths)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def raster_shape(path: Path) -> tuple[int, int]:
    """``(height, width)`` of a raster in pixels."""
    import rasterio

    with rasterio.open(path) as src:
        return src.height, src.width


def raster_extent_km(path: Path, window: Window | None = None
                     ) -> tuple[tuple[float, float, float, float], str]:
    """``(left, right, bottom, top)`` of a GeoTIFF window in km of its CRS, and the CRS
    as text (for axis labels)."""
    import rasterio

    with rasterio.open(path) as src:
        height, width = src.height, src.width
        row0, row1, col0, col1 = window or (0, height, 0, width)
        left, top = src.transform @ (col0, row0)
        right, bottom = src.transform @ (col1, row1)
        crs = src.crs.to_string() if src.crs else "no CRS"
    return (left / 1000, right / 1000, bottom / 1000, top / 1000), crs


# --- training on other label fractions ----------------------------------------------------


def evaluate_split(model: nn.Module, data: HSIData, split: str = "test",
                   max_pixels: int | None = None, seed: int = 0, batch_size: int = 256
                   ) -> dict[str, object]:
    """OA, AA, kappa and the confusion matrix of ``model`` over the ``split`` pixels of
    ``data``, with the task's metrics on the task's evaluation dataset (no augmentation:
    patches, or for dense models the block windows that score every pixel once). With
    ``max_pixels``, a random subset of the samples (patches or windows) of about that
    many pixels is scored; ``pixels`` says how many were."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from domainvit.registry import get_task
    from domainvit.tasks.hsi.data import pixel_dataset

    dataset = pixel_dataset(data, split)
    indices = np.arange(len(dataset))
    per_sample = data.dense_block ** 2 if data.dense_block else 1
    if max_pixels is not None and len(indices) * per_sample > max_pixels:
        keep = max(1, max_pixels // per_sample)
        indices = np.sort(np.random.default_rng(seed).choice(indices, keep, replace=False))
    loader = DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size)
    device = next(model.parameters()).device
    metrics = get_task("hsi").build_metrics(data).to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in loader:
            metrics.update(model(batch["input"].to(device)).float(), batch["target"].to(device))
    model.train(was_training)
    scores = metrics.compute()
    confusion = scores["confusion_matrix"].cpu().numpy()
    return {**{k: float(scores[k]) for k in ("oa", "aa", "kappa")},
            "confusion_matrix": confusion, "pixels": int(confusion.sum())}


def train_model(config: str, run_dir: Path, overrides: Sequence[str] = ()) -> Path:
    """Train ``config`` (with ``overrides``) into ``run_dir``, replacing a previous run
    there; returns the best checkpoint."""
    from domainvit.engine import train

    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    train(config, [*overrides, f"run_dir={run_dir}"])
    return run_dir / "checkpoints" / "best.safetensors"


def train_fraction_sweep(config: str, fractions: Sequence[float], out_dir: Path,
                         overrides: Sequence[str] = (), max_test_pixels: int | None = None
                         ) -> pd.DataFrame:
    """Train ``config`` once per fraction of training labels (``data.train_fraction``: the
    split is remade from spatially disjoint blocks, the same test blocks every time) and
    score each best checkpoint on the test pixels. One row per fraction: ``fraction``,
    ``train_pixels``, ``oa``, ``aa``, ``kappa``, ``test_pixels`` and ``train_seconds``."""
    from domainvit.analysis.common import load_model
    from domainvit.tasks.hsi.data import load_scene, split_pixels

    rows = []
    for fraction in fractions:
        settings = [*overrides, f"data.train_fraction={fraction}"]
        started = time.perf_counter()
        best = train_model(config, Path(out_dir) / f"fraction_{fraction:g}", settings)
        seconds = time.perf_counter() - started
        model, cfg = load_model(config, best, settings)
        scores = evaluate_split(model, cfg.data, "test", max_test_pixels)
        train_pixels = len(split_pixels(load_scene(cfg.data), "train")[0])
        rows.append({"fraction": float(fraction), "train_pixels": train_pixels,
                     "oa": scores["oa"], "aa": scores["aa"], "kappa": scores["kappa"],
                     "test_pixels": scores["pixels"], "train_seconds": round(seconds, 1)})
    return pd.DataFrame(rows)


# --- Sentinel-2 and other rasters ---------------------------------------------------------


def classify_file(model: nn.Module, data: HSIData, raster: Path, out_dir: Path) -> Path:
    """The class map GeoTIFF of ``raster`` (written by
    :func:`~domainvit.tasks.hsi.predict.classify_raster`, as ``domainvit predict`` does)."""
    import torch

    from domainvit.tasks.hsi.predict import classify_raster

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        return classify_raster(model, data, Path(raster), Path(out_dir))[0]


def read_class_map(path: Path) -> tuple[np.ndarray, list[str]]:
    """Labels (0 nodata, 1..K) and class names (from the ``class_<i>`` tags) of a map."""
    import rasterio

    with rasterio.open(path) as src:
        labels = src.read(1)
        tags = src.tags()
    names = []
    while f"class_{len(names) + 1}" in tags:
        names.append(tags[f"class_{len(names) + 1}"])
    return labels, names


def check_class_map(class_map: Path, source: Path) -> dict[str, object]:
    """Reopen a class map and compare it with the raster it was made from.

    Returns the map's ``crs`` (text), ``epsg``, ``transform``, ``shape``, ``dtype``,
    ``nodata`` and whether CRS (``same_crs``) and grid (``same_grid``: shape and
    transform) equal the source's. Raises ``ValueError`` when the map has no CRS or
    another CRS or grid than the source."""
    import rasterio

    with rasterio.open(class_map) as out, rasterio.open(source) as src:
        if out.crs is None:
            raise ValueError(f"{class_map} has no CRS")
        same_crs = out.crs == src.crs
        same_grid = (out.shape == src.shape
                     and out.transform.almost_equals(src.transform))
        report = {"crs": out.crs.to_string(), "epsg": out.crs.to_epsg(),
                  "transform": tuple(out.transform)[:6], "shape": out.shape,
                  "dtype": out.dtypes[0], "nodata": out.nodata,
                  "same_crs": same_crs, "same_grid": same_grid}
    if not (same_crs and same_grid):
        raise ValueError(f"{class_map} does not lie on the grid of {source}: {report}")
    return report


def class_areas(labels: np.ndarray, class_names: Sequence[str], pixel_area_m2: float
                ) -> pd.DataFrame:
    """Pixels, area (hectares) and share of the classified pixels of every class of a
    map (0 = nodata, not counted)."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=len(class_names) + 1)
    counts = counts[1:len(class_names) + 1]
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"pixels": counts, "area_ha": counts * pixel_area_m2 / 1e4,
                         "share": counts / total},
                        index=pd.Index(list(class_names), name="class"))


def pixel_area_m2(path: Path) -> float:
    import rasterio

    with rasterio.open(path) as src:
        return abs(src.transform.a * src.transform.e - src.transform.b * src.transform.d)


def raster_rgb(path: Path, nm: Sequence[float] = RGB_NM, max_pixels: int = 1024
               ) -> np.ndarray:
    """A true-colour composite of a reflectance raster (bands nearest ``nm``), read
    decimated so that its longer side is at most ``max_pixels``
    (:func:`~domainvit.tasks.hsi.preview.read_rgb`, the dashboard's preview)."""
    from domainvit.datasets.raster.opening import open_raster

    with open_raster(path) as src:
        info = src.info
        return read_rgb(src, rgb_bands(info.wavelengths, info.count, nm), max_pixels)


def raster_spectra(path: Path, samples: int = 20000, seed: int = 0) -> pd.DataFrame:
    """Reflectance statistics per band (``mean``, ``sd``, ``p10``, ``p90``, with
    ``wavelength_nm``) over a random sample of at most ``samples`` valid pixels of a
    raster, and the number of ``pixels`` sampled."""
    from domainvit.datasets.raster.opening import open_raster

    with open_raster(path) as src:
        cube, valid = src.read()
        wavelengths = src.info.wavelengths
    rows, cols = np.nonzero(valid)
    if len(rows) > samples:
        keep = np.random.default_rng(seed).choice(len(rows), samples, replace=False)
        rows, cols = rows[keep], cols[keep]
    spectra = cube[:, rows, cols].astype(np.float64)
    count = cube.shape[0]
    return pd.DataFrame({
        "band": np.arange(count),
        "wavelength_nm": (np.asarray(wavelengths, np.float64) if wavelengths is not None
                          else np.full(count, np.nan)),
        "mean": spectra.mean(axis=1), "sd": spectra.std(axis=1),
        "p10": np.percentile(spectra, 10, axis=1), "p90": np.percentile(spectra, 90, axis=1),
        "pixels": len(rows)})


# --- figures -------------------------------------------------------------------------------


def _palette(colours: Sequence[Sequence[int]]) -> np.ndarray:
    return np.array([(0, 0, 0), *colours], dtype=np.float64) / 255.0


def plot_maps(rgb: np.ndarray, reference: np.ndarray, predicted: np.ndarray,
              class_names: Sequence[str], colours: Sequence[Sequence[int]],
              extent: tuple[float, float, float, float] | None = None,
              crs: str = "") -> Figure:
    """True-colour composite, reference labels and predicted labels side by side (black:
    unlabelled in the reference, nodata in the prediction), with the class legend."""
    import matplotlib.pyplot as plt

    palette = _palette(colours)
    fig, axes = plt.subplots(1, 3, figsize=(17, 6.5), layout="constrained")
    panels = (("true-colour composite (640/550/470 nm)", rgb),
              ("reference labels (black: unlabelled)", palette[reference]),
              ("predicted labels", palette[predicted]))
    for ax, (title, image) in zip(axes, panels, strict=True):
        ax.imshow(image, extent=extent, interpolation="nearest")
        ax.set_title(title)
        _geo_labels(ax, extent, crs)
    fig.legend(handles=legend_patches(class_names, colours), loc="outside right center",
               fontsize=9, title="class")
    return fig


def _geo_labels(ax: object, extent: tuple | None, crs: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.ticklabel_format(useOffset=False, style="plain")
    if extent is None:
        ax.set_xlabel("column (pixels)")
        ax.set_ylabel("row (pixels)")
    else:
        ax.set_xlabel(f"easting (km, {crs})")
        ax.set_ylabel(f"northing (km, {crs})")


def plot_error_map(rgb: np.ndarray, errors: np.ndarray,
                   extent: tuple[float, float, float, float] | None = None,
                   crs: str = "") -> Figure:
    """Test pixels classified correctly (green) and wrongly (red) over a dimmed
    true-colour composite."""
    import matplotlib.pyplot as plt

    shown = 0.45 * rgb.copy()
    shown[errors == 1] = (0.1, 0.75, 0.2)
    shown[errors == 2] = (0.95, 0.1, 0.1)
    fig, ax = plt.subplots(figsize=(8, 7.5), layout="constrained")
    ax.imshow(shown, extent=extent, interpolation="nearest")
    scored = int((errors > 0).sum())
    wrong = int((errors == 2).sum())
    ax.set_title(f"Test pixels: {wrong} of {scored} wrong ({wrong / max(scored, 1):.1%})")
    _geo_labels(ax, extent, crs)
    ax.legend(handles=legend_patches(["correct", "wrong", "not a test pixel"],
                                     [(26, 191, 51), (242, 26, 26), (60, 60, 60)]),
              loc="upper right", fontsize=9)
    return fig


def plot_class_accuracy(table: pd.DataFrame, colours: Sequence[Sequence[int]]) -> Figure:
    """Producer's and user's accuracy of every class (bars) from :func:`accuracy_table`."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(12, 5), layout="constrained")
    ax.bar(x - 0.2, table["producer_accuracy"], 0.4, color=np.asarray(colours) / 255.0,
           edgecolor="black")
    ax.bar(x + 0.2, table["user_accuracy"], 0.4, color="white", edgecolor="black", hatch="//")
    for xi in x[table["reference_pixels"].to_numpy() == 0]:
        ax.text(xi, 0.02, "no test\npixels", ha="center", va="bottom", fontsize=8,
                color="gray")
    ax.legend(handles=[
        Patch(facecolor="lightgray", edgecolor="black",
              label="producer's accuracy (recall),\nin the class's colour"),
        Patch(facecolor="white", edgecolor="black", hatch="//",
              label="user's accuracy (precision)")], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=9)
    ax.set_xticks(x, table.index, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(table) - 0.4)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy (fraction)")
    ax.set_title("Per-class accuracy on the test pixels")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_class_spectra(spectra: pd.DataFrame, colours: Sequence[Sequence[int]],
                       water_vapour: Sequence[tuple[float, float]] = WATER_VAPOUR_NM
                       ) -> Figure:
    """One panel per class: mean reflectance (line), mean -/+ one standard deviation
    (dark band) and 10th-90th percentile (light band) against wavelength, with the strong
    water-vapour absorptions shaded; the last panel overlays every class's mean."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = list(dict.fromkeys(spectra["class"]))
    cols = 4
    rows = -(-(len(names) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), sharex=True,
                             sharey=True, layout="constrained")
    axes = np.ravel(axes)
    top = float(spectra["p90"].max()) * 1.05
    for ax in axes[len(names) + 1:]:
        ax.axis("off")
    overlay = axes[len(names)]
    for ax, name, colour in zip(axes, names, colours, strict=False):
        part = spectra[spectra["class"] == name]
        wl = part["wavelength_nm"].to_numpy()
        c = np.asarray(colour) / 255.0
        for run in ascending_runs(wl):
            x = wl[run]
            mean, sd = part["mean"].to_numpy()[run], part["sd"].to_numpy()[run]
            ax.fill_between(x, part["p10"].to_numpy()[run], part["p90"].to_numpy()[run],
                            color=c, alpha=0.2, linewidth=0)
            ax.fill_between(x, mean - sd, mean + sd, color=c, alpha=0.45, linewidth=0)
            ax.plot(x, mean, color="black", linewidth=1)
            overlay.plot(x, mean, color=c, linewidth=1.3)
        ax.set_title(f"{name} ({int(part['pixels'].iloc[0])} pixels)", fontsize=10)
    for ax in axes[:len(names) + 1]:
        for low, high in water_vapour:
            ax.axvspan(low, high, color="lightblue", alpha=0.4, linewidth=0)
        ax.set_ylim(0, top)
        ax.grid(alpha=0.3)
    overlay.set_title("all class means", fontsize=10)
    for ax in axes[-cols:]:
        ax.set_xlabel("wavelength (nm)")
    for ax in axes[::cols]:
        ax.set_ylabel("reflectance")
    key = [Patch(color="gray", alpha=0.7, label="mean -/+ 1 sd"),
           Patch(color="gray", alpha=0.25, label="10th-90th percentile"),
           Patch(color="lightblue", alpha=0.6, label="water-vapour absorption (noisy bands)")]
    fig.legend(handles=key, loc="outside lower center", ncol=3)
    fig.suptitle("Reflectance spectra per class (labelled pixels)")
    return fig


def plot_fraction_sweep(sweep: pd.DataFrame, reference: dict[str, float] | None = None
                        ) -> Figure:
    """OA, AA and kappa against the fraction of training labels (log axis), annotated
    with the number of training pixels; ``reference``: OA of another model to compare
    (e.g. ``{"bundled checkpoint (2% labels)": 0.95}``) as horizontal lines."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
    x = sweep["fraction"] * 100
    for column, label, marker in (("oa", "overall accuracy (OA)", "o"),
                                  ("aa", "average accuracy (AA)", "s"),
                                  ("kappa", "Cohen's kappa", "^")):
        ax.plot(x, sweep[column], marker=marker, label=label)
    for xi, yi, n in zip(x, sweep["oa"], sweep["train_pixels"], strict=True):
        ax.annotate(f"{n} px", (xi, yi), textcoords="offset points", xytext=(0, 8),
                    ha="center", fontsize=8)
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color="gray", linestyle=("--", ":", "-.")[i % 3], label=label)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}%" for v in x])
    ax.minorticks_off()
    ax.set_xlabel("training labels (% of the labelled pixels in training blocks, log scale)")
    ax.set_ylabel("score on the test pixels (fraction)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Test accuracy against the amount of training labels")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def plot_raster_classes(rgb: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                        colours: Sequence[Sequence[int]],
                        extent: tuple[float, float, float, float] | None, crs: str,
                        title: str) -> Figure:
    """A raster's true-colour composite beside its class map (black: nodata)."""
    import matplotlib.pyplot as plt

    palette = _palette(colours)
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 7), layout="constrained")
    left.imshow(rgb, extent=extent, interpolation="nearest")
    left.set_title("true-colour composite (bands nearest 640/550/470 nm)")
    right.imshow(palette[labels], extent=extent, interpolation="nearest")
    right.set_title("class map")
    for ax in (left, right):
        _geo_labels(ax, extent, crs)
    fig.legend(handles=legend_patches(class_names, colours), loc="outside right center",
               fontsize=9, title="class")
    fig.suptitle(title)
    return fig


def plot_domain_gap(training: pd.DataFrame, target: pd.DataFrame,
                    colours: Sequence[Sequence[int]], target_name: str = "scene to classify"
                    ) -> Figure:
    """The class mean spectra a model was trained on (:func:`class_spectra`, coloured
    lines) against the spectra of a raster it is applied to (:func:`raster_spectra`:
    mean, black, and 10th-90th percentile, grey): where the raster's spectra fall
    outside every class's, the model is extrapolating."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6), layout="constrained")
    order = np.argsort(target["wavelength_nm"].to_numpy())
    wl = target["wavelength_nm"].to_numpy()[order]
    ax.fill_between(wl, target["p10"].to_numpy()[order], target["p90"].to_numpy()[order],
                    color="gray", alpha=0.35, label=f"{target_name}: 10th-90th percentile")
    ax.plot(wl, target["mean"].to_numpy()[order], color="black", linewidth=2.5,
            marker="o", label=f"{target_name}: mean")
    for (name, part), colour in zip(training.groupby("class", sort=False), colours,
                                    strict=False):
        part = part.sort_values("wavelength_nm")
        ax.plot(part["wavelength_nm"], part["mean"], color=np.asarray(colour) / 255.0,
                linewidth=1.2, label=f"training: {name}")
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("reflectance")
    ax.set_title("Spectra the model was trained on against the classified raster")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    return fig


def plot_reference_agreement(table: pd.DataFrame, targets: dict[str, float] | None = None
                             ) -> Figure:
    """Grouped bars of :func:`~domainvit.tasks.hsi.reference.agreement_table`: the share of
    each reference class labelled right, one bar per model; ``targets`` (column -> share)
    are drawn as dashes over their column."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5), layout="constrained")
    columns = list(table.columns)
    x = np.arange(len(columns))
    width = 0.8 / max(len(table), 1)
    for i, (name, row) in enumerate(table.iterrows()):
        bars = ax.bar(x + (i - (len(table) - 1) / 2) * width, row.to_numpy(dtype=float),
                      width, label=str(name))
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in row.to_numpy(dtype=float)],
                     fontsize=7, padding=1)
    for column, target in (targets or {}).items():
        if column in columns:
            j = columns.index(column)
            ax.hlines(target, j - 0.45, j + 0.45, colors="black", linestyles="--",
                      linewidth=1.2)
    ax.set_xticks(x, columns, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share labelled right")
    ax.set_title("Reference pixels of the real scene labelled right (dashes: targets)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


def forest_baseline(data: HSIData, trees: int = 300, seed: int = 0) -> dict[str, object]:
    """OA, AA, kappa and the confusion matrix of a random forest (scikit-learn, ``trees``
    trees) on standardised single-pixel spectra, fitted on the training pixels of
    ``data``'s split and scored on its test pixels: the baseline that a model using the
    spatial context has to beat on the same split."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from domainvit.tasks.hsi.data import load_scene, split_pixels
    from domainvit.tasks.hsi.metrics import score_labels

    scene = load_scene(data)
    (train_r, train_c), (test_r, test_c) = (split_pixels(scene, s) for s in ("train", "test"))
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(
        n_estimators=trees, random_state=seed, n_jobs=1))
    forest.fit(scene.cube[:, train_r, train_c].T, scene.labels[train_r, train_c] - 1)
    predicted = forest.predict(scene.cube[:, test_r, test_c].T)
    scores = score_labels(predicted, scene.labels[test_r, test_c] - 1, data.class_names)
    return {**{k: float(scores[k]) for k in ("oa", "aa", "kappa")},
            "confusion_matrix": np.asarray(scores["confusion_matrix"]), "pixels": len(test_r)}
