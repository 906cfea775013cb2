"""Where predictions may be written, and how, so that ``predict`` never destroys data.

``segline-predict -o OUT`` (make ``predict INPUT=... OUTPUT=OUT``) writes only into a
folder segline owns:

* ``OUT`` is new, empty, or a prediction folder segline wrote: one holding the record
  :data:`MARKER` (``OUT/.segline-predictions``, JSON), which lists every sub-folder
  segline wrote there with the sha256 of each of its files;
* ``OUT`` lies outside the project's ``results/`` and ``data/`` (:func:`project_folders`:
  the folders beside the ``results/`` above each method and the ``data/`` above each
  case store) and apart from every input: the image folder, each method folder and
  each case store neither is ``OUT``, nor holds it, nor lies inside it;
* each method writes its own sub-folder, named by :func:`subfolder_name`: the method
  folder's path below ``results/<ds>/`` with ``/`` spelled ``.`` (``gdl``, ``r2.gdl``
  for ``RUN=r2``, ``seeds.gdl.seed0``); no run or method name holds a ``.``
  (``make/names.mk``), so two trainings of one data set never share a sub-folder, and
  two that still do (one name in two data sets, a method given twice) are refused;
* an existing sub-folder is replaced only when it holds nothing but files the record
  lists, unchanged (same sha256): a file a user put there or edited is named and
  nothing is written. Files of ``OUT`` outside the method sub-folders are never touched.

Every check compares resolved real paths (``..`` and symlinks followed) and runs
before anything is written; a refusal is one :class:`~segline.errors.InputError`
line. Writing takes an exclusive ``flock`` on ``OUT`` (a second predict into the same
folder waits for the first), checks again, and swaps each sub-folder in by renames;
while a swap is under way the record lists both the old and the new files, so an
interrupted run never leaves a file the next run would take for a user's.

``--out`` (make's own ``results/<ds>[/<run>]/predict/<method>``, the store's
unlabelled cases) is checked by :func:`check_store_folder`: strictly inside the
``predict/`` folder beside the method, apart from the method and its case store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from segline import atomic
from segline.digest import sha256_file
from segline.errors import InputError
from segline.seeds import split_seed_folder, training_label

#: The record of what segline wrote into a prediction folder (JSON, in the folder).
MARKER = ".segline-predictions"
#: Version of the record's layout.
FORMAT = 1
#: Prefix of the temporary folders inside ``OUT`` while a sub-folder is written.
TMP_PREFIX = ".segline-tmp-"
#: Joins the folders of a method's path below results/<ds>/ into its sub-folder's name:
#: '.', which no data set, run or method name holds (make/names.mk, segline.names).
SUB_SEP = "."
#: An input of a prediction: (what it is, e.g. "method", its path).
Watched = tuple[str, Path]

_ADVICE = "predict into a new or empty folder"


def _real(path: str | os.PathLike[str]) -> Path:
    """``path`` absolute, every existing symlink and ``..`` resolved."""
    return Path(path).resolve()


def _within(inner: Path, outer: Path) -> bool:
    """``inner`` is ``outer`` or lies below it (both resolved)."""
    return inner == outer or inner.is_relative_to(outer)


def _spellings(path: Path) -> tuple[Path, Path]:
    """``path`` as spelled (absolute, ``..`` folded) and as resolved."""
    return Path(os.path.abspath(path)), _real(path)


def _nearest(path: Path, name: str) -> list[Path]:
    """The nearest ancestor called ``name`` of each spelling of ``path``."""
    found = []
    for spelled in _spellings(path):
        up = next((p for p in spelled.parents if p.name == name), None)
        if up is not None:
            found.append(up)
    return found


def project_folders(methods: Sequence[Path], stores: Sequence[Path]) -> list[Path]:
    """The ``results/`` and ``data/`` folders of the projects the inputs belong to,
    resolved: beside the nearest ``results/`` above each method folder and the nearest
    ``data/`` above each case store (as spelled and as resolved, so a project whose
    ``results`` is a symlink to another disk is found both ways). Sorted, unique."""
    roots = [up.parent for m in methods for up in _nearest(m, "results")]
    roots += [up.parent for s in stores for up in _nearest(s, "data")]
    return sorted({_real(r / sub) for r in roots for sub in ("results", "data")})


def check_apart(out: Path, watched: Sequence[Watched]) -> None:
    """Refuse ``out`` when it is, holds or lies inside one of the ``watched`` inputs."""
    real = _real(out)
    for what, path in watched:
        other = _real(path)
        if real == other:
            why = f"is the {what} {path}"
        elif _within(real, other):
            why = f"lies inside the {what} {path}"
        elif _within(other, real):
            why = f"holds the {what} {path}"
        else:
            continue
        raise InputError(out, f"{why}; predictions go to a folder apart from every input")


def subfolder_name(method: Path) -> str:
    """The sub-folder of ``OUT`` that ``method``'s predictions go to.

    The method folder's path below ``results/<ds>/``, its folders joined by
    :data:`SUB_SEP`: ``results/pg/gdl`` -> ``gdl``, ``results/pg/r2/gdl`` -> ``r2.gdl``
    (a named run), ``results/pg/seeds/gdl/seed0`` -> ``seeds.gdl.seed0``. A method
    folder not below a ``results/<ds>/`` (as spelled, else as resolved): its
    training's name, ``gdl`` or ``gdl.seed0``.
    """
    for spelled in _spellings(method):
        parts = spelled.parts
        up = next((i for i in range(len(parts) - 2, -1, -1) if parts[i] == "results"), None)
        if up is not None and len(parts) - up >= 3:
            return SUB_SEP.join(parts[up + 2 :])
    return training_label(method).replace("/", SUB_SEP)


def subfolders(methods: Sequence[Path]) -> list[str]:
    """:func:`subfolder_name` of each method, in order; two methods that map to one
    sub-folder (the same method twice, methods of one name in two data sets or outside
    ``results/<ds>/``) are refused with one line naming both."""
    names: list[str] = []
    for method in methods:
        name = subfolder_name(method)
        if name in names:
            first = methods[names.index(name)]
            if _real(first) == _real(method):
                raise InputError(method, "given twice (-m)")
            raise InputError(
                method,
                f"its predictions would go to the same sub-folder {name!r} as those of "
                f"{first}; predict the two into two output folders",
            )
        names.append(name)
    return names


def check_store_folder(out: Path, method: Path, store: Path) -> None:
    """``--out``: make's own folder of the store's unlabelled cases.

    It must lie strictly inside the ``predict/`` folder beside the method
    (``results/<ds>[/<run>]/predict/<method>[/seed<k>]``) and apart from the method and
    its case store; any other folder is refused (use ``-o``, which checks ownership).
    """
    base, _seed = split_seed_folder(os.path.abspath(method))
    home = Path(base).parent / "predict"
    real = _real(out)
    if not real.is_relative_to(_real(home)) or real == _real(home):
        raise InputError(
            out,
            f"--out writes make's own folder of the store's unlabelled cases, inside "
            f"{home}; predict into any other folder with -o/--output",
        )
    check_apart(out, [("method", method), ("case store", store)])


# ------------------------------------------------------------------ the record
def _empty_record() -> dict[str, Any]:
    return {"format": FORMAT, "written_by": "segline-predict", "folders": {}}


def read_record(out: Path) -> dict[str, Any]:
    """The record :data:`MARKER` of ``out``; refused when it is not one segline wrote."""
    path = out / MARKER
    problem = f"not a record segline-predict wrote (format {FORMAT}); {_ADVICE}"
    if path.is_symlink() or not path.is_file():
        raise InputError(path, problem)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(path, f"unreadable ({err}); {problem}") from err
    folders = record.get("folders") if isinstance(record, dict) else None
    ok = (
        isinstance(folders, dict)
        and record.get("format") == FORMAT
        and all(
            isinstance(entry, dict)
            and all(
                isinstance(entry.get(key, {}), dict)
                and all(isinstance(v, str) for v in entry.get(key, {}).values())
                for key in ("files", "replacing")
            )
            for entry in folders.values()
        )
    )
    if not ok:
        raise InputError(path, problem)
    return record


def _allowed(record: dict[str, Any], name: str) -> dict[str, set[str]]:
    """{file: sha256s} segline wrote into sub-folder ``name`` (both sides of a swap)."""
    entry = record["folders"].get(name, {})
    allowed: dict[str, set[str]] = {}
    for key in ("files", "replacing"):
        for rel, digest in entry.get(key, {}).items():
            allowed.setdefault(rel, set()).add(digest)
    return allowed


def _check_subfolder(out: Path, real: Path, name: str, record: dict[str, Any]) -> None:
    """Refuse when sub-folder ``name`` holds anything the record does not list as is."""
    sub = real / name
    shown = out / name
    if not os.path.lexists(sub):
        return
    advice = (
        f"{shown} is replaced only when it holds nothing but the files segline wrote: "
        "move it away or predict into another folder"
    )
    if sub.is_symlink() or not sub.is_dir():
        raise InputError(shown, f"not a folder segline wrote (not in {out / MARKER}); {advice}")
    allowed = _allowed(record, name)
    for dirpath, dirnames, filenames in os.walk(sub):
        dirnames.sort()
        here = Path(dirpath)
        for d in dirnames:
            foreign = shown / (here / d).relative_to(sub)
            raise InputError(foreign, f"a folder segline did not write; {advice}")
        for f in sorted(filenames):
            path = here / f
            rel = path.relative_to(sub).as_posix()
            named = shown / rel
            if rel not in allowed or path.is_symlink():
                raise InputError(named, f"not written by segline (not in {out / MARKER}); {advice}")
            if sha256_file(path) not in allowed[rel]:
                raise InputError(
                    named,
                    f"changed since segline wrote it (sha256 differs from {MARKER}); {advice}",
                )


def check_output(
    out: Path, names: Sequence[str], methods: Sequence[Path], watched: Sequence[Watched]
) -> dict[str, Any] | None:
    """Check that predictions may go to ``out``'s sub-folders ``names``; write nothing.

    Args:
        out: the output folder (``-o``).
        names: the sub-folders the methods will write (:func:`subfolders`).
        methods: the method folders (to find their project's ``results/`` and ``data/``).
        watched: every input (image folder, methods, case stores), none of which may
            be, hold or lie inside ``out``.

    Returns:
        The record of a folder segline wrote before, or None for a new or empty one.

    Raises:
        InputError: one line naming the folder or file and what is wrong.
    """
    real = _real(out)
    stores = [path for what, path in watched if what == "case store"]
    for root in project_folders(methods, stores):
        if _within(real, root) or _within(root, real):
            where = "is" if real == root else "lies inside" if _within(real, root) else "holds"
            raise InputError(
                out,
                f"{where} the project's {root.name}/ ({root}); {_ADVICE} outside "
                "the project's results/ and data/",
            )
    check_apart(out, watched)
    if os.path.lexists(out) and not real.is_dir():
        raise InputError(out, f"not a folder; {_ADVICE}")
    if not real.exists():
        return None
    entries = sorted(os.listdir(real))
    if not entries:
        return None
    if MARKER not in entries:
        raise InputError(
            out,
            f"not empty and not a prediction folder segline wrote (no {MARKER} in it); {_ADVICE}",
        )
    record = read_record(real)
    for name in names:
        _check_subfolder(Path(out), real, name, record)
    return record


# ------------------------------------------------------------------ writing
@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself (no lock file is left behind)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"segline: {folder}: another predict is writing it; waiting for it to finish",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _digests(folder: Path) -> dict[str, str]:
    """{file relative to ``folder``: sha256} of every file below it, sorted."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class PredictionFolder:
    """An output folder segline owns, open for writing (:meth:`open`, :meth:`replace`)."""

    def __init__(self, out: Path, real: Path, record: dict[str, Any]) -> None:
        self.out = out
        self.real = real
        self.record = record

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, out: Path, names: Sequence[str], methods: Sequence[Path], watched: Sequence[Watched]
    ) -> Iterator[PredictionFolder]:
        """Create ``out`` when it is new (checked first: nothing is created where
        predictions may not go), lock it, check it (:func:`check_output`) under the
        lock and mark it with the record; yield the open folder."""
        real = _real(out)
        if not os.path.lexists(out):
            check_output(out, names, methods, watched)
            real.mkdir(parents=True, exist_ok=True)
        with _locked(real):
            record = check_output(out, names, methods, watched)
            folder = cls(out, real, record or _empty_record())
            if record is None:
                folder._save()
            yield folder

    def _save(self) -> None:
        atomic.write_json(self.real / MARKER, self.record)

    @contextlib.contextmanager
    def replace(self, name: str, method: Path) -> Iterator[Path]:
        """Yield an empty temporary folder inside ``out``; on success it becomes the
        sub-folder ``name`` (replacing the one segline wrote before) and the record
        lists its files. On an error the temporary folder is removed, nothing else
        changes."""
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-", dir=self.real))
        try:
            yield tmp
            os.utime(tmp)
            final = self.real / name
            folders = self.record["folders"]
            old = folders.get(name, {}).get("files", {}) if final.exists() else {}
            folders[name] = {"files": _digests(tmp), "method": str(method)}
            if old:  # until the swap is done, either side is segline's
                folders[name]["replacing"] = old
            self._save()
            if final.exists():
                trash = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-old-", dir=self.real))
                os.replace(final, trash)  # onto an empty folder: allowed for folders
                os.replace(tmp, final)
                shutil.rmtree(trash)
            else:
                os.replace(tmp, final)
            if old:
                del folders[name]["replacing"]
                self._save()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
