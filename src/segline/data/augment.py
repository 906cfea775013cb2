"""Training-time data augmentation (``AUG=none|light|strong``) for slices and patches.

One function, :func:`augment`, transforms one training item's arrays — image
(C, *S), integer label (*S), optional signed distance maps (K, *S) in mm and an
optional loss mask (*S) — where ``S`` is (Y, X) for 2D slices
(:class:`segline.data.slices.SliceDataset`) and (Z, Y, X) for 3D patches
(:class:`segline.data.patches.PatchDataset`). Only the training set is augmented;
validation and test never are.

Levels:

- ``none``: nothing (the datasets do not even call this module; results are
  bit-identical to a build without it).
- ``light``: a random flip of every spatial axis (each with probability 1/2; z too
  for patches), a random in-plane rotation by a multiple of 90 degrees, and an
  intensity jitter ``image * U(0.9, 1.1) + U(-0.1, 0.1)`` of the normalised
  intensities (one draw per item, all channels alike).
  Rotations by 90 or 270 degrees swap the y and x axes; they are drawn only when the
  in-plane spacing is square (|sy - sx| <= 1e-6 |sx|) *and* the in-plane size is
  square, so every item keeps its shape and the spacing its distance maps were
  computed with. Otherwise only 0 or 180 degrees are drawn (these keep both).
- ``strong``: ``light``, preceded by one resampling with
  :func:`scipy.ndimage.map_coordinates`: an isotropic zoom ``s ~ U(0.85, 1.15)`` about
  the centre (s > 1 magnifies) and an elastic deformation, a smooth random
  displacement field (white noise smoothed by a Gaussian of
  :data:`ELASTIC_SIGMA_MM` mm, scaled so its largest displacement is
  ``U(0, ELASTIC_MM)`` mm; per axis converted to voxels with the spacing). The
  image is interpolated linearly, the label and the mask with nearest neighbour (so
  labels stay in the label set and the ignore value 255 stays 255). Points that
  come from outside the array read 0 (image, label = background, mask = not
  counted).

Distance maps (mm). Flips and rotations by multiples of 90 degrees move voxel
centres onto voxel centres and keep all distances: the transformed map *is* the map
of the transformed label, exactly for flips and up to one float32 rounding for
quarter turns (the distance transform adds the axes' squared distances in its own
order) (``tests/test_augment.py``). A zoom and an elastic
warp do not; two ways are used:

- per-slice 2D maps (``recompute`` with the slice's spacing: ``DIST=2d`` training,
  weight maps): the maps are recomputed from the warped label with
  :func:`segline.distmaps.one_hot_signed_distance`, exactly what the distance-map
  stage would have stored for that slice (with the store's ``absent`` convention);
- 3D maps (patches, or slices of the volume's maps): they cannot be recomputed from
  a patch or a slice (the nearest boundary may lie outside it), so the maps are
  warped linearly like the image (edge values repeated outside) and multiplied by
  the zoom ``s`` (zooming the content by ``s`` multiplies every distance by ``s``).
  Within 8 mm of the object the error against the map recomputed from the warped
  label stays below two voxel spacings for the zoom alone (label discretisation,
  and boundary voxels read one spacing, not ``s`` spacings, from zero), plus at
  most the largest elastic displacement (:data:`ELASTIC_MM`, as distance maps are
  1-Lipschitz); ``tests/test_augment.py`` checks both bounds on a disc against its
  recomputed map. Farther out, where a zoom-out brings in points from outside the
  array, the repeated edge values under-estimate the distance; an absent class
  reads ``s * D`` instead of ``D`` (a patch's maps are crops of the volume's).

Randomness. Every draw comes from :func:`item_rng` ``(seed, epoch, index)``, a
generator of its own (not the patch sampler's stream), so an item's augmentation
depends on nothing else: any number of DataLoader workers, any fetch order, and a
resumed training give the same augmented batches.

Example:
    >>> rng = item_rng(0, 0, 0)
    >>> out = augment("light", np.zeros((1, 4, 4), np.float32), np.zeros((4, 4), np.uint8),
    ...               spacing=(1.0, 1.0), rng=rng)
    >>> out["image"].shape, out["label"].shape
    ((1, 4, 4), (4, 4))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from segline.distmaps import Absent, one_hot_signed_distance

__all__ = [
    "AUGS",
    "ELASTIC_MM",
    "ELASTIC_SIGMA_MM",
    "ZOOM",
    "augment",
    "elastic_coordinates",
    "item_rng",
]

AUGS = ("none", "light", "strong")
"""The augmentation levels (``AUG`` / ``--aug``)."""
ZOOM = (0.85, 1.15)
"""Range of the strong level's isotropic zoom factor."""
ELASTIC_MM = 3.0
"""Largest displacement of the strong level's elastic field, drawn in ``[0, 3]`` mm."""
ELASTIC_SIGMA_MM = 12.0
"""Smoothness (Gaussian sigma, mm) of the elastic displacement field."""
JITTER_SCALE = (0.9, 1.1)
JITTER_SHIFT = (-0.1, 0.1)
STREAM = 0x617567
"""Last word of the augmentation's seed sequence ("aug"), so that its stream differs
from the 3D patch sampler's ``default_rng([seed, epoch, index])``."""


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` in epoch ``epoch`` (0-based) for base ``seed``.

    Example:
        >>> float(item_rng(1, 2, 3).random()) == float(item_rng(1, 2, 3).random())
        True
    """
    sequence = np.random.SeedSequence([seed, epoch, index, STREAM])
    return np.random.Generator(np.random.PCG64(sequence))


def _square_inplane(shape: Sequence[int], spacing: Sequence[float]) -> bool:
    """Whether a 90-degree in-plane rotation keeps the item's shape and spacing."""
    sy, sx = float(spacing[-2]), float(spacing[-1])
    return shape[-2] == shape[-1] and abs(sy - sx) <= 1e-6 * abs(sx)


def _warp_coordinates(
    shape: Sequence[int], spacing: Sequence[float], zoom: float, rng: np.random.Generator
) -> np.ndarray:
    """Sampling coordinates (ndim, *shape) in voxels of zoom ``zoom`` about the centre
    plus a smooth random displacement (largest ``U(0, ELASTIC_MM)`` mm)."""
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    amplitude = rng.uniform(0.0, ELASTIC_MM)
    sigma = [ELASTIC_SIGMA_MM / float(s) for s in spacing]
    fields = [
        ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), sigma, mode="reflect")
        for _ in spacing
    ]
    norm = np.sqrt(sum(f**2 for f in fields))
    top = float(norm.max())
    scale = amplitude / top if top > 0 else 0.0
    coords = np.empty((len(shape), *shape), dtype=np.float64)
    for a, (g, n, f, sp) in enumerate(zip(grids, shape, fields, spacing, strict=True)):
        centre = (n - 1) / 2.0
        coords[a] = centre + (g - centre) / zoom + f * scale / float(sp)
    return coords


def elastic_coordinates(
    shape: Sequence[int], spacing: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Sampling coordinates (ndim, *shape) in voxels of the ``strong`` level's elastic
    deformation alone (no zoom), for :func:`scipy.ndimage.map_coordinates`; used by
    :mod:`segline.experiments.vertebrae.sampler`."""
    return _warp_coordinates(shape, spacing, 1.0, rng)


def augment(
    level: str,
    image: np.ndarray,
    label: np.ndarray,
    *,
    spacing: Sequence[float],
    rng: np.random.Generator,
    dist: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    recompute: bool = False,
    n_classes: int | None = None,
    absent: Absent = "diagonal",
) -> dict[str, np.ndarray]:
    """Augment one item's arrays (see the module docstring for the levels).

    Args:
        level: ``"none"``, ``"light"`` or ``"strong"``.
        image: (C, *S) float32 image.
        label: (*S) integer labels (255 = ignored is kept as is).
        spacing: mm per voxel along ``S`` ((y, x) or (z, y, x)).
        rng: the item's generator (:func:`item_rng`).
        dist: optional (K, *S) signed distance maps in mm.
        mask: optional (*S) float loss mask (1 counted, 0 ignored).
        recompute: recompute ``dist`` from the warped label (per-slice 2D maps only,
            see the module docstring); needs ``n_classes``.
        n_classes: K, for ``recompute``.
        absent: the stored maps' value of an absent class (``"diagonal"`` or
            ``"zero"``, :mod:`segline.distmaps`), for ``recompute``.

    Returns:
        dict with ``image``, ``label`` and, when given, ``dist`` and ``mask``; all
        contiguous, same shapes and dtypes as the inputs.

    Raises:
        ValueError: unknown level, or shapes that do not match.
    """
    if level not in AUGS:
        raise ValueError(f"augmentation must be one of {AUGS}, got {level!r}")
    nd = label.ndim
    if image.shape[1:] != label.shape or len(spacing) != nd or nd not in (2, 3):
        raise ValueError(
            f"image {image.shape}, label {label.shape} and spacing {tuple(spacing)} do not match"
        )
    out: dict[str, np.ndarray] = {"image": image, "label": label}
    if dist is not None:
        out["dist"] = dist
    if mask is not None:
        out["mask"] = mask
    if level == "none":
        return out
    # draws in a fixed order, whatever the item's content
    flips = rng.random(nd) < 0.5
    square = _square_inplane(label.shape, spacing)
    k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    scale = rng.uniform(*JITTER_SCALE)
    shift = rng.uniform(*JITTER_SHIFT)
    if level == "strong":
        zoom = float(rng.uniform(*ZOOM))
        coords = _warp_coordinates(label.shape, spacing, zoom, rng)
        out["image"] = np.stack(
            [ndimage.map_coordinates(c, coords, order=1, mode="constant", cval=0.0) for c in image]
        ).astype(image.dtype, copy=False)
        out["label"] = ndimage.map_coordinates(
            label, coords, order=0, mode="constant", cval=0
        ).astype(label.dtype, copy=False)
        if mask is not None:
            out["mask"] = ndimage.map_coordinates(
                mask, coords, order=0, mode="constant", cval=0.0
            ).astype(mask.dtype, copy=False)
        if dist is not None:
            if recompute:
                if n_classes is None:
                    raise ValueError("recompute needs n_classes")
                lab = out["label"]
                known = np.where(lab < n_classes, lab, 0)  # 255: not a class of its own
                out["dist"] = one_hot_signed_distance(known, n_classes, spacing, absent=absent)
            else:
                out["dist"] = (
                    np.stack(
                        [ndimage.map_coordinates(d, coords, order=1, mode="nearest") for d in dist]
                    )
                    * zoom
                ).astype(dist.dtype, copy=False)
    spatial = tuple(range(-nd, 0))
    for key, arr in out.items():
        for axis, flip in zip(spatial, flips, strict=True):
            if flip:
                arr = np.flip(arr, axis=axis)
        if k:
            arr = np.rot90(arr, k=k, axes=(-2, -1))
        out[key] = np.ascontiguousarray(arr)
    out["image"] = (out["image"] * np.float32(scale) + np.float32(shift)).astype(
        image.dtype, copy=False
    )
    return out
