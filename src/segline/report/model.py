"""The report's data model: each method's per-case test tables and its results rows.

A method's trainings (one, one per seed, one per fold) are read into a
:class:`GroupCases` (per training, {metric: case × class table}); its per-case values
pool the trainings (per case the mean over seeds; with folds, out of fold). The
results tables are lists of :class:`Row` (:func:`group_rows`): one per training and
class, then the method's own row per class, with mean ± sd over the test cases
(:class:`segline.results.Stat`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from segline.casestore import sorted_cases
from segline.errors import InputError
from segline.metrics import registry as metric_registry
from segline.results import (
    METRIC_INFO,
    MethodGroup,
    MethodResults,
    Stat,
    case_table,
    class_mean,
    is_distance,
    require_metric,
)
from segline.seeds import sub_label

MEAN_CLASS = "mean"
"""The row class whose per-case value is the strict mean over the foreground classes."""
TEST_METRICS = ("dice", "hd95", "assd")
"""The test metrics reported by default (``--metrics``)."""
# column -> (higher is better, digits shown); the metrics' own table is METRIC_INFO
RANKED: Mapping[str, tuple[bool, int]] = metric_registry.View(
    lambda m: (m.higher_is_better, m.digits), first={"val_dice": (True, 3)}
)


def _per_case(wide: pd.DataFrame, cls: str) -> pd.Series:
    """Per-case values of one class column, or the strict class mean for ``mean``."""
    return class_mean(wide) if cls == MEAN_CLASS else wide[cls]


def run_tables(
    run: MethodResults, metrics: Sequence[str], grid: bool = False
) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """(foreground classes, {metric: case × class test table}) of one training.

    Every metric's table has Dice's cases and classes: a missing row is undefined.
    The test rows are the training's :attr:`~segline.results.MethodResults.test` (the
    evaluation stage's source geometry when given), or with ``grid`` the training
    grid's (:attr:`~segline.results.MethodResults.grid_test`).

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
        oracle: the method used the test labels (:attr:`MethodGroup.oracle`): the
            tables mark its name and it never competes for ``best``.
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
    oracle: bool = False

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
                        oracle=gc.group.oracle,
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
                oracle=gc.group.oracle,
            )
        )
    # seeds' rows first, class by class, then the pooled rows: group per kind
    return [r for r in rows if not r.summary] + [r for r in rows if r.summary]


def _value(row: Row, column: str) -> float:
    return row.val_dice if column == "val_dice" else row.test[column].mean


def mark_best(rows: Sequence[Row]) -> None:
    """Add to ``row.best`` every column in which a method's row is best in its class.

    Only the methods' own rows compete (not single seeds, not an oracle's: it used the
    test labels). On a distance metric a row with undefined cases never competes (an
    undefined case counts as the worst).
    """
    summary = [r for r in rows if r.summary and not r.oracle]
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


def fraction_metrics(rows: Sequence[Row]) -> list[str]:
    """The metrics with a ``--reference`` fraction on some row (:func:`set_fractions`)."""
    return list(dict.fromkeys(m for r in rows for m in r.fraction))
