"""DataLoader settings of the trainer: worker processes, pinned memory, prefetch.

The ``WORKERS`` knob (``SEGLINE_WORKERS``, or ``--workers``) sets the number of loader
processes; it is *scheduling*, not part of a result: the slice shuffle comes from the
epoch's seeded generator and every sample is a pure function of its index (3D patches
draw from ``default_rng([seed, epoch, i])``), so any number of workers gives the same
batches in the same order, and byte-identical ``metrics.csv`` and checkpoints on the
CPU (``tests/test_loader_workers.py``). It is therefore not in ``args.json``'s identity
nor in the make record: changing it never retrains; the provenance notes it.

Default (``auto``): the cores this training may use (the cores, divided by make's
``-jN``) minus the one that runs the training loop, at most 8, on CUDA, where the
GPU would otherwise wait for slices to be read and distance maps cropped (measured at
512², bench/RESULTS.md: 22–35 % of an epoch waiting with 0 workers, 6–9 % with 8). On the
CPU the loader competes with the compute threads for the same cores, so ``auto``
keeps loading in the training process below 8 cores per training and uses one
worker per 8 cores above.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from segline.errors import InputError
from segline.train.device import cores_for_make

MAX_WORKERS = 8
ENV = "SEGLINE_WORKERS"


def parse_workers(text: str | None, where: str = "WORKERS") -> int | None:
    """``"auto"``/empty/None → None (decide by device), ``"N"`` → N ≥ 0."""
    if text is None or text.strip() in ("", "auto"):
        return None
    value = text.strip()
    if not value.isdigit():
        raise InputError(where, f"expected auto or an integer >= 0, got {text!r}")
    return int(value)


def helper_processes(requested: int | None, device: torch.device, cap: int) -> int:
    """``requested``, or for ``auto``: beside a CUDA device, the cores of this training
    (:func:`cores_for_make`) minus the one running its loop; on the CPU, where helpers
    take cores from the compute threads, one per 8 cores. At most ``cap``.

    Example:
        >>> helper_processes(3, torch.device("cpu"), cap=8)
        3
    """
    if requested is not None:
        return requested
    cores = cores_for_make()
    if device.type == "cuda":
        return max(0, min(cap, cores - 1))
    return min(cap, cores // 8)


def resolve_workers(requested: int | None, device: torch.device) -> int:
    """Loader processes for a training on ``device`` (``WORKERS=N``, or None for
    ``auto``: :func:`helper_processes`, at most :data:`MAX_WORKERS`)."""
    return helper_processes(requested, device, MAX_WORKERS)


def workers_from_env() -> int | None:
    """``SEGLINE_WORKERS`` as exported by make from the ``WORKERS`` knob (None: auto)."""
    return parse_workers(os.environ.get(ENV), where=f"WORKERS ({ENV})")


def loader_options(workers: int, device: torch.device) -> dict[str, Any]:
    """Keyword arguments for :class:`torch.utils.data.DataLoader`.

    Pinned host memory (so ``.to(device, non_blocking=True)`` overlaps the copy with
    compute) only on CUDA; with workers, each keeps 4 batches ready.
    """
    opts: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        opts["prefetch_factor"] = 4
    return opts
