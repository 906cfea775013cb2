"""Per-case test results: one box per method, each case drawn as a point.

Values come from each method's ``test/metrics.csv`` (the test split at the method's
best epoch); ``--metric`` is any metric of those rows (``dice``, ``hd95``, ``assd``,
``hd``, ``cldice``, ``mip_dice``, ...; distances in mm, see
:data:`segline.results.METRIC_INFO`). With one foreground class the box holds that
class's per-case value; with several there is one panel per class. Undefined values
(NaN, e.g. HD95 with exactly one empty mask) cannot be drawn; their count goes into
the tick label so they are never silently missing.

Points are spread horizontally by a fixed, deterministic offset (no random jitter),
so the same inputs give the same bytes.

With several seeds per method (``SEEDS``, folders ``<method>/seed<k>``) the seeds are
pooled per case: each point is a case's mean over the method's seeds (each seed at its
own best epoch), undefined when the case is undefined in any seed (the strict rule of
:mod:`segline.results`); the title says how many seeds were pooled
(:func:`pooled_table`).

Usage (one Make recipe)::

    python -m segline.plots.boxplot --metric dice --out results/<ds>/test_dice_boxplot.png \\
        results/<ds>/<method> [results/<ds>/<method> ...]   # or .../<method>/seed<k> ...

Example:
    >>> tick_label("unet", [0.9, float("nan"), 0.8])
    'unet\\nn=3, 1 undefined'
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd

from segline.casestore import case_sort_key
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.plots import figure_style, method_colours, save_png
from segline.results import (
    GRID_TRAINING,
    METRIC_INFO,
    MethodGroup,
    MethodResults,
    add_eval_folders,
    add_training_folders,
    group_methods,
    load_methods,
    metric_label,
    require_metric,
)


def tick_label(method: str, values: Sequence[float] | np.ndarray) -> str:
    """Method name, number of cases, and the number of undefined ones when > 0."""
    arr = np.asarray(values, dtype=np.float64)
    n_nan = int(np.isnan(arr).sum())
    label = f"{method}\nn={arr.size}"
    return label + (f", {n_nan} undefined" if n_nan else "")


def spread(n: int, width: float = 0.25) -> np.ndarray:
    """Fixed horizontal offsets for ``n`` points, evenly across ``±width/2``.

    Example:
        >>> spread(3).tolist()
        [-0.125, 0.0, 0.125]
    """
    if n <= 1:
        return np.zeros(n)
    return np.linspace(-width / 2, width / 2, n)


def pooled_table(group: MethodGroup, metric: str) -> pd.DataFrame:
    """A method's test ``metric`` per case × foreground class, its seeds pooled per case.

    One training: its :meth:`~segline.results.MethodResults.test_table`. Several seeds:
    per case and class the mean over the seeds; NaN when any seed's value is NaN or the
    case is missing from a seed (strict, so an undefined value is never averaged away).
    Folds (``FOLDS``): each case's mean over the trainings that tested it (the fold
    that held it out, once per seed), NaN when any of those values is.
    Cases in canonical order, classes in order of first appearance.

    Raises:
        InputError: a training has no test rows of ``metric``.
    """
    for r in group.runs:
        require_metric(r.test, metric, r.test_path, "test")
    tables = [r.test_table(metric) for r in group.runs]
    if len(tables) == 1:
        return tables[0]
    classes: list[str] = []
    for t in tables:
        classes += [c for c in t.columns if c not in classes]
    cases: list[str] = []
    for t in tables:
        cases += [c for c in t.index if c not in cases]
    order = sorted(cases, key=lambda c: case_sort_key(str(c)))
    stack = np.stack(
        [t.reindex(index=order, columns=classes).to_numpy(dtype=np.float64) for t in tables]
    )
    if group.runs[0].fold is not None:
        # cross-validation (FOLDS): each fold tests its own cases; per case the mean over
        # the trainings that tested it (one per seed), NaN if any of those is NaN
        tested = np.stack([np.isin(order, list(t.index)) for t in tables])
        tested = np.broadcast_to(tested[:, :, None], stack.shape)
        count = tested.sum(axis=0)
        total = np.where(tested, stack, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    else:
        pooled = stack.mean(axis=0)  # NaN as soon as one seed is NaN
    return pd.DataFrame(pooled, index=pd.Index(order, name="case"), columns=classes)


def case_values(
    methods: Sequence[MethodResults], metric: str
) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """Per-case test values: ``{class: {method: values in canonical case order}}``.

    Trainings of one method (seeds) are pooled per case (:func:`pooled_table`).

    Args:
        methods: the training folders.
        metric: any metric of the test rows, e.g. ``dice``, ``hd95``, ``cldice``.

    Returns:
        The foreground classes (order of the first method, then any others) and the values.

    Raises:
        InputError: a training has no test rows of ``metric``.
    """
    groups = group_methods(methods)
    tables = {g.name: pooled_table(g, metric) for g in groups}
    classes: list[str] = []
    for t in tables.values():
        classes += [c for c in t.columns if c not in classes]
    values = {
        c: {name: t[c].to_numpy(dtype=np.float64) for name, t in tables.items() if c in t.columns}
        for c in classes
    }
    return classes, values


def seeds_note(groups: Sequence[MethodGroup]) -> str:
    """How the seeds were pooled, for the title ("" when every method has one training).

    Example:
        >>> two: tuple = (None, None)  # stand-ins for two seed trainings
        >>> print(seeds_note([MethodGroup("a", two), MethodGroup("b", two)]))
        per case: mean over the method's 2 seeds
        (undefined if undefined in any seed)
    """
    counts = sorted({len(g.runs) for g in groups})
    if counts == [1]:
        return ""
    k = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"per case: mean over the method's {k} seeds\n(undefined if undefined in any seed)"


def plot_boxes(methods: Sequence[MethodResults], metric: str, out: str) -> None:
    """Draw the per-case test boxes and save the PNG atomically to ``out``."""
    from matplotlib.figure import Figure

    classes, values = case_values(methods, metric)
    groups = group_methods(methods)
    colours = method_colours([g.name for g in groups])
    dataset = methods[0].dataset
    n_methods = len(groups)
    with figure_style():
        width = max(4.0, 1.4 * n_methods + 1.5) * len(classes)
        fig = Figure(figsize=(width, 5.0), layout="constrained")
        axes = fig.subplots(1, len(classes), sharey=True, squeeze=False)[0]
        for ax, cls in zip(axes, classes, strict=True):
            names = [g.name for g in groups if g.name in values[cls]]
            positions = np.arange(1, len(names) + 1, dtype=np.float64)
            finite = [values[cls][n][np.isfinite(values[cls][n])] for n in names]
            drawn = [i for i, v in enumerate(finite) if v.size]
            if drawn:
                boxes = ax.boxplot(
                    [finite[i] for i in drawn],
                    positions=positions[drawn],
                    widths=0.5,
                    showfliers=False,
                    patch_artist=True,
                )
                for i, patch in zip(drawn, boxes["boxes"], strict=True):
                    patch.set_facecolor((*colours[names[i]], 0.35))
                    patch.set_edgecolor(colours[names[i]])
                for median in boxes["medians"]:
                    median.set_color("black")
            for pos, name, vals in zip(positions, names, finite, strict=True):
                ax.plot(
                    pos + spread(vals.size),
                    vals,
                    linestyle="none",
                    marker="o",
                    markersize=4,
                    color=colours[name],
                    markeredgecolor="black",
                    markeredgewidth=0.5,
                )
            ax.set_xticks(positions, [tick_label(n, values[cls][n]) for n in names], fontsize=8)
            ax.set_xlim(0.4, len(names) + 0.6)
            ax.grid(True, axis="y", alpha=0.3)
            if len(classes) > 1:
                ax.set_title(cls)
        label = metric_label(metric)
        axes[0].set_ylabel(f"{label} per test case")
        title = f"{dataset}: test {label} per case\nat each training's best epoch"
        grids = {r.test_grid for g in groups for r in g.runs}
        if grids != {GRID_TRAINING}:  # the training grid's title stays as it always was
            title += f", {' and '.join(sorted(grids))}"
        note = seeds_note(groups)
        fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=10)
        save_png(fig, out)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("python -m segline.plots.boxplot"),
        description=__doc__.split("\n")[0],
    )
    p.add_argument(
        "--metric",
        default="dice",
        help="any metric of the test rows: dice (default), "
        + ", ".join(m for m in METRIC_INFO if m != "dice") + ", ...",
    )
    p.add_argument(
        "--out", required=True, help="PNG to write, e.g. results/<ds>/test_dice_boxplot.png"
    )
    add_training_folders(p)
    add_eval_folders(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: draw the boxplot; 0 on success."""
    args = build_parser().parse_args(argv)
    plot_boxes(load_methods(args.methods, args.eval), args.metric, args.out)
    print(f"wrote {args.out}")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
