"""Download an archive named in a lineage file, resumably, and keep it only if its md5 matches.

The Make rule for ``data/<archive>`` calls ``preprocess/fetch.py``. The download goes
to ``<archive>.part``; an existing ``.part`` is resumed with an HTTP ``Range``
request (a server that ignores it sends the whole file, which then replaces the
``.part``). Only when the md5 matches the lineage is the ``.part`` renamed to the
archive, so Make never sees a half-downloaded or wrong archive. Every failure is one
:class:`~segline.errors.InputError` line that says where the file is expected, its
md5, where it comes from, and that ``TOY=1`` runs the pipeline on embedded toy data.

Example (not run: needs a server):
    >>> from segline.lineage.lineagefile import parse_lineage
    >>> fetch(parse_lineage("lineage/spleen.lineage"), "data/Task09_Spleen.tar")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from segline import __version__, stage
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.lineage.extract import human_bytes
from segline.lineage.lineagefile import TOY_HINT, Lineage, md5_of, normalise_path, parse_lineage
from segline.lineage.record import expected_md5

DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20
_PROGRESS_EVERY = 0.25  # seconds between progress-line updates
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
#: What a failing connection or server can raise while opening or reading a response.
_NET_ERRORS: tuple[type[BaseException], ...] = (
    urllib.error.URLError,
    http.client.HTTPException,
    OSError,
)


@dataclass(frozen=True)
class Fetched:
    """Outcome of :func:`fetch`.

    Attributes:
        path: the archive, now present with the lineage's md5.
        url: where it came from (None when it was already present).
        size: its size in bytes.
        resumed_from: bytes already in the ``.part`` that a Range request continued.
        already_present: the archive existed with the right md5; nothing downloaded.
    """

    path: Path
    url: str | None
    size: int
    resumed_from: int = 0
    already_present: bool = False


class _NetworkFailure(Exception):
    """Internal: the transfer failed; carries a one-line reason."""


def part_path(target: str | os.PathLike[str]) -> Path:
    """The partial download that sits next to ``target`` (``data/x.tar`` -> ``data/x.tar.part``)."""
    target = Path(target)
    return target.with_name(target.name + ".part")


def _reason(err: BaseException) -> str:
    """A one-line reason for a network error."""
    if isinstance(err, urllib.error.HTTPError):
        text = f"HTTP {err.code} {err.reason}"
    elif isinstance(err, urllib.error.URLError):
        text = str(err.reason)
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _request(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"segline/{__version__}", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


class _Progress:
    """A ``\\r``-updated progress line, only on a terminal (logs stay clean)."""

    def __init__(self, stream: TextIO | None, label: str, total: int | None) -> None:
        isatty = getattr(stream, "isatty", None)
        self.stream = stream if stream is not None and isatty is not None and isatty() else None
        self.label = label
        self.total = total
        self.last = 0.0
        self.shown = False

    def update(self, done: int, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self.last < _PROGRESS_EVERY:
            return
        self.last = now
        if self.total:
            text = f"{human_bytes(done)} / {human_bytes(self.total)} ({100 * done // self.total}%)"
        else:
            text = human_bytes(done)
        self.stream.write(f"\r{self.label}: {text}\x1b[K")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.stream is not None and self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _range_start(response: http.client.HTTPResponse) -> int | None:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _receive(
    response: http.client.HTTPResponse,
    part: Path,
    start: int,
    label: str,
    stream: TextIO | None,
) -> None:
    """Append the response body to ``part`` (which holds ``start`` bytes already)."""
    length_header = response.headers.get("Content-Length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    progress = _Progress(stream, label, start + length if length is not None else None)
    received = 0
    try:
        with open(part, "ab" if start else "wb") as out:
            while True:
                try:
                    block = response.read(_CHUNK)
                except _NET_ERRORS as err:
                    raise _NetworkFailure(_reason(err)) from None
                if not block:
                    break
                out.write(block)
                received += len(block)
                progress.update(start + received)
        progress.update(start + received, force=True)
    finally:
        progress.close()
    if length is not None and received < length:
        raise _NetworkFailure(
            f"connection closed after {start + received} of {start + length} bytes"
        )


def _download(
    url: str, part: Path, expected: str, timeout: float, label: str, stream: TextIO | None
) -> int:
    """Bring ``part`` to the full file; return how many bytes were resumed from.

    Raises:
        _NetworkFailure: the server or connection failed.
    """
    start = part.stat().st_size if part.is_file() else 0
    for _attempt in range(3):
        try:
            response = _request(url, start, timeout)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code == 416 and start:
                # Range beyond the end: the .part may already be complete.
                if md5_of(part) == expected:
                    return start
                part.unlink()
                start = 0
                continue
            raise _NetworkFailure(_reason(err)) from None
        except _NET_ERRORS as err:
            raise _NetworkFailure(_reason(err)) from None
        with response:
            if start and response.status == 206 and _range_start(response) == start:
                _receive(response, part, start, label, stream)
                return start
            if response.status == 206:
                # A range we did not ask for: start again without one.
                part.unlink(missing_ok=True)
                start = 0
                continue
            # 200 (or another 2xx): the whole file; a server that ignores Range lands here.
            _receive(response, part, 0, label, stream)
            return 0
    raise _NetworkFailure("the server keeps answering with unexpected byte ranges")


def fetch(
    lineage: Lineage,
    target: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: TextIO | None = None,
) -> Fetched:
    """Download ``target`` from the lineage's ``source`` URL and check its md5.

    Args:
        lineage: the parsed lineage that lists ``target``.
        target: the archive path as listed (relative to the repository root = cwd).
        timeout: seconds to wait for the connection and for each read.
        progress: where a progress line goes if it is a terminal (default: stderr).

    Returns:
        What was done; ``target`` then exists with the lineage's md5.

    Raises:
        InputError: ``target`` not listed; no download URL (registration required);
            an existing ``target`` with a different md5; a network or HTTP failure
            (a non-empty ``.part`` is kept for resuming, an empty one removed); a
            downloaded file with the wrong md5 (the ``.part`` is removed).
    """
    target = Path(target)
    expected = expected_md5(lineage, target)  # the lineage's, else recorded on first use
    url = lineage.url_for(target) if not target.is_file() else None
    if not target.is_file() and url is not None:
        # Two makes downloading one archive: the second waits, then finds it there.
        target.parent.mkdir(parents=True, exist_ok=True)
        with stage.target_lock(target):
            return _fetch_locked(lineage, target, expected, url, timeout, progress)
    return _fetch_locked(lineage, target, expected, url, timeout, progress)


def _fetch_locked(
    lineage: Lineage,
    target: Path,
    expected: str,
    url: str | None,
    timeout: float,
    progress: TextIO | None,
) -> Fetched:
    """:func:`fetch` once no other process downloads ``target``."""
    label = normalise_path(target)
    if target.is_file():
        got = md5_of(target)
        if got != expected:
            raise InputError(
                label,
                f"exists but its md5 {got} does not match {lineage.path} ({expected}); "
                "delete it to download it again",
            )
        return Fetched(target, None, target.stat().st_size, already_present=True)
    if url is None:
        raise InputError(
            label,
            f"no download URL in {lineage.path} ({lineage.describe_source(target)}); "
            f"get the archive there and put it at {label} (md5 {expected}), or {TOY_HINT}",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    stream = sys.stderr if progress is None else progress
    try:
        resumed = _download(url, part, expected, timeout, label, stream)
    except _NetworkFailure as failure:
        size = part.stat().st_size if part.is_file() else 0
        if part.is_file() and size == 0:
            part.unlink()
        kept = (
            f"kept {human_bytes(size)} in {normalise_path(part)}, run again to resume"
            if size
            else f"or download it yourself to {label}"
        )
        raise InputError(
            label,
            f"download failed ({failure}); expected md5 {expected} from {url}; {kept}; {TOY_HINT}",
        ) from None
    except OSError as err:  # network errors are _NetworkFailure: this is the local disk
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()
        raise InputError(label, f"cannot write {normalise_path(part)} ({err.strerror})") from None
    except BaseException:
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()
        raise
    got = md5_of(part)
    if got != expected:
        part.unlink()
        raise InputError(
            label,
            f"downloaded md5 {got} does not match {lineage.path} ({expected}); removed it; "
            f"source: {url}",
        )
    size = part.stat().st_size
    os.replace(part, target)
    return Fetched(target, url, size, resumed_from=resumed)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``preprocess/fetch.py``."""
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("fetch.py"),
        description="Download an archive listed in a lineage file from its source URL "
        "(resuming a .part), and keep it only if its md5 matches.",
    )
    parser.add_argument("--lineage", required=True, type=Path, help="lineage/<ds>.lineage")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"connection / read timeout (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("target", metavar="TARGET", help="archive path as listed, e.g. data/x.tar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``fetch.py --lineage L [--timeout SECONDS] TARGET``."""
    args = build_parser().parse_args(argv)
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise InputError("--timeout", f"must be a finite number > 0, got {args.timeout:g}")
    result = fetch(parse_lineage(args.lineage), args.target, timeout=args.timeout)
    label = normalise_path(result.path)
    if result.already_present:
        print(f"{label} already present (md5 ok)")
    else:
        resumed = f", resumed at {human_bytes(result.resumed_from)}" if result.resumed_from else ""
        print(f"fetched {label} ({human_bytes(result.size)}, md5 ok{resumed}) from {result.url}")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
