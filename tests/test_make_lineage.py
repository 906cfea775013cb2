"""Make-level tests of lineage integrity: a target is exactly what its records say.

One spleen toy pipeline (``NET=Dimwit EPC=1``, methods gdl and ce) is built once;
each test works on its own copy of that tree (mtimes kept, so the copy is up to date):

* automatic code dependencies: editing a module rebuilds exactly the targets whose
  command imported it; a module nobody imports rebuilds nothing; a tree without
  dependency files rebuilds;
* a resumed training never mixes lineages (re-sliced data, changed code);
* runs side by side (RUN, DEBUG) never clobber each other, and an archive holds exactly
  what its report covers;
* two makes on one target at once (different knobs, same knobs, a training);
* make hygiene: CC/CFLAGS from the environment are ignored, ``make -n`` prints only
  the commands it would run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_project, make_env, snapshot

pytestmark = pytest.mark.make

# DEBUG (a tiny subset per loader) keeps each training to seconds; RUN= keeps the
# default run's folder, results/spleen-toy.
BASE = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "BS=16", "DEBUG=--debug")
DEFAULT = (*BASE, "RUN=")
METHODS = "METHODS=gdl ce"
RES = "results/spleen-toy"
CURVES = ("val_dice", "val_hd95", "val_assd", "tra_loss", "val_loss", "lr", "alpha", "epoch_time")
PLOTS = {
    f"{RES}/{p}.png" for p in (*CURVES, "test_dice_boxplot", "progress_gdl", "progress_ce")
} | {f"{RES}/overlays.png"}


def make(root: Path, *args: str, env: dict[str, str] | None = None, cc: bool = True):
    """Run make in ``root`` (CC = this interpreter unless ``cc`` is False)."""
    cmd = ["make", "--no-print-directory", *args] + ([f"CC={sys.executable}"] if cc else [])
    return subprocess.run(
        cmd, cwd=root, env=env or make_env(), capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def popen(root: Path, *args: str) -> subprocess.Popen[str]:
    """make in the background (for the concurrency tests). Each stage holds its lock
    1.5 s before working (a test hook, tests/plugins/sitecustomize.py), so the two makes
    always meet."""
    cmd = ["make", "--no-print-directory", *args, f"CC={sys.executable}"]
    env = {**make_env(), "SEGLINE_TEST_HOLD_LOCK": "1.5"}
    return subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip


STAGE = re.compile(r"(preprocess/\w+\.py|-m segline\.[\w.]+)")


def planned(stdout: str) -> set[str]:
    """What ``make -n`` would build: each planned command's --out (or the pack/toy)."""
    out: set[str] = set()
    for line in stdout.splitlines():
        m = STAGE.search(line)
        if not m:
            continue
        target = re.search(r"--out (\S+)", line)
        out.add(target.group(1) if target else m.group(1).split()[-1])
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("lineage") / "p")
    proc = make(root, *DEFAULT, METHODS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


@pytest.fixture
def tree(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built tree, still up to date."""
    dest = tmp_path / "p"
    shutil.copytree(built, dest, symlinks=True)
    assert make(dest, "-q", *DEFAULT, METHODS).returncode == 0
    return dest


def touch(path: Path) -> None:
    """Make ``path`` newer than everything built (the copy keeps the build's mtimes)."""
    t = time.time()
    os.utime(path, (t, t))


# ------------------------------------------------------------------ code dependencies
def test_fresh_tree_has_a_dependency_file_per_target(built: Path) -> None:
    for target in ("data/spleen-toy/raw", "data/spleen-toy/cases", "data/spleen-toy/dist",
                   f"{RES}/gdl", f"{RES}/ce", f"{RES}/report.md", *sorted(PLOTS)):  # fmt: skip
        p = Path(target)
        dep = (built / p.parent / f".{p.name}.d").read_text()
        assert f"{target}" in dep.splitlines()[2], target
    # imports, not a hand-kept list: the report imports results.py (not the figure
    # plumbing of plots/__init__.py), the
    # overlays metrics/overlap.py, the training the loss registry but no experiment, the
    # distance maps the per-case pool
    report_dep = (built / RES / ".report.md.d").read_text()
    assert "src/segline/results.py" in report_dep
    assert "src/segline/plots/__init__.py" not in report_dep
    assert "src/segline/metrics/overlap.py" in (built / RES / ".overlays.png.d").read_text()
    assert "src/segline/losses/registry.py" in (built / RES / ".gdl.d").read_text()
    assert "src/segline/experiments/" not in (built / RES / ".gdl.d").read_text()
    assert "src/segline/parallel.py" in (built / "data/spleen-toy/.dist.d").read_text()
    assert "preprocess/distmaps.py" in (built / "data/spleen-toy/.dist.d").read_text()
    assert "src/segline/datasets/isles.py" not in (built / "data/spleen-toy/.cases.d").read_text()


def test_results_layer_change_rebuilds_plots_and_report_only(tree: Path) -> None:
    touch(tree / "src/segline/results.py")
    plan = planned(make(tree, "-n", *DEFAULT, METHODS).stdout)
    # one process draws the curves, boxplot and progress figures (segline.plots.figures);
    # the evaluation stages import no plot or report module (segline.labelpairs): how a
    # figure looks never re-runs their predictions, nor a training. The pack is not
    # planned: it depends on their content stamps (early cutoff), and whether their
    # content changes is only known once they ran
    assert plan == {f"{RES}/overlays.png", "segline.plots.figures", f"{RES}/report.md"}, plan
    before = snapshot(tree / "data") | snapshot(tree / RES / "gdl") | snapshot(tree / RES / "ce")
    proc = make(tree, *DEFAULT, METHODS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = snapshot(tree / "data") | snapshot(tree / RES / "gdl") | snapshot(tree / RES / "ce")
    assert before == after, "data and trainings untouched"
    assert make(tree, "-q", *DEFAULT, METHODS).returncode == 0


def test_metric_module_change_retrains_every_method_importing_it(tree: Path) -> None:
    touch(tree / "src/segline/metrics/overlap.py")
    plan = planned(make(tree, "-n", *DEFAULT, METHODS).stdout)
    assert {f"{RES}/gdl", f"{RES}/ce"} <= plan
    assert not {"data/spleen-toy/cases", "data/spleen-toy/dist"} & plan


def test_module_nobody_imports_rebuilds_nothing(tree: Path) -> None:
    touch(tree / "src/segline/datasets/isles.py")  # ISLES adapter: not spleen's
    (tree / "src/segline/unused_helper.py").write_text('"""Imported by nobody."""\n')
    proc = make(tree, "-q", *DEFAULT, METHODS)
    assert proc.returncode == 0, make(tree, "-n", *DEFAULT, METHODS).stdout


def test_missing_dependency_file_rebuilds_its_target(tree: Path) -> None:
    (tree / "data/spleen-toy/.dist.d").unlink()
    plan = planned(make(tree, "-n", *DEFAULT, METHODS).stdout)
    assert "data/spleen-toy/dist" in plan and "data/spleen-toy/cases" not in plan


# ------------------------------------------------------------------ resume by content
DEBUG = ("DEBUG=--debug", "EPC=3", "METHODS=gdl")
DEBUG_GDL = f"{RES}/debug/gdl"
DISCARDED = "interrupted run discarded, its lineage differs "


def _killed_training(tree: Path, *extra: str) -> None:
    env = {**make_env(), "SEGLINE_TEST_KILL_AFTER_EPOCH": "1"}
    proc = make(tree, *BASE, *DEBUG, *extra, DEBUG_GDL, env=env)
    assert proc.returncode != 0 and (tree / f"{DEBUG_GDL}_tmp" / "train_state.pt").is_file()


def _clean_epochs(tree: Path, *extra: str) -> bytes:
    """epochs.csv of an uninterrupted training with the same knobs."""
    shutil.rmtree(tree / DEBUG_GDL)
    proc = make(tree, *BASE, *DEBUG, *extra, DEBUG_GDL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return (tree / DEBUG_GDL / "epochs.csv").read_bytes()


def test_resume_refused_after_reslicing(tree: Path) -> None:
    _killed_training(tree)
    proc = make(tree, *BASE, *DEBUG, "WINDOW=60,300", DEBUG_GDL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "preprocess/slice.py" in proc.stdout
    # the distance maps depend on the labels only: a new WINDOW leaves their content
    # (digest) unchanged, so the cases alone are named
    assert DISCARDED + "(content of cases changed)" in proc.stdout
    assert "resuming after" not in proc.stdout
    epochs = (tree / DEBUG_GDL / "epochs.csv").read_bytes()
    assert len(pd.read_csv(tree / DEBUG_GDL / "epochs.csv")) == 3
    assert epochs == _clean_epochs(tree, "WINDOW=60,300"), "no epoch from the old data"


def test_resume_refused_after_code_change(tree: Path) -> None:
    _killed_training(tree)
    dice = tree / "src/segline/losses/dice.py"
    dice.write_text(dice.read_text() + "\n# edited while the training was interrupted\n")
    proc = make(tree, *BASE, *DEBUG, DEBUG_GDL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert DISCARDED + "(code changed: src/segline/losses/dice.py)" in proc.stdout
    lineage = json.loads((tree / DEBUG_GDL / "lineage.json").read_text())
    assert set(lineage["inputs"]) == {"cases", "dist"}
    assert "src/segline/losses/dice.py" in lineage["code"]


def test_resume_kept_when_nothing_changed(tree: Path) -> None:
    _killed_training(tree)
    proc = make(tree, *BASE, *DEBUG, DEBUG_GDL)
    assert proc.returncode == 0 and "resuming after epoch" in proc.stdout
    assert (tree / DEBUG_GDL / "epochs.csv").read_bytes() == _clean_epochs(tree)


# ------------------------------------------------------------------ runs side by side
def test_debug_and_named_runs_never_clobber_the_default_run(tree: Path) -> None:
    before = snapshot(tree / RES / "gdl")
    proc = make(tree, *BASE, "METHODS=gdl")  # DEBUG, no RUN: lands in RUN=debug
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = make(tree, *BASE, "METHODS=gdl", "RUN=lr3", "LR=1e-3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert snapshot(tree / RES / "gdl") == before, "the default run's training untouched"
    for run in ("debug", "lr3"):
        assert (tree / RES / run / "gdl" / "epochs.csv").is_file()
        assert (tree / RES / run / "report.md").is_file()
        assert (tree / RES / run / "val_dice.png").is_file()
        name = (tree / f"archives/spleen-toy.{run}-latest.txt").read_text().strip()
        assert name.startswith(f"spleen-toy.{run}-")
    args = json.loads((tree / RES / "debug/gdl/args.json").read_text())
    assert args["debug"] is True
    assert make(tree, "-q", *DEFAULT, METHODS).returncode == 0, "default run still up to date"
    bad = make(tree, "-n", *BASE, "RUN=gdl")
    assert bad.returncode != 0 and "RUN=gdl is a method's folder name" in bad.stderr


def test_archive_holds_exactly_what_the_report_covers(tree: Path) -> None:
    (tree / RES / "stray").mkdir()
    (tree / RES / "stray" / "left.csv").write_text("left over\n")
    proc = make(tree, *DEFAULT, "METHODS=gdl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (tree / RES / "report.md").read_text()
    assert "| gdl |" in report and "| ce |" not in report
    name = (tree / "archives/spleen-toy-latest.txt").read_text().strip()
    with tarfile.open(tree / "archives" / name) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers()}
    tops = {m.split("/")[0] for m in members}
    # eval: the evaluation folder of gdl (source-geometry test metrics the report shows)
    assert {m for m in members if m.startswith("eval/")} >= {"eval/gdl/metrics.csv",
                                                            "eval/gdl/grid.json"}  # fmt: skip
    assert not any(m.startswith("eval/ce") for m in members)
    plots = {Path(p).name for p in PLOTS} - {"progress_ce.png"}
    assert tops == {"SHA256SUMS", "gdl", "eval"} | plots | {
        "report.md",
        "report.csv",
        "report_cases.csv",
    }, tops


# ------------------------------------------------------------------ concurrency
def test_two_makes_with_different_knobs_leave_a_consistent_store(tree: Path) -> None:
    target = "data/spleen-toy/cases"
    shutil.rmtree(tree / target)
    first = popen(tree, *BASE, "WINDOW=30,300", target)
    time.sleep(0.5)
    second = popen(tree, *BASE, "WINDOW=70,500", target)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert not any("Traceback" in err for _, err in outs)
    assert any("waiting for it to finish" in err for _, err in outs)
    split = json.loads((tree / target / "split.json").read_text())
    cases = sorted(c for s in ("train", "val", "test", "infer") for c in split.get(s, []))
    assert sorted(p.name for p in (tree / target).iterdir() if p.is_dir()) == cases
    assert not list((tree / target).rglob("*.tmp"))
    # the store is the one its record names, and make agrees
    record = (tree / "data/spleen-toy/.cases.cmd").read_text()
    window = re.search(r"--window=(\S+)", record).group(1)
    assert make(tree, "-q", *BASE, f"WINDOW={window}", target).returncode == 0
    digest = (tree / "data/spleen-toy/.cases.sha256").read_text().split()[0]
    shutil.rmtree(tree / target)
    assert make(tree, *BASE, f"WINDOW={window}", target).returncode == 0
    assert (tree / "data/spleen-toy/.cases.sha256").read_text().split()[0] == digest


def test_same_target_twice_at_once(tree: Path) -> None:
    target = "data/spleen-toy/cases"
    shutil.rmtree(tree / target)
    first = popen(tree, *BASE, target)
    time.sleep(0.3)
    second = popen(tree, *BASE, target)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert not any("Traceback" in out + err for out, err in outs)
    assert sum("built meanwhile by another make" in out for out, _ in outs) == 1, outs
    assert not list((tree / target).rglob("*.tmp")) and not (tree / f"{target}_tmp").exists()
    # the store came out with the bytes it had before: its content stamp stays, and
    # nothing after it is out of date (early cutoff)
    assert make(tree, "-q", *DEFAULT, METHODS).returncode == 0, "same content: nothing to do"


def test_two_trainings_of_one_method_at_once(tree: Path) -> None:
    args = (*BASE, "DEBUG=--debug", "EPC=2", "METHODS=gdl", DEBUG_GDL)
    first = popen(tree, *args)
    time.sleep(0.3)
    second = popen(tree, *args)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert not any("Traceback" in out + err for out, err in outs)
    assert not any("resuming" in out for out, _ in outs), "no run resumed the other's state"
    assert sum("built meanwhile by another make" in out for out, _ in outs) == 1, outs
    assert len(pd.read_csv(tree / DEBUG_GDL / "epochs.csv")) == 2


# ------------------------------------------------------------------ make hygiene
def test_cc_and_cflags_from_the_environment_are_ignored(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "p")
    env = {**make_env(), "CC": "gcc", "CFLAGS": "-O2 -pipe"}
    proc = make(root, "-n", *BASE, "METHODS=gdl", env=env, cc=False)
    assert proc.returncode == 0, proc.stderr
    commands = [ln for ln in proc.stdout.splitlines() if STAGE.search(ln)]
    assert commands and all(ln.startswith(".venv/bin/python ") for ln in commands), commands
    assert "-O2" not in proc.stdout and "gcc" not in proc.stdout
    on_line = make(root, "-n", *BASE, "METHODS=gdl", "CFLAGS=-O", env=env)
    assert "python -O preprocess/slice.py" in on_line.stdout


def test_dry_run_prints_only_commands(tree: Path) -> None:
    touch(tree / "src/segline/distmaps.py")
    proc = make(tree, "-n", *DEFAULT, METHODS)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines and not any(ln.lstrip().startswith(("for ", "if ")) for ln in lines), lines
    assert all(STAGE.search(ln) or ln.startswith("echo ") for ln in lines), [
        ln for ln in lines if not STAGE.search(ln)
    ]
