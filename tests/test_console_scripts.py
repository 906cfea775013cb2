"""Console scripts and ``--help`` of every CLI, found by a mechanism, not a hand list.

A CLI is any source file that ends in ``if __name__ == "__main__": entry(main)``
(``src/segline/**`` and ``preprocess/*.py``); the module that defines its ``main``
(the file itself, or the module it imports ``main`` from) must have ``cli`` and
``build_parser`` and a ``[project.scripts]`` line ``segline-... = "<module>:cli"``
(pyproject.toml).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from segline.cli import HelpFormatter, format_default

ROOT = Path(__file__).resolve().parents[1]

def _module_name(path: Path) -> str:
    """``src/segline/train/cli.py`` -> ``segline.train.cli``."""
    parts = path.relative_to(ROOT / "src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _calls_entry_main(tree: ast.Module) -> bool:
    """The file ends in ``if __name__ == "__main__": entry(main)`` (module level)."""
    blocks = [
        n
        for n in tree.body
        if isinstance(n, ast.If)
        and "__name__" in ast.unparse(n.test)
        and "__main__" in ast.unparse(n.test)
    ]
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "entry"
        and [getattr(a, "id", None) for a in node.args] == ["main"]
        for block in blocks
        for node in ast.walk(block)
    )


def _main_module(path: Path, tree: ast.Module) -> str:
    """The module that defines the ``main`` a CLI file runs."""
    if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
        assert path.is_relative_to(ROOT / "src"), f"{path}: main must live in the package"
        return _module_name(path)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == "main" for a in node.names):
            assert node.module
            return node.module
    raise AssertionError(f"{path}: calls entry(main) but defines or imports no main")


def cli_modules() -> dict[str, list[str]]:
    """Module defining ``main`` -> the files that run it with ``entry(main)``."""
    found: dict[str, list[str]] = {}
    files = sorted((ROOT / "src" / "segline").rglob("*.py")) + sorted(
        (ROOT / "preprocess").glob("*.py")
    )
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        if _calls_entry_main(tree):
            found.setdefault(_main_module(path, tree), []).append(str(path.relative_to(ROOT)))
    return found


def declared_scripts() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


MODULES = sorted(cli_modules())


def test_the_mechanism_finds_the_known_clis() -> None:
    """The scan sees the CLIs of every stage (a guard against a scan that finds nothing)."""
    found = cli_modules()
    assert {
        "segline.train.cli",
        "segline.report.build",
        "segline.pack",
        "segline.plots.curves",
        "segline.preprocess.slicing",
        "segline.distmaps",
        "segline.datasets.toys",
        "segline.lineage.extract",
        "segline.lineage.fetch",
        "segline.experiments.vessels.mip",
        "segline.experiments.vessels.pseudo",
        "segline.experiments.vessels.train",
    } <= set(found)
    assert found["segline.train.cli"] == ["src/segline/train/__main__.py"]
    assert found["segline.distmaps"] == ["preprocess/distmaps.py"]


def test_every_cli_has_a_console_script() -> None:
    targets = set(declared_scripts().values())
    missing = [m for m in MODULES if f"{m}:cli" not in targets]
    assert not missing, f"no [project.scripts] entry for {missing}"


def test_every_declared_script_runs_a_cli() -> None:
    scripts = declared_scripts()
    clis = cli_modules()
    assert len(scripts) >= 14
    for name, target in scripts.items():
        assert name.startswith("segline-"), name
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        assert attr == "cli" and callable(getattr(module, attr)), target
        assert module_name in clis, f"{target}: not a module ending in entry(main)"


def test_installed_scripts_match_pyproject() -> None:
    """``make install`` (pip install -e) put every declared script into the venv's bin."""
    installed = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group="console_scripts")
        if ep.name.startswith("segline-")
    }
    declared = declared_scripts()
    assert {k: installed.get(k) for k in declared} == declared, "stale install: make install"
    bin_dir = Path(sys.executable).parent
    for name in declared:
        assert (bin_dir / name).is_file(), name
    run = subprocess.run(
        [str(bin_dir / "segline-make-toy"), "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "usage: segline-make-toy" in run.stdout and "(default: 0)" in run.stdout
    # argument errors name the command that was typed
    run = subprocess.run(
        [str(bin_dir / "segline-make-toy"), "--seed", "x"], capture_output=True, text=True
    )
    assert run.returncode == 2 and "segline-make-toy: error: argument --seed" in run.stderr


def test_console_script_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    """A console script goes through entry(): bad input is one line and exit 2."""
    script = Path(sys.executable).parent / "segline-distmaps"
    run = subprocess.run(
        [str(script), "--cases", str(tmp_path / "nope"), "--out", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("segline: ") and run.stderr.count("\n") == 1
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("module_name", MODULES)
def test_every_option_has_help_and_shows_its_default(module_name: str) -> None:
    parser = importlib.import_module(module_name).build_parser()
    assert issubclass(parser.formatter_class, HelpFormatter), module_name
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{module_name} {name}: no help"
        shown = formatter._expand_help(action)
        default = action.default
        if default is None or default is argparse.SUPPRESS or action.nargs == 0:
            continue
        assert format_default(default) in shown, f"{module_name} {name}: {shown!r}"
        assert "default" in shown.lower(), f"{module_name} {name}: {shown!r}"


def test_train_help_lists_every_registered_net_and_loss() -> None:
    from segline.losses.registry import loss_aliases, loss_names
    from segline.nets.registry import net_names
    from segline.train.cli import build_parser

    text = build_parser().format_help()
    lines = text.splitlines()
    for net in net_names():
        assert any(line.split()[:1] == [net] for line in lines), net
    for loss in loss_names():
        assert any(line.split()[:1] == [loss] for line in lines), loss
    for alias in loss_aliases():
        assert alias in text, alias
    # options with their defaults, read from the constructors
    assert any(line.split()[:2] == ["UNet", "2D"] and "base=32" in line for line in lines)
    assert any(line.split()[:1] == ["focal"] and "gamma=2" in line for line in lines)
    for option, default in [("--epochs", "10"), ("--lr", "0.0005"), ("--seed", "0")]:
        line = next(i for i, ln in enumerate(lines) if ln.strip().startswith(option))
        assert f"(default: {default})" in " ".join(lines[line : line + 3]), option


def test_report_reference_help_is_a_whole_sentence() -> None:
    from segline.report.build import build_parser

    action = next(a for a in build_parser()._actions if a.dest == "reference")
    assert action.help and action.help.rstrip(")").endswith("columns")
    assert "percentage of this method's means" in action.help


def test_format_default_spells_defaults_as_typed() -> None:
    assert format_default(("2d", "3d")) == "2d,3d"
    assert format_default([]) == "none"
    assert format_default(5e-4) == "0.0005"
    assert format_default(200.0) == "200"
    assert format_default(False) == "false"
    assert format_default(Path("data/x")) == "data/x"
