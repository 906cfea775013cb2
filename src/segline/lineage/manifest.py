"""The lineage of a dataset folder: a manifest of the md5 of every file, computed.

An archive's lineage file pins the bytes someone published (``lineage/<ds>.lineage``).
A folder on disk (``DATASET_DIR``, ``NNUNET_DATASET``) has no published md5, so its
lineage is *generated*: ``data/<ds>/manifest.md5``, the md5 of every file under the
folder, one ``<md5>  <path>`` line per file, sorted by the path relative to the
folder, in the ``md5sum`` format lineage files use
(:mod:`segline.lineage.lineagefile`), so ``cd <folder> && md5sum -c --strict
data/<ds>/manifest.md5`` checks it without segline. It proves which bytes a result was
computed from, not that they are the published ones.

make recomputes it on every run and :func:`write_if_changed` rewrites it only when
its text changes: an unchanged folder leaves the file and its mtime as they are, so
nothing downstream is rebuilt; an added, removed or changed file changes the manifest
and rebuilds ``raw`` and everything after it. The text holds no folder path, date or
host name: the same bytes give the same manifest anywhere.

**Stat cache.** The content stays the truth, but re-reading a large folder on every
make is slow, so, as git's index does, the md5 of a file is reused from the previous
run when the file's ``(device, inode, size, mtime_ns, ctime_ns)`` is exactly what it
was then (any write changes the ctime, which no user command can set back). The cache
is a hidden file beside the manifest (``data/<ds>/.manifest.md5.stat``, JSON, written
atomically and only when it changes; a missing or unreadable one means "hash
everything"). git's *racy* rule: a file whose mtime or ctime is less than
:data:`RACY_NS` (2 s) older than the start of the scan is hashed but not cached, since
a second write within the same timestamp tick (1 s, 2 s on FAT) could leave its stat
unchanged; it is cached by a later make.

**Size guard.** A file larger than ``--max-file-gb`` (make ``MAX_FILE_GB``, which
reaches this module and :mod:`~segline.lineage.copyfolder` as the environment variable
``SEGLINE_MAX_FILE_GB``: a guard that changes no byte of the output, so no stage
records it and changing it rebuilds nothing; default :data:`DEFAULT_MAX_FILE_GB` GB,
0 = no limit) is refused with one line naming it and its size (and how little of it
is allocated, for a sparse file) before it is hashed or copied: a stray disk image or
core dump must not cost minutes of hashing and gigabytes of copying. The holes of a
sparse file under the limit are hashed as the zeros they read as, without reading
them (:func:`file_md5`), and the copy keeps them as holes.

**Names.** A file name is bytes on POSIX; names that are not UTF-8 (``b"\\xff"``) are
kept as they are (Python's ``surrogateescape``), and the manifest is written with
those raw bytes, exactly as GNU ``md5sum`` writes them (it escapes only ``\\``, newline
and CR), so ``md5sum -c`` still checks it. Messages show such a name with ``\\xff``
escapes (:func:`shown`).

macOS junk (``__MACOSX/``, ``._*``, ``.DS_Store``) is left out, as unpacking leaves
it out of an archive (:func:`segline.lineage.extract.is_junk`), and so are the
folders of version control (``.git``, ``.hg``, ``.svn``; a DataLad dataset's files,
symlinks into ``.git/annex``, count by their content). A symlink to a file
counts as that file's bytes; a symlink to a folder, or anything that is neither a
file nor a folder, is refused.

CLI (the ``data/<ds>/manifest.md5`` recipe)::

    python -m segline.lineage.manifest --out data/<ds>/manifest.md5 [--max-file-gb 8] <folder>

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x")
    >>> manifest_text(d).splitlines()[-1]
    '9dd4e461268c8034f5c8564e155c67a6  a.txt'
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from segline import atomic
from segline.cli import HelpFormatter, cli_of, entry, non_negative_float, prog
from segline.errors import InputError
from segline.lineage.extract import human_bytes, is_junk
from segline.lineage.lineagefile import unescape_name

#: Version-control bookkeeping, rewritten by read-only commands (``git status``
#: refreshes ``.git/index``): not data, left out so it never rebuilds anything.
VCS_DIRS = frozenset({".git", ".hg", ".svn"})
HEADER = (
    "# manifest: md5 of every file under the dataset folder, computed by segline on every make\n"
    "# note: computed, not pinned: it records which bytes were used, not that they are the "
    "published ones\n"
)
#: Largest file (GB, 10**9 bytes) a dataset folder may hold unless told otherwise: far
#: above a real image volume (a 512 x 512 x 2000 float32 CT is 2.1 GB uncompressed).
DEFAULT_MAX_FILE_GB = 8.0
GB = 10**9
#: The environment variable make sets from ``MAX_FILE_GB`` (make/common.mk).
MAX_FILE_GB_ENV = "SEGLINE_MAX_FILE_GB"
#: A file changed less than this before a scan started is not cached (git's racy rule,
#: with room for 2-second timestamps and coarse kernel clocks).
RACY_NS = 2 * 10**9
STAT_CACHE_VERSION = 1
_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)
_ENTRY = re.compile(r"(\\?)([0-9a-f]{32})  (.+)", re.DOTALL)


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` for a message: bytes that are not UTF-8 as ``\\xff`` escapes (printable,
    and never an encoding error on a strict stdout)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class FolderFile:
    """One file of a dataset folder.

    Attributes:
        rel: its path relative to the folder, POSIX; bytes that are not UTF-8 as
            surrogate escapes (:func:`os.fsdecode`), so ``os.fsencode`` gives them back.
        path: the path to open (the folder joined with ``rel``).
        stat: its ``os.stat`` (a symlink's target), taken while listing.
    """

    rel: str
    path: Path
    stat: os.stat_result


def scan_folder(folder: str | os.PathLike[str], max_bytes: int | None = None) -> list[FolderFile]:
    """Every file under ``folder``, sorted by relative path, each size-checked.

    Args:
        folder: the dataset folder.
        max_bytes: refuse a file larger than this; None or 0: no limit.

    Raises:
        InputError: the folder is missing or empty, holds a symlink to a folder, a
            broken symlink, a special file (fifo, device, socket) or a file over
            ``max_bytes``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, "dataset folder not found" if not root.exists() else "not a folder")
    found: list[FolderFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if d not in VCS_DIRS and not is_junk(PurePosixPath(d))
        )
        for name in dirnames:
            if (base / name).is_symlink():
                raise InputError(
                    shown(base / name), "symlink to a folder: copy or link the files instead"
                )
        for name in filenames:
            path = base / name
            rel = PurePosixPath(path.relative_to(root).as_posix())
            if is_junk(rel):
                continue
            try:
                st = path.stat()
            except OSError:
                raise InputError(shown(path), "broken symlink or unreadable file") from None
            if not stat.S_ISREG(st.st_mode):
                raise InputError(shown(path), "not a regular file")
            check_size(path, st, max_bytes)
            found.append(FolderFile(rel.as_posix(), path, st))
    if not found:
        raise InputError(shown(root), "dataset folder holds no file")
    return sorted(found, key=lambda f: os.fsencode(f.rel))


def folder_files(
    folder: str | os.PathLike[str], max_bytes: int | None = None
) -> list[tuple[str, Path]]:
    """``(relative POSIX path, path)`` of every file under ``folder`` (:func:`scan_folder`)."""
    return [(f.rel, f.path) for f in scan_folder(folder, max_bytes)]


def max_bytes_of(max_file_gb: float | None) -> int | None:
    """The byte limit of ``--max-file-gb`` (GB = 10**9 bytes); None for 0 (no limit).

    ``None`` (the option not given) takes :data:`MAX_FILE_GB_ENV` when set, else
    :data:`DEFAULT_MAX_FILE_GB`.

    Raises:
        InputError: the environment variable is not a number >= 0.
    """
    if max_file_gb is None:
        text = os.environ.get(MAX_FILE_GB_ENV, "").strip()
        try:
            max_file_gb = non_negative_float(text) if text else DEFAULT_MAX_FILE_GB
        except argparse.ArgumentTypeError as err:
            raise InputError(f"MAX_FILE_GB={text}", str(err)) from None
    return int(max_file_gb * GB) if max_file_gb > 0 else None


def add_max_file_gb(parser: argparse.ArgumentParser) -> None:
    """The ``--max-file-gb`` option of the manifest and copy CLIs."""
    parser.add_argument(
        "--max-file-gb",
        type=non_negative_float,
        default=None,
        metavar="GB",
        help="refuse a file larger than this many GB (10^9 bytes); 0 = no limit; when not "
        f"given, ${MAX_FILE_GB_ENV} (make MAX_FILE_GB), else {DEFAULT_MAX_FILE_GB:g}",
    )


def check_size(path: Path, st: os.stat_result, max_bytes: int | None) -> None:
    """Refuse a file larger than ``max_bytes`` with one line: its size, how much of it
    is allocated on disk when that is far less (a sparse file), and the way out.

    Raises:
        InputError: naming the file.
    """
    if not max_bytes or st.st_size <= max_bytes:
        return
    allocated = getattr(st, "st_blocks", None)
    sparse = ""
    if allocated is not None and allocated * 512 < st.st_size // 2:
        sparse = f" (sparse: {human_bytes(allocated * 512)} of it on disk)"
    raise InputError(
        shown(path),
        f"{st.st_size / GB:.3g} GB{sparse}, larger than the {max_bytes / GB:g} GB allowed "
        "for one file of a dataset folder (not an image volume?); remove it from the "
        "folder or raise the limit (make MAX_FILE_GB=N, 0 = no limit)",
    )


def check_apart(folder: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Refuse an output inside the dataset folder, or a dataset folder inside the output
    (``DATASET_DIR=data/X`` gives ``DS=X``, whose stages would land in the folder itself
    and change its manifest on every make).

    Raises:
        InputError: naming the folder, with the way out (another ``DS``).
    """
    src, dst = Path(folder).resolve(), Path(out).resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise InputError(
            shown(folder),
            f"the dataset folder and {shown(out)} overlap: data/<ds>/ must lie "
            "outside the folder; pass another DS=<name> (or move the folder)",
        )


def entry_line(md5: str, rel: str) -> str:
    """One md5sum line; a path with a backslash, newline or CR is escaped as md5sum does."""
    if any(ch in rel for ch in "\\\n\r"):
        escaped = rel.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{md5}  {escaped}\n"
    return f"{md5}  {rel}\n"


def data_regions(fd: int, size: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the parts of the open file ``fd`` that hold data (the rest
    are holes, read as zeros), from ``SEEK_DATA``/``SEEK_HOLE``; the whole file where
    the system or the file system cannot tell."""
    seek_data, seek_hole = getattr(os, "SEEK_DATA", None), getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None or size == 0:
        return [(0, size)] if size else []
    regions: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, seek_data)
            except OSError as err:
                if err.errno == errno.ENXIO:  # no data after pos: a trailing hole
                    break
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, seek_hole), size)
            regions.append((start, end))
            pos = end
    except OSError:  # no SEEK_DATA support here: copy every byte
        return [(0, size)]
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    return regions


def hash_zeros(digest: Any, count: int) -> None:
    """Feed ``count`` zero bytes (a hole) to ``digest`` without reading them."""
    while count > 0:
        step = min(count, _CHUNK)
        digest.update(_ZEROS[:step])
        count -= step


def file_md5(path: str | os.PathLike[str]) -> str:
    """The md5 of a file as :func:`segline.lineage.lineagefile.md5_of` gives it, holes
    (:func:`data_regions`) hashed as zeros without reading them."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        pos = 0
        for start, end in data_regions(fh.fileno(), size):
            hash_zeros(digest, start - pos)
            fh.seek(start)
            pos = start
            while pos < end and (block := fh.read(min(_CHUNK, end - pos))):
                digest.update(block)
                pos += len(block)
            if pos < end:  # shrank while read: hash what was there
                return digest.hexdigest()
        hash_zeros(digest, size - pos)
    return digest.hexdigest()


# ------------------------------------------------------------------ the stat cache
#: ``{relative path: (stat key, md5)}``; the key is :func:`stat_key`.
StatCache = dict[str, tuple[tuple[int, ...], str]]


def stat_key(st: os.stat_result) -> tuple[int, ...]:
    """What must be unchanged for a file's cached md5 to be reused: device, inode,
    size, mtime and ctime (ns)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stat_cache_path(manifest: str | os.PathLike[str]) -> Path:
    """The stat cache kept beside ``manifest``: ``dir/.<name>.stat``."""
    manifest = Path(manifest)
    return manifest.parent / f".{manifest.name}.stat"


def read_stat_cache(path: str | os.PathLike[str]) -> StatCache:
    """The cache at ``path``; empty when missing or unreadable (:func:`parse_stat_cache`)."""
    try:
        return parse_stat_cache(Path(path).read_bytes())
    except OSError:
        return {}


def parse_stat_cache(data: bytes) -> StatCache:
    """A cache file's content (:func:`stat_cache_bytes`); empty when it is damaged or of
    another version: a cache only saves time, a bad one costs a full hash, never a
    wrong md5."""
    try:
        obj = json.loads(data)
        if obj.get("version") != STAT_CACHE_VERSION:
            return {}
        cache: StatCache = {}
        for rel, (key, md5) in obj["files"].items():
            if not (isinstance(md5, str) and re.fullmatch(r"[0-9a-f]{32}", md5)):
                return {}
            cache[str(rel)] = (tuple(int(k) for k in key), md5)
        return cache
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def stat_cache_bytes(cache: StatCache) -> bytes:
    """The cache file's content: JSON, ASCII (names that are not UTF-8 stay surrogate
    escapes ``\\udcff``, which JSON carries), sorted, so equal caches are equal bytes."""
    files = {rel: [list(key), md5] for rel, (key, md5) in sorted(cache.items())}
    text = json.dumps({"version": STAT_CACHE_VERSION, "files": files}, ensure_ascii=True)
    return (text + "\n").encode("ascii")


@dataclass(frozen=True)
class Manifest:
    """A computed manifest.

    Attributes:
        text: the manifest (:data:`HEADER` and one md5sum line per file).
        files: how many files it lists.
        hashed: how many of them were read and hashed (the others came from the cache).
        cache: the stat cache to keep for the next run (racy files left out).
    """

    text: str
    files: int
    hashed: int
    cache: StatCache


def compute_manifest(
    folder: str | os.PathLike[str],
    cache: StatCache | None = None,
    *,
    max_bytes: int | None = None,
    started_ns: int | None = None,
) -> Manifest:
    """The manifest of ``folder``, reusing the md5 of files whose stat is unchanged.

    Args:
        folder: the dataset folder.
        cache: the previous run's stat cache (None or empty: hash every file).
        max_bytes: the size guard (:func:`check_size`).
        started_ns: the scan's start for the racy rule (default: now; tests pass a
            later time to play a later make).
    """
    started = time.time_ns() if started_ns is None else started_ns
    cache = cache or {}
    kept: StatCache = {}
    lines: list[str] = []
    hashed = 0
    for f in scan_folder(folder, max_bytes):
        key = stat_key(f.stat)
        previous = cache.get(f.rel)
        if previous is not None and previous[0] == key:
            md5 = previous[1]
        else:
            md5 = file_md5(f.path)
            hashed += 1
            # stat again: a file that changed while it was read must not be cached
            if stat_key(f.path.stat()) != key:
                key = ()
        if key and max(f.stat.st_mtime_ns, f.stat.st_ctime_ns) < started - RACY_NS:
            kept[f.rel] = (key, md5)
        lines.append(entry_line(md5, f.rel))
    return Manifest(HEADER + "".join(lines), len(lines), hashed, kept)


def manifest_text(folder: str | os.PathLike[str]) -> str:
    """The manifest of ``folder``: the header comments and one md5 line per file."""
    return compute_manifest(folder).text


def manifest_bytes(text: str) -> bytes:
    """The manifest file's bytes: UTF-8, names that are not UTF-8 as their own bytes
    (as ``md5sum`` writes them)."""
    return text.encode("utf-8", "surrogateescape")


def write_if_changed(path: str | os.PathLike[str], text: str | bytes) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds exactly that.

    Returns:
        True when the file was (re)written, False when it was left untouched (same
        bytes, same mtime: make sees nothing new).
    """
    path = Path(path)
    data = manifest_bytes(text) if isinstance(text, str) else text
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic.write_bytes(path, data)
    return True




def read_manifest(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative path: md5}`` of a manifest this module wrote (names that are not
    UTF-8 as surrogate escapes, as :func:`scan_folder` lists them).

    Raises:
        InputError: the manifest is missing or holds a line it never writes.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        raise InputError(path, "manifest not found (make computes it)") from None
    entries: dict[str, str] = {}
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        if not line or line.startswith("#"):
            continue
        match = _ENTRY.fullmatch(line)
        name = None
        if match:
            name = unescape_name(match[3]) if match[1] else match[3]
        if name is None or name in entries:
            problem = "listed twice" if name else "not '<md5>  <path>'"
            raise InputError(path, f"line {number}: {problem}; delete it and run make again")
        entries[name] = match[2]  # type: ignore[index]
    return entries


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m segline.lineage.manifest``."""
    parser = argparse.ArgumentParser(
        prog=prog("python -m segline.lineage.manifest"),
        formatter_class=HelpFormatter,
        description="Write the md5 manifest of a dataset folder (md5sum format, sorted by "
        "path); the file is rewritten only when its content changes. Files whose stat is "
        "unchanged since the last run are not read again (a stat cache beside it).",
    )
    parser.add_argument("--out", required=True, type=Path, help="e.g. data/<ds>/manifest.md5")
    add_max_file_gb(parser)
    parser.add_argument("folder", type=Path, help="the dataset folder (MSD task or nnU-Net raw)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segline.lineage.manifest --out MANIFEST [--max-file-gb GB] FOLDER``."""
    args = build_parser().parse_args(argv)
    check_apart(args.folder, args.out)
    cache_path = stat_cache_path(args.out)
    result = compute_manifest(
        args.folder, read_stat_cache(cache_path), max_bytes=max_bytes_of(args.max_file_gb)
    )
    changed = write_if_changed(args.out, result.text)
    write_if_changed(cache_path, stat_cache_bytes(result.cache))
    read = f"{result.hashed} hashed" if result.hashed else "none hashed: stat unchanged"
    state = f"-> {shown(args.out)} (changed)" if changed else f"unchanged ({shown(args.out)})"
    print(f"manifest of {shown(args.folder)}: {result.files} files ({read}), {state}")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
