"""The metric registry: one record per metric name of ``metrics.csv``.

Every consumer reads its facts about a metric here: the per-case table
(:func:`segline.metrics.table.case_metrics`, which imports a metric's function only
when the metric is asked for), the training's ``--metrics`` check, the evaluation
stage's list of metrics it can compute, the plots' titles and axis labels, the report's
columns, directions, digits and conventions, and ``segline-evaluate``.

A record says:

* ``title``, ``unit`` (``"mm"`` for distances in mm of the voxel spacing, ``""`` for
  scores and counts), ``higher_is_better`` and the ``digits`` the report shows;
* ``kind``, how a value is computed, which decides who can compute it:

  - ``"mask"``: a function ``f(pred, gt) -> float`` of two binary masks of one class
    (:data:`MASK`), computed by :func:`~segline.metrics.table.case_metrics`;
  - ``"surface"``: from the two masks' surface distances in mm, computed once per
    class and shared by every surface metric (``hd95``, ``assd``, ``hd``);
  - ``"projection"``: a function of the two masks and a projection axis, computed
    by the trainer and the evaluation stage of the experiment that registers it
    (e.g. ``mip_dice``, :mod:`segline.experiments.vessels.mipdice`);
  - ``"instance"``: a per-case value of matched instances
    (:mod:`segline.metrics.instances`, vertebrae), computed by their own code;

* ``function``: ``"module:attribute"`` of the computing function, imported on first
  use (:func:`function_of`), so that a module computing only Dice never imports the
  clDice skeletons: a stage's code dependencies (its ``.d`` file, recorded from the
  modules it imported) then hold only the metrics it computed;
* ``convention``: the Markdown bullet the report's conventions add when the metric is
  reported (its definition and empty-mask rule), empty when the shared text covers it.

Adding a metric: one record in :data:`REGISTRY` and its function; nothing else names
it. A metric outside segline (a package of the user's, or a test) plugs in through
the entry-point group :data:`ENTRY_POINTS` (``segline.metrics``): each entry point
loads to a :class:`Metric` record, registered when this module is first imported, in
entry-point name order, so every CLI (the trainer's ``--metrics``, the evaluation
stage, the report, the plots) knows it without another change. An experiment's own
metric (``segline.experiments``) is registered with :func:`register` by its module,
which the experiment's stages import before the core's: an entry point would load it
into every stage of every dataset (and into their code dependencies).

Example:
    >>> get("hd95").unit, get("dice").higher_is_better, get("assd").digits
    ('mm', True, 2)
    >>> [m.name for m in by_kind("surface")]
    ['hd95', 'assd', 'hd']
    >>> names("mask", "surface")
    ('dice', 'cldice', 'precision', 'recall', 'hd95', 'assd', 'hd')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ENTRY_POINTS",
    "REGISTRY",
    "Metric",
    "View",
    "by_kind",
    "function_of",
    "get",
    "is_distance",
    "names",
    "register",
]

Kind = Literal["mask", "surface", "projection", "instance"]
ENTRY_POINTS = "segline.metrics"
"""The entry-point group of metrics defined outside segline (module docstring)."""


@dataclass(frozen=True)
class Metric:
    """One metric of ``metrics.csv`` (module docstring)."""

    name: str
    title: str
    higher_is_better: bool
    kind: Kind
    unit: str = ""
    digits: int = 3
    function: str = ""
    convention: str = ""


REGISTRY: dict[str, Metric] = {}
"""Metric name -> record, in registration order (the order of help texts)."""


class View(Mapping[str, Any]):
    """A read-only mapping derived from the registry *when read*: ``first`` (fixed
    entries, in order), then ``make(metric)`` for every registered metric that ``keep``
    accepts, in registration order. Consumers hold a view instead of a copy, so a metric
    registered after they were imported (an experiment's, a plugin's) is known to them.
    """

    def __init__(
        self,
        make: Callable[[Metric], Any],
        keep: Callable[[Metric], bool] = lambda m: True,
        first: Mapping[str, Any] | None = None,
    ) -> None:
        self._make, self._keep, self._first = make, keep, dict(first or {})

    def _names(self) -> list[str]:
        return [*self._first, *(n for n, m in REGISTRY.items()
                                if self._keep(m) and n not in self._first)]

    def __getitem__(self, name: str) -> Any:
        if name in self._first:
            return self._first[name]
        metric = REGISTRY.get(name)
        if metric is None or not self._keep(metric):
            raise KeyError(name)
        return self._make(metric)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def register(metric: Metric) -> Metric:
    """Add ``metric`` to the registry; a second record of one name is refused
    (ValueError), so two modules never disagree on a metric's meaning."""
    if metric.name in REGISTRY and REGISTRY[metric.name] != metric:
        raise ValueError(f"metric {metric.name!r} is registered twice, differently")
    REGISTRY[metric.name] = metric
    return metric


def get(name: str) -> Metric:
    """The record of ``name`` (KeyError naming the known metrics when absent)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(REGISTRY)}") from None


def names(*kinds: Kind) -> tuple[str, ...]:
    """Registered names, of the given kinds only when any are given."""
    return tuple(m.name for m in REGISTRY.values() if not kinds or m.kind in kinds)


def by_kind(kind: Kind) -> list[Metric]:
    """The records of one kind, in registration order."""
    return [m for m in REGISTRY.values() if m.kind == kind]


def is_distance(name: str) -> bool:
    """A distance (mm, lower is better): undefined when exactly one mask is empty."""
    m = get(name)
    return m.unit == "mm" and not m.higher_is_better


_LOADED: dict[str, Callable[..., Any]] = {}


def function_of(name: str) -> Callable[..., Any]:
    """The computing function of ``name``, imported on first use."""
    if name not in _LOADED:
        spec = get(name).function
        if not spec:
            raise ValueError(f"metric {name!r} has no function of its own")
        module, _, attribute = spec.partition(":")
        _LOADED[name] = getattr(importlib.import_module(module), attribute)
    return _LOADED[name]


for _metric in (
    Metric("dice", "Dice", True, "mask", function="segline.metrics.overlap:dice"),
    Metric(
        "cldice", "clDice", True, "mask", function="segline.metrics.cldice:cldice",
        convention="- clDice (centreline Dice): 2·Tprec·Tsens / (Tprec + Tsens), Tprec ="
        " fraction\n  of the predicted skeleton inside the reference mask, Tsens = fraction"
        " of the\n  reference skeleton inside the prediction; empty-mask conventions as"
        " Dice.\n",
    ),
    Metric(
        "precision", "Precision", True, "mask", function="segline.metrics.voxelwise:precision",
        convention="- Precision: |P ∩ G| / |P| (voxels); 1 when both masks are empty,\n"
        "  undefined when only the prediction is.\n",
    ),
    Metric(
        "recall", "Recall", True, "mask", function="segline.metrics.voxelwise:recall",
        convention="- Recall (sensitivity): |P ∩ G| / |G| (voxels); 1 when both masks are\n"
        "  empty, undefined when only the reference is.\n",
    ),
    Metric("hd95", "HD95", False, "surface", "mm", 2),
    Metric("assd", "ASSD", False, "surface", "mm", 2),
    Metric(
        "hd", "HD", False, "surface", "mm", 2,
        convention="- HD: maximum (100th percentile) of the same pooled distances, in mm;"
        " undefined\n  and 0 as HD95.\n",
    ),
    Metric("id_rate", "ID rate", True, "instance"),
    Metric(
        "false_positives", "False positives", False, "instance", "", 2,
        convention="- False positives: predicted instances of a case that identify no\n"
        "  vertebra (unmatched, or matched with Dice < 0.5); a count, lower is better.\n",
    ),
    Metric(
        "misses", "Misses", False, "instance", "", 2,
        convention="- Misses: vertebrae of a case not identified; a count, lower is"
        " better.\n",
    ),
):  # fmt: skip
    register(_metric)


def load_plugins() -> list[str]:
    """Register the metrics of the :data:`ENTRY_POINTS` group (sorted by entry-point
    name, so the order never depends on the installation); their names. An entry
    point that does not load to a :class:`Metric` is refused (TypeError naming it)."""
    from importlib.metadata import entry_points

    added = []
    for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        metric = ep.load()
        if not isinstance(metric, Metric):
            raise TypeError(f"entry point {ep.name} = {ep.value} of {ENTRY_POINTS} is not a "
                            "segline.metrics.registry.Metric")
        added.append(register(metric).name)
    return added


load_plugins()
