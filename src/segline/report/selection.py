"""How the best epoch was selected, in the report's words, and the check that each
training's ``best_epoch.txt`` is the maximum of its selection in ``epochs.csv``.

Each training records what its trainer selected the best epoch on: ``args.json``
``selected_on``, the ``epochs.csv`` columns its best epoch maximises, in order (the
first decides, the next breaks its ties): ``["val_dice"]`` for the core trainer,
``["val_id_rate", "val_dice"]`` for the vertebra methods. A training without the
record (trained before trainers recorded it) selected on ``val_dice``
(:data:`DEFAULT_SELECTION`). The report knows no trainer: it reads the record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from segline.errors import InputError
from segline.report.model import Row
from segline.results import MethodResults

DEFAULT_SELECTION = ("val_dice",)
"""``selected_on`` of a training that records none."""
WORDS = {"val_dice": "validation Dice", "val_id_rate": "validation identification rate"}
"""The report's words for an ``epochs.csv`` column (others: the column's name)."""
TIE = 1e-9
"""Values this close count as equal (``epochs.csv`` holds them at full precision)."""


def _counts(values: dict[str, int], what: str) -> str:
    """``3 validation cases`` or, when methods differ, the count per method."""
    distinct = sorted(set(values.values()))
    if len(distinct) == 1:
        return f"{distinct[0]} {what}"
    return f"{what} (per method: " + ", ".join(f"{k}: {v}" for k, v in values.items()) + ")"


def selected_on(run: MethodResults) -> tuple[str, ...]:
    """The ``epochs.csv`` columns ``run``'s best epoch maximises, in order (its
    ``args.json`` ``selected_on``; :data:`DEFAULT_SELECTION` without the record).

    Raises:
        InputError: ``selected_on`` is not a non-empty list of column names.
    """
    path = run.path / "args.json"
    try:
        args = json.loads(path.read_text())
    except (OSError, ValueError):
        return DEFAULT_SELECTION  # the configuration section says what is wrong with it
    chosen = args.get("selected_on") if isinstance(args, dict) else None
    if chosen is None:
        return DEFAULT_SELECTION
    if not (isinstance(chosen, list) and chosen and all(isinstance(c, str) for c in chosen)):
        raise InputError(path, f"selected_on must be a list of epochs.csv columns, got {chosen!r}")
    return tuple(chosen)


def words(column: str) -> str:
    """The report's words for an ``epochs.csv`` column (:data:`WORDS`)."""
    return WORDS.get(column, column)


def rule_text(columns: Sequence[str]) -> str:
    """``validation Dice`` or ``validation identification rate, then validation Dice``."""
    return ", then ".join(words(c) for c in columns)


def shared_rule(runs: Sequence[MethodResults]) -> str:
    """The selection of all ``runs`` (:func:`rule_text`), or, when they differ, each
    training's."""
    rules = {m.label: selected_on(m) for m in runs}
    if len(set(rules.values())) <= 1:
        return rule_text(next(iter(rules.values()), DEFAULT_SELECTION))
    return "each training's own (" + "; ".join(
        f"{label}: {rule_text(cols)}" for label, cols in rules.items()) + ")"  # fmt: skip


def best_epochs(run: MethodResults, columns: Sequence[str]) -> list[int]:
    """The epochs of ``epochs.csv`` that maximise ``columns`` in order: the highest of
    the first, among those (within :data:`TIE`) the highest of the next, and so on; a
    column without any finite value decides nothing. Empty when the first column has
    no finite value."""
    candidates = list(run.epoch_column(columns[0]).index)
    for i, column in enumerate(columns):
        values = run.epoch_column(column)[candidates].to_numpy(dtype=float)
        finite = np.isfinite(values)
        if not finite.any():
            if i == 0:
                return []
            continue
        top = values[finite].max()
        candidates = [e for e, v in zip(candidates, values, strict=True)
                      if np.isfinite(v) and v >= top - TIE]  # fmt: skip
    return candidates


def selection_notes(runs: Sequence[MethodResults], rows: Sequence[Row]) -> list[str]:
    """What was selected on what (each training's ``selected_on``), and any training
    whose best epoch is not among the epochs maximising it (:func:`best_epochs`)."""
    n_val = {r.label: r.n_val for r in rows}
    n_test = {r.label: r.test["dice"].n for r in rows}
    rule = shared_rule(runs)
    if rule == rule_text(DEFAULT_SELECTION):
        rule = f"mean {rule}"
    elif not rule.startswith("each"):
        rule = "the " + rule.replace(", then ", ", ties broken by the ") + ","
    notes = [
        f"Best epoch selected on {rule} over {_counts(n_val, 'validation cases')}; "
        f"all test numbers below on the {_counts(n_test, 'held-out test cases')} "
        "(never used for selection)."
    ]
    for m in runs:
        columns = selected_on(m)
        if any(c not in m.epochs.columns for c in columns):
            continue
        best = best_epochs(m, columns)
        if not best or m.best_epoch not in m.epoch_column(columns[0]).index:
            notes.append(
                f"Note: {m.label}: best epoch {m.best_epoch} has no {words(columns[0])} "
                "in epochs.csv."
            )
            continue
        if m.best_epoch not in best:
            notes.append(
                f"Note: {m.label}: best_epoch.txt says {m.best_epoch}, but the highest "
                f"{rule_text(columns).replace(', then ', ' (then ')}"
                f"{')' * (len(columns) - 1)} in epochs.csv is at epoch {best[0]}."
            )
    return notes
