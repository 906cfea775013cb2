"""The iterative method's loss (Lessmann et al., 2019): a boundary-weighted binary
cross-entropy on the mask logits plus a binary cross-entropy on the completeness logit.

``loss = a * mean_v(w_v * BCE(m_v, t_v)) + b * mean_patches(BCE(c, complete))`` where
``m`` are the mask logits, ``t`` the target mask, ``w`` the per-voxel weights of the
sampler (:mod:`segline.experiments.vertebrae.sampler`: ``1 + w0 exp(-d^2 / 2 sigma^2)``), ``c`` the
completeness logits; means over all voxels of the batch, and over its patches.
The weights ``a`` and ``b`` come from the spec ``wbce:a,complete:b`` (``--losses``;
default ``wbce:1,complete:1``).

Example:
    >>> loss = IterativeLoss.from_spec("wbce:1,complete:0.5")
    >>> (loss.mask_weight, loss.complete_weight)
    (1.0, 0.5)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["DEFAULT_SPEC", "IterativeLoss"]

DEFAULT_SPEC = "wbce:1,complete:1"


class IterativeLoss:
    """Weighted mask BCE + completeness BCE; the interface of
    :class:`segline.losses.CombinedLoss` that :class:`segline.train.loop.Trainer` uses
    (``requires``, ``needs_dist``, ``alpha_at``, call with ``epoch``)."""

    requires: frozenset[str] = frozenset()
    needs_dist = False

    def __init__(self, mask_weight: float = 1.0, complete_weight: float = 1.0) -> None:
        self.mask_weight = float(mask_weight)
        self.complete_weight = float(complete_weight)

    @classmethod
    def from_spec(cls, spec: str) -> IterativeLoss:
        """Parse ``wbce:a,complete:b`` (both terms, weights >= 0, finite).

        Raises:
            ValueError: another form or term (the message names the accepted one).
        """
        weights: dict[str, float] = {}
        for item in spec.split(","):
            name, sep, value = item.strip().partition(":")
            try:
                w = float(value)
            except ValueError:
                w = math.nan
            if not sep or name not in ("wbce", "complete") or name in weights or not w >= 0:
                raise ValueError(
                    f"the iterative method's losses are 'wbce:A,complete:B' "
                    f"(weights >= 0), got {spec!r}"
                )
            if not math.isfinite(w):
                raise ValueError(f"loss weights must be finite, got {spec!r}")
            weights[name] = w
        if len(weights) != 2:
            raise ValueError(f"the iterative method's losses are 'wbce:A,complete:B', got {spec!r}")
        return cls(weights["wbce"], weights["complete"])

    def alpha_at(self, epoch: int) -> float:
        """No scheduled term: NaN (the ``alpha`` column)."""
        return math.nan

    def __call__(
        self, outputs: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any], epoch: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of a batch: ``outputs`` = (mask logits (B, 1, *S), completeness
        logits (B,)), ``batch`` with ``target`` and ``weight`` (B, 1, *S) and
        ``complete`` (B,). Returns the total and its two terms."""
        mask_logits, complete_logits = outputs
        voxel = F.binary_cross_entropy_with_logits(
            mask_logits.float(), batch["target"].float(), reduction="none"
        )
        mask_term = (voxel * batch["weight"].float()).mean()
        complete_term = F.binary_cross_entropy_with_logits(
            complete_logits.float(), batch["complete"].float()
        )
        total = self.mask_weight * mask_term + self.complete_weight * complete_term
        return total, {"wbce": mask_term.detach(), "complete": complete_term.detach()}
