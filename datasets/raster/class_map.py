"""Writing: :class:`ClassMapWriter` writes a uint8 class map GeoTIFF (classes ``1..K``, 0 =
nodata/unclassified, colour table, class names as tags) and optionally a float32
per-class probability GeoTIFF and a float32 one-band confidence GeoTIFF, all atomically:
temporary files in the destination folder are renamed into place only when the ``with``
block ends without an exception.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from rasterio.windows import Window

from domainvit.datasets.raster.info import CPLE_BaseError, RasterInfo, _gdal_detail
from domainvit.datasets.raster.tiling import _window_bounds
from domainvit.errors import UserError
from domainvit.files import atomic_write

#: RGB colours of classes 1, 2, ... (cycled beyond the table) when none are given
DEFAULT_COLORS = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)


def _same_file(first: Path, second: Path) -> bool:
    try:
        if first.exists() and second.exists():
            return os.path.samefile(first, second)
    except OSError:
        pass
    return first.resolve() == second.resolve()


def _rgba(color: Sequence[int], index: int) -> tuple[int, int, int, int]:
    values = [int(value) for value in color]
    if len(values) not in (3, 4) or not all(0 <= value <= 255 for value in values):
        raise ValueError(f"colour of class {index} must be 3 or 4 integers 0..255, got {color}")
    return (*values[:3], values[3] if len(values) == 4 else 255)  # type: ignore[return-value]


class ClassMapWriter:
    """Write a class map (and optionally class probabilities) for a raster, atomically.

    The map is a single-band uint8 GeoTIFF (tiled, deflate) on the input's grid: its CRS
    and transform (none for ``.npy``/``.mat`` inputs, or inputs without a geotransform),
    nodata 0, classes ``1..K``, a colour table (class 0 transparent) and the class names as
    dataset tags ``class_1=...`` (rasterio has no API for GDAL category names, so tags are
    all there is). ``probabilities_path`` adds a float32 GeoTIFF of K bands (descriptions =
    class names, nodata NaN); ``confidence_path`` a float32 GeoTIFF of one band (the
    maximum class probability of every pixel, nodata NaN).

    Use as a context manager; :meth:`write` each core window. Both files are written under
    temporary names beside their destination and renamed into place only when the block
    exits without an exception (otherwise they are removed); a stale ``<path>.aux.xml`` is
    removed when its file is replaced. Invalid input pixels: pass ``valid`` to
    :meth:`write` (label 0, probabilities NaN there) or labels already 0 there.
    """

    def __init__(self, path: str | os.PathLike[str], info: RasterInfo,
                 class_names: Sequence[str] | None, colors: Sequence[Sequence[int]] | None = None,
                 probabilities_path: str | os.PathLike[str] | None = None,
                 num_classes: int | None = None, *, block_size: int = 256,
                 confidence_path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.probabilities_path = None if probabilities_path is None else Path(probabilities_path)
        self.confidence_path = None if confidence_path is None else Path(confidence_path)
        self.info = info
        if num_classes is None:
            if class_names is None:
                raise ValueError("give class_names or num_classes")
            num_classes = len(class_names)
        if class_names is None:
            class_names = [f"class {index}" for index in range(1, num_classes + 1)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        if not 1 <= num_classes <= 255:
            raise UserError(f"a uint8 class map holds 1 to 255 classes (0 is nodata); "
                            f"got {num_classes}")
        self.num_classes = int(num_classes)
        self.class_names = [str(name) for name in class_names]
        if colors is None:
            colors = [DEFAULT_COLORS[index % len(DEFAULT_COLORS)] for index in range(num_classes)]
        if len(colors) != num_classes:
            raise ValueError(f"{len(colors)} colours for {num_classes} classes")
        self.colors = [_rgba(color, index + 1) for index, color in enumerate(colors)]
        if block_size <= 0 or block_size % 16:
            raise ValueError("block_size must be a positive multiple of 16")
        self.block_size = block_size

        outputs = [self.path] + [extra for extra in (self.probabilities_path,
                                                     self.confidence_path) if extra]
        for output in outputs:
            if output.suffix.lower() not in (".tif", ".tiff"):
                raise UserError(f"cannot write {output.name}: class maps are GeoTIFFs, expected "
                                f"a name ending in .tif or .tiff")
            for source in (info.path, *info.files):
                if _same_file(output, Path(source)):
                    raise UserError(f"refusing to overwrite the input {Path(source).name} with "
                                    f"the class map; choose another output name")
            if output.is_dir():
                raise UserError(f"cannot write {output}: it is a folder")
        if len({output.resolve() for output in outputs}) != len(outputs):
            raise UserError("the class map, the probabilities and the confidence need "
                            "different file names")
        self.pixels_written = 0
        self._datasets: dict[Path, Any] = {}
        self._temporaries: dict[Path, Path] = {}
        # the atomic_write of each output; unwound in reverse, so the probabilities are
        # renamed first and the map, the main product, appears only if both do
        self._outputs = ExitStack()

    # -- context
    def __enter__(self) -> ClassMapWriter:
        if self._datasets:
            raise ValueError("ClassMapWriter is already open")
        try:
            self._open(self.path, self._map_profile())
            dataset = self._datasets[self.path]
            dataset.write_colormap(1, {0: (0, 0, 0, 0), **{
                index + 1: color for index, color in enumerate(self.colors)}})
            dataset.set_band_description(1, "class")
            dataset.update_tags(
                num_classes=str(self.num_classes), nodata_label="0 = no data / unclassified",
                source=self.info.path.name,
                **{f"class_{index + 1}": name for index, name in enumerate(self.class_names)})
            if self.probabilities_path is not None:
                self._open(self.probabilities_path, self._probability_profile())
                probabilities = self._datasets[self.probabilities_path]
                for index, name in enumerate(self.class_names):
                    probabilities.set_band_description(index + 1, name)
                probabilities.update_tags(source=self.info.path.name,
                                          num_classes=str(self.num_classes))
            if self.confidence_path is not None:
                self._open(self.confidence_path, self._confidence_profile())
                confidence = self._datasets[self.confidence_path]
                confidence.set_band_description(1, "maximum class probability")
                confidence.update_tags(source=self.info.path.name,
                                       meaning="maximum softmax probability, 0..1; NaN: "
                                               "nodata")
        except BaseException:
            self._discard(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        if exc_type is not None:
            self._discard(exc_type, exc, traceback)
            return
        try:
            for dataset in self._datasets.values():
                dataset.close()
            self._outputs.close()
            # GDAL keeps what TIFF tags cannot hold in a side file named after the temporary
            for final, temporary in self._temporaries.items():
                stale, aux = Path(f"{final}.aux.xml"), Path(f"{temporary}.aux.xml")
                if aux.exists():
                    os.replace(aux, stale)
                else:
                    stale.unlink(missing_ok=True)
        except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as error:
            self._discard(*sys.exc_info())
            raise UserError(f"cannot write {self.path.name}: {_gdal_detail(error)}") from error
        finally:
            self._datasets.clear()
            self._temporaries.clear()
        total = self.info.width * self.info.height
        if self.pixels_written != total:
            warnings.warn(f"{self.path.name}: {self.pixels_written} of {total} pixels were "
                          f"written; the rest are nodata (0)", stacklevel=2)

    # -- writing
    def write(self, core_window: Window | tuple, labels: np.ndarray,
              probabilities: np.ndarray | None = None, valid: np.ndarray | None = None,
              confidence: np.ndarray | None = None) -> None:
        """Write ``labels`` ``(h, w)`` (integers 0..K, 0 = nodata) into ``core_window``.

        ``probabilities`` ``(K, h, w)`` go to the probability raster (ignored without
        ``probabilities_path``, required with it), ``confidence`` ``(h, w)`` to the
        confidence raster (likewise with ``confidence_path``); where ``valid`` (``(h, w)``
        bool) is False the label is written as 0, the probabilities and confidence as NaN.
        """
        if self.path not in self._datasets:
            raise ValueError("use ClassMapWriter as a context manager: with ... as writer")
        row0, row1, col0, col1 = _window_bounds(core_window, self.info.height, self.info.width)
        shape = (row1 - row0, col1 - col0)
        window = Window(col0, row0, shape[1], shape[0])
        labels = np.asarray(labels)
        if labels.shape != shape:
            raise ValueError(f"labels of shape {labels.shape} for a {shape} window")
        if labels.dtype.kind not in "ui":
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() > self.num_classes):
            raise ValueError(f"labels must be 0..{self.num_classes} (classes are 1-based, 0 = "
                             f"nodata); got {labels.min()}..{labels.max()}")
        labels = labels.astype(np.uint8)
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != shape:
                raise ValueError(f"valid mask of shape {valid.shape} for a {shape} window")
            labels = np.where(valid, labels, np.uint8(0))
        self._datasets[self.path].write(labels, 1, window=window)
        if self.probabilities_path is not None:
            if probabilities is None:
                raise ValueError("this writer has a probabilities_path: pass probabilities")
            probs = np.array(probabilities, dtype=np.float32)
            if probs.shape != (self.num_classes, *shape):
                raise ValueError(f"probabilities of shape {probs.shape}, expected "
                                 f"{(self.num_classes, *shape)}")
            if valid is not None:
                probs[:, ~valid] = np.nan
            self._datasets[self.probabilities_path].write(probs, window=window)
        if self.confidence_path is not None:
            if confidence is None:
                raise ValueError("this writer has a confidence_path: pass confidence")
            values = np.array(confidence, dtype=np.float32)
            if values.shape != shape:
                raise ValueError(f"confidence of shape {values.shape} for a {shape} window")
            if valid is not None:
                values[~valid] = np.nan
            self._datasets[self.confidence_path].write(values, 1, window=window)
        self.pixels_written += shape[0] * shape[1]

    # -- internals
    def _georeferencing(self) -> dict[str, Any]:
        info = self.info
        if not info.is_gdal or (info.crs is None and info.transform.is_identity):
            return {}
        return {"crs": info.crs, "transform": info.transform}

    def _common_profile(self) -> dict[str, Any]:
        info = self.info
        block = self.block_size
        return {
            "driver": "GTiff", "width": info.width, "height": info.height, "tiled": True,
            "blockxsize": block, "blockysize": block, "compress": "deflate",
            "BIGTIFF": "IF_SAFER", **self._georeferencing(),
        }

    def _map_profile(self) -> dict[str, Any]:
        return {**self._common_profile(), "count": 1, "dtype": "uint8", "nodata": 0}

    def _probability_profile(self) -> dict[str, Any]:
        return {**self._common_profile(), "count": self.num_classes, "dtype": "float32",
                "nodata": float("nan"), "predictor": 3, "interleave": "band"}

    def _confidence_profile(self) -> dict[str, Any]:
        return {**self._common_profile(), "count": 1, "dtype": "float32",
                "nodata": float("nan"), "predictor": 3}

    def _open(self, final: Path, profile: dict[str, Any]) -> None:
        temporary = self._outputs.enter_context(atomic_write(final))
        self._temporaries[final] = temporary
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._datasets[final] = rasterio.open(temporary, "w", **profile)
        except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as error:
            raise UserError(f"cannot create {final.name}: {_gdal_detail(error)}") from error

    def _discard(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        """Close and remove every temporary file (after the failure ``exc``)."""
        for dataset in self._datasets.values():
            try:
                dataset.close()
            except Exception:  # noqa: BLE001 - cleaning up after another error
                pass
        self._outputs.__exit__(exc_type, exc, traceback)  # each atomic_write removes its file
        for temporary in self._temporaries.values():
            Path(f"{temporary}.aux.xml").unlink(missing_ok=True)
        self._datasets.clear()
        self._temporaries.clear()
