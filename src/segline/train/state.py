"""Checkpoints and resume state, written atomically every epoch.

``last.pt`` / ``best.pt`` hold the network's ``state_dict`` only (loadable with
``torch.load(path, weights_only=True)``; the reference implementation pickled whole
networks, unloadable on newer torch). ``train_state.pt`` holds everything needed to
resume after a kill — optimiser, RNG state, completed epoch, best epoch and the
metric records so far — as plain tensors, numbers and strings, so it also loads
with ``weights_only=True``. One file, one atomic rename: a resume never sees a
checkpoint and a record list from different epochs.

A training stopped by a signal (:mod:`segline.train.preempt`) saves a *mid-epoch*
state: ``epoch`` is still the last completed epoch, and ``partial`` holds the epoch in
progress (:class:`EpochProgress`: the batches done, the running loss and Dice sums, the
global torch RNG as it was when the epoch's loader started). With the random states
after the last step (:func:`rng_state`) that is all a resume needs to continue the
epoch with its next batch and end byte-identical to an uninterrupted run: an epoch's
batch order and every batch's content are functions of (seed, epoch, index) only
(:mod:`segline.train.loader`).

Epochs in the state are numbered as users see them, from 1 (``epoch`` = the last
completed epoch). The state records that numbering (``EPOCHS_FROM``); a state
without it (written when epochs were counted from 0) is not resumed from: the
training starts again rather than mixing two numberings in one table.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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


@dataclass
class EpochProgress:
    """The part of an epoch done so far, as the trainer accumulates it on the device.

    ``epoch``: counted from 1; ``steps``: optimisation steps (batches) done, so the
    next batch's index; ``total``: summed loss times batch size and ``n`` the images
    trained (the epoch's mean loss); ``inter``/``sums``: per foreground class
    intersections and sizes (the epoch's training Dice); ``train_seconds`` /
    ``load_seconds``: wall times so far (``timing.csv``, volatile); ``loader_rng``:
    the global torch RNG right before the epoch's loader drew its first number (a
    loader drawing from it, e.g. a shuffle without its own generator, repeats its
    order from it on resume)."""

    epoch: int
    inter: torch.Tensor
    sums: torch.Tensor
    total: torch.Tensor
    n: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    load_seconds: float = 0.0
    loader_rng: torch.Tensor = field(default_factory=lambda: torch.get_rng_state())

    @classmethod
    def start(cls, epoch: int, n_classes: int, device: torch.device) -> EpochProgress:
        """Nothing done yet of ``epoch`` (float64 sums on ``device``)."""
        return cls(
            epoch=epoch,
            inter=torch.zeros(n_classes - 1, dtype=torch.float64, device=device),
            sums=torch.zeros(n_classes - 1, dtype=torch.float64, device=device),
            total=torch.zeros((), dtype=torch.float64, device=device),
        )

    def to_state(self) -> dict[str, Any]:
        """Plain tensors and numbers (``weights_only`` loadable), sums on the CPU."""
        return {
            "epoch": self.epoch,
            "steps": self.steps,
            "n": self.n,
            "inter": self.inter.detach().cpu(),
            "sums": self.sums.detach().cpu(),
            "total": self.total.detach().cpu(),
            "train_seconds": self.train_seconds,
            "load_seconds": self.load_seconds,
            "loader_rng": self.loader_rng,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any], device: torch.device) -> EpochProgress:
        """Inverse of :meth:`to_state`, the sums moved to ``device``."""
        return cls(
            epoch=int(d["epoch"]),
            steps=int(d["steps"]),
            n=int(d["n"]),
            inter=d["inter"].to(device),
            sums=d["sums"].to(device),
            total=d["total"].to(device),
            train_seconds=float(d["train_seconds"]),
            load_seconds=float(d["load_seconds"]),
            loader_rng=d["loader_rng"],
        )


def rng_state() -> dict[str, Any]:
    """Every random state a training step may draw from: torch's CPU generator, each
    CUDA device's (when CUDA is in use), Python's and numpy's global ones (as JSON)."""
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "python": json.dumps(random.getstate()),
        "numpy": json.dumps(np_state),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s generators (CUDA's when as many devices are seen)."""
    torch.set_rng_state(state["torch"])
    cuda = list(state.get("cuda", []))
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    if "python" in state:
        version, internal, gauss = json.loads(state["python"])
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        np_state = json.loads(state["numpy"])
        np_state["state"]["key"] = np.asarray(np_state["state"]["key"], dtype=np.uint32)
        np.random.set_state(np_state)


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
    partial: EpochProgress | None = None,
) -> None:
    """Write the resume state after ``epoch`` (counted from 1) completed.

    ``best_history``: the best epoch once each epoch completed (``SCHED=halve``'s
    learning rate depends on it, :func:`segline.train.schedule.halvings`).
    ``partial``: the next epoch's progress when the training stops inside it (a stop
    signal); its weights and optimiser are those after its last step.
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
        "rng": rng_state(),
        "partial": partial.to_state() if partial is not None else {},
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
