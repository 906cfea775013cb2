"""``segline-evaluate``: a folder of predictions scored against a folder of labels.

Tiny NIfTI folders with anisotropic spacing are written here; the expected numbers are
computed independently in the test (Dice by voxel counts; surface distances with scipy's
erosion and Euclidean distance transform on the whole (X, Y, Z) volume, with the
spacing; a one-voxel case with a known answer), and the undefined-case rule is checked
against the report's: NaN, counted, left out of the mean, and the field-of-view
diagonal for the statistics.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from segline.cli import run
from segline.evaluate import evaluate_folder, main
from segline.report.model import TEST_METRICS
from segline.results import Stat

SHAPE = (10, 9, 5)  # (X, Y, Z)
SPACING = (0.7, 0.9, 3.0)  # (x, y, z) mm
DIAGONAL = math.sqrt(sum((n * s) ** 2 for n, s in zip(SHAPE, SPACING, strict=True)))
LABELS = {"background": 0, "spleen": 1, "kidney": 2}  # nnU-Net v2 dataset.json


def affine(spacing: tuple[float, float, float] = SPACING) -> np.ndarray:
    a = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    a[:3, 3] = [40.0, -12.5, 7.0]
    return a


def save(path: Path, data: np.ndarray, aff: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.uint8), affine() if aff is None else aff), path)
    return path


def volumes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """case -> (prediction, label), (X, Y, Z) uint8."""
    out = {}
    # overlapping boxes of class 1 (shifted along x and z), class 2 a slab in both
    lab = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    lab[2:6, 2:7, 1:4] = 1
    pred[3:7, 2:7, 1:3] = 1
    lab[7:9, 0:3, 0:2] = 2
    pred[7:10, 0:3, 0:2] = 2
    out["case_10"] = (pred, lab)
    # one voxel each, one slice apart: every distance is one z step (3 mm); class 2 in
    # neither mask (both empty)
    lab = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    lab[4, 4, 1] = 1
    pred[4, 4, 2] = 1
    out["case_2"] = (pred, lab)
    # class 1 missed (empty prediction), class 2 predicted where there is none
    lab = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    lab[1:4, 5:8, 2:4] = 1
    pred[6:8, 1:3, 0:1] = 2
    out["case_3"] = (pred, lab)
    return out


def write_folders(root: Path, ending: str = ".nii.gz") -> tuple[Path, Path]:
    """nnU-Net naming: ``labelsTr/<case><ending>`` and ``pred/<case><ending>``."""
    for case, (pred, lab) in volumes().items():
        save(root / "labelsTr" / f"{case}{ending}", lab)
        save(root / "pred" / f"{case}{ending}", pred)
    (root / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 3,
                    "file_ending": ending})
    )  # fmt: skip
    return root / "pred", root / "labelsTr"


# ----------------------------------------------------------- independent computation
def _surface(mask: np.ndarray) -> np.ndarray:
    cross = ndimage.generate_binary_structure(3, 1)
    return mask & ~ndimage.binary_erosion(mask, cross, border_value=0)


def expected(pred: np.ndarray, lab: np.ndarray, c: int) -> dict[str, float]:
    """Dice, HD95, ASSD of class ``c`` on the whole (X, Y, Z) volume with the spacing."""
    p, g = pred == c, lab == c
    n_p, n_g = int(p.sum()), int(g.sum())
    dice = 1.0 if n_p + n_g == 0 else 2 * int((p & g).sum()) / (n_p + n_g)
    if n_p == 0 and n_g == 0:
        return {"dice": dice, "hd95": 0.0, "assd": 0.0}
    if n_p == 0 or n_g == 0:
        return {"dice": dice, "hd95": math.nan, "assd": math.nan}
    sp, sg = _surface(p), _surface(g)
    d_pg = ndimage.distance_transform_edt(~sg, sampling=SPACING)[sp]
    d_gp = ndimage.distance_transform_edt(~sp, sampling=SPACING)[sg]
    pooled = np.concatenate([d_pg, d_gp])
    return {"dice": dice, "hd95": float(np.percentile(pooled, 95)), "assd": float(pooled.mean())}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    pred, labels = write_folders(root)
    return pred, labels, root / "dataset.json"


@pytest.fixture(scope="module")
def scored(folders: tuple[Path, Path, Path]) -> tuple[pd.DataFrame, dict]:
    """The console script's CSV and JSON summary (the user's path, one process)."""
    pred, labels, dataset = folders
    out = pred.parent / "out"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "segline-evaluate"), "--pred", str(pred),
         "--labels", str(labels), "-j", str(dataset), "--out", str(out / "cases.csv"),
         "--summary", str(out / "summary.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| spleen | 3 |" in proc.stdout and "mean over classes" in proc.stdout
    table = pd.read_csv(out / "cases.csv", dtype={"case": str, "class": str})
    return table, json.loads((out / "summary.json").read_text())


def test_csv_equals_an_independent_computation(scored: tuple[pd.DataFrame, dict]) -> None:
    table, _ = scored
    assert list(table.columns) == ["case", "class", "metric", "value", "value_for_statistics"]
    # the canonical case order (natural: 2 < 3 < 10), then class index, then --metrics order
    assert list(dict.fromkeys(table["case"])) == ["case_2", "case_3", "case_10"]
    assert list(table["class"][:6]) == ["spleen"] * 3 + ["kidney"] * 3
    assert list(table["metric"][:3]) == list(TEST_METRICS)
    for case, (pred, lab) in volumes().items():
        for c, name in ((1, "spleen"), (2, "kidney")):
            want = expected(pred, lab, c)
            for m, v in want.items():
                got = table[(table["case"] == case) & (table["class"] == name)
                            & (table["metric"] == m)]["value"]  # fmt: skip
                assert len(got) == 1
                if math.isnan(v):
                    assert math.isnan(got.iloc[0]), (case, name, m)
                else:
                    assert got.iloc[0] == pytest.approx(v, rel=1e-12, abs=1e-12), (case, name, m)


def test_known_answer_one_slice_apart(scored: tuple[pd.DataFrame, dict]) -> None:
    """One voxel each, one z step (3 mm) apart: HD95 = ASSD = 3 mm, Dice 0."""
    table, _ = scored
    rows = table[(table["case"] == "case_2") & (table["class"] == "spleen")]
    assert dict(zip(rows["metric"], rows["value"], strict=True)) == {
        "dice": 0.0, "hd95": 3.0, "assd": 3.0}  # fmt: skip
    # a class in neither mask: the both-empty conventions
    rows = table[(table["case"] == "case_2") & (table["class"] == "kidney")]
    assert dict(zip(rows["metric"], rows["value"], strict=True)) == {
        "dice": 1.0, "hd95": 0.0, "assd": 0.0}  # fmt: skip


def test_undefined_follows_the_report_rule(scored: tuple[pd.DataFrame, dict]) -> None:
    """Exactly one mask empty: distances undefined (empty CSV field), Dice 0; for the
    statistics the FOV diagonal of the label (X·x, Y·y, Z·z) in mm; the summary's mean
    over the defined cases with the undefined ones counted (the report's Stat)."""
    table, summary = scored
    case3 = table[table["case"] == "case_3"]
    for name in ("spleen", "kidney"):
        rows = case3[case3["class"] == name].set_index("metric")
        assert rows.loc["dice", "value"] == 0.0 and rows.loc["dice", "value_for_statistics"] == 0.0
        for m in ("hd95", "assd"):
            assert math.isnan(rows.loc[m, "value"])
            assert rows.loc[m, "value_for_statistics"] == pytest.approx(DIAGONAL, rel=1e-12)
    defined = table[table["value"].notna()]
    assert (defined["value"] == defined["value_for_statistics"]).all()

    spleen = next(c for c in summary["classes"] if c["class"] == "spleen")
    assert spleen["index"] == 1 and summary["cases"] == 3
    values = table[(table["class"] == "spleen") & (table["metric"] == "hd95")]
    hd = values["value"].to_numpy()
    s = spleen["metrics"]["hd95"]
    assert s["n"] == 3 and s["n_undefined"] == 1 and s["n_defined"] == 2
    assert s["mean"] == pytest.approx(np.nanmean(hd)) and s["sd"] == pytest.approx(
        np.nanstd(hd, ddof=1))  # fmt: skip
    assert s["mean"] == Stat.of(hd).mean  # the report's summary of per-case values
    assert s["mean_for_statistics"] == pytest.approx(values["value_for_statistics"].mean())
    # mean over classes: per case the class mean, undefined when any class is
    mean = summary["mean_over_classes"]["hd95"]
    assert mean["n_undefined"] == 1 and mean["n"] == 3
    per_case = table[table["metric"] == "hd95"].groupby("case")["value"].mean()
    assert mean["mean"] == pytest.approx(per_case[["case_2", "case_10"]].mean())
    dice = summary["mean_over_classes"]["dice"]
    assert dice["n_undefined"] == 0 and dice["sd"] is not None


def test_summary_markdown_and_json_without_nan(folders, tmp_path: Path) -> None:
    pred, labels, dataset = folders
    rc = run(main, ["--pred", str(pred), "--labels", str(labels), "-j", str(dataset),
                    "--summary", str(tmp_path / "s.md"), "--metrics", "dice,hd95"])  # fmt: skip
    assert rc == 0
    text = (tmp_path / "s.md").read_text()
    assert "| class | n | Dice | HD95 (mm) |" in text
    assert "(1 undefined)" in text and "| kidney | 3 |" in text
    # one class undefined in a case: sd of one defined value is not computable -> null
    result = evaluate_folder(pred, labels, dataset_json=dataset, metrics=["hd95"])
    js = json.loads(result.summary_json())
    assert "NaN" not in result.summary_json() and js["metrics"] == ["hd95"]
    assert result.summary()["classes"][1]["metrics"]["hd95"]["n_undefined"] == 1


def test_names_without_dataset_json_and_nii_ending(tmp_path: Path) -> None:
    """No dataset.json: every value found, named by its value; ``--file-ending .nii``."""
    pred, labels = write_folders(tmp_path, ending=".nii")
    (tmp_path / "dataset.json").unlink()
    out = tmp_path / "c.csv"
    assert run(main, ["--pred", str(pred), "--labels", str(labels), "--file-ending", ".nii",
                      "--out", str(out)]) == 0  # fmt: skip
    table = pd.read_csv(out, dtype={"class": str})
    assert list(dict.fromkeys(table["class"])) == ["1", "2"]
    with_names = evaluate_folder(pred, labels, file_ending=".nii").table
    assert with_names["value"].equals(table["value"])


def test_msd_dataset_json_names(folders, tmp_path: Path) -> None:
    pred, labels, _ = folders
    msd = tmp_path / "dataset.json"
    msd.write_text(json.dumps({"labels": {"0": "background", "1": "liver", "2": "tumour"}}))
    result = evaluate_folder(pred, labels, dataset_json=msd)
    assert list(dict.fromkeys(result.table["class"])) == ["liver", "tumour"]


def test_prediction_folder_side_files_are_allowed(folders, tmp_path: Path) -> None:
    """segline-predict's viewer files and probabilities, nnU-Net's records, hidden
    files: not predictions, not refused; the outputs may be written there."""
    import shutil

    pred, labels, dataset = folders
    mine = shutil.copytree(pred, tmp_path / "pred")
    for name in ("labels.txt", "labels.ctbl", "plans.json", ".DS_Store", "case_2.npz"):
        (mine / name).write_text("x")
    save(mine / "case_2_probs.nii.gz", np.zeros(SHAPE))
    rc = run(main, ["--pred", str(mine), "--labels", str(labels), "-j", str(dataset),
                    "--out", str(mine / "cases.csv")])  # fmt: skip
    assert rc == 0 and (mine / "cases.csv").is_file()
    # the second run finds its own CSV there and scores the same
    rc = run(main, ["--pred", str(mine), "--labels", str(labels), "-j", str(dataset),
                    "--out", str(mine / "cases.csv")])  # fmt: skip
    assert rc == 0


# ----------------------------------------------------------------------- refusals
def refused(capsys, tmp_path: Path, argv: list[str]) -> str:
    """Run the CLI; assert exit 2, one line on stderr and no output written."""
    out = tmp_path / "out.csv"
    rc = run(main, [*argv, "--out", str(out), "--summary", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("segline: ") and err.count("\n") == 1, err
    assert not out.exists() and not (tmp_path / "s.json").exists()
    return err


def test_shape_mismatch_is_refused(capsys, tmp_path: Path) -> None:
    pred, labels = write_folders(tmp_path)
    save(pred / "case_3.nii.gz", np.zeros((10, 9, 6)))
    err = refused(capsys, tmp_path, ["--pred", str(pred), "--labels", str(labels)])
    assert "case_3.nii.gz: shape (10, 9, 6) does not match case_3.nii.gz shape (10, 9, 5)" in err


def test_affine_mismatch_is_refused(capsys, tmp_path: Path) -> None:
    pred, labels = write_folders(tmp_path)
    save(pred / "case_2.nii.gz", volumes()["case_2"][0], affine((0.7, 0.9, 2.5)))
    err = refused(capsys, tmp_path, ["--pred", str(pred), "--labels", str(labels)])
    assert "case_2.nii.gz: affine differs from case_2.nii.gz (max difference 0.5 mm)" in err


def test_missing_predictions_are_named(capsys, tmp_path: Path) -> None:
    pred, labels = write_folders(tmp_path)
    (pred / "case_3.nii.gz").unlink()
    (pred / "case_10.nii.gz").unlink()
    err = refused(capsys, tmp_path, ["--pred", str(pred), "--labels", str(labels)])
    assert f"{pred}: no prediction for 2 of 3 label(s): case_3.nii.gz, case_10.nii.gz" in err


def test_unexpected_files_are_refused(capsys, tmp_path: Path) -> None:
    pred, labels = write_folders(tmp_path)
    (pred / "notes.csv").write_text("x")
    err = refused(capsys, tmp_path, ["--pred", str(pred), "--labels", str(labels)])
    assert "notes.csv: unexpected file in the predictions folder: not a <case>.nii.gz" in err
    (pred / "notes.csv").unlink()
    save(pred / "case_99.nii.gz", np.zeros(SHAPE))
    err = refused(capsys, tmp_path, ["--pred", str(pred), "--labels", str(labels)])
    assert "1 prediction(s) without a label" in err and "case_99.nii.gz" in err
    (pred / "case_99.nii.gz").unlink()
    save(labels / "case_4.nii", np.zeros(SHAPE))  # the other ending: not silently skipped
    err = refused(capsys, tmp_path, ["--pred", str(pred), "--labels", str(labels)])
    assert "case_4.nii: unexpected file in the labels folder" in err


def test_values_outside_the_classes_are_refused(capsys, tmp_path: Path) -> None:
    pred, labels = write_folders(tmp_path)
    bad = volumes()["case_10"][0].copy()
    bad[0, 0, 0] = 5
    save(pred / "case_10.nii.gz", bad)
    err = refused(capsys, tmp_path, ["--pred", str(pred), "--labels", str(labels),
                                     "-j", str(tmp_path / "dataset.json")])  # fmt: skip
    assert "case_10.nii.gz: value(s) 5 not among the classes of dataset.json (0, 1, 2)" in err


def test_console_script_refusal_exit_2(tmp_path: Path) -> None:
    pred, labels = write_folders(tmp_path)
    save(pred / "case_10.nii.gz", np.zeros((9, 9, 5)))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "segline-evaluate"), "--pred", str(pred),
         "--labels", str(labels), "--out", str(tmp_path / "o.csv")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "does not match" in proc.stderr and not (tmp_path / "o.csv").exists()


def test_bad_options_are_one_line(capsys, tmp_path: Path) -> None:
    pred, labels = write_folders(tmp_path)
    base = ["--pred", str(pred), "--labels", str(labels)]
    assert "unknown metric(s) dsc" in refused(capsys, tmp_path, [*base, "--metrics", "dice,dsc"])
    assert "segline reads .nii.gz or .nii" in refused(
        capsys, tmp_path, [*base, "--file-ending", ".png"])  # fmt: skip
    rc = run(main, [*base, "--summary", str(tmp_path / "s.txt")])
    assert rc == 2 and "--summary must end in .json or .md" in capsys.readouterr().err


# ------------------------------------------------------- agreement with the trainer
def test_agrees_with_the_trainers_test_metrics(tmp_path: Path) -> None:
    """A toy training (MSD task, Dimwit, one epoch) writes its test predictions in
    source geometry (``test/preds``) and its own test metrics; scored against the
    task's labels, segline-evaluate gives the same numbers, bit for bit."""
    from conftest import train_cli
    from msd_builder import make_task
    from segline.datasets.msd import MSDAdapter
    from segline.distmaps import write_dist_store
    from segline.preprocess.slicing import SliceParams, slice_dataset

    task = make_task(tmp_path / "raw", labels={"0": "background", "1": "spleen"})
    cases = tmp_path / "cases"
    slice_dataset(MSDAdapter(tmp_path / "raw"), cases, SliceParams(n_test=3, n_val=2))
    write_dist_store(cases, tmp_path / "dist")
    out = tmp_path / "gdl"
    proc = train_cli((cases, tmp_path / "dist"), out, "--epochs", "1", "--losses", "gdl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    trained = pd.read_csv(out / "test" / "metrics.csv")
    test_ids = sorted(set(trained["case"]))
    assert len(test_ids) == 3
    labels = tmp_path / "labelsTr"
    labels.mkdir()
    for case in test_ids:
        (labels / f"{case}.nii.gz").symlink_to(task / "labelsTr" / f"{case}.nii.gz")
    result = evaluate_folder(out / "test" / "preds", labels, dataset_json=task / "dataset.json")
    ours = result.table.set_index(["case", "class", "metric"])["value"]
    theirs = trained.set_index(["case", "class", "metric"])["value"]
    assert sorted(ours.index) == sorted(theirs.index)
    np.testing.assert_allclose(ours[theirs.index].to_numpy(), theirs.to_numpy(), rtol=0, atol=0)
