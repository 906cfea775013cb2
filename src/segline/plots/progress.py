"""One method's training progress on one page (like nnU-Net's ``progress.png``).

Four panels over epochs, sharing the epoch axis:

1. training and validation loss (``epochs.csv`` ``tra_loss``, ``val_loss``; absolute
   values: one method, one loss, one scale);
2. validation Dice and, on a right-hand axis, HD95 in mm (recomputed per case from
   ``metrics.csv`` as in ``val_dice.png``: per case the mean over foreground classes,
   then the mean over cases; HD95 left out when ``metrics.csv`` has none);
3. learning rate (``lr``) and, on a right-hand axis, the loss schedule's weight α
   (``alpha``) when the method has a schedule (else a note says it has none);
4. wall time per epoch in seconds (``timing.csv`` ``seconds``).

With several seeds (``SEEDS``, folders ``<method>/seed<k>``) every seed is a thin line
and their mean (:func:`segline.plots.curves.seed_series`) a thick one; with one
training, its lines. Dotted vertical lines mark each training's best epoch
(``best_epoch.txt``).

Panel 4 is wall-clock time, so two runs of one experiment give different pictures:
``progress_<method>.png`` is, like ``timing.csv``, left out of the archive's content
hash (:func:`segline.pack.volatile`).

Usage (one Make recipe per method)::

    python -m segline.plots.progress --out results/<ds>/progress_<method>.png \\
        results/<ds>/<method>          # or results/<ds>/<run>/<method>/seed<k> ...

Example:
    >>> [p.title for p in PANELS]
    ['loss', 'validation Dice and HD95', 'learning rate and loss weight α', 'wall time per epoch']
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.plots import figure_style, save_png
from segline.plots.curves import curve_series, seed_series
from segline.results import (
    MethodGroup,
    MethodResults,
    add_training_folders,
    group_methods,
    load_methods,
    metric_label,
)
from segline.seeds import sub_label, trainings_word

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LEFT_COLOUR = "tab:blue"
RIGHT_COLOUR = "tab:orange"


@dataclass(frozen=True)
class Line:
    """One quantity of a panel.

    Attributes:
        metric: a ``--metric`` of :mod:`segline.plots.curves` (``tra_loss``, ``val_dice``,
            ``lr``, ``epoch_time``, ...).
        label: its legend entry.
        right: drawn on the panel's right-hand axis.
        style: matplotlib line style.
        optional: left out (with a note) when the training has no value of it.
    """

    metric: str
    label: str
    right: bool = False
    style: str = "-"
    optional: bool = False


@dataclass(frozen=True)
class Panel:
    """One panel: its title, y labels (left, right) and lines."""

    title: str
    left: str
    right: str
    lines: tuple[Line, ...]


PANELS: tuple[Panel, ...] = (
    Panel(
        "loss",
        "loss",
        "",
        (Line("tra_loss", "training loss"), Line("val_loss", "validation loss", style="--")),
    ),
    Panel(
        "validation Dice and HD95",
        metric_label("dice", "validation"),
        metric_label("hd95", "validation"),
        (
            Line("val_dice", "validation Dice"),
            Line("val_hd95", "validation HD95 (right axis)", right=True, optional=True),
        ),
    ),
    Panel(
        "learning rate and loss weight α",
        "learning rate",
        "α (weight of the scheduled loss terms)",
        (
            Line("lr", "learning rate"),
            Line("alpha", "α (right axis)", right=True, optional=True),
        ),
    ),
    Panel(
        "wall time per epoch",
        "seconds per epoch",
        "",
        (Line("epoch_time", "wall time per epoch (timing.csv)"),),
    ),
)
"""The figure's panels, top to bottom."""


def line_series(group: MethodGroup, metric: str) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """Each training's series of ``metric`` and their seed mean (:func:`seed_series`)."""
    runs = [curve_series(r, metric) for r in group.runs]
    return runs, seed_series(runs)


def _has_metric(group: MethodGroup, metric: str) -> bool:
    """Whether every training has validation rows of a per-case metric (``val_<m>``)."""
    name = metric.removeprefix("val_")
    return all((r.val["metric"] == name).any() for r in group.runs)


def training_sub(run: MethodResults) -> str:
    """``seed<k>``, ``fold<i>`` or ``fold<i>/seed<k>``: one training of a method."""
    return sub_label(run.fold, run.seed)


def _title_trainings(group: MethodGroup) -> str:
    """The title's words for a method's trainings: ``one training``, ``seed 3``,
    ``seeds 0, 1: thin lines each seed, thick their mean`` (folds alike: ``folds 0, 1``;
    folds with seeds: ``trainings fold0/seed0, …: thin lines each training``)."""
    runs, word = group.runs, _word(group)
    if len(runs) == 1:
        run = runs[0]
        if run.seed is None and run.fold is None:
            return "one training"
        return f"seed {run.seed}" if run.fold is None else f"training {training_sub(run)}"
    if word == "seeds":
        ids, each = ", ".join(str(r.seed) for r in runs), "seed"
    elif word == "folds":
        ids, each = ", ".join(str(r.fold) for r in runs), "fold"
    else:
        word, ids, each = "trainings", ", ".join(training_sub(r) for r in runs), "training"
    return f"{word} {ids}: thin lines each {each}, thick their mean"


def _word(group: MethodGroup) -> str:
    """``seeds``, ``folds`` or ``trainings (folds × seeds)`` of a method's trainings."""
    return trainings_word([r.fold for r in group.runs], [r.seed for r in group.runs])


def _draw_line(ax: Axes, group: MethodGroup, line: Line, colour: str) -> bool:
    """Draw one quantity (seeds thin, mean thick); False when it has no defined value."""
    if line.metric.startswith("val_") and not _has_metric(group, line.metric):
        if line.optional:
            return False
    runs, mean = line_series(group, line.metric)
    y = mean["mean"].to_numpy(dtype=np.float64)
    if not np.isfinite(y).any():
        return False
    several = len(runs) > 1
    if several:
        for s in runs:
            ax.plot(
                s["epoch"].to_numpy(),
                s["mean"].to_numpy(dtype=np.float64),
                color=colour,
                linestyle=line.style,
                linewidth=0.8,
                alpha=0.45,
            )
    ax.plot(
        mean["epoch"].to_numpy(),
        y,
        color=colour,
        linestyle=line.style,
        linewidth=2.0 if several else 1.5,
        marker="o" if len(y) <= 25 else None,
        markersize=3,
        label=line.label
        + (f" (mean of {len(runs)} {_word(group)})" if several else ""),
    )
    return True


def plot_progress(group: MethodGroup, out: str) -> None:
    """Draw one method's progress figure and save the PNG atomically to ``out``."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    best = sorted({r.best_epoch for r in group.runs})
    with figure_style():
        fig = Figure(figsize=(8.0, 11.0), layout="constrained")
        axes = fig.subplots(len(PANELS), 1, sharex=True)
        for ax, panel in zip(axes, PANELS, strict=True):
            twin = ax.twinx() if any(line.right for line in panel.lines) else None
            handles: list = []
            notes: list[str] = []
            for i, line in enumerate(panel.lines):
                target = twin if (line.right and twin is not None) else ax
                colour = RIGHT_COLOUR if line.right else (LEFT_COLOUR, RIGHT_COLOUR)[i % 2]
                if not _draw_line(target, group, line, colour):
                    if not line.optional:
                        raise InputError(
                            group.runs[0].path, f"no defined {line.metric} value in any epoch"
                        )
                    notes.append(
                        "no loss schedule: alpha empty"
                        if line.metric == "alpha"
                        else f"{line.label.split(' (')[0]}: undefined in every epoch"
                    )
                    continue
                handles += target.get_legend_handles_labels()[0][-1:]
            for epoch in best:
                ax.axvline(epoch, color="grey", linestyle=":", linewidth=1)
            ax.set_ylabel(panel.left, fontsize=9)
            if twin is not None:
                if notes:
                    twin.set_yticks([])
                else:
                    twin.set_ylabel(panel.right, fontsize=9, color=RIGHT_COLOUR)
            ax.grid(True, alpha=0.3)
            ax.set_title(panel.title + "".join(f" ({n})" for n in notes), fontsize=10)
            handles.append(
                Line2D([], [], color="grey", linestyle=":", linewidth=1, label="best epoch")
            )
            # on the top axis (the twin when there is one), so no line crosses it
            (twin or ax).legend(handles=handles, loc="best", fontsize=8)
        axes[-1].set_xlabel("epoch")
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        seeds = _title_trainings(group)
        fig.suptitle(
            f"{group.runs[0].dataset}: {group.name}, training progress ({seeds})\n"
            f"dotted: best epoch{'s' if len(best) > 1 else ''} "
            f"{', '.join(str(b) for b in best)} (best_epoch.txt); "
            "wall time from timing.csv varies between runs",
            fontsize=10,
        )
        save_png(fig, out)


def one_method(methods: Sequence[MethodResults]) -> MethodGroup:
    """The single method the folders belong to (a progress figure shows one).

    Raises:
        InputError: folders of several methods.
    """
    groups = group_methods(methods)
    if len(groups) != 1:
        raise InputError(
            methods[0].path,
            f"one method per progress figure; got {', '.join(g.name for g in groups)}",
        )
    return groups[0]


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("python -m segline.plots.progress"),
        description=__doc__.split("\n")[0],
    )
    p.add_argument(
        "--out", required=True, help="PNG to write, e.g. results/<ds>/progress_<method>.png"
    )
    add_training_folders(p, "one method")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: draw the progress figure; 0 on success."""
    args = build_parser().parse_args(argv)
    plot_progress(one_method(load_methods(args.methods)), args.out)
    print(f"wrote {args.out}")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
