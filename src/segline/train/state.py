"""Checkpoints and resume state, written atomically every epoch.

``last.pt`` / ``best.pt`` hold the network's ``state_dict`` only (loadable with
``torch.load(path, weights_only=True)``; the reference implementation pickled whole
networks, unloadable on newer torch). ``train_state.pt`` holds everything needed to
resume after a kill — optimiser, RNG state, completed epoch, best epoch and the
metric records so far — as plain tensors, numbers and strings, so it also loads
with ``weights_only=True``. One file, one atomic rename: a resume never sees a
checkpoint and a record list from different epochs.

Epochs in the state are numbered as users see them, from 1 (``epoch`` = the last
completed epoch). The state records that numbering (``EPOCHS_FROM``); a state
without it (written when epochs were counted from 0) is not resumed from: the
training starts again rather than mixing two numberings in one table.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from segline import atomic

STATE = "train_state.pt"
EPOCHS_FROM = 1
"""The number of the first epoch in a saved state (and everywhere a user sees one)."""


def save_tensor_file(path: Path, obj: Any) -> None:
    """``torch.save`` through a temporary file + rename."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic.write_bytes(path, buf.getvalue())


def save_state(
    work: Path,
    *,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    best_epoch: int,
    scaler: torch.amp.GradScaler | None = None,
    best_score: float,
    records: list[dict[str, Any]],
    epochs: list[dict[str, Any]],
    best_history: list[int] | None = None,
) -> None:
    """Write the resume state after ``epoch`` (counted from 1) completed.

    ``best_history``: the best epoch once each epoch completed (``SCHED=halve``'s
    learning rate depends on it, :func:`segline.train.schedule.halvings`).
    """
    state = {
        "epochs_from": EPOCHS_FROM,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "best_epoch": best_epoch,
        "best_score": best_score,
        "records": json.dumps(records),
        "epochs": json.dumps(epochs),
        "best_history": json.dumps(list(best_history or [])),
        "torch_rng": torch.get_rng_state(),
        # fp16 loss scale and its growth tracker ({} when loss scaling is off)
        "scaler": scaler.state_dict() if scaler is not None else {},
    }
    save_tensor_file(work / STATE, state)


def load_state(work: Path) -> dict[str, Any] | None:
    """The resume state, or None when there is none, it is unreadable or it numbers
    epochs differently (an older segline's)."""
    path = work / STATE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged state means: start again
        return None
    if int(state.get("epochs_from", 0)) != EPOCHS_FROM:
        return None
    state["records"] = json.loads(state["records"])
    state["epochs"] = json.loads(state["epochs"])
    state["best_history"] = json.loads(state.get("best_history", "[]"))
    return state
