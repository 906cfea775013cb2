"""Tests for segline.report on small synthetic result folders with hand-set numbers.

Three methods, 4 epochs, 3 validation cases, 3 test cases. Test values per method
(class ``spleen``) are chosen so the expected mean ± sd are exact by hand:

* boundary: Dice 0.80/0.90/0.70 (0.800 ± 0.100); HD95 3/5/NaN (4.00 ± 1.41, 1 undefined)
* dice:     Dice 0.70/0.75/0.80 (0.750 ± 0.050); HD95 2/4/6 (4.00 ± 2.00) → HD95 tie
* focal:    Dice 0.60/0.70/0.65 (0.650 ± 0.050); HD95 8/9/10 (9.00 ± 1.00)

A second, vessels-style set (``full``, ``mip``, ``mip_boundary``, ``pseudo``; with
clDice and MIP Dice) checks ``--metrics`` and ``--reference full`` (table further down).
"""

from __future__ import annotations

import json
import math
import re
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import segline.experiments.vessels.mipdice  # noqa: F401  (registers mip_dice)
from segline.cli import run
from segline.report import main

NAN = math.nan
VAL_CASES = ("v1", "v2", "v10")  # natural order: v1, v2, v10
VAL_DELTA = {"v1": -0.1, "v2": 0.0, "v10": 0.1}
TEST_CASES = ("t1", "t2", "t3")
VAL_MEAN = {  # mean validation Dice per epoch 1..4
    "boundary": [0.50, 0.60, 0.70, 0.80],
    "dice": [0.55, 0.65, 0.72, 0.75],
    "focal": [0.40, 0.60, 0.70, 0.65],
}
BEST = {"boundary": 4, "dice": 4, "focal": 3}
TEST = {  # metric -> per test case values, class spleen
    "boundary": {"dice": [0.80, 0.90, 0.70], "hd95": [3.0, 5.0, NAN], "assd": [1.0, 2.0, NAN]},
    "dice": {"dice": [0.70, 0.75, 0.80], "hd95": [2.0, 4.0, 6.0], "assd": [0.5, 1.0, 1.5]},
    "focal": {"dice": [0.60, 0.70, 0.65], "hd95": [8.0, 9.0, 10.0], "assd": [2.0, 3.0, 4.0]},
}
SECOND = {"dice": -0.2, "hd95": 1.0, "assd": 0.5}  # offset of the second class's values


def write_method(
    root: Path, name: str, classes: tuple[str, ...] = ("spleen",), best: int | None = None
) -> Path:
    """Write ``root/<name>/`` with epochs.csv, metrics.csv, best_epoch.txt, test/metrics.csv."""
    folder = root / name
    (folder / "test").mkdir(parents=True)
    best_epoch = BEST[name] if best is None else best
    epochs = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "tra_loss": [1.0, 0.5, 0.25, 0.125],
            "tra_dice": [0.4, 0.6, 0.7, 0.8],
            "val_loss": [1.1, 0.6, 0.4, 0.3],
            "val_dice": VAL_MEAN[name],
            "val_hd95": [9.0, 8.0, 7.0, 6.0],
            "val_assd": [3.0, 2.0, 1.5, 1.0],
            "alpha": [0.01, 0.02, 0.03, 0.04],
            "lr": [1e-3] * 4,
            "seconds": [1.5] * 4,
        }
    )
    epochs.to_csv(folder / "epochs.csv", index=False)
    rows = []
    for e in range(1, 5):
        for case in VAL_CASES:
            rows.append((e, "val", case, "background", "dice", 0.99))
            for k, cls in enumerate(classes):
                off = k * SECOND["dice"]
                rows.append(
                    (e, "val", case, cls, "dice", VAL_MEAN[name][e - 1] + VAL_DELTA[case] + off)
                )
                hd = (
                    NAN
                    if (name == "focal" and e == 2 and case == "v2")
                    else 10.0 - e + 10 * VAL_DELTA[case]
                )
                rows.append((e, "val", case, cls, "hd95", hd + k))
                rows.append((e, "val", case, cls, "assd", hd / 4 + k))
    test_rows = []
    for i, case in enumerate(TEST_CASES):
        test_rows.append((best_epoch, "test", case, "background", "dice", 1.0))
        for k, cls in enumerate(classes):
            for metric, values in TEST[name].items():
                test_rows.append(
                    (best_epoch, "test", case, cls, metric, values[i] + k * SECOND[metric])
                )
    cols = ["epoch", "split", "case", "class", "metric", "value"]
    pd.DataFrame(rows + test_rows, columns=cols).to_csv(
        folder / "metrics.csv", index=False, na_rep="nan"
    )
    pd.DataFrame(test_rows, columns=cols).to_csv(folder / "test" / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text(f"{best_epoch}\n")
    write_args(folder, name)
    return folder


def write_args(folder: Path, name: str, **extra: object) -> None:
    """A minimal ``args.json`` (the report's configuration section reads it)."""
    args = {"out": str(folder), "net": "Dimwit", "epochs": 4, "lr": 0.001, "seed": 0}
    args |= {"losses": f"{name}:1"} | extra
    (folder / "args.json").write_text(json.dumps(args, sort_keys=True))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """results/toy/ with three methods, one foreground class."""
    root = tmp_path / "results" / "toy"
    for name in VAL_MEAN:
        write_method(root, name)
    return root


def results_lines(md: str) -> list[str]:
    """The lines of the results table (the first table of the page)."""
    section = md.split("## Results (test: mean ± sd over test cases)\n", 1)[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def run_report(results: Path, out: Path, *extra: str, methods: list[str] | None = None) -> int:
    names = methods if methods is not None else sorted(VAL_MEAN)
    dirs = [str(results / n) for n in names]
    return run(
        main, ["--out", str(out / "report.md"), "--csv", str(out / "report.csv"), *extra, *dirs]
    )


def test_numbers_equal_hand_computed(results: Path, tmp_path: Path, capsys) -> None:
    assert run_report(results, tmp_path) == 0
    csv = pd.read_csv(tmp_path / "report.csv").set_index("method")
    assert list(csv.index) == ["boundary", "dice", "focal"]
    assert (csv["class"] == "spleen").all()
    assert csv["best_epoch"].to_dict() == {"boundary": 4, "dice": 4, "focal": 3}
    assert (csv["epochs_trained"] == 4).all()
    assert (csv["n_val_cases"] == 3).all() and (csv["n_test_cases"] == 3).all()
    # validation Dice at the best epoch: mean over v1, v2, v10 = VAL_MEAN at that epoch
    np.testing.assert_allclose(csv["val_dice"], [0.80, 0.75, 0.70], atol=1e-12)
    np.testing.assert_allclose(csv["test_dice_mean"], [0.80, 0.75, 0.65], atol=1e-12)
    np.testing.assert_allclose(csv["test_dice_sd"], [0.10, 0.05, 0.05], atol=1e-12)
    np.testing.assert_allclose(csv["test_hd95_mean"], [4.0, 4.0, 9.0], atol=1e-12)
    np.testing.assert_allclose(csv["test_hd95_sd"], [math.sqrt(2), 2.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(csv["test_assd_mean"], [1.5, 1.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(csv["test_assd_sd"], [math.sqrt(0.5), 0.5, 1.0], atol=1e-12)
    assert csv["test_hd95_undefined"].to_dict() == {"boundary": 1, "dice": 0, "focal": 0}
    assert csv["test_assd_undefined"].to_dict() == {"boundary": 1, "dice": 0, "focal": 0}
    assert csv["test_dice_undefined"].sum() == 0
    # best per metric; boundary's HD95 mean ties with dice's, but boundary has an
    # undefined case (counts as the worst): never best on a distance metric
    assert csv["best_test_dice"].to_dict() == {"boundary": True, "dice": False, "focal": False}
    assert csv["best_test_hd95"].to_dict() == {"boundary": False, "dice": True, "focal": False}
    assert csv["best_test_assd"].to_dict() == {"boundary": False, "dice": True, "focal": False}
    assert csv["best_val_dice"].to_dict() == {"boundary": True, "dice": False, "focal": False}

    md = (tmp_path / "report.md").read_text()
    row = {line.split("|")[1].strip(): line for line in results_lines(md)}
    # no bold in the results table: bold marks only differences with evidence
    assert "| 0.800 ± 0.100 |" in row["boundary"]
    assert "| 4.00 ± 1.41 (1 undefined) |" in row["boundary"]
    assert "1.50 ± 0.71 (1 undefined)" in row["boundary"]
    assert "| 4.00 ± 2.00 |" in row["dice"] and "| 1.00 ± 0.50 |" in row["dice"]
    assert "0.650 ± 0.050" in row["focal"]
    assert "**" not in "".join(results_lines(md))
    assert (
        "best epoch selected on mean validation Dice over 3 validation cases; "
        "all test numbers below on the 3 held-out test cases" in md.replace("Best", "best")
    )
    assert "95th percentile of the pooled symmetric surface distances" in md
    assert "Dice(empty, empty) = 1" in md
    assert "Note:" not in md  # every best epoch is the validation-Dice maximum
    out = capsys.readouterr().out
    assert row["boundary"] in out and row["focal"] in out  # the table is printed


def test_deterministic_bytes_no_date_no_host(results: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_report(results, a) == 0
    assert run_report(results, b, methods=["focal", "boundary", "dice"]) == 0  # order given
    for name in ("report.md", "report.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    text = (a / "report.md").read_text() + (a / "report.csv").read_text()
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}", text)
    assert socket.gethostname() not in text
    assert "# Results: toy" in text


def test_dataset_name_option(results: Path, tmp_path: Path) -> None:
    assert run_report(results, tmp_path, "--dataset", "Task09_Spleen") == 0
    assert (tmp_path / "report.md").read_text().startswith("# Results: Task09_Spleen\n")
    assert (pd.read_csv(tmp_path / "report.csv")["dataset"] == "Task09_Spleen").all()


def test_several_classes_rows_per_class_and_mean(tmp_path: Path) -> None:
    root = tmp_path / "results" / "liver"
    for name in ("boundary", "dice"):
        write_method(root, name, classes=("liver", "tumour"))
    assert run_report(root, tmp_path, methods=["boundary", "dice"]) == 0
    csv = pd.read_csv(tmp_path / "report.csv")
    assert list(zip(csv["method"], csv["class"], strict=True)) == [
        ("boundary", "liver"), ("boundary", "tumour"), ("boundary", "mean"),
        ("dice", "liver"), ("dice", "tumour"), ("dice", "mean"),
    ]  # fmt: skip
    b = csv[csv["method"] == "boundary"].set_index("class")
    np.testing.assert_allclose(b["test_dice_mean"], [0.80, 0.60, 0.70], atol=1e-12)
    np.testing.assert_allclose(b["test_hd95_mean"], [4.0, 5.0, 4.5], atol=1e-12)
    # the per-case class mean is undefined where any class is: t3 stays undefined
    assert b["test_hd95_undefined"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(b["val_dice"], [0.80, 0.60, 0.70], atol=1e-12)
    # best is decided within each class
    assert csv.groupby("class")["best_test_dice"].sum().to_dict() == {
        "liver": 1,
        "mean": 1,
        "tumour": 1,
    }


def test_note_when_best_epoch_is_not_the_validation_maximum(tmp_path: Path) -> None:
    root = tmp_path / "results" / "toy"
    write_method(root, "dice", best=2)
    assert run_report(root, tmp_path, methods=["dice"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert (
        "Note: dice: best_epoch.txt says 2, but the highest validation Dice in epochs.csv "
        "is at epoch 4." in md
    )
    np.testing.assert_allclose(pd.read_csv(tmp_path / "report.csv")["val_dice"], [0.65])


def _assert_refused(capsys, tmp_path: Path, rc: int, needle: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("segline: ") and needle in err
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "report.csv").exists()


def test_missing_method_folder(results: Path, tmp_path: Path, capsys) -> None:
    rc = run_report(results, tmp_path, methods=["boundary", "nosuch"])
    _assert_refused(capsys, tmp_path, rc, "nosuch: method results folder not found")


@pytest.mark.parametrize("content", ["", "epoch,split,case,class,metric,value\n"])
def test_empty_metrics_csv(results: Path, tmp_path: Path, capsys, content: str) -> None:
    (results / "dice" / "metrics.csv").write_text(content)
    rc = run_report(results, tmp_path)
    _assert_refused(capsys, tmp_path, rc, "metrics.csv: ")


def test_duplicate_rows_refused(results: Path, tmp_path: Path, capsys) -> None:
    path = results / "focal" / "test" / "metrics.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[-1]]) + "\n")
    _assert_refused(capsys, tmp_path, run_report(results, tmp_path), "duplicate row")


def test_test_rows_not_at_best_epoch_refused(results: Path, tmp_path: Path, capsys) -> None:
    (results / "boundary" / "best_epoch.txt").write_text("3\n")
    rc = run_report(results, tmp_path)
    _assert_refused(capsys, tmp_path, rc, "best_epoch.txt says 3")


# ---- vessels-style results: more metrics, methods as a fraction of ``full`` ---------
#
# Two test cases, class ``vessel``, best epoch 3 for every method. Means by hand:
#
#   method        Dice   clDice  MIP Dice  HD95 (mm)       ASSD (mm)
#   full          0.85   0.80    0.90      3.0             1.00
#   mip           0.765  0.64    0.945     4.0             1.00
#   mip_boundary  0.76   0.76    0.90      3.0             0.75
#   pseudo        0.675  0.60    0.81      6.0 (1 undef.)  2.00 (1 undef.)
#
# Fractions of full (Dice, clDice, MIP Dice):
#   mip 90.0 %, 80.0 %, 105.0 %; mip_boundary 89.4 % (0.76/0.85), 95.0 %, 100.0 %;
#   pseudo 79.4 % (0.675/0.85), 75.0 %, 90.0 %; full 100.0 % everywhere.
VESSEL_TEST = {  # method -> metric -> values of test cases t1, t2
    "full": {"dice": [0.80, 0.90], "cldice": [0.90, 0.70], "mip_dice": [0.95, 0.85],
             "hd95": [2.0, 4.0], "assd": [0.5, 1.5]},
    "mip": {"dice": [0.70, 0.83], "cldice": [0.72, 0.56], "mip_dice": [0.99, 0.90],
            "hd95": [3.0, 5.0], "assd": [1.0, 1.0]},
    "mip_boundary": {"dice": [0.72, 0.80], "cldice": [0.80, 0.72], "mip_dice": [0.90, 0.90],
                     "hd95": [2.5, 3.5], "assd": [0.75, 0.75]},
    "pseudo": {"dice": [0.60, 0.75], "cldice": [0.60, 0.60], "mip_dice": [0.90, 0.72],
               "hd95": [6.0, NAN], "assd": [2.0, NAN]},
}  # fmt: skip
VESSEL_METRICS = "dice,cldice,hd95,assd,mip_dice"
VESSEL_VAL_DICE = [0.5, 0.6, 0.7]  # mean validation Dice per epoch 1..3 (best: 3)


def write_vessel_method(root: Path, name: str) -> Path:
    """``root/<name>/`` with 3 epochs, 2 validation and 2 test cases, all five metrics."""
    folder = root / name
    (folder / "test").mkdir(parents=True)
    pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "tra_loss": [1.0, 0.8, 0.6],
            "tra_dice": [0.4, 0.5, 0.6],
            "val_loss": [1.0, 0.9, 0.8],
            "val_dice": VESSEL_VAL_DICE,
            "val_hd95": [5.0, 4.0, 3.0],
            "val_assd": [2.0, 1.5, 1.0],
            "alpha": [0.0] * 3,
            "lr": [1e-3] * 3,
            "seconds": [2.0] * 3,
        }
    ).to_csv(folder / "epochs.csv", index=False)
    rows = []
    for e, mean in enumerate(VESSEL_VAL_DICE, start=1):
        for case, delta in (("v1", -0.05), ("v2", 0.05)):
            rows.append((e, "val", case, "background", "dice", 0.99))
            for metric, value in (
                ("dice", mean + delta),
                ("cldice", mean - 0.1 + delta),
                ("hd95", 6.0 - e),
                ("assd", 3.0 - e / 2),
                ("mip_dice", mean + 0.1),
            ):
                rows.append((e, "val", case, "vessel", metric, value))
    test = [
        (3, "test", case, "vessel", metric, values[i])
        for i, case in enumerate(("t1", "t2"))
        for metric, values in VESSEL_TEST[name].items()
    ]
    cols = ["epoch", "split", "case", "class", "metric", "value"]
    pd.DataFrame(rows + test, columns=cols).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(test, columns=cols).to_csv(folder / "test" / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text("3\n")
    write_args(folder, name)
    return folder


@pytest.fixture
def vessels(tmp_path: Path) -> Path:
    """results/vessels/ with full, mip, mip_boundary, pseudo."""
    root = tmp_path / "results" / "vessels"
    for name in VESSEL_TEST:
        write_vessel_method(root, name)
    return root


def run_vessels(root: Path, out: Path, *extra: str) -> int:
    return run_report(root, out, *extra, methods=["pseudo", "mip", "full", "mip_boundary"])


def test_vessels_metrics_and_fractions_of_full(vessels: Path, tmp_path: Path) -> None:
    rc = run_vessels(vessels, tmp_path, "--metrics", VESSEL_METRICS, "--reference", "full")
    assert rc == 0
    csv = pd.read_csv(tmp_path / "report.csv").set_index("method")
    names = ["full", "mip", "mip_boundary", "pseudo"]
    assert list(csv.index) == names
    expected_means = {
        "dice": [0.85, 0.765, 0.76, 0.675],
        "cldice": [0.80, 0.64, 0.76, 0.60],
        "mip_dice": [0.90, 0.945, 0.90, 0.81],
        "hd95": [3.0, 4.0, 3.0, 6.0],
        "assd": [1.0, 1.0, 0.75, 2.0],
    }
    for metric, means in expected_means.items():
        np.testing.assert_allclose(csv[f"test_{metric}_mean"], means, atol=1e-12)
    np.testing.assert_allclose(
        csv["test_cldice_sd"], [0.2 / math.sqrt(2), 0.16 / math.sqrt(2), 0.08 / math.sqrt(2), 0.0]
    )
    assert csv["test_hd95_undefined"].tolist() == [0, 0, 0, 1]
    assert csv["test_cldice_undefined"].tolist() == [0, 0, 0, 0]
    # fractions of full: ratios of the means, higher-is-better metrics only
    fractions = {
        "dice": [1.0, 0.765 / 0.85, 0.76 / 0.85, 0.675 / 0.85],
        "cldice": [1.0, 0.80, 0.95, 0.75],
        "mip_dice": [1.0, 1.05, 1.0, 0.90],
    }
    for metric, expected in fractions.items():
        np.testing.assert_allclose(csv[f"{metric}_fraction_of_full"], expected, atol=1e-12)
    assert not [c for c in csv.columns if c.startswith(("hd95_fraction", "assd_fraction"))]
    # best per metric (ties all marked): the direction comes from the metric
    assert [c for c in csv.columns if c.startswith("best_test_")] == [
        f"best_test_{m}" for m in VESSEL_METRICS.split(",")
    ]  # the order asked for
    best = {
        c: csv.index[csv[c]].tolist()
        for c in csv.columns
        if c.startswith("best_") and c != "best_epoch"
    }
    assert best == {
        "best_val_dice": names,  # same validation curve for every method
        "best_test_dice": ["full"],
        "best_test_cldice": ["full"],
        "best_test_hd95": ["full", "mip_boundary"],
        "best_test_assd": ["mip_boundary"],
        "best_test_mip_dice": ["mip"],
    }

    md = (tmp_path / "report.md").read_text()
    lines = results_lines(md)
    assert lines[0] == (
        "| method | class | best epoch | epochs | val Dice | test Dice | test clDice "
        "| test HD95 (mm) | test ASSD (mm) | test MIP Dice | Dice / full | clDice / full "
        "| MIP Dice / full | n test |"
    )
    row = {line.split("|")[1].strip(): line for line in lines[1:]}
    assert row["full"].endswith("| 100.0 % | 100.0 % | 100.0 % | 2 |")
    assert row["mip"].endswith("| 90.0 % | 80.0 % | 105.0 % | 2 |")
    assert row["mip_boundary"].endswith("| 89.4 % | 95.0 % | 100.0 % | 2 |")
    assert row["pseudo"].endswith("| 79.4 % | 75.0 % | 90.0 % | 2 |")
    assert "| 0.800 ± 0.141 |" in row["full"]  # clDice, best (CSV), not bold
    assert "| 0.945 ± 0.064 |" in row["mip"]  # MIP Dice, best (CSV), not bold
    assert "| 6.00 ± – (1 undefined) |" in row["pseudo"]  # one defined HD95: no sd
    assert "Columns '… / full': each method's mean test value as a percentage of full's" in md
    assert "(Dice, clDice, MIP Dice)" in md
    assert "- clDice (centreline Dice): 2·Tprec·Tsens / (Tprec + Tsens)" in md
    assert "- MIP Dice: Dice of the maximum-intensity projection" in md
    assert "(highest Dice/clDice/MIP Dice, lowest HD95/ASSD; ties all marked;" in md


def test_explicit_default_metrics_give_the_same_bytes(results: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_report(results, a) == 0
    assert run_report(results, b, "--metrics", "dice,hd95,assd") == 0
    for name in ("report.md", "report.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    md = (a / "report.md").read_text()
    assert "fraction" not in (a / "report.csv").read_text()
    assert " / " not in "".join(results_lines(md))
    assert "clDice" not in md and "MIP Dice" not in md


def test_metrics_order_and_subset(vessels: Path, tmp_path: Path) -> None:
    assert run_vessels(vessels, tmp_path, "--metrics", "cldice,dice") == 0
    md = (tmp_path / "report.md").read_text()
    assert "| val Dice | test clDice | test Dice | n test |" in md
    assert "(highest clDice/Dice; ties all marked;" in md and "HD95 (mm)" not in md.split("##")[2]
    csv = pd.read_csv(tmp_path / "report.csv")
    assert not [c for c in csv.columns if "hd95" in c or "fraction" in c]


def test_fractions_per_class_and_class_mean(tmp_path: Path) -> None:
    root = tmp_path / "results" / "liver"
    for name in ("boundary", "dice"):
        write_method(root, name, classes=("liver", "tumour"))
    assert run_report(root, tmp_path, "--reference", "boundary", methods=["boundary", "dice"]) == 0
    csv = pd.read_csv(tmp_path / "report.csv")
    d = csv[csv["method"] == "dice"].set_index("class")
    # dice: 0.75 / 0.55 / 0.65 against boundary's 0.80 / 0.60 / 0.70, class by class
    np.testing.assert_allclose(
        d["dice_fraction_of_boundary"], [0.75 / 0.80, 0.55 / 0.60, 0.65 / 0.70], atol=1e-12
    )
    assert "Dice / boundary" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--metrics", "dice,cldice"], "test/metrics.csv: no test 'cldice' rows for a foreground "
         "class (metrics present: dice, hd95, assd)"),
        (["--metrics", "dice,betti"], "--metrics: unknown metric(s) betti (known: dice, cldice"),
        (["--metrics", "hd95,assd"], "--metrics: must include dice"),
        (["--metrics", "dice,hd95,dice"], "--metrics: dice given more than once"),
        (["--reference", "full"], "--reference: 'full' is not one of the methods reported "
         "(boundary, dice, focal)"),
    ],
)  # fmt: skip
def test_bad_metrics_or_reference_refused(
    results: Path, tmp_path: Path, capsys, extra: list[str], needle: str
) -> None:
    _assert_refused(capsys, tmp_path, run_report(results, tmp_path, *extra), needle)


def test_metric_missing_from_one_method(vessels: Path, tmp_path: Path, capsys) -> None:
    path = vessels / "mip" / "test" / "metrics.csv"
    df = pd.read_csv(path)
    df[df["metric"] != "mip_dice"].to_csv(path, index=False)
    rc = run_vessels(vessels, tmp_path, "--metrics", VESSEL_METRICS, "--reference", "full")
    _assert_refused(capsys, tmp_path, rc, "mip/test/metrics.csv: no test 'mip_dice' rows")
