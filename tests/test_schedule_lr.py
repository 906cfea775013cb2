"""SCHED / WARMUP / WD / AUG: the LR of each epoch, refusals, and one training with all
of them killed and resumed (same bytes as an uninterrupted run, LRs in epochs.csv,
knobs in args.json, train.log continued)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import train_cli
from segline.errors import InputError
from segline.train.cli import build_parser, check_numbers
from segline.train.schedule import lr_at


def test_lr_curves_against_hand_computed_values() -> None:
    E = 4
    assert [lr_at(e, E, 0.01) for e in range(1, 5)] == [0.01] * 4
    # poly: lr * (1 - (e - 1) / E) ** 0.9
    poly = [lr_at(e, E, 1.0, "poly") for e in range(1, 5)]
    assert poly == pytest.approx([1.0, 0.75**0.9, 0.5**0.9, 0.25**0.9], abs=1e-12)
    assert poly == pytest.approx([1.0, 0.771890, 0.535887, 0.287175], abs=1e-6)
    # cosine: (1 + cos(pi (e - 1) / E)) / 2
    cosine = [lr_at(e, E, 1.0, "cosine") for e in range(1, 5)]
    assert cosine == pytest.approx([1.0, 0.853553, 0.5, 0.146447], abs=1e-6)
    # 2 epochs of warm-up, then cosine over the remaining 4
    warm = [lr_at(e, 6, 0.3, "cosine", warmup=2) for e in range(1, 7)]
    assert warm == pytest.approx([0.1, 0.2, 0.3, 0.256066, 0.15, 0.043934], abs=1e-6)
    assert [lr_at(e, 3, 0.3, "const", warmup=2) for e in (1, 2, 3)] == pytest.approx(
        [0.1, 0.2, 0.3]
    )
    with pytest.raises(ValueError):
        lr_at(1, 2, 0.1, "step")
    with pytest.raises(ValueError):
        lr_at(1, 2, 0.1, "const", warmup=2)


WARMUP_RANGE = "--warmup (WARMUP): must be an integer >= 0 and below the epochs (3)"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--aug", "heavy"], "--aug (AUG): must be one of none, light, strong, got 'heavy'"),
        (["--sched", "step"],
         "--sched (SCHED): must be one of const, poly, cosine, halve, got 'step'"),
        (["--warmup", "two"], "--warmup (WARMUP): must be an integer, got 'two'"),
        (["--warmup", "3"], f"{WARMUP_RANGE}, got 3"),
        (["--warmup", "-1"], f"{WARMUP_RANGE}, got -1"),
        (["--wd", "nan"], "--wd (WD): must be a finite number >= 0, got nan"),
        (["--wd", "-0.1"], "--wd (WD): must be a finite number >= 0, got -0.1"),
        (["--wd", "x"], "--wd (WD): must be a number, got 'x'"),
    ],
)  # fmt: skip
def test_bad_recipe_values_are_refused(extra: list[str], message: str) -> None:
    args = build_parser().parse_args(["--cases", "c", "--dist", "d", "--out", "o",
                                      "--epochs", "3", *extra])  # fmt: skip
    with pytest.raises(InputError) as err:
        check_numbers(args)
    assert str(err.value) == message


def test_bad_recipe_value_is_one_line_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "gdl"
    proc = subprocess.run(
        [sys.executable, "-m", "segline.train", "--cases", "c", "--dist", "d",
         "--out", str(out), "--aug", "heavy"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "segline: --aug (AUG): must be one of none, light, strong, got 'heavy'"
    ]
    assert not out.exists() and not out.with_name("gdl_tmp").exists()


RECIPE = ("--aug", "strong", "--sched", "poly", "--warmup", "1", "--wd", "1e-4",
          "--weight-map", "5,3")  # fmt: skip
SAME = ("metrics.csv", "epochs.csv", "best_epoch.txt", "best.pt", "last.pt", "args.json")


def test_recipe_training_resumes_to_the_same_bytes(store, tmp_path: Path) -> None:
    whole = tmp_path / "whole" / "rec"
    proc = train_cli(store, whole, *RECIPE)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "killed" / "rec"
    killed = train_cli(store, out, *RECIPE, env={"SEGLINE_TEST_KILL_AFTER_EPOCH": "2"})
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "killed" / "rec_tmp" / "train.log").is_file() and not out.exists()
    again = train_cli(store, out, *RECIPE)
    assert again.returncode == 0, again.stderr
    assert "[rec] resuming after epoch 2 (of 3)" in again.stdout
    for name in SAME[:-1]:
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name

    args = json.loads((out / "args.json").read_text())
    assert (args["aug"], args["sched"], args["warmup"], args["wd"]) == ("strong", "poly", 1, 1e-4)
    # the LR each epoch used: lr/2 warm-up, then poly over the 2 remaining epochs
    lrs = pd.read_csv(out / "epochs.csv")["lr"].tolist()
    assert lrs == pytest.approx([0.005, 0.01, 0.01 * 0.5**0.9], rel=1e-5)
    assert not math.isclose(lrs[1], lrs[2])

    # train.log: the console lines of both runs, in order, without bar noise
    log = (out / "train.log").read_text()
    assert "\r" not in log and "it/s" not in log
    lines = log.splitlines()
    assert lines == [ln for ln in (killed.stdout + again.stdout).splitlines() if ln.strip()]
    assert [ln.split()[2] for ln in lines if ln.startswith("[rec] epoch ")] == ["1/3", "2/3", "3/3"]
    assert lines[-1].startswith("[rec] best epoch ") and "results in" in lines[-1]
