"""Paired comparison of two methods over the same test cases (the report's statistics).

A comparison is *paired*: both methods are evaluated on the same test cases, so the
question is whether the per-case differences ``method − reference`` are centred away
from zero. Three numbers answer it, each computed here and nowhere else:

* :func:`paired_bootstrap_ci`: the mean difference with a percentile bootstrap
  confidence interval (resampling cases with replacement; a fixed-seed
  :class:`numpy.random.Generator`, so the same differences give the same bytes);
* :func:`wilcoxon_p`: the two-sided Wilcoxon signed-rank p-value of the differences;
* :func:`holm`: Holm's step-down adjustment of the p-values of several methods
  compared with one reference (family-wise error rate), and :func:`verdict`, which
  turns an adjusted p-value and the sign of the mean into "better", "worse" or
  "no evidence".

Differences are in the metric's own unit (Dice: a fraction; HD95: mm). Whether a
positive difference is good depends on the metric (``higher_is_better``).

Example:
    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    >>> verdict(-2.5, 0.01, higher_is_better=False)
    'better'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

N_BOOT = 10_000
"""Bootstrap resamples of the cases."""
BOOT_SEED = 20_241_127
"""Seed of the bootstrap generator: fixed, so a report is reproducible to the byte."""
LEVEL = 0.95
"""Confidence level of the bootstrap interval."""
ALPHA = 0.05
"""Family-wise error rate of the Holm-adjusted tests (per metric)."""
MIN_N = 6
"""Below this many non-zero differences no two-sided Wilcoxon p-value can be under
0.05 (the smallest exact p is 2 / 2**n: 0.0625 for n = 5); p is still computed, and the
report gives n beside it so the reader sees why there is no evidence."""

EXACT_MAX_N = 50
"""Up to this many non-zero differences (without ties) the Wilcoxon p-value is exact."""

BETTER, WORSE, NO_EVIDENCE = "better", "worse", "no evidence"


def _as_diffs(diffs: Sequence[float] | np.ndarray) -> np.ndarray:
    """The differences as a 1-D float64 array; NaN is refused (decide undefined first)."""
    arr = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise ValueError("paired differences contain NaN; replace undefined values first")
    return arr


def paired_bootstrap_ci(
    diffs: Sequence[float] | np.ndarray,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = BOOT_SEED,
) -> tuple[float, float, float]:
    """Mean paired difference and its percentile bootstrap confidence interval.

    Cases are resampled with replacement ``n_boot`` times (each resample has as many
    cases as ``diffs``); the interval is the ``(1 − level)/2`` and ``(1 + level)/2``
    quantiles (numpy's default linear interpolation) of the resampled means.

    Args:
        diffs: per-case differences ``method − reference`` (no NaN).
        n_boot: number of resamples.
        level: confidence level, e.g. 0.95.
        seed: seed of :func:`numpy.random.default_rng`: same inputs, same bytes.

    Returns:
        ``(mean, lo, hi)``; all NaN when ``diffs`` is empty.

    Example:
        >>> paired_bootstrap_ci([0.0, 0.0, 0.0])
        (0.0, 0.0, 0.0)
    """
    arr = _as_diffs(diffs)
    if arr.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, 2_000_000 // arr.size)  # bounded memory for many cases
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, arr.size, size=(stop - start, arr.size))
        means[start:stop] = arr[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return (float(arr.mean()), float(lo), float(hi))


def wilcoxon_p(diffs: Sequence[float] | np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired differences.

    ``scipy.stats.wilcoxon`` with ``zero_method="wilcox"``: zero differences are
    dropped (a case where both methods agree carries no sign), so n is the number of
    non-zero differences. The null distribution is chosen here, not left to scipy's
    default (which changed between versions): ``method="exact"`` when n ≤
    :data:`EXACT_MAX_N` and the absolute differences have no ties (then p is exact),
    otherwise ``method="asymptotic"`` (normal approximation, adjusted for ties).
    Differences are rounded to 12 decimals first, so float noise (0.8 − 0.75 vs
    0.85 − 0.8) does not split a tie. All differences zero (or none) → 1.0: no
    evidence of any difference. With fewer than :data:`MIN_N` non-zero differences
    the exact p cannot fall below 0.05; it is returned anyway (the caller reports n).

    Example:
        >>> wilcoxon_p([1.0, 2.0, 3.0])  # all positive, n = 3: 2 / 2**3
        0.25
        >>> wilcoxon_p([0.0, 0.0])
        1.0
    """
    arr = np.round(_as_diffs(diffs), 12)
    nonzero = arr[arr != 0]
    if nonzero.size == 0:
        return 1.0
    from scipy.stats import wilcoxon

    ties = np.unique(np.abs(nonzero)).size < nonzero.size
    method = "exact" if nonzero.size <= EXACT_MAX_N and not ties else "asymptotic"
    res = wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided", method=method)
    p = float(res.pvalue)
    return min(1.0, p) if math.isfinite(p) else 1.0


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the order given.

    Sorted ascending, the i-th smallest of m p-values (i from 1) becomes
    ``max over j ≤ i of min(1, (m − j + 1) · p_(j))``: monotone in the original
    p-values and capped at 1. NaN stays NaN and does not count in m.

    Example:
        >>> holm([0.04, 0.01, 0.5])
        [0.08, 0.03, 0.5]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return [float(round(v, 15)) if math.isfinite(v) else math.nan for v in out]


def verdict(diff_mean: float, p_holm: float, higher_is_better: bool, alpha: float = ALPHA) -> str:
    """``"better"`` / ``"worse"`` / ``"no evidence"`` for a method against the reference.

    Evidence needs a Holm-adjusted p-value below ``alpha`` and a non-zero mean
    difference; its sign, read with the metric's direction, says which way.

    Example:
        >>> verdict(0.05, 0.01, True), verdict(0.05, 0.2, True), verdict(0.05, 0.01, False)
        ('better', 'no evidence', 'worse')
    """
    if not (math.isfinite(diff_mean) and math.isfinite(p_holm)):
        return NO_EVIDENCE
    if p_holm >= alpha or diff_mean == 0:
        return NO_EVIDENCE
    return BETTER if (diff_mean > 0) == higher_is_better else WORSE
