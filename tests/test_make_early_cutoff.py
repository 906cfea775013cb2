"""Early cutoff: a stage rebuilt to the same bytes rebuilds nothing after it.

Every recorded stage keeps a content stamp ``dir/.name.content`` (its digest, rewritten
only when the digest changes) and its dependents depend on the stamp
(make/common.mk ``stamp_of``). One spleen toy pipeline (``NET=Dimwit EPC=1``, DEBUG,
method gdl) is built once; each make-level test works on its own copy of that tree
(mtimes kept, so the copy is up to date):

* a docstring edited in the slicing code re-slices and retrains nothing; a comment in
  the toy generator rebuilds the archive and nothing after it; afterwards make is a no-op;
* a real change (a split knob) still rebuilds everything downstream in one make;
* a tree built before stamps existed gets its stamps back and rebuilds nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_project, make_env, snapshot
from segline import stage

# CACHE= : the result cache off, so what runs is what make planned (no restores)
ARGS = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "BS=16", "DEBUG=--debug",
        "RUN=", "METHODS=gdl", "CACHE=")  # fmt: skip
DATA = "data/spleen-toy"
RES = "results/spleen-toy"
STAGE = re.compile(r"(preprocess/\w+\.py|-m segline\.[\w.]+)")


def make(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """make with the toy's arguments in ``root``, CC = this interpreter."""
    return subprocess.run(
        ["make", "--no-print-directory", *ARGS, *extra, f"CC={sys.executable}"], cwd=root,
        env=make_env(), capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def ran(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """The stage programs a make printed (its recipes' commands)."""
    return {m.group(1) for ln in proc.stdout.splitlines() if (m := STAGE.search(ln))}


def mtime_ns(path: Path) -> int:
    return path.stat().st_mtime_ns


def built_files(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under data/ and results/ but the content stamps
    (folders left out: a stamp written into one moves its mtime)."""
    return {
        f"{top}/{rel}": v
        for top in ("data", "results")
        for rel, v in snapshot(root / top).items()
        if (root / top / rel).is_file() and not rel.endswith(".content")
    }


def edit_comment(path: Path) -> None:
    """Append a comment line: the module's bytes change, its behaviour does not."""
    path.write_text(path.read_text() + "\n# an edited comment: no behaviour changes\n")


def edit_docstring(path: Path) -> None:
    """Reword the first line of the module's docstring: new bytes, same behaviour."""
    text = path.read_text()
    assert text.startswith('"""'), path
    path.write_text('"""(Docstring reworded.) ' + text[3:])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("cutoff") / "p")
    proc = make(root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


@pytest.fixture
def tree(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built tree, still up to date."""
    dest = tmp_path / "p"
    shutil.copytree(built, dest, symlinks=True)
    assert make(dest, "-q").returncode == 0
    return dest


def test_stamp_names_map_back_to_their_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stage.stamp_target("data/ds/.cases.content") == Path("data/ds/cases")
    assert stage.stamp_target("results/ds/gdl/.seed0.content") == Path("results/ds/gdl/seed0")
    assert stage.stamp_target("data/.ds-toy.tar.content") == Path("data/ds-toy.tar")
    for plain in ("data/ds/cases", "data/ds/.content", "data/ds/manifest.md5"):
        assert stage.stamp_target(plain) == Path(plain)
    monkeypatch.setenv(stage.INPUTS_ENV, "data/ds/.cases.content data/ds/manifest.md5")
    assert stage.input_targets() == [Path("data/ds/cases"), Path("data/ds/manifest.md5")]


def test_every_recorded_target_has_its_stamp(built: Path) -> None:
    for target in (f"{DATA}/raw", f"{DATA}/cases", f"{DATA}/dist", f"{RES}/gdl",
                   f"{RES}/eval/gdl", f"{RES}/report.md", "data/spleen-toy.tar"):  # fmt: skip
        digest = (built / stage.side_file(target, "sha256")).read_text().split()[0]
        assert stage.read_stamp(built / target) == digest, target


def test_docstring_in_slicing_code_reslices_and_trains_nothing(tree: Path) -> None:
    assert "src/segline/preprocess/slicing.py" in (tree / DATA / ".cases.d").read_text()
    edit_docstring(tree / "src/segline/preprocess/slicing.py")
    plan = make(tree, "-n")
    # -n lists the stage the change reaches, not those after it (content decides)
    assert "preprocess/slice.py" in ran(plan)
    assert not {"preprocess/distmaps.py", "-m segline.train"} & ran(plan), plan.stdout
    kept = {p: snapshot(tree / p) for p in (f"{DATA}/dist", f"{RES}/gdl")}
    records = {p: mtime_ns(tree / p) for p in
               (f"{RES}/.gdl.cmd", f"{RES}/.gdl.sha256", f"{DATA}/.cases.content")}  # fmt: skip
    cases_before = mtime_ns(tree / DATA / "cases")
    proc = make(tree)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "preprocess/slice.py" in ran(proc) and mtime_ns(tree / DATA / "cases") > cases_before
    assert "[cases] same content as before: its dependents stay" in proc.stdout
    assert not {"preprocess/distmaps.py", "-m segline.train"} & ran(proc), proc.stdout
    assert {p: snapshot(tree / p) for p in kept} == kept, "distance maps and training untouched"
    assert {p: mtime_ns(tree / p) for p in records} == records
    # the evaluation imports the slicing module itself (its .d file): it alone reruns
    assert ran(proc) <= {"preprocess/slice.py", "-m segline.eval_stage"}, ran(proc)
    # afterwards a no-op: the store stays newer than its stamp, and nothing runs
    assert make(tree, "-q").returncode == 0
    again = make(tree)
    assert again.returncode == 0 and not ran(again), again.stdout
    assert not ran(make(tree, "-n"))


def test_comment_in_toy_generator_rebuilds_the_archive_only(tree: Path) -> None:
    edit_comment(tree / "src/segline/datasets/toy_spleen.py")
    later = snapshot(tree / "data") | snapshot(tree / "results")
    proc = make(tree)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ran(proc) == {"preprocess/make_toy.py"}, proc.stdout
    assert "[spleen-toy.tar] same content as before: its dependents stay" in proc.stdout
    after = snapshot(tree / "data") | snapshot(tree / "results")
    changed = {p for p in later if after.get(p) != later[p]}
    assert changed <= {"spleen-toy.tar", ".spleen-toy.tar.cmd", ".spleen-toy.tar.d",
                       ".spleen-toy.tar.sha256", ".spleen-toy.tar.lock"}, changed  # fmt: skip
    assert make(tree, "-q").returncode == 0


def test_a_real_change_rebuilds_everything_after_it_in_one_make(tree: Path) -> None:
    stamp = tree / DATA / ".cases.content"
    old = stamp.read_text()
    # (the distance maps, per case from its labels, come out the same for new splits:
    # their stamp stays; the training reads the case store itself and reruns)
    after_cases = (f"{RES}/gdl", f"{RES}/eval/gdl", f"{RES}/report.md")
    later = {p: stage.read_stamp(tree / p) for p in after_cases}
    trained = snapshot(tree / RES / "gdl")
    report = mtime_ns(tree / RES / "report.md")
    proc = make(tree, "N_VAL=3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {"preprocess/slice.py", "preprocess/distmaps.py", "-m segline.train",
            "-m segline.eval_stage", "-m segline.plots.figures", "-m segline.report",
            "-m segline.pack"} <= ran(proc)  # fmt: skip
    assert stamp.read_text() != old, "new content, new stamp"
    assert stamp.read_text().split()[0] == (tree / DATA / ".cases.sha256").read_text().split()[0]
    # new splits: new distance maps, a new training, evaluation and report
    for p, digest in later.items():
        assert stage.read_stamp(tree / p) not in (None, digest), p
        assert stage.read_stamp(tree / p) == stage.content_digest(tree / p), p
    assert stage.read_stamp(tree / DATA / "dist") == stage.content_digest(tree / DATA / "dist")
    assert snapshot(tree / RES / "gdl") != trained
    assert mtime_ns(tree / RES / "report.md") > report
    assert make(tree, "-q", "N_VAL=3").returncode == 0


def test_targets_built_before_stamps_get_them_without_rebuilding(tree: Path) -> None:
    stamps = sorted(tree.glob("**/.*.content"))
    assert len(stamps) > 10
    wanted = {s: s.read_text() for s in stamps}
    for s in stamps:
        s.unlink()
    before = built_files(tree)
    proc = make(tree)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ran(proc) <= {"-m segline.stage_stamp"}, proc.stdout
    # every stamp a stage depends on (the archive's pointer is the last stage: none)
    needed = [s for s in stamps if s.parent.name != "archives"]
    assert len(needed) == len(stamps) - 1
    assert proc.stdout.count("content stamp written from its digest") == len(needed)
    for s in needed:
        target = stage.stamp_target(s)
        assert s.read_text() == wanted[s], s
        assert mtime_ns(s) == mtime_ns(target), "the stamp takes its target's time"
    assert built_files(tree) == before, "no target or record rewritten"
    assert make(tree, "-q").returncode == 0
