"""The tools of the recipes that do not train start without torch (and light ones
without scipy/skimage): each pays only for what its work needs.

The tools are read from the makefiles (bench/bench_startup.py:recipe_tools), so a
new stage is checked without editing this file.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bench_startup():
    spec = importlib.util.spec_from_file_location(
        "bench_startup", REPO / "bench" / "bench_startup.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench_startup()
#: Tools that need neither scipy nor skimage (archives, plots, report, packing).
LIGHT = {
    "-m segline.pack",
    "-m segline.plots.figures",
    "-m segline.plots.overlays",
    "-m segline.report",
    "-m segline.experiments.vessels.figures",
    "-m segline.experiments.vessels.report",
    "preprocess/fetch.py",
    "preprocess/make_toy.py",
    "preprocess/mip.py",
    "preprocess/unpack.py",
}


def test_recipe_tools_found_in_makefiles() -> None:
    tools = BENCH.recipe_tools(REPO)
    assert tools == sorted(tools)
    assert BENCH.TRAINING <= set(tools)
    assert LIGHT <= set(tools)
    assert {"preprocess/slice.py", "preprocess/distmaps.py", "preprocess/pseudo.py"} <= set(tools)


def test_non_training_tools_do_not_import_torch() -> None:
    tools = [t for t in BENCH.recipe_tools(REPO) if t not in BENCH.TRAINING]
    # light tools first: a library loaded by a heavier tool must not hide behind them
    tools.sort(key=lambda t: (t not in LIGHT, t))
    env = BENCH._env(REPO / "src")
    proc = subprocess.run(
        [sys.executable, "-c", BENCH.PROBE, json.dumps(tools), json.dumps(list(BENCH.HEAVY))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout)
    assert sorted(seen) == sorted(tools)
    for tool in tools:
        assert "torch" not in seen[tool], f"{tool} --help loads torch"
        if tool in LIGHT:
            assert not {"scipy", "skimage"} & set(seen[tool]), f"{tool}: {seen[tool]}"


def test_probe_sees_torch_of_a_training_tool() -> None:
    """The probe is not blind: the trainer's --help does load torch."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BENCH.PROBE,
            json.dumps(["-m segline.train"]),
            json.dumps(["torch"]),
        ],
        cwd=REPO,
        env=BENCH._env(REPO / "src"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {"-m segline.train": ["torch"]}
