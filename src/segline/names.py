"""The naming rule for names that become folder and file names: datasets, runs, methods.

``make/names.mk`` checks ``DS``, ``RUN`` and every method when make reads the
makefiles; this module is its twin for the command-line tools that are given such a
name (``segline-pack --ds/--run``). Same rule, same reasons word for word
(``tests/test_names.py`` runs both on a table of names).

A name is one word of ASCII letters, digits, ``-`` and ``_``, starting with a letter
or digit, not ending in ``_tmp``: no ``/``, space, glob or shell character (safe
unquoted in a recipe and as a make target), no ``.`` (never a file beside the runs,
such as ``report.md``; and :data:`SEPARATOR` can join a dataset and a run in archive
names without ambiguity), never the suffix of a folder being written
(:mod:`segline.atomic`).

Example:
    >>> name_problem("Dataset001_Spleen"), name_problem("report.md")
    ('', "it has a character other than letters, digits, '-' and '_'")
    >>> run_label("pg", "x"), run_label("pg-x", "")
    ('pg.x', 'pg-x')
"""

from __future__ import annotations

import string

from segline.errors import InputError

SEPARATOR = "."
"""Joins the dataset and the run in archive names: ``<ds>.<run>`` (``NAME_SEP``)."""
RULE = (
    "names (DS, RUN, methods) are letters, digits, '-' and '_', "
    "starting with a letter or digit, not ending in _tmp"
)
CHARS = frozenset(string.ascii_letters + string.digits + "-_")
BLANKS = " \t\n\r\v\f"
"""What make splits words on (and strips)."""
TMP_SUFFIX = "_tmp"

EMPTY = "it is empty"
SPACE = "it has a space"
BAD_CHARS = "it has a character other than letters, digits, '-' and '_'"
BAD_START = "it starts with '-' or '_'"
TMP = "it ends in _tmp (a folder being written)"


def name_problem(value: str) -> str:
    """What is wrong with ``value`` as a name, or ``''`` when it is one (the reasons of
    ``make/names.mk``'s ``name_problem``, in the same order)."""
    if not value.strip(BLANKS):
        return EMPTY
    if any(c in BLANKS for c in value):
        return SPACE
    if not set(value) <= CHARS:
        return BAD_CHARS
    if value[0] in "-_":
        return BAD_START
    if value.endswith(TMP_SUFFIX):
        return TMP
    return ""


def check_name(knob: str, value: str) -> str:
    """``value`` when it is a name; else :class:`InputError` naming the knob, the value
    and the rule on one line, as make says it."""
    problem = name_problem(value)
    if problem:
        raise InputError(f"{knob}='{value}'", f"not a valid name ({problem}); {RULE}")
    return value


def run_label(ds: str, run: str | None = None) -> str:
    """The run's name in archive names and the report title: ``<ds>``, or
    ``<ds>.<run>`` for a named run (``NAME`` in ``make/common.mk``). Both parts must
    be names, so two (dataset, run) pairs never share a label."""
    check_name("DS", ds)
    if not run:
        return ds
    return f"{ds}{SEPARATOR}{check_name('RUN', run)}"


def check_label(label: str) -> str:
    """``label`` when it is a :func:`run_label` (``<ds>`` or ``<ds>.<run>``); else
    :class:`InputError` on one line."""
    parts = label.split(SEPARATOR)
    if len(parts) > 2 or any(name_problem(part) for part in parts):
        raise InputError(
            f"'{label}'", f"not a run label: <ds> or <ds>{SEPARATOR}<run>, where {RULE}"
        )
    return label
