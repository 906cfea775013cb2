"""Byte identity of the toy pipelines' results between two commits.

    python bench/byte_identity.py [--base REV] [--head REV|WORKTREE] [--only spleen,...]

Each revision's tracked files (``git archive``; ``WORKTREE``: this checkout's files as
they are, committed or not) go into a private folder; each toy pipeline runs there to
its report with small settings (:data:`PIPELINES`: Dimwit networks, 1-2 epochs, one
thread), computed by this checkout's virtualenv python with that folder's ``src`` first
on ``PYTHONPATH``. Then every training's ``metrics.csv``, ``epochs.csv``,
``best_epoch.txt``, ``test/metrics.csv``, every evaluation stage's ``metrics.csv``, and
``report_cases.csv`` are compared byte by byte. Prints one line per pipeline (files
compared, files that differ, and their names) and exits 1 when any differs.

A refactoring that claims "no result changes" runs this with ``--base`` at the commit
before it; ``tests/test_byte_identity.py`` runs the spleen toy of it in ``make test``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchlib import REPO, copy_project, cpu_model

PIPELINES: dict[str, tuple[str, ...]] = {
    "spleen": ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=2"),
    "isles": ("-f", "isles.make", "TOY=1", "NET=Dimwit", "EPC=2"),
    "isles-hard": ("-f", "isles.make", "TOY=hard", "NET=Dimwit", "EPC=2"),
    "vessels": ("-f", "vessels.make", "TOY=1", "NET=Dimwit3D", "EPC=2", "SAMPLES=4",
                "PATCH=16,32,32"),
    "vertebrae": ("-f", "vertebrae.make", "TOY=1", "EPC=1", "NET_OPTS=channels=4 depth=2",
                  "TRAIN_ARGS=--samples-per-epoch 8", "METHODS=iterative"),
}
"""Make arguments of each toy pipeline (the report target is added)."""

COMPARED = ("metrics.csv", "epochs.csv", "best_epoch.txt", "report_cases.csv")
"""File names compared wherever they lie under ``results/`` (with ``test/`` and
``eval/`` folders), except provenance."""


def checkout(rev: str, dest: Path) -> Path:
    """``rev``'s tracked files (or this checkout's, ``WORKTREE``) in ``dest``."""
    if rev == "WORKTREE":
        return copy_project(dest)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_pipeline(root: Path, args: Sequence[str], jobs: int) -> None:
    """The pipeline's report in ``root``, by this checkout's venv python."""
    python = REPO / ".venv" / "bin" / "python"
    # CACHE=: each tree computes its results (none restored from a result cache)
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "CACHE": ""}
    cmd = ["make", f"-j{jobs}", "--no-print-directory", *args, f"CC={python}", "report"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{root}: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def result_files(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every compared file under ``root/results``."""
    found = {}
    for path in sorted((root / "results").rglob("*")):
        if path.name in COMPARED and "provenance" not in path.parts and path.is_file():
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def compare(base: Path, head: Path, name: str, jobs: int, extra: Sequence[str] = ()) -> list[str]:
    """Run pipeline ``name`` (its :data:`PIPELINES` arguments, then ``extra``) in both
    trees; the relative paths that differ."""
    for root in (base, head):
        run_pipeline(root, [*PIPELINES[name], *extra], jobs)
    a, b = result_files(base), result_files(head)
    if not a:
        raise SystemExit(f"{name}: no result file found under {base}/results")
    return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the chosen pipelines; exit 1 when a file differs."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default="HEAD", help="revision before the change (HEAD)")
    p.add_argument("--head", default="WORKTREE", help="revision after it (WORKTREE)")
    p.add_argument("--only", default=",".join(PIPELINES), help="pipelines, comma-separated")
    p.add_argument("-j", "--jobs", type=int, default=2, help="make jobs per pipeline")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in PIPELINES]
    if unknown:
        p.error(f"unknown pipeline(s) {unknown}; known: {', '.join(PIPELINES)}")
    print(f"byte identity {args.base} -> {args.head} on {cpu_model()}")
    bad = 0
    with tempfile.TemporaryDirectory(prefix="segline-identity-") as tmp:
        base = checkout(args.base, Path(tmp) / "base")
        head = checkout(args.head, Path(tmp) / "head")
        for name in names:
            differ = compare(base, head, name, args.jobs)
            n = len(result_files(base))
            print(f"{name:12s} {n:4d} files compared, {len(differ)} differ"
                  + (": " + ", ".join(differ) if differ else ""), flush=True)
            bad += bool(differ)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
