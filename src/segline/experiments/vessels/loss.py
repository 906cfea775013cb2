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

The fused method's loss, ``mip_fused`` (:class:`MIPFusedLoss`), is the published
training loss of the 2D-3D fusion network (:mod:`segline.experiments.vessels.fused`):
three count-normalised cross-entropies of the 3D prediction (pseudo-label
foreground, annotated voxels, pseudo-label background) and two 2D Dice losses (the
3D prediction at the MIP depth, the fused 2D prediction) against the 2D label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
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


def check_mip_batch(loss: str, what: str, volume: Tensor, batch: Mapping[str, Tensor],
                    axis: int) -> list[int]:
    """The projection plane's size (the two axes but ``axis``); ValueError unless
    ``volume`` is (B, K, D, H, W) and every MIP batch key is (B, plane). ``loss`` and
    ``what`` name the loss and the checked tensor in the message."""
    if volume.ndim != 5:
        raise ValueError(f"{loss}: {what} must be (B, K, D, H, W), got {tuple(volume.shape)}")
    plane = [n for a, n in enumerate(volume.shape[2:]) if a != axis]
    want = (volume.shape[0], *plane)
    for key in MIP_KEYS:
        if tuple(batch[key].shape) != want:
            raise ValueError(f"{loss}: batch[{key!r}] has shape {tuple(batch[key].shape)},"
                             f" expected {want} (axis {axis})")
    return plane


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
        check_mip_batch("mip", "probs", probs, batch, self.axis)
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


# -- the fused method's loss (network MipFused, segline.experiments.vessels.fused) -----

FUSED_KEYS = ("mip_fused", "mip_fused_depth")
"""Batch keys of the fused 2D logits (B, K, *plane) and of the MIP index (B, *plane)
the network fused them at; the vessel trainer adds them from the network's training
output (:class:`segline.experiments.vessels.fused.FusedOutput`)."""
CLAMP = 1e-5
"""Smoothing of the 2D Dice terms (the published value)."""


def seed_voxels(target2d: Tensor, depth: Tensor, shape: Sequence[int], axis: int) -> Tensor:
    """The 2D label scattered into 3D at each ray's MIP index: the voxels an
    annotator of the MIP labelled (the published "centre" voxels).

    Args:
        target2d: (B, *plane) 0/1 (labelled rays, already restricted to valid ones).
        depth: (B, *plane) integer index along ``axis`` (any value where ``target2d`` is 0).
        shape: (B, D, H, W) of the volume.
        axis: spatial axis 0, 1 or 2.

    Returns:
        (B, D, H, W) float32, 1 at ``depth`` of each labelled ray, else 0.

    Example:
        >>> t, d = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[1, 0]]])
        >>> seed_voxels(t, d, (1, 2, 1, 2), 0)[0].tolist()
        [[[0.0, 0.0]], [[1.0, 0.0]]]
    """
    b, *spatial = (int(n) for n in shape)
    moved = [spatial[axis]] + [n for a, n in enumerate(spatial) if a != axis]
    out = torch.zeros((b, *moved), dtype=torch.float32, device=target2d.device)
    out.scatter_(1, depth.long().unsqueeze(1), target2d.float().unsqueeze(1))
    return out.movedim(1, axis + 1)


def dice2d(p_fg: Tensor, t_fg: Tensor, rays: Tensor, smooth: float = CLAMP) -> Tensor:
    """The published 2D Dice loss of a foreground probability map: for the foreground
    and the background channel ``c``, ``1 - (2 Σ p_c t_c + s) / (Σ p_c² + Σ t_c² + s)``,
    summed over the two channels; sums over the ``rays`` (0/1) of the whole batch.

    Example:
        >>> p, t, v = torch.tensor([[0.5, 1.0]]), torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)
        >>> round(float(dice2d(p, t, v)), 5)   # fg: 1 - 3/3.25; bg: 1 - s/(0.25+s)
        1.07688
    """
    loss = p_fg.new_zeros(())
    for p, t in ((p_fg, t_fg), (1.0 - p_fg, 1.0 - t_fg)):
        p, t = p * rays, t * rays
        inter = (p * t).sum()
        loss = loss + 1.0 - (2.0 * inter + smooth) / ((p * p).sum() + (t * t).sum() + smooth)
    return loss


def _mean_over(per_voxel: Tensor, where: Tensor) -> Tensor:
    """``Σ where·per_voxel / Σ where`` over the batch; 0 when ``where`` is empty."""
    return (per_voxel * where).sum() / where.sum().clamp_min(1.0)


@register_loss("mip_fused")
class MIPFusedLoss(SegLoss):
    """The training loss of Guo et al.'s fused network (``--net MipFused``): three
    count-normalised cross-entropies of the 3D prediction and two 2D Dice losses of
    the projections. With ``p`` the 3D foreground probability (classes ``idc``
    summed; background = the others) and ``log`` from ``log_softmax``:

    - ``fore = -Σ_F log p / |F|`` over F, the voxels the training label (the
      pseudo-label) marks foreground and ``batch["mask"]`` counts;
    - ``ctr = -Σ_C log p / |C|`` over C, the annotated voxels: each labelled ray's
      voxel at its MIP depth (:func:`seed_voxels`; valid rays only, mask not applied);
    - ``back = -Σ_B log (1 - p) / |B|`` over B, the counted background voxels;
    - ``proj = dice2d(p at the MIP depth, 2D label)`` over the valid rays;
    - ``fused = dice2d(softmax of the fused 2D logits, 2D label)`` over the valid
      rays where the network's own MIP index equals the MIP store's depth (the fused
      features are those of the annotated voxel); 0 when the batch holds no fused
      logits (validation and test run the 3D head only).

    Sums and counts run over the whole batch (the published code trains one volume
    per batch); a term whose set is empty is 0. The loss is
    ``fore·a + ctr·b + back·c + proj·d + fused·e`` with the weights below (all 1,
    as published).

    Args:
        idc: foreground classes (default 1..K-1).
        axis: projection axis (0, 1 or 2), the MIP store's.
        fore, ctr, back, proj, fused: weights of the five terms (finite, >= 0).

    Example:
        >>> logits = torch.zeros(1, 2, 2, 1, 1)                       # p = 1/2 everywhere
        >>> t = torch.tensor([1.0, 0.0]).reshape(1, 1, 2, 1, 1)
        >>> batch = {"target": torch.cat([1 - t, t], 1), "mip_label": torch.ones(1, 1, 1),
        ...          "mip_depth": torch.zeros(1, 1, 1, dtype=torch.long),
        ...          "mip_valid": torch.ones(1, 1, 1)}
        >>> loss = MIPFusedLoss([1], proj=0)
        >>> round(float(loss(logits, logits.softmax(1), batch)), 6)  # 3 log 2
        2.079442
    """

    needs_logits = True
    TERMS = ("fore", "ctr", "back", "proj", "fused")

    def __init__(self, idc: Sequence[int], axis: int = 0, fore: float = 1.0, ctr: float = 1.0,
                 back: float = 1.0, proj: float = 1.0, fused: float = 1.0) -> None:
        super().__init__(idc)
        if isinstance(axis, bool) or axis not in (0, 1, 2):
            raise ValueError(f"mip_fused: axis must be 0, 1 or 2, got {axis!r}")
        self.axis = int(axis)
        self.weights: dict[str, float] = {}
        for name, w in zip(self.TERMS, (fore, ctr, back, proj, fused), strict=True):
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not (
                    math.isfinite(w) and w >= 0):
                raise ValueError(f"mip_fused: {name} must be a finite number >= 0, got {w!r}")
            self.weights[name] = float(w)

    @classmethod
    def default_idc(cls, n_classes: int) -> list[int]:
        """Foreground classes 1..K-1."""
        return MIPLoss.default_idc(n_classes)

    @property
    def requires(self) -> frozenset[str]:
        """``target`` plus the three MIP keys (the fused keys are optional)."""
        return super().requires | frozenset(MIP_KEYS)

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, axis={self.axis}, weights={self.weights}"

    def terms(self, logits: Tensor, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The five unweighted terms (float32 scalars), by name."""
        check_inputs(self, logits, batch, MIP_KEYS)
        plane = check_mip_batch("mip_fused", "logits", logits, batch, self.axis)
        if batch["mip_depth"].is_floating_point():
            raise ValueError("mip_fused: batch['mip_depth'] must be an integer tensor")
        fg = list(self.idc)
        bg = [k for k in range(logits.shape[1]) if k not in fg]
        if not bg:
            raise ValueError("mip_fused: needs a background class outside idc")
        with full_precision(logits):
            log_p = F.log_softmax(logits.float(), dim=1)
            log_fg, log_bg = log_p[:, fg].logsumexp(1), log_p[:, bg].logsumexp(1)
            counted = batch["mask"].float() if batch.get("mask") is not None else 1.0
            target = batch["target"].float()
            t_fg = (target[:, fg].sum(1) > 0.5).float() * counted
            t_bg = (target[:, bg].sum(1) > 0.5).float() * counted
            valid = batch["mip_valid"].float()
            depth = torch.where(valid > 0, batch["mip_depth"].long(),
                                torch.zeros_like(batch["mip_depth"], dtype=torch.long))
            idc = torch.tensor(fg, device=logits.device)
            label2d = torch.isin(batch["mip_label"].long(), idc).float() * valid
            seeds = seed_voxels(label2d, depth, log_fg.shape, self.axis)
            out = {
                "fore": _mean_over(-log_fg, t_fg),
                "ctr": _mean_over(-log_fg, seeds),
                "back": _mean_over(-log_bg, t_bg),
                "proj": dice2d(gather_rays(log_fg.exp(), depth, self.axis), label2d, valid),
            }
            fused = batch.get(FUSED_KEYS[0])
            if fused is None:
                out["fused"] = log_fg.new_zeros(())
            else:
                if tuple(fused.shape) != (logits.shape[0], logits.shape[1], *plane):
                    raise ValueError(f"mip_fused: batch['mip_fused'] has shape "
                                     f"{tuple(fused.shape)}, expected "
                                     f"{(logits.shape[0], logits.shape[1], *plane)}")
                same = (batch[FUSED_KEYS[1]].long() == depth).float() * valid
                p2d = fused.float().softmax(1)[:, fg].sum(1)
                out["fused"] = dice2d(p2d, label2d, same)
            return out

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        if logits is None:
            raise ValueError("mip_fused: needs logits (log_softmax is the stable form)")
        terms = self.terms(logits, batch)
        total = logits.new_zeros((), dtype=torch.float32)
        for name, value in terms.items():
            total = total + self.weights[name] * value
        return total
