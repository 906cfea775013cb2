"""The two training layouts never share a folder (README, "The stages and where outputs
land").

Without seeds a method's training is one folder of files, ``<run>/<method>/``
(``args.json``, ``best.pt``, ...), rebuilt atomically: a new training replaces the
whole folder. With seeds each training is ``<run>/<method>/seed<k>/``
(:mod:`segline.seeds`). Mixing them in one folder loses results: a single-seed
training renamed into ``<method>/`` deletes the seed folders in it, and seed folders
written inside a single-seed training's folder are lost at its next rebuild. make
refuses both when it reads the makefile (``make/common.mk``); the trainer checks again
with :func:`check`, before it writes anything and again just before its result
replaces the folder, so a direct ``segline-train --out ...`` or a second make running
meanwhile cannot mix them either.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "gdl" / "seed0").mkdir(parents=True)
    >>> check(root / "gdl" / "seed1")  # another seed beside it: fine
    >>> try:
    ...     check(root / "gdl")
    ... except InputError as err:
    ...     print(err.problem.split(";")[0])
    holds seed<k> trainings (seed0) that a single-seed training would replace
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from segline.errors import InputError
from segline.seeds import split_seed_folder

TRAINING_FILE = "args.json"
"""Written first into every training folder (also while it trains, in ``<out>_tmp``)."""
SEED_ENTRY = re.compile(r"seed[0-9]+(_tmp)?")
"""A seed's training folder, finished or being written (:mod:`segline.atomic`)."""
FOLD_ENTRY = re.compile(r"fold[0-9]+(_tmp)?")
"""A cross-validation fold's folder (``FOLDS``: ``<method>/fold<i>[/seed<k>]``)."""
FOLD_NAME = re.compile(r"fold(0|[1-9][0-9]*)")


def _entries(folder: Path, pattern: re.Pattern[str]) -> list[str]:
    """The sub-folder names of ``folder`` matching ``pattern``, sorted; empty when there
    are none or ``folder`` does not exist."""
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(e for e in entries if pattern.fullmatch(e) and (folder / e).is_dir())


def seed_folders(folder: Path) -> list[str]:
    """The names of the seed training folders in ``folder`` (finished or in progress)."""
    return _entries(folder, SEED_ENTRY)


def fold_folders(folder: Path) -> list[str]:
    """The names of the fold folders in ``folder`` (finished or in progress)."""
    return _entries(folder, FOLD_ENTRY)


def check(out: str | os.PathLike[str]) -> None:
    """Refuse a training whose output folder ``out`` would mix the two layouts.

    ``out`` named ``seed<k>``: its parent must not be a single-seed training (hold
    ``args.json``). Any other ``out``: it must not hold seed training folders.

    Raises:
        InputError: one line naming the folder and what to do instead.
    """
    out = Path(out)
    if FOLD_NAME.fullmatch(out.name):
        _check_fold(out)
    method, seed = split_seed_folder(out)
    folds = fold_folders(Path(method) if seed is not None else out)
    if folds and not FOLD_NAME.fullmatch(Path(method).name):
        raise InputError(
            out,
            f"{method if seed is not None else out} holds fold<i> trainings ({folds[0]}) "
            "of a cross-validation, which no other training goes beside; train it in "
            "another folder (make: another RUN)",
        )
    if seed is not None:
        if (Path(method) / TRAINING_FILE).is_file():
            raise InputError(
                out,
                f"{method} holds a single-seed training ({TRAINING_FILE}) and seed<k> "
                "trainings never go inside one; train the seeds in another folder "
                "(make: another RUN)",
            )
        return
    seeds = seed_folders(out)
    if seeds:
        shown = ", ".join(seeds[:3]) + (", ..." if len(seeds) > 3 else "")
        raise InputError(
            out,
            f"holds seed<k> trainings ({shown}) that a single-seed training would replace; "
            "train it in another folder (make: another RUN)",
        )


def _check_fold(out: Path) -> None:
    """A fold folder ``<method>/fold<i>`` never goes inside or beside other trainings:
    its method folder must hold neither ``args.json`` nor seed folders."""
    parent = out.parent
    if (parent / TRAINING_FILE).is_file() or seed_folders(parent):
        what = (f"a single training ({TRAINING_FILE})" if (parent / TRAINING_FILE).is_file()
                else "seed<k> trainings")
        raise InputError(out, f"{parent} holds {what} and fold<i> trainings never go beside "
                         "it; train the folds in another folder (make: another RUN)")
