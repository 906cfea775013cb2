#!/usr/bin/env python
"""Generate a deterministic toy archive: ``make_toy.py --dataset spleen --out data/spleen-toy.tar``.

Also the ``segline-make-toy`` command. The generators (``@register_toy``,
:func:`~segline.datasets.toys.toy_names`) and the command line live in
:mod:`segline.datasets.toys`.
"""

from segline.cli import entry
from segline.datasets.toys import get_toy, main, toy_names

__all__ = ["get_toy", "main", "toy_names"]

if __name__ == "__main__":
    entry(main)
