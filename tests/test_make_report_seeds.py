"""Make-level test of the report with seeds: `SEEDS='0 1' NET=Dimwit EPC=1 BS=16`, 2 methods.

One run of `make -f spleen.make TOY=1 SEEDS='0 1' NET=Dimwit EPC=1 METHODS='gdl
gdl_boundary' report` (the toy has 3 test cases), then: the report has each seed's row
and each method's pooled row, the statistics of gdl_boundary against gdl (the
reference: first in METHODS) recomputed from the per-case CSV, and image links to
plots that exist.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import copy_project
from segline.stats import (
    bca_ci,
    holm,
    min_wilcoxon_p,
    no_verdict_note,
    paired_bootstrap_ci,
    wilcoxon_n,
    wilcoxon_p,
)

pytestmark = pytest.mark.make

ARGS = (
    "-f", "spleen.make", "TOY=1", "SEEDS=0 1", "NET=Dimwit", "EPC=1", "BS=16",
    "METHODS=gdl gdl_boundary", "report",
)  # fmt: skip
EXACT_P_N3 = {0.25, 0.5, 0.75, 1.0}
"""Every two-sided exact Wilcoxon p-value with 3 non-zero differences (2·k/8, capped)."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:
    root = copy_project(tmp_path_factory.mktemp("seeds"))
    proc: subprocess.CompletedProcess[str] = run_make(root, "-j2", *ARGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def test_report_per_seed_pooled_and_statistics(built: Path) -> None:
    res = built / "results" / "spleen-toy" / "seeds"
    md = (res / "report.md").read_text()
    csv = pd.read_csv(res / "report.csv", keep_default_na=False, dtype=str)
    labels = [
        m + (f"/seed{s}" if s else "") for m, s in zip(csv["method"], csv["seed"], strict=True)
    ]
    assert labels == [
        "gdl/seed0", "gdl/seed1", "gdl", "gdl_boundary/seed0", "gdl_boundary/seed1",
        "gdl_boundary",
    ]  # fmt: skip
    assert csv["pooled_seeds"].tolist() == ["", "", "2", "", "", "2"]
    assert set(csv["n_test_cases"]) == {"3"}
    assert csv.loc[csv["seed"] == "", "best_epoch"].tolist() == ["1, 1", "1, 1"]
    for label in labels:
        assert f"\n| {label} | spleen | " in md
    assert "## Over seeds (mean ± sd of each seed's mean over test cases)" in md

    # the pooled mean is the mean of the pooled per-case values = mean of seed means
    cases = pd.read_csv(res / "report_cases.csv", keep_default_na=False, dtype=str)
    cases = cases[cases["class"] == "spleen"]
    num = pd.to_numeric

    def per_case(method: str, seed: str, metric: str, column: str = "value") -> np.ndarray:
        sel = cases[(cases.method == method) & (cases.seed == seed) & (cases.metric == metric)]
        assert len(sel) == 3
        return num(sel[column].replace("", "nan")).to_numpy()

    pooled = per_case("gdl", "pooled", "dice")
    np.testing.assert_allclose(
        pooled, (per_case("gdl", "0", "dice") + per_case("gdl", "1", "dice")) / 2
    )
    gdl_row = csv[(csv.method == "gdl") & (csv.seed == "")].iloc[0]
    assert float(gdl_row["test_dice_mean"]) == pytest.approx(pooled.mean())

    # statistics of gdl_boundary against gdl, from the per-case values
    assert (csv["stat_reference"] == "gdl").all()
    row = csv[(csv.method == "gdl_boundary") & (csv.seed == "")].iloc[0]
    for metric in ("dice", "hd95"):
        a = per_case("gdl_boundary", "pooled", metric, "value_for_statistics")
        b = per_case("gdl", "pooled", metric, "value_for_statistics")
        assert np.isfinite(a).all() and np.isfinite(b).all()  # undefined → FOV diagonal
        diffs = a - b
        mean, lo, hi = paired_bootstrap_ci(diffs)
        p = wilcoxon_p(diffs)
        assert row[f"stat_{metric}_n"] == "3"
        assert float(row[f"stat_{metric}_diff"]) == pytest.approx(mean)
        assert float(row[f"stat_{metric}_ci_lo"]) == pytest.approx(lo)
        assert float(row[f"stat_{metric}_ci_hi"]) == pytest.approx(hi)
        assert float(row[f"stat_{metric}_p"]) == pytest.approx(p)
        # n = 3: the smallest two-sided p is 2/2**3 = 0.25; one method compared: Holm = p
        assert float(row[f"stat_{metric}_p"]) >= 0.25
        if np.unique(np.abs(np.round(diffs, 12))).size == 3 and (diffs != 0).all():
            assert min(EXACT_P_N3, key=lambda v: abs(v - p)) == pytest.approx(p)
        assert float(row[f"stat_{metric}_p_holm"]) == pytest.approx(holm([p])[0])
        assert row[f"stat_{metric}_verdict"] == "no evidence"
        # 3 cases: no data could reach p < 0.05, and the report says so, per metric
        n_nonzero, ties = wilcoxon_n(diffs)
        floor = min_wilcoxon_p(n_nonzero, ties)
        note = no_verdict_note(n_nonzero, 3, floor, floor, 1)
        assert floor >= 0.05 and note.endswith(": cannot reach p < 0.05")
        assert row[f"stat_{metric}_verdict_note"] == note
        assert float(row[f"stat_{metric}_min_p"]) == pytest.approx(floor)
        assert row[f"stat_{metric}_ci_indicative"] == "True"
        bca_lo, bca_hi, bca_method = bca_ci(diffs)
        assert row[f"stat_{metric}_bca_method"] == bca_method
        assert float(row[f"stat_{metric}_bca_lo"]) == pytest.approx(bca_lo)
        assert float(row[f"stat_{metric}_bca_hi"]) == pytest.approx(bca_hi)
        assert f"| no evidence ({note}) | 3 |" in md
    header = "| method | Δ Dice (95 % CI) | BCa 95 % CI | Wilcoxon p | Holm p | verdict | n |"
    assert header in md and "What the numbers can say" in md
    assert "### HD95 (mm): lower is better" in md

    # an undefined HD95 counts as the case's field-of-view diagonal (meta.json)
    raw = cases[(cases.metric == "hd95") & (cases.value == "")]  # undefined
    for _, r in raw.iterrows():
        meta = json.loads(
            (built / "data" / "spleen-toy" / "cases" / r["case"] / "meta.json").read_text()
        )
        extent = np.asarray(meta["shape"], float) * np.asarray(meta["spacing"], float)
        if r["seed"] != "pooled":
            assert float(r["value_for_statistics"]) == pytest.approx(math.hypot(*extent))


def test_report_links_existing_plots(built: Path) -> None:
    res = built / "results" / "spleen-toy" / "seeds"
    md = (res / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"val_dice.png", "test_dice_boxplot.png", "overlays.png"} <= set(links)
    for name in links:
        assert "/" not in name and (res / name).is_file(), name
    assert "## Configuration and provenance" in md and "| seed | 0, 1 |" in md
