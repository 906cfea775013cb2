"""nnU-Net v2 raw datasets (segline.datasets.nnunet) and folder manifests
(segline.lineage.manifest, segline.lineage.copyfolder), on the tiny dataset of
tests/nnunet_builder.py (8 labelled + 2 unlabelled cases, 2 channels, 3 classes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from msd_builder import make_task, save, source_affine
from nnunet_builder import (
    LABELS,
    NAME,
    TEST_IDS,
    TRAIN_IDS,
    channel_volumes,
    make_dataset,
    one_line_error,
)
from segline.casestore import CaseStore
from segline.cli import run
from segline.datasets.msd import MSDAdapter
from segline.datasets.nnunet import NNUNetAdapter
from segline.errors import InputError
from segline.lineage import copyfolder, manifest
from segline.lineage.lineagefile import md5_of, parse_lineage
from segline.preprocess import slicing


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """A fresh copy of the tiny nnU-Net dataset (tests may break it)."""
    return make_dataset(tmp_path / "nnUNet_raw")



# ------------------------------------------------------------------------ the adapter


def test_adapter_lists_channels_classes_and_cases(dataset: Path) -> None:
    adapter = NNUNetAdapter(dataset.parent)  # the raw folder holding the dataset
    assert adapter.channels == ["CT", "T2"]
    assert adapter.labels == {0: "background", 1: "organ", 2: "lesion"}
    assert adapter.labelled() == TRAIN_IDS
    assert adapter.unlabelled() == TEST_IDS
    assert adapter.info["task"] == NAME and adapter.info["file_ending"] == ".nii.gz"
    rec = adapter.load("tiny_003")
    assert rec.image_files == [
        f"{NAME}/imagesTr/tiny_003_0000.nii.gz",
        f"{NAME}/imagesTr/tiny_003_0001.nii.gz",
    ]
    assert rec.label_file == f"{NAME}/labelsTr/tiny_003.nii.gz"
    ct, t2 = channel_volumes(2)  # tiny_003 is the third case
    np.testing.assert_array_equal(rec.channels[0], ct)
    np.testing.assert_array_equal(rec.channels[1], t2)
    assert sorted(np.unique(rec.label).tolist()) == [0, 1, 2]
    np.testing.assert_allclose(rec.affine, source_affine())
    assert rec.spacing_xyz == pytest.approx((0.8, 0.8, 5.0))
    assert adapter.load("tiny_101").label is None


def test_slicing_normalises_ct_and_t2_and_splits(dataset: Path, tmp_path: Path) -> None:
    """CT gets the window (200 HU -> (200 + 160) / 400 = 0.9), T2 percentile scaling."""
    out = tmp_path / "cases"
    argv = ["--adapter", "nnunet", "--raw", str(dataset), "--out", str(out)]
    assert run(slicing.main, [*argv, "--n-test", "2", "--n-val", "1"]) == 0
    store = CaseStore(out)
    assert store.dataset["source"] == "nnunet"
    assert store.dataset["channels"] == ["CT", "T2"]
    assert store.n_channels == 2 and store.n_classes == 3
    split = store.split
    assert split["test"] == TRAIN_IDS[:2] and split["val"] == TRAIN_IDS[2:3]
    assert split["train"] == TRAIN_IDS[3:] and split["infer"] == TEST_IDS
    image, label = store.image("tiny_001"), store.label("tiny_001")
    assert image.shape == (2, 6, 24, 24) and label.shape == (6, 24, 24)
    assert np.allclose(image[0][label == 1], 0.9) and np.allclose(image[0][label == 2], 1.0)
    t2 = image[1]
    assert t2.min() >= 0.0 and t2.max() <= 1.0
    assert t2[label == 2].mean() > t2[label == 1].mean() > t2[label == 0].mean()


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"labels": {"background": 0, "organ": 1, "whole": [1, 2]}}, "region-based label 'whole'"),
        ({"regions_class_order": [1, 2]}, "regions_class_order"),
        ({"file_ending": ".mha"}, "file_ending '.mha' cannot be read"),
        ({"numTraining": 9}, "numTraining is 9 but imagesTr holds 8 cases"),
        ({"labels": {"organ": 1, "lesion": 2}}, "must map the background to 0"),
        ({"channel_names": {"0": "CT", "2": "T2"}}, "'channel_names' keys"),
    ],
)
def test_bad_dataset_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], meta: dict, problem: str
) -> None:
    folder = make_dataset(tmp_path, meta=meta)
    argv = ["--adapter", "nnunet", "--raw", str(folder), "--out", str(tmp_path / "cases")]
    err = one_line_error(capsys, slicing.main, argv)
    assert f"{folder / 'dataset.json'}: " in err and problem in err
    assert not (tmp_path / "cases").exists() and not (tmp_path / "cases_tmp").exists()


def test_missing_channel_label_or_image_is_named(dataset: Path) -> None:
    victim = dataset / "imagesTr" / "tiny_003_0001.nii.gz"
    victim.unlink()
    with pytest.raises(
        InputError,
        match=r"tiny_003_0001\.nii\.gz: missing: case 'tiny_003' "
        r"lacks channel 1 \(T2\)",
    ):
        NNUNetAdapter(dataset)
    shutil.copy(dataset / "imagesTr" / "tiny_003_0000.nii.gz", victim)
    (dataset / "labelsTr" / "tiny_005.nii.gz").unlink()
    with pytest.raises(InputError, match=r"tiny_005_0000\.nii\.gz: image has no label"):
        NNUNetAdapter(dataset)
    save(dataset / "labelsTr" / "tiny_005.nii.gz", np.zeros((24, 24, 6), np.uint8))
    save(dataset / "imagesTr" / "tiny_003_0002.nii.gz", channel_volumes(0)[0])
    with pytest.raises(
        InputError,
        match=r"tiny_003_0002\.nii\.gz: channel 2 but dataset.json "
        "declares 2 channel",
    ):
        NNUNetAdapter(dataset)
    (dataset / "imagesTr" / "tiny_003_0002.nii.gz").unlink()
    (dataset / "imagesTr" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"notes\.txt: not a <case>\.nii\.gz file"):
        NNUNetAdapter(dataset)


def test_channel_on_another_grid_is_refused(dataset: Path) -> None:
    shifted = source_affine()
    shifted[0, 3] += 4.0
    save(dataset / "imagesTr" / "tiny_002_0001.nii.gz", channel_volumes(1)[1], affine=shifted)
    adapter = NNUNetAdapter(dataset)
    with pytest.raises(
        InputError,
        match=r"tiny_002_0001\.nii\.gz: affine differs from "
        r"tiny_002_0000\.nii\.gz",
    ):
        adapter.load("tiny_002")


def test_the_two_layouts_point_at_each_other(dataset: Path, tmp_path: Path) -> None:
    """The reported failure: an nnU-Net dataset read as MSD says what to use instead."""
    with pytest.raises(InputError, match="missing key 'training' .*ADAPTER=nnunet"):
        MSDAdapter(dataset)
    task = make_task(tmp_path / "msd")
    with pytest.raises(InputError, match="missing key 'channel_names' .*ADAPTER=msd"):
        NNUNetAdapter(task)


# ---------------------------------------------------------------------- the manifest


def test_manifest_lists_every_file_sorted_md5sum_format(dataset: Path, tmp_path: Path) -> None:
    (dataset / ".DS_Store").write_bytes(b"junk")  # macOS clutter is left out, as unpack does
    (dataset / ".git").mkdir()  # and version control's bookkeeping
    (dataset / ".git" / "index").write_bytes(b"changes on every git status")
    out = tmp_path / "data" / "nn" / "manifest.md5"
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    lineage = parse_lineage(out)
    paths = [p for _, p in lineage.entries]
    n_files = 1 + 8 * 3 + 2 * 2  # dataset.json, 8 x (2 channels + label), 2 x 2 channels
    assert len(paths) == n_files and paths == sorted(paths)
    assert paths[0] == "dataset.json" and "imagesTr/tiny_001_0000.nii.gz" in paths
    assert dict((p, m) for m, p in lineage.entries)["labelsTr/tiny_004.nii.gz"] == md5_of(
        dataset / "labelsTr" / "tiny_004.nii.gz"
    )
    assert str(dataset) not in out.read_text()  # no folder path: the same bytes anywhere
    if shutil.which("md5sum"):
        check = subprocess.run(
            ["md5sum", "-c", "--strict", "--quiet", str(out)],
            cwd=dataset,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_manifest_kept_when_equal_rewritten_when_a_file_changes(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "manifest.md5"
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    before, stat = out.read_bytes(), out.stat()
    os.utime(dataset / "imagesTr" / "tiny_001_0000.nii.gz")  # touched, same bytes
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    assert out.read_bytes() == before and out.stat().st_mtime_ns == stat.st_mtime_ns
    assert out.stat().st_ino == stat.st_ino
    save(dataset / "imagesTr" / "tiny_001_0000.nii.gz", channel_volumes(1)[0])  # new bytes
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    changed = out.read_text()
    assert changed != before.decode()
    diff = set(changed.splitlines()) ^ set(before.decode().splitlines())
    assert {line.split()[1] for line in diff} == {"imagesTr/tiny_001_0000.nii.gz"}
    (dataset / "imagesTs" / "tiny_102_0001.nii.gz").unlink()  # a removed file
    assert manifest.manifest_text(dataset) != changed


def test_manifest_escapes_paths_as_md5sum(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "a\\b.txt").write_text("x")
    text = manifest.manifest_text(folder)
    assert text.splitlines()[-1] == "\\9dd4e461268c8034f5c8564e155c67a6  a\\\\b.txt"
    (tmp_path / "m.md5").write_text(text)
    assert parse_lineage(tmp_path / "m.md5").entries == [
        ("9dd4e461268c8034f5c8564e155c67a6", "a\\b.txt")
    ]


def test_manifest_refuses_empty_and_missing_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    err = one_line_error(
        capsys, manifest.main, ["--out", str(tmp_path / "m"), str(tmp_path / "empty")]
    )
    assert "dataset folder holds no file" in err
    err = one_line_error(
        capsys, manifest.main, ["--out", str(tmp_path / "m"), str(tmp_path / "no")]
    )
    assert "dataset folder not found" in err
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------ the checked copy


def test_copy_checks_every_file_against_the_manifest(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    man, raw = tmp_path / "manifest.md5", tmp_path / "raw"
    assert run(manifest.main, ["--out", str(man), str(dataset)]) == 0
    argv = ["--manifest", str(man), "--out", str(raw), str(dataset)]
    assert run(copyfolder.main, argv) == 0
    copied = raw / NAME / "imagesTr" / "tiny_001_0000.nii.gz"
    assert (
        not copied.is_symlink()
        and copied.read_bytes() == (dataset / "imagesTr" / "tiny_001_0000.nii.gz").read_bytes()
    )
    assert copied.stat().st_mode & 0o777 == 0o644
    assert NNUNetAdapter(raw).labelled() == TRAIN_IDS
    capsys.readouterr()

    shutil.rmtree(raw)
    (dataset / "dataset.json").write_text(json.dumps({"labels": LABELS}))  # changed after
    err = one_line_error(capsys, copyfolder.main, argv)
    assert f"{dataset / 'dataset.json'}: md5 " in err and "differs from" in err
    assert not raw.exists() and not (tmp_path / "raw_tmp").exists()

    assert run(manifest.main, ["--out", str(man), str(dataset)]) == 0
    (dataset / "imagesTs" / "extra_0000.nii.gz").write_bytes(b"new")  # added after
    err = one_line_error(capsys, copyfolder.main, argv)
    assert "extra_0000.nii.gz: not in" in err and not raw.exists()
    (dataset / "imagesTs" / "extra_0000.nii.gz").unlink()
    (dataset / "imagesTs" / "tiny_101_0000.nii.gz").unlink()  # removed after
    err = one_line_error(capsys, copyfolder.main, argv)
    assert "tiny_101_0000.nii.gz: listed in" in err and "but missing" in err


def test_output_inside_the_folder_is_refused(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DATASET_DIR=data/X gives DS=X: data/X/manifest.md5 would change the folder itself."""
    err = one_line_error(capsys, manifest.main, ["--out", str(dataset / "m.md5"), str(dataset)])
    assert "overlap" in err and "DS=<name>" in err and not (dataset / "m.md5").exists()
    argv = ["--manifest", str(dataset / "m.md5"), "--out", str(dataset.parent), str(dataset)]
    assert "overlap" in one_line_error(capsys, copyfolder.main, argv)
