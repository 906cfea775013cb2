"""Helpers shared by the bench scripts (run as ``python bench/<script>.py``, so this
folder is on ``sys.path``): the machine's CPU name for the printed tables, and a
private copy of the project for make-level timings.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The checkout the bench scripts belong to."""
COPIED = ["Makefile", "pyproject.toml", "README.md", "make", "lineage", "preprocess", "src"]
"""What a make-level timing needs besides the dataset makefiles."""


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor(): every
    figure in bench/RESULTS.md names the CPU it came from."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def copy_project(dest: Path) -> Path:
    """Sources, makefiles and lineage files into ``dest`` (no data, results or venv),
    so a timing never writes into the checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(
                src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(src, dest / name)
    for mk in REPO.glob("*.make"):
        shutil.copy2(mk, dest / mk.name)
    return dest
