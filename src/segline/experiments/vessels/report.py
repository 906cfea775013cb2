"""The report of ``vessels.make`` (make's ``REPORTER``): :mod:`segline.report` with
the ``mip_dice`` metric registered.

The core report builds its metric tables (titles, directions, digits, conventions)
from :mod:`segline.metrics.registry` when it is imported; this module imports
:mod:`segline.experiments.vessels.mipdice` first, whose record then reaches every
table, and runs the core report's command line unchanged::

    python -m segline.experiments.vessels.report --metrics dice,cldice,hd95,assd,mip_dice ...
"""

from segline.cli import entry
from segline.experiments.vessels import mipdice as mipdice  # registers mip_dice first
from segline.report.build import main

__all__ = ["main", "mipdice"]

if __name__ == "__main__":
    entry(main)
