"""The report's markdown tables: results, over seeds, the training grid's secondary
table, per test case, and the cell formats they share (also :mod:`segline.evaluate`'s).

Example:
    >>> from segline.results import Stat
    >>> fmt_stat(Stat(mean=0.81234, sd=0.05, n=3, n_undefined=1), 3)
    '0.812 ± 0.050 (1 undefined)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from segline.report.model import (
    RANKED,
    TEST_METRICS,
    GroupCases,
    Row,
    fraction_metrics,
    group_cases,
    group_rows,
    set_fractions,
)
from segline.report.text import ORACLE_NOTE, shown_name
from segline.results import (
    GRID_SOURCE,
    GRID_TRAINING,
    METRIC_INFO,
    MethodGroup,
    MethodResults,
    Stat,
    is_distance,
    metric_label,
    metric_title,
)

CASE_METRICS = ("dice", "hd95")
"""Metrics of the per-case table (those of them that are reported)."""


def fmt_number(value: float, digits: int) -> str:
    """Fixed-point number, "–" for NaN."""
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def fmt_stat(s: Stat, digits: int) -> str:
    """``mean ± sd (k undefined)`` in the report's format."""
    text = fmt_number(s.mean, digits)
    if math.isfinite(s.mean):
        text += f" ± {fmt_number(s.sd, digits)}"
    if s.n_undefined:
        text += f" ({s.n_undefined} undefined)"
    return text


def fmt_p(p: float) -> str:
    """A p-value: 3 significant digits, "< 0.0001" below, "–" for NaN."""
    if not math.isfinite(p):
        return "–"
    return "< 0.0001" if p < 1e-4 else f"{p:.3g}"


def grid_line(runs: Sequence[MethodResults], test_ids: Sequence[str]) -> str:
    """The line under the results table: the grid of the test and validation numbers.

    Example:
        >>> grid_line([], ["a", "b"])
        '*test: training grid, 2 cases: a, b; validation: training grid.*\\n'
    """
    grids = sorted({r.test_grid for r in runs}) or [GRID_TRAINING]
    where = " and ".join(
        "source geometry of each case" if g == GRID_SOURCE else g for g in grids
    )
    ids = ", ".join(test_ids)
    return f"*test: {where}, {len(test_ids)} cases: {ids}; validation: {GRID_TRAINING}.*\n"


def training_grid_section(
    groups: Sequence[MethodGroup], metrics: Sequence[str], reference: str | None = None
) -> str:
    """The secondary table: the same test cases scored on the training grid (the
    trainings' ``test/metrics.csv``: the case store's resampled or cropped arrays),
    for comparison with the source-geometry numbers above it. Only the metrics every
    training scored itself: test-only metrics (``EVAL_METRICS``) exist in source
    geometry alone."""
    metrics = [m for m in metrics
               if all(m in set(run.grid_test["metric"]) for g in groups for run in g.runs)]
    cases = [group_cases(g, metrics, grid=True) for g in groups]
    rows = [row for gc in cases for row in group_rows(gc, metrics)]
    if reference is not None:
        set_fractions(rows, reference)
    ids = list(dict.fromkeys(c for gc in cases for c in gc.cases))
    return (
        f"## Test on the {GRID_TRAINING} (secondary)\n\n"
        "The same test cases scored on the case store's grid, where the training scored "
        "them (after any resampling or cropping of the slicing stage); the tables above "
        "score the predictions written in each case's source geometry against the "
        "original label files.\n\n"
        + markdown_table(rows, reference)
        + f"\n*test: {GRID_TRAINING}, {len(ids)} cases: {', '.join(ids)}; validation: "
        f"{GRID_TRAINING}.*\n"
    )


def _cell(row: Row, column: str) -> str:
    digits = RANKED[column][1]
    if column == "val_dice":
        return fmt_number(row.val_dice, digits)
    return fmt_stat(row.test[column], digits)


def epochs_text(values: Sequence[int]) -> str:
    """Epoch numbers of a row's trainings, comma-joined (markdown and CSV)."""
    return ", ".join(str(v) for v in values)


def markdown_table(rows: Sequence[Row], reference: str | None = None) -> str:
    """The results table in GitHub markdown (no bold: see the conventions)."""
    metrics = list(rows[0].test) if rows else list(TEST_METRICS)
    fractions = fraction_metrics(rows)
    header = ["method", "class", "best epoch", "epochs", "val Dice"]
    header += [f"test {metric_label(m)}" for m in metrics]
    header += [f"{metric_title(m)} / {reference}" for m in fractions]
    header += ["n test"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            shown_name(r.label, r.oracle),
            r.cls,
            epochs_text(r.best_epochs),
            epochs_text(r.epochs_trained),
            _cell(r, "val_dice"),
        ]
        cells += [_cell(r, m) for m in metrics]
        cells += [
            f"{100 * r.fraction[m]:.1f} %" if math.isfinite(r.fraction.get(m, math.nan)) else "–"
            for m in fractions
        ]
        cells += [str(r.test["dice"].n)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seeds_table(rows: Sequence[Row]) -> str:
    """Mean ± sd over seeds of each seed's mean over cases (methods with ≥ 2 seeds)."""
    metrics = list(rows[0].test) if rows else []
    seeded = [r for r in rows if r.pooled]
    lines = []
    for p in seeded:
        per_seed = [r for r in rows if r.seed is not None and r.fold is None
                    and r.method == p.method]
        per_seed = [r for r in per_seed if r.cls == p.cls]
        if len(per_seed) < 2:
            continue
        cells = [shown_name(p.method, p.oracle), p.cls, str(len(per_seed))]
        for m in metrics:
            s = Stat.of([r.test[m].mean for r in per_seed])
            cells.append(fmt_stat(s, RANKED[m][1]))
        lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return ""
    header = ["method", "class", "seeds"] + [f"test {metric_label(m)}" for m in metrics]
    return (
        "## Over seeds (mean ± sd of each seed's mean over test cases)\n\n"
        + "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *lines])
        + "\n"
    )


def per_case_section(cases: Sequence[GroupCases], metrics: Sequence[str]) -> str:
    """Markdown: test case × (method, Dice / HD95), class mean, seeds averaged."""
    shown = [m for m in CASE_METRICS if m in metrics]
    ids = list(dict.fromkeys(c for gc in cases for c in gc.cases))
    header = ["case"] + [f"{shown_name(gc.group.name, gc.group.oracle)} {metric_title(m)}"
                         for gc in cases for m in shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    columns = [(gc, m, gc.values(m, gc.stat_class)) for gc in cases for m in shown]
    for case in ids:
        cells = [case]
        for _, m, series in columns:
            v = float(series.get(case, math.nan))
            cells.append(
                fmt_number(v, METRIC_INFO[m].digits)
                if math.isfinite(v) or not is_distance(m)
                else "undefined"
            )
        lines.append("| " + " | ".join(cells) + " |")
    seeded = any(gc.seeded and len(gc.group.runs) > 1 for gc in cases)
    note = (
        "Per test case, the mean over foreground classes"
        + (" and over the method's seeds (each seed's values: the cases CSV)" if seeded else "")
        + "; undefined: exactly one mask empty.\n"
    )
    return "## Per test case\n\n" + note + "\n" + "\n".join(lines) + "\n"


def plots_section(plots: Sequence[str]) -> str:
    """Markdown image links to the plots, relative to the page (same folder)."""
    if not plots:
        return ""
    links = [f"![{Path(name).stem}]({name})" for name in plots]
    return "## Plots\n\n" + "\n\n".join(links) + "\n"


def methods_line(groups: Sequence[MethodGroup]) -> str:
    """The line under the title: the methods, each with its folds and seeds (an
    oracle's name marked, and :data:`ORACLE_NOTE` after the line)."""

    def one(g: MethodGroup) -> str:
        folds = sorted({r.fold for r in g.runs if r.fold is not None})
        seeds = sorted({r.seed for r in g.runs if r.seed is not None})
        parts = ([f"folds {', '.join(str(f) for f in folds)}, pooled out of fold"]
                 if folds else []) + ([f"seeds {', '.join(str(s) for s in seeds)}"]
                                      if seeds else [])
        name = shown_name(g.name, g.oracle)
        return f"{name} ({'; '.join(parts)})" if parts else name

    line = f"Methods ({len(groups)}): " + ", ".join(one(g) for g in groups) + ".\n"
    if any(g.oracle for g in groups):
        line += "\n" + ORACLE_NOTE + "\n"
    return line
