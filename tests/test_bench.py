"""The benchmark scripts run (bench/ is not a test of speed; this checks they work)."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np

from segline.datasets.msd import MSDAdapter
from segline.datasets.verse import VerseAdapter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import scale_data as sd  # noqa: E402
from bench_make import stage_group, stage_table  # noqa: E402


def test_bench_gpu_smoke_on_the_cpu() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench_gpu.py"),
            "--device",
            "cpu",
            "--size",
            "32",
            "--nets",
            "Dimwit",
            "--skip-pipelines",
            "--steps",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["net"])
    row = lines[header + 1].split()
    assert row[0] == "Dimwit"
    pure, trainer, share, loader = (float(v) for v in row[1:5])
    assert pure > 0 and trainer > 0 and loader >= 0
    # the printed share comes from the unrounded rates, each printed to 0.1: bound it
    lo, hi = 100 * (trainer - 0.05) / (pure + 0.05), 100 * (trainer + 0.05) / (pure - 0.05)
    assert lo - 0.05 <= share <= hi + 0.05, (share, lo, hi)


def test_stage_groups_and_table() -> None:
    assert stage_group("data/spleen-toy.tar") == "toy archive"
    assert stage_group("data/spleen-toy/dist") == "distmaps"
    assert stage_group("data/vessels-toy/mip") == "data: mip"
    assert stage_group("results/spleen-toy/gdl") == "train gdl"
    assert stage_group("results/spleen-toy/val_dice.png") == "plots"
    assert stage_group("results/spleen-toy/report.md results/spleen-toy/report.csv") == "report"
    assert stage_group("archives/spleen-toy-latest.txt") == "pack"
    rows = dict(
        stage_table(
            10.0,
            [("results/x/gdl", 4.0), ("results/x/a.png", 1.0), ("results/x/b.png", 2.0), ("", 0.5)],
        )
    )
    assert rows == {"train gdl": 4.0, "plots": 3.0, "make itself": 3.0}


def _read_members(archive: Path) -> dict[str, bytes]:
    """Every file of a tar (folders as names ending in '/', empty)."""
    with tarfile.open(archive) as tar:
        return {
            m.name + ("/" if m.isdir() else ""): b"" if m.isdir() else tar.extractfile(m).read()
            for m in tar.getmembers()
        }


def _nifti(data: bytes) -> nib.Nifti1Image:
    assert data[:3] == b"\x1f\x8b\x08"  # gzip, deflate
    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


def _md5_line(path: Path) -> str:
    return f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.as_posix()}"


def test_scale_data_vessels_tiny(tmp_path: Path) -> None:
    # the release's geometry, drawn without voxels: 303 labelled cases
    real = [sd.vessel_case(n) for n in range(1, 455) if n % 3]
    assert len(real) == 303
    depths = np.array([c.shape[2] for c in real])
    assert {c.shape[:2] for c in real} == {(512, 512)}
    assert depths.min() >= 24 and depths.max() <= 181 and 45 <= depths.mean() <= 56
    assert all(0.6 <= c.spacing[0] <= 0.981 and 0.8 <= c.spacing[2] <= 8 for c in real)
    assert sum(c.spacing[2] == 5.0 for c in real) > len(real) / 2

    out = tmp_path / "Task08_HepaticVessel.tar"
    line = sd.write_vessels(out, 2, 1, say=False, in_plane=32, depth=(6, 8))
    assert line == _md5_line(out)
    assert (tmp_path / "Task08_HepaticVessel.tar.lineage").read_text().splitlines()[-1] == line
    files = _read_members(out)
    task = "Task08_HepaticVessel"
    assert list(files) == [
        f"{task}/",
        f"{task}/dataset.json",
        f"{task}/imagesTr/",
        f"{task}/imagesTr/hepaticvessel_001.nii.gz",
        f"{task}/imagesTr/hepaticvessel_002.nii.gz",
        f"{task}/imagesTs/",
        f"{task}/imagesTs/hepaticvessel_003.nii.gz",
        f"{task}/labelsTr/",
        f"{task}/labelsTr/hepaticvessel_001.nii.gz",
        f"{task}/labelsTr/hepaticvessel_002.nii.gz",
    ]
    meta = json.loads(files[f"{task}/dataset.json"])
    assert (meta["numTraining"], meta["numTest"]) == (2, 1)
    assert meta["labels"] == {"0": "background", "1": "Vessel", "2": "Tumour"}
    case = sd.vessel_case(1, in_plane=32, depth=(6, 8))
    image = _nifti(files[f"{task}/imagesTr/hepaticvessel_001.nii.gz"])
    label = _nifti(files[f"{task}/labelsTr/hepaticvessel_001.nii.gz"])
    for img in (image, label):
        assert img.shape == case.shape and case.shape[:2] == (32, 32)
        assert 6 <= case.shape[2] <= 8
        # the real field of view on 16x fewer in-plane voxels: k/256 mm x 16
        assert np.allclose(img.header.get_zooms(), case.spacing)
        assert 0.6 * 16 <= case.spacing[0] <= 0.981 * 16
        assert np.allclose(img.affine, case.affine)
    assert image.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
    hu = np.asarray(image.dataobj)
    assert hu.min() >= -1024 and hu.max() >= 600  # air and the spine
    values = set(np.unique(np.asarray(label.dataobj)).tolist())
    assert {0, 1} <= values <= {0, 1, 2}
    # the pipeline's adapter reads it
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "raw", filter="data")
    adapter = MSDAdapter(tmp_path / "raw")
    assert adapter.labelled() == ["hepaticvessel_001", "hepaticvessel_002"]
    assert adapter.unlabelled() == ["hepaticvessel_003"]
    record = adapter.load("hepaticvessel_002")
    assert record.label is not None and record.label.shape == record.channels[0].shape


def test_scale_data_verse_tiny(tmp_path: Path) -> None:
    # the 80 subjects' geometry at 1 mm, drawn without voxels
    real = [sd.verse_case(n) for n in range(1, 81)]
    shapes = np.array([c.shape for c in real])
    assert shapes[:, :2].min() >= 288 and shapes[:, :2].max() <= 352
    assert shapes[:, 2].min() >= 300 and shapes[:, 2].max() <= 600
    for c in real:
        assert c.voxel_mm == 1.0 and 5 <= len(c.values) <= 24
        assert c.values == tuple(range(c.values[0], c.values[-1] + 1))
        assert 1 <= c.values[0] and c.values[-1] <= 24

    out = tmp_path / "verse.tar"
    line = sd.write_verse(out, 2, 1, say=False, voxel_mm=6.0)
    assert line == _md5_line(out)
    assert (tmp_path / "verse.tar.lineage").read_text().splitlines()[-1] == line
    files = _read_members(out)
    tr, ts = "dataset-verse-scale-training", "dataset-verse-scale-test"
    expected = [f"{ts}/", f"{ts}/rawdata/", f"{ts}/rawdata/sub-verse003/"]
    expected.append(f"{ts}/rawdata/sub-verse003/sub-verse003_ct.nii.gz")
    expected += [f"{tr}/", f"{tr}/derivatives/"]
    for s in ("sub-verse001", "sub-verse002"):
        expected += [f"{tr}/derivatives/{s}/", f"{tr}/derivatives/{s}/{s}_seg-subreg_ctd.json"]
        expected.append(f"{tr}/derivatives/{s}/{s}_seg-vert_msk.nii.gz")
    expected.append(f"{tr}/rawdata/")
    for s in ("sub-verse001", "sub-verse002"):
        expected += [f"{tr}/rawdata/{s}/", f"{tr}/rawdata/{s}/{s}_ct.nii.gz"]
    assert list(files) == expected
    case = sd.verse_case(1, voxel_mm=6.0)
    ct = _nifti(files[f"{tr}/rawdata/sub-verse001/sub-verse001_ct.nii.gz"])
    mask = _nifti(files[f"{tr}/derivatives/sub-verse001/sub-verse001_seg-vert_msk.nii.gz"])
    for img in (ct, mask):
        assert img.shape == case.shape == tuple(-(-s // 6) for s in real[0].shape)
        assert img.header.get_zooms() == (6.0, 6.0, 6.0)
        assert np.allclose(img.affine, case.affine)
    assert ct.get_data_dtype() == np.int16 and mask.get_data_dtype() == np.uint8
    values = np.unique(np.asarray(mask.dataobj)).tolist()
    assert values == [0, *case.values] and len(case.values) >= 5
    ctd = json.loads(files[f"{tr}/derivatives/sub-verse001/sub-verse001_seg-subreg_ctd.json"])
    assert ctd[0] == {"direc": ["L", "P", "S"]}
    assert [c["label"] for c in ctd[1:]] == list(case.values)
    # the pipeline's adapter reads it
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "raw", filter="data")
    adapter = VerseAdapter(tmp_path / "raw")
    assert adapter.labelled() == ["sub-verse001", "sub-verse002"]
    assert adapter.unlabelled() == ["sub-verse003"]
    assert adapter.values == sorted(set(case.values) | set(sd.verse_case(2).values))
