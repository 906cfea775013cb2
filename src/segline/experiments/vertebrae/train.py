"""Trainers of the vertebra methods (``python -m segline.experiments.vertebrae.train``).

Two methods (``--method``), one trainer class each on a shared base
(:class:`VertebraTrainer`):

- ``iterative`` (Lessmann et al., 2019), :class:`IterativeTrainer`:
  :class:`~segline.nets.iterative_fcn.IterativeFCN` trained on patches of
  :class:`~segline.experiments.vertebrae.sampler.IterativeSampler` with
  :class:`~segline.experiments.vertebrae.loss.IterativeLoss`, segmenting one vertebra
  at a time with :func:`~segline.experiments.vertebrae.inference.iterative_segment`;
- ``semantic``, :class:`SemanticTrainer`: a multi-class 3D network (``UNet3D``; one
  class per vertebra plus background) trained on random patches
  (:class:`segline.data.patches.PatchDataset`, ``--losses`` spec of
  :mod:`segline.losses`, e.g. ``dice:1``) and applied with sliding windows
  (:mod:`segline.train.sliding`), each class then reduced to its largest connected
  component (:func:`segline.experiments.vertebrae.postprocess.largest_component_per_class`,
  in validation, test and :mod:`segline.experiments.vertebrae.apply` alike).

Each is :class:`segline.train.loop.Trainer` with other hooks (network, loss, training
patches, evaluation), so it writes the same method folder (docs/CONTRACTS.md) with
the same seeding, device choice, resume, lineage, provenance and atomic rename, and
takes the same options as ``python -m segline.train`` (make's ``TRAIN_PARAMS``),
refusing with one line those it does not support (:meth:`VertebraTrainer.check_options`).
``args.json`` records the class (``trainer``), so ``segline-predict`` and the
evaluation stage apply the folder through it (:meth:`VertebraTrainer.predictor`,
:meth:`VertebraTrainer.source_scorer`); the training predicts its validation and test
cases with the same predictor classes on its network in memory
(:meth:`VertebraTrainer._model_predictor`). Differences:

- ``metrics.csv`` holds :func:`segline.metrics.instances.instance_rows` (per vertebra
  ``dice``/``assd``, per case class ``spine``: ``dice``, ``assd``, ``id_rate``,
  ``false_positives``, ``misses``); ``epochs.csv`` has the extra column
  ``val_id_rate``, and ``val_dice``/``val_assd`` are
  :func:`~segline.metrics.instances.summary`'s (``val_hd95`` is NaN: no instance HD95);
- the **best epoch** has the highest validation identification rate, ties broken by
  the higher validation Dice (score ``id_rate * 1e6 + dice``: exact while a split has
  fewer than a million vertebrae); ``args.json`` ``selected_on`` says so
  (``["val_id_rate", "val_dice"]``);
- ``test/preds/<case>.nii.gz``: the iterative method's instance ids (1, 2, ... from
  the low end of z), the semantic method's VerSe label values (``dataset.json``
  ``label_values``); ``classes.json`` records the class names and values for
  :mod:`segline.experiments.vertebrae.apply`; ``test/instances.csv`` flags each
  predicted instance that touches the volume's border or that the iterative network
  found incomplete (:mod:`segline.experiments.vertebrae.instances`);
- the iterative method's validation loss is its loss on fixed validation patches
  (:data:`VAL_PATCHES_PER_CASE`), as its inference is no single forward pass; the
  epoch line also prints the network calls per vertebra.

Example:
    python -m segline.experiments.vertebrae.train --method iterative \\
        --cases data/vertebrae-toy/cases --dist data/vertebrae-toy/dist \\
        --out results/vertebrae-toy/iterative --epochs 2
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from segline import atomic
from segline.casestore import CaseStore
from segline.cli import cli_of, entry, prog
from segline.errors import InputError
from segline.experiments.vertebrae.apply import PREDICTORS
from segline.experiments.vertebrae.instances import INSTANCES_FILE, instances_csv
from segline.experiments.vertebrae.loss import DEFAULT_SPEC, IterativeLoss
from segline.experiments.vertebrae.sampler import COMPLETE_FRAC, IterativeSampler
from segline.metrics.instances import instance_rows, summary
from segline.nets import get_net, get_net_class
from segline.nets.iterative_fcn import IterativeFCN
from segline.train import cli as train_cli
from segline.train.evaluate import volume_batch, volume_loss
from segline.train.loop import EPOCH_COLUMNS, TrainConfig, Trainer, epoch_index

__all__ = [
    "DEFAULTS",
    "METHODS",
    "TRAINERS",
    "IterativeTrainer",
    "SemanticTrainer",
    "VertebraConfig",
    "VertebraTrainer",
    "build_parser",
    "main",
]

METHODS = ("iterative", "semantic")
DEFAULTS: dict[str, dict[str, str]] = {
    "iterative": {"net": "IterativeFCN", "losses": DEFAULT_SPEC, "patch": "16,40,40"},
    "semantic": {"net": "UNet3D", "losses": "dice:1", "patch": "96,40,40"},
}
"""Per method, the defaults of ``--net``, ``--losses`` and ``--patch`` (z, y, x voxels)
when the command line leaves them out (make passes its own). Patches as tuned on the
toy at 2 mm (cross-sections of 35-42 voxels, vertebrae 3-8 slices tall, 8-12 apart):
the iterative patch holds one vertebra and most of the next (16 slices, 32 mm); the
semantic one the whole spine (96 slices hold every toy case, 67-93 slices, padded at
the end): a vertebra's class depends on its place along the spine. The semantic
method's loss is the soft Dice over its 18 classes (``dice:1``), which rewards every
class alike: with each vertebra class about 0.7 % of a patch's voxels, cross-entropy
is won by the background. The toy recipes tried (make's knobs in vertebrae.make),
their times and test numbers: bench/RESULTS.md, "Vertebrae trainer: toy recipes
tried"."""
SAMPLES_PER_CASE = 16
"""Training patches per training case and epoch when ``--samples-per-epoch`` is not
given (8 per epoch in all with ``--debug``)."""
VAL_PATCHES_PER_CASE = 8
"""The iterative method's validation loss: the mean loss over this many fixed patches
per validation case (:class:`IterativeSampler` draw of epoch 0, without augmentation,
the same every epoch), as its inference is no single forward pass."""
SCORE_SCALE = 1e6
"""Best-epoch score ``id_rate * SCORE_SCALE + dice``: identification first."""
CLASSES_FILE = "classes.json"


@dataclass
class VertebraConfig(TrainConfig):
    """:class:`TrainConfig` plus the method and the iterative method's completeness
    rule (``args.json``)."""

    method: str = "iterative"
    complete_frac: float = COMPLETE_FRAC
    """Share of the target vertebra's voxels inside a training patch for completeness
    label 1 (:class:`~segline.experiments.vertebrae.sampler.IterativeSampler`)."""


def _names(dataset: dict[str, Any]) -> dict[int, str]:
    """Class index -> vertebra name (``classes`` list, else ``labels`` mapping)."""
    if "classes" in dataset:
        return {i: str(n) for i, n in enumerate(dataset["classes"]) if i}
    return {int(i): str(n) for i, n in dataset["labels"].items() if int(i)}


def _values(dataset: dict[str, Any]) -> dict[int, int]:
    """Class index -> written label value (``label_values``, or ``source_info``'s as
    the VerSe adapter writes it; the index itself without)."""
    values = dataset.get("label_values") or dataset.get("source_info", {}).get("label_values", {})
    return {i: int(values.get(str(i), i)) for i in range(len(_names(dataset)) + 1)}


class VertebraTrainer(Trainer):
    """What the vertebra methods share on :class:`Trainer`'s loop (module docstring):
    the instance metrics, the selection on the identification rate, ``classes.json``,
    the option checks, the predictor and the evaluation stage's scorer. A method is a
    subclass setting :attr:`method` and :meth:`_predict`."""

    config_cls = VertebraConfig
    module = "segline.experiments.vertebrae.train"
    epoch_columns = [*EPOCH_COLUMNS, "val_id_rate"]
    selected_on = ("val_id_rate", "val_dice")
    method: ClassVar[str] = ""
    """The ``--method`` (``args.json`` ``method``) this class trains."""

    def __init__(self, cfg: VertebraConfig, *args: Any, **kwargs: Any) -> None:
        if cfg.method != self.method:
            raise ValueError(f"{type(self).__name__} trains --method {self.method}, "
                             f"got {cfg.method!r}")  # fmt: skip
        super().__init__(cfg, *args, **kwargs)
        self.names = _names(self.store.dataset)
        self.values = _values(self.store.dataset)
        self.gt_instances = 0  # ground-truth vertebrae of the last evaluation
        # per case, instance id -> completeness probability of the last prediction
        # (the iterative method's; empty for the semantic one)
        self.completeness: dict[str, dict[int, float]] = {}
        self.test_preds: dict[str, np.ndarray] = {}

    # -- class hooks of Trainer ----------------------------------------------------
    @classmethod
    def refusals(cls, args: argparse.Namespace) -> list[tuple[str, bool, str]]:
        """(option, refused, why) of the options of ``python -m segline.train`` this
        method does not support; those of both methods here."""
        return [
            ("--context (CONTEXT)", args.context != 0, "2.5D context is for 2D networks"),
            (
                "--metrics",
                args.metrics != "dice,hd95,assd",
                "the vertebra methods compute the instance metrics (segline.metrics.instances)",
            ),
        ]

    @classmethod
    def check_options(cls, args: argparse.Namespace) -> None:
        """Fill the method's defaults (:data:`DEFAULTS`) and refuse, one line each, the
        options it does not support (:meth:`refusals`)."""
        for key, value in DEFAULTS[cls.method].items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        frac = getattr(args, "complete_frac", COMPLETE_FRAC)
        if not 0.0 < frac <= 1.0:
            raise InputError("--complete-frac", f"must be in (0, 1], got {frac}")
        for option, refused, why in cls.refusals(args):
            if refused:
                raise InputError(option, f"not supported by --method {cls.method}: {why}")

    @classmethod
    def predictor(cls, method: Path, store: CaseStore, device: str, amp: str) -> Any:
        """The folder's instance predictor
        (:class:`segline.experiments.vertebrae.apply.InstancePredictor`)."""
        from segline.experiments.vertebrae.apply import load_predictor

        return load_predictor(method, store.n_channels, device, amp)

    @classmethod
    def source_scorer(cls, method: Path) -> Any:
        """The matched-instance metrics against the original VerSe masks
        (:class:`segline.experiments.vertebrae.evaluate.InstanceScorer`)."""
        from segline.experiments.vertebrae.evaluate import InstanceScorer

        return InstanceScorer.of(method)

    # -- hooks of Trainer ----------------------------------------------------------
    def _classes_record(self) -> dict[str, Any]:
        """``classes.json``: the method, class names and written label values."""
        return {
            "method": self.cfg.method,
            "classes": {str(i): n for i, n in sorted(self.names.items())},
            "label_values": {str(i): v for i, v in sorted(self.values.items())},
        }

    def _prepare_work(self) -> dict[str, Any] | None:
        state = super()._prepare_work()
        atomic.write_json(self.work / CLASSES_FILE, self._classes_record())
        return state

    def _model_predictor(self) -> Any:
        """The method's predictor (:data:`segline.experiments.vertebrae.apply.PREDICTORS`)
        on the network in memory, as :meth:`predictor` loads it from the folder."""
        return PREDICTORS[self.method](
            self.work,
            self.cfg.identity(),
            self._classes_record(),
            self.forward_model,
            self.precision,
            tuple(int(p) for p in self.cfg.patch),
        )

    def _predict(
        self, epoch: int, cases: list[str], with_loss: bool
    ) -> tuple[dict[str, np.ndarray], float, int]:
        """The method's labels (Z, Y, X) of ``cases`` and, ``with_loss``, the summed
        validation loss and its count."""
        raise NotImplementedError

    def _evaluate(
        self, epoch: int, split: str, cases: list[str], with_loss: bool
    ) -> tuple[list[dict[str, Any]], float, dict[str, np.ndarray]]:
        """Predict ``cases`` (:meth:`_predict`); :func:`instance_rows` per case."""
        preds, loss_sum, loss_n = self._predict(epoch, cases, with_loss)
        if split == "test":
            self.test_preds = preds
        rows: list[dict[str, Any]] = []
        n_gt = 0
        for case in cases:
            gt = np.asarray(self.store.label(case))
            spacing = tuple(float(s) for s in self.store.meta(case)["spacing"])
            n_gt += int(np.count_nonzero(np.bincount(gt.ravel())[1:]))
            for row in instance_rows(preds[case], gt, spacing, self.names):  # type: ignore[arg-type]
                rows.append({"epoch": epoch, "split": split, "case": case, **row})
        self.gt_instances = n_gt
        return rows, (loss_sum / loss_n if loss_n else math.nan), preds

    def _test(
        self, best_epoch: int, records: list[dict[str, Any]], epochs: list[dict[str, Any]]
    ) -> None:
        """The core trainer's test stage, then ``test/instances.csv``: per written
        instance its voxels, whether it touches the volume's border and its
        completeness probability (:mod:`segline.experiments.vertebrae.instances`)."""
        super()._test(best_epoch, records, epochs)
        labels = {case: self._written(pred) for case, pred in self.test_preds.items()}
        atomic.write_text(
            self.work / "test" / INSTANCES_FILE, instances_csv(labels, self.completeness)
        )
        self.test_preds = {}

    def _validate(self, epoch: int) -> tuple[list[dict[str, Any]], float, dict[str, float], float]:
        rows, val_loss, _ = self._evaluate(epoch, "val", self.val_cases, with_loss=True)
        s = summary(rows)
        columns = {
            "val_dice": s["dice"],
            "val_hd95": math.nan,
            "val_assd": s["assd"],
            "val_id_rate": s["id_rate"],
        }
        id_rate = 0.0 if math.isnan(s["id_rate"]) else s["id_rate"]
        dice = 0.0 if math.isnan(s["dice"]) else s["dice"]
        return rows, val_loss, columns, id_rate * SCORE_SCALE + dice

    def _val_note(self, columns: dict[str, float]) -> str:
        return (
            f"val id rate {columns['val_id_rate']:.3f}  dice {columns['val_dice']:.4f}  "
            f"assd {columns['val_assd']:.2f} mm"
        )

    def _best_note(self, best_score: float) -> str:
        id_rate = math.floor(best_score / SCORE_SCALE * 1e4) / 1e4 if best_score >= 0 else math.nan
        return f"val id rate {id_rate:.3f}"


class IterativeTrainer(VertebraTrainer):
    """The iterative FCN (module docstring): one vertebra at a time, its validation
    loss on fixed patches (:data:`VAL_PATCHES_PER_CASE`)."""

    method = "iterative"
    weights_3d = True

    def __init__(self, cfg: VertebraConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.net_calls = 0  # network calls of the last evaluation
        self.n_classes = 2  # the training Dice is the sought vertebra's mask
        self.val_patches = IterativeSampler(
            self.store,
            self.val_cases,
            cfg.patch,
            samples_per_epoch=VAL_PATCHES_PER_CASE * len(self.val_cases),
            seed=cfg.seed,
            weight_map=cfg.weight_map,
            complete_frac=cfg.complete_frac,
        )

    @classmethod
    def refusals(cls, args: argparse.Namespace) -> list[tuple[str, bool, str]]:
        return [
            *super().refusals(args),
            (
                "--dist-kind (DIST)",
                args.dist_kind != "3d",
                "the iterative method's weight map needs the 3D distance maps (3d)",
            ),
            ("--fg-ratio", args.fg_ratio != 0.33, "the iterative method samples per vertebra"),
            ("--overlap", args.overlap != 0.5, "the iterative method slides along z only"),
        ]

    def _build_net(self) -> torch.nn.Module:
        cfg = self.cfg
        if get_net_class(cfg.net) is not IterativeFCN:
            raise ValueError(f"the iterative method needs --net IterativeFCN, got {cfg.net!r}")
        return get_net(cfg.net, self.store.n_channels + 1, 1, **cfg.net_kwargs)

    def _build_criterion(self) -> Any:
        return IterativeLoss.from_spec(self.cfg.losses)

    def _count_dice(
        self, logits: Any, batch: dict[str, Any], inter: torch.Tensor, sums: torch.Tensor
    ) -> None:
        p, t = logits[0] > 0, batch["target"] > 0.5
        inter[0] += (p & t).sum()
        sums[0] += p.sum() + t.sum()

    def _train_dataset(self) -> Any:
        cfg = self.cfg
        n = cfg.samples_per_epoch or (8 if cfg.debug else SAMPLES_PER_CASE * len(self.train_cases))
        return IterativeSampler(
            self.store,
            self.train_cases,
            cfg.patch,
            samples_per_epoch=n,
            seed=cfg.seed,
            weight_map=cfg.weight_map,
            aug=cfg.aug,
            complete_frac=cfg.complete_frac,
        )

    def _train_loader(self, ds: Any, epoch: int) -> DataLoader:
        ds.set_epoch(epoch_index(epoch))
        return DataLoader(ds, batch_size=self.cfg.batch_size, shuffle=False, **self.loader_opts)

    def _predict(
        self, epoch: int, cases: list[str], with_loss: bool
    ) -> tuple[dict[str, np.ndarray], float, int]:
        """The iterative sweep per case (:meth:`IterativePredictor.segment
        <segline.experiments.vertebrae.apply.IterativePredictor.segment>`); the loss on
        the fixed validation patches."""
        self.model.eval()
        predictor = self._model_predictor()
        loss_sum, loss_n = self._fixed_loss(self.val_patches, epoch) if with_loss else (0.0, 0)
        preds: dict[str, np.ndarray] = {}
        calls = 0
        self.completeness = {}
        for case in cases:
            image = np.array(self.store.image(case), dtype=np.float32)
            found = predictor.sweep(image)
            preds[case] = found.labels
            self.completeness[case] = found.completeness
            calls += found.calls
        self.net_calls = calls
        return preds, loss_sum, loss_n

    def _val_note(self, columns: dict[str, float]) -> str:
        per_vertebra = self.net_calls / max(self.gt_instances, 1)
        return f"{super()._val_note(columns)}  {per_vertebra:.1f} net calls/vertebra"


class SemanticTrainer(VertebraTrainer):
    """The semantic baseline (module docstring): the core trainer's 3D patches, loss
    and sliding windows, each class reduced to its largest component, VerSe values
    written."""

    method = "semantic"

    @classmethod
    def refusals(cls, args: argparse.Namespace) -> list[tuple[str, bool, str]]:
        return [
            *super().refusals(args),
            (
                "--aug (AUG)",
                args.aug != "none",
                "the semantic method trains without augmentation (flips would swap vertebrae)",
            ),
            (
                "--weight-map (WEIGHT_MAP)",
                args.weight_map is not None,
                "boundary weights are the iterative method's",
            ),
            (
                "--complete-frac",
                getattr(args, "complete_frac", COMPLETE_FRAC) != COMPLETE_FRAC,
                "the completeness label is the iterative method's",
            ),
        ]

    def _build_net(self) -> torch.nn.Module:
        cls = get_net_class(self.cfg.net)
        if cls is IterativeFCN or getattr(cls, "dims", 2) != 3:
            raise ValueError(
                f"the semantic method needs a 3D net such as UNet3D, got {self.cfg.net!r}"
            )
        net = super()._build_net()
        # contiguous tensors (segline.train.device.for_model): UNet3D base=4, depth=3,
        # 18 classes, bf16, 2 patches of 32x40x40 on the 2-core Xeon: 0.42 s per step
        # against 0.77 s in channels_last_3d (the class keeps its layout elsewhere)
        net.channels_last_ok = False
        return net

    def _predict(
        self, epoch: int, cases: list[str], with_loss: bool
    ) -> tuple[dict[str, np.ndarray], float, int]:
        """Sliding windows per case, each class's largest component kept
        (:meth:`SemanticPredictor.class_map
        <segline.experiments.vertebrae.apply.SemanticPredictor.class_map>`); the
        validation loss of each whole case from its stitched probabilities."""

        def loss_fn(logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
            return self._loss(logits, batch, epoch)[0]

        predictor = self._model_predictor()
        preds: dict[str, np.ndarray] = {}
        loss_sum, loss_n = 0.0, 0
        for case in cases:
            image = np.array(self.store.image(case), dtype=np.float32)
            preds[case], probs = predictor.class_map(image)
            if with_loss:
                batch = volume_batch(self.store, case, self.criterion.requires,
                                     dist_kind="3d", inputs=self.batch_inputs)  # fmt: skip
                loss_sum += volume_loss(probs, batch, loss_fn, self.precision.device)
                loss_n += 1
        return preds, loss_sum, loss_n

    def _written(self, pred: np.ndarray) -> np.ndarray:
        lut = np.zeros(max(self.values) + 1, dtype=np.uint8)
        for i, v in self.values.items():
            lut[i] = v
        return lut[pred]


TRAINERS: dict[str, type[VertebraTrainer]] = {
    "iterative": IterativeTrainer,
    "semantic": SemanticTrainer,
}
"""The trainer class of each ``--method``."""


def build_parser() -> argparse.ArgumentParser:
    """``python -m segline.train``'s parser plus ``--method``; ``--net``, ``--losses``
    and ``--patch`` default per method (:data:`DEFAULTS`), ``--dist-kind`` to 3d."""
    p = train_cli.build_parser()
    p.prog = prog("python -m segline.experiments.vertebrae.train")
    p.description = __doc__.split("\n")[0]
    p.add_argument(
        "--method", default="iterative", choices=METHODS, help="iterative (default) or semantic"
    )
    p.add_argument(
        "--complete-frac",
        type=float,
        default=COMPLETE_FRAC,
        help="iterative: completeness label 1 when this share of the vertebra's voxels lies "
        f"inside the patch (default {COMPLETE_FRAC}, the published rule)",
    )
    p.set_defaults(net=None, losses=None, patch=None, dist_kind="3d")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and train one vertebra method: its trainer class (:data:`TRAINERS`) on
    the path of ``python -m segline.train`` (:func:`segline.train.cli.run_trainer`)."""
    args = build_parser().parse_args(argv)
    return train_cli.run_trainer(args, argv, TRAINERS[args.method])


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
