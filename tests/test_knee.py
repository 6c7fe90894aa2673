"""helpers.knee: hand-computed unit scaling (bits, MONOCHROME1, signed), CLAHE, boxes and crops, and the joint
localiser against the generator's joint boxes (IoU >= 0.5 for at least 90 % of generated knees)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import knee
from helpers.datasets.generated import make_knee_xray, synth_knee_xray
from helpers.dicom import write_dicom
from helpers.errors import UnsupportedImageError

STUDY = "1.2.826.0.1.3680043.8.498.7"
SERIES = "1.2.826.0.1.3680043.8.498.7.1"


def dx(path: Path, stored: np.ndarray, **kw) -> Path:
    """A DX file holding ``stored`` (keyword arguments go to write_dicom)."""
    return write_dicom(path, stored, modality="DX", patient_id="K1", study_uid=STUDY, series_uid=SERIES, **kw)


@pytest.fixture(scope="module")
def knee_dicoms(tmp_path_factory):
    """A few generated knee DICOM files (64 px) and the same images in memory."""
    folder = tmp_path_factory.mktemp("knee")
    table = make_knee_xray(folder, n_patients=8, images_per_patient=1, size=64, seed=2)
    synth = synth_knee_xray(n_patients=8, images_per_patient=1, size=64, seed=2, masks=())
    return folder, table, synth


# --- to_unit_image ---------------------------------------------------------------------------------------


def test_to_unit_image_scales_by_bits_stored_not_by_the_maximum(tmp_path):
    stored = np.array([[0, 1023], [512, 100]], dtype=np.uint16)
    out = knee.to_unit_image(dx(tmp_path / "a.dcm", stored, bits_stored=10))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 1.0], [512 / 1023, 100 / 1023]], atol=1e-6)
    # 16 bits with a maximum of 1000: 1000 / 65535, not 1.0 (a min-max scale would say 1.0).
    out16 = knee.to_unit_image(dx(tmp_path / "b.dcm", np.array([[0, 1000]], np.uint16), bits_stored=16))
    np.testing.assert_allclose(out16, [[0.0, 1000 / 65535]], atol=1e-7)


def test_to_unit_image_inverts_monochrome1_and_ignores_the_window(tmp_path):
    stored = np.array([[0, 1023], [512, 100]], dtype=np.uint16)
    out = knee.to_unit_image(dx(tmp_path / "m1.dcm", stored, bits_stored=10, photometric="MONOCHROME1",
                                window=(100.0, 50.0)))
    np.testing.assert_allclose(out, [[1.0, 0.0], [1 - 512 / 1023, 1 - 100 / 1023]], atol=1e-6)


def test_to_unit_image_offsets_signed_data(tmp_path):
    stored = np.array([[-2048, 2047], [0, -1]], dtype=np.int16)
    out = knee.to_unit_image(dx(tmp_path / "s.dcm", stored, bits_stored=12))
    np.testing.assert_allclose(out, [[0.0, 1.0], [2048 / 4095, 2047 / 4095]], atol=1e-6)


def test_to_unit_image_reads_generated_files_as_the_generator_drew_them(knee_dicoms):
    _, table, synth = knee_dicoms
    assert set(table["photometric"]) == {"MONOCHROME1", "MONOCHROME2"}  # both kinds are checked
    for path, bits, image in zip(table["path"], table["bits_stored"], synth.images):
        out = knee.to_unit_image(path)
        assert out.shape == image.shape
        assert np.abs(out - image).max() <= 0.5 / (2**bits - 1) + 1e-6  # half a stored step


def test_to_unit_image_takes_a_dataset_and_refuses_colour(tmp_path):
    import pydicom

    ds = pydicom.dcmread(dx(tmp_path / "a.dcm", np.array([[0, 255]], np.uint8), bits_stored=8))
    np.testing.assert_allclose(knee.to_unit_image(ds), [[0.0, 1.0]])
    rgb = write_dicom(tmp_path / "rgb.dcm", np.zeros((4, 4), np.uint8), modality="OT", patient_id="K1",
                      study_uid=STUDY, series_uid=SERIES)
    colour = pydicom.dcmread(rgb)
    colour.set_pixel_data(np.zeros((4, 4, 3), np.uint8), photometric_interpretation="RGB", bits_stored=8)
    with pytest.raises(UnsupportedImageError):
        knee.to_unit_image(colour)


# --- CLAHE -------------------------------------------------------------------------------------------------


def test_clahe_one_tile_without_clipping_is_histogram_equalisation():
    # 3/4 of the pixels at one level, 1/4 at another: cumulative shares 0.75 and 1.0 -> 191/255 and 255/255.
    image = np.full((16, 16), 0.2, np.float32)
    image[:, 12:] = 0.8
    out = knee.clahe(image, clip_limit=1000.0, tile=1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, :12], 191 / 255, atol=1e-6)
    np.testing.assert_allclose(out[:, 12:], 1.0, atol=1e-6)


def test_clahe_raises_local_contrast_and_stays_in_range():
    rng = np.random.default_rng(0)
    image = (0.4 + 0.05 * rng.random((64, 64))).astype(np.float32)  # a dull, low-contrast image
    out = knee.clahe(image)
    assert out.shape == image.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert out.std() > 2 * image.std()
    with pytest.raises(ValueError):
        knee.clahe(image, clip_limit=0)


# --- boxes and crops --------------------------------------------------------------------------------------------


def test_box_iou_hand_cases():
    assert knee.box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert knee.box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert knee.box_iou((0, 0, 9, 9), (10, 10, 19, 19)) == 0.0


def test_crop_to_joint_without_margin_is_the_box():
    image = np.arange(100 * 100, dtype=np.float32).reshape(100, 100) / 9999.0
    out = knee.crop_to_joint(image, (40, 40, 59, 59), size=20, margin=0.0)
    np.testing.assert_array_equal(out, image[40:60, 40:60])


def test_crop_to_joint_keeps_the_aspect_ratio_and_pads_with_black():
    image = np.ones((50, 50), dtype=np.float32)
    # A 20 x 10 box at the corner, margin 0.5: side = 20 * 2 = 40 px about the centre (10, 5) -> rows -15..24.
    out = knee.crop_to_joint(image, (0, 0, 19, 9), size=40, margin=0.5)
    assert out.shape == (40, 40)
    assert out[:15].max() == 0.0 and out[:, :10].max() == 0.0  # outside the image: black
    assert out[15:, 10:].min() == 1.0
    halved = knee.crop_to_joint(image, (0, 0, 19, 9), size=20, margin=0.5)
    np.testing.assert_allclose(halved, cv2.resize(out, (20, 20), interpolation=cv2.INTER_AREA))


# --- the joint localiser ------------------------------------------------------------------------------------------


def test_find_joint_on_a_drawn_knee():
    # Soft tissue 0.3 (cols 24-103), femur block rows 20-60 and tibia rows 66-110 (cols 44-84, 0.8): joint at y = 63.
    image = np.zeros((128, 128), np.float32)
    image[:, 24:104] = 0.3
    image[20:61, 44:85] = 0.8
    image[66:111, 44:85] = 0.8
    x0, y0, x1, y1 = knee.find_joint(image)
    assert abs((x0 + x1) / 2 - 64) <= 2 and abs((y0 + y1) / 2 - 63) <= 2
    unit = 41 / 2 / knee.CONDYLE_WIDTH_RATIO  # condyle half-width the box is built from
    assert (x1 - x0) == pytest.approx(2 * knee.JOINT_HALF_U * unit, rel=0.1)
    assert (y1 - y0) == pytest.approx(2 * knee.JOINT_HALF_V * unit, rel=0.15)


def test_find_joint_on_a_blank_image_returns_the_whole_image():
    assert knee.find_joint(np.zeros((40, 30), np.float32)) == (0, 0, 29, 39)


def test_find_joint_matches_the_generator_joint_boxes():
    synth = synth_knee_xray(n_patients=40, images_per_patient=1, size=128, seed=1, difficulty=0.5, masks=())
    truth = knee.joint_boxes(synth.table)
    ious = np.array([knee.box_iou(knee.find_joint(im), box) for im, box in zip(synth.images, truth)])
    assert (ious >= 0.5).mean() >= 0.9
    assert ious.mean() >= 0.8  # measured 0.93 on 300 generated knees


# --- a whole set ---------------------------------------------------------------------------------------------------


def _files(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


def test_prepare_knee_set_shapes_order_and_writes_nothing(knee_dicoms):
    folder, table, _ = knee_dicoms
    before = _files(folder)
    out = knee.prepare_knee_set(table, size=48)
    assert out.shape == (len(table), 48, 48) and out.dtype == np.uint8
    reverse = knee.prepare_knee_set(table.iloc[::-1], size=48)
    np.testing.assert_array_equal(reverse, out[::-1])
    floats = knee.prepare_knee_set(table.iloc[:2], size=48, dtype="float32")
    assert floats.dtype == np.float32 and 0.0 <= floats.min() and floats.max() <= 1.0
    np.testing.assert_allclose(floats * 255, out[:2], atol=0.51)
    assert _files(folder) == before


def test_prepare_knee_set_without_crop_or_clahe_is_the_resized_unit_image(knee_dicoms):
    _, table, _ = knee_dicoms
    out = knee.prepare_knee_set(table.iloc[:3], size=32, use_clahe=False, crop=False, dtype="float32")
    for row, path in enumerate(table["path"][:3]):
        expected = cv2.resize(knee.to_unit_image(path), (32, 32), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(out[row], expected, atol=1e-6)


def test_prepare_knee_set_takes_arrays_and_rejects_tables_without_paths(knee_dicoms):
    _, table, synth = knee_dicoms
    out = knee.prepare_knee_set(synth.images, size=40)
    assert out.shape == (len(synth.images), 40, 40)
    with pytest.raises(ValueError, match="path"):
        knee.prepare_knee_set(table.drop(columns=["path"]))
