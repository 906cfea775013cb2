"""Intensity normalisation: CT windowing and robust percentile scaling.

CT voxels are in Hounsfield units (HU) with a fixed physical meaning, so a fixed
*window* (level, width) picks the tissue range of interest and maps it to [0, 1]:
the default soft-tissue window (level 40 HU, width 400 HU) keeps [-160, 240] HU.
MR and other modalities have no absolute scale, so each volume is scaled by its own
robust percentiles (default 0.5 and 99.5, over the non-zero voxels because the zero
background outside the body would otherwise dominate), again to [0, 1].

Both functions return float32 and never produce NaN: a constant volume maps to 0.

Example:
    >>> import numpy as np
    >>> ct_window(np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

DEFAULT_LEVEL = 40.0
DEFAULT_WIDTH = 400.0
DEFAULT_PERCENTILES = (0.5, 99.5)


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
