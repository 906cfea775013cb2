"""The results report: one markdown page and one CSV comparing the methods of a dataset.

Per method (and per foreground class when there are several, plus their mean): the
best epoch and the number of epochs trained, the validation Dice at the best epoch
(the selection criterion), and on the held-out test cases mean ± sd of each test
metric (``--metrics``, default Dice, HD95 and ASSD in mm; also clDice, MIP Dice, HD:
see :data:`segline.plots.METRIC_INFO`) with the number of cases and of **undefined**
cases (NaN: never dropped silently). The best method per column is marked (bold in
markdown, ``best_*`` columns in the CSV): highest for Dice-like scores, lowest for
distances. With ``--reference METHOD`` each method's mean of every higher-is-better
metric is also given as a percentage of that method's (e.g. weakly supervised
methods as a fraction of the fully supervised ``full``): columns ``<metric> / METHOD``
in markdown, ``<metric>_fraction_of_METHOD`` (a ratio) in the CSV. Numbers are
read with :mod:`segline.plots` (same conventions as the plots). No dates or host
names: same inputs, same bytes.

Usage (one Make recipe)::

    python -m segline.report --out results/<ds>/report.md --csv results/<ds>/report.csv \\
        [--dataset NAME] [--metrics dice,hd95,assd[,cldice,mip_dice,hd]] \\
        [--reference METHOD] results/<ds>/<method> [results/<ds>/<method> ...]

The markdown table is also printed to stdout.

Example:
    >>> from segline.plots import Stat
    >>> fmt_stat(Stat(mean=0.81234, sd=0.05, n=3, n_undefined=1), 3)
    '0.812 ± 0.050 (1 undefined)'
"""

from __future__ import annotations

import argparse
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from segline import atomic
from segline.cli import entry
from segline.errors import InputError
from segline.plots import (
    METRIC_INFO,
    MethodResults,
    Stat,
    case_table,
    class_mean,
    load_methods,
    metric_label,
    metric_title,
    require_metric,
)

MEAN_CLASS = "mean"
TEST_METRICS = ("dice", "hd95", "assd")
# column -> (higher is better, digits shown); the metrics' own table is METRIC_INFO
RANKED = {"val_dice": (True, 3)} | {
    m: (info.higher_is_better, info.digits) for m, info in METRIC_INFO.items()
}

CONVENTIONS_HEAD = """\
## Conventions

- Dice(empty, empty) = 1; Dice with exactly one empty mask = 0.
- HD95: 95th percentile of the pooled symmetric surface distances (both directed
  sets of surface-voxel distances concatenated, as medpy), in mm, using the voxel
  spacing. ASSD: mean of the same pooled distances, in mm.
- HD95 and ASSD are undefined (NaN) when exactly one of the two masks is empty, and 0
  when both are. Means and sds are over the defined cases; the number of undefined
  cases is given next to them (never dropped silently). A method with undefined cases
  may therefore look better on HD95/ASSD than it is: read the count.
- mean ± sd: over cases; sd is the sample standard deviation (n − 1); "–" when not
  computable (no defined case, or only one for the sd).
- Several foreground classes: one row per class, plus a "mean" row whose per-case
  value is the mean over the classes (undefined when any class is undefined).
"""
# definitions added to the conventions when the metric is reported
METRIC_CONVENTIONS = {
    "hd": "- HD: maximum (100th percentile) of the same pooled distances, in mm; undefined\n"
    "  and 0 as HD95.\n",
    "cldice": "- clDice (centreline Dice): 2·Tprec·Tsens / (Tprec + Tsens), Tprec = fraction\n"
    "  of the predicted skeleton inside the reference mask, Tsens = fraction of the\n"
    "  reference skeleton inside the prediction; empty-mask conventions as Dice.\n",
    "mip_dice": "- MIP Dice: Dice of the maximum-intensity projection of the predicted mask\n"
    "  against the 2D MIP label; empty-mask conventions as Dice.\n",
}


def conventions(metrics: Sequence[str]) -> str:
    """The conventions section for the reported ``metrics`` (fixed text per metric)."""
    extra = "".join(METRIC_CONVENTIONS[m] for m in metrics if m in METRIC_CONVENTIONS)
    higher = [metric_title(m) for m in metrics if METRIC_INFO[m].higher_is_better]
    lower = [metric_title(m) for m in metrics if not METRIC_INFO[m].higher_is_better]
    which = f"highest {'/'.join(higher)}" + (f", lowest {'/'.join(lower)}" if lower else "")
    return (
        CONVENTIONS_HEAD
        + extra
        + f"- Bold: the best method in that column ({which}; ties all bold).\n"
    )


def parse_metrics(text: str) -> list[str]:
    """The ``--metrics`` list: known names (:data:`METRIC_INFO`), no repeats, with dice.

    Raises:
        InputError: an unknown or repeated name, or no ``dice``.

    Example:
        >>> parse_metrics("dice, cldice,hd95")
        ['dice', 'cldice', 'hd95']
    """
    metrics = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRIC_INFO]
    if unknown:
        raise InputError(
            "--metrics",
            f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(METRIC_INFO)}; "
            "a new one needs its direction and unit in segline.plots.METRIC_INFO)",
        )
    repeated = sorted({m for m in metrics if metrics.count(m) > 1})
    if repeated:
        raise InputError("--metrics", f"{', '.join(repeated)} given more than once")
    if "dice" not in metrics:
        raise InputError(
            "--metrics", f"must include dice (it defines the test cases counted); got {text!r}"
        )
    return metrics


@dataclass
class Row:
    """The numbers of one method × class."""

    method: str
    cls: str
    best_epoch: int
    epochs_trained: int
    n_val: int
    val_dice: float
    test: dict[str, Stat]
    best: set[str] = field(default_factory=set)
    fraction: dict[str, float] = field(default_factory=dict)


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


def _per_case(wide: pd.DataFrame, cls: str) -> pd.Series:
    """Per-case values of one class column, or the strict class mean for ``mean``."""
    return class_mean(wide) if cls == MEAN_CLASS else wide[cls]


def method_rows(method: MethodResults, metrics: Sequence[str] = TEST_METRICS) -> list[Row]:
    """The report rows of one method: one per foreground class (+ ``mean`` if several).

    Raises:
        InputError: a metric has no test row for the method's foreground classes.
    """
    best = method.best_epoch
    path = method.path / "test" / "metrics.csv"
    for metric in dict.fromkeys(["dice", *metrics]):
        require_metric(method.test, metric, path, "test")
    dice = method.test_table("dice")
    classes = list(dice.columns)
    tables = {"dice": dice}
    for metric in metrics:
        table = method.test_table(metric, classes)
        if table.empty:
            raise InputError(
                path, f"no test {metric!r} rows for the classes of dice ({', '.join(classes)})"
            )
        # same cases and classes as Dice: a missing row counts as undefined, not absent
        tables[metric] = table.reindex(dice.index)
    val = case_table(method.val, "dice", classes)
    val_best = (
        val.xs(best, level="epoch") if best in val.index.get_level_values("epoch") else val.iloc[:0]
    )
    names = classes + ([MEAN_CLASS] if len(classes) > 1 else [])
    rows = []
    for cls in names:
        rows.append(
            Row(
                method=method.name,
                cls=cls,
                best_epoch=best,
                epochs_trained=len(method.epochs),
                n_val=len(val_best),
                val_dice=Stat.of(_per_case(val_best, cls).to_numpy()).mean,
                test={m: Stat.of(_per_case(tables[m], cls).to_numpy()) for m in metrics},
            )
        )
    return rows


def _value(row: Row, column: str) -> float:
    return row.val_dice if column == "val_dice" else row.test[column].mean


def mark_best(rows: Sequence[Row]) -> None:
    """Add to ``row.best`` every column in which the row is best among its class."""
    for cls in dict.fromkeys(r.cls for r in rows):
        group = [r for r in rows if r.cls == cls]
        for column, (higher, _) in RANKED.items():
            if column != "val_dice" and column not in group[0].test:
                continue
            values = [round(_value(r, column), 12) for r in group]
            finite = [v for v in values if math.isfinite(v)]
            if not finite:
                continue
            target = max(finite) if higher else min(finite)
            for r, v in zip(group, values, strict=True):
                if v == target:
                    r.best.add(column)


def _cell(row: Row, column: str) -> str:
    digits = RANKED[column][1]
    text = (
        fmt_number(row.val_dice, digits)
        if column == "val_dice"
        else fmt_stat(row.test[column], digits)
    )
    return f"**{text}**" if column in row.best else text


def set_fractions(rows: Sequence[Row], reference: str) -> None:
    """``row.fraction[m]`` = the row's test mean ÷ the reference method's, per class,
    for every higher-is-better metric (e.g. a weakly supervised method as a fraction
    of the fully supervised ``full``)."""
    ref = {r.cls: r for r in rows if r.method == reference}
    for r in rows:
        for m, stat in r.test.items():
            if not METRIC_INFO[m].higher_is_better or r.cls not in ref:
                continue
            denom = ref[r.cls].test[m].mean
            ok = math.isfinite(stat.mean) and math.isfinite(denom) and denom != 0
            r.fraction[m] = stat.mean / denom if ok else float("nan")


def _fraction_metrics(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(m for r in rows for m in r.fraction))


def markdown_table(rows: Sequence[Row], reference: str | None = None) -> str:
    """The results table in GitHub markdown."""
    metrics = list(rows[0].test) if rows else list(TEST_METRICS)
    fractions = _fraction_metrics(rows)
    header = ["method", "class", "best epoch", "epochs", "val Dice"]
    header += [f"test {metric_label(m)}" for m in metrics]
    header += [f"{metric_title(m)} / {reference}" for m in fractions]
    header += ["n test"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.method, r.cls, str(r.best_epoch), str(r.epochs_trained), _cell(r, "val_dice")]
        cells += [_cell(r, m) for m in metrics]
        cells += [
            f"{100 * r.fraction[m]:.1f} %" if math.isfinite(r.fraction.get(m, math.nan)) else "–"
            for m in fractions
        ]
        cells += [str(r.test["dice"].n)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _counts(values: dict[str, int], what: str) -> str:
    """``3 validation cases`` or, when methods differ, the count per method."""
    distinct = sorted(set(values.values()))
    if len(distinct) == 1:
        return f"{distinct[0]} {what}"
    return f"{what} (per method: " + ", ".join(f"{k}: {v}" for k, v in values.items()) + ")"


def selection_notes(methods: Sequence[MethodResults], rows: Sequence[Row]) -> list[str]:
    """What was selected on what, and any method whose best epoch is not the val-Dice maximum."""
    n_val = {r.method: r.n_val for r in rows}
    n_test = {r.method: r.test["dice"].n for r in rows}
    notes = [
        f"Best epoch selected on mean validation Dice over {_counts(n_val, 'validation cases')}; "
        f"all test numbers below on the {_counts(n_test, 'held-out test cases')} "
        "(never used for selection)."
    ]
    for m in methods:
        if "val_dice" not in m.epochs.columns:
            continue
        val = m.epoch_column("val_dice")
        if not np.isfinite(val.to_numpy()).any() or m.best_epoch not in val.index:
            notes.append(
                f"Note: {m.name}: best epoch {m.best_epoch} has no validation Dice in epochs.csv."
            )
            continue
        if not math.isclose(
            float(val[m.best_epoch]), float(np.nanmax(val.to_numpy())), abs_tol=1e-9
        ):
            top = int(val.index[int(np.nanargmax(val.to_numpy()))])
            notes.append(
                f"Note: {m.name}: best_epoch.txt says {m.best_epoch}, but the highest "
                f"validation Dice in epochs.csv is at epoch {top}."
            )
    return notes


def markdown(
    dataset: str,
    methods: Sequence[MethodResults],
    rows: Sequence[Row],
    reference: str | None = None,
) -> str:
    """The whole report page."""
    notes = selection_notes(methods, rows)
    metrics = list(rows[0].test) if rows else list(TEST_METRICS)
    if reference:
        titles = ", ".join(metric_title(m) for m in _fraction_metrics(rows))
        notes.append(
            f"Columns '… / {reference}': each method's mean test value as a percentage of "
            f"{reference}'s mean in the same class ({reference} = 100 %), for the "
            f"higher-is-better metrics ({titles}): how much of the reference's score the "
            "method reaches."
        )
    parts = [
        f"# Results: {dataset}\n",
        f"Methods ({len(methods)}): " + ", ".join(m.name for m in methods) + ".\n",
        "\n\n".join(notes) + "\n",
        "## Results (test: mean ± sd over test cases)\n",
        markdown_table(rows, reference),
        conventions(metrics),
    ]
    return "\n".join(parts)


def csv_text(dataset: str, rows: Sequence[Row], reference: str | None = None) -> str:
    """One CSV row per method × class, same numbers as the table (full precision)."""
    records = []
    for r in rows:
        rec: dict[str, object] = {
            "dataset": dataset,
            "method": r.method,
            "class": r.cls,
            "best_epoch": r.best_epoch,
            "epochs_trained": r.epochs_trained,
            "n_val_cases": r.n_val,
            "val_dice": r.val_dice,
            "n_test_cases": r.test["dice"].n,
        }
        for m in r.test:
            s = r.test[m]
            rec |= {
                f"test_{m}_mean": s.mean,
                f"test_{m}_sd": s.sd,
                f"test_{m}_undefined": s.n_undefined,
            }
        rec["best_val_dice"] = "val_dice" in r.best
        rec |= {f"best_test_{m}": m in r.best for m in r.test}
        rec |= {f"{m}_fraction_of_{reference}": v for m, v in r.fraction.items()}
        records.append(rec)
    buf = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def build_report(
    methods: Sequence[MethodResults],
    dataset: str,
    metrics: Sequence[str] = TEST_METRICS,
    reference: str | None = None,
) -> tuple[str, str, str]:
    """(markdown page, CSV text, markdown table) for ``methods``.

    Args:
        metrics: test metrics to report, with ``dice`` (see :func:`parse_metrics`).
        reference: a method name; adds each method as a fraction of it.

    Raises:
        InputError: ``reference`` is not among ``methods``; a metric is missing.
    """
    names = [m.name for m in methods]
    if reference is not None and reference not in names:
        raise InputError(
            "--reference", f"{reference!r} is not one of the methods reported ({', '.join(names)})"
        )
    rows = [row for m in methods for row in method_rows(m, metrics)]
    mark_best(rows)
    if reference is not None:
        set_fractions(rows, reference)
    return (
        markdown(dataset, methods, rows, reference),
        csv_text(dataset, rows, reference),
        markdown_table(rows, reference),
    )


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m segline.report", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="markdown to write, e.g. results/<ds>/report.md")
    p.add_argument("--csv", required=True, help="CSV to write, e.g. results/<ds>/report.csv")
    p.add_argument("--dataset", help="name in the title (default: the method folders' parent)")
    p.add_argument(
        "--metrics",
        default=",".join(TEST_METRICS),
        help=f"test metrics, comma-separated, with dice (known: {', '.join(METRIC_INFO)}); "
        "default %(default)s",
    )
    p.add_argument(
        "--reference",
        metavar="METHOD",
        help="a method's name (e.g. full): every method's higher-is-better means as a "
        "percentage of its",
    )
    p.add_argument("methods", nargs="+", metavar="METHOD_DIR", help="results/<ds>/<method>")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: write the report and CSV, print the table; 0 on success."""
    args = build_parser().parse_args(argv)
    metrics = parse_metrics(args.metrics)
    methods = load_methods(args.methods)
    dataset = args.dataset or methods[0].dataset
    page, table_csv, table = build_report(methods, dataset, metrics, args.reference)
    atomic.write_text(args.csv, table_csv)
    atomic.write_text(args.out, page)
    print(f"{dataset}: best epoch on validation Dice; test mean ± sd (full report: {args.out})")
    print(table, end="")
    return 0


if __name__ == "__main__":
    entry(main)
