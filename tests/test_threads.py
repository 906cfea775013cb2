"""The thread count of a training: fixed by ``THREADS`` (default 1) whatever make's
``-jN``, recorded in its lineage, and the same bytes under ``make -j1`` and ``-j2``.

The torch intra-op thread count splits the reductions of convolutions (oneDNN), so it
changes the last bits of the weights. It used to be the cores divided by make's ``-jN``:
``make -j1`` and ``make -j2`` of one target then wrote different ``best.pt`` with
identical records. Here:

* make level (one spleen toy training, Dimwit, 2 epochs, built with ``-j1``, removed
  and built again with ``-j2``, in one project copy): every file of the result but
  ``timing.csv`` and ``train.log`` is byte-identical; ``-j`` is in no record (either
  build is up to date for the other's ``-j``) while ``THREADS=2`` is (it retrains);
* unit level: the default is 1 whatever ``MAKEFLAGS``/``SLURM_CPUS_PER_TASK`` say, the
  command line reaches ``args.json``, the trainer computes with the recorded count, a
  resume across thread counts is refused, and ``predict`` uses the training's count.

The make environment (``conftest.make_env``) fixes no thread count, so the make-level
test sees what a user's make does; on the code that divided the cores by ``-jN`` it
fails (on a machine with two cores or more: ``-j1`` two threads, ``-j2`` one).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conftest import copy_project, train_cli
from segline.casestore import CaseStore
from segline.predicting.infer import load_predictor
from segline.train import cli
from segline.train import device as dev
from segline.train.loop import TrainConfig, Trainer

TOY = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=2", "METHODS=gdl")
TARGET = "results/spleen-toy/gdl"
# what two runs may differ in (README, SEED): wall times and the log that prints them
NOT_COMPARED = {"timing.csv", "train.log"}


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """Trainers and predictors set the thread count of this (test) process."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def files(folder: Path) -> dict[str, bytes]:
    """{relative path: content} of every file below ``folder`` except NOT_COMPARED."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in NOT_COMPARED
    }


@pytest.fixture(scope="module")
def j1_j2(tmp_path_factory: pytest.TempPathFactory, run_make) -> tuple[Path, Path, Path]:
    """The toy training built with ``make -j1``, then (its folder moved aside) with
    ``make -j2`` in the same copy: (project root, the -j1 result, the -j2 result)."""
    root = copy_project(tmp_path_factory.mktemp("threads") / "p")
    first = run_make(root, "-j1", *TOY, TARGET)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    j1 = root.parent / "j1"
    shutil.move(root / TARGET, j1)
    second = run_make(root, "-j2", *TOY, TARGET)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "-m segline.train" in second.stdout  # trained again, not found up to date
    return root, j1, root / TARGET


# ------------------------------------------------------------------------ make level
@pytest.mark.make
def test_make_j1_and_j2_give_the_same_bytes(j1_j2: tuple[Path, Path, Path]) -> None:
    _, j1, j2 = j1_j2
    a, b = files(j1), files(j2)
    for name in ("best.pt", "last.pt", "metrics.csv", "epochs.csv", "args.json"):
        assert name in a, name
    assert sorted(a) == sorted(b)
    differ = [name for name in a if a[name] != b[name]]
    assert differ == []
    assert json.loads(a["args.json"])["threads"] == 1
    assert json.loads(a["lineage.json"])["args"]["threads"] == 1


@pytest.mark.make
def test_j_is_not_recorded_but_threads_is(j1_j2: tuple[Path, Path, Path], run_make) -> None:
    """Another ``-j`` finds the training up to date; ``THREADS=2`` plans it again, with
    ``--threads 2`` in the command (the record make compares)."""
    root = j1_j2[0]
    for jobs in ("-j1", "-j2"):
        assert run_make(root, "-q", jobs, *TOY, TARGET).returncode == 0, jobs
    assert run_make(root, "-q", *TOY, "THREADS=2", TARGET).returncode == 1
    planned = run_make(root, "-n", *TOY, "THREADS=2", TARGET)
    (train,) = [ln for ln in planned.stdout.splitlines() if "-m segline.train" in ln]
    assert " --threads 2 " in train
    record = (root / "results/spleen-toy/.gdl.cmd").read_text()
    assert " --threads 1 " in record and "-j" not in record.split()


# ------------------------------------------------------------------------ unit level
@pytest.mark.parametrize("makeflags", ["", "-j1", "-j2", "-j", " -j 4 --no-print-directory"])
@pytest.mark.parametrize("slurm_cpus", ["", "8"])
def test_default_threads_whatever_make_jobs(
    monkeypatch: pytest.MonkeyPatch, makeflags: str, slurm_cpus: str
) -> None:
    """One thread unless asked otherwise, however many cores, jobs or SLURM CPUs; the
    command line's count reaches the configuration (``args.json``) unchanged."""
    monkeypatch.setattr(dev.os, "sched_getaffinity", lambda _pid: set(range(4)))
    monkeypatch.setenv("MAKEFLAGS", makeflags)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", slurm_cpus)
    assert dev.training_threads() == dev.DEFAULT_THREADS == 1
    assert dev.training_threads(3) == 3
    assert TrainConfig(cases="c", dist="d", out="o").threads == 1

    built: list[TrainConfig] = []

    class Recorder(Trainer):
        """Keeps the configuration ``cli._train`` builds; trains nothing."""

        def __init__(self, cfg: TrainConfig, *args: object, **kwargs: object) -> None:
            built.append(cfg)

        def run(self) -> Path:
            return Path()

    required = ["--cases", "c", "--dist", "d", "--out", "o", "--device", "cpu"]
    for extra, expected in (([], 1), (["--threads", "2"], 2)):
        args = cli.build_parser().parse_args([*required, *extra])
        assert cli._train(args, [], trainer_cls=Recorder) == 0
        assert built[-1].threads == expected
        assert built[-1].identity()["threads"] == expected


def test_threads_below_one_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        cli.build_parser().parse_args(["--cases", "c", "--dist", "d", "--out", "o", "--threads=0"])
    assert err.value.code == 2
    assert "argument --threads: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="threads must be >= 1"):
        dev.training_threads(0)


def test_trainer_computes_with_the_recorded_count(store: tuple[Path, Path], tmp_path: Path) -> None:
    """The count in the configuration (``args.json``) is the one torch uses."""
    cases, dist = store
    for threads in (2, 1):
        cfg = TrainConfig(
            cases=str(cases), dist=str(dist), out=str(tmp_path / "m"), net="Dimwit",
            amp="off", threads=threads,
        )  # fmt: skip
        Trainer(cfg, dev.choose("cpu", "off"), [])
        assert torch.get_num_threads() == threads


def test_resume_across_threads_is_refused_and_predict_uses_the_count(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    """A training killed after epoch 1 with one thread is not resumed by the same
    command with ``--threads 2``: it starts afresh, saying why, and records 2; its
    predictor then computes with 2 threads."""
    out = tmp_path / "gdl"
    killed = train_cli(store, out, env={"SEGLINE_TEST_KILL_AFTER_EPOCH": "1"})
    assert killed.returncode == -9 and not out.exists()
    work = Path(f"{out}_tmp")
    assert json.loads((work / "args.json").read_text())["threads"] == 1
    assert (work / "train_state.pt").is_file()

    again = train_cli(store, out, "--threads", "2", env={"MAKEFLAGS": "-j2"})
    assert again.returncode == 0, again.stderr[-3000:]
    said = [ln for ln in again.stdout.splitlines() if "interrupted run discarded" in ln]
    assert said == [
        f"[gdl] {out}: interrupted run discarded, its lineage differs "
        "(arguments changed: threads); starting afresh"
    ]
    assert "resuming" not in again.stdout
    assert "Dimwit on cpu fp32, 2 threads, " in again.stdout
    assert json.loads((out / "args.json").read_text())["threads"] == 2
    assert json.loads((out / "lineage.json").read_text())["args"]["threads"] == 2

    torch.set_num_threads(1)
    load_predictor(out, CaseStore(*store))
    assert torch.get_num_threads() == 2
    # a training recorded before the count was: the default
    assert dev.recorded_threads({"net": "Dimwit"}) == 1
