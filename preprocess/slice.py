"""Slice an unpacked raw dataset into a case store (the ``data/<ds>/cases`` Make target).

Usage::

    python preprocess/slice.py --adapter msd --raw data/spleen/raw --out data/spleen/cases \
        [--window 40,400 | --no-window] [--norm ct|zscore|percentile[,...]] \
        [--spacing z,y,x] [--inplane N] \
        [--n-test 20] [--n-val 5] [--split ordered|random] [--split-seed N] \
        [--split-file splits_final.json [--split-fold K]] [--stratify ATTR] \
        [--stratify-file CSV] [--label-map A:B ...] [--jobs 1]

All logic lives in :mod:`segline.preprocess.slicing`; ``--help`` lists every option.
"""

from segline.cli import entry
from segline.preprocess.slicing import main

if __name__ == "__main__":
    entry(main)
