"""Opening a hyperspectral raster: the file format decides the reader, the metadata the
scale.

Reading (:func:`open_raster` -> :class:`RasterSource`, a context manager):

- GDAL rasters (GeoTIFF, COG, ENVI, JP2, ...) go through rasterio. An ENVI pair may be
  given by either file: a ``.hdr`` is mapped to its data file (``x.hdr`` -> ``x``,
  ``x.img``, ``x.dat``, ``x.raw``, ``x.bsq``, ``x.bil``, ``x.bip``, ``x.bin``; or
  ``x.img.hdr`` -> ``x.img``), which GDAL's ENVI driver opens with its header.
- ``.npy`` cubes are memory-mapped (``mmap_mode='r'``, no pickles); ``.mat`` cubes are read
  with :func:`scipy.io.loadmat` (the single 3D numeric variable, or the one named by
  ``key``). Both are laid out ``(H, W, B)`` by default, like the Indian Pines and Salinas
  files; pass ``layout="BHW"`` for ``(B, H, W)``. They carry no CRS, transform, nodata or
  wavelengths.

Reflectance scale: the caller's ``reflectance_scale``; else the dataset tag
``reflectance_scale`` (our convention); else the ENVI header's ``reflectance scale factor``;
else GDAL band scales/offsets (``DN * s + o``: scale ``1/s``, offset ``o``); else 10000 for
integer data and 1 for float data, *assumed* (``RasterInfo.scale_declared`` is false), so
values implausible as reflectance under it are reported as digital numbers, not overflow.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine

from domainvit.datasets.raster.info import CPLE_BaseError, Layout, RasterInfo, _gdal_detail
from domainvit.datasets.raster.sentinel2 import sentinel2_product
from domainvit.datasets.raster.sources import (
    DEFAULT_MAX_BAD_FRACTION,
    DEFAULT_REFLECTANCE_RANGE,
    RasterSource,
    _ArraySource,
    _GdalSource,
)
from domainvit.datasets.raster.wavelengths import (
    _gdal_wavelengths,
    _read_sidecar,
    _to_nm,
    _validated_wavelengths,
)
from domainvit.errors import UserError

#: data-file suffixes tried for an ENVI header ``x.hdr`` (after ``x`` itself)
ENVI_DATA_SUFFIXES = (".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin")


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _scale_from_tags(value: str | None, where: str) -> float | None:
    if value is None:
        return None
    try:
        scale = float(str(value).strip().strip("{}"))
    except ValueError:
        raise UserError(f"{where} is not a number: {value!r}") from None
    if not math.isfinite(scale) or scale <= 0:
        raise UserError(f"{where} must be a positive number, got {value!r}")
    return scale


def _check_scale(scale: float | None) -> float | None:
    if scale is None:
        return None
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise UserError(f"reflectance_scale must be a positive number, got {scale}")
    return scale


def _envi_data_file(header: Path) -> Path:
    """The data file of an ENVI header (see module docs)."""
    stem = header.name[: -len(header.suffix)]
    candidates = [header.with_name(stem)] + [header.with_name(stem + suffix)
                                             for suffix in ENVI_DATA_SUFFIXES]
    candidates += [header.with_name(stem + suffix.upper()) for suffix in ENVI_DATA_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file() and candidate.suffix.lower() != ".hdr":
            return candidate
    expected = ", ".join(path.name for path in candidates[: 1 + len(ENVI_DATA_SUFFIXES)])
    raise UserError(f"ENVI header {header.name} has no data file next to it: expected one of "
                    f"{expected}")


def _open_gdal(path: Path, source_name: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            dataset = rasterio.open(source_name)
    except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as error:
        hint = ""
        if (path.suffix.lower() in ENVI_DATA_SUFFIXES and not path.with_suffix(".hdr").exists()
                and not path.with_name(path.name + ".hdr").exists()):
            header = path.with_suffix(".hdr").name
            hint = f" (an ENVI data file needs its header {header} beside it)"
        raise UserError(f"{path.name} is not a raster GDAL can read: not an image, or a "
                        f"corrupted or truncated file{hint} ({_gdal_detail(error)})") from error
    return dataset


def _gdal_info(dataset: Any, path: Path, wavelengths: Any, reflectance_scale: float | None
               ) -> RasterInfo:
    count = dataset.count
    tags = dataset.tags()
    envi = dataset.tags(ns="ENVI") if "ENVI" in (dataset.tag_namespaces() or []) else {}
    fwhm = None
    if wavelengths is not None:
        found = _validated_wavelengths(_to_nm(wavelengths, None), count,
                                       f"the wavelengths given for {path.name}")
    else:
        found, fwhm = _gdal_wavelengths(dataset) if count else (None, None)
        if found is not None:
            try:
                found = _validated_wavelengths(found, count, f"{path.name}'s metadata")
            except UserError as error:
                warnings.warn(f"ignoring the wavelengths of {path.name}: {error}", stacklevel=3)
                found, fwhm = None, None
    sidecar = _read_sidecar(path, count) if found is None and wavelengths is None else None
    if sidecar:
        found, fwhm = sidecar["wavelengths"], sidecar["fwhm"]

    offset = 0.0
    declared = {
        "given": reflectance_scale,
        "tag": _scale_from_tags(tags.get("reflectance_scale"),
                                f"{path.name}'s reflectance_scale tag"),
        "envi": _scale_from_tags(envi.get("reflectance_scale_factor"),
                                 f"{path.name}'s ENVI reflectance scale factor"),
    }
    scale_source, scale = next(((k, v) for k, v in declared.items() if v),
                               ("assumed", None))
    if scale is None:
        gdal_scales, gdal_offsets = set(dataset.scales or ()), set(dataset.offsets or ())
        if len(gdal_scales) > 1 or len(gdal_offsets) > 1:
            raise UserError(f"{path.name} has a different scale/offset per band, which is not "
                            f"supported; pass reflectance_scale explicitly")
        band_scale = gdal_scales.pop() if gdal_scales else 1.0
        offset = float(gdal_offsets.pop()) if gdal_offsets else 0.0
        if band_scale not in (0.0, 1.0):
            scale, scale_source = 1.0 / float(band_scale), "gdal"
        elif offset == 0.0:
            scale = 10000.0 if np.issubdtype(np.dtype(dataset.dtypes[0]), np.integer) else 1.0
        else:
            scale, scale_source = 1.0, "gdal"
    product = sentinel2_product(path, tags, [dataset.tags(b) for b in range(1, count + 1)])
    if (product is not None and product.offset_dn and scale_source == "assumed"
            and offset == 0.0 and np.issubdtype(np.dtype(dataset.dtypes[0]), np.integer)):
        # Sentinel-2 baseline 04.00 and later: reflectance = (DN + offset) / 10000; a file
        # that declares its own scale is taken at its word
        offset, scale_source = product.offset_dn / scale, "sentinel-2"

    names = [description or "" for description in (dataset.descriptions or ())]
    if sidecar and sidecar["band_names"]:
        names = sidecar["band_names"]
    declared_names = bool(names) and all(names)
    names = [name or f"B{index + 1}" for index, name in enumerate(names)]
    return RasterInfo(
        path=path, width=dataset.width, height=dataset.height, count=count,
        dtype=str(dataset.dtypes[0]) if count else "uint8",
        crs=dataset.crs, transform=dataset.transform,
        nodata=None if dataset.nodata is None else float(dataset.nodata),
        wavelengths=found, band_names=names, reflectance_scale=float(scale),
        driver=dataset.driver, fwhm=fwhm, reflectance_offset=offset,
        files=tuple(Path(name) for name in (dataset.files or [path])),
        reflectance_scale_source=scale_source,
        sensor=(tags.get("sensor") or envi.get("sensor_type") or "").strip("{} ") or None,
        band_names_declared=declared_names,
        sentinel2=product,
        units=tuple(unit or "" for unit in (dataset.units or ())),
    )


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            head = file.read(2048 + 8)
    except OSError:
        return False
    return any(head[offset:offset + 8] == _HDF5_SIGNATURE for offset in (0, 512, 1024, 2048))


def _v73_error(path: Path, key: str | None) -> UserError:
    stem = path.name[: -len(path.suffix)]
    variable = key or "VARIABLE"
    return UserError(
        f"{path.name} is a MATLAB v7.3 (HDF5) file, which scipy cannot read: re-save it as "
        f"v7 in MATLAB/Octave (save('{stem}_v7.mat', '{variable}', '-v7')), or convert it to "
        f".npy with h5py (np.save('{stem}.npy', h5py.File('{path.name}')['{variable}'][()].T); "
        f".T undoes MATLAB's column order, giving (H, W, B))"
    )


def _check_numeric(array: np.ndarray, path: Path, what: str) -> None:
    if array.dtype.kind not in "uif":
        raise UserError(f"{path.name}: {what} has dtype {array.dtype}; expected integer or "
                        f"float reflectance")


def _load_mat(path: Path, key: str | None) -> np.ndarray:
    if _is_hdf5(path):
        raise _v73_error(path, key)
    try:
        import scipy.io
    except ImportError as error:  # pragma: no cover - part of the geo extra
        raise UserError("reading .mat files needs scipy: pip install 'domainvit[geo]'") from error
    try:
        content = scipy.io.loadmat(path, variable_names=[key] if key else None)
    except NotImplementedError as error:  # scipy's own v7.3 refusal
        raise _v73_error(path, key) from error
    # what scipy raises for damaged files: MatReadError (truncated or zeroed header), OSError
    # (data cut short), ValueError (not a MAT file), zlib.error (a corrupt compressed
    # variable), TypeError (a variable that is not a matrix where one must be)
    except (scipy.io.matlab.MatReadError, OSError, EOFError, ValueError, zlib.error,
            TypeError) as error:
        raise UserError(f"{path.name} is not a MATLAB file scipy can read: corrupted, truncated "
                        f"or another format ({type(error).__name__}: {error})") from error
    variables = {name: value for name, value in content.items() if not name.startswith("__")}
    if key is not None:
        if key not in variables:
            raise UserError(f"{path.name} has no variable {key!r}")
        array = variables[key]
        if not isinstance(array, np.ndarray) or array.ndim != 3:
            shape = getattr(array, "shape", type(array).__name__)
            raise UserError(f"{path.name}: variable {key!r} is {shape}, not a 3D cube")
        _check_numeric(array, path, f"variable {key!r}")
        return array
    cubes = {name: value for name, value in variables.items()
             if isinstance(value, np.ndarray) and value.ndim == 3 and value.dtype.kind in "uif"}
    if len(cubes) == 1:
        return next(iter(cubes.values()))
    listing = ", ".join(f"{name} {getattr(value, 'shape', '?')}" for name, value in
                        variables.items()) or "nothing"
    if not cubes:
        raise UserError(f"{path.name} holds no 3D numeric array (found: {listing})")
    raise UserError(f"{path.name} holds several 3D arrays ({', '.join(cubes)}): name one "
                    f"with key=")


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UserError(f"{path.name} is not a .npy array numpy can read: corrupted, truncated, "
                        f"pickled or another format ({error})") from error
    if not isinstance(array, np.ndarray):
        raise UserError(f"{path.name} holds several arrays (an .npz?); expected one .npy cube")
    if array.ndim != 3:
        raise UserError(f"{path.name} holds an array of shape {array.shape}; expected a 3D "
                        f"cube (H, W, B) or, with layout='BHW', (B, H, W)")
    _check_numeric(array, path, "the array")
    return array


def _array_info(array: np.ndarray, path: Path, layout: Layout, driver: str, wavelengths: Any,
                reflectance_scale: float | None, nodata: float | None) -> RasterInfo:
    if layout == "HWB":
        height, width, count = array.shape
    else:
        count, height, width = array.shape
    fwhm = names = None
    if wavelengths is not None:
        found = _to_nm(wavelengths, None)
    else:
        sidecar = _read_sidecar(path, count) if count else None
        found = sidecar["wavelengths"] if sidecar else None
        fwhm = sidecar["fwhm"] if sidecar else None
        names = sidecar["band_names"] if sidecar else None
    if found is not None and found.size != count:
        other = "BHW" if layout == "HWB" else "HWB"
        other_count = array.shape[0] if layout == "HWB" else array.shape[2]
        hint = (f"; with layout={other!r} it would have {other_count}, matching"
                if found.size == other_count else "")
        raise UserError(f"{path.name} has {count} bands in layout {layout!r} (shape "
                        f"{array.shape}) but {found.size} wavelengths were given{hint}")
    if found is not None:
        found = _validated_wavelengths(found, count, f"the wavelengths given for {path.name}")
    elif count > max(height, width) and height > 0:
        warnings.warn(f"{path.name}: layout {layout!r} gives {count} bands on a {height}x{width} "
                      f"grid; if the array is ({'B, H, W' if layout == 'HWB' else 'H, W, B'}), "
                      f"pass layout={'BHW' if layout == 'HWB' else 'HWB'!r}", stacklevel=3)
    integer = array.dtype.kind in "ui"
    return RasterInfo(
        path=path, width=width, height=height, count=count, dtype=str(array.dtype), crs=None,
        transform=Affine.identity(), nodata=None if nodata is None else float(nodata),
        wavelengths=found, band_names=names or [f"B{index + 1}" for index in range(count)],
        band_names_declared=bool(names),
        reflectance_scale=reflectance_scale or (10000.0 if integer else 1.0), driver=driver,
        fwhm=fwhm, files=(path,),
        reflectance_scale_source="given" if reflectance_scale else "assumed",
    )


def open_raster(
    path: str | os.PathLike[str],
    wavelengths: Sequence[float] | np.ndarray | None = None,
    reflectance_scale: float | None = None,
    *,
    layout: Layout = "HWB",
    key: str | None = None,
    nodata: float | None = None,
    reflectance_range: tuple[float, float] = DEFAULT_REFLECTANCE_RANGE,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    check_valid: bool = True,
) -> RasterSource:
    """Open a reflectance raster for windowed reading (see the module docs).

    ``wavelengths``: band centres in nm, overriding the file's. ``reflectance_scale``:
    reflectance = DN / scale, overriding the file's tags. ``layout``/``key``: for ``.npy``
    and ``.mat`` cubes only. ``nodata``: a nodata value to use instead of the file's (the
    only way to declare one for ``.npy``/``.mat``). ``check_valid``: fail now when the
    raster has no valid pixel. GDAL virtual paths (``/vsi...``, ``s3://``) are passed on.
    """
    if layout not in ("HWB", "BHW"):
        raise ValueError(f"layout must be 'HWB' or 'BHW', not {layout!r}")
    reflectance_scale = _check_scale(reflectance_scale)
    options = {"reflectance_range": reflectance_range, "max_bad_fraction": max_bad_fraction}
    name = os.fspath(path)
    virtual = name.startswith("/vsi") or "://" in name
    path = Path(name)
    if not virtual:
        if not path.exists():
            raise UserError(f"no such file: {path}")
        if path.is_dir():
            raise UserError(f"{path} is a folder; expected a raster file (.tif, .img/.hdr, "
                            f".npy, .mat, or another format GDAL reads)")
    suffix = path.suffix.lower()
    source: RasterSource
    if suffix in (".npy", ".mat") and not virtual:
        array = _load_npy(path) if suffix == ".npy" else _load_mat(path, key)
        info = _array_info(array, path, layout, "NPY" if suffix == ".npy" else "MAT",
                           wavelengths, reflectance_scale, nodata)
        source = _ArraySource(array, layout, info, **options)
    else:
        if suffix == ".hdr" and not virtual:
            path = _envi_data_file(path)
            name = os.fspath(path)
        dataset = _open_gdal(path, name)
        try:
            info = _gdal_info(dataset, path, wavelengths, reflectance_scale)
            if nodata is not None:
                info.nodata = float(nodata)
            source = _GdalSource(dataset, info, **options)
            if nodata is not None:
                source._nodata_values = [float(nodata)] * info.count
                source._use_dataset_mask = False
        except BaseException:
            dataset.close()
            raise
    try:
        info = source.info
        if info.width == 0 or info.height == 0 or info.count == 0:
            raise UserError(f"{path.name} is empty: {info.count} bands of {info.height}x"
                            f"{info.width} pixels")
        if check_valid:
            source._check_has_valid_pixels()
    except BaseException:
        source.close()
        raise
    return source
