"""Tests for segline.datasets.isles: the ISLES 2018 adapter (ids, channel order, labels,
unlabelled TESTING cases, layout variants), the slicing of its cases, the submission
naming hook, and every bad input through the slice CLI (one line naming the case)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segline.casestore import CaseStore
from segline.datasets.deterministic import nifti_bytes
from segline.datasets.isles import (
    CHANNELS,
    IslesAdapter,
    parse_volume_name,
    submission_name,
)
from segline.datasets.toy_isles import PREFIX, make_case, toy_isles_entries
from segline.errors import InputError
from segline.preprocess.slicing import SliceParams, get_adapter, slice_dataset

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "preprocess" / "slice.py"
N_TRAIN, N_TEST = 4, 2  # a small toy: cases as in the pinned archives, fewer of them
TRAIN_IDS = [f"train_case_{n}" for n in range(1, N_TRAIN + 1)]


def _write(root: Path, entries: list[tuple[str, bytes]], top: str = "") -> None:
    for name, data in entries:
        if name.startswith("__MACOSX/") or "CT_4DPWI" in name:
            continue  # what the unpack stage drops / isles.make excludes
        path = root / top / name if top else root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unpacked raw folder: TRAINING/case_1..4 (with OT), TESTING/case_1..2."""
    raw = tmp_path_factory.mktemp("isles") / "raw"
    train, test = toy_isles_entries(0, N_TRAIN, N_TEST)
    _write(raw, train + test)
    return raw


@pytest.fixture
def raw(template: Path, tmp_path: Path) -> Path:
    out = tmp_path / "raw"
    shutil.copytree(template, out)
    return out


def _folder(raw: Path, split: str, number: int, mod: str) -> Path:
    hits = list((raw / split / f"case_{number}").glob(f"{PREFIX}{mod}.*"))
    assert len(hits) == 1
    return hits[0]


# ------------------------------------------------------------------------ adapter


def test_registered_and_lists_cases(raw: Path) -> None:
    assert get_adapter("isles") is IslesAdapter
    adapter = IslesAdapter(raw)
    assert adapter.labelled() == TRAIN_IDS
    assert adapter.unlabelled() == ["test_case_1", "test_case_2"]
    assert adapter.labels == {0: "background", 1: "lesion"}
    assert adapter.channels == ["CT", "CT_CBV", "CT_CBF", "CT_MTT", "CT_Tmax"]
    assert adapter.source == "isles"
    assert adapter.info["training_dir"] == "TRAINING" and adapter.info["testing_dir"] == "TESTING"


def test_natural_order_of_ids(raw: Path) -> None:
    """case_10 sorts after case_2 (natural order, as casestore.sorted_cases)."""
    for n in (10, 11):
        shutil.copytree(raw / "TRAINING" / "case_2", raw / "TRAINING" / f"case_{n}")
    assert IslesAdapter(raw).labelled() == [*TRAIN_IDS[:4], "train_case_10", "train_case_11"]


def test_load_channel_order_label_geometry(raw: Path) -> None:
    adapter = IslesAdapter(raw)
    toy = make_case(0, 3, labelled=True)
    rec = adapter.load("train_case_3")
    assert rec.case_id == "train_case_3"
    assert len(rec.channels) == 5
    for chan, mod in zip(rec.channels, CHANNELS, strict=True):
        assert chan.dtype == np.float32
        assert np.array_equal(chan, toy.volumes[mod].astype(np.float32)), mod
    assert np.array_equal(rec.label, toy.volumes["OT"])
    assert np.array_equal(rec.affine, toy.affine)
    assert rec.spacing_xyz == tuple(float(abs(toy.affine[i, i])) for i in range(3))
    assert rec.image_files == [
        f"TRAINING/case_3/{toy.name(m)}/{toy.name(m)}.nii" for m in CHANNELS]
    assert rec.label_file == f"TRAINING/case_3/{toy.name('OT')}/{toy.name('OT')}.nii"
    test = adapter.load("test_case_2")
    assert test.label is None and test.label_file is None
    assert "TESTING/case_2/SMIR.Brain.XX.O.CT_MTT." in test.image_files[3]


def test_top_folders_and_ignored_extras(tmp_path: Path) -> None:
    """Zips with a top folder (ISLES2018_Training/TRAINING/...), a CT_4DPWI left in,
    .json sidecars and macOS hidden files are fine."""
    raw = tmp_path / "raw"
    train, test = toy_isles_entries(0, 2, 1)
    _write(raw, train, top="ISLES2018_Training")
    _write(raw, test, top="ISLES2018_Testing")
    pwi = next(e for e in train if "CT_4DPWI" in e[0] and e[0].endswith(".nii"))
    (raw / "ISLES2018_Training" / pwi[0]).parent.mkdir(parents=True)
    (raw / "ISLES2018_Training" / pwi[0]).write_bytes(pwi[1])
    ot = next((raw / "ISLES2018_Training" / "TRAINING" / "case_1").glob("*.OT.*"))
    (ot / f"{ot.name}.json").write_text("{}")
    (ot / f"._{ot.name}.nii").write_bytes(b"junk")
    adapter = IslesAdapter(raw)
    assert adapter.labelled() == ["train_case_1", "train_case_2"]
    assert adapter.unlabelled() == ["test_case_1"]
    assert adapter.case("train_case_1").ids["CT_4DPWI"] == "700001"
    assert adapter.load("train_case_1").image_files[0].startswith("ISLES2018_Training/TRAINING/")


def test_slice_stage_store(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases"
    params = SliceParams(window=(40.0, 80.0), inplane=32, n_test=1, n_val=1)
    split = slice_dataset(IslesAdapter(raw), out, params)
    assert split["test"] == ["train_case_1"] and split["val"] == ["train_case_2"]
    assert split["train"] == ["train_case_3", "train_case_4"]
    assert split["infer"] == ["test_case_1", "test_case_2"]
    store = CaseStore(out)
    assert store.dataset["channels"] == list(CHANNELS)
    assert store.dataset["labels"] == {"0": "background", "1": "lesion"}
    assert store.dataset["source"] == "isles"
    toy = make_case(0, 3)
    img = store.image("train_case_3", mmap=False)
    nz = toy.volumes["CT"].shape[2]
    assert img.shape == (5, nz, 32, 32) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert set(np.unique(store.label("train_case_3"))) == {0, 1}
    assert not store.has_label("test_case_1")
    meta = store.meta("test_case_1")
    assert meta["source_shape_xyz"][:2] == [64, 64]
    assert meta["source"]["label"] is None
    assert [op["op"] for op in meta["transforms"]] == ["to_zyx", "resample"]
    assert meta["spacing"][1] == pytest.approx(2 * meta["source_spacing_xyz"][1])


def test_brain_window_on_ct(raw: Path, tmp_path: Path) -> None:
    """CT goes through the brain window [0, 80] HU; no resampling here, so voxel values
    can be checked exactly."""
    out = tmp_path / "cases"
    slice_dataset(IslesAdapter(raw), out, SliceParams(window=(40.0, 80.0), n_test=1, n_val=1))
    toy = make_case(0, 4)
    ct = toy.volumes["CT"].T  # (Z, Y, X) like the store
    image = CaseStore(out).image("train_case_4", mmap=False)
    stored = image[0]
    expected = np.clip((ct.astype(np.float64) - 0.0) / 80.0, 0.0, 1.0)
    assert np.allclose(stored, expected, atol=1e-6)
    assert stored[ct == 40].min() == pytest.approx(0.5)
    # each perfusion map scaled on its own to [0, 1] (robust percentiles of the brain)
    for c, mod in enumerate(CHANNELS[1:], start=1):
        vol = toy.volumes[mod].T
        assert float(image[c].max()) == pytest.approx(1.0) and float(image[c].min()) == 0.0
        assert (image[c][vol == 0] == 0).all(), mod  # outside the brain
        lo, hi = np.percentile(vol[vol != 0].astype(np.float32), [0.5, 99.5])
        inside = (vol > lo) & (vol < hi)
        assert np.allclose(image[c][inside], (vol[inside] - lo) / (hi - lo), atol=1e-5), mod


# --------------------------------------------------------------- submission naming


def test_submission_name_from_store_meta(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases"
    slice_dataset(IslesAdapter(raw), out, SliceParams(window=(40.0, 80.0), n_test=1, n_val=1))
    store = CaseStore(out)
    toy = make_case(0, 2, labelled=False)
    mtt = toy.ids["CT_MTT"]
    assert mtt == 800011  # testing case_2: 4DPWI 800007, CT 800008, ..., MTT 800011
    assert submission_name(store.meta("test_case_2")) == f"SMIR.segline.{mtt}.nii"
    named = submission_name(store.meta("test_case_2"), "gdl_boundary")
    assert named == f"SMIR.gdl_boundary.{mtt}.nii"
    with pytest.raises(InputError, match="result name"):
        submission_name(store.meta("test_case_2"), "my.result")
    with pytest.raises(InputError, match="no CT_MTT source"):
        submission_name({"case_id": "x", "source": {"image": ["TESTING/case_1/a.nii"]}})
    with pytest.raises(InputError, match="no CT_MTT source"):
        submission_name({"case_id": "x"})


def test_parse_volume_name() -> None:
    assert parse_volume_name("SMIR.Brain.XX.O.CT_MTT.345565") == ("CT_MTT", "345565")
    assert parse_volume_name("SMIR.Brain.XX.O.OT.345566.nii") == ("OT", "345566")
    assert parse_volume_name("SMIR.Brain.XX.O.CT.345562.nii.gz") == ("CT", "345562")
    assert parse_volume_name("SMIR.Brain.XX.O.CT") is None
    assert parse_volume_name("notes.txt") is None


# --------------------------------------------------------------------- bad inputs


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _break(raw: Path, what: str) -> None:
    """Damage TRAINING/case_3 (or a TESTING case) of ``raw``."""
    case = raw / "TRAINING" / "case_3"
    if what == "missing_modality":
        shutil.rmtree(_folder(raw, "TRAINING", 3, "CT_CBF"))
    elif what == "shapes":
        toy = make_case(0, 3)
        folder = _folder(raw, "TRAINING", 3, "CT_MTT")
        short = toy.volumes["CT_MTT"][:, :, :-1]
        (folder / f"{folder.name}.nii").write_bytes(nifti_bytes(short, toy.affine))
    elif what == "no_ot":
        shutil.rmtree(_folder(raw, "TRAINING", 3, "OT"))
    elif what == "extra_file":
        (case / "notes.txt").write_text("x")
    elif what == "extra_file_in_volume":
        folder = _folder(raw, "TRAINING", 3, "CT")
        (folder / "copy.nii").write_bytes(b"")
    elif what == "two_ot":
        ot = _folder(raw, "TRAINING", 3, "OT")
        twin = ot.with_name(f"{PREFIX}OT.999999")
        twin.mkdir()
        shutil.copy(ot / f"{ot.name}.nii", twin / f"{twin.name}.nii")
    elif what == "unknown_modality":
        (case / f"{PREFIX}MR_DWI.123").mkdir()
    elif what == "ot_in_testing":
        ot = _folder(raw, "TRAINING", 3, "OT")
        dest = raw / "TESTING" / "case_1" / ot.name
        shutil.copytree(ot, dest)
    else:
        raise ValueError(what)


@pytest.mark.parametrize(
    ("what", "case", "problem"),
    [
        ("missing_modality", "case_3", "case train_case_3: missing modality CT_CBF"),
        ("shapes", "case_3",
         "case train_case_3: CT_MTT shape (64, 64, 7) differs from CT shape (64, 64, 8)"),
        ("no_ot", "case_3", "case train_case_3: no ground truth"),
        ("extra_file", "case_3/notes.txt", "unexpected file in case train_case_3"),
        ("extra_file_in_volume", "case_3/SMIR.Brain.XX.O.CT.700016/copy.nii",
         "unexpected file in case train_case_3"),
        ("two_ot", "case_3", "case train_case_3 has two OT volumes"),
        ("unknown_modality", "case_3/SMIR.Brain.XX.O.MR_DWI.123",
         "unknown modality 'MR_DWI' in case train_case_3"),
        ("ot_in_testing", "case_1/SMIR.Brain.XX.O.OT.700020",
         "case test_case_1: ground truth in a TESTING case"),
    ],
)
def test_cli_bad_input_one_line_naming_the_case(raw: Path, tmp_path: Path, what: str, case: str,
                                               problem: str) -> None:
    _break(raw, what)
    out = tmp_path / "cases"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--adapter", "isles", "--raw", str(raw), "--out", str(out),
         "--n-test", "1", "--n-val", "1", "--window=40,80"],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("segline: "), res.stderr
    assert f"/{case}" in res.stderr.split(": ")[1] + "/", res.stderr  # the path names the case
    assert problem in res.stderr, res.stderr
    assert not out.exists() and not (tmp_path / "cases_tmp").exists()


def test_no_training_folder(tmp_path: Path) -> None:
    (tmp_path / "raw" / "TESTING").mkdir(parents=True)
    with pytest.raises(InputError, match="no TRAINING folder"):
        IslesAdapter(tmp_path / "raw")
    with pytest.raises(InputError, match="raw folder not found"):
        IslesAdapter(tmp_path / "nope")


def test_stray_entry_in_training(raw: Path) -> None:
    (raw / "TRAINING" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"unexpected file in TRAINING \(expected case_N"):
        IslesAdapter(raw)
