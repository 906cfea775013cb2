"""Tests for segline.datasets.verse: the VerSe-layout adapter (``--adapter verse``) on
small fixture-built folders (top folders, ses- sessions, unlabelled CTs, classes as
the union of the vertebra values present, label_values, one-line errors)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segline.datasets.verse import VERTEBRAE, VerseAdapter, mask_values, to_verse_values
from segline.errors import InputError
from segline.preprocess.slicing import SliceParams, get_adapter, slice_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "preprocess" / "slice.py"
SHAPE = (6, 5, 8)  # (X, Y, Z)
AFFINE = np.diag([-1.5, -1.5, 2.5, 1.0])


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def ct() -> np.ndarray:
    img = np.full(SHAPE, 40, np.int16)
    img[1:5, 1:4, 1:7] = 400
    return img


def mask(values: list[int]) -> np.ndarray:
    """One vertebra per pair of z slices (z 0-1: first value, 2-3 nothing, ...)."""
    lab = np.zeros(SHAPE, np.uint8)
    for i, v in enumerate(values):
        lab[1:5, 1:4, 3 * i : 3 * i + 2] = v
    return lab


def add_case(top: Path, stem: str, values: list[int] | None, session: str | None = None) -> None:
    subject = stem.split("_")[0]
    sub = Path(subject) / session if session else Path(subject)
    save(top / "rawdata" / sub / f"{stem}_ct.nii.gz", ct())
    if values is not None:
        save(top / "derivatives" / sub / f"{stem}_seg-vert_msk.nii.gz", mask(values))
        (top / "derivatives" / sub / f"{stem}_seg-subreg_ctd.json").write_text("[]")
        (top / "derivatives" / sub / f"{stem}_seg-vert_snp.png").write_bytes(b"png")


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """Two top folders: labelled cases (one with a session), an unlabelled CT."""
    raw = tmp_path / "raw"
    train = raw / "dataset-verse19training"
    add_case(train, "sub-verse010", [20, 21])
    add_case(train, "sub-verse2_ses-20200101", [8, 9, 28], session="ses-20200101")
    # VerSe'20-like: several sessions of one subject, the entity in the stem.
    add_case(train, "sub-gl003_ses-20200101", [9], session="ses-20200101")
    test = raw / "dataset-verse19test"
    add_case(test, "sub-verse100_dir-ax", None)
    (raw / "._junk").write_bytes(b"x")
    return raw


def test_registered_cases_and_classes(raw: Path) -> None:
    adapter = get_adapter("verse")(raw)
    assert isinstance(adapter, VerseAdapter)
    assert adapter.labelled() == [
        "sub-gl003_ses-20200101",
        "sub-verse2_ses-20200101",
        "sub-verse010",
    ]
    assert adapter.unlabelled() == ["sub-verse100_dir-ax"]
    assert adapter.channels == ["CT"]
    assert adapter.labels == {0: "background", 1: "T1", 2: "T2", 3: "L1", 4: "L2", 5: "T13"}
    assert adapter.info["label_values"] == {"0": 0, "1": 8, "2": 9, "3": 20, "4": 21, "5": 28}
    assert adapter.info["folders"] == ["dataset-verse19test", "dataset-verse19training"]


def test_vertebra_names() -> None:
    assert [VERTEBRAE[k] for k in (1, 7, 8, 19, 20, 24, 25, 26, 27, 28)] == [
        "C1",
        "C7",
        "T1",
        "T12",
        "L1",
        "L5",
        "L6",
        "sacrum",
        "coccyx",
        "T13",
    ]


def test_load_maps_values_to_class_indices(raw: Path) -> None:
    adapter = VerseAdapter(raw)
    rec = adapter.load("sub-verse2_ses-20200101")
    assert rec.label is not None and rec.label.dtype == np.uint8
    assert sorted(np.unique(rec.label).tolist()) == [0, 1, 2, 5]
    assert np.array_equal(rec.label, adapter._lut[mask([8, 9, 28])])
    assert rec.label[2, 2, 0] == 1 and rec.label[2, 2, 3] == 2 and rec.label[2, 2, 6] == 5
    assert rec.image_files == [
        "dataset-verse19training/rawdata/sub-verse2/ses-20200101/sub-verse2_ses-20200101_ct.nii.gz"
    ]
    assert rec.label_file is not None and rec.label_file.endswith(
        "sub-verse2/ses-20200101/sub-verse2_ses-20200101_seg-vert_msk.nii.gz"
    )
    assert rec.spacing_xyz == (1.5, 1.5, 2.5)
    assert np.array_equal(rec.channels[0], ct().astype(np.float32))
    unl = adapter.load("sub-verse100_dir-ax")
    assert unl.label is None and unl.label_file is None
    assert np.array_equal(
        to_verse_values(rec.label, adapter.info["label_values"]), mask([8, 9, 28])
    )


def test_raw_folder_is_the_top_folder(tmp_path: Path) -> None:
    add_case(tmp_path / "raw", "sub-x1", [24])
    adapter = VerseAdapter(tmp_path / "raw")
    assert adapter.labelled() == ["sub-x1"] and adapter.unlabelled() == []
    assert adapter.labels == {0: "background", 1: "L5"}
    assert adapter.info["folders"] == ["."]


def test_slice_stage_store(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases"
    params = SliceParams(
        window=(400.0, 1800.0),
        spacing=(2.0, 2.0, 2.0),
        n_test=1,
        n_val=1,
        crop="label",
        crop_margin=2.0,
    )
    split = slice_dataset(VerseAdapter(raw), out, params)
    assert split["test"] == ["sub-gl003_ses-20200101"]
    assert split["infer"] == ["sub-verse100_dir-ax"]
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["source"] == "verse"
    assert dataset["labels"]["5"] == "T13" and len(dataset["labels"]) == 6
    assert dataset["source_info"]["label_values"]["3"] == 20
    lab = np.load(out / "sub-verse010" / "label.npy")
    assert sorted(np.unique(lab).tolist()) == [0, 3, 4]
    # Cropped to the two vertebrae + 2 mm (the margin rounds up to one voxel), then
    # resampled toward 2 mm: 15 mm along z -> 8 voxels of 1.875 mm, 9 mm in-plane -> 4.
    meta = json.loads((out / "sub-verse010" / "meta.json").read_text())
    assert (meta["shape"], meta["spacing"], meta["crop"]) == (
        [8, 4, 4],
        [1.875, 1.875, 2.25],
        "label",
    )
    assert lab[:, 1, 1].tolist() == [3, 3, 3, 0, 4, 4, 4, 0]  # L1, a gap, L2 (class indices)


def _break(raw: Path, what: str) -> None:
    train = raw / "dataset-verse19training"
    der = train / "derivatives" / "sub-verse010" / "sub-verse010_seg-vert_msk.nii.gz"
    if what == "mask_without_ct":
        save(train / "derivatives" / "sub-verse7" / "sub-verse7_seg-vert_msk.nii.gz", mask([8]))
    elif what == "grid_shape":
        save(der, np.zeros((6, 5, 7), np.uint8))
    elif what == "grid_affine":
        save(der, mask([20]), np.diag([-1.5, -1.5, 3.0, 1.0]))
    elif what == "value":
        save(der, mask([20, 30]))
    elif what == "unreadable":
        der.write_bytes(b"not a nifti at all")
    elif what == "not_ct":
        save(train / "rawdata" / "sub-verse010" / "sub-verse010_t1.nii.gz", ct())
    elif what == "subject_name":
        save(train / "rawdata" / "sub-verse010" / "sub-other_ct.nii.gz", ct())
    elif what == "session":
        save(train / "rawdata" / "sub-verse2" / "ses-20200101" / "sub-verse2_ct.nii.gz", ct())
    elif what == "twice":
        add_case(raw / "dataset-verse19test", "sub-verse010", None)


@pytest.mark.parametrize(
    ("what", "named", "problem"),
    [
        ("mask_without_ct", "sub-verse7_seg-vert_msk.nii.gz", "mask without its CT"),
        (
            "grid_shape",
            "sub-verse010_seg-vert_msk.nii.gz",
            "case sub-verse010: mask shape (6, 5, 7) differs from the CT's (6, 5, 8)",
        ),
        ("grid_affine", "sub-verse010_seg-vert_msk.nii.gz", "mask affine differs from the CT's"),
        (
            "value",
            "sub-verse010_seg-vert_msk.nii.gz",
            "label values [30] outside the VerSe vertebra values 1-28",
        ),
        ("unreadable", "sub-verse010_seg-vert_msk.nii.gz", "cannot read NIfTI"),
        ("not_ct", "sub-verse010_t1.nii.gz", "unexpected NIfTI file"),
        ("subject_name", "sub-other_ct.nii.gz", "does not start with its subject folder's name"),
        ("session", "sub-verse2_ct.nii.gz", "file name does not carry its session ses-20200101"),
        ("twice", "sub-verse010_ct.nii.gz", "case sub-verse010 present twice"),
    ],
)
def test_cli_bad_input_one_line(
    raw: Path, tmp_path: Path, what: str, named: str, problem: str
) -> None:
    _break(raw, what)
    with pytest.raises(InputError) as err:
        VerseAdapter(raw)
    assert Path(err.value.where).name == named and problem in err.value.problem
    out = tmp_path / "cases"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--adapter",
            "verse",
            "--raw",
            str(raw),
            "--out",
            str(out),
            "--n-test",
            "1",
            "--n-val",
            "0",
            "--window=400,1800",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("segline: ")
    assert "Traceback" not in res.stderr and problem in res.stderr
    assert not out.exists() and not (tmp_path / "cases_tmp").exists()


def test_no_verse_folder(tmp_path: Path) -> None:
    (tmp_path / "raw" / "something").mkdir(parents=True)
    with pytest.raises(InputError, match="no VerSe folder"):
        VerseAdapter(tmp_path / "raw")
    with pytest.raises(InputError, match="raw folder not found"):
        VerseAdapter(tmp_path / "nope")
    (tmp_path / "raw" / "something" / "rawdata").mkdir()
    with pytest.raises(InputError, match="no CT"):
        VerseAdapter(tmp_path / "raw")


def test_adapter_pickles_for_jobs(raw: Path) -> None:
    """--jobs sends the adapter to worker processes: it must pickle and load the same."""
    adapter = VerseAdapter(raw)
    copy = pickle.loads(pickle.dumps(adapter))
    a, b = adapter.load("sub-verse010"), copy.load("sub-verse010")
    assert a.label is not None and b.label is not None
    assert np.array_equal(a.label, b.label) and copy.labels == adapter.labels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_mask_values_counts_agree_with_unique(tmp_path: Path, dtype: type) -> None:
    """The counting path (unsigned masks, nibabel's Fortran order, several chunks of
    2**23 voxels) finds exactly the non-zero values np.unique finds."""
    rng = np.random.default_rng(3)
    data = np.zeros((256, 256, 300), dtype=dtype)  # 19.7 M voxels: three chunks
    data[rng.integers(0, 256, 50), rng.integers(0, 256, 50), rng.integers(0, 300, 50)] = (
        rng.choice([1, 7, 19, 24, 28], 50)
    )
    data[-1, -1, -1] = 5  # in the last chunk only
    path = tmp_path / "sub-1_seg-vert_msk.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    expected = [int(v) for v in np.unique(data) if v]
    assert mask_values(path) == expected
    assert 5 in expected and 28 in expected
