"""Cross-entropy on selected classes, computed stably from logits.

Per pixel: ``-sum_{k in idc} t_k * log p_k`` with ``log p = log_softmax(logits)``
(over all K classes), optionally multiplied by a per-pixel weight map, then averaged
over the counted pixels (``batch["mask"]``; all pixels by default).

The weight map (``batch["weight"]``, (B, *spatial)) is, for instance, the
distance-based weight of the iterative-FCN method (heavier near boundaries). The mean
divides by the number of counted pixels, not by the sum of weights, so doubling the
weight map doubles the loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor

from segline.losses.registry import (
    SegLoss,
    check_inputs,
    counted,
    full_precision,
    pixel_mean,
    register_loss,
    select,
)


@register_loss("ce", "crossentropy", "cross_entropy")
class CrossEntropy(SegLoss):
    """Cross-entropy ``-sum_k t_k log p_k`` over classes ``idc``, mean over counted pixels.

    Args:
        idc: classes whose target channel contributes (all classes for a plain CE).
        weighted: multiply each pixel's term by ``batch["weight"]`` (then required).

    Returns (forward):
        float32 scalar. Requires ``logits`` (not ``None``).

    Example:
        >>> import math, torch
        >>> logits = torch.tensor([[[[0.0]], [[math.log(3.0)]]]])  # p = (1/4, 3/4)
        >>> t = torch.tensor([[[[0.0]], [[1.0]]]])
        >>> round(float(CrossEntropy([0, 1])(logits, logits.softmax(1), {"target": t})), 6)
        0.287682
    """

    needs_logits = True

    def __init__(self, idc: Sequence[int], weighted: bool = False) -> None:
        super().__init__(idc)
        if not isinstance(weighted, bool):
            raise ValueError(f"ce: weighted must be true/false, got {weighted!r}")
        self.weighted = weighted

    @property
    def requires(self) -> frozenset[str]:
        return super().requires | ({"weight"} if self.weighted else set())

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, weighted={self.weighted}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        if logits is None:
            raise ValueError("ce: needs logits (log_softmax of logits is the stable form)")
        check_inputs(self, logits, batch, ("weight",) if self.weighted else ())
        with full_precision(logits):
            log_p = select(F.log_softmax(logits.float(), dim=1), self.idc)
            t = select(batch["target"], self.idc)
            per_pixel = -(t * log_p).sum(1)  # (B, N)
            if self.weighted:
                per_pixel = per_pixel * batch["weight"].flatten(1).float()
            return pixel_mean(per_pixel, counted(batch, logits))
