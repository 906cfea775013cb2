"""Tests for segline.datasets.toy_vessels: the toy hepatic-vessel archive is byte-stable
(md5 pinned in lineage/vessels-toy.lineage), has the MSD Task08 layout, is read by the
MSD adapter, and holds bright, branching, learnable vessel trees."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import math
import re
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from segline.datasets.deterministic import APPLEDOUBLE, CounterRNG
from segline.datasets.msd import MSDAdapter
from segline.datasets.toy_vessels import (
    IN_PLANE,
    MARGIN,
    MIN_RADIUS,
    SLICE_MM,
    TASK_DIR,
    Segment,
    ToyCase,
    grow_tree,
    make_case,
    rasterise_tubes,
    toy_vessel_bytes,
    toy_vessel_cases,
    training_numbers,
    unlabelled_numbers,
    write_toy_archives,
)
from segline.lineage.extract import extract_archives

ROOT = Path(__file__).resolve().parents[1]
LINEAGE = ROOT / "lineage" / "vessels-toy.lineage"
TRAIN_IDS = [1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17]
TEST_IDS = [3, 6]


@pytest.fixture(scope="module")
def archive() -> bytes:
    return toy_vessel_bytes()


@pytest.fixture(scope="module")
def members(archive: bytes) -> dict[str, bytes | None]:
    """Archive path -> content (None for folders)."""
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isfile() else None
            out[m.name + ("/" if m.isdir() else "")] = f.read() if f else None
    return out


@pytest.fixture(scope="module")
def cases() -> list[ToyCase]:
    return toy_vessel_cases()


def _lineage() -> tuple[str, str, int]:
    """(md5, path, size from the '# size:' comment) of the toy lineage file."""
    text = LINEAGE.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    md5, path = re.fullmatch(r"([0-9a-f]{32})  (\S+)", lines[0]).groups()
    size = int(re.search(r"^# size: (\d+) bytes$", text, re.M).group(1))
    return md5, path, size


def _load(raw: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(raw))


# ------------------------------------------------------------------ byte stability


def test_md5_matches_lineage(archive: bytes) -> None:
    """Key regression test: if the generator's output changes, update the lineage file."""
    md5, path, size = _lineage()
    assert path == "data/vessels-toy.tar"
    assert len(archive) == size
    assert hashlib.md5(archive).hexdigest() == md5


def test_two_generations_identical(archive: bytes) -> None:
    assert toy_vessel_bytes() == archive


def test_seed_changes_data() -> None:
    a, b = make_case(0, 1), make_case(1, 1)
    assert not np.array_equal(a.label, b.label)


def test_write_toy_archives_and_cli(tmp_path: Path, archive: bytes, capsys) -> None:
    out = tmp_path / "data" / "vessels-toy.tar"
    write_toy_archives([out], seed=0)
    assert out.read_bytes() == archive
    assert sorted(p.name for p in out.parent.iterdir()) == ["vessels-toy.tar"]  # no .tmp
    with pytest.raises(ValueError):
        write_toy_archives([out, out])
    spec = importlib.util.spec_from_file_location("make_toy", ROOT / "preprocess" / "make_toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cli_out = tmp_path / "cli.tar"
    assert module.main(["--dataset", "vessels", "--out", str(cli_out)]) == 0
    assert hashlib.md5(cli_out.read_bytes()).hexdigest() == _lineage()[0]
    assert "dataset vessels, seed 0" in capsys.readouterr().out


# -------------------------------------------------------------------------- layout


def test_case_numbers() -> None:
    assert training_numbers(12) == TRAIN_IDS
    assert unlabelled_numbers(2) == TEST_IDS
    assert not set(training_numbers(100)) & set(unlabelled_numbers(50))
    with pytest.raises(ValueError):
        unlabelled_numbers(-1)


def test_archive_layout(archive: bytes, members: dict[str, bytes | None]) -> None:
    assert len(archive) % 10240 == 0
    expected = {f"{TASK_DIR}/", f"{TASK_DIR}/dataset.json", f"{TASK_DIR}/._dataset.json"}
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        expected.add(f"{TASK_DIR}/{folder}/")
    for n in TRAIN_IDS:
        for folder in ("imagesTr", "labelsTr"):
            expected.add(f"{TASK_DIR}/{folder}/hepaticvessel_{n:03d}.nii.gz")
            expected.add(f"{TASK_DIR}/{folder}/._hepaticvessel_{n:03d}.nii.gz")
    for n in TEST_IDS:
        expected.add(f"{TASK_DIR}/imagesTs/hepaticvessel_{n:03d}.nii.gz")
        expected.add(f"{TASK_DIR}/imagesTs/._hepaticvessel_{n:03d}.nii.gz")
    assert set(members) == expected
    assert members[f"{TASK_DIR}/._dataset.json"] == APPLEDOUBLE


def test_dataset_json(members: dict[str, bytes | None]) -> None:
    meta = json.loads(members[f"{TASK_DIR}/dataset.json"])
    assert meta["name"] == "HepaticVessel"
    assert meta["labels"] == {"0": "background", "1": "Vessel", "2": "Tumour"}
    assert meta["modality"] == {"0": "CT"}
    assert meta["numTraining"] == 12 and meta["numTest"] == 2
    listed = [e["image"] for e in meta["training"]]
    assert sorted(listed) == [f"./imagesTr/hepaticvessel_{n:03d}.nii.gz" for n in TRAIN_IDS]
    assert listed != sorted(listed)  # shuffled, as in the real file
    assert all(e["label"] == e["image"].replace("imagesTr", "labelsTr") for e in meta["training"])
    assert meta["test"] == [f"./imagesTs/hepaticvessel_{n:03d}.nii.gz" for n in TEST_IDS]


def test_nifti_files_hold_the_cases(members: dict[str, bytes | None],
                                    cases: list[ToyCase]) -> None:
    for case in cases:
        folder = "imagesTr" if case.labelled else "imagesTs"
        img = _load(members[f"{TASK_DIR}/{folder}/{case.case_id}.nii.gz"])
        assert img.get_data_dtype() == np.int16
        assert img.shape == case.image.shape
        assert img.shape[:2] == (IN_PLANE, IN_PLANE) and 32 <= img.shape[2] <= 40
        sx, sy, sz = img.header.get_zooms()
        assert sx == sy and 0.75 <= sx <= 0.875 and sz == SLICE_MM
        np.testing.assert_array_equal(np.asanyarray(img.dataobj), case.image)
        np.testing.assert_array_equal(img.affine, case.affine)
        if case.labelled:
            lab = _load(members[f"{TASK_DIR}/labelsTr/{case.case_id}.nii.gz"])
            assert lab.get_data_dtype() == np.uint8
            np.testing.assert_array_equal(np.asanyarray(lab.dataobj), case.label)


def test_msd_adapter_reads_the_toy(tmp_path: Path) -> None:
    tar = tmp_path / "vessels-toy.tar"
    write_toy_archives([tar])
    extract_archives([tar], tmp_path / "raw")
    adapter = MSDAdapter(tmp_path / "raw")
    assert adapter.labels == {0: "background", 1: "Vessel", 2: "Tumour"}
    assert adapter.channels == ["CT"] and adapter.name == "HepaticVessel"
    assert adapter.labelled() == [f"hepaticvessel_{n:03d}" for n in TRAIN_IDS]
    assert adapter.unlabelled() == [f"hepaticvessel_{n:03d}" for n in TEST_IDS]
    rec = adapter.load("hepaticvessel_005")
    ref = make_case(0, 5)
    assert rec.label.shape == rec.channels[0].shape == ref.image.shape
    assert set(np.unique(rec.label).tolist()) == {0, 1, 2}  # this case has a tumour
    assert rec.spacing_xyz == pytest.approx(ref.zooms)
    assert rec.spacing_xyz[2] == SLICE_MM
    assert adapter.load("hepaticvessel_003").label is None


# ------------------------------------------------------------------------ contents


def test_vessels_bright_thick_branching(cases: list[ToyCase]) -> None:
    with_tumour = 0
    for case in cases:
        vessel, img = case.label == 1, case.image.astype(np.float64)
        bar = case.occluder
        assert set(np.unique(case.label).tolist()) <= {0, 1, 2}
        assert 0.01 < vessel.mean() < 0.04
        background = img[(case.label == 0) & ~bar]
        assert 55 < background.mean() < 65 and 10 < background.std() < 20
        assert img[vessel].mean() - background.mean() > 110
        # each tree is one 6-connected piece; two trees (or one if they touch)
        assert ndimage.label(vessel)[1] in (1, 2)
        # thick enough: most vessel voxels survive an erosion by the 6-neighbourhood
        assert ndimage.binary_erosion(vessel).sum() > 0.2 * vessel.sum()
        # branches of the two trees overlap in a projection along z: some rays meet
        # two separate vessel runs
        runs = (np.diff(vessel.astype(np.int8), axis=2) == 1).sum(axis=2) + vessel[:, :, 0]
        assert (runs >= 2).sum() >= 20
        # learnable: a plain threshold already separates vessels well (the bone bar
        # aside: the MIP stage's occluder removal and the networks must deal with it)
        pred = (img >= 140) & ~bar
        dice = 2 * (pred & vessel).sum() / (pred.sum() + vessel.sum())
        assert dice > 0.9
        with_tumour += bool((case.label == 2).any())
        # the bone bar: brighter than every vessel, labelled background, touching no
        # vessel or tumour, and on the rays (along z) of at least 20 vessel voxels
        assert img[bar].max() >= 700 and img[vessel].max() < 300
        assert np.all(img[bar & (img > 300)] > img[vessel].max())
        assert not (bar & (case.label > 0)).any()
        assert (bar.any(axis=2) & vessel.any(axis=2)).sum() >= 20
        assert ndimage.label(img > 450)[1] == 1  # one straight bar
    assert 3 <= with_tumour <= len(cases) - 3


def test_rasterise_tubes_exact_set() -> None:
    """A straight tapered tube: voxels inside are those within the local radius."""
    seg = Segment((2.0, 5.0, 4.0), (10.0, 5.0, 4.0), 2.0, 1.0, 100.0)
    inside, enhance = rasterise_tubes([seg], (14, 11, 9))
    i, j, k = np.meshgrid(np.arange(14), np.arange(11), np.arange(9), indexing="ij")
    t = np.clip((i - 2.0) / 8.0, 0.0, 1.0)
    d = np.sqrt((i - 2.0 - 8.0 * t) ** 2 + (j - 5.0) ** 2 + (k - 4.0) ** 2)
    expected = d <= 2.0 - t
    np.testing.assert_array_equal(inside, expected)
    assert inside[2, 7, 4] and not inside[10, 7, 4] and inside[10, 6, 4]
    assert np.all(enhance[inside] == 100.0)
    rim = ~inside & (enhance > 0)
    assert rim.any() and enhance[rim].max() <= 50.0
    assert enhance[0, 0, 0] == 0.0


def test_grow_tree_radii_shrink_and_stay_inside() -> None:
    shape = (64, 64, 36)
    segs = grow_tree(CounterRNG(7, "tree"), shape, (2.0, 30.0, 18.0), (1.0, 0.1, 0.0),
                     3.0, 24.0, 150.0)
    assert segs == grow_tree(CounterRNG(7, "tree"), shape, (2.0, 30.0, 18.0),
                             (1.0, 0.1, 0.0), 3.0, 24.0, 150.0)
    assert len(segs) >= 9  # trunk + at least two generations of branches
    assert segs[0].ra == 3.0
    for s in segs:
        assert s.rb < s.ra and s.rb >= MIN_RADIUS * 0.9 - 1e-12
        for p in (s.a, s.b):
            assert all(MARGIN <= p[a] <= shape[a] - 1 - MARGIN for a in range(3))
    # pieces are chained or start at a branch point: every start is an earlier end
    ends = {s.b for s in segs}
    assert all(s.a in ends for s in segs[1:])
    assert min(s.ra for s in segs) < 1.6 < max(s.ra for s in segs)
    assert not any(math.isnan(c) for s in segs for c in (*s.a, *s.b))
