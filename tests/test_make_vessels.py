"""Make-level test of vessels.make on the toy vessel trees: NET=Dimwit3D, 2 epochs."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import copy_project

pytestmark = pytest.mark.make

ARGS = ("-f", "vessels.make", "TOY=1", "NET=Dimwit3D", "EPC=2", "SAMPLES=4", "PATCH=16,32,32")
METHODS = ["full", "pseudo", "mip", "mip_boundary"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:
    root = copy_project(tmp_path_factory.mktemp("vessels"))
    proc = run_make(root, *ARGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def test_pipeline_through_to_archive(built: Path) -> None:
    res = built / "results" / "vessels-toy"
    for m in METHODS:
        metrics = pd.read_csv(res / m / "metrics.csv")
        assert set(metrics.metric) == {"dice", "hd95", "assd", "cldice", "mip_dice"}
        assert len(list((res / m / "test" / "preds").glob("*.nii.gz"))) == 3
    quality = pd.read_csv(res / "pseudo_quality.csv")
    assert len(quality) >= 12 and quality.filter(like="prec").notna().all().all()
    report = (res / "report.md").read_text()
    for m in METHODS:
        assert m in report
    assert "full" in report and "cldice" in report.lower()
    for plot in ("val_dice.png", "val_cldice.png", "val_mip_dice.png", "overlays.png"):
        assert (res / plot).stat().st_size > 5000
    pointer = built / "archives" / "vessels-toy-latest.txt"
    assert (built / "archives" / pointer.read_text().strip()).is_file()
    for stage in ("mip", "pseudo"):
        for kind in ("cmd", "d", "sha256"):  # the stage's records (segline.stage)
            assert (built / "data" / "vessels-toy" / f".{stage}.{kind}").is_file()


# The stages after a rebuilt one depend on its content stamp (early cutoff): make -n
# plans them only if told the stamp changes, make's "what if" (-W).
STAMP = {s: f"--what-if=data/vessels-toy/.{s}.content" for s in ("cases", "mip", "pseudo")}


def test_pseudo_threshold_knob_rebuilds_pseudo_and_weak_methods_only(built: Path, run_make) -> None:
    plan = run_make(built, "-n", *ARGS, "FG_REL=0.6").stdout
    assert "preprocess/pseudo.py" in plan and "preprocess/mip.py" not in plan
    assert "segline.train" not in plan, "whether the pseudo-labels change is not known yet"
    plan = run_make(built, "-n", *ARGS, "FG_REL=0.6", STAMP["pseudo"]).stdout
    assert "preprocess/pseudo.py" in plan and "preprocess/mip.py" not in plan
    trained = [m for m in METHODS if f"--out results/vessels-toy/{m} " in plan]
    assert trained == METHODS  # every training depends on the pseudo-label stage


def test_occluder_and_pseudo_rule_knobs_rebuild_their_stages(built: Path, run_make) -> None:
    info = json.loads((built / "data" / "vessels-toy" / "mip" / "mip.json").read_text())
    assert info["occluder"]["hu"] == 400.0 and info["occluder"]["margin_voxels"] == 1
    rules = json.loads((built / "data" / "vessels-toy" / "pseudo" / "pseudo.json").read_text())
    assert rules["rules"] == "segline"
    for knob, mip_cmd in (("OCCLUDER_HU=500", "--occluder-hu 500 --occluder-margin 1"),
                          ("OCCLUDER_MARGIN=2", "--occluder-margin 2"),
                          ("OCCLUDER_HU=none", "--axis 0")):
        plan = run_make(built, "-n", *ARGS, knob, STAMP["mip"], STAMP["pseudo"]).stdout
        line = next(ln for ln in plan.splitlines() if "preprocess/mip.py" in ln)
        assert line.rstrip().endswith(mip_cmd) and "preprocess/pseudo.py" in plan, (knob, line)
        trained = [m for m in METHODS if f"--out results/vessels-toy/{m} " in plan]
        assert trained == METHODS, knob
    plan = run_make(built, "-n", *ARGS, "PSEUDO=reference", "FG_REL=0.6", STAMP["pseudo"]).stdout
    assert "--rules reference" in plan and "--fg-rel" not in plan
    assert "preprocess/mip.py" not in plan
    assert [m for m in METHODS if f"--out results/vessels-toy/{m} " in plan] == METHODS


def test_eval_stage_scores_the_written_files_with_mip_dice(built: Path) -> None:
    """The evaluation stage scores each method's source-geometry NIfTI files against the
    original 3D labels, mip_dice included: here recomputed by hand (label 2, tumour, is
    background for this task; the MIP axis 0 of the stored (Z, Y, X) volume is NIfTI's
    axis 2). The toy is not resampled, so the numbers equal the training grid's."""
    res = built / "results" / "vessels-toy"
    raw = built / "data" / "vessels-toy" / "raw"
    for m in METHODS:
        ev = res / "eval" / m
        grid = json.loads((ev / "grid.json").read_text())
        assert grid["grid"] == "source geometry" and grid["mip_axis"] == 0
        table = pd.read_csv(ev / "metrics.csv")
        assert set(table.metric) == {"dice", "hd95", "assd", "cldice", "mip_dice"}
        for case in grid["cases"]:
            pred = np.asarray(nib.load(ev / f"{case}.nii.gz").dataobj) == 1
            label = np.asarray(nib.load(raw / grid["labels"][case]).dataobj) == 1
            got = table[table.case == case].set_index("metric")["value"]
            for name, a, b in (("dice", pred, label),
                               ("mip_dice", pred.any(axis=2), label.any(axis=2))):
                inter = int(np.count_nonzero(a & b))
                want = 2 * inter / (int(np.count_nonzero(a)) + int(np.count_nonzero(b)))
                assert got[name] == pytest.approx(want, abs=1e-12), (m, case, name)
        training = pd.read_csv(res / m / "test" / "metrics.csv")
        assert training.equals(table)


def test_report_reads_the_evaluation_stage(built: Path) -> None:
    md = (built / "results" / "vessels-toy" / "report.md").read_text()
    assert "source geometry" in md and "MIP Dice" in md


def test_folds_plan_one_training_and_evaluation_per_fold(built: Path, run_make) -> None:
    """FOLDS=2: every method trains and is evaluated once per fold, on the one
    pseudo-label store (pseudo-labels depend on a case alone, never on the split)."""
    plan = run_make(built, "-n", *ARGS, "FOLDS=2", STAMP["cases"]).stdout
    for m in METHODS:
        for i in (0, 1):
            assert f"--out results/vessels-toy/folds/{m}/fold{i} " in plan
            assert f"--out results/vessels-toy/folds/eval/{m}/fold{i} " in plan
    assert plan.count("preprocess/pseudo.py") == 1


def test_vessel_pieces_come_from_the_experiment(built: Path) -> None:
    """The trainings ran the vessel trainer (recorded in args.json, and its code in their
    dependency files); the report knows mip_dice from the experiment's record (its title
    and convention), which the report module of vessels.make registers."""
    res = built / "results" / "vessels-toy"
    for m in METHODS:
        args = json.loads((res / m / "args.json").read_text())
        assert args["trainer"] == "segline.experiments.vessels.train:VesselTrainer"
        deps = (res / f".{m}.d").read_text()
        assert "src/segline/experiments/vessels/train.py" in deps
    report = (res / "report.md").read_text()
    assert "MIP Dice" in report and "- MIP Dice: Dice of the maximum-intensity" in report
    assert "src/segline/experiments/vessels/mipdice.py" in (res / ".report.md.d").read_text()


def test_no_vessels_stage_depends_on_the_vertebrae_experiment(built: Path) -> None:
    """Touching src/segline/experiments/vertebrae replans nothing here: no dependency
    file of the vessels pipeline lists it (they list what each stage imported)."""
    deps = [p for p in built.rglob(".*.d") if ".venv" not in p.parts]
    assert len(deps) >= 10
    for dep in deps:
        assert "src/segline/experiments/vertebrae" not in dep.read_text(), dep
