"""Make-level tests of what a user meets on a cluster or with their own data.

* ``CC`` as a command prefix (``CC='srun … python'``) together with ``CFLAGS=-O``:
  every recipe must run through the prefix, including training.
* Another MSD-format archive through ``spleen.make`` (``DS``, ``ARCHIVES``,
  ``LINEAGE``): the classes come from that archive's ``dataset.json``, not from the
  spleen's.
* A make whose training is killed (SIGKILL) resumes on the next make and ends with
  the same results and archive name as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import copy_project, differing, make_env
from segline.pack import volatile

pytestmark = pytest.mark.make


def _make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """make with the arguments as given (no CC appended, unlike the run_make fixture)."""
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=root,
        env=make_env(),
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )


def test_cc_prefix_and_cflags_reach_every_recipe(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "p")
    # A wrapper standing in for `srun --gres=gpu:1`: logs each call, drops its own
    # options, then runs the rest.
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "fake-srun"
    wrapper.write_text(
        f'#!/bin/bash\necho "$*" >> {log}\nwhile [[ $1 == --* ]]; do shift; done\nexec "$@"\n'
    )
    wrapper.chmod(0o755)
    cc = f"{wrapper} --gres=gpu:1 {sys.executable}"
    target = "results/spleen-toy/gdl"
    proc = _make(
        root,
        "-f",
        "spleen.make",
        "TOY=1",
        "NET=Dimwit",
        "EPC=1",
        "BS=16",
        "METHODS=gdl",
        f"CC={cc}",
        "CFLAGS=-O",
        target,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    calls = log.read_text().splitlines()
    # toy generator, unpack, slice, distance maps, training: all through the prefix, with -O
    assert len(calls) == 5, calls
    assert all(c.startswith(f"--gres=gpu:1 {sys.executable} -O ") for c in calls), calls
    assert any("-m segline.train" in c for c in calls)
    metrics = pd.read_csv(root / target / "metrics.csv")
    assert set(metrics.split) == {"val", "test"} and metrics.epoch.max() == 1
    # the provenance records the command as run, prefix included
    command = (root / target / "provenance" / "command.txt").read_text()
    assert command.splitlines()[0].split()[1:4] == ["-O", "-m", "segline.train"], command
    assert f"# run by make with CC={cc}" in command
    assert not (root / ".venv").exists(), "an explicit CC never creates the virtualenv"


def test_another_msd_task_with_its_own_classes(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "p")
    # Any MSD-format archive: here the vessels toy (3 classes: background, vessel, tumour).
    gen = subprocess.run(
        [
            sys.executable,
            "preprocess/make_toy.py",
            "--dataset",
            "vessels",
            "--out",
            "data/Task08_Mine.tar",
        ],
        cwd=root,
        env=make_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gen.returncode == 0, gen.stderr
    md5 = hashlib.md5((root / "data" / "Task08_Mine.tar").read_bytes()).hexdigest()
    (root / "lineage" / "mine.lineage").write_text(f"{md5}  data/Task08_Mine.tar\n")
    proc = _make(
        root,
        "-f",
        "spleen.make",
        "DS=mine",
        "ARCHIVES=data/Task08_Mine.tar",
        "LINEAGE=lineage/mine.lineage",
        "WINDOW=none",
        "N_TEST=1",
        "N_VAL=1",
        f"CC={sys.executable}",
        "data",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fetch.py" not in proc.stdout, "an archive already in place is not downloaded"
    cases = root / "data" / "mine" / "cases"
    meta = json.loads((cases / "dataset.json").read_text())
    assert meta["labels"] == {"0": "background", "1": "Vessel", "2": "Tumour"}
    assert meta["preprocessing"]["window"] is None
    split = json.loads((cases / "split.json").read_text())
    assert len(split["test"]) == 1 and len(split["val"]) == 1
    case = split["train"][0]
    label = np.load(cases / case / "label.npy")
    assert set(np.unique(label)) <= {0, 1, 2} and (label == 1).any()
    dist = np.load(root / "data" / "mine" / "dist" / case / "dist3d.npy", mmap_mode="r")
    assert dist.shape == (3, *label.shape)
    assert not (root / "data" / "spleen").exists() and not (root / "data" / "spleen-toy").exists()


def test_make_killed_mid_training_resumes_to_the_same_archive(tmp_path: Path) -> None:
    """SIGKILL of the training (as a crash or a scheduler would) mid-run: the next make
    resumes from the last completed epoch, and the whole pipeline ends with the same
    results, byte for byte (wall times aside), and the same archive name as an
    uninterrupted run in another folder."""
    # DEBUG (tiny loaders) with RUN= (the default run's folder) keeps it to seconds
    args = (
        "-f",
        "spleen.make",
        "TOY=1",
        "NET=Dimwit",
        "EPC=3",
        "BS=16",
        "METHODS=gdl",
        "DEBUG=--debug",
        "RUN=",
        f"CC={sys.executable}",
    )
    whole = copy_project(tmp_path / "whole")
    assert _make(whole, *args).returncode == 0
    root = copy_project(tmp_path / "killed")
    env = {**make_env(), "SEGLINE_TEST_KILL_AFTER_EPOCH": "1"}
    killed = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert killed.returncode != 0
    target = "results/spleen-toy/gdl"
    assert not (root / target).exists(), "no result folder for an unfinished training"
    assert _make(root, "-q", *args, target).returncode == 1, "still to be built"
    again = _make(root, *args)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "[gdl] resuming after epoch 1 (of 3)" in again.stdout
    assert "make_toy.py" not in again.stdout and "slice.py" not in again.stdout, "data kept"

    def files(top: Path) -> dict[str, bytes]:
        res = top / "results" / "spleen-toy"
        return {
            str(p.relative_to(res)): p.read_bytes()
            for p in sorted(res.rglob("*"))
            # wall times (timing.csv, train.log, the report, epoch_time.png, ...) and the
            # content digests of those files (.<name>.sha256, .<name>.content) may differ
            if p.is_file()
            and not volatile(
                p.name.removeprefix(".").removesuffix(".sha256").removesuffix(".content")
            )
        }

    assert differing(files(root), files(whole)) == []
    timing = pd.read_csv(root / target / "timing.csv")
    assert list(timing.epoch) == [1, 2, 3] and (timing.seconds > 0).all()
    latest = "archives/spleen-toy-latest.txt"
    assert (root / latest).read_text() == (whole / latest).read_text()


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("0 01", "SEEDS: 01: each seed is an integer >= 0 written without leading zeros"),
        ("1 x2", "SEEDS: x2: each seed is an integer"),
        ("2 2", "SEEDS=2 2: a seed is listed twice"),
    ],
)
def test_bad_seeds_refused_before_anything_runs(seeds: str, message: str) -> None:
    """SEEDS is checked when make reads the makefile: one line, nothing planned."""
    root = Path(__file__).resolve().parents[1]
    done = _make(root, "-n", "-f", "spleen.make", "TOY=1", f"SEEDS={seeds}", "train")
    assert done.returncode != 0
    assert message in done.stderr and done.stdout == ""


def test_seeds_plan_one_training_per_method_and_seed() -> None:
    """SEEDS='0 2': seed folders in the run `seeds`, each with its own --seed; plots and
    report take every seed folder; without SEEDS the single-seed layout is unchanged."""
    root = Path(__file__).resolve().parents[1]
    args = ("-n", "-B", "-f", "spleen.make", "TOY=1", "METHODS=gdl gdl_boundary3d", "CC=python")
    plan = _make(root, *args, "SEEDS=0 2", "report").stdout
    for method, dist in (("gdl", "2d"), ("gdl_boundary3d", "3d")):
        for seed in (0, 2):
            out = f"--out results/spleen-toy/seeds/{method}/seed{seed} "
            (line,) = [x for x in plan.splitlines() if out in x]
            assert f"--seed {seed} " in line and f"--dist-kind {dist}" in line
    (report,) = [x for x in plan.splitlines() if "-m segline.report" in x]
    assert report.count("results/spleen-toy/seeds/gdl/seed") == 2
    single = _make(root, *args, "SEED=5", "report").stdout
    assert "--out results/spleen-toy/gdl --" in single and "--seed 5 " in single
    assert "seed0" not in single
