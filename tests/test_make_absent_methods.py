"""A method's own ABSENT convention in one run (isles.make's published-code methods and
its ``*_diagonal`` variants).

``$(call method,X): ABSENT := diagonal`` trains X on ``data/<ds>/dist-diagonal`` while
the other methods keep the ``ABSENT`` knob's store (``data/<ds>/dist``, zero by default):
the dry-run plan, a small real build (NET=Dimwit, EPC=1: what args.json,
distmaps.json and lineage.json record), that changing one method's convention
replans that method only, and the pack stage accepting both stores in one archive.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from conftest import copy_project
from segline import pack
from segline.errors import InputError

pytestmark = pytest.mark.make

DS = "isles-toy"
METHODS = "METHODS=gdl_boundary gdl_boundary_diagonal gdl_boundary_ref gdl_hausdorff_ref"
ARGS = ("-f", "isles.make", "TOY=1", "NET=Dimwit", "EPC=1", METHODS)
STEAL = "gdl:1,boundary:0.01[schedule=steal;step=0.01]"


def trainings(stdout: str) -> dict[str, list[str]]:
    """{method: training command words} of the ``segline.train`` lines of a plan."""
    out = {}
    for line in stdout.splitlines():
        if "-m segline.train " in line:
            words = shlex.split(line)
            out[Path(words[words.index("--out") + 1]).name] = words
    return out


def option(words: list[str], name: str) -> str | None:
    """The value after ``name`` in a command, None when absent."""
    return words[words.index(name) + 1] if name in words else None


def distmaps(stdout: str) -> list[str]:
    """The distance-map stage commands of a plan."""
    return [ln for ln in stdout.splitlines() if "preprocess/distmaps.py" in ln]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("absent"))


def test_plan_reads_each_methods_store(project: Path, run_make) -> None:
    plan = run_make(project, "-n", *ARGS, "train")
    assert plan.returncode == 0, plan.stderr[-2000:]
    runs = trainings(plan.stdout)
    assert sorted(runs) == ["gdl_boundary", "gdl_boundary_diagonal", "gdl_boundary_ref",
                            "gdl_hausdorff_ref"]  # fmt: skip
    for m, store in (("gdl_boundary", "dist"), ("gdl_boundary_diagonal", "dist-diagonal")):
        own = runs[m]
        assert option(own, "--dist") == f"data/{DS}/{store}"
        assert option(own, "--sched") is None
        assert option(own, "--losses") == (
            "gdl:1,boundary:0.01[schedule=rebalance;step=0.01;cap=0.99]")
    for m, losses in (("gdl_boundary_ref", STEAL),
                      ("gdl_hausdorff_ref", "gdl:1,hausdorff:0.1[alpha=2]")):  # fmt: skip
        words = runs[m]
        assert option(words, "--dist") == f"data/{DS}/dist"
        assert option(words, "--losses") == losses
        assert option(words, "--sched") == "halve"
        assert option(words, "--batch-size") == "8"  # the published isles.make's BS
        assert option(words, "--lr") == "1e-3"
        assert option(words, "--epochs") == "1"  # EPC on the command line wins
    # one store per convention, each built once
    stores = distmaps(plan.stdout)
    assert len(stores) == 2
    zero = next(s for s in stores if f"--out data/{DS}/dist " in s + " ")
    diag = next(s for s in stores if f"--out data/{DS}/dist-diagonal" in s)
    assert zero.rstrip().endswith("--absent zero")
    assert diag.rstrip().endswith("--absent diagonal")


def test_epochs_on_real_data_and_the_absent_knob(project: Path, run_make) -> None:
    """Real data: the published 100 epochs for the *_ref methods, EPC (200) for the
    others; a toy keeps its EPC. ABSENT=diagonal moves the methods without their own
    convention to dist-diagonal."""
    real = trainings(run_make(project, "-n", "-f", "isles.make", METHODS, "train").stdout)
    assert option(real["gdl_boundary_ref"], "--epochs") == "100"
    assert option(real["gdl_hausdorff_ref"], "--epochs") == "100"
    assert option(real["gdl_boundary"], "--epochs") == "200"
    hard = trainings(run_make(project, "-n", "-f", "isles.make", "TOY=hard", METHODS,
                              "train").stdout)  # fmt: skip
    assert {option(w, "--epochs") for w in hard.values()} == {"5"}
    knob = trainings(run_make(project, "-n", *ARGS, "ABSENT=diagonal", "train").stdout)
    assert option(knob["gdl_boundary"], "--dist") == f"data/{DS}/dist-diagonal"
    assert option(knob["gdl_boundary_diagonal"], "--dist") == f"data/{DS}/dist-diagonal"
    # a knob on make's command line sets every method's, the *_ref methods' too
    assert option(knob["gdl_boundary_ref"], "--dist") == f"data/{DS}/dist-diagonal"
    only = run_make(project, "-n", "-f", "isles.make", "TOY=1", "NET=Dimwit", "EPC=1",
                    "METHODS=gdl gdl_boundary", "train")  # fmt: skip
    assert len(distmaps(only.stdout)) == 1


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, run_make) -> Path:
    root = copy_project(tmp_path_factory.mktemp("absent-built"))
    proc = run_make(root, *ARGS, "train")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def test_trainings_record_their_convention(built: Path) -> None:
    res = built / "results" / DS
    want = {"gdl_boundary": ("dist", "zero", "const", "rebalance"),
            "gdl_boundary_diagonal": ("dist-diagonal", "diagonal", "const", "rebalance"),
            "gdl_boundary_ref": ("dist", "zero", "halve", "steal"),
            "gdl_hausdorff_ref": ("dist", "zero", "halve", None)}  # fmt: skip
    for m, (store, absent, sched, schedule) in want.items():
        args = json.loads((res / m / "args.json").read_text())
        assert args["dist"] == f"data/{DS}/{store}"
        assert args["sched"] == sched and args["batch_size"] == 8 and args["epochs"] == 1
        assert (schedule is None) or f"schedule={schedule}" in args["losses"]
        maps = json.loads((built / args["dist"] / "distmaps.json").read_text())
        assert maps["absent"] == absent
        lineage = json.loads((res / m / "lineage.json").read_text())
        assert sorted(lineage["inputs"]) == ["cases", store]
    # the same cases, so the two stores differ only where a class is absent
    lineages = [json.loads((res / m / "lineage.json").read_text()) for m in want]
    assert len({lin["inputs"]["cases"] for lin in lineages}) == 1


def test_changing_one_methods_convention_retrains_it_only(built: Path, run_make) -> None:
    assert run_make(built, "-q", *ARGS, "train").returncode == 0
    makefile = built / "isles.make"
    before = makefile.read_text()
    makefile.write_text(before + "$(call method,gdl_hausdorff_ref): ABSENT := diagonal\n")
    try:
        plan = run_make(built, "-n", *ARGS, "train")
        assert plan.returncode == 0, plan.stderr[-2000:]
        runs = trainings(plan.stdout)
        assert sorted(runs) == ["gdl_hausdorff_ref"]
        assert option(runs["gdl_hausdorff_ref"], "--dist") == f"data/{DS}/dist-diagonal"
        assert not distmaps(plan.stdout)  # both stores are built already
        others = [f"results/{DS}/{m}" for m in ("gdl_boundary", "gdl_boundary_diagonal",
                                                "gdl_boundary_ref")]  # fmt: skip
        assert run_make(built, "-q", *ARGS, *others).returncode == 0
        # an unknown convention stops make with one line naming the training
        makefile.write_text(before + "$(call method,gdl_boundary): ABSENT := none\n")
        bad = run_make(built, "-n", *ARGS, "train")
        assert bad.returncode == 2
        assert re.search(rf"ABSENT=none \(for results/{DS}/gdl_boundary\): use diagonal or zero",
                         bad.stderr), bad.stderr  # fmt: skip
    finally:
        makefile.write_text(before)
    assert run_make(built, "-q", *ARGS, "train").returncode == 0


def _lineage(root: Path, method: str, inputs: dict[str, str]) -> str:
    (root / method).mkdir(parents=True, exist_ok=True)
    (root / method / "lineage.json").write_text(json.dumps({"inputs": inputs}))
    return f"{method}/lineage.json"


def test_pack_compares_each_convention_with_its_own(tmp_path: Path) -> None:
    cases = {"cases": "a" * 64}
    rels = [
        _lineage(tmp_path, "gdl_boundary", {**cases, "dist": "z" * 64}),
        _lineage(tmp_path, "gdl_boundary_diagonal", {**cases, "dist-diagonal": "d" * 64}),
        _lineage(tmp_path, "gdl_hausdorff_diagonal", {**cases, "dist-diagonal": "d" * 64}),
    ]
    pack.check_same_inputs(tmp_path, rels)  # two conventions: accepted
    rels.append(_lineage(tmp_path, "other", {**cases, "dist-diagonal": "y" * 64}))
    with pytest.raises(InputError, match="another dist-diagonal store than gdl_boundary_diagonal"):
        pack.check_same_inputs(tmp_path, rels)
