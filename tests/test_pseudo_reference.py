"""The reference's pseudo-label rules (``--rules reference``, make ``PSEUDO=reference``)
against segline's, on a hand-made volume whose two results are worked out by hand;
their record in pseudo.json and the CLI's refusal of the segline-only options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segline import atomic, casestore
from segline.experiments.vessels import mip as mipmod
from segline.experiments.vessels.pseudo import (
    BG,
    FG,
    IGNORE,
    PseudoParams,
    ReferenceParams,
    pseudo_label,
    pseudo_label_reference,
    write_pseudo_store,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "preprocess" / "pseudo.py"
SHAPE = (3, 3, 10)  # (Z, Y, X); projection along z


def hand_made(attachment: int = 5) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(volume, 2D label, named voxel sets).

    Base value 0.1. The vessel ("tube") runs along x at z=1, y=1: 1.1 at x<5, 0.9 at
    x>=5, so the seed mean is exactly 1.0 (1.1f + 0.9f = 2 in float32). "attach"
    (1.1) lies beside the bright half of the tube at z=1, y=2, x<``attachment``: off
    the labelled rays, face-connected to the tube. "lone" is a 0.8 voxel on an
    unlabelled ray. The 2D label is the projection of the tube (row y=1).
    """
    vol = np.full(SHAPE, 0.1, np.float32)
    sets = {k: np.zeros(SHAPE, bool) for k in ("tube", "attach", "lone")}
    sets["tube"][1, 1, :] = True
    sets["attach"][1, 2, :attachment] = True
    sets["lone"][0, 0, 7] = True
    vol[1, 1, :5], vol[1, 1, 5:] = 1.1, 0.9
    vol[sets["attach"]] = 1.1
    vol[sets["lone"]] = 0.8
    lab2d = np.zeros(SHAPE[1:], np.uint8)
    lab2d[1, :] = 1
    return vol, lab2d, sets


def _labels(vol: np.ndarray, lab2d: np.ndarray, rules: str) -> np.ndarray:
    _, depth = mipmod.mip_and_depth(vol, 0)
    if rules == "reference":
        return pseudo_label_reference(vol, lab2d, depth, 0).label
    return pseudo_label(vol, lab2d, depth, 0, PseudoParams()).label


def test_the_two_rule_sets_on_the_hand_made_volume() -> None:
    vol, lab2d, s = hand_made()
    labelled_rays = np.zeros(SHAPE, bool)
    labelled_rays[:, 1, :] = True
    dark = vol == np.float32(0.1)
    ref = pseudo_label_reference(vol, lab2d, mipmod.mip_and_depth(vol, 0)[1], 0)
    assert ref.seed_mean == 1.0 and ref.n_seeds == 10
    assert ref.fg_threshold == 1.0 and ref.bg_threshold == pytest.approx(1.2)
    # reference: I > 1.0 over the whole volume = tube x<5 + attach (one component of
    # 10 voxels with seeds: kept); the 0.9 half of the tube is foreground as seeds
    want = np.full(SHAPE, IGNORE, np.uint8)
    want[~labelled_rays] = BG  # unlabelled rays: every value <= 1.2 (attach, lone, base)
    want[labelled_rays & dark] = BG  # I < 0.2 anywhere, labelled rays included
    want[s["tube"] | s["attach"]] = FG  # foreground wins over the 1.2 rule on attach
    np.testing.assert_array_equal(ref.label, want)
    assert (np.count_nonzero(ref.label == FG), np.count_nonzero(ref.label == BG)) == (15, 75)
    assert ref.n_components == 1 and ref.n_kept == 1
    # segline: candidates I >= 0.7 on the labelled rays only: the tube (10 voxels,
    # min_size 10); background: unlabelled rays with I <= 0.5 (not attach, not lone);
    # the dark voxels of the labelled rays stay unlabelled
    seg = _labels(vol, lab2d, "segline")
    want = np.full(SHAPE, IGNORE, np.uint8)
    want[~labelled_rays & dark] = BG
    want[s["tube"]] = FG
    np.testing.assert_array_equal(seg, want)
    assert (np.count_nonzero(seg == FG), np.count_nonzero(seg == BG),
            np.count_nonzero(seg == IGNORE)) == (10, 54, 26)


def test_reference_drops_a_component_of_nine() -> None:
    """Attach of 4 voxels: the component above 1.0 has 9 voxels (< 10) and goes; the
    seeds stay foreground and attach, on unlabelled rays at 1.1 <= 1.2, is background."""
    vol, lab2d, s = hand_made(attachment=4)
    ref = pseudo_label_reference(vol, lab2d, mipmod.mip_and_depth(vol, 0)[1], 0)
    assert ref.n_components == 1 and ref.n_kept == 0
    np.testing.assert_array_equal(ref.label == FG, s["tube"])
    assert np.all(ref.label[s["attach"]] == BG) and np.all(ref.label[s["lone"]] == BG)
    assert np.count_nonzero(ref.label == IGNORE) == 0


def test_reference_seeds_darker_than_the_low_rule_stay_foreground() -> None:
    """A seed darker than 0.2 s meets the background rule and stays foreground."""
    vol = np.zeros((2, 1, 3), np.float32)
    vol[1, 0, :] = (1.0, 1.0, 0.1)  # seeds: mean 0.7, 0.2 s = 0.14 > 0.1
    lab2d = np.ones((1, 3), np.uint8)
    res = pseudo_label_reference(vol, lab2d, mipmod.mip_and_depth(vol, 0)[1], 0)
    assert res.label[:, 0, :].tolist() == [[BG, BG, BG], [FG, FG, FG]]
    empty = pseudo_label_reference(vol, np.zeros((1, 3), np.uint8),
                                   np.zeros((1, 3), np.int16), 0)
    assert np.all(empty.label == BG) and empty.n_seeds == 0


def _store(root: Path) -> tuple[Path, Path]:
    """A one-case store holding the hand-made volume, and its MIP store."""
    vol, lab2d, s = hand_made()
    with atomic.atomic_dir(root / "cases") as tmp:
        casestore.write_case(tmp, "v_1", vol[None], s["tube"].astype(np.uint8),
                             {"case_id": "v_1", "spacing": [2.5, 0.8, 0.75]})
        atomic.write_json(tmp / "dataset.json", {"labels": {"0": "background", "1": "Vessel"},
                                                 "channels": ["CT"]})
        atomic.write_json(tmp / "split.json", {"train": ["v_1"], "val": [], "test": [],
                                               "infer": []})
    mipmod.write_mip_store(root / "cases", root / "mip")
    np.testing.assert_array_equal(np.load(root / "mip" / "v_1" / mipmod.MIP_LABEL), lab2d)
    return root / "cases", root / "mip"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_store_records_the_rules_and_cli(tmp_path: Path) -> None:
    cases, mip = _store(tmp_path)
    frame = write_pseudo_store(cases, mip, tmp_path / "ref", ReferenceParams())
    info = json.loads((tmp_path / "ref" / "pseudo.json").read_text())
    assert info["rules"] == "reference"
    assert info["params"] == {"fg_rel": 1.0, "min_size": 10, "bg_high": 1.2, "bg_low": 0.2,
                              "connectivity": 26}
    assert "I < bg_low*s" in info["convention"]
    row = frame.iloc[0]
    assert (row["n_fg"], row["n_bg"], row["fg_tp"]) == (15, 75, 10)
    assert row["fg_precision"] == pytest.approx(10 / 15) and row["fg_recall"] == 1.0
    seg = write_pseudo_store(cases, mip, tmp_path / "seg").iloc[0]
    assert json.loads((tmp_path / "seg" / "pseudo.json").read_text())["rules"] == "segline"
    assert (seg["n_fg"], seg["n_bg"], seg["fg_precision"]) == (10, 54, 1.0)

    res = _run("--cases", str(cases), "--mip", str(mip), "--out", str(tmp_path / "cli"),
               "--rules", "reference")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "cli" / "v_1" / "pseudo.npy").read_bytes() == (
        tmp_path / "ref" / "v_1" / "pseudo.npy").read_bytes()
    res = _run("--cases", str(cases), "--mip", str(mip), "--out", str(tmp_path / "bad"),
               "--rules", "reference", "--fg-rel", "0.6")
    assert res.returncode == 2 and not (tmp_path / "bad").exists()
    assert res.stderr.count("\n") == 1 and "--fg-rel" in res.stderr
