"""The trainer's configuration (``args.json``) is built from the fields of its class:
every field an option of the same ``dest`` gives, plus the converted ones
(``segline.train.cli.config_fields``, ``_train``)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from segline.experiments.vertebrae import train as vt
from segline.experiments.vessels import train as vessels
from segline.train import cli
from segline.train.loop import TrainConfig, Trainer

CONVERTED_ONLY = {"net_kwargs", "precision"}
"""Fields no option of the same name gives: ``--net-opt`` pairs, the chosen precision."""


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions}


def _built(config_cls: type[TrainConfig], args: argparse.Namespace) -> TrainConfig:
    """The configuration ``cli._train`` builds for ``args`` (nothing is trained)."""
    built: list[TrainConfig] = []

    class Recorder(Trainer):
        def __init__(self, cfg: TrainConfig, *a: object, **k: object) -> None:
            built.append(cfg)

        def run(self) -> Path:
            return Path()

    Recorder.config_cls = config_cls
    assert cli._train(args, [], trainer_cls=Recorder) == 0
    return built[0]


def test_every_field_but_the_converted_is_an_option() -> None:
    """A field with no option of its name would silently keep its default: only
    net_kwargs and precision may lack one (the vertebrae add ``method`` and
    ``complete_frac``)."""
    names = {f.name for f in fields(TrainConfig)}
    assert names - _dests(cli.build_parser()) == CONVERTED_ONLY
    vnames = {f.name for f in fields(vt.VertebraConfig)}
    assert vnames - names == {"method", "complete_frac"}
    assert vnames - _dests(vt.build_parser()) == CONVERTED_ONLY
    wnames = {f.name for f in fields(vessels.VesselConfig)}
    assert wnames - names == {"label_source", "pseudo", "mip"}
    assert wnames - _dests(vessels.build_parser()) == CONVERTED_ONLY


def test_the_vessel_options_are_taken_by_name() -> None:
    """The weak-supervision options fill :class:`VesselConfig`; the core trainer has none."""
    argv = ["--cases", "c", "--dist", "d", "--out", "o", "--device", "cpu",
            "--label-source", "pseudo", "--pseudo", "p", "--mip", "m"]  # fmt: skip
    args = vessels.build_parser().parse_args(argv)
    cli.check_numbers(args)
    cfg = _built(vessels.VesselConfig, args)
    assert (cfg.label_source, cfg.pseudo, cfg.mip) == ("pseudo", "p", "m")
    assert not {"label_source", "pseudo", "mip"} & _dests(cli.build_parser())


def test_every_option_reaches_the_configuration() -> None:
    """Each option's value, converted where the trainer converts it, lands in its field."""
    argv = [
        "--cases", "c", "--dist", "d", "--out", "o", "--net", "UNet3D",
        "--net-opt", "base=4", "--net-opt", "depth=3", "--epochs", "5", "--batch-size", "2",
        "--lr", "1e-3", "--seed", "7", "--fold", "2", "--losses", "dice:1",
        "--dist-kind", "3d", "--context", "1", "--device", "cpu", "--amp", "off",
        "--threads", "3", "--lineage", "x.lineage", "--compile", "1", "--workers", "0",
        "--patch", "16,40,40", "--samples-per-epoch", "9", "--fg-ratio", "0.5",
        "--overlap", "0.25", "--weight-map", "5,3", "--metrics", "dice,hd95", "--aug", "light",
        "--sched", "cosine", "--warmup", "2", "--wd", "0.01", "--debug",
    ]  # fmt: skip
    args = cli.build_parser().parse_args(argv)
    cli.check_numbers(args)
    cfg = _built(TrainConfig, args)
    expected: dict[str, Any] = {
        "cases": "c", "dist": "d", "out": "o", "net": "UNet3D", "epochs": 5,
        "batch_size": 2, "lr": 1e-3, "seed": 7, "losses": "dice:1", "dist_kind": "3d",
        "context": 1, "debug": True, "net_kwargs": {"base": 4, "depth": 3},
        "lineage": "x.lineage", "device": "cpu", "amp": "off", "precision": "cpu fp32",
        "threads": 3, "patch": (16, 40, 40), "samples_per_epoch": 9, "fg_ratio": 0.5,
        "overlap": 0.25, "metrics": ("dice", "hd95"), "weight_map": (5.0, 3.0), "compile": "on",
        "aug": "light", "sched": "cosine", "warmup": 2, "wd": 0.01, "fold": 2,
    }  # fmt: skip
    assert {f.name: getattr(cfg, f.name) for f in fields(cfg)} == expected


def test_defaults_keep_the_identity_without_fold() -> None:
    """Without ``--fold`` the field stays None, so ``args.json`` has no ``fold`` key."""
    args = cli.build_parser().parse_args(["--cases", "c", "--dist", "d", "--out", "o",
                                          "--device", "cpu"])  # fmt: skip
    cli.check_numbers(args)
    cfg = _built(TrainConfig, args)
    assert cfg == TrainConfig("c", "d", "o", device="cpu", precision=cfg.precision)
    assert "fold" not in cfg.identity()


def test_the_vertebrae_method_is_taken_by_name() -> None:
    """``--method`` fills :class:`VertebraConfig`'s ``method`` with no hand copy."""
    args = vt.build_parser().parse_args(["--cases", "c", "--dist", "d", "--out", "o",
                                         "--device", "cpu", "--method", "semantic"])  # fmt: skip
    vt.TRAINERS["semantic"].check_options(args)
    cli.check_numbers(args)
    cfg = _built(vt.VertebraConfig, args)
    assert isinstance(cfg, vt.VertebraConfig)
    assert (cfg.method, cfg.net, cfg.losses, cfg.patch) == ("semantic", "UNet3D", "dice:1",
                                                             (96, 40, 40))  # fmt: skip
