"""Signed distance maps (mm) for every labelled case of a case store.

Usage (the Make rule for ``data/<ds>/dist``; also the ``segline-distmaps`` command)::

    python preprocess/distmaps.py --cases data/<ds>/cases --out data/<ds>/dist \\
        [--jobs N] [--kinds 2d,3d] [--backend edt|scipy] [--threads T] \\
        [--merge-foreground]

Writes ``<out>/<case_id>/dist2d.npy`` / ``dist3d.npy`` (float32 (K, Z, Y, X)) and
``<out>/distmaps.json``; ``--merge-foreground``: only ``dist3d.npy`` with K = 2
(background, all foreground classes merged), for many-class data sets (vertebrae).
All written at once (atomic folder). The logic, the convention and the command line
live in :mod:`segline.distmaps`.
"""

from segline.cli import entry
from segline.distmaps import main

if __name__ == "__main__":
    entry(main)
