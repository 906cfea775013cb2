"""Every figure of a run from its training folders, in one process.

``python -m segline.plots.figures --out-dir results/<ds> --curves val_dice,lr,...
--boxplot dice --progress METHOD_DIR ...`` draws what ``segline.plots.curves``,
``segline.plots.boxplot`` and ``segline.plots.progress`` draw one at a time, with the
same functions, so each PNG is byte-identical to the one its own CLI writes:

* ``<out-dir>/<curve>.png`` for every name of ``--curves``;
* ``<out-dir>/test_<metric>_boxplot.png`` for ``--boxplot <metric>``;
* ``<out-dir>/progress_<method>.png`` for every method with ``--progress``.

Why one process: a plotting process spends most of its life importing matplotlib and
pandas (about 2 s of CPU on the project's 2-core machines, against 0.3–1 s of
drawing), and a pipeline draws some fifteen figures; make runs this tool once per
run instead (make/common.mk ``FIGURES``), and the folders are read once. The
single-figure CLIs stay for drawing one figure by hand.

Every PNG is written atomically; all names are checked before anything is read, so
a bad ``--curves`` entry writes nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.plots.boxplot import plot_boxes
from segline.plots.curves import curve_metric, plot_curves
from segline.plots.progress import plot_progress
from segline.results import add_eval_folders, add_training_folders, group_methods, load_methods


def _names(text: str) -> list[str]:
    """argparse type: a comma list of names, order kept, none empty or repeated."""
    names = [n.strip() for n in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise argparse.ArgumentTypeError(f"expected a comma list of names, got {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a name is listed twice in {text!r}")
    return names


def figure_paths(
    out_dir: str, curves: Sequence[str], boxplot: str | None, methods: Sequence[str]
) -> list[str]:
    """The PNGs one call writes, in the order it writes them.

    Example:
        >>> figure_paths("r", ["val_dice", "lr"], "dice", ["gdl"])
        ['r/val_dice.png', 'r/lr.png', 'r/test_dice_boxplot.png', 'r/progress_gdl.png']
    """
    root = Path(out_dir)
    paths = [root / f"{c}.png" for c in curves]
    if boxplot:
        paths.append(root / f"test_{boxplot}_boxplot.png")
    paths += [root / f"progress_{m}.png" for m in methods]
    return [str(p) for p in paths]


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog=prog("python -m segline.plots.figures"),
        description=__doc__.split("\n")[0],
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out-dir", required=True, help="folder of the PNGs, e.g. results/<ds>")
    p.add_argument(
        "--curves",
        type=_names,
        default=[],
        help="comma list of curves, each one PNG <out-dir>/<curve>.png: any name "
        "segline.plots.curves --metric takes (default: none)",
    )
    p.add_argument(
        "--boxplot",
        metavar="METRIC",
        default=None,
        help="also <out-dir>/test_<METRIC>_boxplot.png, the test values per case (default: none)",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="also <out-dir>/progress_<method>.png for every method (default: off)",
    )
    add_training_folders(p)
    add_eval_folders(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: draw every requested figure; 0 on success."""
    args = build_parser().parse_args(argv)
    for name in args.curves:
        curve_metric(name)  # a malformed curve name is refused before reading anything
    methods = load_methods(args.methods, args.eval)
    groups = group_methods(methods)
    paths = figure_paths(
        args.out_dir, args.curves, args.boxplot, [g.name for g in groups] if args.progress else []
    )
    written = iter(paths)
    for name in args.curves:
        plot_curves(methods, name, next(written))
    if args.boxplot:
        plot_boxes(methods, args.boxplot, next(written))
    if args.progress:
        for group in groups:
            plot_progress(group, next(written))
    print(f"wrote {len(paths)} figures in {args.out_dir}")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
