"""The results model: reading training and evaluation folders, the long metric tables,
per-case summaries and what each metric means.

The last pipeline stages (``plots``, ``report``, ``pack``) all read the same
per-method folders ``results/<ds>/<method>/`` (layout: ``docs/CONTRACTS.md``). This
module is the one place that reads them, so every stage agrees on:

* **foreground classes**: every class in the long ``metrics.csv`` except one named
  like background (:data:`BACKGROUND_NAMES`), in the order they first appear;
* **per-case value over several classes**: the mean over the foreground classes,
  *undefined (NaN) when any class is undefined* (so a case with an undefined HD95 in
  one class is counted as undefined, never silently averaged away);
* **mean ± sd over cases**: over the cases with a defined value, sample sd (n − 1),
  with the number of undefined cases carried along (:class:`Stat`);
* **how a metric reads**: its name in titles, unit and whether higher is better, in
  one table (:data:`METRIC_INFO`, from :mod:`segline.metrics.registry`); any other
  metric name in ``metrics.csv`` can still be plotted, labelled by its own name
  (:func:`metric_label`).

The figures (:mod:`segline.plots`) and the report (:mod:`segline.report`) read
through it; it imports no plotting library.

Example:
    >>> import pandas as pd
    >>> long = pd.DataFrame({"epoch": [1, 1, 1, 1], "split": "val",
    ...     "case": ["c1", "c1", "c2", "c2"], "class": ["background", "liver"] * 2,
    ...     "metric": "dice", "value": [0.99, 0.5, 0.98, 0.7]})
    >>> epoch_series(long, "dice")[["epoch", "mean", "n_cases"]].to_dict("records")
    [{'epoch': 1, 'mean': 0.6, 'n_cases': 2}]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from segline.casestore import case_sort_key
from segline.errors import InputError
from segline.metrics import registry as metric_registry
from segline.seeds import split_training_folder, sub_label

BACKGROUND_NAMES = frozenset({"background", "bg", "0"})
LONG_COLUMNS = ("epoch", "split", "case", "class", "metric", "value")
LONG_KEY = ["epoch", "split", "case", "class", "metric"]
GRID_SOURCE = "source geometry"
"""Test numbers of the evaluation stage: each case's source geometry (files a user gets)."""
GRID_TRAINING = "training grid"
"""Test numbers of the training: the case store's (possibly resampled, cropped) grid."""
_NA_STRINGS = ["", "nan", "NaN", "NAN", "NA", "null", "None"]


@dataclass(frozen=True)
class MetricInfo:
    """How one per-case metric of the long ``metrics.csv`` reads.

    Attributes:
        title: its name in titles and column headers.
        higher_is_better: True for overlap scores, False for distances.
        unit: "mm" for distances, "" for scores.
        digits: decimals shown in the report.
    """

    title: str
    higher_is_better: bool
    unit: str = ""
    digits: int = 3


METRIC_INFO: Mapping[str, MetricInfo] = metric_registry.View(
    lambda m: MetricInfo(m.title, m.higher_is_better, m.unit, m.digits)
)
"""The metrics whose direction and unit are known (distances in mm, voxel spacing): the
registry's records (:mod:`segline.metrics.registry`)."""


def metric_title(metric: str) -> str:
    """The metric's name in titles (its own name when not in :data:`METRIC_INFO`)."""
    info = METRIC_INFO.get(metric)
    return info.title if info else metric


def metric_label(metric: str, where: str = "") -> str:
    """Axis label / column title: name, then unit and ``where`` in parentheses.

    Example:
        >>> metric_label("hd95"), metric_label("dice", "validation")
        ('HD95 (mm)', 'Dice (validation)')
        >>> metric_label("assd", "validation"), metric_label("betti_0")
        ('ASSD (mm, validation)', 'betti_0')
    """
    info = METRIC_INFO.get(metric)
    extra = ", ".join(x for x in (info.unit if info else "", where) if x)
    return f"{metric_title(metric)} ({extra})" if extra else metric_title(metric)


def is_distance(metric: str) -> bool:
    """A distance metric (mm, lower is better): undefined when one mask is empty."""
    info = METRIC_INFO[metric]
    return info.unit == "mm" and not info.higher_is_better


def metrics_present(long: pd.DataFrame) -> list[str]:
    """Metric names in long-format rows, in order of first appearance."""
    return [str(m) for m in pd.unique(long["metric"])]


def require_metric(long: pd.DataFrame, metric: str, path: Path, what: str) -> None:
    """Refuse (one line) when ``metric`` has no foreground-class row in ``long``.

    Args:
        long: long-format rows of one split.
        metric: the metric asked for.
        path: the file the rows come from (for the message).
        what: the split in words, e.g. "validation" or "test".

    Raises:
        InputError: e.g. ``no test 'cldice' rows for a foreground class (metrics
            present: dice, hd95)``.
    """
    sub = long[long["metric"] == metric]
    if sub.empty or not foreground_classes(sub):
        present = ", ".join(metrics_present(long)) or "none"
        raise InputError(
            path, f"no {what} {metric!r} rows for a foreground class (metrics present: {present})"
        )


def _one_line(err: BaseException) -> str:
    """First line of an exception message (InputError problems are one line)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a CSV that must exist, have ``columns`` and at least one row.

    Every cell is read verbatim as text (a case id ``007`` or ``NA`` stays what it is);
    numeric columns are converted explicitly with :func:`numeric_column`.

    Args:
        path: the file.
        columns: required columns (others are kept).

    Returns:
        The table, all columns as strings.

    Raises:
        InputError: missing, empty, unreadable, or a required column is absent.
    """
    if not path.is_file():
        raise InputError(path, "missing; run the stage that writes it first")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise InputError(path, "empty file (no header, no rows)") from err
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise InputError(path, f"not a readable CSV ({_one_line(err)})") from err
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}")
    if df.empty:
        raise InputError(path, "no rows (header only)")
    return df


def numeric_column(
    df: pd.DataFrame, column: str, path: Path, *, integer: bool = False
) -> pd.Series:
    """A text column as numbers: ``nan``, ``NA``, empty... → NaN; other text is an error.

    Args:
        df: table from :func:`read_csv`.
        column: the column.
        path: the file (for the error message).
        integer: whole numbers required (no NaN), returned as int64.
    """
    text = df[column].astype(str).str.strip()
    text = text.mask(text.isin(_NA_STRINGS))
    try:
        values = pd.to_numeric(text, errors="raise").astype(np.float64)
    except (ValueError, TypeError) as err:
        raise InputError(path, f"column {column!r} is not numeric ({_one_line(err)})") from err
    if integer:
        if values.isna().any() or not np.all(np.mod(values.to_numpy(), 1) == 0):
            raise InputError(path, f"column {column!r} must hold whole numbers")
        return values.astype(np.int64)
    return values


def read_long(path: Path) -> pd.DataFrame:
    """Read a long-format metrics table (``epoch,split,case,class,metric,value``).

    Duplicate (epoch, split, case, class, metric) rows are refused: the trainer writes
    each key once (docs/CONTRACTS.md), so a duplicate means some writer overwrote or
    repeated rows (a row counter that never advanced, a retried worker), and averaging
    the copies would hide that bug behind plausible numbers.
    """
    df = read_csv(path, LONG_COLUMNS)
    df = df.loc[:, list(LONG_COLUMNS)].copy()
    df["epoch"] = numeric_column(df, "epoch", path, integer=True)
    df["value"] = numeric_column(df, "value", path)
    dup = df.duplicated(LONG_KEY)
    if dup.any():
        row = df[dup].iloc[0]
        raise InputError(
            path,
            f"{int(dup.sum())} duplicate row(s), e.g. epoch {row['epoch']} {row['split']} "
            f"case {row['case']} class {row['class']} {row['metric']}",
        )
    return df


INSTANCE_METRIC = "id_rate"
"""A test metric only instance tasks write (:mod:`segline.metrics.instances`)."""


def instance_classes(long: pd.DataFrame) -> list[str] | None:
    """Instance tasks (vertebrae): the class of the ``id_rate`` rows, the per-case
    ``spine`` row, which stands for the case (its per-vertebra classes are absent from
    most cases); None for other tasks."""
    sub = long[long["metric"] == INSTANCE_METRIC]
    return [str(c) for c in pd.unique(sub["class"])] if not sub.empty else None


def foreground_classes(long: pd.DataFrame) -> list[str]:
    """Class names other than background, in order of first appearance."""
    names = pd.unique(long["class"])
    return [str(c) for c in names if str(c).strip().lower() not in BACKGROUND_NAMES]


def case_table(
    long: pd.DataFrame, metric: str, classes: Sequence[str] | None = None
) -> pd.DataFrame:
    """One metric as a wide table: rows (epoch, case), one column per foreground class.

    Rows are sorted by epoch, then case in canonical (natural) order; a class missing
    for a case is NaN. ``long`` must already be restricted to one split.

    Args:
        long: long-format rows (one split).
        metric: e.g. ``"dice"``, ``"hd95"``, ``"cldice"``, ``"mip_dice"``.
        classes: the columns to keep (default: :func:`foreground_classes` of ``long``).

    Returns:
        Wide table with a (epoch, case) MultiIndex; empty when the metric is absent.
    """
    sub = long[long["metric"] == metric]
    if classes is None:
        classes = foreground_classes(sub)
    sub = sub[sub["class"].isin(list(classes))]
    if sub.empty:
        index = pd.MultiIndex.from_arrays([[], []], names=["epoch", "case"])
        return pd.DataFrame(index=index, columns=list(classes), dtype=np.float64)
    wide = sub.pivot(index=["epoch", "case"], columns="class", values="value")
    order = sorted(wide.index, key=lambda key: (key[0], case_sort_key(str(key[1]))))
    wide = wide.reindex(index=pd.MultiIndex.from_tuples(order, names=["epoch", "case"]))
    return wide.reindex(columns=list(classes)).astype(np.float64)


def class_mean(wide: pd.DataFrame) -> pd.Series:
    """Per-row mean over the class columns; NaN when any class is NaN (strict)."""
    return wide.mean(axis=1, skipna=False)


@dataclass(frozen=True)
class Stat:
    """Mean ± sd over cases, with the count of cases whose value is undefined.

    Attributes:
        mean: mean over defined values (NaN when none is defined).
        sd: sample standard deviation (n − 1) over defined values (NaN when < 2).
        n: number of cases, defined or not.
        n_undefined: number of NaN values (never dropped silently: reported).
    """

    mean: float
    sd: float
    n: int
    n_undefined: int

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray | pd.Series) -> Stat:
        """Summarise per-case values (NaN = undefined).

        Example:
            >>> Stat.of([1.0, 3.0, float("nan")])
            Stat(mean=2.0, sd=1.4142135623730951, n=3, n_undefined=1)
        """
        arr = np.asarray(values, dtype=np.float64)
        defined = arr[~np.isnan(arr)]
        mean = float(defined.mean()) if defined.size else math.nan
        sd = float(defined.std(ddof=1)) if defined.size > 1 else math.nan
        return cls(mean=mean, sd=sd, n=int(arr.size), n_undefined=int(arr.size - defined.size))


def epoch_series(long: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-epoch mean and sd over cases of the per-case foreground-class mean.

    For each (epoch, case): mean of ``metric`` over foreground classes (NaN when any
    class is NaN; an instance task's per-case class alone, :func:`instance_classes`);
    then per epoch: :class:`Stat` over the cases.

    Args:
        long: long-format rows of one split (e.g. ``split == "val"``).
        metric: any metric name of the rows, e.g. ``"dice"``, ``"hd95"``, ``"cldice"``.

    Returns:
        Columns ``epoch, mean, sd, n_cases, n_undefined``, one row per epoch, sorted.
    """
    # an instance task: the per-case class (spine) stands for the case, as in test_table
    per_case = class_mean(case_table(long, metric, instance_classes(long)))
    rows = []
    for epoch, values in per_case.groupby(level="epoch", sort=True):
        s = Stat.of(values.to_numpy())
        rows.append(
            {
                "epoch": int(epoch),
                "mean": s.mean,
                "sd": s.sd,
                "n_cases": s.n,
                "n_undefined": s.n_undefined,
            }
        )
    return pd.DataFrame(rows, columns=["epoch", "mean", "sd", "n_cases", "n_undefined"])


def _epochs_from_one(path: Path, epochs: pd.Series) -> None:
    """Refuse epoch numbers below 1: epochs are counted from 1 (a 0 comes from a result
    written when they were counted from 0, which would shift every axis by one)."""
    if len(epochs) and int(epochs.min()) < 1:
        raise InputError(
            path,
            f"epoch {int(epochs.min())}: epochs are counted from 1 "
            "(results of an older segline? train this method again)",
        )


class MethodResults:
    """Lazy read access to one training's folder: ``results/<ds>/<method>/``, or with
    ``SEEDS`` one seed's ``results/<ds>/<run>/<method>/seed<k>/``.

    Each file is read (and checked) on first use, so a tool only needs the files it
    uses. The method name is the folder name, or for a ``seed<k>`` folder its parent's
    name (``seed`` is then ``k``, else None). The dataset name (figure titles) is the
    case store's dataset, ``<ds>`` of ``data/<ds>/cases`` in ``args.json``, followed by
    the run when the method's folder lies in one (``spleen-toy/seeds``); without an
    ``args.json``, the name of the folder holding the method's folder.

    Args:
        path: the training's folder.

    Raises:
        InputError: the folder does not exist (or, on access, a file is bad).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "toy" / "gdl" / "seed2").mkdir(parents=True)
        >>> r = MethodResults(root / "toy" / "gdl" / "seed2")
        >>> r.name, r.seed, r.dataset, r.label
        ('gdl', 2, 'toy', 'gdl/seed2')
        >>> run = root / "toy" / "seeds" / "gdl" / "seed0"
        >>> run.mkdir(parents=True)
        >>> _ = (run / "args.json").write_text('{"cases": "data/toy/cases"}')
        >>> MethodResults(run).dataset
        'toy/seeds'
    """

    def __init__(
        self, path: str | os.PathLike[str], eval_path: str | os.PathLike[str] | None = None
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(self.path, "method results folder not found; train this method first")
        #: the evaluation stage's folder (``results/<ds>/eval/<method>``): when given,
        #: :attr:`test` holds its source-geometry metrics, else the training grid's.
        self.eval_path = None if eval_path is None else Path(eval_path)
        folder, self.fold, self.seed = split_training_folder(os.path.abspath(self.path))
        method = Path(folder)
        self.name = method.name
        self._holder = method.parent.name

    @cached_property
    def dataset(self) -> str:
        """The dataset (and run) the training belongs to, for figure titles."""
        try:
            args = json.loads((self.path / "args.json").read_text())
            ds = Path(str(args["cases"])).parent.name
        except (OSError, ValueError, KeyError, TypeError):
            return self._holder
        if not ds or ds == self._holder:
            return ds or self._holder
        return f"{ds}/{self._holder}"

    @cached_property
    def oracle(self) -> bool:
        """The training's test predictions used the test cases' labels: ``args.json``
        ``"oracle": true`` (an oracle variant, e.g. one told where the organ lies). Its
        numbers are not a fair comparison: the report marks its rows and leaves it out
        of the statistics. False without the key, or without a readable ``args.json``.
        """
        try:
            args = json.loads((self.path / "args.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(args, dict) and args.get("oracle") is True

    @property
    def label(self) -> str:
        """``method``, ``method/seed<k>``, ``method/fold<i>[/seed<k>]``: the training's
        name in tables and legends."""
        sub = sub_label(self.fold, self.seed)
        return f"{self.name}/{sub}" if sub else self.name

    def __repr__(self) -> str:
        return f"MethodResults({str(self.path)!r})"

    @cached_property
    def epochs(self) -> pd.DataFrame:
        """``epochs.csv``: one row per epoch, sorted by epoch."""
        path = self.path / "epochs.csv"
        df = read_csv(path, ("epoch",))
        df["epoch"] = numeric_column(df, "epoch", path, integer=True)
        if df["epoch"].duplicated().any():
            raise InputError(path, "an epoch appears twice")
        _epochs_from_one(path, df["epoch"])
        return df.sort_values("epoch", kind="stable").reset_index(drop=True)

    def epoch_column(self, column: str) -> pd.Series:
        """One numeric column of ``epochs.csv`` indexed by epoch."""
        path = self.path / "epochs.csv"
        if column not in self.epochs.columns:
            raise InputError(path, f"missing column {column}")
        return pd.Series(
            numeric_column(self.epochs, column, path).to_numpy(),
            index=self.epochs["epoch"].to_numpy(),
            name=column,
        )

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: long format, all splits and epochs."""
        path = self.path / "metrics.csv"
        df = read_long(path)
        _epochs_from_one(path, df["epoch"])
        return df

    @cached_property
    def val(self) -> pd.DataFrame:
        """Validation rows of ``metrics.csv`` (at least one)."""
        val = self.metrics[self.metrics["split"] == "val"]
        if val.empty:
            raise InputError(self.path / "metrics.csv", "no validation rows (split 'val')")
        return val

    @cached_property
    def best_epoch(self) -> int:
        """The integer in ``best_epoch.txt``."""
        path = self.path / "best_epoch.txt"
        if not path.is_file():
            raise InputError(path, "missing; training writes it")
        text = path.read_text().strip()
        try:
            best = int(text)
        except ValueError as err:
            raise InputError(path, f"not an integer: {text[:40]!r}") from err
        _epochs_from_one(path, pd.Series([best]))
        return best

    @property
    def test_path(self) -> Path:
        """The file :attr:`test` reads: the evaluation stage's ``metrics.csv`` (source
        geometry of each case) when :attr:`eval_path` is set, else the training's
        ``test/metrics.csv`` (the training grid)."""
        if self.eval_path is not None:
            return self.eval_path / "metrics.csv"
        return self.path / "test" / "metrics.csv"

    @property
    def test_grid(self) -> str:
        """Where :attr:`test`'s numbers were computed: ``source geometry`` or
        ``training grid``."""
        return GRID_SOURCE if self.eval_path is not None else GRID_TRAINING

    @cached_property
    def test(self) -> pd.DataFrame:
        """Test rows of :attr:`test_path`, checked to be at the best epoch."""
        return self._test_rows(self.test_path)

    @cached_property
    def grid_test(self) -> pd.DataFrame:
        """Test rows of the training's own ``test/metrics.csv`` (the training grid),
        whatever :attr:`eval_path` is."""
        return self._test_rows(self.path / "test" / "metrics.csv")

    def _test_rows(self, path: Path) -> pd.DataFrame:
        df = read_long(path)
        df = df[df["split"] == "test"]
        if df.empty:
            raise InputError(path, "no test rows (split 'test')")
        epochs = sorted(set(df["epoch"].tolist()))
        if epochs != [self.best_epoch]:
            raise InputError(
                path,
                f"test rows are for epoch(s) {epochs} but best_epoch.txt says {self.best_epoch}; "
                "re-run the test stage",
            )
        return df

    def test_table(
        self, metric: str, classes: Sequence[str] | None = None, *, grid: bool = False
    ) -> pd.DataFrame:
        """Test ``metric`` per case (rows, canonical order) × foreground class (columns);
        by default, for an instance task only its per-case class (:func:`instance_classes`).
        ``grid``: from the training grid's rows (:attr:`grid_test`) instead of :attr:`test`."""
        rows = self.grid_test if grid else self.test
        if classes is None:
            classes = instance_classes(rows)
        return case_table(rows, metric, classes).droplevel("epoch")


TRAINING_FOLDERS_HELP = (
    "results/<ds>/<method>, or with SEEDS its seed folders results/<ds>/<run>/<method>/seed<k>"
)


def add_training_folders(parser: argparse.ArgumentParser, note: str = "") -> None:
    """The positional ``METHOD_DIR ...`` every plot CLI and the report take: the
    training folders make passes (``$(METHOD_DIRS)``), read by :func:`load_methods`."""
    parser.add_argument(
        "methods",
        nargs="+",
        metavar="METHOD_DIR",
        help=TRAINING_FOLDERS_HELP + (f" ({note})" if note else ""),
    )


def add_eval_folders(parser: argparse.ArgumentParser) -> None:
    """``--eval DIR`` (repeated): the evaluation stage's folders
    (``results/<ds>/eval/<method>[/seed<k>]``, :mod:`segline.eval_stage`), one per
    training folder, matched by method and seed; their ``metrics.csv`` (source
    geometry) replaces the trainings' ``test/metrics.csv`` (training grid)."""
    parser.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="DIR",
        help="an evaluation folder results/<ds>/eval/<method>[/seed<k>] (repeat, one per "
        "training): test numbers in each case's source geometry; without: the "
        "training grid's test/metrics.csv",
    )


def _eval_folders(
    methods: Sequence[MethodResults], evals: Sequence[str | os.PathLike[str]]
) -> dict[tuple[str, int | None, int | None], Path]:
    """{(method, fold, seed): eval folder}, exactly one per training."""
    found: dict[tuple[str, int | None, int | None], Path] = {}
    for e in evals:
        folder, fold, seed = split_training_folder(os.path.abspath(e))
        key = (Path(folder).name, fold, seed)
        if key in found:
            raise InputError(e, f"evaluation folder given twice (also {found[key]})")
        found[key] = Path(e)
    wanted = {(m.name, m.fold, m.seed): m for m in methods}
    stray = [str(p) for k, p in found.items() if k not in wanted]
    if stray:
        raise InputError(stray[0], "--eval: an evaluation folder of no training given")
    missing = [m.path for k, m in wanted.items() if k not in found]
    if missing:
        raise InputError(missing[0], "--eval given, but not this training's evaluation folder")
    return found


def load_methods(
    paths: Sequence[str | os.PathLike[str]], evals: Sequence[str | os.PathLike[str]] = ()
) -> list[MethodResults]:
    """Open training folders, sorted by method name, then seed.

    Sorting makes every output independent of the order Make passes the folders. A
    method is given either as one folder (``<method>/``) or as seed folders
    (``<method>/seed<k>/``), never both; a (method, seed) given twice is refused.
    ``evals``: the evaluation folders (:func:`add_eval_folders`), none or one per
    training; their metrics become each training's :attr:`MethodResults.test`.
    """
    if not paths:
        raise InputError(".", "no method folders given")
    methods = [MethodResults(p) for p in paths]
    if evals:
        folders = _eval_folders(methods, evals)
        for m in methods:
            m.eval_path = folders[(m.name, m.fold, m.seed)]
    seen: dict[tuple[str, int | None, int | None], Path] = {}
    layout: dict[str, tuple[bool, bool]] = {}
    for m in methods:
        key = (m.name, m.fold, m.seed)
        if key in seen:
            raise InputError(m.path, f"training {m.label!r} given twice (also {seen[key]})")
        seen[key] = m.path
        kind = (m.fold is None, m.seed is None)
        if layout.setdefault(m.name, kind) != kind:
            raise InputError(
                m.path, f"method {m.name!r} given in two layouts (one folder, seed folders, "
                "fold folders): one method's trainings share one layout"
            )
    return sorted(methods, key=lambda m: (m.name, -1 if m.fold is None else m.fold,
                                          -1 if m.seed is None else m.seed))


@dataclass(frozen=True)
class MethodGroup:
    """One method's trainings: one per seed (``SEEDS``), or the single one.

    Attributes:
        name: the method's name.
        runs: its trainings, by seed.
    """

    name: str
    runs: tuple[MethodResults, ...]

    @property
    def seeds(self) -> list[int | None]:
        """The seeds of the runs (None for a training outside a ``seed<k>`` folder)."""
        return [r.seed for r in self.runs]

    @property
    def oracle(self) -> bool:
        """Some training of the method used the test labels (:attr:`MethodResults.oracle`)."""
        return any(r.oracle for r in self.runs)


def group_methods(runs: Sequence[MethodResults]) -> list[MethodGroup]:
    """Group trainings by method name (as sorted by :func:`load_methods`).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for sub in ("a/seed1", "a/seed0", "b"):
        ...     (root / sub).mkdir(parents=True)
        >>> groups = group_methods(load_methods([root / "a/seed1", root / "b", root / "a/seed0"]))
        >>> [(g.name, g.seeds) for g in groups]
        [('a', [0, 1]), ('b', [None])]
    """
    by_name: dict[str, list[MethodResults]] = {}
    for r in runs:
        by_name.setdefault(r.name, []).append(r)
    return [MethodGroup(name, tuple(rs)) for name, rs in by_name.items()]
