"""Segmentation metrics on hand-drawn masks, Sunnybrook arrays from a tiny generated set, DICOM SEG round trip."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from helpers.errors import DatasetError, MaskError
from helpers.segmentation import (
    SCORE_COLUMNS,
    as_mask,
    cardiac_arrays,
    describe_seg,
    dice,
    hausdorff95,
    iou,
    largest_component,
    normalise_percentile,
    per_slice_scores,
    read_seg,
    resize_mask,
    summarize_scores,
    write_seg,
)


def square(top: int, left: int, side: int = 10, shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    """A filled side x side square with its top-left pixel at (top, left)."""
    m = np.zeros(shape, dtype=bool)
    m[top:top + side, left:left + side] = True
    return m


# --- Dice and IoU ---------------------------------------------------------------------------------


def test_dice_and_iou_hand_computed():
    # 10x10 squares offset by 3 columns: overlap 10x7 = 70, each 100 px, union 130
    a, b = square(10, 10), square(10, 13)
    assert dice(a, b) == pytest.approx(2 * 70 / 200)
    assert iou(a, b) == pytest.approx(70 / 130)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0


def test_empty_masks():
    empty = np.zeros((4, 4), dtype=bool)
    full = np.ones((4, 4), dtype=bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(empty, full) == 0.0 and iou(full, empty) == 0.0


def test_zero_one_masks_accepted_other_values_refused():
    a = square(10, 10).astype(np.uint8)
    assert dice(a, a.astype(np.float32)) == 1.0
    assert as_mask(np.array([0, 1])).dtype == bool
    with pytest.raises(MaskError, match="0/1"):
        dice(a * 255, a)
    with pytest.raises(ValueError, match="0/1"):  # MaskError is a ValueError
        iou(a, a * 0.5)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(MaskError, match=r"\(32, 32\).*\(16, 16\)"):
        dice(square(1, 1), np.zeros((16, 16), dtype=bool))
    with pytest.raises(ValueError, match=r"\(32, 32\).*\(16, 16\)"):
        hausdorff95(square(1, 1), np.zeros((16, 16), dtype=bool))


# --- Hausdorff 95 -------------------------------------------------------------------------------------


def test_hausdorff95_squares_offset_3px_at_half_mm():
    # 28 of the 72 boundary distances are 3 px (the far edges), the rest 0..2: the 95th percentile is 3 px
    assert hausdorff95(square(10, 10), square(10, 13), spacing=(0.5, 0.5)) == pytest.approx(1.5)


def test_hausdorff95_identical_and_empty():
    a = square(5, 5)
    empty = np.zeros_like(a)
    assert hausdorff95(a, a) == 0.0
    assert hausdorff95(empty, empty) == 0.0
    assert math.isnan(hausdorff95(a, empty)) and math.isnan(hausdorff95(empty, a))


def test_hausdorff95_uses_anisotropic_spacing():
    a = np.zeros((10, 10), dtype=bool)
    b = np.zeros((10, 10), dtype=bool)
    a[1, 1] = True
    b[4, 5] = True  # 3 rows, 4 columns apart
    assert hausdorff95(a, b) == pytest.approx(5.0)  # 3-4-5 triangle at 1 mm
    assert hausdorff95(a, b, spacing=(2.0, 1.0)) == pytest.approx(math.hypot(6.0, 4.0))


# --- Per slice, then averaged ---------------------------------------------------------------------------


def test_per_slice_scores_and_summary():
    empty = np.zeros((32, 32), dtype=bool)
    preds = np.stack([square(10, 10), square(10, 10), empty, square(2, 2)])
    truths = np.stack([square(10, 10), square(10, 13), empty, empty])
    df = per_slice_scores(preds, truths, [[1.0, 1.0], [0.5, 0.5], [1.0, 1.0], [1.0, 1.0]])
    assert list(df.columns) == list(SCORE_COLUMNS)
    assert df["slice"].tolist() == [0, 1, 2, 3]
    assert df["dice"].tolist() == pytest.approx([1.0, 0.7, 1.0, 0.0])
    assert df["hd95_mm"].iloc[1] == pytest.approx(1.5)
    assert math.isnan(df["hd95_mm"].iloc[3])
    assert df["truth_px"].tolist() == [100, 100, 0, 0] and df["pred_px"].tolist() == [100, 100, 0, 100]

    s = summarize_scores(df)
    assert s["n_slices"] == 4 and s["n_empty_truth"] == 2 and s["n_hd95_undefined"] == 1
    assert s["dice_mean"] == pytest.approx((1.0 + 0.7 + 1.0 + 0.0) / 4)
    assert s["dice_median"] == pytest.approx(0.85)
    assert s["hd95_mm_mean"] == pytest.approx(1.5 / 3)  # slices 0, 1, 2 only
    assert s["hd95_mm_median"] == 0.0


def test_per_slice_scores_single_spacing_and_errors():
    preds = np.stack([square(10, 10)])
    df = per_slice_scores(preds, np.stack([square(10, 13)]), (0.5, 0.5))
    assert df["hd95_mm"].iloc[0] == pytest.approx(1.5)
    with pytest.raises(MaskError, match="shape"):
        per_slice_scores(preds, np.zeros((2, 32, 32), dtype=bool))
    with pytest.raises(ValueError, match="spacings"):
        per_slice_scores(preds, preds, [[1.0, 1.0], [1.0, 1.0]])


# --- Sunnybrook arrays ----------------------------------------------------------------------------------


def test_normalise_percentile():
    img = np.arange(101, dtype=np.float32).reshape(1, 101)  # percentiles 1 and 99 are 1 and 99
    out = normalise_percentile(img)
    assert out.dtype == np.float32
    assert out[0, 0] == 0.0 and out[0, 100] == 1.0 and out[0, 50] == pytest.approx(49 / 98)
    assert not normalise_percentile(np.full((3, 3), 7.0)).any()


@pytest.fixture(scope="module")
def cardiac(tmp_path_factory):
    from helpers.datasets.generated import make_cardiac_mr

    return make_cardiac_mr(tmp_path_factory.mktemp("cardiac"), n_patients=1, slices_per_patient=3, size=64)


def test_largest_component_drops_stray_blobs():
    m = square(4, 4, side=6)  # 36 px
    m[20:22, 20:22] = True  # a 4 px blob far away
    m[10, 10] = True  # touches the square (rows and columns 4-9) only diagonally: 8-connected, so it stays
    kept = largest_component(m)
    assert kept.sum() == 37 and not kept[20:22, 20:22].any() and kept[10, 10]
    assert hausdorff95(kept, square(4, 4, side=6)) < hausdorff95(m, square(4, 4, side=6))
    stack = largest_component(np.stack([m, np.zeros_like(m)]))
    assert stack.shape == (2, 32, 32) and stack[0].sum() == 37 and not stack[1].any()  # empty stays empty
    with pytest.raises(MaskError, match="2D mask"):
        largest_component(np.zeros((2, 2, 2, 2), bool))


def test_resize_mask_up_and_down():
    small = np.zeros((4, 4), bool)
    small[1:3, 1:3] = True  # a 2x2 square in a 4x4 mask
    big = resize_mask(small, (8, 8))
    assert big.dtype == bool and big.shape == (8, 8)
    assert big.sum() == 16 and big[2:6, 2:6].all()  # the square doubles in each direction, centred
    assert dice(resize_mask(big, (4, 4)), small) == 1.0
    np.testing.assert_array_equal(resize_mask(small.astype(np.uint8), (4, 4)), small)  # same shape: a copy
    with pytest.raises(MaskError):
        resize_mask(np.full((4, 4), 0.5), (8, 8))


def test_cardiac_arrays_from_generated_manifest(cardiac):
    from helpers.contours import contour_to_mask, read_contour

    table = cardiac.copy()
    table.loc[1, "icontour_path"] = None  # a slice without an inner contour is dropped
    images, masks, spacing = cardiac_arrays(table, size=64)
    assert images.shape == (2, 64, 64) and images.dtype == np.float32
    assert masks.shape == (2, 64, 64) and masks.dtype == bool
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() == 1.0
    row = cardiac.iloc[2]
    expected = contour_to_mask(read_contour(row["icontour_path"]), (64, 64))
    assert np.array_equal(masks[1], expected)
    assert spacing[1] == pytest.approx([row["pixel_spacing_mm"]] * 2, abs=1e-4)


def test_cardiac_arrays_resamples(cardiac):
    images, masks, spacing = cardiac_arrays(cardiac, size=32)
    assert images.shape == masks.shape == (3, 32, 32)
    full = cardiac_arrays(cardiac, size=64)
    assert spacing == pytest.approx(full[2] * 2)
    # the blood pool covers about a quarter of the pixels after halving each side
    assert masks.sum() == pytest.approx(full[1].sum() / 4, rel=0.15)


def test_cardiac_arrays_reads_load_sunnybrook_columns(cardiac):
    table = cardiac.rename(columns={"icontour_path": "inner_contour"}).drop(columns=["pixel_spacing_mm"])
    images, masks, spacing = cardiac_arrays(table, size=64)
    assert len(images) == 3 and masks.any(axis=(1, 2)).all()
    with pytest.raises(DatasetError, match="inner-contour"):
        cardiac_arrays(cardiac.drop(columns=["icontour_path"]))


# --- DICOM SEG --------------------------------------------------------------------------------------------


def test_seg_round_trip(cardiac, tmp_path):
    from helpers.contours import contour_to_mask, read_contour

    row = cardiac.iloc[1]
    mask = contour_to_mask(read_contour(row["icontour_path"]), (64, 64))
    out = write_seg(mask, row["path"], tmp_path / "seg" / "lv.dcm")
    assert out.is_file()
    back = read_seg(out)
    assert back.dtype == bool and np.array_equal(back, mask)

    ds = pydicom.dcmread(out)  # plain pydicom opens it
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert ds.SOPClassUID.name == "Segmentation Storage"
    assert ds.SegmentationType == "BINARY"
    ref = ds.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == row["series_uid"]
    assert ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == row["sop_uid"]
    assert ds.StudyInstanceUID == row["study_uid"]
    assert ds.SeriesInstanceUID != row["series_uid"]
    assert ds.SegmentSequence[0].SegmentLabel == "left ventricle"
    assert describe_seg(out, row["path"]) == {
        "sop_class": "Segmentation Storage", "segment": "left ventricle", "meaning": "Left ventricle",
        "algorithm_type": "MANUAL", "algorithm": "", "references_source": True, "same_patient_and_study": True}
    other = pydicom.dcmread(cardiac.iloc[0]["path"])
    assert describe_seg(out, other)["references_source"] is False


def test_seg_from_dataset_automatic_and_empty(cardiac, tmp_path):
    source = pydicom.dcmread(cardiac.iloc[0]["path"])
    before = len(source)
    empty = np.zeros((64, 64), dtype=np.uint8)
    out = write_seg(empty, source, tmp_path / "empty.dcm", algorithm="U-Net v1")
    assert len(source) == before  # the caller's dataset is not modified
    assert not read_seg(out).any() and read_seg(out).shape == (64, 64)
    assert pydicom.dcmread(out).SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"


def test_seg_of_source_with_deidentified_dates(cardiac, tmp_path):
    # Sunnybrook blanks dates as 00000000 / 20120000, which are not valid DICOM DA values
    source = pydicom.dcmread(cardiac.iloc[0]["path"])
    with pytest.warns(UserWarning, match="VR DA"):
        source.PatientBirthDate, source.StudyDate = "00000000", "20120000"
    mask = square(20, 20, shape=(64, 64))
    out = write_seg(mask, source, tmp_path / "seg.dcm")
    assert np.array_equal(read_seg(out), mask)
    assert source.StudyDate == "20120000"  # only the copy given to highdicom is cleaned


def test_seg_round_trip_real_sunnybrook(shared_data, tmp_path):
    import warnings

    from helpers.datasets.real import load_sunnybrook, sunnybrook_image_and_mask

    table = load_sunnybrook(shared_data("sunnybrook_lv"))
    row = table[table["inner_contour"].notna()].iloc[0]
    _, mask = sunnybrook_image_and_mask(row)
    # its UIDs have components with a leading zero (invalid, kept so references match): no warning per reference
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = write_seg(mask, row["path"], tmp_path / "seg.dcm", algorithm="U-Net")
        assert np.array_equal(read_seg(out), mask)
        about = describe_seg(out, row["path"])
    assert about["references_source"] and about["same_patient_and_study"] and about["algorithm"] == "U-Net"
    images, masks, spacing = cardiac_arrays(table.head(3), size=128)
    assert images.shape == (3, 128, 128) and masks.any(axis=(1, 2)).all()
    assert spacing[:, 0] == pytest.approx(spacing[:, 1])


def test_seg_refuses_wrong_shape_and_non_seg(cardiac, tmp_path):
    with pytest.raises(MaskError, match=r"\(32, 32\).*\(64, 64\)"):
        write_seg(np.zeros((32, 32), dtype=bool), cardiac.iloc[0]["path"], tmp_path / "x.dcm")
    with pytest.raises(MaskError, match="not a DICOM Segmentation"):
        read_seg(cardiac.iloc[0]["path"])
