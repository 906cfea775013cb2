"""``SCHED=halve``: the boundary-loss reference code's learning-rate rule.

The reference (``--schedule``) halves the LR after epoch index i (from 0) when
``i % (best_epoch + 20) == 0``, ``best_epoch`` the index of the best validation epoch
so far (0 before any). Checked against that loop written out here, on a hand-made
best-epoch history, and in a training killed and resumed (the history is in the
resume state)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import train_cli
from segline.train import state as st
from segline.train.schedule import halvings, lr_at


def reference_lrs(lr: float, best_index_after: list[int]) -> list[float]:
    """The LR each epoch index i trains with, stepped as the reference's loop does;
    ``best_index_after[i]``: its best_epoch once epoch i is validated."""
    out = []
    for i, best in enumerate(best_index_after):
        out.append(lr)
        if i % (best + 20) == 0:
            lr *= 0.5
    return out


def test_lr_sequence_on_a_hand_made_best_history() -> None:
    # best epoch (counted from 1) once each epoch completed: 1 for epochs 1..4, then
    # epoch 5 until epoch 40, then epoch 41
    best = [1] * 4 + [5] * 36 + [41] * 30
    lrs = [lr_at(e, 70, 1.0, "halve", best=best) for e in range(1, 71)]
    # halved after epoch 1 (index 0 % 20), after epoch 25 (index 24 % (4 + 20)) and
    # after epoch 61 (index 60 % (40 + 20))
    assert lrs == [1.0] + [0.5] * 24 + [0.25] * 36 + [0.125] * 9
    assert lrs == reference_lrs(1.0, [b - 1 for b in best])
    # no improvement at all (best epoch stays the first): halved every 20 epochs
    assert [halvings(e, [1] * 60) for e in (1, 2, 21, 22, 41, 42)] == [0, 1, 1, 2, 2, 3]
    # no finite score yet (best -1) counts as index 0, the reference's initial value
    assert halvings(3, [-1, -1]) == 1


def test_halve_with_warm_up_and_refusals() -> None:
    best = [1] * 50
    lrs = [lr_at(e, 50, 0.3, "halve", warmup=2, best=best) for e in range(1, 50)]
    # warm-up epochs 1, 2 (0.1, 0.2) never halve; then index 20 % 20 after epoch 21
    assert lrs[:2] == pytest.approx([0.1, 0.2])
    assert lrs[2:21] == [0.3] * 19 and lrs[21:41] == [0.15] * 20 and lrs[41] == 0.075
    with pytest.raises(ValueError, match="the best epoch after each of epochs 1..2"):
        lr_at(3, 5, 1.0, "halve", best=[1])
    assert lr_at(3, 5, 1.0, "const", best=[]) == 1.0  # other schedules ignore it


def test_resume_state_keeps_the_best_history(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters())
    st.save_state(tmp_path, epoch=3, model=model, optimizer=opt, best_epoch=2, best_score=0.5,
                  records=[], epochs=[], best_history=[1, 2, 2])  # fmt: skip
    assert st.load_state(tmp_path)["best_history"] == [1, 2, 2]


def test_halve_training_killed_and_resumed(store, tmp_path: Path) -> None:
    whole = tmp_path / "whole" / "halve"
    proc = train_cli(store, whole, "--sched", "halve")
    assert proc.returncode == 0, proc.stderr
    # lr 1e-2, halved after the first epoch (index 0), not after the second
    assert pd.read_csv(whole / "epochs.csv")["lr"].tolist() == [0.01, 0.005, 0.005]
    assert json.loads((whole / "args.json").read_text())["sched"] == "halve"
    out = tmp_path / "killed" / "halve"
    killed = train_cli(store, out, "--sched", "halve", env={"SEGLINE_TEST_KILL_AFTER_EPOCH": "1"})
    assert killed.returncode == -9, killed.stderr
    again = train_cli(store, out, "--sched", "halve")
    assert again.returncode == 0, again.stderr
    assert "resuming after epoch 1" in again.stdout
    for name in ("epochs.csv", "metrics.csv", "best_epoch.txt", "best.pt", "last.pt"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
