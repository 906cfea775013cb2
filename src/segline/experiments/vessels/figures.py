"""The figures of ``vessels.make`` (make's ``PLOTTER``): :mod:`segline.plots.figures`
with the ``mip_dice`` metric registered (its title in the ``val_mip_dice`` curve).

The core's metric table (:mod:`segline.results`) is built from
:mod:`segline.metrics.registry` when it is imported; this module imports
:mod:`segline.experiments.vessels.mipdice` first and runs the core figures' command
line unchanged.
"""

from segline.cli import entry
from segline.experiments.vessels import mipdice as mipdice  # registers mip_dice first
from segline.plots.figures import main

__all__ = ["main", "mipdice"]

if __name__ == "__main__":
    entry(main)
