"""Intensity sanity in the slicing stage: the clipped-foreground warning and ``--norm``.

Hand-made MSD task folders (tests/msd_builder.py) whose voxel values are set so that
the share a CT window clips, and the z-score statistics, are known exactly. All unit
level (no make run): the make side of ``NORM`` is covered by
tests/test_make_knob_records.py (the knob reaches the slicing command line).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from msd_builder import label_volume, make_task, save
from segline.casestore import CaseStore
from segline.cli import run
from segline.datasets.msd import MSDAdapter
from segline.errors import InputError
from segline.predicting import inputs
from segline.preprocess import slicing
from segline.preprocess import window as win
from segline.preprocess.slicing import CaseRecord, SliceParams, process_case, slice_dataset

IDS = ["spleen_1", "spleen_2"]
LUT = np.arange(256, dtype=np.uint8)


def _overwrite_images(task: Path, volumes: list[np.ndarray]) -> None:
    """Replace the imagesTr files of ``task`` (in IDS order) by ``volumes`` (float32)."""
    for cid, vol in zip(IDS, volumes, strict=True):
        save(task / "imagesTr" / f"{cid}.nii.gz", vol.astype(np.float32))


def mr_like_volumes() -> list[np.ndarray]:
    """MR-like intensities (background 0, tissue in the hundreds to thousands).

    Label boxes are 5 x 6 x 3 = 90 voxels (msd_builder.label_volume). Case 0: its box
    is 1000 in z = 1, 2 (60 voxels, above the default window's 240 HU) and 100 in z = 3
    (30 voxels, inside). Case 1: its box is 240 (the window's upper bound: mapped to
    exactly 1.0, not clipped). Clipped: 60 of 180 foreground voxels, 33.3 %.
    """
    out = []
    for i, value in enumerate((1000.0, 240.0)):
        vol = np.zeros(label_volume(i).shape, dtype=np.float32)
        box = label_volume(i) > 0
        vol[box] = value
        if i == 0:
            box_z3 = box.copy()
            box_z3[..., :3] = False
            vol[box_z3] = 100.0
        vol[0, 0, 0] = 3000.0  # outside the foreground: never counted
        out.append(vol)
    return out


@pytest.fixture(scope="module")
def mr_as_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MSD task whose dataset.json says CT for MR-like images."""
    raw = tmp_path_factory.mktemp("mr_as_ct") / "raw"
    task = make_task(raw, train_ids=IDS, test_ids=["spleen_7"])
    _overwrite_images(task, mr_like_volumes())
    return raw


def test_mr_windowed_as_ct_warns_once_with_the_exact_share(mr_as_ct: Path,
                                                          tmp_path: Path) -> None:
    lines: list[str] = []
    warns: list[str] = []
    slice_dataset(MSDAdapter(mr_as_ct), tmp_path / "cases", SliceParams(n_test=1, n_val=0),
                  log=lines.append, warn=warns.append)
    assert len(warns) == 1, warns
    line = warns[0]
    assert "\n" not in line
    assert line.startswith("warning: channel 0 (CT): the CT window 40,400 ([-160, 240] HU)")
    assert "clips 33.3 % of its labelled foreground voxels (60 of 180;" in line
    assert "NORM=zscore" in line and "WINDOW=level,width" in line
    # the warning changes no data: the store is today's windowed store
    store = CaseStore(tmp_path / "cases")
    assert "norm" not in store.dataset["preprocessing"]
    assert float(store.image("spleen_1").max()) == 1.0


def test_cli_warning_goes_to_stderr_one_line(mr_as_ct: Path, tmp_path: Path, capsys) -> None:
    rc = run(slicing.main, ["--raw", str(mr_as_ct), "--out", str(tmp_path / "cases"),
                            "--n-test", "1", "--n-val", "0"])
    captured = capsys.readouterr()
    assert rc == 0
    assert captured.err.count("\n") == 1 and "clips 33.3 %" in captured.err
    assert "warning:" not in captured.out and "clips" not in captured.out


def test_norm_zscore_silences_the_warning_and_is_recorded(mr_as_ct: Path,
                                                          tmp_path: Path) -> None:
    warns: list[str] = []
    params = SliceParams(n_test=1, n_val=0, norm=("zscore",))
    slice_dataset(MSDAdapter(mr_as_ct), tmp_path / "cases", params, warn=warns.append)
    assert warns == []
    rec = json.loads((tmp_path / "cases" / "dataset.json").read_text())["preprocessing"]
    assert rec["norm"] == ["zscore"] and rec["zscore_over"] == "non-zero voxels"


def test_ct_within_the_window_gives_no_line(tmp_path: Path) -> None:
    """msd_builder's CT: the labelled box is 200 HU, inside [-160, 240]."""
    raw = tmp_path / "raw"
    make_task(raw, train_ids=IDS, test_ids=[])
    lines: list[str] = []
    slice_dataset(MSDAdapter(raw), tmp_path / "cases", SliceParams(n_test=1, n_val=0),
                  log=lines.append, warn=lines.append)
    assert not [ln for ln in lines if "warning" in ln]
    assert len(lines) == 3  # two cases and the summary


def test_threshold_is_more_than_the_documented_share() -> None:
    params = SliceParams()
    at = int(round(win.CLIP_WARN_SHARE * 1000))
    assert win.CLIP_WARN_SHARE == 0.05
    assert slicing.clip_warnings([(at, 1000)], ["ct"], ["CT"], params) == []
    assert len(slicing.clip_warnings([(at + 1, 1000)], ["ct"], ["CT"], params)) == 1
    # no window (raw HU), a non-windowed kind, or no foreground: nothing to say
    assert slicing.clip_warnings([(900, 1000)], ["ct"], ["CT"], SliceParams(window=None)) == []
    assert slicing.clip_warnings([(900, 1000)], ["zscore"], ["CT"], params) == []
    assert slicing.clip_warnings([(0, 0)], ["ct"], ["CT"], params) == []


def test_clip_counts_exact() -> None:
    hu = np.array([-161.0, -160.0, 0.0, 240.0, 240.5, 5000.0])
    region = np.array([True, True, True, True, True, False])
    assert win.clip_counts(hu, region, 40.0, 400.0) == (2, 5)


def test_clip_stats_uses_the_foreground_after_the_label_map() -> None:
    lab = np.array([[[0, 1, 2, 2]]], dtype=np.uint8)
    img = np.array([[[5000.0, 0.0, 5000.0, 5000.0]]], dtype=np.float32)
    rec = CaseRecord("c", [img], lab, np.eye(4), (1.0, 1.0, 1.0), ["c.nii.gz"])
    assert slicing.clip_stats(rec, LUT, ["ct"], SliceParams()) == [(2, 3)]
    lut = LUT.copy()
    lut[2] = 0  # --label-map 2:0: class 2 is background now
    assert slicing.clip_stats(rec, lut, ["ct"], SliceParams()) == [(0, 1)]
    unlabelled = CaseRecord("c", [img], None, np.eye(4), (1.0, 1.0, 1.0), ["c.nii.gz"])
    assert slicing.clip_stats(unlabelled, LUT, ["ct"], SliceParams()) == [(0, 0)]


# ---------------------------------------------------------------------------- NORM


def hand_volume() -> np.ndarray:
    """(X, Y, Z) = (4, 3, 2): zero background and known non-zero values."""
    vol = np.zeros((4, 3, 2), dtype=np.float32)
    vol[1:3, :, :] = np.arange(1, 13, dtype=np.float32).reshape(2, 3, 2) * 10.0
    return vol


def test_zscore_gives_mean_0_sd_1_over_the_nonzero_voxels() -> None:
    vol = hand_volume()
    out = win.zscore_normalise(vol)
    region = vol != 0
    assert out.dtype == np.float32
    assert abs(float(out[region].mean())) < 1e-6
    assert abs(float(out[region].std()) - 1.0) < 1e-6
    # values 10..120: mean 65, population sd sqrt(1191.67); background -> -mean/sd
    sd = float(np.std(np.arange(10, 130, 10, dtype=np.float64)))
    np.testing.assert_allclose(out[~region], -65.0 / sd, rtol=1e-6)
    assert win.zscore_normalise(np.full((2, 2), 7.0)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert not np.isnan(win.zscore_normalise(np.zeros((3, 3)))).any()


def test_process_case_with_norm_zscore() -> None:
    vol = hand_volume()
    rec = CaseRecord("c", [vol], None, np.eye(4), (1.0, 1.0, 1.0), ["c.nii.gz"])
    image, _, _ = process_case(rec, {0: "background"}, ["CT"],
                               SliceParams(norm=("zscore",)), LUT)
    expected = np.transpose(win.zscore_normalise(vol), (2, 1, 0))[None]
    np.testing.assert_array_equal(image, expected)
    region = np.transpose(vol, (2, 1, 0))[None] != 0
    assert abs(float(image[region].mean())) < 1e-6
    assert abs(float(image[region].std()) - 1.0) < 1e-6


def test_norm_per_channel_with_two_channels() -> None:
    vol = hand_volume()
    hu = vol * 3.0 - 100.0
    rec = CaseRecord("c", [hu, vol], None, np.eye(4), (1.0, 1.0, 1.0), ["c.nii.gz"])
    names = ["MR", "T2"]  # both declared non-CT: the override makes channel 0 CT
    image, _, _ = process_case(rec, {0: "background"}, names,
                               SliceParams(norm=("ct", "zscore")), LUT)
    zyx = (2, 1, 0)
    np.testing.assert_array_equal(image[0], np.transpose(win.ct_window(hu), zyx))
    np.testing.assert_array_equal(image[1], np.transpose(win.zscore_normalise(vol), zyx))
    image, _, _ = process_case(rec, {0: "background"}, names,
                               SliceParams(norm=("percentile", "ct")), LUT)
    np.testing.assert_array_equal(image[0], np.transpose(win.percentile_normalise(hu), zyx))
    np.testing.assert_array_equal(image[1], np.transpose(win.ct_window(vol), zyx))
    # one kind applies to every channel; no override: by modality, as before
    assert win.resolve_kinds(("zscore",), names) == ["zscore", "zscore"]
    assert win.resolve_kinds(None, ["CT", "T2"]) == ["ct", "percentile"]
    default, _, _ = process_case(rec, {0: "background"}, ["CT", "T2"], SliceParams(), LUT)
    np.testing.assert_array_equal(default[0], np.transpose(win.ct_window(hu), zyx))
    np.testing.assert_array_equal(default[1], np.transpose(win.percentile_normalise(vol), zyx))


def test_default_record_has_no_norm_key() -> None:
    """Without --norm the dataset.json record is today's, byte for byte."""
    assert "norm" not in SliceParams().record()
    assert "zscore_over" not in SliceParams().record()
    assert SliceParams(norm=("ct", "zscore")).record()["norm"] == ["ct", "zscore"]


@pytest.mark.parametrize("norm, problem", [
    ("zscore,mri", "unknown normalisation 'mri'"),
    ("", "unknown normalisation ''"),
    ("ct,zscore", "2 normalisations (ct,zscore) for 1 channels (CT)"),
])
def test_bad_norm_is_refused_with_one_line(mr_as_ct: Path, tmp_path: Path, capsys,
                                           norm: str, problem: str) -> None:
    out = tmp_path / "cases"
    rc = run(slicing.main, ["--raw", str(mr_as_ct), "--out", str(out), "--norm", norm,
                            "--n-test", "1", "--n-val", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("segline: --norm: ") and problem in err, err
    assert not out.exists() and not (tmp_path / "cases_tmp").exists()


def test_norm_count_checked_by_resolve_kinds() -> None:
    with pytest.raises(InputError, match="3 normalisations"):
        win.resolve_kinds(("ct", "zscore", "ct"), ["CT", "T2"])
    with pytest.raises(InputError, match="use ct\\|zscore\\|percentile"):
        win.norm_kinds("Hounsfield")
    assert win.norm_kinds(" CT , Zscore ") == ("ct", "zscore")


# ------------------------------------------------------------------------- predict


def test_recorded_norm_reaches_predict(mr_as_ct: Path, tmp_path: Path) -> None:
    """A store sliced with --norm zscore: predict reads the override from the store's
    record, and its preprocessing of the raw test image equals the stored case."""
    params = SliceParams(n_test=1, n_val=0, norm=("zscore",))
    slice_dataset(MSDAdapter(mr_as_ct), tmp_path / "cases", params)
    store = CaseStore(tmp_path / "cases")
    recorded = inputs.params_from_store(store)
    assert recorded.norm == ("zscore",)
    assert "z-score" in inputs.describe(recorded, ["CT"])
    task = mr_as_ct / "Task09_Spleen"
    (case,) = store.case_ids("infer")
    found = inputs.find_inputs(task / "imagesTs", 1)
    (mine,) = [c for c in found if c.case_id == case]
    image, meta = inputs.preprocess(inputs.read_case(mine, ["CT"]), store)
    np.testing.assert_array_equal(image, store.image(case))
    assert meta["transforms"] == store.meta(case)["transforms"]
    # the stored image is the z-score, not the window (the default would give [0, 1])
    raw = np.asarray(nib.load(task / "imagesTs" / f"{case}.nii.gz").get_fdata(), np.float32)
    np.testing.assert_allclose(image[0], np.transpose(win.zscore_normalise(raw), (2, 1, 0)),
                               rtol=1e-6, atol=1e-6)
    assert float(image.min()) < 0.0
