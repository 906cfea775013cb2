"""Graceful stop of a training on SIGTERM or SIGUSR1 (cluster pre-emption, time limits).

A batch scheduler stops a job by signalling it: SLURM sends SIGTERM (``scancel``, the
time limit; SIGKILL follows after ``KillWait``) or the signal asked for with
``sbatch --signal=[B:]USR1@<seconds>`` shortly before the limit. While a training runs
(:meth:`segline.train.loop.Trainer.run`), :class:`StopSignals` turns the first such
signal into a request: the trainer finishes the optimisation step in progress, writes
a resumable state (``<out>_tmp/train_state.pt``, mid-epoch: the index of the next
batch is in it) and leaves with :class:`Stopped`, which the command line turns into
exit code :data:`EXIT_RESUMABLE` (75, ``EX_TEMPFAIL`` of ``sysexits.h``: "stopped,
resumable"). The next run with the same lineage continues exactly where it stopped.

A second signal stops at once: the handler raises ``SystemExit(128 + signal)`` where
the program is. The state on disk stays whole: every state is written to a temporary
file and renamed (:mod:`segline.atomic`), and a second signal is held back while one
is written (:meth:`StopSignals.deferred`): it takes effect once the rename is done.
The next run resumes from the last state written completely.

Only the main thread can install signal handlers; elsewhere (a training built in a
worker thread) :class:`StopSignals` installs none and never asks to stop.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

EXIT_RESUMABLE = 75
"""Exit code of a training stopped by SIGTERM/SIGUSR1 after saving a resumable state
(``EX_TEMPFAIL``): make stops, and a later run (``make`` again, a requeued job) resumes."""

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
"""The signals that ask a training to stop and save (SIGINT keeps its Ctrl-C meaning:
stop now, exit 130)."""


class Stopped(Exception):
    """Raised by the trainer once its resumable state is written after a stop signal."""

    def __init__(self, signum: int, where: str) -> None:
        self.signum = signum
        self.where = where
        super().__init__(f"stopped by {signal_name(signum)} {where}")


class StopRequested(Exception):
    """Raised inside the training at a safe point (after an optimisation step) when a
    stop signal arrived; the trainer catches it, saves the state and raises
    :class:`Stopped`."""


class StopSignals:
    """While entered: the first SIGTERM/SIGUSR1 sets :attr:`signum` (read it at safe
    points, :meth:`check`); a second raises ``SystemExit(128 + signal)``. The previous
    handlers come back on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._saving = False
        self._pending: int | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum is not None

    def check(self) -> None:
        """Raise :class:`StopRequested` when a stop signal arrived."""
        if self.signum is not None:
            raise StopRequested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        elif self._saving:
            self._pending = signum
        else:
            raise SystemExit(128 + signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a second stop signal back while a state is written: it takes effect
        (``SystemExit``) right after the block. Python runs signal handlers in the main
        thread whichever thread the kernel delivered the signal to, so a flag does
        what a signal mask of the main thread alone (loader and metric threads exist)
        would not."""
        saving, self._saving = self._saving, True
        try:
            yield
        finally:
            self._saving = saving
        if not saving and self._pending is not None:
            raise SystemExit(128 + self._pending)


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15 (the number itself when unknown)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
