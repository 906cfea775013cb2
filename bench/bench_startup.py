"""Start-up time of each command-line tool the make recipes run (not a test).

The tools are read from the recipes themselves (``make/common.mk`` and the dataset
makefiles: every ``preprocess/<name>.py`` and ``-m segline.<module>`` they run), so a
new stage is measured without editing this file. Each is timed as ``python <tool>
--help``: the interpreter, the tool's module-level imports and argparse, i.e. what a
recipe pays before its work starts. Two references sit beside them: ``python -c pass``
(the bare interpreter) and ``python -c 'import torch'`` (what a tool that loaded torch
would pay at least). The last column names the heavy libraries the tool loaded::

    .venv/bin/python bench/bench_startup.py                  # median of 5 runs each
    .venv/bin/python bench/bench_startup.py --src /tmp/old/src   # another checkout's code

Training tools (:data:`TRAINING`) need torch by nature; every other one must not load
it (tests/test_startup.py checks that).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Recipes that train or run a network: they import torch by nature.
TRAINING = frozenset(
    {
        "-m segline.train",
        "-m segline.experiments.vertebrae.train",
        "-m segline.experiments.vessels.train",
        "-m segline.predict",
        "-m segline.eval_stage",
    }
)
#: Libraries worth naming when a tool loads them at start-up (each costs 0.1-3 s).
HEAVY = ("torch", "scipy", "skimage", "matplotlib", "pandas", "nibabel", "edt")
_TOOL = re.compile(r"(preprocess/[\w-]+\.py|-m segline(?:\.\w+)+)")
#: The module hooks of the shared recipes (-m $(TRAINER), $(REPORTER), $(PLOTTER)):
#: ``TRAINER ?= segline.train``, a dataset makefile's ``REPORTER := segline.x.report``,
#: make/common.mk's default ``PLOTTER := $(call hook_or,PLOTTER,segline.plots.figures)``.
_TRAINER = re.compile(
    r"^\s*(?:TRAINER|REPORTER|PLOTTER)\s*[:?]?=\s*(?:\$\(call hook_or,\w+,)?"
    r"(segline(?:\.\w+)+)\)?\s*$"
)


def recipe_tools(root: Path = REPO) -> list[str]:
    """Every tool a recipe runs, sorted: ``preprocess/x.py`` or ``-m segline.y``.

    Scans the recipes and ``CMD =`` lines of ``make/*.mk`` and ``*.make`` (comments
    skipped), and the module hooks' assignments (``TRAINER``, ``REPORTER``,
    ``PLOTTER``: the shared recipes' ``-m $(TRAINER)``, ...).
    """
    found: set[str] = set()
    for mk in sorted([*root.glob("make/*.mk"), *root.glob("*.make")]):
        for line in mk.read_text().splitlines():
            trainer = _TRAINER.match(line)
            if trainer:
                found.add(f"-m {trainer.group(1)}")
            if line.lstrip().startswith("#") or not ("CMD =" in line or "$(PY)" in line):
                continue
            found.update(_TOOL.findall(line))
    return sorted(found)


def tool_argv(tool: str) -> list[str]:
    """``-m segline.x`` → ``["-m", "segline.x"]``; a script path → ``[path]``."""
    return tool.split() if tool.startswith("-m ") else [tool]


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    return env


def time_command(args: list[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    """Median wall time in seconds of ``python <args>`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, *args], cwd=cwd, env=env, capture_output=True, check=True, timeout=120
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


PROBE = """
import contextlib, io, json, runpy, sys
tools, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
seen = {}
for tool in tools:
    sys.argv = [tool, "--help"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        if tool.startswith("-m "):
            runpy.run_module(tool[3:], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(tool, run_name="__main__")
    seen[tool] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(seen))
"""
"""One interpreter runs each tool's ``--help`` in turn (argv[1]: JSON list of tools) and
prints, as JSON, the libraries of argv[2] in ``sys.modules`` after each; a library first
seen after tool X was loaded by X (tests/test_startup.py runs all tools in one go)."""


def heavy_loaded(tool: str, cwd: Path, env: dict[str, str]) -> list[str]:
    """The :data:`HEAVY` libraries in ``sys.modules`` after ``tool --help`` ran."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([tool]), json.dumps(list(HEAVY))],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(proc.stdout)[tool]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="runs per tool (median)")
    p.add_argument(
        "--src", type=Path, default=REPO / "src", help="the segline sources to time (PYTHONPATH)"
    )
    args = p.parse_args()
    env = _env(args.src.resolve())
    cwd = args.src.resolve().parent if (args.src.parent / "preprocess").is_dir() else REPO
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, code {args.src}")
    print(f"{'command':32s} {'start-up s':>10s}  heavy libraries loaded")
    rows = [
        ("python -c pass", ["-c", "pass"], None),
        ("python -c 'import torch'", ["-c", "import torch"], None),
    ]
    rows += [(f"{t} --help", [*tool_argv(t), "--help"], t) for t in recipe_tools(cwd)]
    for label, argv, tool in rows:
        seconds = time_command(argv, cwd, env, args.repeat)
        heavy = "" if tool is None else " ".join(heavy_loaded(tool, cwd, env)) or "-"
        flag = "  (training)" if tool in TRAINING else ""
        print(f"{label:32s} {seconds:10.2f}  {heavy}{flag}")


if __name__ == "__main__":
    main()
