"""Tests of the report's seeds, statistics, undefined-distance policy, cases CSV and links.

Hand-built result folders (one epoch, class ``spleen``) and a minimal case store whose
test cases are 10 × 20 × 20 voxels of 2 × 1 × 1 mm: field-of-view extent 20 mm on
every axis, diagonal sqrt(3 · 20²) = 34.641 mm (what an undefined HD95 counts as).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segline.cli import run
from segline.report import main
from segline.stats import BCA, PERCENTILE, bca_ci, holm, paired_bootstrap_ci, wilcoxon_p

NAN = math.nan
DIAG = math.sqrt(3 * 20.0**2)
CASES = [f"t{i}" for i in range(1, 9)]
REF_DICE = [0.80, 0.82, 0.78, 0.90, 0.85, 0.70, 0.75, 0.88]
DROP = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]


def write_run(folder: Path, dice: list[float], hd95: list[float], seed: int = 0) -> Path:
    """A training folder with 1 epoch, one validation case and the given test values."""
    (folder / "test").mkdir(parents=True)
    pd.DataFrame({"epoch": [1], "val_dice": [0.5]}).to_csv(folder / "epochs.csv", index=False)
    cols = ["epoch", "split", "case", "class", "metric", "value"]
    test = [(1, "test", c, "spleen", "dice", d) for c, d in zip(CASES, dice, strict=True)]
    test += [(1, "test", c, "spleen", "hd95", h) for c, h in zip(CASES, hd95, strict=True)]
    val = [(1, "val", "v1", "spleen", "dice", 0.5), (1, "val", "v1", "spleen", "hd95", 3.0)]
    pd.DataFrame(val + test, columns=cols).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(test, columns=cols).to_csv(folder / "test" / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text("1\n")
    args = {"net": "Dimwit", "epochs": 1, "seed": seed, "out": str(folder), "aug": "flip"}
    (folder / "args.json").write_text(json.dumps(args))
    pd.DataFrame({"epoch": [1], "seconds": [1.5 + seed]}).to_csv(folder / "timing.csv")
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Path:
    cases = tmp_path / "data" / "toy" / "cases"
    cases.mkdir(parents=True)
    (cases / "split.json").write_text(json.dumps({"test": CASES}))
    for c in CASES:
        (cases / c).mkdir()
        (cases / c / "meta.json").write_text(
            json.dumps({"shape": [10, 20, 20], "spacing": [2.0, 1.0, 1.0]})
        )
    return cases


@pytest.fixture
def three(tmp_path: Path) -> Path:
    """a (reference); b: Dice lower on all 8 cases, HD95 1 mm better but one undefined;
    c: identical to a."""
    root = tmp_path / "results" / "toy"
    write_run(root / "a", REF_DICE, [2.0] * 8)
    b_dice = [r - d for r, d in zip(REF_DICE, DROP, strict=True)]
    write_run(root / "b", b_dice, [1.0] * 7 + [NAN])
    write_run(root / "c", REF_DICE, [2.0] * 8)
    return root


def report(out: Path, dirs: list[Path], *extra: str) -> int:
    args = ["--out", str(out / "report.md"), "--csv", str(out / "report.csv"), *extra]
    args += ["--metrics", "dice,hd95"]
    return run(main, [*args, *map(str, dirs)])


def summary(out: Path) -> pd.DataFrame:
    csv = pd.read_csv(out / "report.csv", keep_default_na=False, dtype=str)
    return csv[csv["seed"] == ""].set_index("method")


def test_worse_on_every_case_and_identical_method(three: Path, store: Path, tmp_path: Path) -> None:
    dirs = [three / n for n in ("c", "b", "a")]
    assert report(tmp_path, dirs, "--cases", str(store), "--stat-reference", "a") == 0
    csv = summary(tmp_path)
    b, c = csv.loc["b"], csv.loc["c"]
    # Dice: b lower on all 8 cases: exact p = 2/2**8; Holm over (b, c): × 2
    assert float(b["stat_dice_diff"]) == pytest.approx(-np.mean(DROP))
    assert float(b["stat_dice_ci_hi"]) < 0
    assert float(b["stat_dice_p"]) == pytest.approx(2 / 2**8)
    assert float(b["stat_dice_p_holm"]) == pytest.approx(4 / 2**8)
    assert b["stat_dice_verdict"] == "worse" and b["stat_dice_n"] == "8"
    # c identical to a: no evidence, p = 1, CI [0, 0]
    assert [float(c[f"stat_dice_{k}"]) for k in ("diff", "ci_lo", "ci_hi", "p", "p_holm")] == [
        0.0, 0.0, 0.0, 1.0, 1.0,
    ]  # fmt: skip
    assert c["stat_dice_verdict"] == "no evidence"
    assert csv.loc["a", "stat_dice_verdict"] == ""  # the reference is not compared
    # HD95: b's undefined case counts as the FOV diagonal: 7 × (−1) + (DIAG − 2)
    diffs = np.array([-1.0] * 7 + [DIAG - 2.0])
    assert float(b["stat_hd95_diff"]) == pytest.approx(diffs.mean())  # > 0: worse on average
    assert float(b["stat_hd95_p"]) == pytest.approx(wilcoxon_p(diffs))
    assert float(b["stat_hd95_ci_lo"]) == pytest.approx(paired_bootstrap_ci(diffs)[1])
    assert float(b["stat_hd95_p_holm"]) == pytest.approx(holm([wilcoxon_p(diffs), 1.0])[0])
    # lower defined HD95 mean, but an undefined case: never best on a distance
    assert float(b["test_hd95_mean"]) == 1.0 and b["test_hd95_undefined"] == "1"
    assert (b["stat_hd95_undefined_method"], b["stat_hd95_undefined_reference"]) == ("1", "0")
    assert csv["best_test_hd95"].to_dict() == {"a": "True", "b": "False", "c": "True"}

    md = (tmp_path / "report.md").read_text()
    d = -np.mean(DROP)
    lo, hi = float(b["stat_dice_ci_lo"]), float(b["stat_dice_ci_hi"])
    # n = 8 < 10: both CIs indicative; BCa beside the percentile CI, from the same resamples
    bca_lo, bca_hi, method = bca_ci(-np.asarray(DROP))
    assert method == BCA and float(b["stat_dice_bca_lo"]) == pytest.approx(bca_lo)
    assert (bca_lo, bca_hi) == pytest.approx((-0.0600, -0.0288), abs=5e-5)
    assert "| method | Δ Dice (95 % CI) | BCa 95 % CI | Wilcoxon p | Holm p | verdict | n |" in md
    assert (
        f"| b | **{d:+.4f} [{lo:+.4f}, {hi:+.4f}]** (indicative) | [-0.0600, -0.0288] BCa "
        "(indicative) | 0.00781 | 0.0156 | worse | 8 |"
    ) in md  # 2/2^8 · Holm over 2 < 0.05: reachable, no note
    assert b["stat_dice_ci_indicative"] == "True" and b["stat_dice_verdict_note"] == ""
    # c identical: all differences zero, BCa undefined (said), no verdict possible (said)
    assert (
        "| c | +0.0000 [+0.0000, +0.0000] (indicative) | [+0.0000, +0.0000] percentile "
        "(BCa undefined) (indicative) | 1 | 1 | no evidence (0 of 8 differences non-zero: "
        "cannot reach p < 0.05) | 8 |"
    ) in md
    assert c["stat_dice_verdict_note"] == "0 of 8 differences non-zero: cannot reach p < 0.05"
    assert c["stat_dice_bca_method"] == PERCENTILE and c["stat_dice_n_nonzero"] == "0"
    assert "| verdict | n | undefined (method, reference) |" in md  # distance tables
    # HD95 of b: mean +3.205 mm (7 × −1 and one diagonal), ties → normal approximation
    assert (
        "| b | +3.205 [-1.000, +11.615] (indicative) | [-1.000, +15.821] BCa (indicative) "
        "| 0.132 | 0.263 | no evidence | 8 | 1, 0 |"
    ) in md
    assert "field-of-view" in md and "diagonal in mm" in md
    assert "| 1.00 ± 0.00 (1 undefined) |" in md  # the count stays next to the mean


def test_distance_statistics_refused_without_case_store(three: Path, tmp_path: Path) -> None:
    assert report(tmp_path, [three / n for n in ("a", "b")]) == 0
    b = summary(tmp_path).loc["b"]
    assert b["stat_reference"] == "a"  # default: the first method by name
    assert b["stat_hd95_verdict"] == "not computed" and b["stat_hd95_diff"] == ""
    assert b["stat_dice_verdict"] == "worse"  # 1 method compared: Holm = p = 2/2**8
    md = (tmp_path / "report.md").read_text()
    assert "not computed: no case store (--cases)" in md


def test_seeds_rows_pooled_per_case_and_over_seeds(store: Path, tmp_path: Path) -> None:
    root = tmp_path / "results" / "toy" / "seeds"
    s0 = write_run(root / "m" / "seed0", REF_DICE, [2.0] * 8, seed=0)
    up = [v + 0.1 for v in REF_DICE]
    s1 = write_run(root / "m" / "seed1", up, [4.0] * 7 + [NAN], seed=1)
    ref = write_run(root / "r" / "seed0", REF_DICE, [2.0] * 8)
    out = tmp_path / "out"
    cases_csv = out / "cases.csv"
    rc = report(out, [s1, ref, s0], "--cases", str(store), "--stat-reference", "r",
                "--cases-csv", str(cases_csv))  # fmt: skip
    assert rc == 0
    csv = pd.read_csv(out / "report.csv", keep_default_na=False, dtype=str)
    assert list(zip(csv["method"], csv["seed"], csv["pooled_seeds"], strict=True)) == [
        ("m", "0", ""), ("m", "1", ""), ("m", "", "2"), ("r", "0", ""), ("r", "", "1"),
    ]  # fmt: skip
    m = csv[(csv.method == "m") & (csv.seed == "")].iloc[0]
    # pooled per case: mean over the seeds (HD95 undefined where a seed's is)
    assert float(m["test_dice_mean"]) == pytest.approx(np.mean(REF_DICE) + 0.05)
    assert float(m["test_hd95_mean"]) == pytest.approx(3.0) and m["test_hd95_undefined"] == "1"
    assert float(m["train_seconds"]) == pytest.approx(1.5 + 2.5)
    # statistics on the pooled values, n = 8 cases (not 16)
    assert m["stat_dice_n"] == "8" and float(m["stat_dice_diff"]) == pytest.approx(0.05)
    assert m["stat_dice_verdict"] == "better"
    hd = np.array([1.0] * 7 + [(2.0 + DIAG) / 2 - 2.0])  # seed mean after the policy
    assert float(m["stat_hd95_diff"]) == pytest.approx(hd.mean())
    md = (out / "report.md").read_text()
    assert "\n| m/seed0 | spleen | 1 | 1 |" in md and "\n| m | spleen | 1, 1 | 1, 1 |" in md
    assert "| m | spleen | 2 | 0.860 ± 0.071 |" in md  # over seeds: seed means ± sd
    assert "| seed | 0, 1 |" in md and "| aug | flip |" in md
    assert "| training wall time | 4.0 s (seed 0: 1.5 s, seed 1: 2.5 s) |" in md
    cases = pd.read_csv(cases_csv, keep_default_na=False, dtype=str)
    t8 = cases[(cases.method == "m") & (cases.case == "t8") & (cases.metric == "hd95")]
    assert t8["seed"].tolist() == ["0", "1", "pooled"]
    assert t8["value"].tolist()[1:] == ["", ""]  # undefined: empty, as in report.csv
    got = [float(v) for v in t8["value_for_statistics"]]
    assert got == pytest.approx([2.0, DIAG, (2.0 + DIAG) / 2])


def test_plot_links_in_order_and_bad_names(three: Path, tmp_path: Path, capsys) -> None:
    dirs = [three / "a", three / "b"]
    assert report(tmp_path, dirs, "--plot", "val_dice.png", "--plot", "lr.png") == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Plots\n\n![val_dice](val_dice.png)\n\n![lr](lr.png)\n" in md
    rc = report(tmp_path / "x", dirs, "--plot", "../x.png")
    err = capsys.readouterr().err
    assert rc == 2 and "--plot: '../x.png': a file name beside the report" in err


def test_unknown_stat_reference_refused(three: Path, tmp_path: Path, capsys) -> None:
    rc = report(tmp_path, [three / "a", three / "b"], "--stat-reference", "z")
    err = capsys.readouterr().err
    assert rc == 2 and "--stat-reference: 'z' is not one of the methods reported (a, b)" in err
    assert not (tmp_path / "report.md").exists()


def test_test_case_missing_from_case_store_refused(
    three: Path, store: Path, tmp_path: Path, capsys
) -> None:
    (store / "t3" / "meta.json").unlink()
    rc = report(tmp_path, [three / "a", three / "b"], "--cases", str(store))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "t3/meta.json: test case missing from the case store (--cases)" in err
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "report.csv").exists()
