"""Qualitative overlays: a few test slices, ground truth and every method's prediction.

Rows: the first ``n`` labelled test cases of the case store in canonical order; for
each, the axial slice with the largest ground-truth foreground area (the lowest such
z on ties; the middle slice when the case has no foreground). The choice depends
only on the case store, so every method is shown on the same slices and a rerun
shows the same ones.

Columns: the image (first channel, grey, windowed to the slice's 1st–99th
percentile), the ground truth as coloured class masks, then each method's prediction
(``<method>/test/preds_zyx/<case>.npy``, uint8 labels in case-store geometry) as
coloured masks with the ground-truth outline in white and the slice Dice (Dice of
that one slice, not of the case: mean over foreground classes present in the ground
truth or the prediction; 1 when neither has any) in the corner, labelled "slice Dice".
Arrays are shown as stored: row = y (down), column = x. The panels show the case
store's grid (the training's test predictions), not the source-geometry files the
report scores; the figure title says so (:func:`grid_note`). With ``FOLDS`` each
method's first fold is shown on its test cases (the store's top-level test split).

With several seeds per method (``SEEDS``, folders ``<method>/seed<k>``) each method is
shown by one training, its lowest seed (:func:`shown_runs`); the column titles and the
figure title say which.

Instances (vertebrae; ``--instances``, or ``"instances": true`` in the store's
``dataset.json``): one sagittal slice per case instead, through the spine (the x with
the most ground-truth voxels; rows = z, increasing upwards, columns = y), each instance
in its own colour of a fixed qualitative palette (:func:`instance_colour`; neighbouring
ids differ in hue). Ground-truth vertebrae are coloured by their class index and
named; a predicted instance takes the colour of the vertebra it is matched to
(:func:`segline.metrics.instances.match_instances`, by overlap in 3D, so the ids need
not agree), an unmatched one :data:`UNMATCHED_COLOUR`. Corner: the case's identified
vertebrae (matched Dice ≥ 0.5) and false positives (:func:`instance_counts`).

Usage (one Make recipe)::

    python -m segline.plots.overlays --cases data/<ds>/cases --out results/<ds>/overlays.png \\
        [--n 4] [--instances] results/<ds>/<method> [results/<ds>/<method> ...]

Example:
    >>> import numpy as np
    >>> lab = np.zeros((3, 4, 4), np.uint8); lab[2, :2, :2] = 1; lab[1, 0, 0] = 1
    >>> pick_slice(lab)
    2
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segline.casestore import CaseStore
from segline.cli import HelpFormatter, cli_of, entry, prog
from segline.errors import InputError
from segline.metrics.instances import ID_DICE, dice_matrix, match_instances
from segline.metrics.overlap import dice
from segline.plots import figure_style, save_png
from segline.results import MethodResults, add_training_folders, group_methods, load_methods

CLASS_PALETTE = (
    (0.89, 0.10, 0.11),
    (0.22, 0.49, 0.72),
    (0.30, 0.69, 0.29),
    (0.60, 0.31, 0.64),
    (1.00, 0.50, 0.00),
    (1.00, 1.00, 0.20),
    (0.65, 0.34, 0.16),
    (0.97, 0.51, 0.75),
)
MASK_ALPHA = 0.45
SLICE_DICE = "slice Dice"
"""The corner label of a prediction panel: the Dice of the shown slice (not the case's)."""


def pick_slice(label: np.ndarray) -> int:
    """Axial index (axis 0) with the most foreground voxels; middle slice if none."""
    area = (np.asarray(label) > 0).reshape(label.shape[0], -1).sum(axis=1)
    if not area.any():
        return int(label.shape[0] // 2)
    return int(np.argmax(area))


def class_colour(index: int) -> tuple[float, float, float]:
    """Fixed colour of class ``index`` (1, 2, ...)."""
    return CLASS_PALETTE[(index - 1) % len(CLASS_PALETTE)]


def mask_rgba(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """RGBA image (Y, X, 4): class colours with alpha :data:`MASK_ALPHA`, background clear."""
    rgba = np.zeros((*labels.shape, 4), dtype=np.float32)
    for k in range(1, max(n_classes, int(labels.max(initial=0)) + 1)):
        rgba[labels == k] = (*class_colour(k), MASK_ALPHA)
    return rgba


def display_window(image: np.ndarray) -> tuple[float, float]:
    """Grey window for one slice: its 1st and 99th percentiles (never an empty range)."""
    lo, hi = (float(v) for v in np.percentile(image, [1.0, 99.0]))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def slice_dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean Dice over the foreground classes present in either slice; 1.0 if none is."""
    present = sorted((set(np.unique(pred).tolist()) | set(np.unique(gt).tolist())) - {0})
    if not present:
        return 1.0
    return float(np.mean([dice(pred == k, gt == k) for k in present]))


def shown_runs(methods: Sequence[MethodResults]) -> list[MethodResults]:
    """One training per method, sorted by method name: the lowest seed of each.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for sub in ("a/seed1", "a/seed0", "b"):
        ...     (root / sub).mkdir(parents=True)
        >>> runs = load_methods([root / "a/seed1", root / "a/seed0", root / "b"])
        >>> [r.label for r in shown_runs(runs)]
        ['a/seed0', 'b']
    """
    return [g.runs[0] for g in group_methods(methods)]


def grid_note(methods: Sequence[MethodResults]) -> str:
    """The title's note on what is drawn: the case store's grid (the training's test
    predictions, not the source-geometry files the report scores), and with FOLDS the
    fold whose test cases are shown (each method's first fold, whose test cases are the
    store's top-level test split)."""
    folds = sorted({m.fold for m in methods if m.fold is not None})
    fold = f"; fold {folds[0]}'s test cases and models" if folds else ""
    return f"\ncase-store (training) grid{fold}"


def slice_dice_text(value: float) -> str:
    """The corner text of a prediction panel.

    Example:
        >>> slice_dice_text(0.8512)
        'slice Dice 0.85'
    """
    return f"{SLICE_DICE} {value:.2f}"


def corner_text(ax: Any, text: str) -> None:
    """``text`` in white on a dark box at the lower left corner of a panel."""
    ax.text(
        0.02,
        0.02,
        text,
        transform=ax.transAxes,
        fontsize=7,
        color="white",
        va="bottom",
        bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0},
    )


def _finish_axes(ax: Any, title: str | None) -> None:
    """No ticks; the column title on the first row."""
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)


def pixel_aspect(meta: dict) -> float:
    """Height / width of a pixel from the case's spacing (z, y, x) in mm; 1 if unknown."""
    spacing = meta.get("spacing")
    try:
        _, sy, sx = (float(v) for v in spacing)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return 1.0
    return sy / sx if sx > 0 and sy > 0 else 1.0


def choose_rows(
    store: CaseStore, n: int, methods: Sequence[MethodResults] = ()
) -> list[tuple[str, int]]:
    """(case, axial index) for the first ``n`` labelled test cases, canonical order.

    Cases no method predicted are passed over: a ``DEBUG`` run tests its first test
    case alone. A case that some methods predicted and others did not is kept, so
    :func:`load_prediction` reports the missing file.
    """
    labelled = [c for c in store.case_ids("test") if store.has_label(c)]
    if not labelled:
        raise InputError(store.root, "no labelled test cases to show (split.json 'test')")
    predicted = [
        c
        for c in labelled
        if any((m.path / "test" / "preds_zyx" / f"{c}.npy").is_file() for m in methods)
    ]
    cases = (predicted or labelled)[:n]
    return [(c, pick_slice(store.label(c))) for c in cases]


def load_prediction(method: MethodResults, case: str, shape: tuple[int, ...]) -> np.ndarray:
    """A method's predicted labels (Z, Y, X) for one case, checked against ``shape``."""
    path = method.path / "test" / "preds_zyx" / f"{case}.npy"
    if not path.is_file():
        raise InputError(path, "missing; the test stage writes test/preds_zyx/<case>.npy")
    try:
        pred = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise InputError(path, f"not a readable .npy file ({err})") from err
    if pred.shape != shape:
        raise InputError(path, f"shape {pred.shape} differs from the case's label shape {shape}")
    return pred


def _class_names(store: CaseStore) -> dict[int, str]:
    """Foreground class index → name from ``dataset.json`` (index as name if absent)."""
    try:
        labels = store.dataset.get("labels", {})
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(store.root / "dataset.json", f"unreadable ({err})") from err
    names = {int(k): str(v) for k, v in labels.items()}
    return {k: v for k, v in sorted(names.items()) if k > 0}


def plot_overlays(store: CaseStore, methods: Sequence[MethodResults], out: str, n: int = 4) -> None:
    """Draw the overlay grid and save the PNG atomically to ``out``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    methods = shown_runs(methods)
    rows = choose_rows(store, n, methods)
    names = _class_names(store)
    n_classes = max(names, default=1) + 1
    cols = 2 + len(methods)
    with figure_style():
        fig = Figure(figsize=(2.4 * cols, 2.4 * len(rows) + 0.6), layout="constrained")
        grid = fig.subplots(len(rows), cols, squeeze=False)
        for r, (case, z) in enumerate(rows):
            label = np.asarray(store.label(case))
            gt = label[z]
            image = np.asarray(store.image(case)[0, z], dtype=np.float32)
            lo, hi = display_window(image)
            aspect = pixel_aspect(store.meta(case))
            preds = [np.asarray(load_prediction(m, case, label.shape)[z]) for m in methods]
            panels = [("image", None), ("ground truth", gt)]
            panels += [
                (m.name if m.seed is None else f"{m.name} (seed {m.seed})", p)
                for m, p in zip(methods, preds, strict=True)
            ]
            for c, (title, mask) in enumerate(panels):
                ax = grid[r, c]
                ax.imshow(
                    image, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest"
                )
                if mask is not None:
                    ax.imshow(mask_rgba(mask, n_classes), aspect=aspect, interpolation="nearest")
                if c >= 2:
                    if gt.any():
                        ax.contour(gt > 0, levels=[0.5], colors="white", linewidths=0.8)
                    corner_text(ax, slice_dice_text(slice_dice(mask, gt)))
                _finish_axes(ax, title if r == 0 else None)
            grid[r, 0].set_ylabel(f"{case}\nz={z}", fontsize=8)
        handles = [
            Patch(facecolor=class_colour(k), alpha=MASK_ALPHA, label=v) for k, v in names.items()
        ]
        handles.append(
            Patch(facecolor="none", edgecolor="grey", label="white line: ground-truth outline")
        )
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=len(handles),
            fontsize=8,
            frameon=False,
        )
        seeds = (
            "; with several seeds: each method's lowest seed"
            if any(m.seed is not None for m in methods)
            else ""
        ) + grid_note(methods)
        fig.suptitle(
            f"{methods[0].dataset}: test slices with the largest ground-truth area\n"
            f"corner: {SLICE_DICE} (of the shown slice){seeds}",
            fontsize=10,
        )
        save_png(fig, out)


UNMATCHED_COLOUR = (1.0, 0.0, 1.0)
"""Magenta: a predicted instance matched to no ground-truth vertebra."""
UNMATCHED = -1
"""Display id of an unmatched predicted instance (:func:`display_ids`)."""


def instance_palette() -> list[tuple[float, float, float]]:
    """20 qualitative colours: matplotlib's tab20, its 10 dark hues then their 10 light
    ones, so consecutive ids (neighbouring vertebrae) differ in hue."""
    from matplotlib import colormaps

    tab20 = [tuple(float(v) for v in c) for c in colormaps["tab20"].colors]
    return tab20[0::2] + tab20[1::2]  # type: ignore[return-value]


def instance_colour(index: int) -> tuple[float, float, float]:
    """Fixed colour of instance ``index`` (1, 2, ...; repeats every 20 ids).

    Example:
        >>> instance_colour(1) != instance_colour(2), instance_colour(1) == instance_colour(21)
        (True, True)
    """
    if index == UNMATCHED:
        return UNMATCHED_COLOUR
    palette = instance_palette()
    return palette[(index - 1) % len(palette)]


def instance_rgba(ids: np.ndarray) -> np.ndarray:
    """RGBA image (rows, cols, 4) of a display-id slice: :func:`instance_colour` per id,
    alpha :data:`MASK_ALPHA`, 0 clear."""
    rgba = np.zeros((*ids.shape, 4), dtype=np.float32)
    for k in np.unique(ids).tolist():
        if k != 0:
            rgba[ids == k] = (*instance_colour(int(k)), MASK_ALPHA)
    return rgba


def display_ids(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """A prediction relabelled for display: each instance as the ground-truth id it is
    matched to (3D overlap matching), :data:`UNMATCHED` when matched to none.

    Example:
        >>> g = np.array([[[1, 1, 2, 2, 0]]]); p = np.array([[[7, 7, 3, 3, 9]]])
        >>> display_ids(p, g).tolist()
        [[[1, 1, 2, 2, -1]]]
    """
    pred = np.asarray(pred)
    out = np.where(pred != 0, UNMATCHED, 0).astype(np.int32)
    for g, p in match_instances(pred, gt):
        out[pred == p] = g
    return out


def instance_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """(identified, ground-truth vertebrae, false positives) of one case, as
    :func:`segline.metrics.instances.instance_rows` counts them."""
    gt_ids, pred_ids, _, dice_m = dice_matrix(pred, gt)
    pairs = match_instances(pred, gt)
    row = {int(g): i for i, g in enumerate(gt_ids.tolist())}
    col = {int(p): j for j, p in enumerate(pred_ids.tolist())}
    found = sum(1 for g, p in pairs if dice_m[row[g], col[p]] >= ID_DICE)
    return found, int(gt_ids.size), int(pred_ids.size) - found


def pick_sagittal(label: np.ndarray) -> int:
    """Sagittal index (axis 2, x) with the most foreground voxels; middle if none."""
    area = (np.moveaxis(np.asarray(label), 2, 0) > 0).reshape(label.shape[2], -1).sum(axis=1)
    return int(np.argmax(area)) if area.any() else int(label.shape[2] // 2)


def sagittal_aspect(meta: dict) -> float:
    """Height / width of a sagittal pixel (z over y spacing); 1 if unknown."""
    try:
        sz, sy, _ = (float(v) for v in meta.get("spacing"))  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return 1.0
    return sz / sy if sz > 0 and sy > 0 else 1.0


def is_instance_store(store: CaseStore) -> bool:
    """``dataset.json`` says the classes are instances (``"instances": true``)."""
    try:
        return store.dataset.get("instances") is True
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(store.root / "dataset.json", f"unreadable ({err})") from err


def plot_instance_overlays(
    store: CaseStore, methods: Sequence[MethodResults], out: str, n: int = 4
) -> None:
    """Draw the sagittal instance overlay grid (module doc) and save it to ``out``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    methods = shown_runs(methods)
    cases = [case for case, _ in choose_rows(store, n, methods)]
    names = _class_names(store)
    cols = 2 + len(methods)
    with figure_style():
        fig = Figure(figsize=(2.4 * cols, 3.2 * len(cases) + 0.6), layout="constrained")
        grid = fig.subplots(len(cases), cols, squeeze=False)
        for r, case in enumerate(cases):
            label = np.asarray(store.label(case))
            x = pick_sagittal(label)
            gt = label[:, :, x]
            image = np.asarray(store.image(case)[0, :, :, x], dtype=np.float32)
            lo, hi = display_window(image)
            aspect = sagittal_aspect(store.meta(case))
            preds = [np.asarray(load_prediction(m, case, label.shape)) for m in methods]
            panels: list[tuple[str, np.ndarray | None, str]] = [("image", None, "")]
            panels.append(("ground truth", gt.astype(np.int32), ""))
            for m, p in zip(methods, preds, strict=True):
                found, n_gt, fp = instance_counts(p, label)
                title = m.name if m.seed is None else f"{m.name} (seed {m.seed})"
                text = f"case: identified {found}/{n_gt}, FP {fp}"
                panels.append((title, display_ids(p, label)[:, :, x], text))
            for c, (title, ids, text) in enumerate(panels):
                ax = grid[r, c]
                show = {"aspect": aspect, "interpolation": "nearest", "origin": "lower"}
                ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, **show)
                if ids is not None:
                    ax.imshow(instance_rgba(ids), **show)
                if c == 1:
                    for k in np.unique(gt).tolist():
                        if k == 0:
                            continue
                        zs, ys = np.nonzero(gt == k)
                        ax.text(float(ys.mean()), float(zs.mean()), names.get(int(k), str(k)),
                                fontsize=6, color="white", ha="center", va="center")  # fmt: skip
                if c >= 2:
                    if gt.any():
                        ax.contour(gt > 0, levels=[0.5], colors="white", linewidths=0.6)
                    corner_text(ax, text)
                _finish_axes(ax, title if r == 0 else None)
            grid[r, 0].set_ylabel(f"{case}\nx={x}", fontsize=8)
        handles = [
            Patch(facecolor=UNMATCHED_COLOUR, alpha=MASK_ALPHA, label="unmatched prediction"),
            Patch(facecolor="none", edgecolor="grey", label="white line: ground-truth outline"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
        seeds = (
            "; with several seeds: each method's lowest seed"
            if any(m.seed is not None for m in methods)
            else ""
        ) + grid_note(methods)
        fig.suptitle(
            f"{methods[0].dataset}: sagittal test slices through the spine\n"
            "colour: vertebra (prediction: its matched vertebra's, by overlap)" + seeds,
            fontsize=10,
        )
        save_png(fig, out)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("python -m segline.plots.overlays"),
        description=__doc__.split("\n")[0],
    )
    p.add_argument("--cases", required=True, type=Path, help="case store, data/<ds>/cases")
    p.add_argument("--out", required=True, help="PNG to write, e.g. results/<ds>/overlays.png")
    p.add_argument("--n", type=int, default=4, help="number of test cases (rows), default 4")
    p.add_argument(
        "--instances",
        action="store_true",
        help="classes are instances (vertebrae): sagittal slices, one colour per instance "
        '(also when dataset.json has "instances": true)',
    )
    add_training_folders(p, "the lowest seed is shown")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: draw the overlay grid; 0 on success."""
    args = build_parser().parse_args(argv)
    if args.n < 1:
        raise InputError("--n", f"must be at least 1, got {args.n}")
    methods = load_methods(args.methods)
    store = CaseStore(args.cases)
    if args.instances or is_instance_store(store):
        plot_instance_overlays(store, methods, args.out, n=args.n)
    else:
        plot_overlays(store, methods, args.out, n=args.n)
    print(f"wrote {args.out}")
    return 0


cli = cli_of(main)

if __name__ == "__main__":
    entry(main)
