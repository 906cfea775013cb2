"""Copy a dataset folder into ``data/<ds>/raw``, each file checked against its manifest.

The ``raw`` stage of a folder input (``DATASET_DIR`` / ``NNUNET_DATASET``): the
folder's files are copied (never linked: a later edit of the source must not change
a built stage behind make's back) into ``<out>/<folder name>/``, as unpacking an
archive of that folder would lay them out, and each copy's md5 is computed from the
bytes actually written and compared with the manifest
(:mod:`segline.lineage.manifest`). A file changed, added or removed between the
manifest and the copy is refused with one line; the output folder appears only when
every file was copied and checked (:func:`segline.atomic.atomic_dir`), with the time
of the copy as mtime.

* **Permissions** are the source's (a symlink's target's): a private ``0o600`` file
  stays ``0o600``, a ``0o700`` folder ``0o700``; never setuid, setgid, sticky or
  world-writable, and always readable by the owner (folders also writable and
  enterable: :func:`segline.lineage.extract.kept_mode`).
* **Sparse files** are copied sparse: the holes that ``lseek(SEEK_DATA/SEEK_HOLE)``
  reports are skipped (hashed as the zeros they read as) and left as holes in the
  copy, so a sparse file under the size limit costs its data, not its size. Holes are
  not treated as suspicious: file systems that compress (ZFS, btrfs) report ordinary
  files with few allocated blocks too; the size limit is the guard.
* **Size**: a file over ``--max-file-gb`` is refused before anything is copied
  (:func:`segline.lineage.manifest.check_size`).

Every file of the folder is copied, also those the dataset's adapter never reads
(a README, a stray archive): which files an adapter reads is only known once it
parses the copied folder, and a copy that depends on the adapter would have to be
redone whenever the adapter's code changes.

CLI::

    python -m segline.lineage.copyfolder --manifest data/<ds>/manifest.md5 \\
        --out data/<ds>/raw [--max-file-gb 8] <folder>
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from segline import atomic
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.lineage.extract import DIR_MODE, human_bytes, kept_mode
from segline.lineage.manifest import (
    DEFAULT_MAX_FILE_GB,
    add_max_file_gb,
    check_apart,
    data_regions,
    hash_zeros,
    max_bytes_of,
    read_manifest,
    scan_folder,
    shown,
)

_CHUNK = 1 << 20
RERUN = "the folder changed after its manifest was computed; run make again"


def copy_file(src: Path, dest: Path, mode: int) -> tuple[str, int]:
    """Copy ``src`` to the new file ``dest`` with permission bits ``mode``, holes kept.

    Returns:
        (md5 of the bytes the copy holds, its size).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with open(src, "rb") as fin, open(os.open(dest, flags, 0o600), "wb") as fout:
        os.fchmod(fout.fileno(), mode)  # exact, whatever the umask
        size = os.fstat(fin.fileno()).st_size  # the copy takes the file as it is now
        pos = final = 0
        for start, end in data_regions(fin.fileno(), size):
            hash_zeros(digest, start - pos)  # the hole before this data
            fin.seek(start)
            fout.seek(start)
            pos = start
            while pos < end and (block := fin.read(min(_CHUNK, end - pos))):
                digest.update(block)
                fout.write(block)
                pos += len(block)
            if pos < end:  # it shrank while being copied: the md5 check refuses it
                final = pos
                break
        else:
            hash_zeros(digest, size - pos)  # a trailing hole
            pos = final = size
        fout.truncate(final)
    return digest.hexdigest(), final


def copy_folder(
    folder: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    max_bytes: int | None = max_bytes_of(DEFAULT_MAX_FILE_GB),
) -> tuple[int, int]:
    """Copy ``folder`` into ``out/<folder name>/``, checking every file against ``manifest``.

    Args:
        folder: the dataset folder.
        manifest: its manifest (:mod:`segline.lineage.manifest`).
        out: the folder to produce (replaced when complete).
        max_bytes: refuse a file larger than this (None: no limit).

    Returns:
        (files copied, bytes copied).

    Raises:
        InputError: naming the file that is not in the manifest, missing, too large,
            or whose bytes differ from its manifest md5; nothing is left in ``out`` then.
    """
    folder = Path(folder)
    check_apart(folder, out)
    expected = read_manifest(manifest)
    files = scan_folder(folder, max_bytes)
    on_disk = {f.rel for f in files}
    for f in files:
        if f.rel not in expected:
            raise InputError(shown(f.path), f"not in {manifest}: {RERUN}")
    missing = sorted(set(expected) - on_disk)
    if missing:
        raise InputError(shown(folder / missing[0]), f"listed in {manifest} but missing: {RERUN}")
    name = folder.resolve().name
    total = 0
    with atomic.atomic_dir(out) as tmp:
        for f in files:
            got, size = copy_file(f.path, tmp / name / f.rel, kept_mode(f.stat.st_mode))
            if got != expected[f.rel]:
                raise InputError(
                    shown(f.path), f"md5 {got} differs from {manifest} ({expected[f.rel]}): {RERUN}"
                )
            total += size
        # deepest first: a folder made private must not lock us out of its sub-folders
        subs = sorted((p for p in (tmp / name).rglob("*") if p.is_dir()), reverse=True)
        for sub in [*subs, tmp / name]:
            try:
                mode = (folder / sub.relative_to(tmp / name)).stat().st_mode
            except OSError:  # removed meanwhile: its files were checked, keep the default
                mode = DIR_MODE
            sub.chmod(kept_mode(mode, folder=True))
    return len(files), total


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m segline.lineage.copyfolder``."""
    parser = argparse.ArgumentParser(
        prog=prog("python -m segline.lineage.copyfolder"),
        formatter_class=HelpFormatter,
        description="Copy a dataset folder into one new folder, every file md5-checked "
        "against the folder's manifest (permissions and holes kept); the output appears "
        "only when complete.",
    )
    parser.add_argument("--manifest", required=True, type=Path, help="data/<ds>/manifest.md5")
    parser.add_argument("--out", required=True, type=Path, help="output folder, data/<ds>/raw")
    add_max_file_gb(parser)
    parser.add_argument("folder", type=Path, help="the dataset folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segline.lineage.copyfolder --manifest M --out DIR [--max-file-gb GB] FOLDER``."""
    args = build_parser().parse_args(argv)
    files, size = copy_folder(
        args.folder, args.manifest, args.out, max_bytes=max_bytes_of(args.max_file_gb)
    )
    print(
        f"copied {shown(args.folder)} (md5 ok against {shown(args.manifest)}) -> "
        f"{shown(args.out)}: {files} files, {human_bytes(size)}"
    )
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
