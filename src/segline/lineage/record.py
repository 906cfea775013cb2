"""md5s recorded on first use, for archives whose md5 no one can pin in advance.

Some data sets are put in place by the user (no download, several releases, a
user-chosen archive name), so the project cannot ship their md5. Their lineage file
names a *record* lineage instead::

    # source: VerSe, see github.com/anjany/verse; put the zips in data/
    # record: lineage/vertebrae.local.lineage

An archive the lineage does not list is looked up in the record file. The first time
an archive is used it is not there: its md5 is computed, appended to the record file
(written atomically, under a lock, so two makes never lose an entry) and one line says
so (``md5 of data/x.zip recorded in lineage/vertebrae.local.lineage; commit it to pin
this archive``). Every later run verifies the archive against the recorded md5, so a
changed archive is refused with the usual mismatch line naming the record file. The
record file is an ordinary lineage (``md5sum -c`` reads it); committing it pins the
archives like any other lineage file.

Used by ``preprocess/unpack.py`` (:func:`verify_or_record`) and ``preprocess/fetch.py``
(:func:`expected_md5`) through their ``--lineage`` option: a data set makefile only
names the lineage file.

Example:
    >>> import os, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); old = os.getcwd(); os.chdir(d)
    >>> _ = pathlib.Path("x.lineage").write_text("# record: rec.lineage\\n")
    >>> _ = pathlib.Path("a.tar").write_bytes(b"a")
    >>> verify_or_record(parse_lineage("x.lineage"), ["a.tar"], say=print)
    md5 of a.tar recorded in rec.lineage; commit it to pin this archive
    ['a.tar']
    >>> verify_or_record(parse_lineage("x.lineage"), ["a.tar"], say=print)
    ['a.tar']
    >>> os.chdir(old)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from segline import atomic, stage
from segline.errors import InputError
from segline.lineage.lineagefile import (
    TOY_HINT,
    Lineage,
    md5_of,
    normalise_path,
    parse_lineage,
    verify,
)
from segline.repopath import RECORD_KEY, record_path

_UNSAFE = ("\n", "\r", "\\")


def record_file(lineage: Lineage) -> Path | None:
    """The record lineage named by ``# record:`` (relative to the repository root), or None.

    The checks are :func:`segline.repopath.record_path`, the ones the provenance applies
    before it copies the record file's md5 lines into a result.

    Raises:
        InputError: the value is absolute, leaves the repository or is not a ``.lineage``;
            or the file is a symbolic link leading out of the repository.
    """
    value = lineage.metadata.get(RECORD_KEY)
    if value is None:
        return None
    return record_path(value, lineage.path)


def _read(path: Path) -> Lineage | None:
    return parse_lineage(path) if path.is_file() else None


def _guidance(lineage: Lineage, label: str, record: Path) -> str:
    return (
        f"not found ({lineage.describe_source(label)}); put the archive at {label} "
        f"(its md5 is recorded in {record} on first use), or {TOY_HINT}"
    )


def expected_md5(lineage: Lineage, target: str | os.PathLike[str]) -> str:
    """The md5 ``target`` must have: from the lineage, else from its record file.

    Raises:
        InputError: not listed anywhere: without a record file, the usual "not listed";
            with one, where to put the archive (its md5 will be recorded on first use).
    """
    md5 = lineage.md5_for(target)
    if md5 is not None:
        return md5
    record = record_file(lineage)
    if record is None:
        return lineage.require(target)
    recorded = _read(record)
    md5 = recorded.md5_for(target) if recorded is not None else None
    if md5 is not None:
        return md5
    raise InputError(normalise_path(target), _guidance(lineage, normalise_path(target), record))


def _header(lineage: Lineage, record: Path) -> str:
    lines = [
        f"# md5s recorded on first use (src/segline/lineage/record.py) for the archives of "
        f"{normalise_path(lineage.path)}",
        "# commit this file to pin them: a changed archive is then refused",
    ]
    lines += [f"# source: {s}" for s in lineage.values("source")]
    lines += [f"# licence: {s}" for s in lineage.values("licence")[:1]]
    return "\n".join(lines) + "\n"


def record_md5s(
    lineage: Lineage,
    paths: Sequence[str | os.PathLike[str]],
    say: Callable[[str], None] | None = None,
) -> Lineage:
    """Record the md5 of every archive of ``paths`` not yet in the record file.

    Args:
        lineage: a lineage with a ``# record:`` file.
        paths: archives (relative to the repository root = cwd).
        say: called with one line per newly recorded archive.

    Returns:
        The record lineage, re-read after writing.

    Raises:
        InputError: an archive to record is missing or not a regular file, or its path
            holds a newline or backslash (md5sum would escape it).
    """
    record = record_file(lineage)
    if record is None:
        raise ValueError(f"{lineage.path} names no record file")
    with stage.target_lock(record):
        recorded = _read(record)
        text = record.read_text(encoding="utf-8") if recorded is not None else ""
        new: list[str] = []
        for path in paths:
            label = normalise_path(path)
            if (recorded is not None and recorded.md5_for(label) is not None) or label in new:
                continue
            if any(c in label for c in _UNSAFE):
                raise InputError(label, "archive path holds a newline or backslash; rename it")
            if not Path(label).is_file():
                raise InputError(label, _guidance(lineage, label, record))
            new.append(label)
        if new:
            if not text:
                text = _header(lineage, record)
            elif not text.endswith("\n"):
                text += "\n"
            lines = [f"{md5_of(label)}  {label}\n" for label in new]
            atomic.write_text(record, text + "".join(lines))
            for label in new:
                if say is not None:
                    say(f"md5 of {label} recorded in {record}; commit it to pin this archive")
        result = _read(record)
    if result is None:  # pragma: no cover - written above or already there
        raise InputError(record, "record lineage missing")
    return result


def verify_or_record(
    lineage: Lineage,
    paths: Sequence[str | os.PathLike[str]],
    say: Callable[[str], None] | None = None,
) -> list[str]:
    """:func:`~segline.lineage.lineagefile.verify`, recording unknown md5s first.

    Archives the lineage lists are verified against it; with a ``# record:`` file,
    every other archive is recorded on first use (:func:`record_md5s`) and verified
    against the record file. Without one this is exactly ``verify``.

    Returns:
        The archive paths checked (normalised), in the order given.

    Raises:
        InputError: a missing archive or an md5 mismatch (naming the lineage or
            record file that holds the expected md5).
    """
    if record_file(lineage) is None:
        return verify(lineage, list(paths))
    listed = [p for p in paths if lineage.md5_for(p) is not None]
    others = [p for p in paths if lineage.md5_for(p) is None]
    checked = dict.fromkeys(verify(lineage, listed) if listed else [])
    if others:
        recorded = record_md5s(lineage, others, say)
        checked.update(dict.fromkeys(verify(recorded, others)))
    return [normalise_path(p) for p in paths if normalise_path(p) in checked]
