"""A training stopped by SIGTERM/SIGUSR1 mid-epoch resumes to a byte-identical result.

The signals come from the test hooks (tests/plugins/sitecustomize.py): the training
process sends them to itself right after a given optimisation step, or while it writes
its mid-epoch state, so every run stops at the same point on any machine. Each training
runs in its own folder with the same relative ``--out``, outside any git repository,
so the provenance files of two runs agree too and whole folders are compared by their
content digest (segline.digest.tree_digest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import with_test_hooks
from segline.digest import tree_digest
from segline.train import preempt
from segline.train import state as st

OUT = "gdl"
# 3 train cases x 6 slices = 18 slices: 4 batches of 4 per epoch (drop_last)
BATCHES = 4


def _train(store, cwd: Path, *extra: str, env: dict[str, str] | None = None):
    """The trainer in ``cwd`` (Dimwit, 3 epochs, GDL + boundary), ``--out gdl``."""
    cases, dist = store
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "segline.train", "--cases", str(cases), "--dist", str(dist),
        "--out", OUT, "--net", "Dimwit", "--epochs", "3", "--batch-size", "4",
        "--lr", "1e-2", "--amp", "off", "--losses", "gdl:1,boundary:0.01[schedule=rebalance]",
        *extra,
    ]  # fmt: skip
    full_env = with_test_hooks({**os.environ, **(env or {})})
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=300
    )  # fmt: skip


@pytest.fixture(scope="module")
def clean(store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted training."""
    cwd = tmp_path_factory.mktemp("clean")
    proc = _train(store, cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / OUT


def _same_as_clean(out: Path, clean: Path) -> None:
    assert (out / "best.pt").read_bytes() == (clean / "best.pt").read_bytes()
    assert (out / "epochs.csv").read_bytes() == (clean / "epochs.csv").read_bytes()
    assert (out / "metrics.csv").read_bytes() == (clean / "metrics.csv").read_bytes()
    assert tree_digest(out) == tree_digest(clean)


def _state(cwd: Path) -> dict:
    state = st.load_state(cwd / f"{OUT}_tmp")
    assert state is not None
    return state


def test_usr1_mid_epoch_stops_resumably_and_resumes_byte_identical(
    store, clean: Path, tmp_path: Path
) -> None:
    proc = _train(store, tmp_path, env={"SEGLINE_TEST_SIGNAL_AT": "2:2:USR1"})
    assert proc.returncode == preempt.EXIT_RESUMABLE == 75, proc.stderr
    assert "[gdl] stopped by SIGUSR1 in epoch 2 after batch 2; resumable state in" in proc.stdout
    assert not (tmp_path / OUT).exists()
    state = _state(tmp_path)
    assert state["epoch"] == 1 and state["partial"]["epoch"] == 2
    assert state["partial"]["steps"] == 2 and state["partial"]["n"] == 8
    assert len(state["epochs"]) == 1
    # the weights after step 2 of epoch 2, not those of epoch 1
    last = torch.load(tmp_path / f"{OUT}_tmp" / "last.pt", weights_only=True)
    assert any(not torch.equal(last[k], v) for k, v in state["model"].items())

    proc = _train(store, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[gdl] resuming mid-epoch: epoch 2 (of 3) at batch 3" in proc.stdout.splitlines()
    assert not (tmp_path / f"{OUT}_tmp").exists()
    _same_as_clean(tmp_path / OUT, clean)
    log = (tmp_path / OUT / "train.log").read_text()
    assert "stopped by SIGUSR1" in log and "resuming mid-epoch" in log


def test_sigterm_after_an_epochs_last_step(store, clean: Path, tmp_path: Path) -> None:
    """TERM after the last batch of the last epoch: the resume trains nothing more of
    it, validates it and tests."""
    proc = _train(store, tmp_path, env={"SEGLINE_TEST_SIGNAL_AT": f"3:{BATCHES}:TERM"})
    assert proc.returncode == 75, proc.stderr
    assert f"stopped by SIGTERM in epoch 3 after batch {BATCHES}" in proc.stdout
    assert _state(tmp_path)["partial"]["steps"] == BATCHES
    proc = _train(store, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"[gdl] resuming mid-epoch: epoch 3 (of 3) at batch {BATCHES + 1}" in proc.stdout
    _same_as_clean(tmp_path / OUT, clean)


def test_second_signal_during_the_save_waits_for_it(store, clean: Path, tmp_path: Path) -> None:
    """USR1, then TERM while the mid-epoch state is written: the write completes, then
    the process stops at once (128 + SIGTERM) with that state on disk."""
    env = {"SEGLINE_TEST_SIGNAL_AT": "2:3:USR1", "SEGLINE_TEST_SIGNAL_IN_SAVE": "TERM"}
    proc = _train(store, tmp_path, env=env)
    assert proc.returncode == 128 + 15, proc.stderr
    state = _state(tmp_path)
    assert state["partial"]["epoch"] == 2 and state["partial"]["steps"] == 3
    assert not [p.name for p in (tmp_path / f"{OUT}_tmp").iterdir() if p.name.endswith(".tmp")]
    proc = _train(store, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[gdl] resuming mid-epoch: epoch 2 (of 3) at batch 4" in proc.stdout
    _same_as_clean(tmp_path / OUT, clean)


def test_second_signal_stops_at_once(store, clean: Path, tmp_path: Path) -> None:
    """USR1 and TERM at once: no mid-epoch state; the run resumes from the last
    epoch's state and still ends byte-identical."""
    proc = _train(store, tmp_path, env={"SEGLINE_TEST_SIGNAL_AT": "2:2:USR1,TERM"})
    assert proc.returncode == 128 + 15, proc.stderr
    assert "stopped by" not in proc.stdout
    state = _state(tmp_path)
    assert state["epoch"] == 1 and not state["partial"]
    proc = _train(store, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[gdl] resuming after epoch 1 (of 3)" in proc.stdout
    _same_as_clean(tmp_path / OUT, clean)


def test_3d_patches_with_a_loader_worker(store, tmp_path: Path) -> None:
    """A 3D network's patch loader (no generator of its own: its workers' seed is drawn
    from the global RNG) with one worker process, stopped in epoch 1."""
    extra = ("--net", "Dimwit3D", "--patch", "4,16,16", "--samples-per-epoch", "12",
             "--epochs", "2", "--workers", "1")  # fmt: skip
    assert _train(store, tmp_path / "a", *extra).returncode == 0
    env = {"SEGLINE_TEST_SIGNAL_AT": "1:1:TERM"}
    proc = _train(store, tmp_path / "b", *extra, env=env)
    assert proc.returncode == 75, proc.stderr
    proc = _train(store, tmp_path / "b", *extra)
    assert proc.returncode == 0, proc.stderr
    assert "[gdl] resuming mid-epoch: epoch 1 (of 2) at batch 2" in proc.stdout
    _same_as_clean(tmp_path / "b" / OUT, tmp_path / "a" / OUT)
