"""Safe extraction of dataset archives (tar, tar.gz/bz2/xz, zip) and the ``unpack`` CLI.

Dataset archives come from the internet, so nothing in them is trusted:

* every member is checked before anything is written: absolute paths, ``..``
  components, drive letters, NUL bytes, symlinks, hardlinks, devices, fifos and any
  other special member are refused (:class:`~segline.errors.InputError` naming the
  archive and the member), as are encrypted zip members and paths given twice;
* macOS junk (``__MACOSX/`` trees, ``._*`` AppleDouble files, ``.DS_Store``) is
  dropped silently; optional exclude globs drop more (matched with
  :func:`fnmatch.fnmatchcase` against each path component and the whole member path,
  so ``*CT_4DPWI*`` drops both such folders and such files);
* files are written by segline itself (never ``extractall``), created exclusively
  with the member's permission bits made safe (:func:`kept_mode`: a private 0o600
  member stays 0o600; never setuid, setgid, sticky or world-writable; always
  readable by the owner; 0o644 when the archive records no mode, as zip files made
  on Windows), folders likewise (0o755 when not in the archive); no owner or mtime
  is taken from the archive, so files carry the time of extraction and Make sees
  them newer than the archive;
* member names are taken as bytes where the format stores bytes (tar): a name that
  is not UTF-8 is written with the same bytes (Python's ``surrogateescape``);
* a truncated or corrupt archive is an :class:`InputError`, never a traceback;
* decompression bombs are refused before anything is written: the declared
  uncompressed size of the members to write (tar: the member headers' sizes; zip: the
  central directory's ``file_size``) may be at most ``max_ratio`` times the archive's
  size on disk (:data:`DEFAULT_MAX_RATIO` = 200, far above real imaging data, which
  is mostly compressed NIfTI already), but always at least :data:`RATIO_FLOOR_BYTES`
  (32 MiB, so small archives are never refused). ``unpack.py --max-ratio N`` raises
  the limit for a trusted archive, ``--max-ratio 0`` turns the check off. While
  writing, a member that yields more bytes than it declared is stopped at once;
* the output folder is written through :func:`segline.atomic.atomic_dir`: it appears
  only when every archive was extracted completely, and a failure leaves neither it
  nor its ``_tmp`` sibling behind.

Example:
    >>> import io, tarfile, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with tarfile.open(d / "a.tar", "w") as tar:
    ...     info = tarfile.TarInfo("Task/dataset.json"); info.size = 2
    ...     tar.addfile(info, io.BytesIO(b"{}"))
    >>> extract_archives([d / "a.tar"], d / "raw").files
    1
    >>> (d / "raw" / "Task" / "dataset.json").read_text()
    '{}'
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import fnmatch
import gzip
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from segline import atomic
from segline.cli import HelpFormatter, cli_of, entry, non_negative_float, prog
from segline.errors import InputError
from segline.lineage.lineagefile import parse_lineage
from segline.lineage.record import verify_or_record

JUNK_DIRS = frozenset({"__MACOSX"})
JUNK_FILES = frozenset({".DS_Store"})
FILE_MODE = 0o644
DIR_MODE = 0o755
_COPY_CHUNK = 1 << 20
#: Most uncompressed bytes (the members to write) per byte of archive: above it the
#: archive is refused as a likely decompression bomb (``--max-ratio`` raises it).
DEFAULT_MAX_RATIO = 200.0
#: Uncompressed bytes always allowed, whatever the ratio (small archives pass).
RATIO_FLOOR_BYTES = 32 << 20
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_DRIVE = re.compile(r"^[A-Za-z]:")
_ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}

#: Exceptions that reading a damaged archive can raise (tarfile, zipfile, the
#: decompressors). OSError covers gzip.BadGzipFile and bz2's "Invalid data stream".
_READ_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    OSError,
    ValueError,
    NotImplementedError,
)


@dataclass(frozen=True)
class Member:
    """One archive member that will be written.

    Attributes:
        name: the member's name as stored in the archive (for messages).
        path: where it goes, relative to the output folder.
        is_dir: a folder (else a regular file).
        executable: the member had an execute bit.
        size: uncompressed size in bytes (0 for folders).
        ref: the tarfile.TarInfo / zipfile.ZipInfo used to read the data.
        mode: the permission bits it is written with (:func:`kept_mode` of the
            member's; 0o644 for a file, 0o755 for a folder when the archive has none).
    """

    name: str
    path: PurePosixPath
    is_dir: bool
    executable: bool
    size: int
    ref: object = field(compare=False, repr=False)
    mode: int = FILE_MODE


@dataclass
class Summary:
    """What an extraction did (counts; ``bytes`` is the uncompressed size written)."""

    archives: int = 0
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    junk: int = 0
    excluded: int = 0

    def add(self, other: Summary) -> None:
        """Accumulate another archive's counts."""
        self.archives += other.archives
        self.files += other.files
        self.dirs += other.dirs
        self.bytes += other.bytes
        self.junk += other.junk
        self.excluded += other.excluded


def kept_mode(mode: int, folder: bool = False) -> int:
    """The permission bits a copied file (or folder) keeps of its source's ``mode``.

    The read/write/execute bits are kept, so a private file stays private, except
    world-write (anyone could change a built stage behind make's back); setuid,
    setgid and sticky bits are dropped; the owner can always read a file, and read,
    write and enter a folder (later stages and ``make clean-data`` must work).

    Example:
        >>> oct(kept_mode(0o100600)), oct(kept_mode(0o4777)), oct(kept_mode(0o500, folder=True))
        ('0o600', '0o775', '0o700')
    """
    return (mode & 0o775) | (0o700 if folder else 0o400)


def _corrupt(archive: Path, err: BaseException) -> InputError:
    reason = " ".join(str(err).split()) or type(err).__name__
    return InputError(archive, f"truncated or corrupt archive ({reason})")


def member_path(archive: Path, name: str, shown: str | None = None) -> PurePosixPath | None:
    """The safe relative path of member ``name``, or None for the archive root (``./``).

    Args:
        archive: the archive (for messages).
        name: the member name with ``/`` separators.
        shown: the name as stored in the archive, for messages (default: ``name``).

    Raises:
        InputError: absolute path, drive letter, ``..`` component or NUL byte.
    """
    shown = name if shown is None else shown
    if "\x00" in name:
        raise InputError(archive, f"refusing member {shown!r}: NUL byte in its name")
    if name.startswith("/") or _DRIVE.match(name):
        raise InputError(archive, f"refusing member {shown!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(archive, f"refusing member {shown!r}: '..' in its path")
    return PurePosixPath(*parts) if parts else None


def is_junk(path: PurePosixPath) -> bool:
    """macOS archive clutter: anything under ``__MACOSX/``, ``._*`` files, ``.DS_Store``."""
    return any(p in JUNK_DIRS or p in JUNK_FILES or p.startswith("._") for p in path.parts)


def is_excluded(path: PurePosixPath, patterns: Iterable[str]) -> bool:
    """Whether a glob matches the whole relative path or one of its components (case-sensitive)."""
    text = path.as_posix()
    return any(
        fnmatch.fnmatchcase(text, pat) or any(fnmatch.fnmatchcase(p, pat) for p in path.parts)
        for pat in patterns
    )


class CheckedArchive:
    """An open archive whose members all passed the checks (nothing written yet).

    Made by :func:`open_archive`; use as a context manager or call :meth:`close`.

    Attributes:
        archive: the archive file.
        members: the members to write, in archive order (junk and excluded left out).
        summary: counts of dropped junk / excluded members.
    """

    def __init__(self, archive: Path, exclude: Sequence[str]) -> None:
        self.archive = archive
        self.exclude = tuple(exclude)
        self.members: list[Member] = []
        self.summary = Summary(archives=1)

    def _keep(self, path: PurePosixPath | None) -> bool:
        """Path checks for every member; junk / excluded members are counted and skipped."""
        if path is None:
            return False
        if is_junk(path):
            self.summary.junk += 1
            return False
        if is_excluded(path, self.exclude):
            self.summary.excluded += 1
            return False
        return True

    def open_member(self, member: Member) -> IO[bytes]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> CheckedArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Tap:
    """Read-only file wrapper that remembers the last read (offset and bytes).

    tarfile stops listing members, without an error, at a truncated or invalid header
    after the first one, so a damaged archive could extract as a partial dataset. With
    this wrapper the reader can tell that tarfile's last read really was the all-zero
    end-of-archive block.
    """

    mode = "rb"

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.last_offset = -1
        self.last = b""

    def read(self, size: int = -1) -> bytes:
        offset = self.raw.tell()
        data = self.raw.read(size)
        self.last_offset, self.last = offset, data
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


#: Compressed tar streams, recognised by their first bytes (not by the file name).
_DECOMPRESSORS: tuple[tuple[bytes, Callable[[IO[bytes]], IO[bytes]]], ...] = (
    (b"\x1f\x8b", lambda fh: gzip.GzipFile(fileobj=fh, mode="rb")),
    (b"BZh", lambda fh: bz2.BZ2File(fh, "rb")),
    (b"\xfd7zXZ\x00", lambda fh: lzma.LZMAFile(fh, "rb")),
)


class _TarReader(CheckedArchive):
    def __init__(self, archive: Path, exclude: Sequence[str]) -> None:
        super().__init__(archive, exclude)
        self._stack = contextlib.ExitStack()
        try:
            raw: IO[bytes] = self._stack.enter_context(open(archive, "rb"))
            magic = raw.read(6)
            raw.seek(0)
            for prefix, opener in _DECOMPRESSORS:
                if magic.startswith(prefix):
                    raw = self._stack.enter_context(opener(raw))
                    break
            self.tap = _Tap(raw)
            try:
                self.tar = self._stack.enter_context(tarfile.open(fileobj=self.tap, mode="r:"))
                infos = self.tar.getmembers()
                self._check_end()
            except _READ_ERRORS as err:
                raise _corrupt(archive, err) from None
            for info in infos:
                self._add(info)
            check_layout([self])
        except BaseException:
            self._stack.close()
            raise

    def _check_end(self) -> None:
        """Require the end-of-archive block where listing stopped, then read to the end.

        Reading the (short) rest of the stream makes the decompressor check its
        trailer (gzip CRC-32 and length, xz/bz2 stream end), so a cut or damaged
        compressed file is caught before anything is written.
        """
        offset = self.tar.offset
        block = self.tap.last if self.tap.last_offset == offset else b""
        if len(block) < tarfile.BLOCKSIZE:
            raise EOFError(f"ends early, at byte {offset} of the tar stream")
        if block.count(0) != len(block):
            raise tarfile.ReadError(f"invalid header at byte {offset} of the tar stream")
        while self.tap.raw.read(_COPY_CHUNK):
            pass

    def _add(self, info: tarfile.TarInfo) -> None:
        name = info.name
        path = member_path(self.archive, name)
        kind = None
        if info.issym():
            kind = f"symlink to {info.linkname!r}"
        elif info.islnk():
            kind = f"hardlink to {info.linkname!r}"
        elif info.ischr() or info.isblk():
            kind = "device file"
        elif info.isfifo():
            kind = "fifo"
        elif not (info.isreg() or info.isdir()):
            kind = f"special member (type {info.type!r})"
        if not self._keep(path):
            return
        assert path is not None
        if kind is not None:
            raise InputError(self.archive, f"refusing member {name!r}: {kind}")
        executable = bool(info.mode & 0o111) and info.isreg()
        size = info.size if info.isreg() else 0
        mode = kept_mode(info.mode, folder=info.isdir())
        self.members.append(Member(name, path, info.isdir(), executable, size, info, mode))

    def open_member(self, member: Member) -> IO[bytes]:
        assert isinstance(member.ref, tarfile.TarInfo)
        handle = self.tar.extractfile(member.ref)
        if handle is None:  # not a regular file: excluded by the checks above
            raise InputError(self.archive, f"refusing member {member.name!r}: not a regular file")
        return handle

    def close(self) -> None:
        self._stack.close()


class _ZipReader(CheckedArchive):
    def __init__(self, archive: Path, exclude: Sequence[str]) -> None:
        super().__init__(archive, exclude)
        try:
            self.zip = zipfile.ZipFile(archive)
            infos = self.zip.infolist()
        except _READ_ERRORS as err:
            raise _corrupt(archive, err) from None
        try:
            size = archive.stat().st_size
            for info in infos:
                if info.header_offset + info.compress_size > size:
                    raise _corrupt(archive, EOFError(f"member {info.filename!r} lies past the end"))
                self._add(info)
            check_layout([self])
        except BaseException:
            self.zip.close()
            raise

    def _add(self, info: zipfile.ZipInfo) -> None:
        # zip tools on Windows sometimes store backslashes; the format says '/'.
        name = info.filename
        path = member_path(self.archive, name.replace("\\", "/"), name)
        unix_mode = info.external_attr >> 16
        fmt = stat.S_IFMT(unix_mode)
        is_dir = info.is_dir() or fmt == stat.S_IFDIR
        kind = None
        if fmt == stat.S_IFLNK:
            kind = "symlink"
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            kind = "device file"
        elif fmt == stat.S_IFIFO:
            kind = "fifo"
        elif fmt not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = f"special member (mode {oct(unix_mode)})"
        elif info.flag_bits & 0x1:
            kind = "encrypted"
        elif not is_dir and info.compress_type not in _ZIP_METHODS:
            kind = f"unsupported compression method {info.compress_type} (re-pack it with deflate)"
        if not self._keep(path):
            return
        assert path is not None
        if kind is not None:
            raise InputError(self.archive, f"refusing member {name!r}: {kind}")
        executable = bool(unix_mode & 0o111) and not is_dir
        size = 0 if is_dir else info.file_size
        if info.create_system == 3 and stat.S_IMODE(unix_mode):  # made on Unix
            mode = kept_mode(unix_mode, folder=is_dir)
        else:  # no unix mode recorded (a zip made on Windows)
            mode = DIR_MODE if is_dir else FILE_MODE
        self.members.append(Member(name, path, is_dir, executable, size, info, mode))

    def open_member(self, member: Member) -> IO[bytes]:
        assert isinstance(member.ref, zipfile.ZipInfo)
        return self.zip.open(member.ref)

    def close(self) -> None:
        self.zip.close()


def _is_tar_name(archive: Path) -> bool:
    return archive.name.lower().endswith(_TAR_SUFFIXES)


def open_archive(archive: str | os.PathLike[str], exclude: Sequence[str] = ()) -> CheckedArchive:
    """Open and check an archive (nothing written). Close it with ``.close()``.

    The format comes from the name (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``,
    ``.tar.bz2``, ``.tar.xz``), falling back to the content.

    Raises:
        InputError: missing, truncated, corrupt, or containing a refused member.
    """
    path = Path(archive)
    if not path.is_file():
        raise InputError(path, "archive not found" if not path.exists() else "not a regular file")
    lower = path.name.lower()
    if lower.endswith(".zip"):
        return _ZipReader(path, exclude)
    if _is_tar_name(path):
        return _TarReader(path, exclude)
    if zipfile.is_zipfile(path):
        return _ZipReader(path, exclude)
    return _TarReader(path, exclude)


def _create(target: Path, mode: int) -> IO[bytes]:
    """Create a new file (never overwrite, never follow a symlink) with exactly ``mode``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    out = open(os.open(target, flags, mode), "wb")
    try:
        os.fchmod(out.fileno(), mode)  # exact mode, whatever the umask
    except BaseException:
        out.close()
        raise
    return out


def check_expansion(
    reader: CheckedArchive, max_ratio: float, floor: int = RATIO_FLOOR_BYTES
) -> None:
    """Refuse an archive whose members declare far more bytes than the archive holds.

    Args:
        reader: the checked archive (nothing written yet).
        max_ratio: most declared uncompressed bytes per archive byte; 0 = no limit.
        floor: declared bytes always allowed (so tiny archives are never refused).

    Raises:
        InputError: naming the archive, the sizes and how to raise the limit.
    """
    if max_ratio <= 0:
        return
    packed = reader.archive.stat().st_size
    declared = sum(m.size for m in reader.members)
    limit = max(max_ratio * packed, floor)
    if declared > limit:
        ratio = declared / max(packed, 1)
        raise InputError(
            reader.archive,
            f"declares {human_bytes(declared)} uncompressed, {ratio:.0f} x its "
            f"{human_bytes(packed)} (limit {max_ratio:g} x, at least {human_bytes(floor)}): "
            "a decompression bomb? if the archive is trusted, raise the limit with "
            "--max-ratio N (make UNPACK_RATIO=N)",
        )


def _copy(reader: CheckedArchive, member: Member, dest: Path) -> int:
    """Write one file member below ``dest``.

    Read errors become InputError (a damaged archive); write errors stay OSError (a
    full disk is not the archive's fault).
    """
    target = dest.joinpath(*member.path.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = member.mode
    written = 0
    try:
        src = reader.open_member(member)
    except _READ_ERRORS as err:
        raise _corrupt(reader.archive, err) from None
    with src, _create(target, mode) as out:
        while True:
            try:
                block = src.read(_COPY_CHUNK)
            except _READ_ERRORS as err:
                raise _corrupt(reader.archive, err) from None
            if not block:
                break
            if written + len(block) > member.size:  # never write more than declared
                raise InputError(
                    reader.archive,
                    f"member {member.name!r} holds more than its declared "
                    f"{member.size} bytes (a decompression bomb?)",
                )
            out.write(block)
            written += len(block)
    if written != member.size:
        raise _corrupt(
            reader.archive,
            EOFError(f"member {member.name!r}: {written} of {member.size} bytes"),
        )
    return written


def write_members(
    reader: CheckedArchive, dest: Path, dir_modes: dict[PurePosixPath, int] | None = None
) -> Summary:
    """Write a checked archive's members below ``dest`` (normally an ``atomic_dir`` folder).

    Folders are made with the default mode while writing; ``dir_modes`` collects each
    folder member's mode, which the caller sets once everything is written.
    """
    summary = Summary(archives=1, junk=reader.summary.junk, excluded=reader.summary.excluded)
    for member in reader.members:
        if member.is_dir:
            folder = dest.joinpath(*member.path.parts)
            folder.mkdir(parents=True, exist_ok=True)
            if dir_modes is not None:
                dir_modes[member.path] = member.mode
            summary.dirs += 1
        else:
            summary.bytes += _copy(reader, member, dest)
            summary.files += 1
    return summary


def check_layout(archives: Sequence[CheckedArchive]) -> None:
    """Refuse members that would collide once written into one folder.

    A path given twice (in one archive, or in two: one would silently win), or a
    path below something that is a file, cannot be extracted faithfully.

    Raises:
        InputError: naming the archive and member.
    """
    kinds: dict[PurePosixPath, tuple[bool, Path]] = {}
    for checked in archives:
        for m in checked.members:
            previous = kinds.get(m.path)
            if previous is not None and not (previous[0] and m.is_dir):
                same = previous[1] == checked.archive
                where = "path given twice" if same else f"also in {previous[1]}"
                raise InputError(checked.archive, f"refusing member {m.name!r}: {where}")
            kinds[m.path] = (m.is_dir, checked.archive)
    for checked in archives:
        for m in checked.members:
            for parent in m.path.parents:
                is_dir, owner = kinds.get(parent, (True, checked.archive))
                if not is_dir:
                    problem = f"refusing member {m.name!r}: {parent} is a file in {owner}"
                    raise InputError(checked.archive, problem)


def extract_archives(
    archives: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    exclude: Sequence[str] = (),
    max_ratio: float = DEFAULT_MAX_RATIO,
    ratio_floor: int = RATIO_FLOOR_BYTES,
) -> Summary:
    """Extract archives into one new folder ``out``, atomically.

    All archives are opened and every member checked first; then they are written, in
    order, into ``out_tmp``, which replaces ``out`` only when all succeeded.

    Args:
        archives: tar / tar.gz / tar.bz2 / tar.xz / zip files.
        out: the folder to produce (an existing one is replaced).
        exclude: glob patterns of members to leave out (see :func:`is_excluded`).
        max_ratio: decompression-bomb guard per archive (see :func:`check_expansion`).
        ratio_floor: declared bytes always allowed per archive.

    Returns:
        Counts of what was written and dropped.

    Raises:
        InputError: a missing, truncated or corrupt archive, a refused member, or a
            folder that cannot be written (disk full, permissions).
    """
    readers: list[CheckedArchive] = []
    total = Summary()
    with contextlib.ExitStack() as stack:
        for archive in archives:
            reader = open_archive(archive, exclude)
            stack.callback(reader.close)
            readers.append(reader)
            check_expansion(reader, max_ratio, ratio_floor)
        check_layout(readers)
        with atomic.atomic_dir(out) as tmp:
            try:
                dir_modes: dict[PurePosixPath, int] = {}
                for reader in readers:
                    total.add(write_members(reader, tmp, dir_modes))
                folders = [p for p in tmp.rglob("*") if p.is_dir() and not p.is_symlink()]
                for folder in sorted(folders, reverse=True):  # deepest first
                    rel = PurePosixPath(folder.relative_to(tmp).as_posix())
                    folder.chmod(dir_modes.get(rel, DIR_MODE))
            except OSError as err:  # read errors are InputErrors already: this is the disk
                raise InputError(
                    out, f"cannot write {err.filename or tmp} ({err.strerror})"
                ) from None
    return total


def human_bytes(n: float) -> str:
    """Byte count in binary units for messages, e.g. ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``preprocess/unpack.py``."""
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("unpack.py"),
        description="Verify archives against a lineage file (md5) and extract them safely "
        "into one folder, which appears only when complete.",
    )
    parser.add_argument("--lineage", required=True, type=Path, help="lineage/<ds>.lineage")
    parser.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/<ds>/raw")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out members whose path or any path component matches (repeatable)",
    )
    parser.add_argument(
        "--max-ratio",
        type=non_negative_float,
        default=DEFAULT_MAX_RATIO,
        metavar="N",
        help="refuse an archive whose members declare more than N times its size "
        f"uncompressed (and more than {RATIO_FLOOR_BYTES >> 20} MiB): a decompression "
        f"bomb guard; default {DEFAULT_MAX_RATIO:g}, 0 = no limit",
    )
    parser.add_argument(
        "archives", nargs="+", metavar="ARCHIVE", help="archives listed in the lineage"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``unpack.py --lineage L --out DIR [--exclude GLOB ...] [--max-ratio N] ARCHIVE ...``."""
    args = build_parser().parse_args(argv)
    lineage = parse_lineage(args.lineage)
    checked = verify_or_record(lineage, list(args.archives), say=print)
    exclude = [pattern for pattern in args.exclude if pattern]
    summary = extract_archives(args.archives, args.out, exclude=exclude, max_ratio=args.max_ratio)
    dropped = []
    if summary.junk:
        dropped.append(f"{summary.junk} macOS junk")
    if summary.excluded:
        dropped.append(f"{summary.excluded} excluded")
    extra = f"; dropped {', '.join(dropped)}" if dropped else ""
    print(
        f"unpacked {', '.join(checked)} (md5 ok) -> {args.out}: "
        f"{summary.files} files, {human_bytes(summary.bytes)}{extra}"
    )
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
