"""The core names no experiment: no module of ``src/segline`` outside
``segline/experiments/`` imports one, so an experiment's edit rebuilds none of the
other datasets' targets.

Two checks: the imports of every core module, read from its source (``ast``), name no
``segline.experiments`` (nor the former ``segline.vessels`` / ``segline.vertebrae``);
and on built spleen and ISLES toys (one method each, one epoch, a tiny network) no
dependency file (``.d``: the modules a stage imported) lists an experiment's file, and
touching every file of ``src/segline/experiments/vessels`` and ``.../vertebrae``
leaves both pipelines up to date (``make -q``) while touching a core module they
import does not.
"""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

import pytest

from conftest import REPO, copy_project

SRC = REPO / "src" / "segline"
EXPERIMENTS = SRC / "experiments"
FORBIDDEN = ("segline.experiments", "segline.vessels", "segline.vertebrae")


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source`` of a module of ``package``;
    ``from X import y`` gives ``X`` and ``X.y`` (``from segline import experiments``
    imports a package), relative imports resolved against ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def imports_of(path: Path) -> list[tuple[int, str]]:
    """:func:`imported_modules` of a file of ``src/segline``."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    return imported_modules(path.read_text(), package)


def core_files() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if EXPERIMENTS not in p.parents]


def names_an_experiment(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_the_import_walk_sees_imports() -> None:
    """The walk is not blind: it finds the experiments' imports of the core and of
    themselves, in every spelling (relative ones resolved to their absolute names)."""
    train = imports_of(EXPERIMENTS / "vessels" / "train.py")
    assert any(m == "segline.train.loop" for _, m in train)
    assert any(names_an_experiment(m) for _, m in train)
    assert len(core_files()) > 50
    for source in ("import segline.experiments.vessels.mip\n",
                   "from segline import experiments\n",
                   "from segline.experiments.vessels.inputs import MipInputs\n",
                   "from ..experiments.vessels import mip\n",
                   "from .. import vessels\n"):  # fmt: skip
        found = imported_modules(source, "segline.train")
        assert any(names_an_experiment(m) for _, m in found), source
    assert not any(names_an_experiment(m) for _, m in imported_modules(
        "from segline.train.loop import Trainer\nfrom . import loop\n", "segline.train"))


def test_no_core_module_imports_an_experiment() -> None:
    offending = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in core_files()
        for line, module in imports_of(path)
        if names_an_experiment(module)
    ]
    assert not offending, "the core imports an experiment:\n" + "\n".join(offending)


# ---------------------------------------------------------------- on built toys
SPLEEN = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "BS=16", "DEBUG=1",
          "METHODS=gdl")  # fmt: skip
ISLES = ("-f", "isles.make", "TOY=1", "NET=Dimwit", "EPC=1", "BS=16", "DEBUG=1",
         "METHODS=gdl")  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:
    """A copy of the project with the spleen and ISLES toys built to their reports
    (evaluation stages and plots included)."""
    root = copy_project(tmp_path_factory.mktemp("core-imports") / "p")
    for args in (SPLEEN, ISLES):
        proc = run_make(root, "-j2", *args, "report")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def dependency_files(root: Path) -> list[Path]:
    return sorted(p for d in ("data", "results") for p in (root / d).rglob(".*.d"))


@pytest.mark.make
def test_no_dependency_file_lists_an_experiment(built: Path) -> None:
    deps = dependency_files(built)
    names = {p.name for p in deps}
    assert {".gdl.d", ".report.md.d", ".cases.d"} <= names, names
    for dep in deps:
        listed = dep.read_text()
        assert "src/segline/experiments/" not in listed, dep
        assert "src/segline/vessels/" not in listed, dep


def _touch_all(paths: list[Path]) -> None:
    t = time.time() + 2
    for path in paths:
        os.utime(path, (t, t))


@pytest.mark.make
def test_an_experiment_edit_rebuilds_no_spleen_or_isles_target(built: Path, run_make) -> None:
    files = sorted((built / "src/segline/experiments/vessels").rglob("*.py"))
    assert len(files) >= 8
    vertebrae = sorted((built / "src/segline/experiments/vertebrae").rglob("*.py"))
    assert len(vertebrae) >= 6
    _touch_all([*files, *vertebrae])
    for args in (SPLEEN, ISLES):
        question = run_make(built, "-q", *args, "report")
        plan = run_make(built, "-n", *args, "report")
        assert question.returncode == 0, plan.stdout[-3000:]
        assert "segline" not in plan.stdout and "preprocess/" not in plan.stdout, plan.stdout
    # not vacuous: a core module every training imports does rebuild them
    _touch_all([built / "src/segline/train/loop.py"])
    for args in (SPLEEN, ISLES):
        plan = run_make(built, "-n", *args, "report")
        assert "-m segline.train" in plan.stdout, plan.stdout[-3000:]
