"""Tests for segline.experiments.vessels.mip and preprocess/mip.py: projections, argmax
depths (first index on ties), gathering at depths, projected labels, and the atomic MIP
store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segline import atomic, casestore
from segline.errors import InputError
from segline.experiments.vessels.mip import (
    DEPTH,
    MIP,
    MIP_LABEL,
    STORE_JSON,
    case_mip,
    check_axis,
    mip_and_depth,
    project_labels,
    read_mip_json,
    values_at_depth,
    write_mip_store,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "preprocess" / "mip.py"


def _distinct_volume(shape: tuple[int, ...]) -> np.ndarray:
    """float32 volume whose values are a fixed permutation of 0..N-1 (no ties)."""
    n = int(np.prod(shape))
    perm = (np.arange(n, dtype=np.int64) * 7919) % n  # 7919 is prime, coprime with n here
    assert len(set(perm.tolist())) == n
    return perm.reshape(shape).astype(np.float32)


def _loop_projection(vol: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference MIP and first-index argmax by explicit loops over rays."""
    moved = np.moveaxis(vol, axis, -1)
    mip = np.empty(moved.shape[:-1], np.float32)
    depth = np.empty(moved.shape[:-1], np.int64)
    for idx in np.ndindex(moved.shape[:-1]):
        ray = moved[idx].tolist()
        best = 0
        for k, v in enumerate(ray):
            if v > ray[best]:
                best = k
        mip[idx], depth[idx] = ray[best], best
    return mip, depth


# ------------------------------------------------------------------ pure functions


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mip_and_depth_matches_loops(axis: int) -> None:
    vol = _distinct_volume((5, 6, 7))
    mip, depth = mip_and_depth(vol, axis)
    ref_mip, ref_depth = _loop_projection(vol, axis)
    assert mip.dtype == np.float32 and depth.dtype == np.int16
    assert mip.shape == tuple(n for a, n in enumerate(vol.shape) if a != axis)
    np.testing.assert_array_equal(mip, ref_mip)
    np.testing.assert_array_equal(depth, ref_depth)


def test_known_maxima_hand_made() -> None:
    vol = np.zeros((4, 2, 3), np.float32)
    vol[2, 0, 0] = 5.0
    vol[3, 1, 2] = 2.0
    vol[0, 1, 1] = 1.0
    vol[1, 1, 1] = 0.5
    mip, depth = mip_and_depth(vol, 0)
    assert mip.tolist() == [[5.0, 0.0, 0.0], [0.0, 1.0, 2.0]]
    assert depth.tolist() == [[2, 0, 0], [0, 0, 3]]
    # along x (axis 2): rays are (z, y)
    mip2, depth2 = mip_and_depth(vol, 2)
    assert depth2[2, 0] == 0 and mip2[2, 0] == 5.0
    assert depth2[3, 1] == 2 and mip2[3, 1] == 2.0
    assert depth2[0, 1] == 1 and mip2[0, 1] == 1.0


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_ties_give_first_index(axis: int) -> None:
    vol = np.ones((3, 4, 5), np.float32)  # all tied: depth 0 everywhere
    _, depth = mip_and_depth(vol, axis)
    assert not depth.any()
    # two equal maxima at indices 1 and 2 along the axis -> 1 (clipped CT vessels)
    vol = np.zeros((3, 3, 3), np.float32)
    idx1 = [1, 1, 1]
    idx2 = [1, 1, 1]
    idx2[axis] = 2
    vol[tuple(idx1)] = vol[tuple(idx2)] = 1.0
    mip, depth = mip_and_depth(vol, axis)
    assert mip[1, 1] == 1.0 and depth[1, 1] == 1


def test_negative_axis_and_errors() -> None:
    vol = _distinct_volume((3, 4, 5))
    np.testing.assert_array_equal(mip_and_depth(vol, -1)[1], mip_and_depth(vol, 2)[1])
    assert check_axis(-3) == 0
    for bad in (3, -4, 1.0, True):
        with pytest.raises(ValueError):
            check_axis(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="int16"):
        mip_and_depth(np.zeros((32769, 1, 1), np.float32), 0)
    with pytest.raises(ValueError, match="empty"):
        mip_and_depth(np.zeros((0, 2, 2), np.float32), 0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_values_at_depth_matches_loop(axis: int) -> None:
    vol = _distinct_volume((4, 5, 6))
    other = vol * 2.0 + 1.0  # a second volume read at the first one's argmax
    _, depth = mip_and_depth(vol, axis)
    got = values_at_depth(other, depth, axis)
    moved = np.moveaxis(other, axis, -1)
    for idx in np.ndindex(depth.shape):
        assert got[idx] == moved[idx][int(depth[idx])]
    np.testing.assert_array_equal(values_at_depth(vol, depth, axis), mip_and_depth(vol, axis)[0])


def test_values_at_depth_arbitrary_depths_and_errors() -> None:
    vol = np.arange(24).reshape(2, 3, 4)
    depth = np.array([[0, 1, 2, 0], [2, 2, 1, 0]])  # axis 1 of (2, 3, 4): shape (2, 4)
    got = values_at_depth(vol, depth, 1)
    assert got.tolist() == [[vol[0, 0, 0], vol[0, 1, 1], vol[0, 2, 2], vol[0, 0, 3]],
                            [vol[1, 2, 0], vol[1, 2, 1], vol[1, 1, 2], vol[1, 0, 3]]]
    with pytest.raises(ValueError, match="shape"):
        values_at_depth(vol, depth[:, :3], 1)
    with pytest.raises(ValueError, match="outside"):
        values_at_depth(vol, depth + 1, 1)
    with pytest.raises(ValueError, match="integers"):
        values_at_depth(vol, depth.astype(float), 1)


def test_project_labels() -> None:
    lab = np.zeros((3, 2, 2), np.uint8)
    lab[2, 0, 1] = 1
    lab[0, 1, 1] = 1
    assert project_labels(lab, 0).tolist() == [[0, 1], [0, 1]]
    assert project_labels(lab, 1).tolist() == [[0, 1], [0, 0], [0, 1]]
    assert project_labels(lab, 2).tolist() == [[0, 1], [0, 0], [1, 0]]
    assert project_labels(lab, 0).dtype == np.uint8
    probs = np.array([[[0.2]], [[0.7]]], np.float32)
    assert project_labels(probs, 0).tolist() == [[pytest.approx(0.7)]]


def test_case_mip_arrays() -> None:
    img = _distinct_volume((1, 3, 4, 5))
    lab = (img[0] > 50).astype(np.uint8)
    out = case_mip(img, lab, 1)
    assert set(out) == {"mip", "depth", "mip_label"}
    assert out["mip"].shape == out["depth"].shape == out["mip_label"].shape == (3, 5)
    assert out["mip_label"].dtype == np.uint8
    np.testing.assert_array_equal(out["mip_label"], lab.max(axis=1))
    assert set(case_mip(img, None, 0)) == {"mip", "depth"}
    with pytest.raises(ValueError):
        case_mip(img[0], lab, 0)
    with pytest.raises(ValueError):
        case_mip(img, lab[:, :, :2], 0)


# ----------------------------------------------------------------------- the store


def make_store(root: Path, n_labelled: int = 2, n_infer: int = 1,
               shape: tuple[int, int, int] = (4, 5, 6)) -> Path:
    """A tiny case store: cases v_1.. (labelled, split train) and u_1.. (infer)."""
    with atomic.atomic_dir(root) as tmp:
        train, infer = [], []
        for n in range(n_labelled + n_infer):
            labelled = n < n_labelled
            cid = f"v_{n + 1}" if labelled else f"u_{n + 1}"
            img = _distinct_volume((1, *shape)) / 100.0 + n
            lab = (img[0] > img[0].mean()).astype(np.uint8) if labelled else None
            meta = {"case_id": cid, "spacing": [2.5, 0.8, 0.75]}
            casestore.write_case(tmp, cid, img, lab, meta)
            (train if labelled else infer).append(cid)
        atomic.write_json(tmp / "dataset.json", {"labels": {"0": "background", "1": "Vessel"},
                                                 "channels": ["CT"]})
        atomic.write_json(tmp / "split.json", {"train": train, "val": [], "test": [],
                                               "infer": infer})
    return root


def test_write_mip_store(tmp_path: Path) -> None:
    cases = make_store(tmp_path / "cases")
    out = tmp_path / "mip"
    info = write_mip_store(cases, out, axis=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases", "mip"]  # no mip_tmp
    stored = json.loads((out / STORE_JSON).read_text())
    assert stored == info
    assert stored["axis"] == 1 and stored["axis_name"] == "y"
    assert stored["plane_axes"] == ["z", "x"] and stored["tie_rule"] == "first index"
    assert [c["case_id"] for c in stored["cases"]] == ["u_3", "v_1", "v_2"]
    assert stored["cases"][1] == {"case_id": "v_1", "shape": [4, 6],
                                  "spacing_mm": [2.5, 0.75], "labelled": True}
    store = casestore.CaseStore(cases)
    for cid in ("v_1", "v_2"):
        img, lab = store.image(cid), store.label(cid)
        m, d = np.load(out / cid / MIP), np.load(out / cid / DEPTH)
        ml = np.load(out / cid / MIP_LABEL)
        assert m.dtype == np.float32 and d.dtype == np.int16 and ml.dtype == np.uint8
        np.testing.assert_array_equal(m, img[0].max(axis=1))
        np.testing.assert_array_equal(d, img[0].argmax(axis=1))
        np.testing.assert_array_equal(ml, lab.max(axis=1))
    assert sorted(p.name for p in (out / "u_3").iterdir()) == [DEPTH, MIP]  # no label
    assert read_mip_json(out)["axis"] == 1
    # a rerun replaces the folder and gives the same bytes
    before = (out / STORE_JSON).read_bytes()
    write_mip_store(cases, out, axis=1)
    assert (out / STORE_JSON).read_bytes() == before


def test_write_mip_store_errors_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a case store"):
        write_mip_store(tmp_path / "nope", tmp_path / "mip")
    cases = make_store(tmp_path / "cases")
    (cases / "v_2" / "image.npy").write_bytes(b"garbage")
    with pytest.raises(InputError, match="v_2: cannot project"):
        write_mip_store(cases, tmp_path / "mip")
    assert not (tmp_path / "mip").exists() and not (tmp_path / "mip_tmp").exists()
    with pytest.raises(InputError, match="axis"):
        write_mip_store(cases, tmp_path / "mip", axis=3)
    with pytest.raises(InputError, match="missing"):
        read_mip_json(tmp_path)


# ------------------------------------------------------------------------------ CLI


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_happy_path(tmp_path: Path) -> None:
    make_store(tmp_path / "cases")
    res = _run("--cases", "cases", "--out", "mip", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("mip: 3 cases (2 with a 2D label), axis 0 (z) -> mip in ")
    assert json.loads((tmp_path / "mip" / STORE_JSON).read_text())["axis"] == 0
    assert np.load(tmp_path / "mip" / "v_1" / DEPTH).shape == (5, 6)


def test_cli_missing_store_one_line(tmp_path: Path) -> None:
    res = _run("--cases", "nowhere", "--out", "mip", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == ("segline: nowhere: not a case store (split.json missing); "
                          "run the slicing stage\n")
    assert not (tmp_path / "mip").exists() and not (tmp_path / "mip_tmp").exists()
    res = _run("--cases", "nowhere", "--out", "mip", "--axis", "3", cwd=tmp_path)
    assert res.returncode == 2 and "invalid choice" in res.stderr
