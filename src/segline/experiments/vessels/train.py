"""Trainer of the vessel methods (``python -m segline.experiments.vessels.train``).

:class:`segline.train.loop.Trainer` with the weak supervision of the vessels
experiment plugged in through its hooks, so it writes the same method folder
(docs/CONTRACTS.md) with the same seeding, patches, sliding windows, resume, lineage
and provenance, and takes every option of ``python -m segline.train`` (make's
``TRAIN_PARAMS``) plus:

- ``--label-source pseudo --pseudo data/<ds>/pseudo``: the 3D training patches'
  labels (and distance maps, for a loss that reads them) are the pseudo-labels
  (:class:`~segline.experiments.vessels.inputs.PseudoLabels`, the trainer's
  :meth:`~segline.train.loop.Trainer._training_labels`); 255 = unlabelled, ignored by
  the losses. Validation and test stay on the true labels;
- ``--mip data/<ds>/mip``: the MIP store, for the MIP loss (``mip`` in ``--losses``,
  :mod:`~segline.experiments.vessels.loss`, whose batch keys come from
  :class:`~segline.experiments.vessels.inputs.MipInputs`, the trainer's
  :meth:`~segline.train.loop.Trainer._batch_inputs`) and the ``mip_dice`` metric
  (``--metrics ...,mip_dice``: :class:`~segline.experiments.vessels.mipdice.MipDiceRows`,
  the trainer's :meth:`~segline.train.loop.Trainer._case_rows`).

The fused method (``--net MipFused --losses 'mip_fused:1[axis=A]'``): the network
:class:`~segline.experiments.vessels.fused.MipFused` returns, in training, its 3D
logits and its fused 2D outputs; the trainer hands the 3D logits to the training
Dice and the loss, and the 2D outputs to the loss as batch keys
(:meth:`VesselTrainer._loss`). Prediction (validation, test, ``segline-predict``, the
evaluation stage) uses the network's 3D head only. The network's module is imported
only when ``--net`` names it, so the other methods' lineage does not list it.

Both folders are inputs of the training's lineage (``lineage.json``). The evaluation
stage scores a vessel training's ``mip_dice`` in the source geometry through
:meth:`VesselTrainer.source_scorer`. Pseudo-labels and the MIP loss are for 3D
networks (patches); a 2D network is refused with one line.

Example:
    python -m segline.experiments.vessels.train --cases data/vessels-toy/cases \\
        --dist data/vessels-toy/dist --out results/vessels-toy/mip --net UNet3D \\
        --dist-kind 3d --losses 'ce:1,dice:1,mip:1[axis=0]' --label-source pseudo \\
        --pseudo data/vessels-toy/pseudo --mip data/vessels-toy/mip \\
        --metrics dice,hd95,assd,cldice,mip_dice
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segline.cli import cli_of, entry, prog
from segline.experiments.vessels import loss as _loss  # noqa: F401  registers the loss "mip"
from segline.experiments.vessels.inputs import MIP_KEYS, MipInputs, PseudoLabels, read_mip_axis
from segline.experiments.vessels.mipdice import NAME as MIP_DICE
from segline.experiments.vessels.mipdice import MipDiceRows, SourceScorer
from segline.train import cli as train_cli
from segline.train.loop import TrainConfig, Trainer

if TYPE_CHECKING:
    import torch

__all__ = ["LABEL_SOURCES", "VesselConfig", "VesselTrainer", "build_parser", "main"]

LABEL_SOURCES = ("label", "pseudo")
"""``--label-source``: the true 3D labels or the pseudo-labels."""
FUSED_NET = "MipFused"
"""The fused network's name (:data:`segline.experiments.vessels.fused.NAME`)."""
FUSED_LOSS = "mip_fused"


def register_fused_net(net: str) -> None:
    """Import the fused network's module (registering ``MipFused``) when ``net`` names
    it (any letter case): the network registry finds the core's nets by itself."""
    if net.lower() == FUSED_NET.lower():
        from segline.experiments.vessels import fused as _fused  # noqa: F401


def _split_outputs(outputs: Any) -> tuple[Any, dict[str, Any]]:
    """A network's training output as (3D logits, batch keys it adds): the fused
    network's :class:`~segline.experiments.vessels.fused.FusedOutput` gives its 2D
    outputs as keys; any other output is the logits."""
    keys = getattr(outputs, "batch_keys", None)
    if keys is None:
        return outputs, {}
    return outputs.logits, keys()


@dataclass
class VesselConfig(TrainConfig):
    """:class:`TrainConfig` plus the weak supervision (``args.json``)."""

    label_source: str = "label"
    pseudo: str | None = None
    mip: str | None = None


class VesselTrainer(Trainer):
    """The vessel methods on :class:`Trainer`'s loop (module docstring)."""

    config_cls = VesselConfig
    module = "segline.experiments.vessels.train"
    own_metrics = (MIP_DICE,)

    def __init__(self, cfg: VesselConfig, *args: Any, **kwargs: Any) -> None:
        if cfg.label_source == "pseudo" and not cfg.pseudo:
            raise ValueError("--label-source pseudo needs --pseudo (the pseudo-label folder)")
        self.mip_root = Path(cfg.mip) if cfg.mip else None
        self.mip_axis = read_mip_axis(self.mip_root) if self.mip_root else 0
        if MIP_DICE in cfg.metrics and self.mip_root is None:
            raise ValueError(f"--metrics {MIP_DICE} needs --mip (the MIP stage's folder)")
        super().__init__(cfg, *args, **kwargs)
        fused_net = type(self.model).__name__ == FUSED_NET
        names = [getattr(term, "name", "") for term in getattr(self.criterion, "losses", ())]
        if fused_net != (FUSED_LOSS in names):
            raise ValueError(f"--net {FUSED_NET} and the loss {FUSED_LOSS} go together "
                             f"(--net {cfg.net}, --losses {cfg.losses!r})")

    @classmethod
    def predictor(cls, method: Path, store: Any, device: str, amp: str) -> Any:
        """The core's network predictor, the fused network registered first when the
        folder's ``args.json`` names it (its 3D head predicts)."""
        from segline.predicting.infer import read_args

        register_fused_net(str(read_args(method).get("net", "")))
        return super().predictor(method, store, device, amp)

    @classmethod
    def source_scorer(cls, method: Path) -> Any:
        """The per-class metrics and ``mip_dice`` in the source geometry
        (:class:`segline.experiments.vessels.mipdice.SourceScorer`)."""
        return SourceScorer(method)

    # -- hooks of Trainer -----------------------------------------------------------
    def _build_net(self) -> torch.nn.Module:
        """The core's network; the fused one pairs with the loss ``mip_fused`` and
        projects along the MIP store's axis."""
        register_fused_net(self.cfg.net)
        model = super()._build_net()
        if type(model).__name__ == FUSED_NET:
            if self.mip_root is not None and model.axis != self.mip_axis:
                raise ValueError(f"--net-opt axis={model.axis} of {FUSED_NET} differs from "
                                 f"the MIP store's axis {self.mip_axis} (--net-opt axis=MIP_AXIS)")
            if any(n % model.multiple for n in self.cfg.patch):
                raise ValueError(f"--patch {self.cfg.patch} must be a multiple of "
                                 f"{model.multiple} in every axis for {FUSED_NET} with "
                                 f"{model.levels} levels (PATCH, or the network option levels=)")
        return model

    def _loss(self, logits: Any, batch: dict[str, Any], epoch: int) -> tuple[Any, dict]:
        logits, keys = _split_outputs(logits)
        return super()._loss(logits, {**batch, **keys} if keys else batch, epoch)

    def _count_dice(self, logits: Any, batch: dict[str, Any], inter: Any, sums: Any) -> None:
        super()._count_dice(_split_outputs(logits)[0], batch, inter, sums)

    def _training_labels(self) -> PseudoLabels | None:
        if self.cfg.label_source != "pseudo":
            return None
        if self.dims != 3:
            raise ValueError("--label-source pseudo is for 3D networks (patches)")
        return PseudoLabels(self.cfg.pseudo)  # type: ignore[arg-type]

    def _batch_inputs(self) -> MipInputs | None:
        if not MIP_KEYS & self.criterion.requires:
            return None
        if self.mip_root is None:
            raise ValueError("the MIP loss needs --mip (the MIP stage's folder)")
        if self.cfg.aug != "none":
            raise ValueError("--aug (AUG) is not implemented with the MIP loss")
        if self.dims != 3:
            raise ValueError("the MIP loss is for 3D networks (patches)")
        return MipInputs(self.mip_root, self.mip_axis)

    def _case_rows(self) -> MipDiceRows | None:
        if MIP_DICE not in self.cfg.metrics or self.mip_root is None:
            return None
        return MipDiceRows(self.mip_root, self.mip_axis)

    def _input_stores(self) -> dict[str, str | None]:
        cfg = self.cfg
        return {**super()._input_stores(), "mip": cfg.mip, "pseudo": cfg.pseudo}


def build_parser() -> argparse.ArgumentParser:
    """``python -m segline.train``'s parser (with the loss ``mip`` and the metric
    ``mip_dice``) plus the weak-supervision options."""
    p = train_cli.build_parser(own_metrics=VesselTrainer.own_metrics)
    p.prog = prog("python -m segline.experiments.vessels.train")
    p.description = __doc__.split("\n")[0]
    w = p.add_argument_group("weak supervision (MIP labels)")
    w.add_argument(
        "--label-source",
        default="label",
        choices=LABEL_SOURCES,
        help="train on the true labels or on pseudo-labels (255 = ignored)",
    )
    w.add_argument("--pseudo", default=None, help="pseudo-label folder (data/<ds>/pseudo)")
    w.add_argument(
        "--mip", default=None, help="MIP folder (data/<ds>/mip), for the MIP loss/metric"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and train one vessel method on the path of ``python -m segline.train``
    (:func:`segline.train.cli.run_trainer`)."""
    return train_cli.run_trainer(build_parser().parse_args(argv), argv, VesselTrainer)


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
