"""helpers.dicom: hand-computed rescale and windows, write-then-read round trips, every documented
error on a bad input, and a sweep over the real samples in ../shared/data (skipped when absent)."""

from __future__ import annotations

import gzip
import random
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    MPEG2MPML,
    RLELossless,
    RTStructureSetStorage,
)

from helpers import dicom
from helpers.errors import (
    DicomDecodeError,
    DicomError,
    EmptyFolderError,
    MedImgError,
    MissingDecoderError,
    NoPixelDataError,
    NotDicomError,
    SeriesError,
    UnsupportedImageError,
    UnsupportedTransferSyntaxError,
)

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.1"
SAMPLES = ("dicom_samples",)


def ct(path: Path, stored: np.ndarray, **kw) -> Path:
    """A CT file with HU = stored - 1024 unless told otherwise."""
    kw.setdefault("rescale_slope", 1.0)
    kw.setdefault("rescale_intercept", -1024.0)
    kw.setdefault("series_uid", SERIES)
    return dicom.write_dicom(path, stored, modality=kw.pop("modality", "CT"), patient_id="P1", study_uid=STUDY, **kw)


def encapsulated(tmp_path: Path, syntax: str, payload: bytes = b"\x00" * 64) -> Path:
    """A file that claims a compressed transfer syntax and holds ``payload`` as its one fragment."""
    ds = pydicom.dcmread(ct(tmp_path / "plain.dcm", np.zeros((8, 8), np.int16)))
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([payload])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = tmp_path / f"encapsulated_{syntax}.dcm"
    ds.save_as(out)
    return out


# --- hand-computed values --------------------------------------------------------------------------


def test_window_hand_computed():
    values = np.array([40.0, 0.0, 80.0, -1000.0, 1000.0, 20.0])
    np.testing.assert_allclose(dicom.window(values, 40, 80), [0.5, 0.0, 1.0, 0.0, 1.0, 0.25])
    assert dicom.window(np.array(40.0), *dicom.WINDOW_PRESETS["brain"]) == 0.5


def test_window_presets_are_the_documented_values():
    p = dicom.WINDOW_PRESETS
    assert p["brain"] == (40, 80) and p["subdural"] == (80, 200) and p["stroke"] == (40, 40)
    assert p["bone"] == (400, 1800) and p["lung"] == (-600, 1500)
    assert p["mediastinum"] == (50, 350) and p["soft_tissue"] == (50, 400)


def test_stored_zero_with_intercept_minus_1024_is_minus_1024_hu(tmp_path):
    stored = np.array([[0, 1024], [1064, 3000]], np.int16)
    hu = dicom.pixels(ct(tmp_path / "a.dcm", stored))
    assert hu.dtype == np.float32
    np.testing.assert_array_equal(hu, [[-1024, 0], [40, 1976]])
    np.testing.assert_array_equal(dicom.pixels(tmp_path / "a.dcm", physical=False), stored)


def test_slope_and_intercept_both_applied(tmp_path):
    path = ct(tmp_path / "a.dcm", np.array([[10, 20]], np.uint16), rescale_slope=2.5, rescale_intercept=-1000)
    np.testing.assert_array_equal(dicom.pixels(path), [[-975.0, -950.0]])


def test_ct_without_rescale_warns_and_returns_stored(tmp_path):
    path = dicom.write_dicom(tmp_path / "a.dcm", np.array([[0, 1024]], np.uint16), modality="CT",
                             patient_id="P", study_uid=STUDY, series_uid=SERIES)
    with pytest.warns(UserWarning, match="no RescaleSlope/RescaleIntercept.*NOT Hounsfield"):
        values = dicom.pixels(path)
    np.testing.assert_array_equal(values, [[0, 1024]])


def test_mr_without_rescale_does_not_warn(tmp_path):
    path = dicom.write_dicom(tmp_path / "a.dcm", np.array([[0, 7]], np.uint16), modality="MR",
                             patient_id="P", study_uid=STUDY, series_uid=SERIES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(dicom.pixels(path), [[0, 7]])


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, lo, hi, bits_stored",
    [(np.uint8, 0, 255, None), (np.uint16, 0, 65535, None), (np.int16, -32768, 32767, None),
     (np.uint16, 0, 4095, 12), (np.int16, -2048, 2047, 12)],
    ids=["uint8", "uint16", "int16", "uint12", "int12"],
)
def test_write_then_read_round_trip(tmp_path, dtype, lo, hi, bits_stored):
    rng = np.random.default_rng(0)
    stored = rng.integers(lo, hi, size=(24, 20), endpoint=True).astype(dtype)
    stored[0, :2] = lo, hi
    path = dicom.write_dicom(tmp_path / "a.dcm", stored, modality="OT", patient_id="P", study_uid=STUDY,
                             series_uid=SERIES, bits_stored=bits_stored)
    values = dicom.pixels(path, physical=False)
    assert values.dtype == np.float32 and values.shape == (24, 20)
    np.testing.assert_array_equal(values, stored.astype(np.float32))


@pytest.mark.parametrize(
    "stored, raw",
    [(np.array([[0, 1, 4095, 2048]], np.uint16), np.array([[0xF000, 0xF001, 0xFFFF, 0x5800]], np.uint16)),
     (np.array([[0, -5, 2047, -2048]], np.int16), np.array([[0x0000, 0x0FFB, 0x77FF, 0x0800]], np.uint16))],
    ids=["unsigned", "signed"],
)
def test_bits_stored_ignores_unused_high_bits(tmp_path, stored, raw):
    ds = pydicom.dcmread(dicom.write_dicom(tmp_path / "a.dcm", stored, modality="OT", patient_id="P",
                                           study_uid=STUDY, series_uid=SERIES, bits_stored=12))
    ds.PixelData = raw.tobytes()  # 12-bit values with garbage (overlay bits) or no sign extension above
    np.testing.assert_array_equal(dicom.pixels(ds, physical=False), stored)
    np.testing.assert_array_equal(ds.pixel_array, stored)  # the same as pydicom's own decoder


def test_write_dicom_keeps_the_given_sop_instance_uid(tmp_path):
    uid = dicom.stable_uid("series", 7)
    ds = pydicom.dcmread(ct(tmp_path / "a.dcm", np.zeros((4, 4), np.int16), sop_uid=uid))
    assert ds.SOPInstanceUID == uid == ds.file_meta.MediaStorageSOPInstanceUID


def test_multi_frame_returns_frames_rows_cols(tmp_path):
    ds = pydicom.dcmread(ct(tmp_path / "a.dcm", np.zeros((4, 5), np.int16)))
    frames = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    ds.set_pixel_data(frames, photometric_interpretation="MONOCHROME2", bits_stored=16)
    hu = dicom.pixels(ds)
    assert hu.shape == (3, 4, 5)
    np.testing.assert_array_equal(hu, frames - 1024.0)


def test_enhanced_multi_frame_rescale_per_frame(tmp_path):
    path = dicom.write_dicom(tmp_path / "a.dcm", np.zeros((2, 2), np.int16), modality="CT", patient_id="P",
                             study_uid=STUDY, series_uid=SERIES)
    ds = pydicom.dcmread(path)
    ds.set_pixel_data(np.full((3, 2, 2), 100, np.int16), photometric_interpretation="MONOCHROME2", bits_stored=16)
    groups = []
    for i in range(3):
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = 1.0, -1000.0 - i
        item = Dataset()
        item.PixelValueTransformationSequence = [transform]
        groups.append(item)
    ds.PerFrameFunctionalGroupsSequence = groups
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rescale found in the functional groups: no missing-rescale warning
        hu = dicom.pixels(ds)
    np.testing.assert_array_equal(hu[:, 0, 0], [-900, -901, -902])


# --- write_dicom's encoder against pydicom's own writer ------------------------------------------


def _pydicom_saved(tmp_path: Path, pixels: np.ndarray, **kw) -> bytes:
    """The file pydicom itself writes for the data set write_dicom describes: every element set on a
    ``Dataset`` by keyword, the pixels as Pixel Data, ``save_as(enforce_file_format=True)``."""
    import inspect

    bound = inspect.signature(dicom.write_dicom).bind(tmp_path / "unused.dcm", pixels, **kw)
    bound.apply_defaults()
    args = {k: v for k, v in bound.arguments.items() if k not in ("path", "pixels")}
    elements = dicom._image_elements(np.asarray(pixels), **args)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = elements["SOPClassUID"]
    ds.file_meta.MediaStorageSOPInstanceUID = elements["SOPInstanceUID"]
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    data = np.ascontiguousarray(pixels).tobytes()
    ds.PixelData = data + b"\x00" * (len(data) % 2)
    ds["PixelData"].VR = "OB" if pixels.dtype.itemsize == 1 else "OW"
    out = tmp_path / "pydicom.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out.read_bytes()


WRITE_CASES = {
    "dx_12_bit": (np.arange(64, dtype=np.uint16).reshape(8, 8) * 60, dict(
        modality="DX", bits_stored=12, window=(2048, 4096), pixel_spacing=(0.1389, 0.1389),
        extra={"BodyPartExamined": "CHEST", "ViewPosition": "PA", "PatientOrientation": ["L", "F"]})),
    "ct_signed_rescaled": (np.array([[-2000, 0], [5, 3071]], np.int16), dict(
        modality="CT", rescale_slope=1.0, rescale_intercept=-1024.0, slice_position=-37.5, slice_thickness=5.0,
        window=(40.0, 80.0), extra={"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "KVP": 120.0,
                                    "SmallestImagePixelValue": -2000})),  # ambiguous VR (US or SS): SS here
    "mr_latin1_name_and_sequence": (np.full((4, 6), 900, np.int16), dict(
        modality="MR", patient_name="Müller^Jürgen", series_description="SA cine (généré)",
        extra={"OtherPatientIDsSequence": [Dataset()], "ImageComments": "back\\slash and  spaces ",
               "SpacingBetweenSlices": 10.0, "InstitutionName": ""})),
    "ot_8_bit_odd_size": (np.arange(9, dtype=np.uint8).reshape(3, 3), dict(
        modality="OT", photometric="MONOCHROME1", instance_number=2**31 - 1, study_date="20241231",
        extra={"BurnedInAnnotation": "YES", "ConversionType": "WSD", "AccessionNumber": None})),
    "cr_long_uid_and_tiny_numbers": (np.zeros((2, 2), np.uint16), dict(
        modality="CR", sop_uid="1.2.826.0.1.3680043.8.498." + "9" * 38, pixel_spacing=(1e-05, 123456.789),
        window=(-0.5, 1e300))),  # 1e300: repr longer than DS allows, so pydicom's own path (and its warning)
}


@pytest.mark.parametrize("name", list(WRITE_CASES))
def test_write_dicom_is_byte_for_byte_what_pydicom_writes(tmp_path, name):
    pixels, kw = WRITE_CASES[name]
    kw = dict(patient_id="P1", study_uid=STUDY, series_uid=SERIES, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the over-long DS on both sides alike
        ours = dicom.write_dicom(tmp_path / "ours.dcm", pixels, **kw).read_bytes()
        ours_again = dicom.write_dicom(tmp_path / "again.dcm", pixels, **kw).read_bytes()  # from the element cache
        theirs = _pydicom_saved(tmp_path, pixels, **kw)
    assert ours == theirs == ours_again
    ds = pydicom.dcmread(tmp_path / "ours.dcm")
    np.testing.assert_array_equal(ds.pixel_array, pixels)
    assert ds.PatientName == kw.get("patient_name", "P1")


def test_write_dicom_matches_pydicom_for_random_values(tmp_path):
    """The short path (UIDs, codes, dates, numbers encoded without pydicom) against pydicom, 60 random files."""
    rng = np.random.default_rng(7)
    for i in range(60):
        pixels = rng.integers(0, 4096, (3, 5)).astype(np.uint16)
        kw = dict(
            modality=str(rng.choice(["CT", "MR", "DX", "CR", "OT"])), patient_id=f"P{rng.integers(10**6)}",
            study_uid=dicom.stable_uid("study", i), series_uid=f"1.2.{rng.integers(1, 10**9)}", bits_stored=12,
            instance_number=int(rng.integers(-5, 10**6)),
            pixel_spacing=(float(rng.uniform(0.1, 2.0)), round(float(rng.uniform(0.1, 2.0)), 4)),
            window=(float(rng.normal(0, 1000)), float(rng.integers(1, 4096))),
            slice_position=float(rng.normal(0, 100)), rescale_slope=float(rng.choice([1.0, 0.5, 2.5])),
            rescale_intercept=float(rng.integers(-1024, 0)), study_date=f"20{rng.integers(10, 30)}0{rng.integers(1, 9)}15",
            series_description=str(rng.choice(["", "AX", "a b c", "x" * 64])),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = dicom.write_dicom(tmp_path / "ours.dcm", pixels, **kw).read_bytes()
            theirs = _pydicom_saved(tmp_path, pixels, **kw)
        assert ours == theirs, kw


def test_write_dicom_refuses_bad_extras_and_out_of_range_pixels(tmp_path):
    args = dict(modality="OT", patient_id="P", study_uid=STUDY, series_uid=SERIES)
    with pytest.raises(ValueError, match="'BodyPart' is not a DICOM keyword"):
        dicom.write_dicom(tmp_path / "a.dcm", np.zeros((2, 2), np.uint8), extra={"BodyPart": "CHEST"}, **args)
    with pytest.raises(ValueError, match="TransferSyntaxUID is written by write_dicom itself"):
        dicom.write_dicom(tmp_path / "a.dcm", np.zeros((2, 2), np.uint8), extra={"TransferSyntaxUID": "1.2"}, **args)
    with pytest.raises(ValueError, match=r"span \[0, 4096\], outside \[0, 4095\].*bits_stored=12"):
        dicom.write_dicom(tmp_path / "a.dcm", np.array([[0, 4096]], np.uint16), bits_stored=12, **args)
    with pytest.raises(ValueError, match="bits_stored must be 1 to 8"):
        dicom.write_dicom(tmp_path / "a.dcm", np.zeros((2, 2), np.uint8), bits_stored=12, **args)
    with pytest.raises(ValueError, match="photometric must be MONOCHROME1 or MONOCHROME2"):
        dicom.write_dicom(tmp_path / "a.dcm", np.zeros((2, 2), np.uint8), photometric="RGB", **args)
    assert not (tmp_path / "a.dcm").exists()  # nothing half-written


# --- windows and display ------------------------------------------------------------------------


def test_file_window_first_of_several_and_none(tmp_path):
    ds = pydicom.dcmread(ct(tmp_path / "a.dcm", np.zeros((2, 2), np.int16), window=(40, 80)))
    assert dicom.file_window(ds) == (40.0, 80.0)
    ds.WindowCenter, ds.WindowWidth = [40, 700], [80, 3200]
    assert dicom.file_window(ds) == (40.0, 80.0)
    del ds.WindowCenter, ds.WindowWidth
    assert dicom.file_window(ds) is None


def test_display_array_uses_file_window(tmp_path):
    path = ct(tmp_path / "a.dcm", np.array([[1024, 1064, 1104, 0]], np.int16), window=(40, 80))
    np.testing.assert_allclose(dicom.display_array(path), [[0.0, 0.5, 1.0, 0.0]])


@pytest.mark.parametrize("photometric, expected", [("MONOCHROME2", [0.0, 0.5, 1.0]), ("MONOCHROME1", [1.0, 0.5, 0.0])])
def test_monochrome1_is_inverted_so_high_values_are_dark(tmp_path, photometric, expected):
    stored = np.array([[0, 100, 200]], np.uint16)
    args = dict(modality="CR", patient_id="P", study_uid=STUDY, series_uid=SERIES, photometric=photometric)
    minmax = dicom.write_dicom(tmp_path / "minmax.dcm", stored, **args)
    windowed = dicom.write_dicom(tmp_path / "windowed.dcm", stored, window=(100, 200), **args)
    for path in (minmax, windowed):
        out = dicom.display_array(path)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, [expected])


def test_display_array_of_a_constant_image_is_zero(tmp_path):
    path = dicom.write_dicom(tmp_path / "a.dcm", np.full((3, 3), 7, np.uint16), modality="OT", patient_id="P",
                             study_uid=STUDY, series_uid=SERIES)
    assert not dicom.display_array(path).any()


# --- bad inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [100, 300, 700, -1000, -1])
def test_truncated_file_is_not_dicom_with_advice(tmp_path, cut):
    data = ct(tmp_path / "full.dcm", np.arange(1024, dtype=np.int16).reshape(32, 32)).read_bytes()
    cut_path = tmp_path / "cut.dcm"
    cut_path.write_bytes(data[:cut])
    with pytest.raises(NotDicomError, match="truncated|not a DICOM file") as info:
        dicom.pixels(cut_path)
    assert "copy" in str(info.value)


def test_every_cut_of_a_file_is_caught(tmp_path):
    data = ct(tmp_path / "full.dcm", np.zeros((16, 16), np.int16), window=(40, 80)).read_bytes()
    cut_path = tmp_path / "cut.dcm"
    outcomes = set()
    for cut in range(0, len(data), 5):
        cut_path.write_bytes(data[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the half-read values on the way
            with pytest.raises((NotDicomError, NoPixelDataError)) as info:
                dicom.pixels(cut_path)
        # a cut exactly between two header elements leaves a well-formed but image-less data set
        assert isinstance(info.value, NotDicomError) or "probably truncated" in str(info.value), cut
        outcomes.add(type(info.value).__name__)
    assert "NotDicomError" in outcomes


def test_truncated_pixel_data_names_the_missing_bytes(tmp_path):
    data = ct(tmp_path / "full.dcm", np.zeros((32, 32), np.int16)).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-100])
    with pytest.raises(NotDicomError, match=r"truncated DICOM file: PixelData declares 2048 bytes .* 100 bytes early"):
        dicom.read_dicom(tmp_path / "cut.dcm")


def test_non_dicom_files_say_what_they_look_like(tmp_path):
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png)
    text = tmp_path / "README.txt"
    text.write_text("Not an image.\n")
    gz = tmp_path / "ct.dcm.gz"
    gz.write_bytes(gzip.compress(ct(tmp_path / "a.dcm", np.zeros((2, 2), np.int16)).read_bytes()))
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(600)))
    for path, pattern in [(png, "PNG image.*PIL"), (text, "text file"), (gz, "gzip archive.*decompress"),
                          (empty, "empty"), (garbage, "not a DICOM file")]:
        with pytest.raises(NotDicomError, match=pattern):
            dicom.read_dicom(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dicom.read_dicom(tmp_path / "missing.dcm")


def test_rt_structure_set_has_no_pixel_data(tmp_path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTStructureSetStorage
    meta.MediaStorageSOPInstanceUID = dicom.stable_uid("rtstruct")
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = RTStructureSetStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "RTSTRUCT", "P", STUDY, SERIES + ".9"
    ds.StructureSetLabel = "contours"
    path = tmp_path / "rtstruct.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(NoPixelDataError, match="RT Structure Set holds contours"):
        dicom.pixels(path)
    with pytest.raises(ValueError):  # documented: NoPixelDataError is also a ValueError
        dicom.display_array(path)


@pytest.mark.parametrize("syntax, pattern", [(MPEG2MPML, "video"), ("1.2.3.4.5.6.7", "no pydicom decoder")])
def test_unsupported_transfer_syntax(tmp_path, syntax, pattern):
    ds = pydicom.dcmread(ct(tmp_path / "a.dcm", np.zeros((2, 2), np.int16)))
    ds.file_meta.TransferSyntaxUID = syntax
    with pytest.raises(UnsupportedTransferSyntaxError, match=pattern):
        dicom.pixels(ds)
    with pytest.raises(UnsupportedTransferSyntaxError):
        dicom.available_decoders(syntax)


@pytest.mark.parametrize(
    "syntax, package",
    [(JPEGLSLossless, "pylibjpeg-libjpeg"), (JPEGBaseline8Bit, "pylibjpeg-libjpeg"),
     (JPEG2000Lossless, "pylibjpeg-openjpeg"), (RLELossless, "pylibjpeg-rle")],
)
def test_missing_decoder_names_the_pip_package(tmp_path, monkeypatch, syntax, package):
    path = encapsulated(tmp_path, syntax)
    monkeypatch.setattr(dicom, "available_decoders", lambda ts: ())
    with pytest.raises(MissingDecoderError, match=rf"pip install pylibjpeg {package}") as info:
        dicom.pixels(path)
    assert isinstance(info.value, ImportError)


def test_missing_decoder_seen_through_pydicoms_registry(tmp_path, monkeypatch):
    from pydicom.pixels.decoders.base import get_decoder

    assert "pylibjpeg" in dicom.available_decoders(JPEGLSLossless)  # installed here
    assert dicom.available_decoders(pydicom.uid.ExplicitVRLittleEndian) == ("pydicom",)
    monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})  # as if no plugin were installed
    assert dicom.available_decoders(JPEGLSLossless) == ()
    with pytest.raises(MissingDecoderError, match="JPEG-LS Lossless.*pip install pylibjpeg pylibjpeg-libjpeg"):
        dicom.pixels(encapsulated(tmp_path, JPEGLSLossless))


def test_corrupt_pixel_data_is_a_decode_error(tmp_path):
    with pytest.raises(DicomDecodeError, match="corrupt"):
        dicom.pixels(encapsulated(tmp_path, JPEGLSLossless, payload=b"\xff\xd8 not a codestream" * 4))
    ds = pydicom.dcmread(ct(tmp_path / "a.dcm", np.zeros((8, 8), np.int16)))
    ds.PixelData = ds.PixelData[:10]  # in memory: shorter than Rows x Columns x 2
    with pytest.raises(DicomDecodeError, match="Rows, Columns"):
        dicom.pixels(ds)


def test_rgb_raises_unless_allowed(tmp_path):
    ds = pydicom.dcmread(ct(tmp_path / "a.dcm", np.zeros((2, 2), np.int16)))
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    ds.set_pixel_data(rgb, photometric_interpretation="RGB", bits_stored=8)
    with pytest.raises(UnsupportedImageError, match="colour image.*allow_rgb=True"):
        dicom.pixels(ds)
    out = dicom.pixels(ds, allow_rgb=True)
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, rgb)  # colour values are not rescaled
    np.testing.assert_allclose(dicom.display_array(ds, allow_rgb=True), rgb / 255.0, rtol=1e-6)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    for func in (dicom.read_folder, dicom.ingest_folder, dicom.load_series):
        with pytest.raises(EmptyFolderError, match="holds no files"):
            func(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    with pytest.raises(EmptyFolderError, match="no DICOM"):
        dicom.read_folder(tmp_path / "text")
    with pytest.raises(EmptyFolderError, match="not a folder"):
        dicom.read_folder(tmp_path / "missing")


# --- folders and series -------------------------------------------------------------------------


def write_series(folder: Path, positions: list[float], instance_numbers: list[int], series: str = SERIES,
                 size: int = 6, **kw) -> dict[float, np.ndarray]:
    """Slices whose value encodes their position; file names in a shuffled order. Returns position -> stored."""
    order = list(range(len(positions)))
    random.Random(1).shuffle(order)
    stored = {}
    for name_index, i in enumerate(order):
        values = np.full((size, size), int(positions[i] * 10) + 2000, np.int16)
        stored[positions[i]] = values
        ct(folder / f"{name_index:03d}_{random.Random(i).randrange(10**6)}.dcm", values, series_uid=series,
           instance_number=instance_numbers[i], slice_position=positions[i], pixel_spacing=(0.7, 0.8), **kw)
    return stored


def test_load_series_sorts_by_position_not_names_or_instance_numbers(tmp_path):
    positions = [7.5, -5.0, 2.5, 0.0, 5.0, -2.5]
    stored = write_series(tmp_path, positions, instance_numbers=[6, 5, 4, 3, 2, 1])
    vol = dicom.load_series(tmp_path)
    assert vol.sorted_by == "position"
    np.testing.assert_allclose(vol.positions, sorted(positions))
    assert vol.array.shape == (6, 6, 6) and vol.array.dtype == np.float32
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.8))
    for k, z in enumerate(sorted(positions)):
        np.testing.assert_array_equal(vol.array[k], stored[z] - 1024.0)
    assert [int(ds.InstanceNumber) for ds in vol.datasets] == [5, 1, 3, 4, 2, 6]
    assert all("PixelData" not in ds for ds in vol.datasets)
    assert [p.name for p in vol.paths] == [Path(ds.filename).name for ds in vol.datasets]


def test_load_series_projects_on_an_oblique_normal(tmp_path):
    # Sagittal slices: rows along +y, columns along -z, normal = row x col = (-1, 0, 0).
    xs = [10.0, -5.0, 0.0, 5.0]
    for i, x in enumerate(xs):
        ct(tmp_path / f"s{i}.dcm", np.full((4, 4), 1024 + i, np.int16), instance_number=i + 1,
           extra={"ImageOrientationPatient": [0, 1, 0, 0, 0, -1], "ImagePositionPatient": [x, 0, 0]})
    vol = dicom.load_series(tmp_path)
    np.testing.assert_allclose(vol.positions, [-10, -5, 0, 5])  # = -x, ascending
    np.testing.assert_array_equal(vol.array[:, 0, 0], [0, 3, 2, 1])  # x = 10, 5, 0, -5
    assert vol.spacing[0] == pytest.approx(5.0)


def test_load_series_warns_about_a_gap(tmp_path):
    write_series(tmp_path, [0.0, 2.0, 4.0, 10.0], [1, 2, 3, 4])
    with pytest.warns(UserWarning, match="uneven.*missing slices"):
        vol = dicom.load_series(tmp_path)
    assert vol.spacing[0] == pytest.approx(2.0)


def test_load_series_falls_back_to_instance_number(tmp_path):
    for i, n in enumerate([3, 1, 2]):
        dicom.write_dicom(tmp_path / f"{i}.dcm", np.full((2, 2), n, np.uint16), modality="DX", patient_id="P",
                          study_uid=STUDY, series_uid=SERIES, instance_number=n)
    vol = dicom.load_series(sorted(tmp_path.iterdir()))
    assert vol.sorted_by == "InstanceNumber"
    np.testing.assert_array_equal(vol.array[:, 0, 0], [1, 2, 3])


def test_mixed_series_is_an_error_naming_them_and_series_uid_picks_one(tmp_path):
    write_series(tmp_path, [0.0, 1.0], [1, 2], series=SERIES + ".1")
    write_series(tmp_path / "other", [0.0, 1.0, 2.0], [1, 2, 3], series=SERIES + ".2")
    pattern = rf"mixes 2 series: {SERIES}\.1 \(2 files.*{SERIES}\.2 \(3 files.*series_uid="
    with pytest.raises(SeriesError, match=pattern):
        dicom.load_series(tmp_path, recursive=True)
    vol = dicom.load_series(tmp_path, recursive=True, series_uid=SERIES + ".2")
    assert vol.array.shape == (3, 6, 6)
    with pytest.raises(SeriesError, match="no slices of series 9.9"):
        dicom.load_series(tmp_path, recursive=True, series_uid="9.9")


def test_mixed_sizes_is_an_error(tmp_path):
    write_series(tmp_path, [0.0, 1.0], [1, 2])
    ct(tmp_path / "scout.dcm", np.zeros((8, 8), np.int16), instance_number=9, slice_position=5.0)
    with pytest.raises(SeriesError, match=r"differ in size: 6x6 \(2 files.*8x8 \(1 file, e.g. scout.dcm\)"):
        dicom.load_series(tmp_path)


def test_read_folder_lists_dicom_and_counts_the_rest(tmp_path):
    write_series(tmp_path / "a" / "b", [0.0, 1.0, 2.0], [1, 2, 3])
    (tmp_path / "README.txt").write_text("data notes")
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "preview.png")
    df = dicom.read_folder(tmp_path)
    assert list(df.columns) == list(dicom.FOLDER_COLUMNS)
    assert len(df) == 3 and df.attrs["n_skipped"] == 2
    assert set(df["Modality"]) == {"CT"} and set(df["SeriesInstanceUID"]) == {SERIES}
    assert list(df["Rows"]) == [6, 6, 6] and set(df["TransferSyntaxUID"]) == {pydicom.uid.ExplicitVRLittleEndian}
    assert list(df["path"]) == sorted(df["path"])
    assert any("text file" in reason for reason in df.attrs["skipped"].values())
    with pytest.raises(EmptyFolderError):  # non-recursive: only the README and the PNG are at the top
        dicom.read_folder(tmp_path, recursive=False)


def test_ingest_folder_reads_every_image_once_in_path_order(tmp_path):
    stored = write_series(tmp_path, [0.0, 1.0, 2.0], [1, 2, 3])
    (tmp_path / "notes.txt").write_text("skip me")
    arrays = dicom.ingest_folder(tmp_path)
    assert list(arrays) == sorted(p for p in tmp_path.iterdir() if p.suffix == ".dcm")
    for path, hu in arrays.items():
        assert hu.dtype == np.float32
        np.testing.assert_array_equal(hu, dicom.pixels(path))
    assert sorted(float(a[0, 0]) for a in arrays.values()) == sorted(float(v[0, 0]) - 1024 for v in stored.values())
    data = next(iter(arrays)).read_bytes()
    (tmp_path / "zz_cut.dcm").write_bytes(data[:-50])
    with pytest.raises(NotDicomError, match="truncated"):
        dicom.ingest_folder(tmp_path)
    assert len(dicom.ingest_folder(tmp_path, skip_errors=True)) == 3


# --- PNG round trip and describe ------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, lo, hi, bits_stored, photometric",
    [(np.int16, -2048, 2047, 12, "MONOCHROME2"), (np.int16, -32768, 32767, 16, "MONOCHROME2"),
     (np.uint16, 0, 1023, 10, "MONOCHROME1"), (np.uint8, 0, 255, 8, "MONOCHROME2")],
    ids=["int12", "int16", "uint10-mono1", "uint8"],
)
def test_png16_round_trip_reproduces_stored_values(tmp_path, dtype, lo, hi, bits_stored, photometric):
    rng = np.random.default_rng(1)
    stored = rng.integers(lo, hi, size=(16, 12), endpoint=True).astype(dtype)
    stored[0, :2] = lo, hi
    src = dicom.write_dicom(tmp_path / "src.dcm", stored, modality="CT" if dtype == np.int16 else "CR",
                            patient_id="P7", study_uid=STUDY, series_uid=SERIES, pixel_spacing=(0.5, 0.6),
                            rescale_slope=1.0, rescale_intercept=-1024.0, window=(40, 400),
                            bits_stored=bits_stored, photometric=photometric)
    png = dicom.to_png16(src, tmp_path / "img.png")
    with Image.open(png) as img:
        assert img.mode == "I;16"
    back = dicom.png16_to_dicom(png, src, tmp_path / "back.dcm")
    a, b = pydicom.dcmread(src), pydicom.dcmread(back)
    np.testing.assert_array_equal(b.pixel_array, a.pixel_array)
    assert b.pixel_array.dtype == a.pixel_array.dtype
    for kw in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "PixelSpacing", "RescaleSlope",
               "RescaleIntercept", "WindowCenter", "WindowWidth", "PhotometricInterpretation", "BitsStored",
               "PixelRepresentation", "SOPClassUID"):
        assert b[kw].value == a[kw].value, kw
    assert b.SOPInstanceUID != a.SOPInstanceUID
    np.testing.assert_array_equal(dicom.pixels(back), dicom.pixels(src))


def test_png16_rejects_a_png_of_another_size(tmp_path):
    src = ct(tmp_path / "a.dcm", np.zeros((4, 4), np.int16))
    Image.fromarray(np.zeros((5, 4), np.uint16)).save(tmp_path / "x.png")
    with pytest.raises(UnsupportedImageError, match="5x4 but the template is 4x4"):
        dicom.png16_to_dicom(tmp_path / "x.png", src, tmp_path / "b.dcm")


def test_describe_gives_plain_teaching_values(tmp_path):
    path = ct(tmp_path / "a.dcm", np.zeros((4, 6), np.int16), pixel_spacing=(0.5, 0.6), window=(40, 80),
              instance_number=3)
    info = dicom.describe(path)
    assert info["File"] == "a.dcm" and info["Modality"] == "CT" and info["PatientID"] == "P1"
    assert info["Rows"] == 4 and info["Columns"] == 6 and info["NumberOfFrames"] == 1
    assert info["PixelSpacing_mm"] == (0.5, 0.6) and info["InstanceNumber"] == 3
    assert info["TransferSyntax"] == "Explicit VR Little Endian" and info["Compressed"] is False
    assert info["SOPClass"] == "CT Image Storage" and info["Signed"] is True and info["BitsStored"] == 16
    assert (info["RescaleSlope"], info["RescaleIntercept"]) == (1.0, -1024.0)
    assert (info["WindowCenter"], info["WindowWidth"]) == (40.0, 80.0) and info["HasPixelData"] is True


# --- real samples (../shared/data) -----------------------------------------------------------------

DOCUMENTED = (NotDicomError, NoPixelDataError, MissingDecoderError, UnsupportedTransferSyntaxError,
              DicomDecodeError, UnsupportedImageError)


@pytest.mark.realdata
def test_every_real_sample_decodes_or_raises_a_documented_error(shared_data):
    root = shared_data(*SAMPLES)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) > 50
    outcomes: dict[str, int] = {}
    wrong = []
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = dicom.pixels(path)
        except DOCUMENTED as exc:
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            assert str(exc), path
            continue
        except Exception as exc:  # anything else is a bug
            wrong.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        if values.dtype != np.float32 or not np.isfinite(values).all() or values.ndim not in (2, 3):
            wrong.append(f"{path}: {values.dtype} {values.shape} finite={np.isfinite(values).all()}")
        ds = pydicom.dcmread(path)
        if ds.file_meta.TransferSyntaxUID in (pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian):
            # uncompressed files take helpers' fast path: it must agree with pydicom's decoder
            if not np.array_equal(dicom.pixels(ds, physical=False), ds.pixel_array):
                wrong.append(f"{path}: stored values differ from pydicom's pixel_array")
        outcomes["decoded"] = outcomes.get("decoded", 0) + 1
    assert not wrong, "\n".join(wrong)
    assert outcomes["decoded"] >= 40 and outcomes["NotDicomError"] >= 5 and outcomes["NoPixelDataError"] >= 5


@pytest.mark.realdata
def test_ct_small_in_hounsfield_units(shared_data):
    path = shared_data(*SAMPLES, "nema_wg04_and_pydicom", "CT_small.dcm")
    hu = dicom.pixels(path)
    assert hu.shape == (128, 128)
    assert (hu.min(), hu.max()) == (-896.0, 1167.0)  # stored 128..2191, intercept -1024
    assert -1100 < np.median(hu) < 1100


@pytest.mark.realdata
def test_real_monochrome1_jpeg2000_cr_is_inverted(shared_data):
    path = shared_data(*SAMPLES, "nema_wg04_and_pydicom", "RG3_J2KR.dcm")
    ds = dicom.read_dicom(path)
    assert dicom.describe(ds)["PhotometricInterpretation"] == "MONOCHROME1"
    values = dicom.pixels(ds)
    assert values.shape == (1760, 1760) and (values.min(), values.max()) == (0.0, 1023.0)
    np.testing.assert_allclose(dicom.display_array(ds), 1.0 - dicom.window(values, 550, 1024), atol=1e-6)


@pytest.mark.realdata
def test_real_jpeg2000_ct_decodes_signed(shared_data):
    hu = dicom.pixels(shared_data(*SAMPLES, "nema_wg04_and_pydicom", "TOSHIBA_J2K_OpenJPEGv2Regression.dcm"))
    assert hu.shape == (512, 512) and (hu.min(), hu.max()) == (-2048.0, 1969.0)  # slope 1, intercept 0


@pytest.mark.realdata
def test_real_jpeg_ls_without_its_decoder(shared_data, monkeypatch):
    path = shared_data(*SAMPLES, "nema_wg04_and_pydicom", "CT1_JLSN.dcm")
    monkeypatch.setattr(dicom, "available_decoders", lambda ts: ())
    with pytest.raises(MissingDecoderError, match="JPEG-LS Lossy.*pylibjpeg-libjpeg"):
        dicom.pixels(path)


@pytest.mark.realdata
def test_real_headerless_rt_structure_set(shared_data):
    ds = dicom.read_dicom(shared_data(*SAMPLES, "nema_wg04_and_pydicom", "rtstruct.dcm"))  # needs the force fallback
    assert ds.Modality == "RTSTRUCT"
    with pytest.raises(NoPixelDataError, match="RT Structure Set"):
        dicom.pixels(ds)


@pytest.mark.realdata
def test_real_enhanced_ct_and_rt_dose_units(shared_data):
    folder = shared_data(*SAMPLES, "nema_wg04_and_pydicom")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hu = dicom.pixels(folder / "eCT_Supplemental.dcm")  # rescale in the shared functional groups
    assert hu.shape == (2, 512, 512) and hu.min() == -1024.0
    dose = dicom.pixels(folder / "rtdose.dcm")  # stored * DoseGridScaling, in Gy
    assert dose.shape == (15, 10, 10) and 0.79 < dose.min() < dose.max() < 1.26


@pytest.mark.realdata
def test_real_dicomdir_lists_its_series(shared_data):
    folder = shared_data(*SAMPLES, "nema_wg04_and_pydicom", "dicomdir_tiny_series")
    df = dicom.read_dicomdir(folder / "DICOMDIR")
    assert list(df.columns) == list(dicom.DICOMDIR_COLUMNS)
    assert len(df) == 31 and df["SeriesInstanceUID"].nunique() == 13 and df["exists"].all()
    assert set(df["Modality"]) == {"CR", "CT", "MR"} and set(df["PatientID"]) == {"77654033", "98890234"}
    for variant in ("DICOMDIR-reordered", "DICOMDIR-nopatient"):  # the second one pydicom's FileSet rejects
        other = dicom.read_dicomdir(folder / variant)
        assert sorted(other["path"]) == sorted(df["path"]) and other["SeriesInstanceUID"].nunique() == 13
    assert len(dicom.read_dicomdir(folder / "TINY_ALPHA")) == 50
    assert dicom.read_dicomdir(folder / "DICOMDIR-empty.dcm").empty
    with pytest.raises(DicomError, match="not a DICOMDIR"):
        dicom.read_dicomdir(folder / "77654033" / "CT2" / "17106")


@pytest.mark.realdata
def test_real_series_from_the_dicomdir_folder(shared_data):
    folder = shared_data(*SAMPLES, "nema_wg04_and_pydicom", "dicomdir_tiny_series", "98892001", "CT5N")
    vol = dicom.load_series(folder)
    assert vol.array.shape == (5, 16, 16)
    assert vol.spacing == pytest.approx((2.5, 0.488281, 0.488281))
    np.testing.assert_allclose(np.diff(vol.positions), 2.5)
    df = dicom.read_folder(folder.parent.parent)
    assert df.attrs["dicomdirs"] and df.attrs["n_skipped"] >= 2 and len(df) >= 80


def test_errors_are_medimg_errors():
    for exc in DOCUMENTED + (SeriesError, EmptyFolderError):
        assert issubclass(exc, MedImgError)


def test_unit_image_scales_by_bit_depth_and_inverts_monochrome1(tmp_path):
    from helpers.dicom import unit_image, write_dicom

    stored = np.array([[0, 1023], [512, 256]], dtype=np.uint16)
    m2 = write_dicom(tmp_path / "m2.dcm", stored, modality="DX", patient_id="P", study_uid="1.2.3", series_uid="1.2.3.4",
                     bits_stored=10, window=(100.0, 50.0))
    np.testing.assert_allclose(unit_image(m2), stored / 1023.0, atol=1e-6)  # the file window is ignored
    m1 = write_dicom(tmp_path / "m1.dcm", stored, modality="DX", patient_id="P", study_uid="1.2.3", series_uid="1.2.3.5",
                     bits_stored=10, photometric="MONOCHROME1")
    np.testing.assert_allclose(unit_image(m1), 1.0 - stored / 1023.0, atol=1e-6)
    signed = write_dicom(tmp_path / "s.dcm", np.array([[-2048, 2047]], dtype=np.int16), modality="CT", patient_id="P",
                         study_uid="1.2.3", series_uid="1.2.3.6", bits_stored=12)
    np.testing.assert_allclose(unit_image(signed), [[0.0, 1.0]], atol=1e-6)


def test_read_dicom_bytes_reads_like_a_file_and_names_the_upload(tmp_path):
    from helpers.dicom import read_dicom_bytes

    path = dicom.write_dicom(tmp_path / "a.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8), modality="DX",
                             patient_id="P", study_uid="1.2.3", series_uid="1.2.3.4")
    ds = read_dicom_bytes(path.read_bytes(), "upload.dcm")
    np.testing.assert_array_equal(dicom.pixels(ds, physical=False), np.arange(64).reshape(8, 8))
    with pytest.raises(NotDicomError) as info:
        read_dicom_bytes(path.read_bytes()[:-20], "my-upload.dcm")
    assert "my-upload.dcm" in str(info.value) and "medimg-" not in str(info.value)
