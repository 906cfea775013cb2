"""Test-only metrics (EVAL_METRICS): scored by the evaluation stage in source geometry,
reported with statistics, and their code in no training's lineage: a change to it
re-evaluates and never retrains."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import copy_project

pytestmark = pytest.mark.make

RES = Path("results/spleen-toy")
ARGS = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "METHODS=gdl ce",
        "EVAL_METRICS=precision,recall")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:
    root = copy_project(tmp_path_factory.mktemp("evalmetrics"))
    proc = run_make(root, "-j2", *ARGS, "report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def test_scored_on_the_written_files(built: Path) -> None:
    raw = built / "data/spleen-toy/raw"
    for method in ("gdl", "ce"):
        ev = built / RES / "eval" / method
        table = pd.read_csv(ev / "metrics.csv")
        assert list(pd.unique(table.metric)) == ["dice", "hd95", "assd", "precision", "recall"]
        training = pd.read_csv(built / RES / method / "test" / "metrics.csv")
        assert "precision" not in set(training.metric)  # the training never computed it
        labels = {c: raw / f for c, f in
                  __import__("json").loads((ev / "grid.json").read_text())["labels"].items()}
        for case, label in labels.items():
            p = np.asarray(nib.load(ev / f"{case}.nii.gz").dataobj) == 1
            g = np.asarray(nib.load(label).dataobj) == 1
            got = table[table.case == case].set_index("metric")["value"]
            inter = int(np.count_nonzero(p & g))
            if p.any():
                assert got["precision"] == pytest.approx(inter / np.count_nonzero(p), abs=1e-12)
            assert got["recall"] == pytest.approx(inter / np.count_nonzero(g), abs=1e-12)


def test_reported_with_statistics(built: Path) -> None:
    md = (built / RES / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    assert "test Precision" in header and "test Recall" in header
    assert "### Precision: higher is better" in md.split("## Statistics", 1)[1]
    assert "- Precision: |P ∩ G| / |P| (voxels)" in md
    cases = pd.read_csv(built / RES / "report_cases.csv")
    assert {"precision", "recall"} <= set(cases.metric)


def test_a_change_to_its_code_re_evaluates_and_never_retrains(built: Path, run_make) -> None:
    for method in ("gdl", "ce"):
        assert "src/segline/metrics/voxelwise.py" not in (built / RES / f".{method}.d").read_text()
        assert "src/segline/metrics/voxelwise.py" in \
            (built / RES / "eval" / f".{method}.d").read_text()
    t = time.time()
    os.utime(built / "src/segline/metrics/voxelwise.py", (t, t))
    plan = run_make(built, "-n", *ARGS, "report").stdout
    assert "segline.train" not in plan
    evaluated = sorted(re.findall(r"segline\.eval_stage .*?--out (\S+)", plan))
    assert evaluated == [f"{RES}/eval/ce", f"{RES}/eval/gdl"]
    # the report follows only if the evaluations' content changes (their content
    # stamps, early cutoff): make -n cannot know that before they ran
