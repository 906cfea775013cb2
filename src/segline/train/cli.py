"""Command line of the trainer; the Make recipe of every method calls it.

Example:
    python -m segline.train --cases data/spleen-toy/cases --dist data/spleen-toy/dist \\
        --out results/spleen-toy/gdl --net Dimwit --epochs 2 --losses gdl:1
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

from segline.cli import HelpFormatter, cli_of, count, format_default, positive_int, prog
from segline.data.augment import AUGS
from segline.errors import InputError
from segline.seeds import training_label
from segline.train import compile as comp
from segline.train import device as dev
from segline.train import gpus, loader, preempt
from segline.train.loop import TrainConfig, Trainer
from segline.train.schedule import SCHEDS
from segline.train.voice import Voice

STOP_NOTE = (
    "exit status: 0 done; 2 bad input; 75 stopped by SIGTERM or SIGUSR1 after the "
    "optimisation step in progress, with a resumable state in <out>_tmp (run the same "
    "command again to continue; a second signal stops at once, exit 128+signal)"
)
"""The end of ``--help``: the exit codes, the graceful stop among them."""


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


def int_tuple(text: str, what: str, n: int) -> tuple[int, ...]:
    """``"32,48,48"`` → ``(32, 48, 48)``; exactly ``n`` positive integers."""
    parts = text.split(",")
    if len(parts) != n or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise InputError(what, f"expected {n} positive integers separated by commas, got {text!r}")
    return tuple(int(p) for p in parts)


def weight_pair(text: str | None) -> tuple[float, float] | None:
    """``"5,3"`` → ``(5.0, 3.0)`` (w0, sigma in mm); None stays None."""
    if text is None:
        return None
    try:
        w0, sigma = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(
            "--weight-map", f"expected w0,sigma_mm (two numbers), got {text!r}"
        ) from None
    if not (math.isfinite(w0) and math.isfinite(sigma) and w0 >= 0 and sigma > 0):
        raise InputError(
            "--weight-map", f"w0 must be a finite number >= 0 and sigma > 0, got {text!r}"
        )
    return (w0, sigma)


def metric_names(text: str, own: Sequence[str] = ()) -> tuple[str, ...]:
    """Validated metric list, with dice: the registry's per-class metrics the core
    computes (:mod:`segline.metrics.registry`: mask and surface kinds) and ``own``, the
    metrics the trainer computes itself (:attr:`Trainer.own_metrics`)."""
    from segline.metrics.registry import names as registered

    known = (*registered("mask", "surface"), *own)
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in known]
    if unknown or "dice" not in names:
        raise InputError(
            "--metrics", f"unknown {unknown} or no dice (known: {', '.join(known)})"
        )
    return names


def parse_number(text: str, cast: type, option: str) -> int | float:
    """``text`` as ``cast`` (int or float), else one :class:`InputError` line."""
    try:
        return cast(text)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise InputError(option, f"must be {kind}, got {text!r}") from None


def check_recipe(args: argparse.Namespace) -> None:
    """Check and convert the recipe options (AUG, SCHED, WARMUP, WD) in place: one
    :class:`InputError` line each, e.g. ``segline: --aug (AUG): must be one of none,
    light, strong, got 'heavy'``."""
    for option, value, known in (
        ("--aug (AUG)", args.aug, AUGS),
        ("--sched (SCHED)", args.sched, SCHEDS),
    ):
        if value not in known:
            raise InputError(option, f"must be one of {', '.join(known)}, got {value!r}")
    args.warmup = parse_number(args.warmup, int, "--warmup (WARMUP)")
    args.wd = parse_number(args.wd, float, "--wd (WD)")
    if not 0 <= args.warmup < args.epochs:
        raise InputError(
            "--warmup (WARMUP)",
            f"must be an integer >= 0 and below the epochs ({args.epochs}), got {args.warmup}",
        )
    if not (math.isfinite(args.wd) and args.wd >= 0):
        raise InputError("--wd (WD)", f"must be a finite number >= 0, got {args.wd}")


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse numeric options out of range, ``inf`` and ``nan`` (which ``float()`` accepts).

    One :class:`InputError` naming the option and its Make knob, e.g.
    ``segline: --lr (LR): must be a finite number > 0, got inf``; checked before
    anything is read or written.
    """

    def finite(x: float) -> bool:
        return math.isfinite(x)

    rules: list[tuple[str, float | int | None, bool, str]] = [
        ("--epochs (EPC)", args.epochs, args.epochs >= 1, "an integer >= 1"),
        ("--batch-size (BS)", args.batch_size, args.batch_size >= 1, "an integer >= 1"),
        ("--lr (LR)", args.lr, finite(args.lr) and args.lr > 0, "a finite number > 0"),
        ("--seed (SEED)", args.seed, 0 <= args.seed < 2**32, "an integer in [0, 2^32)"),
        (
            "--context (CONTEXT)",
            args.context,
            args.context >= 0,
            "an integer >= 0 (neighbouring slices on each side)",
        ),
        (
            "--fg-ratio",
            args.fg_ratio,
            finite(args.fg_ratio) and 0 <= args.fg_ratio <= 1,
            "a number in [0, 1]",
        ),
        (
            "--overlap",
            args.overlap,
            finite(args.overlap) and 0 <= args.overlap < 1,
            "a number in [0, 1)",
        ),
        (
            "--samples-per-epoch",
            args.samples_per_epoch,
            args.samples_per_epoch is None or args.samples_per_epoch >= 1,
            "an integer >= 1",
        ),
    ]
    for option, value, ok, want in rules:
        if not ok:
            raise InputError(option, f"must be {want}, got {value}")
    check_recipe(args)


def _options(cls: type, skip: tuple[str, ...]) -> str:
    """A class's constructor options as ``name=default`` (``name`` when required)."""
    params = inspect.signature(cls.__init__).parameters
    shown = [
        n if p.default is p.empty else f"{n}={format_default(p.default)}"
        for n, p in params.items()
        if n not in ("self", *skip) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return ", ".join(shown) or "none"


def catalogue() -> str:
    """The nets and losses ``--net`` / ``--losses`` accept, with their options and
    defaults, read from the registries (the epilog of ``--help``)."""
    from segline.losses.registry import get_loss_class, loss_aliases, loss_names
    from segline.losses.schedule import SCHEDULE_KINDS
    from segline.nets.registry import get_net_class, net_names

    lines = ["networks (--net NAME, options with --net-opt KEY=VALUE; 2D or 3D):"]
    for name in net_names():
        cls = get_net_class(name)
        options = _options(cls, ("in_channels", "n_classes"))
        lines.append(f"  {name:<13} {cls.dims}D  {options}")
    aliases = loss_aliases()
    lines += [
        "",
        "losses (--losses 'name[:weight][[key=value;...]]', comma-separated; every loss "
        "takes idc=CLASSES, and a scheduled term schedule="
        + "|".join(SCHEDULE_KINDS)
        + ";step=...;cap=...):",
    ]
    for name in loss_names():
        cls = get_loss_class(name)
        also = [a for a, c in aliases.items() if c == name]
        alias = f" (alias {', '.join(also)})" if also else ""
        lines.append(f"  {name:<13} {cls.kind:<8}  {_options(cls, ('idc',))}{alias}")
    return "\n".join(lines)


class _CatalogueParser(argparse.ArgumentParser):
    """An argument parser whose epilog is :func:`catalogue`, built only when the help is
    shown: building it imports every net and loss module, which a training that only
    parses its options must not do (its lineage, the ``.d`` file, would list them all)."""

    def format_help(self) -> str:
        if self.epilog is None:
            self.epilog = catalogue() + "\n\n" + STOP_NOTE
        return super().format_help()


def build_parser(own_metrics: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The trainer's options; ``own_metrics``: the metrics a subclass of
    :class:`Trainer` computes itself (``--metrics`` help)."""
    from segline.metrics.registry import names as registered_metrics

    p = _CatalogueParser(
        prog=prog("python -m segline.train"),
        description=__doc__.split("\n")[0],
        formatter_class=HelpFormatter,
    )
    p.add_argument("--cases", required=True, help="case store (data/<ds>/cases)")
    p.add_argument("--dist", required=True, help="distance-map store (data/<ds>/dist)")
    p.add_argument("--out", required=True, help="result folder (results/<ds>/<method>)")
    p.add_argument("--net", default="ENet", help="network, by name (list below)")
    p.add_argument(
        "--net-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="network constructor option, e.g. base=16 (repeatable)",
    )
    p.add_argument("--epochs", type=int, default=10, help="epochs to train, numbered 1..N")
    p.add_argument("--batch-size", type=int, default=8, help="slices (2D) or patches (3D)")
    p.add_argument("--lr", type=float, default=5e-4, help="learning rate (Adam/AdamW)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--fold", type=count, default=None, metavar="I",
                   help="cross-validation: train on fold I of the case store's folds "
                   "(test = its held-out cases; make FOLDS); recorded in args.json")
    p.add_argument(
        "--losses",
        default="gdl:1",
        help="loss spec, e.g. 'gdl:1,boundary:0.01[schedule=rebalance]' or JSON",
    )
    p.add_argument(
        "--dist-kind",
        default="2d",
        choices=["2d", "3d"],
        help="distance maps fed to the loader: per slice (2d) or of the volume (3d)",
    )
    p.add_argument("--context", type=int, default=0, help="2.5D: neighbouring slices on each side")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "off", "bf16", "fp16"],
        help="mixed precision; auto = bf16/fp16 on CUDA, bf16 on a CPU with native bf16",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help=f"torch intra-op threads (default {dev.DEFAULT_THREADS}, whatever make's -jN); "
        "they change the last bits of the result, so recorded (args.json threads)",
    )
    p.add_argument("--lineage", default=None, help="lineage file recorded in provenance")
    p.add_argument(
        "--compile",
        default="off",
        help="torch.compile the network: off, on (or 1), graphs (CUDA graphs); recorded",
    )
    p.add_argument(
        "--workers",
        default=None,
        help="DataLoader processes: auto or N (default: $SEGLINE_WORKERS, else auto); "
        "results are identical for any value",
    )
    p.add_argument(
        "--metric-workers",
        default=None,
        help="processes computing per-case metrics beside the device: auto or N",
    )
    g = p.add_argument_group("3D networks (patch training, sliding-window evaluation)")
    g.add_argument("--patch", default="32,48,48", help="patch size z,y,x in voxels")
    g.add_argument(
        "--samples-per-epoch",
        type=int,
        default=None,
        help="patches per epoch (default 8 per training case)",
    )
    g.add_argument(
        "--fg-ratio", type=float, default=0.33, help="share of foreground-centred patches"
    )
    g.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap (0..1)")
    p.add_argument(
        "--weight-map",
        default=None,
        metavar="W0,SIGMA_MM",
        help="boundary weights 1 + w0*exp(-d^2/2sigma^2) per pixel, for ce:1[weighted=true]",
    )
    p.add_argument(
        "--metrics",
        default="dice,hd95,assd",
        help="per-case metrics, with dice: "
        + ",".join((*registered_metrics("mask", "surface"), *own_metrics)),
    )
    r = p.add_argument_group("recipe (all off by default; recorded)")
    r.add_argument("--aug", default="none", help="training augmentation: none, light, strong")
    r.add_argument(
        "--sched",
        default="const",
        help="LR schedule per epoch: const, poly, cosine, halve (the boundary-loss "
        "reference's: halved after epoch index i when i %% (best index + 20) == 0)",
    )
    r.add_argument("--warmup", default="0", help="epochs of linear LR warm-up (< epochs)")
    r.add_argument("--wd", default="0", help="decoupled weight decay (AdamW when > 0)")
    p.add_argument("--debug", action="store_true", help="tiny subset per loader")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and train; warnings are printed tagged with the method's name."""
    return run_trainer(build_parser().parse_args(argv), argv)


def run_trainer(
    args: argparse.Namespace, argv: Sequence[str] | None, trainer_cls: type[Trainer] = Trainer
) -> int:
    """Train ``trainer_cls`` on parsed arguments: the path of every training command
    line (this module's and an experiment's, e.g.
    ``python -m segline.experiments.vertebrae.train``, whose parser extends
    :func:`build_parser`). The trainer checks its options first
    (:meth:`Trainer.check_options`), then the numbers (:func:`check_numbers`); the
    training's warnings are printed tagged with the method's name."""
    trainer_cls.check_options(args)
    check_numbers(args)
    voice = Voice(training_label(args.out), keep=True)  # its lines also go to train.log
    # a GPU token (GPUS) is held from before the network is built until the end
    with voice.warnings(), gpus.assigned(args.device, args.out, voice.say) as gpu:
        return _train(args, argv, gpu, voice, trainer_cls=trainer_cls)


def config_fields(config_cls: type[TrainConfig], args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``config_cls`` (:class:`TrainConfig` or a subclass) as parsed:
    every field whose name is an option's ``dest`` (``--batch-size`` → ``batch_size``).
    A field no option sets is left out, so it keeps its default."""
    given = vars(args)
    return {f.name: given[f.name] for f in fields(config_cls) if f.name in given}


def _train(
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    gpu: gpus.Assigned | None = None,
    voice: Voice | None = None,
    trainer_cls: type[Trainer] = Trainer,
    extra: dict[str, Any] | None = None,
) -> int:
    """Build the configuration and the trainer from parsed arguments, and run it on
    ``gpu`` when one was taken from ``GPUS`` (its card goes to provenance only).

    The configuration takes every field of ``trainer_cls.config_cls`` that an option
    of the same ``dest`` gives (:func:`config_fields`; a subclass's own options too,
    e.g. :mod:`segline.experiments.vertebrae.train`'s ``--method``), the options
    converted below, then ``extra`` (fields set otherwise, overriding both)."""
    try:
        precision = dev.choose(gpu.device if gpu else args.device, args.amp)
    except (ValueError, RuntimeError) as err:
        raise InputError("DEVICE", str(err)) from None
    try:
        compile_mode = comp.normalise(args.compile)
    except ValueError as err:
        raise InputError("--compile (COMPILE)", str(err)) from None
    workers = (
        loader.parse_workers(args.workers, "--workers (WORKERS)")
        if args.workers is not None
        else loader.workers_from_env()
    )
    metric_workers = loader.parse_workers(args.metric_workers, "--metric-workers")
    if gpu is not None:
        precision = replace(precision, card=gpu.card)
    # the fields as parsed, then those converted before they are recorded, then extra
    converted = {
        "net_kwargs": parse_kv(args.net_opt),
        "precision": precision.describe(),
        "threads": dev.training_threads(args.threads),
        "patch": int_tuple(args.patch, "--patch", 3),
        "metrics": metric_names(args.metrics, trainer_cls.own_metrics),
        "weight_map": weight_pair(args.weight_map),
        "compile": compile_mode,
    }
    cfg = trainer_cls.config_cls(
        **{**config_fields(trainer_cls.config_cls, args), **converted, **(extra or {})}
    )
    try:
        trainer = trainer_cls(
            cfg,
            precision,
            list(sys.argv[1:] if argv is None else argv),
            workers=workers,
            metric_workers=metric_workers,
            voice=voice,
        )
    except ValueError as err:
        raise InputError(args.out, str(err)) from None
    try:
        trainer.run()
    except preempt.Stopped:  # the trainer said where it stopped and where its state is
        return preempt.EXIT_RESUMABLE
    return 0


cli = cli_of(main)
