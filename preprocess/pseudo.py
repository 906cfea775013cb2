"""3D pseudo-labels from 2D MIP labels (the ``data/<ds>/pseudo`` Make target).

Usage::

    python preprocess/pseudo.py --cases data/<ds>/cases --mip data/<ds>/mip \\
        --out data/<ds>/pseudo [--rules segline|reference] [--fg-rel 0.7] \\
        [--bg-factor 0.5] [--min-size 10] [--connectivity 26] [--jobs 1]

Writes ``<out>/<case_id>/pseudo.npy`` (uint8: 0 bg, 1 vessel, 255 unlabelled),
``<out>/<case_id>/pseudo_dist3d.npy`` (float32 (2, Z, Y, X), mm), ``quality.csv``,
``quality.md`` and ``pseudo.json`` at once (atomic folder), and prints the quality
table. The rules live in :mod:`segline.experiments.vessels.pseudo`.
"""

from segline.cli import entry
from segline.experiments.vessels.pseudo import main

if __name__ == "__main__":
    entry(main)
