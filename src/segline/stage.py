"""Stage bookkeeping: what make needs to know that a target is exactly what it says.

Every Make recipe runs one segline CLI (:func:`segline.cli.entry`). When make runs it,
make exports (make/common.mk):

- ``SEGLINE_TARGETS``: the target(s) the command builds (several for grouped targets);
- ``SEGLINE_RECORD``: the command's arguments (and ``CFLAGS``) as make expanded them,
  the *record* of every knob that reaches the stage;
- ``SEGLINE_PREREQS``: every prerequisite make compared the target with (``$^``: data
  inputs and the code files of the ``.d`` file, without the phony ``FORCE``/``STALE``);
  ``SEGLINE_ALWAYS``: set when the rule itself lists ``FORCE`` (rebuilt on every make);
- ``SEGLINE_INPUTS``: the stage's data prerequisites, ``SEGLINE_MAKE_START``: when
  that make started.

A prerequisite that is itself a recorded stage target ``dir/name`` appears in both as
its content stamp ``dir/.name.content`` (:func:`write_stamp`: rewritten only when the
target's content changes, so a rebuild to the same bytes rebuilds nothing after it):
:func:`why_rebuild` compares the stamp, as make did; :func:`input_targets` maps it back
to the target for whoever wants the data itself.

:func:`build` then wraps the command, for a target ``dir/name``:

1. takes an exclusive ``flock`` on ``dir/.name.lock``, so two makes never build one
   target at once;
2. re-checks, under the lock, whether the target is already up to date with this
   very record (:func:`why_rebuild`): another make may have built it after this make
   decided to (a second make waiting for the lock, or one that reached it just after
   the first let go). Then it says so in one line and builds nothing. ``make -B`` and
   rules that list ``FORCE`` always build;
3. runs the command, which writes the target atomically (segline.atomic). The old
   target's side files (below) are removed by :mod:`segline.atomic` right before the
   new target is renamed into place (:func:`segline.atomic.before_replace`), not
   before: a command that fails first (bad input, an exception, a non-zero exit, a
   kill) leaves the old target *and* its records exactly as they were, and one killed
   between the rename and step 4 leaves a target without records, which make
   rebuilds, never a new target with the old records;
   With a result cache (``SEGLINE_CACHE``, :mod:`segline.cache`) it first looks the
   stage up: a hit restores the target(s) instead of running the command, and writes
   the records of step 4 with the code files of the cache entry; after a successful
   build the target(s) are stored in the cache;
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
PREREQS_ENV = "SEGLINE_PREREQS"
ALWAYS_ENV = "SEGLINE_ALWAYS"
START_ENV = "SEGLINE_MAKE_START"
CACHE_ENV = "SEGLINE_CACHE"
#: Modules of the package that are no code of a stage, so never listed in a ``.d`` file:
#: the result cache restores bytes it checked against their digest, and changes none.
NOT_STAGE_CODE = frozenset({"segline.cache"})
SIDE_KINDS = ("cmd", "d", "sha256")
#: The content stamp ``dir/.name.content`` (:func:`write_stamp`): not a record, so it
#: survives a rebuild (never dropped with the others).
STAMP_KIND = "content"
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
        if name in NOT_STAGE_CODE:
            continue
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


def _make_unescape(word: str) -> str:
    """Inverse of :func:`_make_escape`."""
    out: list[str] = []
    i = 0
    while i < len(word):
        if word[i] == "\\" and i + 1 < len(word) and word[i + 1] in " #:":
            out.append(word[i + 1])
            i += 2
        elif word.startswith("$$", i):
            out.append("$")
            i += 2
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def dep_sources(text: str) -> list[str]:
    """The source files a dependency file of :func:`dep_text` lists (its empty rules)."""
    _, _, rules = text.partition("\n\n")
    return [_make_unescape(ln[:-1]) for ln in rules.splitlines() if ln.endswith(":")]


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


def make_start_ns() -> int | None:
    """When the make that runs this stage started (``SEGLINE_MAKE_START``, seconds with
    an optional fraction, as ``date +%s.%N`` prints them), in ns; None when unknown."""
    text = os.environ.get(START_ENV, "").strip()
    whole, _, frac = text.partition(".")
    if not whole.isdigit():
        return None
    frac = frac if frac.isdigit() else ""
    return int(whole) * 1_000_000_000 + int((frac + "0" * 9)[:9])


def rebuild_forced() -> bool:
    """True when this make rebuilds whatever the records say: ``make -B`` (``B`` among
    the single-letter flags, the first word of ``MAKEFLAGS``, or ``--always-make``) or
    a rule that lists ``FORCE`` itself (``SEGLINE_ALWAYS``)."""
    if os.environ.get(ALWAYS_ENV, "").strip():
        return True
    words = os.environ.get("MAKEFLAGS", "").split()
    if words and not words[0].startswith("-") and "B" in words[0]:
        return True
    return "--always-make" in words


def _mtime_ns(path: str | os.PathLike[str]) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def why_rebuild(
    targets: list[Path], record: str, prereqs: list[str], built_after_ns: int
) -> str | None:
    """Why ``targets`` must be built with ``record`` now, or None when they already are
    up to date with it (another make built them after ``built_after_ns``).

    Up to date means, for every target, what make itself would check, read again now:
    the target exists; its ``.d`` file is present and its ``.cmd`` is ``record``; its
    ``.sha256`` names it and was written after it; and no prerequisite make passed
    (``prereqs``) and no code file its ``.d`` lists is missing or newer than it. On
    top of that its record must have been written after ``built_after_ns`` (when this
    make started): a target that was already up to date when make decided to rebuild
    it was asked for by something these files do not show (``make -W``), so it is
    rebuilt.
    """
    for t in targets:
        t_ns = _mtime_ns(t)
        if t_ns is None:
            return f"{t} is missing"
        cmd, dep, sha = (side_file(t, k) for k in ("cmd", "d", "sha256"))
        try:
            recorded = cmd.read_text().strip()
            cmd_ns = cmd.stat().st_mtime_ns
            sources = dep_sources(dep.read_text())
            digest, _, named = sha.read_text().rstrip("\n").partition("  ")
            sha_ns = sha.stat().st_mtime_ns
        except (OSError, UnicodeDecodeError):
            return f"records of {t} incomplete"
        if recorded != record:
            return f"{t} was built with another command"
        if cmd_ns < built_after_ns:
            return f"{t} was not built since this make started"
        if len(digest) != 64 or named != t.name or sha_ns < t_ns:
            return f"digest of {t} not written after it"
        for name in [*prereqs, *sources]:
            p_ns = _mtime_ns(name)
            if p_ns is None:
                return f"{name} is missing"
            if p_ns > t_ns:
                return f"{name} is newer than {t}"
    return None


def stamp_target(name: str | os.PathLike[str]) -> Path:
    """The target a prerequisite stands for: ``dir/name`` for its content stamp
    ``dir/.name.content`` (make/common.mk's ``stamp_of``), the path itself otherwise."""
    path = Path(name)
    suffix = f".{STAMP_KIND}"
    base = path.name
    if base.startswith(".") and base.endswith(suffix) and len(base) > len(suffix) + 1:
        return path.with_name(base[1 : -len(suffix)])
    return path


def input_targets() -> list[Path]:
    """The data prerequisites of this stage (``SEGLINE_INPUTS``), each as the target it
    stands for: dependents of a recorded stage depend on its content stamp, so a stamp
    ``dir/.name.content`` is mapped back to ``dir/name`` (:func:`stamp_target`)."""
    return [stamp_target(name) for name in os.environ.get(INPUTS_ENV, "").split()]


def _note_reused(target: Path) -> None:
    """One line per data prerequisite that this make did not rebuild (its target is
    older than the make's start), tagged with the target's name as every line of a
    training is (``make -j`` interleaves them)."""
    try:
        start = float(os.environ.get(START_ENV, ""))
    except ValueError:
        return
    for name in input_targets():
        with contextlib.suppress(OSError):
            if os.stat(name).st_mtime < start:
                print(f"[{target.name}] up to date, not rebuilt: {name}", flush=True)


def drop_records(targets: list[Path]) -> None:
    """Remove the side files of ``targets`` (record first: without it make rebuilds)."""
    for t in targets:
        for kind in SIDE_KINDS:
            side_file(t, kind).unlink(missing_ok=True)


def _identity(path: Path) -> tuple[int, ...] | None:
    """What changes when ``path`` is replaced or written in place (None: absent)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_stamp(target: str | os.PathLike[str]) -> str | None:
    """The digest the content stamp of ``target`` holds (None: no stamp)."""
    with contextlib.suppress(OSError, UnicodeDecodeError, IndexError):
        return side_file(target, STAMP_KIND).read_text().split()[0]
    return None


def write_stamp(target: Path, digest: str) -> bool:
    """Write the content stamp ``dir/.name.content`` of ``target`` when it does not
    hold ``digest`` yet; returns whether it was (re)written.

    The stamp's modification time is the last time the target's *content* changed:
    a stage rebuilt to the same bytes (a comment edited in its code) leaves it as it
    was, so the stages that depend on the stamp (make/common.mk) are not rebuilt; the
    early cutoff of Ninja's ``restat`` and Shake's unchanged-output check.
    """
    if read_stamp(target) == digest:
        return False
    atomic.write_text(side_file(target, STAMP_KIND), f"{digest}  {target.name}\n")
    return True


def _write_side_files(
    targets: list[Path], record: str, sources: list[str] | None = None
) -> None:
    """Digest, dependency file, content stamp and (last) record of each finished
    target; ``sources``: the code files for the ``.d`` file (default: those this
    process imported)."""
    sources = imported_sources() if sources is None else sources
    names = [t.as_posix() for t in targets]
    drop_records(targets)  # whatever the command did, no record of before survives
    for t in targets:
        if not t.exists():
            print(f"segline: {t}: the command did not produce it; not recorded", file=sys.stderr)
            return
    for t in targets:
        digest = tree_digest(t)
        atomic.write_text(side_file(t, "sha256"), f"{digest}  {t.name}\n")
        atomic.write_text(side_file(t, "d"), dep_text(names, sources))
        if not write_stamp(t, digest):
            print(f"[{t.name}] same content as before: its dependents stay", flush=True)
    for t in targets:
        atomic.write_text(side_file(t, "cmd"), record + "\n")


def _run_recorded(body: Callable[[], int | None], targets: list[Path], record: str) -> int:
    """Run ``body``; its targets' old records go exactly when a new target is renamed
    into place (segline.atomic), the new ones are written once ``body`` succeeded."""
    before = {t: _identity(t) for t in targets}
    dropped = False

    def drop() -> None:
        nonlocal dropped
        drop_records(targets)
        dropped = True

    def drop_if_changed() -> None:
        # a target changed by other means than segline.atomic (written in place):
        # its old records no longer describe it
        if not dropped and any(_identity(t) != before[t] for t in targets):
            drop()

    with atomic.before_replace(targets, drop):
        try:
            rc = int(body() or 0)
        except BaseException:
            drop_if_changed()
            raise
    if rc != 0:
        drop_if_changed()
        return rc
    _write_side_files(targets, record)
    return 0


def build(body: Callable[[], int | None]) -> int:
    """Run ``body`` (a CLI's work) as the make stage named by the environment.

    Outside make (no ``SEGLINE_TARGETS``/``SEGLINE_RECORD``) it just runs ``body``.
    Returns ``body``'s exit code (0 when, under the lock, the targets turn out to be
    up to date with this record already: built meanwhile by another make).
    """
    targets, record = _targets(), _record()
    if not targets or not record:
        return int(body() or 0)
    # records written after this make started can only come from another make (or,
    # outside make, another process since this one started)
    built_after = make_start_ns() or time.time_ns()
    prereqs = os.environ.get(PREREQS_ENV, "").split()
    with target_lock(targets[0]):
        forced = rebuild_forced()
        if not forced and why_rebuild(targets, record, prereqs, built_after) is None:
            print(
                f"{targets[0]}: built meanwhile by another make (same command); not rebuilt",
                flush=True,
            )
            return 0
        _note_reused(targets[0])
        looked = None
        if os.environ.get(CACHE_ENV, "").strip():  # the result cache (segline.cache)
            from segline import cache

            looked = cache.before_build(targets, record, prereqs, forced)
            if looked is True:
                return 0
        rc = _run_recorded(body, targets, record)
        if rc == 0 and looked is not None and looked is not True:
            from segline import cache

            rc = cache.after_build(looked, targets, record)
        return rc
