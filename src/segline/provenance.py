"""Provenance of a result: what produced it, so every number traces back.

Written into ``<result>/provenance/``: the exact command, the git commit, the diff
against it *including untracked files*, the installed packages (``name==version``,
like ``pip freeze``), the lineage md5s the data was verified against, and the
torch/device facts. Deliberately **no environment dump** (the reference
implementation stored ``printenv``, secrets included) and no dates or host names,
so equal inputs give equal provenance files.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from segline import atomic


def _git(args: Sequence[str], cwd: Path) -> tuple[int, str]:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return 127, ""
    return proc.returncode, proc.stdout


def git_state(repo: Path) -> dict[str, str]:
    """Commit, short status and a diff including untracked files (text)."""
    rc, commit = _git(["rev-parse", "HEAD"], repo)
    if rc != 0:
        return {"commit": "nogit", "status": "", "diff": ""}
    _, status = _git(["status", "--porcelain", "--untracked-files=all"], repo)
    _, diff = _git(["diff", "HEAD", "--binary"], repo)
    _, untracked = _git(["ls-files", "--others", "--exclude-standard", "-z"], repo)
    parts = [diff]
    for name in sorted(filter(None, untracked.split("\0"))):
        _, extra = _git(["diff", "--no-index", "--binary", "--", "/dev/null", name], repo)
        parts.append(extra)
    return {"commit": commit.strip(), "status": status, "diff": "".join(parts)}


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


def write_provenance(
    folder: Path,
    argv: Sequence[str],
    lineage: Path | None,
    device: str,
    repo: Path | None = None,
) -> None:
    """Write the provenance files into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    repo = repo or Path.cwd()
    atomic.write_text(folder / "command.txt", command_text(argv))
    git = git_state(repo)
    atomic.write_text(folder / "git-commit.txt", git["commit"] + "\n")
    atomic.write_text(folder / "git-status.txt", git["status"])
    atomic.write_text(folder / "git.diff", git["diff"])
    atomic.write_text(folder / "pip-freeze.txt", package_list())
    if lineage is not None and lineage.is_file():
        lines = [ln for ln in lineage.read_text().splitlines() if ln and not ln.startswith("#")]
        atomic.write_text(folder / "lineage.md5", "".join(ln + "\n" for ln in lines))
    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cuda": torch.version.cuda or "none",
    }
    atomic.write_json(folder / "runtime.json", facts)
