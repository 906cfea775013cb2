"""Deterministic toy archives by data-set name: ``preprocess/make_toy.py`` and the
``segline-make-toy`` command (``--dataset spleen --out data/spleen-toy.tar``).

The toy archive has the format of the real download and is checked against its
lineage md5 by the unpack stage like any other archive. Generators are looked up by
name in :data:`GENERATORS` (module and function, imported on demand: no eval); the
generators live beside this module (``toy_<name>.py``). A data set with several
archives (ISLES: the training and the testing zip) takes one ``--out`` per archive,
in lineage order.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from pathlib import Path

from segline.cli import HelpFormatter, cli_of, prog

# name -> (module, function); the function is writer(outs: list[Path], seed: int) and
# writes every archive of the data set atomically.
GENERATORS: dict[str, tuple[str, str]] = {
    "spleen": ("segline.datasets.toy_spleen", "write_toy_archives"),
    "isles": ("segline.datasets.toy_isles", "write_toy_archives"),
    "isles-hard": ("segline.datasets.toy_isles", "write_hard_toy_archives"),
    "vessels": ("segline.datasets.toy_vessels", "write_toy_archives"),
    "vertebrae": ("segline.datasets.toy_vertebrae", "write_toy_archives"),
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog=prog("make_toy.py"),
        description="Write a deterministic toy archive (same format as the real data set).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--dataset", required=True, choices=sorted(GENERATORS), help="which toy to write"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        action="append",
        help="archive to write (repeat for data sets with several archives)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="generator seed (lineage md5s are for 0)"
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments (see ``--help``)."""
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the archive named by ``--dataset`` to ``--out``; return 0."""
    args = parse_args(argv)
    module, function = GENERATORS[args.dataset]
    writer = getattr(importlib.import_module(module), function)
    writer(list(args.out), args.seed)
    for out in args.out:
        print(
            f"make_toy: wrote {out} ({out.stat().st_size} bytes, "
            f"dataset {args.dataset}, seed {args.seed})"
        )
    return 0


cli = cli_of(main)
