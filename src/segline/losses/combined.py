"""The weighted sum of a spec's losses, with the α schedule applied per epoch.

``total = sum_i w_i(epoch) * loss_i`` where ``w_i`` is the written weight of an
unscheduled term times the schedule's factor for the other terms (``1 − α`` for
``rebalance``, else 1), and α itself for a scheduled term
(:meth:`segline.losses.schedule.Schedule.factors_at`).

Example:
    >>> import torch
    >>> crit = CombinedLoss.from_spec("gdl,boundary[schedule=rebalance]", n_classes=2)
    >>> crit.weights_at(0), crit.alpha_at(0), sorted(crit.requires)
    ([0.99, 0.01], 0.01, ['dist', 'target'])
    >>> logits = torch.zeros(1, 2, 4, 4, requires_grad=True)
    >>> t = torch.zeros(1, 2, 4, 4); t[:, 0] = 1
    >>> total, terms = crit(logits, {"target": t, "dist": torch.ones(1, 2, 4, 4)}, epoch=0)
    >>> sorted(terms), round(float(terms["boundary"]), 3)
    (['boundary', 'gdl'], 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from segline.losses.registry import full_precision
from segline.losses.schedule import Schedule
from segline.losses.spec import LossTerm, parse_spec


def _term_keys(terms: Sequence[LossTerm]) -> list[str]:
    """Logging keys: the loss name, with ``_2``, ``_3``... for repeated names."""
    seen: dict[str, int] = {}
    keys = []
    for t in terms:
        seen[t.name] = seen.get(t.name, 0) + 1
        keys.append(t.name if seen[t.name] == 1 else f"{t.name}_{seen[t.name]}")
    return keys


class CombinedLoss(nn.Module):
    """Weighted sum of losses built from a parsed spec.

    Args:
        terms: the parsed terms (:func:`segline.losses.spec.parse_spec`); scheduled
            terms must share one schedule.

    Call:
        ``total, values = crit(logits, batch, epoch=0)`` with logits (B, K, *spatial)
        (2D or 3D) and ``batch`` as in :mod:`segline.losses.registry`. Softmax is taken
        once, in float32. ``total`` is a float32 scalar tensor (backpropagate it);
        ``values`` maps each term's key (its name, ``name_2`` for a repeat) to its
        *unweighted* value as a Python float (one device sync per term).

    Attributes:
        keys: the logging keys, in spec order.
        schedule: the shared schedule, or ``None``.
    """

    def __init__(self, terms: Sequence[LossTerm]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("CombinedLoss needs at least one term")
        self.terms: tuple[LossTerm, ...] = tuple(terms)
        self.losses = nn.ModuleList(t.build() for t in self.terms)
        self.keys: list[str] = _term_keys(self.terms)
        schedules = {t.schedule for t in self.terms if t.schedule is not None}
        if len(schedules) > 1:
            raise ValueError("scheduled terms must share one schedule")
        self.schedule: Schedule | None = next(iter(schedules), None)

    @classmethod
    def from_spec(cls, spec: str, n_classes: int) -> CombinedLoss:
        """Parse ``spec`` (see :mod:`segline.losses.spec`) and build the combined loss."""
        return cls(parse_spec(spec, n_classes))

    @property
    def requires(self) -> frozenset[str]:
        """Batch keys some term needs (``target``, plus ``dist`` / ``weight``)."""
        return frozenset().union(*(loss.requires for loss in self.losses))

    @property
    def needs_dist(self) -> bool:
        """True if a term reads distance maps (the data loader must load them)."""
        return "dist" in self.requires

    def alpha_at(self, epoch: int) -> float:
        """α of the scheduled terms at epoch index ``epoch`` (0-based; the ``alpha``
        column of the epoch numbered ``epoch + 1``); NaN if none."""
        return math.nan if self.schedule is None else self.schedule.alpha_at(epoch)

    def weights_at(self, epoch: int) -> list[float]:
        """Effective weight of each term at epoch index ``epoch`` (0-based), in spec order."""
        if self.schedule is None:
            return [t.weight for t in self.terms]
        other, alpha = self.schedule.factors_at(epoch)
        return [
            alpha if t.schedule is not None else round(t.weight * other, 12) for t in self.terms
        ]

    def forward(
        self, logits: Tensor, batch: Mapping[str, Tensor], epoch: int = 0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted total (for backward) and each term's detached value.

        The values stay 0-dim tensors on the loss's device: reading one (``float``)
        waits for the device, which the training loop avoids per batch.
        """
        weights = self.weights_at(epoch)
        with full_precision(logits):
            probs = logits.float().softmax(dim=1)
        total: Tensor | None = None
        values: dict[str, Tensor] = {}
        for key, weight, loss in zip(self.keys, weights, self.losses, strict=True):
            value = loss(logits, probs, batch)
            values[key] = value.detach()
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return total, values
