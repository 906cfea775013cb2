"""The README's hand-typed shell lines do what the README says they do."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from msd_builder import TRAIN_IDS, make_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("tar") is None, reason="no tar on this machine")
def test_labelled_case_count_line(tmp_path: Path) -> None:
    """``tar tf X.tar | grep -c 'labelsTr/...'`` counts the labelled cases of an MSD
    archive, leaving out the ``._*`` macOS metadata files the real archives carry."""
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"^tar tf data/Task04_Hippocampus\.tar \| grep -c '[^']+'", readme, re.M)
    assert line, "README: the labelled-case count line is missing"
    folder = make_task(tmp_path / "raw", task="Task04_Hippocampus")
    for sub in ("labelsTr", "imagesTr"):
        (folder / sub / f"._{TRAIN_IDS[0]}.nii.gz").write_bytes(b"AppleDouble")
    archive = tmp_path / "data" / "Task04_Hippocampus.tar"
    archive.parent.mkdir()
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname="Task04_Hippocampus")
    run = subprocess.run(
        ["bash", "-c", line.group(0)], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.stdout.strip() == str(len(TRAIN_IDS)) == "8", run.stderr
