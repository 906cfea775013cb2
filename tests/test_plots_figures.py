"""segline.plots.figures: every figure of a run from one process, byte-identical to
the single-figure CLIs (make runs it once per run instead of one process per PNG)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from segline.cli import run
from segline.plots import boxplot, curves, figures, progress
from test_plots import METHODS, dirs, write_method

CURVES = ["val_dice", "val_hd95", "tra_loss", "lr"]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results" / "toy"
    for m, name in enumerate(METHODS):
        folder = write_method(root, name, m)
        epochs = pd.read_csv(folder / "epochs.csv")["epoch"]
        pd.DataFrame(
            {"epoch": epochs, "seconds": 2.0 + m, "train_seconds": 1.0, "load_seconds": 0.1,
             "images": 10}
        ).to_csv(folder / "timing.csv", index=False)  # fmt: skip
    return root


def test_figures_equal_the_single_figure_clis(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    args = ["--out-dir", str(out), "--curves", ",".join(CURVES), "--boxplot", "dice"]
    assert run(figures.main, [*args, "--progress", *dirs(results)]) == 0
    names = sorted(p.name for p in out.iterdir())
    expected = [f"{c}.png" for c in CURVES] + ["test_dice_boxplot.png"]
    expected += [f"progress_{m}.png" for m in METHODS]
    assert names == sorted(expected)
    one = tmp_path / "one"
    one.mkdir()
    # drawn one at a time, in the reverse order, folders reversed too
    for m in reversed(METHODS):
        p = str(one / f"progress_{m}.png")
        assert run(progress.main, ["--out", p, str(results / m)]) == 0
    assert run(boxplot.main, ["--out", str(one / "test_dice_boxplot.png"), *dirs(results)]) == 0
    for c in reversed(CURVES):
        assert (
            run(curves.main, ["--metric", c, "--out", str(one / f"{c}.png"), *dirs(results)[::-1]])
            == 0
        )
    for name in expected:
        assert (out / name).read_bytes() == (one / name).read_bytes(), name


def test_last_figure_equals_a_fresh_process(results: Path, tmp_path: Path) -> None:
    """Nothing drawn earlier in the process leaks into a later figure."""
    out = tmp_path / "all"
    assert (
        run(
            figures.main,
            ["--out-dir", str(out), "--curves", "val_dice,lr", "--progress", *dirs(results)],
        )
        == 0
    )
    last = f"progress_{METHODS[-1]}.png"
    fresh = tmp_path / "fresh.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "segline.plots.progress",
            "--out",
            str(fresh),
            str(results / METHODS[-1]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert fresh.read_bytes() == (out / last).read_bytes()


@pytest.mark.parametrize("bad", ["val_dice,,lr", "val_dice,val_dice", "val_nope"])
def test_bad_curve_list_writes_nothing(results: Path, tmp_path: Path, capsys, bad: str) -> None:
    out = tmp_path / "all"
    rc = (
        run(figures.main, ["--out-dir", str(out), "--curves", bad, *dirs(results)])
        if bad == "val_nope"
        else None
    )
    if bad != "val_nope":
        with pytest.raises(SystemExit) as exc:
            figures.main(["--out-dir", str(out), "--curves", bad, *dirs(results)])
        assert exc.value.code == 2
    else:
        assert rc == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()
