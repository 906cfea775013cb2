"""Provenance of a result: what produced it, so every number traces back.

Written into ``<result>/provenance/`` (see the README section "What provenance holds"):
the exact command, the git commit, ``git status``, the diff of the *tracked* files
against the commit, the untracked files by name and sha256 only (never their
content: an untracked ``.env`` or key file must not reach a shareable archive), the
installed packages (``name==version``, like ``pip freeze``), the lineage md5s the data
was verified against, and the torch/device facts. Deliberately **no environment
dump** (environment variables routinely hold tokens and passwords) and no dates or
host names, so equal inputs give equal provenance files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import shlex
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from segline import atomic
from segline.digest import sha256_file

UNTRACKED = "untracked.sha256"
"""Name of the untracked-file listing in the provenance folder (``sha256sum`` format)."""

SCHEDULER = "scheduler.txt"
"""Name of the batch-scheduler record in the provenance folder."""

SLURM_FACTS = ("SLURM_CLUSTER_NAME", "SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_JOB_NODELIST")
"""The SLURM variables recorded, and only these (an explicit whitelist: the job's
environment also carries the user's variables, tokens included, which never enter)."""


class GitState(NamedTuple):
    """What git says about the working tree a result was produced from."""

    commit: str  #: full commit hash, or ``nogit`` outside a repository / before a commit
    status: str  #: ``git status --porcelain`` (names only, untracked ones included)
    diff: bytes  #: ``git diff HEAD --binary``: tracked files only
    untracked: bytes  #: ``sha256sum`` lines of the untracked, not-ignored files


def _git(args: Sequence[str], cwd: Path) -> tuple[int, bytes]:
    """Run git without taking optional locks (a concurrent ``git commit`` is not
    disturbed, and parallel trainings do not race for the index lock); raw stdout."""
    try:
        proc = subprocess.run(
            ["git", "--no-optional-locks", "-c", "core.quotePath=true", *args],
            cwd=cwd,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return 127, b""
    return proc.returncode, proc.stdout


def _sha256_entry(path: Path) -> str | None:
    """Hex sha256 of a regular file's bytes, or of a symbolic link's target path (what
    git stores for a link; the link is not followed); None for anything else (a nested
    repository's folder, a file gone meanwhile)."""
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            return hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
        if stat.S_ISREG(mode):
            return sha256_file(path)
    except OSError:
        pass
    return None


def _sha256sum_line(digest: str, name: bytes) -> bytes:
    """One ``sha256sum`` line; a name with a backslash or newline is escaped the way
    ``sha256sum`` does it (line starts with ``\\``), so ``sha256sum -c`` reads it back."""
    if b"\\" in name or b"\n" in name:
        escaped = name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
        return b"\\" + digest.encode("ascii") + b"  " + escaped + b"\n"
    return digest.encode("ascii") + b"  " + name + b"\n"


def untracked_listing(repo: Path) -> bytes:
    """``<sha256>  <path>`` lines of the untracked files git does not ignore, sorted by
    path (relative to the repository root, ``sha256sum`` format).

    Only names and hashes: the content never enters the provenance. Ignored files
    (``data/``, ``results/``, ``.venv/`` in this project's ``.gitignore``) are not
    listed: they are outputs or the environment, recorded elsewhere (lineage md5s,
    ``pip-freeze.txt``), and hashing them would cost minutes per run.
    """
    rc, top = _git(["rev-parse", "--show-toplevel"], repo)
    if rc != 0:
        return b""
    root = Path(os.fsdecode(top.rstrip(b"\n")))
    rc, out = _git(["ls-files", "--others", "--exclude-standard", "--full-name", "-z"], root)
    if rc != 0:
        return b""
    lines = []
    for name in sorted(filter(None, out.split(b"\0"))):
        digest = _sha256_entry(root / os.fsdecode(name))
        if digest is not None:
            lines.append(_sha256sum_line(digest, name))
    return b"".join(lines)


def git_state(repo: Path) -> GitState:
    """Commit, short status, the diff of the tracked files and the untracked listing."""
    rc, commit = _git(["rev-parse", "HEAD"], repo)
    if rc != 0:
        return GitState("nogit", "", b"", b"")
    _, status = _git(["status", "--porcelain", "--untracked-files=all"], repo)
    # tracked files only; no external diff tools or textconv filters, no colour codes
    _, diff = _git(
        ["diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv", "--no-color"], repo
    )
    return GitState(
        commit.decode("ascii", "replace").strip(),
        status.decode("utf-8", "replace"),
        diff,
        untracked_listing(repo),
    )


def package_list() -> str:
    """Installed distributions as sorted ``name==version`` lines (pip-freeze-like)."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            seen.setdefault(name.lower(), f"{name}=={dist.version}")
    return "".join(line + "\n" for _, line in sorted(seen.items()))


def command_text(argv: Sequence[str]) -> str:
    """The command as run, for ``command.txt``.

    First line: the interpreter's name (not its path, which differs between clones)
    with its own flags (e.g. ``-O`` from ``CFLAGS``, taken from ``sys.orig_argv``), then
    ``argv``. When make ran the recipe through a prefix (``CC='srun … python'``), the
    makefiles export it as ``SEGLINE_CC`` and a second line records it.
    """
    flags: list[str] = []
    orig = list(getattr(sys, "orig_argv", []))
    # interpreter options sit between the executable and "-m"/the script
    for arg in orig[1:]:
        if arg == "-m" or not arg.startswith("-"):
            break
        flags.append(arg)
    words = [Path(sys.executable).name, *flags, *argv]
    text = " ".join(shlex.quote(a) for a in words) + "\n"
    launcher = os.environ.get("SEGLINE_CC", "").strip()
    if launcher and len(shlex.split(launcher)) > 1:
        text += f"# run by make with CC={launcher}\n"
    return text


def scheduler_text(environ: Mapping[str, str] | None = None) -> str:
    """The ``scheduler.txt`` record: the SLURM job that ran this process, or ``none``.

    Under SLURM (``SLURM_JOB_ID`` set: ``srun``, ``sbatch``) a line ``scheduler=slurm``
    then ``NAME=value`` for each variable of :data:`SLURM_FACTS` that is set, in that
    order: the cluster, job id, step id and node list, so ``scontrol show job`` or
    ``sacct -j`` finds the job's log and resources. Outside a scheduler the single line
    ``none``, so equal inputs still give equal provenance files. A value is cut at its
    first line break and stripped of control characters (one record per line).
    """
    env = os.environ if environ is None else environ
    if not env.get("SLURM_JOB_ID", "").strip():
        return "none\n"
    lines = ["scheduler=slurm"]
    for name in SLURM_FACTS:
        value = env.get(name)
        if value is not None:
            first = (value.splitlines() or [""])[0]
            clean = "".join(c for c in first if c.isprintable()).strip()
            lines.append(f"{name}={clean}")
    return "".join(line + "\n" for line in lines)


def write_provenance(
    folder: Path,
    argv: Sequence[str],
    lineage: Path | None,
    device: str,
    repo: Path | None = None,
    run_facts: dict[str, object] | None = None,
    card: str = "",
) -> None:
    """Write the provenance files into ``folder`` (created).

    ``run_facts`` are facts of how the run was scheduled that do not shape its result
    (loader workers, metric processes), added to ``runtime.json``; ``card``: the GPU
    taken from ``GPUS`` (index, name, token), recorded there as ``gpu``. torch is
    imported here for its version facts only, so that importing this module (e.g. for
    :func:`git_state` or :func:`package_list`) does not load torch.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    repo = repo or Path.cwd()
    atomic.write_text(folder / "command.txt", command_text(argv))
    git = git_state(repo)
    atomic.write_text(folder / "git-commit.txt", git.commit + "\n")
    atomic.write_text(folder / "git-status.txt", git.status)
    atomic.write_bytes(folder / "git.diff", git.diff)
    atomic.write_bytes(folder / UNTRACKED, git.untracked)
    atomic.write_text(folder / "pip-freeze.txt", package_list())
    atomic.write_text(folder / SCHEDULER, scheduler_text())
    if lineage is not None and lineage.is_file():
        lines = [ln for ln in lineage.read_text().splitlines() if ln and not ln.startswith("#")]
        lines += _recorded_lines(lineage)
        atomic.write_text(folder / "lineage.md5", "".join(ln + "\n" for ln in lines))
    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cuda": torch.version.cuda or "none",
        **(run_facts or {}),
    }
    if card:
        facts["gpu"] = card
    atomic.write_json(folder / "runtime.json", facts)


def _recorded_lines(lineage: Path) -> list[str]:
    """Entry lines of the ``# record:`` file a lineage names (md5s recorded on first use,
    :mod:`segline.lineage.record`), read here without importing segline.lineage so a
    training's code fingerprint stays free of the download and unpack code."""
    for line in lineage.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.replace(" ", "") == "#record" and value.strip():
            record = Path(value.strip())
            if record.is_file():
                text = record.read_text()
                return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    return []
