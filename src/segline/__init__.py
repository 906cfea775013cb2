"""segline: reproducible segmentation experiments driven by GNU Make.

The package is organised by pipeline stage (see ``docs/ARCHITECTURE.md``):
``lineage`` (verify, extract, fetch), ``datasets`` (source adapters and toy
generators), ``preprocess`` (windowing, resampling, geometry), ``distmaps``,
``data`` (torch datasets), ``losses``, ``nets``, ``metrics``, ``plots``,
``report`` and ``pack``.
"""

__version__ = "0.1.0"
