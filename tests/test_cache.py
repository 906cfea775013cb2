"""Unit tests of the result cache (segline.cache) through :func:`segline.stage.build`.

A tiny fake stage body writes a folder target; the environment make would give it
(``SEGLINE_TARGETS``, ``SEGLINE_RECORD``, ``SEGLINE_PREREQS``, ``SEGLINE_CACHE``) is set
with monkeypatch, in a temporary working folder. Checked: a second build of the same
lineage is restored (body not run) with the records a build writes; another record or
input misses; a corrupted entry is discarded with one line and the stage builds; a
failed build is never stored; two stores of one key at once leave one valid entry;
other bytes under one key are a lineage bug (kept entry; an error when verifying);
an unusable cache warns and builds; the cap drops least recently used entries.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from segline import cache, stage
from segline.digest import tree_digest

RECORD = "tool.py --knob 1"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with one data input (``data/in.txt``, recorded by its stage)
    and the environment of a stage building ``out/store`` from it, cache ``cache``."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("MAKE", "SEGLINE_")):
            monkeypatch.delenv(name)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("input v1\n")
    monkeypatch.setenv(stage.TARGETS_ENV, "out/store")
    monkeypatch.setenv(stage.RECORD_ENV, RECORD)
    monkeypatch.setenv(stage.PREREQS_ENV, "data/in.txt")
    monkeypatch.setenv(cache.CACHE_ENV, "cache")
    return tmp_path


class Body:
    """A fake stage: writes ``out/store`` (a folder of two files) from the input;
    counts its runs; ``rc`` non-zero fails after writing nothing."""

    def __init__(self, extra: str = "", rc: int = 0) -> None:
        self.runs = 0
        self.extra = extra
        self.rc = rc

    def __call__(self) -> int:
        self.runs += 1
        if self.rc:
            return self.rc
        from segline import atomic

        with atomic.atomic_dir("out/store") as tmp:
            (tmp / "a.txt").write_text("from " + Path("data/in.txt").read_text() + self.extra)
            (tmp / "sub").mkdir()
            (tmp / "sub" / "b.bin").write_bytes(bytes(range(256)))
        return 0


def _forget_target(root: Path) -> None:
    """Remove the built target and its records (another checkout's view)."""
    shutil.rmtree(root / "out")


def _entries(root: Path) -> list[Path]:
    return [p for _, _, p in cache.entries(root / "cache")]


def test_second_build_is_restored_with_the_records_of_a_build(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = Body()
    assert stage.build(body) == 0 and body.runs == 1
    (entry,) = _entries(env)
    meta = json.loads((entry / cache.META).read_text())
    assert meta["inputs"] == {"data/in.txt": tree_digest(env / "data/in.txt")}
    assert meta["digests"] == [tree_digest(env / "out/store")]
    built = {k: stage.side_file("out/store", k).read_text() for k in ("sha256", "d", "cmd")}
    digest = tree_digest(env / "out/store")
    _forget_target(env)
    capsys.readouterr()

    assert stage.build(body) == 0
    assert body.runs == 1  # restored: the body did not run
    out = capsys.readouterr().out
    assert out.count("restored from the cache") == 1
    assert f"[store] restored from the cache ({meta['key'][:12]}): not rebuilt" in out
    assert tree_digest(env / "out/store") == digest
    assert (env / "out/store/sub/b.bin").read_bytes() == bytes(range(256))
    for kind, text in built.items():
        assert stage.side_file("out/store", kind).read_text() == text, kind
    assert stage.read_stamp("out/store") == digest
    assert not list((env / "out").glob(".*restore*"))  # no temporary left


def test_other_record_or_input_misses(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = Body()
    stage.build(body)
    _forget_target(env)
    monkeypatch.setenv(stage.RECORD_ENV, RECORD + " --other 2")
    stage.build(body)
    assert body.runs == 2
    _forget_target(env)
    monkeypatch.setenv(stage.RECORD_ENV, RECORD)
    (env / "data" / "in.txt").write_text("input v2\n")
    stage.build(body)
    assert body.runs == 3 and len(_entries(env)) == 3
    assert (env / "out/store/a.txt").read_text() == "from input v2\n"
    # back to the first input: restored (the typo undone), not built
    (env / "data" / "in.txt").write_text("input v1\n")
    _forget_target(env)
    stage.build(body)
    assert body.runs == 3 and (env / "out/store/a.txt").read_text() == "from input v1\n"


def test_entry_matches_only_same_code_versions_and_platform(env: Path) -> None:
    stage.build(Body())
    (entry,) = _entries(env)
    meta = json.loads((entry / cache.META).read_text())
    key = meta["key"]
    assert cache.find(env / "cache", key) is not None
    code = env / "code.py"
    code.write_text("x = 1\n")
    variants = {
        "code": {**meta, "code": {str(code): "0" * 64}},
        "packages": {**meta, "packages": {"numpy": "0.0.1"}},
        "platform": {**meta, "platform": {**cache.platform_fingerprint(), "gpus": "no such GPU"}},
    }
    for what, other in variants.items():
        (entry / cache.META).write_text(json.dumps(other))
        assert cache.find(env / "cache", key) is None, what
    same = {**meta, "platform": cache.platform_fingerprint()}
    (entry / cache.META).write_text(json.dumps(same))
    assert cache.find(env / "cache", key) is not None


def test_corrupted_entry_is_discarded_and_the_stage_builds(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = Body()
    stage.build(body)
    (entry,) = _entries(env)
    _forget_target(env)
    victim = entry / "t0" / "sub" / "b.bin"
    victim.unlink()
    victim.write_bytes(b"bit rot")
    capsys.readouterr()
    assert stage.build(body) == 0
    assert body.runs == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "corrupted" in ln]
    name = entry.relative_to(env).as_posix()
    assert len(lines) == 1 and name in lines[0] and "discarded" in lines[0], err
    # the build stored a good entry in its place
    (fresh,) = _entries(env)
    assert (fresh / "t0" / "sub" / "b.bin").read_bytes() == bytes(range(256))
    _forget_target(env)
    stage.build(body)
    assert body.runs == 2


def test_failed_build_is_never_stored(env: Path) -> None:
    assert stage.build(Body(rc=75)) == 75
    assert _entries(env) == []


def test_env_dump_in_a_target_is_never_stored(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def body() -> int:
        Body()()
        Path("out/store/printenv.txt").write_text("API_TOKEN=abc\n")
        return 0

    assert stage.build(body) == 0
    assert _entries(env) == []
    assert "environment dump" in capsys.readouterr().err


def test_concurrent_stores_of_one_key_leave_one_valid_entry(env: Path) -> None:
    Body()()
    stage._write_side_files([Path("out/store")], RECORD)
    key = cache.primary_key([Path("out/store")], RECORD, {"data/in.txt": "x"})
    meta = cache.entry_meta(key, [Path("out/store")], RECORD, {}, {}, {}, None)
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def one() -> None:
        start.wait()
        outcomes.append(cache.store(env / "cache", key, [Path("out/store")], meta).outcome)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["same"] * 5 + ["stored"]
    (entry,) = _entries(env)
    assert tree_digest(entry / "t0") == tree_digest(env / "out/store")
    assert not list((env / "cache" / "tmp").iterdir())


def test_other_bytes_under_one_key_is_a_lineage_bug(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stage.build(Body())
    (entry,) = _entries(env)
    kept = tree_digest(entry / "t0")
    monkeypatch.setenv("MAKEFLAGS", "B")  # make -B: built again, then compared
    capsys.readouterr()
    assert stage.build(Body(extra="nondeterministic")) == 0
    err = capsys.readouterr().err
    assert err.count("lineage bug") == 1 and "out/store/a.txt" in err, err
    assert tree_digest(entry / "t0") == kept and len(_entries(env)) == 1
    monkeypatch.setenv(cache.VERIFY_ENV, "1")
    assert stage.build(Body(extra="nondeterministic")) == 1
    assert stage.build(Body()) == 0
    assert "verified" in capsys.readouterr().out


def test_unusable_cache_warns_once_and_builds(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "afile").write_text("")
    monkeypatch.setenv(cache.CACHE_ENV, "afile/cache")  # below a file: never a folder
    body = Body()
    assert stage.build(body) == 0 and body.runs == 1
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if "cache" in ln]) == 1, err
    assert "building as usual" in err
    assert stage.side_file("out/store", "cmd").read_text() == RECORD + "\n"


def test_always_rebuilt_and_opted_out_stages_are_not_cached(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(stage.ALWAYS_ENV, "1")
    stage.build(Body())
    monkeypatch.delenv(stage.ALWAYS_ENV)
    monkeypatch.setenv(cache.OFF_ENV, "1")
    stage.build(Body())
    assert not (env / "cache").exists()


def test_prune_drops_least_recently_used(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        monkeypatch.setenv(stage.RECORD_ENV, f"{RECORD} --n {i}")
        stage.build(Body())
        _forget_target(env)
    entries = _entries(env)
    assert len(entries) == 3
    size = max(int(json.loads((p / cache.META).read_text())["bytes"]) for p in entries)
    # the first entry used last: the second one is the least recently used
    olds = sorted(entries, key=lambda p: (p / cache.USED).stat().st_mtime)
    for n, p in enumerate(olds):
        os.utime(p / cache.USED, (1000 + n, 1000 + n))
    os.utime(olds[0] / cache.USED, (5000, 5000))
    kept, total, dropped = cache.prune(env / "cache", 2 * size)
    assert (kept, dropped) == (2, 1)
    assert not olds[1].exists() and olds[0].exists() and olds[2].exists()
    assert total <= 2 * size
    assert cache.main(["prune", "--max-gb", "0.000000001"]) == 0
    assert _entries(env) == []


STORE_ONE = """
import sys, time
from pathlib import Path
from segline import cache
go = Path("go")
while not go.exists():
    time.sleep(0.005)
key, record = sys.argv[1], sys.argv[2]
meta = cache.entry_meta(key, [Path("out/store")], record, {}, {}, {}, None)
print(cache.store(Path("cache"), key, [Path("out/store")], meta).outcome)
"""


def test_processes_storing_one_key_at_once_leave_one_valid_entry(env: Path) -> None:
    """Separate processes (as two makes are): the lock is a real ``flock`` between them."""
    import subprocess
    import sys

    Body()()
    stage._write_side_files([Path("out/store")], RECORD)
    key = cache.primary_key([Path("out/store")], RECORD, {"data/in.txt": "x"})
    src = Path(stage.__file__).resolve().parents[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STORE_ONE, key, RECORD],
            env={**os.environ, "PYTHONPATH": str(src)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    (env / "go").touch()
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0] * 4
    assert outcomes == ["same"] * 3 + ["stored"]
    (entry,) = _entries(env)
    assert tree_digest(entry / "t0") == tree_digest(env / "out/store")
    meta = json.loads((entry / cache.META).read_text())
    assert meta["digests"] == [tree_digest(env / "out/store")]
    assert not list((env / "cache" / "tmp").iterdir())


def test_cache_folder_is_git_ignored(env: Path) -> None:
    """A cache inside a git checkout is never an untracked file (provenance would list
    and hash every entry, ``git add -A`` would take it)."""
    import subprocess

    subprocess.run(["git", "init", "-q"], cwd=env, check=True)
    stage.build(Body())
    assert _entries(env)
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert listed and not [n for n in listed if n.startswith("cache/")], listed
