"""Fixtures of the dashboard tests: the app under ``AppTest``, sample files, models.

Models come from a ``$DOMAINVIT_MODELS`` folder made here: the committed medseg and medcls
quickstart weights with their configs pointed at a small local class list (so building
them does not prepare the sample datasets they were trained on), and an hsi model
trained for one epoch on a small simulated parcel scene.

Downloads are read back from the media storage ``AppTest`` gives the app.
"""

from __future__ import annotations

import copy
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
import yaml
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

from domainvit import checkpoint as ckpt
from domainvit.dashboard.launch import MODELS_ENV, app_path
from domainvit.datasets.brain import CLASS_NAMES, MRICRON_TEMPLATES
from domainvit.datasets.hsi_scenes.conventions import CLASSES_FILE
from domainvit.datasets.hsi_scenes.parcels import write_scene
from domainvit.datasets.hsi_scenes.simulator import make_scene

ROOT = Path(__file__).resolve().parents[2]
#: the first run imports every task (torch, MONAI, ...): seconds on a busy machine
FIRST_RUN_TIMEOUT = 300
RUN_TIMEOUT = 120


def upload(at: AppTest, key: str, path: Path, name: str | None = None) -> AppTest:
    """Put ``path`` into the file uploader ``key`` (as ``name``) and rerun the app."""
    at.file_uploader(key=key).set_value((name or path.name, path.read_bytes(),
                                         "application/octet-stream"))
    return at.run(timeout=RUN_TIMEOUT)


def errors(at: AppTest) -> list[str]:
    return [element.value for element in at.error]


def open_task_page(task: str, model: str | None = None) -> AppTest:
    """The app (models from ``$DOMAINVIT_MODELS``) on ``task``'s page, with ``model`` (a
    label) chosen."""
    at = AppTest.from_file(str(app_path()), default_timeout=RUN_TIMEOUT)
    at.run(timeout=FIRST_RUN_TIMEOUT)
    assert not at.exception, at.exception
    if model is not None:
        at.session_state[f"{task}-model"] = model
    at.button(key=f"open-{task}").click().run()
    assert not at.exception, at.exception
    if model is not None:
        assert at.selectbox(key=f"{task}-model").value == model
    return at


def save_untrained_model(folder: Path, task_name: str, name: str, model: dict, data: dict,
                         adjust: Callable[[torch.nn.Module], None] | None = None) -> Path:
    """An untrained model of ``task_name`` (seed 0; ``adjust`` may change its weights) with
    its training record, saved into ``folder`` (a models folder) as ``name``."""
    from domainvit.config import validate_config
    from domainvit.engine import build_model, checkpoint_meta
    from domainvit.registry import get_task

    task = get_task(task_name)
    cfg = validate_config({"task": task_name, "seed": 0, "model": model, "data": data}, name)
    torch.manual_seed(0)
    built = build_model(task, cfg)
    task.init_model(built, cfg)
    if adjust is not None:
        with torch.no_grad():
            adjust(built)
    meta = checkpoint_meta(cfg, "weights", epoch=0, step=0, metrics={},
                           data_info=task.data_info(cfg.data))
    path = folder / f"{name}.safetensors"
    ckpt.save_checkpoint(path, ckpt.prefixed("model", built.eval().state_dict()), meta)
    return path


@pytest.fixture
def open_page(models_dir: Path, monkeypatch) -> Callable[..., AppTest]:
    """``open_page(task, model=label)``: the app on the task's page, with ``model`` chosen."""
    monkeypatch.setenv(MODELS_ENV, str(models_dir))
    return open_task_page


@pytest.fixture
def downloaded(monkeypatch) -> Callable[[AppTest, str], bytes]:
    """``downloaded(at, key)``: the bytes behind the download button whose key starts
    with ``key``."""
    stores: list[MemoryMediaFileStorage] = []

    class RecordingStorage(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", RecordingStorage)

    def fetch(at: AppTest, key: str) -> bytes:
        button = next(b for b in at.get("download_button") if b.key.startswith(key))
        return stores[-1].get_file(button.proto.url.rsplit("/", 1)[-1]).content

    return fetch


# --- sample files ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def brain_nifti(tmp_path_factory) -> Path:
    """Colin27 (the real scan behind the medseg benchmark) at 3 mm, stored with its first
    axis flipped (LAS), so that 'the input's space' differs from RAS."""
    source = nib.load(MRICRON_TEMPLATES / "ch2.nii.gz")
    data = np.asarray(source.dataobj)[::-3, ::3, ::3]
    affine = source.affine @ np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 0] *= -1
    affine[:3, 3] = source.affine[:3, :3] @ [source.shape[0] - 1, 0, 0] + source.affine[:3, 3]
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=2)
    path = tmp_path_factory.mktemp("scans") / "colin27 (3 mm).nii.gz"
    nib.save(image, path)
    return path



@pytest.fixture(scope="session")
def ct_series_zip(tmp_path_factory, ct_slice) -> Path:
    """A zipped DICOM series: CT_small stacked into 12 slices 5 mm apart."""
    folder = tmp_path_factory.mktemp("series")
    source = pydicom.dcmread(ct_slice)
    x, y, z = (float(v) for v in source.ImagePositionPatient)
    series_uid = pydicom.uid.generate_uid()
    archive = folder / "ct-series.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for k in range(12):
            dataset = copy.deepcopy(source)
            dataset.InstanceNumber = k + 1
            dataset.ImagePositionPatient = [x, y, z + 5.0 * k]
            dataset.SOPInstanceUID = pydicom.uid.generate_uid()
            dataset.SeriesInstanceUID = series_uid
            path = folder / f"slice{k:02d}.dcm"
            dataset.save_as(path)
            zipped.write(path, f"series/{path.name}")
    return archive


@pytest.fixture(scope="session")
def hsi_scene_dir(tmp_path_factory) -> Path:
    """A small parcel scene: 220 AVIRIS bands with the benchmark's tags, EPSG:32616."""
    folder = tmp_path_factory.mktemp("parcels")
    scene = make_scene(size=48, block=16, margin=2, parcel_size=10.0,
                                 train_fraction=0.1)
    write_scene(scene, folder)
    return folder


# --- models --------------------------------------------------------------------------------


def _relabelled_copy(task: str, name: str, target: Path, data: dict) -> None:
    """The committed checkpoint with ``data`` merged into its config's data section."""
    source = ROOT / "tasks" / task / "weights" / f"{name}.safetensors"
    tensors, meta = ckpt.load_checkpoint(source)
    meta = copy.deepcopy(meta)
    meta["config"]["data"].update(data)
    meta.pop("format", None)
    ckpt.save_checkpoint(target, tensors, meta)


def _train_hsi(scene_dir: Path, run_dir: Path) -> Path:
    from domainvit.engine import train

    classes = json.loads((scene_dir / CLASSES_FILE).read_text())
    config = {
        "task": "hsi", "seed": 0, "run_dir": str(run_dir),
        "model": {"name": "vphype", "in_bands": 220, "pca_components": 6,
                  "conv_channels": [4], "embed_dim": 16, "depth": 1, "num_heads": 2,
                  "kernel_size": 3, "d_state": 4, "expand": 1, "visual_prompts": 2,
                  "text_prompts": False},
        "data": {"root": str(scene_dir), "patch_size": 5, "classes": classes,
                 "samples_per_epoch": 64, "tile_size": 32, "predict_batch_size": 256},
        "train": {"epochs": 1, "batch_size": 32, "log_every": 1, "val_every": 1},
    }
    path = run_dir.parent / "hsi-tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return train(str(path)) / "checkpoints" / "best.safetensors"


#: labels of the test models in the model choice
MEDSEG_MODEL = "medseg-quickstart3d (transdae, models folder)"
MEDCLS_MODEL = "medcls-quickstart (medvitv2, models folder)"
HSI_MODEL = "hsi-tiny/checkpoints/best (vphype, models folder)"


def add_medical_models(folder: Path, classes: Path) -> None:
    """Put the medseg and medcls test checkpoints (:data:`MEDSEG_MODEL`,
    :data:`MEDCLS_MODEL`) into ``folder``, their class lists into ``classes``."""
    (classes / "classes.json").write_text(json.dumps({"names": list(CLASS_NAMES)}))
    _relabelled_copy("medseg", "quickstart3d", folder / "medseg-quickstart3d.safetensors",
                     {"root": str(classes), "num_classes": len(CLASS_NAMES)})
    npz = classes / "classes.npz"
    region_names = list(CLASS_NAMES[1:])
    np.savez(npz, train_images=np.zeros((len(region_names), 64, 64), np.uint8),
             train_labels=np.arange(len(region_names))[:, None])
    _relabelled_copy("medcls", "quickstart", folder / "medcls-quickstart.safetensors",
                     {"npz": str(npz), "class_names": region_names})


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, hsi_scene_dir) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("models")
    add_medical_models(folder, tmp_path_factory.mktemp("classes"))
    _train_hsi(hsi_scene_dir, folder / "hsi-tiny")
    yield folder
