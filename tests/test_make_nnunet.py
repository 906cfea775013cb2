"""Make-level tests of folder inputs: an nnU-Net v2 raw dataset (NNUNET_DATASET) through
to the archive, and an MSD task folder (DATASET_DIR) through the data stages.

The folder's lineage is data/<ds>/manifest.md5, recomputed by every make and rewritten
only when it changes: a second make rebuilds nothing, touching a file (same bytes)
rebuilds nothing, changing a file's bytes re-runs raw and cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import copy_project, snapshot
from msd_builder import make_task, save
from nnunet_builder import NAME, channel_volumes, make_dataset

pytestmark = pytest.mark.make

KNOBS = ("NET=Dimwit", "EPC=1", "N_TEST=2", "N_VAL=1", "METHODS=gdl")
# Rewritten by every make (the manifest check runs as a stage; its side files are
# refreshed even when the manifest itself is kept), and the manifest's stat cache
# (rewritten when a file's stat changes or a file stops being racy).
CHECK_FILES = {
    ".manifest.md5.cmd",
    ".manifest.md5.d",
    ".manifest.md5.sha256",
    ".manifest.md5.stat",
}


def built(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of everything make wrote, but the manifest check's own side files
    and the folder holding them (data/<ds>: its mtime moves when they are replaced)."""
    out = {}
    for top in ("data", "results", "archives"):
        if (root / top).is_dir():
            snap = snapshot(root / top)
            out.update(
                {
                    f"{top}/{k}": v
                    for k, v in snap.items()
                    if Path(k).name not in CHECK_FILES and (top != "data" or "/" in k)
                }
            )
    return out


def recipes(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The segline commands a make ran (one per recipe), as their module or script name."""
    names = []
    for line in proc.stdout.splitlines():
        words = line.split()
        if words and words[0].endswith("python"):
            names.append(words[2] if words[1] == "-m" else words[1])
    return names


@pytest.fixture(scope="module")
def nn_run(tmp_path_factory: pytest.TempPathFactory, run_make):
    """One complete run of the tiny nnU-Net dataset, to the archive."""
    base = tmp_path_factory.mktemp("nnmake")
    folder = make_dataset(base / "nnUNet_raw")
    root = copy_project(base / "proj")
    args = ("-j2", "-f", "spleen.make", "DS=nn", f"NNUNET_DATASET={folder}", *KNOBS)
    proc = run_make(root, *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, folder, args, proc


def test_nnunet_folder_runs_to_the_archive(nn_run) -> None:
    root, folder, _, proc = nn_run
    data = root / "data" / "nn"
    assert (data / "raw" / NAME / "imagesTr" / "tiny_001_0001.nii.gz").is_file()
    store = json.loads((data / "cases" / "dataset.json").read_text())
    assert store["source"] == "nnunet" and store["channels"] == ["CT", "T2"]
    assert store["labels"] == {"0": "background", "1": "organ", "2": "lesion"}
    pointer = root / "archives" / "nn-latest.txt"
    assert pointer.is_file()
    with tarfile.open(root / "archives" / pointer.read_text().strip()) as tar:
        names = tar.getnames()
    assert any(n.endswith("report.md") for n in names), names
    # the training's provenance holds the manifest: which bytes it was trained on
    recorded = (root / "results" / "nn" / "gdl" / "provenance" / "lineage.md5").read_text()
    manifest = (data / "manifest.md5").read_text()
    assert recorded == "".join(ln + "\n" for ln in manifest.splitlines() if ln[:1] != "#")
    assert "imagesTs/tiny_102_0001.nii.gz" in recorded
    # the report names the manifest by its length and md5, not file by file
    report = (root / "results" / "nn" / "report.md").read_text()
    digest = hashlib.md5(recorded.encode(), usedforsecurity=False).hexdigest()
    assert f"| 29 files (md5 of provenance/lineage.md5: {digest}) |" in report
    assert "tiny_102_0001" not in report


def test_unchanged_or_touched_folder_rebuilds_nothing_changed_file_reruns_raw(
    nn_run, run_make
) -> None:
    root, folder, args, _ = nn_run
    before = built(root)
    proc = run_make(root, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert recipes(proc) == ["segline.lineage.manifest"], proc.stdout
    assert "unchanged" in proc.stdout
    assert built(root) == before
    assert run_make(root, "-q", *args).returncode == 0  # the manifest runs under -q too
    dry = run_make(root, "-n", *args)
    assert recipes(dry) == ["segline.lineage.manifest"], dry.stdout  # -n plans no work

    image = folder / "imagesTr" / "tiny_004_0001.nii.gz"
    os.utime(image)  # a new mtime, the same bytes: the manifest stays as it is
    proc = run_make(root, *args)
    assert recipes(proc) == ["segline.lineage.manifest"], proc.stdout
    assert built(root) == before

    save(image, channel_volumes(0)[1])  # other bytes: raw and every stage after it
    assert run_make(root, "-q", *args).returncode == 1
    proc = run_make(root, *args, "data")
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = recipes(proc)
    assert ran[:3] == [
        "segline.lineage.manifest",
        "segline.lineage.copyfolder",
        "preprocess/slice.py",
    ], ran
    after = built(root)
    for stage in ("data/nn/manifest.md5", "data/nn/raw", "data/nn/cases", "data/nn/dist"):
        assert after[stage][1] > before[stage][1], stage
    copied = root / "data" / "nn" / "raw" / NAME / "imagesTr" / image.name
    assert copied.read_bytes() == image.read_bytes()


def test_msd_task_folder_runs_the_data_stages(tmp_path: Path, run_make) -> None:
    task = make_task(tmp_path / "msd")
    root = copy_project(tmp_path / "proj")
    args = ("-f", "spleen.make", f"DATASET_DIR={task}", "N_TEST=2", "N_VAL=1")
    proc = run_make(root, *args, "help")
    assert f"folder {task} (msd layout)" in proc.stdout, proc.stdout
    proc = run_make(root, *args, "data")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = root / "data" / "Task09_Spleen"  # DS defaults to the folder's name
    assert (data / "raw" / "Task09_Spleen" / "dataset.json").is_file()
    store = json.loads((data / "cases" / "dataset.json").read_text())
    assert store["source"] == "msd" and store["labels"] == {"0": "background", "1": "spleen"}
    assert (data / "dist").is_dir()
    entries = (data / "manifest.md5").read_text().splitlines()
    assert "imagesTr/spleen_10.nii.gz" in {ln.split("  ", 1)[1] for ln in entries if ln[0] != "#"}


def test_region_based_nnunet_labels_stop_make_with_one_line(tmp_path: Path, run_make) -> None:
    folder = make_dataset(tmp_path / "raw", meta={"labels": {"background": 0, "a": [1, 2]}})
    root = copy_project(tmp_path / "proj")
    proc = run_make(root, "-f", "spleen.make", "DS=reg", f"NNUNET_DATASET={folder}", "data")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("segline: ")]
    assert len(lines) == 1 and "region-based label 'a'" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "data" / "reg" / "cases").exists()
