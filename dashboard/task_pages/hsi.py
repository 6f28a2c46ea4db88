"""The dashboard page of the hsi task: classify an uploaded hyperspectral raster, show an RGB
preview from chosen bands, the class map with its legend, the spectrum of a chosen pixel,
and download the class map.

The class map is the GeoTIFF ``domainvit predict`` writes (:func:`classify_raster`: tiled,
the input's CRS and transform, colour table, class names, nodata 0), with a progress bar
fed by its ``progress`` callback. Rasters are read with
:func:`~domainvit.datasets.raster.opening.open_raster`, so GeoTIFF, ENVI (uploaded as a .zip
holding the header and its data file), .npy and .mat cubes all work, with its messages
for bad files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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


def classify_upload(loaded: LoadedModel, path: Path) -> ClassMap:
    """Classify the raster of the upload ``path`` into a class map beside it."""
    import rasterio

    data: HSIData = loaded.config.data
    raster = raster_in_upload(path)
    with widgets.progress_bar("Classifying ...") as bar, widgets.exclusive(loaded), \
            torch.no_grad():
        class_map = classify_raster(
            loaded.model, data, raster, derived_folder(path),
            progress=lambda done, total: bar.progress(
                done / total, text=f"Classifying: tile {done} of {total}"))[0]
    with rasterio.open(class_map) as dataset:
        labels = dataset.read(1)
    return ClassMap(raster, class_map, labels, data.class_names, class_colors(data))


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
            st.image(class_map_rgb(result), caption="Class map (black: nodata)",
                     width="stretch")
            widgets.legend(result.names, result.colours)
        show_spectrum(source, result, token)
        st.markdown("**Classes**")
        st.dataframe(class_table(result, info), hide_index=True, key=f"hsi-classes-{token}")
    widgets.download("Download the class map (GeoTIFF)", result.class_map, result.class_map.name,
                     "image/tiff", key=f"hsi-download-{token}")
    st.caption("The class map has the input's CRS and transform, a colour table and the "
               "class names as tags (0: nodata): the file `domainvit predict` writes.")


def render(task: Task) -> None:
    widgets.task_page(
        task, "Hyperspectral classification", "Raster", UPLOAD_TYPES, key="hsi",
        help=("GeoTIFF, an ENVI raster as a .zip of its .hdr and data file, or a .npy/.mat "
              "cube (height x width x bands)"),
        predict=classify_upload, show=lambda result, loaded: show(result, loaded.config.data))
