"""The slicing stage: an unpacked raw dataset -> a case store (``data/<ds>/cases``).

Source formats differ only in how cases are found and read, so they are handled by
small *adapters* (modules of ``segline.datasets``) registered by name with
:func:`register_adapter` (:class:`segline.registry.Registry`). An adapter lists the
cases and yields one :class:`CaseRecord` per case (NIfTI-layout arrays, affine,
spacing, file names); this driver does everything else, identically for every source:

1. checks each record (grid, finite values, label values within the classes);
2. intensities: CT channels windowed (level/width HU -> [0, 1]), other modalities
   scaled by robust percentiles (:mod:`segline.preprocess.window`); ``--norm``
   overrides that choice per channel (``ct``, ``zscore``, ``percentile``) for a
   dataset whose ``dataset.json`` names the wrong modality. While the cases are
   processed, the voxels a CT window clips are counted in the labelled foreground
   (classes > 0 after the label map); one warning line per channel at the end when
   more than :data:`~segline.preprocess.window.CLIP_WARN_SHARE` of them were clipped;
3. optional label remapping (``--label-map 2:0``);
4. (X, Y, Z) -> (Z, Y, X), optional crop (:mod:`segline.preprocess.cropping`: to the
   body, or to the label for training and validation cases only, never for a test
   case), optional resampling, meta.json (:mod:`segline.preprocess.geometry`);
5. the split (:mod:`segline.preprocess.split`: natural order, random, stratified or
   an nnU-Net ``splits_final.json`` fold; written as ``split.json`` and, for nnU-Net,
   ``splits_final.json``), ``dataset.json``, and the whole
   store written atomically (``<out>_tmp`` renamed at the end; nothing is left on
   error). Cases are processed one at a time (``--jobs N``: N at a time).

CLI (``preprocess/slice.py``)::

    python preprocess/slice.py --adapter msd --raw data/spleen/raw --out data/spleen/cases \\
        [--window 40,400 | --no-window] [--percentiles 0.5,99.5 | --no-normalise] \\
        [--norm ct|zscore|percentile[,...]] \\
        [--spacing z,y,x] [--inplane N] [--n-test 20] [--n-val 5] \\
        [--split ordered|random] [--split-seed N] [--split-file JSON [--split-fold K]] \\
        [--stratify ATTR] [--stratify-file CSV] [--label-map A:B ...] [--jobs 1]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from segline import atomic, casestore
from segline.cli import HelpFormatter, cli_of, count, non_negative_float, positive_int, prog
from segline.errors import InputError
from segline.preprocess import cropping, geometry, resample, split
from segline.preprocess import window as win
from segline.registry import Registry, UnknownName

# ------------------------------------------------------------------ adapter protocol


@dataclass
class CaseRecord:
    """One case as read by an adapter, still in the source (NIfTI) layout.

    Attributes:
        case_id: the case id (file name without ``.nii.gz`` for MSD).
        channels: one (X, Y, Z) intensity array per channel, in the order of the
            adapter's ``channels`` (raw values: HU for CT).
        label: class indices (X, Y, Z) as declared by the source (before any label
            map), or None for an unlabelled case.
        affine: source voxel-to-world matrix (4x4, mm).
        spacing_xyz: source voxel size (x, y, z) in mm.
        image_files: source image file(s), relative to the raw folder.
        label_file: source label file relative to the raw folder, or None.
        label_path: the label file as a path (named in error messages), or None.
    """

    case_id: str
    channels: list[np.ndarray]
    label: np.ndarray | None
    affine: np.ndarray
    spacing_xyz: tuple[float, float, float]
    image_files: list[str]
    label_file: str | None = None
    label_path: Path | None = None


class Adapter(Protocol):
    """What the driver needs from a source format (see ``segline.datasets.msd``).

    Constructed as ``Adapter(raw)`` with the unpacked raw folder; listing problems
    (missing files, a bad ``dataset.json``) raise :class:`InputError` there.
    Adapters must be picklable (``--jobs``): keep paths and plain data only.
    """

    source: ClassVar[str]  #: short format name written to dataset.json ("msd")
    raw: Path  #: the raw folder given on the command line
    name: str  #: dataset name
    labels: dict[int, str]  #: declared classes, index -> name (0 = background)
    channels: list[str]  #: channel (modality) names, e.g. ["CT"]
    info: dict[str, Any]  #: extra provenance copied to dataset.json

    def labelled(self) -> list[str]:
        """Ids of the cases with a label."""
        ...

    def unlabelled(self) -> list[str]:
        """Ids of the cases without a label (to be inferred)."""
        ...

    def load(self, case_id: str) -> CaseRecord:
        """Read one case (checked per file: readable, dims, spacing, grid)."""
        ...


A = TypeVar("A", bound=type)

ADAPTERS: Registry[type] = Registry(
    "adapter", "adapters", "segline.datasets", "register_adapter",
    pattern=r"[a-z][a-z0-9_]*",
)
"""The source formats: each registered by :func:`register_adapter` in its module of
``segline.datasets``, imported when asked for."""


def register_adapter(name: str) -> Callable[[A], A]:
    """Class decorator: make an adapter available as ``--adapter name``.

    An adapter in a module of ``segline/datasets/`` is found without any other
    registration: :func:`get_adapter` imports that module on first use.
    """
    return ADAPTERS.register(name)


def adapter_names() -> list[str]:
    """Names of the adapters registered in ``segline.datasets``, sorted (read from
    the sources: imports none of them)."""
    return ADAPTERS.names()


def get_adapter(name: str) -> type:
    """The adapter class registered as ``name``, importing only its module.

    Raises:
        InputError: (``--adapter``) unknown name; the message lists the known ones.
    """
    try:
        return ADAPTERS.get(name)
    except UnknownName as err:
        raise InputError("--adapter", str(err)) from None


# ------------------------------------------------------------------------ parameters


@dataclass
class SliceParams:
    """Preprocessing parameters (all recorded in dataset.json).

    Attributes:
        window: CT window (level, width) in HU, or None to keep raw HU.
        percentiles: (low, high) percentiles for non-CT channels, or None to keep raw.
        spacing: target spacing (z, y, x) in mm, None components kept; None: no change.
        inplane: resize axial slices to inplane x inplane voxels; None: no change.
        n_test: held-out test cases (the first by ``split_rule``).
        n_val: validation cases (the next by ``split_rule``).
        split_rule: ``ordered`` (natural order) or ``random`` (seeded permutation).
        split_seed: the permutation's seed (``random`` only).
        split_file: an nnU-Net ``splits_final.json``: test = its fold's val.
        split_fold: the fold of ``split_file`` to use.
        folds: k-fold cross-validation (:func:`split.fold_splits`); None: one split.
        stratify: per-case attribute test and val are stratified by (a column of
            ``stratify_file``, or a built-in one: :func:`split.builtin_attributes`).
        stratify_file: CSV ``case,<attribute>`` giving per-case values.
        label_map: source label value -> new value (e.g. {2: 0}).
        crop: ``none``, ``body`` or ``label`` (:mod:`segline.preprocess.cropping`;
            ``label`` for training and validation cases only, :func:`label_crop_cases`).
        crop_margin: margin around the crop region, mm.
        body_hu: threshold of the body mask, HU.
        jobs: cases processed in parallel (each job holds one case in memory).
        norm: normalisation kind per channel (``ct``, ``zscore``, ``percentile``; one
            for every channel or one per channel), overriding the choice by modality;
            None: by modality (recorded only when set, so a store sliced without it
            keeps its bytes).
    """

    window: tuple[float, float] | None = (win.DEFAULT_LEVEL, win.DEFAULT_WIDTH)
    percentiles: tuple[float, float] | None = win.DEFAULT_PERCENTILES
    spacing: tuple[float | None, float | None, float | None] | None = None
    inplane: int | None = None
    n_test: int = split.DEFAULT_N_TEST
    n_val: int = split.DEFAULT_N_VAL
    split_rule: str = "ordered"
    split_seed: int = 0
    split_file: Path | None = None
    split_fold: int = 0
    folds: int | None = None
    stratify: str | None = None
    stratify_file: Path | None = None
    label_map: dict[int, int] = field(default_factory=dict)
    crop: str = "none"
    crop_margin: float = cropping.DEFAULT_MARGIN_MM
    body_hu: float = cropping.DEFAULT_BODY_HU
    jobs: int = 1
    norm: tuple[str, ...] | None = None

    def record(self) -> dict[str, Any]:
        """The parameters as written to dataset.json ``preprocessing``."""
        rec: dict[str, Any] = {
            "window": None if self.window is None else list(self.window),
            "percentiles": None if self.percentiles is None else list(self.percentiles),
            "percentiles_over": "non-zero voxels",
            "spacing": None if self.spacing is None else list(self.spacing),
            "inplane": self.inplane,
            "image_resample": "linear (order 1), Gaussian anti-aliasing when shrinking",
            "label_resample": "one-hot linear then argmax",
            "label_map": {str(k): v for k, v in sorted(self.label_map.items())},
            "n_test": self.n_test,
            "n_val": self.n_val,
            "crop": self.crop,
            "crop_margin_mm": self.crop_margin,
            "body_hu": self.body_hu,
        }
        if self.crop == "label":
            rec["crop_test"] = "body (image only), none without a CT channel"
        if self.norm is not None:
            rec["norm"] = list(self.norm)
            rec["zscore_over"] = "non-zero voxels"
        return rec


def remap_classes(
    labels: dict[int, str], label_map: dict[int, int], where: str = "--label-map"
) -> tuple[dict[int, str], np.ndarray]:
    """Apply a label map to the class list.

    Each source class ``a`` becomes ``label_map.get(a, a)``. The new classes must be
    0..K-1 without gaps. Names: 0 is "background"; a class receiving one source
    class keeps its name; several merged classes are joined with "+".

    Args:
        labels: declared classes, index -> name.
        label_map: source value -> new value.
        where: named in errors.

    Returns:
        (new classes index -> name, lookup table: uint8 array, ``lut[source] = new``).

    Example:
        >>> remap_classes({0: "background", 1: "vessel", 2: "tumour"}, {2: 0})[0]
        {0: 'background', 1: 'vessel'}
    """
    for src, dst in label_map.items():
        if src not in labels:
            raise InputError(where, f"source label {src} is not a declared class "
                             f"{sorted(labels)}")
        if not 0 <= dst <= 255:
            raise InputError(where, f"target label {dst} outside 0..255")
    if any(not 0 <= k <= 255 for k in labels):
        raise InputError(where, f"declared classes {sorted(labels)} outside 0..255")
    targets: dict[int, list[int]] = {}
    for src in sorted(labels):
        targets.setdefault(label_map.get(src, src), []).append(src)
    if sorted(targets) != list(range(len(targets))):
        raise InputError(where, f"classes after the label map {sorted(targets)} are not "
                         f"0..{len(targets) - 1}; map the gaps away (e.g. A:B)")
    names: dict[int, str] = {}
    for dst, srcs in sorted(targets.items()):
        if dst == 0:
            names[dst] = labels.get(0, "background") if srcs == [0] else "background"
        else:
            names[dst] = "+".join(labels[s] for s in srcs)
    lut = np.zeros(256, dtype=np.uint8)
    for src in labels:
        lut[src] = label_map.get(src, src)
    return names, lut


# ------------------------------------------------------------------- one case


def check_label_values(label: np.ndarray, classes: Sequence[int], where: Any) -> None:
    """Raise :class:`InputError` naming the values of ``label`` outside ``classes``."""
    values = np.unique(label)
    bad = sorted(set(values.tolist()) - set(int(c) for c in classes))
    if bad:
        shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise InputError(where, f"label values [{shown}] not in the declared classes "
                         f"{sorted(int(c) for c in classes)}")


def normalise_channel(data: np.ndarray, modality: str, params: SliceParams,
                      kind: str | None = None) -> np.ndarray:
    """Normalise one channel by its kind (default: by modality); float32.

    ``ct``: the window (HU to [0, 1]; raw HU without one, ``--no-window``);
    ``percentile``: robust percentiles of the non-zero voxels to [0, 1] (raw with
    ``--no-normalise``); ``zscore``: mean 0, sd 1 over the non-zero voxels
    (:func:`segline.preprocess.window.zscore_normalise`). Without ``kind`` a "CT"
    channel is ``ct`` and any other ``percentile``.
    """
    kind = kind or ("ct" if win.is_ct(modality) else "percentile")
    if kind == "zscore":
        return win.zscore_normalise(data)
    if kind == "ct":
        if params.window is None:
            return data.astype(np.float32, copy=False)
        return win.ct_window(data, *params.window)
    if params.percentiles is None:
        return data.astype(np.float32, copy=False)
    return win.percentile_normalise(data, *params.percentiles)


def clip_stats(record: CaseRecord, lut: np.ndarray, kinds: Sequence[str],
               params: SliceParams) -> list[tuple[int, int]]:
    """Per channel ``(clipped, foreground)`` voxel counts of one case.

    The region is the labelled foreground (source label mapped by ``lut`` > 0, i.e.
    the classes left after the label map): the tissue the task is about, known
    without guessing a body threshold per modality. Only windowed (``ct``) channels
    clip; others, and unlabelled cases, count (0, 0).
    """
    if record.label is None or params.window is None or "ct" not in kinds:
        return [(0, 0)] * len(kinds)
    region = (lut > 0)[record.label]
    return [win.clip_counts(chan, region, *params.window) if kind == "ct" else (0, 0)
            for chan, kind in zip(record.channels, kinds, strict=True)]


def clip_warnings(counts: Sequence[tuple[int, int]], kinds: Sequence[str],
                  channel_names: Sequence[str], params: SliceParams) -> list[str]:
    """One line per windowed channel that clipped more than ``CLIP_WARN_SHARE`` of
    the labelled foreground voxels (``counts``: summed over every case)."""
    lines = []
    for i, ((clipped, total), kind, name) in enumerate(zip(counts, kinds, channel_names,
                                                           strict=True)):
        if kind != "ct" or params.window is None or total == 0:
            continue
        share = clipped / total
        if not share > win.CLIP_WARN_SHARE:
            continue
        level, width = params.window
        lines.append(
            f"warning: channel {i} ({name}): the CT window {level:g},{width:g} "
            f"([{level - width / 2:g}, {level + width / 2:g}] HU) clips {100 * share:.1f} % "
            f"of its labelled foreground voxels ({clipped} of {total}; warned above "
            f"{100 * win.CLIP_WARN_SHARE:g} %); if the channel is not CT, set "
            f"NORM=zscore or NORM=percentile (slice.py --norm; one per channel: "
            f"NORM=ct,zscore), else widen WINDOW=level,width")
    return lines


def process_case(
    record: CaseRecord,
    adapter_labels: dict[int, str],
    channel_names: Sequence[str],
    params: SliceParams,
    lut: np.ndarray,
    *,
    label_crop: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Turn one :class:`CaseRecord` into stored arrays and meta.

    Only the crop could read the label for the image (``--crop label``), and only with
    ``label_crop`` (a training or validation case, :func:`label_crop_cases`); without
    it (a test case, a new case to predict) the image, its crop and the geometry are
    computed from the channels alone. Normalisation never reads the label.

    Returns:
        image (C, Z, Y, X) float32, label (Z, Y, X) uint8 or None, meta dict.
    """
    shape = record.channels[0].shape
    for i, chan in enumerate(record.channels):
        if chan.shape != shape:
            name = record.image_files[min(i, len(record.image_files) - 1)]
            raise InputError(name, f"channel {i} shape {chan.shape} != {shape}")
    label = record.label
    if label is not None:
        where = record.label_path or record.label_file or record.case_id
        if label.shape != shape:
            raise InputError(where, f"shape {label.shape} does not match image shape {shape}")
        check_label_values(label, list(adapter_labels), where)
        label = lut[label]
    kinds = win.resolve_kinds(params.norm, list(channel_names))
    chans = [normalise_channel(c, m, params, k)
             for c, m, k in zip(record.channels, channel_names, kinds, strict=True)]
    sources = {"image": list(record.image_files), "label": record.label_file}
    image, label_zyx, meta = geometry.from_source(
        chans, label, record.affine, record.spacing_xyz,
        case_id=record.case_id, channels=list(channel_names), sources=sources)
    del chans
    mask, used = cropping.crop_mask(params.crop, record.case_id, record.channels,
                                    channel_names, label_zyx, params.body_hu,
                                    label_crop=label_crop)
    if mask is not None:
        margin = geometry.margin_voxels(meta, params.crop_margin)
        image, label_zyx, meta = geometry.crop_to_bbox(image, label_zyx, meta, mask, margin)
    if params.crop != "none":
        meta["crop"] = used
    if params.spacing is not None or params.inplane is not None:
        new_shape = resample.target_shape(meta["shape"], meta["spacing"], params.spacing,
                                          params.inplane)
        resampled, label_zyx, meta = geometry.resample(image, label_zyx, meta, new_shape)
        image = image if resampled is None else resampled
    return image, label_zyx, meta


def label_crop_cases(the_split: dict[str, Any]) -> set[str]:
    """The cases ``--crop label`` may crop to their label: training and validation
    cases that are a test case in no fold (``folds``: every labelled case is one fold's
    test case, so none).

    Example:
        >>> sorted(label_crop_cases({"train": ["a", "b"], "val": ["c"], "test": ["d"]}))
        ['a', 'b', 'c']
        >>> label_crop_cases({"train": ["a"], "val": [], "test": ["b"],
        ...                   "folds": [{"test": ["b"]}, {"test": ["a"]}]})
        set()
    """
    tested = set(the_split.get("test", []))
    for fold in the_split.get("folds") or []:
        tested.update(fold.get("test", []))
    return (set(the_split.get("train", [])) | set(the_split.get("val", []))) - tested


def _slice_one(adapter: Any, case_id: str, params: SliceParams, lut: np.ndarray,
               labels: dict[int, str], root: Path,
               label_crop: bool = False) -> tuple[str, Any, Any, Any]:
    """Read, process and write one case; InputErrors are returned (they do not pickle).

    The fourth item is the case's :func:`clip_stats` (None on error), counted on the
    arrays already in memory: no second read of the data.
    """
    try:
        record = adapter.load(case_id)
        image, label, meta = process_case(record, adapter.labels, adapter.channels, params, lut,
                                          label_crop=label_crop)
        meta["labels"] = {str(k): v for k, v in labels.items()}
        casestore.write_case(root, case_id, image, label, meta)
        del image, label
        kinds = win.resolve_kinds(params.norm, list(adapter.channels))
        clips = clip_stats(record, lut, kinds, params)
    except InputError as err:
        return ("error", err.where, err.problem, None)
    shape = "x".join(str(n) for n in meta["shape"])
    spacing = ",".join(f"{s:.4g}" for s in meta["spacing"])
    return ("ok", case_id, f"{shape} voxels, spacing {spacing} mm", clips)


# ------------------------------------------------------------------- whole stage


def slice_dataset(
    adapter: Any,
    out: str | Path,
    params: SliceParams,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write the case store for ``adapter``'s dataset to ``out`` (atomically).

    Args:
        adapter: an :class:`Adapter` instance.
        out: the case-store folder to produce.
        params: preprocessing parameters.
        log: called with one line per case and a summary (default: no output).
        warn: called with each warning line (a window clipping the foreground,
            :func:`clip_warnings`), after the cases; default: ``log``.

    Returns:
        the split written (``split.json`` contents).
    """
    out = Path(out)
    labels, lut = remap_classes(adapter.labels, params.label_map)
    kinds = win.resolve_kinds(params.norm, list(adapter.channels))  # refused before any work
    the_split = choose_split(adapter, params)
    cases = casestore.sorted_cases([c for s in casestore.SPLITS for c in the_split[s]])
    dataset = {
        "name": adapter.name,
        "source": adapter.source,
        "labels": {str(k): v for k, v in labels.items()},
        "channels": list(adapter.channels),
        "source_labels": {str(k): v for k, v in sorted(adapter.labels.items())},
        "source_info": dict(adapter.info),
        "preprocessing": params.record(),
        "n_cases": len(cases),
    }
    say = log or (lambda _line: None)
    clipped = [(0, 0)] * len(kinds)
    with atomic.atomic_dir(out) as tmp:
        results = _run_cases(adapter, cases, params, lut, labels, tmp,
                             label_crop_cases(the_split))
        try:
            for case_id in cases:
                status, where, text, clips = next(results)
                if status == "error":
                    raise InputError(where, text)
                clipped = [(a + c, b + t) for (a, b), (c, t) in zip(clipped, clips, strict=True)]
                say(f"{case_id} [{split.split_of(the_split, case_id)}]: {text}")
        finally:
            results.close()  # with --jobs: cancel and wait before the folder is removed
        atomic.write_json(tmp / "dataset.json", dataset)
        split.write_split(tmp / "split.json", the_split)
        split.write_nnunet_splits(tmp / split.NNUNET_FILE, the_split)
    counts = ", ".join(f"{s} {len(the_split[s])}" for s in casestore.SPLITS)
    say(f"sliced {len(cases)} cases ({counts}) -> {out}")
    for line in clip_warnings(clipped, kinds, adapter.channels, params):
        (warn or say)(line)
    return the_split


def choose_split(adapter: Any, params: SliceParams) -> dict[str, Any]:
    """The split of ``adapter``'s cases that ``params`` ask for (checked: any problem
    with a splits or stratify file is an :class:`InputError` naming it).

    Attributes for ``stratify`` come from ``stratify_file`` when given, else from the
    adapter: its optional ``case_attributes()`` (case -> attribute -> value) or the
    built-in ``prefix`` and ``modality`` (:func:`split.builtin_attributes`).
    """
    labelled, unlabelled = adapter.labelled(), adapter.unlabelled()
    strata = None
    if params.stratify_file is not None:
        strata = split.read_attribute_csv(params.stratify_file, params.stratify or "")
    elif params.stratify:
        given = getattr(adapter, "case_attributes", None)
        strata = split.builtin_attributes(params.stratify, labelled, adapter.channels,
                                          given() if callable(given) else None)
    splits_file = (None if params.split_file is None
                   else split.read_splits_file(params.split_file, params.split_fold))
    return split.make_split(labelled, unlabelled, params.n_test, params.n_val,
                            where=adapter.raw, rule=params.split_rule,
                            seed=params.split_seed, strata=strata, splits_file=splits_file,
                            folds=params.folds)


def _run_cases(adapter: Any, cases: list[str], params: SliceParams, lut: np.ndarray,
               labels: dict[int, str], root: Path, label_crop: set[str]):
    """Yield each case's result in order; with ``jobs > 1`` a process pool works ahead.
    ``label_crop``: the cases ``--crop label`` may crop to their label.

    Closing the generator (on an error) cancels pending cases and waits for running
    ones, so nothing writes into the temporary folder after it is removed.
    """
    if params.jobs <= 1:
        for case_id in cases:
            yield _slice_one(adapter, case_id, params, lut, labels, root,
                             case_id in label_crop)
        return
    pool = ProcessPoolExecutor(max_workers=params.jobs)
    try:
        futures: list[Future[tuple[str, Any, Any, Any]]] = [
            pool.submit(_slice_one, adapter, c, params, lut, labels, root, c in label_crop)
            for c in cases]
        for fut in futures:
            yield fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------ CLI


def _floats(text: str, n: int, what: str, keep_ok: bool = False) -> tuple[float | None, ...]:
    parts = text.split(",")
    if len(parts) != n:
        raise argparse.ArgumentTypeError(f"{what}: expected {n} comma-separated numbers, "
                                         f"got {text!r}")
    out: list[float | None] = []
    for p in parts:
        p = p.strip()
        if keep_ok and p == "-":
            out.append(None)
            continue
        try:
            value = float(p)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: {p!r} is not a number") from None
        if not math.isfinite(value):  # float() takes inf and nan
            raise argparse.ArgumentTypeError(f"{what}: {p!r} is not a finite number")
        out.append(None if keep_ok and value == 0 else value)
    return tuple(out)


def _finite_float(text: str) -> float:
    (value,) = _floats(text, 1, "--body-hu")
    assert value is not None
    return value


def _window_arg(text: str) -> tuple[float, float]:
    level, width = _floats(text, 2, "--window LEVEL,WIDTH")
    if level is None or width is None or not width > 0:
        raise argparse.ArgumentTypeError(f"--window: width must be > 0 HU, got {text!r}")
    return (level, width)


def _percentiles_arg(text: str) -> tuple[float, float]:
    lo, hi = _floats(text, 2, "--percentiles LOW,HIGH")
    if lo is None or hi is None or not 0 <= lo < hi <= 100:
        raise argparse.ArgumentTypeError(f"--percentiles: need 0 <= LOW < HIGH <= 100, "
                                         f"got {text!r}")
    return (lo, hi)


def _spacing_arg(text: str) -> tuple[float | None, float | None, float | None]:
    z, y, x = _floats(text, 3, "--spacing Z,Y,X", keep_ok=True)
    if any(v is not None and not v > 0 for v in (z, y, x)):
        raise argparse.ArgumentTypeError(f"--spacing: components must be > 0 mm, or 0/- to "
                                         f"keep, got {text!r}")
    return (z, y, x)


def _label_map_arg(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--label-map: expected SOURCE:TARGET integers, "
                                         f"got {text!r}")
    return (int(m.group(1)), int(m.group(2)))


def build_parser() -> argparse.ArgumentParser:
    """The ``preprocess/slice.py`` argument parser."""
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog=prog("slice.py"),
        description="Slice an unpacked raw dataset into a case store "
        "(normalised (C,Z,Y,X) volumes + geometry + split).")
    p.add_argument("--adapter", default="msd",
                   help=f"source format: {', '.join(adapter_names())} (default: msd)")
    p.add_argument("--raw", required=True, type=Path, help="unpacked raw folder")
    p.add_argument("--out", required=True, type=Path, help="case store to write")
    p.add_argument("--window", type=_window_arg, default=(win.DEFAULT_LEVEL,
                   win.DEFAULT_WIDTH), metavar="LEVEL,WIDTH",
                   help="CT window in HU (default 40,400: [-160, 240] HU -> [0, 1]); "
                   "write --window=-600,1500 for a negative level")
    p.add_argument("--no-window", action="store_true", help="keep CT channels in raw HU")
    p.add_argument("--percentiles", type=_percentiles_arg,
                   default=win.DEFAULT_PERCENTILES, metavar="LOW,HIGH",
                   help="non-CT channels: percentiles of the non-zero voxels mapped to "
                   "[0, 1] (default 0.5,99.5)")
    p.add_argument("--no-normalise", action="store_true",
                   help="keep non-CT channels raw")
    p.add_argument("--norm", metavar="KIND[,KIND...]",
                   help="normalisation per channel instead of by the dataset.json modality: "
                   "ct (the window), zscore (mean 0, sd 1 over the non-zero voxels) or "
                   "percentile; one for every channel or one per channel (e.g. ct,zscore)")
    p.add_argument("--spacing", type=_spacing_arg, metavar="Z,Y,X",
                   help="resample to this spacing in mm (0 or - keeps an axis)")
    p.add_argument("--inplane", type=positive_int, metavar="N",
                   help="resize every axial slice to N x N voxels (z kept)")
    p.add_argument("--n-test", type=count, default=split.DEFAULT_N_TEST,
                   help=f"held-out test cases, the first by --split "
                   f"(default {split.DEFAULT_N_TEST})")
    p.add_argument("--n-val", type=count, default=split.DEFAULT_N_VAL,
                   help=f"validation cases, the next by --split (default "
                   f"{split.DEFAULT_N_VAL})")
    p.add_argument("--split", choices=split.RULES, default="ordered",
                   help="order test, val and train are taken in: natural order of the "
                   "case ids, or random (a permutation seeded by --split-seed)")
    p.add_argument("--split-seed", type=count, default=0, metavar="N",
                   help="seed of the random split (default 0)")
    p.add_argument("--split-file", type=Path, metavar="JSON",
                   help="nnU-Net splits_final.json: test = the fold's val, val = --n-val "
                   "cases of the fold's train (by --split), train = the rest; --n-test "
                   "is ignored")
    p.add_argument("--split-fold", type=count, default=0, metavar="K",
                   help="fold of --split-file (default 0)")
    p.add_argument("--folds", type=int, metavar="K",
                   help="k-fold cross-validation (k >= 2): every labelled case in exactly "
                   "one fold's test set (round-robin of the --split order, by stratum with "
                   "--stratify); split.json records every fold, splits_final.json has k "
                   "folds; --n-test is ignored")
    p.add_argument("--stratify", metavar="ATTR",
                   help="take test and val from every value of this per-case attribute "
                   "in proportion: a column of --stratify-file, or built in: "
                   + ", ".join(split.BUILTIN_ATTRIBUTES))
    p.add_argument("--stratify-file", type=Path, metavar="CSV",
                   help="per-case attribute values: header 'case,<attr>,...', one row a "
                   "case (without --stratify: its second column)")
    p.add_argument("--label-map", type=_label_map_arg, nargs="+", action="extend",
                   default=[], metavar="A:B",
                   help="map source label A to B (e.g. 2:0 makes class 2 background)")
    p.add_argument("--crop", choices=cropping.MODES, default="none",
                   help="crop each case to the body (CT above --body-hu) or to the labelled "
                   "region (training and validation cases only; test cases of any fold and "
                   "unlabelled cases: the body), plus --crop-margin (default none)")
    p.add_argument("--crop-margin", type=non_negative_float,
                   default=cropping.DEFAULT_MARGIN_MM, metavar="MM",
                   help=f"margin around the crop region in mm (default "
                   f"{cropping.DEFAULT_MARGIN_MM:g})")
    p.add_argument("--body-hu", type=_finite_float, default=cropping.DEFAULT_BODY_HU, metavar="HU",
                   help=f"body mask threshold (default {cropping.DEFAULT_BODY_HU:g} HU)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="cases processed in parallel (default 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (wrapped by :func:`segline.cli.entry` in preprocess/slice.py)."""
    args = build_parser().parse_args(argv)
    mapping: dict[int, int] = {}
    for src, dst in args.label_map:
        if src in mapping and mapping[src] != dst:
            raise InputError("--label-map", f"label {src} mapped twice ({mapping[src]}, {dst})")
        mapping[src] = dst
    params = SliceParams(
        window=None if args.no_window else args.window,
        percentiles=None if args.no_normalise else args.percentiles,
        spacing=args.spacing, inplane=args.inplane,
        n_test=args.n_test, n_val=args.n_val, split_rule=args.split,
        split_seed=args.split_seed, split_file=args.split_file, split_fold=args.split_fold,
        folds=args.folds,
        stratify=args.stratify or None, stratify_file=args.stratify_file,
        label_map=mapping, crop=args.crop,
        crop_margin=args.crop_margin, body_hu=args.body_hu, jobs=args.jobs,
        norm=None if args.norm is None else win.norm_kinds(args.norm))
    if not args.raw.is_dir():
        raise InputError(args.raw, "raw folder not found (unpack the archive first)")
    adapter = get_adapter(args.adapter)(args.raw)

    def warn(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    tty = sys.stdout.isatty()
    if tty:
        from tqdm import tqdm

        n = len(adapter.labelled()) + len(adapter.unlabelled())
        bar = tqdm(total=n, unit="case", desc=f"slicing {adapter.name}")

        def log(line: str) -> None:
            if line.startswith("sliced "):
                bar.close()
                print(line)
            else:
                bar.update(1)

        try:
            slice_dataset(adapter, args.out, params, log=log, warn=warn)
        finally:
            bar.close()
    else:
        slice_dataset(adapter, args.out, params, log=lambda line: print(line, flush=True),
                      warn=warn)
    return 0


cli = cli_of(main)
