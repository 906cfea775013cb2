"""Which trainer class trained a method folder: ``args.json`` ``trainer``.

A training records its trainer class as ``"module:Class"`` (:func:`trainer_name`),
e.g. ``"segline.train.loop:Trainer"``. The stages that apply a trained method
(``segline-predict``, the evaluation stage) import it back by that name
(:func:`trainer_class`) and ask the class how: its predictor
(:meth:`segline.train.loop.Trainer.predictor`) and, when its predictions are no class
maps, how they are scored (:meth:`~segline.train.loop.Trainer.source_scorer`). So
the core names no experiment and imports only the trainer a folder names: a stage
applying a core training never imports ``segline.experiments`` (its ``.d`` file
holds none of their files).

A folder without the record (trained before trainers recorded themselves) is the
core trainer's.

Example:
    >>> from segline.train.loop import Trainer
    >>> trainer_name(Trainer)
    'segline.train.loop:Trainer'
    >>> trainer_class({}, Path("args.json")) is Trainer
    True
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segline.errors import InputError

if TYPE_CHECKING:
    from segline.train.loop import Trainer

TRAINER_KEY = "trainer"
"""The ``args.json`` key of the trainer class."""
CORE = "segline.train.loop:Trainer"
"""The trainer of a folder that records none."""


def trainer_name(cls: type) -> str:
    """``"module:Class"`` of a trainer class; a class defined in a module run as
    ``python -m <module>`` (``__main__``) is named by that module's import name, so the
    name imports the class back in another process."""
    module = cls.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
    return f"{module}:{cls.__qualname__}"


def trainer_class(args: dict[str, Any], where: Path) -> type[Trainer]:
    """The trainer class ``args`` (a training's ``args.json``, read from ``where``)
    records, imported; the core trainer when it records none.

    Raises:
        InputError: the name is not ``module:Class``, does not import, or is no
            subclass of :class:`segline.train.loop.Trainer`.
    """
    from segline.train.loop import Trainer

    name = args.get(TRAINER_KEY, CORE)
    module, sep, attribute = str(name).partition(":")
    if not sep or not module or not attribute:
        raise InputError(where, f"trainer {name!r}: expected module:Class")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise InputError(where, f"trainer {name!r} not found ({err})") from None
    if not (isinstance(found, type) and issubclass(found, Trainer)):
        raise InputError(where, f"trainer {name!r} is not a segline.train.loop.Trainer")
    return found
