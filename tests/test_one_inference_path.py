"""One inference path: the training predicts its test cases (and a 3D network its
validation cases) with the predictor ``segline-predict`` and the evaluation stage load
(:class:`segline.predicting.infer.Predictor`), built on the network in memory
(:meth:`segline.train.loop.Trainer._model_predictor`).

Checked on the tiny case store: the labels a training writes to ``test/preds_zyx``
are those the folder's predictor gives (2D with 2.5D context, 3D by sliding windows);
the trainer's predictions go through ``Predictor.predict`` once per case, a 2D
network's validation excepted (its loss needs the slice batches that run across
cases); a 3D network's validation loss is the loss of the log of the stitched
probabilities, computed here independently; and a 2D prediction without
probabilities gives the same labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import train_cli
from segline.casestore import CaseStore
from segline.predicting.infer import Predictor, load_predictor
from segline.train import device as dev
from segline.train.evaluate import volume_batch
from segline.train.labels import class_index
from segline.train.loop import TrainConfig, Trainer
from segline.train.sliding import sliding_window_predict, tile_positions

NETS = {
    "2d": ("--context", "1"),
    "3d": ("--net", "Dimwit3D", "--epochs", "2", "--batch-size", "2", "--patch", "4,16,16",
           "--samples-per-epoch", "6", "--losses", "ce:1,dice:1"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(NETS))
def test_test_predictions_are_the_predictors_labels(store, tmp_path: Path, kind: str) -> None:
    """``test/preds_zyx`` of a training equal, voxel for voxel, what its folder's
    predictor (``segline-predict``, the evaluation stage) gives on the same device."""
    out = tmp_path / kind
    proc = train_cli(store, out, *NETS[kind])
    assert proc.returncode == 0, proc.stderr
    cases = CaseStore(*store)
    predictor = load_predictor(out, cases, "cpu", "off")
    assert isinstance(predictor, Predictor) and predictor.dims == int(kind[0])
    test = sorted(p.stem for p in (out / "test" / "preds_zyx").glob("*.npy"))
    assert test == ["toy_0", "toy_1"]
    for case in test:
        written = np.load(out / "test" / "preds_zyx" / f"{case}.npy")
        labels, probs = predictor.predict(np.array(cases.image(case)))
        assert written.dtype == labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, written)
        assert probs is not None and probs.shape == (2, *written.shape)
        assert written.any()  # the labels compared are not all background


def _trainer(store, out: Path, **kw: Any) -> Trainer:
    cases, dist = store
    fields: dict[str, Any] = {"net": "Dimwit", "batch_size": 4, "amp": "off", "losses": "gdl:1"}
    cfg = TrainConfig(cases=str(cases), dist=str(dist), out=str(out), **{**fields, **kw})
    return Trainer(cfg, dev.choose("cpu", "off"), [])


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Predictor, bool]]:
    """Record every ``Predictor.predict`` call: (predictor, probabilities asked)."""
    calls: list[tuple[Predictor, bool]] = []
    original = Predictor.predict

    def predict(self: Predictor, image: np.ndarray, *, probabilities: bool = True) -> Any:
        calls.append((self, probabilities))
        return original(self, image, probabilities=probabilities)

    monkeypatch.setattr(Predictor, "predict", predict)
    return calls


def test_2d_trainer_predicts_test_cases_with_its_predictor(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _trainer(store, tmp_path / "m", context=1)
    predictor = trainer._model_predictor()
    assert isinstance(predictor, Predictor)
    assert predictor.model is trainer.forward_model and predictor.precision is trainer.precision
    assert (predictor.dims, predictor.batch_size, predictor.context) == (2, 4, 1)
    calls = _spy(monkeypatch)
    test = list(trainer._predictions(["toy_0", "toy_1"]))
    assert [case for case, _, _ in test] == ["toy_0", "toy_1"]
    assert [probs for _, probs in calls] == [False, False]  # labels only for the test
    assert all(p.model is trainer.forward_model for p, _ in calls)
    for case, labels, loss in test:
        again, _ = predictor.predict(np.asarray(trainer.store.image(case)))
        np.testing.assert_array_equal(labels, again)
        assert loss == (0.0, 0)
    # the validation of a 2D network: its own loop (the loss's batches run across cases)
    calls.clear()

    def loss_fn(logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return trainer._loss(logits, batch, 1)[0]

    val = list(trainer._predictions(["toy_2", "toy_3"], loss_fn))
    assert calls == [] and [case for case, _, _ in val] == ["toy_2", "toy_3"]
    assert sum(n for _, _, (_, n) in val) == 12  # 2 cases x 6 slices
    for case, labels, _ in val:  # the same labels as the predictor's on this store
        np.testing.assert_array_equal(labels, predictor.predict(trainer.store.image(case))[0])


def test_3d_validation_loss_is_that_of_the_predictors_probabilities(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _trainer(store, tmp_path / "m3", net="Dimwit3D", patch=(4, 16, 16),
                       losses="ce:1,dice:1", dist_kind="3d")  # fmt: skip
    calls = _spy(monkeypatch)

    def loss_fn(logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return trainer._loss(logits, batch, 1)[0]

    val = list(trainer._predictions(["toy_2", "toy_3"], loss_fn))
    assert [probs for _, probs in calls] == [True, True]
    trainer.model.eval()
    for case, labels, (loss, n) in val:
        image = torch.from_numpy(np.array(trainer.store.image(case)))
        probs = sliding_window_predict(trainer.model, image, (4, 16, 16), overlap=0.5,
                                       batch_size=4, precision=trainer.precision)  # fmt: skip
        assert len(tile_positions(tuple(image.shape[1:]), (4, 16, 16))) > 1  # stitched
        np.testing.assert_array_equal(labels, class_index(probs, 0).to(torch.uint8).numpy())
        batch = volume_batch(trainer.store, case, trainer.criterion.requires, dist_kind="3d")
        with torch.no_grad():
            expected = float(loss_fn(probs.clamp_min(1e-12).log()[None], batch))
        assert n == 1 and loss == expected and np.isfinite(loss) and loss > 0


def test_2d_labels_without_probabilities_are_the_same() -> None:
    """A 2D prediction without probabilities: the same labels, None for the
    probabilities; with them, the labels are their first class of highest value."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1).eval()  # 1 channel x (2 * context + 1)
    predictor = Predictor(net, dev.choose("cpu", "off"), dims=2, batch_size=2, context=1)
    image = np.random.default_rng(0).normal(size=(1, 5, 7, 6)).astype(np.float32)
    labels, probs = predictor.predict(image)
    only, none = predictor.predict(image, probabilities=False)
    assert none is None and only.dtype == np.uint8 and only.shape == (5, 7, 6)
    np.testing.assert_array_equal(only, labels)
    assert probs is not None and probs.shape == (3, 5, 7, 6)
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(labels, probs.argmax(0))
    assert len(np.unique(labels)) > 1
