"""Learning-rate schedules of the trainer (``SCHED``, ``WARMUP``): the LR of each epoch.

The LR is a function of the epoch only (:func:`lr_at`), set on the optimiser at the
start of every epoch, so a resumed training uses exactly the LRs of an uninterrupted
one, and ``epochs.csv``'s ``lr`` column shows the LR each epoch trained with.
Epochs are counted from 1 as everywhere a user sees them; ``E`` is ``EPC``, ``W``
is ``WARMUP`` (0 by default) and ``lr`` is ``LR``.

- warm-up, epochs ``e = 1..W``: linear, ``lr * e / (W + 1)`` (``lr/(W+1)`` in the
  first epoch, never 0, reaching ``lr`` in the first epoch after it);
- then the schedule runs over the remaining ``E - W`` epochs, ``t = e - W - 1`` of
  them done (``t = 0`` in the first epoch after the warm-up):

  - ``const``: ``lr`` (the default; with ``W = 0`` exactly today's training);
  - ``poly``: ``lr * (1 - t / (E - W)) ** 0.9`` (nnU-Net's polynomial decay);
  - ``cosine``: ``lr * (1 + cos(pi * t / (E - W))) / 2``, from ``lr`` towards 0;
  - ``halve``: the boundary-loss reference code's rule (its ``--schedule`` flag): the
    LR is halved after every completed epoch ``c > W`` whose index as that code counts
    it, ``i = c - 1``, satisfies ``i % (b + 20) == 0``, where ``b`` is the index of
    the best epoch so far (the best epoch counted from 1, minus 1; 0 while there is
    none, the reference's initial value). So ``lr * 0.5 ** h`` with ``h`` such
    halvings before ``epoch``. As in the reference the first one follows the very
    first epoch (``0 % (b + 20) == 0``), and while the best epoch stays index ``b``
    the LR halves every ``b + 20`` epochs. It depends on the best-epoch history
    (``best``), which the trainer keeps in its resume state.

Example:
    >>> [round(lr_at(e, 4, 1.0, "poly"), 4) for e in (1, 2, 3, 4)]
    [1.0, 0.7719, 0.5359, 0.2872]
    >>> [lr_at(e, 4, 1.0, "const", warmup=1) for e in (1, 2)]
    [0.5, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SCHEDS = ("const", "poly", "cosine", "halve")
"""The schedules (``SCHED`` / ``--sched``)."""
POLY_EXPONENT = 0.9
HALVE_PATIENCE = 20
"""``halve``: the 20 of the reference's ``epoch % (best_epoch + 20) == 0``."""


def halvings(epoch: int, best: Sequence[int], warmup: int = 0) -> int:
    """``halve``: how many times the LR was halved before ``epoch`` (counted from 1).

    Args:
        epoch: the epoch about to train, counted from 1.
        best: ``best[c - 1]`` is the best epoch (counted from 1; < 1: none yet) once
            epoch ``c`` completed, for at least ``c = 1 .. epoch - 1``.
        warmup: warm-up epochs W; they never halve.

    Example:
        >>> halvings(2, [1]), halvings(21, [1] * 20), halvings(22, [1] * 21)
        (1, 1, 2)
    """
    if len(best) < epoch - 1:
        raise ValueError(
            f"halve: the best epoch after each of epochs 1..{epoch - 1} is needed, "
            f"got {len(best)}"
        )
    count = 0
    for c in range(warmup + 1, epoch):
        b = max(int(best[c - 1]) - 1, 0)
        count += (c - 1) % (b + HALVE_PATIENCE) == 0
    return count


def lr_at(
    epoch: int,
    epochs: int,
    lr: float,
    sched: str = "const",
    warmup: int = 0,
    best: Sequence[int] = (),
) -> float:
    """The learning rate of ``epoch`` (1..``epochs``); see the module docstring.

    Args:
        epoch: the epoch, counted from 1.
        epochs: the number of epochs E.
        lr: the base learning rate.
        sched: ``"const"``, ``"poly"``, ``"cosine"`` or ``"halve"``.
        warmup: epochs of linear warm-up W, ``0 <= W < E``.
        best: ``halve`` only (ignored otherwise): the best epoch after each completed
            epoch, :func:`halvings`.

    Raises:
        ValueError: unknown schedule, or epoch/warm-up out of range.
    """
    if sched not in SCHEDS:
        raise ValueError(f"schedule must be one of {SCHEDS}, got {sched!r}")
    if not 0 <= warmup < epochs or not 1 <= epoch <= epochs:
        raise ValueError(
            f"need 0 <= warmup < epochs and 1 <= epoch <= epochs, got "
            f"warmup {warmup}, epoch {epoch}, epochs {epochs}"
        )
    if epoch <= warmup:
        return lr * epoch / (warmup + 1)
    if sched == "const":
        return lr
    if sched == "halve":
        return lr * 0.5 ** halvings(epoch, best, warmup)
    t, span = epoch - warmup - 1, epochs - warmup
    if sched == "poly":
        return lr * (1.0 - t / span) ** POLY_EXPONENT
    return lr * (1.0 + math.cos(math.pi * t / span)) / 2.0
