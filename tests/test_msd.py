"""Tests for segline.datasets.msd (MSD task folders -> case records)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from msd_builder import TEST_IDS, TRAIN_IDS, image_volume, label_volume, make_task, save
from segline.datasets.msd import MSDAdapter, case_id_of, find_task_dir
from segline.errors import InputError
from segline.preprocess.slicing import get_adapter

NATURAL = [f"spleen_{i}" for i in (1, 2, 3, 10, 11, 12, 20, 21)]


def _edit_json(task, **changes) -> None:
    meta = json.loads((task / "dataset.json").read_text())
    meta.update(changes)
    (task / "dataset.json").write_text(json.dumps(meta))


def test_lists_cases_classes_channels(tmp_path) -> None:
    task = make_task(tmp_path / "raw")
    (task / "imagesTr" / "._spleen_1.nii.gz").write_bytes(b"macOS junk")
    a = MSDAdapter(tmp_path / "raw")
    assert a.task_dir == task and a.name == "Spleen" and a.source == "msd"
    assert a.labels == {0: "background", 1: "spleen"}
    assert a.channels == ["CT"]
    assert a.labelled() == NATURAL
    assert a.unlabelled() == ["spleen_5", "spleen_7"]
    assert a.info["task"] == "Task09_Spleen"


def test_registry_finds_msd() -> None:
    assert get_adapter("msd") is MSDAdapter
    with pytest.raises(InputError, match="unknown adapter 'nope'.*msd"):
        get_adapter("nope")


def test_task_folder_is_raw_itself_or_single_child(tmp_path) -> None:
    task = make_task(tmp_path / "raw", test_ids=[])
    assert find_task_dir(task) == task
    assert MSDAdapter(task).unlabelled() == []
    make_task(tmp_path / "raw", task="Task10_Colon", test_ids=[])
    with pytest.raises(InputError, match="several MSD task folders"):
        MSDAdapter(tmp_path / "raw")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no MSD task folder") as err:
        MSDAdapter(tmp_path / "empty")
    assert err.value.where == str(tmp_path / "empty")


def test_case_id_of() -> None:
    assert case_id_of("spleen_2.nii.gz") == "spleen_2"
    assert case_id_of("BRATS_001.nii") == "BRATS_001"
    assert case_id_of("notes.txt") is None and case_id_of(".nii.gz") is None


def test_load_record_values(tmp_path) -> None:
    make_task(tmp_path / "raw")
    a = MSDAdapter(tmp_path / "raw")
    rec = a.load("spleen_10")  # first training entry written -> index 0
    assert rec.case_id == "spleen_10" and len(rec.channels) == 1
    np.testing.assert_array_equal(rec.channels[0], image_volume(0))
    np.testing.assert_array_equal(rec.label, label_volume(0))
    assert rec.spacing_xyz == (0.8, 0.8, 5.0)
    assert rec.image_files == ["Task09_Spleen/imagesTr/spleen_10.nii.gz"]
    assert rec.label_file == "Task09_Spleen/labelsTr/spleen_10.nii.gz"
    inf = a.load("spleen_7")
    assert inf.label is None and inf.label_file is None


def test_multimodal_4d_gives_one_channel_per_modality(tmp_path) -> None:
    task = make_task(tmp_path / "raw", train_ids=["p_1"], test_ids=[],
                     modality={"0": "T2", "1": "ADC"})
    four = np.stack([image_volume(0), -image_volume(0)], axis=-1)
    save(task / "imagesTr" / "p_1.nii.gz", four)
    a = MSDAdapter(tmp_path / "raw")
    assert a.channels == ["T2", "ADC"]
    rec = a.load("p_1")
    assert len(rec.channels) == 2
    np.testing.assert_array_equal(rec.channels[1], -image_volume(0))
    save(task / "imagesTr" / "p_1.nii.gz", image_volume(0))  # 3D in a 2-modality task
    with pytest.raises(InputError, match=r"expected a 4D image \(X, Y, Z, 2\)"):
        a.load("p_1")


def test_singleton_fourth_axis_read_as_3d(tmp_path) -> None:
    task = make_task(tmp_path / "raw", train_ids=["spleen_1"], test_ids=[])
    save(task / "imagesTr" / "spleen_1.nii.gz", image_volume(0)[..., None])
    save(task / "labelsTr" / "spleen_1.nii.gz", label_volume(0)[..., None])
    rec = MSDAdapter(tmp_path / "raw").load("spleen_1")
    assert len(rec.channels) == 1 and rec.channels[0].shape == image_volume(0).shape
    np.testing.assert_array_equal(rec.channels[0], image_volume(0))
    np.testing.assert_array_equal(rec.label, label_volume(0))


def test_nnunet_v2_spelling_accepted(tmp_path) -> None:
    task = make_task(tmp_path / "raw", test_ids=[])
    meta = json.loads((task / "dataset.json").read_text())
    del meta["modality"]
    meta["channel_names"] = {"0": "CT"}
    meta["labels"] = {"background": 0, "spleen": 1}
    (task / "dataset.json").write_text(json.dumps(meta))
    a = MSDAdapter(task)
    assert a.labels == {0: "background", 1: "spleen"} and a.channels == ["CT"]


# --------------------------------------------------------------------- errors


def test_image_without_label(tmp_path) -> None:
    task = make_task(tmp_path / "raw")
    (task / "labelsTr" / "spleen_3.nii.gz").unlink()
    with pytest.raises(InputError, match=r"image has no label \(labelsTr/spleen_3") as err:
        MSDAdapter(tmp_path / "raw")
    assert err.value.where == str(task / "imagesTr" / "spleen_3.nii.gz")


def test_label_without_image(tmp_path) -> None:
    task = make_task(tmp_path / "raw")
    (task / "imagesTr" / "spleen_3.nii.gz").unlink()
    with pytest.raises(InputError, match="label has no image") as err:
        MSDAdapter(tmp_path / "raw")
    assert err.value.where == str(task / "labelsTr" / "spleen_3.nii.gz")


def test_missing_dataset_json(tmp_path) -> None:
    task = make_task(tmp_path / "raw")
    (task / "dataset.json").unlink()
    with pytest.raises(InputError, match="no MSD task folder"):
        MSDAdapter(tmp_path / "raw")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"labels": {"0": "bg"}, "modality": ', "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"modality": {"0": "CT"}, "training": []}', "missing key 'labels'"),
        ('{"labels": {"0": "bg"}, "training": []}', "missing key 'modality'"),
        ('{"labels": {"x": "bg"}, "modality": {"0": "CT"}, "training": []}',
         "keys must be integers"),
        ('{"labels": {"1": "a"}, "modality": {"0": "CT"}, "training": []}', "class 0"),
    ],
)
def test_garbled_dataset_json(tmp_path, text, problem) -> None:
    task = make_task(tmp_path / "raw", test_ids=[])
    (task / "dataset.json").write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        MSDAdapter(tmp_path / "raw")
    assert err.value.where == str(task / "dataset.json")


def test_listing_cross_checked_against_dataset_json(tmp_path) -> None:
    task = make_task(tmp_path / "raw")
    meta = json.loads((task / "dataset.json").read_text())
    _edit_json(task, training=meta["training"][1:], numTraining=len(TRAIN_IDS) - 1)
    with pytest.raises(InputError, match="not listed in dataset.json 'training'") as err:
        MSDAdapter(tmp_path / "raw")
    assert err.value.where.endswith(f"imagesTr/{TRAIN_IDS[0]}.nii.gz")
    _edit_json(task, training=meta["training"])  # numTraining now wrong
    with pytest.raises(InputError, match="numTraining is 7 but 'training' lists 8"):
        MSDAdapter(tmp_path / "raw")
    _edit_json(task, numTraining=8, test=[*meta["test"], "./imagesTs/spleen_99.nii.gz"])
    with pytest.raises(InputError, match=r"test\[2\]: imagesTs/spleen_99.nii.gz missing"):
        MSDAdapter(tmp_path / "raw")
    _edit_json(task, test=meta["test"][:1])
    with pytest.raises(InputError, match="not listed in dataset.json 'test'") as err:
        MSDAdapter(tmp_path / "raw")
    assert err.value.where.endswith(f"imagesTs/{TEST_IDS[1]}.nii.gz")
    bad = [dict(meta["training"][0], image="../../etc/x.nii.gz"), *meta["training"][1:]]
    _edit_json(task, test=meta["test"], training=bad)
    with pytest.raises(InputError, match="is not ./imagesTr/<case>.nii.gz"):
        MSDAdapter(tmp_path / "raw")
