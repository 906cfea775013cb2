"""Per-case metric tables (long format) and their summaries.

:func:`case_metrics` turns one case's predicted and reference label volumes into
rows ``{"class": name, "metric": m, "value": v}``; the trainer adds ``epoch``,
``split`` and ``case`` and writes ``metrics.csv`` (docs/CONTRACTS.md).
:func:`summarise` and :func:`mean_foreground` aggregate such tables and always
report how many values were undefined (NaN) next to the mean — NaNs are never
dropped silently: an undefined distance means one mask was empty, i.e. a missed
structure or a prediction where there is none, and a mean over the remaining cases
alone would make exactly those failures disappear.

Metric names: ``dice``, ``hd95``, ``assd``, ``hd`` (Hausdorff, percentile 100),
``cldice``; distances in mm (see :mod:`segline.metrics.surface` for definitions and
empty-mask conventions).

Example:
    >>> import numpy as np
    >>> gt = np.zeros((2, 6, 6), np.uint8); gt[0, 1:4, 1:4] = 1
    >>> rows = case_metrics(gt, gt, (5.0, 1.0, 1.0), ["background", "organ"])
    >>> [(r["class"], r["metric"], r["value"]) for r in rows]
    [('organ', 'dice', 1.0), ('organ', 'hd95', 0.0), ('organ', 'assd', 0.0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from segline.metrics import registry
from segline.metrics.surface import (
    Mode,
    check_spacing,
    mean_surface_distance,
    percentile_hausdorff,
    surface_distances,
)

__all__ = ["METRICS", "case_metrics", "class_name_map", "mean_foreground", "summarise"]

METRICS: tuple[str, ...] = registry.names("mask", "surface")
"""Metric names :func:`case_metrics` understands: the registry's mask and surface
metrics (:mod:`segline.metrics.registry`)."""

_SURFACE_METRICS = frozenset(registry.names("surface"))
_PERCENTILE = {"hd95": 95.0, "hd": 100.0}
"""The surface metrics that are percentiles of the pooled distances; the rest is the
mean (``assd``)."""
SUMMARY_KEYS: tuple[str, ...] = ("epoch", "split", "class", "metric")


def class_name_map(class_names: Mapping[Any, str] | Sequence[str]) -> dict[int, str]:
    """Class index → name from a list (index = position) or a mapping.

    Mapping keys may be strings of integers, as in a JSON ``labels`` object.

    Args:
        class_names: ``["background", "liver"]`` or ``{0: "background", "1": "liver"}``.

    Returns:
        ``{index: name}`` sorted by index.

    Example:
        >>> class_name_map({"1": "liver", "0": "background"})
        {0: 'background', 1: 'liver'}
    """
    if isinstance(class_names, Mapping):
        pairs = [(int(k), str(v)) for k, v in class_names.items()]
    else:
        pairs = [(i, str(v)) for i, v in enumerate(class_names)]
    return dict(sorted(pairs))


def case_metrics(
    pred_label: np.ndarray,
    gt_label: np.ndarray,
    spacing: Sequence[float],
    class_names: Mapping[Any, str] | Sequence[str],
    metrics: Iterable[str] = ("dice", "hd95", "assd"),
    classes: Iterable[int] | None = None,
    *,
    hd_mode: Mode = "pooled",
) -> list[dict[str, Any]]:
    """Long-format metric rows of one case, one row per (class, metric).

    Args:
        pred_label: predicted class indices, (Z, Y, X) (or 2D (Y, X)).
        gt_label: reference class indices, same shape.
        spacing: voxel size in mm, (z, y, x).
        class_names: list (index = class) or mapping {index: name}.
        metrics: names from :data:`METRICS`, in output order.
        classes: class indices to evaluate; default every class in ``class_names``
            except background (index 0).
        hd_mode: HD95 convention, ``"pooled"`` (default) or ``"max"``.

    Returns:
        Rows ``{"class": name, "metric": m, "value": float}`` ordered by class index,
        then by ``metrics`` order; ``value`` is NaN where undefined (HD95/ASSD/HD
        with exactly one empty mask).

    Example:
        >>> p = np.array([[0, 1, 1, 0]]); g = np.array([[0, 1, 0, 0]])
        >>> [round(r["value"], 3) for r in case_metrics(p, g, (1, 1), ["bg", "fg"])]
        [0.667, 0.9, 0.333]
    """
    pred = np.asarray(pred_label)
    gt = np.asarray(gt_label)
    if pred.shape != gt.shape:
        raise ValueError(f"label shapes differ: pred {pred.shape} vs gt {gt.shape}")
    sp = check_spacing(spacing, pred.ndim)
    names = class_name_map(class_names)
    wanted = list(metrics)
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    indices = [c for c in names if c != 0] if classes is None else [int(c) for c in classes]
    missing = [c for c in indices if c not in names]
    if missing:
        raise ValueError(f"class index(es) {missing} have no name in {names}")

    rows: list[dict[str, Any]] = []
    for c in indices:
        p = pred == c
        g = gt == c
        dists = surface_distances(p, g, sp) if _SURFACE_METRICS.intersection(wanted) else None
        for m in wanted:
            if m not in _SURFACE_METRICS:
                value = registry.function_of(m)(p, g)
            else:
                assert dists is not None
                if m in _PERCENTILE:
                    value = percentile_hausdorff(*dists, _PERCENTILE[m], hd_mode)
                else:
                    value = mean_surface_distance(*dists)
            rows.append({"class": names[c], "metric": m, "value": float(value)})
    return rows


def _as_frame(table: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    if "value" not in df.columns:
        raise ValueError(f"metric table needs a 'value' column, has {list(df.columns)}")
    df = df.copy()
    df["value"] = pd.to_numeric(df["value"], errors="raise").astype(float)
    return df


def _aggregate(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if not keys:
        df = df.assign(_all=0)
        keys = ["_all"]
    grouped = df.groupby(keys, sort=False, dropna=False)["value"]
    out = pd.DataFrame(
        {
            "mean": grouped.mean(),
            "sd": grouped.std(ddof=1),
            "n": grouped.size(),
            "n_undefined": grouped.size() - grouped.count(),
        }
    ).reset_index()
    out["n"] = out["n"].astype(int)
    out["n_undefined"] = out["n_undefined"].astype(int)
    return out.drop(columns=["_all"], errors="ignore")


def summarise(
    table: pd.DataFrame | Iterable[Mapping[str, Any]],
    by: Sequence[str] = SUMMARY_KEYS,
) -> pd.DataFrame:
    """Mean, SD and counts of a long-format metric table, per group.

    Args:
        table: DataFrame (or rows) with columns ``epoch, split, case, class, metric,
            value``; grouping columns absent from the table are skipped.
        by: grouping columns.

    Returns:
        One row per group, in order of first appearance, with the grouping columns
        and ``mean`` and ``sd`` (sample SD, ddof=1) over the *defined* values,
        ``n`` (rows in the group, i.e. cases, undefined included) and
        ``n_undefined`` (NaN values). ``mean`` is NaN when nothing is defined,
        ``sd`` when fewer than two values are.

    Example:
        >>> df = pd.DataFrame({"epoch": 1, "split": "val", "case": ["a", "b", "c"],
        ...     "class": "liver", "metric": "hd95", "value": [2.0, 4.0, float("nan")]})
        >>> summarise(df)[["mean", "n", "n_undefined"]].values.tolist()
        [[3.0, 3.0, 1.0]]
    """
    df = _as_frame(table)
    return _aggregate(df, [k for k in by if k in df.columns])


def mean_foreground(
    table: pd.DataFrame | Iterable[Mapping[str, Any]],
    by: Sequence[str] = ("epoch", "split", "metric"),
    background: str | None = "background",
) -> pd.DataFrame:
    """Mean over cases *and* foreground classes, per (epoch, split, metric).

    This is the per-epoch summary of ``epochs.csv`` (``val_dice``, ``val_hd95``,
    ``val_assd``): NaN-ignoring, with the number of undefined values alongside.

    Args:
        table: long-format metric table (DataFrame or rows).
        by: grouping columns (absent ones are skipped).
        background: class name left out if present (:func:`case_metrics` already
            omits background); ``None`` keeps every class.

    Returns:
        Columns ``*by, mean, sd, n, n_undefined`` as in :func:`summarise`.
        Pivot for one row per epoch:
        ``out.pivot(index="epoch", columns="metric", values="mean")``.

    Example:
        >>> rows = [{"epoch": 0, "class": c, "metric": "dice", "value": v}
        ...         for c, v in [("a", 0.5), ("b", 1.0), ("background", 0.0)]]
        >>> mean_foreground(rows)[["metric", "mean", "n"]].values.tolist()
        [['dice', 0.75, 2]]
    """
    df = _as_frame(table)
    if background is not None and "class" in df.columns:
        df = df[df["class"] != background]
    return _aggregate(df, [k for k in by if k in df.columns])
