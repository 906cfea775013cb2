"""Tests for segline.plots (curves, boxplot, overlays) on synthetic result folders.

The pure helpers are checked against hand-computed numbers; each CLI must write a
valid, non-trivial PNG, byte-identical on a rerun and whatever order the method
folders are given in, and refuse bad input with one line and exit code 2.
"""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import segline.experiments.vessels.mipdice  # noqa: F401  (registers mip_dice)
from segline.casestore import write_case
from segline.cli import run
from segline.plots import boxplot, curves, method_colours, overlays
from segline.results import (
    MethodResults,
    Stat,
    case_table,
    class_mean,
    epoch_series,
    load_methods,
    metric_label,
)

NAN = math.nan
METHODS = ("dice", "boundary", "focal")
VAL_CASES = ("v1", "v2", "v10")
TEST_CASES = ("t1", "t2", "t3")
COLS = ["epoch", "split", "case", "class", "metric", "value"]


def write_method(root: Path, name: str, m: int, classes: tuple[str, ...] = ("spleen",)) -> Path:
    """A method folder: 4 epochs, 3 val cases, 3 test cases (one NaN HD95), preds_zyx."""
    folder = root / name
    (folder / "test" / "preds_zyx").mkdir(parents=True)
    best = 3 + (m % 2)
    pd.DataFrame({
        "epoch": [1, 2, 3, 4], "tra_loss": [1.0, 0.6, 0.4, 0.3 + 0.01 * m],
        "tra_dice": [0.3, 0.5, 0.6, 0.7], "val_loss": [1.2, 0.8, 0.5, 0.45],
        "val_dice": [0.4, 0.5, 0.6, 0.7], "val_hd95": [9.0, 8.0, 7.0, 6.0],
        "val_assd": [3.0, 2.0, 1.0, 0.9], "alpha": 0.01, "lr": 1e-3, "seconds": 2.0,
    }).to_csv(folder / "epochs.csv", index=False)  # fmt: skip
    rows = []
    for e in range(1, 5):
        for c, case in enumerate(VAL_CASES):
            rows.append((e, "val", case, "background", "dice", 0.99))
            for k, cls in enumerate(classes):
                rows.append(
                    (e, "val", case, cls, "dice", 0.3 + 0.1 * e + 0.05 * c - 0.1 * k + 0.02 * m)
                )
                rows.append((e, "val", case, cls, "hd95", 12.0 - e - c + m))
                rows.append((e, "val", case, cls, "assd", 4.0 - 0.5 * e + 0.1 * c))
    test = []
    for c, case in enumerate(TEST_CASES):
        for k, cls in enumerate(classes):
            hd = NAN if (m == 0 and c == 2) else 3.0 + c + m
            key = (best, "test", case, cls)
            test += [(*key, "dice", 0.6 + 0.1 * c - 0.05 * m - 0.1 * k),
                     (*key, "hd95", hd), (*key, "assd", hd / 3)]  # fmt: skip
    pd.DataFrame(rows + test, columns=COLS).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(test, columns=COLS).to_csv(folder / "test" / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text(f"{best}\n")
    for case, label in LABELS.items():
        pred = np.roll(label, m + 1, axis=2)  # each method a little off, differently
        np.save(folder / "test" / "preds_zyx" / f"{case}.npy", pred.astype(np.uint8))
    return folder


def _label(z_big: int) -> np.ndarray:
    lab = np.zeros((5, 24, 20), np.uint8)
    lab[z_big, 6:16, 5:14] = 1
    lab[(z_big + 1) % 5, 8:12, 8:11] = 1
    lab[z_big, 10:13, 9:12] = 2
    return lab


LABELS = {"t1": _label(2), "t2": _label(0), "t3": _label(4)}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results" / "toy"
    for m, name in enumerate(METHODS):
        write_method(root, name, m)
    return root


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    """A case store with 3 labelled test cases (plus a train case)."""
    root = tmp_path / "data" / "toy" / "cases"
    rng = np.random.default_rng(0)
    for case, lab in {**LABELS, "a1": _label(1)}.items():
        image = rng.random((2, *lab.shape), dtype=np.float32) * 0.3 + 0.6 * (lab > 0)
        write_case(root, case, image, lab, {"case_id": case, "spacing": [2.0, 0.8, 0.8]})
    (root / "split.json").write_text(
        json.dumps({"train": ["a1"], "val": [], "test": ["t3", "t1", "t2"]})
    )
    (root / "dataset.json").write_text(
        json.dumps(
            {"labels": {"0": "background", "1": "organ", "2": "lesion"}, "channels": ["CT", "PET"]}
        )
    )
    return root


def png_info(path: Path) -> tuple[tuple[int, int], list[bytes]]:
    """(size, chunk types) of a PNG, checking the signature and that it decodes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size, chunks


def dirs(root: Path, names=METHODS) -> list[str]:
    return [str(root / n) for n in names]


# ---- pure helpers -----------------------------------------------------------------


def test_epoch_series_hand_computed() -> None:
    long = pd.DataFrame(
        [
            (1, "val", "c2", "background", "dice", 0.9),
            (1, "val", "c2", "liver", "dice", 0.6),
            (1, "val", "c2", "tumour", "dice", 0.2),
            (1, "val", "c10", "liver", "dice", 0.8),
            (1, "val", "c10", "tumour", "dice", 0.4),
            (1, "val", "c1", "liver", "dice", 0.5),
            (1, "val", "c1", "tumour", "dice", 0.5),
            (2, "val", "c1", "liver", "hd95", 4.0),
            (2, "val", "c1", "tumour", "hd95", NAN),
            (2, "val", "c2", "liver", "hd95", 2.0),
            (2, "val", "c2", "tumour", "hd95", 6.0),
            (2, "val", "c10", "liver", "hd95", 6.0),
            (2, "val", "c10", "tumour", "hd95", 8.0),
        ],
        columns=COLS,
    )
    # per case (mean over liver, tumour; background ignored): c1 0.5, c2 0.4, c10 0.6
    s = epoch_series(long, "dice")
    assert s["epoch"].tolist() == [1]
    assert s["mean"].iloc[0] == pytest.approx(0.5)
    assert s["sd"].iloc[0] == pytest.approx(0.1)
    assert (s["n_cases"].iloc[0], s["n_undefined"].iloc[0]) == (3, 0)
    # HD95: c1 undefined (one class NaN), c2 4.0, c10 7.0
    h = epoch_series(long, "hd95")
    assert h["epoch"].tolist() == [2]
    assert h["mean"].iloc[0] == pytest.approx(5.5)
    assert h["sd"].iloc[0] == pytest.approx(math.sqrt(4.5))
    assert (h["n_cases"].iloc[0], h["n_undefined"].iloc[0]) == (3, 1)
    # natural case order, foreground columns only
    wide = case_table(long[long["metric"] == "dice"], "dice")
    assert list(wide.columns) == ["liver", "tumour"]
    assert wide.index.get_level_values("case").tolist() == ["c1", "c2", "c10"]
    assert class_mean(wide).tolist() == pytest.approx([0.5, 0.4, 0.6])


def test_stat_counts_undefined() -> None:
    s = Stat.of([1.0, NAN, 3.0, NAN])
    assert (s.mean, s.n, s.n_undefined) == (2.0, 4, 2)
    assert s.sd == pytest.approx(math.sqrt(2))
    one = Stat.of([NAN])
    assert math.isnan(one.mean) and math.isnan(one.sd) and one.n_undefined == 1


def test_curve_series_reads_the_right_values(results: Path) -> None:
    (focal,) = load_methods([results / "focal"])  # m = 2
    s = curves.curve_series(focal, "val_dice")
    # per case 0.3 + 0.1 e + 0.05 c + 0.04 → mean over c = 0,1,2: 0.39 + 0.1 e; sd 0.05
    np.testing.assert_allclose(s["mean"], [0.49, 0.59, 0.69, 0.79], atol=1e-12)
    np.testing.assert_allclose(s["sd"], [0.05] * 4, atol=1e-12)
    loss = curves.curve_series(focal, "tra_loss")
    np.testing.assert_allclose(loss["mean"], [1.0, 0.6, 0.4, 0.32])
    assert loss["sd"].isna().all() and loss["epoch"].tolist() == [1, 2, 3, 4]


def test_colours_follow_sorted_names() -> None:
    a = method_colours(["focal", "dice", "boundary"])
    b = method_colours(["boundary", "dice", "focal"])
    assert a == b and len(set(a.values())) == 3


def test_boxplot_values_and_tick_labels(results: Path) -> None:
    classes, values = boxplot.case_values(load_methods(dirs(results)), "hd95")
    assert classes == ["spleen"]
    np.testing.assert_allclose(values["spleen"]["dice"], [3.0, 4.0, NAN])  # canonical t1,t2,t3
    np.testing.assert_allclose(values["spleen"]["focal"], [5.0, 6.0, 7.0])
    assert boxplot.tick_label("dice", values["spleen"]["dice"]) == "dice\nn=3, 1 undefined"
    assert boxplot.tick_label("focal", values["spleen"]["focal"]) == "focal\nn=3"


def test_overlay_slice_choice(cases: Path) -> None:
    from segline.casestore import CaseStore

    rows = overlays.choose_rows(CaseStore(cases), 2)
    assert rows == [("t1", 2), ("t2", 0)]  # canonical order, largest ground-truth area
    assert overlays.pick_slice(np.zeros((7, 3, 3), np.uint8)) == 3
    assert overlays.slice_dice(LABELS["t1"][2], LABELS["t1"][2]) == 1.0
    assert overlays.slice_dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_overlay_rows_only_cases_predicted(cases: Path, tmp_path: Path) -> None:
    """A DEBUG run tests its first test case only: the overlays show that one."""
    from segline.casestore import CaseStore

    method = tmp_path / "gdl"
    (method / "test" / "preds_zyx").mkdir(parents=True)
    np.save(method / "test" / "preds_zyx" / "t2.npy", np.zeros((1,), np.uint8))
    rows = overlays.choose_rows(CaseStore(cases), 4, [MethodResults(method)])
    assert [case for case, _ in rows] == ["t2"]


# ---- the CLIs -----------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["val_dice", "val_hd95", "tra_loss"])
def test_curves_png_deterministic(results: Path, tmp_path: Path, metric: str) -> None:
    out1, out2 = tmp_path / "a.png", tmp_path / "b.png"
    assert run(curves.main, ["--metric", metric, "--out", str(out1), *dirs(results)]) == 0
    assert run(curves.main, ["--metric", metric, "--out", str(out2), *dirs(results)[::-1]]) == 0
    size, chunks = png_info(out1)
    assert size == (800, 500)
    assert b"tEXt" not in chunks and b"tIME" not in chunks  # no software/time metadata
    assert out1.stat().st_size > 10_000
    assert out1.read_bytes() == out2.read_bytes()


def test_boxplot_png_one_and_several_classes(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "box.png"
    assert run(boxplot.main, ["--metric", "dice", "--out", str(out), *dirs(results)]) == 0
    png_info(out)
    assert out.stat().st_size > 8_000
    first = out.read_bytes()
    assert run(boxplot.main, ["--metric", "dice", "--out", str(out), *dirs(results)]) == 0
    assert out.read_bytes() == first
    root = tmp_path / "multi" / "liver"
    for m, name in enumerate(METHODS[:2]):
        write_method(root, name, m, classes=("liver", "tumour"))
    multi = tmp_path / "multi.png"
    assert (
        run(boxplot.main, ["--metric", "hd95", "--out", str(multi), *dirs(root, METHODS[:2])]) == 0
    )
    (width, _), _ = png_info(multi)
    assert width > 600  # one panel per class


# ---- any metric of metrics.csv (vessels: clDice, MIP Dice) --------------------------


def write_vessel_method(root: Path, name: str, m: int) -> Path:
    """3 epochs, val cases v1, v2 with dice/cldice/mip_dice/hd; test at epoch 3.

    Validation, per epoch e: clDice 0.5 + 0.1 e + 0.01 m ∓ 0.05 (mean 0.5 + 0.1 e +
    0.01 m, sd 0.05·√2); MIP Dice 0.8 + 0.05 e, v2 undefined at epoch 2; HD 10 − e.
    """
    folder = root / name
    (folder / "test").mkdir(parents=True)
    pd.DataFrame({
        "epoch": [1, 2, 3], "tra_loss": [1.0, 0.8, 0.6], "tra_dice": [0.4, 0.5, 0.6],
        "val_loss": [1.0, 0.9, 0.8], "val_dice": [0.5, 0.6, 0.7], "val_hd95": [3.0, 2.0, 1.0],
        "val_assd": [1.0, 0.8, 0.6], "alpha": 0.0, "lr": 1e-3, "seconds": 1.0,
    }).to_csv(folder / "epochs.csv", index=False)  # fmt: skip
    rows = []
    for e in (1, 2, 3):
        for case, d in (("v1", -0.05), ("v2", 0.05)):
            key = (e, "val", case, "vessel")
            mip = NAN if (e == 2 and case == "v2") else 0.8 + 0.05 * e
            cl = 0.5 + 0.1 * e + 0.01 * m + d
            rows += [(*key, "dice", 0.4 + 0.1 * e + d), (*key, "cldice", cl),
                     (*key, "mip_dice", mip), (*key, "hd", 10.0 - e)]  # fmt: skip
    test = [(3, "test", case, "vessel", metric, v + 0.1 * c - 0.02 * m)
            for c, case in enumerate(("t1", "t2", "t3"))
            for metric, v in (("dice", 0.6), ("cldice", 0.5), ("mip_dice", 0.7))]  # fmt: skip
    pd.DataFrame(rows + test, columns=COLS).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(test, columns=COLS).to_csv(folder / "test" / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text("3\n")
    return folder


VESSEL_METHODS = ("full", "pseudo", "mip", "mip_boundary")


@pytest.fixture
def vessels(tmp_path: Path) -> Path:
    root = tmp_path / "results" / "vessels"
    for m, name in enumerate(VESSEL_METHODS):
        write_vessel_method(root, name, m)
    return root


def test_curve_metric_any_metric_with_units() -> None:
    assert curves.curve_metric("val_cldice").label == "clDice (validation)"
    assert curves.curve_metric("val_mip_dice").label == "MIP Dice (validation)"
    assert curves.curve_metric("val_hd95").label == "HD95 (mm, validation)"
    assert curves.curve_metric("val_assd").label == "ASSD (mm, validation)"
    assert curves.curve_metric("val_hd").label == "HD (mm, validation)"
    assert curves.curve_metric("val_betti0").label == "betti0 (validation)"  # not in the table
    spec = curves.curve_metric("val_cldice")
    assert (spec.per_case, spec.title) == ("cldice", "validation clDice")
    assert curves.curve_metric("val_loss").per_case is None  # epochs.csv, not a metric "loss"
    assert metric_label("mip_dice") == "MIP Dice" and metric_label("hd") == "HD (mm)"


def test_curve_series_val_cldice_and_mip_dice(vessels: Path) -> None:
    (pseudo,) = load_methods([vessels / "pseudo"])  # m = 1
    s = curves.curve_series(pseudo, "val_cldice")
    assert s["epoch"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(s["mean"], [0.61, 0.71, 0.81], atol=1e-12)
    np.testing.assert_allclose(s["sd"], [0.05 * math.sqrt(2)] * 3, atol=1e-12)
    assert s["n_cases"].tolist() == [2, 2, 2] and s["n_undefined"].tolist() == [0, 0, 0]
    mip = curves.curve_series(pseudo, "val_mip_dice")
    np.testing.assert_allclose(mip["mean"], [0.85, 0.90, 0.95], atol=1e-12)
    assert mip["n_undefined"].tolist() == [0, 1, 0] and math.isnan(mip["sd"].iloc[1])


@pytest.mark.parametrize(
    ("metric", "label"),
    [("val_cldice", "clDice (validation)"), ("val_mip_dice", "MIP Dice (validation)"),
     ("val_hd", "HD (mm, validation)")],
)  # fmt: skip
def test_curves_png_any_metric(
    vessels: Path, tmp_path: Path, monkeypatch, metric: str, label: str
) -> None:
    drawn = []
    real_save = curves.save_png

    def save(fig, out) -> None:  # the figure as drawn, then the real save
        drawn.append((fig.axes[0].get_ylabel(), fig.axes[0].get_title()))
        real_save(fig, out)

    monkeypatch.setattr(curves, "save_png", save)
    out1, out2 = tmp_path / "a.png", tmp_path / "b.png"
    folders = dirs(vessels, VESSEL_METHODS)
    assert run(curves.main, ["--metric", metric, "--out", str(out1), *folders]) == 0
    assert run(curves.main, ["--metric", metric, "--out", str(out2), *folders[::-1]]) == 0
    assert out1.read_bytes() == out2.read_bytes() and out1.stat().st_size > 10_000
    assert png_info(out1)[0] == (800, 500)
    ylabel, title = drawn[0]
    assert ylabel == label
    assert title.startswith(
        f"vessels: validation {label.split(' (')[0]}\nmean over 2 validation cases"
    )


def test_boxplot_any_test_metric(vessels: Path, tmp_path: Path, monkeypatch) -> None:
    classes, values = boxplot.case_values(load_methods(dirs(vessels, VESSEL_METHODS)), "cldice")
    assert classes == ["vessel"]
    np.testing.assert_allclose(values["vessel"]["mip"], [0.46, 0.56, 0.66], atol=1e-12)  # m = 2
    drawn = []
    real_save = boxplot.save_png

    def save(fig, out) -> None:
        drawn.append(fig.axes[0].get_ylabel())
        real_save(fig, out)

    monkeypatch.setattr(boxplot, "save_png", save)
    out = tmp_path / "box.png"
    args = ["--metric", "mip_dice", "--out", str(out), *dirs(vessels, VESSEL_METHODS)]
    assert run(boxplot.main, args) == 0
    png_info(out)
    assert drawn == ["MIP Dice per test case"]


@pytest.mark.parametrize(
    ("tool", "metric", "needle"),
    [
        ("curves", "val_cldice", "boundary/metrics.csv: no validation 'cldice' rows for a "
         "foreground class (metrics present: dice, hd95, assd)"),
        ("curves", "cldice", "--metric: expected val_<metric>"),
        ("curves", "val_", "--metric: expected val_<metric>"),
        ("boxplot", "cldice", "test/metrics.csv: no test 'cldice' rows for a foreground class"),
    ],
)  # fmt: skip
def test_metric_absent_refused(
    results: Path, tmp_path: Path, capsys, tool: str, metric: str, needle: str
) -> None:
    out = tmp_path / "x.png"
    main = {"curves": curves.main, "boxplot": boxplot.main}[tool]
    rc = run(main, ["--metric", metric, "--out", str(out), *dirs(results)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("segline: ") and needle in err
    assert not out.exists()


def test_overlays_png_deterministic(results: Path, cases: Path, tmp_path: Path) -> None:
    out = tmp_path / "ov.png"
    args = ["--cases", str(cases), "--out", str(out), "--n", "2", *dirs(results)]
    assert run(overlays.main, args) == 0
    (width, height), _ = png_info(out)
    assert width == int(2.4 * 5 * 100) and height == int((2.4 * 2 + 0.6) * 100)  # 5 cols, 2 rows
    assert out.stat().st_size > 10_000
    first = out.read_bytes()
    assert run(overlays.main, args) == 0
    assert out.read_bytes() == first


def test_overlays_missing_prediction(results: Path, cases: Path, tmp_path: Path, capsys) -> None:
    (results / "focal" / "test" / "preds_zyx" / "t1.npy").unlink()
    out = tmp_path / "ov.png"
    rc = run(overlays.main, ["--cases", str(cases), "--out", str(out), *dirs(results)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "t1.npy: missing" in err
    assert not out.exists()


@pytest.mark.parametrize("content", ["", "epoch,split,case,class,metric,value\n"])
def test_curves_empty_metrics_csv(results: Path, tmp_path: Path, capsys, content: str) -> None:
    (results / "boundary" / "metrics.csv").write_text(content)
    out = tmp_path / "c.png"
    rc = run(curves.main, ["--metric", "val_dice", "--out", str(out), *dirs(results)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("segline: ") and "boundary/metrics.csv: " in err
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("name", "metric", "zero"),
    [
        ("epochs.csv", "tra_loss", lambda t: t.replace("\n1,", "\n0,", 1)),
        ("metrics.csv", "val_dice", lambda t: t.replace("\n1,val,", "\n0,val,", 1)),
        ("best_epoch.txt", "val_dice", lambda t: "0\n"),
    ],
)
def test_epoch_zero_refused(
    results: Path, tmp_path: Path, capsys, name: str, metric: str, zero: Callable[[str], str]
) -> None:
    """Epochs are counted from 1: a 0 (a result written when they were counted from 0)
    would shift every curve by one epoch, so it is refused in one line."""
    path = results / "boundary" / name
    path.write_text(zero(path.read_text()))
    out = tmp_path / "c.png"
    rc = run(curves.main, ["--metric", metric, "--out", str(out), *dirs(results)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"boundary/{name}: epoch 0: epochs are counted from 1" in err
    assert not out.exists()


@pytest.mark.parametrize("tool", ["curves", "boxplot"])
def test_missing_method_folder(results: Path, tmp_path: Path, capsys, tool: str) -> None:
    out = tmp_path / "x.png"
    main = {"curves": curves.main, "boxplot": boxplot.main}[tool]
    metric = {"curves": "val_dice", "boxplot": "dice"}[tool]
    rc = run(
        main, ["--metric", metric, "--out", str(out), str(results / "dice"), str(results / "nope")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "nope: method results folder not found" in err
    assert not out.exists()


def test_module_entry_point_exit_code(results: Path, tmp_path: Path) -> None:
    """``python -m segline.plots.curves`` exits 2 with one line on bad input."""
    proc = subprocess.run(
        [sys.executable, "-m", "segline.plots.curves", "--metric", "val_dice",
         "--out", str(tmp_path / "c.png"), str(tmp_path / "missing")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "missing: method results folder" in proc.stderr


def test_read_long_keeps_case_ids_and_reads_nan(tmp_path: Path) -> None:
    from segline.errors import InputError
    from segline.results import read_long

    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,split,case,class,metric,value\n"
        "1,val,007,spleen,hd95,\n1,val,NA,spleen,hd95,nan\n1,val,8,spleen,hd95,2.5\n"
    )
    df = read_long(path)
    assert df["case"].tolist() == ["007", "NA", "8"]
    assert df["epoch"].dtype == np.int64
    assert np.isnan(df["value"].iloc[0]) and np.isnan(df["value"].iloc[1])
    assert df["value"].iloc[2] == 2.5
    path.write_text("epoch,split,case,class,metric,value\n1,val,a,spleen,hd95,oops\n")
    with pytest.raises(InputError, match="column 'value' is not numeric"):
        read_long(path)
