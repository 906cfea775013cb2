"""The test hooks live in tests only: ``tests/plugins/sitecustomize.py`` patches segline
in the processes that tests start, and only as their ``SEGLINE_TEST_*`` variables ask.

Each check runs in a fresh interpreter with the plugin on ``PYTHONPATH``
(:func:`conftest.with_test_hooks`), as the trainings and make recipes of the tests do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import PLUGINS, REPO, with_test_hooks

HOOKS = (
    "SEGLINE_TEST_KILL_AFTER_EPOCH",
    "SEGLINE_TEST_FAKE_GPUS",
    "SEGLINE_TEST_GPU_LOG",
    "SEGLINE_TEST_HOLD_LOCK",
)

PROBE = """
import json, sys, time
from pathlib import Path
report = {
    "plugin": sys.modules["sitecustomize"].__file__,
    "eager": sorted(m for m in ("torch", "segline") if m in sys.modules),
    "finders": [type(f).__name__ for f in sys.meta_path],
}
import segline.stage as stage
from segline.train import gpus
report["patched"] = sorted(
    f"{name}.{f.__name__}"
    for name, f in [
        ("stage", stage._run_recorded), ("gpus", gpus.check_cards), ("gpus", gpus.use_card),
        ("gpus", gpus.take), ("gpus", gpus.Token.give_back),
    ]
    if f.__module__ == "sitecustomize"
)
report["card"] = gpus.use_card(3, "gpu-3-0").card if "gpus.use_card" in report["patched"] else ""
token = gpus.take([0], Path(sys.argv[1]), "probe", print)
token.give_back()
token.give_back()
t0 = time.perf_counter()
stage._run_recorded(lambda: 0, [], "record")
report["run_seconds"] = time.perf_counter() - t0
print(json.dumps(report))
"""


def probe(tmp_path: Path, **variables: str) -> dict:
    """Run :data:`PROBE` with ``variables`` set and every other hook variable unset."""
    env = {k: v for k, v in os.environ.items() if k not in HOOKS} | variables
    env["PYTHONPATH"] = str(REPO / "src")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        env=with_test_hooks(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_no_test_hook_in_the_sources() -> None:
    """No file below src/ names a test hook variable."""
    found = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "src").rglob("*"))
        if path.is_file()
        and "egg-info" not in str(path)
        and path.suffix != ".pyc"
        and "SEGLINE_TEST_" in path.read_text(errors="replace")
    ]
    assert found == []


def test_plugin_patches_nothing_unasked(tmp_path: Path) -> None:
    got = probe(tmp_path)
    assert got["plugin"] == str(PLUGINS / "sitecustomize.py")
    assert got["eager"] == []
    assert "PatchAfterImport" not in got["finders"]
    assert got["patched"] == [] and got["card"] == ""
    assert got["run_seconds"] < 1.0
    assert list(tmp_path.iterdir()) == [tmp_path / "gpu-0-0.lock"]  # no log written


def test_plugin_patches_what_is_asked_and_only_that(tmp_path: Path) -> None:
    log = tmp_path / "log" / "gpu.log"
    log.parent.mkdir()
    got = probe(tmp_path, SEGLINE_TEST_FAKE_GPUS="1", SEGLINE_TEST_GPU_LOG=str(log))
    assert got["eager"] == [], "neither torch nor segline imported at start-up"
    assert got["finders"][0] == "PatchAfterImport"
    assert got["patched"] == [
        "gpus.check_cards", "gpus.logged_give_back", "gpus.logged_take", "gpus.use_card",
    ]  # fmt: skip
    assert got["card"] == "cuda:3 (fake, mapped to cpu), token gpu-3-0"
    # one take and one give, although the token was given back twice
    events = [line.split()[:3] for line in log.read_text().splitlines()]
    assert events == [["take", "gpu-0-0", "probe"], ["give", "gpu-0-0", "probe"]]

    held = probe(tmp_path, SEGLINE_TEST_HOLD_LOCK="0.5")
    assert held["patched"] == ["stage.held_first"]
    assert held["run_seconds"] >= 0.5


def test_kill_after_epoch(tmp_path: Path) -> None:
    """The trainer's end-of-epoch call kills the process at the epoch asked, not before."""
    code = (
        "from segline.train.loop import Trainer\n"
        "Trainer._epoch_saved(None, 1)\n"
        "print('after 1', flush=True)\n"
        "Trainer._epoch_saved(None, 2)\n"
        "print('after 2', flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in HOOKS}
    env |= {"PYTHONPATH": str(REPO / "src"), "SEGLINE_TEST_KILL_AFTER_EPOCH": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=with_test_hooks(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    assert proc.stdout == "after 1\n"
