"""CSVs at full precision: what the trainer writes and the report reads back is the
computed value, not a ``%.6g`` rounding of it (an HD95 of 123.456789012 mm was
written as 123.457, and the report's means were means of such roundings)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from segline.cli import run
from segline.csvio import csv_text
from segline.report import main as report_main
from segline.results import read_long
from segline.train.loop import EPOCH_COLUMNS, TIMING_COLUMNS, Trainer

HD95 = [123.456789012, 456.789012345, 987.654321098]  # mm, per test case
DICE = [0.912345678901, 0.823456789012, 0.734567890123]
ASSD = [101.234567891, 202.345678912, 303.456789123]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


def _g6(x: float) -> float:
    return float(f"{x:.6g}")


def test_trainer_tables_round_trip(tmp_path: Path) -> None:
    """metrics.csv, epochs.csv, timing.csv from Trainer._write_tables read back exactly."""
    records = [
        {"epoch": 1, "split": "val", "case": "c1", "class": "spleen", "metric": "hd95",
         "value": HD95[0]},
        {"epoch": 1, "split": "val", "case": "c1", "class": "spleen", "metric": "dice",
         "value": DICE[0]},
        {"epoch": 1, "split": "val", "case": "c2", "class": "spleen", "metric": "hd95",
         "value": math.nan},
    ]  # fmt: skip
    epoch = {c: 0.0 for c in {*EPOCH_COLUMNS, *TIMING_COLUMNS}}
    epoch |= {"epoch": 1, "tra_loss": 0.123456789012345, "lr": 1.23456789e-4}
    epoch |= {"seconds": 12.3456789}
    Trainer._write_tables(
        SimpleNamespace(work=tmp_path, epoch_columns=EPOCH_COLUMNS), records, [epoch]
    )

    long = read_long(tmp_path / "metrics.csv")
    hd95 = long[long["metric"] == "hd95"].set_index("case")["value"]
    assert _close(hd95["c1"], HD95[0]) and math.isnan(hd95["c2"])
    assert _close(float(long[long["metric"] == "dice"]["value"].iloc[0]), DICE[0])
    assert not _close(_g6(HD95[0]), HD95[0])  # what %.6g made of it: 123.457

    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert _close(epochs["tra_loss"].iloc[0], 0.123456789012345)
    assert _close(epochs["lr"].iloc[0], 1.23456789e-4)
    assert _close(pd.read_csv(tmp_path / "timing.csv")["seconds"].iloc[0], 12.3456789)


def _write_method(root: Path, name: str) -> Path:
    """A one-class training folder (2 epochs, 2 validation cases, 3 test cases)."""
    folder = root / name
    (folder / "test").mkdir(parents=True)
    epochs = pd.DataFrame(
        {
            "epoch": [1, 2],
            "tra_loss": [1.0, 0.5],
            "tra_dice": [0.5, 0.6],
            "val_loss": [1.0, 0.6],
            "val_dice": [0.5, 0.7],
            "val_hd95": [9.0, 8.0],
            "val_assd": [3.0, 2.0],
            "alpha": [0.01, 0.02],
            "lr": [1e-3, 1e-3],
            "seconds": [1.5, 1.5],
        }
    )
    (folder / "epochs.csv").write_text(csv_text(epochs))
    cols = ["epoch", "split", "case", "class", "metric", "value"]
    rows = []
    for e, dice in ((1, 0.5), (2, 0.7)):
        for case in ("v1", "v2"):
            rows += [
                (e, "val", case, "spleen", "dice", dice),
                (e, "val", case, "spleen", "hd95", 9.0),
                (e, "val", case, "spleen", "assd", 3.0),
            ]
    test = []
    for i, case in enumerate(("t1", "t2", "t3")):
        test += [
            (2, "test", case, "spleen", "dice", DICE[i]),
            (2, "test", case, "spleen", "hd95", HD95[i]),
            (2, "test", case, "spleen", "assd", ASSD[i]),
        ]
    (folder / "metrics.csv").write_text(csv_text(pd.DataFrame(rows + test, columns=cols)))
    (folder / "test" / "metrics.csv").write_text(csv_text(pd.DataFrame(test, columns=cols)))
    (folder / "best_epoch.txt").write_text("2\n")
    args = {"out": str(folder), "net": "Dimwit", "epochs": 2, "lr": 0.001, "seed": 0}
    (folder / "args.json").write_text(json.dumps(args | {"losses": "gdl:1"}, sort_keys=True))
    return folder


def test_report_means_and_sds_are_exact(tmp_path: Path) -> None:
    """report.csv's means/SDs equal the exact ones over the hand values (to 1e-9), and
    report_cases.csv repeats each value unrounded."""
    folder = _write_method(tmp_path / "results" / "toy", "gdl")
    out = tmp_path / "out"
    out.mkdir()
    argv = ["--out", str(out / "report.md"), "--csv", str(out / "report.csv")]
    argv += ["--cases-csv", str(out / "report_cases.csv"), str(folder)]
    assert run(report_main, argv) == 0

    row = pd.read_csv(out / "report.csv").set_index("method").loc["gdl"]
    for metric, values in (("hd95", HD95), ("dice", DICE), ("assd", ASSD)):
        mean, sd = math.fsum(values) / 3, statistics.stdev(values)
        assert _close(row[f"test_{metric}_mean"], mean), metric
        assert _close(row[f"test_{metric}_sd"], sd), metric
    # the mean of %.6g-rounded values is off by more than the tolerance
    assert not _close(math.fsum(_g6(v) for v in HD95) / 3, math.fsum(HD95) / 3)

    cases = pd.read_csv(out / "report_cases.csv")
    hd95 = cases[cases["metric"] == "hd95"].set_index("case")["value"]
    assert [hd95[c] for c in ("t1", "t2", "t3")] == HD95
