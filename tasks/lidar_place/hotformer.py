"""HOTFormerLoc: a hierarchical octree transformer for lidar place recognition.

After Griffiths et al., "HOTFormerLoc: Hierarchical Octree Transformer for Versatile
Lidar Place Recognition Across Ground and Aerial Views", CVPR 2025, rebuilt on
:mod:`domainvit.kernels` with the octree in PyTorch (:mod:`.octree`), so it runs on CPUs:

1. **Stem**: per-leaf features (the mean offset of the leaf's points from its centre, the
   log point count relative to the cloud's mean leaf, the mean intensity, the leaf's
   position) embedded, then pooled up
   ``stem_downsample`` octree depths (mean and maximum of the children).
2. **OctFormer stage**: windows of ``window`` consecutive octree nodes with self-attention
   inside each window, dilation 1 and 4 alternating (``na1d``, blocked).
3. **HOTFormer stage** over a pyramid of ``levels`` depths: every window holds a *relay
   token*, initialised with the mean of its nodes; in each block the relay tokens of all
   levels of a cloud attend to one another (global context), then every level's windows
   attend to their nodes and, as ``na1d``'s additional keys/values, to their own relay
   token.
4. **Pyramid attentional pooling**: per level, learned queries attend to the level's
   nodes; an MLP mixer over the pooled tokens of all levels and a linear layer give the
   L2-normalised descriptor.

Input: ``[B, N, 5]`` rows of x, y, z (metres, centred on the cloud), intensity (0..1, 0
when unknown) and a valid flag (0 for padding rows). Coordinates are divided by the
declared ``extent`` (metres) onto the octree's ``[-1, 1]^3`` box.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from timm.layers import DropPath, Mlp
from torch import nn

from domainvit.kernels import na1d
from domainvit.schema import StrictModel
from domainvit.tasks.lidar_place.octree import (
    OctreeLevel,
    WindowPlan,
    build_leaves,
    padded,
    scatter_max,
    scatter_mean,
    window_plan,
)

#: the columns of an input row
INPUT_COLUMNS = ("x", "y", "z", "intensity", "valid")


class HOTFormerLocConfig(StrictModel):
    name: Literal["hotformerloc"] = "hotformerloc"
    #: the leaves' octree depth (2**depth cells across the box)
    depth: int = Field(7, ge=4, le=10)
    #: octree depths the stem pools before the first stage
    stem_downsample: int = Field(2, ge=0, le=4)
    #: channels, blocks and heads of the OctFormer and the HOTFormer stage
    channels: tuple[int, int] = (128, 256)
    blocks: tuple[int, int] = (4, 10)
    heads: tuple[int, int] = (8, 16)
    #: octree nodes per attention window
    window: int = Field(64, ge=2)
    #: dilations of the OctFormer stage's blocks, in turn
    dilations: tuple[int, ...] = (1, 4)
    #: depths of the HOTFormer pyramid (the first is one below the OctFormer stage)
    levels: int = Field(3, ge=1, le=4)
    #: learned pooling queries per pyramid level
    pool_tokens: tuple[int, ...] = (74, 36, 18)
    descriptor_dim: int = Field(256, gt=0)
    mlp_ratio: float = Field(4.0, gt=0)
    drop_path_rate: float = Field(0.5, ge=0, lt=1)
    #: node positions as (x, y, z) or (rho, phi / pi, z): cylindrical for spinning lidar
    coordinates: Literal["cartesian", "cylindrical"] = "cartesian"

    @model_validator(mode="after")
    def _check(self) -> HOTFormerLocConfig:
        for dim, heads in zip(self.channels, self.heads, strict=True):
            if dim % heads:
                raise ValueError(f"channels {dim} is not divisible by heads {heads}")
        if len(self.pool_tokens) != self.levels:
            raise ValueError(f"pool_tokens needs one count per pyramid level ({self.levels}), "
                             f"got {list(self.pool_tokens)}")
        if self.depth - self.stem_downsample - self.levels < 0:
            raise ValueError(f"depth {self.depth} is too shallow for stem_downsample "
                             f"{self.stem_downsample} and {self.levels} pyramid levels")
        return self


def position_features(centre: torch.Tensor, coordinates: str) -> torch.Tensor:
    """Node positions for the positional encodings: cartesian, or (rho, phi / pi, z)."""
    if coordinates == "cartesian":
        return centre
    x, y, z = centre.unbind(-1)
    return torch.stack([torch.hypot(x, y), torch.atan2(y, x) / math.pi, z], dim=-1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside octree windows (``na1d`` on each window), with an
    optional token per window (its relay token) as additional key and value."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, plan: WindowPlan,
                relay: torch.Tensor | None = None) -> torch.Tensor:
        tokens, dim = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).view(tokens, 3, heads, dim // heads)
        extra = None
        if relay is not None:
            extra = F.linear(relay, self.qkv.weight[dim:], self.qkv.bias[dim:])
            extra = extra.view(-1, 2, heads, dim // heads)
        out = x.new_zeros(tokens, heads, dim // heads)
        for group in plan.groups:
            q, k, v = qkv[group.nodes].unbind(2)  # [nW, L, heads, head_dim]
            keys = values = None
            if extra is not None:
                keys, values = extra[group.window].unsqueeze(1).unbind(2)
            length = group.nodes.shape[1]
            if length > 1:
                y = na1d(q, k, v, kernel_size=length, stride=length,
                         additional_keys=keys, additional_values=values)
            elif keys is None:  # a lone node attends to itself alone
                y = v
            else:  # a lone node and its relay token: a softmax over two keys
                k2, v2 = torch.cat([k, keys], 1), torch.cat([v, values], 1)
                weights = torch.einsum("bqhd,bkhd->bhqk", q, k2) * q.shape[-1] ** -0.5
                y = torch.einsum("bhqk,bkhd->bqhd", weights.softmax(-1), v2)
            out[group.nodes[group.own]] = y[group.own]
        return self.proj(out.reshape(tokens, dim))


class WindowBlock(nn.Module):
    """Pre-norm transformer block of window attention and an MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, plan: WindowPlan,
                relay: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), plan, relay))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class RelayBlock(nn.Module):
    """Relay tokens of every level of a cloud attend to one another, then an MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, relay: torch.Tensor, sample: torch.Tensor, batch: int) -> torch.Tensor:
        # sample-sorted relay tokens padded per cloud; padding is masked out of the keys
        order = torch.argsort(sample, stable=True)
        tokens, mask = padded(self.norm1(relay)[order], sample[order], batch)
        attended, _ = self.attn(tokens, tokens, tokens, key_padding_mask=~mask,
                                need_weights=False)
        update = torch.empty_like(relay)
        update[order] = attended[mask]
        relay = relay + self.drop_path(update)
        return relay + self.drop_path(self.mlp(self.norm2(relay)))


class HOTFormerBlock(nn.Module):
    """One HOTFormer block: relay-token attention across levels, then relay-aware window
    attention on each level (weights shared by the levels)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.relay = RelayBlock(dim, num_heads, mlp_ratio, drop_path)
        self.norm_relay = nn.LayerNorm(dim)
        self.window = WindowBlock(dim, num_heads, mlp_ratio, drop_path)

    def forward(self, xs: list[torch.Tensor], relay: torch.Tensor, relay_sample: torch.Tensor,
                plans: list[WindowPlan], batch: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        relay = self.relay(relay, relay_sample, batch)
        normed = self.norm_relay(relay)
        outs, start = [], 0
        for x, plan in zip(xs, plans, strict=True):
            stop = start + plan.num_windows
            outs.append(self.window(x, plan, normed[start:stop]))
            start = stop
        return outs, relay


class Downsample(nn.Module):
    """Children to parents: mean and maximum of the children's features, then a linear
    layer and a norm."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.reduce = nn.Linear(2 * dim_in, dim_out)
        self.norm = nn.LayerNorm(dim_out)

    def forward(self, x: torch.Tensor, level: OctreeLevel) -> tuple[torch.Tensor, OctreeLevel]:
        parent, index = level.coarsen()
        size = parent.keys.numel()
        pooled = torch.cat([scatter_mean(x, index, size), scatter_max(x, index, size)], dim=-1)
        return self.norm(self.reduce(pooled)), parent


class AttentionalPooling(nn.Module):
    """Learned queries attend to a level's nodes (padding masked out)."""

    def __init__(self, dim: int, num_tokens: int, num_heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, x: torch.Tensor, sample: torch.Tensor, batch: int) -> torch.Tensor:
        tokens, mask = padded(self.norm(x), sample, batch)
        queries = self.queries.unsqueeze(0).expand(batch, -1, -1)
        pooled, _ = self.attn(queries, tokens, tokens, key_padding_mask=~mask,
                              need_weights=False)
        return pooled


class MixerBlock(nn.Module):
    """MLP-Mixer block (Tolstikhin et al., 2021): token mixing, then channel mixing."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.tokens = Mlp(tokens, tokens * 2)
        self.norm2 = nn.LayerNorm(dim)
        self.channels = Mlp(dim, dim * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channels(self.norm2(x))


class HOTFormerLoc(nn.Module):
    """Point clouds ``[B, N, 5]`` to L2-normalised place descriptors ``[B, descriptor_dim]``."""

    def __init__(self, cfg: HOTFormerLocConfig, extent: float, in_chans: int = 5) -> None:
        super().__init__()
        if in_chans != len(INPUT_COLUMNS):
            raise ValueError(f"in_chans must be {len(INPUT_COLUMNS)} ({', '.join(INPUT_COLUMNS)})")
        self.cfg = cfg
        self.in_chans = in_chans
        #: metres from the cloud's centre to the octree box's faces
        self.register_buffer("extent", torch.tensor(float(extent)))
        c1, c2 = cfg.channels
        # leaf features: mean offset in cell units (3), log point count, intensity, position
        self.stem = nn.Sequential(nn.Linear(8, c1), nn.GELU(), nn.Linear(c1, c1))
        self.stem_down = nn.ModuleList(Downsample(c1, c1) for _ in range(cfg.stem_downsample))
        self.pos1 = nn.Sequential(nn.Linear(3, c1), nn.GELU(), nn.Linear(c1, c1))
        rates = torch.linspace(0, cfg.drop_path_rate, sum(cfg.blocks)).tolist()
        self.stage1 = nn.ModuleList(
            WindowBlock(c1, cfg.heads[0], cfg.mlp_ratio, rates[i]) for i in range(cfg.blocks[0]))
        self.down = Downsample(c1, c2)
        self.pyramid_down = nn.ModuleList(Downsample(c2, c2) for _ in range(cfg.levels - 1))
        self.pos2 = nn.Sequential(nn.Linear(4, c2), nn.GELU(), nn.Linear(c2, c2))
        self.stage2 = nn.ModuleList(
            HOTFormerBlock(c2, cfg.heads[1], cfg.mlp_ratio, rates[cfg.blocks[0] + i])
            for i in range(cfg.blocks[1]))
        self.norm = nn.LayerNorm(c2)
        self.pool = nn.ModuleList(AttentionalPooling(c2, n, cfg.heads[1])
                                  for n in cfg.pool_tokens)
        total = sum(cfg.pool_tokens)
        self.mixer = MixerBlock(total, c2)
        self.head = nn.Linear(total * c2, cfg.descriptor_dim)
        self.apply(_init_weights)

    @classmethod
    def from_config(cls, cfg: HOTFormerLocConfig, extent: float) -> HOTFormerLoc:
        return cls(cfg, extent)

    def _leaf_features(self, points: torch.Tensor) -> tuple[torch.Tensor, OctreeLevel]:
        batch = points.shape[0]
        xyz = points[..., :3] / self.extent
        valid = points[..., 4] > 0.5
        empty = ~valid.any(dim=1)
        if bool(empty.any()):
            # an empty cloud is refused before it reaches the model; one origin point
            # keeps the batch's shapes defined if one slips through
            valid = valid.clone()
            valid[empty, 0] = True
        leaves, flat, to_leaf = build_leaves(xyz, valid, self.cfg.depth)
        size = leaves.keys.numel()
        cell = 2.0 / 2**self.cfg.depth
        px = xyz.reshape(-1, 3)[flat].clamp(-1.0, 1.0)
        offset = scatter_mean(px, to_leaf, size) - leaves.centre
        count = torch.bincount(to_leaf, minlength=size).to(px.dtype)
        intensity = scatter_mean(points.reshape(-1, points.shape[-1])[flat, 3:4], to_leaf, size)
        # the point count relative to the cloud's mean leaf (log): where a surface is
        # denser than its surroundings, not how dense the survey is (which varies 10x)
        log_count = torch.log(count)
        relative = log_count - scatter_mean(log_count[:, None], leaves.sample,
                                            batch)[leaves.sample, 0]
        feats = torch.cat([offset / cell, relative[:, None], intensity,
                           position_features(leaves.centre, self.cfg.coordinates)], dim=-1)
        return self.stem(feats), leaves

    def forward_features(self, points: torch.Tensor) -> list[tuple[torch.Tensor, OctreeLevel]]:
        """The HOTFormer pyramid's node features, finest level first."""
        cfg = self.cfg
        x, level = self._leaf_features(points)
        for down in self.stem_down:
            x, level = down(x, level)
        x = x + self.pos1(position_features(level.centre, cfg.coordinates))
        counts = level.counts
        plans1 = {d: window_plan(counts, cfg.window, d) for d in set(cfg.dilations)}
        for i, block in enumerate(self.stage1):
            x = block(x, plans1[cfg.dilations[i % len(cfg.dilations)]])
        x, level = self.down(x, level)
        xs, levels = [x], [level]
        for down in self.pyramid_down:
            x, level = down(x, level)
            xs.append(x)
            levels.append(level)
        batch = level.batch
        # positional encoding with the level's depth, so levels stay distinguishable
        for i, lv in enumerate(levels):
            depth = torch.full_like(lv.centre[:, :1], i / max(cfg.levels - 1, 1))
            xs[i] = xs[i] + self.pos2(torch.cat(
                [position_features(lv.centre, cfg.coordinates), depth], dim=-1))
        plans = [window_plan(lv.counts, cfg.window) for lv in levels]
        relay = torch.cat([scatter_mean(x, plan.node_window, plan.num_windows)
                           for x, plan in zip(xs, plans, strict=True)])
        relay_sample = torch.cat([plan.window_sample for plan in plans])
        for block in self.stage2:
            xs, relay = block(xs, relay, relay_sample, plans, batch)
        return [(self.norm(x), lv) for x, lv in zip(xs, levels, strict=True)]

    def forward_head(self, features: list[tuple[torch.Tensor, OctreeLevel]]) -> torch.Tensor:
        """Pyramid attentional pooling to the L2-normalised descriptor."""
        batch = features[0][1].batch
        pooled = torch.cat([pool(x, lv.sample, batch)
                            for pool, (x, lv) in zip(self.pool, features, strict=True)], dim=1)
        pooled = self.mixer(pooled)
        return F.normalize(self.head(pooled.flatten(1)), dim=-1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(points))


class PointNetConfig(StrictModel):
    """A plain PointNet-style global descriptor (Qi et al., CVPR 2017): a shared MLP on the
    points and a max pool, the learned baseline of the task's results table."""

    name: Literal["pointnet"] = "pointnet"
    widths: tuple[int, ...] = (64, 128, 256)
    descriptor_dim: int = Field(256, gt=0)


class PointNetDescriptor(nn.Module):
    """Shared per-point MLP, max pool over the valid points, linear head, L2 norm."""

    def __init__(self, cfg: PointNetConfig, extent: float, in_chans: int = 5) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_chans = in_chans
        self.register_buffer("extent", torch.tensor(float(extent)))
        layers: list[nn.Module] = []
        width = 4
        for w in cfg.widths:
            layers += [nn.Linear(width, w), nn.LayerNorm(w), nn.GELU()]
            width = w
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(width, cfg.descriptor_dim)
        self.apply(_init_weights)

    @classmethod
    def from_config(cls, cfg: PointNetConfig, extent: float) -> PointNetDescriptor:
        return cls(cfg, extent)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        valid = points[..., 4:5] > 0.5
        x = torch.cat([points[..., :3] / self.extent, points[..., 3:4]], dim=-1)
        features = self.mlp(x).masked_fill(~valid, float("-inf")).amax(dim=1)
        features = torch.nan_to_num(features, neginf=0.0)
        return F.normalize(self.head(features), dim=-1)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
