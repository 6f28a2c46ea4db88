"""Spatially disjoint train/val/test splits of labelled pixels in a scene.

Neighbouring pixels of remote-sensing scenes are strongly correlated, and the patches
around them overlap: a random pixel split puts near-copies of test patches into the
training set and inflates accuracy. Splitting by blocks, with a guard margin (at least
the patch radius) between training and test blocks, keeps them apart.
"""

from __future__ import annotations

import numpy as np

#: values of a split map
SPLIT_NONE, SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = 0, 1, 2, 3


def block_split(labels: np.ndarray, block: int, margin: int, train_fraction: float,
                val_fraction: float, seed: int | np.random.Generator,
                valid: np.ndarray | None = None,
                min_train: int = 5, min_val: int = 2, test_share: float = 0.5,
                attempts: int = 200) -> tuple[np.ndarray, dict]:
    """A split map (0 none, 1 train, 2 val, 3 test) of ``labels`` (0 unlabelled, 1..K).

    The scene is cut into ``block x block`` squares; ``test_share`` of them (at random,
    redrawn up to ``attempts`` times until every class has pixels in both parts) are
    test blocks, whose labelled pixels are all test. From labelled pixels of the other
    blocks farther than ``margin`` from any test block, ``train_fraction`` (at least
    ``min_train``) and ``val_fraction`` (at least ``min_val``) of each class's pixels in
    the training blocks are drawn as train and val. ``seed``: an int or a numpy
    ``Generator``. Returns the map and a summary.
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    valid = np.ones(labels.shape, bool) if valid is None else np.asarray(valid, bool)
    labelled = valid & (labels > 0)
    classes = np.unique(labels[labelled])
    if len(classes) == 0:
        raise ValueError("the label map has no labelled pixels")
    rng = np.random.default_rng(seed)
    h, w = labels.shape
    nby, nbx = -(-h // block), -(-w // block)
    block_id = (np.arange(h)[:, None] // block) * nbx + np.arange(w)[None, :] // block
    guard = np.ones((2 * margin + 1,) * 2, dtype=bool)
    n_test = max(1, int(round(test_share * nby * nbx)))
    for _ in range(attempts):
        test_blocks = np.zeros(nby * nbx, dtype=bool)
        test_blocks[rng.permutation(nby * nbx)[:n_test]] = True
        in_test = test_blocks[block_id]
        near_test = ndimage.binary_dilation(in_test, structure=guard) if margin else in_test
        eligible = ~near_test & labelled
        test = in_test & labelled
        if all(np.count_nonzero(eligible & (labels == c)) >= min_train + min_val
               and np.count_nonzero(test & (labels == c)) > 0 for c in classes):
            break
    else:
        raise ValueError(f"no split into {block}-pixel blocks puts every class in both "
                         f"training and test blocks; use smaller blocks")
    split = np.zeros(labels.shape, dtype=np.uint8)
    split[test] = SPLIT_TEST
    in_train_blocks = ~in_test & labelled
    per_class = {}
    for c in classes:
        pool = np.flatnonzero((eligible & (labels == c)).ravel())
        base = np.count_nonzero(in_train_blocks & (labels == c))
        n_train = min(max(min_train, int(round(train_fraction * base))), len(pool) - min_val)
        n_val = min(max(min_val, int(round(val_fraction * base))), len(pool) - n_train)
        chosen = rng.choice(pool, size=n_train + n_val, replace=False)
        split.ravel()[chosen[:n_train]] = SPLIT_TRAIN
        split.ravel()[chosen[n_train:]] = SPLIT_VAL
        per_class[int(c)] = {"train_blocks": int(base), "train": int(n_train),
                             "val": int(n_val),
                             "test": int(np.count_nonzero(test & (labels == c)))}
    info = {"block": block, "margin": margin, "blocks_per_row": nbx,
            "test_blocks": np.flatnonzero(test_blocks).tolist(), "per_class": per_class}
    return split, info
