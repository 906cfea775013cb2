"""Atomic outputs: write to a temporary path, rename when complete.

A Make target must never exist half-written: an interrupted run must be redone, not
mistaken for done. Every writer in segline goes through these helpers. The
temporary path sits next to the final one (same filesystem, so ``os.replace`` is
atomic) and is named ``<name>.tmp`` (files) or ``<name>_tmp`` (folders).

Every rename into place goes through :func:`replace_file` or :func:`replace_dir`, so
a caller can ask to be told right before a given path is replaced
(:func:`before_replace`): the stage bookkeeping (:mod:`segline.stage`) removes a
target's records there, and only there, so a stage that fails before its new target
is complete leaves the old target *and* its records as they were, and one killed
after the rename leaves a target without records (which make rebuilds), never a new
target with the old records.

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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: Paths being watched (see :func:`before_replace`): ``{key: callbacks}``, where the
#: key is :func:`_key` of the path. ``_WATCHED_NAMES`` holds their base names, so the
#: many writes of files inside a temporary folder cost one set lookup each.
_WATCHED: dict[str, list[Callable[[], None]]] = {}
_WATCHED_NAMES: set[str] = set()


def _key(path: Path) -> str:
    """``path`` with its folder resolved (symbolic links, ``..``, relative to the current
    folder) but not its last part: a link at ``path`` itself is what gets replaced."""
    path = Path(os.path.abspath(path))
    return str(path.parent.resolve() / path.name)


@contextlib.contextmanager
def before_replace(
    paths: Iterable[str | os.PathLike[str]], callback: Callable[[], None]
) -> Iterator[None]:
    """While in the block, call ``callback()`` right before any of ``paths`` is removed or
    replaced by this module's writers (:func:`replace_file`, :func:`replace_dir` and
    everything built on them), every time it happens.

    ``callback`` runs before the old path is touched; when it raises, nothing is
    replaced and the error propagates. Used by :func:`segline.stage.build` to drop a
    target's records exactly when its new version is put in place.
    """
    keys = [_key(Path(p)) for p in paths]
    for key in keys:
        _WATCHED.setdefault(key, []).append(callback)
    _WATCHED_NAMES.update(Path(k).name for k in keys)
    try:
        yield
    finally:
        for key in keys:
            callbacks = _WATCHED.get(key, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                _WATCHED.pop(key, None)
        _WATCHED_NAMES.clear()
        _WATCHED_NAMES.update(Path(k).name for k in _WATCHED)


def _replacing(final: Path) -> None:
    """Tell the watchers of ``final`` (:func:`before_replace`) that it is about to go."""
    if not _WATCHED or final.name not in _WATCHED_NAMES:
        return
    for callback in list(_WATCHED.get(_key(final), ())):
        callback()


def replace_file(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Rename the complete file ``tmp`` to ``final`` (atomic), telling its watchers first."""
    final = Path(final)
    _replacing(final)
    os.replace(tmp, final)


def replace_dir(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Put the complete folder ``tmp`` in place of ``final``, telling its watchers first.

    An existing ``final`` is removed first (a folder cannot be renamed over a non-empty
    one); the folder's mtime is refreshed so that make sees it newer than its
    prerequisites. Between the removal and the rename ``final`` is absent, which make
    takes as "to be built", never as done.
    """
    tmp, final = Path(tmp), Path(final)
    os.utime(tmp)
    _replacing(final)
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


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
    if final.exists() and not replace:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(final)
    replace_dir(tmp, final)


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
        replace_file(tmp, final)
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
