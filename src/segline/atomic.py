"""Atomic outputs: write to a temporary path, rename when complete.

A Make target must never exist half-written: an interrupted run must be redone, not
mistaken for done. Every writer in segline goes through these helpers. The
temporary path sits next to the final one (same filesystem, so ``os.replace`` is
atomic) and is named ``<name>.tmp`` (files) or ``<name>_tmp`` (folders).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_dir(d / "out") as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in (d / "out").iterdir())
    ['a.txt']
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def tmp_path_for(final: Path, *, folder: bool = False) -> Path:
    """The temporary sibling used while ``final`` is being written."""
    return final.with_name(final.name + ("_tmp" if folder else ".tmp"))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``final``.

    On any exception the temporary folder is removed and ``final`` is untouched.
    The folder's mtime is refreshed before the rename so that Make sees it newer
    than its prerequisites.

    Args:
        final: the folder to produce.
        replace: remove an existing ``final`` first (otherwise fail if it exists).
    """
    final = Path(final)
    tmp = tmp_path_for(final, folder=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.utime(tmp)
    if final.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(final)
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_bytes(final: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``final`` through a temporary file, then rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(final)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text(final: str | os.PathLike[str], text: str) -> None:
    """Atomic text write (UTF-8, ``\\n`` line ends whatever the platform)."""
    write_bytes(final, text.encode("utf-8"))


def write_json(final: str | os.PathLike[str], obj: Any) -> None:
    """Atomic JSON write with sorted keys and a final newline (stable bytes)."""
    write_text(final, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_npy(final: str | os.PathLike[str], array: np.ndarray) -> None:
    """Atomic ``np.save`` (no pickles: object arrays are refused)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    write_bytes(final, buf.getvalue())
