"""Segmentation losses, one class per loss, found by name.

Each loss registers itself with :func:`register_loss` in its own module; the package
imports none of them: :func:`get_loss` imports the one asked for (so a training's
lineage lists only the losses its spec names), :func:`loss_names` lists them all.
Registered names (aliases in brackets):

- ``ce`` (crossentropy, cross_entropy): :class:`CrossEntropy`
- ``dice``: :class:`Dice`
- ``gdl`` (generalized_dice, generalised_dice): :class:`GeneralizedDice`
- ``boundary`` (surface): :class:`Boundary`
- ``hausdorff`` (hd, hausdorff_dt): :class:`HausdorffDT` (two-sided, Karimi & Salcudean)
- ``hausdorff_gt``: :class:`HausdorffGT` (one-sided: distance to the ground truth only)
- ``focal``: :class:`Focal`

An experiment registers its own losses with :func:`register_loss` in its package (e.g. the
vessels experiment's ``mip``, :mod:`segline.experiments.vessels.loss`), imported by
its trainer before the spec is parsed.

A method's losses are a spec string (``gdl:1,boundary:0.01[schedule=rebalance]``,
see :mod:`segline.losses.spec`) turned into a :class:`CombinedLoss`.

Example:
    >>> import torch
    >>> crit = CombinedLoss.from_spec("gdl:1,boundary:0.01", n_classes=2)
    >>> logits = torch.randn(2, 2, 8, 8)
    >>> target = torch.nn.functional.one_hot(torch.zeros(2, 8, 8).long(), 2)
    >>> batch = {"target": target.movedim(-1, 1).float(), "dist": torch.ones(2, 2, 8, 8)}
    >>> total, values = crit(logits, batch, epoch=0)
    >>> sorted(values)
    ['boundary', 'gdl']
"""

from segline.losses.combined import CombinedLoss
from segline.losses.registry import (
    LOSSES,
    SegLoss,
    get_loss,
    get_loss_class,
    loss_names,
    register_loss,
)
from segline.losses.schedule import SCHEDULE_KINDS, Schedule
from segline.losses.spec import LossTerm, parse_spec, terms_to_json

__all__ = [
    "LOSSES",
    "SCHEDULE_KINDS",
    "CombinedLoss",
    "LossTerm",
    "Schedule",
    "SegLoss",
    "get_loss",
    "get_loss_class",
    "loss_names",
    "parse_spec",
    "register_loss",
    "terms_to_json",
]
