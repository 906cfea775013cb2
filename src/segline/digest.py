"""Content hashes of files and folders (sha256), the currency of segline's lineage.

A folder's digest is the sha256 of its manifest: one ``sha256sum``-format line
``<sha256 of the file>  <path relative to the folder>`` per regular file, sorted by
path. Hidden files (a stage's own bookkeeping), ``*.tmp`` files and ``*_tmp``
folders (writes in progress) and the per-epoch wall times (:data:`VOLATILE`) are left
out, so the digest covers exactly the content two runs should agree on. Two folders
with the same files and bytes have the same digest, wherever they are and whenever
they were written.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x")
    >>> tree_digest(d) == tree_digest(d)
    True
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


VOLATILE = frozenset({"timing.csv", "train.log"})
"""Files left out of content digests: wall-clock times (``timing.csv``, and the printed
lines of ``train.log``, whose epoch lines hold seconds and which a resumed run
continues) differ between two runs of the same experiment, whose content should
compare equal."""


def skipped(name: str) -> bool:
    """Names a digest leaves out: hidden bookkeeping, writes in progress, wall times."""
    return (
        name.startswith(".")
        or name.endswith((".tmp", "_tmp"))
        or name == "__pycache__"
        or name in VOLATILE
    )


def tree_files(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files below ``root`` a digest covers, sorted."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not skipped(d))
        here = Path(dirpath)
        found.extend(
            (here / n).relative_to(root).as_posix()
            for n in filenames
            if not skipped(n) and (here / n).is_file()
        )
    return sorted(found)


def tree_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a folder's manifest (see the module docstring)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    manifest = "".join(f"{sha256_file(path / rel)}  {rel}\n" for rel in tree_files(path))
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()
