"""Focal loss (Lin et al., 2017) on selected classes, computed from logits.

Per pixel: ``-sum_{k in idc} t_k (1 - p_k)^gamma log p_k``; mean over counted pixels
(``batch["mask"]``). ``gamma = 0`` gives the cross-entropy; larger gamma down-weights
pixels that are already well classified. No class-balancing factor (the paper's
alpha_t) is applied: select classes with ``idc`` or combine with a Dice-family loss.
"""

from __future__ import annotations

import math
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


@register_loss("focal")
class Focal(SegLoss):
    """Focal loss ``-sum_k t_k (1 - p_k)^gamma log p_k``, mean over counted pixels.

    Args:
        idc: classes whose target channel contributes.
        gamma: focusing exponent, >= 0 (2.0 as in the paper).

    Returns (forward):
        float32 scalar. Requires ``logits``.

    Example:
        >>> import math, torch
        >>> logits = torch.tensor([[[[0.0]], [[math.log(3.0)]]]])  # p = (1/4, 3/4)
        >>> t = torch.tensor([[[[0.0]], [[1.0]]]])
        >>> x = Focal([0, 1], gamma=2.0)(logits, logits.softmax(1), {"target": t})
        >>> round(float(x), 6)   # 0.25**2 * -log(0.75)
        0.01798
    """

    needs_logits = True

    def __init__(self, idc: Sequence[int], gamma: float = 2.0) -> None:
        super().__init__(idc)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
            raise ValueError(f"focal: gamma must be a number, got {gamma!r}")
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"focal: gamma must be finite and >= 0, got {gamma}")
        self.gamma = float(gamma)

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, gamma={self.gamma}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        if logits is None:
            raise ValueError("focal: needs logits")
        check_inputs(self, logits, batch)
        with full_precision(logits):
            log_p = select(F.log_softmax(logits.float(), dim=1), self.idc)
            t = select(batch["target"], self.idc)
            # clamp: (1 - p)^gamma has an infinite slope at p = 1 when gamma < 1
            focus = (1.0 - log_p.exp()).clamp_min(1e-12).pow(self.gamma)
            per_pixel = -(t * focus * log_p).sum(1)  # (B, N)
            return pixel_mean(per_pixel, counted(batch, logits))
