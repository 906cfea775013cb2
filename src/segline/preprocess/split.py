"""Deterministic train / validation / test split by natural case order.

The rule (as the EBP seed: the first 20 of the 41 spleen cases are the held-out test
set) needs no random seed and is readable from ``split.json`` alone:

1. labelled cases sorted with :func:`segline.casestore.sorted_cases` (``spleen_2``
   before ``spleen_10``);
2. the first ``n_test`` are **test** (held out: used once, at the best epoch);
3. of the rest, the first ``n_val`` are **val** (model selection);
4. the remaining ones are **train**; unlabelled cases (MSD ``imagesTs``) are
   **infer**.

Example:
    >>> make_split([f"c{i}" for i in range(1, 8)], ["t1"], n_test=2, n_val=1)["val"]
    ['c3']
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from segline import atomic
from segline.casestore import sorted_cases
from segline.errors import InputError

DEFAULT_N_TEST = 20
DEFAULT_N_VAL = 5
RULE = "natural order; first n_test -> test, next n_val -> val, rest -> train; unlabelled -> infer"


def make_split(
    labelled: Iterable[str],
    unlabelled: Iterable[str] = (),
    n_test: int = DEFAULT_N_TEST,
    n_val: int = DEFAULT_N_VAL,
    where: str | os.PathLike[str] = "split",
) -> dict[str, Any]:
    """Split case ids into train / val / test / infer (see the module docstring).

    Args:
        labelled: ids of the cases with a ground-truth label.
        unlabelled: ids of the cases without one (go to ``infer``).
        n_test: number of held-out test cases (>= 0).
        n_val: number of validation cases (>= 0).
        where: named in the error when there are too few cases (e.g. the raw folder).

    Returns:
        ``{"train": [...], "val": [...], "test": [...], "infer": [...], "params":
        {"n_test", "n_val", "rule"}}``, every list in natural order.

    Raises:
        InputError: fewer than ``n_test + n_val + 1`` labelled cases (at least one
            training case is required), a negative size, or a case id that is not
            UTF-8 text (from a file name with other bytes: case ids reach CSV files,
            reports and plots, which are UTF-8).
    """
    if n_test < 0 or n_val < 0:
        raise InputError(where, f"split sizes must be >= 0, got n_test={n_test}, n_val={n_val}")
    cases = sorted_cases(list(labelled))
    unlabelled = list(unlabelled)
    for case_id in [*cases, *unlabelled]:
        try:
            case_id.encode("utf-8")
        except UnicodeEncodeError:
            try:  # a file name's bytes, as ls -b shows them
                raw = case_id.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raw = case_id.encode("utf-8", "backslashreplace")
            shown = raw.decode("utf-8", "backslashreplace")
            raise InputError(
                where, f"case id '{shown}' is not UTF-8 text (a file name with other bytes); "
                "rename that case's files") from None
    if len(set(cases)) != len(cases):
        raise InputError(where, "duplicate case ids")
    need = n_test + n_val + 1
    if len(cases) < need:
        raise InputError(
            where, f"too few labelled cases for the split: {len(cases)} found, need at least "
            f"{need} (n_test={n_test} + n_val={n_val} + 1 training case)")
    return {
        "test": cases[:n_test],
        "val": cases[n_test:n_test + n_val],
        "train": cases[n_test + n_val:],
        "infer": sorted_cases(unlabelled),
        "params": {"n_test": int(n_test), "n_val": int(n_val), "rule": RULE},
    }


def split_of(split: dict[str, Any], case_id: str) -> str:
    """Name of the split holding ``case_id`` (``KeyError`` when it is in none)."""
    for name in ("train", "val", "test", "infer"):
        if case_id in split.get(name, ()):
            return name
    raise KeyError(case_id)


def write_split(path: str | os.PathLike[str], split: dict[str, Any]) -> None:
    """Write ``split.json`` atomically (sorted keys, stable bytes)."""
    atomic.write_json(path, split)
