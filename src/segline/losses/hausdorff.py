"""Distance-transform Hausdorff losses (Karimi & Salcudean, IEEE TMI 2019).

Two registered losses:

``hausdorff`` (aliases ``hd``, ``hausdorff_dt``): :class:`HausdorffDT`, the paper's
two-sided HD_DT loss::

    loss = mean over (b, k in idc, counted pixels) of
           (p_k - t_k)^2 * (d_t^alpha + d_p^alpha)

``d_t = |dist_k|``, the unsigned distance (mm) to the boundary of the true class,
read from the precomputed signed map ``batch["dist"]`` (:mod:`segline.distmaps`);
``d_p`` the unsigned distance (mm) to the boundary of the *current prediction*
``p_k > 0.5``, recomputed at every call by :func:`prediction_distance` with the
same convention (``|signed_distance|`` of the thresholded mask: voxel centre to the
nearest voxel centre on the other side, the field-of-view diagonal ``D`` for an empty
or a full mask; 0 for an empty one when the distance-map store was written with
``absent="zero"``, see below), so both terms are in mm and comparable. ``d_p`` is a weight, not a
function of the parameters: it is computed without gradient, so
``dloss/dp_k = 2 (p_k - t_k) (d_t^alpha + d_p^alpha) / n``. With ``d_p`` a false-positive
blob far from the true object is weighted by its own extent too (its inner pixels are
far from its boundary), not only by its distance to the true boundary.

``hausdorff_gt``: :class:`HausdorffGT`, the one-sided form ``(p - t)^2 d_t^alpha``
(distance to the ground truth only, ``d_p`` dropped). It needs no per-step distance
transform, but a false-positive blob is weighted by its distance to the true boundary
only.

Geometry of ``d_p``: per 2D slice for a 2D batch (B, K, H, W) with the slice's
in-plane spacing, per 3D patch (or whole volume in 3D validation) for a 3D batch
(B, K, D, H, W) with (z, y, x) spacing; the spacing is ``batch["spacing"]`` (B, 2) or
(B, 3), mm, written by the datasets from each case's ``meta.json``. An empty (full)
prediction reads ``D`` = the diagonal of *the slice or patch*; the GT maps of 3D
patches are crops of the whole-volume map, whose ``D`` is the volume's diagonal
(larger): both are "farther than any real distance" but not the same number. Likewise
a 2D network trained with 3D maps (``DIST=3d``) gets ``d_t`` from the volume (through
neighbouring slices) but ``d_p`` in-plane only.
Pixels not counted (``batch["mask"]`` 0: ignore label 255, patch padding) are
treated as not predicted when thresholding (as the pseudo-labels' maps count
unlabelled voxels as background, ``segline.experiments.vessels.pseudo``) and
contribute nothing to the loss.

Cost: ``d_p`` is computed on the CPU (the ``edt`` package through
:func:`segline.distmaps.signed_distance`) from a detached copy of the probabilities,
so on a GPU every step waits for the device, copies the selected channels to the
host and the maps back: one host round trip per step and per term. Measured on a
2-core CPU (``bench/bench_hausdorff.py``, bench/RESULTS.md "Hausdorff-DT loss"):
the transforms of ``d_p`` take about 2.4-4.4 ms (minimum of 100 runs; median 4-12 ms)
for 8 slices of 64 x 64 and 18-25 ms (median 43-52 ms) for 2 patches of 32 x 48 x 48,
while the whole one-sided loss (forward + backward) takes about 1 ms and 3-12 ms.

Distances are in mm, so the scale of either loss depends on the spacing
(``mm^alpha``); weight it accordingly in the spec (the spleen and ISLES methods use
``alpha=1``, see spleen.make).

Absent classes (make ``ABSENT``, :mod:`segline.distmaps`). ``d_t`` is read from the
store, so it follows the store's convention: ``D`` for a class absent from the slice
(patch: volume) by default, 0 with ``absent="zero"`` (the reference code's
``one_hot2hd_dist``). ``d_p`` of an empty prediction follows the same rule: the trainer
reads the store's ``absent`` and sets it on every :class:`HausdorffDT` of its loss
(:func:`use_absent`), so with ``zero`` a class absent from both the truth and the
prediction weighs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from segline.distmaps import ABSENTS, Absent, signed_distance
from segline.losses.registry import (
    BOUNDARY,
    SegLoss,
    check_inputs,
    counted,
    full_precision,
    register_loss,
    select,
)


def _check_alpha(name: str, alpha: float) -> float:
    """``alpha`` as a float, or ValueError unless it is a finite number >= 0."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f"{name}: alpha must be a number, got {alpha!r}")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"{name}: alpha must be finite and >= 0, got {alpha}")
    return float(alpha)


def batch_spacing(batch: Mapping[str, Tensor], probs: Tensor, who: str) -> np.ndarray:
    """``batch["spacing"]`` as float64 (B, n_spatial) mm, or ValueError.

    Args:
        batch: the loss batch; ``"spacing"`` is (B, 2) (y, x) for 2D or (B, 3)
            (z, y, x) for 3D, in the spatial axis order of ``probs``.
        probs: (B, K, *spatial), for the expected shape.
        who: the loss name, for messages.

    Returns:
        The spacing on the host (a device tensor is copied: one synchronisation).
    """
    if "spacing" not in batch:
        raise ValueError(f"{who}: batch has no 'spacing' (keys: {sorted(batch)})")
    sp = torch.as_tensor(batch["spacing"]).detach().to("cpu", torch.float64).numpy()
    want = (probs.shape[0], probs.ndim - 2)
    if sp.shape != want:
        raise ValueError(f"{who}: batch['spacing'] has shape {sp.shape}, expected {want}")
    if not (np.isfinite(sp).all() and (sp > 0).all()):
        raise ValueError(f"{who}: spacing must be positive and finite (mm), got {sp.tolist()}")
    return sp


def prediction_distance(
    probs: Tensor,
    spacing: np.ndarray,
    mask: Tensor | None = None,
    threshold: float = 0.5,
    absent: Absent = "diagonal",
) -> Tensor:
    """Unsigned distance (mm) to the boundary of each thresholded prediction, no gradient.

    For every (b, c): the mask ``probs[b, c] > threshold`` (and counted, when ``mask``
    is given), then ``|signed_distance(mask, spacing[b])|`` (:mod:`segline.distmaps`):
    inside, the distance to the nearest voxel outside; outside, to the nearest voxel
    inside; the field-of-view diagonal everywhere when the mask is empty or full (0
    when it is empty and ``absent="zero"``).

    Args:
        probs: (B, C, H, W) slices or (B, C, D, H, W) patches (any float dtype/device).
        spacing: (B, 2) or (B, 3) mm per voxel, the spatial axis order of ``probs``.
        mask: optional (B, *spatial), nonzero where a pixel counts.
        threshold: probability above which a pixel is predicted in the class.
        absent: an empty mask reads ``D`` (``"diagonal"``) or 0 (``"zero"``).

    Returns:
        float32 tensor of ``probs``' shape on ``probs``' device, detached.

    Example:
        >>> p = torch.tensor([[[[0.9, 0.8, 0.1, 0.2]]]])
        >>> prediction_distance(p, np.array([[1.0, 2.0]])).tolist()
        [[[[4.0, 2.0, 2.0, 4.0]]]]
    """
    if probs.ndim not in (4, 5):
        raise ValueError(f"probs must be (B, C, H, W) or (B, C, D, H, W), got {tuple(probs.shape)}")
    with torch.no_grad():
        fg = probs.detach() > threshold
        if mask is not None:
            fg &= mask.detach().bool().unsqueeze(1)
        fg_np = fg.cpu().numpy()
    out = np.empty(fg_np.shape, dtype=np.float32)
    for b in range(fg_np.shape[0]):
        for c in range(fg_np.shape[1]):
            np.abs(signed_distance(fg_np[b, c], spacing[b], absent=absent), out=out[b, c])
    return torch.from_numpy(out).to(probs.device)


def _check_spatial(who: str, probs: Tensor) -> None:
    if probs.ndim not in (4, 5):
        raise ValueError(
            f"{who}: needs 2D (B, K, H, W) or 3D (B, K, D, H, W) probs, "
            f"got shape {tuple(probs.shape)}"
        )


def use_absent(criterion: torch.nn.Module, absent: str) -> int:
    """Set the empty-prediction value of every :class:`HausdorffDT` in ``criterion``.

    The trainer calls it with its distance-map store's ``absent``
    (:func:`segline.distmaps.store_absent`), so ``d_p`` and ``d_t`` share one convention.

    Returns:
        How many losses were set.

    Raises:
        ValueError: ``absent`` not one of :data:`segline.distmaps.ABSENTS`.
    """
    if absent not in ABSENTS:
        raise ValueError(f"absent must be one of {ABSENTS}, got {absent!r}")
    found = [m for m in criterion.modules() if isinstance(m, HausdorffDT)]
    for m in found:
        m.absent = absent
    return len(found)


@register_loss("hausdorff", "hd", "hausdorff_dt")
class HausdorffDT(SegLoss):
    """Two-sided HD_DT loss ``mean (p - t)^2 (d_t^alpha + d_p^alpha)`` (module docstring).

    Needs ``batch["dist"]`` (signed GT maps, mm) and ``batch["spacing"]`` (mm);
    ``d_p`` is recomputed on the CPU at every call, without gradient. Its value for an
    empty prediction is :attr:`absent` (set by the trainer from the store,
    :func:`use_absent`).

    Args:
        idc: classes used (foreground 1..K-1 by default in specs).
        alpha: exponent of the distances, >= 0 (2.0 as in the paper).

    Returns (forward):
        float32 scalar >= 0, in mm^alpha.

    Example:
        >>> p = torch.tensor([[[[0.1, 0.8, 0.3, 0.4]]]])     # prediction: pixel 1 only
        >>> t = torch.tensor([[[[0.0, 1, 1, 0]]]])
        >>> d = torch.tensor([[[[1.0, -1, -1, 1]]]])          # GT map, 1 mm spacing
        >>> batch = {"target": t, "dist": d, "spacing": torch.tensor([[1.0, 1.0]])}
        >>> x = HausdorffDT([0], alpha=1)(None, p, batch)   # d_p = 1, 1, 1, 2
        >>> round(float(x), 6)  # (0.01*2 + 0.04*2 + 0.49*2 + 0.16*3) / 4
        0.39
    """

    kind = BOUNDARY
    needs_dist = True
    absent: str = "diagonal"
    """``d_p`` of an empty prediction: ``"diagonal"`` (D) or ``"zero"``, as the store."""

    def __init__(self, idc: Sequence[int], alpha: float = 2.0) -> None:
        super().__init__(idc)
        self.alpha = _check_alpha("hausdorff", alpha)

    @property
    def requires(self) -> frozenset[str]:
        """``target``, ``dist`` and ``spacing`` (for the prediction's distance map)."""
        return super().requires | {"spacing"}

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, alpha={self.alpha}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        who = self.name or type(self).__name__
        check_inputs(self, probs, batch, ("dist",))
        _check_spatial(who, probs)
        spacing = batch_spacing(batch, probs, who)
        mask = batch.get("mask")
        d_p = prediction_distance(probs[:, list(self.idc)], spacing, mask, absent=self.absent)
        with full_precision(probs):
            p = select(probs, self.idc)
            t = select(batch["target"], self.idc)
            d_t = select(batch["dist"], self.idc).abs().pow(self.alpha)
            w = d_t + d_p.flatten(2).pow(self.alpha)
            m = counted(batch, probs).unsqueeze(1)
            return ((p - t) ** 2 * w * m).sum() / (m.sum().clamp_min(1.0) * len(self.idc))


@register_loss("hausdorff_gt")
class HausdorffGT(SegLoss):
    """One-sided HD_DT loss ``mean (p - t)^2 |dist_gt|^alpha``: distance to the ground
    truth only (the ``d_p`` term dropped, no per-step distance transform).

    Args:
        idc: classes used (foreground 1..K-1 by default in specs).
        alpha: exponent of the distance, >= 0.

    Returns (forward):
        float32 scalar >= 0, in mm^alpha.

    Example:
        >>> p = torch.tensor([[[[0.9, 0.2, 0.1, 0.7]], [[0.1, 0.8, 0.9, 0.3]]]])
        >>> t = torch.tensor([[[[1.0, 0, 0, 1]], [[0.0, 1, 1, 0]]]])
        >>> d = torch.tensor([[[[-1.0, 1, 1, -1]], [[2.0, -1, -1, 1]]]])
        >>> x = HausdorffGT([1])(None, p, {"target": t, "dist": d})
        >>> round(float(x), 6)  # (0.01*4 + 0.04 + 0.01 + 0.09) / 4
        0.045
    """

    kind = BOUNDARY
    needs_dist = True

    def __init__(self, idc: Sequence[int], alpha: float = 2.0) -> None:
        super().__init__(idc)
        self.alpha = _check_alpha("hausdorff_gt", alpha)

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
