"""Signed distance maps (mm) for every labelled case of a case store.

Usage (the Make rule for ``data/<ds>/dist``)::

    python preprocess/distmaps.py --cases data/<ds>/cases --out data/<ds>/dist \\
        [--jobs N] [--kinds 2d,3d] [--backend edt|scipy] [--threads T] \\
        [--merge-foreground]

Writes ``<out>/<case_id>/dist2d.npy`` / ``dist3d.npy`` (float32 (K, Z, Y, X)) and
``<out>/distmaps.json``; ``--merge-foreground``: only ``dist3d.npy`` with K = 2
(background, all foreground classes merged), for many-class data sets (vertebrae). All
written at once (atomic folder). The logic and the convention
live in :mod:`segline.distmaps`; this file only parses arguments and prints one line.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from segline.cli import entry, positive_int
from segline.distmaps import BACKENDS, KINDS, write_dist_store
from segline.errors import InputError


def _kinds(text: str) -> tuple[str, ...]:
    """Parse ``--kinds`` ("2d", "3d" or "2d,3d")."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if not kinds or set(kinds) - set(KINDS):
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(KINDS)}")
    return kinds


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="distmaps.py",
        description="Signed distance maps in mm (negative inside, positive outside; "
        "absent class = +diagonal) for every labelled case of a case store.",
    )
    p.add_argument("--cases", required=True, help="case store folder (data/<ds>/cases)")
    p.add_argument("--out", required=True, help="distance-map folder to write (data/<ds>/dist)")
    p.add_argument("--jobs", type=positive_int, default=1, help="worker processes over cases")
    p.add_argument(
        "--kinds",
        type=_kinds,
        default=None,
        help="2d, 3d or 2d,3d (default; 3d with --merge-foreground)",
    )
    p.add_argument("--backend", choices=BACKENDS, default="edt", help="distance transform")
    p.add_argument("--threads", type=positive_int, default=1, help="edt threads per transform")
    p.add_argument(
        "--merge-foreground",
        action="store_true",
        help="K=2 maps: background and every foreground class merged (many-class data "
        "sets, e.g. vertebrae); whole-volume (3d) maps only",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Write the distance-map store and print one summary line."""
    args = parser().parse_args(argv)
    start = time.perf_counter()
    if args.kinds is None:
        args.kinds = ("3d",) if args.merge_foreground else KINDS
    if args.merge_foreground and "2d" in args.kinds:
        raise InputError(
            "--merge-foreground", "writes whole-volume (3d) maps only; drop 2d from --kinds"
        )
    info = write_dist_store(
        args.cases,
        args.out,
        args.kinds,
        args.jobs,
        args.backend,
        args.threads,
        merge_foreground=args.merge_foreground,
    )
    skipped = len(info["skipped_unlabelled"])
    print(
        f"distmaps: {len(info['cases'])} cases ({','.join(info['kinds'])}, "
        f"K={info['n_classes']}, {info['backend']}"
        + (f", {skipped} unlabelled skipped" if skipped else "")
        + f") -> {args.out} in {time.perf_counter() - start:.1f} s",
        file=sys.stdout,
    )
    return 0


if __name__ == "__main__":
    entry(main)
