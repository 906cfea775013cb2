"""Tests for segline.stats on constructed paired differences with known answers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from segline.stats import (
    NO_EVIDENCE,
    holm,
    paired_bootstrap_ci,
    verdict,
    wilcoxon_p,
)


def exact_signed_rank_p(diffs: list[float]) -> float:
    """Two-sided exact Wilcoxon p by enumerating all 2**n sign patterns (no ties, no 0).

    Under the null every case's sign is + or − with probability 1/2; W+ is the sum of
    the ranks of |d| with a + sign. p = P(|W+ − E| ≥ |w_obs − E|), E = n(n+1)/4.
    """
    ranks = np.argsort(np.argsort(np.abs(diffs))) + 1
    observed = sum(int(r) for r, d in zip(ranks, diffs, strict=True) if d > 0)
    centre = len(diffs) * (len(diffs) + 1) / 4
    hits = total = 0
    for signs in itertools.product((0, 1), repeat=len(diffs)):
        w = sum(int(r) for r, s in zip(ranks, signs, strict=True) if s)
        hits += abs(w - centre) >= abs(observed - centre) - 1e-12
        total += 1
    return hits / total


def test_wilcoxon_matches_exact_enumeration_n6() -> None:
    diffs = [0.3, -0.1, 0.5, 0.2, -0.4, 0.6]  # ranks 3, 1, 5, 2, 4, 6: W+ = 16
    expected = exact_signed_rank_p(diffs)
    assert expected == pytest.approx(20 / 64)  # |W+ − 10.5| ≥ 5.5: 10 patterns each side
    assert wilcoxon_p(diffs) == pytest.approx(expected, abs=1e-12)


def test_wilcoxon_all_one_sign_smallest_p() -> None:
    assert wilcoxon_p([1.0, 2.0, 3.0]) == pytest.approx(0.25)  # 2 / 2**3
    assert wilcoxon_p(-np.arange(1.0, 9.0)) == pytest.approx(2 / 2**8)


def test_identical_methods_no_evidence() -> None:
    a = np.array([0.7, 0.8, 0.9, 0.75, 0.85, 0.65, 0.6, 0.95])
    diffs = a - a
    assert paired_bootstrap_ci(diffs) == (0.0, 0.0, 0.0)
    assert wilcoxon_p(diffs) == 1.0
    assert verdict(0.0, holm([wilcoxon_p(diffs)])[0], True) == NO_EVIDENCE


@pytest.mark.parametrize(("higher", "expected"), [(True, "worse"), (False, "better")])
def test_worse_on_every_case_is_worse(higher: bool, expected: str) -> None:
    reference = np.array([0.80, 0.82, 0.78, 0.90, 0.85, 0.70, 0.75, 0.88, 0.81, 0.79])
    method = reference - np.array([0.05, 0.02, 0.07, 0.01, 0.03, 0.04, 0.06, 0.08, 0.09, 0.1])
    diffs = method - reference  # every case lower
    mean, lo, hi = paired_bootstrap_ci(diffs)
    assert mean == pytest.approx(-0.055) and hi < 0
    p = wilcoxon_p(diffs)
    assert p == pytest.approx(2 / 2**10)
    # one of two methods compared with the reference: Holm doubles the smallest p
    p_holm = holm([p, 0.5])[0]
    assert p_holm == pytest.approx(4 / 2**10)
    # Dice lower on every case → worse; a distance lower on every case → better
    assert verdict(mean, p_holm, higher_is_better=higher) == expected


def test_bootstrap_reproducible_and_contains_mean() -> None:
    diffs = np.array([0.12, -0.03, 0.08, 0.20, 0.01, -0.05, 0.15, 0.04, 0.09])
    a = paired_bootstrap_ci(diffs)
    b = paired_bootstrap_ci(diffs.tolist())
    assert np.array(a).tobytes() == np.array(b).tobytes()
    mean, lo, hi = a
    assert mean == pytest.approx(diffs.mean())
    assert lo < mean < hi
    assert paired_bootstrap_ci(diffs, seed=1) != a  # the seed matters, and is fixed
    assert lo > diffs.min() and hi < diffs.max()


def test_bootstrap_refuses_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        paired_bootstrap_ci([0.1, math.nan])


def test_holm_against_hand_numbers() -> None:
    # sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → max(0.06, 0.04)
    assert holm([0.03, 0.005, 0.04, 0.01]) == pytest.approx([0.06, 0.02, 0.06, 0.03])
    assert holm([0.6, 0.9]) == [1.0, 1.0]  # capped at 1
    got = holm([0.2, math.nan, 0.01])  # NaN stays NaN, m = 2
    assert got[0] == pytest.approx(0.2) and math.isnan(got[1]) and got[2] == pytest.approx(0.02)


def test_verdict_rules() -> None:
    assert verdict(0.1, 0.049, True) == "better"
    assert verdict(0.1, 0.05, True) == NO_EVIDENCE  # not below alpha
    assert verdict(-3.0, 0.01, False) == "better"  # HD95 lower
    assert verdict(3.0, 0.01, False) == "worse"
    assert verdict(math.nan, 0.01, True) == NO_EVIDENCE
