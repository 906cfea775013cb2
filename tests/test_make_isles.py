"""Make-level tests of isles.make: the toy pipeline end to end (`NET=Dimwit EPC=2`),
the dry-run plan, and the guidance when the registration-only real zips are missing."""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_project, snapshot

pytestmark = pytest.mark.make

ARGS = ("-f", "isles.make", "TOY=1", "NET=Dimwit", "EPC=2")
METHODS = ["gdl", "gdl_boundary", "gdl_boundary3d", "gdl_hausdorff"]
HARD_METHODS = ["gdl", "gdl_boundary", "gdl_boundary3d", "gdl_hausdorff"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory,
             run_make) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = copy_project(tmp_path_factory.mktemp("isles"))
    proc = run_make(root, "-j2", *ARGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, proc


def test_toy_run_archive_and_report(pipeline) -> None:
    root, proc = pipeline
    raw = root / "data" / "isles-toy" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["TESTING", "TRAINING"]
    assert not list(raw.rglob("*CT_4DPWI*")) and not list(raw.rglob("__MACOSX"))
    assert "--exclude '*CT_4DPWI*'" in proc.stdout
    assert "--adapter isles" in proc.stdout and "--window=40,80 --inplane=64" in proc.stdout
    res = root / "results" / "isles-toy"
    for m in METHODS:
        metrics = pd.read_csv(res / m / "metrics.csv")
        assert set(metrics.split) == {"val", "test"}
        assert set(metrics[metrics.split == "test"].case) == {"train_case_1", "train_case_2"}
        assert set(metrics[metrics.split == "val"].case) == {"train_case_3", "train_case_4"}
        assert len(list((res / m / "test" / "preds").glob("*.nii.gz"))) == 2
    assert "hausdorff:0.01[schedule=rebalance;step=0.01;cap=0.99;alpha=1]" in \
        (res / ".gdl_hausdorff.cmd").read_text()
    assert "--dist-kind 3d" in (res / ".gdl_boundary3d.cmd").read_text()
    report = (res / "report.md").read_text()
    for m in METHODS:
        assert m in report
    assert (res / "val_dice.png").read_bytes()[:4] == b"\x89PNG"
    pointer = root / "archives" / "isles-toy-latest.txt"
    archive = root / "archives" / pointer.read_text().strip()
    assert archive.name.startswith("isles-toy-") and archive.name.endswith(".tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert any(n.endswith("report.md") for n in names)
    assert any(n.endswith("val_dice.png") for n in names)


def test_predict_names_for_submission(pipeline, run_make) -> None:
    root, _ = pipeline
    proc = run_make(root, *ARGS, "METHODS=gdl", "predict")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = root / "results" / "isles-toy" / "predict" / "gdl"
    names = sorted(p.name for p in out.iterdir() if p.name.endswith(".nii"))
    # and the viewers' label descriptions (src/segline/predicting/labels.py)
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".nii")) == [
        "labels.ctbl", "labels.txt"]
    # SMIR.<result name>.<SMIR id of the case's CT_MTT>.nii, testing cases 1..3
    assert len(names) == 3
    ids = [re.fullmatch(r"SMIR\.[A-Za-z0-9_-]+\.(\d+)\.nii", n).group(1) for n in names]
    assert ids == ["800005", "800011", "800017"]


def test_dry_run_plans_and_changes_nothing(tmp_path: Path, run_make) -> None:
    root = copy_project(tmp_path / "p")
    before = snapshot(root)
    plan = run_make(root, "-n", "-f", "isles.make", "TOY=1")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.count("-m segline.train") == 4
    assert "make_toy.py --dataset isles --out data/isles-toy_Training.zip " \
        "--out data/isles-toy_Testing.zip" in plan.stdout
    assert snapshot(root) == before


def test_hard_toy_dry_run_plans_its_own_data(tmp_path: Path, run_make) -> None:
    """TOY=hard: its own archives, lineage, DS (isles-hard-toy) and split (12 test cases)."""
    root = copy_project(tmp_path / "p")
    before = snapshot(root)
    plan = run_make(root, "-n", "-f", "isles.make", "TOY=hard")
    assert plan.returncode == 0, plan.stderr
    assert "make_toy.py --dataset isles-hard --out data/isles-hard-toy_Training.zip " \
        "--out data/isles-hard-toy_Testing.zip" in plan.stdout
    assert "--lineage lineage/isles-hard-toy.lineage --out data/isles-hard-toy/raw" in plan.stdout
    assert "--out data/isles-hard-toy/cases --adapter isles --n-test 12 --n-val 3" in plan.stdout
    trainings = re.findall(r"--out results/isles-hard-toy/(\w+) .*--epochs (\d+) ", plan.stdout)
    assert sorted(trainings) == sorted((m, "5") for m in HARD_METHODS)
    assert "isles-toy" not in plan.stdout.replace("isles-hard-toy", "")
    assert snapshot(root) == before
    bad = run_make(root, "-n", "-f", "isles.make", "TOY=hrad")
    assert bad.returncode != 0 and "TOY=hrad: use TOY=1 (the toy) or a variant: hard" in bad.stderr


def test_missing_real_zips_guidance(tmp_path: Path, run_make) -> None:
    root = copy_project(tmp_path / "p")
    proc = run_make(root, "-f", "isles.make")
    assert proc.returncode != 0
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("segline: "))
    assert line.startswith("segline: data/ISLES2018_Training.zip: no download URL")
    assert "registration required" in line and "isles-challenge.org" in line
    assert "b6d16c456e173743e30a3fbdb3bd29a5" in line and "TOY=1" in line
    assert "Traceback" not in proc.stderr
    assert not (root / "data").exists()
