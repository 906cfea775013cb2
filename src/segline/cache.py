"""The result cache: a stage whose lineage was built once is restored, not built again.

A stage result is defined by its record (the command make ran, ``SEGLINE_RECORD``),
the content of the code files it imported (its ``.d`` file) and the content digests
of its data inputs. :func:`segline.stage.build` looks the stage up here before running
its command and stores its target(s) here after a successful build, in the folder
``SEGLINE_CACHE`` names (make's ``CACHE`` knob, ``cache`` in the checkout by default;
empty: off). Two checkouts, two users or two machines sharing one cache folder never
build the same lineage twice.

Keys, in two levels (as ccache's direct mode), because which code files a command
imports is only known once it ran:

* the *primary key* (:func:`primary_key`), computed before the command runs: sha256
  of the cache format, the target names, the record and the content digest of every
  data prerequisite (``SEGLINE_PREREQS`` without the code files of the target's
  ``.d`` file; a content stamp ``dir/.name.content`` stands for ``dir/name``);
* below it, one *entry* per variant (:func:`variant_id`): the code files the build
  imported with their sha256, the versions of the third-party distributions it
  imported (numpy, scipy, matplotlib... change bytes too) and, for a stage that
  imported torch, the platform (:func:`platform_fingerprint`: torch version, GPU
  models, CPU model and the flags that change numerics). An entry
  matches when every listed code file has that content now, the same versions are
  installed and, for torch stages, the platform is the same: trainings and
  predictions are byte-reproducible only on one platform and thread count (the device
  and THREADS are in the record; the number of CPUs a job has is not a key: a result
  is byte-identical for any ``-j`` and allocation with the same THREADS).

Layout of the cache folder::

    .lock                       flock: stores, discards and prunes take it
    .gitignore                  ``*``: a cache inside a checkout is never untracked
    v1/<k[:2]>/<key>/<variant>/ entry.json (metadata), used (mtime: last use), t0, t1...
    tmp/                        entries being written (renamed into v1/ when complete)
    trash/                      entries being removed

An entry holds exactly the target(s) (``t<i>``: the file, or the folder with all its
files) and ``entry.json``: the record (credentials masked as in provenance), the
target names and digests, the input digests, the code files with their sha256, the
versions and the platform. No environment, no file of the checkout besides the
targets; a target holding what looks like an environment dump or a symbolic link is
not stored (the rules of the archive, :mod:`segline.pack`).

Entries are written into ``tmp/`` and renamed into place under the lock, never
replacing an entry: an existing entry with other content for the same key and
variant is a lineage bug (one line; the old entry is kept). A restore links (same
filesystem) or copies the entry's files to the target's temporary path, checks their
digest and renames the target into place; an entry that fails the check is discarded
with one line and the stage builds as usual. Any failure to use the cache (not
writable, disk full, no locks) is one warning line; the build goes on without it.

Usage (``make cache-prune``)::

    python -m segline.cache prune     # SEGLINE_CACHE, SEGLINE_CACHE_MAX_GB
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segline import atomic, stage
from segline.digest import tree_digest

CACHE_ENV = "SEGLINE_CACHE"
"""The cache folder (make's ``CACHE``); empty or unset: no cache."""
MAX_GB_ENV = "SEGLINE_CACHE_MAX_GB"
"""The size cap in GB (10^9 bytes; make's ``CACHE_MAX_GB``); 0: no cap."""
VERIFY_ENV = "SEGLINE_CACHE_VERIFY"
"""``1``: build even on a hit and compare with the entry (``make cache-verify``)."""
OFF_ENV = "SEGLINE_NO_CACHE"
"""Set (non-empty) by a rule whose stage must never be cached (its command writes
something besides its targets: the archive ``pack`` names in its pointer)."""
DEFAULT_MAX_GB = 20.0
FORMAT = "v1"
META = "entry.json"
USED = "used"
LOCK = ".lock"
PLATFORM_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
"""CPU flags (``/proc/cpuinfo``) that decide which kernels torch runs on the CPU, so
the last bits of a training's weights."""
STALE_TMP_S = 24 * 3600
"""Leftovers in ``tmp/`` older than this (a killed store) are removed by a prune."""


class CacheError(Exception):
    """The cache cannot be used now (reported as one warning line; never fatal)."""


def warn(folder: Path | str, what: str) -> None:
    """The one warning line for a cache that cannot be used; the build goes on."""
    print(f"segline: cache {folder}: {what}; building as usual", file=sys.stderr, flush=True)


def cache_folder() -> Path | None:
    """The cache folder of ``SEGLINE_CACHE`` (``~`` expanded), None when off."""
    text = os.environ.get(CACHE_ENV, "").strip()
    return Path(os.path.expanduser(text)) if text else None


def max_bytes() -> int:
    """The size cap in bytes from ``SEGLINE_CACHE_MAX_GB`` (0: none; bad text: default)."""
    try:
        gb = float(os.environ.get(MAX_GB_ENV, "") or DEFAULT_MAX_GB)
    except ValueError:
        gb = DEFAULT_MAX_GB
    return max(0, int(gb * 1e9))


def verifying() -> bool:
    """Whether ``SEGLINE_CACHE_VERIFY`` asks to rebuild and compare."""
    return os.environ.get(VERIFY_ENV, "").strip() in ("1", "yes", "true")


# ------------------------------------------------------------------ keys
def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def data_inputs(targets: Sequence[Path], prereqs: Sequence[str]) -> list[str]:
    """The data prerequisites of a stage: ``prereqs`` without the code files the
    target's existing ``.d`` file lists (make passes those too), each content stamp
    ``dir/.name.content`` replaced by ``dir/name``; sorted, without duplicates."""
    code: set[str] = set()
    for t in targets:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            code.update(stage.dep_sources(stage.side_file(t, "d").read_text()))
    found: set[str] = set()
    suffix = "." + stage.STAMP_KIND
    for name in prereqs:
        if name in code:
            continue
        p = Path(name)
        if p.name.startswith(".") and p.name.endswith(suffix):
            name = (p.parent / p.name[1 : -len(suffix)]).as_posix()
        found.add(name)
    return sorted(found)


def input_digests(inputs: Sequence[str]) -> dict[str, str]:
    """``{input: content digest}`` (:func:`segline.stage.content_digest`: the
    ``.sha256`` side file when it is fresh). Raises ``OSError`` when one is missing."""
    digests = {}
    for name in inputs:
        if not os.path.lexists(name):
            raise FileNotFoundError(errno.ENOENT, "input missing", name)
        digests[name] = stage.content_digest(name)
    return digests


def primary_key(targets: Sequence[Path], record: str, digests: dict[str, str]) -> str:
    """sha256 of the format, the target names, the record and the content digest of
    every data input (:func:`input_digests`)."""
    return _sha(
        {
            "format": FORMAT,
            "targets": [t.as_posix() for t in targets],
            "record": record,
            "inputs": digests,
        }
    )


def _cpuinfo() -> tuple[str, list[str]]:
    """The CPU model and the :data:`PLATFORM_FLAGS` it has (Linux; else platform's)."""
    model, flags = "", set()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    if not model:
        import platform

        model = platform.processor() or platform.machine()
    return model, sorted(f for f in PLATFORM_FLAGS if f in flags)


def _gpu_models() -> list[str]:
    """The NVIDIA GPU models of this machine, sorted, without duplicates, read from the
    driver's ``/proc`` files: CUDA is not initialised here (the stage's command picks
    its GPU itself, ``GPUS``)."""
    models: set[str] = set()
    root = Path("/proc/driver/nvidia/gpus")
    with contextlib.suppress(OSError):
        for info in root.glob("*/information"):
            for line in info.read_text().splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Model":
                    models.add(value.strip())
    return sorted(models)


def platform_fingerprint() -> dict[str, str]:
    """What a torch stage's bytes depend on besides its record, code and inputs: the
    torch version (and build), the GPU models, the CPU model and its numerics flags.
    Not the CPUs a job has: the thread count (``--threads``) is in the record, and
    results are byte-identical for any allocation with it. torch is not imported."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "none"
    model, flags = _cpuinfo()
    return {
        "torch": torch_version,
        "gpus": ", ".join(_gpu_models()) or "none",
        "cpu": model,
        "cpu_flags": " ".join(flags),
    }


def package_versions(modules: Sequence[str] | None = None) -> dict[str, str]:
    """``{distribution: version}`` of the third-party distributions whose top-level
    modules are imported (``modules``: default, this process's), the project's own and
    the standard library left out."""
    names = {m.partition(".")[0] for m in (sys.modules if modules is None else modules)}
    names -= set(sys.stdlib_module_names) | {stage.PACKAGE, "__main__"}
    mapping = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for name in sorted(names):
        for dist in mapping.get(name, ()):
            if dist.lower() == stage.PACKAGE:
                continue
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[dist] = importlib.metadata.version(dist)
    return found


def variant_id(code: dict[str, str], packages: dict[str, str], plat: dict[str, str] | None) -> str:
    """The entry's name below its primary key: what it matches on besides the key."""
    return _sha({"code": code, "packages": packages, "platform": plat})[:32]


# ------------------------------------------------------------------ entries
@dataclass
class Entry:
    """One cache entry: its folder, primary key and metadata (``entry.json``)."""

    path: Path
    key: str
    meta: dict[str, Any]

    @property
    def label(self) -> str:
        """``<key prefix>`` as the one-line messages show it."""
        return self.key[:12]


def _key_dir(cache: Path, key: str) -> Path:
    return cache / FORMAT / key[:2] / key


def _read_meta(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads((path / META).read_text())
        if isinstance(meta, dict):
            return meta
    return None


def _matches(meta: dict[str, Any], current_platform: dict[str, str] | None) -> bool:
    """Whether an entry's code files have its content now, its distributions are
    installed in its versions and (torch stage) the platform is this one."""
    for name, version in (meta.get("packages") or {}).items():
        try:
            if importlib.metadata.version(name) != version:
                return False
        except importlib.metadata.PackageNotFoundError:
            return False
    plat = meta.get("platform")
    if plat is not None and plat != (current_platform or platform_fingerprint()):
        return False
    for name, digest in (meta.get("code") or {}).items():
        try:
            if stage.sha256_file(name) != digest:
                return False
        except OSError:
            return False
    return True


def find(cache: Path, key: str) -> Entry | None:
    """The entry under ``key`` that matches this checkout and machine, or None."""
    folder = _key_dir(cache, key)
    try:
        variants = sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return None
    current: dict[str, str] | None = None
    for path in variants:
        meta = _read_meta(path)
        if meta is None:
            continue
        if meta.get("platform") is not None and current is None:
            current = platform_fingerprint()
        if _matches(meta, current):
            return Entry(path, key, meta)
    return None


def init_folder(cache: Path) -> None:
    """Create the cache folder with a ``.gitignore`` of ``*`` in it (as pytest does for
    its own cache), so a cache inside a git checkout is never an untracked file that
    provenance lists and hashes, nor anything ``git add -A`` takes."""
    cache.mkdir(parents=True, exist_ok=True)
    ignore = cache / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):  # FileExistsError: another make wrote it
            fd = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "w") as fh:
                fh.write("# the result cache of segline: never tracked\n*\n")


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """Hold the cache's exclusive ``flock`` (its ``.lock`` file; never removed). The
    file is created writable for whoever the umask lets write (a lab's shared cache:
    ``umask 002``); another user's read-only lock file is locked read-only."""
    init_folder(cache)
    try:
        fd = os.open(cache / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        fd = os.open(cache / LOCK, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _touch(path: Path) -> None:
    """Mark an entry used now (its ``used`` file's mtime orders the pruning)."""
    with contextlib.suppress(OSError):
        (path / USED).touch()


def _remove(cache: Path, path: Path) -> None:
    """Move an entry out of ``v1/`` (one rename, under the caller's lock) and delete it."""
    trash = cache / "trash" / f"{path.name}-{uuid.uuid4().hex[:8]}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def discard(cache: Path, entry: Entry, why: str) -> None:
    """Remove a corrupted entry, saying so in one line."""
    print(
        f"segline: cache entry {entry.path} ({entry.label}) is corrupted ({why}); "
        "discarded, building as usual",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(OSError), cache_lock(cache):
        _remove(cache, entry.path)


# ------------------------------------------------------------------ copying trees
def _link_or_copy(src: Path, dst: Path, link: bool) -> bool:
    """Hard-link ``src`` to ``dst`` when ``link`` and possible, else copy it; returns
    whether linking still works (False after a cross-filesystem or refused link)."""
    if link:
        try:
            os.link(src, dst)
            return True
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    shutil.copy2(src, dst)
    return False


def _skip(name: str) -> bool:
    """Names never stored: writes in progress and byte-code caches."""
    return name.endswith((".tmp", "_tmp")) or name == "__pycache__"


def _files(root: Path) -> list[Path]:
    """The files below a folder that an entry stores (relative paths).

    Raises:
        CacheError: a symbolic link, a special file or what looks like an environment
            dump (the archive's rules, :mod:`segline.pack`: never stored).
    """
    from segline.pack import ENV_DUMP

    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for d in dirnames:
            if (here / d).is_symlink():
                raise CacheError(f"{here / d} is a symbolic link; not stored")
        dirnames[:] = sorted(d for d in dirnames if not _skip(d))
        for name in sorted(filenames):
            path = here / name
            if _skip(name):
                continue
            if path.is_symlink() or not path.is_file():
                raise CacheError(f"{path} is not a regular file; not stored")
            if ENV_DUMP.match(name):
                raise CacheError(f"{path} looks like an environment dump; not stored")
            found.append(path.relative_to(root))
    return found


def _entry_files(root: Path) -> list[Path]:
    """The files of an entry's stored folder (relative paths), checked when stored: a
    plain walk, so a restore imports no module that a build's ``.d`` would then list."""
    if not root.is_dir():
        return []
    return sorted(
        (Path(dirpath) / name).relative_to(root)
        for dirpath, _, filenames in os.walk(root)
        for name in filenames
    )


def _copy_tree(src: Path, dst: Path, link: bool, files: Sequence[Path] | None = None) -> int:
    """Copy the file or folder ``src`` to the new path ``dst`` (hard links for a
    folder's files when ``link``); returns the bytes copied or linked."""
    if src.is_file():
        shutil.copy2(src, dst)  # a file target: copied, so its mtime is its own
        return dst.stat().st_size
    total = 0
    dst.mkdir()
    for rel in files if files is not None else _files(src):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        link = _link_or_copy(src / rel, dst / rel, link)
        total += (dst / rel).stat().st_size
    return total


# ------------------------------------------------------------------ restore
def restore_tmp(target: Path, *, folder: bool) -> Path:
    """Where a restore assembles ``target``: ``dir/.name.restore_tmp`` (``.tmp`` for a
    file), hidden and in-progress for digests and the archive, and never the
    ``<name>_tmp`` folder an interrupted training resumes from."""
    return atomic.tmp_path_for(target.with_name(f".{target.name}.restore"), folder=folder)


def restore(cache: Path, entry: Entry, targets: Sequence[Path]) -> bool:
    """Put the entry's target(s) in place: each linked or copied to its temporary path,
    checked against the stored digest, renamed into place (old records dropped first,
    as :func:`segline.atomic.before_replace` does for a build). Returns False (nothing
    replaced) when the entry is gone or corrupted (then discarded, one line)."""
    names = entry.meta.get("targets")
    digests = entry.meta.get("digests")
    if names != [t.as_posix() for t in targets] or not isinstance(digests, list):
        discard(cache, entry, "its metadata names other targets")
        return False
    temps: list[Path] = []
    try:
        for i, (t, digest) in enumerate(zip(targets, digests, strict=True)):
            src = entry.path / f"t{i}"
            tmp = restore_tmp(t, folder=src.is_dir())
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            elif os.path.lexists(tmp):
                tmp.unlink()
            if not src.exists():
                raise CacheError(f"t{i} is missing")
            t.parent.mkdir(parents=True, exist_ok=True)
            temps.append(tmp)
            _copy_tree(src, tmp, link=True, files=_entry_files(src))
            found = tree_digest(tmp)
            if found != digest:
                raise CacheError(f"t{i} has digest {found[:12]}, stored {digest[:12]}")
    except (CacheError, OSError) as err:
        for tmp in temps:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        if entry.path.is_dir():
            discard(cache, entry, str(err))
        return False
    stage.drop_records(list(targets))  # as a build: no old record survives the replace
    for t, tmp in zip(targets, temps, strict=True):
        if tmp.is_dir():
            atomic.replace_dir(tmp, t)
        else:
            os.utime(tmp)
            atomic.replace_file(tmp, t)
    _touch(entry.path)
    return True


# ------------------------------------------------------------------ store
@dataclass
class Stored:
    """What :func:`store` found: ``"stored"``, ``"same"`` (an entry with these bytes
    was there) or ``"differs"`` (one with other bytes: a lineage bug), with the entry."""

    outcome: str
    entry: Entry


def _masked_record(record: str) -> str:
    """The record with credentials masked as provenance masks a command."""
    import shlex

    from segline.provenance import mask_command

    try:
        return shlex.join(mask_command(shlex.split(record)))
    except ValueError:
        return "(not recorded: unbalanced quotes)"


def entry_meta(
    key: str,
    targets: Sequence[Path],
    record: str,
    inputs: dict[str, str],
    code: dict[str, str],
    packages: dict[str, str],
    plat: dict[str, str] | None,
) -> dict[str, Any]:
    """The metadata of a new entry (``entry.json``); ``digests``/``bytes`` filled in
    by :func:`store`."""
    return {
        "format": FORMAT,
        "key": key,
        "targets": [t.as_posix() for t in targets],
        "record": _masked_record(record),
        "inputs": inputs,
        "code": code,
        "packages": packages,
        "platform": plat,
    }


def store(cache: Path, key: str, targets: Sequence[Path], meta: dict[str, Any]) -> Stored:
    """Store the built ``targets`` under ``key`` (atomically, under the lock; never
    replacing an entry). Raises CacheError/OSError when it cannot (the caller warns)."""
    variant = variant_id(meta["code"], meta["packages"], meta["platform"])
    final = _key_dir(cache, key) / variant
    digests = [stage.content_digest(t) for t in targets]
    meta = {**meta, "digests": digests}
    existing = _read_meta(final)
    if existing is not None:
        entry = Entry(final, key, existing)
        _touch(final)
        return Stored("same" if existing.get("digests") == digests else "differs", entry)
    limit = max_bytes()
    init_folder(cache)
    (cache / "tmp").mkdir(exist_ok=True)
    tmp = cache / "tmp" / f"{key[:16]}-{variant[:8]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        total = 0
        for i, t in enumerate(targets):
            files = None if t.is_file() else _files(t)
            total += _copy_tree(t, tmp / f"t{i}", link=True, files=files)
            if limit and total > limit:
                raise CacheError(f"{t} is larger than the cap ({limit / 1e9:g} GB); not stored")
        # the targets may have changed while they were copied: check what was stored
        for i, digest in enumerate(digests):
            if tree_digest(tmp / f"t{i}") != digest:
                raise CacheError(f"{targets[i]} changed while it was stored; not stored")
        atomic.write_json(tmp / META, {**meta, "bytes": total})
        (tmp / USED).touch()
        with cache_lock(cache):
            existing = _read_meta(final)
            if existing is None:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.rename(tmp, final)
                outcome, stored_meta = "stored", {**meta, "bytes": total}
            else:  # another make stored it meanwhile
                outcome = "same" if existing.get("digests") == digests else "differs"
                stored_meta = existing
            if outcome == "stored":
                _prune_locked(cache, limit, keep=final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Stored(outcome, Entry(final, key, stored_meta))


# ------------------------------------------------------------------ pruning
def entries(cache: Path) -> list[tuple[float, int, Path]]:
    """Every entry as ``(last use, bytes, folder)``, least recently used first."""
    found: list[tuple[float, int, Path]] = []
    for meta_file in (cache / FORMAT).glob(f"*/*/*/{META}"):
        path = meta_file.parent
        meta = _read_meta(path)
        try:
            used = (path / USED).stat().st_mtime
        except OSError:
            used = 0.0
        size = int(meta.get("bytes", 0)) if meta else 0
        found.append((used, size, path))
    return sorted(found)


def _prune_locked(cache: Path, limit: int, keep: Path | None = None) -> tuple[int, int, int]:
    """Drop least recently used entries until the cache holds at most ``limit`` bytes
    (0: no cap), ``keep`` last; the caller holds the lock. Returns (entries, bytes,
    dropped)."""
    now = time.time()
    for leftover in (cache / "tmp").glob("*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(leftover, ignore_errors=True)
    listed = entries(cache)
    total = sum(size for _, size, _ in listed)
    dropped = 0
    if limit:
        order = [e for e in listed if e[2] != keep] + [e for e in listed if e[2] == keep]
        for _, size, path in order:
            if total <= limit:
                break
            _remove(cache, path)
            total -= size
            dropped += 1
    return len(listed) - dropped, total, dropped


def prune(cache: Path, limit: int) -> tuple[int, int, int]:
    """Apply the size cap now (``make cache-prune``); returns (entries, bytes, dropped)."""
    with cache_lock(cache):
        return _prune_locked(cache, limit)


# ------------------------------------------------------------------ the stage hooks
def _stat(name: str) -> tuple[int, ...] | None:
    """What changes when an input is replaced or written (None: missing)."""
    try:
        st = os.stat(name)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class Lookup:
    """A stage's cache state, from before its command runs until it is stored:
    the cache, the primary key, the data inputs' digests and stats, and when the
    look-up started (ns)."""

    cache: Path
    key: str
    inputs: dict[str, str]
    stats: dict[str, tuple[int, ...] | None]
    start_ns: int


def enabled() -> bool:
    """Whether a stage may use the cache: one is set, the stage did not opt out and its
    rule is not always rebuilt (``SEGLINE_ALWAYS``: ``FORCE``). ``make -B`` skips the
    look-up only (:func:`before_build`): what it builds is still stored."""
    if cache_folder() is None or os.environ.get(OFF_ENV, "").strip():
        return False
    return not os.environ.get(stage.ALWAYS_ENV, "").strip()


def before_build(
    targets: list[Path], record: str, prereqs: list[str], forced: bool
) -> Lookup | bool | None:
    """Look the stage up before its command runs (under the target's lock).

    Returns True when the targets were restored from the cache (records written), a
    :class:`Lookup` to store the build under afterwards, or None: no cache for this
    stage (off, or the key could not be computed: one warning line).
    """
    cache = cache_folder()
    if cache is None or not enabled():
        return None
    start = time.time_ns()
    try:
        names = data_inputs(targets, prereqs)
        stats = {n: _stat(n) for n in names}
        inputs = input_digests(names)
    except OSError as err:
        warn(cache, f"no key for {targets[0]} ({err.strerror or err}: {err.filename})")
        return None
    look = Lookup(cache, primary_key(targets, record, inputs), inputs, stats, start)
    key = look.key
    if forced or verifying():
        return look
    try:
        entry = find(cache, key)
        if entry is None or not restore(cache, entry, targets):
            return look
        code = list((entry.meta.get("code") or {}).keys())
    except OSError as err:
        warn(cache, f"look-up failed ({err})")
        return look
    stage._write_side_files(targets, record, sources=code)
    print(f"[{targets[0].name}] restored from the cache ({entry.label}): not rebuilt", flush=True)
    return True


def _differing(entry: Entry, targets: Sequence[Path]) -> list[str]:
    """The files (``target/relative path``) whose bytes differ between the entry and
    the targets, or that only one has (digest-covered files only)."""
    from segline.digest import sha256_file, tree_files

    out: list[str] = []
    for i, t in enumerate(targets):
        src = entry.path / f"t{i}"
        if t.is_file() or src.is_file():
            if not (t.is_file() and src.is_file() and sha256_file(t) == sha256_file(src)):
                out.append(t.as_posix())
            continue
        a, b = set(tree_files(src)), set(tree_files(t))
        for rel in sorted(a | b):
            if rel not in a or rel not in b or sha256_file(src / rel) != sha256_file(t / rel):
                out.append(f"{t.as_posix()}/{rel}")
    return out


def after_build(look: Lookup, targets: list[Path], record: str) -> int:
    """Store the targets a successful build wrote (side files written). Returns the
    stage's exit code: 0, or 1 when verifying and the entry holds other results."""
    name = targets[0].name
    if not all(stage.side_file(t, "cmd").is_file() for t in targets):
        return 0  # not recorded (a target missing): nothing to store
    try:
        sources = stage.dep_sources(stage.side_file(targets[0], "d").read_text())
        code: dict[str, str] = {}
        for src in sources:
            if os.stat(src).st_mtime_ns > look.start_ns:
                print(f"[{name}] {src} changed during the build: not stored in the cache",
                      flush=True)  # fmt: skip
                return 0
            code[src] = stage.sha256_file(src)
        if any(_stat(n) != st for n, st in look.stats.items()):
            print(f"[{name}] an input changed during the build: not stored in the cache",
                  flush=True)  # fmt: skip
            return 0
        plat = platform_fingerprint() if "torch" in sys.modules else None
        meta = entry_meta(look.key, targets, record, look.inputs, code, package_versions(), plat)
        done = store(look.cache, look.key, targets, meta)
    except CacheError as err:
        print(f"segline: cache {look.cache}: {err}", file=sys.stderr, flush=True)
        return 0
    except OSError as err:
        warn(look.cache, f"not stored ({err})")
        return 0
    label = done.entry.label
    if done.outcome == "differs":
        files = _differing(done.entry, targets)
        if files and all("/provenance/" in f for f in files):
            # who built it, from which commit: not part of the result (the entry is kept)
            what = "verified: built again, same results" if verifying() else "same results"
            print(f"[{name}] cache entry {label} {what}, other provenance "
                  f"({', '.join(files[:3])}); kept", flush=True)  # fmt: skip
            return 0
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        print(
            f"segline: lineage bug: {targets[0]}: built again with the same record, inputs and "
            f"code as cache entry {label} but other content ({shown or 'digests differ'}); "
            "the entry is kept",
            file=sys.stderr,
            flush=True,
        )
        return 1 if verifying() else 0
    if verifying() and done.outcome == "same":
        print(f"[{name}] cache entry {label} verified: built again, same content", flush=True)
    elif verifying():
        print(f"[{name}] no cache entry to verify against: stored ({label})", flush=True)
    return 0


# ------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m segline.cache",
        description="The result cache of segline's make stages (SEGLINE_CACHE).",
    )
    p.add_argument("action", choices=["prune"], help="prune: apply the size cap now")
    p.add_argument("--max-gb", type=float, help="cap in GB (default: SEGLINE_CACHE_MAX_GB)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``prune``: drop least recently used entries down to the cap; prints one line."""
    args = build_parser().parse_args(argv)
    cache = cache_folder()
    if cache is None:
        print("no cache (CACHE is empty)")
        return 0
    if not cache.is_dir():
        print(f"cache {cache}: empty")
        return 0
    limit = max_bytes() if args.max_gb is None else max(0, int(args.max_gb * 1e9))
    kept, total, dropped = prune(cache, limit)
    cap = f"{limit / 1e9:g} GB" if limit else "no cap"
    print(f"cache {cache}: {kept} entries, {total / 1e9:.3f} GB ({cap}); "
          f"{dropped} least recently used dropped")  # fmt: skip
    return 0


if __name__ == "__main__":
    from segline.cli import run

    sys.exit(run(main))
