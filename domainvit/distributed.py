"""Distributed data parallel under ``torchrun``: process group, samplers, reductions.

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; without them everything runs in
one process and these helpers are no-ops. NCCL on GPUs, Gloo on CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_dist_info() -> DistInfo:
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes (no-op for a single process)."""
    info = env_dist_info()
    if info.enabled and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def shutdown_distributed() -> None:
    """Leave the process group, if this process joined one (the command line calls it
    when a command ends)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` holds on every rank (a collective: every rank must call it)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(value)
    return value.item() == 0


def gather_objects(obj: object) -> list:
    """Every rank's ``obj``, in rank order (a collective: every rank must call it);
    ``[obj]`` in a single process. For metrics that keep per-sample values or sums in
    Python objects: each rank evaluates its own shard, and a score over the whole
    evaluation needs all of them."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` that can start part-way through an epoch.

    The epoch's order depends only on ``seed`` and the epoch, never on the number of
    processes: a 1-process run sees the same global batches as an N-process run.
    """

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                         seed=seed, drop_last=False)
        self.start_index = 0

    def set_start(self, index: int) -> None:
        self.start_index = index

    def __iter__(self) -> Iterator[int]:
        return islice(super().__iter__(), self.start_index, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start_index)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``, in order, without padding (evaluation)."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
