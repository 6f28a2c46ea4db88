"""timm's own model tests, run on every model this project registers with timm.

The cases come from ``tests/test_models.py`` of the source distribution of the installed
timm (downloaded once with ``pip download`` into a cache; ``DOMAINVIT_TIMM_TESTS`` may
name a copy of that file instead, for machines without network). They are run as timm
runs them, on the models timm's own filters select for them: forward (with gradient
checkpointing), backward (every parameter gets a gradient), default config (the cfg's
input and pool size, classifier reset and removal, ``device``/``dtype`` factory
arguments, the meta device), feature extraction (``features_only``) and
``forward_intermediates`` (timm selects those two by the name of the file a model lives
in, a list of timm's own files, so they are called here for ours). TorchScript and FX
are not supported (README, Backbones).

timm's cases take 2D images, so they run on the models whose cfg gives a 2D input size;
the 3D variants (no input size, a 3D pool size) are tested in test_backbone.py.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
import timm
import torch
from timm.models import get_pretrained_cfg_value, model_entrypoint

import domainvit.backbone  # noqa: F401  (registers the backbones with timm)
from domainvit.registry import load_tasks

# Each takes (model_name, batch_size), the default-config case also timm's cfg_device.
CASES = (
    "test_model_forward",
    "test_model_backward",
    "test_model_default_cfgs",
    "test_model_forward_features",
    "test_model_forward_intermediates",
    "test_model_forward_intermediates_features",
)
# timm lists these by module name, not by the filters the other cases use.
SELECTED_BY_MODULE = {"test_model_forward_intermediates",
                      "test_model_forward_intermediates_features"}
SDIST_MEMBER = "tests/test_models.py"
SIZES = ("micro", "tiny", "small", "base")
BUILTIN_MARKS = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings"}


def project_models() -> list[str]:
    """The timm models registered by domainvit's modules (the backbones and every task's)."""
    load_tasks()
    return [name for name in timm.list_models()
            if model_entrypoint(name).__module__.startswith("domainvit.")]


def is_2d(name: str) -> bool:
    """A 2D model's cfg has an input size ``(C, H, W)``; a 3D one's has none, and a 3D pool
    size."""
    return len(get_pretrained_cfg_value(name, "pool_size")) == 2


def smallest_of_each_family(names: list[str]) -> set[str]:
    """Per family (the name up to its size, ``domainvit_nat`` of ``domainvit_nat_tiny``),
    the variant with the smallest size name; a name without one is its own family."""
    smallest: dict[str, tuple[int, str]] = {}
    for name in names:
        family, _, size = name.rpartition("_")
        rank = SIZES.index(size) if family and size in SIZES else -1
        key = family if rank >= 0 else name
        smallest[key] = min(smallest.get(key, (rank, name)), (rank, name))
    return {name for _, name in smallest.values()}


MODELS = project_models()
MODELS_2D = [name for name in MODELS if is_2d(name)]
# The larger variants are the same classes at other widths and depths: make test runs
# them, make test-fast only the smallest of each family.
FAST_MODELS = smallest_of_each_family(MODELS_2D)


def _cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "domainvit-tests" / f"timm-{timm.__version__}"


def _download_test_file(target: Path) -> None:
    """Fetch the installed timm's sdist and keep only its tests/test_models.py."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "--quiet", f"timm=={timm.__version__}", "-d", tmp],
            capture_output=True, text=True, timeout=300,
        )
        sdists = list(Path(tmp).glob("timm-*.tar.gz"))
        if result.returncode or not sdists:
            pytest.fail(
                f"could not download the source distribution of timm {timm.__version__} "
                f"({result.stderr.strip()[-300:]}); set DOMAINVIT_TIMM_TESTS to a copy of its "
                f"{SDIST_MEMBER}", pytrace=False,
            )
        with tarfile.open(sdists[0]) as archive:
            # One named member, read rather than extracted: no path from the archive is used.
            member = archive.getmember(f"{sdists[0].name.removesuffix('.tar.gz')}/{SDIST_MEMBER}")
            source = archive.extractfile(member).read()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(source)
    partial.replace(target)


@pytest.fixture(scope="module")
def timm_tests(request: pytest.FixtureRequest) -> ModuleType:
    """timm's test_models.py, imported after every project model is registered (its
    parametrisations list the models at import)."""
    path = Path(os.environ.get("DOMAINVIT_TIMM_TESTS") or _cache_dir() / "test_models.py")
    if not path.is_file():
        _download_test_file(path)
    # timm's markers (its CI's lanes, pytest-timeout's ``timeout``), declared so that the
    # file imports under this suite's --strict-markers
    for marker in set(re.findall(r"@pytest\.mark\.(\w+)", path.read_text())) - BUILTIN_MARKS:
        request.config.addinivalue_line("markers", f"{marker}: a marker of timm's tests")
    spec = importlib.util.spec_from_file_location("timm_test_models", path)
    module = importlib.util.module_from_spec(spec)
    # Importing it switches TorchScript's profiling mode off for the whole process.
    profiling = torch._C._jit_set_profiling_mode(True)
    try:
        spec.loader.exec_module(module)
    finally:
        torch._C._jit_set_profiling_mode(profiling)
    return module


def parametrized(case, argument: str) -> list:
    """The values timm's ``@pytest.mark.parametrize`` gives ``argument`` of ``case``."""
    for mark in getattr(case, "pytestmark", ()):
        if mark.name == "parametrize" and mark.args[0] == argument:
            return list(mark.args[1])
    raise LookupError(f"{case.__name__} is not parametrised over {argument}")


def test_every_2d_model_is_checked_and_3d_cfgs_say_so():
    assert {"domainvit_nat_tiny", "domainvit_swin_tiny", "domainvit_maxvit_tiny",
            "medvitv2_micro"} <= set(MODELS_2D)
    for name in MODELS_2D:
        assert len(get_pretrained_cfg_value(name, "input_size")) == 3
    models_3d = set(MODELS) - set(MODELS_2D)
    assert "domainvit_nat3d_tiny" in models_3d
    assert {"domainvit_nat_tiny", "domainvit_swin_tiny", "domainvit_maxvit_tiny",
            "medvitv2_micro"} == FAST_MODELS
    for name in models_3d:
        pool_size = get_pretrained_cfg_value(name, "pool_size")
        assert len(pool_size) == 3 and get_pretrained_cfg_value(name, "input_size") is None
        # on the meta device: shapes without the compute
        model = timm.create_model(name, num_classes=0, global_pool="", device="meta").eval()
        total_stride = model.feature_info[-1]["reduction"]
        volume = torch.randn(1, model.in_chans, *(total_stride * n for n in pool_size),
                             device="meta")
        assert model(volume).shape[2:] == pool_size


@pytest.mark.parametrize("model_name", [
    name if name in FAST_MODELS else pytest.param(name, marks=pytest.mark.slow)
    for name in MODELS_2D
])
@pytest.mark.parametrize("case_name", CASES)
def test_timm_model_case_passes(timm_tests, case_name, model_name):
    case = getattr(timm_tests, case_name)
    if case_name not in SELECTED_BY_MODULE:
        assert model_name in parametrized(case, "model_name"), (
            f"timm's filters leave {model_name} out of {case_name}")
    arguments = {"model_name": model_name, "batch_size": parametrized(case, "batch_size")[0]}
    if "cfg_device" in inspect.signature(case).parameters:
        # timm's cfg_device fixture: the meta device where torch has device contexts
        arguments["cfg_device"] = "meta" if timm_tests._HAS_DEVICE_CONTEXT else "cpu"
    torch.manual_seed(0)
    case(**arguments)
