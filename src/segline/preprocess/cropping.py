"""Where to crop a case before it is stored: the body, the labelled region, or nowhere.

Real CT volumes (e.g. MSD HepaticVessel, 512×512 slices) are mostly air around the
patient; cropping to the body keeps what a network can learn from and makes every
later stage cheaper. The crop is a recorded geometry step (``{"op": "crop"}`` in the
case's meta), so predictions are padded back to the source grid exactly.

Modes (``--crop``, the ``CROP`` knob):

* ``none``: keep the whole volume (default).
* ``body``: the bounding box of the largest connected region of the first CT channel
  above ``body_hu`` (default −500 HU: soft tissue, fat and bone, not air, lung
  parenchyma aside), plus a margin in mm. Uses the image only, so it is the same for
  labelled and unlabelled cases.
* ``label``: the bounding box of the (mapped) foreground classes, plus the margin, for
  the training and validation cases only. A test case (in any fold of a
  cross-validation; with ``FOLDS`` every labelled case is one, so every case is then
  cropped as by ``body``) and an unlabelled case are cropped from the image alone, as
  ``body`` (or not at all without a CT channel): a test case's ground truth never
  decides what the network sees or where a prediction can lie, so false positives far
  from the target count in the test numbers. The mode used is recorded per case (meta
  ``crop``: ``label``, ``body (image only)``, ``none (image only, no CT)``, ``body (no
  label)``, ``none (no label, no CT)``) and the report names the test cases' crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from segline.errors import InputError
from segline.preprocess import window as win

MODES = ("none", "body", "label")
DEFAULT_MARGIN_MM = 10.0
DEFAULT_BODY_HU = -500.0


def largest_component(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """The largest connected component of ``mask`` (all False when empty; ties: the
    first in scan order). ``connectivity`` 1 joins face neighbours (6 in 3D), 3 also
    edge and corner neighbours (26 in 3D), as :func:`scipy.ndimage.generate_binary_structure`.

    Example:
        >>> m = np.zeros((1, 1, 7), bool); m[0, 0, [0, 2, 3, 4]] = True
        >>> largest_component(m).astype(int).ravel().tolist()
        [0, 0, 1, 1, 1, 0, 0]
    """
    mask = np.asarray(mask)
    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    labels, n = ndimage.label(mask, structure=structure)
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def body_mask_zyx(
    channels_xyz: Sequence[np.ndarray], channel_names: Sequence[str], body_hu: float
) -> np.ndarray | None:
    """Body mask in the stored (Z, Y, X) layout from the first CT channel, or None
    when the case has no CT channel."""
    for chan, name in zip(channels_xyz, channel_names, strict=True):
        if win.is_ct(name):
            return largest_component(np.asarray(chan).T > body_hu)
    return None


def crop_mask(
    mode: str,
    case_id: str,
    channels_xyz: Sequence[np.ndarray],
    channel_names: Sequence[str],
    label_zyx: np.ndarray | None,
    body_hu: float = DEFAULT_BODY_HU,
    *,
    label_crop: bool = False,
) -> tuple[np.ndarray | None, str]:
    """The region to crop to (Z, Y, X), and the mode actually used.

    Args:
        mode: one of :data:`MODES`.
        case_id: for messages.
        channels_xyz: raw source channels (X, Y, Z), HU for CT.
        channel_names: their modalities.
        label_zyx: mapped label (Z, Y, X) or None (unlabelled case).
        body_hu: threshold of the body mask in HU.
        label_crop: whether mode ``label`` may use ``label_zyx`` (a training or
            validation case); False (a test case, or a new case to predict): the
            label is not read and the case is cropped from its image alone.

    Returns:
        (mask, used): mask None means "do not crop"; used is ``none``, ``body``,
        ``label``, ``body (image only)``, ``none (image only, no CT)`` (a test
        case), ``body (no label)`` or ``none (no label, no CT)``.

    Raises:
        InputError: ``body`` asked for a case without a CT channel.
    """
    if mode == "none":
        return None, "none"
    if mode == "label":
        if not label_crop:
            why = "image only" if label_zyx is not None else "no label"
        elif label_zyx is not None and label_zyx.any():
            return label_zyx > 0, "label"
        else:
            why = "no label"
        body = body_mask_zyx(channels_xyz, channel_names, body_hu)
        return (body, f"body ({why})") if body is not None else (None, f"none ({why}, no CT)")
    if mode == "body":
        body = body_mask_zyx(channels_xyz, channel_names, body_hu)
        if body is None:
            raise InputError(
                case_id,
                f"--crop body needs a CT channel (channels: {', '.join(channel_names)}); "
                "use --crop none or label",
            )
        return body, "body"
    raise ValueError(f"unknown crop mode {mode!r}; known: {', '.join(MODES)}")
