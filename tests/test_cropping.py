"""Cropping to the body or the labelled region: masks, the slicing stage, and the way
back to the source grid."""

from __future__ import annotations

import numpy as np
import pytest

from segline.datasets.toy_spleen import make_case
from segline.errors import InputError
from segline.preprocess import geometry
from segline.preprocess.cropping import body_mask_zyx, crop_mask, largest_component
from segline.preprocess.slicing import CaseRecord, SliceParams, process_case

LABELS = {0: "background", 1: "spleen"}
LUT = np.arange(256, dtype=np.uint8)


def _record(labelled: bool = True) -> CaseRecord:
    case = make_case(0, 2)
    return CaseRecord(
        case_id=case.case_id,
        channels=[case.image],
        label=case.label if labelled else None,
        affine=case.affine,
        spacing_xyz=case.zooms,
        image_files=[f"imagesTr/{case.case_id}.nii.gz"],
        label_file=f"labelsTr/{case.case_id}.nii.gz" if labelled else None,
    )


def _box(mask: np.ndarray) -> list[tuple[int, int]]:
    box = geometry.bounding_box(mask)
    assert box is not None
    return box


def test_largest_component_drops_specks() -> None:
    mask = np.zeros((5, 20, 20), bool)
    mask[1:4, 5:15, 5:15] = True  # the body
    mask[0, 0, 0] = mask[4, 19, 19] = True  # noise above the threshold in air
    kept = largest_component(mask)
    assert kept.sum() == 3 * 10 * 10 and not kept[0, 0, 0] and not kept[4, 19, 19]
    assert not largest_component(np.zeros((2, 2, 2), bool)).any()


def test_body_mask_is_the_body_ellipse_of_the_toy() -> None:
    rec = _record()
    hu_zyx = rec.channels[0].T
    body = body_mask_zyx(rec.channels, ["CT"], -500.0)
    assert body is not None and body.shape == hu_zyx.shape
    # every body voxel is above -500 HU, the air around it is not in the mask
    assert (hu_zyx[body] > -500).all() and not body[hu_zyx <= -500].any()
    assert 0.2 < body.mean() < 0.95  # air around the body is cut away
    assert body_mask_zyx(rec.channels, ["MR"], -500.0) is None


def test_modes_and_fallbacks() -> None:
    rec = _record()
    label_zyx = rec.label.T
    assert crop_mask("none", "c", rec.channels, ["CT"], label_zyx) == (None, "none")
    mask, used = crop_mask("label", "c", rec.channels, ["CT"], label_zyx, label_crop=True)
    assert used == "label" and np.array_equal(mask, label_zyx > 0)
    # a test case: its label is never read, the box comes from the body
    body = body_mask_zyx(rec.channels, ["CT"], -500.0)
    mask, used = crop_mask("label", "c", rec.channels, ["CT"], label_zyx)
    assert used == "body (image only)" and np.array_equal(mask, body)
    assert crop_mask("label", "c", rec.channels, ["MR"], label_zyx) == (
        None, "none (image only, no CT)")
    mask, used = crop_mask("label", "c", rec.channels, ["CT"], None)
    assert used == "body (no label)" and mask is not None
    assert crop_mask("label", "c", rec.channels, ["MR"], None) == (None, "none (no label, no CT)")
    with pytest.raises(InputError, match="--crop body needs a CT channel"):
        crop_mask("body", "case_1", rec.channels, ["MR"], None)


def test_body_crop_in_slicing_and_back_to_source() -> None:
    rec = _record()
    whole, whole_label, _ = process_case(rec, LABELS, ["CT"], SliceParams(), LUT)
    params = SliceParams(crop="body", crop_margin=4.0)
    image, label, meta = process_case(rec, LABELS, ["CT"], params, LUT)
    assert meta["crop"] == "body"
    op = meta["transforms"][-1]
    assert op["op"] == "crop" and op["shape_before"] == list(whole_label.shape)
    # smaller in-plane (air cut), every label voxel kept, image values unchanged
    assert image.shape[2] < whole.shape[2] and image.shape[3] <= whole.shape[3]
    assert label.sum() == whole_label.sum() > 0
    sl = tuple(slice(a, b) for a, b in zip(op["start"], op["stop"], strict=True))
    assert np.array_equal(image[0], whole[0][sl])
    # margin: 4 mm = 5 voxels at 0.8 mm in-plane, 1 voxel at 5 mm in z (clipped at edges)
    body = body_mask_zyx(rec.channels, ["CT"], -500.0)
    (z0, z1), (y0, y1), (x0, x1) = _box(body)
    assert op["start"][1] == max(0, y0 - 5) and op["stop"][2] == min(body.shape[2], x1 + 5)
    # the label goes back to the source grid exactly (outside the crop: background)
    assert np.array_equal(geometry.to_source(label, meta), rec.label)


def test_label_crop_box_and_record() -> None:
    rec = _record()
    params = SliceParams(crop="label", crop_margin=0.0)
    _, label, meta = process_case(rec, LABELS, ["CT"], params, LUT, label_crop=True)
    assert meta["crop"] == "label"
    assert label.shape == tuple(b - a for a, b in _box(rec.label.T > 0))
    assert params.record()["crop"] == "label" and params.record()["crop_margin_mm"] == 0.0
    unlabelled = _record(labelled=False)
    image, none_label, meta = process_case(unlabelled, LABELS, ["CT"], params, LUT)
    assert none_label is None and meta["crop"] == "body (no label)"
