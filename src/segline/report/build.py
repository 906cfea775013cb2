"""The results report: one markdown page and CSVs comparing the methods of a dataset.

The command line (:func:`main`) and the page's assembly (:func:`build_report`); the
sections are described in :mod:`segline.report`.

Usage (one Make recipe)::

    python -m segline.report --out results/<ds>/report.md --csv results/<ds>/report.csv \\
        [--cases-csv results/<ds>/report_cases.csv] [--cases data/<ds>/cases] \\
        [--stat-reference METHOD] [--plot val_dice.png ...] [--dataset NAME] \\
        [--metrics dice,hd95,assd[,cldice,mip_dice,hd]] [--reference METHOD] \\
        results/<ds>/<method>[/seed<k>] ...

The results table is also printed to stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segline import atomic
from segline.cli import HelpFormatter, cli_of, prog
from segline.errors import InputError
from segline.report.config import config_section, cropped_tests_line
from segline.report.csvout import cases_csv_text, csv_text
from segline.report.model import (
    TEST_METRICS,
    fraction_metrics,
    group_cases,
    group_rows,
    mark_best,
    set_fractions,
)
from segline.report.selection import selection_notes, shared_rule
from segline.report.statistics import compare, fov_diagonals, stats_section
from segline.report.tables import (
    grid_line,
    markdown_table,
    methods_line,
    per_case_section,
    plots_section,
    seeds_table,
    training_grid_section,
)
from segline.report.text import conventions
from segline.results import (
    METRIC_INFO,
    MethodResults,
    add_eval_folders,
    add_training_folders,
    group_methods,
    load_methods,
    metric_title,
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
            "a new one needs its record in segline.metrics.registry)",
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
class Report:
    """The report's texts: page, CSV, per-case CSV, and the results table (stdout)."""

    page: str
    csv: str
    cases_csv: str
    table: str


def build_report(
    runs: Sequence[MethodResults],
    dataset: str,
    metrics: Sequence[str] = TEST_METRICS,
    reference: str | None = None,
    stat_reference: str | None = None,
    cases_dir: Path | None = None,
    plots: Sequence[str] = (),
) -> Report:
    """The report of ``runs`` (trainings as from :func:`segline.results.load_methods`).

    Args:
        metrics: test metrics to report, with ``dice`` (see :func:`parse_metrics`).
        reference: a method name; adds each method as a fraction of it.
        stat_reference: the method the others are tested against (default: the first
            method in name order). Oracle methods (``args.json`` ``"oracle": true``:
            they used the test labels) are left out of the statistics and cannot be it.
        cases_dir: the case store, for the FOV diagonals of undefined distances.
        plots: plot file names beside the page, linked in order.

    Raises:
        InputError: a reference is not among the methods, or the statistics' is an
            oracle; a metric is missing.
    """
    groups = group_methods(runs)
    names = [g.name for g in groups]
    for option, name in (("--reference", reference), ("--stat-reference", stat_reference)):
        if name is not None and name not in names:
            raise InputError(
                option, f"{name!r} is not one of the methods reported ({', '.join(names)})"
            )
    oracles = [g.name for g in groups if g.oracle]
    fair = [n for n in names if n not in oracles]
    if stat_reference in oracles:
        raise InputError(
            "--stat-reference",
            f"{stat_reference!r} is an oracle (args.json oracle: its test predictions used "
            f"the test labels): pick one of {', '.join(fair) or 'no method'}",
        )
    stat_ref = stat_reference if stat_reference is not None else (fair or [None])[0]
    cases = [group_cases(g, metrics) for g in groups]
    rows = [row for gc in cases for row in group_rows(gc, metrics)]
    mark_best(rows)
    if reference is not None:
        set_fractions(rows, reference)
    test_ids = list(dict.fromkeys(c for gc in cases for c in gc.cases))
    on_source = any(r.eval_path is not None for r in runs)
    diagonals = fov_diagonals(cases_dir, test_ids, on_source) if cases_dir is not None else None
    compared = [gc for gc in cases if not gc.group.oracle]
    comparisons = compare(compared, stat_ref, metrics, diagonals) if stat_ref else []

    notes = selection_notes(runs, rows)
    if reference:
        titles = ", ".join(metric_title(m) for m in fraction_metrics(rows))
        notes.append(
            f"Columns '… / {reference}': each method's mean test value as a percentage of "
            f"{reference}'s mean in the same class ({reference} = 100 %), for the "
            f"higher-is-better metrics ({titles}): how much of the reference's score the "
            "method reaches."
        )
    table = markdown_table(rows, reference)
    parts = [
        f"# Results: {dataset}\n",
        methods_line(groups),
        "\n\n".join(notes) + "\n",
        "## Results (test: mean ± sd over test cases)\n",
        table,
        grid_line(runs, test_ids),
    ]
    over_seeds = seeds_table(rows)
    if over_seeds:
        parts.append(over_seeds)
    if on_source:
        parts.append(training_grid_section(groups, metrics, reference))
    parts += [
        stats_section(comparisons, stat_ref, len(compared), oracles),
        per_case_section(cases, metrics),
        config_section(groups, cropped_tests_line(cases_dir, test_ids) if cases_dir else ""),
    ]
    if plots:
        parts.append(plots_section(plots))
    parts.append(conventions(metrics))
    return Report(
        page="\n".join(parts),
        csv=csv_text(dataset, rows, comparisons, runs, reference, stat_ref),
        cases_csv=cases_csv_text(dataset, cases, metrics, diagonals),
        table=table,
    )


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog=prog("python -m segline.report"),
        description=__doc__.split("\n")[0],
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", required=True, help="markdown to write, e.g. results/<ds>/report.md")
    p.add_argument("--csv", required=True, help="CSV to write, e.g. results/<ds>/report.csv")
    p.add_argument(
        "--cases-csv", help="per-case values to write (long), e.g. results/<ds>/report_cases.csv"
    )
    p.add_argument(
        "--cases",
        type=Path,
        help="the case store (data/<ds>/cases): FOV diagonals for undefined distances; "
        "without it no distance statistics",
    )
    p.add_argument(
        "--stat-reference",
        metavar="METHOD",
        help="the method every other is tested against (default: first by name)",
    )
    p.add_argument(
        "--plot",
        action="append",
        default=[],
        metavar="NAME",
        help="a plot file beside the report to link (repeat; in order)",
    )
    p.add_argument("--dataset", help="name in the title (default: the method folders' parent)")
    p.add_argument(
        "--metrics",
        default=",".join(TEST_METRICS),
        help=f"test metrics, comma-separated, with dice (known: {', '.join(METRIC_INFO)}); "
        "default %(default)s",
    )
    p.add_argument(
        "--extra-metrics",
        default="",
        help="more test metrics after --metrics (make EVAL_METRICS: scored by the "
        "evaluation stage only), comma-separated",
    )
    p.add_argument(
        "--reference",
        metavar="METHOD",
        help="a method's name (e.g. full): every method's higher-is-better means are also "
        "shown as a percentage of this method's means (default: no percentage columns)",
    )
    add_training_folders(p)
    add_eval_folders(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: write the report and CSVs, print the table; 0 on success."""
    args = build_parser().parse_args(argv)
    extra = [m.strip() for m in args.extra_metrics.split(",") if m.strip()]
    metrics = parse_metrics(",".join([args.metrics, *extra]))
    bad = [name for name in args.plot if not name or "/" in name or name.startswith(".")]
    if bad:
        raise InputError("--plot", f"{bad[0]!r}: a file name beside the report, no folder")
    runs = load_methods(args.methods, args.eval)
    dataset = args.dataset or runs[0].dataset
    report = build_report(
        runs,
        dataset,
        metrics,
        args.reference,
        args.stat_reference,
        args.cases,
        args.plot,
    )
    if args.cases_csv:
        atomic.write_text(args.cases_csv, report.cases_csv)
    atomic.write_text(args.csv, report.csv)
    atomic.write_text(args.out, report.page)
    rule = shared_rule(runs)
    print(f"{dataset}: best epoch on {rule}; test mean ± sd (full report: {args.out})")
    print(report.table, end="")
    return 0


cli = cli_of(main)
