"""Make-level test of vessels.make on the toy vessel trees: NET=Dimwit3D, 2 epochs."""

from __future__ import annotations

from pathlib import Path

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


def test_pseudo_threshold_knob_rebuilds_pseudo_and_weak_methods_only(built: Path, run_make) -> None:
    plan = run_make(built, "-n", *ARGS, "FG_REL=0.6").stdout
    assert "preprocess/pseudo.py" in plan and "preprocess/mip.py" not in plan
    trained = [m for m in METHODS if f"--out results/vessels-toy/{m} " in plan]
    assert trained == METHODS  # every training depends on the pseudo-label stage
