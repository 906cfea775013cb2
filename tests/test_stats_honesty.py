"""Tests of what the statistics can say: the smallest attainable Wilcoxon / Holm p, the
report's "cannot reach p < 0.05" verdict notes, CIs marked indicative below 10 cases,
and the BCa bootstrap interval (against closed forms and ``scipy.stats.bootstrap``).

Report tests use hand-built result folders (one epoch, class ``spleen``, Dice only); the
notes, indicative marks and BCa column are part of every report (no option turns them on
or off).
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr, ndtri
from scipy.stats import bootstrap

from segline import stats
from segline.cli import run
from segline.report import main
from segline.stats import (
    BCA,
    BOOT_SEED,
    N_BOOT,
    PERCENTILE,
    bca_ci,
    bca_from_means,
    bootstrap_means,
    holm,
    min_holm_p,
    min_wilcoxon_p,
    no_verdict_note,
    paired_bootstrap_ci,
    wilcoxon_n,
    wilcoxon_p,
)


# ------------------------------------------------------------------ smallest p
def brute_min_p(n: int) -> float:
    """Smallest exact two-sided signed-rank p over every sign vector of ranks 1..n.

    Under the null each of the 2ⁿ sign vectors is equally likely; the p of an observed
    vector is the fraction of vectors whose T⁺ is at least as far from n(n+1)/4.
    """
    ranks = np.arange(1, n + 1)
    signs = np.array(list(itertools.product((0, 1), repeat=n)))
    t_plus = signs @ ranks
    dev = np.abs(t_plus - n * (n + 1) / 4)
    return float(min((dev >= d - 1e-9).mean() for d in np.unique(dev)))


@pytest.mark.parametrize("n", range(1, 11))
def test_min_wilcoxon_p_matches_brute_force(n: int) -> None:
    expected = brute_min_p(n)
    assert min_wilcoxon_p(n) == pytest.approx(expected, rel=1e-12)
    assert min_wilcoxon_p(n) == pytest.approx(min(1.0, 2 / 2**n), rel=1e-12)
    # reached by data: all n differences of one sign, distinct magnitudes
    assert wilcoxon_p(np.arange(1.0, n + 1)) == pytest.approx(expected, rel=1e-9)


def test_min_wilcoxon_p_known_values() -> None:
    assert min_wilcoxon_p(3) == 0.25
    assert min_wilcoxon_p(5) == 0.0625 and min_wilcoxon_p(6) == 0.03125
    assert min_wilcoxon_p(0) == 1.0  # all differences zero: p = 1


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_min_wilcoxon_p_with_ties_is_reached_and_a_lower_bound(n: int) -> None:
    """Tied data use the normal approximation, whose p can fall under 2/2ⁿ (n = 4:
    0.0455 < 0.05 although untied data cannot get below 0.125)."""
    floor = min_wilcoxon_p(n, ties=True)
    assert floor == pytest.approx(math.erfc(math.sqrt(n / 2)), rel=1e-12)
    assert wilcoxon_p([1.5] * n) == pytest.approx(floor, rel=1e-9)
    assert wilcoxon_n([1.5] * n) == (n, True)
    rng = np.random.default_rng(n)
    for _ in range(200):
        d = rng.integers(-3, 4, size=n).astype(float)
        k, ties = wilcoxon_n(d)
        assert wilcoxon_p(d) >= min_wilcoxon_p(k, ties) - 1e-12


def test_min_holm_p_is_a_sharp_lower_bound() -> None:
    floors = [min_wilcoxon_p(6)] * 3  # 3 methods, 6 cases: raw floor 1/32 < 0.05 ...
    assert min_holm_p(floors) == pytest.approx([3 / 32] * 3)  # ... but Holm's is not
    assert min_holm_p([min_wilcoxon_p(7)] * 3) == pytest.approx([3 / 64] * 3)  # n = 7: < 0.05
    assert holm(floors) == pytest.approx(min_holm_p(floors))  # reached: all p at the floor
    assert min_holm_p([0.03125, 0.03125, 0.25]) == pytest.approx([0.09375, 0.09375, 0.25])
    assert min_holm_p([math.nan, 0.25])[1] == 0.25 and math.isnan(min_holm_p([math.nan])[0])
    rng = np.random.default_rng(0)
    for _ in range(500):  # any p-values at or above the floors: Holm stays above the bound
        m = int(rng.integers(1, 5))
        f = [min_wilcoxon_p(int(n)) for n in rng.integers(1, 12, size=m)]
        p = [min(1.0, v * float(rng.uniform(1, 4))) for v in f]
        assert all(h >= b - 1e-12 for h, b in zip(holm(p), min_holm_p(f), strict=True))


def test_no_verdict_note_texts() -> None:
    assert no_verdict_note(3, 3, 0.25, 0.25, 1) == "n = 3: cannot reach p < 0.05"
    zero = "0 of 8 differences non-zero: cannot reach p < 0.05"
    assert no_verdict_note(0, 8, 1.0, 1.0, 2) == zero
    assert no_verdict_note(6, 6, 3 / 32, 1 / 32, 3) == "n = 6, Holm over 3: cannot reach p < 0.05"
    assert no_verdict_note(12, 12, 2 / 2**12, 2 / 2**12, 1) == ""


# ------------------------------------------------------------------ BCa
def scipy_bca(x: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float, np.ndarray]:
    """scipy's BCa interval of the mean (``rng`` since scipy 1.15, else ``random_state``)."""
    key = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    res = bootstrap(
        (x,), np.mean, method="BCa", n_resamples=n_resamples, **{key: np.random.default_rng(seed)}
    )
    ci = res.confidence_interval
    return float(ci.low), float(ci.high), res.bootstrap_distribution


SAMPLES = {
    "exponential12": np.random.default_rng(1).exponential(size=12),
    "normal30": np.random.default_rng(2).normal(0.02, 0.05, size=30),
    "skewed5": np.array([0.01, 0.02, 0.0, 0.03, 0.4]),
    "ties8": np.array([-1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 5.0, 9.0]),
    "three": np.array([-0.1, 0.05, 0.2]),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_bca_matches_scipy_on_the_same_resamples(name: str) -> None:
    """Same generator, same seed: scipy draws the same resamples, so the intervals agree
    to rounding (this also checks the shared-resample claim of ``bootstrap_means``)."""
    x = SAMPLES[name]
    lo, hi, dist = scipy_bca(x, N_BOOT, BOOT_SEED)
    np.testing.assert_array_equal(dist, bootstrap_means(x))
    got = bca_ci(x)
    assert got[2] == BCA
    assert got[:2] == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", ["exponential12", "normal30", "skewed5"])
def test_bca_matches_scipy_with_independent_resamples(name: str) -> None:
    """Against scipy with 100 000 resamples of another seed. Monte-Carlo error of a
    2.5 % quantile from B = 10 000 resamples is about sqrt(.025 · .975 / B) / φ(1.96)
    ≈ 0.027 sd of the resampled mean, i.e. under 1 % of the interval's width (≈ 3.9
    sd); 5 % of the width is several such errors."""
    x = SAMPLES[name]
    lo, hi, _ = scipy_bca(x, 100_000, 7)
    got_lo, got_hi, method = bca_ci(x)
    width = hi - lo
    assert method == BCA
    assert abs(got_lo - lo) < 0.05 * width and abs(got_hi - hi) < 0.05 * width


def test_bca_from_means_closed_form() -> None:
    """For the mean, the jackknife acceleration is the sample's skewness term
    a = Σ(x − x̄)³ / (6 (Σ(x − x̄)²)^{3/2}); z0 from the share of means below x̄."""
    x = np.array([0.0, 1.0, 2.0, 10.0])
    means = bootstrap_means(x, 5000, 3)
    c = x - x.mean()
    a = np.sum(c**3) / (6 * np.sum(c**2) ** 1.5)
    z0 = ndtri((np.sum(means < x.mean()) + np.sum(means <= x.mean())) / (2 * means.size))
    alphas = [ndtr(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in (ndtri(0.025), ndtri(0.975))]
    assert bca_from_means(x, means) == pytest.approx(tuple(np.quantile(means, alphas)))


def test_bca_equals_percentile_when_unbiased_and_symmetric() -> None:
    """Symmetric data (a = 0) and means symmetric about x̄ (z0 = 0): BCa = percentile."""
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    means = np.concatenate([np.linspace(-1, 1, 1001), [0.0]])
    lo, hi = bca_from_means(x, means)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_bca_falls_back_to_percentile() -> None:
    percentile = paired_bootstrap_ci
    for x in ([0.3, 0.3, 0.3, 0.3], [0.1, 0.4], [0.2]):  # all equal; n < 3
        lo, hi, method = bca_ci(x)
        assert method == PERCENTILE
        assert (lo, hi) == percentile(x)[1:]
    assert bca_ci([0.3, 0.3, 0.3]) == (0.3, 0.3, PERCENTILE)
    lo, hi, method = bca_ci([])
    assert math.isnan(lo) and math.isnan(hi) and method == PERCENTILE
    # every resampled mean above the sample mean: z0 infinite, undefined
    assert bca_from_means([1.0, 2.0, 4.0], np.full(10, 5.0)) is None
    assert bca_from_means([1.0, 2.0], np.array([1.0, 1.5, 2.0])) is None
    assert stats.BCA_MIN_N == 3


# ------------------------------------------------------------------ the report
def write_run(folder: Path, dice: list[float]) -> Path:
    """A training folder with 1 epoch, one validation case and the given test Dice."""
    (folder / "test").mkdir(parents=True)
    pd.DataFrame({"epoch": [1], "val_dice": [0.5]}).to_csv(folder / "epochs.csv", index=False)
    cols = ["epoch", "split", "case", "class", "metric", "value"]
    test = [(1, "test", f"t{i:02d}", "spleen", "dice", d) for i, d in enumerate(dice)]
    val = [(1, "val", "v1", "spleen", "dice", 0.5)]
    pd.DataFrame(val + test, columns=cols).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(test, columns=cols).to_csv(folder / "test" / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text("1\n")
    args = {"net": "Dimwit", "epochs": 1, "seed": 0, "out": str(folder)}
    (folder / "args.json").write_text(json.dumps(args))
    pd.DataFrame({"epoch": [1], "seconds": [1.0]}).to_csv(folder / "timing.csv")
    return folder


def make_report(tmp_path: Path, n: int) -> tuple[str, pd.Series]:
    """Report of a (reference) and b = a + 0.01·(1..n) (b better on every case)."""
    root = tmp_path / "results" / "toy"
    ref = [0.5 + 0.01 * i for i in range(n)]
    dirs = [
        write_run(root / "a", ref),
        write_run(root / "b", [r + 0.01 * (i + 1) for i, r in enumerate(ref)]),
    ]
    out = tmp_path / "out"
    args = ["--out", str(out / "report.md"), "--csv", str(out / "report.csv")]
    args += ["--metrics", "dice"]
    assert run(main, [*args, *map(str, dirs)]) == 0
    csv = pd.read_csv(out / "report.csv", keep_default_na=False, dtype=str)
    return (out / "report.md").read_text(), csv.set_index("method").loc["b"]


def stat_row(page: str, method: str = "b") -> list[str]:
    starts = (f"| {method} | +", f"| {method} | **")
    line = next(ln for ln in page.splitlines() if ln.startswith(starts))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_n3_states_the_unreachable_verdict_and_indicative_ci(tmp_path: Path) -> None:
    page, b = make_report(tmp_path, 3)
    assert "| method | Δ Dice (95 % CI) | BCa 95 % CI | Wilcoxon p | Holm p | verdict | n |" in page
    cells = stat_row(page)
    # diffs 0.01, 0.02, 0.03: mean 0.02; percentile bootstrap at n = 3 = [min, max]
    assert cells[1] == "+0.0200 [+0.0100, +0.0300] (indicative)"
    assert cells[2].endswith("BCa (indicative)")
    assert cells[3:5] == ["0.25", "0.25"]
    assert cells[5] == "no evidence (n = 3: cannot reach p < 0.05)"
    assert cells[6] == "3"
    assert "What the numbers can say" in page
    assert b["stat_dice_verdict"] == "no evidence"  # machine-readable column unchanged
    assert b["stat_dice_verdict_note"] == "n = 3: cannot reach p < 0.05"
    assert b["stat_dice_ci_indicative"] == "True"
    assert float(b["stat_dice_min_p"]) == 0.25 and b["stat_dice_n_nonzero"] == "3"
    diffs = np.array([0.01, 0.02, 0.03])
    lo, hi, method = bca_ci(diffs)
    assert b["stat_dice_bca_method"] == method == BCA
    assert (float(b["stat_dice_bca_lo"]), float(b["stat_dice_bca_hi"])) == pytest.approx((lo, hi))


def test_report_n12_can_reach_a_verdict(tmp_path: Path) -> None:
    page, b = make_report(tmp_path, 12)
    cells = stat_row(page)
    assert "(indicative)" not in cells[1] and "(indicative)" not in cells[2]
    assert cells[1].startswith("**+0.0650 [")  # evidence: bold
    assert cells[5] == "better"  # no note: 2/2^12 < 0.05
    assert cells[6] == "12"
    assert b["stat_dice_ci_indicative"] == "False" and b["stat_dice_verdict_note"] == ""
    assert float(b["stat_dice_min_p"]) == pytest.approx(2 / 2**12)
    assert float(b["stat_dice_p"]) == pytest.approx(2 / 2**12)


def test_report_states_the_limits_by_default(tmp_path: Path, capsys) -> None:
    """No option needed for the notes, marks and BCa columns, and none hides them."""
    page, b = make_report(tmp_path, 3)
    lo, hi, _ = bca_ci([0.01, 0.02, 0.03])
    assert (
        f"| b | +0.0200 [+0.0100, +0.0300] (indicative) | [{lo:+.4f}, {hi:+.4f}] BCa "
        "(indicative) | 0.25 | 0.25 | no evidence (n = 3: cannot reach p < 0.05) | 3 |"
    ) in page
    for k in ("bca_lo", "bca_hi", "bca_method", "n_nonzero", "min_p", "verdict_note"):
        assert f"stat_dice_{k}" in b.index
    assert b["stat_dice_ci_indicative"] == "True"
    out = tmp_path / "x"
    args = ["--out", str(out / "report.md"), "--csv", str(out / "report.csv")]
    with pytest.raises(SystemExit) as exc:  # the former opt-in is gone, not silently kept
        main([*args, "--stats-detail", str(tmp_path / "results" / "toy" / "a")])
    assert exc.value.code == 2 and "--stats-detail" in capsys.readouterr().err
    assert not out.exists()


def test_report_holm_note_and_all_zero_differences(tmp_path: Path) -> None:
    """6 cases, 3 methods against a: b and c better on every case (raw p = 1/32 < 0.05),
    d identical to a. Holm over the 3 needs 3 · 1/32 < 0.05: unreachable, and said."""
    root = tmp_path / "results" / "toy"
    ref = [0.5 + 0.01 * i for i in range(6)]
    dirs = [write_run(root / "a", ref), write_run(root / "d", ref)]
    for name, step in (("b", 0.01), ("c", 0.02)):
        dirs.append(write_run(root / name, [r + step * (i + 1) for i, r in enumerate(ref)]))
    out = tmp_path / "out"
    args = ["--out", str(out / "report.md"), "--csv", str(out / "report.csv")]
    assert run(main, [*args, "--metrics", "dice", *map(str, dirs)]) == 0
    page = (out / "report.md").read_text()
    for name in ("b", "c"):
        cells = stat_row(page, name)
        assert cells[3:5] == ["0.0312", "0.0938"]
        assert cells[5] == "no evidence (n = 6, Holm over 3: cannot reach p < 0.05)"
    d = stat_row(page, "d")
    assert d[1] == "+0.0000 [+0.0000, +0.0000] (indicative)"
    assert d[2] == "[+0.0000, +0.0000] percentile (BCa undefined) (indicative)"
    assert d[5] == "no evidence (0 of 6 differences non-zero: cannot reach p < 0.05)"
    csv = pd.read_csv(out / "report.csv", keep_default_na=False, dtype=str).set_index("method")
    assert csv.loc["d", "stat_dice_bca_method"] == PERCENTILE
    assert csv.loc["d", "stat_dice_n_nonzero"] == "0"
    assert float(csv.loc["b", "stat_dice_min_p"]) == pytest.approx(3 / 32)
