"""Pack a dataset's results into one deterministic, content-named ``tar.gz``.

The archive is ``<outdir>/<label>-<commit>-<hash>.tar.gz``, ``<label>`` being the
dataset, or ``<ds>.<run>`` for a named run (:func:`segline.names.run_label`: no name
holds a ``.``, so two (dataset, run) pairs never share a label), and ``<hash>`` the first
12 hex digits of the sha256 of the packed files' manifest: one line ``<sha256 of the
file> <path relative to the results folder>`` per file, sorted by path (the format of
``sha256sum``; it is stored in the archive as ``<label>/SHA256SUMS``, so ``cd <label> &&
sha256sum -c SHA256SUMS`` verifies an extraction). The hash leaves out the per-epoch
wall times (``timing.csv``, ``train.log``, the plots drawn from them,
``epoch_time.png`` and ``progress_<method>.png``, and the report, which gives training
times: see :func:`volatile`), so a rerun of
the same experiment gets the same name and the archive already there (with the first
run's timings) is kept. Same files → same name; and since the tar is deterministic
(sorted members, mtime 0, uid/gid 0, no user/group names, modes 0644) and gzip stores
no name or time, the same bytes (for the same compressor: ``pigz -n`` when installed,
else Python's gzip; the two differ from each other).

Packed: every regular file below ``results/<ds>/`` (plots, report, each method's CSVs,
``best_epoch.txt``, ``args.json``, ``provenance/``, ``test/metrics.csv``,
``test/preds/*.nii.gz``), except checkpoints (``*.pt``, ``*.pth``, ``*.ckpt``: only
with ``--models``), ``test/preds_zyx/`` (case-store copies of the NIfTI predictions,
used for the overlays), hidden files, ``*.tmp`` files and ``*_tmp`` folders (writes in
progress). A file that looks like an environment dump (``printenv``, ``.env``...)
stops the packing: environments hold secrets (tokens, passwords) and an archive is
made to be shared (README, "What provenance holds"). Symbolic links are
refused (an archive stores content, not pointers outside it).

The archive is made read-only; an existing archive of the same name (same content) is
left alone. ``<outdir>/<label>-latest.txt`` always gets the archive's name, so Make has
a fixed target. The archive path is the last line printed. Neither the commit nor the
hash holds a ``-``, so a name read from the right gives back its label.

Usage (one Make recipe)::

    python -m segline.pack --ds <ds> [--run <run>] --results results/<ds>[/<run>] \\
        --outdir archives [--models] [--commit SHORT]

Example:
    >>> manifest_hash([("a.csv", "0" * 64)]) == manifest_hash([("a.csv", "0" * 64)])
    True
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from segline import atomic, names
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.digest import VOLATILE, sha256_file
from segline.errors import InputError

MODEL_SUFFIXES = (".pt", ".pth", ".ckpt")
SKIP_DIRS = frozenset({"preds_zyx", "__pycache__"})
ENV_DUMP = re.compile(r"^(printenv.*|env(iron)?(\.txt|\.json)?|.*\.env)$", re.IGNORECASE)
SAFE_NAME = re.compile(r"^[A-Za-z0-9]+$")
"""A commit in an archive name: letters and digits (a short hash, ``nogit``), no ``-``."""
POINTER_SUFFIX = "-latest.txt"
"""``<label>-latest.txt`` names the newest archive of a label (make's ``PACK_POINTER``)."""
MANIFEST = "SHA256SUMS"
LINEAGE = "lineage.json"
HASH_LEN = 12
CHUNK = 1 << 20
FILE_MODE = 0o644
GZIP_LEVEL = 6
VOLATILE_PLOTS = frozenset({"epoch_time.png"})
"""Plots drawn from ``timing.csv`` (wall-clock times): volatile like it."""
VOLATILE_PLOT_PREFIX = "progress_"
"""``progress_<method>.png`` has a wall-time panel: volatile too."""
VOLATILE_REPORTS = frozenset({"report.md", "report.csv"})
"""The report gives each method's training wall time (sum of ``timing.csv``). Every
other number in it is computed from files the hash covers (``metrics.csv``,
``args.json``, ``report_cases.csv``, ...), so leaving it out loses no result."""


def volatile(name: str) -> bool:
    """Whether a packed file of this name holds wall-clock times, so the content hash
    leaves it out: :data:`segline.digest.VOLATILE` (``timing.csv``, ``train.log``), the
    plots drawn from them and the report (:data:`VOLATILE_REPORTS`). (Kept here, not in
    :mod:`segline.digest`: every stage imports that module, so a change there would
    rebuild every training.)

    Example:
        >>> volatile("timing.csv"), volatile("progress_gdl.png"), volatile("val_dice.png")
        (True, True, False)
        >>> volatile("report.md"), volatile("report_cases.csv")
        (True, False)
    """
    return (
        name in VOLATILE
        or name in VOLATILE_PLOTS
        or name in VOLATILE_REPORTS
        or (name.startswith(VOLATILE_PLOT_PREFIX) and name.endswith(".png"))
    )


class Packed(NamedTuple):
    """What :func:`pack` did."""

    path: Path
    created: bool
    n_files: int


def _walk(results: Path, start: Path, models: bool) -> list[str]:
    """Files to pack below ``start`` (a folder or file inside ``results``)."""
    found: list[str] = []
    if start.is_symlink():
        raise InputError(start, "symbolic link in the results; pack stores files only")
    if start.is_file():
        walked: Iterable[tuple[str, list[str], list[str]]] = [(str(start.parent), [], [start.name])]
    else:  # lazily: the pruning of dirnames below steers os.walk
        walked = os.walk(start, followlinks=False)
    for dirpath, dirnames, filenames in walked:
        here = Path(dirpath)
        for d in list(dirnames):
            if (here / d).is_symlink():
                raise InputError(here / d, "symbolic link in the results; pack stores files only")
        dirnames[:] = sorted(
            d for d in dirnames if not (d.startswith(".") or d.endswith("_tmp") or d in SKIP_DIRS)
        )
        for name in sorted(filenames):
            path = here / name
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            if path.is_symlink() or not path.is_file():
                raise InputError(
                    path, "not a regular file (symbolic link?); pack stores files only"
                )
            if ENV_DUMP.match(name):
                raise InputError(
                    path,
                    "looks like an environment dump (secrets); remove it, it must not be archived",
                )
            if name.endswith(MODEL_SUFFIXES) and not models:
                continue
            found.append(path.relative_to(results).as_posix())
    return found


def collect(
    results: Path, *, models: bool = False, items: Sequence[str] | None = None
) -> list[str]:
    """Relative POSIX paths of the files to pack, sorted.

    Args:
        results: the ``results/<ds>`` folder (or a run's ``results/<ds>/<run>``).
        models: include checkpoints (``*.pt``...).
        items: pack only these files and folders (paths inside ``results``, relative to
            it or starting with it): what the report covers, nothing left over from
            other runs. None packs the whole folder.

    Raises:
        InputError: a symbolic link, an environment dump, a missing item, an item
            outside ``results``, or nothing to pack.
    """
    if items is None:
        found = _walk(results, results, models)
    else:
        found = []
        for item in items:
            path = Path(item)
            if not path.is_absolute() and not path.is_relative_to(results):
                path = results / path
            if not path.resolve().is_relative_to(results.resolve()):
                raise InputError(item, f"not inside the results folder {results}")
            if not path.exists():
                raise InputError(path, "missing: build it before packing")
            found.extend(_walk(results, path, models))
    if not found:
        raise InputError(results, "nothing to pack (no result files)")
    return sorted(set(found))


def check_same_inputs(results: Path, rels: Sequence[str]) -> None:
    """Refuse to pack results trained on different data.

    Each training writes ``lineage.json`` with the content digests of the stores it
    read (``inputs``); every packed method must agree on each input they share. The
    two distance-map conventions are two inputs, ``dist`` and ``dist-diagonal``
    (:meth:`segline.train.loop.Trainer._input_stores`), so methods of one run may
    train on either.
    """
    seen: dict[str, tuple[str, str]] = {}
    for rel in rels:
        # a training's lineage: <method>/lineage.json, or <method>/seed<k>/lineage.json
        if Path(rel).name != LINEAGE or len(Path(rel).parts) not in (2, 3):
            continue
        method = str(Path(rel).parent)
        inputs = json.loads((results / rel).read_text()).get("inputs", {})
        for key, digest in sorted(inputs.items()):
            if key in seen and seen[key][1] != digest:
                raise InputError(
                    results / method,
                    f"trained on another {key} store than {seen[key][0]} "
                    f"({digest[:12]} vs {seen[key][1][:12]}); rebuild both with one make",
                )
            seen.setdefault(key, (method, digest))


def manifest_text(entries: Sequence[tuple[str, str]]) -> str:
    """``sha256sum`` lines (``<sha256>  <path>``) sorted by path."""
    return "".join(f"{digest}  {rel}\n" for rel, digest in sorted(entries))


def manifest_hash(entries: Sequence[tuple[str, str]]) -> str:
    """First 12 hex digits of the sha256 of :func:`manifest_text` (the content hash),
    over every entry but the volatile files (wall-clock timings, :func:`volatile`)."""
    kept = [(rel, digest) for rel, digest in entries if not volatile(Path(rel).name)]
    return hashlib.sha256(manifest_text(kept).encode("utf-8")).hexdigest()[:HASH_LEN]


def git_short_commit(cwd: Path | None = None) -> str:
    """``git rev-parse --short=8 HEAD``, or ``nogit`` outside a repository (or before
    its first commit)."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short=8", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "nogit"
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and SAFE_NAME.match(commit) else "nogit"


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    """A member header with nothing that depends on the machine, user or time."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class _HashingReader:
    """File wrapper that hashes what ``tarfile`` reads, to detect files changing mid-pack."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.sha.update(data)
        return data


def write_tar(
    tar_path: Path, results: Path, prefix: str, entries: Sequence[tuple[str, str]]
) -> None:
    """Write the uncompressed, deterministic tar: the manifest, then the files by path."""
    manifest = manifest_text(entries).encode("utf-8")
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo(f"{prefix}/{MANIFEST}", len(manifest)), io.BytesIO(manifest))
        for rel, digest in entries:
            path = results / rel
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                reader = _HashingReader(fh)
                try:
                    tar.addfile(_tarinfo(f"{prefix}/{rel}", size), reader)  # type: ignore[arg-type]
                except OSError as err:  # tarfile: "unexpected end of data"
                    raise InputError(path, f"changed while packing ({err})") from err
            if reader.sha.hexdigest() != digest:
                raise InputError(path, "changed while packing; re-run when nothing writes results")


def gzip_file(src: Path, dst: Path, *, use_pigz: bool | None = None) -> None:
    """Compress ``src`` to ``dst`` without a stored name or time (deterministic bytes).

    Args:
        use_pigz: force (True) or avoid (False) ``pigz -n``; default: pigz if installed.
    """
    pigz = shutil.which("pigz") if use_pigz is not False else None
    if use_pigz and pigz is None:
        raise FileNotFoundError("pigz")
    if pigz:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            subprocess.run([pigz, "-n", f"-{GZIP_LEVEL}", "-c"], stdin=fin, stdout=fout, check=True)
        return
    with (
        open(src, "rb") as fin,
        open(dst, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL) as gz,
    ):
        shutil.copyfileobj(fin, gz, CHUNK)


def pack(
    results: Path,
    outdir: Path,
    ds: str,
    commit: str,
    *,
    models: bool = False,
    use_pigz: bool | None = None,
    items: Sequence[str] | None = None,
) -> Packed:
    """Pack ``results`` into ``outdir`` and update the ``<ds>-latest.txt`` pointer;
    ``ds`` is the archive's label, ``<ds>`` or ``<ds>.<run>`` (:func:`segline.names.run_label`).

    Returns:
        The archive path, whether it was written now (False: it existed already, same
        content), and the number of files packed.
    """
    names.check_label(ds)
    if not results.is_dir():
        raise InputError(results, "results folder not found; run the pipeline first")
    if outdir.resolve().is_relative_to(results.resolve()):
        raise InputError(outdir, "archive folder inside the results folder (it would pack itself)")
    rels = collect(results, models=models, items=items)
    check_same_inputs(results, rels)
    entries = [(rel, sha256_file(results / rel)) for rel in rels]
    if any(rel == MANIFEST for rel, _ in entries):
        raise InputError(results / MANIFEST, "name reserved for the archive's manifest")
    final = outdir / f"{ds}-{commit}-{manifest_hash(entries)}.tar.gz"
    outdir.mkdir(parents=True, exist_ok=True)
    created = not final.exists()
    if created:
        tar_tmp = final.with_name(final.name + ".tar.tmp")
        gz_tmp = atomic.tmp_path_for(final)
        try:
            for stale in (tar_tmp, gz_tmp):
                stale.unlink(missing_ok=True)
            write_tar(tar_tmp, results, ds, entries)
            gzip_file(tar_tmp, gz_tmp, use_pigz=use_pigz)
            with open(gz_tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(gz_tmp, 0o444)
            os.replace(gz_tmp, final)
        finally:
            for tmp in (tar_tmp, gz_tmp):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
    atomic.write_text(outdir / f"{ds}{POINTER_SUFFIX}", final.name + "\n")
    return Packed(final, created, len(entries))


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog=prog("python -m segline.pack"),
        description=__doc__.split("\n")[0],
        formatter_class=HelpFormatter,
    )
    p.add_argument("--ds", required=True, help="dataset name (archive name prefix; DS)")
    p.add_argument(
        "--run",
        default="",
        help="the run's name (RUN): the archive and its pointer are named <ds>.<run>-...",
    )
    p.add_argument("--results", required=True, type=Path, help="results/<ds>[/<run>]")
    p.add_argument("--outdir", required=True, type=Path, help="archive folder, e.g. archives")
    p.add_argument("--models", action="store_true", help="also pack checkpoints (*.pt)")
    p.add_argument(
        "--commit",
        help="short commit for the name (default: git rev-parse --short=8 HEAD, or 'nogit')",
    )
    p.add_argument(
        "items",
        nargs="*",
        help="files/folders inside --results to pack (default: all of it); make passes "
        "exactly what the report covers",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: pack, print a summary and, last, the archive path; 0 on success."""
    args = build_parser().parse_args(argv)
    names.check_name("--ds (DS)", args.ds)
    if args.run:
        names.check_name("--run (RUN)", args.run)
    label = names.run_label(args.ds, args.run)
    commit = args.commit if args.commit is not None else git_short_commit()
    if not SAFE_NAME.match(commit):
        raise InputError("--commit", f"{commit!r} is not a safe file-name part (letters, digits)")
    done = pack(
        args.results, args.outdir, label, commit, models=args.models, items=args.items or None
    )
    if done.created:
        size_mb = done.path.stat().st_size / 1e6
        print(
            f"packed {done.n_files} files of {args.results} "
            f"({'with' if args.models else 'without'} checkpoints, {size_mb:.1f} MB)"
        )
    else:
        print("an archive with this content exists already; left as it is")
    print(done.path)
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
