#!/usr/bin/env python
"""Generate a deterministic toy archive: ``make_toy.py --dataset spleen --out data/spleen-toy.tar``.

The toy archive has the format of the real download and is checked against its
lineage md5 by the unpack stage like any other archive. Generators are looked up by
name in :data:`GENERATORS` (add ISLES / vessels there); the logic lives in
``segline.datasets``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from segline.cli import entry
from segline.datasets.toy_spleen import write_toy_spleen

# name -> writer(path, seed): writes the archive atomically.
GENERATORS: dict[str, Callable[[Path, int], None]] = {
    "spleen": lambda path, seed: write_toy_spleen(path, seed=seed),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments (see ``--help``)."""
    parser = argparse.ArgumentParser(
        description="Write a deterministic toy archive (same format as the real data set)."
    )
    parser.add_argument("--dataset", required=True, choices=sorted(GENERATORS))
    parser.add_argument("--out", required=True, type=Path, help="archive to write")
    parser.add_argument(
        "--seed", type=int, default=0, help="generator seed (lineage md5s are for 0)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the archive named by ``--dataset`` to ``--out``; return 0."""
    args = parse_args(argv)
    GENERATORS[args.dataset](args.out, args.seed)
    size = args.out.stat().st_size
    print(f"make_toy: wrote {args.out} ({size} bytes, dataset {args.dataset}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    entry(main)
