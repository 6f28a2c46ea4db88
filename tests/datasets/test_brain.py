"""The brain benchmarks: lobe grouping, label filling, random poses, region crops, and a
real build from Colin27 / MNI152 (needs Debian's mricron-data, installed by setup)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from domainvit.datasets import brain
from domainvit.datasets.registry import prepare
from domainvit.errors import UserError
from domainvit.registry import load_tasks


def test_every_aal_region_belongs_to_exactly_one_lobe():
    owners = {}
    for region in brain.REGIONS:
        for index in region.aal:
            assert index not in owners, f"AAL {index} in {region.name} and {owners[index]}"
            owners[index] = region.name
    assert sorted(owners) == list(range(1, 117))
    table = brain.lobe_lookup()
    assert table[0] == 0 and set(table[1:]) == set(range(1, brain.NUM_CLASSES))
    # odd AAL indices are left-hemisphere regions, even ones right (cerebellum aside)
    assert brain.CLASS_NAMES[table[1]] == "frontal_L" and brain.CLASS_NAMES[table[2]] == "frontal_R"
    assert brain.CLASS_NAMES[table[71]] == "deep_grey_L"  # caudate
    assert brain.CLASS_NAMES[table[44]] == "occipital_R"  # calcarine


def test_fill_gives_mask_voxels_their_nearest_label():
    labels = np.zeros((1, 1, 9), dtype=np.uint8)
    labels[0, 0, 1], labels[0, 0, 7] = 3, 5
    mask = np.zeros_like(labels, dtype=bool)
    mask[0, 0, 1:8] = True
    filled = brain.fill_to_mask(labels, mask)
    assert filled[0, 0].tolist() == [0, 3, 3, 3, 3, 5, 5, 5, 0]


def _cube_image(shape=(24, 24, 24)):
    data = np.zeros(shape, dtype=np.float32)
    data[6:18, 8:16, 6:18] = 1.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -np.array(shape) + 1.0
    labels = (data > 0).astype(np.uint8)
    labels[6:12, 8:16, 6:18] = 2
    return nib.Nifti1Image(data, affine), nib.Nifti1Image(labels, affine)


def test_pose_moves_the_head_but_keeps_the_grid():
    image, labels = _cube_image()
    transform = np.eye(4)
    transform[0, 3] = 4.0  # 4 mm = 2 voxels along x
    moved_image, moved_labels = brain.move(image, labels, transform)
    assert moved_image.shape == image.shape and np.allclose(moved_image.affine, image.affine)
    assert np.array_equal(np.asarray(moved_labels.dataobj)[8:20], np.asarray(labels.dataobj)[6:18])
    # the atlas-copy baseline resamples by affines: it does not know the pose
    assert np.array_equal(brain.atlas_copy(labels, moved_labels), np.asarray(labels.dataobj))


def test_random_pose_is_rigid_plus_scale_about_the_centre():
    rng = np.random.default_rng(0)
    centre = np.array([1.0, -18.0, 18.0])
    pose = brain.random_pose(rng, centre, max_degrees=10, max_shift_mm=0, max_scale=0.05)
    linear = pose[:3, :3]
    scale = np.cbrt(np.linalg.det(linear))
    assert 0.95 <= scale <= 1.05
    assert np.allclose(linear @ linear.T / scale**2, np.eye(3), atol=1e-9)
    assert np.allclose(pose @ np.append(centre, 1), np.append(centre, 1))


def test_region_crops_are_centred_inside_their_region():
    shape = (40, 40, 20)
    labels = np.zeros(shape, dtype=np.uint8)
    intensity = np.zeros(shape, dtype=np.float32)
    for label in range(1, brain.NUM_CLASSES):
        # one slab of 3 x-columns per class, each a distinct intensity
        labels[3 * label: 3 * label + 3, 4:36, 4:16] = label
        intensity[3 * label: 3 * label + 3, 4:36, 4:16] = 10.0 * label
    affine = np.diag([brain.CROP_SPACING_MM] * 3 + [1.0])
    images, targets = brain.region_crops(nib.Nifti1Image(intensity, affine),
                                         nib.Nifti1Image(labels, affine), 3,
                                         np.random.default_rng(1), min_depth_mm=0.0)
    assert images.shape == (3 * (brain.NUM_CLASSES - 1), brain.CROP_SIZE, brain.CROP_SIZE)
    assert images.dtype == np.uint8 and targets.shape == (len(images), 1)
    centre = brain.CROP_SIZE // 2
    by_class = {int(t): [] for t in targets[:, 0]}
    for crop, target in zip(images, targets[:, 0], strict=True):
        middle = crop[centre - 1: centre + 1, centre - 1: centre + 1]
        by_class[int(target)].append(float(middle.mean()))
    # the centre intensity rises with the class index (class i has intensity 10 * (i + 1))
    means = [np.mean(by_class[c]) for c in sorted(by_class)]
    assert all(b > a for a, b in zip(means, means[1:], strict=False))


def test_missing_mricron_data_names_the_package(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DOMAINVIT_MRICRON", str(tmp_path))
    with pytest.raises(UserError, match="mricron-data"):
        brain.colin27()


@pytest.fixture(scope="module")
def lobes_root() -> Path:
    load_tasks()  # the medseg task registers the benchmark
    return prepare(brain.BRAIN_LOBES)


def test_real_benchmark_tests_another_brain_in_new_poses(lobes_root: Path):
    names = json.loads((lobes_root / "classes.json").read_text())["names"]
    assert names == list(brain.CLASS_NAMES)
    train = nib.load(lobes_root / "train" / "colin27_lobes.nii.gz")
    tests = sorted((lobes_root / "test").glob("mni152_pose*_lobes.nii.gz"))
    assert len(tests) == 4
    test = nib.load(tests[0])
    assert test.shape == (197, 233, 189) and train.shape == (181, 217, 181)
    truth = np.asarray(test.dataobj)
    assert set(np.unique(truth)) == set(range(brain.NUM_CLASSES))
    # copying the atlas through the affines misses the posed head by a wide margin
    copied = brain.atlas_copy(train, test)
    dice = [2 * np.sum((copied == k) & (truth == k)) / (np.sum(copied == k) + np.sum(truth == k))
            for k in range(1, brain.NUM_CLASSES)]
    assert 0.3 < np.mean(dice) < 0.8
