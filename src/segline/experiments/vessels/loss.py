"""MIP loss: supervise a 3D prediction with a 2D annotation of the image's maximum
intensity projection (after Guo et al., IEEE TMI 2024, "3D vascular segmentation
supervised by 2D annotation of maximum intensity projection").

A ray of the projection sees the voxel where the image is brightest; the annotator
labelled that voxel in 2D. So for each ray ``r`` (a pixel of the projection plane)
the predicted foreground probability is read *at the image's argmax depth* of that
ray, ``q_r = p_fg[depth_r]`` (``torch.gather`` along the projection axis), and
compared with the 2D label by a soft Dice over the valid rays:

- ``p_fg = sum_{k in idc} p_k`` (the foreground: class 1 by default), and the 2D
  target ``t_r = 1`` where ``mip_label`` is one of ``idc``;
- per sample b, over rays with ``v_r = mip_valid`` = 1:
  ``I = sum v q t``, ``P = sum v q``, ``T = sum v t``,
  ``dice_b = (2 I + s) / (P + T + s)``; the loss is ``1 - mean_b dice_b``.

Batch keys (from :class:`segline.experiments.vessels.inputs.MipInputs`, the vessel
trainer's batch inputs): ``mip_label`` (B, H', W')
integer class of each ray, ``mip_depth`` (B, H', W') integer argmax index *relative
to the patch*, ``mip_valid`` (B, H', W') 1 where the ray's brightest voxel lies in
the patch (else 0: neither the value nor the gradient depends on that ray, and its
``mip_depth`` is never used as more than a safe index). The plane (H', W') is the
patch's spatial shape without the projection axis. ``batch["mask"]`` (the 3D ignore
mask of the pseudo-labels) is *not* applied: the 2D annotation is a separate,
complete supervision of the rays. If ``mip_axis`` is in the batch it must equal the
loss's ``axis``.

Empty conventions (as :class:`segline.losses.dice.Dice`): a sample whose valid rays
hold no foreground label gives ``s / (P + s)``, i.e. no loss if nothing is predicted
there either; a sample with no valid ray gives dice 1 (loss 0, zero gradient) and
still counts in the batch mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from segline.losses.registry import SegLoss, check_inputs, full_precision, register_loss

MIP_KEYS = ("mip_label", "mip_depth", "mip_valid")


def _smooth(value: float) -> float:
    """Validate the smoothing constant: a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"mip: smooth must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"mip: smooth must be finite and > 0, got {value}")
    return float(value)


def gather_rays(p: Tensor, depth: Tensor, axis: int) -> Tensor:
    """Values of a (B, D, H, W) volume at one index per ray along a spatial axis.

    Args:
        p: (B, D, H, W) values (e.g. foreground probabilities).
        depth: (B, *plane) integer indices into ``axis``; ``plane`` is (D, H, W)
            without ``axis``.
        axis: spatial axis 0, 1 or 2 (dim ``axis + 1`` of ``p``).

    Returns:
        (B, *plane) values ``p[b, ..., depth[b, r], ...]``.

    Example:
        >>> p = torch.arange(8.0).reshape(1, 2, 2, 2)
        >>> gather_rays(p, torch.tensor([[[1, 0], [0, 1]]]), 0).tolist()
        [[[4.0, 1.0], [2.0, 7.0]]]
    """
    moved = p.movedim(axis + 1, 1)
    return moved.gather(1, depth.long().unsqueeze(1)).squeeze(1)


@register_loss("mip")
class MIPLoss(SegLoss):
    """Soft Dice between the 2D MIP label and the foreground probability at each ray's
    brightest voxel (see the module docstring for the formula and conventions).

    Args:
        idc: foreground classes (their probabilities are summed; the 2D target is
            ``mip_label in idc``); default in specs: 1..K-1.
        axis: spatial axis of the projection in (B, K, D, H, W): 0 (D, the default:
            dim 2), 1 (H) or 2 (W); must match the dataset's ``mip_axis``.
        smooth: s, added to numerator and denominator (> 0), in rays.

    Returns (forward):
        float32 scalar in [0, 1].

    Example:
        >>> p1 = torch.tensor([[[[0.9]], [[0.2]]]])          # (B=1, D=2, H=1, W=1)
        >>> probs = torch.stack([1 - p1, p1], dim=1)        # (1, 2, 2, 1, 1)
        >>> batch = {"target": probs, "mip_label": torch.tensor([[[1]]]),
        ...          "mip_depth": torch.tensor([[[0]]]), "mip_valid": torch.ones(1, 1, 1)}
        >>> round(float(MIPLoss([1])(None, probs, batch)), 6)   # 1 - 2*0.9/(0.9+1)
        0.052632
    """

    def __init__(self, idc: Sequence[int], axis: int = 0, smooth: float = 1e-6) -> None:
        super().__init__(idc)
        if isinstance(axis, bool) or axis not in (0, 1, 2):
            raise ValueError(f"mip: axis must be 0, 1 or 2, got {axis!r}")
        self.axis = int(axis)
        self.smooth = _smooth(smooth)

    @classmethod
    def default_idc(cls, n_classes: int) -> list[int]:
        """Foreground classes 1..K-1 (summed into one foreground probability)."""
        if n_classes < 2:
            raise ValueError(f"mip: needs a foreground class, got n_classes={n_classes}")
        return list(range(1, n_classes))

    @property
    def requires(self) -> frozenset[str]:
        """``target`` plus the three MIP keys."""
        return super().requires | frozenset(MIP_KEYS)

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, axis={self.axis}, smooth={self.smooth}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        check_inputs(self, probs, batch, MIP_KEYS)
        if probs.ndim != 5:
            raise ValueError(f"mip: probs must be (B, K, D, H, W), got {tuple(probs.shape)}")
        plane = [n for a, n in enumerate(probs.shape[2:]) if a != self.axis]
        want = (probs.shape[0], *plane)
        for key in MIP_KEYS:
            if tuple(batch[key].shape) != want:
                raise ValueError(f"mip: batch[{key!r}] has shape {tuple(batch[key].shape)},"
                                 f" expected {want} (axis {self.axis})")
        axes = batch.get("mip_axis")
        if axes is not None and bool((torch.as_tensor(axes) != self.axis).any()):
            raise ValueError(f"mip: batch['mip_axis'] {torch.as_tensor(axes).tolist()} !="
                             f" the loss's axis {self.axis}")
        if batch["mip_depth"].is_floating_point():
            raise ValueError("mip: batch['mip_depth'] must be an integer tensor")
        with full_precision(probs):
            valid = batch["mip_valid"].float()
            p_fg = probs[:, list(self.idc)].float().sum(1)  # (B, D, H, W)
            depth = torch.where(valid > 0, batch["mip_depth"].long(),
                                torch.zeros_like(batch["mip_depth"], dtype=torch.long))
            q = gather_rays(p_fg, depth, self.axis) * valid
            idc = torch.tensor(self.idc, device=probs.device)
            t = torch.isin(batch["mip_label"].long(), idc).float() * valid
            inter = (q * t).flatten(1).sum(1)
            p_sum, t_sum = q.flatten(1).sum(1), t.flatten(1).sum(1)
            dice = (2.0 * inter + self.smooth) / (p_sum + t_sum + self.smooth)
            return 1.0 - dice.mean()
