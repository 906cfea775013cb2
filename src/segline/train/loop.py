"""Training of one method: one network, one loss spec, per-epoch validation metrics.

Outputs (see docs/CONTRACTS.md): ``metrics.csv`` (long), ``epochs.csv`` (summary),
``best_epoch.txt``, ``best.pt`` / ``last.pt`` (state_dict), ``test/`` (metrics and
NIfTI predictions of the best epoch in each case's source geometry, ``timing.csv``: the
wall time of each case's prediction, volatile like ``timing.csv``),
``provenance/``, ``args.json``, ``timing.csv`` and ``train.log`` (the lines the
training printed; a resumed training continues it).

Everything is built in ``<out>_tmp`` and renamed to ``<out>`` only once training and
test evaluation completed; a killed run resumes from ``<out>_tmp`` at its last
completed epoch (``train_state.pt``), provided its lineage is the same: arguments,
content of the input stores and imported code (``lineage.json``,
:mod:`segline.train.fingerprint`). A training sent SIGTERM or SIGUSR1 (a scheduler's
pre-emption, :mod:`segline.train.preempt`) finishes its optimisation step, saves a
mid-epoch state and exits with code 75; its resume continues the epoch with the next
batch and ends byte-identical to an uninterrupted run.

Epochs are numbered 1..EPC wherever a user sees them: progress bar, printed lines,
the ``epoch`` column of every csv file, ``best_epoch.txt``, the resume message and
:meth:`Trainer._epoch_saved`. Only the loss schedules and the per-epoch random
streams count from 0; :func:`epoch_index` is the one conversion. Every printed line
carries the method's name (:class:`segline.train.voice.Voice`).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from segline import atomic
from segline.casestore import CaseStore
from segline.csvio import csv_text
from segline.data.foreground import warn_if_no_foreground
from segline.data.patches import BatchInputs, PatchDataset, TrainingLabels, patch_collate
from segline.data.slices import SliceDataset, pad_collate
from segline.distmaps import store_absent
from segline.losses import CombinedLoss
from segline.nets import get_net
from segline.predicting.infer import Predictor
from segline.preprocess.geometry import to_source, write_nifti_like
from segline.provenance import write_provenance
from segline.seeds import training_label
from segline.train import device as dev
from segline.train import fingerprint as fp
from segline.train import layout, preempt
from segline.train import state as st
from segline.train.compile import compiled
from segline.train.device import Precision
from segline.train.evaluate import predict_cases, volume_batch, volume_loss
from segline.train.labels import class_index
from segline.train.loader import loader_options, resolve_workers
from segline.train.metricpool import CaseRows, MetricPool, metric_processes
from segline.train.schedule import lr_at
from segline.train.trainers import TRAINER_KEY, trainer_name
from segline.train.voice import Voice

METRICS = ("dice", "hd95", "assd")
CORE_INPUTS = frozenset({"target", "mask", "dist", "spacing", "weight"})
"""Batch keys the core datasets give a loss (slices and patches of the case store);
any other key a loss ``requires`` comes from the trainer's :meth:`Trainer._batch_inputs`."""
RECORD_COLUMNS = ["epoch", "split", "case", "class", "metric", "value"]
EPOCH_COLUMNS = [
    "epoch",
    "tra_loss",
    "tra_dice",
    "val_loss",
    "val_dice",
    "val_hd95",
    "val_assd",
    "alpha",
    "lr",
]
LOG = "train.log"
"""The training's printed lines (:class:`Voice`), beside its results; left out of
content digests like ``timing.csv`` (segline.digest.VOLATILE): it holds wall times."""
TIMING_COLUMNS = ["epoch", "seconds", "train_seconds", "load_seconds", "images"]
"""``timing.csv``: wall time per epoch (``seconds``: training and validation), of its
training pass (``train_seconds``, up to the epoch's one read of the device), the part
of it spent waiting for the DataLoader (``load_seconds``) and the images (slices or
patches) trained; ``images / train_seconds`` is the trainer's throughput and
``load_seconds / train_seconds`` the loader's share (bench/bench_gpu.py). Kept apart from
``epochs.csv`` so that two runs of the same experiment give byte-identical result
tables (and the same archive name)."""
DEBUG_SLICES = 10
BAR_EVERY = 25
"""An interactive progress bar shows the loss of every 25th batch (one host sync each)."""


@dataclass
class TrainConfig:
    """Everything that determines a run's result (stored as ``args.json``)."""

    cases: str
    dist: str
    out: str
    net: str = "ENet"
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    seed: int = 0
    losses: str = "gdl:1"
    dist_kind: str = "2d"
    context: int = 0
    debug: bool = False
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    lineage: str | None = None
    device: str = "auto"
    amp: str = "auto"
    precision: str = ""
    # torch intra-op threads (THREADS): they split the reductions of convolutions and
    # matrix products, so they change the last bits of the weights (segline.train.device)
    threads: int = dev.DEFAULT_THREADS
    # 3D networks: patch training and sliding-window evaluation
    patch: tuple[int, ...] = (32, 48, 48)
    samples_per_epoch: int | None = None
    fg_ratio: float = 0.33
    overlap: float = 0.5
    metrics: tuple[str, ...] = METRICS
    # per-pixel boundary weights (w0, sigma mm) for weighted losses, 2D nets
    weight_map: tuple[float, float] | None = None
    # torch.compile of the network: "off", "on" (default mode) or "graphs"
    # (mode reduce-overhead: CUDA graphs); fused kernels change the last bits of
    # results, so it is part of the identity
    compile: str = "off"
    # recipe: training-set augmentation (segline.data.augment), LR schedule
    # and linear warm-up in epochs (segline.train.schedule), decoupled weight decay
    # (AdamW when > 0; 0 keeps Adam). The defaults train exactly as before.
    aug: str = "none"
    sched: str = "const"
    warmup: int = 0
    wd: float = 0.0
    # cross-validation (FOLDS): the fold of the case store's split.json "folds" whose
    # train / val / test this training uses; None (not recorded): the store's own split
    fold: int | None = None

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the interrupted one (``fold`` only
        when set, so a training without folds keeps its bytes)."""
        d = asdict(self)
        d.pop("lineage", None)
        if d.get("fold", 0) is None:
            d.pop("fold")
        return json.loads(json.dumps(d))  # tuples as lists, as they come back from args.json


def deterministic_kernels(compiling: bool = False) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without its import
    of ``torch._inductor`` when nothing is compiled.

    The public function also sets a flag in inductor's configuration, importing
    ``torch._inductor`` and ``torch._dynamo`` to do so: 2 s of every training process's
    start on a 2-core Xeon (torch 2.13), five times per toy pipeline. The kernels' flag
    itself is the C-level setting called here; when ``compiling`` (``COMPILE`` on),
    inductor is needed anyway and the public function runs.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or compiling or "torch._inductor" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


def seed_everything(seed: int, compiling: bool = False) -> None:
    """Fix python, numpy and torch seeds and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    deterministic_kernels(compiling)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.nanmean(arr)) if arr.size and not np.all(np.isnan(arr)) else float("nan")


def epoch_index(epoch: int) -> int:
    """The 0-based index of 1-based ``epoch``: the one place the two numberings meet.

    Users see epochs 1..EPC. The α schedules (:mod:`segline.losses.schedule`) take the
    index, so that the first epoch gets the schedule's ``start`` (α = 0.01 in Kervadec
    et al.'s rebalanced schedule: α = 0.01·epoch with epochs counted from 1); the
    slice shuffle and the 3D patch draw of an epoch are seeded with it too.

    Example:
        >>> epoch_index(1)
        0
    """
    return epoch - 1


class Trainer:
    """Runs one method end to end. Call :meth:`run`.

    Args:
        cfg: what determines the result (``args.json``).
        precision: device and autocast dtype (adjusted per net, :func:`dev.for_model`).
        argv: the command line, for the provenance.
        workers: DataLoader processes (None: ``auto``, :mod:`segline.train.loader`);
            scheduling only, results are identical for any value.
        metric_workers: processes computing per-case metrics beside the device (None:
            ``auto``, :mod:`segline.train.metricpool`); results identical too.

    Subclasses (the trainers of ``segline.experiments``) change what is trained and
    validated through the hooks :meth:`_build_net`, :meth:`_build_criterion`,
    :meth:`_count_dice`, :meth:`_train_dataset`, :meth:`_train_loader`,
    :meth:`_evaluate`, :meth:`_validate`, :meth:`_written`, :meth:`_model_predictor`
    (how its network in memory predicts a case, as :meth:`predictor` a trained
    folder), the data hooks
    :meth:`_training_labels` (where the training labels come from),
    :meth:`_batch_inputs` (extra batch keys by name, for what a loss ``requires``),
    :meth:`_case_rows` (per-case metrics of its own, :attr:`own_metrics`) and
    :meth:`_input_stores` (the folders it reads, in the lineage), and the class
    attributes below; the loop itself (seeding, device, resume, lineage, provenance, the atomic
    folder, timing) stays here. The class records itself in ``args.json``
    (``trainer``, :mod:`segline.train.trainers`), so the stages that apply the trained
    folder ask it how: the class methods :meth:`check_options` (its command line),
    :meth:`predictor` (``segline-predict``, the evaluation stage) and
    :meth:`source_scorer` (the evaluation stage's scores).
    """

    config_cls: type[TrainConfig] = TrainConfig
    """The configuration class the command line builds (``args.json``)."""
    module = "segline.train"
    """The module recorded as the command in ``provenance/``."""
    epoch_columns: list[str] = EPOCH_COLUMNS
    """Columns of ``epochs.csv``."""
    weights_3d = False
    """Whether a 3D network may use ``--weight-map`` (the subclass's own loss does)."""
    own_metrics: tuple[str, ...] = ()
    """Metric names of ``--metrics`` this trainer computes itself (:meth:`_case_rows`),
    beyond the registry's mask and surface metrics the core computes."""
    selected_on: tuple[str, ...] = ("val_dice",)
    """The ``epochs.csv`` columns the best epoch maximises (:meth:`_validate`'s score),
    in order: the first decides, the next breaks its ties. Recorded in ``args.json``
    (``selected_on``), so a reader of the folder (the report) knows the rule without
    knowing the trainer."""

    @classmethod
    def check_options(cls, args: Any) -> None:
        """Check the parsed command line (``argparse.Namespace``) before its numbers
        are checked and anything is read: fill this trainer's own option defaults and
        refuse, with one :class:`segline.errors.InputError` line, options it does not
        support. The core trainer takes every option as parsed."""

    @classmethod
    def predictor(cls, method: Path, store: CaseStore, device: str, amp: str) -> Any:
        """The trained ``method`` folder loaded for prediction on ``device`` with mixed
        precision ``amp``: an object with ``predict(image (C, Z, Y, X)) -> (labels
        (Z, Y, X), probabilities (K, Z, Y, X) or None)`` and ``label_names(store)``,
        as ``segline-predict`` and the evaluation stage use it. The core trainer's:
        its network (:func:`segline.predicting.infer.network_predictor`). The same
        object on the network in memory (:meth:`_model_predictor`) predicts the
        training's test cases. An oracle predictor (one that uses the ground truth, e.g.
        to know where the structure lies) sets ``reads_labels = True``: the evaluation
        stage (:func:`segline.eval_stage.predict_case`) and the training's own test
        predictions (:meth:`_predicted`) then call ``predict(image, label=...)`` with the
        case store's label (np.uint8, (Z, Y, X)), and the
        training records ``"oracle": true`` in ``args.json`` so the report marks its
        rows and leaves it out of the statistics."""
        from segline.predicting.infer import network_predictor

        return network_predictor(method, store, device, amp)

    @classmethod
    def source_scorer(cls, method: Path) -> Any:
        """How the evaluation stage scores the trained ``method``'s predictions in
        their source geometry: ``None`` for the per-class metrics of its
        ``test/metrics.csv`` (:func:`segline.eval_stage.score_file`), as here; a
        trainer whose predictions are no class maps, or with metrics of its own
        (:attr:`own_metrics`), returns an object with ``metrics`` (the metric names it
        computes) and ``score(case, pred, label, store, epoch) -> rows`` (written
        prediction and original label files), optionally ``record`` (a dict added to
        the evaluation's ``grid.json``)."""
        return None

    def __init__(
        self,
        cfg: TrainConfig,
        precision: Precision,
        argv: list[str],
        *,
        workers: int | None = None,
        metric_workers: int | None = None,
        voice: Voice | None = None,
    ) -> None:
        self.cfg = cfg
        self.argv = argv
        self.out = Path(cfg.out)
        # stop signals: listened to while run() runs (never asks to stop before)
        self.signals = preempt.StopSignals()
        layout.check(self.out)  # before anything is written: the layouts never mix
        self.voice = voice or Voice(training_label(self.out), keep=True)
        self.work = atomic.tmp_path_for(self.out, folder=True)
        self.store = CaseStore(cfg.cases, cfg.dist, fold=cfg.fold)
        # prediction wall time per case of the last _evaluate (test/timing.csv)
        self.case_seconds: dict[str, float] = {}
        self.n_classes = self.store.n_classes
        dev.use_threads(cfg.threads)  # before anything computes: the recorded count
        seed_everything(cfg.seed, compiling=cfg.compile != "off")
        self.model = self._build_net().to(precision.device)
        self.precision = precision = dev.for_model(precision, self.model)
        cfg.precision = precision.describe()  # args.json records what is actually used
        self.dims = int(getattr(self.model, "dims", 2))
        self.fmt = precision.memory_format(self.dims)
        self.model = dev.to_memory_format(self.model, self.fmt)
        # the compiled module shares the parameters; checkpoints are taken from
        # self.model, so their keys do not depend on COMPILE
        self.forward_model = compiled(self.model, cfg.compile)
        if cfg.wd > 0:  # decoupled weight decay (Loshchilov & Hutter)
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.wd
            )
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        # loss scaling for fp16 (a no-op pass-through for bf16 and fp32)
        self.scaler = torch.amp.GradScaler(
            precision.device.type, enabled=precision.needs_grad_scaler
        )
        self.workers = resolve_workers(workers, precision.device)
        self.loader_opts = loader_options(self.workers, precision.device)
        self.metric_workers = metric_processes(metric_workers, precision.device)
        self.criterion = self._build_criterion()
        # the two-sided Hausdorff-DT loss's map of an empty prediction follows the
        # store's value of an absent class (ABSENT, segline.distmaps); its module is
        # loaded only when the loss spec names it, so other trainings' code
        # dependencies (.d) do not list it
        hausdorff = sys.modules.get("segline.losses.hausdorff")
        if hausdorff is not None and isinstance(self.criterion, torch.nn.Module):
            hausdorff.use_absent(self.criterion, store_absent(cfg.dist))
        # distance maps are read only when a loss uses them
        self.dist_kind = cfg.dist_kind if self.criterion.needs_dist else None
        # a loss's batch keys beyond the case store's come from the trainer's hook
        self.batch_inputs = self._batch_inputs()
        given = CORE_INPUTS | (self.batch_inputs.keys if self.batch_inputs else frozenset())
        if missing := sorted(self.criterion.requires - given):
            raise ValueError(f"the losses need batch keys {', '.join(missing)}, which "
                             f"{type(self).__name__} does not provide")
        self.training_labels = self._training_labels()
        if self.dims == 3 and cfg.context:
            raise ValueError("--context (2.5D) is for 2D networks")
        if self.dims == 3 and cfg.weight_map and not self.weights_3d:
            raise ValueError("--weight-map is implemented for 2D networks only")
        if "weight" in self.criterion.requires and not cfg.weight_map:
            raise ValueError("a weighted loss needs --weight-map w0,sigma_mm")
        self.train_cases = self.store.case_ids("train")
        self.val_cases = self.store.case_ids("val")
        self.test_cases = self.store.case_ids("test")
        if cfg.debug:
            self.val_cases, self.test_cases = self.val_cases[:1], self.test_cases[:1]
        if not self.train_cases or not self.val_cases:
            raise ValueError(f"{cfg.cases}: the split needs train and validation cases")
        warn_if_no_foreground(
            self.store,
            self.train_cases,
            label_of=self.training_labels.label if self.training_labels else None,
            where=cfg.cases,
            say=lambda line: self.voice.say(line, file=sys.stderr),
        )

    # -- pieces -------------------------------------------------------------------
    def _build_net(self) -> torch.nn.Module:
        """The network (on the CPU), built after seeding: the image channels (times
        the 2.5D context) in, one logit per class out."""
        cfg = self.cfg
        in_ch = self.store.n_channels * (2 * cfg.context + 1)
        return get_net(cfg.net, in_ch, self.n_classes, **cfg.net_kwargs)

    def _build_criterion(self) -> Any:
        """The loss (``--losses`` spec); it has ``requires``, ``needs_dist`` and
        ``alpha_at`` like :class:`CombinedLoss`."""
        return CombinedLoss.from_spec(self.cfg.losses, self.n_classes)

    def _training_labels(self) -> TrainingLabels | None:
        """Where the 3D training patches' labels (and, for a loss that needs them,
        their distance maps) come from: None for the case store's labels, as here.
        Called once the loss is built (``self.criterion``)."""
        return None

    def _batch_inputs(self) -> BatchInputs | None:
        """The batch keys a loss ``requires`` beyond :data:`CORE_INPUTS`, for 3D
        training patches and whole validation volumes
        (:class:`segline.data.patches.BatchInputs`): None here. Called once the loss
        is built (``self.criterion``); a key the loss requires that neither gives is
        refused (ValueError)."""
        return None

    def _case_rows(self) -> CaseRows | None:
        """This trainer's own per-case metric rows (:attr:`own_metrics` asked for in
        ``--metrics``), added after the volume metrics' rows of every validated and
        tested case (:mod:`segline.train.metricpool`; picklable): None here."""
        return None

    def _input_stores(self) -> dict[str, str | None]:
        """The folders the training reads, by name: their content digests are part of
        its lineage (``lineage.json`` ``inputs``, :mod:`segline.train.fingerprint`).

        The distance-map store is named for its ``absent`` convention: ``dist`` (zero,
        make's default) or ``dist-diagonal`` (diagonal). Methods of one run may train on
        either (make: a method's own ``ABSENT``), and the pack stage compares each name across the
        packed methods, so each convention's store is checked against its own kind."""
        dist = "dist" if store_absent(self.cfg.dist) == "zero" else "dist-diagonal"
        return {"cases": self.cfg.cases, dist: self.cfg.dist}

    def _count_dice(
        self, logits: Any, batch: dict[str, Any], inter: torch.Tensor, sums: torch.Tensor
    ) -> None:
        """Add one batch's per-class intersections and sizes (foreground classes) to
        ``inter`` and ``sums``, on the device (the epoch's training Dice)."""
        pred = class_index(logits)
        tgt = class_index(batch["target"])
        counted = batch["mask"] > 0 if "mask" in batch else None
        for k in range(1, self.n_classes):
            p, t = pred == k, tgt == k
            if counted is not None:
                p, t = p & counted, t & counted
            inter[k - 1] += (p & t).sum()
            sums[k - 1] += p.sum() + t.sum()

    def _loss(
        self, logits: torch.Tensor, batch: dict[str, Any], epoch: int
    ) -> tuple[torch.Tensor, dict]:
        return self.criterion(logits, batch, epoch=epoch_index(epoch))

    def _train_epoch(
        self, epoch: int, loader: Any, progress: st.EpochProgress | None = None
    ) -> tuple[float, float]:
        """One pass over ``loader``; returns (mean loss per sample, mean foreground Dice).

        The running sums stay on the device and are read once, at the end of the
        epoch: no host synchronisation per batch (an interactive progress bar reads
        the loss every :data:`BAR_EVERY` batches). ``progress``: the part of the epoch
        done before a stop (a resumed mid-epoch state), whose sums this pass continues
        over the remaining batches in ``loader``. The epoch's progress is
        :attr:`progress` after every step; a stop signal ends the pass right after the
        step in progress (:class:`segline.train.preempt.StopRequested`).
        """
        self.model.train()
        device = self.precision.device
        p = progress or st.EpochProgress.start(epoch, self.n_classes, device)
        self.progress = p
        desc = self.voice.desc(f"epoch {epoch}/{self.cfg.epochs}")
        # no bar when make runs trainings side by side: their bars would overwrite
        # each other on one terminal line (the per-epoch lines say the same)
        quiet = True if dev.make_jobs() > 1 else None
        bar = tqdm(loader, desc=desc, leave=False, disable=quiet, file=sys.stderr)
        t_start = time.perf_counter() - p.train_seconds
        batches = iter(bar)
        for step in itertools.count(p.steps):
            t_wait = time.perf_counter()
            batch = next(batches, None)
            p.load_seconds += time.perf_counter() - t_wait
            if batch is None:
                break
            batch = {
                k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                for k, v in batch.items()
            }
            image = batch["image"].contiguous(memory_format=self.fmt)
            with self.precision.autocast():
                logits = self.forward_model(image)
            loss, _ = self._loss(logits, batch, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            b = image.shape[0]
            p.n += b
            with torch.no_grad():
                p.total += loss.detach().double() * b
                self._count_dice(logits, batch, p.inter, p.sums)
            p.steps = step + 1
            p.train_seconds = time.perf_counter() - t_start
            if not bar.disable and step % BAR_EVERY == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            self.signals.check()  # a stop signal: the state after this step is saved
        inter, sums = p.inter, p.sums
        dice = torch.where(sums > 0, 2 * inter / sums.clamp(min=1), torch.ones_like(sums))
        result = float(p.total) / max(p.n, 1), float(dice.mean())
        self.epoch_timing = {
            "train_seconds": round(time.perf_counter() - t_start, 4),
            "load_seconds": round(p.load_seconds, 4),
            "images": p.n,
        }
        return result

    def _remaining(self, loader: Any, progress: st.EpochProgress) -> Any:
        """The batches of the epoch's ``loader`` after the ``progress.steps`` done before
        a stop, in the same order, without reading the skipped ones.

        A :class:`DataLoader` draws its workers' base seed from its generator (else the
        global one) and then its sampler's order; both are repeated here from the
        global RNG as the epoch started (``progress.loader_rng``), under
        :func:`torch.random.fork_rng`, so the global RNG keeps its state after the last
        step. The remaining batches then come from a loader over those indices with the
        same dataset, collation and workers: every item is a function of (seed, epoch,
        index) (:mod:`segline.train.loader`). Any other iterable is advanced past the
        batches done."""
        if not isinstance(loader, DataLoader) or loader.batch_sampler is None:
            return itertools.islice(loader, progress.steps, None)
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(progress.loader_rng)
            torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
            batches = [list(b) for b in loader.batch_sampler][progress.steps :]
        workers = loader.num_workers
        return DataLoader(
            loader.dataset,
            batch_sampler=batches,
            collate_fn=loader.collate_fn,
            num_workers=workers,
            pin_memory=loader.pin_memory,
            prefetch_factor=loader.prefetch_factor if workers > 0 else None,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context if workers > 0 else None,
            timeout=loader.timeout,
            generator=torch.Generator(),  # the base seed: not from the global RNG
        )

    @property
    def volume_metrics(self) -> tuple[str, ...]:
        """Metrics computed on the 3D volumes (the trainer's :attr:`own_metrics` are
        computed apart, :meth:`_case_rows`)."""
        return tuple(m for m in self.cfg.metrics if m not in self.own_metrics)

    def _model_predictor(self) -> Any:
        """The predictor of the network being trained, as it is in memory: the object
        :meth:`predictor` loads from the trained folder, built on the training's
        (possibly compiled) network, precision and configuration, so the training's
        test predictions are those ``segline-predict`` and the evaluation stage make.
        The core trainer's: a :class:`segline.predicting.infer.Predictor`
        (:meth:`~segline.predicting.infer.Predictor.of`), which :meth:`_predictions`
        applies; a subclass whose predictor is of another kind applies it in its own
        :meth:`_evaluate`."""
        return Predictor.of(self.forward_model, self.precision, self.cfg.identity(), self.dims)

    def _predictions(self, cases: list[str], loss_fn: Any = None) -> Any:
        """Per case ``(case, predicted labels (Z, Y, X), (loss sum, n))``, 2D or 3D net.

        By :meth:`_model_predictor`, one case at a time; with ``loss_fn`` a 3D
        network's loss is that of the whole case (:func:`volume_loss`). A 2D network's
        validation (``loss_fn``) is predicted by
        :func:`segline.train.evaluate.predict_cases`, whose slice batches run across
        cases as its loss (a mean per batch) needs."""
        if loss_fn is None or self.dims == 3:
            return self._predicted(cases, loss_fn)
        return predict_cases(
            self.forward_model,
            self.store,
            cases,
            self.precision,
            batch_size=self.cfg.batch_size,
            context=self.cfg.context,
            dist_kind=self.dist_kind,
            loss_fn=loss_fn,
            weight_map=self.cfg.weight_map,
        )

    def _predicted(
        self, cases: list[str], loss_fn: Any
    ) -> Iterator[tuple[str, np.ndarray, tuple[float, int]]]:
        """:meth:`_predictions` by the trainer's predictor, case by case."""
        predictor = self._model_predictor()
        needs = self.criterion.requires
        oracle = getattr(predictor, "reads_labels", False) is True
        for case in cases:
            image = np.array(self.store.image(case), dtype=np.float32)
            # an oracle's predictor reads the case's label, as in the evaluation stage
            extra = {"label": np.asarray(self.store.label(case), np.uint8)} if oracle else {}
            labels, probs = predictor.predict(image, probabilities=loss_fn is not None, **extra)
            loss = (0.0, 0)
            if loss_fn is not None:
                assert probs is not None
                batch = volume_batch(self.store, case, needs, dist_kind="3d",
                                     inputs=self.batch_inputs)  # fmt: skip
                loss = (volume_loss(probs, batch, loss_fn, self.precision.device), 1)
            yield case, labels, loss

    def _fixed_loss(self, items: Any, epoch: int) -> tuple[float, int]:
        """Summed loss and count of a dataset of fixed items (dicts of tensors with an
        ``image``), in batches of the training's size, in eval mode without gradients:
        the validation loss of a trainer whose validation predicts no single forward
        pass per case (the vertebrae's fixed patches, EBP's fixed shell states)."""
        total, n = 0.0, 0
        self.model.eval()
        with torch.no_grad():
            for batch in DataLoader(items, batch_size=self.cfg.batch_size, shuffle=False):
                batch = {k: v.to(self.precision.device) for k, v in batch.items()}
                with self.precision.autocast():
                    outputs = self.forward_model(batch["image"])
                b = int(batch["image"].shape[0])
                total += float(self._loss(outputs, batch, epoch)[0]) * b
                n += b
        return total, n

    def _train_dataset(self) -> SliceDataset | PatchDataset:
        """2D slices, or 3D patches with foreground oversampling."""
        cfg = self.cfg
        if self.dims == 3:
            dist_source = None
            if self.criterion.needs_dist:
                dist_source = "dist3d" if self.training_labels is None else "labels"
            samples = cfg.samples_per_epoch or (8 if cfg.debug else None)
            return PatchDataset(
                self.store,
                self.train_cases,
                cfg.patch,
                samples_per_epoch=samples,
                fg_ratio=cfg.fg_ratio,
                seed=cfg.seed,
                labels=self.training_labels,
                dist_source=dist_source,
                inputs=self.batch_inputs,
                aug=cfg.aug,
            )
        return SliceDataset(
            self.store,
            self.train_cases,
            dist_kind=self.dist_kind,
            context=cfg.context,
            limit=DEBUG_SLICES if cfg.debug else None,
            weight_map=cfg.weight_map,
            aug=cfg.aug,
            seed=cfg.seed,
        )

    def _train_loader(self, ds: SliceDataset | PatchDataset, epoch: int) -> DataLoader:
        """The epoch's loader: a seeded shuffle of slices, or the epoch's patch draw."""
        index = epoch_index(epoch)
        if isinstance(ds, PatchDataset):
            ds.set_epoch(index)
            return DataLoader(
                ds,
                batch_size=self.cfg.batch_size,
                shuffle=False,
                collate_fn=patch_collate,
                **self.loader_opts,
            )
        ds.set_epoch(index)
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + index)
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            shuffle=True,
            generator=gen,
            collate_fn=pad_collate,
            drop_last=len(ds) > self.cfg.batch_size,
            **self.loader_opts,
        )

    def _evaluate(
        self, epoch: int, split: str, cases: list[str], with_loss: bool
    ) -> tuple[list[dict[str, Any]], float, dict[str, np.ndarray]]:
        """Predict ``cases`` on the device; their metrics are computed by the metric
        pool meanwhile (in case order, so the rows are the same with or without it).
        Each case's prediction wall time is kept in :attr:`case_seconds`."""
        preds: dict[str, np.ndarray] = {}
        pending = []
        loss_sum, loss_n = 0.0, 0

        def loss_fn(logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
            return self._loss(logits, batch, epoch)[0]

        # wall time of each case's prediction (reading it included): test/timing.csv
        self.case_seconds = {}
        t0 = time.perf_counter()
        for case, pred, (ls, ln) in self._predictions(cases, loss_fn if with_loss else None):
            self.case_seconds[case] = time.perf_counter() - t0
            loss_sum, loss_n = loss_sum + ls, loss_n + ln
            preds[case] = pred
            pending.append((case, self.metric_pool.submit(case, pred)))
            t0 = time.perf_counter()
        rows: list[dict[str, Any]] = []
        for case, future in pending:
            for row in future.result():
                rows.append({"epoch": epoch, "split": split, "case": case, **row})
        return rows, (loss_sum / loss_n if loss_n else float("nan")), preds

    def _validate(self, epoch: int) -> tuple[list[dict[str, Any]], float, dict[str, float], float]:
        """Validation of ``epoch``: its ``metrics.csv`` rows, the validation loss, its
        ``epochs.csv`` columns (``val_dice``, ``val_hd95``, ``val_assd``: means over
        cases and classes) and the score the best epoch maximises (here the Dice)."""
        rows, val_loss, _ = self._evaluate(epoch, "val", self.val_cases, with_loss=True)
        by_metric = {m: _nanmean([r["value"] for r in rows if r["metric"] == m]) for m in METRICS}
        columns = {f"val_{m}": by_metric[m] for m in METRICS}
        return rows, val_loss, columns, by_metric["dice"]

    def _val_note(self, columns: dict[str, float]) -> str:
        """The validation part of an epoch's printed line."""
        return f"val dice {columns['val_dice']:.4f}  hd95 {columns['val_hd95']:.2f} mm"

    def _best_note(self, best_score: float) -> str:
        """The best epoch's score in the last printed line."""
        return f"val dice {best_score:.4f}"

    def _epoch_saved(self, epoch: int) -> None:
        """Called once ``epoch`` (counted from 1, as printed) is complete: its tables,
        weights and ``train_state.pt`` written and its line printed. A run ending here
        resumes with epoch ``epoch + 1``. Nothing to do in this trainer."""

    def _written(self, pred: np.ndarray) -> np.ndarray:
        """The labels written to ``test/preds/`` for predicted labels ``pred``."""
        return pred

    def _write_tables(self, records: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> None:
        atomic.write_text(
            self.work / "metrics.csv",
            csv_text(pd.DataFrame(records, columns=RECORD_COLUMNS)),
        )
        atomic.write_text(
            self.work / "epochs.csv",
            csv_text(pd.DataFrame(epochs, columns=self.epoch_columns)),
        )
        atomic.write_text(
            self.work / "timing.csv",
            csv_text(pd.DataFrame(epochs, columns=TIMING_COLUMNS)),
        )

    # -- main -----------------------------------------------------------------------
    def _prepare_work(self) -> dict[str, Any] | None:
        """Reuse ``<out>_tmp`` only when its lineage (arguments, content of the input
        stores, imported code) equals this run's; otherwise start afresh and say why."""
        cfg = self.cfg
        stores = self._input_stores()
        # the arguments, the trainer class that reads them (segline.train.trainers)
        # and what it selects the best epoch on
        identity = {
            **cfg.identity(),
            TRAINER_KEY: trainer_name(type(self)),
            "selected_on": list(self.selected_on),
        }
        lineage = fp.training_lineage(identity, stores)
        if self.work.is_dir():
            old = fp.read_lineage(self.work)
            state = st.load_state(self.work)
            if old is not None and state is not None:
                why = fp.differences(old, lineage)
                if not why:
                    self.voice.log_to(self.work / LOG)
                    return state
                self.voice.say(
                    f"{self.out}: interrupted run discarded, its lineage differs ({why}); "
                    "starting afresh"
                )
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        self.voice.log_to(self.work / LOG)
        atomic.write_json(self.work / "args.json", identity)
        atomic.write_json(self.work / fp.LINEAGE_FILE, lineage)
        return None

    def run(self) -> Path:
        """Train, select on validation, evaluate on test, write everything, rename."""
        self.metric_pool = MetricPool(
            self.cfg.cases,
            self.cfg.dist,
            self.volume_metrics,
            extra=self._case_rows(),
            processes=self.metric_workers,
        )
        # SIGTERM/SIGUSR1 stop at the next safe point (preempt); installed before the
        # metric processes start (they ignore both) and loader workers fork
        with self.signals, self.metric_pool:
            return self._run()

    def _run(self) -> Path:
        cfg = self.cfg
        state = self._prepare_work()
        start_epoch, best_epoch, best_score = 1, -1, -math.inf
        records: list[dict[str, Any]] = []
        epochs: list[dict[str, Any]] = []
        # the best epoch once each epoch completed (SCHED=halve reads it)
        best_history: list[int] = []
        # the epoch a stop interrupted, continued first (a mid-epoch state)
        partial: st.EpochProgress | None = None
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            if state.get("rng"):
                st.set_rng_state(state["rng"])
            else:
                torch.set_rng_state(state["torch_rng"])
            start_epoch = int(state["epoch"]) + 1
            best_epoch, best_score = int(state["best_epoch"]), float(state["best_score"])
            records, epochs = state["records"], state["epochs"]
            best_history = list(state.get("best_history", []))
            part = state.get("partial") or {}
            if part and int(part["epoch"]) == start_epoch:
                partial = st.EpochProgress.from_state(part, self.precision.device)
                self.voice.say(
                    f"resuming mid-epoch: epoch {start_epoch} (of {cfg.epochs}) "
                    f"at batch {partial.steps + 1}"
                )
            else:
                self.voice.say(f"resuming after epoch {start_epoch - 1} (of {cfg.epochs})")

        train_ds = self._train_dataset()
        unit = "patches" if self.dims == 3 else "slices"
        compile_note = "" if cfg.compile == "off" else f", compile {cfg.compile}"
        self.voice.say(
            f"{cfg.net} on {self.precision.describe()}{compile_note}, "
            f"{cfg.threads} thread{'s' if cfg.threads > 1 else ''}, "
            f"{self.workers} loader workers, {self.metric_workers} metric processes, "
            f"losses {cfg.losses}, "
            f"{len(train_ds)} train {unit}/epoch, {len(self.val_cases)} val cases, "
            f"{len(self.test_cases)} test cases"
        )
        in_epoch = False  # whether a stop now needs a mid-epoch state
        saved = {"best_epoch": best_epoch, "best_score": best_score, "records": records,
                 "epochs": epochs, "best_history": best_history}  # fmt: skip
        try:
            for epoch in range(start_epoch, cfg.epochs + 1):
                in_epoch = True
                self._epoch(epoch, train_ds, partial, saved)
                partial, in_epoch = None, False
                self._epoch_saved(epoch)
                self.signals.check()  # after a whole epoch: its state is the one saved
            self.signals.check()  # before the test predictions
        except preempt.StopRequested:
            self._stop(saved if in_epoch else None)
        best_epoch, best_score = saved["best_epoch"], saved["best_score"]
        records, epochs = saved["records"], saved["epochs"]

        if best_epoch < 0:  # no finite validation Dice at all: fall back to the last epoch
            best_epoch = cfg.epochs
            shutil.copyfile(self.work / "last.pt", self.work / "best.pt")
            atomic.write_text(self.work / "best_epoch.txt", f"{best_epoch}\n")
        self._finish(best_epoch, best_score, records, epochs)
        return self.out

    def _stop(self, saved: dict[str, Any] | None) -> None:
        """Leave after a stop signal (:mod:`segline.train.preempt`): with ``saved``
        (the completed epochs' records, the training stopped inside an epoch) write the
        mid-epoch state first, else the state of the last completed epoch is the one on
        disk. Raises :class:`~segline.train.preempt.Stopped`."""
        signum = self.signals.signum or 0
        if saved is not None:
            progress = self.progress
            with self.signals.deferred():
                st.save_state(
                    self.work,
                    epoch=progress.epoch - 1,
                    model=self.model,
                    optimizer=self.optimizer,
                    scaler=self.scaler,
                    partial=progress,
                    **saved,
                )
            where = f"in epoch {progress.epoch} after batch {progress.steps}"
        else:
            where = f"after epoch {self._completed()}"
        self.voice.say(
            f"stopped by {preempt.signal_name(signum)} {where}; resumable state in "
            f"{self.work / st.STATE} (exit {preempt.EXIT_RESUMABLE})"
        )
        raise preempt.Stopped(signum, where)

    def _completed(self) -> int:
        """The last completed epoch of the state on disk (0: none)."""
        state = st.load_state(self.work)
        return int(state["epoch"]) if state else 0

    def _epoch(
        self,
        epoch: int,
        train_ds: Any,
        partial: st.EpochProgress | None,
        saved: dict[str, Any],
    ) -> None:
        """Train (continuing ``partial``, a stopped epoch's progress), validate and
        save ``epoch``; ``saved`` (best epoch and score, records, epoch rows, best
        history) is updated once the epoch's state is on disk."""
        cfg = self.cfg
        best_epoch, best_score = saved["best_epoch"], saved["best_score"]
        records, epochs = list(saved["records"]), list(saved["epochs"])
        best_history = list(saved["best_history"])
        t0 = time.perf_counter()
        lr = lr_at(epoch, cfg.epochs, cfg.lr, cfg.sched, cfg.warmup, best_history)
        for group in self.optimizer.param_groups:  # a function of the epoch: resumable
            group["lr"] = lr
        loader = self._train_loader(train_ds, epoch)
        if partial is not None:
            loader = self._remaining(loader, partial)
        tra_loss, tra_dice = self._train_epoch(epoch, loader, partial)
        rows, val_loss, columns, score = self._validate(epoch)
        records.extend(rows)
        new_best = not math.isnan(score) and score > best_score
        if new_best:
            best_epoch, best_score = epoch, score
        best_history.append(best_epoch)
        seconds = time.perf_counter() - t0
        epochs.append(
            {
                "epoch": epoch,
                "tra_loss": tra_loss,
                "tra_dice": tra_dice,
                "val_loss": val_loss,
                **columns,
                "alpha": self.criterion.alpha_at(epoch_index(epoch)),
                "lr": lr,
                "seconds": round(seconds, 3),
                **self.epoch_timing,
            }
        )
        # a second stop signal waits for the epoch's files and state (preempt)
        with self.signals.deferred():
            if new_best:
                st.save_tensor_file(self.work / "best.pt", self.model.state_dict())
            self._write_tables(records, epochs)
            st.save_tensor_file(self.work / "last.pt", self.model.state_dict())
            atomic.write_text(self.work / "best_epoch.txt", f"{best_epoch}\n")
            st.save_state(
                self.work,
                epoch=epoch,
                model=self.model,
                optimizer=self.optimizer,
                scaler=self.scaler,
                best_epoch=best_epoch,
                best_score=best_score,
                best_history=best_history,
                records=records,
                epochs=epochs,
            )
        saved.update(best_epoch=best_epoch, best_score=best_score, records=records,
                     epochs=epochs, best_history=best_history)  # fmt: skip
        mark = " *" if best_epoch == epoch else ""
        self.voice.say(
            f"epoch {epoch:>3}/{cfg.epochs}  loss {tra_loss:.4f}  "
            f"val loss {val_loss:.4f}  {self._val_note(columns)}  {seconds:.1f} s{mark}"
        )

    def _finish(
        self,
        best_epoch: int,
        best_score: float,
        records: list[dict[str, Any]],
        epochs: list[dict[str, Any]],
    ) -> None:
        """Test the best epoch, write the provenance, rename ``<out>_tmp`` to ``<out>``."""
        cfg = self.cfg
        self._test(best_epoch, records, epochs)
        write_provenance(
            self.work / "provenance",
            ["-m", self.module, *self.argv],
            Path(cfg.lineage) if cfg.lineage else None,
            self.precision.describe(),
            run_facts={"loader_workers": self.workers, "metric_processes": self.metric_workers},
            card=self.precision.card,
        )
        # again, just before the folder is replaced (another make may have written
        # meanwhile); refused, <out>_tmp keeps its state and a rerun only re-tests
        layout.check(self.out)
        with self.signals.deferred():  # the state goes only with the rename
            (self.work / st.STATE).unlink()
            # the last line is said (and logged) before the folder is renamed into place
            self.voice.say(
                f"best epoch {best_epoch} of {cfg.epochs} ({self._best_note(best_score)}); "
                f"results in {self.out}"
            )
            self.voice.log_to(None)
            atomic.replace_dir(self.work, self.out)

    def _test(
        self, best_epoch: int, records: list[dict[str, Any]], epochs: list[dict[str, Any]]
    ) -> None:
        """Best-epoch predictions and metrics on the held-out test cases."""
        self.model.load_state_dict(
            torch.load(self.work / "best.pt", map_location=self.precision.device, weights_only=True)
        )
        test_dir = self.work / "test"
        (test_dir / "preds").mkdir(parents=True, exist_ok=True)
        (test_dir / "preds_zyx").mkdir(parents=True, exist_ok=True)
        self.case_seconds = {}  # a trainer with its own _evaluate times none
        rows, _, preds = self._evaluate(best_epoch, "test", self.test_cases, with_loss=False)
        for case, pred in preds.items():
            meta = self.store.meta(case)
            atomic.save_npy(test_dir / "preds_zyx" / f"{case}.npy", pred)
            written = to_source(self._written(pred), meta)
            write_nifti_like(written, meta, test_dir / "preds" / f"{case}.nii.gz")
        records[:] = [r for r in records if r["split"] != "test"] + rows
        self._write_tables(records, epochs)
        atomic.write_text(
            test_dir / "metrics.csv",
            csv_text(pd.DataFrame(rows, columns=RECORD_COLUMNS)),
        )
        timing = [
            {"case": c, "seconds": round(self.case_seconds[c], 4), **self._case_timing(c)}
            for c in self.test_cases
            if c in self.case_seconds
        ]
        if timing:  # a trainer predicting through _predictions (all but the vertebrae's)
            atomic.write_text(test_dir / "timing.csv", csv_text(pd.DataFrame(timing)))

    def _case_timing(self, case: str) -> dict[str, float]:
        """Columns of ``test/timing.csv`` beyond ``case`` and ``seconds`` (the wall time
        of the case's prediction) for a test case: none here; a trainer whose
        prediction has parts worth timing adds them (EBP: region, shells, vote)."""
        return {}
