"""Random 3D patches of a case store for 3D networks (nnU-Net-style sampling).

One item is one patch of ``patch_size = (D, H, W)`` voxels of one case:

- ``image`` float32 (C, D, H, W);
- ``target`` float32 one-hot (K, D, H, W) of the *training target*, either the true
  3D label of the case store or, with ``labels`` (a :class:`TrainingLabels`, where a
  trainer's training labels come from), that source's label map, where
  :data:`IGNORE` (255) means "unlabelled";
- ``mask`` float32 (D, H, W): 1 where a voxel counts in the losses, 0 where it is
  ignored (:data:`IGNORE` of a ``labels`` source, and padding when the volume is
  smaller than the patch);
- ``dist`` float32 (K, D, H, W), signed distances in mm, when ``dist_source`` is
  ``"dist3d"`` (the case store's ``dist3d.npy``) or ``"labels"`` (the ``labels``
  source's own distance maps);
- with ``inputs`` (a :class:`BatchInputs`), the extra keys it gives for the patch's
  window (see below), e.g. an experiment's inputs of a loss;
- ``spacing`` float32 (3,): the case's (z, y, x) voxel spacing in mm (from its
  ``meta.json``), for losses that measure distances on the prediction;
- ``case`` (str) and ``start`` (the patch origin (z, y, x) in the volume, voxels).

Sampling. Sample ``i`` of epoch ``e`` draws everything (case, patch position) from
``numpy.random.default_rng([seed, e, i])``, so an epoch's patches do not depend on
DataLoader workers or the order items are fetched in; :meth:`PatchDataset.set_epoch`
selects the epoch (call it before iterating; with ``persistent_workers=True`` the
workers keep the epoch they were started with). The case is drawn uniformly. A
fraction ``fg_ratio`` of the samples (exactly ``floor((i + 1) r) - floor(i r) = 1``,
i.e. ``round-down(N r)`` of the first N samples, spread evenly) is *foreground
patches*: a foreground class present in the case's training target is drawn
uniformly, then one voxel of that class, and the patch is centred on it (nnU-Net
oversamples the last 33 % of each batch the same way). Other patches have a uniformly
random origin. A patch never leaves the volume along an axis where the volume is at
least as large as the patch (a centred patch is shifted inwards at the borders; the
chosen voxel stays inside it). Along an axis where the volume is smaller, the patch
starts at 0 and is padded at the high end: image with ``pad_value``, target with
background, ``mask`` with 0, ``dist`` by repeating the edge values.

Foreground voxel positions are found once per case and worker by scanning the whole
target (kept as linear indices, at most ``max_fg_voxels`` per class, evenly
subsampled); every other read is a memory-mapped read of the patch window only.

Extra inputs. A trainer whose loss reads batch keys the case store does not hold
gives them through ``inputs``: :meth:`BatchInputs.window` returns, for a case, a
patch origin and size and the volume's shape, a dict of numpy arrays (converted to
tensors here, stacked by :func:`patch_collate`) and integers (an int64 tensor (B,)
after collation). The same object gives a whole volume's keys for a validation loss
(:func:`segline.train.evaluate.volume_batch`: origin 0, size the volume's shape).

Example:
    >>> ds = PatchDataset(store, store.case_ids("train"), (32, 48, 48), seed=0)  # doctest: +SKIP
    >>> ds.set_epoch(3); item = ds[0]                                           # doctest: +SKIP
    >>> item["image"].shape, item["target"].shape                              # doctest: +SKIP
    (torch.Size([1, 32, 48, 48]), torch.Size([2, 32, 48, 48]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import Dataset

from segline.casestore import CaseStore
from segline.data.augment import augment, item_rng
from segline.data.slices import one_hot
from segline.errors import InputError

__all__ = [
    "IGNORE",
    "DIST_SOURCES",
    "BatchInputs",
    "PatchDataset",
    "TrainingLabels",
    "fg_flags",
    "patch_collate",
]

IGNORE = 255
"""Label value of unlabelled voxels of a :class:`TrainingLabels` source (target
background, ``mask`` 0)."""

DIST_SOURCES = (None, "dist3d", "labels")


@runtime_checkable
class TrainingLabels(Protocol):
    """Where a trainer's training labels come from when not from the case store (a
    trainer's hook, :meth:`segline.train.loop.Trainer._training_labels`).

    Attributes:
        name: the source's name in messages (e.g. ``"pseudo"``).

    ``label(case)`` is the (Z, Y, X) uint8 label map of a case, of the case's volume
    shape, :data:`IGNORE` where unlabelled; ``dist(case)`` its signed distance maps
    (K, Z, Y, X) float32 in mm (``dist_source="labels"``). Both may be memory-mapped;
    a missing file raises :class:`~segline.errors.InputError`. The object is pickled
    to DataLoader workers.
    """

    name: str

    def label(self, case: str) -> np.ndarray: ...

    def dist(self, case: str) -> np.ndarray: ...


@runtime_checkable
class BatchInputs(Protocol):
    """Extra batch keys of a trainer for what its loss ``requires`` beyond the case
    store's (a trainer's hook, :meth:`segline.train.loop.Trainer._batch_inputs`).

    Attributes:
        keys: the batch keys :meth:`window` returns.

    ``window(case, start, size, volume)``: the keys for the window of origin ``start``
    and size ``size`` (z, y, x voxels, the window may reach past the volume's end: a
    padded patch) of a case whose volume shape is ``volume``; numpy arrays (without
    the batch dimension) and integers. Bad input files raise
    :class:`~segline.errors.InputError`. The object is pickled to DataLoader workers.
    """

    keys: frozenset[str]

    def window(
        self, case: str, start: Sequence[int], size: Sequence[int], volume: Sequence[int]
    ) -> dict[str, Any]: ...


def fg_flags(n: int, fg_ratio: float) -> np.ndarray:
    """Which of samples ``0..n-1`` are foreground patches (evenly spread, exact count).

    Sample ``i`` is a foreground patch when ``floor((i + 1) r) - floor(i r) = 1``; so
    exactly ``floor(n r)`` of the first ``n`` samples are.

    Args:
        n: number of samples.
        fg_ratio: r in [0, 1].

    Returns:
        Boolean array (n,).

    Example:
        >>> fg_flags(6, 0.5).tolist()
        [False, True, False, True, False, True]
        >>> int(fg_flags(100, 0.33).sum())
        33
    """
    i = np.arange(n, dtype=np.float64)
    return np.floor((i + 1) * fg_ratio + 1e-9) - np.floor(i * fg_ratio + 1e-9) >= 1


def _pad_end(a: np.ndarray, shape: Sequence[int], mode: str, value: float = 0.0) -> np.ndarray:
    """Pad the last ``len(shape)`` axes of ``a`` at their high end up to ``shape``."""
    lead = a.ndim - len(shape)
    widths = [(0, 0)] * lead + [(0, int(s) - n) for s, n in zip(shape, a.shape[lead:], strict=True)]
    if all(w == (0, 0) for w in widths):
        return a
    if mode == "edge":
        return np.pad(a, widths, mode="edge")
    return np.pad(a, widths, mode="constant", constant_values=value)


class PatchDataset(Dataset):
    """Random 3D patches of the given cases, with foreground oversampling.

    Args:
        store: the case store (opened with ``dist_root`` for ``dist_source="dist3d"``).
        case_ids: the cases to draw from (training cases; each needs a target).
        patch_size: (D, H, W) in voxels, along (z, y, x).
        samples_per_epoch: the dataset's length; default 8 per case.
        fg_ratio: fraction of foreground-centred patches, in [0, 1] (nnU-Net: 0.33).
        seed: base seed; sample ``i`` of epoch ``e`` uses ``default_rng([seed, e, i])``.
        labels: where the training targets come from (:class:`TrainingLabels`,
            :data:`IGNORE` = ignored); None: the case store's true 3D labels.
        dist_source: None, ``"dist3d"`` (the store's) or ``"labels"`` (the ``labels``
            source's own) signed distances, mm.
        inputs: extra batch keys per patch (:class:`BatchInputs`, module docstring).
        pad_value: image value of padded voxels (volumes smaller than the patch).
        max_fg_voxels: at most this many voxel positions kept per foreground class
            and case (evenly subsampled) for centring foreground patches.
        aug: ``"none"``, ``"light"`` or ``"strong"`` (:mod:`segline.data.augment`),
            applied to the padded patch (image, label, ``mask``, ``dist``), drawn from
            ``item_rng(seed, epoch, i)``; not with ``inputs`` (their window would no
            longer match the patch).

    Example:
        >>> ds = PatchDataset(store, ["case_1"], (16, 16, 16), fg_ratio=1.0)  # doctest: +SKIP
        >>> float(ds[0]["target"][1].sum()) > 0                               # doctest: +SKIP
        True
    """

    def __init__(
        self,
        store: CaseStore,
        case_ids: Sequence[str],
        patch_size: Sequence[int] = (32, 48, 48),
        *,
        samples_per_epoch: int | None = None,
        fg_ratio: float = 0.33,
        seed: int = 0,
        labels: TrainingLabels | None = None,
        dist_source: str | None = None,
        inputs: BatchInputs | None = None,
        pad_value: float = 0.0,
        max_fg_voxels: int = 200_000,
        aug: str = "none",
    ) -> None:
        self.store = store
        self.case_ids = list(case_ids)
        if not self.case_ids:
            raise ValueError("PatchDataset needs at least one case")
        size = tuple(int(s) for s in patch_size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"patch_size must be 3 positive integers, got {tuple(patch_size)}")
        self.patch_size: tuple[int, int, int] = size  # type: ignore[assignment]
        if not 0.0 <= float(fg_ratio) <= 1.0:
            raise ValueError(f"fg_ratio must be in [0, 1], got {fg_ratio}")
        self.fg_ratio = float(fg_ratio)
        n = 8 * len(self.case_ids) if samples_per_epoch is None else int(samples_per_epoch)
        if n < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        self.samples_per_epoch = n
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.epoch = 0
        if dist_source not in DIST_SOURCES:
            raise ValueError(f"dist_source must be one of {DIST_SOURCES}, got {dist_source!r}")
        if dist_source == "labels" and labels is None:
            raise ValueError("dist_source='labels' needs labels (a TrainingLabels source)")
        if dist_source == "dist3d" and store.dist_root is None:
            raise ValueError("dist_source='dist3d' needs a CaseStore opened with dist_root")
        self.labels = labels
        self.label_name = "label" if labels is None else labels.name
        self.dist_source = dist_source
        self.inputs = inputs
        self.pad_value = float(pad_value)
        if aug != "none" and inputs is not None:
            raise ValueError(
                "augmentation (AUG) is not implemented with extra batch inputs "
                f"({', '.join(sorted(inputs.keys))}): their window would not follow the patch"
            )
        self.aug = aug
        self.max_fg_voxels = int(max_fg_voxels)
        self.n_classes = store.n_classes
        self._fg = fg_flags(n, self.fg_ratio)
        self._arrays_cache: dict[str, dict[str, np.ndarray]] = {}
        self._fg_cache: dict[str, list[np.ndarray]] = {}

    # -- bookkeeping ------------------------------------------------------------------
    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose patches ``self[i]`` returns (default 0)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = epoch

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the per-worker caches (memory maps would be copied)."""
        state = self.__dict__.copy()
        state["_arrays_cache"], state["_fg_cache"] = {}, {}
        return state

    def _arrays(self, case: str) -> dict[str, np.ndarray]:
        """Memory maps of one case's arrays, opened once per worker."""
        arrays = self._arrays_cache.get(case)
        if arrays is not None:
            return arrays
        image = self.store.image(case)
        arrays = {"image": image}
        if self.labels is None:
            if not self.store.has_label(case):
                raise InputError(self.store.root / case, "no label.npy (an unlabelled case)")
            arrays["label"] = self.store.label(case)
        else:
            arrays["label"] = self.labels.label(case)
        if self.dist_source == "dist3d":
            arrays["dist"] = self.store.dist(case, "3d")
        elif self.dist_source == "labels":
            assert self.labels is not None
            arrays["dist"] = self.labels.dist(case)
        meta = self.store.meta(case)
        if "spacing" in meta:
            arrays["spacing"] = np.asarray(meta["spacing"], dtype=np.float64)  # mm
        self._check(case, arrays)
        self._arrays_cache[case] = arrays
        return arrays

    def _check(self, case: str, arrays: dict[str, np.ndarray]) -> None:
        """Shapes of one case's arrays against its image (InputError on mismatch)."""
        vol = tuple(arrays["image"].shape[1:])
        where = self.store.root / case
        if arrays["image"].ndim != 4:
            raise InputError(where, f"image must be (C, Z, Y, X), got {arrays['image'].shape}")
        if tuple(arrays["label"].shape) != vol:
            raise InputError(where, f"{self.label_name} shape {arrays['label'].shape} != {vol}")
        if "dist" in arrays and tuple(arrays["dist"].shape) != (self.n_classes, *vol):
            raise InputError(
                where, f"distance maps {arrays['dist'].shape} != {(self.n_classes, *vol)}"
            )

    def fg_voxels(self, case: str) -> list[np.ndarray]:
        """Linear voxel indices of each foreground class 1..K-1 in the case's target.

        Args:
            case: case id.

        Returns:
            One int64 array per foreground class (empty if absent), at most
            ``max_fg_voxels`` long (evenly subsampled), cached per worker.
        """
        found = self._fg_cache.get(case)
        if found is None:
            label = np.asarray(self._arrays(case)["label"]).reshape(-1)
            found = []
            for k in range(1, self.n_classes):
                idx = np.flatnonzero(label == k)
                if idx.size > self.max_fg_voxels:
                    idx = idx[np.linspace(0, idx.size - 1, self.max_fg_voxels).astype(np.int64)]
                found.append(idx)
            self._fg_cache[case] = found
        return found

    # -- sampling ---------------------------------------------------------------------
    def sample(self, i: int) -> tuple[str, tuple[int, int, int], bool]:
        """Case, patch origin (z, y, x) and foreground flag of sample ``i`` this epoch.

        Args:
            i: sample index in ``[0, len(self))``.

        Returns:
            ``(case, start, centred_on_foreground)``; ``centred_on_foreground`` is False
            for a foreground sample of a case with no foreground.
        """
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range [0, {len(self)})")
        rng = np.random.default_rng([self.seed, self.epoch, i])
        case = self.case_ids[int(rng.integers(len(self.case_ids)))]
        shape = tuple(self._arrays(case)["image"].shape[1:])
        room = [max(n - p, 0) for n, p in zip(shape, self.patch_size, strict=True)]
        centre = None
        if self._fg[i]:
            classes = [idx for idx in self.fg_voxels(case) if idx.size]
            if classes:
                idx = classes[int(rng.integers(len(classes)))]
                centre = np.unravel_index(int(idx[int(rng.integers(idx.size))]), shape)
        if centre is None:
            start = tuple(int(rng.integers(r + 1)) for r in room)
        else:
            start = tuple(
                int(min(max(c - p // 2, 0), r))
                for c, p, r in zip(centre, self.patch_size, room, strict=True)
            )
        return case, start, centre is not None  # type: ignore[return-value]

    def __getitem__(self, i: int) -> dict[str, Any]:
        case, start, _ = self.sample(i)
        arrays = self._arrays(case)
        size = self.patch_size
        win = tuple(slice(s, s + p) for s, p in zip(start, size, strict=True))

        image = np.array(arrays["image"][(slice(None), *win)], dtype=np.float32)
        label = np.array(arrays["label"][win])
        real = label.shape
        mask = np.ones(real, np.float32)
        if self.labels is not None:
            ignored = label == IGNORE
            mask[ignored] = 0.0
            label[ignored] = 0
        if label.size and int(label.max()) >= self.n_classes:
            raise InputError(
                self.store.root / case,
                f"{self.label_name} value {int(label.max())} >= {self.n_classes} classes",
            )
        if self.aug != "none":
            return self._augmented(i, case, start, image, label, mask, arrays, win)
        target = one_hot(_pad_end(label, size, "constant", 0), self.n_classes)
        item: dict[str, Any] = {
            "image": torch.from_numpy(_pad_end(image, size, "constant", self.pad_value)),
            "target": torch.from_numpy(target),
            "mask": torch.from_numpy(_pad_end(mask, size, "constant", 0.0)),
            "case": case,
            "start": start,
        }
        if "spacing" in arrays:
            item["spacing"] = torch.from_numpy(arrays["spacing"].astype(np.float32))
        if "dist" in arrays:
            dist = np.array(arrays["dist"][(slice(None), *win)], dtype=np.float32)
            item["dist"] = torch.from_numpy(_pad_end(dist, size, "edge"))
        if self.inputs is not None:
            volume = tuple(arrays["image"].shape[1:])
            for key, value in self.inputs.window(case, start, size, volume).items():
                item[key] = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
        return item

    def _augmented(
        self,
        i: int,
        case: str,
        start: tuple[int, int, int],
        image: np.ndarray,
        label: np.ndarray,
        mask: np.ndarray,
        arrays: dict[str, np.ndarray],
        win: tuple[slice, ...],
    ) -> dict[str, Any]:
        """Item ``i`` padded to the patch size, then augmented (maps warped and scaled,
        see :mod:`segline.data.augment`)."""
        size = self.patch_size
        spacing = tuple(float(s) for s in arrays["spacing"])
        dist = None
        if "dist" in arrays:
            dist = _pad_end(
                np.array(arrays["dist"][(slice(None), *win)], dtype=np.float32), size, "edge"
            )
        out = augment(
            self.aug,
            _pad_end(image, size, "constant", self.pad_value),
            _pad_end(label, size, "constant", 0),
            spacing=spacing,
            rng=item_rng(self.seed, self.epoch, i),
            dist=dist,
            mask=_pad_end(mask, size, "constant", 0.0),
        )
        item: dict[str, Any] = {
            "image": torch.from_numpy(out["image"]),
            "target": torch.from_numpy(one_hot(out["label"], self.n_classes)),
            "mask": torch.from_numpy(out["mask"]),
            "case": case,
            "start": start,
            # augmenting keeps the voxel grid (turns only with square spacing, zoom and
            # warp resample onto the same grid): the spacing is the case's
            "spacing": torch.from_numpy(arrays["spacing"].astype(np.float32)),
        }
        if dist is not None:
            item["dist"] = torch.from_numpy(out["dist"])
        return item


def patch_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack patch items into a batch (all patches of a dataset share one size).

    Tensors are stacked along a new batch dimension; ``case`` becomes a list,
    ``start`` an int64 tensor (B, 3) and an integer key (of the extra inputs,
    :class:`BatchInputs`) an int64 tensor (B,).

    Args:
        items: items of a :class:`PatchDataset`.

    Returns:
        The batch dict (``image`` (B, C, D, H, W), ``target`` (B, K, D, H, W),
        ``mask`` (B, D, H, W), optional ``dist`` and the extra inputs' keys).

    Example:
        >>> it = {"image": torch.zeros(1, 2, 2, 2), "case": "a", "start": (0, 0, 0)}
        >>> b = patch_collate([it, it]); tuple(b["image"].shape), b["case"], b["start"].shape
        ((2, 1, 2, 2, 2), ['a', 'a'], torch.Size([2, 3]))
    """
    if not items:
        raise ValueError("patch_collate: empty batch")
    out: dict[str, Any] = {}
    for key, value in items[0].items():
        values = [it[key] for it in items]
        if isinstance(value, torch.Tensor):
            out[key] = torch.stack(values)
        elif key == "start" or (isinstance(value, int) and not isinstance(value, bool)):
            out[key] = torch.tensor(values, dtype=torch.int64)
        else:
            out[key] = values
    return out
