"""Training curves: one line per method over epochs, best epoch marked.

``--metric val_<m>`` works for any metric ``<m>`` of the long ``metrics.csv`` (split
``val``): ``val_dice``, ``val_hd95``, ``val_assd``, ``val_hd``, ``val_cldice``,
``val_mip_dice``, ... It is recomputed per case: per case the mean over foreground
classes, then per epoch the mean over cases, shaded ± 1 sample sd over cases (cases
with an undefined value are left out of that epoch's mean and sd). The axis label
carries the unit (mm for HD95, ASSD, HD; see :data:`segline.plots.METRIC_INFO`).
Losses and the training Dice (``tra_loss``, ``val_loss``, ``tra_dice``) come from
``epochs.csv`` and have no spread.

Colours follow the sorted method names (see :func:`segline.plots.method_colours`),
so the same methods look the same in every plot.

Usage (one Make recipe)::

    python -m segline.plots.curves --metric val_dice --out results/<ds>/val_dice.png \\
        results/<ds>/<method> [results/<ds>/<method> ...]

Example:
    >>> curve_metric("val_hd95").label
    'HD95 (mm, validation)'
    >>> curve_metric("val_cldice")
    CurveMetric(per_case='cldice', label='clDice (validation)', title='validation clDice')
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segline.cli import entry
from segline.errors import InputError
from segline.plots import (
    MethodResults,
    epoch_series,
    figure_style,
    load_methods,
    method_colours,
    metric_label,
    metric_title,
    require_metric,
    save_png,
)


@dataclass(frozen=True)
class CurveMetric:
    """How to draw one ``--metric``.

    Attributes:
        per_case: metric name in the long table, or None for an ``epochs.csv`` column.
        label: y-axis label, with units.
        title: what the curve shows.
    """

    per_case: str | None
    label: str
    title: str


EPOCH_CURVES: dict[str, CurveMetric] = {
    "tra_loss": CurveMetric(None, "loss (training)", "training loss"),
    "val_loss": CurveMetric(None, "loss (validation)", "validation loss"),
    "tra_dice": CurveMetric(None, "Dice (training)", "training Dice"),
}
"""The ``--metric`` values read from ``epochs.csv`` (the others are ``val_<metric>``)."""


def curve_metric(name: str) -> CurveMetric:
    """What ``--metric name`` draws: an :data:`EPOCH_CURVES` column or ``val_<metric>``.

    Raises:
        InputError: neither form.
    """
    if name in EPOCH_CURVES:
        return EPOCH_CURVES[name]
    metric = name.removeprefix("val_")
    if not name.startswith("val_") or not metric:
        raise InputError(
            "--metric",
            f"expected val_<metric> (a metric of metrics.csv, e.g. val_dice, val_cldice) "
            f"or one of {', '.join(EPOCH_CURVES)}; got {name!r}",
        )
    return CurveMetric(
        metric, metric_label(metric, "validation"), f"validation {metric_title(metric)}"
    )


def curve_series(method: MethodResults, metric: str) -> pd.DataFrame:
    """The values one method's line shows.

    Args:
        method: the method folder.
        metric: a ``--metric`` value (see :func:`curve_metric`).

    Returns:
        Columns ``epoch, mean, sd, n_cases, n_undefined`` sorted by epoch; for
        ``epochs.csv`` columns ``sd`` is NaN and the counts are 0.

    Raises:
        InputError: the method has no validation rows of that metric.
    """
    spec = curve_metric(metric)
    if spec.per_case is not None:
        require_metric(method.val, spec.per_case, method.path / "metrics.csv", "validation")
        return epoch_series(method.val, spec.per_case)
    col = method.epoch_column(metric)
    return pd.DataFrame(
        {
            "epoch": col.index.astype(np.int64),
            "mean": col.to_numpy(dtype=np.float64),
            "sd": np.full(len(col), math.nan),
            "n_cases": np.zeros(len(col), dtype=np.int64),
            "n_undefined": np.zeros(len(col), dtype=np.int64),
        }
    )


def _subtitle(spec: CurveMetric, series: dict[str, pd.DataFrame]) -> str:
    """Second title line: where the values come from and what the shading is."""
    if spec.per_case is None:
        return "from epochs.csv; star = best epoch (best_epoch.txt)"
    counts = sorted({int(n) for s in series.values() for n in s["n_cases"]})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return (
        f"mean over {n} validation cases (per case: mean over foreground classes)\n"
        "shaded: ± 1 sd over cases; star = best epoch (best_epoch.txt)"
    )


def plot_curves(methods: Sequence[MethodResults], metric: str, out: str) -> None:
    """Draw ``metric`` for every method and save the PNG atomically to ``out``."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    spec = curve_metric(metric)
    series = {m.name: curve_series(m, metric) for m in methods}
    best = {m.name: m.best_epoch for m in methods}
    colours = method_colours([m.name for m in methods])
    dataset = methods[0].dataset
    with figure_style():
        fig = Figure(figsize=(8.0, 5.0), layout="constrained")
        ax = fig.add_subplot()
        for name, s in series.items():
            colour = colours[name]
            x = s["epoch"].to_numpy()
            y = s["mean"].to_numpy()
            marker = "o" if len(x) <= 25 else None
            ax.plot(
                x,
                y,
                color=colour,
                marker=marker,
                markersize=3,
                linewidth=1.5,
                label=f"{name} (best epoch {best[name]})",
            )
            sd = s["sd"].to_numpy()
            if np.isfinite(sd).any():
                ax.fill_between(
                    x, y - sd, y + sd, where=np.isfinite(sd), color=colour, alpha=0.2, linewidth=0
                )
            at_best = s.loc[s["epoch"] == best[name], "mean"]
            if len(at_best) and np.isfinite(at_best.iloc[0]):
                ax.plot(
                    [best[name]],
                    [at_best.iloc[0]],
                    marker="*",
                    markersize=14,
                    color=colour,
                    markeredgecolor="black",
                    linestyle="none",
                )
            else:
                ax.axvline(best[name], color=colour, linestyle="--", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(spec.label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{dataset}: {spec.title}\n{_subtitle(spec, series)}", fontsize=10)
        ax.legend(loc="best", fontsize=9)
        save_png(fig, out)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m segline.plots.curves", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--metric",
        required=True,
        help="val_<metric> for any metric of metrics.csv (val_dice, val_hd95, val_cldice, "
        f"val_mip_dice, ...) or one of {', '.join(EPOCH_CURVES)}",
    )
    p.add_argument("--out", required=True, help="PNG to write, e.g. results/<ds>/val_dice.png")
    p.add_argument("methods", nargs="+", metavar="METHOD_DIR", help="results/<ds>/<method>")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: draw the curves; 0 on success."""
    args = build_parser().parse_args(argv)
    curve_metric(args.metric)  # a malformed --metric is refused before reading anything
    plot_curves(load_methods(args.methods), args.metric, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    entry(main)
