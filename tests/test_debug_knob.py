"""``DEBUG`` is an on/off knob like the others: ``1``/``yes``/``true`` (and the older
``--debug``) pass ``--debug`` to the trainer and pick the run ``debug``; ``0``/``no``/
``false``/empty pass neither; anything else stops make with one line, unless it comes
from the environment (other tools keep a ``DEBUG`` of their own there), where it is
ignored. Dry runs (``make -n``) only: nothing is built.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_project, make_env

pytestmark = pytest.mark.make

ARGS = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "METHODS=gdl")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("debug") / "p")


def plan(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-n", "--no-print-directory", *ARGS, *args, f"CC={sys.executable}"],
        cwd=root, env=env or make_env(), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def training_command(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if "-m segline.train " in ln]
    assert len(lines) == 1, proc.stdout[-3000:]
    return lines[0]


@pytest.mark.parametrize("value", ["1", "yes", "true", "--debug"])
def test_debug_on(root: Path, value: str) -> None:
    cmd = training_command(plan(root, f"DEBUG={value}"))
    assert cmd.split()[-1] == "--debug" and cmd.count("--debug") == 1, cmd
    assert "--out results/spleen-toy/debug/gdl " in cmd, cmd


@pytest.mark.parametrize("value", ["0", "no", "false", ""])
def test_debug_off(root: Path, value: str) -> None:
    cmd = training_command(plan(root, f"DEBUG={value}"))
    assert "--debug" not in cmd and "/debug/" not in cmd, cmd
    assert "--out results/spleen-toy/gdl " in cmd, cmd


def test_every_on_spelling_gives_the_same_command(root: Path) -> None:
    """Same command, same record: DEBUG=1 reuses what DEBUG=--debug built."""
    commands = {training_command(plan(root, f"DEBUG={v}")) for v in ("1", "yes", "--debug")}
    assert len(commands) == 1, commands


def test_debug_with_seeds_and_explicit_run(root: Path) -> None:
    cmd = training_command(plan(root, "DEBUG=1", "SEEDS=3"))
    assert "--out results/spleen-toy/debug-seeds/gdl/seed3 " in cmd and "--debug" in cmd, cmd
    cmd = training_command(plan(root, "DEBUG=1", "RUN=mine"))
    assert "--out results/spleen-toy/mine/gdl " in cmd and "--debug" in cmd, cmd


def test_unknown_value_is_one_line(root: Path) -> None:
    proc = plan(root, "DEBUG=maybe")
    assert proc.returncode == 2 and not proc.stdout
    assert "DEBUG=maybe: use DEBUG=1" in proc.stderr and proc.stderr.count("\n") == 1


def test_environment_debug_of_other_tools_is_ignored(root: Path) -> None:
    env = make_env() | {"DEBUG": "app:*"}
    cmd = training_command(plan(root, env=env))
    assert "--debug" not in cmd and "--out results/spleen-toy/gdl " in cmd, cmd
    env = make_env() | {"DEBUG": "1"}
    assert training_command(plan(root, env=env)).split()[-1] == "--debug"


def test_help_shows_the_value(root: Path) -> None:
    for value, shown in (("yes", "(1)"), ("0", "(0)")):
        proc = subprocess.run(
            ["make", "--no-print-directory", *ARGS, f"DEBUG={value}", "help"],
            cwd=root, env=make_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("DEBUG="))
        assert line.strip().startswith("DEBUG=1 ") and line.endswith(shown), line
