"""Tests for segline.distmaps and preprocess/distmaps.py.

References are computed here, independently, with scipy.ndimage.distance_transform_edt
(outside: distance of each background voxel to the nearest foreground voxel; inside:
distance of each foreground voxel to the nearest background voxel), in float64.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from segline import casestore, distmaps
from segline.distmaps import (
    one_hot_signed_distance,
    signed_distance,
    slicewise_signed_distance,
    volume_signed_distance,
)

CLI = Path(__file__).resolve().parents[1] / "preprocess" / "distmaps.py"
# edt single-threaded (one multi-label pass), edt threaded (two cropped passes), scipy.
BACKENDS = ("edt", "scipy")
PATHS = [("edt", 1), ("edt", 2), ("scipy", 1)]
SPACING_3D = (5.0, 0.8, 0.8)
SPACING_2D = (0.7, 1.3)


def reference(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Signed distance (mm, float64) straight from scipy: + outside, - inside."""
    mask = mask.astype(bool)
    return ndimage.distance_transform_edt(~mask, sampling=spacing) - ndimage.distance_transform_edt(
        mask, sampling=spacing
    )


def random_mask(shape: tuple[int, ...], density: float, seed: int) -> np.ndarray:
    """Random blobs: thresholded smoothed noise (connected regions, holes, borders)."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.5)
    return noise > np.quantile(noise, 1.0 - density)


@pytest.mark.parametrize(("backend", "parallel"), PATHS)
@pytest.mark.parametrize("density", [0.02, 0.3, 0.97])
def test_3d_matches_scipy_on_anisotropic_mask(backend: str, parallel: int, density: float) -> None:
    mask = random_mask((12, 40, 33), density, seed=int(density * 100))
    got = signed_distance(mask, SPACING_3D, backend=backend, parallel=parallel)
    want = reference(mask, SPACING_3D)
    assert got.dtype == np.float32
    assert got.shape == mask.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
    assert np.all(got[mask] < 0) and np.all(got[~mask] > 0)


@pytest.mark.parametrize(("backend", "parallel"), PATHS)
@pytest.mark.parametrize("density", [0.05, 0.5])
def test_2d_matches_scipy_on_anisotropic_mask(backend: str, parallel: int, density: float) -> None:
    mask = random_mask((50, 37), density, seed=7)
    got = signed_distance(mask, SPACING_2D, backend=backend, parallel=parallel)
    np.testing.assert_allclose(got, reference(mask, SPACING_2D), rtol=0, atol=1e-3)
    assert got.dtype == np.float32
    assert np.all(got[mask] < 0) and np.all(got[~mask] > 0)


@pytest.mark.parametrize(("backend", "parallel"), PATHS)
def test_axis_order_on_strongly_anisotropic_spacing(backend: str, parallel: int) -> None:
    """One voxel: a step along z must cost 5 mm, along y 0.8 mm, along x 0.3 mm."""
    mask = np.zeros((3, 4, 5), bool)
    mask[1, 1, 1] = True
    got = signed_distance(mask, (5.0, 0.8, 0.3), backend=backend, parallel=parallel)
    assert got[1, 1, 1] == pytest.approx(-0.3)  # nearest background: an x neighbour
    assert got[0, 1, 1] == pytest.approx(5.0)
    assert got[1, 2, 1] == pytest.approx(0.8)
    assert got[1, 1, 2] == pytest.approx(0.3)
    assert got[2, 3, 4] == pytest.approx(math.sqrt(5.0**2 + (2 * 0.8) ** 2 + (3 * 0.3) ** 2))
    got2 = signed_distance(mask[1], (0.8, 0.3), backend=backend, parallel=parallel)
    assert got2[3, 1] == pytest.approx(1.6)
    assert got2[1, 4] == pytest.approx(0.9)


def test_boundary_voxels_are_one_step_from_zero() -> None:
    """Our convention, not Kervadec's (which would give 0 on the inside boundary)."""
    mask = np.zeros((1, 9), bool)
    mask[0, 2:7] = True
    got = signed_distance(mask, (1.0, 0.4))
    np.testing.assert_allclose(
        got[0], [0.8, 0.4, -0.4, -0.8, -1.2, -0.8, -0.4, 0.4, 0.8], rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_with_fractional_values_not_integers(backend: str) -> None:
    """The reference implementation once cast maps to int: values must stay fractional."""
    mask = random_mask((30, 30), 0.3, seed=3)
    got = signed_distance(mask, (0.4, 0.4), backend=backend)
    assert got.dtype == np.float32
    assert np.any(np.abs(got - np.round(got)) > 0.1)
    assert got.min() < -1.0  # the interior survives (it vanished with the int cast)
    maps = one_hot_signed_distance(mask.astype(np.uint8), 2, (0.4, 0.4), backend=backend)
    assert maps.dtype == np.float32
    assert np.any(np.abs(maps - np.round(maps)) > 0.1)


@pytest.mark.parametrize(("backend", "parallel"), PATHS)
def test_antisymmetric_under_complement(backend: str, parallel: int) -> None:
    mask = random_mask((8, 20, 20), 0.2, seed=11)
    np.testing.assert_array_equal(
        signed_distance(~mask, SPACING_3D, backend, parallel),
        -signed_distance(mask, SPACING_3D, backend, parallel),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_full_masks_are_plus_minus_the_diagonal(backend: str) -> None:
    shape = (4, 5, 6)
    diag = math.sqrt((4 * 5.0) ** 2 + (5 * 0.8) ** 2 + (6 * 0.8) ** 2)
    empty = signed_distance(np.zeros(shape, bool), SPACING_3D, backend=backend)
    full = signed_distance(np.ones(shape, bool), SPACING_3D, backend=backend)
    assert empty.dtype == full.dtype == np.float32
    np.testing.assert_allclose(empty, diag, rtol=1e-6)
    np.testing.assert_allclose(full, -diag, rtol=1e-6)
    assert np.isfinite(empty).all() and np.isfinite(full).all()
    # D bounds every real distance in the same field of view.
    one = np.zeros(shape, bool)
    one[0, 0, 0] = True
    assert signed_distance(one, SPACING_3D, backend=backend).max() < diag


def test_one_hot_three_classes_and_absent_class() -> None:
    label = np.zeros((6, 20, 24), np.uint8)
    label[1:4, 3:9, 4:12] = 1
    label[2:5, 12:18, 10:20] = 2
    got = one_hot_signed_distance(label, 4, SPACING_3D)  # class 3 absent
    assert got.shape == (4, 6, 20, 24) and got.dtype == np.float32
    for k in range(3):
        np.testing.assert_allclose(got[k], reference(label == k, SPACING_3D), atol=1e-3)
    np.testing.assert_allclose(got[3], distmaps.diagonal_mm(label.shape, SPACING_3D), rtol=1e-6)


def test_one_hot_two_classes_background_is_negated_foreground() -> None:
    label = random_mask((5, 16, 16), 0.25, seed=5).astype(np.uint8)
    got = one_hot_signed_distance(label, 2, SPACING_3D, backend="scipy")
    np.testing.assert_allclose(got[0], reference(label == 0, SPACING_3D), atol=1e-3)
    np.testing.assert_allclose(got[1], reference(label == 1, SPACING_3D), atol=1e-3)


def test_one_hot_rejects_labels_outside_the_classes() -> None:
    with pytest.raises(ValueError, match="outside 0..1"):
        one_hot_signed_distance(np.array([[0, 2]]), 2, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        signed_distance(np.zeros((3, 3)), (1.0, 0.0))
    with pytest.raises(ValueError, match="spacing"):
        signed_distance(np.zeros((3, 3, 3)), (1.0, 1.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_slicewise_ignores_z_neighbours_and_volume_does_not(backend: str) -> None:
    label = np.zeros((3, 5, 14), np.uint8)
    label[0, 2, 2] = 1  # slice 0: foreground at x=2
    label[1, 2, 10] = 1  # slice 1: foreground far away in-plane, at x=10
    # slice 2: no foreground at all
    d2 = slicewise_signed_distance(label, 2, SPACING_3D[1:], backend=backend)
    d3 = volume_signed_distance(label, 2, SPACING_3D, backend=backend)
    assert d2.shape == d3.shape == (2, 3, 5, 14)
    # Voxel (1, 2, 3): in-plane 7 voxels from x=10 (5.6 mm); one slice from (0, 2, 2).
    assert d2[1, 1, 2, 3] == pytest.approx(7 * 0.8)
    assert d3[1, 1, 2, 3] == pytest.approx(math.sqrt(5.0**2 + 0.8**2), abs=1e-5)
    # Slice 2 has no foreground: slicewise gives +D of the slice, volume real distances.
    slice_diag = math.hypot(5 * 0.8, 14 * 0.8)
    np.testing.assert_allclose(d2[1, 2], slice_diag, rtol=1e-6)
    np.testing.assert_allclose(d2[0, 2], -slice_diag, rtol=1e-6)
    assert d3[1, 2, 2, 10] == pytest.approx(5.0)
    for z in range(2):
        np.testing.assert_allclose(d2[1, z], reference(label[z] == 1, (0.8, 0.8)), atol=1e-3)
    np.testing.assert_allclose(d3[1], reference(label == 1, SPACING_3D), atol=1e-3)
    np.testing.assert_allclose(d3[0], -d3[1], atol=0)


# ---------------------------------------------------------------- the CLI


def make_store(root: Path, *, bad_label: bool = False) -> Path:
    """A tiny case store: two labelled cases (different spacing) and one unlabelled."""
    rng = np.random.default_rng(0)
    cases = root / "cases"
    cases.mkdir(parents=True)
    spacings = {"case_2": (5.0, 0.8, 0.8), "case_10": (2.5, 0.7, 0.9)}
    for i, (case_id, spacing) in enumerate(spacings.items()):
        label = random_mask((4, 12, 10), 0.2, seed=i).astype(np.uint8)
        if bad_label and case_id == "case_10":
            label[0, 0, 0] = 5
        image = rng.standard_normal((1, 4, 12, 10)).astype(np.float32)
        casestore.write_case(cases, case_id, image, label, {"case_id": case_id, "spacing": spacing})
    image = rng.standard_normal((1, 4, 12, 10)).astype(np.float32)
    casestore.write_case(cases, "case_7", image, None, {"case_id": "case_7", "spacing": [1, 1, 1]})
    split = {"train": ["case_10"], "val": ["case_2"], "test": [], "infer": ["case_7"]}
    (cases / "split.json").write_text(json.dumps(split))
    dataset = {"name": "toy", "labels": {"0": "background", "1": "spleen"}, "channels": ["CT"]}
    (cases / "dataset.json").write_text(json.dumps(dataset))
    return cases


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLI), *args], capture_output=True, text=True, timeout=120
    )


def test_cli_writes_maps_and_convention(tmp_path: Path) -> None:
    cases = make_store(tmp_path)
    out = tmp_path / "dist"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    proc = run_cli("--cases", str(cases), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    assert "2 cases" in proc.stdout and "1 unlabelled skipped" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["case_10", "case_2", "distmaps.json"]
    assert not (tmp_path / "dist_tmp").exists()
    store = casestore.CaseStore(cases, out)
    for case_id in ("case_2", "case_10"):
        spacing = tuple(store.meta(case_id)["spacing"])
        label = np.asarray(store.label(case_id))
        d2, d3 = store.dist(case_id, "2d"), store.dist(case_id, "3d")
        assert d2.dtype == d3.dtype == np.float32
        assert d2.shape == d3.shape == (2, *label.shape)
        np.testing.assert_allclose(d3[1], reference(label == 1, spacing), atol=1e-3)
        np.testing.assert_allclose(d3[0], reference(label == 0, spacing), atol=1e-3)
        for z in range(label.shape[0]):
            if label[z].any():
                np.testing.assert_allclose(
                    d2[1, z], reference(label[z] == 1, spacing[1:]), atol=1e-3
                )
    info = json.loads((out / "distmaps.json").read_text())
    assert info["convention"]["units"] == "mm"
    assert "negative inside" in info["convention"]["sign"]
    assert "+D" in info["convention"]["empty_class"]
    assert info["kinds"] == ["2d", "3d"] and info["n_classes"] == 2
    assert [c["case_id"] for c in info["cases"]] == ["case_2", "case_10"]  # natural order
    assert info["cases"][1]["spacing_zyx_mm"] == [2.5, 0.7, 0.9]
    assert info["cases"][1]["D3d_mm"] == pytest.approx(math.hypot(4 * 2.5, 12 * 0.7, 10 * 0.9))
    assert info["skipped_unlabelled"] == ["case_7"]


def test_cli_jobs_and_kinds(tmp_path: Path) -> None:
    cases = make_store(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli("--cases", str(cases), "--out", str(one), "--kinds", "3d").returncode == 0
    proc = run_cli("--cases", str(cases), "--out", str(two), "--kinds", "3d", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    for case_id in ("case_2", "case_10"):
        assert sorted(p.name for p in (two / case_id).iterdir()) == ["dist3d.npy"]
        np.testing.assert_array_equal(
            np.load(one / case_id / "dist3d.npy"), np.load(two / case_id / "dist3d.npy")
        )
    assert (one / "distmaps.json").read_bytes() == (two / "distmaps.json").read_bytes()


def test_cli_missing_store_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = run_cli("--cases", str(tmp_path / "nope"), "--out", str(tmp_path / "dist"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segline: ")
    assert "nope" in lines[0] and "not a case store" in lines[0]
    assert not (tmp_path / "dist").exists() and not (tmp_path / "dist_tmp").exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_cli_bad_label_leaves_previous_output_untouched(tmp_path: Path, jobs: str) -> None:
    cases = make_store(tmp_path, bad_label=True)
    out = tmp_path / "dist"
    out.mkdir()
    (out / "previous.txt").write_text("kept")
    proc = run_cli("--cases", str(cases), "--out", str(out), "--jobs", jobs)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and "case_10" in line and "label.npy" in line
    assert "declares 2 classes" in line
    assert sorted(p.name for p in out.iterdir()) == ["previous.txt"]
    assert not (tmp_path / "dist_tmp").exists()


def test_cli_merge_foreground_writes_k2_3d_maps(tmp_path: Path) -> None:
    """--merge-foreground: many classes (e.g. one per vertebra) -> K=2 whole-volume maps,
    channel 1 the signed distance to the union of every foreground class."""
    cases = tmp_path / "cases"
    label = np.zeros((6, 8, 7), np.uint8)
    label[0:2, 2:5, 2:5], label[3:5, 2:5, 2:5], label[5, 1:3, 1:3] = 1, 2, 3
    spacing = (2.0, 1.0, 1.5)
    image = np.zeros((1, *label.shape), np.float32)
    casestore.write_case(cases, "v1", image, label, {"case_id": "v1", "spacing": spacing})
    split = {"train": ["v1"], "val": [], "test": [], "infer": []}
    (cases / "split.json").write_text(json.dumps(split))
    names = {"0": "background", "1": "L1", "2": "L2", "3": "L3"}
    (cases / "dataset.json").write_text(json.dumps({"labels": names, "channels": ["CT"]}))
    out = tmp_path / "dist"
    proc = run_cli("--cases", str(cases), "--out", str(out), "--merge-foreground")
    assert proc.returncode == 0, proc.stderr
    assert "(3d, K=2," in proc.stdout
    assert sorted(p.name for p in (out / "v1").iterdir()) == ["dist3d.npy"]
    dist = np.load(out / "v1" / "dist3d.npy")
    assert dist.dtype == np.float32 and dist.shape == (2, 6, 8, 7)
    np.testing.assert_allclose(dist[1], reference(label > 0, spacing), atol=1e-3)
    np.testing.assert_allclose(dist[0], reference(label == 0, spacing), atol=1e-3)
    info = json.loads((out / "distmaps.json").read_text())
    assert (info["merge_foreground"], info["n_classes"], info["source_n_classes"]) == (True, 2, 4)
    assert info["classes"] == {"0": "background", "1": "foreground (all classes merged)"}
    assert info["kinds"] == ["3d"]
    bad = run_cli(
        "--cases",
        str(cases),
        "--out",
        str(tmp_path / "d2"),
        "--merge-foreground",
        "--kinds",
        "2d,3d",
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("segline: --merge-foreground: writes whole-volume (3d) maps")
    assert not (tmp_path / "d2").exists()
