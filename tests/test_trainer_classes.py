"""The trainer class a method folder records (``args.json`` ``trainer``) builds its
predictor and its evaluation-stage scorer; the core names no experiment.

Unit tests on hand-made method folders (untrained networks): a recorded test trainer
class is asked for the predictor; a folder without the record gets the core network
predictor; a recorded vertebra trainer gets its instance predictor and scorer, and its
folds are refused in one line; bad records are refused in one line. One make-level
test: the spleen toy (one method, one epoch) through its report and ``predict``: no
``.d`` file names a file of ``src/segline/experiments``, so touching one leaves the
whole pipeline up to date (``make -q``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import copy_project
from segline import stage
from segline.casestore import CaseStore
from segline.errors import InputError
from segline.eval_stage import source_scorer
from segline.nets import get_net
from segline.predicting.infer import Predictor, load_predictor, recorded_trainer
from segline.train.loop import Trainer
from segline.train.trainers import trainer_class, trainer_name


class FakePredictor:
    """What :class:`RecordingTrainer` hands out."""

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, None]:
        return np.full(image.shape[1:], 7, np.uint8), None

    def label_names(self, store: CaseStore) -> dict[int, str]:
        return {0: "background", 7: "seven"}


class RecordingTrainer(Trainer):
    """A trainer class whose predictor is recorded when it is asked for."""

    asked: list[tuple[Path, str, str]] = []

    @classmethod
    def predictor(cls, method: Path, store: CaseStore, device: str, amp: str) -> Any:
        cls.asked.append((method, device, amp))
        return FakePredictor()


def _folder(folder: Path, args: dict[str, Any], model: torch.nn.Module) -> Path:
    folder.mkdir(parents=True)
    torch.save(model.state_dict(), folder / "best.pt")
    (folder / "args.json").write_text(json.dumps({"threads": 1, **args}))
    return folder


def _iterative(folder: Path, cases: Path) -> Path:
    """An untrained iterative vertebra folder, as its trainer records it."""
    torch.manual_seed(0)
    model = get_net("IterativeFCN", 2, 1, channels=4, depth=1)
    args = {
        "cases": str(cases),
        "trainer": "segline.experiments.vertebrae.train:IterativeTrainer",
        "method": "iterative",
        "net": "IterativeFCN",
        "net_kwargs": {"channels": 4, "depth": 1},
        "patch": [4, 8, 8],
        "amp": "off",
    }
    _folder(folder, args, model)
    classes = {"method": "iterative", "classes": {"1": "organ"},
               "label_values": {"0": 0, "1": 1}}  # fmt: skip
    (folder / "classes.json").write_text(json.dumps(classes))
    return folder


def test_trainers_name_themselves_importably() -> None:
    from segline.experiments.vertebrae.train import IterativeTrainer, SemanticTrainer

    assert trainer_name(Trainer) == "segline.train.loop:Trainer"
    for cls in (IterativeTrainer, SemanticTrainer):
        name = trainer_name(cls)
        assert name == f"segline.experiments.vertebrae.train:{cls.__name__}"
        assert trainer_class({"trainer": name}, Path("args.json")) is cls
    assert trainer_class({}, Path("args.json")) is Trainer  # older folders: the core's


def test_predictor_is_built_from_the_recorded_trainer_class(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    cases = CaseStore(*store)
    name = f"{__name__}:RecordingTrainer"
    method = _folder(tmp_path / "m", {"cases": str(store[0]), "trainer": name},
                     get_net("Dimwit", 1, 2))  # fmt: skip
    assert recorded_trainer(method) is RecordingTrainer
    RecordingTrainer.asked.clear()
    predictor = load_predictor(method, cases, "cpu", "off")
    assert isinstance(predictor, FakePredictor)
    assert RecordingTrainer.asked == [(method, "cpu", "off")]
    labels, probs = predictor.predict(np.zeros((1, 3, 4, 5), np.float32))
    assert probs is None and labels.shape == (3, 4, 5) and set(labels.ravel()) == {7}
    assert source_scorer(method) is None  # the core's hook, inherited


def test_a_folder_without_the_record_gets_the_core_predictor(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    cases = CaseStore(*store)
    torch.manual_seed(0)
    method = _folder(tmp_path / "old", {"cases": str(store[0]), "net": "Dimwit",
                                        "batch_size": 2}, get_net("Dimwit", 1, 2))  # fmt: skip
    assert recorded_trainer(method) is Trainer
    predictor = load_predictor(method, cases, "cpu", "off")
    assert isinstance(predictor, Predictor) and predictor.dims == 2
    image = np.asarray(cases.image(cases.case_ids("test")[0]))
    labels, probs = predictor.predict(image)
    assert probs is not None and probs.shape == (2, *image.shape[1:])
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    assert labels.shape == image.shape[1:]


def test_a_vertebra_folder_gets_its_predictor_scorer_and_fold_refusal(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    from segline.experiments.vertebrae.apply import IterativePredictor
    from segline.experiments.vertebrae.evaluate import InstanceScorer
    from segline.experiments.vertebrae.train import IterativeTrainer

    cases = CaseStore(*store)
    method = _iterative(tmp_path / "iterative", store[0])
    assert recorded_trainer(method) is IterativeTrainer
    predictor = load_predictor(method, cases, "cpu")
    assert isinstance(predictor, IterativePredictor)
    assert predictor.precision.describe() == "cpu fp32"  # the recorded amp (off)
    labels, probs = predictor.predict(np.asarray(cases.image(cases.case_ids("test")[0])))
    assert probs is None and labels.dtype.kind in "iu"
    assert predictor.label_names(cases) == {0: "background", 1: "instance 1"}
    scorer = source_scorer(method)
    assert isinstance(scorer, InstanceScorer) and scorer.names == {1: "organ"}
    assert scorer.metrics == ("dice", "assd", "id_rate", "false_positives", "misses")
    # the folds of such a method: one line, naming the first fold's folder
    folds = tmp_path / "folds"
    for i in (0, 1):
        _iterative(folds / f"fold{i}", store[0])
    with pytest.raises(InputError) as err:
        load_predictor(folds, cases, "cpu")
    assert str(err.value) == (
        f"{folds}: the folds of this method are not ensembled (vertebra instance maps, "
        f"no class probabilities): predict with one fold's folder instead "
        f"(segline-predict --method {folds / 'fold0'})"
    )


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("segline.train.loop", "expected module:Class"),
        ("segline.nowhere:Trainer", "not found (No module named 'segline.nowhere')"),
        ("segline.train.loop:Nobody", "not found"),
        ("segline.train.loop:TrainConfig", "is not a segline.train.loop.Trainer"),
    ],
)
def test_a_bad_record_is_refused_in_one_line(
    store: tuple[Path, Path], tmp_path: Path, record: str, message: str
) -> None:
    method = _folder(tmp_path / "m", {"cases": str(store[0]), "trainer": record},
                     get_net("Dimwit", 1, 2))  # fmt: skip
    with pytest.raises(InputError) as err:
        load_predictor(method, CaseStore(*store), "cpu")
    text = str(err.value)
    assert text.startswith(f"{method / 'args.json'}: trainer {record!r}")
    assert message in text and "\n" not in text


# ------------------------------------------------------------------ make
SPLEEN = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "METHODS=gdl")


@pytest.mark.make
def test_spleen_stages_depend_on_no_experiment_file(tmp_path: Path, run_make) -> None:  # type: ignore[no-untyped-def]
    root = copy_project(tmp_path / "p")
    proc = run_make(root, "-j2", *SPLEEN, "report", "predict")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    deps = {
        str(p.relative_to(root)): stage.dep_sources(p.read_text())
        for top in ("data", "results", "archives")
        if (root / top).is_dir()
        for p in (root / top).rglob(".*.d")
    }
    trainings = [d for d in deps if d.endswith("/.gdl.d") and "/eval/" not in d
                 and "/predict/" not in d]  # fmt: skip
    evals = [d for d in deps if "/eval/" in d]
    predicts = [d for d in deps if "/predict/" in d]
    assert trainings and evals and predicts, sorted(deps)
    for name in evals + predicts:  # they resolved the recorded trainer class
        assert "src/segline/train/trainers.py" in deps[name], name
    args = json.loads((root / "results/spleen-toy/gdl/args.json").read_text())
    assert args["trainer"] == "segline.train.loop:Trainer"
    assert args["selected_on"] == ["val_dice"]
    named = {d: [s for s in srcs if "segline/experiments" in s] for d, srcs in deps.items()}
    assert not any(named.values()), {d: s for d, s in named.items() if s}
    # touching the vertebrae experiment leaves every spleen target up to date
    later = max(p.stat().st_mtime_ns for p in (root / "results").rglob("*")) + 10**9
    touched = root / "src/segline/experiments/vertebrae/train.py"
    os.utime(touched, ns=(later, later))
    question = run_make(root, "-q", *SPLEEN, "report", "predict")
    assert question.returncode == 0, question.stdout[-2000:] + question.stderr[-2000:]
    # not blind: touching a core file of those .d files makes them stale
    os.utime(root / "src/segline/train/trainers.py", ns=(later, later))
    assert run_make(root, "-q", *SPLEEN, "report", "predict").returncode == 1
