"""Stage records across failures, and the re-check under the lock (segline.stage).

* **Records survive failure.** A stage's old records (``.cmd``, ``.d``, ``.sha256``) go
  only when its new target is renamed into place (segline.atomic tells segline.stage):
  a stage that fails before (bad input, an exception, a non-zero exit, a kill) leaves
  the old target and its records exactly as they were; one that fails or is killed
  after the rename leaves a target without records, which make rebuilds.
* **Locks re-check.** Under the lock a stage reads its target's records again and builds
  nothing when another make built it meanwhile with the same record (newer than every
  prerequisite and every code file of its ``.d``); ``make -B``, a rule that lists
  ``FORCE``, a changed record, a newer prerequisite or code file all still build.

The make-level tests share one toy data tree (``TOY=1`` up to ``data/spleen-toy/dist``,
a few seconds); the rest call :func:`segline.stage.build` directly on tiny folders.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_project, make_env, snapshot
from segline import atomic, stage
from segline.cli import run
from segline.errors import InputError

SRC = Path(__file__).resolve().parents[1] / "src"
RECORD = "tool.py --out store --knob 1"


# ------------------------------------------------------------------ helpers
@pytest.fixture
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``tmp_path`` as make's folder, with a clean stage environment for target
    ``store``; the ``.d`` files list ``code.py`` (a file of this folder) as the code."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SEGLINE_", "MAKE")):
            monkeypatch.delenv(name)
    monkeypatch.setenv(stage.TARGETS_ENV, "store")
    monkeypatch.setenv(stage.RECORD_ENV, RECORD)
    (tmp_path / "code.py").write_text("x = 1\n")
    past(tmp_path / "code.py", 100)
    monkeypatch.setattr(stage, "imported_sources", lambda root=None: ["code.py"])
    return tmp_path


def past(path: Path, seconds: float) -> None:
    """Set the mtime of ``path`` ``seconds`` into the past."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def writer(text: str, runs: list[str] | None = None) -> Callable[[], int]:
    """A stage body that writes folder ``store`` atomically (and counts its runs)."""

    def body() -> int:
        if runs is not None:
            runs.append(text)
        with atomic.atomic_dir("store") as tmp:
            (tmp / "x.txt").write_text(text)
        return 0

    return body


def records(root: Path, target: str = "store") -> dict[str, tuple[bytes, int]]:
    """``{kind: (bytes, mtime_ns)}`` of the side files of ``target`` that exist."""
    out = {}
    for kind in stage.SIDE_KINDS:
        side = stage.side_file(root / target, kind)
        if side.exists():
            out[kind] = (side.read_bytes(), side.stat().st_mtime_ns)
    return out


@pytest.fixture
def built(in_tmp: Path) -> dict[str, tuple[bytes, int]]:
    """``store`` built once (content "old") with its three records, made a minute old."""
    assert stage.build(writer("old")) == 0
    for p in (in_tmp / "store", in_tmp / "store" / "x.txt", *in_tmp.glob(".store.*")):
        past(p, 60)
    rec = records(in_tmp)
    assert set(rec) == set(stage.SIDE_KINDS)
    return rec


# ------------------------------------------------------------------ atomic hook
def test_before_replace_fires_for_watched_paths_only(tmp_path: Path) -> None:
    calls: list[str] = []
    out = tmp_path / "out"
    with atomic.before_replace([out, tmp_path / "f.txt"], lambda: calls.append("x")):
        with atomic.atomic_dir(out) as tmp:
            atomic.write_text(tmp / "f.txt", "inside the temporary folder: not watched")
            atomic.save_npy(tmp / "out", np.zeros(2))
            assert calls == []
        assert calls == ["x"]
        atomic.write_text(tmp_path / "f.txt", "watched")
        atomic.write_text(tmp_path / "g.txt", "not watched")
        assert calls == ["x", "x"]
    atomic.write_text(tmp_path / "f.txt", "after the block: not watched")
    assert calls == ["x", "x"]


def test_before_replace_runs_before_the_old_path_goes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    seen: list[bool] = []
    with atomic.before_replace([out], lambda: seen.append((out / "old").exists())):
        with atomic.atomic_dir(out) as tmp:
            (tmp / "new").write_text("new")
    assert seen == [True] and sorted(p.name for p in out.iterdir()) == ["new"]

    def refuse() -> None:
        raise OSError(13, "refused")

    with atomic.before_replace([out], refuse), pytest.raises(OSError):
        atomic.write_bytes(tmp_path / "out", b"x")
    assert sorted(p.name for p in out.iterdir()) == ["new"], "nothing replaced"
    assert not (tmp_path / "out.tmp").exists()


def test_replace_dir_puts_a_training_folder_in_place(tmp_path: Path) -> None:
    work, out = tmp_path / "m_tmp", tmp_path / "m"
    for folder, name in ((work, "new"), (out, "old")):
        folder.mkdir()
        (folder / name).write_text(name)
    calls: list[int] = []
    with atomic.before_replace([out], lambda: calls.append(1)):
        atomic.replace_dir(work, out)
    assert calls == [1] and not work.exists()
    assert sorted(p.name for p in out.iterdir()) == ["new"]


# ------------------------------------------------------------------ records survive failure
def _unchanged(root: Path, rec: dict[str, tuple[bytes, int]], text: str = "old") -> None:
    assert records(root) == rec, "the old records are byte-identical, same mtime"
    assert (root / "store" / "x.txt").read_text() == text


def test_body_that_raises_keeps_target_and_records(in_tmp: Path, built: dict) -> None:
    def body() -> int:
        with atomic.atomic_dir("store") as tmp:
            (tmp / "x.txt").write_text("half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        stage.build(body)
    _unchanged(in_tmp, built)
    assert not (in_tmp / "store_tmp").exists()


def test_body_that_returns_non_zero_keeps_target_and_records(in_tmp: Path, built: dict) -> None:
    assert stage.build(lambda: 1) == 1
    _unchanged(in_tmp, built)


def test_input_error_keeps_target_and_records(in_tmp: Path, built: dict) -> None:
    def body() -> int:
        raise InputError(in_tmp / "raw", "too few labelled cases for the split")

    assert run(lambda argv: stage.build(body)) == 2
    _unchanged(in_tmp, built)


def test_interrupt_before_the_rename_keeps_target_and_records(in_tmp: Path, built: dict) -> None:
    def body() -> int:
        with atomic.atomic_dir("store") as tmp:
            (tmp / "x.txt").write_text("half")
            raise KeyboardInterrupt

    assert run(lambda argv: stage.build(body)) == 130
    _unchanged(in_tmp, built)


def test_failure_after_the_rename_removes_the_records(in_tmp: Path, built: dict) -> None:
    def body() -> int:
        writer("new")()
        return 1  # e.g. a later step of the same command failed

    assert stage.build(body) == 1
    assert (in_tmp / "store" / "x.txt").read_text() == "new"
    assert records(in_tmp) == {}, "a new target never keeps the old records"


def test_target_changed_in_place_then_failure_removes_the_records(
    in_tmp: Path, built: dict
) -> None:
    def body() -> int:
        (in_tmp / "store" / "y.txt").write_text("not through segline.atomic")
        return 1

    assert stage.build(body) == 1
    assert records(in_tmp) == {}


def test_success_replaces_the_records(in_tmp: Path, built: dict, monkeypatch) -> None:
    monkeypatch.setenv(stage.RECORD_ENV, RECORD + " --knob 2")
    assert stage.build(writer("new")) == 0
    assert (in_tmp / ".store.cmd").read_text() == RECORD + " --knob 2\n"
    assert stage.why_rebuild([Path("store")], RECORD + " --knob 2", [], 0) is None


def test_grouped_targets_lose_their_records_together(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(stage.TARGETS_ENV, "a.csv b.md")

    def both() -> int:
        atomic.write_text("a.csv", "a\n")
        atomic.write_text("b.md", "b\n")
        return 0

    assert stage.build(both) == 0
    before = {t: records(in_tmp, t) for t in ("a.csv", "b.md")}
    assert all(set(r) == set(stage.SIDE_KINDS) for r in before.values())

    def fails_first() -> int:
        raise InputError("x", "bad input")

    with pytest.raises(InputError):
        stage.build(fails_first)
    assert {t: records(in_tmp, t) for t in ("a.csv", "b.md")} == before

    def fails_between() -> int:
        atomic.write_text("a.csv", "a2\n")
        raise RuntimeError("died before b.md")

    with pytest.raises(RuntimeError):
        stage.build(fails_between)
    assert records(in_tmp, "a.csv") == {} and records(in_tmp, "b.md") == {}


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from segline import atomic, stage

    def body():
        with atomic.atomic_dir("store") as tmp:
            (tmp / "x.txt").write_text("new")
            if sys.argv[1] == "before":
                os.kill(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    stage.build(body)
    """
)


@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_around_the_rename(in_tmp: Path, built: dict, when: str) -> None:
    """SIGKILL (nothing runs after it): before the rename the old target and records
    stay; after it the new target has no records, so make rebuilds it."""
    (in_tmp / "killed.py").write_text(KILLED)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "killed.py", when], env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    if when == "before":
        _unchanged(in_tmp, built)
    else:
        assert (in_tmp / "store" / "x.txt").read_text() == "new"
        assert records(in_tmp) == {}


# ------------------------------------------------------------------ re-check under the lock
def test_second_build_after_the_first_released_the_lock_does_not_rebuild(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both makes started before either built ``store``; the second reaches the lock
    only after the first let it go (no wait): it builds nothing."""
    monkeypatch.setenv(stage.START_ENV, f"{time.time() - 5:.6f}")
    (in_tmp / "input").write_text("data")
    past(in_tmp / "input", 50)
    monkeypatch.setenv(stage.PREREQS_ENV, "input code.py")
    runs: list[str] = []
    assert stage.build(writer("first", runs)) == 0
    assert stage.build(writer("second", runs)) == 0
    assert runs == ["first"], "the body ran once"
    assert (in_tmp / "store" / "x.txt").read_text() == "first"
    out = capsys.readouterr().out
    assert out.count("store: built meanwhile by another make (same command); not rebuilt") == 1


@pytest.mark.parametrize(
    "change",
    ["code_newer", "prerequisite_newer", "record_differs", "digest_missing", "dep_missing",
     "built_before_make_started", "make_B", "rule_lists_FORCE"],
)  # fmt: skip
def test_recheck_never_skips_a_stale_target(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setenv(stage.START_ENV, f"{time.time() - 5:.6f}")
    (in_tmp / "input").write_text("data")
    past(in_tmp / "input", 50)
    monkeypatch.setenv(stage.PREREQS_ENV, "input")
    runs: list[str] = []
    assert stage.build(writer("first", runs)) == 0
    assert stage.why_rebuild([Path("store")], RECORD, ["input"], 0) is None
    reason = {
        "code_newer": "code.py is newer than store",
        "prerequisite_newer": "input is newer than store",
        "record_differs": "store was built with another command",
        "digest_missing": "records of store incomplete",
        "dep_missing": "records of store incomplete",
        "built_before_make_started": "store was not built since this make started",
    }.get(change)
    if change == "code_newer":  # a code file of its .d edited since
        os.utime(in_tmp / "code.py", ns=(time.time_ns() + 10**9,) * 2)
    elif change == "prerequisite_newer":
        os.utime(in_tmp / "input", ns=(time.time_ns() + 10**9,) * 2)
    elif change == "record_differs":
        monkeypatch.setenv(stage.RECORD_ENV, RECORD + " --knob 2")
    elif change == "digest_missing":
        (in_tmp / ".store.sha256").unlink()
    elif change == "dep_missing":
        (in_tmp / ".store.d").unlink()
    elif change == "built_before_make_started":  # make -W: asked for what is up to date
        monkeypatch.setenv(stage.START_ENV, f"{time.time() + 1:.6f}")
    elif change == "make_B":
        monkeypatch.setenv("MAKEFLAGS", "Br -j2 --jobserver-auth=3,4")
    elif change == "rule_lists_FORCE":
        monkeypatch.setenv(stage.ALWAYS_ENV, "1")
    if reason is not None:
        why = stage.why_rebuild(
            [Path("store")], os.environ[stage.RECORD_ENV], ["input"],
            stage.make_start_ns() or 0,
        )  # fmt: skip
        assert why == reason
    assert stage.build(writer("second", runs)) == 0
    assert runs == ["first", "second"], "rebuilt"
    assert (in_tmp / "store" / "x.txt").read_text() == "second"


def test_makeflags_and_start_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = (
        ("r", False), ("Bkr -j2", True), ("kr -- B=1", False),
        (" -j3 --jobserver-auth=3,4", False), ("--always-make", True),
    )  # fmt: skip
    for flags, forced in cases:
        monkeypatch.setenv("MAKEFLAGS", flags)
        assert stage.rebuild_forced() is forced, flags
    monkeypatch.setenv(stage.START_ENV, "1700000000.123456789")
    assert stage.make_start_ns() == 1_700_000_000_123_456_789
    monkeypatch.setenv(stage.START_ENV, "1700000000.N")  # a date without %N
    assert stage.make_start_ns() == 1_700_000_000_000_000_000
    monkeypatch.setenv(stage.START_ENV, "")
    assert stage.make_start_ns() is None


def test_dep_sources_reads_back_dep_text() -> None:
    sources = ["src/x.py", "dir with space/y$.py", "/abs/a#b:c.py"]
    assert stage.dep_sources(stage.dep_text(["out/a", "out/b"], sources)) == sources
    assert stage.dep_sources(stage.dep_text(["t"], [])) == []


# ------------------------------------------------------------------ make itself
def test_make_deletes_only_a_modified_file_target_on_error(tmp_path: Path) -> None:
    """``.DELETE_ON_ERROR`` removes a target only when it is a file the failed recipe
    modified: never a folder, never an old target the recipe did not touch."""
    (tmp_path / "Makefile").write_text(
        ".DELETE_ON_ERROR:\n"
        "old.txt: FORCE\n\tfalse\n"
        "folder: FORCE\n\ttouch folder/new; false\n"
        "new.txt: FORCE\n\techo new > new.txt; false\n"
        "FORCE:\n"
    )  # fmt: skip
    (tmp_path / "old.txt").write_text("old")
    (tmp_path / "folder").mkdir()
    (tmp_path / "new.txt").write_text("old")
    for target in ("old.txt", "folder", "new.txt"):
        proc = subprocess.run(["make", "-k", target], cwd=tmp_path, capture_output=True,
                              text=True, env=make_env())  # fmt: skip
        assert proc.returncode != 0
    assert (tmp_path / "old.txt").read_text() == "old"
    assert (tmp_path / "folder" / "new").exists()
    assert not (tmp_path / "new.txt").exists(), "the modified file is deleted"


# ------------------------------------------------------------------ make-level
MAKE = ("make", "--no-print-directory", "-f", "spleen.make", "TOY=1")
DATA = "data/spleen-toy"


def make(root: Path, *args: str, cc: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAKE, *args, f"CC={cc}"], cwd=root, env=make_env(), capture_output=True, text=True,
        timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spleen toy sliced, with distance maps (TOY=1 up to data/spleen-toy/dist)."""
    root = copy_project(tmp_path_factory.mktemp("records") / "p")
    proc = make(root, f"{DATA}/dist")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return root


def _state(root: Path) -> tuple[dict, dict]:
    """Every file below data/spleen-toy (size, mtime) and the bytes of its records."""
    data = root / DATA
    sides = {p.name: p.read_bytes() for p in sorted(data.glob(".*")) if p.suffix != ".lock"}
    return snapshot(data), sides


def test_failed_slicing_check_keeps_the_store_and_its_records(toy: Path) -> None:
    """A split that fails the slicing check (N_TEST too large for the 12 labelled cases)
    leaves the case store and its records as they were, so the next make with the
    right settings has nothing to do (no re-slicing, no distance maps, no training)."""
    before = _state(toy)
    assert {".cases.cmd", ".cases.d", ".cases.sha256"} <= set(before[1])
    proc = make(toy, "N_TEST=100", f"{DATA}/dist")
    assert proc.returncode == 2, proc.stderr
    assert "too few labelled cases for the split" in proc.stderr
    assert _state(toy) == before, "store, records and their mtimes untouched"
    assert make(toy, "-q", f"{DATA}/dist").returncode == 0
    plan = make(toy, "-n", f"{DATA}/dist").stdout
    assert "slice.py" not in plan and "distmaps.py" not in plan, plan


RECORDER = textwrap.dedent(
    """
    import json, os, sys
    with open(os.environ["RECORDED"], "w") as fh:
        json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, fh)
    """
)


def test_second_make_reaching_the_lock_after_the_first_does_not_rebuild(toy: Path) -> None:
    """Make B plans the distance maps (missing), make A builds them, then B's recipe
    runs: with B's own environment (recorded from make B) it finds them up to date with
    the same record and builds nothing. Touching a code file of their .d afterwards
    makes the same command build them again."""
    dist = toy / DATA / "dist"
    (toy / "recorder.py").write_text(RECORDER)
    shutil.rmtree(dist)  # missing when B plans
    recorded = toy / "b.json"
    env = {**make_env(), "RECORDED": str(recorded)}
    plan_b = subprocess.run(
        [*MAKE, f"{DATA}/dist", f"CC={sys.executable} {toy / 'recorder.py'}"], cwd=toy,
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert plan_b.returncode == 0, plan_b.stderr
    b = json.loads(recorded.read_text())
    assert b["argv"][0] == "preprocess/distmaps.py"
    assert b["env"]["SEGLINE_TARGETS"] == f"{DATA}/dist"
    # the case store by its content stamp (make/common.mk stamp_of: early cutoff)
    assert f"{DATA}/.cases.content" in b["env"]["SEGLINE_PREREQS"].split()
    a = make(toy, f"{DATA}/dist")  # make A, started after B, builds them first
    assert a.returncode == 0 and (a.stdout + a.stderr).count("distmaps: ") == 1, a.stdout
    built = snapshot(dist), (toy / DATA / ".dist.cmd").read_bytes()

    def replay_b() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *b["argv"]], cwd=toy, env=b["env"], capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip

    proc = replay_b()
    assert proc.returncode == 0, proc.stderr
    skipped = f"{DATA}/dist: built meanwhile by another make (same command); not rebuilt"
    assert skipped in proc.stdout
    assert "distmaps: " not in proc.stdout + proc.stderr, "the body did not run"
    assert (snapshot(dist), (toy / DATA / ".dist.cmd").read_bytes()) == built
    # a code file of the .d changed since (edited after the build): the same command rebuilds
    dep = (toy / DATA / ".dist.d").read_text()
    assert "src/segline/distmaps.py" in stage.dep_sources(dep)
    edited = dist.stat().st_mtime_ns + 1_000_000
    os.utime(toy / "src/segline/distmaps.py", ns=(edited, edited))
    assert make(toy, "-q", f"{DATA}/dist").returncode == 1, "make agrees: stale"
    proc = replay_b()
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout + proc.stderr).count("distmaps: ") == 1, proc.stdout
    assert "built meanwhile" not in proc.stdout
    assert make(toy, "-q", f"{DATA}/dist").returncode == 0
