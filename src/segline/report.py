"""The results report: one markdown page and CSVs comparing the methods of a dataset.

Sections of the page (``--out``):

* **Results**: per method (and per foreground class when there are several, plus
  their mean) the best epoch, the epochs trained, the validation Dice at the best
  epoch (the selection criterion) and, on the held-out test cases, mean ± sd of each
  test metric (``--metrics``, default Dice, HD95 and ASSD in mm; also clDice, MIP
  Dice, HD: :data:`segline.plots.METRIC_INFO`) with the number of cases and of
  **undefined** cases (NaN: never dropped silently). With seeds (training folders
  ``<method>/seed<k>``, ``SEEDS`` in make/common.mk): one row per seed, then the
  method's pooled row (per case the mean over its seeds), and a table of mean ± sd
  over seeds of each seed's mean over cases.
* **Statistics** against a reference method (``--stat-reference``): per compared
  method and metric, the mean paired difference (method − reference) over the test
  cases with a bootstrap 95 % CI, the Wilcoxon signed-rank p, the Holm-adjusted p
  (across the compared methods, per metric), a verdict and n (:mod:`segline.stats`).
  Undefined distances (HD95/ASSD/HD with exactly one empty mask) count as the worst
  possible value there: the case's field-of-view diagonal in mm, from the case store
  (``--cases``); without it the distance statistics are not computed.
* **Per case**: Dice and HD95 of each method per test case (seeds: their mean).
* **Configuration and provenance** (:mod:`segline.report_config`), the **plots**
  (``--plot NAME``, image links relative to the page) and the **conventions**.

Instance tasks (vertebrae: test rows with ``id_rate``, :mod:`segline.metrics.instances`)
report only the class of those rows (``spine``: one row per case,
:func:`segline.plots.instance_classes`), never the per-vertebra classes most cases
lack; ``--metrics dice,assd,id_rate,false_positives,misses`` (false positives and
misses are counts per case, lower is better).

``--reference METHOD`` (vessels: the fully supervised ``full``) adds each method's
mean of every higher-is-better metric as a percentage of that method's: columns
``<metric> / METHOD`` in markdown, ``<metric>_fraction_of_METHOD`` in the CSV. It is
unrelated to ``--stat-reference``.

The CSV (``--csv``) has one row per table row of the results (method or method/seed ×
class) with the statistics on the rows they concern; ``--cases-csv`` writes every
per-case value (long format). Numbers are read with :mod:`segline.plots` (same
conventions as the plots). No dates or host names: same inputs, same bytes.

Usage (one Make recipe)::

    python -m segline.report --out results/<ds>/report.md --csv results/<ds>/report.csv \\
        [--cases-csv results/<ds>/report_cases.csv] [--cases data/<ds>/cases] \\
        [--stat-reference METHOD] [--plot val_dice.png ...] [--dataset NAME] \\
        [--metrics dice,hd95,assd[,cldice,mip_dice,hd]] [--reference METHOD] \\
        results/<ds>/<method>[/seed<k>] ...

The results table is also printed to stdout.

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
from pathlib import Path

import numpy as np
import pandas as pd

from segline import atomic, stats
from segline.casestore import CaseStore, sorted_cases
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.metrics import registry as metric_registry
from segline.plots import (
    GRID_SOURCE,
    GRID_TRAINING,
    INSTANCE_METRIC,
    METRIC_INFO,
    MethodGroup,
    MethodResults,
    Stat,
    add_eval_folders,
    add_training_folders,
    case_table,
    class_mean,
    group_methods,
    load_methods,
    metric_label,
    metric_title,
    require_metric,
)
from segline.report_config import config_section, wall_seconds
from segline.seeds import sub_label

MEAN_CLASS = "mean"
TEST_METRICS = ("dice", "hd95", "assd")
CASE_METRICS = ("dice", "hd95")
"""Metrics of the per-case table (those of them that are reported)."""
# column -> (higher is better, digits shown); the metrics' own table is METRIC_INFO
RANKED = {"val_dice": (True, 3)} | {
    m: (info.higher_is_better, info.digits) for m, info in METRIC_INFO.items()
}

CONVENTIONS_HEAD = f"""\
## Conventions

- Dice(empty, empty) = 1; Dice with exactly one empty mask = 0.
- HD95: 95th percentile of the pooled symmetric surface distances (both directed
  sets of surface-voxel distances concatenated, as medpy), in mm, using the voxel
  spacing. ASSD: mean of the same pooled distances, in mm.
- HD95 and ASSD are undefined (NaN) when exactly one of the two masks is empty (e.g.
  a missed lesion), and 0 when both are. In the results tables, means and sds are
  over the defined cases and the number of undefined cases is given next to them
  (never dropped silently). For the statistics and any ranking on a distance metric
  an undefined case counts as the worst: it is replaced by the case's field-of-view
  diagonal in mm (the largest distance possible in that image: the stored image's
  extent, voxels × spacing, on each axis), and a method with undefined cases is never
  marked best on a distance metric.
- mean ± sd: over cases; sd is the sample standard deviation (n − 1); "–" when not
  computable (no defined case, or only one for the sd).
- Several foreground classes: one row per class, plus a "mean" row whose per-case
  value is the mean over the classes (undefined when any class is undefined).
- Seeds: a method trained with several seeds has one row per seed (method/seed<k>)
  and a pooled row (method) whose per-case value is the mean over its seeds
  (undefined when any seed's is): n stays the number of test cases. "Over seeds":
  mean ± sd (n − 1) of each seed's mean over cases.
- Statistics: paired over the test cases, per-case value = mean over foreground
  classes (and over seeds). Difference = method − reference. 95 % CI: percentile
  bootstrap of the mean difference, {stats.N_BOOT} resamples of the cases, fixed seed.
  p: Wilcoxon signed-rank, two-sided, zero differences dropped (exact when at most
  {stats.EXACT_MAX_N} non-zero differences without ties, else the normal approximation);
  all differences zero → p = 1. Holm: step-down adjustment across the compared
  methods, per metric. Verdict: better / worse when the Holm p < {stats.ALPHA} (direction
  from the sign and the metric: higher Dice, lower distance is better), else "no
  evidence". The verdict cell says when no data at its n could reach p < 0.05: without
  ties the smallest exact p is 2/2^n (n non-zero differences: 0.0625 at n = 5, so at
  least {stats.MIN_N} are needed), tied differences use the normal approximation, which
  can go lower (4 equal differences: p = 0.046), and Holm raises the floor with the
  number of methods compared.
"""
# definitions added to the conventions when the metric is reported
METRIC_CONVENTIONS = {
    m.name: m.convention for m in metric_registry.REGISTRY.values() if m.convention
}
INSTANCE_CONVENTIONS = (
    "- Instances (vertebrae): predicted instances are matched one-to-one to the\n"
    "  ground-truth vertebrae by overlap (Hungarian assignment maximising the summed\n"
    "  Dice; only overlapping pairs); a vertebra is identified when its matched Dice is\n"
    "  at least 0.5. Only the per-case class `spine` is reported and paired in the\n"
    "  statistics: Dice = mean over the case's vertebrae (a missed one counts 0), ASSD =\n"
    "  mean over its matched vertebrae (undefined when none is matched), ID rate =\n"
    "  identified / vertebrae of the case (mean over cases here, not pooled).\n"
)
BOLD_RULE = (
    "- Bold: only a mean difference with evidence (verdict better or worse) in the\n"
    "  statistics tables; the results tables mark no best method, since a higher mean\n"
    "  without evidence is no finding. The CSV's `best_*` columns still name the best\n"
    "  mean per column among the methods' own rows\n"
    "  ({which}; ties all marked;\n"
    "  on a distance metric a method with undefined cases is never best).\n"
)


def is_distance(metric: str) -> bool:
    """A distance metric (mm, lower is better): undefined when one mask is empty."""
    info = METRIC_INFO[metric]
    return info.unit == "mm" and not info.higher_is_better


def conventions(metrics: Sequence[str]) -> str:
    """The conventions section for the reported ``metrics`` (fixed text per metric)."""
    extra = "".join(METRIC_CONVENTIONS[m] for m in metrics if m in METRIC_CONVENTIONS)
    if {INSTANCE_METRIC, "false_positives", "misses"} & set(metrics):
        extra = INSTANCE_CONVENTIONS + extra
    higher = [metric_title(m) for m in metrics if METRIC_INFO[m].higher_is_better]
    lower = [metric_title(m) for m in metrics if not METRIC_INFO[m].higher_is_better]
    which = f"highest {'/'.join(higher)}" + (f", lowest {'/'.join(lower)}" if lower else "")
    return CONVENTIONS_HEAD + extra + BOLD_RULE.format(which=which)


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


# ------------------------------------------------------------------ per-case values
def _per_case(wide: pd.DataFrame, cls: str) -> pd.Series:
    """Per-case values of one class column, or the strict class mean for ``mean``."""
    return class_mean(wide) if cls == MEAN_CLASS else wide[cls]


def run_tables(
    run: MethodResults, metrics: Sequence[str], grid: bool = False
) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """(foreground classes, {metric: case × class test table}) of one training.

    Every metric's table has Dice's cases and classes: a missing row is undefined.
    The test rows are the training's :attr:`~segline.plots.MethodResults.test` (the
    evaluation stage's source geometry when given), or with ``grid`` the training
    grid's (:attr:`~segline.plots.MethodResults.grid_test`).

    Raises:
        InputError: a metric has no test row for the training's foreground classes.
    """
    path = run.path / "test" / "metrics.csv" if grid else run.test_path
    for metric in dict.fromkeys(["dice", *metrics]):
        require_metric(run.grid_test if grid else run.test, metric, path, "test")
    dice = run.test_table("dice", grid=grid)
    classes = [str(c) for c in dice.columns]
    tables = {"dice": dice}
    for metric in metrics:
        table = run.test_table(metric, classes, grid=grid)
        if table.empty:
            raise InputError(
                path, f"no test {metric!r} rows for the classes of dice ({', '.join(classes)})"
            )
        tables[metric] = table.reindex(dice.index)
    return classes, tables


@dataclass
class GroupCases:
    """One method's per-case test tables, one per training (seed, fold).

    Attributes:
        group: the method and its trainings.
        classes: foreground classes (the same for every training).
        cases: test case ids: those of every seed, or with folds (``FOLDS``) the
            out-of-fold union of the folds' test cases (each case tested by exactly
            one fold of each seed), in the first training's order, then canonical.
        tables: per training, {metric: case × class table} (a fold: its own cases).
    """

    group: MethodGroup
    classes: list[str]
    cases: list[str]
    tables: list[dict[str, pd.DataFrame]]

    @property
    def seeded(self) -> bool:
        """Trained in seed folders (then per-seed and pooled rows)."""
        return self.group.runs[0].seed is not None

    @property
    def folded(self) -> bool:
        """Trained in fold folders (cross-validation: per-fold and pooled rows)."""
        return self.group.runs[0].fold is not None

    @property
    def several(self) -> bool:
        """Trained in seed or fold folders: one row per training, then the pooled row."""
        return self.seeded or self.folded

    @property
    def class_names(self) -> list[str]:
        """Row classes: each foreground class, plus ``mean`` when several."""
        return self.classes + ([MEAN_CLASS] if len(self.classes) > 1 else [])

    @property
    def stat_class(self) -> str:
        """The class whose per-case value the statistics use (the class mean)."""
        return MEAN_CLASS if len(self.classes) > 1 else self.classes[0]

    def values(
        self, metric: str, cls: str, run: int | None = None, fill: pd.Series | None = None
    ) -> pd.Series:
        """Per-case values of one training (``run``) or pooled (None).

        Args:
            metric: the metric.
            cls: a class name or ``mean``.
            run: index of the training (its own test cases), or None: per case of
                :attr:`cases`, the mean over the trainings that tested it (every seed;
                with folds, the fold that held it out, once per seed), strict:
                undefined when any of those values is.
            fill: per-case replacement of undefined values (the FOV diagonal in mm),
                applied per class before any mean.
        """
        indices = range(len(self.tables)) if run is None else [run]
        columns = []
        for i in indices:
            wide = self.tables[i][metric]
            if fill is not None:
                diag = fill.reindex(wide.index).to_numpy()[:, None]
                wide = wide.where(wide.notna(), np.broadcast_to(diag, wide.shape))
            columns.append(_per_case(wide, cls).rename(str(i)))
        if run is not None:
            return columns[0]
        if not self.folded:
            return pd.concat(columns, axis=1).mean(axis=1, skipna=False)
        # folds: each training holds only its cases; average those present, strictly
        table = pd.concat(columns, axis=1).reindex(self.cases)
        tested = pd.concat([pd.Series(True, index=c.index) for c in columns], axis=1)
        tested = tested.reindex(self.cases).fillna(False).to_numpy(dtype=bool)
        undefined = (table.isna().to_numpy() & tested).any(axis=1)
        mean = table.mean(axis=1, skipna=True)
        return mean.where(~undefined, np.nan)


def group_cases(group: MethodGroup, metrics: Sequence[str], grid: bool = False) -> GroupCases:
    """Read a method's trainings (``grid``: their training-grid test rows); all seeds
    must share classes and test cases; with folds, all folds share classes, a seed's
    folds test disjoint cases and every seed's folds together the same cases."""
    if group.runs[0].fold is not None:
        return _fold_cases(group, metrics, grid)
    first_classes: list[str] | None = None
    first_cases: list[str] | None = None
    tables = []
    for run in group.runs:
        classes, t = run_tables(run, metrics, grid)
        cases = [str(c) for c in t["dice"].index]
        if first_classes is None:
            first_classes, first_cases = classes, cases
        elif classes != first_classes or cases != first_cases:
            raise InputError(
                run.path / "test" / "metrics.csv" if grid else run.test_path,
                f"test cases or classes differ from {group.runs[0].label}'s; "
                "the seeds of a method must be tested on the same cases",
            )
        tables.append(t)
    assert first_classes is not None and first_cases is not None
    return GroupCases(group, first_classes, first_cases, tables)


def _fold_cases(group: MethodGroup, metrics: Sequence[str], grid: bool) -> GroupCases:
    """:func:`group_cases` of a cross-validated method (``<method>/fold<i>[/seed<k>]``):
    the out-of-fold cases, each tested once per seed."""
    first_classes: list[str] | None = None
    tables = []
    by_seed: dict[int | None, dict[str, str]] = {}
    for run in group.runs:
        classes, t = run_tables(run, metrics, grid)
        where = run.path / "test" / "metrics.csv" if grid else run.test_path
        if first_classes is None:
            first_classes = classes
        elif classes != first_classes:
            raise InputError(where, f"classes differ from {group.runs[0].label}'s; the folds "
                             "of a method must be tested on the same classes")
        held = by_seed.setdefault(run.seed, {})
        for case in (str(c) for c in t["dice"].index):
            if case in held:
                raise InputError(where, f"test case {case} is also in {held[case]}'s test "
                                 "set: the folds of a cross-validation test disjoint cases")
            held[case] = run.label
        tables.append(t)
    assert first_classes is not None
    sets = {seed: set(held) for seed, held in by_seed.items()}
    first_seed = next(iter(sets))
    for seed, ids in sets.items():
        if ids != sets[first_seed]:
            raise InputError(group.runs[0].path.parent, f"seed {seed}'s folds test other "
                             f"cases than seed {first_seed}'s; every seed's folds must "
                             "together test the same cases")
    return GroupCases(group, first_classes, sorted_cases(list(sets[first_seed])), tables)


def fov_diagonal(shape: Sequence[float], spacing: Sequence[float]) -> float:
    """The field-of-view diagonal in mm, sqrt(Σ (voxels · spacing)²): the largest
    distance possible between two points of an image, the value an undefined distance
    counts as in the statistics (here and in :mod:`segline.evaluate`).

    Raises:
        ValueError, TypeError: shape and spacing are not numbers of one length.

    Example:
        >>> fov_diagonal((3, 16), (1.0, 0.25))
        5.0
    """
    extent = np.asarray(shape, float) * np.asarray(spacing, float)
    return float(np.sqrt(np.sum(extent**2)))


def fov_diagonals(cases_dir: Path, cases: Sequence[str], source: bool = False) -> pd.Series:
    """Per test case: the field-of-view diagonal in mm, sqrt(Σ (voxels · spacing)²).

    Read from each case's ``meta.json`` (``shape`` (Z, Y, X) and ``spacing`` (z, y, x)
    mm of the stored arrays; with ``source``, ``source_shape_xyz`` and
    ``source_spacing_xyz``, the grid the evaluation stage scores on): the largest
    distance possible between two points of the image, the value an undefined distance
    counts as.

    Raises:
        InputError: not a case store, or a test case absent from it.
    """
    store = CaseStore(cases_dir)
    out = {}
    for case in cases:
        path = cases_dir / case / "meta.json"
        if not path.is_file():
            raise InputError(path, "test case missing from the case store (--cases)")
        meta = store.meta(case)
        try:
            out[case] = (
                fov_diagonal(meta["source_shape_xyz"], meta["source_spacing_xyz"])
                if source
                else fov_diagonal(meta["shape"], meta["spacing"])
            )
        except (KeyError, ValueError, TypeError) as err:
            raise InputError(path, "no numeric 'shape' and 'spacing'") from err
    return pd.Series(out, dtype=np.float64)


# ------------------------------------------------------------------ which grid
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
    for comparison with the source-geometry numbers above it."""
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


# ------------------------------------------------------------------ results rows
@dataclass
class Row:
    """The numbers of one results-table row: a training or a method pooled, × class.

    Attributes:
        method, cls: the method and the class (or ``mean`` over classes).
        best_epochs, epochs_trained: per training (one, or each seed's).
        n_val: validation cases; val_dice: mean validation Dice at the best epoch
            (pooled: the mean over the seeds).
        test: per metric, mean ± sd over test cases (pooled: of the seed-mean per case).
        seed: the seed of a one-seed row; None for the method's own row.
        fold: the fold of a one-fold row (``FOLDS``); None otherwise.
        pooled: the method's own row pools several seed or fold folders.
        best: columns where the row has the best mean (CSV ``best_*``).
        fraction: per higher-is-better metric, mean ÷ the ``--reference`` method's.
    """

    method: str
    cls: str
    best_epochs: list[int]
    epochs_trained: list[int]
    n_val: int
    val_dice: float
    test: dict[str, Stat]
    seed: int | None = None
    pooled: bool = False
    best: set[str] = field(default_factory=set)
    fraction: dict[str, float] = field(default_factory=dict)
    fold: int | None = None

    @property
    def label(self) -> str:
        """``method`` (one per method), ``method/seed<k>``, ``method/fold<i>`` or
        ``method/fold<i>/seed<k>`` (one training)."""
        sub = sub_label(self.fold, self.seed)
        return f"{self.method}/{sub}" if sub else self.method

    @property
    def summary(self) -> bool:
        """The method's own row (single training or pooled), not one training's."""
        return self.seed is None and self.fold is None



def _val_dice(run: MethodResults, classes: Sequence[str], cls: str) -> tuple[int, float]:
    """(validation cases, mean validation Dice) at the training's best epoch."""
    best = run.best_epoch
    val = case_table(run.val, "dice", classes)
    at_best = (
        val.xs(best, level="epoch") if best in val.index.get_level_values("epoch") else val.iloc[:0]
    )
    return len(at_best), Stat.of(_per_case(at_best, cls).to_numpy()).mean


def group_rows(gc: GroupCases, metrics: Sequence[str]) -> list[Row]:
    """Rows of one method: per seed (if seeded) then the method's own, per class."""
    runs = gc.group.runs
    rows = []
    for cls in gc.class_names:
        val = [_val_dice(r, gc.classes, cls) for r in runs]
        if gc.several:
            for i, r in enumerate(runs):
                rows.append(
                    Row(
                        method=r.name,
                        cls=cls,
                        best_epochs=[r.best_epoch],
                        epochs_trained=[len(r.epochs)],
                        n_val=val[i][0],
                        val_dice=val[i][1],
                        test={m: Stat.of(gc.values(m, cls, i).to_numpy()) for m in metrics},
                        seed=r.seed,
                        fold=r.fold,
                    )
                )
        rows.append(
            Row(
                method=gc.group.name,
                cls=cls,
                best_epochs=[r.best_epoch for r in runs],
                epochs_trained=[len(r.epochs) for r in runs],
                n_val=val[0][0],
                val_dice=float(np.mean([v for _, v in val])),
                test={m: Stat.of(gc.values(m, cls).to_numpy()) for m in metrics},
                pooled=gc.several,
            )
        )
    # seeds' rows first, class by class, then the pooled rows: group per kind
    return [r for r in rows if not r.summary] + [r for r in rows if r.summary]


def _value(row: Row, column: str) -> float:
    return row.val_dice if column == "val_dice" else row.test[column].mean


def mark_best(rows: Sequence[Row]) -> None:
    """Add to ``row.best`` every column in which a method's row is best in its class.

    Only the methods' own rows compete (not single seeds). On a distance metric a row
    with undefined cases never competes (an undefined case counts as the worst).
    """
    summary = [r for r in rows if r.summary]
    for cls in dict.fromkeys(r.cls for r in summary):
        group = [r for r in summary if r.cls == cls]
        for column, (higher, _) in RANKED.items():
            if column != "val_dice" and column not in group[0].test:
                continue
            competing = [
                r
                for r in group
                if column == "val_dice" or not is_distance(column) or not r.test[column].n_undefined
            ]
            values = [round(_value(r, column), 12) for r in competing]
            finite = [v for v in values if math.isfinite(v)]
            if not finite:
                continue
            target = max(finite) if higher else min(finite)
            for r, v in zip(competing, values, strict=True):
                if v == target:
                    r.best.add(column)


def set_fractions(rows: Sequence[Row], reference: str) -> None:
    """``row.fraction[m]`` = the row's test mean ÷ the reference method's, per class,
    for every higher-is-better metric (e.g. a weakly supervised method as a fraction
    of the fully supervised ``full``); the reference's own (pooled) row is the 100 %."""
    ref = {r.cls: r for r in rows if r.method == reference and r.summary}
    for r in rows:
        for m, stat in r.test.items():
            if not METRIC_INFO[m].higher_is_better or r.cls not in ref:
                continue
            denom = ref[r.cls].test[m].mean
            ok = math.isfinite(stat.mean) and math.isfinite(denom) and denom != 0
            r.fraction[m] = stat.mean / denom if ok else float("nan")


def _fraction_metrics(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(m for r in rows for m in r.fraction))


def _cell(row: Row, column: str) -> str:
    digits = RANKED[column][1]
    if column == "val_dice":
        return fmt_number(row.val_dice, digits)
    return fmt_stat(row.test[column], digits)


def _epochs_text(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


def markdown_table(rows: Sequence[Row], reference: str | None = None) -> str:
    """The results table in GitHub markdown (no bold: see the conventions)."""
    metrics = list(rows[0].test) if rows else list(TEST_METRICS)
    fractions = _fraction_metrics(rows)
    header = ["method", "class", "best epoch", "epochs", "val Dice"]
    header += [f"test {metric_label(m)}" for m in metrics]
    header += [f"{metric_title(m)} / {reference}" for m in fractions]
    header += ["n test"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            r.label,
            r.cls,
            _epochs_text(r.best_epochs),
            _epochs_text(r.epochs_trained),
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
        cells = [p.method, p.cls, str(len(per_seed))]
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


# ------------------------------------------------------------------ statistics
@dataclass
class Comparison:
    """One method against the reference on one metric (pooled seeds, class mean).

    Attributes:
        method: the compared method.
        metric: the metric.
        n: paired test cases used.
        diff, lo, hi: mean difference (method − reference) and its bootstrap CI.
        p: Wilcoxon signed-rank p (two-sided); p_holm: Holm-adjusted across methods.
        verdict: better / worse / no evidence, or "not computed" (``reason``).
        undefined: paired cases undefined for (method, reference) before the policy
            (distance metrics: each counted as its FOV diagonal).
        n_nonzero: non-zero differences (the Wilcoxon test's n); min_p: the smallest
            Holm p attainable at this n (:func:`segline.stats.min_holm_p`); note: why
            no verdict is possible at this n, "" when one is
            (:func:`segline.stats.no_verdict_note`).
        bca_lo, bca_hi, ci_method: the BCa interval, or the percentile one where BCa is
            undefined, and which (NaN and "" when not computed).
    """

    method: str
    metric: str
    n: int = 0
    diff: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    p: float = math.nan
    p_holm: float = math.nan
    verdict: str = "not computed"
    reason: str = ""
    undefined: tuple[int, int] = (0, 0)
    n_nonzero: int = 0
    min_p: float = math.nan
    note: str = ""
    bca_lo: float = math.nan
    bca_hi: float = math.nan
    ci_method: str = ""

    @property
    def evidence(self) -> bool:
        """A verdict of better or worse (printed bold)."""
        return self.verdict in (stats.BETTER, stats.WORSE)

    @property
    def indicative(self) -> bool:
        """Too few paired cases for a bootstrap CI to be more than indicative."""
        return 0 < self.n < stats.INDICATIVE_N


def compare(
    cases: Sequence[GroupCases],
    reference: str,
    metrics: Sequence[str],
    diagonals: pd.Series | None,
) -> list[Comparison]:
    """Every other method against ``reference``, per metric, Holm across methods.

    Per-case values: the class mean, pooled over seeds; undefined distances replaced
    by the case's FOV diagonal (``diagonals``; None: distance metrics not computed).
    Cases are paired by id (those both methods have; a non-distance value still
    undefined drops the pair, and n says so). Each comparison also gets the smallest
    attainable Holm p at its n, the note saying when that rules out a verdict, and the
    BCa interval.
    """
    ref = next(gc for gc in cases if gc.group.name == reference)
    others = [gc for gc in cases if gc.group.name != reference]
    out: list[Comparison] = []
    for metric in metrics:
        info = METRIC_INFO[metric]
        batch: list[Comparison] = []
        floors: list[float] = []  # smallest raw p of each tested comparison, in order
        for gc in others:
            c = Comparison(gc.group.name, metric)
            if is_distance(metric) and diagonals is None:
                c.reason = "no case store (--cases) to count undefined distances as the worst"
                batch.append(c)
                continue
            fill = diagonals if is_distance(metric) else None
            a = gc.values(metric, gc.stat_class, fill=fill)
            b = ref.values(metric, ref.stat_class, fill=fill)
            common = [k for k in b.index if k in a.index]
            if is_distance(metric):
                raw_a = gc.values(metric, gc.stat_class).reindex(common)
                raw_b = ref.values(metric, ref.stat_class).reindex(common)
                c.undefined = (int(raw_a.isna().sum()), int(raw_b.isna().sum()))
            diffs = (a.reindex(common) - b.reindex(common)).to_numpy()
            diffs = diffs[np.isfinite(diffs)]
            c.n = int(diffs.size)
            if c.n == 0:
                c.reason = "no paired test case"
                batch.append(c)
                continue
            c.diff, c.lo, c.hi = stats.paired_bootstrap_ci(diffs)
            c.p = stats.wilcoxon_p(diffs)
            c.n_nonzero, ties = stats.wilcoxon_n(diffs)
            floors.append(stats.min_wilcoxon_p(c.n_nonzero, ties))
            c.bca_lo, c.bca_hi, c.ci_method = stats.bca_ci(diffs)
            batch.append(c)
        adjusted = stats.holm([c.p for c in batch])
        least = iter(stats.min_holm_p(floors))
        raw = iter(floors)
        for c, p_holm in zip(batch, adjusted, strict=True):
            if c.reason:
                continue
            c.p_holm = p_holm
            c.verdict = stats.verdict(c.diff, p_holm, info.higher_is_better)
            c.min_p = next(least)
            c.note = stats.no_verdict_note(c.n_nonzero, c.n, c.min_p, next(raw), len(floors))
        out += batch
    return out


STATS_LIMITS_PROSE = (
    "What the numbers can say: a verdict cell states when no data at its n could give "
    "a verdict — the smallest attainable Wilcoxon p (2/2^n for n non-zero differences "
    "without ties, e.g. 0.25 at n = 3; lower bounds for tied data), raised by Holm's "
    "adjustment to at least m times the family's smallest, is not below 0.05. A CI from "
    f"fewer than {stats.INDICATIVE_N} cases is marked *indicative*: the resampled means "
    "take few values (at n = 3 the percentile interval is the smallest and largest "
    "difference) and cover the true mean less often than 95 %. The BCa column corrects "
    "the percentile interval for bias and skewness (same resamples, jackknife "
    "acceleration); where BCa is undefined (fewer than 3 cases, all differences equal) "
    "it gives the percentile interval and says so. The verdict and the bold rest on the "
    "Holm p alone, never on a CI.\n"
)
"""Explanation under the statistics heading: what the notes, marks and BCa column mean."""


def _stats_row(c: Comparison, digits: int, dist: bool) -> str:
    """One statistics table row (see :func:`stats_section`), ``digits`` + 1 decimals."""
    tail = f" {c.undefined[0]}, {c.undefined[1]} |" if dist else ""
    if c.reason:
        cells = f"| {c.method} | – | – | – | – | not computed: {c.reason} | {c.n} |"
        return cells + (" – |" if dist else "")
    d = digits + 1
    text = f"{c.diff:+.{d}f} [{c.lo:+.{d}f}, {c.hi:+.{d}f}]"
    if c.evidence:
        text = f"**{text}**"
    verdict = c.verdict
    if c.indicative:
        text += " (indicative)"
    bca = f"[{c.bca_lo:+.{d}f}, {c.bca_hi:+.{d}f}]"
    bca += " BCa" if c.ci_method == stats.BCA else " percentile (BCa undefined)"
    if c.indicative:
        bca += " (indicative)"
    text += f" | {bca}"
    if c.note:
        verdict += f" ({c.note})"
    return f"| {c.method} | {text} | {fmt_p(c.p)} | {fmt_p(c.p_holm)} | {verdict} | {c.n} |" + tail


def stats_section(comparisons: Sequence[Comparison], reference: str, n_methods: int) -> str:
    """Markdown: one table per metric (method | difference [CI] | BCa CI | p | Holm p |
    verdict | n).

    What the numbers can say is part of every table, not an option: CIs from fewer than
    :data:`segline.stats.INDICATIVE_N` cases are marked indicative, the BCa CI stands
    beside the percentile one, the verdict cell states when no data at its n could reach
    p < 0.05, and :data:`STATS_LIMITS_PROSE` explains these.
    """
    parts = [f"## Statistics: each method against {reference} (paired over test cases)\n"]
    if n_methods < 2:
        return parts[0] + "\nOne method: nothing to compare.\n"
    parts.append(
        f"Difference = method − {reference}, per test case the mean over foreground "
        "classes (and over seeds); 95 % bootstrap CI; Wilcoxon signed-rank p (two-sided); "
        "Holm-adjusted across the methods compared (per metric). Bold: evidence "
        "(Holm p < 0.05). Distances: an undefined case counts as its field-of-view "
        "diagonal; 'undefined (method, reference)' gives how many cases that concerns.\n"
    )
    parts.append(STATS_LIMITS_PROSE)
    for metric in dict.fromkeys(c.metric for c in comparisons):
        rows = [c for c in comparisons if c.metric == metric]
        info = METRIC_INFO[metric]
        title = metric_label(metric)
        dist = is_distance(metric)
        lines = [
            f"### {title}: {'higher' if info.higher_is_better else 'lower'} is better\n",
            f"| method | Δ {metric_title(metric)} (95 % CI) | BCa 95 % CI |"
            + " Wilcoxon p | Holm p | verdict | n |"
            + (" undefined (method, reference) |" if dist else ""),
            "|---|---|---|---|---|---|---|" + ("---|" if dist else ""),
        ]
        lines += [_stats_row(c, info.digits, dist) for c in rows]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


# ------------------------------------------------------------------ per-case section
def per_case_section(cases: Sequence[GroupCases], metrics: Sequence[str]) -> str:
    """Markdown: test case × (method, Dice / HD95), class mean, seeds averaged."""
    shown = [m for m in CASE_METRICS if m in metrics]
    ids = list(dict.fromkeys(c for gc in cases for c in gc.cases))
    header = ["case"] + [f"{gc.group.name} {metric_title(m)}" for gc in cases for m in shown]
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


def cases_csv_text(
    dataset: str,
    cases: Sequence[GroupCases],
    metrics: Sequence[str],
    diagonals: pd.Series | None,
) -> str:
    """Every per-case value, long format: method, seed (k, ``pooled`` or empty), case,
    class, metric, value, and ``value_for_statistics`` (undefined distances as the FOV
    diagonal; empty for distances without a case store)."""
    records = []
    folded = any(gc.folded for gc in cases)
    for gc in cases:
        kinds: list[tuple[str, str, int | None]] = []
        if gc.several:
            kinds = [("" if r.seed is None else str(r.seed),
                      "" if r.fold is None else str(r.fold), i)
                     for i, r in enumerate(gc.group.runs)]
            kinds.append(("pooled", "pooled" if gc.folded else "", None))
        else:
            kinds = [("", "", 0)]
        for seed, fold, run in kinds:
            for cls in gc.class_names:
                for m in metrics:
                    raw = gc.values(m, cls, run)
                    if is_distance(m):
                        filled = (
                            gc.values(m, cls, run, fill=diagonals)
                            if diagonals is not None
                            else pd.Series(math.nan, index=raw.index)
                        )
                    else:
                        filled = raw
                    for case in raw.index:
                        records.append(
                            {
                                "dataset": dataset,
                                "method": gc.group.name,
                                "seed": seed,
                                **({"fold": fold} if folded else {}),
                                "case": case,
                                "class": cls,
                                "metric": m,
                                "value": raw[case],
                                "value_for_statistics": filled[case],
                            }
                        )
    buf = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


# ------------------------------------------------------------------ page and CSV
def _counts(values: dict[str, int], what: str) -> str:
    """``3 validation cases`` or, when methods differ, the count per method."""
    distinct = sorted(set(values.values()))
    if len(distinct) == 1:
        return f"{distinct[0]} {what}"
    return f"{what} (per method: " + ", ".join(f"{k}: {v}" for k, v in values.items()) + ")"


def selection_notes(runs: Sequence[MethodResults], rows: Sequence[Row]) -> list[str]:
    """What was selected on what, and any training whose best epoch is not the val-Dice maximum."""
    n_val = {r.label: r.n_val for r in rows}
    n_test = {r.label: r.test["dice"].n for r in rows}
    # instance tasks (segline.vertebrae.train) select on the identification rate first
    by_id = bool(runs) and all("val_id_rate" in m.epochs.columns for m in runs)
    rule = (
        "the validation identification rate, ties broken by the validation Dice,"
        if by_id
        else "mean validation Dice"
    )
    notes = [
        f"Best epoch selected on {rule} over {_counts(n_val, 'validation cases')}; "
        f"all test numbers below on the {_counts(n_test, 'held-out test cases')} "
        "(never used for selection)."
    ]
    for m in runs:
        if "val_dice" not in m.epochs.columns:
            continue
        val = m.epoch_column("val_dice")
        if by_id:  # the trainer's score: id rate first, then Dice (exact below 1e6 vertebrae)
            val = m.epoch_column("val_id_rate").fillna(-1.0) * 1e6 + val.fillna(0.0)
        if not np.isfinite(val.to_numpy()).any() or m.best_epoch not in val.index:
            notes.append(
                f"Note: {m.label}: best epoch {m.best_epoch} has no validation Dice in epochs.csv."
            )
            continue
        if not math.isclose(
            float(val[m.best_epoch]), float(np.nanmax(val.to_numpy())), abs_tol=1e-9
        ):
            top = int(val.index[int(np.nanargmax(val.to_numpy()))])
            notes.append(
                f"Note: {m.label}: best_epoch.txt says {m.best_epoch}, but the highest "
                f"validation {'identification rate (then Dice)' if by_id else 'Dice'} in "
                f"epochs.csv is at epoch {top}."
            )
    return notes


def plots_section(plots: Sequence[str]) -> str:
    """Markdown image links to the plots, relative to the page (same folder)."""
    if not plots:
        return ""
    links = [f"![{Path(name).stem}]({name})" for name in plots]
    return "## Plots\n\n" + "\n\n".join(links) + "\n"


def _methods_line(groups: Sequence[MethodGroup]) -> str:
    def one(g: MethodGroup) -> str:
        folds = sorted({r.fold for r in g.runs if r.fold is not None})
        seeds = sorted({r.seed for r in g.runs if r.seed is not None})
        parts = ([f"folds {', '.join(str(f) for f in folds)}, pooled out of fold"]
                 if folds else []) + ([f"seeds {', '.join(str(s) for s in seeds)}"]
                                      if seeds else [])
        return f"{g.name} ({'; '.join(parts)})" if parts else g.name

    return f"Methods ({len(groups)}): " + ", ".join(one(g) for g in groups) + ".\n"


def csv_text(
    dataset: str,
    rows: Sequence[Row],
    comparisons: Sequence[Comparison],
    runs: Sequence[MethodResults],
    reference: str | None = None,
    stat_reference: str | None = None,
) -> str:
    """One CSV row per results row (full precision), statistics on the class-mean rows
    of the compared methods (``stat_<metric>_*``), wall time per training.

    Besides difference, CI, p, Holm p, verdict and n, per metric
    ``stat_<metric>_ci_indicative`` (n < 10),
    ``_bca_lo``, ``_bca_hi``, ``_bca_method`` (BCa or percentile where BCa is
    undefined), ``_n_nonzero``, ``_min_p`` (smallest attainable Holm p) and
    ``_verdict_note`` (why no verdict is possible; the verdict column stays plain)."""
    seconds = {r.label: wall_seconds(r) for r in runs}
    stat_of = {(c.method, c.metric): c for c in comparisons}
    stat_cls = {}
    for r in rows:
        stat_cls[r.method] = r.cls  # the last class row is the mean (or the only class)
    records = []
    folded = any(r.fold is not None for r in rows)
    for r in rows:
        single = len(r.best_epochs) == 1
        rec: dict[str, object] = {
            "dataset": dataset,
            "method": r.method,
            "seed": "" if r.seed is None else r.seed,
            **({"fold": "" if r.fold is None else r.fold} if folded else {}),
            "pooled_seeds": len(r.best_epochs) if r.pooled else "",
            "class": r.cls,
            "best_epoch": r.best_epochs[0] if single else _epochs_text(r.best_epochs),
            "epochs_trained": r.epochs_trained[0] if single else _epochs_text(r.epochs_trained),
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
        rec["train_seconds"] = (
            seconds.get(r.label, math.nan)
            if not r.pooled
            else sum(v for k, v in seconds.items() if k.startswith(f"{r.method}/"))
        )
        if stat_reference is not None:
            rec["stat_reference"] = stat_reference
            on = r.summary and r.cls == stat_cls[r.method] and r.method != stat_reference
            for m in r.test:
                c = stat_of.get((r.method, m)) if on else None
                rec |= {
                    f"stat_{m}_diff": c.diff if c else math.nan,
                    f"stat_{m}_ci_lo": c.lo if c else math.nan,
                    f"stat_{m}_ci_hi": c.hi if c else math.nan,
                    f"stat_{m}_p": c.p if c else math.nan,
                    f"stat_{m}_p_holm": c.p_holm if c else math.nan,
                    f"stat_{m}_verdict": c.verdict if c else "",
                    f"stat_{m}_n": c.n if c else "",
                }
                rec |= {
                    f"stat_{m}_ci_indicative": c.indicative if c else "",
                    f"stat_{m}_bca_lo": c.bca_lo if c else math.nan,
                    f"stat_{m}_bca_hi": c.bca_hi if c else math.nan,
                    f"stat_{m}_bca_method": c.ci_method if c else "",
                    f"stat_{m}_n_nonzero": c.n_nonzero if c and not c.reason else "",
                    f"stat_{m}_min_p": c.min_p if c else math.nan,
                    f"stat_{m}_verdict_note": c.note if c else "",
                }
                if is_distance(m):
                    rec[f"stat_{m}_undefined_method"] = c.undefined[0] if c else ""
                    rec[f"stat_{m}_undefined_reference"] = c.undefined[1] if c else ""
        records.append(rec)
    buf = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


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
    """The report of ``runs`` (trainings as from :func:`segline.plots.load_methods`).

    Args:
        metrics: test metrics to report, with ``dice`` (see :func:`parse_metrics`).
        reference: a method name; adds each method as a fraction of it.
        stat_reference: the method the others are tested against (default: the first
            method in name order).
        cases_dir: the case store, for the FOV diagonals of undefined distances.
        plots: plot file names beside the page, linked in order.

    Raises:
        InputError: a reference is not among the methods; a metric is missing.
    """
    groups = group_methods(runs)
    names = [g.name for g in groups]
    for option, name in (("--reference", reference), ("--stat-reference", stat_reference)):
        if name is not None and name not in names:
            raise InputError(
                option, f"{name!r} is not one of the methods reported ({', '.join(names)})"
            )
    stat_ref = stat_reference if stat_reference is not None else names[0]
    cases = [group_cases(g, metrics) for g in groups]
    rows = [row for gc in cases for row in group_rows(gc, metrics)]
    mark_best(rows)
    if reference is not None:
        set_fractions(rows, reference)
    test_ids = list(dict.fromkeys(c for gc in cases for c in gc.cases))
    on_source = any(r.eval_path is not None for r in runs)
    diagonals = fov_diagonals(cases_dir, test_ids, on_source) if cases_dir is not None else None
    comparisons = compare(cases, stat_ref, metrics, diagonals)

    notes = selection_notes(runs, rows)
    if reference:
        titles = ", ".join(metric_title(m) for m in _fraction_metrics(rows))
        notes.append(
            f"Columns '… / {reference}': each method's mean test value as a percentage of "
            f"{reference}'s mean in the same class ({reference} = 100 %), for the "
            f"higher-is-better metrics ({titles}): how much of the reference's score the "
            "method reaches."
        )
    table = markdown_table(rows, reference)
    parts = [
        f"# Results: {dataset}\n",
        _methods_line(groups),
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
        stats_section(comparisons, stat_ref, len(groups)),
        per_case_section(cases, metrics),
        config_section(groups),
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
    metrics = parse_metrics(args.metrics)
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
    by_id = all("val_id_rate" in r.epochs.columns for r in runs)
    rule = "validation identification rate, then Dice" if by_id else "validation Dice"
    print(f"{dataset}: best epoch on {rule}; test mean ± sd (full report: {args.out})")
    print(report.table, end="")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
