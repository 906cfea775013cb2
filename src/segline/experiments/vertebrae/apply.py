"""Apply a trained vertebra method folder: :func:`load_predictor`, :func:`predict_volume`.

``segline-predict`` and the evaluation stage get the predictor from the trainer class
the folder's ``args.json`` records (:meth:`segline.experiments.vertebrae.train.
VertebraTrainer.predictor`): ``args.json`` names the method, network and patch,
``best.pt`` holds the weights and ``classes.json`` the class names and label values.
The network is loaded once per folder and applied per image: instance ids 1, 2, ...
(:class:`IterativePredictor`) or VerSe label values (:class:`SemanticPredictor`), as
in the training's ``test/preds``; no class probabilities (an instance id is not a
class), so the folds of a cross-validated vertebra method are not ensembled. The
training predicts its validation and test cases with the same classes built on its
network in memory (:meth:`segline.experiments.vertebrae.train.VertebraTrainer._model_predictor`):
:meth:`IterativePredictor.segment` and :meth:`SemanticPredictor.class_map` are the steps
before the written labels that it scores.

Each prediction is described in a table (:attr:`InstancePredictor.last_table`), which
``segline-predict`` writes beside the predictions as ``instances.csv``
(:mod:`segline.experiments.vertebrae.instances`: per instance its voxels, whether it
touches the volume's border and the iterative method's completeness probability).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from segline.casestore import CaseStore
from segline.errors import InputError
from segline.experiments.vertebrae.inference import MIN_VOXELS, Sweep, net_step, sweep
from segline.experiments.vertebrae.instances import COLUMNS, INSTANCES_FILE, instance_table
from segline.experiments.vertebrae.postprocess import largest_component_per_class
from segline.nets import get_net
from segline.train import device as dev
from segline.train.device import Precision
from segline.train.labels import class_index
from segline.train.sliding import sliding_window_predict

__all__ = [
    "InstancePredictor",
    "IterativePredictor",
    "SemanticPredictor",
    "load_predictor",
    "predict_volume",
]


@dataclass
class InstancePredictor:
    """A vertebra method's network, loaded (:meth:`load`), and how it is applied.

    Attributes:
        folder: the trained method folder.
        args: its ``args.json``.
        classes: its ``classes.json`` (``classes``, ``label_values``).
        model: the network in eval mode on ``precision.device``.
        precision: device and autocast dtype (the training's ``amp`` unless another
            is asked for, adjusted per net as the trainer does).
        patch: the training patch (z, y, x voxels).
    """

    folder: Path
    args: dict[str, Any]
    classes: dict[str, Any]
    model: torch.nn.Module
    precision: Precision
    patch: tuple[int, ...]

    method: ClassVar[str] = ""
    """``args.json`` ``method`` of the folders this class applies."""
    last_table: tuple[str, tuple[str, ...], list[dict[str, Any]]] | None = None
    """(file name, columns, rows without ``case``) describing the last prediction of
    :meth:`predict`: ``instances.csv`` rows
    (:func:`segline.experiments.vertebrae.instances.instance_table`)."""
    no_ensemble: ClassVar[str] = "vertebra instance maps, no class probabilities"
    """Why the folds of such a method are not ensembled (segline.predicting.infer)."""

    @classmethod
    def channels(cls, image_channels: int, n_classes: int) -> tuple[int, int]:
        """The network's input and output channels."""
        raise NotImplementedError

    @classmethod
    def load(
        cls, folder: Path, image_channels: int, device: str = "cpu", amp: str = "auto"
    ) -> InstancePredictor:
        """The folder's best network for images of ``image_channels`` channels (the
        case store's) on ``device``, computing with the training's thread
        count (``args.json``) and, for ``amp`` ``auto``, its ``amp`` choice, so on the
        training's device the labels are its ``test/preds_zyx`` ones.

        Raises:
            InputError: the folder lacks ``args.json``, ``classes.json`` or
                ``best.pt``, or is not this method's.
        """
        folder = Path(folder)
        for name in ("args.json", "classes.json", "best.pt"):
            if not (folder / name).is_file():
                raise InputError(folder, f"no {name}: not a trained vertebra method folder")
        args = json.loads((folder / "args.json").read_text())
        classes = json.loads((folder / "classes.json").read_text())
        if args.get("method") != cls.method:
            raise InputError(folder / "args.json", f"not a {cls.method} vertebra method "
                             f"(method {args.get('method')!r})")  # fmt: skip
        n_in, n_out = cls.channels(image_channels, len(classes["classes"]))
        dev.use_threads(dev.recorded_threads(args))  # the training's, as its test predictions
        model = get_net(args["net"], n_in, n_out, **args.get("net_kwargs", {}))
        state = torch.load(folder / "best.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        chosen = str(args.get("amp", "auto")) if amp == "auto" else amp
        # the training's AMP knob on this device, adjusted per net as the trainer does
        precision = dev.for_model(dev.choose(str(device), chosen), model)
        model.to(precision.device).eval()
        patch = tuple(int(p) for p in args["patch"])
        return cls(folder, args, classes, model, precision, patch)

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, None]:
        """Labels (Z, Y, X) of ``image`` (C, Z, Y, X, the case store's geometry) and
        ``None`` in place of the probabilities."""
        if image.ndim != 4:
            raise InputError(self.folder, f"image must be (C, Z, Y, X), got shape {image.shape}")
        self.last_table = None
        labels, completeness = self._labels(np.asarray(image, dtype=np.float32))
        self.last_table = (INSTANCES_FILE, COLUMNS, instance_table(labels, completeness))
        return labels, None

    def _volume(self, image: np.ndarray) -> np.ndarray:
        """``image`` as float32, the network in eval mode (it may be a training's)."""
        self.model.eval()
        return np.asarray(image, dtype=np.float32)

    def _labels(self, volume: np.ndarray) -> tuple[np.ndarray, dict[int, float] | None]:
        """The written labels of ``volume`` and, per label, the completeness
        probability (None without one)."""
        raise NotImplementedError

    def label_names(self, store: CaseStore) -> dict[int, str]:
        """Names of the label values the predictions hold, for the viewers' label files."""
        names = {int(i): str(n) for i, n in self.classes["classes"].items()}
        values = {int(i): int(v) for i, v in self.classes["label_values"].items()}
        return {0: "background"} | {values[i]: names[i] for i in sorted(names) if i in values}


class IterativePredictor(InstancePredictor):
    """The iterative sweep (:func:`~segline.experiments.vertebrae.inference.sweep`) with
    windows of the training patch: instance ids 1..K."""

    method = "iterative"

    @classmethod
    def channels(cls, image_channels: int, n_classes: int) -> tuple[int, int]:
        """The image channels plus the instance memory in, one mask logit out."""
        return image_channels + 1, 1

    def sweep(self, image: np.ndarray) -> Sweep:
        """The sweep over ``image`` (C, Z, Y, X) with windows of the training patch
        (:func:`~segline.experiments.vertebrae.inference.sweep`): instance ids, network
        calls and each instance's completeness probability."""
        return sweep(
            net_step(self.model, self.precision, (self.patch[1], self.patch[2])),
            self._volume(image),
            self.patch,
            min_voxels=MIN_VOXELS,
        )

    def segment(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """Instance ids (Z, Y, X) of ``image`` (C, Z, Y, X) and the network calls the
        sweep took."""
        found = self.sweep(image)
        return found.labels, found.calls

    def _labels(self, volume: np.ndarray) -> tuple[np.ndarray, dict[int, float] | None]:
        found = self.sweep(volume)
        return found.labels, found.completeness

    def label_names(self, store: CaseStore) -> dict[int, str]:
        """Instance ids 1..K, K = the number of vertebra classes, in the order found."""
        n = len(self.classes["classes"])
        return {0: "background"} | {k: f"instance {k}" for k in range(1, n + 1)}


class SemanticPredictor(InstancePredictor):
    """Sliding windows, each class's largest component, VerSe values."""

    method = "semantic"

    @classmethod
    def channels(cls, image_channels: int, n_classes: int) -> tuple[int, int]:
        """The image channels in, one logit per vertebra class and background out."""
        return image_channels, n_classes + 1

    def class_map(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class indices (Z, Y, X) uint8 of ``image`` (C, Z, Y, X), each class's
        largest component kept, and the stitched softmax probabilities (K, Z, Y, X)
        float32 they come from."""
        with torch.inference_mode():
            probs = sliding_window_predict(
                self.model,
                torch.from_numpy(self._volume(image)),
                self.patch,
                overlap=float(self.args.get("overlap", 0.5)),
                batch_size=int(self.args.get("batch_size", 2)),
                precision=self.precision,
            )
        pred = class_index(probs, 0).to(torch.uint8).numpy()
        return largest_component_per_class(pred), probs.numpy()

    def _labels(self, volume: np.ndarray) -> tuple[np.ndarray, dict[int, float] | None]:
        pred, _ = self.class_map(volume)
        lut = np.zeros(len(self.classes["label_values"]), dtype=np.uint8)
        for i, v in self.classes["label_values"].items():
            lut[int(i)] = int(v)
        return lut[pred], None


PREDICTORS: dict[str, type[InstancePredictor]] = {
    "iterative": IterativePredictor,
    "semantic": SemanticPredictor,
}
"""The predictor class of each ``--method``."""


def load_predictor(
    method_dir: Path, image_channels: int, device: str = "cpu", amp: str = "auto"
) -> InstancePredictor:
    """The predictor of a trained vertebra method folder (its ``args.json`` ``method``)
    for images of ``image_channels`` channels.

    Raises:
        InputError: the folder lacks ``args.json`` or is no vertebra method's.
    """
    folder = Path(method_dir)
    if not (folder / "args.json").is_file():
        raise InputError(folder, "no args.json: not a trained vertebra method folder")
    method = json.loads((folder / "args.json").read_text()).get("method")
    if method not in PREDICTORS:
        raise InputError(folder / "args.json", "not a vertebra method (no 'method')")
    return PREDICTORS[method].load(folder, image_channels, device, amp)


def predict_volume(
    method_dir: Path, image: np.ndarray, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Labels (Z, Y, X) of ``image`` (C, Z, Y, X, the case store's geometry) by the
    method in ``method_dir``: instance ids 1, 2, ... (iterative) or VerSe label values
    (semantic), as in its ``test/preds``; computed on ``device`` with the training's
    ``amp`` choice and thread count (:meth:`InstancePredictor.load`)."""
    if image.ndim != 4:
        raise InputError(method_dir, f"image must be (C, Z, Y, X), got shape {image.shape}")
    return load_predictor(Path(method_dir), image.shape[0], str(device)).predict(image)[0]
