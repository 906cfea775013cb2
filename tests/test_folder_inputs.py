"""Weak spots of dataset folders (DATASET_DIR / NNUNET_DATASET) and of unpacking:
the per-file size guard (MAX_FILE_GB) and sparse files, the manifest's stat cache
(a no-op make reads no file again), the permissions the raw copy keeps, and file
names that are not UTF-8.

Unit tests call the CLIs' ``main`` on the tiny nnU-Net dataset of
tests/nnunet_builder.py; one make-level run checks the makefile wiring.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import copy_project
from nnunet_builder import NAME, make_dataset, one_line_error
from segline.cli import run
from segline.lineage import copyfolder, manifest
from segline.lineage.extract import extract_archives
from segline.lineage.lineagefile import md5_of
from segline.preprocess import slicing

MB = 10**6
LATER = 10**10  # 10 s: a scan that starts this much after now plays a later make
ODD = b"junk\xff.txt"  # a file name that is not UTF-8


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """A fresh copy of the tiny nnU-Net dataset (tests may change it)."""
    return make_dataset(tmp_path / "nnUNet_raw")



def sparse_file(path: Path, size: int, data: bytes = b"", at: int = 0) -> Path:
    """A file of ``size`` bytes that holds ``data`` at offset ``at`` and holes elsewhere."""
    with open(path, "wb") as fh:
        fh.seek(at)
        fh.write(data)
        fh.truncate(size)
    return path


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# ------------------------------------------------------------------- the size guard


def test_file_over_the_limit_refused_before_hashing_or_copying(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = sparse_file(dataset / "disk.img", 5 * MB, b"x", at=4 * MB)  # a stray disk image
    out = tmp_path / "data" / "nn" / "manifest.md5"
    err = one_line_error(
        capsys, manifest.main, ["--out", str(out), "--max-file-gb", "0.001", str(dataset)]
    )
    assert err.startswith(f"segline: {big}: 0.005 GB")
    assert "larger than the 0.001 GB allowed" in err and "MAX_FILE_GB=N" in err
    if big.stat().st_blocks * 512 < MB:  # a file system with holes: the line says so
        assert re.match(rf"segline: {re.escape(str(big))}: 0\.005 GB \(sparse: [0-9.]+ KiB "
                        r"of it on disk\), larger", err)  # fmt: skip
    assert not out.exists()

    # the copy refuses it too (make passes the limit as SEGLINE_MAX_FILE_GB)
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0  # default: 8 GB
    capsys.readouterr()
    raw = tmp_path / "data" / "nn" / "raw"
    monkeypatch.setenv(manifest.MAX_FILE_GB_ENV, "0.001")
    argv = ["--manifest", str(out), "--out", str(raw), str(dataset)]
    err = one_line_error(capsys, copyfolder.main, argv)
    assert err.startswith(f"segline: {big}: 0.005 GB") and "0.001 GB allowed" in err
    assert not raw.exists() and not raw.with_name("raw_tmp").exists()
    monkeypatch.setenv(manifest.MAX_FILE_GB_ENV, "0")  # 0: no limit
    assert run(copyfolder.main, argv) == 0
    monkeypatch.setenv(manifest.MAX_FILE_GB_ENV, "lots")
    assert "MAX_FILE_GB=lots: not a number" in one_line_error(capsys, copyfolder.main, argv)


def test_sparse_file_under_the_limit_is_copied_with_its_holes(tmp_path: Path) -> None:
    folder = tmp_path / "task"
    folder.mkdir()
    data = bytes(range(256)) * 64
    src = sparse_file(folder / "sparse.bin", 16 * MB, data, at=10 * MB)
    (folder / "plain.txt").write_bytes(b"plain")
    out = tmp_path / "m.md5"
    assert run(manifest.main, ["--out", str(out), str(folder)]) == 0
    assert run(copyfolder.main, ["--manifest", str(out), "--out", str(tmp_path / "raw"),
                                 str(folder)]) == 0  # fmt: skip
    assert manifest.file_md5(src) == md5_of(src)  # holes hashed as zeros, unread
    copied = tmp_path / "raw" / "task" / "sparse.bin"
    expected = bytearray(16 * MB)
    expected[10 * MB : 10 * MB + len(data)] = data
    assert copied.stat().st_size == 16 * MB
    assert md5_bytes(copied.read_bytes()) == md5_bytes(bytes(expected))
    if src.stat().st_blocks * 512 < MB:  # the file system keeps holes: so must the copy
        assert copied.stat().st_blocks * 512 < 2 * MB


def test_copy_file_of_a_file_with_no_data_and_of_an_empty_file(tmp_path: Path) -> None:
    hole = sparse_file(tmp_path / "hole.bin", 3 * MB)
    md5, size = copyfolder.copy_file(hole, tmp_path / "out" / "hole.bin", 0o644)
    assert (md5, size) == (md5_bytes(bytes(3 * MB)), 3 * MB)
    (tmp_path / "empty").write_bytes(b"")
    md5, size = copyfolder.copy_file(tmp_path / "empty", tmp_path / "out" / "empty", 0o644)
    assert (md5, size) == (md5_bytes(b""), 0)
    assert (tmp_path / "out" / "empty").read_bytes() == b""


# ------------------------------------------------------------------- the stat cache


def test_stat_cache_skips_unchanged_files_and_rehashes_changed_ones(dataset: Path) -> None:
    n = len(manifest.folder_files(dataset))
    later = time.time_ns() + LATER
    first = manifest.compute_manifest(dataset, {}, started_ns=later)
    assert first.hashed == first.files == n and len(first.cache) == n
    cache = manifest.parse_stat_cache(manifest.stat_cache_bytes(first.cache))
    assert cache == first.cache  # the cache file round-trips

    second = manifest.compute_manifest(dataset, cache, started_ns=later)
    assert second.hashed == 0 and second.text == first.text

    # same size, new bytes and an mtime set back to the old one: the ctime tells
    changed = dataset / "labelsTr" / "tiny_003.nii.gz"
    old = changed.stat()
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF
    changed.write_bytes(bytes(data))
    os.utime(changed, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert changed.stat().st_size == old.st_size
    third = manifest.compute_manifest(dataset, second.cache, started_ns=later + LATER)
    assert third.hashed == 1
    diff = set(third.text.splitlines()) ^ set(first.text.splitlines())
    assert {line.split()[1] for line in diff} == {"labelsTr/tiny_003.nii.gz"}
    assert f"{md5_bytes(bytes(data))}  labelsTr/tiny_003.nii.gz" in third.text


def test_racy_files_are_hashed_again_until_they_are_old_enough(dataset: Path) -> None:
    """git's racy rule: a file changed within RACY_NS of the scan is hashed, not cached."""
    now = time.time_ns()
    fresh = dataset / "dataset.json"
    hour = 3600 * 10**9
    os.utime(fresh, ns=(now + hour, now + hour))  # "changed" as the scan runs
    first = manifest.compute_manifest(dataset, {}, started_ns=now + LATER)
    assert "dataset.json" not in first.cache and len(first.cache) == first.files - 1
    second = manifest.compute_manifest(dataset, first.cache, started_ns=now + LATER)
    assert second.hashed == 1  # only the racy file
    third = manifest.compute_manifest(dataset, second.cache, started_ns=now + 2 * hour)
    assert third.hashed == 1 and "dataset.json" in third.cache
    fourth = manifest.compute_manifest(dataset, third.cache, started_ns=now + 2 * hour)
    assert fourth.hashed == 0 and fourth.text == first.text


def test_manifest_cli_uses_the_cache_and_a_damaged_cache_costs_only_time(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data" / "nn" / "manifest.md5"
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    n = len(manifest.folder_files(dataset))
    assert f": {n} files ({n} hashed), -> {out} (changed)" in capsys.readouterr().out
    cache = manifest.stat_cache_path(out)
    assert cache == out.parent / ".manifest.md5.stat"
    assert json.loads(cache.read_text()) == {"version": 1, "files": {}}  # all racy yet
    text = out.read_bytes()
    # the cache a make 10 s later would have written
    later = manifest.compute_manifest(dataset, started_ns=time.time_ns() + LATER)
    cache.write_bytes(manifest.stat_cache_bytes(later.cache))
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    assert f": {n} files (none hashed: stat unchanged), unchanged" in capsys.readouterr().out
    cache.write_text("{not json")  # damaged: ignored
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    assert f"({n} hashed), unchanged" in capsys.readouterr().out
    assert out.read_bytes() == text


# ------------------------------------------------------------------- permissions


def test_copy_keeps_permissions_never_world_writable_or_setuid(
    dataset: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("private")
    secret.chmod(0o600)
    (dataset / "secret.txt").symlink_to(secret)  # followed: counts as the file's bytes
    (dataset / "imagesTs").chmod(0o700)
    (dataset / "shared.txt").write_text("w")
    (dataset / "shared.txt").chmod(0o666)
    (dataset / "tool.sh").write_text("#!/bin/sh\n")
    (dataset / "tool.sh").chmod(0o4755)
    out, raw = tmp_path / "m.md5", tmp_path / "raw"
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    assert run(copyfolder.main, ["--manifest", str(out), "--out", str(raw), str(dataset)]) == 0
    top = raw / NAME

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.lstat().st_mode)

    assert not (top / "secret.txt").is_symlink()
    assert (top / "secret.txt").read_text() == "private" and mode(top / "secret.txt") == 0o600
    assert mode(top / "imagesTs") == 0o700 and mode(top / "imagesTr") == 0o755
    assert mode(top / "shared.txt") == 0o664  # no world-write
    assert mode(top / "tool.sh") == 0o755  # no setuid
    assert mode(top / "dataset.json") == mode(dataset / "dataset.json")


def test_unpack_keeps_member_permissions_safely(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        for name, mode, data in (
            ("Task/private", 0o700, None),
            ("Task/private/key.nii.gz", 0o600, b"k"),
            ("Task/open.txt", 0o666, b"o"),
            ("Task/run.sh", 0o6777, b"r"),
            ("Task/readonly.txt", 0o000, b"n"),
        ):
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    extract_archives([archive], tmp_path / "raw")
    task = tmp_path / "raw" / "Task"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in task.rglob("*")}
    assert modes == {
        "private": 0o700,
        "key.nii.gz": 0o600,
        "open.txt": 0o664,
        "run.sh": 0o775,
        "readonly.txt": 0o400,
    }
    assert stat.S_IMODE(task.stat().st_mode) == 0o755  # not in the archive: the default


# --------------------------------------------------------- names that are not UTF-8


def test_name_that_is_not_utf8_is_kept_through_manifest_and_copy(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(os.path.join(os.fsencode(dataset), ODD), "wb") as fh:
        fh.write(b"junk")
    out, raw = tmp_path / "m.md5", tmp_path / "raw"
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    assert b"\n" + md5_bytes(b"junk").encode() + b"  " + ODD + b"\n" in out.read_bytes()
    if shutil.which("md5sum"):  # GNU md5sum writes and reads the name's own bytes
        check = subprocess.run(["md5sum", "-c", "--strict", "--quiet", str(out)],
                               cwd=dataset, capture_output=True)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    assert run(copyfolder.main, ["--manifest", str(out), "--out", str(raw), str(dataset)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    with open(os.path.join(os.fsencode(raw / NAME), ODD), "rb") as fh:
        assert fh.read() == b"junk"
    # the stat cache carries the name too (JSON escapes), and the md5 taken from it
    later = manifest.compute_manifest(dataset, started_ns=time.time_ns() + LATER)
    cache = manifest.parse_stat_cache(manifest.stat_cache_bytes(later.cache))
    assert os.fsdecode(ODD) in cache and cache == later.cache
    again = manifest.compute_manifest(dataset, cache, started_ns=time.time_ns() + LATER)
    assert again.hashed == 0 and manifest.manifest_bytes(again.text) == out.read_bytes()
    # the adapter does not read it: the dataset slices as usual
    adapter = slicing.get_adapter("nnunet")(raw)
    assert len(adapter.labelled()) == 8


def test_case_named_with_bytes_that_are_not_utf8_is_refused_in_one_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for sub, suffix in (("imagesTr", b"_0000"), ("imagesTr", b"_0001"), ("labelsTr", b"")):
        src = dataset / sub / f"tiny_001{suffix.decode()}.nii.gz"
        dst = os.path.join(os.fsencode(dataset / sub), b"odd\xff" + suffix + b".nii.gz")
        shutil.copyfile(src, dst)
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["numTraining"] += 1
    (dataset / "dataset.json").write_text(json.dumps(meta))
    out, raw = tmp_path / "m.md5", tmp_path / "raw"
    assert run(manifest.main, ["--out", str(out), str(dataset)]) == 0
    assert run(copyfolder.main, ["--manifest", str(out), "--out", str(raw), str(dataset)]) == 0
    capsys.readouterr()
    argv = ["--raw", str(raw), "--out", str(tmp_path / "cases"), "--adapter", "nnunet",
            "--n-test", "2", "--n-val", "1"]  # fmt: skip
    err = one_line_error(capsys, slicing.main, argv)
    assert "case id 'odd\\xff' is not UTF-8 text" in err and "rename" in err
    assert not (tmp_path / "cases").exists()


def test_tar_member_not_utf8_is_unpacked_with_its_bytes(tmp_path: Path) -> None:
    archive = tmp_path / "odd.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(os.fsdecode(b"Task/" + ODD))
        info.size = 4
        tar.addfile(info, io.BytesIO(b"junk"))
    summary = extract_archives([archive], tmp_path / "raw")
    assert summary.files == 1
    assert os.listdir(os.fsencode(tmp_path / "raw" / "Task")) == [ODD]


# ------------------------------------------------------------------- through make


def test_make_wiring_of_the_guard_and_the_stat_cache(tmp_path: Path, run_make) -> None:
    """MAX_FILE_GB reaches the manifest (refused in one line, raw not built) but no
    record (changing it plans nothing); a no-op make reads no file of the folder."""
    folder = make_dataset(tmp_path / "nnUNet_raw")
    root = copy_project(tmp_path / "proj")
    args = ("-f", "spleen.make", "DS=nn", f"NNUNET_DATASET={folder}", "data/nn/raw")
    big = sparse_file(folder / "disk.img", 3 * MB)
    proc = run_make(root, *args, "MAX_FILE_GB=0.001")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("segline: ")]
    assert len(lines) == 1 and lines[0].startswith(f"segline: {big}: 0.003 GB"), proc.stderr
    assert lines[0].endswith(
        ", larger than the 0.001 GB allowed for one file of a dataset folder (not an image "
        "volume?); remove it from the folder or raise the limit (make MAX_FILE_GB=N, 0 = no "
        "limit)"
    )
    assert "Traceback" not in proc.stderr and not (root / "data" / "nn" / "raw").exists()

    big.unlink()
    proc = run_make(root, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "data" / "nn" / "raw" / NAME / "dataset.json").is_file()
    plan = run_make(root, "-n", *args, "MAX_FILE_GB=100")
    assert "segline.lineage.copyfolder" not in plan.stdout, plan.stdout  # not recorded

    time.sleep(manifest.RACY_NS / 1e9 + 0.2)  # the files are no longer racy
    assert run_make(root, *args).returncode == 0  # caches them
    proc = run_make(root, *args)
    assert proc.returncode == 0
    assert "none hashed: stat unchanged" in proc.stdout and "unchanged (" in proc.stdout
    assert "segline.lineage.copyfolder" not in proc.stdout
