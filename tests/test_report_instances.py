"""The report on an instance task (vertebrae): two hand-written method folders.

``iterative`` and ``semantic``, 6 test cases, metrics.csv rows as written by
:func:`segline.metrics.instances.instance_rows`: per-vertebra rows (classes L1, L2, with
values that would change every mean if they were used) and the per-case ``spine``
rows, which alone are reported. Hand means (spine rows):

* iterative: Dice 5.0/6, ASSD 6.0/5 over 5 defined (1 undefined), ID rate 5/6,
  false positives 2/6, misses 4/6;
* semantic: Dice 4.5/6, ASSD 2.0, ID rate 4/6, false positives 23/6, misses 7/6.

False positives iterative − semantic: −1, −2, …, −6 (no ties, no zero): exact
Wilcoxon p = 2/2⁶ = 0.03125 < 0.05, mean −3.5, verdict "better" (lower is better).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from segline.cli import run
from segline.report import main

NAN = math.nan
CASES = [f"t{i}" for i in range(1, 7)]
SPINE = {
    "iterative": {
        "dice": [0.9, 0.8, 0.85, 0.95, 0.7, 0.8],
        "assd": [1.0, 2.0, NAN, 1.5, 0.5, 1.0],
        "id_rate": [1.0, 0.75, 1.0, 1.0, 0.5, 0.75],
        "false_positives": [0, 1, 0, 0, 1, 0],
        "misses": [0, 1, 0, 0, 2, 1],
    },
    "semantic": {
        "dice": [0.8, 0.7, 0.8, 0.9, 0.6, 0.7],
        "assd": [2.0, 3.0, 2.0, 2.0, 1.0, 2.0],
        "id_rate": [0.75, 0.5, 0.75, 1.0, 0.5, 0.5],
        "false_positives": [1, 3, 3, 4, 6, 6],
        "misses": [1, 1, 1, 0, 2, 2],
    },
}
METRICS = "dice,assd,id_rate,false_positives,misses"
COLS = ["epoch", "split", "case", "class", "metric", "value"]


def write_method(root: Path, name: str) -> Path:
    """A training folder: 2 epochs (best 2), 2 validation cases, 6 test cases."""
    folder = root / name
    (folder / "test").mkdir(parents=True)
    pd.DataFrame(
        {"epoch": [1, 2], "tra_loss": [1.0, 0.5], "val_dice": [0.5, 0.6], "seconds": [2.0, 2.0]}
    ).to_csv(folder / "epochs.csv", index=False)
    rows = []
    for e, values in ((1, (0.45, 0.55)), (2, (0.55, 0.65))):
        for case, v in zip(("v1", "v2"), values, strict=True):
            rows += [(e, "val", case, "L1", "dice", 0.0), (e, "val", case, "spine", "dice", v)]
    test = []
    for i, case in enumerate(CASES):
        if i % 2:  # a vertebra only some cases have
            test += [(2, "test", case, "L1", "dice", 0.0), (2, "test", case, "L1", "assd", NAN)]
        test += [(2, "test", case, "L2", "dice", 0.1), (2, "test", case, "L2", "assd", 99.0)]
        test += [(2, "test", case, "spine", m, v[i]) for m, v in SPINE[name].items()]
    pd.DataFrame(rows + test, columns=COLS).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(test, columns=COLS).to_csv(folder / "test" / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text("2\n")
    args = {"net": "Dimwit", "epochs": 2, "seed": 0, "method": name}
    (folder / "args.json").write_text(json.dumps(args, sort_keys=True))
    return folder


@pytest.fixture
def report(tmp_path: Path) -> tuple[str, pd.DataFrame]:
    """The report page and CSV of the two methods against ``semantic``."""
    root = tmp_path / "results" / "vertebrae-toy"
    dirs = [str(write_method(root, name)) for name in SPINE]
    store = tmp_path / "data" / "vertebrae-toy" / "cases"  # FOV diagonal sqrt(3 · 20²) mm
    store.mkdir(parents=True)
    (store / "split.json").write_text(json.dumps({"test": CASES}))
    for c in CASES:
        (store / c).mkdir()
        meta = {"shape": [10, 20, 20], "spacing": [2.0, 1.0, 1.0]}
        (store / c / "meta.json").write_text(json.dumps(meta))
    out, csv = tmp_path / "report.md", tmp_path / "report.csv"
    argv = ["--out", str(out), "--csv", str(csv), "--metrics", METRICS, "--cases", str(store)]
    assert run(main, [*argv, "--stat-reference", "semantic", *dirs]) == 0
    return out.read_text(), pd.read_csv(csv).set_index("method")


def test_table_values_are_the_spine_rows_hand_means(report: tuple[str, pd.DataFrame]) -> None:
    page, table = report
    assert table["class"].tolist() == ["spine", "spine"]  # never L1 / L2
    hand = {
        "iterative": {"dice": 5.0 / 6, "assd": 6.0 / 5, "id_rate": 5 / 6,
                      "false_positives": 2 / 6, "misses": 4 / 6},
        "semantic": {"dice": 4.5 / 6, "assd": 2.0, "id_rate": 4 / 6,
                     "false_positives": 23 / 6, "misses": 7 / 6},
    }  # fmt: skip
    for method, means in hand.items():
        for metric, mean in means.items():
            assert table.loc[method, f"test_{metric}_mean"] == pytest.approx(mean)
        assert table.loc[method, "n_test_cases"] == 6
        assert table.loc[method, "val_dice"] == pytest.approx(0.6)  # spine, best epoch
    assert table.loc["iterative", "test_assd_undefined"] == 1
    assert "| iterative | spine | 2 | 2 | 0.600 | 0.833 ± " in page
    assert "| L1 |" not in page and "| L2 |" not in page


def test_direction_marks(report: tuple[str, pd.DataFrame]) -> None:
    """Higher Dice / ID rate, lower false positives / misses win; a method with an
    undefined ASSD is never best on ASSD."""
    page, table = report
    best = {m: sorted(table.index[table[f"best_test_{m}"]]) for m in METRICS.split(",")}
    assert best == {
        "dice": ["iterative"],
        "assd": ["semantic"],
        "id_rate": ["iterative"],
        "false_positives": ["iterative"],
        "misses": ["iterative"],
    }
    assert "highest Dice/ID rate, lowest ASSD/False positives/Misses" in page


def test_statistics_name_the_comparison(report: tuple[str, pd.DataFrame]) -> None:
    page, table = report
    assert "## Statistics: each method against semantic (paired over test cases)" in page
    assert "### False positives: lower is better" in page
    assert "### ID rate: higher is better" in page
    row = table.loc["iterative"]
    assert row["stat_reference"] == "semantic"
    assert row["stat_false_positives_diff"] == pytest.approx(-3.5)
    assert row["stat_false_positives_p"] == pytest.approx(2 / 64)
    assert row["stat_false_positives_verdict"] == "better"
    assert row["stat_false_positives_n"] == 6
    assert row["stat_misses_n"] == 6  # paired cases (zero differences included)
    assert row["stat_id_rate_diff"] == pytest.approx(1 / 6)
    # ASSD: iterative's undefined t3 counts as the FOV diagonal; the other five cases
    # are 1, 1, 0.5, 0.5, 1 mm better
    assert row["stat_assd_diff"] == pytest.approx((math.sqrt(1200) - 2.0 - 4.0) / 6)
    assert (row["stat_assd_undefined_method"], row["stat_assd_undefined_reference"]) == (1, 0)
    assert "| iterative | **-3.500 [" in page  # bold: evidence
    assert "Instances (vertebrae): predicted instances are matched one-to-one" in page


def test_boxplot_shows_the_spine_row_only(tmp_path: Path) -> None:
    """The test boxplot reads the same classes: one panel, the per-case spine values."""
    from segline.plots import boxplot
    from segline.results import load_methods

    root = tmp_path / "results" / "vertebrae-toy"
    runs = load_methods([write_method(root, name) for name in SPINE])
    classes, values = boxplot.case_values(runs, "false_positives")
    assert classes == ["spine"]
    assert values["spine"]["semantic"].tolist() == SPINE["semantic"]["false_positives"]
    assert runs[0].test_table("dice", ["L2"]).shape == (6, 1)  # explicit classes still work
