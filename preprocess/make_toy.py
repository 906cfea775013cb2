#!/usr/bin/env python
"""Generate a deterministic toy archive: ``make_toy.py --dataset spleen --out data/spleen-toy.tar``.

Also the ``segline-make-toy`` command. The generators (:data:`GENERATORS`) and the
command line live in :mod:`segline.datasets.toys`.
"""

from segline.cli import entry
from segline.datasets.toys import GENERATORS, main

__all__ = ["GENERATORS", "main"]

if __name__ == "__main__":
    entry(main)
