"""The EBP trainer (segline.experiments.ebp.train) on the shared loop: its method folder,
a killed run resumed to the same tables, the predictor that ``segline-predict`` and the
evaluation stage load giving the training's test predictions, and its options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import train_cli, with_test_hooks
from segline.casestore import CaseStore
from segline.errors import InputError
from segline.experiments.ebp.train import main
from segline.predicting.infer import load_predictor

MODULE = "segline.experiments.ebp.train"
TINY = ["--net", "Dimwit", "--epochs", "2", "--batch-size", "16", "--lr", "2e-3",
        "--amp", "off", "--samples-per-epoch", "48", "--directions", "8,8", "--threads", "1",
        "--losses", "ohem_mse:1[keep=0.7]"]  # fmt: skip


def args_for(store: tuple[Path, Path], out: Path, roi: str) -> list[str]:
    cases, dist = store
    return ["--cases", str(cases), "--dist", str(dist), "--out", str(out), "--roi", roi, *TINY]


@pytest.fixture(scope="module")
def roi_method(store: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A core 2D training on the same store: the region of interest of ``pred:``."""
    out = tmp_path_factory.mktemp("roi") / "gdl"
    done = train_cli(store, out, "--losses", "gdl:1", "--threads", "1")
    assert done.returncode == 0, done.stderr
    return out


def test_method_folder_and_predictor(store: tuple[Path, Path], roi_method: Path,
                                     tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "ebp"
    assert main(args_for(store, out, f"pred:{roi_method}")) == 0
    args = json.loads((out / "args.json").read_text())
    assert args["trainer"] == "segline.experiments.ebp.train:EBPTrainer"
    assert args["oracle"] is False and args["directions"] == [8, 8]
    assert args["roi"] == f"pred:{roi_method}"
    lineage = json.loads((out / "lineage.json").read_text())
    assert "roi" in json.dumps(lineage["inputs"])  # the region's method is an input
    epochs = pd.read_csv(out / "epochs.csv")
    assert list(epochs["epoch"]) == [1, 2]
    assert epochs["val_loss"].notna().all() and (epochs["val_loss"] >= 0).all()
    assert ((epochs["tra_dice"] >= 0) & (epochs["tra_dice"] <= 1)).all()
    test = pd.read_csv(out / "test" / "metrics.csv")
    cs = CaseStore(*store)
    assert sorted(set(test["case"])) == sorted(cs.case_ids("test"))
    timing = pd.read_csv(out / "test" / "timing.csv")
    assert list(timing.columns) == ["case", "seconds", "roi_seconds", "shell_seconds",
                                    "reconstruction_seconds", "pivots", "kept"]  # fmt: skip
    assert (timing["pivots"] >= timing["kept"]).all() and (timing["seconds"] > 0).all()
    # segline-predict and the evaluation stage load the same predictor: same labels
    predictor = load_predictor(out, cs, "cpu", "off")
    for case in cs.case_ids("test"):
        labels, probs = predictor.predict(np.asarray(cs.image(case)))
        assert probs is None
        np.testing.assert_array_equal(labels, np.load(out / "test" / "preds_zyx" / f"{case}.npy"))
    # each test metric is that of the written prediction
    dice = test[(test["metric"] == "dice") & (test["class"] == 1)].set_index("case")["value"]
    for case, value in dice.items():
        pred = np.load(out / "test" / "preds_zyx" / f"{case}.npy") > 0
        gt = np.asarray(cs.label(case)) > 0
        denom = pred.sum() + gt.sum()
        expect = 2 * (pred & gt).sum() / denom if denom else 1.0
        assert value == pytest.approx(expect, abs=1e-9) or (np.isnan(value) and not gt.any())


def test_oracle_is_recorded_and_refuses_unlabelled_images(store: tuple[Path, Path],
                                                          tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "oracle"
    assert main([*args_for(store, out, "gt"), "--epochs", "1"]) == 0
    assert json.loads((out / "args.json").read_text())["oracle"] is True
    cs = CaseStore(*store)
    predictor = load_predictor(out, cs, "cpu", "off")
    assert predictor.reads_labels
    case = cs.case_ids("test")[0]
    with pytest.raises(InputError, match="unlabelled"):
        predictor.predict(np.asarray(cs.image(case)))
    labels, _ = predictor.predict(np.asarray(cs.image(case)), label=np.asarray(cs.label(case)))
    np.testing.assert_array_equal(labels, np.load(out / "test" / "preds_zyx" / f"{case}.npy"))


def test_killed_run_resumes_to_the_same_tables(store: tuple[Path, Path], tmp_path: Path) -> None:
    env = with_test_hooks({**os.environ, "SEGLINE_TEST_KILL_AFTER_EPOCH": "1"})
    out = tmp_path / "ebp"
    cmd = [sys.executable, "-m", MODULE, *args_for(store, out, "gt")]
    killed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode == -9 and not out.exists()
    del env["SEGLINE_TEST_KILL_AFTER_EPOCH"]
    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1 (of 2)" in (out / "train.log").read_text()
    fresh = tmp_path / "fresh"
    assert main(args_for(store, fresh, "gt")) == 0
    for name in ("epochs.csv", "metrics.csv", "best_epoch.txt"):
        assert (out / name).read_text() == (fresh / name).read_text(), name


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--roi", "box"], "pred:<method folder> or gt"),
        (["--losses", "gdl:1"], "ohem_mse"),
        (["--balance", "0.7x"], "--balance"),
        (["--directions", "2,2"], "--directions"),
        (["--context", "1"], "not supported by EBP"),
    ],
)
def test_bad_options_are_refused_in_one_line(store: tuple[Path, Path], tmp_path: Path,
                                             extra: list[str], message: str) -> None:  # fmt: skip
    done = train_cli(store, tmp_path / "x", *args_for(store, tmp_path / "x", "gt")[6:], *extra,
                     "--roi", extra[1] if extra[0] == "--roi" else "gt", module=MODULE)  # fmt: skip
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "x").exists()
