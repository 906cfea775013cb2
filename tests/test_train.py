"""The trainer on a tiny synthetic case store: outputs, determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import toy_case as _case
from conftest import train_cli

_train = train_cli


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
    assert sorted(val.epoch.unique()) == [1, 2, 3]
    assert set(val.case) == {"toy_2", "toy_3"} and set(val.metric) == {"dice", "hd95", "assd"}
    assert set(val["class"]) == {"organ"}
    epochs = pd.read_csv(out / "epochs.csv")
    assert list(epochs.epoch) == [1, 2, 3]
    # epochs counted from 1, the rebalanced schedule's alpha = 0.01 * epoch
    assert np.allclose(epochs.alpha, [0.01, 0.02, 0.03])
    best = int((out / "best_epoch.txt").read_text())
    assert best == int(epochs.epoch[epochs.val_dice.idxmax()])
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
    assert args["net"] == "Dimwit" and args["epochs"] == 3 and args["compile"] == "off"
    # timing.csv splits each epoch: its training pass, the loader waits in it, images
    timing = pd.read_csv(out / "timing.csv")
    assert list(timing.columns) == ["epoch", "seconds", "train_seconds", "load_seconds", "images"]
    assert (timing.load_seconds <= timing.train_seconds).all()
    assert (timing.train_seconds <= timing.seconds).all()
    assert (timing.images == 16).all()  # 3 train cases x 6 slices = 18, full batches of 4


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
    proc = _train(store, out, env={"SEGLINE_TEST_KILL_AFTER_EPOCH": "2"})
    assert proc.returncode == -9
    assert not out.exists(), "no result folder before training and evaluation completed"
    assert (tmp_path / "killed_tmp" / "train_state.pt").is_file()
    proc = _train(store, out)
    assert proc.returncode == 0, proc.stderr
    assert "[killed] resuming after epoch 2 (of 3)" in proc.stdout.splitlines()
    assert (out / "metrics.csv").read_bytes() == (trained / "metrics.csv").read_bytes()
    assert (out / "epochs.csv").read_text().count("\n") == 4


def test_changed_arguments_start_afresh(store, tmp_path: Path) -> None:
    out = tmp_path / "changed"
    assert _train(store, out, env={"SEGLINE_TEST_KILL_AFTER_EPOCH": "1"}).returncode == -9
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


KILL = "SEGLINE_TEST_KILL_AFTER_EPOCH"


def _lines(text: str) -> list[str]:
    """The non-empty lines of captured output (a progress bar's ``\\r`` ends a line too)."""
    return [ln for ln in text.replace("\r", "\n").split("\n") if ln.strip()]


@pytest.fixture(scope="module")
def resumed(store, tmp_path_factory: pytest.TempPathFactory):
    """A 2-epoch training killed (by the test hook) after epoch 1, then run again.

    Returns ``(out, killed, again)``: the result folder and both completed processes.
    """
    out = tmp_path_factory.mktemp("resumed") / "gdl"
    killed = _train(store, out, "--epochs", "2", env={KILL: "1"})
    assert killed.returncode == -9, killed.stderr
    again = _train(store, out, "--epochs", "2")
    assert again.returncode == 0, again.stderr
    return out, killed, again


def test_epochs_numbered_from_one_everywhere(resumed) -> None:
    out, killed, again = resumed
    # killed after epoch 1: its output ends with epoch 1's line
    assert _lines(killed.stdout)[-1].startswith("[gdl] epoch   1/2  loss ")
    assert not any("epoch   2/2" in ln for ln in _lines(killed.stdout))
    lines = _lines(again.stdout)
    assert lines[0] == "[gdl] resuming after epoch 1 (of 2)"
    epoch_lines = [ln for ln in lines if ln.startswith("[gdl] epoch ")]
    assert [ln.split()[2] for ln in epoch_lines] == ["2/2"], "epoch 1 is not trained again"

    epochs = pd.read_csv(out / "epochs.csv")
    assert list(epochs.epoch) == [1, 2]  # once each, though epoch 1 was trained by the killed run
    assert np.allclose(epochs.alpha, [0.01, 0.02])  # first epoch: alpha = 0.01 (index 0)
    assert list(pd.read_csv(out / "timing.csv").epoch) == [1, 2]
    best = int((out / "best_epoch.txt").read_text())
    assert best in (1, 2) and best == int(epochs.epoch[epochs.val_dice.idxmax()])
    metrics = pd.read_csv(out / "metrics.csv")
    val = metrics[metrics.split == "val"]
    # 2 val cases x (dice, hd95, assd) x 1 class per epoch, no epoch twice
    assert val.groupby("epoch").size().to_dict() == {1: 6, 2: 6}
    test = metrics[metrics.split == "test"]
    assert len(test) == 6 and set(test.epoch) == {best}
    assert set(pd.read_csv(out / "test" / "metrics.csv").epoch) == {best}
    # the final line names the same best epoch, and its line was starred
    assert lines[-1].startswith(f"[gdl] best epoch {best} of 2 (val dice ")
    starred = [
        int(ln.split()[2].split("/")[0])
        for ln in _lines(killed.stdout) + lines
        if ln.startswith("[gdl] epoch ") and ln.endswith(" *")
    ]
    assert starred[-1] == best


def test_every_line_names_its_method(resumed) -> None:
    _, killed, again = resumed
    for proc in (killed, again):
        lines = _lines(proc.stdout) + _lines(proc.stderr)
        assert lines, "the training printed something"
        bad = [ln for ln in lines if not ln.startswith("[gdl] ")]
        assert not bad, bad
    # header, resume line, the epoch line, final line
    assert len(_lines(again.stdout)) == 4, again.stdout


def test_progress_bar_and_warnings_name_the_method(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process: the progress bar forced on (it is off when stderr is not a terminal)
    and a warning raised mid-training are tagged like every other line."""
    import warnings

    from tqdm import tqdm

    from segline.train import cli, loop

    descs: list[str] = []

    def shown_bar(iterable, **kwargs):
        descs.append(kwargs["desc"])
        return tqdm(iterable, **{**kwargs, "disable": False})

    real_epoch = loop.Trainer._train_epoch

    def warning_epoch(self, epoch, loader, *rest):
        warnings.warn(f"something odd in epoch {epoch}\nsecond line", UserWarning, stacklevel=1)
        return real_epoch(self, epoch, loader, *rest)

    monkeypatch.setattr(loop, "tqdm", shown_bar)
    monkeypatch.setattr(loop.Trainer, "_train_epoch", warning_epoch)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    cases, dist = store
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            rc = cli.main(
                ["--cases", str(cases), "--dist", str(dist), "--out", str(tmp_path / "ce"),
                 "--net", "Dimwit", "--epochs", "2", "--batch-size", "4", "--amp", "off",
                 "--device", "cpu", "--losses", "ce:1", "--debug"]
            )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    assert rc == 0
    assert descs == ["[ce] epoch 1/2", "[ce] epoch 2/2"]
    captured = capsys.readouterr()
    err = _lines(captured.err)
    assert any(ln.startswith("[ce] epoch 1/2: ") and "it/s" in ln for ln in err), err
    assert "[ce] warning: UserWarning: something odd in epoch 2" in err
    assert any(ln.startswith("[ce] second line (test_train.py:") for ln in err), err
    out = _lines(captured.out)
    assert len(out) == 4 and out[-1].startswith("[ce] best epoch ")
    assert all(ln.startswith("[ce] ") for ln in out + err), out + err
