"""Deterministic toy archives by data-set name: ``preprocess/make_toy.py`` and the
``segline-make-toy`` command (``--dataset spleen --out data/spleen-toy.tar``).

The toy archive has the format of the real download and is checked against its
lineage md5 by the unpack stage like any other archive. A generator is a function
``writer(outs: list[Path], seed: int)`` that writes every archive of its data set
atomically, registered with ``@register_toy("<name>")`` in its module beside this one
(``toy_<name>.py``; a variant is one more function, ``isles-hard``); :func:`get_toy`
imports only that module (:class:`segline.registry.Registry`). A data set with several
archives (ISLES: the training and the testing zip) takes one ``--out`` per archive,
in lineage order.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from segline.cli import HelpFormatter, cli_of, prog
from segline.registry import Registry

Writer = Callable[[list[Path], int], None]
W = TypeVar("W", bound=Writer)

TOYS: Registry[Writer] = Registry(
    "toy", "toys", "segline.datasets", "register_toy", pattern=r"[a-z][a-z0-9_-]*",
)
"""The toy generators: each registered by :func:`register_toy` in its module of
``segline.datasets``, imported when asked for."""


def register_toy(name: str) -> Callable[[W], W]:
    """Function decorator: make a writer ``writer(outs, seed)`` available as
    ``--dataset name`` (make's ``TOY_GENERATOR``)."""
    return TOYS.register(name)


def toy_names() -> list[str]:
    """Names of the toy generators, sorted (read from the sources: imports none)."""
    return TOYS.names()


def get_toy(name: str) -> Writer:
    """The writer registered as ``name``, importing only its module.

    Raises:
        UnknownName: (a ``ValueError``) unknown name; the message lists the known ones.
    """
    return TOYS.get(name)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog=prog("make_toy.py"),
        description="Write a deterministic toy archive (same format as the real data set).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--dataset", required=True, choices=toy_names(), help="which toy to write"
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
    get_toy(args.dataset)(list(args.out), args.seed)
    for out in args.out:
        print(
            f"make_toy: wrote {out} ({out.stat().st_size} bytes, "
            f"dataset {args.dataset}, seed {args.seed})"
        )
    return 0


cli = cli_of(main)
