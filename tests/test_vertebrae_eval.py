"""The vertebra methods in the evaluation stage and cross-validated (``vertebrae.make``).

A unit test scores two tiny NIfTI files with
:func:`segline.experiments.vertebrae.evaluate.score_instances`
(VerSe values in the label, instance ids in the prediction). One make-level run for
the rest: the toy with ``FOLDS=2``, the iterative method alone, one epoch of 8 patches
of a small network (``channels=4 depth=2``), ``DEBUG=1`` (one validation and one
training-grid test case per fold), through ``make report`` (about 50 s on 2 cores).
Its evaluation folders are checked against an independent computation: the written
predictions and the original VerSe masks read with nibabel, the masks' values mapped
by ``dataset.json``, :func:`segline.metrics.instances.instance_rows` on the (X, Y, Z)
arrays with the header's spacing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import copy_project
from segline.casestore import CaseStore, sorted_cases
from segline.errors import InputError
from segline.experiments.vertebrae.evaluate import score_instances
from segline.metrics.instances import instance_rows

ARGS = ("-f", "vertebrae.make", "TOY=1", "FOLDS=2", "METHODS=iterative", "EPC=1", "DEBUG=1",
        "NET_OPTS=channels=4 depth=2", "TRAIN_ARGS=--samples-per-epoch 8")  # fmt: skip
RES = Path("results/vertebrae-toy/debug-folds")
DATA = Path("data/vertebrae-toy")


# ------------------------------------------------------------------ unit
def _nifti(data: np.ndarray, path: Path, spacing: tuple[float, float, float]) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), path)
    return path


def _store(root: Path) -> CaseStore:
    """A case store's dataset.json as the VerSe adapter writes it: classes L1, L2 for
    the VerSe values 20, 21."""
    root.mkdir()
    labels = {"0": "background", "1": "L1", "2": "L2"}
    dataset = {"labels": labels, "channels": ["CT"], "source_labels": labels,
               "source_info": {"label_values": {"0": 0, "1": 20, "2": 21}},
               "preprocessing": {"label_map": {}}}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(dataset))
    (root / "split.json").write_text(json.dumps({"test": ["a"]}))
    return CaseStore(root)


def test_score_instances_maps_verse_values_and_names_rows(tmp_path: Path) -> None:
    """L1 (value 20) predicted exactly as instance 7; L2 (value 21, 3 slices along
    NIfTI z) predicted on its upper 2 slices as instance 3: Dice 2·32/(48+32) = 0.8."""
    label = np.zeros((4, 4, 6), np.uint8)
    label[:, :, :3], label[:, :, 3:] = 20, 21
    pred = np.zeros_like(label)
    pred[:, :, :3], pred[:, :, 4:] = 7, 3
    spacing = (1.0, 1.0, 2.0)
    store = _store(tmp_path / "cases")
    rows = score_instances("a", _nifti(pred, tmp_path / "p.nii.gz", spacing),
                           _nifti(label, tmp_path / "l.nii.gz", spacing), store,
                           {1: "L1", 2: "L2"}, 4)  # fmt: skip
    got = {(r["class"], r["metric"]): r["value"] for r in rows}
    assert {(r["epoch"], r["split"], r["case"]) for r in rows} == {(4, "test", "a")}
    assert got[("L1", "dice")] == 1.0 and got[("L1", "assd")] == 0.0
    assert got[("L2", "dice")] == pytest.approx(0.8, abs=1e-12)
    assert got[("spine", "dice")] == pytest.approx(0.9, abs=1e-12)
    assert got[("spine", "id_rate")] == 1.0
    assert got[("spine", "false_positives")] == 0.0 and got[("spine", "misses")] == 0.0
    # the ASSD in mm of the (Z, Y, X) arrays with spacing (z, y, x): the same numbers
    classes = np.select([label == 20, label == 21], [1, 2], 0).astype(np.uint8)
    want = instance_rows(pred.T, classes.T, spacing[::-1], {1: "L1", 2: "L2"})
    assd = next(r["value"] for r in want if (r["class"], r["metric"]) == ("L2", "assd"))
    assert got[("L2", "assd")] == pytest.approx(assd, abs=1e-12)
    assert got[("L2", "assd")] > 0
    # a value the dataset does not declare: one line naming the label file
    label[0, 0, 0] = 22
    with pytest.raises(InputError, match=r"l2\.nii\.gz.*value\(s\) 22 not among"):
        score_instances("a", tmp_path / "p.nii.gz",
                        _nifti(label, tmp_path / "l2.nii.gz", spacing), store,
                        {1: "L1", 2: "L2"}, 4)  # fmt: skip


# ------------------------------------------------------------------ make
@pytest.fixture(scope="module")
def folds(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:  # type: ignore[no-untyped-def]
    """The toy project after ``make -j2 ... FOLDS=2 report``."""
    root = copy_project(tmp_path_factory.mktemp("vertebrae-eval") / "p")
    proc = run_make(root, "-j2", *ARGS, "report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def _independent(pred_file: Path, label_file: Path, dataset: dict) -> dict[tuple[str, str], float]:
    """Instance rows of one case from the two NIfTI files and dataset.json alone."""
    to_class = {int(v): int(k) for k, v in dataset["source_info"]["label_values"].items()}
    table = np.zeros(256, np.uint8)
    for value, index in to_class.items():
        table[value] = index
    label_img = nib.load(label_file)
    label = table[np.asarray(label_img.dataobj).astype(np.int64)]
    pred = np.asarray(nib.load(pred_file).dataobj).astype(np.int64)
    assert pred.shape == label.shape
    spacing = tuple(float(f"{s:.7g}") for s in label_img.header.get_zooms()[:3])
    names = {int(k): str(v) for k, v in dataset["labels"].items() if int(k)}
    rows = instance_rows(pred, label, spacing, names)  # (X, Y, Z) with (x, y, z) mm
    return {(r["class"], r["metric"]): r["value"] for r in rows}


def test_eval_numbers_equal_an_independent_computation(folds: Path) -> None:
    dataset = json.loads((folds / DATA / "cases" / "dataset.json").read_text())
    distances = 0
    for fold in (0, 1):
        ev = folds / RES / "eval" / "iterative" / f"fold{fold}"
        grid = json.loads((ev / "grid.json").read_text())
        assert grid["grid"] == "source geometry"
        table = pd.read_csv(ev / "metrics.csv")
        assert list(table.columns) == ["epoch", "split", "case", "class", "metric", "value"]
        best = int((folds / RES / "iterative" / f"fold{fold}" / "best_epoch.txt").read_text())
        assert set(table["epoch"]) == {best} and set(table["split"]) == {"test"}
        for case in grid["cases"]:
            label = folds / DATA / "raw" / grid["labels"][case]
            assert label.name.endswith("_seg-vert_msk.nii.gz")  # the original VerSe mask
            want = _independent(ev / f"{case}.nii.gz", label, dataset)
            rows = table[table["case"] == case]
            got = {(c, m): v for c, m, v in zip(rows["class"], rows["metric"], rows["value"],
                                                strict=True)}
            assert list(got) == list(want)
            for key, value in want.items():
                if math.isnan(value):
                    assert math.isnan(got[key]), (case, key)
                else:
                    assert got[key] == pytest.approx(value, abs=1e-9), (case, key)
                    distances += key[1] == "assd"
        # the training grid's test case (DEBUG: one) has the same vertebra rows
        train = pd.read_csv(folds / RES / "iterative" / f"fold{fold}" / "test" / "metrics.csv")
        for case in set(train["case"]):
            assert list(train[train["case"] == case]["class"]) == list(
                table[table["case"] == case]["class"])
    assert distances > 10  # matched vertebrae: distances were compared, not only NaNs


def test_folds_evaluate_every_labelled_case_once(folds: Path) -> None:
    split = json.loads((folds / DATA / "cases" / "split.json").read_text())
    labelled = sorted(c for s in ("train", "val", "test") for c in split[s])
    assert len(labelled) == 16
    seen: list[str] = []
    for fold in (0, 1):
        table = pd.read_csv(folds / RES / "eval" / "iterative" / f"fold{fold}" / "metrics.csv")
        cases = list(dict.fromkeys(table["case"]))
        assert cases == split["folds"][fold]["test"]
        seen += cases
    assert sorted(seen) == labelled  # every labelled case exactly once, out of fold
    md = (folds / RES / "report.md").read_text()
    main = md.split("## Results (test: mean ± sd over test cases)\n", 1)[1].split("\n## ")[0]
    assert f"*test: source geometry of each case, 16 cases: {', '.join(sorted_cases(seen))}; " \
        "validation: training grid.*" in main  # fmt: skip
    pooled = pd.concat(
        pd.read_csv(folds / RES / "eval" / "iterative" / f"fold{f}" / "metrics.csv")
        for f in (0, 1))  # fmt: skip
    spine = pooled[(pooled["class"] == "spine") & (pooled["metric"] == "dice")]["value"]
    row = next(line for line in main.splitlines() if line.startswith("| iterative | spine |"))
    assert f"{spine.mean():.3f} ± {spine.std(ddof=1):.3f}" in row and row.endswith("| 16 |")
    assert "| iterative/fold0 | spine |" in main and "| iterative/fold1 | spine |" in main
    assert "## Test on the training grid (secondary)" in md


def test_predict_refuses_the_folds_of_an_instance_method(folds: Path, run_make) -> None:  # type: ignore[no-untyped-def]
    proc = run_make(folds, *ARGS, "predict")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("segline: ")]
    assert len(lines) == 1, proc.stderr
    assert lines[0] == (
        f"segline: {RES}/iterative: the folds of this method are not ensembled (vertebra "
        "instance maps, no class probabilities): predict with one fold's folder instead "
        f"(segline-predict --method {RES}/iterative/fold0)")
