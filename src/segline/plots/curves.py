"""Training curves: one line per method over epochs, best epoch marked.

``--metric val_<m>`` works for any metric ``<m>`` of the long ``metrics.csv`` (split
``val``): ``val_dice``, ``val_hd95``, ``val_assd``, ``val_hd``, ``val_cldice``,
``val_mip_dice``, ... It is recomputed per case: per case the mean over foreground
classes, then per epoch the mean over cases (cases with an undefined value are left
out of that epoch's mean and sd). The axis label carries the unit (mm for HD95, ASSD,
HD; see :data:`segline.results.METRIC_INFO`). Columns of ``epochs.csv`` (``tra_loss``,
``val_loss``, ``tra_dice``, ``lr``, ``alpha``) and the wall time per epoch
(``epoch_time``: ``seconds`` of ``timing.csv``) have no spread over cases.

One seed or several (``SEEDS``, folders ``<method>/seed<k>``):

* **one training per method**: the line is its value; for per-case metrics shaded
  ± 1 sample sd over cases;
* **several seeds**: the line is the mean over the method's seeds, shaded ± 1 sample
  sd over seeds (:func:`seed_series`); the spread over cases is then not drawn.

The star marks the best epoch of each training (``best_epoch.txt``, the epoch the
test used), drawn on the method's line: with seeds one star per seed. Where the line
is undefined at that epoch (e.g. HD95 with an empty prediction in a case) or
everywhere (listed in the legend as not drawn), a dashed vertical line marks the
epoch instead (its legend entry says so).

Losses of different methods differ in scale (a boundary term, a weighted sum), so
``tra_loss`` and ``val_loss`` are drawn relative to epoch 1: each training's loss
divided by the absolute value of its own loss at epoch 1 (:func:`relative_to_epoch1`;
the absolute value keeps the direction for a loss that is negative). The legend gives
each method's loss at epoch 1, so the scale is not lost. ``lr`` is drawn on a log
axis when it spans more than a factor 20. ``alpha`` (the weight of the scheduled loss
terms) is empty for a method without a schedule: the method is listed in the legend
as having none and drawn nowhere.

``epoch_time`` is wall-clock time: two runs of one experiment give different
pictures, so ``epoch_time.png`` is, like ``timing.csv``, left out of the archive's
content hash (:func:`segline.pack.volatile`).

Colours follow the sorted method names (see :func:`segline.plots.method_colours`),
so the same methods look the same in every plot.

Usage (one Make recipe)::

    python -m segline.plots.curves --metric val_dice --out results/<ds>/val_dice.png \\
        results/<ds>/<method> [results/<ds>/<method> ...]
    python -m segline.plots.curves --metric val_dice --out results/<ds>/seeds/val_dice.png \\
        results/<ds>/seeds/<method>/seed0 results/<ds>/seeds/<method>/seed1 ...

Example:
    >>> curve_metric("val_hd95").label
    'HD95 (mm, validation)'
    >>> curve_metric("val_cldice").per_case, curve_metric("epoch_time").source
    ('cldice', 'timing.csv')
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.plots import figure_style, method_colours, save_png
from segline.results import (
    METRIC_INFO,
    MethodGroup,
    MethodResults,
    add_training_folders,
    epoch_series,
    group_methods,
    load_methods,
    metric_label,
    metric_title,
    numeric_column,
    read_csv,
    require_metric,
)
from segline.seeds import trainings_word

SERIES_COLUMNS = ["epoch", "mean", "sd", "n_cases", "n_undefined"]
GROUP_COLUMNS = ["epoch", "mean", "sd", "n_runs", "n_cases"]
LOG_SPAN = 20.0
"""``lr`` gets a log axis when its largest value exceeds its smallest by more than this."""


@dataclass(frozen=True)
class CurveMetric:
    """How to draw one ``--metric``.

    Attributes:
        per_case: metric name in the long table, or None for a column of ``source``.
        label: y-axis label, with units.
        title: what the curve shows.
        source: the file the values come from: ``metrics.csv``, ``epochs.csv`` or
            ``timing.csv``.
        column: the column of ``source`` (empty for ``metrics.csv``).
        relative: drawn relative to epoch 1 (losses, :func:`relative_to_epoch1`).
    """

    per_case: str | None
    label: str
    title: str
    source: str = "metrics.csv"
    column: str = ""
    relative: bool = False


def _epochs_csv(name: str, label: str, title: str, relative: bool = False) -> CurveMetric:
    return CurveMetric(None, label, title, "epochs.csv", name, relative)


EPOCH_CURVES: dict[str, CurveMetric] = {
    "tra_loss": _epochs_csv(
        "tra_loss", "training loss relative to epoch 1", "training loss", relative=True
    ),
    "val_loss": _epochs_csv(
        "val_loss", "validation loss relative to epoch 1", "validation loss", relative=True
    ),
    "tra_dice": _epochs_csv("tra_dice", "Dice (training)", "training Dice"),
    "lr": _epochs_csv("lr", "learning rate", "learning rate"),
    "alpha": _epochs_csv(
        "alpha", "α (weight of the scheduled loss terms)", "loss schedule weight α"
    ),
    "epoch_time": CurveMetric(
        None, "wall time per epoch (s)", "wall time per epoch", "timing.csv", "seconds"
    ),
}
"""The ``--metric`` values read from ``epochs.csv`` / ``timing.csv`` (the others are
``val_<metric>``)."""


def curve_metric(name: str) -> CurveMetric:
    """What ``--metric name`` draws: an :data:`EPOCH_CURVES` entry or ``val_<metric>``.

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


def timing_column(method: MethodResults, column: str) -> pd.Series:
    """One numeric column of the training's ``timing.csv``, indexed by epoch (seconds)."""
    path = method.path / "timing.csv"
    df = read_csv(path, ("epoch", column))
    epochs = numeric_column(df, "epoch", path, integer=True)
    if epochs.duplicated().any():
        raise InputError(path, "an epoch appears twice")
    values = pd.Series(numeric_column(df, column, path).to_numpy(), index=epochs.to_numpy())
    return values.sort_index(kind="stable")


def _plain_series(values: pd.Series) -> pd.DataFrame:
    """A per-epoch column as the :data:`SERIES_COLUMNS` table (no spread, no cases)."""
    return pd.DataFrame(
        {
            "epoch": values.index.to_numpy().astype(np.int64),
            "mean": values.to_numpy(dtype=np.float64),
            "sd": np.full(len(values), math.nan),
            "n_cases": np.zeros(len(values), dtype=np.int64),
            "n_undefined": np.zeros(len(values), dtype=np.int64),
        }
    )


def curve_series(method: MethodResults, metric: str) -> pd.DataFrame:
    """The values of one training, as read (losses not yet made relative).

    Args:
        method: the training's folder.
        metric: a ``--metric`` value (see :func:`curve_metric`).

    Returns:
        Columns ``epoch, mean, sd, n_cases, n_undefined`` sorted by epoch; for
        ``epochs.csv`` / ``timing.csv`` columns ``sd`` is NaN and the counts are 0.

    Raises:
        InputError: the training has no validation rows of that metric, or the file
            lacks the column.
    """
    spec = curve_metric(metric)
    if spec.per_case is not None:
        require_metric(method.val, spec.per_case, method.path / "metrics.csv", "validation")
        return epoch_series(method.val, spec.per_case)
    if spec.source == "timing.csv":
        return _plain_series(timing_column(method, spec.column))
    return _plain_series(method.epoch_column(spec.column))


def relative_to_epoch1(series: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """``mean`` and ``sd`` divided by ``|mean at epoch 1|``, and that epoch-1 value.

    When epoch 1 is missing, undefined or 0 the curve cannot be drawn relative to it:
    every value becomes NaN (the plot lists the method as not drawn).

    Example:
        >>> s = pd.DataFrame({"epoch": [1, 2], "mean": [-2.0, -3.0], "sd": [0.5, math.nan]})
        >>> rel, first = relative_to_epoch1(s)
        >>> rel["mean"].tolist(), rel["sd"].tolist()[0], first
        ([-1.0, -1.5], 0.25, -2.0)
    """
    at1 = series.loc[series["epoch"] == 1, "mean"]
    first = float(at1.iloc[0]) if len(at1) else math.nan
    scale = abs(first) if math.isfinite(first) and first != 0 else math.nan
    out = series.copy()
    out["mean"] = series["mean"] / scale
    out["sd"] = series["sd"] / scale
    return out, first


def seed_series(runs: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One method's line from its trainings' series (:func:`curve_series` tables).

    One training: its own ``mean`` and ``sd`` (for per-case metrics the sd over
    cases). Several (seeds): per epoch (the union of their epochs, sorted) the mean of
    the trainings' values and their sample sd (n − 1) over the seeds; a training
    without a defined value at an epoch is left out there (``n_runs`` counts the
    others; sd NaN below 2).

    Returns:
        Columns ``epoch, mean, sd, n_runs, n_cases`` (``n_cases``: the largest case
        count of the trainings at that epoch).

    Example:
        >>> a = pd.DataFrame({"epoch": [1, 2], "mean": [1.0, 2.0], "sd": 0.1, "n_cases": 3})
        >>> b = pd.DataFrame({"epoch": [1, 2], "mean": [3.0, math.nan], "sd": 0.1, "n_cases": 3})
        >>> seed_series([a, b])[["mean", "n_runs"]].to_dict("list")
        {'mean': [2.0, 2.0], 'n_runs': [2, 1]}
    """
    if not runs:
        raise ValueError("seed_series: no trainings")
    if len(runs) == 1:
        s = runs[0]
        return pd.DataFrame(
            {
                "epoch": s["epoch"].to_numpy(dtype=np.int64),
                "mean": s["mean"].to_numpy(dtype=np.float64),
                "sd": s["sd"].to_numpy(dtype=np.float64),
                "n_runs": np.isfinite(s["mean"].to_numpy(dtype=np.float64)).astype(np.int64),
                "n_cases": s["n_cases"].to_numpy(dtype=np.int64),
            },
            columns=GROUP_COLUMNS,
        )
    means = pd.concat(
        [s.set_index("epoch")["mean"].rename(i) for i, s in enumerate(runs)], axis=1
    ).sort_index()
    cases = pd.concat(
        [s.set_index("epoch")["n_cases"].rename(i) for i, s in enumerate(runs)], axis=1
    ).reindex(means.index)
    values = means.to_numpy(dtype=np.float64)
    defined = np.isfinite(values)
    n = defined.sum(axis=1)
    total = np.where(defined, values, 0.0).sum(axis=1)
    mean = np.divide(total, n, out=np.full(len(n), math.nan), where=n > 0)
    sq = np.where(defined, (values - mean[:, None]) ** 2, 0.0).sum(axis=1)
    sd = np.sqrt(np.divide(sq, n - 1, out=np.full(len(n), math.nan), where=n > 1))
    return pd.DataFrame(
        {
            "epoch": means.index.to_numpy().astype(np.int64),
            "mean": mean,
            "sd": sd,
            "n_runs": n.astype(np.int64),
            "n_cases": cases.fillna(0).max(axis=1).to_numpy().astype(np.int64),
        },
        columns=GROUP_COLUMNS,
    )


@dataclass(frozen=True)
class GroupCurve:
    """What one method's line shows.

    Attributes:
        group: the method and its trainings.
        series: :func:`seed_series` of its trainings (relative for losses).
        first: each training's value at epoch 1 before :func:`relative_to_epoch1`
            (empty unless the curve is relative).
    """

    group: MethodGroup
    series: pd.DataFrame
    first: tuple[float, ...] = ()

    @property
    def drawn(self) -> bool:
        """Whether the line has any defined value."""
        return bool(np.isfinite(self.series["mean"].to_numpy(dtype=np.float64)).any())


def group_curve(group: MethodGroup, metric: str) -> GroupCurve:
    """One method's :class:`GroupCurve`: its trainings' series, made relative to epoch 1
    first for losses (each training to its own epoch 1), then combined over seeds."""
    spec = curve_metric(metric)
    runs = [curve_series(r, metric) for r in group.runs]
    first: tuple[float, ...] = ()
    if spec.relative:
        pairs = [relative_to_epoch1(s) for s in runs]
        runs = [p[0] for p in pairs]
        first = tuple(p[1] for p in pairs)
    return GroupCurve(group, seed_series(runs), first)


def _several(curves: Sequence[GroupCurve]) -> bool:
    return any(len(c.group.runs) > 1 for c in curves)


def _word(runs: Sequence[MethodResults]) -> str:
    """``seeds``, ``folds`` or ``trainings (folds × seeds)``: what a method's several
    trainings are (:func:`segline.seeds.trainings_word`)."""
    return trainings_word([r.fold for r in runs], [r.seed for r in runs])


def _subtitle(spec: CurveMetric, curves: Sequence[GroupCurve]) -> str:
    """Lines under the title: where the values come from, what line and band show."""
    several = _several(curves)
    single = any(len(c.group.runs) == 1 for c in curves)
    lines = []
    if spec.per_case is not None:
        counts = sorted({int(n) for c in curves for n in c.series["n_cases"] if n > 0})
        n = (
            "?"
            if not counts
            else (str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}")
        )
        lines.append(f"mean over {n} validation cases (per case: mean over foreground classes)")
    elif spec.source == "timing.csv":
        lines.append("from timing.csv (wall-clock seconds: differ between two runs)")
    else:
        lines.append(f"from epochs.csv column {spec.column}")
    if spec.relative:
        lines.append("each training's loss ÷ |its loss at epoch 1| (legend: loss at epoch 1)")
    band = []
    if several:
        word = _word([r for c in curves if len(c.group.runs) > 1 for r in c.group.runs])
        band.append(f"line: mean over {word}, shaded: ± 1 sd over {word}")
    if single and spec.per_case is not None:
        band.append(
            "shaded: ± 1 sd over cases" + (" (methods with one training)" if several else "")
        )
    star = "star = best epoch (best_epoch.txt)" + (
        ", one per " + ("seed" if word == "seeds" else "fold" if word == "folds" else "training")
        if several
        else ""
    )
    lines.append("; ".join([*band, star]))
    return "\n".join(lines)


def _legend_label(curve: GroupCurve, best: Sequence[int], spec: CurveMetric) -> str:
    """Method name, seeds, best epoch(s), epoch-1 loss; or why it is not drawn."""
    name = curve.group.name
    k = len(curve.group.runs)
    if not curve.drawn:
        if spec.column == "alpha":
            return f"{name}: no loss schedule (alpha empty), not drawn"
        if spec.relative:
            return f"{name}: loss at epoch 1 missing, 0 or undefined, not drawn"
        return f"{name}: undefined in every epoch, not drawn"
    if k == 1:
        label = f"{name} (best epoch {best[0]}"
    else:
        epochs = ", ".join(str(b) for b in best)
        label = f"{name} ({k} {_word(curve.group.runs)}, best epochs {epochs}"
    if curve.first:
        label += ", epoch 1: " + ", ".join(f"{v:.3g}" for v in curve.first)
    return label + ")"


def plot_curves(methods: Sequence[MethodResults], metric: str, out: str) -> None:
    """Draw ``metric`` for every method (its seeds combined) and save the PNG to ``out``."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    spec = curve_metric(metric)
    curves = [group_curve(g, metric) for g in group_methods(methods)]
    colours = method_colours([c.group.name for c in curves])
    dataset = methods[0].dataset
    dashed = False
    with figure_style():
        fig = Figure(figsize=(8.0, 5.0), layout="constrained")
        ax = fig.add_subplot()
        for curve in curves:
            name = curve.group.name
            colour = colours[name]
            s = curve.series
            best = [r.best_epoch for r in curve.group.runs]
            label = _legend_label(curve, best, spec)
            if not curve.drawn:
                ax.plot([], [], color=colour, linestyle="none", marker="s", label=label)
                if spec.per_case is not None:  # where the test was taken, all the same
                    for epoch in sorted(set(best)):
                        ax.axvline(epoch, color=colour, linestyle="--", linewidth=1)
                        dashed = True
                continue
            x = s["epoch"].to_numpy()
            y = s["mean"].to_numpy(dtype=np.float64)
            marker = "o" if len(x) <= 25 else None
            ax.plot(x, y, color=colour, marker=marker, markersize=3, linewidth=1.5, label=label)
            sd = s["sd"].to_numpy(dtype=np.float64)
            if np.isfinite(sd).any():
                ax.fill_between(
                    x, y - sd, y + sd, where=np.isfinite(sd), color=colour, alpha=0.2, linewidth=0
                )
            for epoch in sorted(set(best)):
                at_best = s.loc[s["epoch"] == epoch, "mean"]
                if len(at_best) and np.isfinite(at_best.iloc[0]):
                    ax.plot(
                        [epoch],
                        [at_best.iloc[0]],
                        marker="*",
                        markersize=14,
                        color=colour,
                        markeredgecolor="black",
                        linestyle="none",
                    )
                else:
                    ax.axvline(epoch, color=colour, linestyle="--", linewidth=1)
                    dashed = True
        handles, _ = ax.get_legend_handles_labels()
        if dashed:
            handles.append(
                Line2D(
                    [],
                    [],
                    color="grey",
                    linestyle="--",
                    linewidth=1,
                    label="dashed: a best epoch where the line is undefined",
                )
            )
        finite = np.concatenate(
            [c.series["mean"].to_numpy(dtype=np.float64) for c in curves if c.drawn] or [[]]
        )
        finite = finite[np.isfinite(finite)]
        if spec.column == "lr" and finite.size and finite.min() > 0:
            if finite.max() / finite.min() > LOG_SPAN:
                ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(spec.label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{dataset}: {spec.title}\n{_subtitle(spec, curves)}", fontsize=10)
        ax.legend(handles=handles, loc="best", fontsize=9)
        save_png(fig, out)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("python -m segline.plots.curves"),
        description=__doc__.split("\n")[0],
    )
    p.add_argument(
        "--metric",
        required=True,
        help="val_<metric> for any metric of metrics.csv ("
        + ", ".join(f"val_{m}" for m in METRIC_INFO) + f") or one of {', '.join(EPOCH_CURVES)}",
    )
    p.add_argument("--out", required=True, help="PNG to write, e.g. results/<ds>/val_dice.png")
    add_training_folders(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: draw the curves; 0 on success."""
    args = build_parser().parse_args(argv)
    curve_metric(args.metric)  # a malformed --metric is refused before reading anything
    plot_curves(load_methods(args.methods), args.metric, args.out)
    print(f"wrote {args.out}")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
