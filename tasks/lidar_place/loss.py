"""Truncated Smooth-AP: a differentiable average precision of each query's positives.

Smooth-AP (Brown et al., ECCV 2020) replaces the step function in the rank of a positive
by a sigmoid of the similarity differences with temperature ``tau``; the truncated form
of MinkLoc3Dv2 (Komorowski, 2022), used by HOTFormerLoc, scores each query only on its
``positives`` most similar positives. With similarities ``s`` to the query, for a kept
positive ``p``:

    rank_all(p) = 1 + sum_{j in P u N, j != p} sigmoid((s_j - s_p) / tau)
    rank_pos(p) = 1 + sum_{j in P, j != p}      sigmoid((s_j - s_p) / tau)
    AP          = mean_p rank_pos(p) / rank_all(p),   loss = 1 - mean over queries of AP

Positives are the other clouds within ``positive_m`` metres (horizontal) of the query,
negatives those beyond ``negative_m``; clouds in between are ignored. Written here because
no maintained library has the truncated form with distance-defined positives
(pytorch-metric-learning's SmoothAPLoss needs a fixed number of same-label items).
"""

from __future__ import annotations

import torch


def ground_truth_masks(positions: torch.Tensor, positive_m: float, negative_m: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative masks ``[M, M]`` from positions ``[M, >=2]`` (x, y metres)."""
    distance = torch.cdist(positions[:, :2].double(), positions[:, :2].double())
    eye = torch.eye(len(positions), dtype=torch.bool, device=positions.device)
    return (distance <= positive_m) & ~eye, distance > negative_m


def truncated_smooth_ap(descriptors: torch.Tensor, positions: torch.Tensor, *,
                        positive_m: float = 25.0, negative_m: float = 50.0,
                        positives: int = 4, tau: float = 0.01) -> torch.Tensor:
    """The loss of a batch of descriptors ``[M, D]`` at ``positions`` ``[M, >=2]``.

    Queries without a positive or without a negative in the batch do not count; a batch
    with no such query gives a zero loss that still carries gradients (of zero).
    """
    pos_mask, neg_mask = ground_truth_masks(positions, positive_m, negative_m)
    sim = descriptors @ descriptors.t()
    # each query's `positives` most similar positives
    k = min(positives, len(descriptors) - 1)
    ranked = sim.detach().masked_fill(~pos_mask, float("-inf"))
    top_sim, top_idx = ranked.topk(k, dim=1)
    kept = torch.isfinite(top_sim)  # [M, k]: a real positive
    s_p = sim.gather(1, top_idx)  # [M, k]
    diff = (sim.unsqueeze(1) - s_p.unsqueeze(2)) / tau  # [M, k, M]: s_j - s_p
    sig = torch.sigmoid(diff)
    not_self = torch.ones_like(sig, dtype=torch.bool)
    not_self.scatter_(2, top_idx.unsqueeze(2), False)
    candidates = (pos_mask | neg_mask).unsqueeze(1) & not_self
    rank_all = 1 + (sig * candidates).sum(dim=2)
    rank_pos = 1 + (sig * (pos_mask.unsqueeze(1) & not_self)).sum(dim=2)
    ap = (rank_pos / rank_all * kept).sum(dim=1) / kept.sum(dim=1).clamp(min=1)
    valid = kept.any(dim=1) & neg_mask.any(dim=1)
    if not bool(valid.any()):
        return descriptors.sum() * 0.0
    return 1.0 - ap[valid].mean()
