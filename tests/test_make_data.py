"""Make-level tests of the data half of spleen.make on the toy archive.

They check the house rules of the makefiles (bash, .PHONY, .DELETE_ON_ERROR, no
terminal noise, dry runs that change nothing, a second make that does nothing) and
that `make -f spleen.make TOY=1 data` builds the toy lineage from nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, copy_project, snapshot

pytestmark = pytest.mark.make

DATA_ARGS = ("-f", "spleen.make", "TOY=1")


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, run_make
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A project copy in which `make -f spleen.make TOY=1 data` ran once from nothing."""
    root = copy_project(tmp_path_factory.mktemp("proj"))
    proc = run_make(root, *DATA_ARGS, "data")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, proc


def test_makefiles_follow_house_rules() -> None:
    common = (REPO / "make" / "common.mk").read_text()
    assert re.search(r"^SHELL := bash$", common, re.M)
    # whole words: "output" holds "tput"
    assert not re.search(r"\bzsh\b", common)
    assert re.search(r"^\.PHONY:", common, re.M), "a real .PHONY declaration"
    assert not re.search(r"^\.PHONY\s*=", common, re.M)
    assert re.search(r"^\.DELETE_ON_ERROR:", common, re.M)
    assert not re.search(r"\btput\b", common)
    for mk in ["Makefile", "spleen.make"]:
        text = (REPO / mk).read_text()
        assert not re.search(r"\b(zsh|tput)\b", text)


def test_data_builds_toy_lineage_from_nothing(built) -> None:
    root, proc = built
    data = root / "data" / "spleen-toy"
    for stage in ("raw", "cases", "dist"):
        assert (data / stage).is_dir(), stage
    assert not list((root / "data").glob("**/*_tmp")) and not list((root / "data").glob("**/*.tmp"))
    split = json.loads((data / "cases" / "split.json").read_text())
    assert len(split["test"]) == 3 and len(split["val"]) == 2 and len(split["train"]) >= 5
    case = split["train"][0]
    image = np.load(data / "cases" / case / "image.npy", mmap_mode="r")
    label = np.load(data / "cases" / case / "label.npy")
    d2 = np.load(data / "dist" / case / "dist2d.npy", mmap_mode="r")
    d3 = np.load(data / "dist" / case / "dist3d.npy", mmap_mode="r")
    assert image.dtype == np.float32 and image.shape[1:] == label.shape
    assert d2.shape == d3.shape == (2, *label.shape) and d2.dtype == np.float32
    assert np.isfinite(d2).all() and np.isfinite(d3).all()
    inside = label == 1
    assert (d3[1][inside] < 0).all() and (d3[1][~inside] > 0).all()
    # the archive matches its lineage, as md5sum -c checks it
    md5 = hashlib.md5((root / "data" / "spleen-toy.tar").read_bytes()).hexdigest()
    assert md5 in (root / "lineage" / "spleen-toy.lineage").read_text()
    assert (
        subprocess.run(
            ["md5sum", "--quiet", "-c", "lineage/spleen-toy.lineage"], cwd=root
        ).returncode
        == 0
    )
    assert "\x1b" not in proc.stdout + proc.stderr, (
        "no terminal control codes when not on a terminal"
    )


def test_second_make_does_nothing(built, run_make) -> None:
    root, _ = built
    before = snapshot(root)
    proc = run_make(root, *DATA_ARGS, "data")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout
    assert snapshot(root) == before
    assert run_make(root, "-q", *DATA_ARGS, "data").returncode == 0


def test_dry_run_changes_nothing_and_plans_real_work(built, run_make) -> None:
    root, _ = built
    before = snapshot(root)
    up_to_date = run_make(root, "-n", *DATA_ARGS, "data")
    assert up_to_date.returncode == 0
    assert "preprocess/" not in up_to_date.stdout, up_to_date.stdout
    # after touching the distance-map code, only the distance maps are planned
    (root / "src" / "segline" / "distmaps.py").touch()
    before = snapshot(root)
    plan = run_make(root, "-n", *DATA_ARGS, "data")
    assert plan.returncode == 0
    assert "preprocess/distmaps.py" in plan.stdout
    assert "preprocess/slice.py" not in plan.stdout and "preprocess/unpack.py" not in plan.stdout
    assert snapshot(root) == before


def test_dry_run_from_nothing_plans_every_stage(tmp_path: Path, run_make) -> None:
    root = copy_project(tmp_path / "fresh")
    before = snapshot(root)
    plan = run_make(root, "-n", *DATA_ARGS, "data")
    assert plan.returncode == 0, plan.stderr
    for tool in ("make_toy.py", "unpack.py", "slice.py", "distmaps.py"):
        assert plan.stdout.count(f"preprocess/{tool}") == 1, plan.stdout
    assert snapshot(root) == before


def test_changed_knob_rebuilds_only_affected_stage(tmp_path: Path, built, run_make) -> None:
    root, _ = built
    plan = run_make(root, "-n", *DATA_ARGS, "N_VAL=1", "data")
    assert "preprocess/slice.py" in plan.stdout and "preprocess/unpack.py" not in plan.stdout


def test_help_lists_targets_and_knobs(run_make, tmp_path: Path) -> None:
    root = copy_project(tmp_path / "help")
    proc = run_make(root, "-f", "spleen.make", "help")
    assert proc.returncode == 0
    for word in (
        "data",
        "TOY=1",
        "EPC",
        "NET",
        "BS",
        "LR",
        "DEBUG",
        "CFLAGS",
        "CC",
        "METHODS",
        "SEED",
        "DEVICE",
        "-n",
        "-B",
        "val_dice.png",
        "gdl_boundary",
    ):
        assert word in proc.stdout, word


def test_missing_real_archive_stops_with_guidance(tmp_path: Path, run_make) -> None:
    """No network here: the download fails with one line and leaves nothing."""
    root = copy_project(tmp_path / "real")
    proc = run_make(root, "-f", "spleen.make", "data/Task09_Spleen.tar")
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("segline:")]
    assert len(err) == 1 and "data/Task09_Spleen.tar" in err[0] and "TOY=1" in err[0], proc.stderr
    assert "410d4a301da4e5b2f6f86ec3ddba524e" in err[0]
    assert "Traceback" not in proc.stderr
    assert not any((root / "data").glob("Task09_Spleen.tar*")) if (root / "data").exists() else True


def test_wrong_md5_stops_unpack(tmp_path: Path, run_make) -> None:
    root = copy_project(tmp_path / "bad")
    (root / "data").mkdir()
    assert run_make(root, *DATA_ARGS, "data/spleen-toy.tar").returncode == 0
    with open(root / "data" / "spleen-toy.tar", "r+b") as fh:
        fh.seek(5000)
        fh.write(b"\x00corrupt")
    proc = run_make(root, *DATA_ARGS, "data/spleen-toy/raw")
    assert proc.returncode != 0
    assert "data/spleen-toy.tar" in proc.stderr and "md5" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "data" / "spleen-toy" / "raw").exists()
    assert not (root / "data" / "spleen-toy" / "raw_tmp").exists()


def test_archive_path_with_space_is_one_clear_line(tmp_path: Path, run_make) -> None:
    """make splits ARCHIVES at spaces; the tools say so instead of 'data/with: not listed'."""
    root = copy_project(tmp_path / "space")
    (root / "data").mkdir()
    (root / "data" / "with space.tar").write_bytes(b"any bytes\n")
    md5 = hashlib.md5(b"any bytes\n").hexdigest()
    (root / "lineage" / "ws.lineage").write_text(f"{md5}  data/with space.tar\n")
    proc = run_make(
        root,
        "-f",
        "spleen.make",
        "ARCHIVES=data/with space.tar",
        "LINEAGE=lineage/ws.lineage",
        "DS=ws",
        "data/ws/raw",
        timeout=120,
    )
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("segline:")]
    assert err == [
        "segline: data/with space.tar: archive path contains a space; make splits names at "
        "spaces: rename it or link it under a name without spaces"
    ], proc.stderr
    assert "Traceback" not in proc.stderr and not (root / "data" / "ws").exists()
