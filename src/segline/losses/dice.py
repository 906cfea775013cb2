"""Soft Dice and generalised Dice (Sudre et al., 2017) losses on softmax probabilities.

Both use per-sample, per-class sums over the counted pixels (``batch["mask"]``
multiplies probabilities and targets, so ignored pixels contribute nothing and get
zero gradient):

- ``I_bk = sum_n p t``, ``P_bk = sum_n p``, ``T_bk = sum_n t``.
- :class:`Dice`: ``1 - mean_{b,k} (2 I + s) / (P + T + s)``.
- :class:`GeneralizedDice`: ``w_bk = 1 / (T_bk + eps)^2`` and per sample
  ``1 - 2 (sum_k w I + eps) / (sum_k w (P + T) + eps)``, then the mean over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor

from segline.losses.registry import (
    SegLoss,
    check_inputs,
    counted,
    full_precision,
    register_loss,
    select,
)


def _sums(probs: Tensor, batch: Mapping[str, Tensor], idc: Sequence[int]) -> tuple[Tensor, ...]:
    """(I, P, T), each float32 (B, len(idc)), over counted pixels."""
    m = counted(batch, probs).unsqueeze(1)  # (B, 1, N)
    p = select(probs, idc) * m
    t = select(batch["target"], idc) * m
    return (p * t).sum(2), p.sum(2), t.sum(2)


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be finite and > 0, got {value}")
    return float(value)


@register_loss("dice")
class Dice(SegLoss):
    """Soft Dice loss: ``1 - mean over (sample, class in idc) of (2I + s)/(P + T + s)``.

    Empty target: when class k is absent from sample b (``T = 0``) the term is
    ``s / (P + s)``: 1 (no loss) if nothing is predicted either, which matches the
    metric convention Dice(empty, empty) = 1, and close to 0 (full loss) as soon as
    the prediction puts more than a few ``s`` of probability mass on the class.

    Args:
        idc: classes averaged over (all classes by default in specs).
        smooth: s, added to numerator and denominator (> 0), in pixels.

    Returns (forward):
        float32 scalar in [0, 1].

    Example:
        >>> import torch
        >>> t = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 1.0]]]])
        >>> p = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]], [[0.0, 1.0, 1.0, 1.0]]]])
        >>> round(float(Dice([0, 1])(None, p, {"target": t})), 4)  # 1 - (2/3 + 4/5)/2
        0.2667
    """

    def __init__(self, idc: Sequence[int], smooth: float = 1e-6) -> None:
        super().__init__(idc)
        self.smooth = _positive(smooth, "dice: smooth")

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, smooth={self.smooth}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        check_inputs(self, probs, batch)
        with full_precision(probs):
            inter, p_sum, t_sum = _sums(probs, batch, self.idc)
            dice = (2.0 * inter + self.smooth) / (p_sum + t_sum + self.smooth)
            return 1.0 - dice.mean()


@register_loss("gdl", "generalized_dice", "generalised_dice")
class GeneralizedDice(SegLoss):
    """Generalised Dice loss (Sudre et al. 2017), class weights ``1 / (T_k + eps)^2``.

    Per sample b: ``1 - 2 (sum_k w_k I_k + eps) / (sum_k w_k (P_k + T_k) + eps)`` with
    ``w_k = 1 / (T_k + eps)^2``; the loss is the mean over the batch. With the inverse
    squared volume a class's contribution ``w_k T_k = 1 / T_k`` no longer grows with
    its size, so an error on a small structure costs as much as, or more than, the same
    relative error on a large one.

    Epsilon: ``eps = 1e-10`` both in the weight and in the ratio, as in the boundary-loss
    reference implementation. Consequence to know: a class absent from a sample
    (``T_k = 0``) gets the weight ``1e20``, so any probability mass on it dominates the
    denominator; that sample's loss is then close to 1 with a near-zero gradient (a
    known property of GDL on samples missing a class). A larger ``eps`` (e.g. 1.0)
    softens this.

    Args:
        idc: classes in the weighted sums (all classes by default in specs).
        eps: the epsilon above (> 0).

    Returns (forward):
        float32 scalar, in [0, 1] up to eps.

    Example:
        >>> import torch
        >>> t1 = torch.tensor([0, 1, 1, 0, 0, 0, 0, 0.0])    # small class: 2 pixels
        >>> p1 = torch.tensor([0, 1, 0, 0, 0, 0, 0, 0.0])    # one of them missed
        >>> t = torch.stack([1 - t1, t1]).reshape(1, 2, 1, 8)
        >>> p = torch.stack([1 - p1, p1]).reshape(1, 2, 1, 8)
        >>> round(float(GeneralizedDice([0, 1])(None, p, {"target": t})), 6)
        0.25
    """

    def __init__(self, idc: Sequence[int], eps: float = 1e-10) -> None:
        super().__init__(idc)
        self.eps = _positive(eps, "gdl: eps")

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, eps={self.eps}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        check_inputs(self, probs, batch)
        with full_precision(probs):
            inter, p_sum, t_sum = _sums(probs, batch, self.idc)
            w = 1.0 / (t_sum + self.eps) ** 2
            num = 2.0 * ((w * inter).sum(1) + self.eps)
            den = (w * (p_sum + t_sum)).sum(1) + self.eps
            return (1.0 - num / den).mean()
