"""Tests for segline.experiments.vessels.pseudo and preprocess/pseudo.py: the
pseudo-label rules on a hand-made vessel tree (exact voxel sets), connectivity, quality
numbers, and the store and CLI on the toy hepatic-vessel set."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segline.casestore import CaseStore
from segline.datasets.msd import MSDAdapter
from segline.datasets.toy_vessels import write_toy_archives
from segline.distmaps import volume_signed_distance
from segline.errors import InputError
from segline.experiments.vessels import mip as mipmod
from segline.experiments.vessels.pseudo import (
    IGNORE,
    OVERALL,
    PSEUDO,
    PSEUDO_DIST,
    QUALITY_COLUMNS,
    PseudoParams,
    pseudo_label,
    quality,
    quality_frame,
    quality_markdown,
    rays,
    seed_mask,
    write_pseudo_store,
)
from segline.lineage.extract import extract_archives
from segline.preprocess.slicing import SliceParams, slice_dataset

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "preprocess" / "pseudo.py"
MIP_SCRIPT = REPO / "preprocess" / "mip.py"
SHAPE = (8, 12, 16)  # (Z, Y, X)


# ------------------------------------------------------------- the hand-made tree


def hand_made() -> dict[str, np.ndarray]:
    """A dark, noisy volume with a bright tube and a branch (the true vessel), and
    distractors. Returns the volume, the true vessel mask and named voxel sets."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    vol = (0.05 + 0.2 * ((z * 7 + y * 13 + x * 29) % 11) / 10.0).astype(np.float32)  # <= 0.25
    sets = {k: np.zeros(SHAPE, bool) for k in ("tube", "branch", "small", "rim", "blob")}
    sets["tube"][3, 4, 2:14] = True  # 12 voxels along x, value 1.0
    sets["branch"][3, 5:10, 8] = True  # 5 voxels along y, face-connected, 0.9
    sets["small"][1, 10, 14:16] = True  # a 2-voxel vessel: smaller than min_size 3
    sets["rim"][2, 4, 5] = True  # partial volume next to the tube, above threshold
    sets["blob"][6, 4, 3:6] = True  # bright, behind the tube, not touching any seed
    vol[sets["tube"]] = 1.0
    vol[sets["branch"]] = 0.9
    vol[sets["small"]] = 1.0
    vol[sets["rim"]] = 0.75
    vol[sets["blob"]] = 0.8
    vol[5, 0, 0] = 0.6  # on an unlabelled ray, brighter than bg_factor * s
    vol[2, 0, 1] = 0.45  # on an unlabelled ray, darker than bg_factor * s
    truth = sets["tube"] | sets["branch"] | sets["small"]
    return {"volume": vol, "truth": truth, **sets}


PARAMS = PseudoParams(fg_rel=0.7, bg_factor=0.5, min_size=3, connectivity=26)


def _run_hand_made(axis: int = 0) -> tuple[dict[str, np.ndarray], object]:
    case = hand_made()
    vol = np.moveaxis(case["volume"], 0, axis)
    truth = np.moveaxis(case["truth"], 0, axis)
    lab2d = mipmod.project_labels(truth.astype(np.uint8), axis)
    _, depth = mipmod.mip_and_depth(vol, axis)
    return case, pseudo_label(vol, lab2d, depth, axis, PARAMS)


def _expected(case: dict[str, np.ndarray]) -> np.ndarray:
    labelled_rays = rays(case["truth"].any(axis=0), 0, SHAPE)
    out = np.full(SHAPE, IGNORE, np.uint8)
    bg = ~labelled_rays
    bg[5, 0, 0] = False
    out[bg] = 0
    out[case["tube"] | case["branch"] | case["rim"]] = 1
    return out


def test_seeds_at_argmax_depths() -> None:
    case = hand_made()
    lab2d = case["truth"].any(axis=0)
    _, depth = mipmod.mip_and_depth(case["volume"], 0)
    seeds = seed_mask(lab2d, depth, 0, SHAPE)
    assert int(seeds.sum()) == int(lab2d.sum()) == 19
    expected = np.zeros(SHAPE, bool)
    expected[3][lab2d & ~case["small"].any(axis=0)] = True  # tube and branch rays: z = 3
    expected[1, 10, 14:16] = True  # the small vessel's rays: z = 1
    np.testing.assert_array_equal(seeds, expected)
    with pytest.raises(ValueError):
        seed_mask(lab2d[:, :3], depth[:, :3], 0, SHAPE)


def test_pseudo_label_rules_exact_sets() -> None:
    case, res = _run_hand_made(0)
    assert res.label.dtype == np.uint8 and res.label.shape == SHAPE
    s = (12 * 1.0 + 5 * np.float32(0.9) + 2 * 1.0) / 19
    assert res.n_seeds == 19
    assert res.seed_mean == pytest.approx(s, rel=1e-7)
    assert res.fg_threshold == pytest.approx(0.7 * s) and res.bg_threshold == pytest.approx(0.5 * s)
    np.testing.assert_array_equal(res.label, _expected(case))
    # named rules, spelled out
    assert np.all(res.label[case["tube"] | case["branch"]] == 1)  # component with seeds
    assert res.label[2, 4, 5] == 1  # above threshold, connected: included (not true vessel)
    assert np.all(res.label[case["blob"]] == IGNORE)  # no seed in its component
    assert np.all(res.label[case["small"]] == IGNORE)  # seeds, but 2 < min_size voxels
    assert res.label[5, 0, 0] == IGNORE and res.label[2, 0, 1] == 0  # bright / dark on bg rays
    # candidate components: tube+branch+rim, blob, small
    assert (res.n_components, res.n_kept) == (3, 1)


@pytest.mark.parametrize("axis", [1, 2])
def test_other_axes_give_the_transposed_result(axis: int) -> None:
    case, res = _run_hand_made(axis)
    np.testing.assert_array_equal(res.label, np.moveaxis(_expected(case), 0, axis))


def test_min_size_and_connectivity() -> None:
    # (Z, Y, X) = (4, 1, 3): A (z0, x0) = 1 is a seed; B (z1, x1) = 0.8 touches A only
    # diagonally and is not the brightest voxel of its ray (C at z3 is).
    vol = np.zeros((4, 1, 3), np.float32)
    vol[0, 0, 0] = 1.0
    vol[1, 0, 1] = 0.8
    vol[3, 0, 1] = 1.0
    lab2d = np.array([[1, 1, 0]], np.uint8)
    _, depth = mipmod.mip_and_depth(vol, 0)
    assert depth.tolist() == [[0, 3, 0]]
    r26 = pseudo_label(vol, lab2d, depth, 0, PseudoParams(min_size=1, connectivity=26))
    r6 = pseudo_label(vol, lab2d, depth, 0, PseudoParams(min_size=1, connectivity=6))
    assert r26.label[:, 0, 1].tolist() == [IGNORE, 1, IGNORE, 1]
    assert r6.label[:, 0, 1].tolist() == [IGNORE, IGNORE, IGNORE, 1]
    assert r26.label[:, 0, 0].tolist() == r6.label[:, 0, 0].tolist() == [1] + [IGNORE] * 3
    assert r26.label[:, 0, 2].tolist() == [0, 0, 0, 0]
    # min_size 2: the isolated C goes (26: A+B survives), 6: nothing survives
    r26 = pseudo_label(vol, lab2d, depth, 0, PseudoParams(min_size=2, connectivity=26))
    r6 = pseudo_label(vol, lab2d, depth, 0, PseudoParams(min_size=2, connectivity=6))
    assert np.argwhere(r26.label == 1).tolist() == [[0, 0, 0], [1, 0, 1]]
    assert not (r6.label == 1).any()


def test_empty_annotation_and_other_values() -> None:
    case = hand_made()
    vol = case["volume"]
    _, depth = mipmod.mip_and_depth(vol, 0)
    res = pseudo_label(vol, np.zeros(SHAPE[1:], np.uint8), depth, 0, PARAMS)
    assert np.all(res.label == 0) and res.n_seeds == 0
    assert math.isnan(res.seed_mean) and math.isnan(res.fg_threshold)
    lab2d = case["truth"].any(axis=0).astype(np.uint8)
    lab2d[0, 0] = 2  # neither vessel nor "no vessel": its ray is left unlabelled
    res = pseudo_label(vol, lab2d, depth, 0, PARAMS)
    assert np.all(res.label[:, 0, 0] == IGNORE)
    assert np.all(res.label[:, 0, 2] == 0)


def test_params_validation() -> None:
    for bad in ({"fg_rel": 0.0}, {"fg_rel": float("nan")}, {"bg_factor": -0.1},
                {"min_size": 0}, {"min_size": 2.5}, {"connectivity": 18}):
        with pytest.raises(ValueError):
            PseudoParams(**bad)


# ------------------------------------------------------------------------ quality


def test_quality_on_the_hand_made_case() -> None:
    case, res = _run_hand_made(0)
    q = quality(res.label, case["truth"].astype(np.uint8))
    n = 8 * 12 * 16
    assert q["n_voxels"] == n and q["n_true"] == 19
    assert (q["n_fg"], q["fg_tp"]) == (18, 17)  # tube 12 + branch 5 + rim 1; rim is false
    bg_voxels = (12 * 16 - 19) * 8 - 1  # unlabelled rays, minus the bright voxel
    assert (q["n_bg"], q["bg_tp"]) == (bg_voxels, bg_voxels)
    assert q["n_unlabelled"] == n - 18 - bg_voxels
    assert q["fg_precision"] == 17 / 18 and q["fg_recall"] == 17 / 19
    assert q["bg_precision"] == 1.0 and q["bg_recall"] == bg_voxels / (n - 19)
    assert q["unlabelled_fraction"] == (n - 18 - bg_voxels) / n


def test_quality_frame_pools_counts() -> None:
    a = {"case": "a", "split": "train", **quality(np.array([1, 1, 0, 255], np.uint8),
                                                  np.array([1, 0, 0, 1]))}
    b = {"case": "b", "split": "test", **quality(np.array([255, 0, 0, 0], np.uint8),
                                                 np.array([0, 0, 0, 0]))}
    assert math.isnan(b["fg_precision"]) and math.isnan(b["fg_recall"])
    frame = quality_frame([a, b])
    assert list(frame.columns) == list(QUALITY_COLUMNS)
    assert frame["case"].tolist() == ["a", "b", OVERALL]
    pooled = frame.iloc[-1]
    assert pooled["n_voxels"] == 8 and pooled["n_fg"] == 2 and pooled["fg_tp"] == 1
    assert pooled["fg_precision"] == 0.5 and pooled["fg_recall"] == 0.5
    assert pooled["bg_precision"] == 1.0 and pooled["bg_recall"] == 4 / 6
    assert pooled["unlabelled_fraction"] == 2 / 8 and math.isnan(pooled["seed_mean"])
    md = quality_markdown(frame)
    assert md.splitlines()[0].startswith("| case | split | fg_precision | fg_recall |")
    assert "| all | all | 0.500 | 0.500 | 1.000 | 0.667 | 0.250 | 2 | 2 |" in md
    with pytest.raises(ValueError):
        quality(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))


# ------------------------------------------------------------- store and CLI (toy)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _run(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          cwd=cwd, env=_env(), timeout=300)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy vessel set unpacked, sliced (vessel window 120,280, tumour -> background)
    and projected by the MIP CLI with the pipeline's occluder removal (400 HU: the bone
    bar): ``<root>/cases``, ``<root>/mip``."""
    root = tmp_path_factory.mktemp("vessels-toy")
    write_toy_archives([root / "vessels-toy.tar"])
    extract_archives([root / "vessels-toy.tar"], root / "raw")
    params = SliceParams(window=(120.0, 280.0), label_map={2: 0}, n_test=3, n_val=2)
    slice_dataset(MSDAdapter(root / "raw"), root / "cases", params)
    res = _run(MIP_SCRIPT, "--cases", "cases", "--out", "mip", "--raw", "raw",
               "--occluder-hu", "400", cwd=root)
    assert res.returncode == 0, res.stderr
    return root


def test_cli_on_the_toy(toy: Path) -> None:
    res = _run(SCRIPT, "--cases", "cases", "--mip", "mip", "--out", "pseudo", cwd=toy)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.splitlines()[0].startswith("| case | split | fg_precision")
    assert res.stdout.splitlines()[-1].startswith("pseudo: 12 cases, fg precision ")
    out = toy / "pseudo"
    assert not (toy / "pseudo_tmp").exists()
    store = CaseStore(toy / "cases")
    labelled = [c for c in store.case_ids() if store.has_label(c)]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*labelled, "pseudo.json", "quality.csv", "quality.md"])
    info = json.loads((out / "pseudo.json").read_text())
    assert info["ignore_value"] == 255 and info["axis"] == 0
    assert info["params"] == {"fg_rel": 0.7, "bg_factor": 0.5, "min_size": 10,
                              "connectivity": 26}
    assert info["skipped_unlabelled"] == ["hepaticvessel_003", "hepaticvessel_006"]
    frame = pd.read_csv(out / "quality.csv")
    assert list(frame.columns) == list(QUALITY_COLUMNS)
    assert frame["case"].tolist() == [*labelled, OVERALL]
    assert set(frame["split"]) == {"train", "val", "test", OVERALL}
    pooled = frame.iloc[-1]
    assert pooled["fg_precision"] > 0.9 and pooled["fg_recall"] > 0.98
    assert pooled["bg_precision"] > 0.999 and 0.1 < pooled["unlabelled_fraction"] < 0.4
    assert (out / "quality.md").read_text() == quality_markdown(
        pd.read_csv(out / "quality.csv"))
    case = labelled[0]
    pl = np.load(out / case / PSEUDO)
    dist = np.load(out / case / PSEUDO_DIST)
    shape = store.label(case).shape
    assert pl.dtype == np.uint8 and pl.shape == shape
    assert set(np.unique(pl).tolist()) == {0, 1, IGNORE}
    assert dist.dtype == np.float32 and dist.shape == (2, *shape)
    ref = volume_signed_distance((pl == 1).astype(np.uint8), 2, store.meta(case)["spacing"])
    np.testing.assert_array_equal(dist, ref)
    assert np.all((dist[1] < 0) == (pl == 1))
    # the pseudo-label never contradicts the 2D annotation
    lab2d = np.load(toy / "mip" / case / "mip_label.npy")
    assert not (pl == 1).any(axis=0)[lab2d == 0].any()
    assert np.all(pl[:, lab2d == 0] != 1)


def test_jobs_give_identical_store(toy: Path, tmp_path: Path) -> None:
    params = PseudoParams(fg_rel=0.6, min_size=5, connectivity=6)
    one = write_pseudo_store(toy / "cases", toy / "mip", tmp_path / "one", params, jobs=1)
    two = write_pseudo_store(toy / "cases", toy / "mip", tmp_path / "two", params, jobs=2)
    pd.testing.assert_frame_equal(one, two)
    for name in ("quality.csv", "pseudo.json", "hepaticvessel_008/pseudo.npy"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_cli_errors_one_line_nothing_written(toy: Path, tmp_path: Path) -> None:
    res = _run(SCRIPT, "--cases", "nowhere", "--mip", str(toy / "mip"), "--out", "p",
               cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == ("segline: nowhere: not a case store (split.json missing); "
                          "run the slicing stage\n")
    res = _run(SCRIPT, "--cases", str(toy / "cases"), "--mip", "nomip", "--out", "p",
               cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == "segline: nomip/mip.json: missing; run the MIP stage first\n"
    res = _run(SCRIPT, "--cases", str(toy / "cases"), "--mip", str(toy / "mip"), "--out", "p",
               "--fg-rel", "0", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "fg_rel must be finite and > 0" in res.stderr
    res = _run(SCRIPT, "--cases", "c", "--mip", "m", "--out", "p", "--min-size", "x",
               cwd=tmp_path)
    assert res.returncode == 2 and "--min-size" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_mip_label_names_the_file(toy: Path, tmp_path: Path) -> None:
    mip = tmp_path / "mip"
    shutil.copytree(toy / "mip", mip)
    (mip / "hepaticvessel_010" / "mip_label.npy").unlink()
    with pytest.raises(InputError, match="hepaticvessel_010/mip_label.npy: missing"):
        write_pseudo_store(toy / "cases", mip, tmp_path / "pseudo")
    assert not (tmp_path / "pseudo").exists() and not (tmp_path / "pseudo_tmp").exists()
    (mip / "hepaticvessel_010").rename(tmp_path / "elsewhere")
    np.save(mip / "hepaticvessel_001" / "depth.npy", np.zeros((3, 3), np.int16))
    with pytest.raises(InputError, match="hepaticvessel_001: 2D shapes"):
        write_pseudo_store(toy / "cases", mip, tmp_path / "pseudo")
