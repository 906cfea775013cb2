"""Segmentation losses, one class per loss, found by name.

Registered names (aliases in brackets):

- ``ce`` (crossentropy, cross_entropy): :class:`CrossEntropy`
- ``dice``: :class:`Dice`
- ``gdl`` (generalized_dice, generalised_dice): :class:`GeneralizedDice`
- ``boundary`` (surface): :class:`Boundary`
- ``hausdorff`` (hd, hausdorff_dt): :class:`HausdorffDT` (two-sided, Karimi & Salcudean)
- ``hausdorff_gt``: :class:`HausdorffGT` (one-sided: distance to the ground truth only)
- ``focal``: :class:`Focal`

An experiment registers its own losses with :func:`register` in its package (e.g. the
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

from segline.losses.boundary import Boundary
from segline.losses.combined import CombinedLoss
from segline.losses.crossentropy import CrossEntropy
from segline.losses.dice import Dice, GeneralizedDice
from segline.losses.focal import Focal
from segline.losses.hausdorff import HausdorffDT, HausdorffGT
from segline.losses.registry import SegLoss, get_loss, known_losses, loss_class, register
from segline.losses.schedule import SCHEDULE_KINDS, Schedule
from segline.losses.spec import LossTerm, parse_spec, terms_to_json

__all__ = [
    "SCHEDULE_KINDS",
    "Boundary",
    "CombinedLoss",
    "CrossEntropy",
    "Dice",
    "Focal",
    "GeneralizedDice",
    "HausdorffDT",
    "HausdorffGT",
    "LossTerm",
    "Schedule",
    "SegLoss",
    "get_loss",
    "known_losses",
    "loss_class",
    "parse_spec",
    "register",
    "terms_to_json",
]
