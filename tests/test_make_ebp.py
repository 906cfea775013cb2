"""spleen.make's EBP methods: the toy pipeline through to the archive with `gdl ebp
ebp_oracle`, EBP's region-of-interest method as a prerequisite of the same seed, and its
knobs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_project, make_env

pytestmark = pytest.mark.make

FAST = ("TOY=1", "NET=Dimwit", "EPC=1", "EBP_SAMPLES=64", "EBP_DIRECTIONS=8,8")


def make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["make", "--no-print-directory", "-f", "spleen.make", *FAST, *args,
           f"CC={sys.executable}"]  # fmt: skip
    return subprocess.run(cmd, cwd=root, env=make_env(), capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)  # fmt: skip


def test_gdl_and_ebp_through_to_the_archive(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "p")
    done = make(root, "METHODS=gdl ebp ebp_oracle", "REFERENCE=ebp")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    res = root / "results" / "spleen-toy"
    args = json.loads((res / "ebp" / "args.json").read_text())
    assert args["trainer"] == "segline.experiments.ebp.train:EBPTrainer"
    assert args["roi"] == "pred:results/spleen-toy/gdl" and args["oracle"] is False
    assert args["directions"] == [8, 8] and args["samples_per_epoch"] == 64
    # the evaluation stage scored EBP's written files against the original labels
    scored = pd.read_csv(res / "eval" / "ebp" / "metrics.csv")
    assert set(scored["case"]) == set(pd.read_csv(res / "ebp" / "test" / "metrics.csv")["case"])
    report = (res / "report.md").read_text()
    assert "| ebp |" in report and "ebp" in report.split("## Statistics", 1)[-1]
    cases = pd.read_csv(res / "report_cases.csv")
    assert {"gdl", "ebp"} <= set(cases["method"])
    assert list((root / "archives").glob("spleen-toy-*.tar.gz"))
    # the published ground-truth box: an oracle row, scored, marked, left out of the tests
    assert json.loads((res / "ebp_oracle" / "args.json").read_text())["oracle"] is True
    assert (res / "eval" / "ebp_oracle" / "metrics.csv").is_file()
    assert "ebp_oracle (oracle: uses test labels)" in report
    stats = report.split("## Statistics", 1)[-1]
    assert "Left out" in stats and "ebp_oracle" in stats.split("Left out", 1)[1].split("\n")[0]
    again = make(root, "METHODS=gdl ebp ebp_oracle", "REFERENCE=ebp", "-q")
    assert again.returncode == 0, "a second make has work to do"


def test_plans(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "p")
    alone = make(root, "METHODS=ebp", "-n")
    assert alone.returncode != 0 and "EBP_ROI=gdl" in alone.stderr
    # every EBP knob reaches the EBP trainings' command lines (their records)
    plan = make(root, "METHODS=gdl ebp ebp_oracle", "SEEDS=0 1", "EBP_ROI=gdl", "-n",
                "EBP_TAU=0.4", "EBP_BALANCE=natural", "EBP_PERTURB=0.2",
                "EBP_DIRECTIONS=12,10", "EBP_SAMPLES=96", "EBP_PIVOT_STEP=3,4,4")  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    ebp1 = next(ln for ln in lines if "--out results/spleen-toy/seeds/ebp/seed1 " in ln)
    assert "--roi pred:results/spleen-toy/seeds/gdl/seed1 " in ebp1
    assert "--tau 0.4" in ebp1 and "--balance natural" in ebp1 and "--perturb 0.2" in ebp1
    assert "-m segline.experiments.ebp.train" in ebp1
    assert "--directions 12,10" in ebp1 and "--samples-per-epoch 96" in ebp1
    assert "--pivot-step 3,4,4" in ebp1
    other = make(root, "METHODS=ce ebp", "EBP_ROI=ce", "-n")
    assert "--roi pred:results/spleen-toy/ce " in other.stdout, other.stderr
    oracle = next(ln for ln in lines if "--out results/spleen-toy/seeds/ebp_oracle/seed0 " in ln)
    assert "--roi gt " in oracle
    # the region's training comes first: make orders it before the EBP training
    gdl1 = next(i for i, ln in enumerate(lines)
                if "--out results/spleen-toy/seeds/gdl/seed1 " in ln)  # fmt: skip
    assert gdl1 < lines.index(ebp1)
