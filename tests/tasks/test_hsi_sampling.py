"""Training epochs shorter than the training set draw from all of it: a sampler over
``range(samples_per_epoch)`` alone would only ever reach the first pixels in row order
(the top of the scene)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domainvit.tasks.hsi.data import BlockWindows, PixelPatches, load_scene, split_pixels
from tests.tasks.test_hsi_dense import SIZE, _data, _decode, _write_scene


@pytest.mark.parametrize("dense_block", [0, 4])
def test_short_epochs_draw_training_pixels_from_the_whole_scene(tmp_path, dense_block):
    data = _data(_write_scene(tmp_path), dense_block=dense_block, samples_per_epoch=64,
                 augment=False)
    train_rows = split_pixels(load_scene(data), "train")[0]
    assert len(train_rows) > 4 * 64  # an epoch covers a small part of the training pixels
    dataset = (BlockWindows if dense_block else PixelPatches)(data, "train")
    assert len(dataset) == 64
    torch.manual_seed(0)
    rows = []
    for index in range(len(dataset)):
        window = dataset[index]["input"]
        centre = window.shape[-1] // 2
        rows.append(_decode(window)["row"][centre, centre])
    # the epoch's pixels spread over the scene's rows, not the first 64 training pixels
    first_rows = train_rows[:64]
    assert np.max(rows) > first_rows.max() + SIZE // 4
    assert np.ptp(rows) > SIZE // 2


def test_long_epochs_visit_every_training_pixel_in_turn(tmp_path):
    data = _data(_write_scene(tmp_path), dense_block=0, augment=False)
    count = len(split_pixels(load_scene(data), "train")[0])
    dataset = PixelPatches(data.model_copy(update={"samples_per_epoch": 2 * count}), "train")
    centre = dataset[0]["input"].shape[-1] // 2
    seen = {(int(_decode(dataset[i]["input"])["row"][centre, centre]),
             int(_decode(dataset[i]["input"])["col"][centre, centre])) for i in range(count)}
    assert len(seen) == count
