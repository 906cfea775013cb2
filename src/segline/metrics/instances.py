"""Instance metrics: vertebrae as numbered instances, matched by overlap.

A ground-truth label map ``gt`` (Z, Y, X) holds one integer id per vertebra (the case
store's class index, named by ``dataset.json`` "classes", e.g. ``L1``); a prediction
``pred`` holds integer ids that need not agree with the ground truth's (the
``iterative`` method numbers instances 1..n in the order it found them, the
``semantic`` method writes class indices). 0 is background in both.

Definitions used throughout (docs/CONTRACTS.md, "Instance tasks"):

* **Dice matrix**: ``D[g, p] = 2 |G_g ∩ P_p| / (|G_g| + |P_p|)`` for every ground-truth
  id ``g`` and predicted id ``p`` present (non-zero) in the arrays.
* **Matching** (:func:`match_instances`): the one-to-one assignment maximising the sum
  of Dice over the pairs (Hungarian algorithm,
  :func:`scipy.optimize.linear_sum_assignment`), keeping only pairs that overlap
  (at least one common voxel). A vertebra without such a pair is *unmatched*; so is
  a predicted instance.
* **Identified** vertebra: matched with Dice ≥ :data:`ID_DICE` (0.5). Only the
  matched instance counts: a vertebra split in two halves is matched to one of them
  (identified if its Dice reaches 0.5); the other half is a false positive.
* Per vertebra (row class = its name): ``dice`` = Dice with its matched instance (0.0
  when unmatched); ``assd`` = average symmetric surface distance in mm to its matched
  instance (:func:`segline.metrics.surface.assd`, with the voxel spacing), NaN when
  unmatched (a distance to nothing is undefined).
* Per case (row class :data:`CASE_CLASS`, ``"spine"``):

  - ``id_rate`` = identified / ground-truth vertebrae of the case;
  - ``misses`` = ground-truth vertebrae not identified (unmatched, or matched with
    Dice < 0.5), so ``misses = n_gt · (1 − id_rate)``;
  - ``false_positives`` = predicted instances that identify no vertebra (unmatched,
    or matched with Dice < 0.5);
  - ``dice`` = mean of the per-vertebra Dice over the case's vertebrae (a missed one
    counts 0.0);
  - ``assd`` = mean of the per-vertebra ASSD over the *matched* vertebrae (an
    unmatched one has no surface to measure; it is counted in ``misses`` and with
    Dice 0 in ``dice`` instead); NaN when no vertebra is matched.

* **Empty cases**: an empty prediction (no instance) gives every vertebra dice 0.0 and
  assd NaN, ``id_rate`` 0.0, ``misses`` = n_gt, ``false_positives`` 0, case ``assd``
  NaN. An empty ground truth gives no per-vertebra row; the case row has ``id_rate``
  NaN (nothing to identify), ``misses`` 0, ``false_positives`` = predicted instances,
  and as for any Dice/ASSD of two masks (README "Metrics and conventions"): both empty
  → ``dice`` 1.0, ``assd`` 0.0; prediction non-empty → ``dice`` 0.0, ``assd`` NaN.

Example:
    >>> import numpy as np
    >>> gt = np.zeros((1, 1, 6), np.uint8); gt[0, 0, :3] = 20; gt[0, 0, 3:] = 21
    >>> pred = np.zeros_like(gt); pred[0, 0, :3] = 2; pred[0, 0, 3:] = 1
    >>> match_instances(pred, gt)
    [(20, 2), (21, 1)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from segline.metrics.surface import assd as surface_assd

__all__ = [
    "CASE_CLASS",
    "CASE_METRICS",
    "ID_DICE",
    "dice_matrix",
    "instance_rows",
    "match_instances",
    "summary",
]

ID_DICE = 0.5
"""A matched vertebra with at least this Dice is identified."""
CASE_CLASS = "spine"
"""Class name of the per-case rows (no vertebra may be named like this)."""
CASE_METRICS = ("dice", "assd", "id_rate", "false_positives", "misses")
"""Metrics of the per-case rows, in the order written."""


def _dense(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted non-zero ids, per value its index 1..n in them, 0 for background)."""
    ids, inverse = np.unique(values, return_inverse=True)
    if ids.size and ids[0] == 0:
        return ids[1:].astype(np.int64), inverse.reshape(-1)
    return ids.astype(np.int64), inverse.reshape(-1) + 1


def dice_matrix(
    pred: np.ndarray, gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlap of every ground-truth id with every predicted id.

    Args:
        pred: predicted label map, integer ids (0 = background).
        gt: ground-truth label map, same shape.

    Returns:
        ``(gt_ids, pred_ids, inter, dice)``: the sorted non-zero ids, and
        (n_gt, n_pred) arrays of common voxels and of Dice.

    Raises:
        ValueError: the shapes differ, or an id is negative or not an integer.

    Example:
        >>> g = np.array([1, 1, 2, 2]); p = np.array([5, 5, 5, 0])
        >>> dice_matrix(p, g)[3].round(3).tolist()
        [[0.8], [0.4]]
    """
    p = np.asarray(pred)
    g = np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"label map shapes differ: pred {p.shape} vs gt {g.shape}")
    for name, arr in (("pred", p), ("gt", g)):
        if arr.dtype.kind not in "biu":
            raise ValueError(f"{name} label map must hold integer ids, got {arr.dtype}")
        if arr.size and int(arr.min()) < 0:
            raise ValueError(f"{name} label map has negative ids")
    # only voxels foreground in either map matter (every voxel of every instance is
    # among them); dense indices 0..n (0 = background): one bincount counts every pair
    g_flat, p_flat = g.reshape(-1), p.reshape(-1)
    fg = np.flatnonzero((g_flat != 0) | (p_flat != 0))
    gt_ids, g_idx = _dense(g_flat[fg])
    pred_ids, p_idx = _dense(p_flat[fg])
    n_g, n_p = gt_ids.size + 1, pred_ids.size + 1
    joint = np.bincount(g_idx * n_p + p_idx, minlength=n_g * n_p).reshape(n_g, n_p)
    size_g = joint.sum(axis=1)[1:]
    size_p = joint.sum(axis=0)[1:]
    inter = joint[1:, 1:]
    denom = size_g[:, None] + size_p[None, :]
    dice = 2.0 * inter / np.maximum(denom, 1)
    return gt_ids, pred_ids, inter, dice


def _match(
    gt_ids: np.ndarray, pred_ids: np.ndarray, inter: np.ndarray, dice: np.ndarray
) -> list[tuple[int, int, float]]:
    """Hungarian assignment on ``dice``: (gt_id, pred_id, dice) for overlapping pairs."""
    if gt_ids.size == 0 or pred_ids.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(dice, maximize=True)
    pairs = [
        (int(gt_ids[r]), int(pred_ids[c]), float(dice[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if inter[r, c] > 0
    ]
    return sorted(pairs)


def match_instances(pred: np.ndarray, gt: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one pairs (gt_id, pred_id) maximising the summed Dice (module doc).

    Args:
        pred: predicted label map, integer instance ids (0 = background).
        gt: ground-truth label map, same shape.

    Returns:
        Pairs with at least one common voxel, sorted by gt id; ids absent from every
        pair are unmatched. Deterministic: the Dice matrix is built on sorted ids.

    Raises:
        ValueError: shapes differ, or ids are not non-negative integers.

    Example:
        >>> g = np.array([[1, 1, 2, 2, 0]]); p = np.array([[7, 7, 7, 0, 3]])
        >>> match_instances(p, g)
        [(1, 7)]
    """
    return [(g, p) for g, p, _ in _match(*dice_matrix(pred, gt))]


def _boxes(label: np.ndarray, ids: Sequence[int]) -> dict[int, tuple[slice, ...]]:
    """Bounding box of each of ``ids`` (present in ``label``)."""
    if not ids:
        return {}
    from scipy import ndimage

    found = ndimage.find_objects(np.asarray(label), max_label=max(ids))
    return {i: found[i - 1] for i in ids}


def _union_box(
    a: tuple[slice, ...], b: tuple[slice, ...], shape: tuple[int, ...]
) -> tuple[slice, ...]:
    """The box holding both boxes, grown by one voxel, clipped to ``shape``."""
    return tuple(
        slice(max(min(x.start, y.start) - 1, 0), min(max(x.stop, y.stop) + 1, n))
        for x, y, n in zip(a, b, shape, strict=True)
    )


def _row(cls: str, metric: str, value: float) -> dict[str, Any]:
    return {"class": cls, "metric": metric, "value": float(value)}


def instance_rows(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: tuple[float, float, float],
    names: Mapping[int, str],
) -> list[dict[str, Any]]:
    """The metric rows of one case (definitions and empty cases: module doc).

    Args:
        pred: predicted label map (Z, Y, X), integer instance ids.
        gt: ground-truth label map (Z, Y, X), one class index per vertebra.
        spacing: voxel size (z, y, x) in mm, for the ASSD.
        names: ground-truth id -> vertebra name (``dataset.json`` "classes").

    Returns:
        Rows ``{"class", "metric", "value"}``: per ground-truth vertebra present, in id
        order, ``dice`` then ``assd`` (mm); then the case's :data:`CASE_CLASS` rows in
        :data:`CASE_METRICS` order. Counts are floats (``2.0``) like every value.

    Raises:
        ValueError: shapes differ; a ground-truth id has no name, or a name equals
            :data:`CASE_CLASS`.

    Example:
        >>> g = np.zeros((1, 1, 4), np.uint8); g[0, 0, :2] = 1
        >>> p = np.zeros_like(g); p[0, 0, 1:] = 4
        >>> [(r["class"], r["metric"], round(r["value"], 3))
        ...  for r in instance_rows(p, g, (1.0, 1.0, 1.0), {1: "L1"})][:3]
        [('L1', 'dice', 0.4), ('L1', 'assd', 0.8), ('spine', 'dice', 0.4)]
    """
    gt_ids, pred_ids, inter, dice = dice_matrix(pred, gt)
    for g in gt_ids.tolist():
        if g not in names:
            raise ValueError(f"ground-truth id {g} has no class name")
        if names[g] == CASE_CLASS:
            raise ValueError(f"class {g} is named {CASE_CLASS!r}, the per-case rows' class")
    pairs = {g: (p, d) for g, p, d in _match(gt_ids, pred_ids, inter, dice)}
    boxes_g, boxes_p = _boxes(gt, [g for g in pairs]), _boxes(pred, [p for p, _ in pairs.values()])
    rows: list[dict[str, Any]] = []
    dices: list[float] = []
    distances: list[float] = []
    identified: set[int] = set()
    for g in gt_ids.tolist():
        name = names[g]
        if g in pairs:
            p, d = pairs[g]
            # on the pair's bounding box + 1 voxel: exact (segline.metrics.surface doc)
            box = _union_box(boxes_g[g], boxes_p[p], gt.shape)
            dist = surface_assd(pred[box] == p, gt[box] == g, spacing)
            distances.append(dist)
            if d >= ID_DICE:
                identified.add(p)
        else:
            d, dist = 0.0, math.nan
        dices.append(d)
        rows += [_row(name, "dice", d), _row(name, "assd", dist)]
    n_gt, n_pred = gt_ids.size, pred_ids.size
    if n_gt:
        case_dice = float(np.mean(dices))
        case_assd = float(np.mean(distances)) if distances else math.nan
        id_rate = len(identified) / n_gt
    else:
        case_dice = 1.0 if n_pred == 0 else 0.0
        case_assd = 0.0 if n_pred == 0 else math.nan
        id_rate = math.nan
    values = {
        "dice": case_dice,
        "assd": case_assd,
        "id_rate": id_rate,
        "false_positives": n_pred - len(identified),
        "misses": n_gt - len(identified),
    }
    rows += [_row(CASE_CLASS, m, values[m]) for m in CASE_METRICS]
    return rows


def summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Validation numbers of one epoch from the rows of many cases (``epochs.csv``).

    Args:
        rows: the :func:`instance_rows` of every case, concatenated (other keys such
            as ``case`` or ``epoch`` are ignored).

    Returns:
        ``dice``: mean per-vertebra Dice over every ground-truth vertebra of every case
        (pooled, not a mean of case means); ``assd``: mean per-vertebra ASSD (mm) over
        the matched vertebrae (pooled); ``id_rate``: identified / ground-truth
        vertebrae over all cases (pooled, not a mean of case rates);
        ``false_positives`` and ``misses``: mean count per case. NaN when undefined
        (no vertebra, no matched vertebra, no case).

    Example:
        >>> g = np.zeros((1, 1, 4), np.uint8); g[0, 0, :2] = 1; g[0, 0, 2:] = 2
        >>> rows = instance_rows(g, g, (1.0, 1.0, 1.0), {1: "L1", 2: "L2"})
        >>> rows += instance_rows(np.zeros_like(g), g, (1.0, 1.0, 1.0), {1: "L1", 2: "L2"})
        >>> summary(rows)
        {'dice': 0.5, 'assd': 0.0, 'id_rate': 0.5, 'false_positives': 0.0, 'misses': 1.0}
    """
    dices: list[float] = []
    distances: list[float] = []
    per_case: dict[str, list[float]] = {"false_positives": [], "misses": []}
    for r in rows:
        cls, metric, value = str(r["class"]), str(r["metric"]), float(r["value"])
        if cls == CASE_CLASS:
            if metric in per_case:
                per_case[metric].append(value)
        elif metric == "dice":
            dices.append(value)
        elif metric == "assd" and not math.isnan(value):
            distances.append(value)

    def mean(values: Sequence[float]) -> float:
        return float(np.mean(values)) if values else math.nan

    return {
        "dice": mean(dices),
        "assd": mean(distances),
        "id_rate": mean([1.0 if d >= ID_DICE else 0.0 for d in dices]),
        "false_positives": mean(per_case["false_positives"]),
        "misses": mean(per_case["misses"]),
    }
