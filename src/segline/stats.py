"""Paired comparison of two methods over the same test cases (the report's statistics).

A comparison is *paired*: both methods are evaluated on the same test cases, so the
question is whether the per-case differences ``method − reference`` are centred away
from zero. Three numbers answer it, each computed here and nowhere else:

* :func:`paired_bootstrap_ci`: the mean difference with a percentile bootstrap
  confidence interval (resampling cases with replacement; a fixed-seed
  :class:`numpy.random.Generator`, so the same differences give the same bytes);
* :func:`wilcoxon_p`: the two-sided Wilcoxon signed-rank p-value of the differences;
* :func:`min_wilcoxon_p` and :func:`min_holm_p`: the smallest p-value the test (and
  Holm's adjustment) can give at all with so few cases, so the report can say when a
  verdict other than "no evidence" is impossible whatever the data;
* :func:`bca_ci`: the bias-corrected and accelerated (BCa) bootstrap interval of the
  mean, from the same resamples as :func:`paired_bootstrap_ci`, falling back to the
  percentile interval where BCa is undefined (and saying so);
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
"""Below this many non-zero differences without ties no two-sided Wilcoxon p-value can be
under 0.05 (the smallest exact p is 2 / 2**n: 0.0625 for n = 5); p is still computed, and
the report gives n beside it so the reader sees why there is no evidence. Tied data use
the normal approximation, which can go lower (n = 4 all equal: 0.046); the exact floor
for any n and ties is :func:`min_wilcoxon_p`."""

INDICATIVE_N = 10
"""Below this many paired cases a bootstrap CI is only indicative: the resampled means
take few distinct values (at n = 3, 10 multisets; the 2.5 % and 97.5 % quantiles are the
smallest and largest difference, since each occurs alone with probability 1/27 > 2.5 %),
and the percentile interval's coverage falls well below the nominal level."""

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
    means = bootstrap_means(arr, n_boot, seed)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return (float(arr.mean()), float(lo), float(hi))


def bootstrap_means(
    diffs: Sequence[float] | np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED
) -> np.ndarray:
    """The ``n_boot`` resampled means of ``diffs`` (cases drawn with replacement).

    One generator, ``numpy.random.default_rng(seed)``, draws the case indices in chunks
    of at most 2e6 indices (bounded memory for many cases); for up to 200 cases that is
    a single ``rng.integers(0, n, (n_boot, n))`` call, the draw
    ``scipy.stats.bootstrap`` makes with the same generator. :func:`paired_bootstrap_ci`
    and :func:`bca_ci` share these resamples, so their intervals differ only by method.
    """
    arr = _as_diffs(diffs)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, 2_000_000 // arr.size)  # bounded memory for many cases
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, arr.size, size=(stop - start, arr.size))
        means[start:stop] = arr[idx].mean(axis=1)
    return means


BCA, PERCENTILE = "BCa", "percentile"
"""Names of the interval methods, as the report and CSV give them."""
BCA_MIN_N = 3
"""Fewer cases than this: BCa is not used (the jackknife of two values says nothing about
skewness), the percentile interval is given instead."""


def bca_from_means(
    diffs: Sequence[float] | np.ndarray, means: np.ndarray, level: float = LEVEL
) -> tuple[float, float] | None:
    """BCa interval of the mean of ``diffs`` from given bootstrap ``means``; None when
    undefined.

    Efron and Tibshirani (1993), eqs. 14.9-14.15, as ``scipy.stats.bootstrap(...,
    method="BCa")``:

    * bias correction ``z0 = Φ⁻¹(f)``, ``f`` the fraction of resampled means below the
      sample mean, ties counted half (``(#< + #≤) / 2B``);
    * acceleration from the jackknife means ``θ₍ᵢ₎`` (leave case i out), ``d = θ̄₍·₎ −
      θ₍ᵢ₎``: ``a = Σd³ / (6 (Σd²)^{3/2})``;
    * endpoints: the ``α₁, α₂`` quantiles (numpy linear interpolation) of ``means``,
      ``αₖ = Φ(z0 + (z0 + zₖ) / (1 − a (z0 + zₖ)))``, ``z₁,₂ = Φ⁻¹((1 ∓ level)/2)``.

    Undefined (None) with fewer than :data:`BCA_MIN_N` cases, when all differences are
    equal (``Σd² = 0``: no acceleration; every resampled mean is the sample mean), when
    ``f`` is 0 or 1 (``z0`` infinite), or when an ``αₖ`` is not a finite number.

    Example:
        >>> bca_from_means([1.0, 1.0, 1.0], np.ones(100)) is None
        True
    """
    from scipy.special import ndtr, ndtri

    arr = _as_diffs(diffs)
    means = np.asarray(means, dtype=np.float64).reshape(-1)
    n = arr.size
    if n < BCA_MIN_N or means.size == 0:
        return None
    theta = float(arr.mean())
    frac = (np.count_nonzero(means < theta) + np.count_nonzero(means <= theta)) / (2.0 * means.size)
    if not 0.0 < frac < 1.0:
        return None
    z0 = float(ndtri(frac))
    jack = (arr.sum() - arr) / (n - 1)
    d = jack.mean() - jack
    ss = float(np.sum(d**2))
    if ss <= 0.0 or not math.isfinite(ss):
        return None
    accel = float(np.sum(d**3)) / (6.0 * ss**1.5)
    tail = (1.0 - level) / 2.0
    alphas = []
    for z in (float(ndtri(tail)), float(ndtri(1.0 - tail))):
        num = z0 + z
        alphas.append(float(ndtr(z0 + num / (1.0 - accel * num))))
    if not all(math.isfinite(a) and 0.0 <= a <= 1.0 for a in alphas):
        return None
    lo, hi = np.quantile(means, alphas)
    return (float(lo), float(hi))


def bca_ci(
    diffs: Sequence[float] | np.ndarray,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = BOOT_SEED,
) -> tuple[float, float, str]:
    """BCa bootstrap interval of the mean difference, or the percentile one where BCa
    is undefined (:func:`bca_from_means`), and which of the two it is.

    Same resamples as :func:`paired_bootstrap_ci` (same seed), so the fallback equals
    its interval exactly. BCa corrects the percentile interval for the bias and skewness
    of the resampled mean; it needs enough cases to estimate them and is, like any
    bootstrap interval, only indicative below :data:`INDICATIVE_N` cases.

    Returns:
        ``(lo, hi, method)``, method :data:`BCA` or :data:`PERCENTILE`; NaN and
        :data:`PERCENTILE` when ``diffs`` is empty.

    Example:
        >>> bca_ci([0.5, 0.5, 0.5])  # all equal: BCa undefined
        (0.5, 0.5, 'percentile')
    """
    arr = _as_diffs(diffs)
    if arr.size == 0:
        return (math.nan, math.nan, PERCENTILE)
    means = bootstrap_means(arr, n_boot, seed)
    bca = bca_from_means(arr, means, level)
    if bca is not None:
        return (bca[0], bca[1], BCA)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return (float(lo), float(hi), PERCENTILE)


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
    nonzero, ties = _nonzero(diffs)
    if nonzero.size == 0:
        return 1.0
    from scipy.stats import wilcoxon

    method = "exact" if nonzero.size <= EXACT_MAX_N and not ties else "asymptotic"
    res = wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided", method=method)
    p = float(res.pvalue)
    return min(1.0, p) if math.isfinite(p) else 1.0


def _nonzero(diffs: Sequence[float] | np.ndarray) -> tuple[np.ndarray, bool]:
    """The non-zero differences (rounded to 12 decimals, as the test sees them) and
    whether their absolute values tie."""
    arr = np.round(_as_diffs(diffs), 12)
    nonzero = arr[arr != 0]
    return nonzero, bool(np.unique(np.abs(nonzero)).size < nonzero.size)


def wilcoxon_n(diffs: Sequence[float] | np.ndarray) -> tuple[int, bool]:
    """``(n, ties)`` as :func:`wilcoxon_p` sees the differences: the number of non-zero
    differences and whether their absolute values tie (then p is asymptotic).

    Example:
        >>> wilcoxon_n([0.0, 1.0, -1.0, 2.0])
        (3, True)
    """
    nonzero, ties = _nonzero(diffs)
    return int(nonzero.size), ties


def min_wilcoxon_p(n: int, ties: bool = False) -> float:
    """The smallest two-sided p-value :func:`wilcoxon_p` can give for ``n`` non-zero
    differences, whatever their values: below ``alpha`` no verdict is possible.

    * Exact null (``n`` ≤ :data:`EXACT_MAX_N`, no ties): the statistic is most extreme
      when all signs agree, and under the null each of the 2ⁿ sign vectors is equally
      likely, so two-sided ``p = 2 / 2ⁿ`` (1 for n = 1: both sign vectors are as
      extreme). n = 3: 0.25, n = 5: 0.0625, n = 6: 0.03125.
    * Normal approximation (ties, or ``n`` > :data:`EXACT_MAX_N`): ``|z|`` is largest
      when all signs agree; the tie correction shrinks the variance most when all
      absolute values tie, giving ``z = √n`` and ``p = erfc(√(n/2))`` (n = 3: 0.083,
      n = 4: 0.046); without ties ``z = √(3n(n + 1) / (2(2n + 1)))``. Both are lower
      bounds reached by data (all equal, or all of one sign).
    * ``n`` = 0 (all differences zero): 1.0, as :func:`wilcoxon_p` gives.

    Holm's adjustment never lowers a p-value (:func:`min_holm_p`).

    Example:
        >>> min_wilcoxon_p(3), min_wilcoxon_p(6), min_wilcoxon_p(0)
        (0.25, 0.03125, 1.0)
    """
    if n <= 0:
        return 1.0
    if not ties and n <= EXACT_MAX_N:
        return min(1.0, 2.0 / 2.0**n)
    z = math.sqrt(n) if ties else math.sqrt(3.0 * n * (n + 1) / (2.0 * (2 * n + 1)))
    return min(1.0, math.erfc(z / math.sqrt(2.0)))


def min_holm_p(floors: Sequence[float]) -> list[float]:
    """The smallest Holm-adjusted p-value each of several comparisons can reach, from
    each one's smallest raw p (``floors``, :func:`min_wilcoxon_p`; NaN: not tested).

    The Holm p of comparison i is at least its own raw p, and at least m times the
    smallest raw p of the family (the first step; m = tested comparisons), so
    ``max(floor_i, min(1, m · min_j floor_j))``. The bound is sharp when the
    comparisons have the same n (all differences of one sign everywhere reaches it).
    With m comparisons of n cases each, evidence thus needs ``m · 2/2ⁿ < alpha``, e.g.
    n ≥ 7 for 3 methods against the reference: a raw p that could be small enough is
    not always enough once the family is adjusted.

    Example:
        >>> min_holm_p([0.03125, 0.03125, 0.25])
        [0.09375, 0.09375, 0.25]
    """
    f = np.asarray(floors, dtype=np.float64)
    finite = f[~np.isnan(f)]
    if finite.size == 0:
        return [math.nan] * f.size
    first = min(1.0, finite.size * float(finite.min()))
    return [max(float(v), first) if math.isfinite(v) else math.nan for v in f]


def no_verdict_note(
    n_nonzero: int, n_paired: int, floor: float, raw_floor: float, m: int, alpha: float = ALPHA
) -> str:
    """Why a verdict cannot be better or worse at this n, or "" when it can.

    ``floor`` is the smallest attainable Holm p (:func:`min_holm_p`), ``raw_floor``
    the smallest raw p (:func:`min_wilcoxon_p`): when the raw test alone cannot get
    under ``alpha`` the note says so for n; when only the adjustment over ``m``
    comparisons rules it out, it names Holm.

    Example:
        >>> no_verdict_note(3, 3, 0.25, 0.25, 1)
        'n = 3: cannot reach p < 0.05'
        >>> no_verdict_note(6, 8, 0.09375, 0.03125, 3)
        '6 of 8 differences non-zero, Holm over 3: cannot reach p < 0.05'
        >>> no_verdict_note(12, 12, 0.0005, 0.0005, 1)
        ''
    """
    if not (math.isfinite(floor) and floor >= alpha):
        return ""
    head = (
        f"n = {n_nonzero}"
        if n_nonzero == n_paired
        else (f"{n_nonzero} of {n_paired} differences non-zero")
    )
    if not raw_floor >= alpha:
        head += f", Holm over {m}"
    return f"{head}: cannot reach p < {alpha:g}"


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
