"""The ``data:`` section of desmoke configs and the datasets it builds.

``dataset: desmoke-tissue`` (the sample benchmark): training pairs are simulated on the
fly (the scattering model over augmented crops of the training regions of the tissue
images, :mod:`domainvit.datasets.desmoke_tissue`); validation and test are the prepared
pairs of the held-out regions, read from their files exactly as a user's data is.

``dataset: folder`` with ``root``: a user's real paired frames, in the DesmokeData layout
(``N.png`` smoky beside ``N_gt.png`` clean) or as two parallel folders ``smoky/`` and
``clean/`` (:func:`domainvit.datasets.frames.find_pairs`). A split ``s`` reads
``root/s`` when that folder exists; otherwise validation and test read ``root`` itself,
and training needs ``root/train``. ``--set data.root=DIR`` on the sample benchmark's
configs scores any such folder (``domainvit eval``).

Items: ``input`` the smoky frame ``[3, H, W]`` in [0, 1]; ``target`` the clean frame.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch.utils.data import Dataset

from domainvit.datasets.desmoke_tissue import DESMOKE_TISSUE, SmokeSettings, SmokeSimulator
from domainvit.datasets.frames import find_pairs, read_frame, read_pair, write_frame
from domainvit.datasets.registry import prepare
from domainvit.errors import UserError
from domainvit.schema import StrictModel
from domainvit.tasks.desmoke.loss import DesmokeLossWeights

__all__ = ["DesmokeData", "build_dataset", "sample_frames", "smoke_settings"]


class DesmokeData(StrictModel):
    dataset: Literal["desmoke-tissue", "folder"] = DESMOKE_TISSUE
    #: a folder of real paired frames (see the module docstring)
    root: Path | None = None
    #: side of the simulated training crops
    crop: int = Field(96, ge=16)
    #: optical thickness range of the simulated smoke (t = exp(-beta * density))
    beta: tuple[float, float] = SmokeSettings().beta
    seed: int = 0
    #: training pairs per epoch (simulated on the fly, or crops of ``root/train``)
    train_samples: int = Field(2048, gt=0)
    #: prediction: the network runs on the frame scaled by this factor and its smooth
    #: correction fields are applied at full resolution (speed for a little quality)
    process_scale: float = Field(1.0, gt=0, le=1)
    #: video: exponential smoothing of the correction fields over frames (0: none)
    temporal_smoothing: float = Field(0.0, ge=0, lt=1)
    #: prediction: frames larger than ``tile`` on a side are processed in overlapping tiles
    tile: int = Field(1024, ge=64)
    tile_overlap: int = Field(64, ge=0)
    loss: DesmokeLossWeights = DesmokeLossWeights()

    @model_validator(mode="after")
    def _check(self) -> DesmokeData:
        if self.dataset == "folder" and self.root is None:
            raise ValueError("dataset: folder needs data.root, the folder of paired frames")
        if not 0 <= self.beta[0] <= self.beta[1]:
            raise ValueError(f"beta must be an increasing non-negative range, got {self.beta}")
        if self.tile_overlap * 2 >= self.tile:
            raise ValueError(f"tile_overlap {self.tile_overlap} must be under half of tile "
                             f"{self.tile}")
        return self


def smoke_settings(cfg: DesmokeData) -> SmokeSettings:
    return replace(SmokeSettings(), size=cfg.crop, beta=tuple(cfg.beta))


def _item(cfg: DesmokeData, smoky: np.ndarray, clean: np.ndarray) -> dict[str, torch.Tensor]:
    return {"input": torch.as_tensor(np.ascontiguousarray(smoky), dtype=torch.float32),
            "target": torch.as_tensor(np.ascontiguousarray(clean), dtype=torch.float32),
            # what the loss needs of the config (Task.loss sees the batch only)
            "loss_weights": torch.tensor([getattr(cfg.loss, name)
                                          for name in DesmokeLossWeights.model_fields])}


class SimulatedPairs(Dataset):
    """Training: a fresh simulated pair each draw (seeded from torch's generator, so runs
    are reproducible under the engine's seed)."""

    def __init__(self, cfg: DesmokeData) -> None:
        self.cfg = cfg
        self.simulator = SmokeSimulator(smoke_settings(cfg), "train", seed=cfg.seed)

    def __len__(self) -> int:
        return self.cfg.train_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        draw = int(torch.randint(0, 2**62, (1,)))
        pair = self.simulator.pair(index, epoch=draw)
        return _item(self.cfg, pair["smoky"], pair["clean"])


def _channels_first_pair(smoky_path: Path, clean_path: Path) -> tuple[np.ndarray, np.ndarray]:
    smoky, clean, _ = read_pair(smoky_path, clean_path)
    return smoky.transpose(2, 0, 1), clean.transpose(2, 0, 1)


class PairedFrames(Dataset):
    """Pairs of files, whole frames (validation, test, a user's folder)."""

    def __init__(self, cfg: DesmokeData, pairs: list[tuple[Path, Path]]) -> None:
        self.cfg = cfg
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _item(self.cfg, *_channels_first_pair(*self.pairs[index]))


class CroppedPairs(Dataset):
    """Training on a user's pairs: random ``crop``-pixel crops with flips, the same window
    in both frames."""

    def __init__(self, cfg: DesmokeData, pairs: list[tuple[Path, Path]]) -> None:
        self.cfg = cfg
        self.frames = [_channels_first_pair(*pair) for pair in pairs]
        small = [p[0].name for p, f in zip(pairs, self.frames, strict=True)
                 if min(f[0].shape[1:]) < cfg.crop]
        if small:
            raise UserError(f"training frames smaller than data.crop={cfg.crop}: "
                            f"{', '.join(small[:3])}")

    def __len__(self) -> int:
        return self.cfg.train_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
        smoky, clean = self.frames[int(rng.integers(len(self.frames)))]
        size = self.cfg.crop
        top = int(rng.integers(smoky.shape[1] - size + 1))
        left = int(rng.integers(smoky.shape[2] - size + 1))
        window = (slice(None), slice(top, top + size), slice(left, left + size))
        smoky, clean = smoky[window], clean[window]
        if rng.random() < 0.5:
            smoky, clean = smoky[..., ::-1], clean[..., ::-1]
        if rng.random() < 0.5:
            smoky, clean = smoky[:, ::-1], clean[:, ::-1]
        return _item(self.cfg, smoky, clean)


def split_pairs(cfg: DesmokeData, split: str) -> list[tuple[Path, Path]]:
    """The file pairs of ``split`` (``val`` or ``test``; ``train`` for a user's folder)."""
    if cfg.root is not None:
        root = Path(cfg.root).expanduser()
        if (root / split).is_dir():
            return find_pairs(root / split)
        if split == "train":
            raise UserError(f"training on {root} needs its pairs in {root / 'train'}")
        return find_pairs(root)
    return find_pairs(prepare(DESMOKE_TISSUE) / split)


def build_dataset(cfg: DesmokeData, split: str) -> Dataset:
    if split not in ("train", "val", "test"):
        raise UserError(f"desmoke has the splits train, val and test, not {split!r}")
    if split == "train":
        if cfg.dataset == "folder":
            return CroppedPairs(cfg, split_pairs(cfg, "train"))
        prepare(DESMOKE_TISSUE)  # the benchmark's validation pairs are needed anyway
        return SimulatedPairs(cfg)
    return PairedFrames(cfg, split_pairs(cfg, split))


def sample_frames(cfg: DesmokeData, folder: Path, count: int = 2) -> list[Path]:
    """``count`` smoky test frames of the sample benchmark as PNGs: what a user's frames
    look like."""
    pairs = find_pairs(prepare(DESMOKE_TISSUE) / "test")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (smoky_path, _) in enumerate(pairs[:count]):
        frame, bits = read_frame(smoky_path)
        path = folder / f"smoky_{i}.png"
        write_frame(path, frame, bits)
        written.append(path)
    return written
