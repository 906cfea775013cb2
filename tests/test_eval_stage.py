"""The evaluation stage (``$(RES)/eval/<method>``, :mod:`segline.eval_stage`): the test
cases scored in their source geometry against the original label files.

One make-level run of the spleen toy (its slices resampled 96 -> 48 px, ``INPLANE=48``)
for the whole file. Its numbers are checked against an independent computation here:
the written NIfTI predictions and the raw data's label files read with nibabel, Dice
by counting, HD95 and ASSD from scipy distance transforms with the label's spacing.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from conftest import copy_project

ARGS = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "METHODS=gdl", "INPLANE=48")
RES = Path("results/spleen-toy")
RAW = Path("data/spleen-toy/raw")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:  # type: ignore[no-untyped-def]
    """The toy project after ``make report`` (one training, its evaluation)."""
    root = copy_project(tmp_path_factory.mktemp("eval") / "p")
    proc = run_make(root, *ARGS, "report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels: the mask minus its erosion by the 6-neighbour cross (medpy's
    connectivity 1), outside the array counted as background."""
    cross = ndimage.generate_binary_structure(3, 1)
    return mask & ~ndimage.binary_erosion(mask, cross, border_value=0)


def _distances(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Both directed surface-to-surface distance sets (mm), pooled."""
    sa, sb = _surface(a), _surface(b)
    to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    return np.concatenate([to_b[sa], to_a[sb]])


def independent(pred_file: Path, label_file: Path) -> dict[str, float]:
    """Dice, HD95 and ASSD of class 1, from the two NIfTI files alone."""
    label_img = nib.load(label_file)
    pred = np.asarray(nib.load(pred_file).dataobj) == 1
    label = np.asarray(label_img.dataobj) == 1
    assert pred.shape == label.shape
    # pixdim is float32: its value as the 7 significant digits it was written with
    spacing = tuple(float(f"{s:.7g}") for s in label_img.header.get_zooms()[:3])
    inter = int(np.count_nonzero(pred & label))
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(label))
    out = {"dice": 2 * inter / total}
    if pred.any() and label.any():
        d = _distances(pred, label, spacing)
        out |= {"hd95": float(np.percentile(d, 95)), "assd": float(d.mean())}
    return out


def test_eval_folder_holds_source_geometry_predictions(run: Path) -> None:
    ev = run / RES / "eval" / "gdl"
    grid = json.loads((ev / "grid.json").read_text())
    assert grid["grid"] == "source geometry"
    assert grid["cases"] == ["spleen_2", "spleen_3", "spleen_6"]
    for case in grid["cases"]:
        pred = nib.load(ev / f"{case}.nii.gz")
        label = nib.load(run / RAW / grid["labels"][case])
        assert pred.shape == label.shape  # the original 96 px, not the stored 48
        assert pred.shape[0] == 96
        np.testing.assert_allclose(pred.affine, label.affine)
    stored = np.load(run / "data/spleen-toy/cases/spleen_2/label.npy")
    assert stored.shape[1:] == (48, 48)


def test_metrics_equal_an_independent_computation(run: Path) -> None:
    ev = run / RES / "eval" / "gdl"
    grid = json.loads((ev / "grid.json").read_text())
    table = pd.read_csv(ev / "metrics.csv")
    assert list(table.columns) == ["epoch", "split", "case", "class", "metric", "value"]
    assert set(table["split"]) == {"test"} and set(table["class"]) == {"spleen"}
    best = int((run / RES / "gdl" / "best_epoch.txt").read_text())
    assert set(table["epoch"]) == {best}
    checked = 0
    for case in grid["cases"]:
        want = independent(ev / f"{case}.nii.gz", run / RAW / grid["labels"][case])
        got = table[table["case"] == case].set_index("metric")["value"]
        assert got["dice"] == pytest.approx(want["dice"], abs=1e-9)
        for m in ("hd95", "assd"):
            if m in want:
                assert got[m] == pytest.approx(want[m], abs=1e-6)
                checked += 1
            else:
                assert np.isnan(got[m])
    assert checked  # at least one case has both masks: the distances were compared


def test_report_shows_the_source_geometry_numbers(run: Path) -> None:
    md = (run / RES / "report.md").read_text()
    main = md.split("## Results (test: mean ± sd over test cases)\n", 1)[1].split("\n## ")[0]
    secondary = md.split("## Test on the training grid (secondary)\n", 1)[1].split("\n## ")[0]
    table = pd.read_csv(run / RES / "eval" / "gdl" / "metrics.csv")
    dice = table[table["metric"] == "dice"]["value"]
    row = next(line for line in main.splitlines() if line.startswith("| gdl |"))
    assert f"{dice.mean():.3f} ± {dice.std(ddof=1):.3f}" in row
    assert "*test: source geometry of each case, 3 cases: spleen_2, spleen_3, spleen_6; " \
        "validation: training grid.*" in main  # fmt: skip
    grid_rows = pd.read_csv(run / RES / "gdl" / "test" / "metrics.csv")
    grid_dice = grid_rows[grid_rows["metric"] == "dice"]["value"]
    grid_row = next(line for line in secondary.splitlines() if line.startswith("| gdl |"))
    assert f"{grid_dice.mean():.3f} ± {grid_dice.std(ddof=1):.3f}" in grid_row
    assert "*test: training grid, 3 cases" in secondary
    # the per-case CSV of the report holds the source-geometry values
    cases = pd.read_csv(run / RES / "report_cases.csv")
    got = cases[(cases["metric"] == "dice")].set_index("case")["value"]
    want = table[table["metric"] == "dice"].set_index("case")["value"]
    for case in want.index:
        assert float(got[case]) == pytest.approx(float(want[case]), abs=1e-12)


def _planned(run: Path, run_make, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    proc: subprocess.CompletedProcess[str] = run_make(run, *ARGS, "-n", *extra, "report")
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if re.search(r"-m segline\.|\.py ", line)]


def test_metric_code_change_re_evaluates_without_training(run: Path, run_make) -> None:  # type: ignore[no-untyped-def]
    assert _planned(run, run_make) == []  # up to date
    # training does not import segline.labelpairs (the eval stage's reading of a
    # prediction and its label file); the eval stage imports no report or plot module
    train_deps = (run / RES / ".gdl.d").read_text()
    eval_deps = (run / RES / "eval" / ".gdl.d").read_text()
    assert "src/segline/labelpairs.py" not in train_deps
    assert "src/segline/labelpairs.py" in eval_deps
    assert "src/segline/report/" not in eval_deps and "src/segline/plots/" not in eval_deps
    code = run / "src/segline/labelpairs.py"
    code.write_text(code.read_text() + "\n# edited\n")
    lines = _planned(run, run_make)
    assert not any("segline.train" in line for line in lines), lines
    assert any("-m segline.eval_stage" in line for line in lines), lines
    # figures and report depend on the evaluation's content stamp (early cutoff): -n
    # plans them once told that it changes (make's "what if", -W)
    assert not any("-m segline.report" in line for line in lines), lines
    lines = _planned(run, run_make, f"--what-if={RES}/eval/.gdl.content")
    assert any("-m segline.plots.figures" in line for line in lines), lines
    assert any("-m segline.report" in line for line in lines), lines
