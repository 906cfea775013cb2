"""Command line of the trainer; the Make recipe of every method calls it.

Example:
    python -m segline.train --cases data/spleen-toy/cases --dist data/spleen-toy/dist \\
        --out results/spleen-toy/gdl --net Dimwit --epochs 2 --losses gdl:1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from segline.errors import InputError
from segline.train import device as dev
from segline.train.loop import TrainConfig, Trainer


def parse_kv(items: Sequence[str]) -> dict[str, int | float | str]:
    """``["base=16", "depth=3"]`` → ``{"base": 16, "depth": 3}`` (numbers parsed, no eval)."""
    out: dict[str, int | float | str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise InputError("--net-opt", f"expected key=value, got {item!r}")
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m segline.train", description=__doc__.split("\n")[0])
    p.add_argument("--cases", required=True, help="case store (data/<ds>/cases)")
    p.add_argument("--dist", required=True, help="distance-map store (data/<ds>/dist)")
    p.add_argument("--out", required=True, help="result folder (results/<ds>/<method>)")
    p.add_argument("--net", default="ENet")
    p.add_argument(
        "--net-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="network constructor option, e.g. base=16 (repeatable)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--losses",
        default="gdl:1",
        help="loss spec, e.g. 'gdl:1,boundary:0.01[schedule=rebalance]' or JSON",
    )
    p.add_argument("--dist-kind", default="2d", choices=["2d", "3d"])
    p.add_argument("--context", type=int, default=0, help="2.5D: neighbouring slices on each side")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"])
    p.add_argument("--lineage", default=None, help="lineage file recorded in provenance")
    p.add_argument("--predict-infer", action="store_true", help="also predict the unlabelled cases")
    p.add_argument("--debug", action="store_true", help="tiny subset per loader")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise InputError("arguments", "EPC, BS must be >= 1 and LR > 0")
    torch.set_num_threads(dev.threads_for_make())
    try:
        precision = dev.choose(args.device, args.amp)
    except (ValueError, RuntimeError) as err:
        raise InputError("DEVICE", str(err)) from None
    cfg = TrainConfig(
        cases=args.cases,
        dist=args.dist,
        out=args.out,
        net=args.net,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        losses=args.losses,
        dist_kind=args.dist_kind,
        context=args.context,
        debug=args.debug,
        net_kwargs=parse_kv(args.net_opt),
        lineage=args.lineage,
        predict_infer=args.predict_infer,
        precision=precision.describe(),
    )
    try:
        trainer = Trainer(cfg, precision, list(sys.argv[1:] if argv is None else argv))
    except ValueError as err:
        raise InputError(args.out, str(err)) from None
    trainer.run()
    return 0
