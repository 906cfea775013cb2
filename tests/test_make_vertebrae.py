"""Make-level tests of vertebrae.make's data stages: `make -f vertebrae.make TOY=1 data`
(case store at the toy's 2 mm, one class per vertebra, K=2 merged-foreground 3D
distance maps), the guidance when the real zips are missing, and md5 recorded on first
use of a user's archive, then verified (a changed archive is refused)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_project

pytestmark = pytest.mark.make

RECORD = "lineage/vertebrae.local.lineage"


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:
    root = copy_project(tmp_path_factory.mktemp("vertebrae"))
    proc = run_make(root, "-f", "vertebrae.make", "TOY=1", "data")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def test_toy_data_stages(toy: Path) -> None:
    data = toy / "data" / "vertebrae-toy"
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith(".")) == [
        "cases",
        "dist",
        "raw",
    ]
    cases = data / "cases"
    split = json.loads((cases / "split.json").read_text())
    assert [len(split[s]) for s in ("train", "val", "test", "infer")] == [9, 2, 5, 2]
    assert split["infer"] == ["sub-toy017", "sub-toy018"]
    dataset = json.loads((cases / "dataset.json").read_text())
    names = ["background"] + [f"T{k}" for k in range(1, 13)] + [f"L{k}" for k in range(1, 6)]
    assert dataset["labels"] == {str(i): n for i, n in enumerate(names)}
    values = dataset["source_info"]["label_values"]
    assert values == {"0": 0, **{str(i): 7 + i for i in range(1, 18)}}  # T1 = 8 ... L5 = 24
    assert dataset["preprocessing"]["window"] == [400.0, 1800.0]
    assert dataset["preprocessing"]["spacing"] == [2.0, 2.0, 2.0]
    for case in split["train"] + split["val"] + split["test"]:
        meta = json.loads((cases / case / "meta.json").read_text())
        assert all(abs(s - 2.0) < 0.04 for s in meta["spacing"]), (case, meta["spacing"])
        z, y, x = meta["shape"]
        if case in split["test"]:  # cropped to the body from the CT alone, not to its label
            assert meta["crop"] == "body (image only)", case
            assert 64 <= z <= 96 and 48 < y <= 56 and 48 < x <= 56, (case, meta["shape"])
        else:
            assert meta["crop"] == "label", case
            assert 64 <= z <= 96 and 32 <= y <= 48 and 32 <= x <= 48, (case, meta["shape"])
        label = np.load(cases / case / "label.npy")
        present = sorted(int(v) for v in np.unique(label) if v)
        assert 6 <= len(present) <= 10 and present == list(range(present[0], present[-1] + 1))
        # Neighbours stay apart along z at 2 mm: 2-4 voxels of disc.
        spans = sorted(
            (int(zs[0]), int(zs[-1]))
            for zs in (np.nonzero((label == v).any(axis=(1, 2)))[0] for v in present)
        )
        gaps = [b[0] - a[1] - 1 for a, b in zip(spans[:-1], spans[1:], strict=True)]
        assert min(gaps) >= 2 and max(gaps) <= 4, (case, gaps)
        dist = np.load(data / "dist" / case / "dist3d.npy")
        assert dist.dtype == np.float32 and dist.shape == (2, z, y, x)
        assert not (data / "dist" / case / "dist2d.npy").exists()
        assert np.all(dist[1][label > 0] < 0) and np.all(dist[1][label == 0] > 0)
        assert np.array_equal(dist[0] < 0, label == 0)
    info = json.loads((data / "dist" / "distmaps.json").read_text())
    assert info["merge_foreground"] is True and info["n_classes"] == 2
    assert info["source_n_classes"] == 18 and info["kinds"] == ["3d"]


def test_missing_real_zips_guidance(tmp_path: Path, run_make) -> None:
    root = copy_project(tmp_path / "p")
    proc = run_make(root, "-f", "vertebrae.make", "data")
    assert proc.returncode != 0
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("segline: "))
    assert line.startswith("segline: data/dataset-verse19training.zip: not found (source: VerSe")
    assert f"its md5 is recorded in {RECORD} on first use" in line and "TOY=1" in line
    assert "Traceback" not in proc.stderr
    assert not (root / RECORD).exists()


def test_user_archive_recorded_then_verified(toy: Path, run_make) -> None:
    """The toy tar as a user's VerSe archive under the real lineage (record on first use)."""
    archive = toy / "data" / "mine.tar"
    archive.write_bytes((toy / "data" / "vertebrae-toy.tar").read_bytes())
    args = ("-f", "vertebrae.make", "DS=mine", "ARCHIVES=data/mine.tar", "data/mine/raw")
    first = run_make(toy, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    said = [ln for ln in first.stdout.splitlines() if "recorded in" in ln]
    assert said == [f"md5 of data/mine.tar recorded in {RECORD}; commit it to pin this archive"]
    recorded = (toy / RECORD).read_text()
    toy_md5 = (toy / "lineage" / "vertebrae-toy.lineage").read_text().split()[-2]
    assert f"{toy_md5}  data/mine.tar\n" in recorded
    check = subprocess.run(["md5sum", "-c", RECORD], cwd=toy, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout == "data/mine.tar: OK\n"
    # Unchanged: nothing to do, nothing said.
    again = run_make(toy, *args)
    assert again.returncode == 0 and "recorded" not in again.stdout
    # A changed archive (same tar, a record of padding more) is refused in one line.
    archive.write_bytes(archive.read_bytes() + bytes(10240))
    bad = run_make(toy, *args)
    assert bad.returncode != 0
    lines = [ln for ln in bad.stderr.splitlines() if ln.startswith("segline: ")]
    assert len(lines) == 1 and "Traceback" not in bad.stderr
    assert lines[0].startswith("segline: data/mine.tar: md5 ")
    assert f"does not match {RECORD} ({toy_md5})" in lines[0]
    assert (toy / RECORD).read_text() == recorded


def test_toy_through_to_the_archive_with_both_methods(toy: Path, run_make) -> None:
    """Both methods (2 epochs, a debug subset of patches) through to the archive: the
    report compares them on the instance metrics, the overlays are drawn, `predict`
    writes the unlabelled cases' instance maps in their source geometry."""
    import tarfile

    import nibabel as nib

    # 8 patches per epoch (TRAIN_ARGS come last on the trainer's command line)
    args = ("-f", "vertebrae.make", "TOY=1", "EPC=2", "DEBUG=--debug", "RUN=",
            "TRAIN_ARGS=--samples-per-epoch 8")  # fmt: skip
    proc = run_make(toy, "-j2", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = toy / "results" / "vertebrae-toy"
    report = (res / "report.md").read_text()
    for method in ("iterative", "semantic"):
        assert f"| {method}" in report, report[:3000]
        rows = (res / method / "metrics.csv").read_text()
        assert ",test," in rows and ",spine,id_rate," in rows
        assert (res / method / "epochs.csv").read_text().splitlines()[0].endswith("val_id_rate")
    assert "identification rate" in report and "against semantic" in report
    for png in ("val_dice.png", "val_id_rate.png", "overlays.png", "progress_iterative.png"):
        assert (res / png).read_bytes()[:4] == b"\x89PNG", png
    assert not (res / "val_hd95.png").exists()
    pointer = toy / "archives" / "vertebrae-toy-latest.txt"
    with tarfile.open(toy / "archives" / pointer.read_text().strip()) as tar:
        names = tar.getnames()
    assert any(n.endswith("report.md") for n in names)
    assert any(n.endswith("iterative/test/metrics.csv") for n in names)

    pred = run_make(toy, *args, "predict", "METHODS=iterative")
    assert pred.returncode == 0, pred.stdout[-3000:] + pred.stderr[-3000:]
    out = res / "predict" / "iterative"
    raw = sorted((toy / "data" / "vertebrae-toy" / "raw").rglob("sub-toy017*_ct.nii.gz"))
    assert len(raw) == 1
    source, written = nib.load(raw[0]), nib.load(out / "sub-toy017.nii.gz")
    assert written.shape == source.shape
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
    assert (out / "labels.txt").read_text().count("instance ") >= 6
