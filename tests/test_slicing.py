"""Tests for the slicing stage (segline.preprocess.slicing and preprocess/slice.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from msd_builder import (
    SHAPE,
    TRAIN_IDS,
    hu_volume,
    image_volume,
    label_volume,
    make_task,
    save,
    source_affine,
)
from segline.casestore import CaseStore
from segline.datasets.msd import MSDAdapter
from segline.errors import InputError
from segline.preprocess import geometry
from segline.preprocess.slicing import SliceParams, main, remap_classes, slice_dataset

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "preprocess" / "slice.py"


def _window(hu: np.ndarray) -> np.ndarray:
    return np.clip((hu + 160.0) / 400.0, 0.0, 1.0)


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    make_task(tmp_path / "raw")
    return tmp_path / "raw"


def test_happy_path_store(raw: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cases"
    rc = main(["--raw", str(raw), "--out", str(out), "--n-test", "3", "--n-val", "2"])
    assert rc == 0
    assert not (tmp_path / "cases_tmp").exists()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11 and lines[0].startswith("spleen_1 [test]: 6x16x16 voxels")
    assert lines[-1].startswith("sliced 10 cases (train 3, val 2, test 3, infer 2)")
    store = CaseStore(out)
    assert store.split["test"] == ["spleen_1", "spleen_2", "spleen_3"]
    assert store.split["val"] == ["spleen_10", "spleen_11"]
    assert store.split["train"] == ["spleen_12", "spleen_20", "spleen_21"]
    assert store.split["infer"] == ["spleen_5", "spleen_7"]
    ds = store.dataset
    assert ds["labels"] == {"0": "background", "1": "spleen"} and ds["channels"] == ["CT"]
    assert ds["source"] == "msd" and ds["preprocessing"]["window"] == [40.0, 400.0]
    assert store.n_classes == 2 and store.n_channels == 1
    for cid in TRAIN_IDS:
        index = TRAIN_IDS.index(cid)
        img, lab = store.image(cid), store.label(cid)
        assert img.dtype == np.float32 and img.shape == (1, 6, 16, 16)
        assert lab.dtype == np.uint8 and lab.shape == (6, 16, 16)
        np.testing.assert_allclose(img[0], _window(image_volume(index)).T, atol=1e-6)
        np.testing.assert_array_equal(lab, label_volume(index).T)
        meta = store.meta(cid)
        assert meta["spacing"] == [5.0, 0.8, 0.8] and meta["shape"] == [6, 16, 16]
        assert meta["source"]["label"] == f"Task09_Spleen/labelsTr/{cid}.nii.gz"
    # known HU: label box is 200 HU -> 0.9; voxel (x=0,y=0,z=0) is -300 HU -> 0
    img0 = store.image("spleen_10")
    assert img0[0, 1, 4, 3] == pytest.approx(0.9) and img0[0, 0, 0, 0] == 0.0
    assert img0[0, 5, 15, 15] == pytest.approx(_window(hu_volume()[15, 15, 5]))
    assert not store.has_label("spleen_5") and store.image("spleen_5").shape == (1, 6, 16, 16)


def test_meta_round_trip_to_source_nifti(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases"
    params = SliceParams(n_test=2, n_val=1, inplane=24)
    slice_dataset(MSDAdapter(raw), out, params)
    store = CaseStore(out)
    meta = store.meta("spleen_21")
    assert [t["op"] for t in meta["transforms"]] == ["to_zyx", "resample"]
    assert store.label("spleen_21").shape == (6, 24, 24)
    assert meta["spacing"] == pytest.approx([5.0, 0.8 * 16 / 24, 0.8 * 16 / 24])
    back = geometry.to_source(np.asarray(store.label("spleen_21")), meta)
    truth = label_volume(TRAIN_IDS.index("spleen_21"))
    assert 2 * (back & truth).sum() / (back.sum() + truth.sum()) >= 0.95
    pred = geometry.write_nifti_like(back, meta, tmp_path / "pred.nii.gz")
    src = nib.load(raw / meta["source"]["image"][0])
    written = nib.load(pred)
    assert written.shape == src.shape
    np.testing.assert_allclose(written.affine, src.affine, atol=1e-5)


def test_spacing_no_window_and_label_map(tmp_path: Path) -> None:
    make_task(tmp_path / "raw", labels={"0": "background", "1": "vessel", "2": "tumour"})
    adapter = MSDAdapter(tmp_path / "raw")
    out = tmp_path / "cases"
    params = SliceParams(window=None, spacing=(2.5, None, 1.6), n_test=1, n_val=1,
                         label_map={1: 0})  # leaves {0, 2}: not contiguous
    with pytest.raises(InputError, match=r"not 0\.\.1"):
        slice_dataset(adapter, out, params)
    params.label_map = {2: 0}
    slice_dataset(adapter, out, params)
    store = CaseStore(out)
    assert store.dataset["labels"] == {"0": "background", "1": "vessel"}
    assert store.dataset["source_labels"]["2"] == "tumour"
    assert store.dataset["preprocessing"]["label_map"] == {"2": 0}
    img = store.image("spleen_1")
    assert img.shape == (1, 12, 16, 8)
    assert store.meta("spleen_1")["spacing"] == pytest.approx([2.5, 0.8, 1.6])
    assert img.min() < -250 and img.max() == pytest.approx(200.0, abs=1.0)  # raw HU kept


def test_remap_classes_names_and_lut() -> None:
    labels = {0: "background", 1: "a", 2: "b", 3: "c"}
    names, lut = remap_classes(labels, {3: 1})
    assert names == {0: "background", 1: "a+c", 2: "b"}
    assert lut[:4].tolist() == [0, 1, 2, 1]
    with pytest.raises(InputError, match="not a declared class"):
        remap_classes(labels, {7: 0})


def test_jobs_2_gives_identical_store(raw: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    slice_dataset(MSDAdapter(raw), one, SliceParams(n_test=2, n_val=1))
    slice_dataset(MSDAdapter(raw), two, SliceParams(n_test=2, n_val=1, jobs=2))
    for f in sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file()):
        assert (one / f).read_bytes() == (two / f).read_bytes(), f


def test_too_few_cases_fails_before_writing(raw: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="too few labelled cases"):
        main(["--raw", str(raw), "--out", str(tmp_path / "c"), "--n-test", "8"])
    assert not (tmp_path / "c").exists() and not (tmp_path / "c_tmp").exists()


def test_cli_subprocess_happy_path(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--adapter", "msd", "--raw", str(raw), "--out", str(out),
         "--n-test", "2", "--n-val", "2", "--window", "100,400"],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    img = CaseStore(out).image("spleen_10")
    assert img[0, 1, 4, 3] == pytest.approx(0.75)  # 200 HU in the window [-100, 300] HU


# ------------------------------------------------------------------ bad inputs


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _break(task: Path, what: str) -> Path:
    """Damage one file of the task; return the file the error must name."""
    img = task / "imagesTr" / "spleen_3.nii.gz"
    lab = task / "labelsTr" / "spleen_3.nii.gz"
    index = TRAIN_IDS.index("spleen_3")
    if what == "no_label":
        lab.unlink()
        return img
    if what == "shape":
        save(lab, label_volume(index)[:, :, :5])
        return lab
    if what == "affine":
        moved = source_affine()
        moved[:3, 3] += 0.5
        save(lab, label_volume(index), affine=moved)
        return lab
    if what == "label_value":
        bad = label_volume(index)
        bad[0, 0, 0] = 4
        save(lab, bad)
        return lab
    if what == "nan":
        bad = image_volume(index)
        bad[2, 3, 1] = np.nan
        save(img, bad)
        return img
    if what == "2d":
        save(img, image_volume(index)[:, :, 0])
        return img
    if what == "4d":
        save(img, np.stack([image_volume(index)] * 2, axis=-1))
        return img
    if what == "zero_spacing":
        save(img, image_volume(index).astype(np.int16), pixdim=(0.8, 0.8, 0.0))
        return img
    if what == "negative_spacing":
        save(img, image_volume(index).astype(np.int16), pixdim=(-0.8, 0.8, 5.0))
        return img
    raise ValueError(what)


@pytest.mark.parametrize(
    ("what", "problem"),
    [
        ("no_label", "image has no label"),
        ("shape", f"shape (16, 16, 5) does not match spleen_3.nii.gz shape {SHAPE}"),
        ("affine", "affine differs from spleen_3.nii.gz"),
        ("label_value", "label values [4] not in the declared classes [0, 1]"),
        ("nan", "1 NaN/inf voxel(s)"),
        ("2d", "expected a 3D image, got 2D shape (16, 16)"),
        ("4d", "expected a 3D image, got 4D shape (16, 16, 6, 2)"),
        ("zero_spacing", "spacing (pixdim) must be strictly positive, got (0.8, 0.8, 0) mm"),
        ("negative_spacing",
         "spacing (pixdim) must be strictly positive, got (-0.8, 0.8, 5) mm"),
    ],
)
def test_cli_bad_input_one_line_no_output(raw: Path, tmp_path: Path, what: str,
                                          problem: str) -> None:
    task = raw / "Task09_Spleen"
    culprit = _break(task, what)
    out = tmp_path / "cases"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--raw", str(raw), "--out", str(out),
         "--n-test", "1", "--n-val", "1"],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.endswith("\n"), res.stderr
    assert res.stderr.startswith(f"segline: {culprit}: {problem}"), res.stderr
    assert not out.exists() and not (tmp_path / "cases_tmp").exists()


def test_cli_argument_parsing() -> None:
    from segline.preprocess.slicing import build_parser

    args = build_parser().parse_args(
        ["--raw", "r", "--out", "o", "--spacing", "0,-,1.5", "--label-map", "2:0", "3:1",
         "--label-map", "4:0", "--window=-600,1500"])  # '=' for a negative level
    assert args.spacing == (None, None, 1.5)
    assert args.label_map == [(2, 0), (3, 1), (4, 0)]
    assert args.window == (-600.0, 1500.0)
    for bad in (["--window", "40"], ["--spacing", "1,-2,1"], ["--label-map", "a:b"],
                ["--inplane", "0"], ["--n-test", "-1"], ["--window", "nan,400"],
                ["--window", "40,inf"], ["--spacing", "inf,1,1"], ["--percentiles", "0,nan"],
                ["--body-hu", "nan"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--raw", "r", "--out", "o", *bad])


def test_multimodal_channels_percentile_normalised(tmp_path: Path) -> None:
    ids = ["p_1", "p_2", "p_3"]
    task = make_task(tmp_path / "raw", train_ids=ids, test_ids=[],
                     modality={"0": "T2", "1": "ADC"})
    for i, cid in enumerate(ids):
        t2 = image_volume(i) + 400.0  # all non-zero
        save(task / "imagesTr" / f"{cid}.nii.gz", np.stack([t2, 2 * t2], axis=-1))
    slice_dataset(MSDAdapter(tmp_path / "raw"), tmp_path / "cases",
                  SliceParams(n_test=1, n_val=1, percentiles=(0.0, 100.0)))
    store = CaseStore(tmp_path / "cases")
    img = store.image("p_2")
    assert store.dataset["channels"] == ["T2", "ADC"] and img.shape == (2, 6, 16, 16)
    t2 = image_volume(1) + 400.0
    expect = ((t2 - t2.min()) / (t2.max() - t2.min())).T
    np.testing.assert_allclose(img[0], expect, atol=1e-6)
    np.testing.assert_allclose(img[1], expect, atol=1e-6)  # scale-free: same as channel 0


def test_error_with_jobs_leaves_nothing(raw: Path, tmp_path: Path) -> None:
    _break(raw / "Task09_Spleen", "nan")
    out = tmp_path / "cases"
    with pytest.raises(InputError, match="NaN") as err:
        slice_dataset(MSDAdapter(raw), out, SliceParams(n_test=1, n_val=1, jobs=2))
    assert err.value.where.endswith("imagesTr/spleen_3.nii.gz")
    assert not out.exists() and not (tmp_path / "cases_tmp").exists()
