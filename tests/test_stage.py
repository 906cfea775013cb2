"""Unit tests of the stage bookkeeping (segline.stage) and content digests (segline.digest).

What make relies on: a stage under make writes its digest, its dependency file (the
project files it imported) and its record beside the target only once the target is
complete, and a failed stage leaves the old ones; a second process on the same target
waits for the lock; digests cover the content a reader sees and nothing else.
(tests/test_stage_records.py: records across failures and the re-check under the lock.)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from segline import atomic, stage
from segline.digest import tree_digest
from segline.train import fingerprint as fp

SRC = Path(__file__).resolve().parents[1] / "src"


def _env(tmp: Path, target: Path, record: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "SEGLINE_"))},
        "PYTHONPATH": str(SRC),
        stage.TARGETS_ENV: str(target.relative_to(tmp)),
        stage.RECORD_ENV: record,
    }


def test_side_file_names() -> None:
    assert stage.side_file("data/ds/cases", "d") == Path("data/ds/.cases.d")
    assert stage.side_file("results/ds/report.md", "cmd") == Path("results/ds/.report.md.cmd")


def test_dep_text_is_make_syntax_with_empty_rules() -> None:
    text = stage.dep_text(["out/a", "out/b"], ["src/x.py", "dir with space/y$.py"])
    lines = text.splitlines()
    assert lines[2] == "out/a out/b: \\"
    assert "  src/x.py \\" in lines and "  dir\\ with\\ space/y$$.py \\" in lines
    assert lines[-2:] == ["src/x.py:", "dir\\ with\\ space/y$$.py:"]


def test_dep_file_is_read_by_make(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / ".t.d").write_text(stage.dep_text(["t"], ["src/m.py", "src/gone.py"]))
    (tmp_path / "Makefile").write_text("t:\n\ttouch t\n-include .t.d\n")
    (tmp_path / "t").write_text("")
    old = time.time() - 100
    os.utime(tmp_path / "src" / "m.py", (old, old))
    # src/gone.py was deleted: its empty rule makes t out of date, never an error
    proc = subprocess.run(["make", "-q", "t"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and "No rule" not in proc.stderr
    (tmp_path / ".t.d").write_text(stage.dep_text(["t"], ["src/m.py"]))
    assert subprocess.run(["make", "-q", "t"], cwd=tmp_path).returncode == 0
    (tmp_path / "src" / "m.py").touch()
    assert subprocess.run(["make", "-q", "t"], cwd=tmp_path).returncode == 1


def test_imported_sources_lists_package_modules_and_main_script(tmp_path: Path) -> None:
    script = tmp_path / "tool.py"
    script.write_text(
        "import segline.digest\nfrom segline import stage\n"
        "print('\\n'.join(stage.imported_sources()))\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "tool.py" in out  # the __main__ script, relative to the current folder
    assert str(SRC / "segline" / "digest.py") in out  # outside it: absolute
    assert not any("numpy" in p or "torch" in p for p in out), "only project code"
    assert not any(p.endswith("segline/pack.py") for p in out), "only what was imported"


def test_build_outside_make_just_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(stage.TARGETS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert stage.build(lambda: 3) == 3
    assert list(tmp_path.iterdir()) == []


def test_build_writes_side_files_after_success(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(stage.START_ENV, raising=False)
    target = Path("out/store")
    monkeypatch.setenv(stage.TARGETS_ENV, str(target))
    monkeypatch.setenv(stage.RECORD_ENV, " tool.py --knob 1 ")
    # the side files of an earlier run stay until the new target is renamed into place
    target.parent.mkdir()
    stage.side_file(target, "cmd").write_text("old\n")
    seen: list[bool] = []

    def body() -> int:
        seen.append(stage.side_file(target, "cmd").exists())
        with atomic.atomic_dir(target) as tmp:
            (tmp / "a.npy").write_bytes(b"abc")
            seen.append(stage.side_file(target, "cmd").exists())
        seen.append(stage.side_file(target, "cmd").exists())
        return 0

    assert stage.build(body) == 0
    assert seen == [True, True, False]
    assert stage.side_file(target, "cmd").read_text() == "tool.py --knob 1\n"
    digest = stage.side_file(target, "sha256").read_text().split()
    line = f"{hashlib.sha256(b'abc').hexdigest()}  a.npy\n"
    assert digest == [hashlib.sha256(line.encode()).hexdigest(), "store"]
    dep = stage.side_file(target, "d").read_text()
    assert "out/store: \\" in dep and "segline/stage.py" in dep


def test_failed_build_keeps_the_old_records(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    target = Path("store")
    monkeypatch.setenv(stage.TARGETS_ENV, str(target))
    monkeypatch.setenv(stage.RECORD_ENV, "tool.py")
    for kind in stage.SIDE_KINDS:
        stage.side_file(target, kind).write_text(f"from an earlier run: {kind}\n")
    target.mkdir()
    assert stage.build(lambda: 2) == 2
    for kind in stage.SIDE_KINDS:
        assert stage.side_file(target, kind).read_text() == f"from an earlier run: {kind}\n"


LOCKED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from segline import atomic, stage

    def body():
        print("start", time.time(), flush=True)
        with atomic.atomic_dir(Path(sys.argv[1])) as tmp:
            (tmp / "x").write_text(sys.argv[2])
        time.sleep(float(sys.argv[3]))
        return 0

    sys.exit(stage.build(body))
    """
)


def test_second_process_waits_for_the_lock(tmp_path: Path) -> None:
    script = tmp_path / "locked.py"
    script.write_text(LOCKED)
    target = tmp_path / "store"
    env = _env(tmp_path, target, "locked.py store")
    first = subprocess.Popen(
        [sys.executable, str(script), "store", "one", "1.5"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)
    second = subprocess.run(
        [sys.executable, str(script), "store", "two", "0"],
        cwd=tmp_path, env={**env, stage.RECORD_ENV: "locked.py store two"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    out1, _ = first.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "another make is building it; waiting" in second.stderr
    start1 = float(out1.split()[1])
    start2 = float(second.stdout.split()[1])
    assert start2 >= start1 + 1.4, "the second started only after the first finished"
    assert (target / "x").read_text() == "two"
    assert stage.side_file(target, "cmd").read_text() == "locked.py store two\n"


def test_same_command_built_meanwhile_is_not_rebuilt(tmp_path: Path) -> None:
    script = tmp_path / "locked.py"
    script.write_text(LOCKED)
    env = _env(tmp_path, tmp_path / "store", "locked.py store")
    first = subprocess.Popen(
        [sys.executable, str(script), "store", "one", "1.0"], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.4)
    second = subprocess.run(
        [sys.executable, str(script), "store", "one", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert first.wait(timeout=60) == 0 and second.returncode == 0
    assert "built meanwhile by another make (same command); not rebuilt" in second.stdout
    assert "start" not in second.stdout


def test_tree_digest_covers_visible_content_only(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "x.npy").write_bytes(b"x")
        (root / "y.json").write_text("{}")
    (b / ".hidden").write_text("bookkeeping")
    (b / "z.tmp").write_text("half written")
    (b / "w_tmp").mkdir()
    assert tree_digest(a) == tree_digest(b)
    (b / "sub" / "x.npy").write_bytes(b"X")
    assert tree_digest(a) != tree_digest(b)
    (b / "sub" / "x.npy").write_bytes(b"x")
    (b / "sub" / "x.npy").rename(b / "sub" / "x2.npy")
    assert tree_digest(a) != tree_digest(b), "names count, not just bytes"


def test_content_digest_trusts_only_a_fresh_side_file(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "f").write_text("1")
    side = stage.side_file(store, "sha256")
    side.write_text("f" * 64 + "  store\n")
    assert stage.content_digest(store) == "f" * 64  # recorded when written: trusted
    old = time.time() - 100
    os.utime(side, (old, old))  # the store changed after its record: recomputed
    assert stage.content_digest(store) == tree_digest(store)


def test_lineage_differences_name_what_changed() -> None:
    old = {"args": {"lr": 1, "net": "UNet"}, "inputs": {"cases": "a"}, "code": {"x.py": "1"}}
    assert fp.differences(old, old) == ""
    new = {"args": {"lr": 2, "net": "UNet"}, "inputs": {"cases": "b"}, "code": {"x.py": "2"}}
    assert fp.differences(old, new) == (
        "arguments changed: lr; content of cases changed; code changed: x.py"
    )
