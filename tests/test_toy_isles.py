"""Tests for segline.datasets.toy_isles: the two toy zips are byte-stable (md5s pinned in
lineage/isles-toy.lineage), have the real ISLES 2018 layout, names and dtypes, and every
case has a lesion that the perfusion maps show."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from segline.datasets.toy_isles import (
    APPLEDOUBLE,
    ISLES_HARD_TOY,
    ISLES_TOY,
    N_TEST,
    N_TRAIN,
    PREFIX,
    TEST_ORDER,
    TRAIN_ORDER,
    ToyCase,
    ToyIslesParams,
    make_case,
    smir_ids,
    toy_isles_bytes,
    toy_isles_cases,
    write_toy_archives,
)

ROOT = Path(__file__).resolve().parents[1]
LINEAGE = ROOT / "lineage" / "isles-toy.lineage"
DTYPES = {"CT": "int32", "CT_CBF": "uint16", "CT_CBV": "uint16", "CT_MTT": "float64",
          "CT_Tmax": "float64", "OT": "uint8", "CT_4DPWI": "int16"}
_NII = re.compile(r"^(TRAINING|TESTING)/case_(\d+)/SMIR\.Brain\.XX\.O\.(\w+)\.(\d+)/"
                  r"SMIR\.Brain\.XX\.O\.(\w+)\.(\d+)\.nii$")


@pytest.fixture(scope="module")
def archives() -> tuple[bytes, bytes]:
    return toy_isles_bytes()


@pytest.fixture(scope="module")
def cases() -> list[ToyCase]:
    return toy_isles_cases()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _lineage(path: Path = LINEAGE) -> list[tuple[str, str]]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return [tuple(re.fullmatch(r"([0-9a-f]{32})  (\S+)", ln).groups()) for ln in lines]


# ---------------------------------------------------------------- byte stability


def test_md5s_match_lineage(archives: tuple[bytes, bytes]) -> None:
    """Key regression test: if the generator's output changes, update the lineage file."""
    assert _lineage() == [
        (hashlib.md5(archives[0]).hexdigest(), "data/isles-toy_Training.zip"),
        (hashlib.md5(archives[1]).hexdigest(), "data/isles-toy_Testing.zip"),
    ]


def test_two_generations_identical(archives: tuple[bytes, bytes]) -> None:
    assert toy_isles_bytes() == archives


def test_seed_changes_data() -> None:
    a, b = make_case(0, 1), make_case(1, 1)
    assert not np.array_equal(a.volumes["CT_CBF"], b.volumes["CT_CBF"])
    assert not np.array_equal(a.volumes["OT"], b.volumes["OT"])
    with pytest.raises(ValueError):
        make_case(0, 0)


def test_write_toy_archives_atomic(tmp_path: Path, archives: tuple[bytes, bytes]) -> None:
    outs = [tmp_path / "isles-toy_Training.zip", tmp_path / "isles-toy_Testing.zip"]
    write_toy_archives(outs)
    assert [p.read_bytes() for p in outs] == list(archives)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in outs)
    with pytest.raises(ValueError, match="two archives"):
        write_toy_archives(outs[:1])


def test_make_toy_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("make_toy", ROOT / "preprocess" / "make_toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outs = [tmp_path / "isles-toy_Training.zip", tmp_path / "isles-toy_Testing.zip"]
    assert module.main(["--dataset", "isles", "--out", str(outs[0]), "--out", str(outs[1])]) == 0
    assert [hashlib.md5(p.read_bytes()).hexdigest() for p in outs] == [m for m, _ in _lineage()]
    assert "isles-toy_Testing.zip" in capsys.readouterr().out


# -------------------------------------------------------------------------- layout


def test_archive_layout(archives: tuple[bytes, bytes]) -> None:
    for data, top, n, order in ((archives[0], "TRAINING", N_TRAIN, TRAIN_ORDER),
                                (archives[1], "TESTING", N_TEST, TEST_ORDER)):
        members = _members(data)
        niftis = [m for m in members if m.endswith(".nii") and not m.startswith("__MACOSX/")]
        assert len(niftis) == n * len(order)
        found: dict[int, dict[str, int]] = {}
        for name in niftis:
            match = _NII.match(name)
            assert match, name
            split, number, mod, sid, mod2, sid2 = match.groups()
            assert (split, mod, sid) == (top, mod2, sid2)
            found.setdefault(int(number), {})[mod] = int(sid)
        assert sorted(found) == list(range(1, n + 1))
        for number, ids in found.items():
            assert ids == smir_ids(number, top == "TRAINING")
            # consecutive ids in the real export's order (4DPWI, CT, CBF, CBV, MTT, [OT,] Tmax)
            assert [ids[m] for m in order] == list(range(ids[order[0]], ids[order[0]] + len(order)))
        junk = [m for m in members if m.startswith("__MACOSX/")]
        assert f"__MACOSX/{top}/._case_1" in junk and f"__MACOSX/._{top}" in junk
        assert all(members[m] == APPLEDOUBLE for m in junk if not m.endswith("/"))
        assert len([m for m in junk if m.endswith(".nii")]) == len(niftis)
        assert not any(m.startswith(("TRAINING", "TESTING")) and not m.startswith(top)
                       for m in members)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                assert info.compress_type == zipfile.ZIP_STORED
                assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_volumes_dtypes_and_geometry(archives: tuple[bytes, bytes], cases: list[ToyCase]) -> None:
    members = {**_members(archives[0]), **_members(archives[1])}
    depths = set()
    for case in cases:
        order = TRAIN_ORDER if case.labelled else TEST_ORDER
        assert set(case.volumes) == set(TRAIN_ORDER)
        for mod in order:
            name = f"{PREFIX}{mod}.{case.ids[mod]}"
            img = nib.Nifti1Image.from_bytes(members[f"{case.folder}/{name}/{name}.nii"])
            data = np.asanyarray(img.dataobj)
            assert data.dtype.name == DTYPES[mod], (case.folder, mod)
            assert np.array_equal(data, case.volumes[mod])
            assert np.array_equal(img.affine, case.affine)
            x, y, z = img.header.get_zooms()[:3]
            assert x == y and 0.80 <= x <= 0.98 and z in (4.0, 5.0)
            assert data.shape[:3] == case.volumes["CT"].shape
            if mod == "CT_4DPWI":
                assert data.ndim == 4 and data.shape[3] == 6
            else:
                assert data.ndim == 3
        depths.add(case.volumes["CT"].shape[2])
        assert case.volumes["CT"].shape[:2] == (64, 64)
    assert depths == {4, 6, 8}  # varying slice counts, like the real slabs
    testing = [n for n in members if n.startswith("TESTING/")]
    assert not any(".OT." in n for n in testing)


def test_lesion_visible_in_perfusion_maps(cases: list[ToyCase]) -> None:
    for case in cases:
        v = case.volumes
        core = v["OT"].astype(bool)
        brain = v["CT_CBF"] > 0
        assert core.any() and (brain | ~core).all()  # the lesion lies in the brain
        per_slice = core.any(axis=(0, 1))
        assert per_slice.any() and not per_slice.all(), case.folder  # some lesion-free slices
        normal = brain & ~core & (v["CT_Tmax"] < 3.0) & (v["CT_MTT"] > 3.0)  # no CSF, no penumbra
        assert np.median(v["CT_CBF"][core]) < 0.35 * np.median(v["CT_CBF"][normal])
        assert np.median(v["CT_CBV"][core]) < 0.5 * np.median(v["CT_CBV"][normal])
        assert np.median(v["CT_MTT"][core]) > 2.0 * np.median(v["CT_MTT"][normal])
        assert np.median(v["CT_Tmax"][core]) > 5.0 * np.median(v["CT_Tmax"][normal])
        # early infarct: only slightly darker on CT (HU)
        drop = np.median(v["CT"][normal]) - np.median(v["CT"][core])
        assert 0 < drop < 15
        # maps are skull-stripped (zero outside the brain), CT has air and bone there
        for mod in ("CT_CBV", "CT_MTT", "CT_Tmax"):
            assert (v[mod][~brain] == 0).all()
        assert (v["CT_CBV"][brain] > 0).all()
        assert v["CT"].min() == -1024 and v["CT"].max() > 700
        # MTT and Tmax on a 1/64 s grid (exact binary fractions: byte-stable)
        for mod in ("CT_MTT", "CT_Tmax"):
            assert np.array_equal(v[mod] * 64, np.rint(v[mod] * 64))


# ---------------------------------------------------------------------- hard toy

HARD_LINEAGE = ROOT / "lineage" / "isles-hard-toy.lineage"


@pytest.fixture(scope="module")
def hard_archives() -> tuple[bytes, bytes]:
    return toy_isles_bytes(params=ISLES_HARD_TOY)


def test_default_params_are_the_pinned_toy() -> None:
    """The factored-out parameters reproduce the pinned toy (its md5s are checked above)."""
    assert ToyIslesParams() == ISLES_TOY
    assert (ISLES_TOY.n_train, ISLES_TOY.n_test, ISLES_TOY.lesions) == (N_TRAIN, N_TEST, (1, 1))


def test_hard_md5s_match_lineage(hard_archives: tuple[bytes, bytes]) -> None:
    """Regression test of the hard variant: two generations, the pinned md5s, the CLI."""
    assert toy_isles_bytes(params=ISLES_HARD_TOY) == hard_archives
    assert _lineage(HARD_LINEAGE) == [
        (hashlib.md5(hard_archives[0]).hexdigest(), "data/isles-hard-toy_Training.zip"),
        (hashlib.md5(hard_archives[1]).hexdigest(), "data/isles-hard-toy_Testing.zip"),
    ]
    assert hard_archives[0] != toy_isles_bytes()[0]


def test_hard_make_toy_cli(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_toy", ROOT / "preprocess" / "make_toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outs = [tmp_path / "isles-hard-toy_Training.zip", tmp_path / "isles-hard-toy_Testing.zip"]
    argv = ["--dataset", "isles-hard", "--out", str(outs[0]), "--out", str(outs[1])]
    assert module.main(argv) == 0
    assert [hashlib.md5(p.read_bytes()).hexdigest() for p in outs] == [
        m for m, _ in _lineage(HARD_LINEAGE)
    ]


def _components(mask: np.ndarray) -> list[int]:
    """Voxel counts of the 26-connected components of ``mask``."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    return np.bincount(labels.ravel())[1:].tolist() if n else []


def test_hard_lesions_small_sparse_low_contrast() -> None:
    """The hard toy's claims (README, isles.make): 30 labelled cases, 1-3 lesions of a
    few mm, < 1.5 % foreground, core CBF/CBV close to the penumbra's."""
    cases = toy_isles_cases(params=ISLES_HARD_TOY)
    labelled = [c for c in cases if c.labelled]
    assert (len(labelled), len(cases) - len(labelled)) == (30, 2)
    counts, fractions, sizes, cbf_ratio, cbv_ratio = [], [], [], [], []
    for case in labelled:
        v = case.volumes
        core = v["OT"].astype(bool)
        brain = v["CT_CBF"] > 0
        per_slice = core.any(axis=(0, 1))
        assert per_slice.any() and not per_slice.all(), case.folder
        assert (brain | ~core).all()
        comps = _components(core)
        counts.append(len(comps))
        sizes += comps
        fractions.append(core.mean())
        # penumbra: hypoperfused (Tmax high) but not core, one voxel away from the core
        near = ndimage.binary_dilation(core, iterations=2) & ~ndimage.binary_dilation(core)
        pen = brain & near & (v["CT_Tmax"] > 6.0)
        cbf_ratio.append(np.median(v["CT_CBF"][core]) / np.median(v["CT_CBF"][pen]))
        cbv_ratio.append(np.median(v["CT_CBV"][core]) / np.median(v["CT_CBV"][pen]))
    assert set(counts) == {1, 2, 3}  # several lesions in some cases, one in others
    assert max(fractions) < 0.015 and np.median(fractions) < 0.005  # heavy imbalance
    assert np.median(sizes) < 60 and min(sizes) >= 1  # voxels (~0.8 mm x 0.8 mm x 4-5 mm)
    # low contrast: the core's CBF/CBV are within a factor ~2 of the penumbra's (the
    # pinned toy's core CBF is < 0.35x of normal tissue)
    assert 0.5 < np.median(cbf_ratio) < 1.0 and 0.5 < np.median(cbv_ratio) < 1.0
