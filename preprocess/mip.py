"""Maximum intensity projections of a case store (the ``data/<ds>/mip`` Make target).

Usage::

    python preprocess/mip.py --cases data/<ds>/cases --out data/<ds>/mip [--axis 0] \\
        [--occluder-hu 400 --raw data/<ds>/raw [--occluder-margin 1]]

Writes ``<out>/<case_id>/{mip,depth,mip_label}.npy`` and ``<out>/mip.json`` at once
(atomic folder). ``--axis`` indexes the stored (Z, Y, X) volume: 0 = z (default).
``--occluder-hu`` removes voxels brighter than that many HU (read from the source
images in ``--raw``) before the max.
The logic and conventions live in :mod:`segline.experiments.vessels.mip`.
"""

from segline.cli import entry
from segline.experiments.vessels.mip import main

if __name__ == "__main__":
    entry(main)
