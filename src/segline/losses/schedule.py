"""The weight schedules of the boundary-loss paper (Kervadec et al.).

α is the weight of the *scheduled* terms of a loss spec (normally the boundary loss),
as a function of the epoch **index**, counted from 0. Users see epochs counted from 1
(logs, csv files, ``best_epoch.txt``); the trainer passes index = epoch − 1
(:func:`segline.train.loop.epoch_index`, the one conversion), so the first epoch gets
α = ``start``. With the defaults, α = 0.01·epoch for epochs counted from 1.
In the formulas below ``epoch`` is that index:

- ``constant``: ``α = start`` at every epoch; the other terms keep their weights
  (``total = regional + α·boundary``).
- ``increase``: ``α = min(start + step·epoch, cap)``; the other terms keep their
  weights (``total = regional + α·boundary``).
- ``rebalance``: same α, and the other terms are multiplied by ``1 − α``
  (``total = (1 − α)·regional + α·boundary``).
- ``steal``: the published code's ``StealWeight`` scheduler. α = ``start + step·epoch``
  with **no cap**, and the other terms are multiplied by
  ``max(STEAL_FLOOR, 1 − step·epoch)``, ``STEAL_FLOOR = 0.1``
  (``total = max(0.1, 1 − 0.01·e)·regional + (0.01 + 0.01·e)·boundary`` with the
  defaults). ``cap`` is ignored.

Defaults ``start = 0.01, step = 0.01, cap = 0.99``. ``rebalance`` follows the MIDL
2019 paper's text, which writes the combination as ``α·L_GDL + (1 − α)·L_B`` with its
α starting at 1 and decreased by 0.01 per epoch until 0.01: in our notation (α on the
boundary term) a boundary weight growing by 0.01 per epoch until 0.99, where the
regional term keeps 1% of its weight. Its first epoch has boundary weight 0
(``start=0``); the default ``start = 0.01`` is the first boundary weight of the
published code's runs. With 0.01 per epoch, the cap is reached at index 98 (epoch 99
as counted from 1): on shorter trainings the cap never binds.

The published code does not rebalance: its ``StealWeight`` (called after each epoch
index ``i``, from 0, so epoch index ``e`` trains with the weights of ``e`` calls) takes
0.01 per epoch from the regional weight, down to 0.1, and adds it to the boundary
weight without limit: ``steal``. Both give the boundary term α = 0.01 + 0.01·e up to
index 98, where ``rebalance`` caps it at 0.99 and ``steal`` lets it grow past 1 (2.0 at
index 199, the last of 200 epochs). The regional factor differs at every epoch:
``rebalance`` 1 − α = 0.99 − 0.01·e down to 0.01, ``steal`` 1 − 0.01·e (0.01 more) down
to 0.1, reached at index 90. The reference subtracts from the regional weight; ``steal``
multiplies the written weight by the factor: the same for the published runs' GDL
weight 1.

Example:
    >>> s = Schedule("rebalance")
    >>> [s.alpha_at(e) for e in (0, 1, 2, 98, 500)]
    [0.01, 0.02, 0.03, 0.99, 0.99]
    >>> s.factors_at(1)      # (factor on the other terms, α on the scheduled ones)
    (0.98, 0.02)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral

SCHEDULE_KINDS = ("constant", "increase", "rebalance", "steal")
STEAL_FLOOR = 0.1
"""``steal``: the smallest factor left on the unscheduled terms (the reference's 0.1)."""


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"schedule: {what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Schedule:
    """α as a function of the epoch, and how it reweights a combined loss.

    Args:
        kind: ``"constant"``, ``"increase"``, ``"rebalance"`` or ``"steal"``.
        start: α at index 0, the first epoch (>= 0; <= cap for ``increase`` and
            ``rebalance``).
        step: added to α after each epoch (>= 0; ignored by ``constant``; ``steal``
            also takes it from the other terms' factor).
        cap: largest α (``rebalance``: <= 1, so that ``1 − α`` stays >= 0; ignored by
            ``constant`` and ``steal``).

    Example:
        >>> Schedule("increase", start=0.1, step=0.5, cap=1.0).alpha_at(3)
        1.0
        >>> Schedule("constant", start=0.01).factors_at(50)
        (1.0, 0.01)
    """

    kind: str = "rebalance"
    start: float = 0.01
    step: float = 0.01
    cap: float = 0.99

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(
                f"unknown schedule {self.kind!r}; known schedules: {', '.join(SCHEDULE_KINDS)}"
            )
        start = _number(self.start, "start")
        step = _number(self.step, "step")
        cap = _number(self.cap, "cap")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "cap", cap)
        if start < 0 or step < 0:
            raise ValueError(f"schedule: start and step must be >= 0, got {start}, {step}")
        if self.kind in ("increase", "rebalance") and cap < start:
            raise ValueError(f"schedule: cap ({cap}) must be >= start ({start})")
        if self.kind == "rebalance" and cap > 1:
            raise ValueError(f"schedule: rebalance needs cap <= 1 (1 - α >= 0), got {cap}")

    def alpha_at(self, epoch: int) -> float:
        """α at epoch index ``epoch`` (0-based), rounded to 12 decimals (no 0.30000000000000004).

        Args:
            epoch: the epoch index, >= 0 (epoch counted from 1, minus 1).

        Returns:
            ``start`` for ``constant``, ``start + step·epoch`` for ``steal``, else
            ``min(start + step·epoch, cap)``.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, Integral) or epoch < 0:
            raise ValueError(f"schedule: epoch must be an integer >= 0, got {epoch!r}")
        epoch = int(epoch)
        if self.kind == "constant":
            return self.start
        if self.kind == "steal":
            return round(self.start + self.step * epoch, 12)
        return round(min(self.start + self.step * epoch, self.cap), 12)

    def factors_at(self, epoch: int) -> tuple[float, float]:
        """``(other, alpha)``: multiply unscheduled terms by ``other``, scheduled ones by α.

        Args:
            epoch: the epoch index, >= 0 (epoch counted from 1, minus 1).

        Returns:
            ``(1 − α, α)`` for ``rebalance``, ``(max(0.1, 1 − step·epoch), α)`` for
            ``steal``, ``(1.0, α)`` otherwise.

        Example:
            >>> [Schedule("steal").factors_at(e) for e in (1, 50, 90, 200)]
            [(0.99, 0.02), (0.5, 0.51), (0.1, 0.91), (0.1, 2.01)]
        """
        alpha = self.alpha_at(epoch)
        if self.kind == "rebalance":
            return round(1.0 - alpha, 12), alpha
        if self.kind == "steal":
            return round(max(STEAL_FLOOR, 1.0 - self.step * int(epoch)), 12), alpha
        return 1.0, alpha
