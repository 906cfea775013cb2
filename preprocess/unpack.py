"""Verify archives against a lineage file and extract them safely into one folder.

Usage: ``unpack.py --lineage LINEAGE --out DIR [--exclude GLOB ...] [--max-ratio N]
ARCHIVE [ARCHIVE ...]``
(the ``data/<ds>/raw`` Make recipe). The logic lives in :mod:`segline.lineage.extract`.
"""

from segline.cli import entry
from segline.lineage.extract import main

if __name__ == "__main__":
    entry(main)
