"""The trainer on a tiny synthetic case store: outputs, determinism, resume."""

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
import torch

from conftest import toy_case as _case


def _train(
    store: tuple[Path, Path], out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cases, dist = store
    cmd = [
        sys.executable,
        "-m",
        "segline.train",
        "--cases",
        str(cases),
        "--dist",
        str(dist),
        "--out",
        str(out),
        "--net",
        "Dimwit",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
        "--amp",
        "off",
        "--losses",
        "gdl:1,boundary:0.01[schedule=rebalance]",
        *extra,
    ]
    full_env = {**os.environ, "SEGLINE_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("res") / "gdl_boundary"
    proc = _train(store, out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_outputs(trained: Path, store) -> None:
    out = trained
    assert not out.with_name(out.name + "_tmp").exists()
    assert not (out / "train_state.pt").exists()
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "split", "case", "class", "metric", "value"]
    val = metrics[metrics.split == "val"]
    assert sorted(val.epoch.unique()) == [0, 1, 2]
    assert set(val.case) == {"toy_2", "toy_3"} and set(val.metric) == {"dice", "hd95", "assd"}
    assert set(val["class"]) == {"organ"}
    epochs = pd.read_csv(out / "epochs.csv")
    assert len(epochs) == 3 and np.allclose(epochs.alpha, [0.01, 0.02, 0.03])
    best = int((out / "best_epoch.txt").read_text())
    assert best == int(epochs.val_dice.idxmax())
    test = metrics[metrics.split == "test"]
    assert set(test.case) == {"toy_0", "toy_1"} and (test.epoch == best).all()
    assert pd.read_csv(out / "test" / "metrics.csv").shape[0] == len(test)
    for name in ("best.pt", "last.pt"):
        sd = torch.load(out / name, weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in sd.values())
    pred = nib.load(out / "test" / "preds" / "toy_0.nii.gz")
    img, _ = _case(0)
    assert pred.shape == img.shape
    assert np.allclose(pred.affine, np.diag([-0.8, -0.8, 5.0, 1.0]))
    zyx = np.load(out / "test" / "preds_zyx" / "toy_0.npy")
    assert np.array_equal(np.asarray(pred.dataobj).T, zyx)
    prov = out / "provenance"
    for name in ("command.txt", "git-commit.txt", "git.diff", "pip-freeze.txt", "runtime.json"):
        assert (prov / name).is_file(), name
    assert "segline.train" in (prov / "command.txt").read_text()
    assert "torch==" in (prov / "pip-freeze.txt").read_text()
    args = json.loads((out / "args.json").read_text())
    assert args["net"] == "Dimwit" and args["epochs"] == 3


def test_learns_the_box(store, tmp_path: Path) -> None:
    out = tmp_path / "gdl"
    proc = _train(store, out, "--losses", "gdl:1", "--epochs", "8")
    assert proc.returncode == 0, proc.stderr
    epochs = pd.read_csv(out / "epochs.csv")
    assert epochs.val_dice.max() > 0.8, epochs


def test_same_seed_same_metrics(store, trained: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert _train(store, again).returncode == 0
    assert (again / "metrics.csv").read_bytes() == (trained / "metrics.csv").read_bytes()


def test_killed_run_resumes_to_same_result(store, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    proc = _train(store, out, env={"SEGLINE_TEST_KILL_AFTER_EPOCH": "1"})
    assert proc.returncode == -9
    assert not out.exists(), "no result folder before training and evaluation completed"
    assert (tmp_path / "killed_tmp" / "train_state.pt").is_file()
    proc = _train(store, out)
    assert proc.returncode == 0, proc.stderr
    assert "resuming after epoch 1" in proc.stdout
    assert (out / "metrics.csv").read_bytes() == (trained / "metrics.csv").read_bytes()
    assert (out / "epochs.csv").read_text().count("\n") == 4


def test_changed_arguments_start_afresh(store, tmp_path: Path) -> None:
    out = tmp_path / "changed"
    _train(store, out, env={"SEGLINE_TEST_KILL_AFTER_EPOCH": "0"})
    proc = _train(store, out, "--lr", "5e-3")
    assert proc.returncode == 0 and "resuming" not in proc.stdout


def test_bad_loss_spec_is_one_line(store, tmp_path: Path) -> None:
    proc = _train(store, tmp_path / "bad", "--losses", "__import__('os')")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "bad").exists()


def test_weighted_ce_with_boundary_weights(store, tmp_path: Path) -> None:
    proc = _train(
        store,
        tmp_path / "w",
        "--losses",
        "ce:1[weighted=true]",
        "--weight-map",
        "5,3",
        "--epochs",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    missing = _train(store, tmp_path / "m", "--losses", "ce:1[weighted=true]", "--epochs", "1")
    assert missing.returncode == 2 and "--weight-map" in missing.stderr


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--lr", "inf", "--lr (LR): must be a finite number > 0, got inf"),
        ("--lr", "nan", "--lr (LR): must be a finite number > 0, got nan"),
        ("--lr", "-1e-3", "--lr (LR): must be a finite number > 0, got -0.001"),
        ("--epochs", "0", "--epochs (EPC): must be an integer >= 1, got 0"),
        ("--batch-size", "0", "--batch-size (BS): must be an integer >= 1, got 0"),
        ("--context", "-1", "--context (CONTEXT): must be an integer >= 0"),
        ("--seed", "-1", "--seed (SEED): must be an integer in [0, 2^32), got -1"),
        ("--fg-ratio", "nan", "--fg-ratio: must be a number in [0, 1], got nan"),
        ("--overlap", "inf", "--overlap: must be a number in [0, 1), got inf"),
        ("--samples-per-epoch", "0", "--samples-per-epoch: must be an integer >= 1, got 0"),
        ("--weight-map", "nan,3", "--weight-map: w0 must be a finite number >= 0"),
    ],
)
def test_bad_numbers_are_one_line_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, problem: str
) -> None:
    from segline.cli import run
    from segline.train.cli import main

    out = tmp_path / "res"
    argv = [
        "--cases",
        str(tmp_path / "c"),
        "--dist",
        str(tmp_path / "d"),
        "--out",
        str(out),
        "--net",
        "Dimwit",
        f"{option}={value}",
    ]
    assert run(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"segline: {problem}") and err.count("\n") == 1, err
    assert not out.exists() and not (tmp_path / "res_tmp").exists()
