"""Copy a dataset folder into ``data/<ds>/raw``, each file checked against its manifest.

The ``raw`` stage of a folder input (``DATASET_DIR`` / ``NNUNET_DATASET``): the
folder's files are copied (never linked: a later edit of the source must not change
a built stage behind make's back) into ``<out>/<folder name>/``, as unpacking an
archive of that folder would lay them out, and each copy's md5 is computed from the
bytes actually written and compared with the manifest
(:mod:`segline.lineage.manifest`). A file changed, added or removed between the
manifest and the copy is refused with one line; the output folder appears only when
every file was copied and checked (:func:`segline.atomic.atomic_dir`), with modes
0o644 (files) and 0o755 (folders) and the time of the copy as mtime.

CLI::

    python -m segline.lineage.copyfolder --manifest data/<ds>/manifest.md5 \\
        --out data/<ds>/raw <folder>
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
from segline.lineage.extract import DIR_MODE, FILE_MODE, human_bytes
from segline.lineage.lineagefile import parse_lineage
from segline.lineage.manifest import check_apart, folder_files

_CHUNK = 1 << 20
RERUN = "the folder changed after its manifest was computed; run make again"


def _copy_file(src: Path, dest: Path) -> tuple[str, int]:
    """Copy ``src`` to the new file ``dest`` (0o644); return (md5 of the bytes written, size)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with open(src, "rb") as fin, open(os.open(dest, flags, FILE_MODE), "wb") as fout:
        os.fchmod(fout.fileno(), FILE_MODE)
        while block := fin.read(_CHUNK):
            digest.update(block)
            fout.write(block)
            size += len(block)
    return digest.hexdigest(), size


def copy_folder(
    folder: str | os.PathLike[str], manifest: str | os.PathLike[str], out: str | os.PathLike[str]
) -> tuple[int, int]:
    """Copy ``folder`` into ``out/<folder name>/``, checking every file against ``manifest``.

    Returns:
        (files copied, bytes copied).

    Raises:
        InputError: naming the file that is not in the manifest, missing, or whose
            bytes differ from its manifest md5; nothing is left in ``out`` then.
    """
    folder = Path(folder)
    check_apart(folder, out)
    expected = {path: md5 for md5, path in parse_lineage(manifest).entries}
    files = folder_files(folder)
    on_disk = {rel for rel, _ in files}
    for rel, path in files:
        if rel not in expected:
            raise InputError(path, f"not in {manifest}: {RERUN}")
    missing = sorted(set(expected) - on_disk)
    if missing:
        raise InputError(folder / missing[0], f"listed in {manifest} but missing: {RERUN}")
    name = folder.resolve().name
    total = 0
    with atomic.atomic_dir(out) as tmp:
        for rel, path in files:
            got, size = _copy_file(path, tmp / name / rel)
            if got != expected[rel]:
                raise InputError(
                    path, f"md5 {got} differs from {manifest} ({expected[rel]}): {RERUN}"
                )
            total += size
        for sub in (p for p in tmp.rglob("*") if p.is_dir()):
            sub.chmod(DIR_MODE)
    return len(files), total


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m segline.lineage.copyfolder``."""
    parser = argparse.ArgumentParser(
        prog=prog("python -m segline.lineage.copyfolder"),
        formatter_class=HelpFormatter,
        description="Copy a dataset folder into one new folder, every file md5-checked "
        "against the folder's manifest; the output appears only when complete.",
    )
    parser.add_argument("--manifest", required=True, type=Path, help="data/<ds>/manifest.md5")
    parser.add_argument("--out", required=True, type=Path, help="output folder, data/<ds>/raw")
    parser.add_argument("folder", type=Path, help="the dataset folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segline.lineage.copyfolder --manifest M --out DIR FOLDER``."""
    args = build_parser().parse_args(argv)
    files, size = copy_folder(args.folder, args.manifest, args.out)
    print(
        f"copied {args.folder} (md5 ok against {args.manifest}) -> {args.out}: "
        f"{files} files, {human_bytes(size)}"
    )
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
