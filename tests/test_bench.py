"""The benchmark scripts run (bench/ is not a test of speed; this checks they work)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_make import stage_group, stage_table  # noqa: E402


def test_bench_gpu_smoke_on_the_cpu() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench_gpu.py"),
            "--device",
            "cpu",
            "--size",
            "32",
            "--nets",
            "Dimwit",
            "--skip-pipelines",
            "--steps",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["net"])
    row = lines[header + 1].split()
    assert row[0] == "Dimwit"
    pure, trainer, share, loader = (float(v) for v in row[1:5])
    assert pure > 0 and trainer > 0 and loader >= 0
    # the printed share comes from the unrounded rates, each printed to 0.1: bound it
    lo, hi = 100 * (trainer - 0.05) / (pure + 0.05), 100 * (trainer + 0.05) / (pure - 0.05)
    assert lo - 0.05 <= share <= hi + 0.05, (share, lo, hi)


def test_stage_groups_and_table() -> None:
    assert stage_group("data/spleen-toy.tar") == "toy archive"
    assert stage_group("data/spleen-toy/dist") == "distmaps"
    assert stage_group("data/vessels-toy/mip") == "data: mip"
    assert stage_group("results/spleen-toy/gdl") == "train gdl"
    assert stage_group("results/spleen-toy/val_dice.png") == "plots"
    assert stage_group("results/spleen-toy/report.md results/spleen-toy/report.csv") == "report"
    assert stage_group("archives/spleen-toy-latest.txt") == "pack"
    rows = dict(
        stage_table(
            10.0,
            [("results/x/gdl", 4.0), ("results/x/a.png", 1.0), ("results/x/b.png", 2.0), ("", 0.5)],
        )
    )
    assert rows == {"train gdl": 4.0, "plots": 3.0, "make itself": 3.0}
