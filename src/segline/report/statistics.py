"""The report's statistics: every method against a reference, paired over the test
cases (:func:`compare`, with :mod:`segline.stats`), and their markdown section
(:func:`stats_section`); the field-of-view diagonal an undefined distance counts as.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from segline import stats
from segline.casestore import CaseStore
from segline.errors import InputError
from segline.report.model import GroupCases
from segline.report.tables import fmt_p
from segline.report.text import STATS_LIMITS_PROSE
from segline.results import METRIC_INFO, is_distance, metric_label, metric_title


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


def stats_section(
    comparisons: Sequence[Comparison],
    reference: str | None,
    n_methods: int,
    left_out: Sequence[str] = (),
) -> str:
    """Markdown: one table per metric (method | difference [CI] | BCa CI | p | Holm p |
    verdict | n).

    ``n_methods`` counts the methods compared (the reference included); ``left_out``
    names the oracle methods (:attr:`segline.results.MethodGroup.oracle`), which used the
    test labels and are neither compared nor a reference: one line says so.
    ``reference`` is None when every method is one.

    What the numbers can say is part of every table, not an option: CIs from fewer than
    :data:`segline.stats.INDICATIVE_N` cases are marked indicative, the BCa CI stands
    beside the percentile one, the verdict cell states when no data at its n could reach
    p < 0.05, and :data:`STATS_LIMITS_PROSE` explains these.
    """
    parts = [f"## Statistics: each method against {reference} (paired over test cases)\n"
             if reference is not None else "## Statistics\n"]
    if left_out:
        parts.append(
            f"Left out: {', '.join(left_out)} (oracle: its test predictions used the test "
            "cases' labels, so a comparison with it would say nothing about the methods).\n"
        )
    if n_methods < 2:
        what = "One method" if n_methods == 1 else "No method left"
        return "\n".join(parts) + f"\n{what}: nothing to compare.\n"
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
