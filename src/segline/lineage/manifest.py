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

macOS junk (``__MACOSX/``, ``._*``, ``.DS_Store``) is left out, as unpacking leaves
it out of an archive (:func:`segline.lineage.extract.is_junk`), and so are the
folders of version control (``.git``, ``.hg``, ``.svn``; a DataLad dataset's files,
symlinks into ``.git/annex``, count by their content). A symlink to a file
counts as that file's bytes; a symlink to a folder, or anything that is neither a
file nor a folder, is refused.

CLI (the ``data/<ds>/manifest.md5`` recipe)::

    python -m segline.lineage.manifest --out data/<ds>/manifest.md5 <folder>

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x")
    >>> manifest_text(d).splitlines()[-1]
    '9dd4e461268c8034f5c8564e155c67a6  a.txt'
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from segline import atomic
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.lineage.extract import is_junk
from segline.lineage.lineagefile import md5_of

#: Version-control bookkeeping, rewritten by read-only commands (``git status``
#: refreshes ``.git/index``): not data, left out so it never rebuilds anything.
VCS_DIRS = frozenset({".git", ".hg", ".svn"})
HEADER = (
    "# manifest: md5 of every file under the dataset folder, computed by segline on every make\n"
    "# note: computed, not pinned: it records which bytes were used, not that they are the "
    "published ones\n"
)


def folder_files(folder: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """``(relative POSIX path, path)`` of every file under ``folder``, sorted by the former.

    Raises:
        InputError: the folder is missing or empty, holds a symlink to a folder, a
            broken symlink or a special file (fifo, device, socket).
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, "dataset folder not found" if not root.exists() else "not a folder")
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if d not in VCS_DIRS and not is_junk(PurePosixPath(d))
        )
        for name in dirnames:
            if (base / name).is_symlink():
                raise InputError(base / name, "symlink to a folder: copy or link the files instead")
        for name in filenames:
            path = base / name
            rel = PurePosixPath(path.relative_to(root).as_posix())
            if is_junk(rel):
                continue
            try:
                mode = path.stat().st_mode
            except OSError:
                raise InputError(path, "broken symlink or unreadable file") from None
            if not stat.S_ISREG(mode):
                raise InputError(path, "not a regular file")
            found.append((rel.as_posix(), path))
    if not found:
        raise InputError(root, "dataset folder holds no file")
    return sorted(found, key=lambda item: item[0])


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
            folder,
            f"the dataset folder and {out} overlap: data/<ds>/ must lie "
            "outside the folder; pass another DS=<name> (or move the folder)",
        )


def entry_line(md5: str, rel: str) -> str:
    """One md5sum line; a path with a backslash, newline or CR is escaped as md5sum does."""
    if any(ch in rel for ch in "\\\n\r"):
        escaped = rel.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{md5}  {escaped}\n"
    return f"{md5}  {rel}\n"


def manifest_text(folder: str | os.PathLike[str]) -> str:
    """The manifest of ``folder``: the header comments and one md5 line per file."""
    lines = [entry_line(md5_of(path), rel) for rel, path in folder_files(folder)]
    return HEADER + "".join(lines)


def write_if_changed(path: str | os.PathLike[str], text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds exactly that.

    Returns:
        True when the file was (re)written, False when it was left untouched (same
        bytes, same mtime: make sees nothing new).
    """
    path = Path(path)
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic.write_bytes(path, data)
    return True


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m segline.lineage.manifest``."""
    parser = argparse.ArgumentParser(
        prog=prog("python -m segline.lineage.manifest"),
        formatter_class=HelpFormatter,
        description="Write the md5 manifest of a dataset folder (md5sum format, sorted by "
        "path); the file is rewritten only when its content changes.",
    )
    parser.add_argument("--out", required=True, type=Path, help="e.g. data/<ds>/manifest.md5")
    parser.add_argument("folder", type=Path, help="the dataset folder (MSD task or nnU-Net raw)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segline.lineage.manifest --out MANIFEST FOLDER``."""
    args = build_parser().parse_args(argv)
    check_apart(args.folder, args.out)
    text = manifest_text(args.folder)
    count = text.count("\n") - HEADER.count("\n")
    if write_if_changed(args.out, text):
        print(f"manifest of {args.folder}: {count} files -> {args.out} (changed)")
    else:
        print(f"manifest of {args.folder}: {count} files, unchanged ({args.out})")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
