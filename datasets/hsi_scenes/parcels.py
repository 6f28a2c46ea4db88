"""Writing the simulated parcel scene to GeoTIFFs: the ``hsi-parcels`` sample dataset's
builder (files and their conventions: :mod:`.conventions`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from domainvit.datasets.hsi_scenes.conventions import (
    CLASSES_FILE,
    HSI_PARCELS,
    LABELS_FILE,
    META_FILE,
    NODATA,
    REFLECTANCE_SCALE,
    SCENE_FILE,
    SCENE_S2_FILE,
    SPLIT_CODES,
    SPLIT_FILE,
)
from domainvit.datasets.hsi_scenes.sensors import S2_BANDS, sentinel2_bands
from domainvit.datasets.hsi_scenes.simulator import CLASS_NAMES, CLASSES, Scene, make_scene
from domainvit.datasets.hsi_scenes.spectra import ENDMEMBER_FILES, spectral_data_dir
from domainvit.datasets.hsi_scenes.writers import (
    _json_default,
    _write_mask,
    to_counts,
    write_reflectance,
)

#: the simulated scene's grid: UTM 16N (Indian Pines, Indiana), 20 m pixels (AVIRIS at
#: the Indian Pines flight altitude), upper-left corner
SCENE_CRS = "EPSG:32616"


PIXEL_SIZE_M = 20.0


SCENE_ORIGIN = (499_000.0, 4_479_000.0)


def scene_transform():
    """The simulated scene's affine: 20 m pixels, north up, from SCENE_ORIGIN."""
    from rasterio.transform import Affine

    return Affine(PIXEL_SIZE_M, 0.0, SCENE_ORIGIN[0], 0.0, -PIXEL_SIZE_M, SCENE_ORIGIN[1])


def write_scene(scene: Scene, folder: Path) -> None:
    """Write the scene's rasters, classes.json and meta.json into ``folder``."""
    from rasterio.crs import CRS

    crs = CRS.from_string(SCENE_CRS)
    transform = scene_transform()
    names = [f"B{i + 1:03d}" for i in range(len(scene.centers))]
    write_reflectance(folder / SCENE_FILE, to_counts(scene.reflectance, scene.valid), crs,
                      transform, names, scene.centers, scene.fwhm, sensor="AVIRIS (simulated)")
    s2_names, s2_centers, s2_widths = sentinel2_bands()
    s2_tags = [{"resolution_m": b[3]} for b in S2_BANDS]
    write_reflectance(folder / SCENE_S2_FILE, to_counts(scene.reflectance_s2, scene.valid),
                      crs, transform, list(s2_names), s2_centers, s2_widths, s2_tags,
                      sensor="Sentinel-2A MSI (simulated)")
    _write_mask(folder / LABELS_FILE, scene.labels, crs, transform, unlabelled="0",
                classes=",".join(CLASS_NAMES))
    _write_mask(folder / SPLIT_FILE, scene.split, crs, transform,
                **{f"code_{k}": v for k, v in SPLIT_CODES.items()})
    classes = [{"name": c.name, "description": c.description, "color": list(c.color)}
               for c in CLASSES]
    (folder / CLASSES_FILE).write_text(json.dumps(classes, indent=1))
    data = spectral_data_dir()
    meta = {
        "name": HSI_PARCELS,
        "description": "simulated AVIRIS parcel scene on real band set and lab spectra",
        "sources": {
            "aviris_bands": str(data / "92AV3C.spc"),
            **{name: {"file": str(data / rel), "what": what}
               for name, (rel, what) in ENDMEMBER_FILES.items()},
            "soil": "derived from concrete (iron-oxide slope, ferric 900 nm, moisture)",
            "water": "analytic (not measured)",
            "sentinel2_bands": "Sentinel-2A MSI centres/bandwidths (ESA)",
        },
        "crs": SCENE_CRS, "pixel_size_m": PIXEL_SIZE_M, "transform": list(transform)[:6],
        "bands": len(scene.centers), "band_set": "AVIRIS 92AV3C (Indian Pines), 220 bands",
        "reflectance_scale": REFLECTANCE_SCALE, "nodata": NODATA,
        "split_codes": SPLIT_CODES, "classes": list(CLASS_NAMES),
        **scene.meta,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))


def build_hsi_parcels(folder: Path, progress: type) -> None:
    """The simulated AVIRIS parcel benchmark (:mod:`.simulator`) into ``folder``. How hard
    it is (SVM accuracies) is measured by ``benchmarks/hsi_difficulty.py``."""
    started = time.perf_counter()
    scene = make_scene(progress=progress)
    write_scene(scene, folder)
    meta = json.loads((folder / META_FILE).read_text())
    meta["build_seconds"] = round(time.perf_counter() - started, 1)
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))
