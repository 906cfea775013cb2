"""The iterative method's losses (Lessmann et al., 2019): a loss on the mask of the
sought vertebra plus a binary cross-entropy on the completeness logit.

``loss = sum_i a_i * mask_term_i + b * mean_patches(BCE(c, complete))`` where ``c``
are the completeness logits. The spec (``--losses``) names the mask terms and
``complete:b``; a mask term is

- ``wbce:a`` (the default, ``wbce:1,complete:1``): the boundary-weighted binary
  cross-entropy on the mask logits ``m``, ``mean_v(w_v * BCE(m_v, t_v))`` over all
  voxels of the batch, ``t`` the target mask, ``w`` the per-voxel weights of the
  sampler (:mod:`segline.experiments.vertebrae.sampler`:
  ``1 + w0 exp(-d^2 / 2 sigma^2)``, WEIGHT_MAP); or
- any registered loss (:mod:`segline.losses`, with its options, e.g.
  ``fpfn:1[fp_weight=0.1;reduce=sum]``), applied to the two-class view of the mask:
  probabilities ``(1 - sigmoid(m), sigmoid(m))`` (the softmax of the logits
  ``(0, m)``), target ``(1 - t, t)`` and the weights as ``batch["weight"]``; it
  must need nothing but the target and the weights (no distance maps).

This module registers :class:`FpFn` (``fpfn``), the published code's mask loss: the
soft, weighted false positives and false negatives of the foreground,
``fp_weight * FP + FN`` (``fp_weight`` 0.1 favours recall).

Example:
    >>> loss = IterativeLoss.from_spec("wbce:1,complete:0.5")
    >>> (loss.mask_weight, loss.complete_weight)
    (1.0, 0.5)
    >>> IterativeLoss.from_spec("fpfn:1[fp_weight=0.1],complete:1").keys
    ['fpfn', 'complete']
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from segline.losses.registry import SegLoss, check_inputs, counted, full_precision, register_loss
from segline.losses.spec import LossTerm, parse_spec

__all__ = ["DEFAULT_SPEC", "REDUCTIONS", "FpFn", "IterativeLoss"]

DEFAULT_SPEC = "wbce:1,complete:1"
REDUCTIONS = ("mean", "sum")
"""How :class:`FpFn` reduces its voxel sums: ``mean`` divides by the counted voxels
of the batch; ``sum`` sums over each patch's voxels and averages over the patches
(the published code, batch size 1)."""
_SPLIT = re.compile(r",(?![^\[]*\])")
_FORM = (
    "the iterative method's losses are 'wbce:A,complete:B' or 'LOSS:A[options],complete:B' "
    "with LOSS a registered loss on the mask (e.g. fpfn:1[fp_weight=0.1]); weights >= 0"
)


@register_loss("fpfn")
class FpFn(SegLoss):
    """Weighted soft false positives and false negatives, ``fp_weight * FP + FN``.

    Per class ``k`` of ``idc`` (default: the foreground classes 1..K-1):
    ``FP_k = sum_v w_v (1 - t_kv) p_kv`` and ``FN_k = sum_v w_v t_kv (1 - p_kv)``,
    summed over the classes; ``w`` is ``batch["weight"]`` (1 without one), ``p`` the
    probabilities, ``t`` the one-hot target; voxels outside ``batch["mask"]`` do not
    count. The sums are reduced by ``reduce`` (:data:`REDUCTIONS`).

    Args:
        idc: classes whose errors count.
        fp_weight: lambda, the weight of the false positives (>= 0; 0.1 in the
            published code).
        reduce: ``mean`` (per counted voxel of the batch) or ``sum`` (per patch).

    Example:
        >>> p = torch.tensor([[[[0.25, 0.5]], [[0.75, 0.5]]]])  # (B=1, K=2, H=1, W=2)
        >>> t = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])
        >>> round(float(FpFn([1], fp_weight=0.1, reduce="sum")(None, p, {"target": t})), 6)
        0.3
    """

    def __init__(self, idc: Sequence[int], fp_weight: float = 0.1, reduce: str = "mean") -> None:
        super().__init__(idc)
        if isinstance(fp_weight, bool) or not isinstance(fp_weight, (int, float)) or not (
            math.isfinite(fp_weight) and fp_weight >= 0
        ):
            raise ValueError(f"fpfn: fp_weight must be a finite number >= 0, got {fp_weight!r}")
        if reduce not in REDUCTIONS:
            raise ValueError(f"fpfn: reduce must be one of {REDUCTIONS}, got {reduce!r}")
        self.fp_weight = float(fp_weight)
        self.reduce = reduce

    @classmethod
    def default_idc(cls, n_classes: int) -> list[int]:
        """Foreground classes 1..K-1."""
        if n_classes < 2:
            raise ValueError(f"fpfn: needs a foreground class, got n_classes={n_classes}")
        return list(range(1, n_classes))

    def extra_repr(self) -> str:
        return f"idc={list(self.idc)}, fp_weight={self.fp_weight}, reduce={self.reduce!r}"

    def forward(self, logits: Tensor | None, probs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        check_inputs(self, probs, batch)
        with full_precision(probs):
            idc = list(self.idc)
            p = probs[:, idc].flatten(2).float()  # (B, k, N)
            t = batch["target"][:, idc].flatten(2).float()
            w = counted(batch, probs)  # (B, N)
            if batch.get("weight") is not None:
                w = w * batch["weight"].flatten(1).float()
            fp = (w[:, None] * (1.0 - t) * p).sum(dim=(1, 2))  # (B,)
            fn = (w[:, None] * t * (1.0 - p)).sum(dim=(1, 2))
            per_patch = self.fp_weight * fp + fn
            if self.reduce == "sum":
                return per_patch.mean()
            return per_patch.sum() / counted(batch, probs).sum().clamp_min(1.0)


def _weight(term: str, text: str) -> float:
    try:
        w = float(text) if text else 1.0
    except ValueError:
        w = math.nan
    if not w >= 0:
        raise ValueError(f"{_FORM}, got {term!r}")
    if not math.isfinite(w):
        raise ValueError(f"loss weights must be finite, got {term!r}")
    return w


class IterativeLoss:
    """Mask terms + completeness BCE (module docstring); the interface of
    :class:`segline.losses.CombinedLoss` that :class:`segline.train.loop.Trainer` uses
    (``requires``, ``needs_dist``, ``alpha_at``, call with ``epoch``).

    Args:
        mask_weight: the weight of ``wbce``.
        complete_weight: the weight of the completeness BCE.
        terms: the registered mask terms (parsed for two classes).
        wbce: whether ``wbce`` is a term (the spec names it).
    """

    requires: frozenset[str] = frozenset()
    needs_dist = False

    def __init__(
        self,
        mask_weight: float = 1.0,
        complete_weight: float = 1.0,
        terms: Sequence[LossTerm] = (),
        wbce: bool = True,
    ) -> None:
        self.mask_weight = float(mask_weight)
        self.complete_weight = float(complete_weight)
        self.terms = tuple(terms)
        self.losses = [t.build() for t in self.terms]
        for loss in self.losses:
            extra = loss.requires - {"target", "weight"}
            if extra:
                raise ValueError(f"{_FORM}; {loss.name} needs {sorted(extra)}")
        self.with_wbce = bool(wbce)
        self.keys = [*(["wbce"] if wbce else []), *(t.name for t in self.terms), "complete"]

    @classmethod
    def from_spec(cls, spec: str) -> IterativeLoss:
        """Parse the spec: ``complete:B`` and at least one mask term (``wbce:A`` or a
        registered loss with options), each once; no schedules.

        Raises:
            ValueError: another form (the message names the accepted ones).
        """
        weights: dict[str, float] = {}
        terms: list[LossTerm] = []
        for raw in _SPLIT.split(spec):
            term = raw.strip()
            name = re.split(r"[:\[]", term, maxsplit=1)[0].strip()
            if not name:
                raise ValueError(f"{_FORM}, got {spec!r}")
            if name in ("wbce", "complete"):
                head, sep, value = term.partition(":")
                if not sep or "[" in term or name in weights:
                    raise ValueError(f"{_FORM}, got {spec!r}")
                weights[name] = _weight(spec, value.strip())
                continue
            try:
                (parsed,) = parse_spec(term, n_classes=2)
            except ValueError as err:
                raise ValueError(f"{_FORM}: {err}") from None
            if parsed.schedule is not None or any(t.name == parsed.name for t in terms):
                raise ValueError(f"{_FORM} (each once, no schedule), got {spec!r}")
            terms.append(parsed)
        if "complete" not in weights or ("wbce" not in weights and not terms):
            raise ValueError(f"{_FORM}, got {spec!r}")
        return cls(weights.get("wbce", 0.0), weights["complete"], terms, "wbce" in weights)

    def alpha_at(self, epoch: int) -> float:
        """No scheduled term: NaN (the ``alpha`` column)."""
        return math.nan

    def __call__(
        self, outputs: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any], epoch: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of a batch: ``outputs`` = (mask logits (B, 1, *S), completeness
        logits (B,)), ``batch`` with ``target`` and ``weight`` (B, 1, *S) and
        ``complete`` (B,). Returns the total and its terms (:attr:`keys`)."""
        mask_logits, complete_logits = outputs
        parts: dict[str, torch.Tensor] = {}
        total: torch.Tensor | None = None
        if self.with_wbce:
            voxel = F.binary_cross_entropy_with_logits(
                mask_logits.float(), batch["target"].float(), reduction="none"
            )
            mask_term = (voxel * batch["weight"].float()).mean()
            parts["wbce"] = mask_term.detach()
            total = self.mask_weight * mask_term
        if self.losses:
            with full_precision(mask_logits):
                logits2 = torch.cat([torch.zeros_like(mask_logits), mask_logits], 1).float()
                probs2 = logits2.softmax(dim=1)
                t = batch["target"].float()
                view = {"target": torch.cat([1.0 - t, t], 1), "weight": batch["weight"][:, 0]}
            for term, loss in zip(self.terms, self.losses, strict=True):
                value = loss(logits2, probs2, view)
                parts[term.name] = value.detach()
                total = term.weight * value if total is None else total + term.weight * value
        complete_term = F.binary_cross_entropy_with_logits(
            complete_logits.float(), batch["complete"].float()
        )
        parts["complete"] = complete_term.detach()
        assert total is not None
        total = total + self.complete_weight * complete_term
        return total, parts
