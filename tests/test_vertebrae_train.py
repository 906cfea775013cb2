"""``python -m segline.experiments.vertebrae.train``: one tiny run of each method on a
fixture store writes the method-folder contract (its trainer class recorded in
``args.json``); unsupported options are refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import with_test_hooks
from segline.casestore import CaseStore
from segline.errors import InputError
from segline.experiments.vertebrae.apply import predict_volume
from segline.experiments.vertebrae.train import main
from segline.train.loop import EPOCH_COLUMNS, RECORD_COLUMNS
from vertebrae_fixtures import VALUES, spine_store

COMMON = ["--epochs", "2", "--batch-size", "2", "--amp", "off", "--seed", "1"]
TINY = {
    "iterative": [
        "--net-opt", "channels=4", "--net-opt", "depth=1", "--patch", "12,12,12",
        "--samples-per-epoch", "6", "--weight-map", "5,3", "--aug", "strong",
    ],
    "semantic": [
        "--net", "UNet3D", "--net-opt", "base=2", "--net-opt", "depth=1",
        "--patch", "12,12,12", "--samples-per-epoch", "4", "--losses", "ce:1,dice:1",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return spine_store(tmp_path_factory.mktemp("spine"))


def args_for(store: tuple[Path, Path], out: Path, method: str) -> list[str]:
    cases, dist = store
    return ["--method", method, "--cases", str(cases), "--dist", str(dist), "--out", str(out)]


@pytest.mark.parametrize("method", ["iterative", "semantic"])
def test_tiny_run_writes_the_contract(
    store: tuple[Path, Path], tmp_path: Path, method: str
) -> None:
    out = tmp_path / method
    assert main([*args_for(store, out, method), *COMMON, *TINY[method]]) == 0
    for name in ("best.pt", "last.pt", "train.log", "lineage.json", "classes.json"):
        assert (out / name).is_file(), name
    assert not Path(f"{out}_tmp").exists()
    epochs = pd.read_csv(out / "epochs.csv")
    assert list(epochs.columns) == [*EPOCH_COLUMNS, "val_id_rate"]
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs["val_id_rate"].between(0, 1).all() and epochs["val_hd95"].isna().all()
    assert (epochs["val_loss"] > 0).all()  # iterative: on fixed validation patches
    best = int((out / "best_epoch.txt").read_text())
    scores = epochs["val_id_rate"] * 1e6 + epochs["val_dice"]
    assert best == int(epochs["epoch"][scores.idxmax()])
    timing = pd.read_csv(out / "timing.csv")
    assert timing["images"].tolist() == [6, 6] if method == "iterative" else [4, 4]
    args = json.loads((out / "args.json").read_text())
    assert args["method"] == method and args["patch"] == [12, 12, 12]
    assert args["trainer"] == (
        f"segline.experiments.vertebrae.train:{method.capitalize()}Trainer"
    )
    assert args["selected_on"] == ["val_id_rate", "val_dice"]
    assert "segline.experiments.vertebrae.train" in (out / "provenance" / "command.txt").read_text()
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == RECORD_COLUMNS
    test = metrics[metrics["split"] == "test"]
    assert set(test["epoch"]) == {best} and set(test["case"]) == {"spine_0"}
    assert set(test["class"]) == {"L1", "L2", "L3", "L4", "spine"}
    spine = test[test["class"] == "spine"].set_index("metric")["value"]
    assert spine.index.tolist() == ["dice", "assd", "id_rate", "false_positives", "misses"]
    assert spine["misses"] == pytest.approx(4 * (1 - spine["id_rate"]))
    # predictions in source geometry; the same labels as predict_volume gives
    pred_zyx = np.load(out / "test" / "preds_zyx" / "spine_0.npy")
    written = np.asarray(nib.load(out / "test" / "preds" / "spine_0.nii.gz").dataobj)
    assert written.shape == (12, 12, 36)  # (X, Y, Z) of the source
    image = np.array(CaseStore(store[0]).image("spine_0"))
    again = predict_volume(out, image)
    if method == "iterative":
        np.testing.assert_array_equal(again, pred_zyx)  # instance ids as they are
        assert set(np.unique(written)) == set(np.unique(pred_zyx))
    else:
        lut = np.array([VALUES[str(i)] for i in range(5)])
        np.testing.assert_array_equal(again, lut[pred_zyx])  # VerSe values
        assert set(np.unique(written).tolist()) <= set(VALUES.values())


@pytest.mark.parametrize(
    ("method", "extra", "message"),
    [
        ("iterative", ["--net", "UNet3D"], "needs --net IterativeFCN"),
        ("iterative", ["--losses", "gdl:1"], "wbce:A,complete:B"),
        ("iterative", ["--dist-kind", "2d"], "--dist-kind (DIST): not supported"),
        ("iterative", ["--context", "1"], "--context (CONTEXT): not supported"),
        ("semantic", ["--aug", "strong"], "--aug (AUG): not supported"),
        ("semantic", ["--weight-map", "5,3"], "--weight-map (WEIGHT_MAP): not supported"),
        ("semantic", ["--net", "IterativeFCN"], "needs a 3D net"),
    ],
)
def test_unsupported_options_refused(
    store: tuple[Path, Path], tmp_path: Path, method: str, extra: list[str], message: str
) -> None:
    with pytest.raises(InputError) as err:
        main([*args_for(store, tmp_path / "m", method), *COMMON, *extra])
    assert message in str(err.value)
    assert not (tmp_path / "m").exists()


def test_killed_run_resumes_to_the_same_tables(store: tuple[Path, Path], tmp_path: Path) -> None:
    """Trainer's resume machinery serves the vertebra trainer: a run killed after epoch
    1 continues from ``<out>_tmp`` and ends with the tables of an uninterrupted run."""
    env = with_test_hooks({**os.environ, "SEGLINE_TEST_KILL_AFTER_EPOCH": "1"})
    out = tmp_path / "iterative"
    argv = [*args_for(store, out, "iterative"), *COMMON, *TINY["iterative"]]
    cmd = [sys.executable, "-m", "segline.experiments.vertebrae.train", *argv]
    killed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode == -9 and not out.exists()
    assert Path(f"{out}_tmp", "train_state.pt").is_file()
    # the same command (the lineage holds the code imported: a process like the first)
    del env["SEGLINE_TEST_KILL_AFTER_EPOCH"]
    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1 (of 2)" in (out / "train.log").read_text()
    # run as python -m: the class is recorded by its importable module name
    trainer = json.loads((out / "args.json").read_text())["trainer"]
    assert trainer == "segline.experiments.vertebrae.train:IterativeTrainer"
    fresh = tmp_path / "fresh"
    # the trainer computes with its configured thread count (1) here as in the subprocesses
    assert main([*args_for(store, fresh, "iterative"), *COMMON, *TINY["iterative"]]) == 0
    for name in ("epochs.csv", "metrics.csv", "best_epoch.txt"):
        assert (out / name).read_text() == (fresh / name).read_text(), name
