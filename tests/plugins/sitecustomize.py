"""Test hooks for the segline processes that tests start (trainings, make recipes).

Python's ``site`` module imports this file at start-up when ``tests/plugins`` is on
``PYTHONPATH`` (``tests/conftest.py``: :func:`with_test_hooks`, used by ``make_env``
and ``train_cli``; make passes ``PYTHONPATH`` on to its recipes). Without any of the
variables below it does nothing. With one, it installs an import hook that patches the
segline module concerned right after that module is executed:

- ``SEGLINE_TEST_KILL_AFTER_EPOCH=N``: ``segline.train.loop.Trainer._epoch_saved``
  SIGKILLs the process once epoch N (counted from 1, as printed) is saved and printed,
  so a resume is tested deterministically (no timing races);
- ``SEGLINE_TEST_SIGNAL_AT=E:N:SIG[,SIG...]``: the process sends itself the signals
  ``SIG`` (names without ``SIG``: ``USR1``, ``TERM``), one after the other, right after
  the optimisation step N (counted from 1) of epoch E; the core trainer's
  ``_count_dice`` (called once per step, after the optimiser's step) is wrapped, so a
  stop signal arrives mid-epoch at a known step on any machine speed;
- ``SEGLINE_TEST_SIGNAL_IN_SAVE=SIG``: the process sends itself ``SIG`` while it
  writes a mid-epoch state (``segline.train.state.save_state`` with ``partial``), i.e.
  a second signal during the save;
- ``SEGLINE_TEST_FAKE_GPUS=1``: ``segline.train.gpus.check_cards`` accepts any GPU
  list without CUDA and ``use_card`` computes on the CPU, recording the card as
  ``cuda:N (fake, mapped to cpu), token gpu-N-k``; tokens are taken as on a GPU machine;
- ``SEGLINE_TEST_GPU_LOG=file``: every token taken and given back appends one line
  ``take|give <slot> <holder> <unix time s>`` (a take once the token is held, a give
  before it is released), so a test can check that no slot was held twice at once;
- ``SEGLINE_TEST_HOLD_LOCK=S``: ``segline.stage._run_recorded`` first sleeps S seconds,
  holding the target's lock before the work starts, so that two concurrent makes meet a
  held lock on any machine speed.

The command lines, the imported segline files and their content are those of an
unpatched run, so records (``.cmd``, ``.d``) and lineages are unchanged and a killed
training resumes under the same recorded command. Nothing here imports torch or
segline itself (``tests/test_startup.py``). Another ``sitecustomize`` further on
``sys.path`` (e.g. a distribution's) is still run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

KILL = "SEGLINE_TEST_KILL_AFTER_EPOCH"
SIGNAL_AT = "SEGLINE_TEST_SIGNAL_AT"
SIGNAL_IN_SAVE = "SEGLINE_TEST_SIGNAL_IN_SAVE"
FAKE_GPUS = "SEGLINE_TEST_FAKE_GPUS"
GPU_LOG = "SEGLINE_TEST_GPU_LOG"
HOLD_LOCK = "SEGLINE_TEST_HOLD_LOCK"

Patch = Callable[[ModuleType], None]


def _kill_after_epoch(epoch_text: str) -> Patch:
    target = int(epoch_text)

    def patch(loop: ModuleType) -> None:
        import signal

        saved = loop.Trainer._epoch_saved

        def _epoch_saved(self: Any, epoch: int) -> None:
            saved(self, epoch)
            if epoch == target:
                os.kill(os.getpid(), signal.SIGKILL)

        loop.Trainer._epoch_saved = _epoch_saved

    return patch


def _signal_at(spec: str) -> Patch:
    epoch_text, step_text, names = spec.split(":")
    target = (int(epoch_text), int(step_text))

    def patch(loop: ModuleType) -> None:
        import signal

        train_epoch, count_dice = loop.Trainer._train_epoch, loop.Trainer._count_dice
        where = {"epoch": 0, "step": 0}

        def _train_epoch(self: Any, epoch: int, loader: Any, progress: Any = None) -> Any:
            where.update(epoch=epoch, step=progress.steps if progress is not None else 0)
            return train_epoch(self, epoch, loader, progress)

        def _count_dice(self: Any, *args: Any) -> None:
            count_dice(self, *args)
            where["step"] += 1
            if (where["epoch"], where["step"]) == target:
                for name in names.split(","):
                    os.kill(os.getpid(), getattr(signal, "SIG" + name))

        loop.Trainer._train_epoch = _train_epoch
        loop.Trainer._count_dice = _count_dice

    return patch


def _signal_in_save(name: str) -> Patch:
    def patch(state: ModuleType) -> None:
        import signal

        save_state = state.save_state

        def signalled_save(*args: Any, **kwargs: Any) -> None:
            if kwargs.get("partial") is not None:
                os.kill(os.getpid(), getattr(signal, "SIG" + name))
            save_state(*args, **kwargs)

        state.save_state = signalled_save

    return patch


def _fake_gpus(gpus: ModuleType) -> None:
    def check_cards(listed: Any, text: str) -> None:
        """Every listed GPU is taken to exist."""

    def use_card(gpu: int, token: str) -> Any:
        return gpus.Assigned("cpu", f"cuda:{gpu} (fake, mapped to cpu), token {token}")

    gpus.check_cards = check_cards
    gpus.use_card = use_card


def _gpu_log(target: str) -> Patch:
    def write(event: str, token: Any) -> None:
        import time

        with open(target, "a") as f:  # one write per line: appends never interleave
            f.write(f"{event} {token.slot.name} {token.holder} {time.time():.6f}\n")

    def patch(gpus: ModuleType) -> None:
        take, give_back = gpus.take, gpus.Token.give_back

        def logged_take(*args: Any, **kwargs: Any) -> Any:
            token = take(*args, **kwargs)
            write("take", token)
            return token

        def logged_give_back(self: Any) -> None:
            if self.held:
                write("give", self)
            give_back(self)

        gpus.take = logged_take
        gpus.Token.give_back = logged_give_back

    return patch


def _hold_lock(seconds_text: str) -> Patch:
    seconds = float(seconds_text)

    def patch(stage: ModuleType) -> None:
        run = stage._run_recorded

        def held_first(*args: Any, **kwargs: Any) -> Any:
            import time

            time.sleep(seconds)
            return run(*args, **kwargs)

        stage._run_recorded = held_first

    return patch


def wanted(environ: Mapping[str, str]) -> dict[str, list[Patch]]:
    """``{module name: patches}`` that the ``SEGLINE_TEST_*`` variables of ``environ``
    ask for (empty: none set)."""
    patches: dict[str, list[Patch]] = {}
    if environ.get(KILL):
        patches.setdefault("segline.train.loop", []).append(_kill_after_epoch(environ[KILL]))
    if environ.get(SIGNAL_AT):
        patches.setdefault("segline.train.loop", []).append(_signal_at(environ[SIGNAL_AT]))
    if environ.get(SIGNAL_IN_SAVE):
        patches.setdefault("segline.train.state", []).append(
            _signal_in_save(environ[SIGNAL_IN_SAVE])
        )
    if environ.get(FAKE_GPUS) == "1":
        patches.setdefault("segline.train.gpus", []).append(_fake_gpus)
    if environ.get(GPU_LOG):
        patches.setdefault("segline.train.gpus", []).append(_gpu_log(environ[GPU_LOG]))
    if environ.get(HOLD_LOCK):
        patches.setdefault("segline.stage", []).append(_hold_lock(environ[HOLD_LOCK]))
    return patches


class _PatchingLoader:
    """A module's own loader, then its patches once the module is executed."""

    def __init__(self, loader: Any, patches: list[Patch]) -> None:
        self._loader = loader
        self._patches = patches

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        for patch in self._patches:
            patch(module)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, ... for tracebacks
        return getattr(self._loader, name)


class PatchAfterImport:
    """A ``sys.meta_path`` finder: finds the modules of ``patches`` with the other
    finders and hands them a loader that patches them once executed."""

    def __init__(self, patches: dict[str, list[Patch]]) -> None:
        self.patches = patches

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patches = self.patches.get(name)
        if patches is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, patches)
                return spec
        return None


def _run_next_sitecustomize() -> None:
    """Run the ``sitecustomize`` this file shadows, if ``sys.path`` has another."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        from importlib.util import module_from_spec

        spec.loader.exec_module(module_from_spec(spec))


def install(environ: Mapping[str, str]) -> PatchAfterImport | None:
    """Put the finder for ``environ``'s hooks first on ``sys.meta_path`` (None: none
    asked for, nothing installed)."""
    patches = wanted(environ)
    if not patches:
        return None
    finder = PatchAfterImport(patches)
    sys.meta_path.insert(0, finder)
    return finder


install(os.environ)
_run_next_sitecustomize()
