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
* ``label``: the bounding box of the (mapped) foreground classes, plus the margin.
  Unlabelled cases fall back to ``body`` (or to no crop without a CT channel), and the
  mode used is recorded per case. Caution: the box of a *test* case then comes from its
  ground truth, so nothing can be predicted outside it and false positives far from
  the target are never counted; use it for training-side experiments, ``body`` for
  numbers to report.
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


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``mask`` (all False when empty).

    Example:
        >>> m = np.zeros((1, 1, 7), bool); m[0, 0, [0, 2, 3, 4]] = True
        >>> largest_component(m).astype(int).ravel().tolist()
        [0, 0, 1, 1, 1, 0, 0]
    """
    labels, n = ndimage.label(mask)
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
) -> tuple[np.ndarray | None, str]:
    """The region to crop to (Z, Y, X), and the mode actually used.

    Args:
        mode: one of :data:`MODES`.
        case_id: for messages.
        channels_xyz: raw source channels (X, Y, Z), HU for CT.
        channel_names: their modalities.
        label_zyx: mapped label (Z, Y, X) or None (unlabelled case).
        body_hu: threshold of the body mask in HU.

    Returns:
        (mask, used): mask None means "do not crop"; used is ``none``, ``body``,
        ``label``, ``body (no label)`` or ``none (no label, no CT)``.

    Raises:
        InputError: ``body`` asked for a case without a CT channel.
    """
    if mode == "none":
        return None, "none"
    if mode == "label":
        if label_zyx is not None and label_zyx.any():
            return label_zyx > 0, "label"
        body = body_mask_zyx(channels_xyz, channel_names, body_hu)
        return (body, "body (no label)") if body is not None else (None, "none (no label, no CT)")
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
