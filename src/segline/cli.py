"""Shared plumbing for segline's small command-line tools.

Each Make recipe calls one CLI. They all go through :func:`run`, which turns an
:class:`~segline.errors.InputError` into a single line on stderr and exit code 2,
and an interrupt into exit code 130, so that Make stops with a readable message and
``.DELETE_ON_ERROR`` / the atomic writers leave nothing half-written behind.

A full disk, an exceeded quota, a read-only or not writable output folder (``OSError``
with errno ENOSPC, EDQUOT, EFBIG, EROFS, EACCES or EPERM) is reported the same way:
one line ``segline: <path>: <reason> (disk full, quota, read-only or not writable
output?)`` and exit code :data:`EXIT_OS` (3), so a storage problem is told apart from
bad input (2). The atomic writers have already removed their temporary file or
folder by then.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import PurePath

from segline.errors import InputError

EXIT_INPUT = 2
EXIT_OS = 3
EXIT_INTERRUPTED = 130

#: errno values that mean "the output cannot be written here" (disk, quota, permissions):
#: reported as one line, not a traceback. Other OSErrors are bugs or bad input and keep
#: their traceback.
STORAGE_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EFBIG,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
    )
    if code is not None
)


def storage_message(err: OSError) -> str:
    """One line for a storage ``OSError``: the path(s), the system's reason, a hint.

    ``err.filename`` is the path the call failed on (both paths for a rename); when the
    error carries no path (a failed ``write()`` on an open file), the line says so.
    """
    names = [str(n) for n in (err.filename, err.filename2) if n is not None]
    where = " -> ".join(names) if names else "(path not reported by the system)"
    reason = err.strerror or os.strerror(err.errno or 0)
    return f"{where}: {reason} (disk full, quota, read-only or not writable output?)"


def run(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None
) -> int:
    """Run ``main(argv)``; report input errors as one line and return an exit code.

    Args:
        main: the tool's entry point; returns an exit code or None for success.
        argv: arguments (defaults to ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on an :class:`InputError`, 3 when an output cannot be written
        (full disk, quota, read-only or not writable folder), 130 on Ctrl-C.
    """
    try:
        rc = main(argv)
    except InputError as err:
        print(f"segline: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("segline: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            raise
        print(f"segline: {storage_message(err)}", file=sys.stderr)
        return EXIT_OS
    return int(rc or 0)


def entry(main: Callable[[Sequence[str] | None], int | None]) -> None:
    """``if __name__ == "__main__": entry(main)``: exit with :func:`run`'s code.

    Under make, the command runs as a stage (:func:`segline.stage.build`): locked
    against a second make, and followed by its records (digest, imported code,
    command) beside the target.
    """
    from segline import stage

    sys.exit(run(lambda argv: stage.build(lambda: main(argv))))


#: The console script being run (``segline-train``), set by the ``cli`` functions of
#: :func:`cli_of`; None under ``python -m`` and the ``preprocess/*.py`` scripts.
_SCRIPT: str | None = None


def prog(default: str) -> str:
    """The program name ``--help`` and argument errors show: the console script's own
    name when run as one (``segline-train``), else ``default`` (``python -m
    segline.train``, ``slice.py``: how make's recipes call it)."""
    return _SCRIPT or default


def cli_of(main: Callable[[Sequence[str] | None], int | None]) -> Callable[[], None]:
    """A console-script entry point (``[project.scripts]``) that runs ``entry(main)``.

    Console scripts call a function without arguments; each CLI module defines
    ``cli = cli_of(main)`` next to its ``if __name__ == "__main__": entry(main)``, so
    ``segline-train`` and ``python -m segline.train`` run the same code path.
    """

    def cli() -> None:
        global _SCRIPT
        _SCRIPT = os.path.basename(sys.argv[0]) or None
        entry(main)

    cli.__doc__ = f"Console script: run :func:`{main.__module__}.main` through entry()."
    return cli


def format_default(value: object) -> str:
    """A default as the command line would spell it: ``2d,3d`` for a tuple, ``none`` for
    an empty list, ``true``/``false`` (the loss-spec spelling), a whole float without
    ``.0`` (``200``), other floats as ``repr`` (``0.0005``), the rest as ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(format_default(v) for v in value) if value else "none"
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` of every segline CLI: each option's help ends with its default.

    ``(default: X)`` (X spelled by :func:`format_default`) is appended to an option's
    help unless the help already mentions ``%(default)`` or states X after the word
    "default", the default is ``None`` or suppressed, or the option is a flag
    (``store_true``: off unless given). Description and epilog lines that start with
    a space are printed as written (tables of nets and losses); other lines are wrapped.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is argparse.SUPPRESS
            or action.nargs == 0
        ):
            return text
        shown = format_default(default).replace("%", "%%")
        stated = text.lower().find("default")
        if stated >= 0 and shown in text[stated:]:
            return text
        return f"{text} (default: {shown})" if text else f"(default: {shown})"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            if line.startswith(" ") or not line:
                lines.append(indent + line)
            else:
                lines.append(
                    textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n".join(lines)


# ----------------------------------------------------------- argparse value types


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (``--jobs``, ``--threads``, sizes in voxels)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def count(text: str) -> int:
    """argparse type: an integer ≥ 0 (numbers of cases)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number ≥ 0 (relative thresholds, factors)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value
