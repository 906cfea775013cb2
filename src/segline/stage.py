"""Stage bookkeeping: what make needs to know that a target is exactly what it says.

Every Make recipe runs one segline CLI (:func:`segline.cli.entry`). When make runs it,
make exports (make/common.mk):

- ``SEGLINE_TARGETS``: the target(s) the command builds (several for grouped targets);
- ``SEGLINE_RECORD``: the command's arguments (and ``CFLAGS``) as make expanded them,
  the *record* of every knob that reaches the stage;
- ``SEGLINE_INPUTS``: the stage's data prerequisites, ``SEGLINE_MAKE_START``: when
  that make started (only for the "up to date, not rebuilt" lines).

:func:`build` then wraps the command, for a target ``dir/name``:

1. takes an exclusive ``flock`` on ``dir/.name.lock``, so two makes never build one
   target at once (the second waits; if the first built the same record meanwhile,
   the second does not build it again);
2. deletes the target's side files (below), so an interrupted run leaves a target
   that make rebuilds, never one it takes as done;
3. runs the command, which writes the target atomically (segline.atomic);
4. writes ``dir/.name.sha256`` (the target's content digest, segline.digest),
   ``dir/.name.d`` (the project source files the command actually imported, as a
   make rule ``target: files``, the way ``gcc -MMD -MP`` does it) and, last,
   ``dir/.name.cmd`` (the record).

make ``-include``s every ``.d`` file and rebuilds a target when a file it lists is
newer, when its ``.d`` file is missing or when the record differs from the command it
would run now (``stale`` in make/common.mk). So code dependencies and recorded
parameters come from what ran, not from hand-kept lists. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from segline import atomic
from segline.digest import sha256_file, tree_digest

TARGETS_ENV = "SEGLINE_TARGETS"
RECORD_ENV = "SEGLINE_RECORD"
INPUTS_ENV = "SEGLINE_INPUTS"
START_ENV = "SEGLINE_MAKE_START"
HOLD_ENV = "SEGLINE_TEST_HOLD_LOCK"
SIDE_KINDS = ("cmd", "d", "sha256")
PACKAGE = "segline"


def side_file(target: str | os.PathLike[str], kind: str) -> Path:
    """The hidden file ``dir/.name.<kind>`` kept beside ``target`` (lock, cmd, d, sha256)."""
    target = Path(target)
    return target.parent / f".{target.name}.{kind}"


# ------------------------------------------------------------------ locks
@contextlib.contextmanager
def target_lock(target: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``target`` (``flock`` on its ``.lock`` side file).

    Yields whether the lock was contended (another process held it and we waited).
    The lock file is never removed: removing it would let a third process lock a
    fresh file while the second still holds the old one.
    """
    lock = side_file(target, "lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            print(
                f"segline: {target}: another make is building it; waiting for it to finish",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield waited
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# ------------------------------------------------------------------ code dependencies
def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when below it, else absolute (POSIX)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def imported_sources(root: Path | None = None) -> list[str]:
    """Project source files this process has imported, sorted.

    Every module of the ``segline`` package (wherever it was imported from) and the
    ``__main__`` script when it lies below ``root`` (e.g. ``preprocess/slice.py``).
    Paths are relative to ``root`` (the current folder: make's) when below it.
    """
    root = (root or Path.cwd()).resolve()
    files: set[str] = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            files.add(_relative(path, root))
        elif name == "__main__" and path.is_relative_to(root):
            files.add(_relative(path, root))
    return sorted(files)


def code_digests(root: Path | None = None) -> dict[str, str]:
    """``{source file: sha256}`` of :func:`imported_sources` (for fingerprints)."""
    root = (root or Path.cwd()).resolve()
    return {rel: sha256_file(root / rel) for rel in imported_sources(root)}


def _make_escape(path: str) -> str:
    """A file name as a make rule word (``$`` doubled; space, ``#``, ``:`` escaped)."""
    out = path.replace("$", "$$")
    for ch in (" ", "#", ":"):
        out = out.replace(ch, "\\" + ch)
    return out


def dep_text(targets: list[str], sources: list[str]) -> str:
    """A make-includable dependency file: ``targets: sources`` and an empty rule for
    each source (so a deleted module forces a rebuild instead of an error)."""
    names = " ".join(_make_escape(t) for t in targets)
    lines = [
        "# Code imported by the command that built this target (src/segline/stage.py);",
        "# make/common.mk -includes it: a newer file here rebuilds the target.",
        f"{names}: \\",
        *(f"  {_make_escape(s)} \\" for s in sources),
        "",
        *(f"{_make_escape(s)}:" for s in sources),
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ content digests
def content_digest(path: str | os.PathLike[str]) -> str:
    """The content digest of a target (file or folder), see :mod:`segline.digest`.

    Uses the ``.sha256`` side file its stage wrote when that is at least as new as
    the target (cheap: stores of several GB are hashed once, when written), and
    computes it otherwise (a store written outside make, or touched since).
    """
    path = Path(path)
    side = side_file(path, "sha256")
    with contextlib.suppress(OSError, IndexError):
        if side.stat().st_mtime_ns >= path.stat().st_mtime_ns:
            return side.read_text().split()[0]
    return tree_digest(path)


# ------------------------------------------------------------------ the wrapper
def _targets() -> list[Path]:
    return [Path(t) for t in os.environ.get(TARGETS_ENV, "").split()]


def _record() -> str:
    return os.environ.get(RECORD_ENV, "").strip()


def _built_meanwhile(targets: list[Path], record: str, since_ns: int) -> bool:
    """True when another make finished these targets with this record after ``since_ns``."""
    for t in targets:
        cmd = side_file(t, "cmd")
        try:
            if cmd.read_text().strip() != record or cmd.stat().st_mtime_ns < since_ns:
                return False
        except OSError:
            return False
        if not (t.exists() and side_file(t, "d").is_file()):
            return False
    return True


def _note_reused(target: Path) -> None:
    """One line per data prerequisite that this make found up to date, tagged with the
    target's name as every line of a training is (``make -j`` interleaves them)."""
    try:
        start = float(os.environ.get(START_ENV, ""))
    except ValueError:
        return
    for name in os.environ.get(INPUTS_ENV, "").split():
        with contextlib.suppress(OSError):
            if os.stat(name).st_mtime < start:
                print(f"[{target.name}] up to date, not rebuilt: {name}", flush=True)


def _test_hold() -> None:
    """Test hook: ``SEGLINE_TEST_HOLD_LOCK=S`` keeps the lock S seconds before the work
    starts, so tests of two concurrent makes meet a held lock on any machine speed."""
    with contextlib.suppress(ValueError):
        time.sleep(float(os.environ.get(HOLD_ENV, "0")))


def _write_side_files(targets: list[Path], record: str) -> None:
    """Digest, dependency file and (last) record of each finished target."""
    sources = imported_sources()
    names = [t.as_posix() for t in targets]
    for t in targets:
        if not t.exists():
            print(f"segline: {t}: the command did not produce it; not recorded", file=sys.stderr)
            return
    for t in targets:
        atomic.write_text(side_file(t, "sha256"), f"{tree_digest(t)}  {t.name}\n")
        atomic.write_text(side_file(t, "d"), dep_text(names, sources))
    for t in targets:
        atomic.write_text(side_file(t, "cmd"), record + "\n")


def build(body: Callable[[], int | None]) -> int:
    """Run ``body`` (a CLI's work) as the make stage named by the environment.

    Outside make (no ``SEGLINE_TARGETS``/``SEGLINE_RECORD``) it just runs ``body``.
    Returns ``body``'s exit code (0 when the target was built meanwhile by another make).
    """
    targets, record = _targets(), _record()
    if not targets or not record:
        return int(body() or 0)
    since = time.time_ns()
    with target_lock(targets[0]) as waited:
        if waited and _built_meanwhile(targets, record, since):
            print(f"{targets[0]}: built meanwhile by another make (same command); not rebuilt")
            return 0
        for t in targets:
            for kind in SIDE_KINDS:
                side_file(t, kind).unlink(missing_ok=True)
        _test_hold()
        _note_reused(targets[0])
        rc = int(body() or 0)
        if rc == 0:
            _write_side_files(targets, record)
        return rc
