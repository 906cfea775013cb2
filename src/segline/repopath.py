"""Which files of the repository a tool may read into a shareable artefact.

A lineage file and the ``# record:`` file it names are read by two tools: ``unpack``
verifies archives against them (:mod:`segline.lineage.record`) and the provenance of
every training copies their md5 lines (:mod:`segline.provenance`), which then travel
in the packed archive. Both apply the same checks, from this module, so a file one of
them refuses the other refuses too:

* :func:`inside_repository`: the path, with every symbolic link followed, lies inside
  the repository root. A ``lineage/x.local.lineage`` that is a link to ``~/.netrc`` or
  another private file outside the checkout is refused, so its content can never be
  copied into a result;
* :func:`record_path`: the value of a ``# record:`` line names another ``.lineage``
  file, relative to the repository root, that passes :func:`inside_repository`.

This module imports nothing of :mod:`segline.lineage` (which loads the download and
extraction code): a training imports it through the provenance, and its code
fingerprint stays free of the data-preparation code.

Example:
    >>> import tempfile, pathlib
    >>> root, private = pathlib.Path(tempfile.mkdtemp()), pathlib.Path(tempfile.mkdtemp())
    >>> (root / "lineage").mkdir()
    >>> (root / "lineage" / "x.local.lineage").symlink_to(private / "netrc")
    >>> inside_repository("lineage/x.lineage", root)
    PosixPath('lineage/x.lineage')
    >>> try:
    ...     inside_repository("lineage/x.local.lineage", root)
    ... except InputError as err:
    ...     print(err.problem.split(";")[0])
    a symbolic link leads out of the repository
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path, PurePosixPath

from segline.errors import InputError

META = re.compile(r"^#\s*(?P<key>[A-Za-z][A-Za-z0-9_-]*)\s*:\s*(?P<value>.*?)\s*$")
"""A ``# key: value`` metadata comment of a lineage file (one-word key, any case)."""

RECORD_KEY = "record"
"""The metadata key naming the record lineage (md5s recorded on first use)."""

OUTSIDE = (
    "a symbolic link leads out of the repository; copy the file into the checkout "
    "instead (a file outside it is never read into a result)"
)


def inside_repository(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Path:
    """``path`` if it lies inside the repository ``root`` with every link followed.

    Args:
        path: relative to ``root``, or absolute.
        root: the repository root (default: the current folder, where make runs).

    Returns:
        ``path`` unchanged (as a Path); it need not exist.

    Raises:
        InputError: the path names a place outside ``root``, a symbolic link on the
            way leads out of it, or the links loop. The message names ``path`` and never
            the link's target (which may itself be private).
    """
    top = Path(os.path.normpath((Path(root) if root is not None else Path.cwd()).absolute()))
    given = Path(path)
    joined = given if given.is_absolute() else top / given
    full = Path(os.path.normpath(joined))
    try:
        real_top = top.resolve(strict=False)
        real = joined.resolve(strict=False)  # links first, then "..", as the kernel does
    except (OSError, RuntimeError):
        raise InputError(path, "symbolic links loop or cannot be followed") from None
    if not (full.is_relative_to(top) or full.is_relative_to(real_top)):
        raise InputError(path, "outside the repository; name a file inside the checkout")
    if not real.is_relative_to(real_top):
        raise InputError(path, OUTSIDE)
    return given


def record_value(text: str) -> str | None:
    """The value of the first ``# record:`` line of a lineage file's text, else None
    (empty string for a ``# record:`` line without a value), read as
    :func:`segline.lineage.lineagefile.parse_lineage` reads metadata."""
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        match = META.match(line)
        if match and match["key"].lower() == RECORD_KEY:
            return match["value"]
    return None


def record_path(
    value: str, lineage: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Path:
    """The record lineage a ``# record: <value>`` line of ``lineage`` names.

    Args:
        value: the text after ``# record:``.
        lineage: the lineage file holding the line (it must not name itself).
        root: the repository root the value is relative to (default: cwd).

    Returns:
        The record file, relative to ``root`` (normalised, e.g. ``lineage/x.local.lineage``).

    Raises:
        InputError: the value is empty, absolute, leaves the repository (``../``), is not
            a ``.lineage`` file or is ``lineage`` itself (naming ``lineage``); or the file is
            a symbolic link leading out of the repository (:func:`inside_repository`,
            naming the record file).
    """
    rel = posixpath.normpath(value.replace(os.sep, "/")) if value else ""
    base = Path(root) if root is not None else Path.cwd()
    own = Path(lineage)
    own = own if own.is_absolute() else base / own
    if (
        not rel.endswith(".lineage")
        or PurePosixPath(value).is_absolute()
        or rel.startswith("../")
        or Path(os.path.normpath(base / rel)) == Path(os.path.normpath(own))
    ):
        raise InputError(
            lineage, f"'# record: {value}' must name another .lineage file inside the repository"
        )
    return inside_repository(rel, base)
