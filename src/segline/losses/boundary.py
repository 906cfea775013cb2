"""Boundary loss (Kervadec et al., MIDL 2019 / MedIA 2021).

``mean over pixels and classes k in idc of p_k * phi_k`` where ``phi_k`` is the
precomputed signed distance map of the ground truth of class k (``batch["dist"]``,
mm, negative inside the class, positive outside). It is the regional integral form
of a (non-symmetric L2) distance between the predicted and true boundaries, up to a
constant that does not depend on the prediction.

The value is usually negative: a perfect prediction sums only the negative inside
distances. That is expected (the loss is minimised, not driven to 0). Its gradient
with respect to ``p_k`` at a pixel is ``phi_k / (number of terms)``: constant, so the
loss never saturates. Used with a regional loss (GDL) and the schedule of
:mod:`segline.losses.schedule`.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from segline.losses.registry import (
    BOUNDARY,
    SegLoss,
    check_inputs,
    counted,
    full_precision,
    register_loss,
    select,
)


@register_loss("boundary", "surface")
class Boundary(SegLoss):
    """Boundary loss ``mean_{b, k in idc, n} p * dist`` over counted pixels.

    With a mask, the sum over counted pixels is divided by ``len(idc)`` times the
    number of counted pixels; without one this is the plain mean over
    (B, len(idc), *spatial), as in the reference implementation.

    Args:
        idc: classes whose distance map is used (foreground 1..K-1 by default in specs;
            the multi-class ACDC setting of the paper uses all classes).

    Returns (forward):
        float32 scalar, in mm (negative for a good prediction).

    Example:
        >>> import torch
        >>> p = torch.tensor([[[[0.9, 0.2, 0.1, 0.7]], [[0.1, 0.8, 0.9, 0.3]]]])
        >>> d = torch.tensor([[[[-1.0, 1, 1, -1]], [[2.0, -1, -1, 1]]]])
        >>> batch = {"target": (p > 0.5).float(), "dist": d}
        >>> round(float(Boundary([1])(None, p, batch)), 6)  # (0.2 - 0.8 - 0.9 + 0.3) / 4
        -0.3
    """

    kind = BOUNDARY
    needs_dist = True

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        check_inputs(self, probs, batch, ("dist",))
        with full_precision(probs):
            p = select(probs, self.idc)
            dist = select(batch["dist"], self.idc)
            m = counted(batch, probs).unsqueeze(1)
            return (p * dist * m).sum() / (m.sum().clamp_min(1.0) * len(self.idc))
