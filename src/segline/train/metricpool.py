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

A trainer computing metrics of its own beside the volume metrics (a subclass's hook,
:meth:`segline.train.loop.Trainer._case_rows`) passes them as ``extra``: a picklable
callable ``extra(store, case, pred) -> rows``, whose rows follow the volume metrics'.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Any

import numpy as np
import torch

from segline.casestore import CaseStore
from segline.train.loader import helper_processes

MAX_PROCESSES = 4

CaseRows = Callable[[CaseStore, str, np.ndarray], list[dict[str, Any]]]
"""A trainer's own per-case metric rows: ``extra(store, case, pred)`` ->
``[{"class", "metric", "value"}, ...]`` (module-level or a picklable object)."""


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
    extra: CaseRows | None = None,
) -> list[dict[str, Any]]:
    """The metric rows (class, metric, value) of one predicted case (Z, Y, X labels):
    the volume ``metrics``, then the rows of ``extra`` (a trainer's own metrics).

    Module-level so that it pickles to a worker; also the inline path.
    """
    from segline.train.evaluate import metric_rows

    store = _store(cases, dist)
    rows = metric_rows(store, case, pred, tuple(metrics))
    if extra is not None:
        rows += extra(store, case, pred)
    return rows


def ignore_stop_signals() -> None:
    """In a metric process: ignore SIGTERM/SIGUSR1. A scheduler signals every process
    of a job step; the training decides when to stop (:mod:`segline.train.preempt`) and
    may still validate after the signal, so its helpers must outlive the signal."""
    import signal

    from segline.train.preempt import SIGNALS

    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class MetricPool:
    """Computes :func:`case_rows` for submitted cases, in processes or inline.

    Use as a context manager; :meth:`submit` returns a future whose ``result()`` is the
    case's rows (or raises what the computation raised).

    Args:
        cases, dist: the case and distance-map stores of the training.
        metrics: volume metrics (``dice``, ``hd95``, ...).
        extra: a trainer's own per-case rows (:data:`CaseRows`), or None.
        processes: worker processes; 0 computes inline.
    """

    def __init__(
        self,
        cases: str,
        dist: str,
        metrics: Sequence[str],
        *,
        extra: CaseRows | None = None,
        processes: int = 0,
    ) -> None:
        self.args = (str(cases), str(dist))
        self.metrics = tuple(metrics)
        self.extra = extra
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, case: str, pred: np.ndarray) -> Future:
        """Start the metrics of ``case`` (its predicted labels ``pred``)."""
        args = (*self.args, case, pred, self.metrics, self.extra)
        if self.processes <= 0:
            future: Future = Future()
            try:
                future.set_result(case_rows(*args))
            except Exception as err:  # noqa: BLE001 - re-raised by result()
                future.set_exception(err)
            return future
        if self._pool is None:  # started on first use: a run with no case never pays it
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=ctx, initializer=ignore_stop_signals
            )
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
