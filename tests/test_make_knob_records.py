"""Every knob that ``make -f <ds>.make help`` lists is recorded: changing it rebuilds.

For each dataset makefile a small toy pipeline is built once (``DEBUG`` run, one
method, one epoch). Then, for every knob the help lists, ``make -n`` with another
value must plan the stage the knob reaches, with the new value on its command line
(the record make compares is that command). A knob missing from the table below fails
the test, so a new knob cannot slip in unrecorded; and every ``?=`` variable of the
makefiles must appear in the help.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_project, make_env

pytestmark = pytest.mark.make

BASE = {
    "spleen": ("NET=Dimwit", "METHODS=gdl", "BS=16"),
    "isles": ("NET=Dimwit", "METHODS=gdl", "BS=16"),
    "vessels": ("NET=UNet3D", "NET_OPTS=base=4", "METHODS=pseudo", "SAMPLES=4"),
    # a small iterative FCN: an untrained network's window sweep over the test cases
    # makes many calls, each cheap at this width
    "vertebrae": ("METHODS=iterative", "NET_OPTS=channels=4 depth=2",
                  "TRAIN_ARGS=--samples-per-epoch 8"),
}
COMMON = ("TOY=1", "DEBUG=--debug", "EPC=1")
# Variables set with ?= that are not result knobs: where the virtualenv lives.
NOT_KNOBS = {"VENV"}
# Knobs that replace the toy archive by a folder: planned with TOY= (not both at once).
FOLDER_KNOBS = {"DATASET_DIR", "NNUNET_DATASET"}


def knob_table(ds: str) -> dict[str, tuple[str, str | None]]:
    """knob -> (other value, text a planned command must then contain; None: nothing
    may be planned, the knob does not reach any command in this setting)."""
    toy = f"{ds}-toy"
    method = next(a for a in BASE[ds] if a.startswith("METHODS=")).split("=")[1]
    # vessels crop to the body by default, vertebrae to the labelled spine; others: none
    crop_used = ds in ("vessels", "vertebrae")
    other = {"METHODS": {"vessels": "full", "vertebrae": "semantic"}.get(ds, "gdl_boundary")}
    return {
        "TOY": ("", "preprocess/fetch.py"),
        "METHODS": (other["METHODS"], "report --dataset"),  # REPORTER: vessels' own
        # one of METHODS (checked when make reads the makefile): planned with it added
        "REFERENCE": (other["METHODS"], f"--stat-reference {other['METHODS']}"),
        "NET": ("UNet" if ds != "vessels" else "Dimwit3D", "--net "),
        "NET_OPTS": ("base=8", "--net-opt base=8"),
        "EPC": ("2", "--epochs 2"),
        "CONTEXT": ("1", "--context 1"),
        "WEIGHT_MAP": ("4,2", "--weight-map 4,2"),
        "BS": ("3", "--batch-size 3"),
        "LR": ("0.01", "--lr 0.01"),
        "SEED": ("7", "--seed 7"),
        # one training per seed, in the seed folders of the run debug-seeds
        "SEEDS": ("0 3", f"--out results/{toy}/debug-seeds/{method}/seed3 "),
        # cross-validation: the store re-sliced with 2 folds, one training per fold
        "FOLDS": ("2", "--folds 2"),
        "DEVICE": ("cpu", "--device cpu"),
        "AMP": ("off", "--amp off"),
        "COMPILE": ("1", "--compile 1"),
        "AUG": ("light", "--aug light"),
        "SCHED": ("poly", "--sched poly"),
        "WARMUP": ("1", "--warmup 1"),
        "WD": ("1e-4", "--wd 1e-4"),
        "ABSENT": ("diagonal", "--absent diagonal"),  # an absent class's map: the other dist store
        "THREADS": ("2", "--threads 2"),  # torch threads: they change the last bits
        "WORKERS": ("2", None),  # scheduling only: results are identical for any value
        "EVAL_METRICS": ("precision", "--extra-metrics precision"),  # test-only metrics
        "DEBUG": ("", f"--out results/{toy}/{method} "),
        "RUN": ("other", f"--out results/{toy}/other/{method} "),
        "CFLAGS": ("-O", "-O preprocess/make_toy.py"),
        "CC": (f"env {sys.executable}", None),  # the launcher: changes no result
        "TRAINER": ("segline.train", "-m segline.train --cases")
        if ds == "vertebrae"
        else (
            "segline.experiments.vertebrae.train",
            "-m segline.experiments.vertebrae.train --cases",
        ),
        "GPUS": ("1,0,0", None),  # scheduling: which free GPU a training takes
        "GPU_LOCKS": ("/nonexistent/segline-gpus", None),  # where the GPU tokens live
        # the result cache: where built stages are kept, its cap, what cache-verify
        # rebuilds; scheduling only (a restore gives the bytes a build would)
        "CACHE": ("/nonexistent/segline-cache", None),
        "CACHE_MAX_GB": ("1", None),
        "CACHE_VERIFY_TARGETS": ("data", None),
        "CROP": ("body", "--crop body") if ds == "vertebrae" else ("label", "--crop label"),
        "CROP_MARGIN": ("5", "--crop-margin 5" if crop_used else None),
        "N_TEST": ("1", "--n-test 1"),
        "N_VAL": ("1", "--n-val 1"),
        "SPLIT": ("random", "--split random --split-seed 0"),
        "SPLIT_SEED": ("7", None),  # used by SPLIT=random only (tests/test_splits.py)
        # the store's own nnU-Net copy of its split, read back
        "SPLIT_FILE": (f"data/{toy}/cases/splits_final.json",
                       f"--split-file data/{toy}/cases/splits_final.json --split-fold 0"),
        "SPLIT_FOLD": ("1", None),  # used with SPLIT_FILE only
        "STRATIFY": ("prefix", "--stratify prefix"),
        "STRATIFY_FILE": ("README.md", "--stratify-file README.md"),  # planned, not run
        "WINDOW": ("50,350", "--window=50,350"),
        "NORM": ("zscore", "--norm zscore"),  # normalisation per channel: re-slices
        "SPACING": ("3,1,1", "--spacing=3,1,1"),
        "INPLANE": ("48", "--inplane=48"),
        "DS": ("other", "--out data/other/raw"),
        "ARCHIVES": ("", "preprocess/unpack.py"),  # value: copies, see _archive_copies
        "LINEAGE": ("lineage/copy.lineage", "--lineage lineage/copy.lineage --out"),
        "PACK_MODELS": ("1", "--models"),
        "UNPACK_RATIO": ("1000", "--max-ratio 1000"),
        "MAX_FILE_GB": ("1", None),  # a folder's size guard: changes no byte, not recorded
        # a folder instead of the archive (with TOY=, see FOLDER_KNOBS): copied, md5-checked
        "DATASET_DIR": (f"data/{toy}/raw", "-m segline.lineage.copyfolder"),
        "NNUNET_DATASET": (f"data/{toy}/raw", "-m segline.lineage.copyfolder"),
        "PATCH": ("16,32,32", "--patch 16,32,32"),
        "OVERLAP": ("0.25", "--overlap 0.25"),
        "SAMPLES": ("8", "--samples-per-epoch 8"),
        "TUMOUR": ("keep", "preprocess/slice.py"),
        "MIP_AXIS": ("1", "--axis 1"),
        "FG_REL": ("0.6", "--fg-rel 0.6"),
        "BG_FACTOR": ("0.4", "--bg-factor 0.4"),
        "MIN_SIZE": ("5", "--min-size 5"),
        "OCCLUDER_HU": ("500", "--occluder-hu 500"),
        "OCCLUDER_MARGIN": ("2", "--occluder-margin 2"),
        "PSEUDO": ("reference", "--rules reference"),
        # spleen's EBP methods only (optional; tests/test_make_ebp.py plans them with
        # METHODS='gdl ebp'): the base run trains no EBP method, so nothing is planned
        "EBP_ROI": ("ce", None),
        "EBP_DIRECTIONS": ("8,8", None),
        "EBP_PIVOT_STEP": ("3,4,4", None),
        "EBP_SAMPLES": ("64", None),
        "EBP_BALANCE": ("natural", None),
        "EBP_PERTURB": ("0.2", None),
        "EBP_TAU": ("0.4", None),
        # `predict` only (not planned by `all`); tests/test_predict_folder.py runs them
        "INPUT": ("in", None),
        "OUTPUT": ("out", None),
        "PROBS": ("1", None),
    }


def make(root: Path, ds: str, *args: str, cc: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["make", "--no-print-directory", "-f", f"{ds}.make", *COMMON, *BASE[ds], *args]
    if cc and not any(a.startswith("CC=") for a in args):
        cmd.append(f"CC={sys.executable}")
    return subprocess.run(
        cmd, cwd=root, env=make_env(), capture_output=True, text=True, timeout=900,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def help_knobs(root: Path, ds: str) -> list[str]:
    text = make(root, ds, "help").stdout
    knobs = text.split("knobs (current value):", 1)[1].split("make flags:", 1)[0]
    return sorted(set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", knobs)))


def makefile_defaults(root: Path, ds: str) -> set[str]:
    """Variables the makefiles let a user set (``NAME ?= ...``)."""
    text = (root / f"{ds}.make").read_text() + (root / "make" / "common.mk").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*) \?=", text, flags=re.M))


def _archive_copies(root: Path, ds: str) -> str:
    """Copies of the toy archives under other names, and of their lineage file (a dry
    run verifies nothing: it only has to find the files)."""
    names = []
    for src in sorted((root / "data").glob(f"{ds}-toy*")):
        if src.is_file():
            dst = src.with_name("copy-" + src.name)
            shutil.copy2(src, dst)
            names.append(dst.relative_to(root).as_posix())
    shutil.copy2(root / "lineage" / f"{ds}-toy.lineage", root / "lineage" / "copy.lineage")
    return " ".join(names)


@pytest.mark.parametrize("ds", ["spleen", "isles", "vessels", "vertebrae"])
def test_every_listed_knob_is_recorded(ds: str, tmp_path: Path) -> None:
    root = copy_project(tmp_path / "p")
    built = make(root, ds)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    copies = _archive_copies(root, ds)
    idle = make(root, ds, "-n")
    assert "segline" not in idle.stdout and "preprocess/" not in idle.stdout, idle.stdout

    knobs = help_knobs(root, ds)
    table = knob_table(ds)
    assert set(knobs) <= set(table), f"knobs without a test value: {set(knobs) - set(table)}"
    unlisted = makefile_defaults(root, ds) - set(knobs) - NOT_KNOBS
    assert not unlisted, f"knobs missing from `make -f {ds}.make help`: {unlisted}"
    for knob in knobs:
        value, expect = table[knob]
        if knob == "ARCHIVES":
            value = copies
        extra = ["TOY="] if knob in FOLDER_KNOBS else []
        if knob == "REFERENCE":  # the reference must be among the methods
            extra.append(next(a for a in BASE[ds] if a.startswith("METHODS=")) + f" {value}")
        plan = make(root, ds, "-n", f"{knob}={value}", *extra)
        commands = [ln for ln in plan.stdout.splitlines() if "segline" in ln or "preprocess/" in ln]
        if expect is None:
            assert not commands, f"{knob}={value} should rebuild nothing: {commands}"
        else:
            assert any(expect in ln for ln in commands), f"{knob}={value}: {plan.stdout[-1500:]}"
