"""Per-case test results: one box per method, each case drawn as a point.

Values come from each method's ``test/metrics.csv`` (the test split at the method's
best epoch); ``--metric`` is any metric of those rows (``dice``, ``hd95``, ``assd``,
``hd``, ``cldice``, ``mip_dice``, ...; distances in mm, see
:data:`segline.plots.METRIC_INFO`). With one foreground class the box holds that
class's per-case value; with several there is one panel per class. Undefined values
(NaN, e.g. HD95 with exactly one empty mask) cannot be drawn; their count goes into
the tick label so they are never silently missing.

Points are spread horizontally by a fixed, deterministic offset (no random jitter),
so the same inputs give the same bytes.

Usage (one Make recipe)::

    python -m segline.plots.boxplot --metric dice --out results/<ds>/test_dice_boxplot.png \\
        results/<ds>/<method> [results/<ds>/<method> ...]

Example:
    >>> tick_label("unet", [0.9, float("nan"), 0.8])
    'unet\\nn=3, 1 undefined'
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from segline.cli import entry
from segline.plots import (
    MethodResults,
    figure_style,
    load_methods,
    method_colours,
    metric_label,
    require_metric,
    save_png,
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


def case_values(
    methods: Sequence[MethodResults], metric: str
) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """Per-case test values: ``{class: {method: values in canonical case order}}``.

    Args:
        methods: the method folders.
        metric: any metric of the test rows, e.g. ``dice``, ``hd95``, ``cldice``.

    Returns:
        The foreground classes (order of the first method, then any others) and the values.

    Raises:
        InputError: a method has no test rows of ``metric``.
    """
    for m in methods:
        require_metric(m.test, metric, m.path / "test" / "metrics.csv", "test")
    tables = {m.name: m.test_table(metric) for m in methods}
    classes: list[str] = []
    for m in methods:
        classes += [c for c in tables[m.name].columns if c not in classes]
    values = {
        c: {name: t[c].to_numpy(dtype=np.float64) for name, t in tables.items() if c in t.columns}
        for c in classes
    }
    return classes, values


def plot_boxes(methods: Sequence[MethodResults], metric: str, out: str) -> None:
    """Draw the per-case test boxes and save the PNG atomically to ``out``."""
    from matplotlib.figure import Figure

    classes, values = case_values(methods, metric)
    colours = method_colours([m.name for m in methods])
    dataset = methods[0].dataset
    n_methods = len(methods)
    with figure_style():
        width = max(4.0, 1.4 * n_methods + 1.5) * len(classes)
        fig = Figure(figsize=(width, 5.0), layout="constrained")
        axes = fig.subplots(1, len(classes), sharey=True, squeeze=False)[0]
        for ax, cls in zip(axes, classes, strict=True):
            names = [m.name for m in methods if m.name in values[cls]]
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
        fig.suptitle(f"{dataset}: test {label} per case at each method's best epoch", fontsize=10)
        save_png(fig, out)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m segline.plots.boxplot", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--metric",
        default="dice",
        help="any metric of the test rows: dice (default), hd95, assd, hd, cldice, mip_dice, ...",
    )
    p.add_argument(
        "--out", required=True, help="PNG to write, e.g. results/<ds>/test_dice_boxplot.png"
    )
    p.add_argument("methods", nargs="+", metavar="METHOD_DIR", help="results/<ds>/<method>")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: draw the boxplot; 0 on success."""
    args = build_parser().parse_args(argv)
    plot_boxes(load_methods(args.methods), args.metric, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    entry(main)
