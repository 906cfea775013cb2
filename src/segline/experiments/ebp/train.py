"""The EBP trainer (``python -m segline.experiments.ebp.train``).

:class:`EBPTrainer` is :class:`segline.train.loop.Trainer` with other hooks, so an EBP
training writes the same method folder (docs/CONTRACTS.md) with the same seeding,
device choice, resume, lineage, provenance and atomic rename, and takes the options of
``python -m segline.train`` (make's ``TRAIN_PARAMS``) plus its own:

- ``--roi pred:<folder>`` (default ``pred:`` is required) or ``gt`` (the oracle,
  recorded ``oracle: true``): where validation and test pivots go
  (:mod:`segline.experiments.ebp.roi`); a ``pred:`` folder's content is part of the
  training's lineage (``lineage.json`` inputs ``roi``);
- ``--directions H,W`` (16,16): the direction grid of a shell;
- ``--pivot-step z,y,x`` (3,6,6, the published): the pivot grid, for training states
  and for the pivots of a case;
- ``--balance`` (0.5, or ``natural``) and ``--perturb`` (0.5): the training states
  (:class:`segline.experiments.ebp.sampler.ShellStates`);
- ``--tau`` (0.5): the vote's share (:func:`segline.experiments.ebp.vote.vote`);
- ``--losses ohem_mse:1[keep=0.7]``: MSE with online hard-example mining
  (:class:`segline.experiments.ebp.loss.OhemMSE`), the only loss.

What differs from the core trainer:

- the network is any registered 2D network with ``10·C + 6`` input channels and one
  output, wrapped to (B, H, W) and clamped to ±2 voxels
  (:class:`segline.experiments.ebp.net.ShellModel`; ``NET=VNet2D`` by default);
- the training items are shell states drawn on the fly, ``--samples-per-epoch`` of them
  per epoch (default 2048);
- ``tra_dice`` is the Dice of the one-step shells as volumes (radii ``max(D + Y, 0)``
  predicted against target, :func:`segline.experiments.ebp.geometry.shell_dice`'s sums):
  how well the network moves a shell, not a mask Dice;
- the validation loss is the loss on fixed states of the validation cases
  (:data:`VAL_STATES_PER_CASE`, the draw of epoch 0); the validation and test metrics are
  those of whole cases segmented by :class:`segline.experiments.ebp.apply.ShellPredictor`
  (the core metrics, per class, in 3D, mm);
- ``test/timing.csv`` (the core's per-case prediction seconds) adds the seconds of the
  region of interest, the shells and the reconstruction and the pivots placed and kept.

Example:
    python -m segline.experiments.ebp.train --cases data/spleen-toy/cases \\
        --dist data/spleen-toy/dist --out results/spleen-toy/ebp \\
        --roi pred:results/spleen-toy/gdl --epochs 2
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from segline.casestore import CaseStore
from segline.cli import cli_of, entry, prog
from segline.errors import InputError
from segline.experiments.ebp import geometry as geo
from segline.experiments.ebp.apply import TIMING_COLUMNS, ShellPredictor
from segline.experiments.ebp.loss import OhemMSE
from segline.experiments.ebp.net import build_shell_model
from segline.experiments.ebp.roi import parse_roi
from segline.experiments.ebp.sampler import ShellStates
from segline.train import cli as train_cli
from segline.train.loop import TrainConfig, Trainer, epoch_index

__all__ = ["EBPConfig", "EBPTrainer", "build_parser", "main"]

DEFAULT_LOSS = "ohem_mse:1[keep=0.7]"
LOSS_SPEC = re.compile(r"ohem_mse(?::1(?:\.0*)?)?(?:\[keep=([0-9.eE+-]+)\])?")
SAMPLES = 2048
"""Training states per epoch when ``--samples-per-epoch`` is not given (64 with
``--debug``)."""
VAL_STATES_PER_CASE = 64
"""The validation loss: the mean loss over this many fixed states per validation case."""
DEFAULTS = {"net": "VNet2D", "losses": DEFAULT_LOSS}


@dataclass
class EBPConfig(TrainConfig):
    """:class:`TrainConfig` plus EBP's own settings (``args.json``)."""

    roi: str = ""
    oracle: bool = False
    directions: tuple[int, int] = (16, 16)
    pivot_step: tuple[int, int, int] = (3, 6, 6)
    balance: float | None = 0.5
    perturb: float = 0.5
    tau: float = 0.5
    iterations: int = geo.TEST_ITERATIONS


def ohem_keep(spec: str) -> float:
    """The ``keep`` share of an ``ohem_mse`` loss spec.

    Example:
        >>> ohem_keep("ohem_mse:1[keep=0.7]")
        0.7

    Raises:
        InputError: another loss.
    """
    m = LOSS_SPEC.fullmatch(spec.replace(" ", ""))
    if m is None:
        raise InputError("--losses (LOSSES)", f"EBP trains with {DEFAULT_LOSS} only, got {spec!r}")
    keep = float(m.group(1)) if m.group(1) else 0.7
    if not 0.0 < keep <= 1.0:
        raise InputError("--losses (LOSSES)", f"keep must be in (0, 1], got {keep}")
    return keep


class EBPTrainer(Trainer):
    """Trains the shell network and segments whole cases with it (module docstring)."""

    config_cls = EBPConfig
    module = "segline.experiments.ebp.train"

    @classmethod
    def check_options(cls, args: argparse.Namespace) -> None:
        """Fill the defaults (:data:`DEFAULTS`), parse ``--directions`` and
        ``--balance``, record ``oracle`` and refuse, one line each, what EBP does not
        support."""
        for key, value in DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        parse_roi(args.roi)
        args.oracle = args.roi == "gt"
        ohem_keep(args.losses)
        args.directions = train_cli.int_tuple(args.directions, "--directions", 2)
        args.pivot_step = train_cli.int_tuple(args.pivot_step, "--pivot-step", 3)
        if min(args.pivot_step) < 1:
            raise InputError("--pivot-step", f"steps of at least 1 voxel, got {args.pivot_step}")
        if min(args.directions) < 4:
            raise InputError("--directions", f"need at least 4x4 directions, got {args.directions}")
        if args.balance == "natural":
            args.balance = None
        else:
            try:
                args.balance = float(args.balance)
            except ValueError:
                why = f"a share in [0, 1] or natural, got {args.balance!r}"
                raise InputError("--balance", why) from None
            if not 0.0 <= args.balance <= 1.0:
                raise InputError("--balance", f"a share in [0, 1] or natural, got {args.balance}")
        if not 0.0 <= args.perturb <= 1.0:
            raise InputError("--perturb", f"a probability in [0, 1], got {args.perturb}")
        if not 0.0 < args.tau <= 1.0:
            raise InputError("--tau", f"a share in (0, 1], got {args.tau}")
        refused = [
            ("--context (CONTEXT)", args.context != 0, "the network reads shells, not slices"),
            ("--weight-map (WEIGHT_MAP)", args.weight_map is not None, "no pixel weights"),
            ("--aug (AUG)", args.aug != "none", "states are drawn on the fly, not augmented"),
            ("--metrics", args.metrics != "dice,hd95,assd", "the core mask metrics only"),
        ]
        for option, bad, why in refused:
            if bad:
                raise InputError(option, f"not supported by EBP: {why}")

    @classmethod
    def predictor(cls, method: Path, store: CaseStore, device: str, amp: str) -> Any:
        """The folder's :class:`ShellPredictor`."""
        return ShellPredictor.load(method, store, device, amp)

    def __init__(self, cfg: EBPConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        if self.n_classes != 2:
            raise ValueError(f"EBP segments one organ: {cfg.cases} has {self.n_classes - 1} "
                             "foreground classes")  # fmt: skip
        h, w = cfg.directions
        self.val_states = ShellStates(
            self.store, self.val_cases, h, w, VAL_STATES_PER_CASE * len(self.val_cases),
            cfg.seed + 1_000_003, balance=cfg.balance, perturb=cfg.perturb,
            step=tuple(cfg.pivot_step),
        )  # fmt: skip
        self._predictor: ShellPredictor | None = None
        self.case_stats: dict[str, dict[str, float]] = {}
        # per case, its region (box, seconds): the same every epoch (roi.py)
        self.regions: dict[str, tuple[Any, float]] = {}

    # -- hooks of Trainer --------------------------------------------------------------
    def _build_net(self) -> torch.nn.Module:
        in_ch = geo.input_channels(self.store.n_channels)
        return build_shell_model(self.cfg.net, in_ch, self.cfg.net_kwargs)

    def _build_criterion(self) -> Any:
        return OhemMSE(ohem_keep(self.cfg.losses))

    def _input_stores(self) -> dict[str, str | None]:
        """The case store and distance store, and a ``pred:`` region's method folder:
        its predictions place the validation and test pivots."""
        stores = super()._input_stores()
        folder = parse_roi(self.cfg.roi)[1]
        if folder is not None:
            stores["roi"] = str(folder)
        return stores

    def _train_dataset(self) -> ShellStates:
        cfg = self.cfg
        h, w = cfg.directions
        n = cfg.samples_per_epoch or (64 if cfg.debug else SAMPLES)
        return ShellStates(self.store, self.train_cases, h, w, n, cfg.seed,
                           balance=cfg.balance, perturb=cfg.perturb,
                           step=tuple(cfg.pivot_step))  # fmt: skip

    def _train_loader(self, ds: Any, epoch: int) -> DataLoader:
        ds.set_epoch(epoch_index(epoch))
        return DataLoader(ds, batch_size=self.cfg.batch_size, shuffle=False, **self.loader_opts)

    def _loss(
        self, logits: torch.Tensor, batch: dict[str, Any], epoch: int
    ) -> tuple[torch.Tensor, dict]:
        return self.criterion(logits.float(), batch["target"])

    def _count_dice(
        self, logits: Any, batch: dict[str, Any], inter: torch.Tensor, sums: torch.Tensor
    ) -> None:
        """The one-step shells' Dice sums: predicted radii ``max(D + out, 0)`` against
        the target's ``max(D + Y, 0)``, as volumes (cubes of the radii)."""
        radius = batch["radius"]
        pred = torch.clamp(radius + logits.float(), min=0.0) ** 3
        true = torch.clamp(radius + batch["target"], min=0.0) ** 3
        inter[0] += torch.minimum(pred, true).sum()
        sums[0] += pred.sum() + true.sum()

    def _model_predictor(self) -> ShellPredictor:
        """The :class:`ShellPredictor` on the network in memory (its region of interest
        loaded once)."""
        if self._predictor is None:
            self._predictor = ShellPredictor.of_training(
                self.forward_model, self.precision, self.cfg.identity(), self.store
            )
        return self._predictor

    def _predictions(
        self, cases: list[str], loss_fn: Any = None
    ) -> Iterator[tuple[str, np.ndarray, tuple[float, int]]]:
        """Each case segmented by the predictor (the validation loss comes from the
        fixed states instead, :meth:`_validate`)."""
        predictor = self._model_predictor()
        for case in cases:
            image = np.asarray(self.store.image(case), dtype=np.float32)
            label = np.asarray(self.store.label(case)) if predictor.reads_labels else None
            if case not in self.regions:  # the region method is fixed: once per case
                self.regions[case] = predictor.region(image, label)
            labels, _ = predictor.predict(image, label=label, region=self.regions[case])
            self.case_stats[case] = dict(predictor.last_stats)
            yield case, labels, (0.0, 0)

    def _validate(self, epoch: int) -> tuple[list[dict[str, Any]], float, dict[str, float], float]:
        total, n = self._fixed_loss(self.val_states, epoch)
        val_loss = total / n if n else math.nan
        rows, _, columns, score = super()._validate(epoch)
        return rows, val_loss, columns, score

    def _case_timing(self, case: str) -> dict[str, float]:
        """``test/timing.csv``'s parts of a case's segmentation
        (:data:`segline.experiments.ebp.apply.TIMING_COLUMNS`)."""
        stats = self.case_stats.get(case, {})
        return {k: stats.get(k, math.nan) for k in TIMING_COLUMNS}


def build_parser() -> argparse.ArgumentParser:
    """``python -m segline.train``'s parser plus EBP's options (module docstring)."""
    p = train_cli.build_parser()
    p.prog = prog("python -m segline.experiments.ebp.train")
    p.description = __doc__.split("\n")[0]
    g = p.add_argument_group("EBP (Elastic Boundary Projection)")
    g.add_argument("--roi", required=True,
                   help="test pivots' region: pred:<method folder> (the box of its "
                   "prediction's largest component) or gt (oracle: the label's box)")
    g.add_argument("--directions", default="16,16", help="direction grid H,W (default 16,16)")
    g.add_argument("--pivot-step", default="3,6,6",
                   help="pivot grid step z,y,x in voxels (default 3,6,6, the published)")
    g.add_argument("--balance", default="0.5",
                   help="share of inside pivots among training states (0.5), or natural")
    g.add_argument("--perturb", type=float, default=0.5,
                   help="probability of a perturbed training state (0.5)")
    g.add_argument("--tau", type=float, default=0.5,
                   help="vote: share of the pivots within reach that must hold a voxel (0.5)")
    p.set_defaults(net=None, losses=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and train EBP (:func:`segline.train.cli.run_trainer`)."""
    args = build_parser().parse_args(argv)
    return train_cli.run_trainer(args, argv, EBPTrainer)


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
