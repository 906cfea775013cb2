"""Where the data comes from: lineage files (md5 + source), safe extraction, download.

* :mod:`~segline.lineage.lineagefile`: parse ``lineage/<ds>.lineage`` (md5sum format
  plus ``# key: value`` metadata) and verify archives against it;
* :mod:`~segline.lineage.extract`: check and extract tar / zip archives atomically
  (the ``preprocess/unpack.py`` CLI);
* :mod:`~segline.lineage.fetch`: resumable, md5-checked download (the
  ``preprocess/fetch.py`` CLI).
"""

from segline.lineage.extract import Summary, extract_archives, open_archive
from segline.lineage.fetch import Fetched, fetch
from segline.lineage.lineagefile import Lineage, md5_of, parse_lineage, verify

__all__ = [
    "Fetched",
    "Lineage",
    "Summary",
    "extract_archives",
    "fetch",
    "md5_of",
    "open_archive",
    "parse_lineage",
    "verify",
]
