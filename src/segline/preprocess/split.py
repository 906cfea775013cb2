"""Deterministic train / validation / test split, chosen by the user.

The default rule (as in the EBP reference implementation: the first 20 of the 41
spleen cases are the held-out test set) needs no random seed and is readable from
``split.json`` alone:

1. labelled cases sorted with :func:`segline.casestore.sorted_cases` (``spleen_2``
   before ``spleen_10``);
2. the first ``n_test`` are **test** (held out: used once, at the best epoch);
3. of the rest, the first ``n_val`` are **val** (model selection);
4. the remaining ones are **train**; unlabelled cases (MSD ``imagesTs``) are
   **infer**.

Natural order puts cases of one kind together when their ids do (``ct_1..ct_3``,
``mr_1..mr_2``), so the user may choose, each opt-in and recorded in ``split.json``
``params``:

* ``rule="random"`` (make ``SPLIT=random SPLIT_SEED=k``): the labelled ids, sorted
  first (the order of the files never matters), permuted by
  ``numpy.random.default_rng(seed)``; test, val and train are then taken from that
  order as above.
* ``strata`` (make ``STRATIFY=attr``): a value per case (e.g. the modality); test
  and val then take cases from every stratum in proportion to its size (largest
  remainder rounding, ties to the larger stratum, then the value's natural order),
  each stratum's cases in the rule's order.
* a ``splits_final.json`` fold (make ``SPLIT_FILE=... SPLIT_FOLD=k``, nnU-Net's
  format: a list of folds ``{"train": [...], "val": [...]}``): nnU-Net's ``val`` of a
  fold is its held-out set, so it becomes segline's **test**; **val** (best-epoch
  selection) is ``n_val`` cases of the fold's ``train`` taken by the rule (and strata)
  as above; the rest is **train**. ``n_test`` is then the fold's size.

Every split is written back in nnU-Net's format (:func:`nnunet_folds`: one fold,
``train`` = segline's train + val, ``val`` = segline's test), so the same held-out set
can be given to nnU-Net; read back with the same rule and ``n_val`` it gives the same
split.

Example:
    >>> make_split([f"c{i}" for i in range(1, 8)], ["t1"], n_test=2, n_val=1)["val"]
    ['c3']
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segline import atomic
from segline.casestore import case_sort_key, sorted_cases
from segline.digest import sha256_file
from segline.errors import InputError
from segline.userfile import read_json, read_text

DEFAULT_N_TEST = 20
DEFAULT_N_VAL = 5
RULE = "natural order; first n_test -> test, next n_val -> val, rest -> train; unlabelled -> infer"
RULES = ("ordered", "random")
#: The case store's copy of its split in nnU-Net's format.
NNUNET_FILE = "splits_final.json"
#: Attributes every adapter gives (see :func:`builtin_attributes`).
BUILTIN_ATTRIBUTES = ("prefix", "modality")


@dataclass(frozen=True)
class SplitsFile:
    """One fold of a checked ``splits_final.json`` (see :func:`read_splits_file`).

    Attributes:
        path: the file (named in errors).
        fold: the fold index used.
        train: the fold's ``train`` ids (segline: train + val).
        val: the fold's ``val`` ids (segline: test).
        folds: every fold of the file, as ``(train, val)`` (all are checked).
        sha256: hex digest of the file's bytes (recorded in ``split.json``).
    """

    path: Path
    fold: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    folds: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    sha256: str


@dataclass(frozen=True)
class Strata:
    """A per-case attribute to stratify by.

    Attributes:
        attribute: its name (recorded).
        values: case id -> value (every labelled case must have one).
        where: where the values come from (named in errors).
        source: ``{"name": file name, "sha256": ...}`` when read from a CSV file.
    """

    attribute: str
    values: Mapping[str, str]
    where: str = "--stratify"
    source: Mapping[str, str] | None = None


def make_split(
    labelled: Iterable[str],
    unlabelled: Iterable[str] = (),
    n_test: int = DEFAULT_N_TEST,
    n_val: int = DEFAULT_N_VAL,
    where: str | os.PathLike[str] = "split",
    *,
    rule: str = "ordered",
    seed: int = 0,
    strata: Strata | None = None,
    splits_file: SplitsFile | None = None,
    folds: int | None = None,
) -> dict[str, Any]:
    """Split case ids into train / val / test / infer (see the module docstring).

    Args:
        labelled: ids of the cases with a ground-truth label.
        unlabelled: ids of the cases without one (go to ``infer``).
        n_test: number of held-out test cases (>= 0; ignored with ``splits_file``).
        n_val: number of validation cases (>= 0).
        where: named in the error when there are too few cases (e.g. the raw folder).
        rule: ``ordered`` (natural order) or ``random`` (seeded permutation).
        seed: the permutation's seed (``random`` only).
        strata: stratify test and val by this per-case attribute.
        splits_file: take test from this fold's ``val`` (nnU-Net's held-out set).
        folds: k >= 2 for k-fold cross-validation (:func:`fold_splits`): the split also
            holds ``folds``, one train / val / test split per fold, and its own
            train / val / test are fold 0's (``n_test`` is then ignored).

    Returns:
        ``{"train": [...], "val": [...], "test": [...], "infer": [...], "params":
        {"n_test", "n_val", "rule", ...}}``, every list in natural order. The default
        (ordered, no strata, no file) records exactly ``n_test``, ``n_val``, ``rule``;
        any other choice adds ``split``, ``seed`` (random), ``stratify`` (with the
        stratum sizes and the CSV's name and sha256), ``split_file`` (name, fold,
        sha256).

    Raises:
        InputError: fewer than ``n_test + n_val + 1`` labelled cases (at least one
            training case is required), a negative size, a case id that is not UTF-8
            text (from a file name with other bytes: case ids reach CSV files,
            reports and plots, which are UTF-8), an unknown rule, a labelled case
            without a stratum value, or a splits file naming a case that is not a
            labelled case of the dataset.
    """
    if n_test < 0 or n_val < 0:
        raise InputError(where, f"split sizes must be >= 0, got n_test={n_test}, n_val={n_val}")
    if rule not in RULES:
        raise InputError(where, f"unknown split rule {rule!r}; known: {', '.join(RULES)}")
    cases = sorted_cases(list(labelled))
    unlabelled = list(unlabelled)
    for case_id in [*cases, *unlabelled]:
        _check_utf8(case_id, where)
    if len(set(cases)) != len(cases):
        raise InputError(where, "duplicate case ids")
    order = _permuted(cases, seed) if rule == "random" else cases
    groups = _check_strata(strata, cases, unlabelled) if strata is not None else None
    if folds is not None:
        if splits_file is not None:
            raise InputError(where, "k-fold cross-validation (folds) and a splits file "
                             "(SPLIT_FILE) exclude each other; give one")
        per_fold = fold_splits(order, folds, n_val, groups, where)
        split = {**per_fold[0], "infer": sorted_cases(unlabelled)}
        split["params"] = _params(split, n_val, rule, seed, strata, groups, None)
        split["params"]["folds"] = int(folds)
        split["params"]["rule"] = (
            f"{folds}-fold cross-validation: labelled cases in "
            + ("natural order" if rule == "ordered"
               else f"natural order permuted by numpy default_rng({seed})")
            + ("" if strata is None else f", grouped by '{strata.attribute}' stratum")
            + ", dealt round-robin to the folds; fold i: test = its cases, val = first "
            "n_val of the rest" + ("" if strata is None else " (in proportion per stratum)")
            + ", train = the remainder; top-level train/val/test = fold 0; "
            "unlabelled -> infer")
        split["folds"] = per_fold
        return split
    if splits_file is not None:
        _check_splits_file(splits_file, cases, unlabelled)
        test = sorted_cases(list(splits_file.val))
        pool = set(splits_file.train)
        rest = [c for c in order if c in pool]
        if len(rest) < n_val + 1:
            raise InputError(splits_file.path, f"fold {splits_file.fold}: {len(rest)} train "
                             f"cases, need at least {n_val + 1} (n_val={n_val} + 1 training case)")
    else:
        need = n_test + n_val + 1
        if len(cases) < need:
            raise InputError(
                where, f"too few labelled cases for the split: {len(cases)} found, need at "
                f"least {need} (n_test={n_test} + n_val={n_val} + 1 training case)")
        test = _take(order, n_test, groups)
        taken = set(test)
        rest = [c for c in order if c not in taken]
    val = _take(rest, n_val, groups)
    chosen = set(val)
    split = {
        "test": sorted_cases(test),
        "val": sorted_cases(val),
        "train": sorted_cases([c for c in rest if c not in chosen]),
        "infer": sorted_cases(unlabelled),
    }
    split["params"] = _params(split, n_val, rule, seed, strata, groups, splits_file)
    return split


def fold_assignment(order: list[str], k: int,
                    groups: Mapping[str, str] | None = None) -> dict[str, int]:
    """Each case's fold (0..k-1): ``order`` dealt round-robin to the folds; with
    ``groups`` (strata) the cases are first grouped by value (values in natural order,
    each value's cases in ``order``), so every fold gets each stratum's share (+- 1).

    Example:
        >>> fold_assignment(["a1", "a2", "a3", "b1", "b2"], 2, {"a1": "a", "a2": "a",
        ...                 "a3": "a", "b1": "b", "b2": "b"})
        {'a1': 0, 'a2': 1, 'a3': 0, 'b1': 1, 'b2': 0}
    """
    if groups is None:
        dealt = list(order)
    else:
        values = sorted({groups[c] for c in order}, key=case_sort_key)
        dealt = [c for v in values for c in order if groups[c] == v]
    return {c: i % k for i, c in enumerate(dealt)}


def fold_splits(order: list[str], k: int, n_val: int, groups: Mapping[str, str] | None,
                where: str | os.PathLike[str] = "split") -> list[dict[str, list[str]]]:
    """k train / val / test splits of the labelled cases ``order`` (the rule's order):
    test of fold i = the cases :func:`fold_assignment` gives fold i (every case is in
    exactly one test set), val = ``n_val`` of the others taken by the rule (and strata,
    as :func:`make_split`), train = the rest; lists in natural order.

    Raises:
        InputError: k < 2, more folds than cases, or a fold whose rest has fewer than
            ``n_val + 1`` cases.
    """
    if k < 2:
        raise InputError(where, f"folds={k}: cross-validation needs at least 2 folds")
    if k > len(order):
        raise InputError(where, f"folds={k}: more folds than the {len(order)} labelled "
                         "cases (every fold needs a test case)")
    fold_of = fold_assignment(order, k, groups)
    out = []
    for i in range(k):
        test = [c for c in order if fold_of[c] == i]
        rest = [c for c in order if fold_of[c] != i]
        if len(rest) < n_val + 1:
            raise InputError(where, f"fold {i}: {len(rest)} cases outside its test set, "
                             f"need at least {n_val + 1} (n_val={n_val} + 1 training case)")
        val = set(_take(rest, n_val, groups))
        out.append({"test": sorted_cases(test), "val": sorted_cases(list(val)),
                    "train": sorted_cases([c for c in rest if c not in val])})
    return out


def _check_utf8(case_id: str, where: str | os.PathLike[str]) -> None:
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


def _permuted(cases: list[str], seed: int) -> list[str]:
    """``cases`` (natural order) permuted by a fixed-seed numpy Generator."""
    perm = np.random.default_rng(seed).permutation(len(cases))
    return [cases[int(i)] for i in perm]


def _take(order: list[str], n: int, groups: Mapping[str, str] | None) -> list[str]:
    """The first ``n`` of ``order``; with strata, each stratum's first ``quota``.

    Quotas are ``n`` split in proportion to the strata sizes within ``order``: each
    stratum gets the floor of its share, the cases left over go to the largest
    remainders (ties: the larger stratum, then the value's natural order).
    """
    if groups is None:
        return order[:n]
    by_value: dict[str, list[str]] = {}
    for case_id in order:
        by_value.setdefault(groups[case_id], []).append(case_id)
    total = len(order)
    quota = {v: n * len(ids) // total for v, ids in by_value.items()}
    left = n - sum(quota.values())
    ranked = sorted(by_value, key=lambda v: (-(n * len(by_value[v]) % total),
                                             -len(by_value[v]), case_sort_key(v)))
    for value in ranked[:left]:
        quota[value] += 1
    chosen = {c for v, ids in by_value.items() for c in ids[:quota[v]]}
    return [c for c in order if c in chosen]


def _check_strata(strata: Strata, cases: list[str], unlabelled: list[str]) -> dict[str, str]:
    known = set(cases) | set(unlabelled)
    unknown = sorted_cases([c for c in strata.values if c not in known])
    if unknown:
        raise InputError(strata.where, f"case '{unknown[0]}' is not a case of the dataset"
                         + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    missing = [c for c in cases if not strata.values.get(c)]
    if missing:
        raise InputError(strata.where, f"case '{missing[0]}' has no '{strata.attribute}' "
                         f"value" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                     else ""))
    return {c: str(strata.values[c]) for c in cases}


def _check_splits_file(sf: SplitsFile, cases: list[str], unlabelled: list[str]) -> None:
    labelled, infer = set(cases), set(unlabelled)
    for k, (train, val) in enumerate(sf.folds):
        for case_id in (*train, *val):
            if case_id in infer:
                raise InputError(sf.path, f"fold {k}: case '{case_id}' has no label "
                                 "(an imagesTs case): only labelled cases can be split")
            if case_id not in labelled:
                raise InputError(sf.path, f"fold {k}: case '{case_id}' is not a case of "
                                 "the dataset")
    missing = [c for c in cases if c not in set(sf.train) | set(sf.val)]
    if missing:
        raise InputError(sf.path, f"fold {sf.fold}: labelled case '{missing[0]}' is in "
                         "neither train nor val" + (f" (and {len(missing) - 1} more)"
                                                    if len(missing) > 1 else ""))


def _params(split: dict[str, list[str]], n_val: int, rule: str, seed: int,
            strata: Strata | None, groups: Mapping[str, str] | None,
            sf: SplitsFile | None) -> dict[str, Any]:
    params: dict[str, Any] = {"n_test": len(split["test"]), "n_val": int(n_val), "rule": RULE}
    if rule == "ordered" and strata is None and sf is None:
        return params  # the default: the bytes every existing case store has
    order = ("natural order" if rule == "ordered"
             else f"natural order permuted by numpy default_rng({seed})")
    if sf is None:
        text = f"{order}; first n_test -> test, next n_val -> val, rest -> train"
    else:
        text = (f"test = val of fold {sf.fold} of {sf.path.name}; of that fold's train in "
                f"{order}: first n_val -> val, rest -> train")
    if strata is not None:
        text += (f"; test and val taken from each '{strata.attribute}' stratum in proportion "
                 "(largest remainder)")
    params["rule"] = text + "; unlabelled -> infer"
    params["split"] = rule
    if rule == "random":
        params["seed"] = int(seed)
    if strata is not None and groups is not None:
        record: dict[str, Any] = {"attribute": strata.attribute, "strata": {
            v: sum(1 for g in groups.values() if g == v)
            for v in sorted(set(groups.values()), key=case_sort_key)}}
        if strata.source is not None:
            record.update(strata.source)
        params["stratify"] = record
    if sf is not None:
        params["split_file"] = {"name": sf.path.name, "fold": sf.fold, "sha256": sf.sha256}
    return params


# ------------------------------------------------------------------ files


def read_splits_file(path: str | os.PathLike[str], fold: int = 0) -> SplitsFile:
    """Read and check an nnU-Net ``splits_final.json`` and pick ``fold``.

    The file must be a non-empty JSON list of objects, each with ``train`` and ``val``
    lists of case id strings, no id twice within a fold; ``fold`` must exist. Case ids
    are checked against the dataset by :func:`make_split`.

    Raises:
        InputError: naming the file and the problem (one line).
    """
    path = Path(path)
    data = read_json(path, "splits file not found")
    if not isinstance(data, list) or not data:
        raise InputError(path, "expected a non-empty JSON list of folds "
                         '[{"train": [...], "val": [...]}, ...] (nnU-Net splits_final.json)')
    folds: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for k, entry in enumerate(data):
        if not isinstance(entry, dict) or set(entry) != {"train", "val"}:
            raise InputError(path, f"fold {k}: expected an object with exactly 'train' and "
                             "'val'")
        lists = []
        for key in ("train", "val"):
            ids = entry[key]
            if not isinstance(ids, list) or not all(isinstance(c, str) and c for c in ids):
                raise InputError(path, f"fold {k}: '{key}' must be a list of case ids")
            lists.append(tuple(ids))
        train, val = lists
        seen: set[str] = set()
        for case_id in (*train, *val):
            if case_id in seen:
                where = "in both train and val" if case_id in train and case_id in val \
                    else "twice"
                raise InputError(path, f"fold {k}: case '{case_id}' is {where}")
            seen.add(case_id)
        folds.append((train, val))
    if not 0 <= fold < len(folds):
        raise InputError(path, f"fold {fold} not in the file (it has folds 0..{len(folds) - 1})")
    train, val = folds[fold]
    return SplitsFile(path, fold, train, val, tuple(folds), sha256_file(path))


def read_attribute_csv(path: str | os.PathLike[str], attribute: str) -> Strata:
    """Per-case values of ``attribute`` from a CSV file with a header row.

    The first column holds the case ids (header ``case``, or any name); ``attribute``
    names another column, or is empty to take the second one. Blank lines are
    skipped; a case listed twice, a missing column or an empty value is an error.

    Raises:
        InputError: naming the file and the problem (one line).
    """
    path = Path(path)
    text = read_text(path, "stratify file not found", encoding="utf-8-sig")
    try:
        rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text)) if any(
            c.strip() for c in r)]
    except csv.Error as err:
        raise InputError(path, f"not valid CSV: {err}") from None
    if len(rows) < 2 or len(rows[0]) < 2:
        raise InputError(path, "expected a header row 'case,<attribute>' and one row per case")
    header = rows[0]
    name = attribute or header[1]
    if name not in header[1:]:
        raise InputError(path, f"no column '{name}' (columns: {', '.join(header[1:])})")
    col = header.index(name)
    values: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(path, f"row {line}: {len(row)} fields, the header has "
                             f"{len(header)}")
        case_id, value = row[0], row[col]
        if case_id in values:
            raise InputError(path, f"row {line}: case '{case_id}' listed twice")
        if not value:
            raise InputError(path, f"row {line}: case '{case_id}' has an empty '{name}'")
        values[case_id] = value
    return Strata(name, values, str(path), {"name": path.name, "sha256": sha256_file(path)})


def id_prefix(case_id: str) -> str:
    """A case id up to its first digit, without trailing ``_``/``-``/``.``
    (``mr_12`` -> ``mr``; an id without letters before its number -> ``""``)."""
    return re.split(r"\d", case_id, maxsplit=1)[0].rstrip("_-.")


def builtin_attributes(attribute: str, cases: Iterable[str], channels: Iterable[str],
                       given: Mapping[str, Mapping[str, str]] | None = None) -> Strata:
    """Per-case values of an attribute every adapter can give without reading images.

    * an attribute the adapter lists per case (``given``: case -> attribute -> value,
      e.g. the MSD adapter's extra string keys of a ``dataset.json`` ``training`` entry
      such as ``"modality": "MR"``) wins;
    * ``prefix``: the case id up to its first digit (:func:`id_prefix`);
    * ``modality``: the dataset's channel names joined with ``+`` (``CT``, ``T2+ADC``):
      the same for every case of a one-format dataset, so one stratum, unless the
      adapter gives it per case.

    Raises:
        InputError: an attribute that is neither built in nor given for every case.
    """
    cases = list(cases)
    given = given or {}
    where = f"STRATIFY={attribute}"
    if any(attribute in given.get(c, {}) for c in cases):
        return Strata(attribute, {c: given[c][attribute] for c in cases
                                  if attribute in given.get(c, {})}, where)
    if attribute == "prefix":
        return Strata(attribute, {c: id_prefix(c) or "-" for c in cases}, where)
    if attribute == "modality":
        return Strata(attribute, dict.fromkeys(cases, "+".join(channels)), where)
    raise InputError(where, f"unknown attribute; built in: {', '.join(BUILTIN_ATTRIBUTES)}, "
                     "or give a CSV file (STRATIFY_FILE) with a column of that name")


def nnunet_folds(split: Mapping[str, Any]) -> list[dict[str, list[str]]]:
    """The split as an nnU-Net ``splits_final.json``: one fold whose ``val`` is the test
    set and whose ``train`` is train + val, in natural order (cross-validation: one
    such entry per fold)."""
    if "folds" in split:
        return [{"train": sorted_cases([*f["train"], *f["val"]]),
                 "val": sorted_cases(list(f["test"]))} for f in split["folds"]]
    return [{"train": sorted_cases([*split["train"], *split["val"]]),
             "val": sorted_cases(list(split["test"]))}]


def split_of(split: dict[str, Any], case_id: str) -> str:
    """Name of the split holding ``case_id`` (``KeyError`` when it is in none)."""
    for name in ("train", "val", "test", "infer"):
        if case_id in split.get(name, ()):
            return name
    raise KeyError(case_id)


def write_split(path: str | os.PathLike[str], split: dict[str, Any]) -> None:
    """Write ``split.json`` atomically (sorted keys, stable bytes)."""
    atomic.write_json(path, split)


def write_nnunet_splits(path: str | os.PathLike[str], split: Mapping[str, Any]) -> None:
    """Write ``splits_final.json`` (nnU-Net's format, :func:`nnunet_folds`) atomically."""
    atomic.write_json(path, nnunet_folds(split))
