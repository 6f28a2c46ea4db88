"""What the two medseg model families share: input checks and padding, logits at the input size.

Both :class:`~domainvit.tasks.medseg.transdae.TransDAE` and
:class:`~domainvit.tasks.medseg.macmd.MACMD` take channels-first ``[B, in_chans, *spatial]``
of any spatial size: the input is zero-padded at the end of every axis to a multiple of
``size_multiple`` (the total stride) and the logits are cropped back, so they are
``[B, num_classes, *spatial]``. With deep supervision on and the model in training mode,
``forward`` returns a list (:data:`SegmentationOutput`): the main logits, then the
auxiliary logits from the next-finer to the coarsest decoder scale; in eval mode only the
main logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from domainvit.errors import UserError
from domainvit.layers import AXIS_NAMES

__all__ = [
    "SegmentationModel",
    "SegmentationOutput",
    "StageDepth",
    "check_segmentation_input",
    "logits_at_input_size",
    "pad_to_multiple",
    "resize",
    "stage_heads",
]

INTERPOLATION = {2: "bilinear", 3: "trilinear"}

SegmentationOutput = torch.Tensor | list[torch.Tensor]
#: blocks per stage in a ``model:`` config section
StageDepth = Annotated[int, Field(ge=1, le=32)]


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Linear interpolation of channels-first ``x`` to spatial ``size``."""
    mode = INTERPOLATION[x.dim() - 2]
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


def stage_heads(dims: Sequence[int], head_dim: int) -> list[int]:
    """Attention heads per stage, ``dim // head_dim`` (at least one); each must divide its
    stage's width."""
    heads = [max(dim // head_dim, 1) for dim in dims]
    for i, (dim, count) in enumerate(zip(dims, heads, strict=True)):
        if dim % count:
            raise ValueError(
                f"stage {i}: width {dim} is not divisible by {count} heads of head_dim "
                f"{head_dim}; choose embed_dim as a multiple of head_dim"
            )
    return heads


def check_segmentation_input(
    owner: str, x: torch.Tensor, in_chans: int, ndim: int, min_size: int
) -> tuple[int, ...]:
    """The spatial size of ``x``; a :class:`UserError` naming expected and actual shape if
    ``x`` is not ``[B, in_chans, *spatial]`` with ``ndim`` axes of at least ``min_size``."""
    expected = f"[B, {in_chans}, {AXIS_NAMES[ndim]}]"
    if x.dim() != ndim + 2 or x.shape[1] != in_chans:
        raise UserError(f"{owner} ({ndim}D) expects input {expected}, got {list(x.shape)}")
    spatial = tuple(x.shape[2:])
    if min(spatial) < min_size:
        raise UserError(
            f"{owner} ({ndim}D) expects input {expected} with every spatial axis at least "
            f"{min_size} (one stem patch), got {list(x.shape)}"
        )
    return spatial


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad every spatial axis of channels-first ``x`` at its end to a multiple."""
    padding: list[int] = []
    for size in reversed(x.shape[2:]):
        padding += [0, -size % multiple]
    return F.pad(x, padding) if any(padding) else x


def logits_at_input_size(
    logits: torch.Tensor, spatial: Sequence[int], multiple: int
) -> torch.Tensor:
    """Channels-first ``logits`` of an input of size ``spatial`` padded by
    :func:`pad_to_multiple`: interpolated to the padded size, cropped to ``spatial``."""
    padded = tuple(-(-size // multiple) * multiple for size in spatial)
    if tuple(logits.shape[2:]) != padded:
        logits = resize(logits, padded)
    return logits[(slice(None), slice(None), *(slice(0, size) for size in spatial))]


class SegmentationModel(nn.Module):
    """Base of the medseg models: what prediction reads from a model, the input check,
    and ``forward``: pad to the total stride, ``forward_features``, then ``forward_head``
    crops the logits back to the input size."""

    in_chans: int
    num_classes: int
    #: spatial axes of the input, 2 or 3
    ndim: int
    #: every spatial axis is padded to a multiple of this (the total stride)
    size_multiple: int
    #: the smallest spatial size along any axis (one stem patch)
    min_size: int

    def check_input(self, x: torch.Tensor) -> tuple[int, ...]:
        """The spatial size of ``x``; a UserError if it does not fit the model."""
        return check_segmentation_input(
            type(self).__name__, x, self.in_chans, self.ndim, self.min_size
        )

    def forward(self, x: torch.Tensor) -> SegmentationOutput:
        spatial = self.check_input(x)
        features = self.forward_features(pad_to_multiple(x, self.size_multiple))
        return self.forward_head(features, spatial)
