"""Per-case metrics beside the device: HD95/ASSD in worker processes.

Validation runs every epoch. The network predicts a case in milliseconds on a GPU,
while its surface metrics (HD95, ASSD: distance transforms over the whole volume,
:mod:`segline.metrics.surface`) take the CPU far longer; computed in the training
process they stall the GPU. :class:`MetricPool` hands each predicted case to a pool of
``spawn`` processes (no fork of a process holding CUDA) and the trainer collects the
rows in case order afterwards, so the GPU predicts the next case meanwhile and the rows
are identical to an inline computation (``tests/test_metricpool.py``).

``processes=0`` computes inline (the same code path, no pool): the default on the CPU
below 8 cores per training, where the workers would take cores from the compute threads.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch

from segline.casestore import CaseStore
from segline.train.loader import helper_processes

MAX_PROCESSES = 4


def metric_processes(requested: int | None, device: torch.device) -> int:
    """Metric processes of a training: ``requested``, or for ``auto`` up to 4 beside a
    CUDA device, on the CPU one per 8 cores per training
    (:func:`segline.train.loader.helper_processes`)."""
    return helper_processes(requested, device, MAX_PROCESSES)


@functools.lru_cache(maxsize=4)
def _store(cases: str, dist: str) -> CaseStore:
    """One open case store per worker process and store pair."""
    return CaseStore(cases, dist)


def case_rows(
    cases: str,
    dist: str,
    case: str,
    pred: np.ndarray,
    metrics: Sequence[str],
    mip_root: str | None,
    mip_axis: int,
) -> list[dict[str, Any]]:
    """The metric rows (class, metric, value) of one predicted case (Z, Y, X labels).

    Module-level so that it pickles to a worker; also the inline path.
    """
    from segline.train.evaluate import metric_rows, mip_dice_rows

    store = _store(cases, dist)
    rows = metric_rows(store, case, pred, tuple(metrics))
    if mip_root is not None:
        rows += mip_dice_rows(store, case, pred, Path(mip_root), mip_axis)
    return rows


class MetricPool:
    """Computes :func:`case_rows` for submitted cases, in processes or inline.

    Use as a context manager; :meth:`submit` returns a future whose ``result()`` is the
    case's rows (or raises what the computation raised).

    Args:
        cases, dist: the case and distance-map stores of the training.
        metrics: volume metrics (``dice``, ``hd95``, ...).
        mip_root: the MIP folder when ``mip_dice`` is wanted, else None.
        mip_axis: the projection axis of the stored volume.
        processes: worker processes; 0 computes inline.
    """

    def __init__(
        self,
        cases: str,
        dist: str,
        metrics: Sequence[str],
        *,
        mip_root: Path | None = None,
        mip_axis: int = 0,
        processes: int = 0,
    ) -> None:
        self.args = (str(cases), str(dist))
        self.metrics = tuple(metrics)
        self.mip_root = str(mip_root) if mip_root is not None else None
        self.mip_axis = mip_axis
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, case: str, pred: np.ndarray) -> Future:
        """Start the metrics of ``case`` (its predicted labels ``pred``)."""
        args = (*self.args, case, pred, self.metrics, self.mip_root, self.mip_axis)
        if self.processes <= 0:
            future: Future = Future()
            try:
                future.set_result(case_rows(*args))
            except Exception as err:  # noqa: BLE001 - re-raised by result()
                future.set_exception(err)
            return future
        if self._pool is None:  # started on first use: a run with no case never pays it
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.processes, mp_context=ctx)
        return self._pool.submit(case_rows, *args)

    def close(self) -> None:
        """Stop the worker processes (waiting for running work)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> MetricPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
