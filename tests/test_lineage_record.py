"""Tests for segline.lineage.record: md5s recorded on first use (``# record:`` lineages),
through the unpack and fetch CLIs as make runs them."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from segline import provenance
from segline.errors import InputError
from segline.lineage import record
from segline.lineage.lineagefile import parse_lineage

PREPROCESS = Path(__file__).resolve().parents[1] / "preprocess"
RECORD = "lineage/x.local.lineage"
NOTE = "# source: put the archives in data/ yourself (registration)\n"


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """data/a.tar, data/b.tar and lineage/x.lineage naming a record file (cwd = root)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "lineage").mkdir()
    (tmp_path / "data" / "a.tar").write_bytes(tar_of({"top/a.txt": b"a" * 100}))
    (tmp_path / "data" / "b.tar").write_bytes(tar_of({"top/b.txt": b"b" * 100}))
    (tmp_path / "lineage" / "x.lineage").write_text(
        NOTE + "# licence: CC0\n" + f"# record: {RECORD}\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def run_cli(repo: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, str(PREPROCESS / script), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )


def unpack(repo: Path, out: str, *archives: str) -> subprocess.CompletedProcess[str]:
    return run_cli(repo, "unpack.py", "--lineage", "lineage/x.lineage", "--out", out, *archives)


def test_first_use_records_and_says_one_line(repo: Path) -> None:
    done = unpack(repo, "data/raw", "data/a.tar", "data/b.tar")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    said = [ln for ln in lines if "recorded in" in ln]
    assert said == [
        f"md5 of data/a.tar recorded in {RECORD}; commit it to pin this archive",
        f"md5 of data/b.tar recorded in {RECORD}; commit it to pin this archive",
    ]
    assert lines[-1].startswith("unpacked data/a.tar, data/b.tar (md5 ok) -> data/raw")
    text = (repo / RECORD).read_text()
    entries = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert entries == [
        f"{md5(repo / 'data/a.tar')}  data/a.tar",
        f"{md5(repo / 'data/b.tar')}  data/b.tar",
    ]
    assert "# source: put the archives in data/ yourself (registration)" in text
    assert "# commit this file to pin them" in text
    assert (repo / "data/raw/top/a.txt").read_bytes() == b"a" * 100
    # md5sum reads the record file like any lineage.
    check = subprocess.run(["md5sum", "-c", RECORD], cwd=repo, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2


def test_second_use_verifies_without_recording(repo: Path) -> None:
    assert unpack(repo, "data/raw", "data/a.tar").returncode == 0
    before = (repo / RECORD).read_bytes()
    again = unpack(repo, "data/raw2", "data/a.tar")
    assert again.returncode == 0, again.stderr
    assert "recorded" not in again.stdout
    assert again.stdout.startswith("unpacked data/a.tar (md5 ok) -> data/raw2")
    assert (repo / RECORD).read_bytes() == before
    # A new archive later is appended; the first entry stays as it was.
    third = unpack(repo, "data/raw3", "data/a.tar", "data/b.tar")
    assert third.returncode == 0
    assert [ln for ln in third.stdout.splitlines() if "recorded" in ln] == [
        f"md5 of data/b.tar recorded in {RECORD}; commit it to pin this archive"
    ]
    assert (repo / RECORD).read_text().startswith(before.decode())


def test_changed_archive_refused(repo: Path) -> None:
    assert unpack(repo, "data/raw", "data/a.tar").returncode == 0
    old = md5(repo / "data/a.tar")
    (repo / "data/a.tar").write_bytes(tar_of({"top/a.txt": b"changed"}))
    new = md5(repo / "data/a.tar")
    bad = unpack(repo, "data/raw_again", "data/a.tar")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith(
        f"segline: data/a.tar: md5 {new} does not match {RECORD} ({old}); re-download it"
    )
    assert not (repo / "data/raw_again").exists()
    assert old in (repo / RECORD).read_text() and new not in (repo / RECORD).read_text()


def test_missing_archive_records_nothing(repo: Path) -> None:
    done = unpack(repo, "data/raw", "data/a.tar", "data/missing.tar")
    assert done.returncode == 2
    assert done.stderr.startswith("segline: data/missing.tar: not found (source: put the")
    assert f"its md5 is recorded in {RECORD} on first use" in done.stderr
    assert done.stderr.count("\n") == 1
    # All or nothing: a.tar was not recorded either.
    assert not (repo / RECORD).exists()


def test_record_file_written_atomically(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lineage = parse_lineage("lineage/x.lineage")
    record.record_md5s(lineage, ["data/a.tar"])
    before = (repo / RECORD).read_bytes()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        record.record_md5s(lineage, ["data/b.tar"])
    monkeypatch.undo()
    assert (repo / RECORD).read_bytes() == before  # untouched, no half-written entry
    leftovers = sorted(p.name for p in (repo / "lineage").iterdir())
    assert leftovers == [".x.local.lineage.lock", "x.lineage", "x.local.lineage"]


def test_listed_archives_use_the_lineage(repo: Path) -> None:
    lin = repo / "lineage" / "x.lineage"
    lin.write_text(lin.read_text() + f"{md5(repo / 'data/a.tar')}  data/a.tar\n")
    done = unpack(repo, "data/raw", "data/a.tar", "data/b.tar")
    assert done.returncode == 0, done.stderr
    assert [ln for ln in done.stdout.splitlines() if "recorded" in ln] == [
        f"md5 of data/b.tar recorded in {RECORD}; commit it to pin this archive"
    ]
    assert "data/a.tar" not in (repo / RECORD).read_text()
    # A wrong pinned md5 is refused against the lineage itself, never re-recorded.
    lin.write_text(lin.read_text().replace(md5(repo / "data/a.tar"), "0" * 32))
    bad = unpack(repo, "data/raw2", "data/a.tar")
    assert bad.returncode == 2
    assert f"does not match lineage/x.lineage ({'0' * 32})" in bad.stderr


def test_fetch_guidance(repo: Path) -> None:
    missing = run_cli(repo, "fetch.py", "--lineage", "lineage/x.lineage", "data/new.tar")
    assert missing.returncode == 2
    assert missing.stderr.startswith("segline: data/new.tar: not found (source: put the")
    assert "put the archive at data/new.tar" in missing.stderr
    assert missing.stderr.count("\n") == 1
    # Recorded earlier, then removed: fetch says where to put it and its md5.
    record.record_md5s(parse_lineage("lineage/x.lineage"), ["data/a.tar"])
    want = md5(repo / "data/a.tar")
    (repo / "data/a.tar").unlink()
    gone = run_cli(repo, "fetch.py", "--lineage", "lineage/x.lineage", "data/a.tar")
    assert gone.returncode == 2
    assert f"put it at data/a.tar (md5 {want})" in gone.stderr


def test_expected_md5_and_bad_record_values(repo: Path) -> None:
    lineage = parse_lineage("lineage/x.lineage")
    assert record.record_file(lineage) == Path(RECORD)
    record.record_md5s(lineage, ["data/b.tar"])
    assert record.expected_md5(lineage, "./data/b.tar") == md5(repo / "data/b.tar")
    for value in ("/abs/x.lineage", "../x.lineage", "lineage/x.txt", "lineage/y.lineage"):
        (repo / "lineage" / "y.lineage").write_text(f"# record: {value}\n")
        bad = parse_lineage("lineage/y.lineage")  # the last one names itself
        with pytest.raises(InputError, match="must name another .lineage file"):
            record.record_file(bad)


def test_lineage_without_entries_needs_a_record(repo: Path) -> None:
    (repo / "lineage" / "empty.lineage").write_text("# source: somewhere\n")
    with pytest.raises(InputError, match="lists no archive"):
        parse_lineage("lineage/empty.lineage")
    assert parse_lineage("lineage/x.lineage").entries == []


def test_provenance_copies_recorded_md5s(repo: Path) -> None:
    record.record_md5s(parse_lineage("lineage/x.lineage"), ["data/a.tar"])
    lines = provenance._recorded_lines(Path("lineage/x.lineage"))
    assert lines == [f"{md5(repo / 'data/a.tar')}  data/a.tar"]
    assert provenance._recorded_lines(Path(RECORD)) == []
