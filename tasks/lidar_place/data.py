"""The lidar_place task's data: training places cut on the fly, place folders to score.

- Training (:class:`TrainingPlaces`): every item is one place of the training area seen
  ``views`` times: submaps cut around poses a few metres apart (all within
  ``positive_m`` of each other), each rotated about z at random and degraded (point
  dropout, a density gradient, a sector occluded, coordinate noise, a smaller cut), half
  of the places mirrored, so the model learns what stays the same at a place under the
  perturbations queries meet.
- Evaluation (:class:`PlaceFolderDataset`): a place folder
  (:func:`domainvit.datasets.pointcloud.read_place_folder`: ``ROOT/database``,
  ``ROOT/queries``, ``ROOT/poses.csv``, or the PointNetVLAD/Oxford layout), database
  entries first, then the queries; targets are ``(x, y, z, is_query)``.

Every cloud goes through :func:`domainvit.datasets.pointcloud.preprocess` (crop, centre,
voxels, a fixed point budget) into ``[points, 5]`` rows (x, y, z, intensity, valid).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, model_validator
from torch.utils.data import Dataset

from domainvit.datasets.lidar_autzen import (
    LIDAR_AUTZEN,
    read_split_record,
    read_train_cloud,
)
from domainvit.datasets.pointcloud import (
    PlaceFolder,
    PointCloud,
    normalise_intensity,
    outside_sector,
    preprocess,
    read_place_folder,
    read_point_cloud,
    rotate_z,
)
from domainvit.datasets.registry import prepare
from domainvit.errors import UserError
from domainvit.schema import StrictModel
from domainvit.tasks.lidar_place.rerank import DEFAULT_TOP_K


class LidarPlaceData(StrictModel):
    #: the sample dataset training and the default evaluation come from
    dataset: str | None = LIDAR_AUTZEN
    #: a place folder to score instead of the dataset's held-out folder (``eval``)
    root: Path | None = None
    #: the database ``predict`` retrieves from: a place folder or a folder of clouds
    database: Path | None = None
    #: submap radius (metres, horizontal): the crop and the model's octree extent
    radius: float = Field(20.0, gt=0)
    #: points per submap after pre-processing (padding rows when fewer)
    points: int = Field(2048, ge=16)
    #: voxel edge (metres) for down-sampling; none keeps every point
    voxel: float | None = Field(None, gt=0)
    #: remove ground points before the crop
    ground: bool = False
    #: a database entry within this horizontal distance of a query is a true match
    positive_m: float = Field(25.0, gt=0)
    #: training: clouds farther apart than this are negatives
    negative_m: float = Field(50.0, gt=0)
    #: training: clouds per place in one item (each one's positives)
    views: int = Field(4, ge=2)
    #: training: places per epoch
    samples_per_epoch: int = Field(512, gt=0)
    #: training: the views' poses lie within this distance of the place's centre
    view_offset_m: float = Field(8.0, ge=0)
    #: training augmentation: rotation about z, dropout, density, occlusion, noise
    augment: bool = True
    #: training: mirror half of the places (doubles the variety of a small training area)
    mirror: bool = True
    #: training: the share of points kept lies between this and 1
    min_keep: float = Field(0.3, gt=0, le=1)
    #: training: coordinate noise (metres, standard deviation) up to this
    noise_m: float = Field(0.3, ge=0)
    #: training: 30% of the views are cut with a radius between this share of
    #: ``radius`` and ``radius`` (queries cut smaller than the database's submaps)
    min_reach: float = Field(0.6, gt=0, le=1)
    #: training: the chance that a sector of 30-90 degrees is occluded
    occlusion: float = Field(0.3, ge=0, le=1)
    #: matches listed per query by ``predict``
    top_k: int = Field(25, gt=0)
    #: geometric re-ranking (:mod:`~domainvit.tasks.lidar_place.rerank`) of this many
    #: best descriptor matches in ``eval`` and ``predict`` (0: descriptor order only;
    #: validation during training never re-ranks)
    rerank_top_k: int = Field(DEFAULT_TOP_K, ge=0)
    #: re-ranking height maps cover this multiple of ``radius`` around a cloud's centre
    rerank_reach: float = Field(1.5, ge=1)
    #: re-ranking height-map cell (metres) and yaw step (degrees)
    rerank_cell_m: float = Field(1.0, gt=0)
    rerank_yaw_step_deg: float = Field(5.0, gt=0, le=90)

    @model_validator(mode="after")
    def _check(self) -> LidarPlaceData:
        if self.negative_m < self.positive_m:
            raise ValueError(f"negative_m ({self.negative_m}) must be at least positive_m "
                             f"({self.positive_m})")
        if 2 * self.view_offset_m > self.positive_m:
            raise ValueError(f"views up to 2 x view_offset_m = {2 * self.view_offset_m} m "
                             f"apart would not all be positives ({self.positive_m} m)")
        return self


def dataset_folder(cfg: LidarPlaceData) -> Path:
    if cfg.dataset is None:
        raise UserError("data.dataset is not set: training needs a dataset with a training "
                        "cloud (e.g. lidar-autzen)")
    return prepare(cfg.dataset)


def place_folder(cfg: LidarPlaceData, split: str) -> PlaceFolder:
    """The place folder of ``split``: ``data.root`` for ``test`` when set, else the
    dataset's ``val/`` or ``test/`` folder."""
    if split == "test" and cfg.root is not None:
        return read_place_folder(cfg.root)
    if split not in ("val", "test"):
        raise UserError(f"lidar_place has no place folder for split {split!r} "
                        "(val or test)")
    return read_place_folder(dataset_folder(cfg) / split)


def file_rng(name: str) -> np.random.Generator:
    """The pre-processing generator of a file, seeded by its name: a cloud is sampled the
    same way in evaluation, in prediction and in a database's cached descriptors."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def cloud_rows(cloud: PointCloud, cfg: LidarPlaceData, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(centre, rows)`` of a cloud: :func:`preprocess` with the data config."""
    return preprocess(cloud, points=cfg.points, voxel=cfg.voxel, radius=cfg.radius,
                      ground=cfg.ground, rng=rng)


def perturb(xyz: np.ndarray, intensity: np.ndarray | None, cfg: LidarPlaceData,
            rng: np.random.Generator, mirror: bool = False
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """A training view's degradations, on local coordinates: point dropout, a density
    gradient, an occluded sector, a rotation about z and coordinate noise; with
    ``mirror`` (decided once per place, for all its views) its mirror image, another
    plausible place."""
    count = len(xyz)
    keep = rng.random(count) < rng.uniform(cfg.min_keep, 1.0)
    if rng.random() < 0.3:  # a density gradient across the submap (scan-line overlap)
        direction = rng.uniform(0, 2 * np.pi)
        along = xyz[:, 0] * np.cos(direction) + xyz[:, 1] * np.sin(direction)
        span = max(float(np.ptp(along)), 1e-6) if count else 1.0
        share = cfg.min_keep + (1 - cfg.min_keep) * (along - along.min(initial=0.0)) / span
        keep &= rng.random(count) < share
    if rng.random() < cfg.occlusion:
        start = rng.uniform(-np.pi, np.pi)
        width = np.deg2rad(rng.uniform(30, 90))
        keep &= outside_sector(xyz, start, width)
    if keep.sum() < 16:  # keep a usable view
        keep[:] = True
    xyz = xyz[keep]
    intensity = None if intensity is None else intensity[keep]
    xyz = rotate_z(xyz, rng.uniform(0, 2 * np.pi))
    if mirror:
        xyz = xyz * np.array([-1.0, 1.0, 1.0])
    xyz = xyz + rng.normal(scale=rng.uniform(0, cfg.noise_m), size=xyz.shape)
    return xyz, intensity


#: a training place has at least this many points within the radius of its centre
MIN_PLACE_POINTS = 300


class TrainingPlaces(Dataset):
    """Places of the training area, ``views`` perturbed submaps each.

    An item is ``{"input": [views, points, 5], "target": [views, 4], "thresholds": [2]}``
    with the views' world positions (x, y, z) and 0 (not a query) in the target, and the
    positive and negative distances the loss compares them with. Place centres are drawn
    at random in the training area at least one radius from its edges; the
    ``samples_per_epoch`` items of an epoch differ from epoch to epoch (each draw uses
    torch's generator, seeded and restored by the engine).
    """

    def __init__(self, cfg: LidarPlaceData) -> None:
        from scipy.spatial import cKDTree

        folder = dataset_folder(cfg)
        cloud = read_train_cloud(folder)
        record = read_split_record(folder)
        self.cfg = cfg
        self.xyz = cloud[:, :3]
        self.intensity = cloud[:, 3].astype(np.float32) if cloud.shape[1] > 3 else None
        self.tree = cKDTree(self.xyz[:, :2])
        area = record["train_area"]
        margin = cfg.radius * 0.5
        self.low = np.array([area["xmin"] + margin, area["ymin"] + margin])
        self.high = np.array([area["xmax"] - margin, area["ymax"] - margin])
        if np.any(self.high <= self.low):
            raise UserError(f"the training area of {folder} is smaller than a submap of "
                            f"radius {cfg.radius} m")

    def __len__(self) -> int:
        return self.cfg.samples_per_epoch

    def view(self, pose: np.ndarray, rng: np.random.Generator, mirror: bool = False
             ) -> np.ndarray:
        """``[points, 5]`` rows of the submap around ``pose`` (x, y), perturbed."""
        cfg = self.cfg
        # some views cover less ground than a full submap (other submap sizes)
        reach = cfg.radius * (rng.uniform(cfg.min_reach, 1.0) if cfg.augment
                              and rng.random() < 0.3 else 1.1)
        cloud = self.submap(pose, reach)
        if len(cloud.xyz) < MIN_PLACE_POINTS // 4:  # a small cut into an empty patch
            cloud = self.submap(pose, cfg.radius * 1.1)
        xyz, intensity = cloud.xyz, cloud.intensity
        if cfg.augment:
            xyz, intensity = perturb(xyz, intensity, cfg, rng, mirror)
        # as a file's intensity is read: normalised per cloud
        intensity = None if intensity is None else normalise_intensity(intensity)
        return cloud_rows(PointCloud(xyz, intensity, cloud.source), cfg, rng)[1]

    def submap(self, pose: np.ndarray, reach: float) -> PointCloud:
        """The training cloud's points within ``reach`` metres (horizontal) of ``pose``,
        in local coordinates (minus the pose and the points' median height)."""
        index = np.asarray(self.tree.query_ball_point(pose, reach), dtype=np.int64)
        xyz = self.xyz[index]
        centre = np.array([pose[0], pose[1], np.median(xyz[:, 2]) if len(xyz) else 0.0])
        intensity = None if self.intensity is None else self.intensity[index]
        return PointCloud(xyz - centre, intensity,
                          f"training submap at {pose[0]:.0f}, {pose[1]:.0f}")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
        cfg = self.cfg
        for _ in range(100):  # a place with points (the cloud has empty patches)
            centre = rng.uniform(self.low, self.high)
            if self.tree.query_ball_point(centre, cfg.radius, return_length=True) >= (
                    MIN_PLACE_POINTS):
                break
        mirror = cfg.augment and cfg.mirror and bool(rng.random() < 0.5)
        rows, targets = [], []
        for _ in range(cfg.views):
            for _ in range(20):  # a pose with points around it
                radius = cfg.view_offset_m * np.sqrt(rng.random())
                angle = rng.uniform(0, 2 * np.pi)
                pose = centre + radius * np.array([np.cos(angle), np.sin(angle)])
                if self.tree.query_ball_point(pose, cfg.radius, return_length=True) >= (
                        MIN_PLACE_POINTS // 2):
                    break
            rows.append(self.view(pose, rng, mirror))
            targets.append([pose[0], pose[1], 0.0, 0.0])
        return {"input": torch.from_numpy(np.stack(rows)),
                "target": torch.tensor(targets, dtype=torch.float64).float(),
                "thresholds": torch.tensor([cfg.positive_m, cfg.negative_m])}


class PlaceFolderDataset(Dataset):
    """The clouds of a place folder, database first: ``{"input": [points, 5], "target":
    (x, y, z, is_query), "thresholds": [2], "path", "bin_format"}`` (the file,
    for geometric re-ranking); the loss of an evaluation batch is the Smooth-AP among its
    clouds. Pre-processing is seeded per file, so scores repeat."""

    def __init__(self, folder: PlaceFolder, cfg: LidarPlaceData) -> None:
        self.folder = folder
        self.cfg = cfg
        self.entries = [*folder.database, *folder.queries]
        # positions relative to the database's mean: float32 keeps centimetres there
        # (projected coordinates of 1e6 m would not)
        self.origin = np.mean([e.position for e in folder.database], axis=0)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        entry = self.entries[index]
        cloud = read_point_cloud(entry.path, bin_format=self.folder.bin_format)
        rows = cloud_rows(cloud, self.cfg, file_rng(entry.path.name))[1]
        position = entry.position - self.origin
        target = [*position, float(entry.split == "query")]
        return {"input": torch.from_numpy(rows), "target": torch.tensor(target).float(),
                "thresholds": torch.tensor([self.cfg.positive_m, self.cfg.negative_m]),
                "path": str(entry.path), "bin_format": self.folder.bin_format}


def build_dataset(cfg: LidarPlaceData, split: str) -> Dataset:
    if split == "train":
        return TrainingPlaces(cfg)
    return PlaceFolderDataset(place_folder(cfg, split), cfg)
