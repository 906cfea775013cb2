"""Tests for segline.datasets.toy_spleen and preprocess/make_toy.py: the toy archive is
byte-stable (md5 pinned in lineage/spleen-toy.lineage), has the MSD Task09 layout, and
its volumes look like abdominal CT with a learnable spleen."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import re
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from segline.datasets.deterministic import APPLEDOUBLE
from segline.datasets.toy_spleen import (
    TASK_DIR,
    ToyCase,
    make_case,
    toy_spleen_bytes,
    toy_spleen_cases,
    training_numbers,
    unlabelled_numbers,
    write_toy_spleen,
)

ROOT = Path(__file__).resolve().parents[1]
LINEAGE = ROOT / "lineage" / "spleen-toy.lineage"
TRAIN_IDS = [2, 3, 6, 8, 9, 10, 12, 13, 14, 16, 17, 18]
TEST_IDS = [1, 4]
# The keys of the real Task09_Spleen/dataset.json ("relase" is spelled so there).
MSD_KEYS = {
    "name",
    "description",
    "reference",
    "licence",
    "relase",
    "tensorImageSize",
    "modality",
    "labels",
    "numTraining",
    "numTest",
    "training",
    "test",
}


@pytest.fixture(scope="module")
def archive() -> bytes:
    return toy_spleen_bytes()


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
    return toy_spleen_cases()


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


# ---------------------------------------------------------------------------
# Byte stability
# ---------------------------------------------------------------------------


def test_md5_matches_lineage(archive: bytes) -> None:
    """Key regression test: if the generator's output changes, update the lineage file."""
    md5, path, size = _lineage()
    assert path == "data/spleen-toy.tar"
    assert len(archive) == size
    assert hashlib.md5(archive).hexdigest() == md5


def test_two_generations_identical(archive: bytes) -> None:
    assert toy_spleen_bytes() == archive


def test_seed_changes_data() -> None:
    a, b = make_case(0, 2), make_case(1, 2)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.label, b.label)


def test_write_toy_spleen_atomic(tmp_path: Path, archive: bytes) -> None:
    out = tmp_path / "data" / "spleen-toy.tar"
    write_toy_spleen(out)
    assert out.read_bytes() == archive
    assert sorted(p.name for p in out.parent.iterdir()) == ["spleen-toy.tar"]  # no .tmp


def test_make_toy_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("make_toy", ROOT / "preprocess" / "make_toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "spleen-toy.tar"
    assert module.main(["--dataset", "spleen", "--out", str(out)]) == 0
    assert hashlib.md5(out.read_bytes()).hexdigest() == _lineage()[0]
    assert "spleen-toy.tar" in capsys.readouterr().out
    assert set(module.toy_names()) >= {"spleen"}
    with pytest.raises(SystemExit) as exc:
        module.main(["--dataset", "nope", "--out", str(out)])
    assert exc.value.code == 2


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------


def test_case_numbers() -> None:
    assert training_numbers(12) == TRAIN_IDS
    assert unlabelled_numbers(2) == TEST_IDS
    assert not set(training_numbers(40)) & set(unlabelled_numbers(20))
    with pytest.raises(ValueError):
        unlabelled_numbers(-1)


def test_archive_layout(archive: bytes, members: dict[str, bytes | None]) -> None:
    assert len(archive) % 10240 == 0
    names = set(members)
    expected = {f"{TASK_DIR}/", f"{TASK_DIR}/dataset.json", f"{TASK_DIR}/._dataset.json"}
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        expected.add(f"{TASK_DIR}/{folder}/")
        ids = TEST_IDS if folder == "imagesTs" else TRAIN_IDS
        for n in ids:
            expected.add(f"{TASK_DIR}/{folder}/spleen_{n}.nii.gz")
            expected.add(f"{TASK_DIR}/{folder}/._spleen_{n}.nii.gz")
    assert names == expected
    assert all(n.startswith(f"{TASK_DIR}/") for n in names)
    assert list(members) == sorted(members)  # folders come first, then sorted paths
    for name, data in members.items():
        if "/._" in name:
            assert data == APPLEDOUBLE and data[:4] == b"\x00\x05\x16\x07"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        for m in tf.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")


def test_dataset_json(members: dict[str, bytes | None]) -> None:
    meta = json.loads(members[f"{TASK_DIR}/dataset.json"])
    assert set(meta) == MSD_KEYS
    assert meta["tensorImageSize"] == "3D"
    assert meta["modality"] == {"0": "CT"}
    assert meta["labels"] == {"0": "background", "1": "spleen"}
    assert (meta["numTraining"], meta["numTest"]) == (12, 2)
    training = meta["training"]
    listed = [
        int(re.fullmatch(r"\./imagesTr/spleen_(\d+)\.nii\.gz", t["image"]).group(1))
        for t in training
    ]
    assert sorted(listed) == TRAIN_IDS
    assert listed != TRAIN_IDS  # shuffled like the real file: readers must sort
    for item in training:
        assert set(item) == {"image", "label"}
        assert item["label"] == item["image"].replace("imagesTr", "labelsTr")
        assert f"{TASK_DIR}/{item['image'][2:]}" in members
        assert f"{TASK_DIR}/{item['label'][2:]}" in members
    assert meta["test"] == [f"./imagesTs/spleen_{n}.nii.gz" for n in TEST_IDS]


def test_nifti_files_match_cases(members: dict[str, bytes | None], cases: list[ToyCase]) -> None:
    assert [c.case_id for c in cases] == [f"spleen_{n}" for n in TRAIN_IDS + TEST_IDS]
    for case in cases:
        folder = "imagesTr" if case.labelled else "imagesTs"
        img = _load(members[f"{TASK_DIR}/{folder}/{case.case_id}.nii.gz"])
        data = np.asanyarray(img.dataobj)
        assert data.dtype == np.int16 and np.array_equal(data, case.image)
        assert np.array_equal(img.affine, case.affine)
        zooms = img.header.get_zooms()
        assert 0.78 <= zooms[0] == zooms[1] <= 0.86 and zooms[2] == 5.0
        assert case.zooms == zooms
        assert img.affine[0, 0] < 0 and img.affine[1, 1] < 0 and img.affine[2, 2] > 0
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        if case.labelled:
            lab = _load(members[f"{TASK_DIR}/labelsTr/{case.case_id}.nii.gz"])
            ldata = np.asanyarray(lab.dataobj)
            assert ldata.dtype == np.uint8 and ldata.shape == data.shape
            assert np.array_equal(ldata, case.label)
            assert np.array_equal(lab.affine, img.affine)
        else:
            assert f"{TASK_DIR}/labelsTr/{case.case_id}.nii.gz" not in members


# ---------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------


def test_shapes(cases: list[ToyCase]) -> None:
    depths = []
    for case in cases:
        nx, ny, nz = case.image.shape
        assert (nx, ny) == (96, 96) and 28 <= nz <= 40
        assert case.label.shape == case.image.shape
        depths.append(nz)
    assert len(set(depths)) >= 5


def test_labels_binary_with_empty_end_slices(cases: list[ToyCase]) -> None:
    for case in cases:
        assert set(np.unique(case.label).tolist()) == {0, 1}
        per_slice = case.label.sum(axis=(0, 1))
        assert per_slice[:3].sum() == 0 and per_slice[-3:].sum() == 0
        assert per_slice.max() > 100  # a sizeable organ in its middle slices


def test_organ_size_and_position_vary(cases: list[ToyCase]) -> None:
    sizes = [int(c.label.sum()) for c in cases]
    centres = np.array([np.argwhere(c.label).mean(axis=0) for c in cases])
    assert len(set(sizes)) == len(cases)
    assert max(sizes) > 2 * min(sizes)
    assert np.all(centres.std(axis=0) > 1.0)  # voxels, along x, y and z
    # Patient's left (high i: the x axis points to the left) and posterior (high j).
    assert np.all(centres[:, 0] > 48) and np.all(centres[:, 1] > 48)


def test_hu_ranges(cases: list[ToyCase]) -> None:
    for case in cases:
        img = case.image
        assert img.min() >= -1024 and img.max() <= 3071
        corners = img[:4, :4, :]
        assert abs(float(corners.mean()) + 1000.0) < 3.0  # air
        assert 400 < img.max() < 1200  # bone
        centre = img[40:56, 30:50, :]
        assert 20 < float(np.median(centre)) < 100  # soft tissue / liver
        assert np.mean(img < -900) > 0.15  # air outside the body


def test_organ_brighter_than_surroundings(cases: list[ToyCase]) -> None:
    for case in cases:
        organ = case.label.astype(bool)
        core = ndimage.binary_erosion(organ, iterations=1)
        ring = ndimage.binary_dilation(organ, iterations=5) & ~ndimage.binary_dilation(
            organ, iterations=2
        )
        core_mean = float(case.image[core].mean())
        ring_mean = float(case.image[ring].mean())
        assert 125 < core_mean < 155
        assert core_mean - ring_mean > 80


def test_organ_separable_by_threshold(cases: list[ToyCase]) -> None:
    """A fixed HU window segments the organ well: learnable by a small CNN."""
    for case in cases:
        pred = (case.image > 110) & (case.image < 300)
        truth = case.label.astype(bool)
        dice = 2 * np.sum(pred & truth) / (pred.sum() + truth.sum())
        assert dice > 0.88, (case.case_id, dice)


def test_cases_independent() -> None:
    few = toy_spleen_cases(seed=0, n_cases=2, n_test=1)
    assert [c.case_id for c in few] == ["spleen_2", "spleen_3", "spleen_1"]
    assert np.array_equal(few[1].image, make_case(0, 3).image)
    with pytest.raises(ValueError):
        toy_spleen_cases(n_cases=-1)
