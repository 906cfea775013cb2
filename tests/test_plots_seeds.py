"""Plots with seeds: seed bands, losses relative to epoch 1, the lr / alpha /
epoch-time curves, the per-method progress figure, seeds pooled in the boxplot, the
overlays' lowest seed and slice-Dice label.

Every training folder is written by hand (no training): a few epochs, two validation
cases, numbers chosen so the expected means and sds are simple.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import copy_project, make_env
from segline.casestore import write_case
from segline.cli import run
from segline.pack import manifest_hash, volatile
from segline.plots import boxplot, curves, overlays, progress
from segline.results import group_methods, load_methods
from test_plots import LABELS, png_info, write_method

NAN = math.nan
COLS = ["epoch", "split", "case", "class", "metric", "value"]


def write_run(
    folder: Path,
    *,
    dice: list[tuple[float, float]],
    tra_loss: list[float],
    alpha: list[float] | None = None,
    seconds: list[float] | None = None,
    best: int = 1,
) -> Path:
    """A training folder: one epoch per ``dice`` entry (validation Dice of cases v1, v2),
    ``epochs.csv`` (loss, lr, alpha: empty without a schedule), ``timing.csv``."""
    folder.mkdir(parents=True)
    n = len(dice)
    epochs = list(range(1, n + 1))
    pd.DataFrame({
        "epoch": epochs, "tra_loss": tra_loss, "tra_dice": 0.5,
        "val_loss": [v * 0.9 for v in tra_loss], "val_dice": [sum(d) / 2 for d in dice],
        "val_hd95": 5.0, "val_assd": 1.0,
        "alpha": ["" for _ in epochs] if alpha is None else alpha,
        "lr": [1e-3 * 0.5 ** (e - 1) for e in epochs],
    }).to_csv(folder / "epochs.csv", index=False)  # fmt: skip
    pd.DataFrame({
        "epoch": epochs, "seconds": seconds or [2.0] * n, "train_seconds": 1.0,
        "load_seconds": 0.1, "images": 10,
    }).to_csv(folder / "timing.csv", index=False)  # fmt: skip
    rows = []
    for e, per_case in zip(epochs, dice, strict=True):
        for case, value in zip(("v1", "v2"), per_case, strict=True):
            rows.append((e, "val", case, "background", "dice", 0.99))
            rows.append((e, "val", case, "spleen", "dice", value))
            rows.append((e, "val", case, "spleen", "hd95", 10.0 - e))
    pd.DataFrame(rows, columns=COLS).to_csv(folder / "metrics.csv", index=False)
    (folder / "best_epoch.txt").write_text(f"{best}\n")
    return folder


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """Method ``a`` with seeds 0 and 1 (gdl-like, no schedule), ``b`` with seeds 0 and 1
    (scheduled alpha), under results/toy/seeds/."""
    root = tmp_path / "results" / "toy" / "seeds"
    write_run(root / "a" / "seed0", dice=[(0.2, 0.4), (0.6, 0.8)], tra_loss=[2.0, 1.0],
              seconds=[3.0, 5.0], best=2)  # fmt: skip
    write_run(root / "a" / "seed1", dice=[(0.4, 0.6), (0.6, 0.6)], tra_loss=[4.0, 3.0],
              seconds=[4.0, 6.0], best=2)  # fmt: skip
    write_run(root / "b" / "seed0", dice=[(0.1, 0.1), (0.3, 0.3)], tra_loss=[-2.0, -3.0],
              alpha=[0.01, 0.02], best=1)  # fmt: skip
    write_run(root / "b" / "seed1", dice=[(0.1, 0.3), (0.5, 0.5)], tra_loss=[-1.0, -2.0],
              alpha=[0.01, 0.02], best=2)  # fmt: skip
    return root


def seed_dirs(root: Path) -> list[str]:
    return [str(root / m / f"seed{k}") for m in ("a", "b") for k in (0, 1)]


def capture(monkeypatch: pytest.MonkeyPatch, module) -> list:
    """Replace ``module.save_png`` by a recorder of the figures it gets."""
    figures: list = []
    monkeypatch.setattr(module, "save_png", lambda fig, out: figures.append(fig))
    return figures


# ---- the numbers --------------------------------------------------------------------
def test_seed_series_mean_and_sd_over_seeds_hand_values() -> None:
    a = pd.DataFrame({"epoch": [1, 2], "mean": [0.2, 0.4], "sd": 0.05, "n_cases": 3})
    b = pd.DataFrame({"epoch": [1, 2, 3], "mean": [0.4, 0.8, 0.9], "sd": 0.05, "n_cases": 3})
    s = curves.seed_series([a, b])
    assert s["epoch"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(s["mean"], [0.3, 0.6, 0.9])
    # sample sd of two values = |x - y| / sqrt(2); one seed at epoch 3: no sd
    np.testing.assert_allclose(s["sd"][:2], [0.2 / math.sqrt(2), 0.4 / math.sqrt(2)])
    assert math.isnan(s["sd"][2])
    assert s["n_runs"].tolist() == [2, 2, 1]
    # one training: its own line and sd over cases
    one = curves.seed_series([a])
    assert one["mean"].tolist() == [0.2, 0.4] and one["sd"].tolist() == [0.05, 0.05]


def test_val_dice_with_seeds_is_mean_of_seed_means(seeds: Path) -> None:
    groups = group_methods(load_methods(seed_dirs(seeds)))
    c = curves.group_curve(groups[0], "val_dice")
    # seed0 case means 0.3, 0.7; seed1 0.5, 0.6
    np.testing.assert_allclose(c.series["mean"], [0.4, 0.65])
    np.testing.assert_allclose(c.series["sd"], [0.2 / math.sqrt(2), 0.1 / math.sqrt(2)])
    assert c.series["n_cases"].tolist() == [2, 2]


def test_losses_relative_to_epoch1_hand_values(seeds: Path) -> None:
    a, b = group_methods(load_methods(seed_dirs(seeds)))
    ca = curves.group_curve(a, "tra_loss")
    # seed0 2.0 -> 1.0 (1, 0.5); seed1 4.0 -> 3.0 (1, 0.75)
    np.testing.assert_allclose(ca.series["mean"], [1.0, 0.625])
    np.testing.assert_allclose(ca.series["sd"], [0.0, 0.25 / math.sqrt(2)])
    assert ca.first == (2.0, 4.0)
    cb = curves.group_curve(b, "tra_loss")
    # negative losses keep their direction: -2 -> -3 is (-1, -1.5), -1 -> -2 is (-1, -2)
    np.testing.assert_allclose(cb.series["mean"], [-1.0, -1.75])
    zero = pd.DataFrame({"epoch": [1, 2], "mean": [0.0, 1.0], "sd": NAN})
    rel, first = curves.relative_to_epoch1(zero)
    assert first == 0.0 and rel["mean"].isna().all()


def test_curves_one_line_per_method_with_seed_band(
    seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figs = capture(monkeypatch, curves)
    curves.plot_curves(load_methods(seed_dirs(seeds)), "val_dice", str(tmp_path / "x.png"))
    ax = figs[0].axes[0]
    labelled = [ln for ln in ax.lines if not ln.get_label().startswith("_")]
    assert [ln.get_label() for ln in labelled] == [
        "a (2 seeds, best epochs 2, 2)",
        "b (2 seeds, best epochs 1, 2)",
    ]
    np.testing.assert_allclose(labelled[0].get_ydata(), [0.4, 0.65])
    np.testing.assert_allclose(labelled[1].get_ydata(), [0.15, 0.4])
    assert len(ax.collections) == 2  # one band per method
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    sd1 = 0.2 / math.sqrt(2)
    assert np.isclose(band, 0.4 + sd1).any() and np.isclose(band, 0.4 - sd1).any()
    title = ax.get_title()
    assert "mean over seeds, shaded: ± 1 sd over seeds" in title
    assert "one per seed" in title


def test_curves_one_training_per_method_keeps_case_band(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "results" / "toy"
    write_run(root / "a", dice=[(0.2, 0.4), (0.6, 0.8)], tra_loss=[2.0, 1.0], best=2)
    figs = capture(monkeypatch, curves)
    curves.plot_curves(load_methods([root / "a"]), "val_dice", str(tmp_path / "x.png"))
    ax = figs[0].axes[0]
    assert [ln.get_label() for ln in ax.lines if not ln.get_label().startswith("_")] == [
        "a (best epoch 2)"
    ]
    assert "shaded: ± 1 sd over cases" in ax.get_title() and "seeds" not in ax.get_title()


def test_dashed_best_epoch_has_a_legend_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "results" / "toy"
    folder = write_run(root / "a", dice=[(0.2, 0.4), (0.6, 0.8)], tra_loss=[2.0, 1.0], best=1)
    metrics = pd.read_csv(folder / "metrics.csv")
    metrics.loc[(metrics["metric"] == "hd95") & (metrics["epoch"] == 1), "value"] = NAN
    metrics.to_csv(folder / "metrics.csv", index=False)
    figs = capture(monkeypatch, curves)
    curves.plot_curves(load_methods([folder]), "val_hd95", str(tmp_path / "x.png"))
    legend = [t.get_text() for t in figs[0].axes[0].get_legend().get_texts()]
    assert "dashed: a best epoch where the line is undefined" in legend


# ---- lr, alpha, epoch time ------------------------------------------------------------
@pytest.mark.parametrize("metric", ["lr", "alpha", "epoch_time", "tra_loss"])
def test_new_curves_build_deterministically(seeds: Path, tmp_path: Path, metric: str) -> None:
    out1, out2 = tmp_path / "1.png", tmp_path / "2.png"
    assert run(curves.main, ["--metric", metric, "--out", str(out1), *seed_dirs(seeds)]) == 0
    assert run(curves.main, ["--metric", metric, "--out", str(out2), *seed_dirs(seeds)[::-1]]) == 0
    assert png_info(out1)[1].count(b"tEXt") == 0
    assert out1.read_bytes() == out2.read_bytes()


def test_epoch_time_and_lr_values(seeds: Path) -> None:
    a = group_methods(load_methods(seed_dirs(seeds)))[0]
    t = curves.group_curve(a, "epoch_time").series
    np.testing.assert_allclose(t["mean"], [3.5, 5.5])  # timing.csv seconds (3, 5), (4, 6)
    lr = curves.group_curve(a, "lr").series
    np.testing.assert_allclose(lr["mean"], [1e-3, 5e-4])
    assert (lr["sd"] == 0).all()


def test_alpha_without_schedule_is_listed_not_drawn(
    seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figs = capture(monkeypatch, curves)
    curves.plot_curves(load_methods(seed_dirs(seeds)), "alpha", str(tmp_path / "x.png"))
    ax = figs[0].axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "a: no loss schedule (alpha empty), not drawn",
        "b (2 seeds, best epochs 1, 2)",
    ]
    drawn = [ln for ln in ax.lines if len(ln.get_xdata())]
    np.testing.assert_allclose(drawn[0].get_ydata(), [0.01, 0.02])
    # no method with a schedule at all: still a figure
    monkeypatch.undo()
    only_a = [str(seeds / "a" / "seed0"), str(seeds / "a" / "seed1")]
    assert run(curves.main, ["--metric", "alpha", "--out", str(tmp_path / "a.png"), *only_a]) == 0
    assert png_info(tmp_path / "a.png")[0][0] > 0


def test_wall_time_plots_left_out_of_the_content_hash() -> None:
    assert volatile("epoch_time.png") and volatile("progress_gdl_boundary.png")
    assert not volatile("val_dice.png") and not volatile("progress.txt")
    base = [("val_dice.png", "1" * 64)]
    timed = [("epoch_time.png", "2" * 64), ("progress_gdl.png", "3" * 64), ("g/timing.csv", "4")]
    assert manifest_hash(base + timed) == manifest_hash(base)


# ---- progress figure ------------------------------------------------------------------
@pytest.mark.parametrize("n_seeds", [1, 2])
def test_progress_figure_one_and_two_seeds(
    seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_seeds: int
) -> None:
    dirs = [str(seeds / "b" / f"seed{k}") for k in range(n_seeds)]
    out = tmp_path / "progress_b.png"
    assert run(progress.main, ["--out", str(out), *dirs]) == 0
    size, chunks = png_info(out)
    assert size == (800, 1100) and b"tEXt" not in chunks
    again = tmp_path / "again.png"
    assert run(progress.main, ["--out", str(again), *dirs[::-1]]) == 0
    assert again.read_bytes() == out.read_bytes()
    figs = capture(monkeypatch, progress)
    progress.plot_progress(group_methods(load_methods(dirs))[0], str(out))
    fig = figs[0]
    main_axes = [ax for ax in fig.axes if ax.get_title()]  # not the right-hand twins
    assert [ax.get_title() for ax in main_axes] == [p.title for p in progress.PANELS]
    loss = main_axes[0]
    # two seeds: a thin line per seed and a thick mean, for each of the two losses
    drawn = [ln for ln in loss.lines if ln.get_linestyle() != ":"]  # not the best epochs
    assert len(drawn) == 2 * (n_seeds + (n_seeds > 1))
    mean = [ln for ln in loss.lines if ln.get_label().startswith("training loss")][0]
    np.testing.assert_allclose(mean.get_ydata(), [-2.0, -3.0] if n_seeds == 1 else [-1.5, -2.5])
    assert ("thin lines each seed" in fig.get_suptitle()) == (n_seeds == 2)


def test_progress_notes_missing_schedule_and_refuses_two_methods(
    seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    figs = capture(monkeypatch, progress)
    progress.plot_progress(
        group_methods(load_methods([seeds / "a" / "seed0"]))[0], str(tmp_path / "p.png")
    )
    titles = [ax.get_title() for ax in figs[0].axes if ax.get_title()]
    assert "learning rate and loss weight α (no loss schedule: alpha empty)" in titles
    both = [str(seeds / "a" / "seed0"), str(seeds / "b" / "seed0")]
    assert run(progress.main, ["--out", str(tmp_path / "q.png"), *both]) == 2
    assert "one method per progress figure; got a, b" in capsys.readouterr().err
    assert not (tmp_path / "q.png").exists()


# ---- boxplot and overlays with seeds ------------------------------------------------------
@pytest.fixture
def seeded_methods(tmp_path: Path) -> Path:
    """test_plots' method folders as seeds: ``dice`` seeds 0 and 1, ``focal`` seed 0."""
    root = tmp_path / "results" / "toy" / "seeds"
    write_method(root / "dice", "seed0", 0)
    write_method(root / "dice", "seed1", 1)
    write_method(root / "focal", "seed0", 2)
    return root


def seeded_dirs(root: Path) -> list[str]:
    return [str(root / "dice/seed1"), str(root / "dice/seed0"), str(root / "focal/seed0")]


def test_boxplot_pools_seeds_per_case(
    seeded_methods: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = load_methods(seeded_dirs(seeded_methods))
    classes, values = boxplot.case_values(runs, "dice")
    # test Dice 0.6 + 0.1 c - 0.05 m: seed0 (m=0) and seed1 (m=1) averaged per case
    np.testing.assert_allclose(values["spleen"]["dice"], [0.575, 0.675, 0.775])
    np.testing.assert_allclose(values["spleen"]["focal"], [0.5, 0.6, 0.7])
    _, hd = boxplot.case_values(runs, "hd95")
    # seed0's third case is undefined: the pooled value is too (never averaged away)
    np.testing.assert_allclose(hd["spleen"]["dice"], [3.5, 4.5, NAN])
    figs = capture(monkeypatch, boxplot)
    boxplot.plot_boxes(runs, "dice", str(tmp_path / "b.png"))
    title = figs[0].get_suptitle()
    assert "per case: mean over the method's 1–2 seeds\n" in title
    ticks = [t.get_text() for t in figs[0].axes[0].get_xticklabels()]
    assert ticks == ["dice\nn=3", "focal\nn=3"]


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    """A case store with the test cases of test_plots' predictions."""
    root = tmp_path / "data" / "toy" / "cases"
    rng = np.random.default_rng(0)
    for case, lab in LABELS.items():
        image = rng.random((1, *lab.shape), dtype=np.float32) * 0.3 + 0.6 * (lab > 0)
        write_case(root, case, image, lab, {"case_id": case, "spacing": [2.0, 0.8, 0.8]})
    (root / "split.json").write_text(json.dumps({"train": [], "val": [], "test": sorted(LABELS)}))
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "organ"}}))
    return root


def test_overlays_lowest_seed_and_slice_dice_label(
    seeded_methods: Path, cases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert overlays.slice_dice_text(0.8512) == "slice Dice 0.85"
    figs = capture(monkeypatch, overlays)
    runs = load_methods(seeded_dirs(seeded_methods))
    overlays.plot_overlays(overlays.CaseStore(cases), runs, str(tmp_path / "o.png"), n=1)
    fig = figs[0]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["image", "ground truth", "dice (seed 0)", "focal (seed 0)"]
    corner = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(corner) == 2 and all(t.startswith("slice Dice ") for t in corner)
    assert "each method's lowest seed" in fig.get_suptitle()
    assert "slice Dice (of the shown slice)" in fig.get_suptitle()


# ---- make: one progress figure per method, from its seed folders ----------------------------
@pytest.mark.make
def test_make_plans_progress_per_method_from_its_seed_folders(tmp_path: Path) -> None:
    """One figures process (segline.plots.figures) draws the curves and a progress
    figure per method, from every seed folder of every method."""
    root = copy_project(tmp_path / "p")
    res = "results/spleen-toy/seeds"
    cmd = ["make", "-n", "--no-print-directory", "-f", "spleen.make", "TOY=1", "SEEDS=0 1",
           "METHODS=gdl gdl_boundary", f"{res}/progress_gdl.png", "plots"]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=root, env=make_env(), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if "segline.plots.figures" in ln]
    assert len(lines) == 1, lines
    folders = " ".join(f"{res}/{m}/seed{k}" for m in ("gdl", "gdl_boundary") for k in (0, 1))
    evals = " ".join(
        f"--eval {res}/eval/{m}/seed{k}" for m in ("gdl", "gdl_boundary") for k in (0, 1)
    )
    # the test box plot reads each training's evaluation folder (source geometry)
    assert lines[0].endswith(f"--progress {folders} {evals}"), lines[0]
    assert f"--out-dir {res} " in lines[0]
    for name in ("lr", "alpha", "epoch_time"):
        assert name in lines[0].split("--curves ", 1)[1].split()[0].split(",")
