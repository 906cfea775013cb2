"""Numeric CSV text at full precision, for every table segline writes.

A module of its own (pandas only) so that a stage writing a CSV does not import, and
so does not depend in its lineage on, modules it has no other use for.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["csv_text"]


def csv_text(frame: pd.DataFrame) -> str:
    """A table as CSV text at full precision: every float as its shortest round-trip
    repr (``123.45678901234568``; no ``%.6g``, which moved HD95s of 100–999 mm by up
    to 5e-4 mm), NaN as an empty field, no index, ``\\n`` line ends.

    Every numeric CSV segline writes goes through this (``metrics.csv``, ``epochs.csv``,
    ``timing.csv``, the pseudo-label ``quality.csv``), so what is read back, e.g. by the
    report for its means and statistics, is exactly what was computed.

    Example:
        >>> csv_text(pd.DataFrame({"case": ["a", "b"], "hd95": [123.456789012, float("nan")]}))
        'case,hd95\\na,123.456789012\\nb,\\n'
    """
    return frame.to_csv(index=False, lineterminator="\n")
