"""Lineage files: which archive bytes a dataset is built from, and where they come from.

A lineage file (``lineage/<ds>.lineage``) is an ``md5sum`` checksum list, so
``md5sum -c lineage/<ds>.lineage`` verifies the archives without segline. Lines are::

    # source: https://msd-for-monai.s3-us-west-2.amazonaws.com/Task09_Spleen.tar
    # licence: CC-BY-SA 4.0
    # size: 1.5 GB
    410d4a301da4e5b2f6f86ec3ddba524e  data/Task09_Spleen.tar

* ``<32 hex digits><space><space or *><path>``: one archive, path relative to the
  repository root (``*`` is md5sum's binary marker; it means nothing on POSIX);
* lines starting with ``#`` are comments (md5sum skips them); a comment of the form
  ``# key: value`` (one-word key) is metadata, e.g. ``source``, ``licence``, ``size``,
  ``note``. ``source`` is either a download URL or a sentence saying how to obtain
  the data (e.g. registration required); it may appear once per archive;
* empty lines are ignored.

Lines are read exactly as GNU ``md5sum -c --strict`` reads them (coreutils 9; the
tests run ``md5sum`` on the same files), so the two never disagree about a file:

* a trailing CR is dropped (CRLF files); ``#`` must be in column 1, and a line of
  only blanks is malformed, as is anything else that is not an entry;
* leading blanks (spaces, TABs) are skipped; the md5 (either case) is followed by
  one blank (space or TAB), then ``' '`` or ``'*'`` (text / binary marker) and the
  path. Without that marker (``<md5> <path>``, one blank) the path starts right
  after the blank; md5sum decides per file which of the two forms it reads from
  the first entry, so mixing them is malformed, and after a one-blank first line
  a second blank belongs to the path;
* everything after the marker is the path, blanks included (no trimming);
* a line starting (after blanks) with ``\\`` has an escaped path: ``\\\\`` is a
  backslash, ``\\n`` a newline, ``\\r`` a CR; any other escape is malformed;
* the BSD form ``MD5 (<path>) = <md5>`` (``md5sum --tag``) is read too; the path
  ends at the last ``)``.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.lineage").write_text("# licence: CC0\\n" + "0" * 32 + "  data/x.tar\\n")
    >>> lin = parse_lineage(d / "x.lineage")
    >>> lin.entries, lin.metadata["licence"]
    ([('00000000000000000000000000000000', 'data/x.tar')], 'CC0')
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urljoin, urlsplit

from segline.errors import InputError
from segline.repopath import META
from segline.userfile import read_text

TOY_HINT = "for the embedded toy data run with TOY=1"

_HEX = re.compile(r"^[0-9a-fA-F]{32}$")
_BLANKS = " \t"
_UNESCAPE = {"\\": "\\", "n": "\n", "r": "\r"}
_META = META  # shared with the provenance, which reads '# record:' the same way
_URL = re.compile(r"^https?://\S+$")


def normalise_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """A path as a lineage file writes it: relative to ``root`` (default: cwd), POSIX, normalised.

    ``data/./x.tar``, ``./data/x.tar`` and ``/abs/repo/data/x.tar`` (with ``root`` =
    ``/abs/repo``) all become ``data/x.tar``, so a path given on a command line can be
    compared with the lineage's entries.
    """
    text = os.fspath(path)
    if os.path.isabs(text):
        text = os.path.relpath(text, os.fspath(root) if root is not None else os.getcwd())
    return posixpath.normpath(text.replace(os.sep, "/"))


@dataclass(frozen=True)
class Lineage:
    """A parsed lineage file.

    Attributes:
        path: the lineage file itself (used in messages).
        entries: ``(md5, path)`` pairs in file order; md5 in lower case, path relative
            to the repository root as written.
        metadata: ``# key: value`` comments, keys in lower case; for a key given more
            than once, the first value.
        meta_items: every ``(key, value)`` metadata pair in file order (repeated keys,
            e.g. one ``source`` per archive, included).
    """

    path: Path
    entries: list[tuple[str, str]]
    metadata: dict[str, str] = field(default_factory=dict)
    meta_items: list[tuple[str, str]] = field(default_factory=list)

    def values(self, key: str) -> list[str]:
        """All values given for metadata ``key`` (lower case), in file order."""
        return [v for k, v in self.meta_items if k == key]

    def md5_for(self, path: str | os.PathLike[str]) -> str | None:
        """The expected md5 of ``path`` (normalised, relative to cwd), or None if not listed."""
        wanted = normalise_path(path)
        for md5, entry in self.entries:
            if normalise_path(entry) == wanted:
                return md5
        return None

    def require(self, path: str | os.PathLike[str]) -> str:
        """Like :meth:`md5_for`, but raise :class:`InputError` when ``path`` is not listed
        (saying so when it is a piece of a listed path with spaces, see
        :func:`check_space_split`)."""
        md5 = self.md5_for(path)
        if md5 is None:
            check_space_split([os.fspath(path)], self)
            listed = ", ".join(p for _, p in self.entries) or "nothing"
            raise InputError(path, f"not listed in {self.path} (it lists {listed})")
        return md5

    def url_for(self, path: str | os.PathLike[str]) -> str | None:
        """The download URL of ``path``, or None when the lineage gives none usable.

        Among the ``source`` values that are plain http(s) URLs, the one whose last path
        component is the archive's file name wins; else a URL ending in ``/`` is taken
        as a folder holding the archive; else, when the lineage lists exactly one
        archive and gives exactly one URL, that URL.
        """
        name = PurePosixPath(normalise_path(path)).name
        urls = [v for v in self.values("source") if _URL.match(v)]
        for url in urls:
            if PurePosixPath(unquote(urlsplit(url).path)).name == name:
                return url
        for url in urls:
            if urlsplit(url).path.endswith("/"):
                return urljoin(url, quote(name))
        if len(urls) == 1 and len(self.entries) == 1:
            return urls[0]
        return None

    def describe_source(self, path: str | os.PathLike[str] | None = None) -> str:
        """``source: <url or note>`` for messages: where a user can get the archive."""
        if path is not None:
            url = self.url_for(path)
            if url is not None:
                return f"source: {url}"
        sources = self.values("source")
        if sources:
            return "source: " + " | ".join(sources)
        if "note" in self.metadata:
            return f"note: {self.metadata['note']}"
        return f"no source recorded in {self.path}"


SPACE_PROBLEM = (
    "archive path contains a space; make splits names at spaces: rename it or link it "
    "under a name without spaces"
)


def _spaced_candidates(args: Sequence[str], i: int, lineage: Lineage | None) -> Iterator[str]:
    """Paths with spaces that make may have split into pieces, ``args[i]`` among them."""
    for lo in range(i + 1):
        for hi in range(max(i + 1, lo + 2), len(args) + 1):
            yield " ".join(args[lo:hi])  # consecutive arguments joined back
    piece = normalise_path(args[i]) if args[i] else args[i]
    if lineage is not None:  # make ran one recipe per piece: only this one is known
        for _, entry in lineage.entries:
            pieces = entry.split()
            if len(pieces) > 1 and (args[i] in pieces or piece in pieces):
                yield entry
    first = Path(args[i])
    if first.name and first.parent.is_dir():  # a file on disk that starts with this piece
        yield from sorted(
            str(first.parent / c.name)
            for c in first.parent.iterdir()
            if c.name.startswith(first.name + " ")
        )


def check_space_split(args: Sequence[str], lineage: Lineage | None = None) -> None:
    """Refuse archive arguments that are the pieces of a path containing a space.

    Make splits ``ARCHIVES='data/with space.tar'`` into ``data/with`` and
    ``space.tar``, so a tool would report "data/with: not listed". When an argument is
    neither listed in ``lineage`` nor an existing file, but consecutive arguments joined
    by a space (or a listed path, or a file next to it) are, say what happened instead.
    Shared by ``fetch.py`` (one argument per recipe) and ``unpack.py`` (all of them).

    Raises:
        InputError: ``<the path with spaces>: archive path contains a space; ...``.
    """

    def known(path: str) -> bool:
        listed = lineage is not None and lineage.md5_for(path) is not None
        return listed or Path(path).is_file()

    for i, arg in enumerate(args):
        if known(arg):
            continue
        for candidate in _spaced_candidates(args, i, lineage):
            if known(candidate):
                shown = normalise_path(candidate)
                raise InputError(shown, SPACE_PROBLEM)


def unescape_name(text: str) -> str | None:
    """md5sum's escaped file name: ``\\\\``, ``\\n``, ``\\r``; None for any other escape
    (lineage files and the folder manifests of :mod:`segline.lineage.manifest`)."""
    out: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            ch = _UNESCAPE.get(next(chars, ""), "")
            if not ch:
                return None
        out.append(ch)
    return "".join(out)


class _EntryReader:
    """Parses entry lines as ``md5sum -c`` does, keeping its one piece of state.

    md5sum fixes, at the first entry in GNU form, whether the file uses a type marker
    (``<md5>  path`` / ``<md5> *path``) or not (``<md5> path``, as BSD ``md5 -r``
    writes); later lines are read the same way.
    """

    def __init__(self) -> None:
        self.marker: bool | None = None  # None until the first GNU-form entry

    def read(self, line: str) -> tuple[str, str] | None:
        """``(md5, path)`` of an entry line (no newline, CR removed), or None if malformed."""
        i = len(line) - len(line.lstrip(_BLANKS))
        escaped = line.startswith("\\", i)
        i += escaped
        if line.startswith("MD5", i):
            return self._bsd(line[i + 3 :], escaped)
        if len(line) - i < 34:  # md5, a blank, at least one character
            return None
        md5, blank, rest = line[i : i + 32], line[i + 32], line[i + 33 :]
        if blank not in _BLANKS or not _HEX.match(md5):
            return None
        if len(rest) == 1 or rest[0] not in " *":
            if self.marker is True:
                return None
            self.marker = False
            path = rest
        elif self.marker is not False:
            self.marker = True
            path = rest[1:]
        else:
            path = rest
        name = unescape_name(path) if escaped else path
        return None if name is None else (md5, name)

    @staticmethod
    def _bsd(rest: str, escaped: bool) -> tuple[str, str] | None:
        """``[ ](<path>)<blanks>=<blanks><md5>`` after the ``MD5`` tag."""
        rest = rest[1:] if rest.startswith(" ") else rest
        if not rest.startswith("("):
            return None
        rest = rest[1:]
        end = rest.rfind(")")
        if end < 0:
            return None
        name = unescape_name(rest[:end]) if escaped else rest[:end]
        tail = rest[end + 1 :].lstrip(_BLANKS)
        if name is None or not tail.startswith("="):
            return None
        md5 = tail[1:].lstrip(_BLANKS)
        return (md5, name) if _HEX.match(md5) else None


def parse_lineage(path: str | os.PathLike[str]) -> Lineage:
    """Read a lineage file.

    Args:
        path: the ``.lineage`` file.

    Returns:
        The entries and metadata, in file order.

    Raises:
        InputError: the file is missing, unreadable, not UTF-8, lists nothing, or has a
            line that is neither blank, a ``#`` comment nor ``<md5>  <path>`` (the
            message names the file and the 1-based line number).
    """
    path = Path(path)
    text = read_text(path, "lineage file not found")
    entries: list[tuple[str, str]] = []
    meta_items: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    reader = _EntryReader()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it starts none
    for number, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            continue
        if line.startswith("#"):
            match = _META.match(line)
            if match:
                meta_items.append((match["key"].lower(), match["value"]))
            continue
        parsed = reader.read(line)
        if parsed is None:
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise InputError(
                path,
                f"line {number}: expected '<32-hex md5>  <path>' or a '#' comment, got {shown!r}"
                " (read as md5sum -c --strict reads it)",
            )
        md5, entry = parsed
        key = normalise_path(entry)
        if PurePosixPath(entry).is_absolute() or key.startswith("../") or key == "..":
            problem = f"line {number}: path {entry!r} must be relative to the repository root"
            raise InputError(path, problem)
        if key in seen:
            raise InputError(path, f"line {number}: {entry!r} already listed on line {seen[key]}")
        seen[key] = number
        entries.append((md5.lower(), entry))
    if not entries and not any(key == "record" for key, _ in meta_items):
        # (a lineage naming a '# record:' file may list none: segline.lineage.record)
        raise InputError(path, "lists no archive (no '<md5>  <path>' line)")
    metadata: dict[str, str] = {}
    for key, value in meta_items:
        metadata.setdefault(key, value)
    return Lineage(path=path, entries=entries, metadata=metadata, meta_items=meta_items)


def md5_of(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The md5 of a file as 32 lower-case hex digits, read ``chunk`` bytes at a time.

    Streaming keeps memory flat for multi-GB archives. md5 is used as a checksum
    against accidental corruption (as ``md5sum``), not for security.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(
    lineage: Lineage,
    paths: list[str] | list[Path] | tuple[str | os.PathLike[str], ...] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Check that archives exist and have the md5 the lineage records.

    Args:
        lineage: the parsed lineage file.
        paths: the archives to check (each must be listed), as given on a command
            line, relative to ``root``; None checks every entry.
        root: the repository root the lineage paths are relative to (default: cwd).

    Returns:
        The checked paths, normalised as in the lineage.

    Raises:
        InputError: on the first archive that is not listed, missing, or whose md5
            differs; one line naming the archive, the expected md5 and the source.
    """
    base = Path(root) if root is not None else Path.cwd()
    if paths is None:
        wanted = [(md5, normalise_path(p, base)) for md5, p in lineage.entries]
    else:
        wanted = []
        for p in paths:
            rel = normalise_path(p, base)
            md5 = None
            for exp, entry in lineage.entries:
                if normalise_path(entry, base) == rel:
                    md5 = exp
            if md5 is None:
                check_space_split([os.fspath(a) for a in paths], lineage)
                listed = ", ".join(e for _, e in lineage.entries)
                raise InputError(p, f"not listed in {lineage.path} (it lists {listed})")
            wanted.append((md5, rel))
    for expected, rel in wanted:
        file = base / rel
        where = lineage.describe_source(rel)
        if not file.is_file():
            problem = "not a regular file" if file.exists() else "not found"
            raise InputError(rel, f"{problem} (expected md5 {expected}, {where}); {TOY_HINT}")
        got = md5_of(file)
        if got != expected:
            raise InputError(
                rel,
                f"md5 {got} does not match {lineage.path} ({expected}); "
                f"re-download it ({where}) or {TOY_HINT}",
            )
    return [rel for _, rel in wanted]
