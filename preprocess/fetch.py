"""Download an archive listed in a lineage file; keep it only if its md5 matches.

Usage: ``fetch.py --lineage LINEAGE [--timeout SECONDS] TARGET`` (the ``data/<archive>``
Make recipe). The logic lives in :mod:`segline.lineage.fetch`.
"""

from segline.cli import entry
from segline.lineage.fetch import main

if __name__ == "__main__":
    entry(main)
