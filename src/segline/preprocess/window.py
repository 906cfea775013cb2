"""Intensity normalisation: CT windowing and robust percentile scaling.

CT voxels are in Hounsfield units (HU) with a fixed physical meaning, so a fixed
*window* (level, width) picks the tissue range of interest and maps it to [0, 1]:
the default soft-tissue window (level 40 HU, width 400 HU) keeps [-160, 240] HU.
MR and other modalities have no absolute scale, so each volume is scaled by its own
robust percentiles (default 0.5 and 99.5, over the non-zero voxels because the zero
background outside the body would otherwise dominate), again to [0, 1].

A third scaling, z-scoring, maps the non-zero voxels of a volume to mean 0 and
standard deviation 1 (nnU-Net's ``ZScoreNormalization`` with its non-zero mask).

Which one a channel gets is its *normalisation kind* (:data:`NORM_KINDS`): ``ct``
(the window), ``percentile`` or ``zscore``. The slicing stage picks ``ct`` for a
channel whose modality is "CT" and ``percentile`` otherwise, unless ``--norm``
(make's ``NORM``) names the kinds (:func:`norm_kinds`) for a dataset whose
``dataset.json`` declares the wrong modality.

A window that clips much of the foreground is almost always a mislabelled modality
(MR windowed as CT clips half the brain to 1.0): :func:`clip_counts` counts the
clipped voxels of a region so the stage can warn when more than
:data:`CLIP_WARN_SHARE` of them are clipped.

All scalings return float32 and never produce NaN: a constant volume maps to 0.

Example:
    >>> import numpy as np
    >>> ct_window(np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from segline.errors import InputError

DEFAULT_LEVEL = 40.0
DEFAULT_WIDTH = 400.0
DEFAULT_PERCENTILES = (0.5, 99.5)
#: Normalisation kinds a channel can be given (``--norm``, make's ``NORM``).
NORM_KINDS = ("ct", "zscore", "percentile")
#: The slicing stage warns when the CT window clips more than this share of a
#: channel's foreground voxels (all labelled cases together).
CLIP_WARN_SHARE = 0.05
#: Smallest standard deviation z-scoring divides by (nnU-Net's 1e-8): a constant
#: volume maps to 0, never to NaN.
ZSCORE_MIN_SD = 1e-8


def ct_window(
    hu: np.ndarray, level: float = DEFAULT_LEVEL, width: float = DEFAULT_WIDTH
) -> np.ndarray:
    """Clip HU values to ``[level - width/2, level + width/2]`` and map linearly to [0, 1].

    Args:
        hu: CT intensities in HU, any shape.
        level: window centre in HU.
        width: window width in HU (> 0).

    Returns:
        float32 array of the same shape, values in [0, 1].

    Example:
        >>> import numpy as np
        >>> ct_window(np.array([0.0, 100.0]), level=50, width=100).tolist()
        [0.0, 1.0]
    """
    if not width > 0:
        raise ValueError(f"window width must be > 0 HU, got {width}")
    low = level - width / 2.0
    out = np.asarray(hu, dtype=np.float32) - np.float32(low)
    out /= np.float32(width)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def percentile_normalise(
    image: np.ndarray,
    low: float = DEFAULT_PERCENTILES[0],
    high: float = DEFAULT_PERCENTILES[1],
    nonzero: bool = True,
) -> np.ndarray:
    """Clip to the ``low``/``high`` percentiles and map linearly to [0, 1].

    Args:
        image: intensities of one channel, any shape (finite values).
        low: lower percentile in [0, 100).
        high: upper percentile in (low, 100].
        nonzero: compute the percentiles over the non-zero voxels only (MR background
            is exactly zero); falls back to all voxels when every voxel is zero.

    Returns:
        float32 array of the same shape in [0, 1]; all zeros when the percentiles
        coincide (constant image).

    Example:
        >>> import numpy as np
        >>> percentile_normalise(np.array([0.0, 10.0, 20.0, 30.0]), 0, 100).tolist()
        [0.0, 0.0, 0.5, 1.0]
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got {low}, {high}")
    data = np.asarray(image, dtype=np.float32)
    sample = data[data != 0] if nonzero else data.ravel()
    if sample.size == 0:
        sample = data.ravel()
    lo, hi = np.percentile(sample, [low, high])
    if not hi > lo:
        return np.zeros(data.shape, dtype=np.float32)
    out = data - np.float32(lo)
    out /= np.float32(hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def is_ct(modality: str) -> bool:
    """True for a channel whose intensities are HU (MSD writes the modality as "CT")."""
    return modality.strip().upper() == "CT"


def zscore_normalise(image: np.ndarray, nonzero: bool = True) -> np.ndarray:
    """Subtract the mean and divide by the standard deviation of the non-zero voxels.

    Every voxel is transformed (the zero background too, to ``-mean/sd``); the
    statistics come from the non-zero voxels only, like :func:`percentile_normalise`'s
    percentiles, so the background outside the body does not dominate them. Nothing
    is clipped. Statistics in float64, result float32.

    Args:
        image: intensities of one channel, any shape (finite values).
        nonzero: statistics over the non-zero voxels (falls back to all voxels when
            every voxel is zero); False: over all voxels.

    Returns:
        float32 array of the same shape: the non-zero voxels have mean 0 and standard
        deviation 1 (population sd); all zeros for a constant sample.

    Example:
        >>> import numpy as np
        >>> zscore_normalise(np.array([0.0, 1.0, 3.0])).tolist()
        [-2.0, -1.0, 1.0]
    """
    data = np.asarray(image, dtype=np.float32)
    sample = data[data != 0] if nonzero else data.ravel()
    if sample.size == 0:
        sample = data.ravel()
    mean = float(np.mean(sample, dtype=np.float64))
    sd = float(np.std(sample, dtype=np.float64))
    if not sd > ZSCORE_MIN_SD:
        return np.zeros(data.shape, dtype=np.float32)
    out = (data.astype(np.float64) - mean) / sd
    return out.astype(np.float32)


def norm_kinds(text: str, where: str = "--norm") -> tuple[str, ...]:
    """Parse ``ct``, ``zscore,percentile``, ...: one kind for every channel or one per channel.

    Raises:
        InputError: an empty item or a kind not in :data:`NORM_KINDS` (the count is
            checked against the channels by :func:`resolve_kinds`).

    Example:
        >>> norm_kinds("ct, zscore")
        ('ct', 'zscore')
    """
    kinds = tuple(k.strip().lower() for k in text.split(","))
    for k in kinds:
        if k not in NORM_KINDS:
            raise InputError(where, f"unknown normalisation {k!r} in {text!r}; "
                             f"use {'|'.join(NORM_KINDS)}, one for all channels or one "
                             f"per channel separated by commas")
    return kinds


def resolve_kinds(norm: tuple[str, ...] | list[str] | None, modalities: list[str],
                  where: str = "--norm") -> list[str]:
    """The normalisation kind of each channel.

    Args:
        norm: the override (``--norm``): one kind for every channel, or one per
            channel; None: by modality (``ct`` for "CT", ``percentile`` otherwise).
        modalities: the channel names (``dataset.json`` modalities) in channel order.
        where: named in errors.

    Raises:
        InputError: an override whose count is neither 1 nor the number of channels,
            or an unknown kind.

    Example:
        >>> resolve_kinds(None, ["CT", "T2"]), resolve_kinds(["zscore"], ["CT", "T2"])
        (['ct', 'percentile'], ['zscore', 'zscore'])
    """
    if norm is None:
        return ["ct" if is_ct(m) else "percentile" for m in modalities]
    kinds = list(norm_kinds(",".join(norm), where))
    if len(kinds) == 1:
        return kinds * len(modalities)
    if len(kinds) != len(modalities):
        raise InputError(where, f"{len(kinds)} normalisations ({','.join(kinds)}) for "
                         f"{len(modalities)} channels ({', '.join(modalities)}); give one "
                         f"for all channels or exactly one per channel")
    return kinds


def clip_counts(hu: np.ndarray, region: np.ndarray, level: float, width: float) -> tuple[int, int]:
    """``(clipped, total)``: voxels of ``region`` outside the window, and its size.

    A voxel is clipped when it lies strictly below ``level - width/2`` or above
    ``level + width/2`` (the bounds themselves map exactly to 0 and 1: nothing lost).

    Example:
        >>> import numpy as np
        >>> clip_counts(np.array([-500.0, 0.0, 100.0, 900.0]), np.array([1, 1, 1, 0]) > 0, 40, 400)
        (1, 3)
    """
    values = np.asarray(hu)[region]
    low, high = level - width / 2.0, level + width / 2.0
    return int(np.count_nonzero((values < low) | (values > high))), int(values.size)
