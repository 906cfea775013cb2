"""A data set whose labels are all empty: a warning line, then training as usual."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import train_cli
from segline import atomic
from segline.casestore import CaseStore, write_case
from segline.data.foreground import has_foreground, warn_if_no_foreground
from segline.distmaps import write_dist_store
from segline.preprocess.geometry import from_source

SHAPE_XYZ = (24, 20, 6)
SPACING_XYZ = (0.8, 0.8, 5.0)


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Six cases with noise images and all-background labels, and their distance maps."""
    root = tmp_path_factory.mktemp("empty")
    cases = root / "cases"
    ids = [f"e_{i}" for i in range(6)]
    with atomic.atomic_dir(cases) as tmp:
        for i, cid in enumerate(ids):
            img = np.random.default_rng(i).normal(0.2, 0.05, SHAPE_XYZ).astype(np.float32)
            image, label, meta = from_source(
                [img],
                np.zeros(SHAPE_XYZ, np.uint8),
                np.diag([-0.8, -0.8, 5.0, 1.0]),
                SPACING_XYZ,
                case_id=cid,
                channels=["CT"],
            )
            write_case(tmp, cid, image, label, meta)
        atomic.write_json(
            tmp / "dataset.json",
            {"name": "empty", "labels": {"0": "background", "1": "organ"}, "channels": ["CT"]},
        )
        atomic.write_json(
            tmp / "split.json", {"test": ids[:2], "val": ids[2:4], "train": ids[4:], "infer": []}
        )
    write_dist_store(cases, root / "dist")
    return cases, root / "dist"


def test_has_foreground_ignores_background_and_unlabelled() -> None:
    assert not has_foreground(np.zeros((2, 3, 3), np.uint8))
    assert not has_foreground(np.full((2, 3, 3), 255, np.uint8))  # pseudo-label "ignored"
    one = np.zeros((2, 3, 3), np.uint8)
    one[1, 2, 0] = 2
    assert has_foreground(one)


def test_warning_only_when_every_training_label_is_empty(
    empty_store: tuple[Path, Path], store: tuple[Path, Path]
) -> None:
    out = io.StringIO()
    empty = CaseStore(empty_store[0])
    assert warn_if_no_foreground(empty, empty.case_ids("train"), stream=out)
    assert out.getvalue() == (
        f"warning: {empty_store[0]}: every training label is empty (no foreground in 2 "
        "case(s)); training goes on, but the network can only learn background and Dice is "
        "1 on empty cases by convention\n"
    )
    normal = CaseStore(store[0])
    quiet = io.StringIO()
    assert not warn_if_no_foreground(normal, normal.case_ids("train"), stream=quiet)
    assert quiet.getvalue() == ""


def test_distance_maps_of_empty_labels_are_the_absent_class_constant(
    empty_store: tuple[Path, Path],
) -> None:
    cases, dist = empty_store
    d3 = np.load(dist / "e_4" / "dist3d.npy")
    diag = math.sqrt(sum((n * s) ** 2 for n, s in zip(SHAPE_XYZ, SPACING_XYZ, strict=True)))
    assert d3.shape == (2, 6, 20, 24) and np.isfinite(d3).all()
    np.testing.assert_allclose(d3[1], diag, rtol=1e-6)  # organ absent: +D
    np.testing.assert_allclose(d3[0], -diag, rtol=1e-6)  # background fills it: -D
    d2 = np.load(dist / "e_4" / "dist2d.npy")
    assert np.isfinite(d2).all() and (d2[1] > 0).all() and (d2[0] < 0).all()
    assert CaseStore(cases).label("e_4").max() == 0


def test_training_on_empty_labels_warns_and_completes(
    empty_store: tuple[Path, Path], tmp_path: Path
) -> None:
    cases, dist = empty_store
    out = tmp_path / "res"
    proc = train_cli(empty_store, out, "--epochs", "1", "--losses", "gdl:1,boundary:0.01")
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "warning:" in ln]
    assert warnings == [
        f"[res] warning: {cases}: every training label is empty (no foreground in 2 case(s)); "
        "training goes on, but the network can only learn background and Dice is 1 on "
        "empty cases by convention"
    ]
    assert "Traceback" not in proc.stderr
    assert (out / "best_epoch.txt").read_text().strip() == "1"  # epochs count from 1
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["split"]) == {"val", "test"}
    dice = metrics[metrics["metric"] == "dice"]["value"]
    assert len(dice) == 4 and dice.isin([0.0, 1.0]).all()  # empty truth: 1 or 0, never NaN
    epochs = pd.read_csv(out / "epochs.csv")
    assert len(epochs) == 1 and np.isfinite(epochs["tra_loss"]).all()
