"""The smoke task's model: a small MLP with dropout (dropout exercises RNG restore)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from domainvit.schema import StrictModel
from domainvit.tasks.smoke.data import NUM_CLASSES


class SmokeMLPConfig(StrictModel):
    name: Literal["smoke_mlp"] = "smoke_mlp"
    hidden: int = Field(64, gt=0)
    depth: int = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)


class SmokeMLP(nn.Module):
    def __init__(self, in_features: int = 2, num_classes: int = NUM_CLASSES, hidden: int = 64,
                 depth: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    @classmethod
    def from_config(cls, cfg: SmokeMLPConfig) -> SmokeMLP:
        return cls(hidden=cfg.hidden, depth=cfg.depth, dropout=cfg.dropout)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(points))
