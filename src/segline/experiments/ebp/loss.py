"""OHEM mean squared error, the EBP training loss.

Each training sample is one shell: a predicted step map (H, W) against the target step
map (voxels). The loss is each sample's mean squared error over its H×W directions,
and the mean of the ``ceil(keep·B)`` largest of those B errors: online hard-example
mining, so the easy shells (far from the boundary, or already on it) that dominate a
batch do not dilute the gradient of the hard ones, as in the published EBP training
(which keeps the top 70 %; it rounds ``keep·B`` down, here up, so a batch of 1 still
counts). The samples not kept get exactly zero gradient.

The reduction runs in float32 with autocast switched off, like
:mod:`segline.losses`, so the value does not depend on the training's precision.

Example:
    >>> import torch
    >>> pred = torch.zeros(4, 1, 1)
    >>> target = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1)  # errors 1, 4, 9, 16
    >>> loss, values = OhemMSE(keep=0.5)(pred, target)                # top 2: 9, 16
    >>> float(loss), sorted(values)
    (12.5, ['ohem_mse'])
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from segline.losses.registry import full_precision

__all__ = ["OhemMSE"]


class OhemMSE(nn.Module):
    """Mean of the hardest ``ceil(keep·B)`` per-sample mean squared errors.

    Args:
        keep: fraction of the batch kept, in (0, 1]; 1 is the plain MSE.

    Raises:
        ValueError: ``keep`` outside (0, 1].

    Attributes:
        requires: batch keys the loss reads (the trainer's interface of
            :class:`segline.losses.combined.CombinedLoss`).
        needs_dist: False: no distance maps to load.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"target"})
    needs_dist: ClassVar[bool] = False

    def __init__(self, keep: float = 0.7) -> None:
        super().__init__()
        if not 0 < keep <= 1:
            raise ValueError(f"OHEM keep must be in (0, 1], got {keep}")
        self.keep = float(keep)

    def kept(self, batch: int) -> int:
        """How many of ``batch`` samples count: ``ceil(keep·batch)``, at least 1.

        The product is rounded to 9 decimals first, so float error cannot add one
        (``0.7 * 30`` is 21, not 22).
        """
        return max(1, math.ceil(round(self.keep * batch, 9)))

    def alpha_at(self, epoch: int) -> float:
        """No weight schedule: NaN, as :meth:`CombinedLoss.alpha_at` without one."""
        return math.nan

    def forward(self, pred: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The OHEM loss and its detached value.

        Args:
            pred: predicted steps (B, H, W), voxels.
            target: target steps (B, H, W), voxels.

        Returns:
            The loss (0-dim float32, for backward) and ``{"ohem_mse": loss.detach()}``.

        Raises:
            ValueError: shapes differ, or not (B, H, W) with B ≥ 1.
        """
        if pred.shape != target.shape or pred.ndim != 3 or pred.shape[0] == 0:
            raise ValueError(
                f"OhemMSE needs pred and target of one shape (B, H, W), got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}"
            )
        with full_precision(pred):
            per_sample = (pred.float() - target.float()).square().mean(dim=(1, 2))
            hardest = torch.topk(per_sample, self.kept(per_sample.shape[0])).values
            loss = hardest.mean()
        return loss, {"ohem_mse": loss.detach()}
