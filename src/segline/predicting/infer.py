"""A trained method's network applied to one preprocessed volume: the one place
where an image becomes labels and probabilities.

:func:`load_predictor` asks the trainer class the method's ``args.json`` records
(``trainer``, :mod:`segline.train.trainers`; the core trainer when it records none)
for its predictor (:meth:`segline.train.loop.Trainer.predictor`). The core trainer's
is :func:`network_predictor`: the network named in ``args.json`` (net, options, 2.5D
context, 3D patch size and overlap, batch size) with the case store's channel and
class counts, ``best.pt`` loaded, applied as :meth:`Predictor.of` says. The training
itself predicts its test cases (and a 3D network its validation cases) with the same
object built on the network in memory (:meth:`segline.train.loop.Trainer._model_predictor`),
so ``test/preds_zyx`` are the labels ``segline-predict`` gives on the training's device
and thread count. :meth:`Predictor.predict` predicts one image (C, Z, Y, X) on the
training grid:

* 2D networks slice by slice along z, ``batch_size`` slices per forward pass, each
  slice with its ``context`` neighbours on each side as extra channels (edge slices
  repeated), as :class:`segline.data.slices.SliceDataset` builds a training slice;
  labels are the first class of highest logit (:func:`segline.train.labels.class_index`),
  probabilities their softmax;
* 3D networks by Gaussian-weighted sliding windows of the training patch size
  (:func:`segline.train.sliding.sliding_window_predict`).

Batches never mix two cases, so a case's prediction does not depend on which other
cases are predicted with it. (The validation of a 2D network is the one prediction
made otherwise: :func:`segline.train.evaluate.predict_cases` batches the slices of
consecutive cases together, as its loss is a mean over those batches.)

A cross-validated method (``FOLDS``: its folder holds ``fold<i>`` trainings, with
seeds ``fold<i>/seed<k>``, :func:`fold_trainings`) predicts with all its models, as
nnU-Net ensembles its folds: :class:`EnsemblePredictor` averages their softmax
probabilities and labels each voxel with the first class of highest mean probability.
A method whose predictor gives no class probabilities (an experiment's, e.g. instance
maps) has its folds refused in one line: predict with one fold's folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from segline.casestore import CaseStore
from segline.errors import InputError
from segline.nets import get_net
from segline.preprocess.geometry import scores_to_source
from segline.train import device as dev
from segline.train.device import Precision
from segline.train.labels import class_index
from segline.train.sliding import sliding_window_predict

if TYPE_CHECKING:
    from segline.train.loop import Trainer

FOLD_FOLDER = re.compile(r"fold(0|[1-9][0-9]*)")
SEED_FOLDER = re.compile(r"seed(0|[1-9][0-9]*)")


def fold_trainings(method: Path) -> list[Path]:
    """The trainings of a cross-validated method folder: ``fold<i>`` (or, with seeds,
    each ``fold<i>/seed<k>``), sorted by fold then seed; empty when ``method`` is a
    training itself (holds ``args.json``) or holds no fold folders."""
    if (method / "args.json").is_file() or not method.is_dir():
        return []

    def number(p: Path) -> int:
        return int(p.name[4:])

    folds = sorted((p for p in method.iterdir() if FOLD_FOLDER.fullmatch(p.name)
                    and p.is_dir()), key=number)
    out: list[Path] = []
    for fold in folds:
        seeds = sorted((p for p in fold.iterdir() if SEED_FOLDER.fullmatch(p.name)
                        and p.is_dir()), key=number)
        out += seeds or [fold]
    return out


def read_args(method: Path) -> dict[str, Any]:
    """The method's ``args.json``, after checking that it was trained (``best.pt``); a
    cross-validated method's: its first fold's (every fold trains with the same
    settings but ``fold``)."""
    trainings = fold_trainings(method)
    if trainings:
        return read_args(trainings[0])
    for need in ("best.pt", "args.json"):
        if not (method / need).is_file():
            raise InputError(method / need, "missing: train the method first")
    try:
        return json.loads((method / "args.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(method / "args.json", f"unreadable: {err}") from err


@dataclass
class Predictor:
    """A loaded network and how it is applied (from ``args.json``).

    Attributes:
        model: the network in eval mode on ``precision.device``.
        precision: device, autocast dtype, memory format.
        dims: 2 (slice by slice) or 3 (sliding window).
        batch_size: slices (2D) or tiles (3D) per forward pass.
        context: 2.5D neighbours on each side (2D nets).
        patch: 3D tile size (D, H, W) in voxels.
        overlap: 3D tile overlap fraction.
    """

    model: torch.nn.Module
    precision: Precision
    dims: int
    batch_size: int
    context: int = 0
    patch: tuple[int, ...] = ()
    overlap: float = 0.5

    @classmethod
    def of(
        cls, model: torch.nn.Module, precision: Precision, args: dict[str, Any], dims: int
    ) -> Predictor:
        """How a network trained with ``args`` (its ``args.json``, or the training's
        :meth:`segline.train.loop.TrainConfig.identity`) is applied: its batch size,
        2.5D context, 3D patch and overlap. ``model`` is on ``precision.device`` in its
        memory format; ``dims`` is the network's (2 or 3)."""
        return cls(
            model,
            precision,
            dims,
            int(args["batch_size"]),
            int(args.get("context", 0)),
            tuple(int(p) for p in args.get("patch", ())),
            float(args.get("overlap", 0.5)),
        )

    def label_names(self, store: CaseStore) -> dict[int, str]:
        """Names of the label values the predictions hold: the store's classes."""
        return {int(k): str(v) for k, v in store.dataset["labels"].items()}

    def predict(
        self, image: np.ndarray, *, probabilities: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (Z, Y, X) uint8 and softmax probabilities (K, Z, Y, X) float32 of
        ``image`` (C, Z, Y, X); the network is put in eval mode first. Without
        ``probabilities`` a 2D network's are not computed (None; a 3D network's
        labels come from them, so they are returned anyway)."""
        self.model.eval()
        if self.dims == 3:
            with torch.inference_mode():
                probs = sliding_window_predict(
                    self.model,
                    torch.from_numpy(np.asarray(image, dtype=np.float32)),
                    self.patch,
                    overlap=self.overlap,
                    batch_size=self.batch_size,
                    precision=self.precision,
                )
            return class_index(probs, 0).to(torch.uint8).numpy(), probs.numpy()
        return self._predict_2d(np.asarray(image, dtype=np.float32), probabilities)

    def _predict_2d(
        self, image: np.ndarray, probabilities: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Slice batches of one case; the labels stay on the device until the case is
        done (one host synchronisation per case, the probabilities apart)."""
        depth, shape = image.shape[1], image.shape[2:]
        device = self.precision.device
        labels = torch.empty((depth, *shape), dtype=torch.uint8, device=device)
        probs: np.ndarray | None = None
        with torch.inference_mode():
            for start in range(0, depth, self.batch_size):
                zs = range(start, min(start + self.batch_size, depth))
                slices = []
                for z in zs:
                    if self.context:
                        near = np.clip(
                            np.arange(z - self.context, z + self.context + 1), 0, depth - 1
                        )
                        slices.append(image[:, near].reshape(-1, *shape))
                    else:
                        slices.append(image[:, z])
                x = torch.from_numpy(np.stack(slices)).to(device)
                if self.precision.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with self.precision.autocast():
                    logits = self.model(x)
                logits = logits.float()
                labels[start : start + len(zs)] = class_index(logits).to(torch.uint8)
                if not probabilities:
                    continue
                soft = logits.softmax(dim=1).cpu().numpy()
                if probs is None:
                    probs = np.empty((soft.shape[1], depth, *shape), dtype=np.float32)
                probs[:, start : start + len(zs)] = soft.transpose(1, 0, 2, 3)
        assert probs is not None or not probabilities
        return labels.cpu().numpy(), probs


@dataclass
class EnsemblePredictor:
    """A cross-validated method's fold models applied together (nnU-Net's ensemble).

    Attributes:
        members: one predictor per fold training (:func:`fold_trainings`).
    """

    members: list[Predictor]

    def label_names(self, store: CaseStore) -> dict[int, str]:
        """Names of the label values the predictions hold: the store's classes."""
        return self.members[0].label_names(store)

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels (Z, Y, X) uint8: the first class of highest mean probability, and the
        mean (K, Z, Y, X) float32 of the members' softmax probabilities."""
        total: np.ndarray | None = None
        for member in self.members:
            _, probs = member.predict(image)
            assert probs is not None
            total = probs.astype(np.float64) if total is None else total + probs
        assert total is not None
        mean = (total / len(self.members)).astype(np.float32)
        return class_index(torch.from_numpy(mean), 0).to(torch.uint8).numpy(), mean


class MethodPredictor(Protocol):
    """What a trainer's predictor offers (:meth:`segline.train.loop.Trainer.predictor`)."""

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (Z, Y, X) and class probabilities (K, Z, Y, X), or None without."""
        ...

    def label_names(self, store: CaseStore) -> dict[int, str]:
        """Names of the label values the predictions hold."""
        ...


def recorded_trainer(method: Path) -> type[Trainer]:
    """The trainer class of a trained method folder (a cross-validated one: its first
    fold's), as its ``args.json`` records it (:func:`segline.train.trainers.trainer_class`)."""
    from segline.train.trainers import trainer_class

    trainings = fold_trainings(method)
    where = (trainings[0] if trainings else method) / "args.json"
    return trainer_class(read_args(method), where)


def load_predictor(
    method: Path, store: CaseStore, device: str = "auto", amp: str = "auto"
) -> MethodPredictor:
    """The method's best model on ``device`` (``auto``: the trainer's choice), built by
    the trainer class its ``args.json`` records (:func:`recorded_trainer`), this
    process computing with the training's thread count (``args.json`` ``threads``):
    the threads change the last bits of the logits, so with the training's count a
    near-tie between two classes is decided as in its test predictions. A
    cross-validated method's folder: the :class:`EnsemblePredictor` of its folds,
    refused (one line) when their predictor gives no class probabilities."""
    trainings = fold_trainings(method)
    if trainings:
        members = [load_predictor(t, store, device, amp) for t in trainings]
        for member in members:
            if not isinstance(member, Predictor):
                why = getattr(member, "no_ensemble", "no class probabilities")
                raise InputError(method, f"the folds of this method are not ensembled ({why}): "
                                 "predict with one fold's folder instead "
                                 f"(segline-predict --method {trainings[0]})")  # fmt: skip
        return EnsemblePredictor([m for m in members if isinstance(m, Predictor)])
    args = read_args(method)
    dev.use_threads(dev.recorded_threads(args))
    return recorded_trainer(method).predictor(method, store, device, amp)


def network_predictor(
    method: Path, store: CaseStore, device: str = "auto", amp: str = "auto"
) -> Predictor:
    """The core trainer's predictor of a trained folder: the network of its
    ``args.json`` with ``best.pt`` loaded (module docstring).

    Raises:
        InputError: ``best.pt`` does not fit the network and the store's channels and
            classes.
    """
    args = read_args(method)
    precision = dev.choose(device, amp)
    context = int(args.get("context", 0))
    in_ch = store.n_channels * (2 * context + 1)
    model = get_net(args["net"], in_ch, store.n_classes, **args.get("net_kwargs", {}))
    try:
        state = torch.load(method / "best.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, ValueError, OSError) as err:
        raise InputError(
            method / "best.pt",
            f"does not fit {args['net']} with {in_ch} "
            f"input channel(s) and {store.n_classes} classes of "
            f"{store.root}: {str(err).splitlines()[0]}",
        ) from err
    model = model.to(precision.device)
    precision = dev.for_model(precision, model)
    dims = int(getattr(model, "dims", 2))
    model = dev.to_memory_format(model, precision.memory_format(dims))
    model.eval()
    return Predictor.of(model, precision, args, dims)


def probabilities_to_source(probs: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Probabilities (K, Z, Y, X) on the training grid -> (X, Y, Z, K) float32 on the
    source grid: each class resampled back linearly (a linear resampling of values that
    sum to 1 still sums to 1), cropped-away voxels background with probability 1."""
    k = probs.shape[0]
    first = scores_to_source(probs[0], meta, fill=1.0)
    out = np.empty((*first.shape, k), dtype=np.float32)
    out[..., 0] = first
    for c in range(1, k):
        out[..., c] = scores_to_source(probs[c], meta, fill=0.0)
    return out
