"""Occluder removal in the MIP stage (segline.experiments.vessels.occluders and mip):
on the toy vessel set, whose bone bar is brighter than every vessel and crosses vessel
rays along z, the seeds (argmax voxels of labelled MIP pixels) land on the bar without
the removal and never with it; the threshold is recorded in mip.json; the HU come
from the source image through the case's recorded transforms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segline.casestore import CaseStore
from segline.datasets.msd import MSDAdapter
from segline.datasets.toy_vessels import make_case, toy_vessel_cases, write_toy_archives
from segline.errors import InputError
from segline.experiments.vessels import mip as mipmod
from segline.experiments.vessels.occluders import OccluderParams, occluder_mask, source_hu
from segline.experiments.vessels.pseudo import seed_mask
from segline.lineage.extract import extract_archives
from segline.preprocess.slicing import SliceParams, slice_dataset
from segline.preprocess.window import ct_window

REPO = Path(__file__).resolve().parents[1]
MIP_SCRIPT = REPO / "preprocess" / "mip.py"
ON = OccluderParams(hu=400.0, margin=1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy set unpacked (``raw``), sliced with the vessel window (``cases``), and
    projected without (``plain``) and with (``removed``) occluder removal."""
    root = tmp_path_factory.mktemp("occluders")
    write_toy_archives([root / "vessels-toy.tar"])
    extract_archives([root / "vessels-toy.tar"], root / "raw")
    params = SliceParams(window=(120.0, 280.0), label_map={2: 0}, n_test=3, n_val=2)
    slice_dataset(MSDAdapter(root / "raw"), root / "cases", params)
    mipmod.write_mip_store(root / "cases", root / "plain")
    mipmod.write_mip_store(root / "cases", root / "removed", occluder=ON, raw=root / "raw")
    return root


def _seeds_on_bar(root: Path, store: str) -> tuple[int, int, int]:
    """(seeds on the bone bar, seeds on a true vessel, seeds) over the labelled cases."""
    cases = CaseStore(root / "cases")
    on_bar = on_vessel = total = 0
    for case in toy_vessel_cases():
        if not case.labelled:
            continue
        bar = case.occluder.T  # (Z, Y, X): the toy is stored uncropped
        truth = np.asarray(cases.label(case.case_id)) == 1
        assert bar.shape == truth.shape
        lab2d = np.load(root / store / case.case_id / mipmod.MIP_LABEL) == 1
        depth = np.load(root / store / case.case_id / mipmod.DEPTH)
        seeds = seed_mask(lab2d, depth, 0, truth.shape)
        on_bar += int(np.count_nonzero(seeds & bar))
        on_vessel += int(np.count_nonzero(seeds & truth))
        total += int(np.count_nonzero(seeds))
    return on_bar, on_vessel, total


def test_seeds_land_on_the_bar_only_without_removal(toy: Path) -> None:
    bar_plain, vessel_plain, n = _seeds_on_bar(toy, "plain")
    bar_removed, vessel_removed, n_removed = _seeds_on_bar(toy, "removed")
    assert n == n_removed > 1000  # the same 2D labels: projections of the 3D labels
    assert bar_plain > 300  # every case's bar hides vessels from the plain MIP
    assert bar_removed == 0
    assert vessel_removed >= vessel_plain + bar_plain // 2  # the rays find their vessels


def test_removed_mip_shows_the_brightest_non_occluder_voxel(toy: Path) -> None:
    cases = CaseStore(toy / "cases")
    for case_id in ("hepaticvessel_001", "hepaticvessel_003"):  # labelled, unlabelled
        image = np.asarray(cases.image(case_id))[0]
        hu = source_hu(toy / "raw", cases.meta(case_id))
        mask = occluder_mask(hu, ON.hu, ON.margin)
        depth = np.load(toy / "removed" / case_id / mipmod.DEPTH)
        mip = np.load(toy / "removed" / case_id / mipmod.MIP)
        want = np.where(mask, -1.0, image).max(axis=0)
        np.testing.assert_array_equal(mip, want)
        assert not mipmod.values_at_depth(mask, depth, 0).any()
        # the plain MIP is the bar's clipped 1.0 wherever the bar lies on the ray
        plain = np.load(toy / "plain" / case_id / mipmod.MIP)
        assert np.all(plain[mask.any(axis=0) & (hu > 700).any(axis=0)] == 1.0)
        # the 2D label stays the projection of the 3D label
        if cases.has_label(case_id):
            for store in ("plain", "removed"):
                np.testing.assert_array_equal(
                    np.load(toy / store / case_id / mipmod.MIP_LABEL),
                    np.asarray(cases.label(case_id)).max(axis=0))


def test_mip_json_records_the_threshold(toy: Path) -> None:
    plain = json.loads((toy / "plain" / mipmod.STORE_JSON).read_text())
    removed = json.loads((toy / "removed" / mipmod.STORE_JSON).read_text())
    assert plain["occluder"] is None
    assert "occluder_voxels" not in plain["cases"][0]
    occ = removed["occluder"]
    assert occ["hu"] == 400.0 and occ["margin_voxels"] == 1
    assert "HU > hu" in occ["convention"]
    for entry in removed["cases"]:
        assert entry["occluder_voxels"] > 300 and entry["rays_moved"] > 100
        assert entry["rays_all_occluder"] == 0


def test_source_hu_is_the_store_before_its_window(toy: Path) -> None:
    """The replayed source HU, windowed like the slicing stage, are the stored image."""
    cases = CaseStore(toy / "cases")
    for case_id in cases.case_ids()[:3]:
        hu = source_hu(toy / "raw", cases.meta(case_id))
        np.testing.assert_array_equal(ct_window(hu, 120.0, 280.0),
                                      np.asarray(cases.image(case_id))[0])
    case = make_case(0, 1)
    np.testing.assert_array_equal(source_hu(toy / "raw", cases.meta(case.case_id)),
                                  case.image.T.astype(np.float32))


def test_source_hu_replays_crop_and_pad(tmp_path: Path) -> None:
    hu_xyz = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    nib.save(nib.Nifti1Image(hu_xyz, np.eye(4)), tmp_path / "a.nii.gz")
    meta = {
        "case_id": "a", "channels": ["CT"], "source": {"image": ["a.nii.gz"]},
        "shape": [4, 4, 5],
        "transforms": [
            {"op": "to_zyx"},
            {"op": "crop", "shape_before": [6, 5, 4], "start": [1, 0, 1], "stop": [5, 3, 4]},
            {"op": "pad", "shape_before": [4, 3, 3], "before": [0, 1, 0], "after": [0, 0, 2]},
        ],
    }
    got = source_hu(tmp_path, meta)
    want = np.full((4, 4, 5), -1024.0, np.float32)
    want[:, 1:, :3] = hu_xyz.T[1:5, 0:3, 1:4]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(InputError, match="not CT"):
        source_hu(tmp_path, {**meta, "channels": ["MRA"]})
    with pytest.raises(InputError, match="not the stored"):
        source_hu(tmp_path, {**meta, "shape": [4, 4, 4]})


def test_mip_and_depth_excludes_the_mask() -> None:
    vol = np.array([[[0.2, 0.9]], [[0.5, 0.1]], [[0.3, 0.4]]], np.float32)  # (Z, Y, X) (3, 1, 2)
    mask = np.array([[[False, True]], [[True, True]], [[False, True]]])
    mip, depth = mipmod.mip_and_depth(vol, 0, mask)
    # x=0: 0.5 is an occluder -> 0.3 at z=2; x=1: every voxel is -> the minimum, depth 0
    assert mip.tolist() == [[pytest.approx(0.3), pytest.approx(0.1)]] and depth.tolist() == [[2, 0]]
    assert mipmod.mip_and_depth(vol, 0, np.zeros(vol.shape, bool))[1].tolist() == [[1, 0]]
    with pytest.raises(ValueError, match="exclude mask shape"):
        mipmod.mip_and_depth(vol, 0, mask[:2])
    assert occluder_mask(np.full((2, 2, 2), 100.0), 400.0, 3).sum() == 0
    with pytest.raises(ValueError):
        OccluderParams(400.0, -1)


def test_cli_records_and_refuses(toy: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(MIP_SCRIPT), "--cases", str(toy / "cases"),
                               *args], capture_output=True, text=True, env=env, timeout=300)

    res = run("--out", str(tmp_path / "m"), "--occluder-hu", "none")
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "m" / mipmod.STORE_JSON).read_text())["occluder"] is None
    res = run("--out", str(tmp_path / "n"), "--occluder-hu", "400")
    assert res.returncode == 2 and not (tmp_path / "n").exists()
    assert res.stderr.count("\n") == 1 and "--raw" in res.stderr
    res = run("--out", str(tmp_path / "o"), "--occluder-hu", "400", "--raw", str(toy / "raw"))
    assert res.returncode == 0, res.stderr
    assert "occluders > 400 HU (+1 voxels) removed" in res.stdout
    for name in ("mip.json", "hepaticvessel_002/depth.npy", "hepaticvessel_002/mip.npy"):
        assert (tmp_path / "o" / name).read_bytes() == (toy / "removed" / name).read_bytes()


@pytest.mark.parametrize("rules", ["segline", "reference"])
def test_occluders_are_background_in_the_pseudo_labels(toy: Path, tmp_path: Path,
                                                       rules: str) -> None:
    """The bar (the MIP stage's occluder mask) is background under both rule sets when
    the MIP was projected with removal; without it the bar's voxels are not all
    background (bright voxels off the labelled rays stay unlabelled)."""
    from segline.experiments.vessels.pseudo import (
        BG,
        PseudoParams,
        ReferenceParams,
        write_pseudo_store,
    )

    params = ReferenceParams() if rules == "reference" else PseudoParams()
    for store, want_all_bg in (("removed", True), ("plain", False)):
        out = tmp_path / f"{rules}-{store}"
        write_pseudo_store(toy / "cases", toy / store, out, params=params)
        info = json.loads((out / "pseudo.json").read_text())
        assert info["occluders"] == ("background" if want_all_bg else "none removed")
        bg_on_bar = []
        for case in toy_vessel_cases():
            if not case.labelled:
                continue
            label = np.load(out / case.case_id / "pseudo.npy")
            mask = np.load(toy / "removed" / case.case_id / mipmod.OCCLUDER) > 0
            assert np.array_equal(mask, occluder_mask(
                source_hu(toy / "raw", CaseStore(toy / "cases").meta(case.case_id)),
                ON.hu, ON.margin))
            assert mask[case.occluder.T].all()  # the bar is inside the saved mask
            bg_on_bar.append(bool((label[mask] == BG).all()))
        assert all(bg_on_bar) if want_all_bg else not all(bg_on_bar)
