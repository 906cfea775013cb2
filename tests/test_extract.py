"""Tests for segline.lineage.extract: safe, atomic extraction of tar and zip archives."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from segline.errors import InputError
from segline.lineage.extract import (
    extract_archives,
    is_excluded,
    is_junk,
    kept_mode,
    main,
    member_path,
)

UNPACK = Path(__file__).resolve().parents[1] / "preprocess" / "unpack.py"
OLD = 315532800  # 1980-01-01: member mtimes that must not reach the extracted files

# A tiny MSD-like dataset: (name, data or None for a folder, mode)
FILES: list[tuple[str, bytes | None, int]] = [
    ("Task09_Spleen", None, 0o755),
    ("Task09_Spleen/dataset.json", b'{"name": "Spleen"}\n', 0o644),
    ("Task09_Spleen/imagesTr/spleen_2.nii.gz", bytes(range(256)) * 40, 0o600),
    ("Task09_Spleen/labelsTr/spleen_2.nii.gz", b"\x01\x02" * 3000, 0o644),
    ("Task09_Spleen/run.sh", b"#!/bin/sh\necho hi\n", 0o4755),  # setuid must be dropped
]


def tar_member(
    tar: tarfile.TarFile,
    name: str,
    data: bytes | None = None,
    *,
    kind: bytes = tarfile.REGTYPE,
    mode: int = 0o644,
    linkname: str = "",
) -> None:
    """Add one member of any type with an old mtime."""
    info = tarfile.TarInfo(name)
    info.mtime = OLD
    info.mode = mode
    if data is None and kind == tarfile.REGTYPE:
        kind = tarfile.DIRTYPE
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if data is not None else 0
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def make_tar(
    path: Path, members: list[tuple[str, bytes | None, int]] = FILES, mode: str = "w"
) -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data, perm in members:
            tar_member(tar, name, data, mode=perm)
    return path


def make_zip(path: Path, members: list[tuple[str, bytes | None, int]] = FILES) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, perm in members:
            info = zipfile.ZipInfo(name + ("/" if data is None else ""), (1980, 1, 1, 0, 0, 0))
            kind = stat.S_IFDIR if data is None else stat.S_IFREG
            info.external_attr = (kind | perm) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data or b"")
    return path


def assert_dataset(out: Path) -> None:
    """The FILES tree is there, byte-exact, with sane modes and fresh mtimes."""
    now = time.time()
    for name, data, perm in FILES:
        path = out / name
        mode = stat.S_IMODE(path.stat().st_mode)
        if data is None:
            assert path.is_dir() and mode == 0o755
            continue
        assert path.read_bytes() == data
        assert mode == kept_mode(perm), name  # the member's own (0o600 stays 0o600)
        assert abs(path.stat().st_mtime - now) < 600, "member mtime leaked into the file"
    assert stat.S_IMODE((out / "Task09_Spleen" / "imagesTr").stat().st_mode) == 0o755


def assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not out.with_name(out.name + "_tmp").exists()


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz", ".tgz"])
def test_extract_tar(tmp_path: Path, suffix: str) -> None:
    mode = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.xz": "w:xz"}[suffix]
    archive = make_tar(tmp_path / f"spleen{suffix}", mode=mode)
    summary = extract_archives([archive], tmp_path / "raw")
    assert_dataset(tmp_path / "raw")
    assert (summary.archives, summary.files, summary.dirs) == (1, 4, 1)
    assert summary.bytes == sum(len(d) for _, d, _ in FILES if d is not None)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([archive.name, "raw"])


def test_extract_zip(tmp_path: Path) -> None:
    summary = extract_archives([make_zip(tmp_path / "spleen.zip")], tmp_path / "raw")
    assert_dataset(tmp_path / "raw")
    assert (summary.files, summary.dirs) == (4, 1)


def test_zip_without_unix_attributes_and_unknown_name(tmp_path: Path) -> None:
    archive = tmp_path / "plain.bin"  # format found from the content
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("top/a.txt", b"A")
        zf.writestr("top\\win.txt", b"W")  # a Windows tool's separator
    extract_archives([archive], tmp_path / "raw")
    assert (tmp_path / "raw" / "top" / "a.txt").read_bytes() == b"A"
    assert (tmp_path / "raw" / "top" / "win.txt").read_bytes() == b"W"
    # Python's zipfile records 0o600 for writestr: the member's mode is kept
    assert stat.S_IMODE((tmp_path / "raw" / "top" / "a.txt").stat().st_mode) == 0o600


def test_replaces_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    (out / "stale").mkdir(parents=True)
    extract_archives([make_tar(tmp_path / "a.tar")], out)
    assert not (out / "stale").exists()
    assert_dataset(out)


JUNK = [
    ("__MACOSX", None, 0o755),
    ("__MACOSX/Task09_Spleen/._dataset.json", b"mac", 0o644),
    ("Task09_Spleen/._spleen_2.nii.gz", b"appledouble", 0o644),
    ("Task09_Spleen/imagesTr/.DS_Store", b"ds", 0o644),
    ("./Task09_Spleen/./dataset.json.bak", b"kept", 0o644),
    ("./", None, 0o755),
]


@pytest.mark.parametrize("maker", [make_tar, make_zip])
def test_macos_junk_dropped(tmp_path: Path, maker: Callable[..., Path]) -> None:
    archive = maker(tmp_path / ("a.tar" if maker is make_tar else "a.zip"), FILES + JUNK)
    summary = extract_archives([archive], tmp_path / "raw")
    assert_dataset(tmp_path / "raw")
    assert summary.junk == 4
    assert (tmp_path / "raw" / "Task09_Spleen" / "dataset.json.bak").read_bytes() == b"kept"
    names = {p.relative_to(tmp_path / "raw").as_posix() for p in (tmp_path / "raw").rglob("*")}
    assert not any("MACOSX" in n or "/._" in n or "DS_Store" in n for n in names)


ISLES = [
    (
        "ISLES/case_1/SMIR.Brain.XX.O.CT_4DPWI.345/SMIR.Brain.XX.O.CT_4DPWI.345.nii",
        b"4d" * 500,
        0o644,
    ),
    ("ISLES/case_1/SMIR.Brain.XX.O.CT_Tmax.346/SMIR.Brain.XX.O.CT_Tmax.346.nii", b"tmax", 0o644),
    ("ISLES/case_1/notes.txt", b"n", 0o644),
    ("ISLES/case_2/SMIR.Brain.XX.O.CT_4DPWI.400", None, 0o755),
    ("ISLES/case_2/SMIR.Brain.XX.O.CT_4DPWI.400/x.nii", b"4d", 0o644),
    ("ISLES/case_2/SMIR.Brain.XX.O.OT.401/x.nii", b"ot", 0o644),
]


@pytest.mark.parametrize("maker", [make_tar, make_zip])
def test_exclude_patterns(tmp_path: Path, maker: Callable[..., Path]) -> None:
    archive = maker(tmp_path / ("isles.tar" if maker is make_tar else "isles.zip"), ISLES)
    summary = extract_archives([archive], tmp_path / "raw", exclude=["*CT_4DPWI*", "*.txt"])
    files = sorted(
        p.relative_to(tmp_path / "raw").as_posix()
        for p in (tmp_path / "raw").rglob("*")
        if p.is_file()
    )
    assert files == [
        "ISLES/case_1/SMIR.Brain.XX.O.CT_Tmax.346/SMIR.Brain.XX.O.CT_Tmax.346.nii",
        "ISLES/case_2/SMIR.Brain.XX.O.OT.401/x.nii",
    ]
    assert summary.excluded == 4 and summary.files == 2


def test_exclude_whole_path_pattern() -> None:
    from pathlib import PurePosixPath

    assert is_excluded(PurePosixPath("Task/imagesTs/a.nii.gz"), ["Task/imagesTs/*"])
    assert is_excluded(PurePosixPath("Task/imagesTs"), ["imagesTs"])
    assert not is_excluded(PurePosixPath("Task/imagesTr/a.nii.gz"), ["Task/imagesTs/*"])
    assert not is_excluded(PurePosixPath("Task/x.NII"), ["*.nii"])  # case-sensitive
    assert is_junk(PurePosixPath("a/__MACOSX/b")) and not is_junk(PurePosixPath("a/MACOSX"))


def test_member_path_rules(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    assert str(member_path(archive, "./a//b/./c")) == "a/b/c"
    assert member_path(archive, "./") is None
    assert str(member_path(archive, "a..b/..c")) == "a..b/..c"  # dots inside names are fine
    for bad in ["/etc/passwd", "a/../../b", "..", "C:/x", "a\x00b"]:
        with pytest.raises(InputError):
            member_path(archive, bad)


TAR_REFUSALS = [
    ("/etc/evil", dict(data=b"x"), "absolute path"),
    ("../evil", dict(data=b"x"), "'..' in its path"),
    ("Task/../../evil", dict(data=b"x"), "'..' in its path"),
    ("Task/link", dict(kind=tarfile.SYMTYPE, linkname="/etc/passwd"), "symlink to '/etc/passwd'"),
    ("Task/inner", dict(kind=tarfile.SYMTYPE, linkname="dataset.json"), "symlink"),
    ("Task/hard", dict(kind=tarfile.LNKTYPE, linkname="Task/dataset.json"), "hardlink"),
    ("Task/tty", dict(kind=tarfile.CHRTYPE), "device file"),
    ("Task/sda", dict(kind=tarfile.BLKTYPE), "device file"),
    ("Task/pipe", dict(kind=tarfile.FIFOTYPE), "fifo"),
]


@pytest.mark.parametrize(("name", "kwargs", "problem"), TAR_REFUSALS)
def test_tar_refusals(tmp_path: Path, name: str, kwargs: dict, problem: str) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        tar_member(tar, "Task/dataset.json", b"{}")
        tar_member(tar, name, **kwargs)
        tar_member(tar, "Task/later.txt", b"after")
    out = tmp_path / "raw"
    with pytest.raises(InputError) as exc:
        extract_archives([archive], out)
    assert str(exc.value).startswith(f"{archive}: refusing member {name!r}: ")
    assert problem in str(exc.value)
    assert_nothing_left(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar"]  # nothing written anywhere


def test_refusal_keeps_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        tar_member(tar, "Task/a", b"a")
        tar_member(tar, "Task/l", kind=tarfile.SYMTYPE, linkname="a")
    with pytest.raises(InputError, match="symlink"):
        extract_archives([archive], out)
    assert (out / "keep.txt").read_text() == "previous run"
    assert not (tmp_path / "raw_tmp").exists()


def test_special_members_in_junk_or_excluded_are_dropped(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        tar_member(tar, "Task/a", b"a")
        tar_member(tar, "__MACOSX/Task/l", kind=tarfile.SYMTYPE, linkname="x")
        tar_member(tar, "Task/skip/l", kind=tarfile.SYMTYPE, linkname="x")
    summary = extract_archives([archive], tmp_path / "raw", exclude=["skip"])
    assert (summary.files, summary.junk, summary.excluded) == (1, 1, 1)
    # but path checks apply to every member, dropped or not
    with tarfile.open(archive, "a") as tar:
        tar_member(tar, "__MACOSX/../../evil", b"x")
    with pytest.raises(InputError, match="'..' in its path"):
        extract_archives([archive], tmp_path / "raw2", exclude=["skip"])
    assert_nothing_left(tmp_path / "raw2")


ZIP_REFUSALS = [
    ("/etc/evil", stat.S_IFREG | 0o644, "absolute path"),
    ("C:/evil", stat.S_IFREG | 0o644, "absolute path"),
    ("../evil", stat.S_IFREG | 0o644, "'..' in its path"),
    ("Task\\..\\..\\evil", stat.S_IFREG | 0o644, "'..' in its path"),
    ("Task/link", stat.S_IFLNK | 0o777, "symlink"),
    ("Task/pipe", stat.S_IFIFO | 0o644, "fifo"),
    ("Task/dev", stat.S_IFCHR | 0o644, "device file"),
    ("Task/sock", stat.S_IFSOCK | 0o644, "special member"),
]


@pytest.mark.parametrize(("name", "mode", "problem"), ZIP_REFUSALS)
def test_zip_refusals(tmp_path: Path, name: str, mode: int, problem: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Task/dataset.json", b"{}")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, b"/etc/passwd")
    out = tmp_path / "raw"
    with pytest.raises(InputError) as exc:
        extract_archives([archive], out)
    assert str(exc.value).startswith(f"{archive}: refusing member {name!r}: ")
    assert problem in str(exc.value)
    assert_nothing_left(out)


def test_zip_encrypted_member_refused(tmp_path: Path) -> None:
    archive = tmp_path / "enc.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Task/a", b"a")
    raw = bytearray(archive.read_bytes())
    # set the "encrypted" flag bit in the central directory entry (offset 8 of it)
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 8] |= 0x1
    archive.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="refusing member 'Task/a': encrypted"):
        extract_archives([archive], tmp_path / "raw")
    assert_nothing_left(tmp_path / "raw")


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([("T/a", b"1", 0o644), ("T/a", b"2", 0o644)], "path given twice"),
        ([("T/a", b"1", 0o644), ("T/a/b", b"2", 0o644)], "T/a is a file in .*a.tar"),
        ([("T/a", None, 0o755), ("T/a", b"2", 0o644)], "path given twice"),
    ],
)
def test_conflicting_paths_refused(tmp_path: Path, members: list, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        extract_archives([make_tar(tmp_path / "a.tar", members)], tmp_path / "raw")
    assert_nothing_left(tmp_path / "raw")


def test_several_archives_one_folder(tmp_path: Path) -> None:
    a = make_zip(tmp_path / "train.zip", [("ISLES/TRAINING/c1.nii", b"train", 0o644)])
    b = make_zip(tmp_path / "test.zip", [("ISLES/TESTING/c9.nii", b"test", 0o644)])
    summary = extract_archives([a, b], tmp_path / "raw")
    assert (tmp_path / "raw" / "ISLES" / "TRAINING" / "c1.nii").read_bytes() == b"train"
    assert (tmp_path / "raw" / "ISLES" / "TESTING" / "c9.nii").read_bytes() == b"test"
    assert (summary.archives, summary.files) == (2, 2)
    clash = make_tar(tmp_path / "clash.tar", [("ISLES/TRAINING/c1.nii", b"other", 0o644)])
    with pytest.raises(InputError, match=r"clash\.tar: refusing member .*also in .*train\.zip"):
        extract_archives([a, clash], tmp_path / "raw2")
    assert_nothing_left(tmp_path / "raw2")
    below = make_tar(tmp_path / "below.tar", [("ISLES/TESTING/c9.nii/x", b"x", 0o644)])
    with pytest.raises(
        InputError, match=r"below\.tar: .*ISLES/TESTING/c9\.nii is a file in .*test"
    ):
        extract_archives([a, b, below], tmp_path / "raw3")
    assert_nothing_left(tmp_path / "raw3")


def test_write_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk is reported as an InputError on the output folder, not a traceback."""
    import segline.lineage.extract as ex

    def full_disk(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device", "raw_tmp/Task09_Spleen/dataset.json")

    monkeypatch.setattr(ex, "_create", full_disk)
    with pytest.raises(InputError) as exc:
        extract_archives([make_tar(tmp_path / "a.tar")], tmp_path / "raw")
    assert str(exc.value) == (
        f"{tmp_path / 'raw'}: cannot write raw_tmp/Task09_Spleen/dataset.json "
        "(No space left on device)"
    )
    monkeypatch.undo()
    assert_nothing_left(tmp_path / "raw")


def big_members() -> list[tuple[str, bytes | None, int]]:
    """Incompressible members, so cutting the archive anywhere loses data."""
    rng = [hashlib.sha256(str(i).encode()).digest() * 160 for i in range(4)]  # 5 KiB each
    return [("Task", None, 0o755)] + [(f"Task/f{i}.bin", d, 0o644) for i, d in enumerate(rng)]


def tar_content_end(path: Path) -> tuple[int, int, int]:
    """Offsets in the uncompressed tar stream: the 3rd header, the end of the last
    member's data, and the end of the end-of-archive blocks."""
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    last = members[-1]
    data_end = last.offset_data + last.size
    return members[2].offset, data_end, data_end + (-data_end % 512) + 1024


@pytest.mark.parametrize("where", [0.1, 0.5, 0.8, "header", "data-end", "end-blocks"])
def test_truncated_tar(tmp_path: Path, where: float | str) -> None:
    full = make_tar(tmp_path / "full.tar", big_members())
    header, data_end, end = tar_content_end(full)
    named = {"header": header + 100, "data-end": data_end - 1, "end-blocks": data_end + 300}
    cut = named[where] if isinstance(where, str) else int(end * where)
    archive = tmp_path / "cut.tar"
    archive.write_bytes(full.read_bytes()[:cut])
    out = tmp_path / "raw"
    with pytest.raises(InputError) as exc:
        extract_archives([archive], out)
    msg = str(exc.value)
    assert msg.startswith(f"{archive}: truncated or corrupt archive (") and "\n" not in msg
    assert_nothing_left(out)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9, -1, -9])
def test_truncated_tar_gz(tmp_path: Path, where: float) -> None:
    """Cut anywhere, even in the 8-byte gzip trailer (CRC-32, length) after all the data."""
    data = make_tar(tmp_path / "full.tar.gz", big_members(), mode="w:gz").read_bytes()
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(data[: int(len(data) * where) if where > 0 else len(data) + int(where)])
    with pytest.raises(InputError, match=r"cut\.tar\.gz: truncated or corrupt archive \("):
        extract_archives([archive], tmp_path / "raw")
    assert_nothing_left(tmp_path / "raw")


def test_corrupt_gzip_crc(tmp_path: Path) -> None:
    data = bytearray(make_tar(tmp_path / "full.tgz", big_members(), mode="w:gz").read_bytes())
    data[-6] ^= 0xFF  # inside the stored CRC-32: the data decompresses but does not check
    (tmp_path / "bad.tgz").write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated or corrupt archive"):
        extract_archives([tmp_path / "bad.tgz"], tmp_path / "raw")
    assert_nothing_left(tmp_path / "raw")


def test_tar_padding_is_optional(tmp_path: Path) -> None:
    """Only the record padding after the end-of-archive blocks is lost: nothing is missing."""
    full = make_tar(tmp_path / "full.tar", big_members())
    _, _, end = tar_content_end(full)
    assert full.stat().st_size > end  # tarfile pads to 10 KiB records
    (tmp_path / "short.tar").write_bytes(full.read_bytes()[:end])
    extract_archives([tmp_path / "short.tar"], tmp_path / "ok")
    assert (tmp_path / "ok" / "Task" / "f3.bin").read_bytes() == big_members()[-1][1]


@pytest.mark.parametrize("cut", [0.3, 0.9, -1])
def test_truncated_zip(tmp_path: Path, cut: float) -> None:
    data = make_zip(tmp_path / "full.zip", big_members()).read_bytes()
    archive = tmp_path / "cut.zip"
    archive.write_bytes(data[: int(len(data) * cut) if cut > 0 else len(data) - 1])
    with pytest.raises(InputError, match=r"^.*cut\.zip: truncated or corrupt archive \("):
        extract_archives([archive], tmp_path / "raw")
    assert_nothing_left(tmp_path / "raw")


def test_corrupt_zip_data_caught_while_writing(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "c.zip", big_members())
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("Task/f2.bin")
    raw[info.header_offset + 30 + len(info.filename) + 50] ^= 0xFF  # inside its data
    archive.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="truncated or corrupt archive"):
        extract_archives([archive], tmp_path / "raw")
    assert_nothing_left(tmp_path / "raw")


@pytest.mark.parametrize("name", ["junk.tar", "junk.tar.gz", "junk.zip", "junk.bin", "empty.tar"])
def test_not_an_archive(tmp_path: Path, name: str) -> None:
    archive = tmp_path / name
    archive.write_bytes(b"" if name == "empty.tar" else b"this is not an archive\n" * 50)
    with pytest.raises(InputError, match="truncated or corrupt archive"):
        extract_archives([archive], tmp_path / "raw")
    assert_nothing_left(tmp_path / "raw")


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="archive not found"):
        extract_archives([tmp_path / "nope.tar"], tmp_path / "raw")
    assert_nothing_left(tmp_path / "raw")


# ---- the unpack CLI -----------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = a repository with data/spleen.tar, data/isles.zip and a lineage for both."""
    (tmp_path / "data").mkdir()
    (tmp_path / "lineage").mkdir()
    make_tar(tmp_path / "data" / "spleen.tar", FILES + JUNK)
    make_zip(tmp_path / "data" / "isles.zip", ISLES)
    lines = ["# source: registration required", "# licence: test"]
    for name in ("spleen.tar", "isles.zip"):
        md5 = hashlib.md5((tmp_path / "data" / name).read_bytes()).hexdigest()
        lines.append(f"{md5}  data/{name}")
    (tmp_path / "lineage" / "t.lineage").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_main_unpacks_and_reports(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "--lineage",
            "lineage/t.lineage",
            "--out",
            "data/t/raw",
            "--exclude",
            "*CT_4DPWI*",
            "./data/spleen.tar",
            "data/isles.zip",
        ]
    )
    assert rc == 0
    assert_dataset(repo / "data" / "t" / "raw")
    assert (repo / "data/t/raw/ISLES/case_2/SMIR.Brain.XX.O.OT.401/x.nii").read_bytes() == b"ot"
    assert not list((repo / "data" / "t" / "raw").rglob("*4DPWI*"))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith(
        "unpacked data/spleen.tar, data/isles.zip (md5 ok) -> data/t/raw: 8 files"
    )
    assert out[0].endswith("dropped 4 macOS junk, 3 excluded")


def test_main_refuses_unlisted_archive(repo: Path) -> None:
    make_tar(repo / "data" / "other.tar")
    with pytest.raises(InputError, match=r"^data/other\.tar: not listed in lineage/t\.lineage"):
        main(["--lineage", "lineage/t.lineage", "--out", "data/t/raw", "data/other.tar"])
    assert_nothing_left(repo / "data" / "t" / "raw")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(UNPACK), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_success(repo: Path) -> None:
    res = run_cli(
        "--lineage", "lineage/t.lineage", "--out", "data/t/raw", "data/spleen.tar", cwd=repo
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == 1 and res.stdout.startswith("unpacked data/spleen.tar")
    assert_dataset(repo / "data" / "t" / "raw")


def test_cli_wrong_md5_is_one_line(repo: Path) -> None:
    (repo / "data" / "spleen.tar").write_bytes(b"corrupted download")
    res = run_cli(
        "--lineage", "lineage/t.lineage", "--out", "data/t/raw", "data/spleen.tar", cwd=repo
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("segline: data/spleen.tar: md5 ")
    assert "does not match lineage/t.lineage" in lines[0] and "TOY=1" in lines[0]
    assert_nothing_left(repo / "data" / "t" / "raw")


def test_cli_evil_archive_is_one_line(repo: Path) -> None:
    with tarfile.open(repo / "data" / "spleen.tar", "w") as tar:
        tar_member(tar, "../../escape.txt", b"x")
    md5 = hashlib.md5((repo / "data" / "spleen.tar").read_bytes()).hexdigest()
    (repo / "lineage" / "e.lineage").write_text(f"{md5}  data/spleen.tar\n")
    res = run_cli(
        "--lineage", "lineage/e.lineage", "--out", "data/t/raw", "data/spleen.tar", cwd=repo
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr == (
        "segline: data/spleen.tar: refusing member '../../escape.txt': '..' in its path\n"
    )
    assert not (repo.parent / "escape.txt").exists()
    assert_nothing_left(repo / "data" / "t" / "raw")


# ---- decompression bombs ------------------------------------------------------------


class Zeros(io.RawIOBase):
    """``n`` zero bytes, read in chunks (a big member without allocating it)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def zeros_tar_gz(path: Path, size: int) -> Path:
    """A tar.gz holding ``Task/zeros.bin``: ``size`` zero bytes (gzip shrinks ~1000x)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("Task/zeros.bin")
        info.size = size
        tar.addfile(info, Zeros(size))
    return path


def test_bomb_refused_before_anything_is_written(repo: Path) -> None:
    bomb = zeros_tar_gz(repo / "data" / "bomb.tar.gz", 64 << 20)
    packed = bomb.stat().st_size
    assert packed < 1 << 20  # 64 MiB of zeros in well under 1 MiB
    md5 = hashlib.md5(bomb.read_bytes()).hexdigest()
    (repo / "lineage" / "b.lineage").write_text(f"{md5}  data/bomb.tar.gz\n")
    res = run_cli(
        "--lineage", "lineage/b.lineage", "--out", "data/b/raw", "data/bomb.tar.gz", cwd=repo
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("segline: data/bomb.tar.gz: declares 64.0 MiB uncompressed, ")
    assert f"{(64 << 20) / packed:.0f} x its" in lines[0]
    assert "(limit 200 x, at least 32.0 MiB)" in lines[0] and "--max-ratio N" in lines[0]
    assert_nothing_left(repo / "data" / "b" / "raw")


def test_bomb_ratio_limit_and_raising_it(tmp_path: Path) -> None:
    small = zeros_tar_gz(tmp_path / "z.tar.gz", 1 << 20)  # ~1 KiB compressed
    ratio = (1 << 20) / small.stat().st_size
    assert ratio > 200
    with pytest.raises(InputError, match=r"declares 1\.0 MiB uncompressed.*limit 200 x"):
        extract_archives([small], tmp_path / "raw", ratio_floor=0)
    assert_nothing_left(tmp_path / "raw")
    # the floor lets small archives through; a raised ratio or 0 (off) lets it through
    for kwargs in (
        {},
        {"ratio_floor": 0, "max_ratio": 2 * ratio},
        {"ratio_floor": 0, "max_ratio": 0},
    ):
        summary = extract_archives([small], tmp_path / "raw", **kwargs)
        assert summary.bytes == 1 << 20
        assert (tmp_path / "raw" / "Task" / "zeros.bin").stat().st_size == 1 << 20


def test_bomb_ratio_uses_zip_central_directory(tmp_path: Path) -> None:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Task/zeros.bin", bytes(1 << 20))
    with pytest.raises(InputError, match=r"z\.zip: declares 1\.0 MiB uncompressed"):
        extract_archives([path], tmp_path / "raw", ratio_floor=0)
    assert_nothing_left(tmp_path / "raw")
    # a normal archive (the small dataset) is far below any sensible ratio
    assert extract_archives([make_zip(tmp_path / "ok.zip")], tmp_path / "raw", ratio_floor=0)


def test_member_larger_than_declared_is_stopped(tmp_path: Path) -> None:
    from dataclasses import replace

    from segline.lineage.extract import open_archive, write_members

    with open_archive(make_tar(tmp_path / "a.tar")) as reader:
        reader.members = [
            replace(m, size=m.size // 2) if m.size > 1000 else m for m in reader.members
        ]
        (tmp_path / "out").mkdir()
        with pytest.raises(InputError, match="holds more than its declared 5120 bytes"):
            write_members(reader, tmp_path / "out")
    written = tmp_path / "out" / "Task09_Spleen" / "imagesTr" / "spleen_2.nii.gz"
    assert written.stat().st_size == 0  # stopped before the first block was written


def test_max_ratio_option(repo: Path) -> None:
    res = run_cli(
        "--lineage",
        "lineage/t.lineage",
        "--out",
        "data/t/raw",
        "--max-ratio",
        "-1",
        "data/spleen.tar",
        cwd=repo,
    )
    assert res.returncode == 2 and "--max-ratio" in res.stderr
    res = run_cli(
        "--lineage",
        "lineage/t.lineage",
        "--out",
        "data/t/raw",
        "--max-ratio",
        "1000",
        "data/spleen.tar",
        cwd=repo,
    )
    assert res.returncode == 0, res.stderr
    assert_dataset(repo / "data" / "t" / "raw")
