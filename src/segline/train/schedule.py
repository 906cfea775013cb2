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
  - ``cosine``: ``lr * (1 + cos(pi * t / (E - W))) / 2``, from ``lr`` towards 0.

Example:
    >>> [round(lr_at(e, 4, 1.0, "poly"), 4) for e in (1, 2, 3, 4)]
    [1.0, 0.7719, 0.5359, 0.2872]
    >>> [lr_at(e, 4, 1.0, "const", warmup=1) for e in (1, 2)]
    [0.5, 1.0]
"""

from __future__ import annotations

import math

SCHEDS = ("const", "poly", "cosine")
"""The schedules (``SCHED`` / ``--sched``)."""
POLY_EXPONENT = 0.9


def lr_at(epoch: int, epochs: int, lr: float, sched: str = "const", warmup: int = 0) -> float:
    """The learning rate of ``epoch`` (1..``epochs``); see the module docstring.

    Args:
        epoch: the epoch, counted from 1.
        epochs: the number of epochs E.
        lr: the base learning rate.
        sched: ``"const"``, ``"poly"`` or ``"cosine"``.
        warmup: epochs of linear warm-up W, ``0 <= W < E``.

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
    t, span = epoch - warmup - 1, epochs - warmup
    if sched == "poly":
        return lr * (1.0 - t / span) ** POLY_EXPONENT
    return lr * (1.0 + math.cos(math.pi * t / span)) / 2.0
