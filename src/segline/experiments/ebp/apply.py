"""The EBP predictor: a trained shell network applied to one whole case.

One object (:class:`ShellPredictor`) serves the training's validation and test cases
(built on the network in memory) and ``segline-predict`` / the evaluation stage (loaded
from the folder, :meth:`ShellPredictor.load`), so the written test predictions are
what a user gets. Per case: the region of interest (:mod:`segline.experiments.ebp.roi`),
the pivot grid in it, every pivot's shell iterated by the network from D0 for the
test iterations, then selection and the vote (:func:`segline.experiments.ebp.inference.segment`).
The labels are 0 / 1 (background / the organ); there are no class probabilities, so
the folds of a cross-validated EBP method are not ensembled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from segline.casestore import CaseStore
from segline.errors import InputError
from segline.experiments.ebp import geometry as geo
from segline.experiments.ebp.inference import ShellConfig, segment
from segline.experiments.ebp.net import build_shell_model
from segline.experiments.ebp.roi import Box, PredictedRoi, largest_component_box, parse_roi
from segline.train import device as dev
from segline.train.device import Precision

__all__ = ["TIMING_COLUMNS", "ShellPredictor", "shell_config"]

TIMING_COLUMNS = ("roi_seconds", "shell_seconds", "reconstruction_seconds", "pivots", "kept")
"""Per-case facts of the last prediction (``test/timing.csv`` beyond ``seconds``)."""


def shell_config(args: dict[str, Any]) -> ShellConfig:
    """The inference settings a training recorded (``args.json``)."""
    h, w = (int(v) for v in args.get("directions", (16, 16)))
    return ShellConfig(
        h=h,
        w=w,
        iterations=int(args.get("iterations", geo.TEST_ITERATIONS)),
        tau=float(args.get("tau", 0.5)),
        pivot_step=tuple(int(v) for v in args.get("pivot_step", (3, 6, 6))),  # type: ignore[arg-type]
        batch=int(args.get("pivot_batch", 512)),
    )


class ShellPredictor:
    """A shell network and how a case is segmented with it (module docstring).

    Attributes:
        model: the :class:`~segline.experiments.ebp.net.ShellModel` in eval mode.
        precision: device and autocast dtype.
        cfg: the inference settings (:func:`shell_config`).
        roi: ``pred:<folder>`` or ``gt``.
        reads_labels: True for the oracle (``gt``): the evaluation stage then passes
            each case's label to :meth:`predict`.
        last_stats: the per-case facts of the last prediction (:data:`TIMING_COLUMNS`).
    """

    no_ensemble: ClassVar[str] = "EBP shell masks, no class probabilities"

    def __init__(
        self,
        model: torch.nn.Module,
        precision: Precision,
        cfg: ShellConfig,
        roi: str,
        roi_source: PredictedRoi | None,
        threads: int,
    ) -> None:
        self.model = model
        self.precision = precision
        self.cfg = cfg
        self.roi = roi
        self.roi_source = roi_source
        self.threads = threads
        self.reads_labels = parse_roi(roi)[0] == "gt"
        self.dirs = torch.from_numpy(geo.directions(cfg.h, cfg.w)).to(precision.device)
        self.last_stats: dict[str, float] = {}

    @classmethod
    def of_training(
        cls,
        model: torch.nn.Module,
        precision: Precision,
        args: dict[str, Any],
        store: CaseStore,
    ) -> ShellPredictor:
        """The predictor of a network (in memory or loaded) trained with ``args``; a
        ``pred:`` region of interest loads that method's predictor."""
        kind, folder = parse_roi(str(args["roi"]))
        source = None
        if folder is not None:
            device = str(precision.device)
            source = PredictedRoi(folder, store, device, str(args.get("amp", "auto")))
        threads = dev.recorded_threads(args)
        dev.use_threads(threads)  # the region's predictor set its training's count
        return cls(model, precision, shell_config(args), str(args["roi"]), source, threads)

    @classmethod
    def load(cls, folder: Path, store: CaseStore, device: str, amp: str) -> ShellPredictor:
        """The folder's best shell network on ``device``.

        Raises:
            InputError: no ``args.json`` / ``best.pt``, or weights that do not fit.
        """
        for name in ("args.json", "best.pt"):
            if not (folder / name).is_file():
                raise InputError(folder / name, "missing: train the EBP method first")
        args = json.loads((folder / "args.json").read_text())
        model = build_shell_model(
            args["net"], geo.input_channels(store.n_channels), args.get("net_kwargs", {})
        )
        try:
            state = torch.load(folder / "best.pt", map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except (RuntimeError, ValueError, OSError) as err:
            raise InputError(folder / "best.pt", f"does not fit {args['net']}: "
                             f"{str(err).splitlines()[0]}") from err  # fmt: skip
        chosen = str(args.get("amp", "auto")) if amp == "auto" else amp
        precision = dev.for_model(dev.choose(str(device), chosen), model)
        model.to(precision.device).eval()
        return cls.of_training(model, precision, args, store)

    def label_names(self, store: CaseStore) -> dict[int, str]:
        """Names of the label values the predictions hold: the store's classes."""
        return {int(k): str(v) for k, v in store.dataset["labels"].items()}

    def step_fn(self, image: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The learned step of a batch of shells on ``image`` (C, Z, Y, X on the device)."""

        def step(pivots: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
            inputs = geo.shell_inputs(image, pivots, radii, self.dirs)
            with self.precision.autocast():
                out = self.model(inputs)
            return out.float()

        return step

    def region(
        self, image: np.ndarray, label: np.ndarray | None = None
    ) -> tuple[Box | None, float]:
        """The box the pivots of ``image`` go in (None: nothing found) and the seconds
        it took: the region method's prediction, or the oracle's ``label``.

        Raises:
            InputError: the oracle without a label.
        """
        t0 = time.perf_counter()
        if self.reads_labels:
            if label is None:
                raise InputError("--roi gt", "the oracle's region of interest is the case's "
                                 "label: it cannot predict an unlabelled image")  # fmt: skip
            box = largest_component_box(np.asarray(label) > 0)
        else:
            assert self.roi_source is not None
            box = self.roi_source.box(np.asarray(image, dtype=np.float32))
            dev.use_threads(self.threads)
        return box, time.perf_counter() - t0

    def predict(
        self,
        image: np.ndarray,
        *,
        probabilities: bool = False,
        label: np.ndarray | None = None,
        region: tuple[Box | None, float] | None = None,
    ) -> tuple[np.ndarray, None]:
        """Labels (Z, Y, X) uint8 of ``image`` (C, Z, Y, X, the case store's grid) and
        None for the probabilities. ``label`` (the case's) is read by the oracle only;
        ``region``: the image's :meth:`region` when already known (a training validates
        the same cases every epoch with the same region method), else it is computed.

        Raises:
            InputError: the oracle without a label.
        """
        del probabilities  # there are none
        self.model.eval()
        image = np.array(image, dtype=np.float32)  # a writable copy (a store's is mapped)
        shape = image.shape[1:]
        box, roi_seconds = region if region is not None else self.region(image, label)
        if box is None:  # nothing to place pivots in: an empty prediction
            self.last_stats = {"roi_seconds": roi_seconds, "shell_seconds": 0.0,
                               "reconstruction_seconds": 0.0, "pivots": 0, "kept": 0}  # fmt: skip
            return np.zeros(shape, dtype=np.uint8), None
        volume = torch.from_numpy(image).to(self.precision.device)
        with torch.inference_mode():
            mask, stats = segment(
                self.step_fn(volume), shape, box[0], box[1], self.cfg, self.precision.device
            )
        self.last_stats = {
            "roi_seconds": roi_seconds,
            **{k: stats[k] for k in TIMING_COLUMNS if k in stats},
        }
        return mask.astype(np.uint8), None
