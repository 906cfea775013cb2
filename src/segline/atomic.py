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


def _named(err: OSError, final: Path, tmp: Path | None = None) -> OSError:
    """``err`` naming ``final`` when it names no path (a failed ``write()``/``fsync()``
    on a full disk) or only our temporary file, so the one-line report of
    :func:`segline.cli.run` says which output could not be written."""
    if err.errno is None or (
        err.filename is not None and (tmp is None or err.filename not in (str(tmp), tmp))
    ):
        return err
    named = OSError(err.errno, err.strerror, str(final))
    named.__cause__ = err
    return named


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
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _named(err, final)  # noqa: B904 (the cause is set when it is a new error)
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
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _named(err, final, tmp)  # noqa: B904 (the cause is set when it is a new error)
    except BaseException:
        with contextlib.suppress(OSError):
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
