"""Tests for segline.datasets.toy_vertebrae and ``make_toy.py --dataset vertebrae``: the
toy spine archive is byte-stable (md5 pinned in lineage/vertebrae-toy.lineage), has the
VerSe layout, and each case is a learnable spine: 6-10 labelled vertebrae with
consecutive VerSe values, separated along z by darker discs."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import re
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from segline.datasets.deterministic import tar_bytes
from segline.datasets.toy_vertebrae import (
    TEST_DIR,
    TRAIN_DIR,
    ToyVertebraeCase,
    make_case,
    toy_vertebrae_cases,
    toy_vertebrae_entries,
    write_toy_archives,
)
from segline.datasets.verse import VerseAdapter

ROOT = Path(__file__).resolve().parents[1]
LINEAGE = ROOT / "lineage" / "vertebrae-toy.lineage"


@pytest.fixture(scope="module")
def entries() -> list[tuple[str, bytes]]:
    return toy_vertebrae_entries()


@pytest.fixture(scope="module")
def archive(entries: list[tuple[str, bytes]]) -> bytes:
    return tar_bytes(entries)


def _load(raw: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(raw))


@pytest.fixture(scope="module")
def cases(entries: list[tuple[str, bytes]]) -> list[ToyVertebraeCase]:
    """The cases as the archive holds them (image and mask read back from the files)."""
    files = dict(entries)
    out = []
    for number in range(1, 19):
        labelled = number <= 16
        sub = f"sub-toy{number:03d}"
        cts = [n for n in files if n.endswith("_ct.nii.gz") and f"/rawdata/{sub}/" in n]
        assert len(cts) == 1
        img = _load(files[cts[0]])
        image = np.asanyarray(img.dataobj)
        masks = [n for n in files if n.endswith("_seg-vert_msk.nii.gz") and f"/{sub}/" in n]
        assert len(masks) == (1 if labelled else 0)
        if labelled:
            label = np.asanyarray(_load(files[masks[0]]).dataobj)
            values = tuple(int(v) for v in np.unique(label) if v)
        else:
            label, values = np.zeros_like(image, np.uint8), ()
        out.append(ToyVertebraeCase(number, image, label, img.affine, values, labelled))
    return out


def _lineage() -> tuple[str, str, int]:
    text = LINEAGE.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    md5, path = re.fullmatch(r"([0-9a-f]{32})  (\S+)", lines[0]).groups()
    size = int(re.search(r"^# size: (\d+) bytes$", text, re.M).group(1))
    return md5, path, size


# ------------------------------------------------------------------ byte stability


def test_md5_matches_lineage(archive: bytes) -> None:
    """Key regression test: if the generator's output changes, update the lineage file."""
    md5, path, size = _lineage()
    assert path == "data/vertebrae-toy.tar"
    assert len(archive) == size
    assert hashlib.md5(archive).hexdigest() == md5


def test_deterministic_and_seeded() -> None:
    a, b = make_case(0, 5), make_case(0, 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    c = make_case(1, 5)
    assert not np.array_equal(a.image, c.image)
    # Cases are independent streams: a smaller set starts with the same cases.
    few = toy_vertebrae_cases(0, n_labelled=1, n_unlabelled=1)
    assert [x.case_id for x in few] == ["sub-toy001", "sub-toy002"]
    assert np.array_equal(few[0].image, make_case(0, 1).image)
    assert not few[1].labelled
    with pytest.raises(ValueError):
        toy_vertebrae_cases(0, n_labelled=-1)


def test_make_toy_registration(tmp_path: Path) -> None:
    """make_toy.py knows the generator (the make-level test runs it end to end)."""
    spec = importlib.util.spec_from_file_location("make_toy", ROOT / "preprocess" / "make_toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.get_toy("vertebrae") is write_toy_archives
    with pytest.raises(ValueError, match="one archive"):
        write_toy_archives([tmp_path / "a.tar", tmp_path / "b.tar"])


# ------------------------------------------------------------------ layout


def test_archive_layout(archive: bytes, entries: list[tuple[str, bytes]]) -> None:
    names = [n for n, _ in entries]
    assert names == sorted(names)
    assert {n.split("/")[0] for n in names} == {TRAIN_DIR, TEST_DIR}
    cts = [n for n in names if n.endswith("_ct.nii.gz")]
    masks = [n for n in names if n.endswith("_seg-vert_msk.nii.gz")]
    ctds = [n for n in names if n.endswith("_seg-subreg_ctd.json")]
    assert (len(cts), len(masks), len(ctds)) == (18, 16, 16)
    assert f"{TRAIN_DIR}/rawdata/sub-toy004/ses-01/sub-toy004_ses-01_ct.nii.gz" in cts
    assert f"{TRAIN_DIR}/derivatives/sub-toy003/sub-toy003_dir-ax_seg-vert_msk.nii.gz" in masks
    assert f"{TEST_DIR}/rawdata/sub-toy017/sub-toy017_ct.nii.gz" in cts
    assert not any(n.startswith(f"{TEST_DIR}/derivatives") for n in names)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        for m in tf.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")


def test_adapter_reads_the_toy(tmp_path: Path, archive: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        tf.extractall(tmp_path / "raw", filter="data")
    adapter = VerseAdapter(tmp_path / "raw")
    assert len(adapter.labelled()) == 16 and adapter.unlabelled() == ["sub-toy017", "sub-toy018"]
    assert adapter.labelled()[:4] == [
        "sub-toy001",
        "sub-toy002",
        "sub-toy003_dir-ax",
        "sub-toy004_ses-01",
    ]
    assert adapter.values == list(range(8, 25))  # T1..L5 over the data set
    assert adapter.labels[1] == "T1" and adapter.labels[17] == "L5"


# ------------------------------------------------------------------ content


def test_geometry(cases: list[ToyVertebraeCase]) -> None:
    for case in cases:
        nx, ny, nz = case.image.shape
        assert (nx, ny) == (72, 72) and 48 <= nz <= 84
        assert case.image.dtype == np.int16 and case.label.dtype == np.uint8
        assert nib.affines.voxel_sizes(case.affine).tolist() == [1.5, 1.5, 2.5]


def test_vertebrae_per_case(cases: list[ToyVertebraeCase]) -> None:
    counts = []
    for case in cases[:16]:
        values = case.values
        assert 6 <= len(values) <= 10
        assert list(values) == list(range(values[0], values[0] + len(values)))  # consecutive
        assert 8 <= values[0] and values[-1] <= 24  # T1..L5
        counts.append(len(values))
    assert len(set(counts)) >= 4 and len({c.values[0] for c in cases[:16]}) >= 5


def test_neighbours_separated_along_the_axis(cases: list[ToyVertebraeCase]) -> None:
    """Every vertebra's z range ends 2-3 slices (5-7.5 mm) before its caudal neighbour's."""
    for case in cases[:16]:
        ranges = []
        for value in case.values:
            zs = np.nonzero((case.label == value).any(axis=(0, 1)))[0]
            ranges.append((int(zs[0]), int(zs[-1])))
            # One connected piece per vertebra.
            assert ndimage.label(case.label == value)[1] == 1
        for upper, lower in zip(ranges[:-1], ranges[1:], strict=True):
            # Smaller value = cranial = higher z (k grows toward superior).
            assert 2 <= upper[0] - lower[1] - 1 <= 3, (case.case_id, upper, lower)


def test_hu_and_contrast(cases: list[ToyVertebraeCase]) -> None:
    for case in cases[:16]:
        img = case.image.astype(np.float64)
        assert abs(img[:3, :3, :].mean() + 1000.0) < 10.0  # air in the corners
        lab = case.label > 0
        inplane = np.ones((3, 3, 1), bool)  # thin bodies (3 slices) survive in-plane erosion
        core = ndimage.binary_erosion(lab, inplane, iterations=2)
        shell = lab & ~ndimage.binary_erosion(lab, inplane)
        bone_core, bone_shell = float(np.median(img[core])), float(np.median(img[shell]))
        assert 150 < bone_core < 260 and bone_shell > bone_core + 30  # blurred at the rim
        assert np.percentile(img[lab], 95) > bone_core + 150  # cortical walls, processes
        # Discs: the gap slices between two neighbours, below the upper one's bottom
        # slice (its body only: the processes are thinner in z), less its rim.
        for upper, lower in zip(case.values[:-1], case.values[1:], strict=True):
            zs_upper = np.nonzero((case.label == upper).any(axis=(0, 1)))[0]
            zs_lower = np.nonzero((case.label == lower).any(axis=(0, 1)))[0]
            foot = ndimage.binary_erosion(case.label[:, :, zs_upper[0]] > 0)
            disc = img[:, :, zs_lower[-1] + 1 : zs_upper[0]][foot]
            assert disc.size > 5
            assert 60 < float(np.median(disc)) < bone_core - 50, (case.case_id, upper)
        tissue = img[~ndimage.binary_dilation(lab, iterations=4) & (img > -500)]
        assert 0 < float(np.median(tissue)) < 80
