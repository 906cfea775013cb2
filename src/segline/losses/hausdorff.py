"""Distance-transform Hausdorff loss (Karimi & Salcudean, IEEE TMI 2019), one-sided.

The paper's HD_DT loss is ``mean (p - t)^2 * (d_t^alpha + d_p^alpha)`` where ``d_t``
and ``d_p`` are the unsigned distance transforms of the ground truth and of the
current (thresholded) prediction. segline computes distance maps once, before
training (``data/<ds>/dist``); a distance transform of the prediction at every step
is not available. What is computed here is therefore

    loss = mean over (b, k in idc, counted pixels) of (p_k - t_k)^2 * |dist_k|^alpha

i.e. ``d_t = |dist|`` from the precomputed signed map and the ``d_p`` term dropped.
Consequences: errors far from the true boundary are penalised (false positives far
outside, holes deep inside), but a false-positive blob is weighted by its distance to
the *true* boundary only, not by its own extent; errors exactly on the boundary
(``dist = 0``) cost nothing. Distances are in mm, so the scale of the loss depends on
the spacing (``mm^alpha``); weight it accordingly in the spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor

from segline.losses.registry import (
    BOUNDARY,
    SegLoss,
    check_inputs,
    counted,
    full_precision,
    register,
    select,
)


@register("hausdorff", "hd", "hausdorff_dt")
class HausdorffDT(SegLoss):
    """One-sided HD_DT loss ``mean (p - t)^2 |dist_gt|^alpha`` (see the module docstring).

    Args:
        idc: classes used (foreground 1..K-1 by default in specs).
        alpha: exponent of the distance, >= 0 (2.0 as in the paper).

    Returns (forward):
        float32 scalar >= 0, in mm^alpha.

    Example:
        >>> import torch
        >>> p = torch.tensor([[[[0.9, 0.2, 0.1, 0.7]], [[0.1, 0.8, 0.9, 0.3]]]])
        >>> t = torch.tensor([[[[1.0, 0, 0, 1]], [[0.0, 1, 1, 0]]]])
        >>> d = torch.tensor([[[[-1.0, 1, 1, -1]], [[2.0, -1, -1, 1]]]])
        >>> x = HausdorffDT([1])(None, p, {"target": t, "dist": d})
        >>> round(float(x), 6)  # (0.01*4 + 0.04 + 0.01 + 0.09) / 4
        0.045
    """

    kind = BOUNDARY
    needs_dist = True

    def __init__(self, idc: Sequence[int], alpha: float = 2.0) -> None:
        super().__init__(idc)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ValueError(f"hausdorff: alpha must be a number, got {alpha!r}")
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"hausdorff: alpha must be finite and >= 0, got {alpha}")
        self.alpha = float(alpha)

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, alpha={self.alpha}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        check_inputs(self, probs, batch, ("dist",))
        with full_precision(probs):
            p = select(probs, self.idc)
            t = select(batch["target"], self.idc)
            d = select(batch["dist"], self.idc).abs().pow(self.alpha)
            m = counted(batch, probs).unsqueeze(1)
            return ((p - t) ** 2 * d * m).sum() / (m.sum().clamp_min(1.0) * len(self.idc))
