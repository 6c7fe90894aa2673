"""DICOM with pydicom 3: read files and folders, pixels in physical units, windowing, writing.

This module is the only place the collection touches pydicom's pixel machinery, so every notebook
gets the same rescale, inversion and error messages.

Three pitfalls the functions here handle, and a lesson should show:

* **Stored values are not physical values.** A CT file stores integers; Hounsfield units are
  ``stored * RescaleSlope + RescaleIntercept`` (often ``stored - 1024``). :func:`pixels` applies the
  rescale (or a Modality LUT). A CT file *without* rescale tags gets a warning, because its values
  may be offset (air at about 0 instead of -1000 HU) and every HU window would then be wrong.
* **MONOCHROME1 is inverted.** In MONOCHROME1 images (many CR / DX radiographs) the *lowest* value
  is displayed white. Shown as-is, bone looks black; :func:`display_array` inverts them so bone is
  bright in every image. Models trained on a mix of MONOCHROME1 and MONOCHROME2 images without this
  step learn from half the images upside down in intensity.
* **Compressed pixel data needs a plugin.** JPEG, JPEG-LS and JPEG 2000 files decode through
  pydicom's plugins (pylibjpeg + pylibjpeg-libjpeg / pylibjpeg-openjpeg); :func:`require_decoder`
  says which ``pip install`` is missing before decoding is tried.

Errors are those of :mod:`helpers.errors` (``NotDicomError``, ``NoPixelDataError``,
``MissingDecoderError``, ``UnsupportedTransferSyntaxError``, ``DicomDecodeError``,
``UnsupportedImageError``, ``SeriesError``, ``EmptyFolderError``), each message saying what to do.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import stat
import struct
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR, keyword_dict
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    PYDICOM_IMPLEMENTATION_UID,
    MediaStorageDirectoryStorage,
    generate_uid,
)

from helpers.errors import (
    DicomDecodeError,
    DicomError,
    EmptyFolderError,
    MissingDecoderError,
    NoPixelDataError,
    NotDicomError,
    SeriesError,
    UnsupportedImageError,
    UnsupportedTransferSyntaxError,
)

if TYPE_CHECKING:
    import pandas as pd

#: SOP Class UIDs used when writing, by modality.
SOP_CLASS_BY_MODALITY: dict[str, str] = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "OT": "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
}


def stable_uid(*parts: object) -> str:
    """A DICOM UID derived deterministically from ``parts`` (same parts, same UID; under pydicom's root)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _image_elements(
    pixels: np.ndarray,
    *,
    modality: str,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str | None,
    instance_number: int,
    pixel_spacing: tuple[float, float],
    rescale_slope: float | None,
    rescale_intercept: float | None,
    photometric: str,
    bits_stored: int | None,
    window: tuple[float, float] | None,
    slice_position: float | None,
    slice_thickness: float | None,
    patient_name: str | None,
    study_date: str,
    series_description: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The data set :func:`write_dicom` writes, as keyword -> value (Image Pixel module included, the
    Pixel Data itself not), after checking the arguments as ``pydicom``'s ``set_pixel_data`` would."""
    if pixels.ndim != 2:
        raise ValueError(f"write_dicom writes one greyscale frame: pixels must be 2-D, got {pixels.shape}.")
    if pixels.dtype not in (np.uint8, np.uint16, np.int16):
        raise ValueError(f"pixels must be uint8, uint16 or int16 stored values, got {pixels.dtype}.")
    modality = modality.upper()
    if modality not in SOP_CLASS_BY_MODALITY:
        raise ValueError(f"modality {modality!r} not supported; use one of {sorted(SOP_CLASS_BY_MODALITY)}.")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"write_dicom writes greyscale: photometric must be MONOCHROME1 or MONOCHROME2, "
                         f"got {photometric!r}.")
    bits_allocated = pixels.dtype.itemsize * 8
    if bits_stored is None:
        bits_stored = bits_allocated
    bits_stored = int(bits_stored)
    if not 0 < bits_stored <= bits_allocated:
        raise ValueError(f"bits_stored must be 1 to {bits_allocated} for {pixels.dtype} pixels, got {bits_stored}.")
    signed = pixels.dtype.kind == "i"
    lowest, highest = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
    if pixels.size and (int(pixels.min()) < lowest or int(pixels.max()) > highest):
        raise ValueError(
            f"pixel values span [{int(pixels.min())}, {int(pixels.max())}], outside [{lowest}, {highest}] that "
            f"bits_stored={bits_stored} allows; raise bits_stored or rescale the values."
        )
    sop_class = SOP_CLASS_BY_MODALITY[modality]
    sop_uid = sop_uid or stable_uid(series_uid, instance_number)
    spacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    ds: dict[str, Any] = {
        "SpecificCharacterSet": "ISO_IR 100",
        "SOPClassUID": sop_class,
        "SOPInstanceUID": sop_uid,
        "Modality": modality,
        "PatientID": patient_id,
        "PatientName": patient_name if patient_name is not None else patient_id,
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid,
        "StudyDate": study_date,
        "SeriesDate": study_date,
        "ContentDate": study_date,
        "StudyTime": "120000",
        "SeriesTime": "120000",
        "ContentTime": "120000",
        "StudyID": "1",
        "AccessionNumber": "",
        "ReferringPhysicianName": "",
        "SeriesNumber": 1,
        "InstanceNumber": int(instance_number),
        "SeriesDescription": series_description,
        "Manufacturer": "medimg-tutorials generator",
        "PixelSpacing": spacing,
    }
    if modality in ("CT", "MR"):
        z = float(slice_position if slice_position is not None else instance_number)
        ds.update(
            ImageOrientationPatient=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            ImagePositionPatient=[0.0, 0.0, z],
            SliceLocation=z,
            FrameOfReferenceUID=stable_uid(study_uid, "frame-of-reference"),
        )
        if slice_thickness is not None:
            ds["SliceThickness"] = float(slice_thickness)
    if modality in ("DX", "CR"):
        ds["ImagerPixelSpacing"] = spacing
    if modality == "DX":
        ds["PresentationIntentType"] = "FOR PRESENTATION"
    if rescale_slope is not None or rescale_intercept is not None:
        ds["RescaleSlope"] = float(rescale_slope if rescale_slope is not None else 1.0)
        ds["RescaleIntercept"] = float(rescale_intercept if rescale_intercept is not None else 0.0)
        ds["RescaleType"] = "HU" if modality == "CT" else "US"
    if window is not None:
        ds["WindowCenter"] = float(window[0])
        ds["WindowWidth"] = float(window[1])
    ds.update(
        Rows=int(pixels.shape[0]),
        Columns=int(pixels.shape[1]),
        SamplesPerPixel=1,
        PhotometricInterpretation=photometric,
        BitsAllocated=bits_allocated,
        BitsStored=bits_stored,
        HighBit=bits_stored - 1,
        PixelRepresentation=int(signed),
    )
    for keyword, value in (extra or {}).items():
        if keyword not in _KEYWORD_TAGS:
            raise ValueError(f"extra: {keyword!r} is not a DICOM keyword (see pydicom.datadict.keyword_dict).")
        if _KEYWORD_TAGS[keyword] >> 16 == 0x0002 or keyword == "PixelData":
            raise ValueError(f"extra: {keyword} is written by write_dicom itself and cannot be set through extra.")
        ds[keyword] = value
    return ds


#: Tag of every public DICOM keyword (pydicom's dictionary).
_KEYWORD_TAGS: Mapping[str, int] = keyword_dict
#: Text encoding of the written data sets (SpecificCharacterSet ISO_IR 100, Latin-1).
_TEXT_ENCODINGS = convert_encodings(["ISO_IR 100"])
#: Encoded elements already seen, by (keyword, repr(value)): most elements of a series repeat from
#: file to file, and building and encoding one through pydicom costs tens of microseconds.
_ENCODED: dict[tuple[str, str], bytes] = {}
_ENCODED_MAX = 4096
_PLAIN_TYPES = (str, UID, int, float, bytes, type(None))
#: VRs whose plain values the short path encodes itself: (pattern a value matches in full, pad byte). The
#: patterns admit only what pydicom accepts silently (ASCII, within the VR's length, no backslash).
_SHORT_TEXT: dict[str, tuple[re.Pattern[str], bytes]] = {
    "UI": (re.compile(r"(?=.{1,64}$)[0-9]+(\.[0-9]+)*"), b"\x00"),
    "CS": (re.compile(r"[A-Z0-9_][A-Z0-9_ ]{0,15}"), b" "),
    "DA": (re.compile(r"[0-9]{8}"), b" "),
    "TM": (re.compile(r"[0-9]{6}"), b" "),
    "SH": (re.compile(r"[!-\[\]-~][ -\[\]-~]{0,15}"), b" "),
    "LO": (re.compile(r"[!-\[\]-~][ -\[\]-~]{0,63}"), b" "),
    "IS": (re.compile(r"-?[0-9]{1,10}"), b" "),
    "DS": (re.compile(r"[-+0-9.e]{1,16}"), b" "),
}


def _short_text(vr: str, value: Any) -> str | None:
    """``value`` as the text pydicom writes for it, when it is one of the plain cases of the short path."""
    if vr == "IS":
        text = str(value) if type(value) is int and -(2**31) <= value < 2**31 else ""
    elif vr == "DS":
        text = repr(value) if type(value) is float else ""  # pydicom writes a float DS as repr(float)
    else:
        text = value if isinstance(value, str) else ""
    return text if _SHORT_TEXT[vr][0].fullmatch(text) else None


def _short_path(tag: int, vr: str, value: Any) -> bytes | None:
    """The element's bytes for plain valid values of the common VRs (2-byte length form), else None."""
    if vr not in _SHORT_TEXT:
        return None
    texts = [_short_text(vr, v) for v in (value if type(value) is list else [value])]
    if not texts or None in texts:
        return None
    data = "\\".join(texts).encode("ascii")  # type: ignore[arg-type]
    if len(data) % 2:
        data += _SHORT_TEXT[vr][1]
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(data)) + data


@lru_cache(maxsize=None)
def _tag_vr(keyword: str) -> tuple[int, str]:
    """(tag, VR) of a public keyword, from pydicom's dictionary."""
    tag = _KEYWORD_TAGS[keyword]
    return tag, dictionary_VR(tag)


def _element_bytes(keyword: str, value: Any, context: Dataset | None = None) -> bytes:
    """One element exactly as pydicom writes it in Explicit VR Little Endian (Latin-1 text).

    Plain valid UIDs, codes, dates, times, short texts and numbers are encoded here (a test holds them
    byte-equal to pydicom's output); everything else goes through pydicom's own ``DataElement`` and
    ``write_data_element``. Values of plain types (str, int, float, None and lists of them) are cached.
    An ambiguous VR ("US or SS") is resolved by pydicom from ``context`` (PixelRepresentation...).
    """
    tag, vr = _tag_vr(keyword)
    plain = all(type(v) in _PLAIN_TYPES for v in value) if type(value) is list else type(value) in _PLAIN_TYPES
    key = (keyword, repr(value)) if plain and len(vr) == 2 else None
    if key is not None and (hit := _ENCODED.get(key)) is not None:
        return hit
    encoded = _short_path(tag, vr, value) if key is not None else None
    if encoded is None:
        elem = DataElement(tag, vr, value)
        if len(vr) != 2:
            elem = correct_ambiguous_vr_element(elem, context or Dataset(), True)
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_data_element(fp, elem, _TEXT_ENCODINGS)
        encoded = fp.getvalue()
    if key is not None:
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        _ENCODED[key] = encoded
    return encoded


def write_dicom(
    path: str | Path,
    pixels: np.ndarray,
    *,
    modality: str,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str | None = None,
    instance_number: int = 1,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    rescale_slope: float | None = None,
    rescale_intercept: float | None = None,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    window: tuple[float, float] | None = None,
    slice_position: float | None = None,
    slice_thickness: float | None = None,
    patient_name: str | None = None,
    study_date: str = "20240101",
    series_description: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a single-frame greyscale image as an uncompressed (Explicit VR Little Endian) DICOM file.

    ``pixels`` are the *stored* values (``uint8``, ``uint16`` or ``int16``, shape ``(rows, cols)``);
    physical value = stored * ``rescale_slope`` + ``rescale_intercept`` (CT: HU). ``pixel_spacing`` is
    (row, column) spacing in mm. ``window`` is (center, width) in physical units. ``slice_position``
    (mm along the slice normal) sets ImagePositionPatient for axial / short-axis stacks. ``extra``
    sets any further attributes by keyword (sequences too), last. Returns ``path``.

    The file is byte for byte what ``Dataset.save_as(path, enforce_file_format=True)`` writes for the
    same data set (a test checks it), but each element is encoded once by pydicom and its bytes
    reused while it repeats, so writing a series costs a tenth of building and saving a ``Dataset``
    per file: generated sets are limited by their pixels, not their headers.
    """
    pixels = np.asarray(pixels)
    elements = _image_elements(
        pixels, modality=modality, patient_id=patient_id, study_uid=study_uid, series_uid=series_uid,
        sop_uid=sop_uid, instance_number=instance_number, pixel_spacing=pixel_spacing,
        rescale_slope=rescale_slope, rescale_intercept=rescale_intercept, photometric=photometric,
        bits_stored=bits_stored, window=window, slice_position=slice_position, slice_thickness=slice_thickness,
        patient_name=patient_name, study_date=study_date, series_description=series_description, extra=extra,
    )
    context = None
    if any(len(_tag_vr(k)[1]) != 2 for k in elements):
        context = Dataset()
        context.PixelRepresentation, context.BitsAllocated = elements["PixelRepresentation"], elements["BitsAllocated"]
    body = [_element_bytes(k, v, context) for k, v in sorted(elements.items(), key=lambda kv: _tag_vr(kv[0])[0])]
    meta = b"".join(
        _element_bytes(k, v)
        for k, v in (
            ("FileMetaInformationVersion", b"\x00\x01"),
            ("MediaStorageSOPClassUID", elements["SOPClassUID"]),
            ("MediaStorageSOPInstanceUID", elements["SOPInstanceUID"]),
            ("TransferSyntaxUID", ExplicitVRLittleEndian),
            ("ImplementationClassUID", PYDICOM_IMPLEMENTATION_UID),
            ("ImplementationVersionName", f"PYDICOM {'.'.join(pydicom.__version_info__)}"),
        )
    )
    data = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    if len(data) % 2:
        data += b"\x00"
    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB" if pixels.dtype.itemsize == 1 else b"OW", 0, len(data))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"".join([bytes(128), b"DICM", _element_bytes("FileMetaInformationGroupLength", len(meta)), meta,
                          *body, pixel_header]))
        f.write(data)
    return path


def today_da() -> str:
    """Today's date as a DICOM DA string (YYYYMMDD)."""
    return _dt.date.today().strftime("%Y%m%d")


# --- Reading files -------------------------------------------------------------------------------

#: Keywords of the elements that can hold an image.
PIXEL_KEYWORDS: tuple[str, ...] = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

#: Elements any real DICOM object has at least one of (used to accept a file read with ``force``).
_IDENTIFYING_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID",
                         "SeriesInstanceUID", "PatientID", *PIXEL_KEYWORDS)

_UNDEFINED_LENGTH = 0xFFFFFFFF

#: File signatures of common non-DICOM files, for the NotDicomError message: (magic, offset, what, advice).
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image", "open it with PIL.Image.open (or cv2.imread)"),
    (b"\xff\xd8\xff", 0, "a JPEG image", "open it with PIL.Image.open (or cv2.imread)"),
    (b"GIF8", 0, "a GIF image", "open it with PIL.Image.open"),
    (b"II*\x00", 0, "a TIFF image", "open it with PIL.Image.open or tifffile"),
    (b"MM\x00*", 0, "a TIFF image", "open it with PIL.Image.open or tifffile"),
    (b"\x1f\x8b", 0, "a gzip archive",
     "decompress it first (gzip -d FILE, or gzip.open in Python), then read the result"),
    (b"PK\x03\x04", 0, "a zip archive", "unzip it first (zipfile.ZipFile(...).extractall) and read the files inside"),
    (b"%PDF", 0, "a PDF document", "it is not an image file"),
    (b"\x93NUMPY", 0, "a NumPy .npy array", "load it with numpy.load"),
    (b"\x89HDF", 0, "an HDF5 file", "open it with h5py"),
    (b"NRRD", 0, "an NRRD volume", "read it with SimpleITK or pynrrd"),
    (b"n+1\x00", 344, "a NIfTI volume", "read it with nibabel.load or SimpleITK"),
    (b"ni1\x00", 344, "a NIfTI header", "read it with nibabel.load"),
)


def _sniff(head: bytes) -> tuple[str, str] | None:
    """What a file that is not DICOM looks like, from its first bytes: (what, advice) or None."""
    for magic, offset, what, advice in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return what, advice
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "a text file", "check that you picked the image file and not a README, CSV or label file"
    return None


def _not_dicom(path: Path, what: str, advice: str) -> NotDicomError:
    """A NotDicomError whose message names the file, what it looks like and what to do."""
    return NotDicomError(f"{path} is not a DICOM file: it looks like {what}. To use it, {advice}.")


def _truncated(path: Path, detail: str) -> NotDicomError:
    """A NotDicomError for a file that stops before its data set ends."""
    return NotDicomError(
        f"{path} is a truncated DICOM file: {detail}. The copy is incomplete (an interrupted download or "
        "copy, or a full disk): fetch or copy the file again and compare its size with the source."
    )


def _check_complete(
    ds: Dataset, path: Path, size: int, caught: Iterable[warnings.WarningMessage], whole_file: bool
) -> None:
    """Raise NotDicomError when the data set read from ``path`` (``size`` bytes) is cut short.

    pydicom reads a truncated file silently in most places, so this looks for the traces: its
    end-of-file warning, an empty data set, a last element that runs past the end of the file (or,
    for a whole-file read, a few bytes left over that cannot hold an element), a file meta that
    names a SOP class the data set never reaches, and image tags without the pixel data after them.
    """
    for w in caught:
        if "End of file reached" in str(w.message):
            raise _truncated(path, "an encapsulated (compressed) element runs past the end of the file")
    if len(ds) == 0:
        raise _truncated(path, f"it holds a DICOM header but no data set ({size} bytes)")
    last = ds.get_item(max(ds.keys()))
    if isinstance(last, RawDataElement) and last.length != _UNDEFINED_LENGTH and last.value_tell is not None:
        end = last.value_tell + last.length
        if end > size or (whole_file and 0 < size - end < 8):
            name = pydicom.datadict.keyword_for_tag(last.tag) or str(last.tag)
            if end > size:
                detail = f"{name} declares {last.length} bytes but the file ends {end - size} bytes early"
                raise _truncated(path, detail)
            raise _truncated(path, f"it ends {size - end} bytes into the element after {name}")
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPClassUID" in meta and "SOPClassUID" not in ds and not _is_dicomdir(ds):
        raise _truncated(path, "its file meta names a SOP class but the data set ends before its SOP Class UID")
    if whole_file and "Rows" in ds and "Columns" in ds and not has_pixel_data(ds):
        raise _truncated(path, "it has image tags (Rows, Columns) but ends before its pixel data")


def _fill_transfer_syntax(ds: Dataset) -> None:
    """Set a missing Transfer Syntax UID from how pydicom decoded the file (files without a meta header)."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if "TransferSyntaxUID" in meta:
        return
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        return
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def read_dicom(path: str | Path, stop_before_pixels: bool = False) -> Dataset:
    """Read one DICOM file (pixel data left encoded); NotDicomError for a non-DICOM or truncated file.

    Files without the 128-byte preamble and ``DICM`` prefix (older implicit-VR files, such as some
    RT structure sets) are read with ``force=True`` as a fallback, and only accepted when the result
    holds real DICOM elements (a SOP Class or Instance UID, a Modality, study/series UIDs or pixel
    data); their missing Transfer Syntax UID is filled in from the encoding found. Truncation is
    detected when the last element read runs past the end of the file, which for
    ``stop_before_pixels=True`` only covers the header.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise FileNotFoundError(f"{path} does not exist (or is not a file): check the path and the data folder.")
    size = st.st_size
    if size == 0:
        raise NotDicomError(f"{path} is empty (0 bytes): copy or download the file again.")
    forced = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        except InvalidDicomError:
            with path.open("rb") as fh:
                head = fh.read(352)
            if size < 132 and not head.strip(b"\0"):
                raise _truncated(path, f"it ends inside the 128-byte preamble ({size} bytes)") from None
            sniffed = _sniff(head)
            if sniffed is not None:
                raise _not_dicom(path, *sniffed) from None
            forced = True
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
            except Exception as exc:  # pydicom raises many kinds on garbage input
                raise NotDicomError(
                    f"{path} is not a DICOM file: it has no 'DICM' prefix and could not be parsed as a "
                    f"headerless DICOM data set either ({type(exc).__name__}: {exc}). Check that this is "
                    "the image file you meant; if it should be DICOM, it may be truncated: copy it again."
                ) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except Exception as exc:  # EOFError, struct.error, BytesLengthException, ...: the data set is cut
            raise _truncated(path, f"pydicom stopped with {type(exc).__name__}: {exc}") from None
    if forced and not any(k in ds for k in _IDENTIFYING_KEYWORDS):
        raise NotDicomError(
            f"{path} is not a DICOM file: it has no 'DICM' prefix and no DICOM elements (no SOP Class UID, "
            "Modality or pixel data) could be parsed from it. Check that this is the image file you meant; "
            "if it should be DICOM, it may be truncated or damaged: copy it again from the source."
        )
    _check_complete(ds, path, size, caught, whole_file=not stop_before_pixels)
    for w in caught:  # hand on pydicom's other warnings (invalid values and the like)
        if "End of file reached" not in str(w.message):
            warnings.warn(w.message, stacklevel=2)
    _fill_transfer_syntax(ds)
    return ds


def read_dicom_bytes(data: bytes, name: str = "upload.dcm") -> Dataset:
    """A DICOM file received as bytes (an upload, an HTTP request) read with all of :func:`read_dicom`'s checks;
    messages name the file ``name``. Pixel data stay in memory, so the dataset outlives the temporary file."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="medimg-") as tmp:
        path = Path(tmp) / (Path(name).name or "upload.dcm")
        path.write_bytes(data)
        try:
            ds = read_dicom(path)
        except DicomError as exc:
            raise type(exc)(str(exc).replace(str(path), name)) from None
    ds.filename = name
    return ds


def _as_dataset(ds_or_path: Dataset | str | Path, stop_before_pixels: bool = False) -> Dataset:
    """The dataset itself, or the file at the path read with :func:`read_dicom`."""
    if isinstance(ds_or_path, Dataset):
        return ds_or_path
    return read_dicom(ds_or_path, stop_before_pixels=stop_before_pixels)


def _label(ds: Dataset) -> str:
    """A name for messages: the file's path with the home folder as ``~``, or 'the dataset' for an in-memory one."""
    from helpers.config import display_path

    filename = getattr(ds, "filename", None)
    if isinstance(filename, (str, os.PathLike)) and str(filename):
        return display_path(Path(filename))
    return "the dataset"


def has_pixel_data(ds: Dataset) -> bool:
    """True when the dataset holds Pixel Data, Float Pixel Data or Double Float Pixel Data."""
    return any(k in ds for k in PIXEL_KEYWORDS)


# --- Transfer syntaxes and decoders --------------------------------------------------------------

_LIBJPEG = "pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pylibjpeg pylibjpeg-openjpeg"

#: The pip packages that add a decoder for each compressed transfer syntax pydicom knows.
DECODER_PACKAGES: dict[str, str] = {
    pydicom.uid.JPEGBaseline8Bit: _LIBJPEG,
    pydicom.uid.JPEGExtended12Bit: _LIBJPEG,
    pydicom.uid.JPEGLossless: _LIBJPEG,
    pydicom.uid.JPEGLosslessSV1: _LIBJPEG,
    pydicom.uid.JPEGLSLossless: _LIBJPEG,
    pydicom.uid.JPEGLSNearLossless: _LIBJPEG,
    pydicom.uid.JPEG2000Lossless: _OPENJPEG,
    pydicom.uid.JPEG2000: _OPENJPEG,
    pydicom.uid.HTJ2KLossless: _OPENJPEG,
    pydicom.uid.HTJ2KLosslessRPCL: _OPENJPEG,
    pydicom.uid.HTJ2K: _OPENJPEG,
    pydicom.uid.RLELossless: "pylibjpeg pylibjpeg-rle",
}


def _syntax_name(uid: UID) -> str:
    """'JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)', or the bare UID when unknown."""
    return f"{uid.name} ({uid})" if uid.name != str(uid) else f"'{uid}'"


def _unsupported_advice(uid: UID) -> str:
    """What to do with pixel data in a transfer syntax no pydicom decoder handles."""
    if uid in pydicom.uid.MPEGTransferSyntaxes or str(uid).startswith("1.2.840.10008.1.2.4.10"):
        return ("this is video (MPEG / H.264 / HEVC): extract frames with ffmpeg from the encapsulated "
                "stream, or export the frames as images on the PACS/modality")
    if str(uid).startswith("1.2.840.10008.1.2.4.11"):
        return ("pydicom 3.0 has no JPEG XL decoder: convert the file first, e.g. `dcmcjpeg`/`dcmdjpeg` "
                "(DCMTK) or `gdcmconv --raw in.dcm out.dcm` (GDCM), or use a pydicom release that adds one")
    if str(uid) in ("1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95"):
        return "the pixel data is referenced on a JPIP server, not stored in the file: fetch it from the server"
    return ("convert the file to an uncompressed transfer syntax first, e.g. `gdcmconv --raw in.dcm out.dcm` "
            "(GDCM) or `dcmdjpeg`/`dcmdrle` (DCMTK), or check that the Transfer Syntax UID is not a typo")


def available_decoders(transfer_syntax: str) -> tuple[str, ...]:
    """Installed pydicom decoding plugins for a transfer syntax UID; ('pydicom',) for uncompressed ones.

    Raises UnsupportedTransferSyntaxError when pydicom has no decoder at all for the syntax.
    """
    from pydicom.pixels.decoders.base import get_decoder

    uid = UID(str(transfer_syntax))
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise UnsupportedTransferSyntaxError(
            f"Pixel data in transfer syntax {_syntax_name(uid)} cannot be decoded: no pydicom decoder "
            f"supports it. To use it, {_unsupported_advice(uid)}."
        ) from None
    if not uid.is_encapsulated:
        return ("pydicom",)
    return tuple(decoder.available_plugins)


def require_decoder(transfer_syntax: str) -> tuple[str, ...]:
    """The plugins that will decode a transfer syntax; MissingDecoderError naming the pip package if none."""
    plugins = available_decoders(transfer_syntax)
    if plugins:
        return plugins
    uid = UID(str(transfer_syntax))
    package = DECODER_PACKAGES.get(uid, "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg")
    raise MissingDecoderError(
        f"Pixel data is compressed as {_syntax_name(uid)} and no installed plugin can decode it. "
        f"Install one with `pip install {package}` (or `pip install python-gdcm`), then restart the "
        "Python kernel so pydicom finds it."
    )


def _transfer_syntax(ds: Dataset) -> UID | None:
    """The dataset's Transfer Syntax UID, or None when its file meta has none."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if not ts:
        return None
    return ts if isinstance(ts, UID) else UID(str(ts))


# --- Pixels --------------------------------------------------------------------------------------

#: Uncompressed transfer syntaxes: pydicom decodes them itself, no plugin needed.
_NATIVE_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                              pydicom.uid.DeflatedExplicitVRLittleEndian})

_COLOUR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420",
                        "PALETTE COLOR", "HSV", "ARGB", "CMYK")

_NO_PIXEL_ADVICE: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.481.3": "an RT Structure Set holds contours (ROIContourSequence) drawn on the CT "
                                     "series it references, not an image: load that series for pixels",
    "1.2.840.10008.1.3.10": "a DICOMDIR is an index of other files: read it with read_dicomdir(path)",
    "1.2.840.10008.5.1.4.1.1.481.5": "an RT Plan holds beams and doses, not an image",
}


def _photometric(ds: Dataset) -> str:
    """Photometric Interpretation in upper case ('' when absent)."""
    return str(ds.get("PhotometricInterpretation", "") or "").strip().upper()


def is_colour(ds: Dataset) -> bool:
    """True when the image is colour (RGB, YBR, palette colour), not greyscale."""
    return int(ds.get("SamplesPerPixel", 1) or 1) > 1 or _photometric(ds) in _COLOUR_PHOTOMETRICS


def _decode(ds: Dataset, allow_rgb: bool, colour: bool | None = None) -> np.ndarray:
    """Decoded stored values in their native dtype: (rows, cols), (frames, rows, cols) [, 3 for colour]."""
    where = _label(ds)
    if not has_pixel_data(ds):
        sop = str(ds.get("SOPClassUID", "") or "")
        sop_name = UID(sop).name if sop else "unknown SOP class"
        if "DirectoryRecordSequence" in ds:
            sop = "1.2.840.10008.1.3.10"
        if "Image Storage" in sop_name:
            advice = (
                f"its SOP class ({sop_name}) says it is an image, so the file is probably truncated before "
                "its pixel data, or was read with stop_before_pixels=True, or had its pixels stripped: "
                "read it again with read_dicom, else copy the file again from the source"
            )
        else:
            advice = _NO_PIXEL_ADVICE.get(sop) or (
                f"it is not an image ({sop_name}, Modality {ds.get('Modality', '?')}): pick image files, for "
                "example by the Modality column of read_folder(folder)"
            )
        raise NoPixelDataError(f"{where} has no pixel data: {advice}.")
    if colour is None:
        colour = is_colour(ds)
    if colour and not allow_rgb:
        raise UnsupportedImageError(
            f"{where} is a colour image ({_photometric(ds) or 'SamplesPerPixel > 1'}); this function expects "
            "greyscale. Pass allow_rgb=True to get an (..., 3) RGB array, or convert it to grey yourself "
            "(for screen captures of greyscale scans the three channels are usually equal)."
        )
    ts = _transfer_syntax(ds)
    if ts is None:
        raise UnsupportedTransferSyntaxError(
            f"{where} has no Transfer Syntax UID in its file meta, so its pixel data cannot be interpreted. "
            "Read it with helpers.dicom.read_dicom (which infers it), or set "
            "ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian if it is uncompressed."
        )
    if ts not in _NATIVE_SYNTAXES and "PixelData" in ds:
        require_decoder(ts)
    fast = _native_single_frame(ds, ts) if not colour else None
    if fast is not None:
        return fast
    try:
        arr = ds.pixel_array
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntaxError(f"{where}: {exc}. To use it, {_unsupported_advice(ts)}.") from None
    except RuntimeError as exc:
        if "missing dependencies" in str(exc):
            package = DECODER_PACKAGES.get(ts, "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg")
            raise MissingDecoderError(
                f"{where}: {exc}. Install a decoder with `pip install {package}`, then restart the kernel."
            ) from None
        raise DicomDecodeError(_decode_message(where, ts, exc)) from exc
    except MemoryError:
        raise
    except Exception as exc:  # plugins raise ValueError, RuntimeError and their own types on bad data
        raise DicomDecodeError(_decode_message(where, ts, exc)) from exc
    if _photometric(ds) == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    return arr


_LITTLE_ENDIAN_NATIVE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian})


def _native_single_frame(ds: Dataset, ts: UID) -> np.ndarray | None:
    """Stored values of an uncompressed little-endian single-frame greyscale image, read straight from the
    bytes (no copy); None whenever any condition is off, so pydicom's decoder handles everything else.

    The common case of a folder ingest (one CT / MR slice a file), done without pydicom's general
    decoding machinery; gives the same values (tests compare the two), with the unused high bits masked
    (unsigned) or sign-extended (signed) as pydicom does.
    """
    if ts not in _LITTLE_ENDIAN_NATIVE or "PixelData" not in ds:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        allocated, stored_bits = int(ds.BitsAllocated), int(ds.BitsStored)
        signed = int(ds.PixelRepresentation) == 1
        frames = ds.get("NumberOfFrames")
        samples = ds.get("SamplesPerPixel")
    except (AttributeError, TypeError, ValueError):
        return None
    if allocated not in (8, 16) or not 0 < stored_bits <= allocated or (frames not in (None, "") and int(frames) != 1):
        return None
    if samples not in (None, "") and int(samples) != 1:
        return None
    data = ds.PixelData
    n = rows * cols * (allocated // 8)
    if not isinstance(data, (bytes, bytearray)) or len(data) not in (n, n + 1):
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    arr = np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    shift = allocated - stored_bits
    if shift:
        arr = (arr << shift) >> shift if signed else arr & dtype.type((1 << stored_bits) - 1)
    return arr


def _decode_message(where: str, ts: UID, exc: Exception) -> str:
    """The DicomDecodeError message: what failed and what to try."""
    return (
        f"Decoding the pixel data of {where} ({ts.name}) failed: {type(exc).__name__}: {exc}. The pixel data "
        "is corrupt or disagrees with the image tags (Rows, Columns, BitsAllocated, NumberOfFrames). Check "
        "the file opens in a DICOM viewer; if not, copy it again from the source."
    )


def _first_number(value: Any) -> float | None:
    """The first number of a (possibly multi-valued) DICOM value, or None."""
    if isinstance(value, (MultiValue, list, tuple)):
        if len(value) == 0:
            return None
        value = value[0]
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _functional_group(ds: Dataset, sequence: str, keyword: str, frame: int = 0) -> Any:
    """A value from an enhanced multi-frame file's per-frame (else shared) functional groups, or None."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups)
        if not items or index >= len(items):
            continue
        inner = items[index].get(sequence)
        if inner and keyword in inner[0]:
            return inner[0][keyword].value
    return None


def _rescale(ds: Dataset, n_frames: int) -> tuple[float | np.ndarray, float | np.ndarray, str]:
    """(slope, intercept, source) taking stored values to physical units; per-frame arrays when they differ."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        slope = _first_number(ds.get("RescaleSlope"))
        intercept = _first_number(ds.get("RescaleIntercept"))
        return (1.0 if slope is None else slope), (0.0 if intercept is None else intercept), "rescale"
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        pairs = []
        for frame in range(n_frames):
            s = _first_number(_functional_group(ds, "PixelValueTransformationSequence", "RescaleSlope", frame))
            i = _first_number(_functional_group(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame))
            pairs.append((s, i))
        if any(s is not None or i is not None for s, i in pairs):
            slopes = np.array([1.0 if s is None else s for s, _ in pairs])
            intercepts = np.array([0.0 if i is None else i for _, i in pairs])
            if np.all(slopes == slopes[0]) and np.all(intercepts == intercepts[0]):
                return float(slopes[0]), float(intercepts[0]), "functional groups"
            per_frame = (n_frames, 1, 1)
            return (slopes.astype(np.float32).reshape(per_frame), intercepts.astype(np.float32).reshape(per_frame),
                    "functional groups")
    if "DoseGridScaling" in ds:
        return float(ds.DoseGridScaling), 0.0, "dose grid scaling"
    return 1.0, 0.0, "none"


def pixels(
    ds_or_path: Dataset | str | Path, physical: bool = True, *, allow_rgb: bool = False
) -> np.ndarray:
    """Pixel values as float32 in physical units (CT: HU; RT dose: Gy), or stored values if not ``physical``.

    Shape (rows, cols), or (frames, rows, cols) for multi-frame files. Physical values are
    ``stored * RescaleSlope + RescaleIntercept`` (top level, or the enhanced multi-frame functional
    groups, per frame), the Modality LUT when the file has one, ``stored * DoseGridScaling`` for RT
    dose, and the stored values otherwise. **Pitfall:** a CT file without rescale tags warns, since
    its stored values may be offset from HU (commonly by 1024). Unused high bits are ignored
    (BitsStored < BitsAllocated) and the sign applied (PixelRepresentation); integers above 2**24
    (32-bit data) lose precision in float32. Colour images raise UnsupportedImageError unless
    ``allow_rgb=True``, which returns RGB (..., 3) values without rescale. Compressed data decodes
    through pydicom's plugins (see :func:`require_decoder`); uncompressed single frames are read
    straight from the bytes.
    """
    ds = _as_dataset(ds_or_path)
    colour = is_colour(ds)
    stored = _decode(ds, allow_rgb, colour)
    if colour or not physical:
        return stored.astype(np.float32)
    if ds.get("ModalityLUTSequence"):
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    n_frames = stored.shape[0] if stored.ndim == 3 else 1
    slope, intercept, source = _rescale(ds, n_frames)
    if source == "none" and str(ds.get("Modality", "")).upper() == "CT":
        warnings.warn(
            f"{_label(ds)} is CT but has no RescaleSlope/RescaleIntercept: returning stored values, which are "
            "NOT Hounsfield units if the scanner stored them offset (commonly by +1024, so air reads about 0 "
            "instead of -1000). Check the range (air should be near -1000 HU) before applying HU windows.",
            UserWarning,
            stacklevel=2,
        )
    # One pass where possible: the int -> float32 conversion happens inside the ufunc.
    if isinstance(slope, float) and slope == 1.0:
        if isinstance(intercept, float) and intercept == 0.0:
            return stored.astype(np.float32)
        return np.add(stored, np.float32(intercept) if isinstance(intercept, float) else intercept, dtype=np.float32)
    out = np.multiply(stored, np.float32(slope) if isinstance(slope, float) else slope, dtype=np.float32)
    if not (isinstance(intercept, float) and intercept == 0.0):
        out += intercept
    return out


# --- Windowing and display -----------------------------------------------------------------------

#: Common CT windows (center, width) in HU. Brain, subdural, bone, lung, mediastinum and soft tissue
#: follow Radiopaedia's "Windowing (CT)" article (bone: its W 1800 / L 400; temporal bone reading uses
#: wider, e.g. (600, 2800)); stroke (40, 40) is the "stroke window" of Turner & Holdsworth, Br J Radiol
#: 2011;84:1061 (doi:10.1259/bjr/99730184). Lev et al., Radiology 1999;213:150 used a narrower (32, 8).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "stroke": (40.0, 40.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (50.0, 400.0),
}


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map HU to [0, 1] for display with a window (center, width), e.g. brain = (40, 80)."""
    lo, hi = center - width / 2, center + width / 2
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def file_window(ds: Dataset) -> tuple[float, float] | None:
    """The file's own (WindowCenter, WindowWidth) in physical units (first pair if several), or None."""
    center = _first_number(ds.get("WindowCenter"))
    width = _first_number(ds.get("WindowWidth"))
    if center is None or width is None:
        center = _first_number(_functional_group(ds, "FrameVOILUTSequence", "WindowCenter"))
        width = _first_number(_functional_group(ds, "FrameVOILUTSequence", "WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    return center, width


def display_array(ds_or_path: Dataset | str | Path, *, allow_rgb: bool = False) -> np.ndarray:
    """Image scaled to [0, 1] for display (float32): file window else min-max, MONOCHROME1 inverted.

    MONOCHROME1 means the lowest value is shown white (many CR/DX radiographs); it is inverted here
    so bone is bright in every image. The window is the file's own (:func:`file_window`); without
    one the image is min-max scaled. VOI LUT sequences and sigmoid VOI functions are not applied.
    Colour images raise UnsupportedImageError unless ``allow_rgb``, which scales RGB by its bit depth.
    """
    ds = _as_dataset(ds_or_path)
    values = pixels(ds, physical=True, allow_rgb=allow_rgb)
    if is_colour(ds):
        top = float(2 ** int(ds.get("BitsStored", 8) or 8) - 1)
        return np.clip(values / top, 0.0, 1.0).astype(np.float32)
    win = file_window(ds)
    if win is not None:
        out = window(values, *win)
    else:
        lo, hi = (float(np.nanmin(values)), float(np.nanmax(values))) if values.size else (0.0, 0.0)
        out = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    if _photometric(ds) == "MONOCHROME1":
        out = 1.0 - out
    return np.asarray(out, dtype=np.float32)


def unit_image(ds_or_path: Dataset | str | Path) -> np.ndarray:
    """A greyscale image as float32 (H, W) in [0, 1]: stored / (2**BitsStored - 1), MONOCHROME1 inverted.

    Independent of the file's window and of the image's own range (unlike :func:`display_array`, right for
    display but metadata-dependent): only BitsStored, PixelRepresentation (signed data are offset by
    2**(BitsStored-1) first) and PhotometricInterpretation count, so a value means the same brightness in
    every radiograph, bright = dense. Rescale tags are ignored (radiographs store brightness, not physical
    units). Multi-frame and colour images raise UnsupportedImageError.
    """
    ds = _as_dataset(ds_or_path)
    stored = pixels(ds, physical=False)
    if stored.ndim != 2:
        raise UnsupportedImageError(
            f"{_label(ds)} has shape {stored.shape}; unit_image takes one greyscale frame. Pick a frame with "
            "pixels(ds, physical=False)[k] and scale it yourself."
        )
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    low = -(2.0 ** (bits - 1)) if int(ds.get("PixelRepresentation", 0) or 0) == 1 else 0.0
    image = (stored - np.float32(low)) / np.float32(2.0**bits - 1)
    np.clip(image, 0.0, 1.0, out=image)
    if str(ds.get("PhotometricInterpretation", "") or "").strip().upper() == "MONOCHROME1":
        np.subtract(np.float32(1.0), image, out=image)
    return image.astype(np.float32, copy=False)


#: File suffixes read as pictures (Pillow) rather than DICOM by :func:`read_unit_image`.
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def pil_unit(img: Any) -> np.ndarray:
    """An open PIL image as greyscale float32 (H, W) in [0, 1] (16-bit images keep their depth; colour -> luma)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.float32) / np.float32(65535.0)
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr / np.float32(top), 0.0, 1.0)
    return np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255.0)


def read_unit_image(path: str | Path, intensity: str = "bits") -> np.ndarray:
    """One image file at its own size as float32 (H, W) in [0, 1], bright = dense: PNG/JPEG/TIFF by suffix with
    :func:`pil_unit`, anything else as DICOM with :func:`unit_image` (``intensity="bits"``) or the file's window
    (:func:`display_array`, ``intensity="window"``). Multi-frame files raise UnsupportedImageError."""
    path = Path(path)
    if path.suffix.lower() in PIL_SUFFIXES:
        from PIL import Image

        with Image.open(path) as img:
            return pil_unit(img)
    if intensity not in ("bits", "window"):
        raise ValueError(f"intensity={intensity!r}; use 'bits' (stored / bit depth) or 'window' (the file's window).")
    ds = read_dicom(path)
    image = display_array(ds) if intensity == "window" else unit_image(ds)
    if image.ndim != 2:
        raise UnsupportedImageError(
            f"{path} holds {image.shape[0]} frames; a single-frame image is needed. Pick a frame with "
            "helpers.dicom.pixels(path)[k] and pass arrays instead."
        )
    return np.asarray(image, dtype=np.float32)


# --- Folders and series --------------------------------------------------------------------------


def _list_files(folder: str | Path, recursive: bool) -> tuple[Path, list[Path]]:
    """The folder as a Path and its files, sorted; EmptyFolderError if it is missing or holds no file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EmptyFolderError(f"{folder} is not a folder (it does not exist or is a file): check the path.")
    if recursive:
        files = [Path(root) / name for root, _, names in os.walk(folder) for name in names]
    else:
        files = [p for p in folder.iterdir() if p.is_file()]
    files.sort()
    if not files:
        raise EmptyFolderError(f"{folder} holds no files: check the path, or download / unzip the data first.")
    return folder, files


def _has_dicm_prefix(path: Path) -> bool:
    """True when the file carries the DICOM preamble and 'DICM' prefix."""
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _is_dicomdir(ds: Dataset) -> bool:
    """True for a DICOMDIR (an index of a file-set, not an instance)."""
    meta = getattr(ds, "file_meta", None)
    sop = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    return sop == MediaStorageDirectoryStorage or "DirectoryRecordSequence" in ds


def _str_or_none(value: Any) -> str | None:
    """A DICOM value as str (None when absent or empty)."""
    return None if value is None or value == "" else str(value)


def _int_or_none(value: Any) -> int | None:
    """A DICOM value as int (None when absent or not a number)."""
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


#: Columns of :func:`read_folder`.
FOLDER_COLUMNS: tuple[str, ...] = (
    "path", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "Modality", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames",
    "PhotometricInterpretation", "TransferSyntaxUID",
)


def read_folder(folder: str | Path, recursive: bool = True) -> pd.DataFrame:
    """One row per DICOM file in a folder (headers only, sorted by path); non-DICOM files skipped.

    Columns are :data:`FOLDER_COLUMNS`. ``df.attrs["n_skipped"]`` counts the files that are not
    DICOM (or are truncated), ``df.attrs["skipped"]`` maps each to the reason, and
    ``df.attrs["dicomdirs"]`` lists DICOMDIR index files (read those with :func:`read_dicomdir`).
    pandas keeps ``attrs`` through some operations only: read them right away.
    """
    import pandas as pd

    folder, files = _list_files(folder, recursive)
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    dicomdirs: list[str] = []
    for path in files:
        try:
            ds = read_dicom(path, stop_before_pixels=True)
        except NotDicomError as exc:
            skipped[str(path)] = str(exc)
            continue
        if _is_dicomdir(ds):
            dicomdirs.append(str(path))
            continue
        ts = _transfer_syntax(ds)
        rows.append({
            "path": str(path),
            "PatientID": _str_or_none(ds.get("PatientID")),
            "StudyInstanceUID": _str_or_none(ds.get("StudyInstanceUID")),
            "SeriesInstanceUID": _str_or_none(ds.get("SeriesInstanceUID")),
            "SeriesNumber": _int_or_none(ds.get("SeriesNumber")),
            "SeriesDescription": _str_or_none(ds.get("SeriesDescription")),
            "Modality": _str_or_none(ds.get("Modality")),
            "SOPInstanceUID": _str_or_none(ds.get("SOPInstanceUID")),
            "InstanceNumber": _int_or_none(ds.get("InstanceNumber")),
            "Rows": _int_or_none(ds.get("Rows")),
            "Columns": _int_or_none(ds.get("Columns")),
            "NumberOfFrames": _int_or_none(ds.get("NumberOfFrames")) or (1 if "Rows" in ds else None),
            "PhotometricInterpretation": _str_or_none(ds.get("PhotometricInterpretation")),
            "TransferSyntaxUID": _str_or_none(ts),
        })
    if not rows:
        hint = f" It holds DICOMDIR index files: use read_dicomdir({dicomdirs[0]!r})." if dicomdirs else ""
        raise EmptyFolderError(
            f"{folder} holds no DICOM files ({len(files)} files checked, {len(skipped)} not DICOM, e.g. "
            f"{next(iter(skipped), 'none')}).{hint} Check the path, or unzip the download first."
        )
    df = pd.DataFrame(rows, columns=list(FOLDER_COLUMNS))
    for col in ("SeriesNumber", "InstanceNumber", "Rows", "Columns", "NumberOfFrames"):
        df[col] = df[col].astype("Int64")
    df.attrs["n_skipped"] = len(skipped)
    df.attrs["skipped"] = skipped
    df.attrs["dicomdirs"] = dicomdirs
    return df


def ingest_folder(
    folder: str | Path, *, recursive: bool = True, physical: bool = True, skip_errors: bool = False
) -> dict[Path, np.ndarray]:
    """Every image in a folder as float32 (physical units, e.g. HU), keyed by path in sorted order.

    Each file is read once and decoded once. Files that are not DICOM, DICOMDIRs and DICOM objects
    without pixel data are skipped; a truncated DICOM file, a missing decoder, a colour image or
    corrupt pixel data raise, unless ``skip_errors=True`` skips those files too.
    """
    folder, files = _list_files(folder, recursive)
    out: dict[Path, np.ndarray] = {}
    for path in files:
        try:
            ds = read_dicom(path)
        except NotDicomError:
            if skip_errors or not _has_dicm_prefix(path):
                continue
            raise
        if not has_pixel_data(ds):
            continue
        try:
            out[path] = pixels(ds, physical=physical)
        except DicomError:
            if skip_errors:
                continue
            raise
    if not out:
        raise EmptyFolderError(
            f"{folder} holds no DICOM images ({len(files)} files checked): check the path, or use "
            "read_folder(folder) to see what the files are."
        )
    return out


@dataclass
class Volume:
    """A stack of slices: ``array`` (slices, rows, cols) float32 in physical units, ``spacing`` (z, y, x) mm."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    #: Position of each slice along the slice normal in mm (ImagePositionPatient projected on the normal
    #: from ImageOrientationPatient); slice index * z spacing when the files carry no geometry.
    positions: np.ndarray
    #: The files, in slice order.
    paths: list[Path]
    #: Their headers, in slice order (pixel data dropped to save memory).
    datasets: list[Dataset] = field(repr=False)
    #: How the slices were ordered: "position", "InstanceNumber" or "filename".
    sorted_by: str = "position"


def _normal(ds: Dataset) -> np.ndarray | None:
    """Unit normal of the slice plane from ImageOrientationPatient (row x column direction), or None."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    row, col = np.asarray(iop[:3], dtype=float), np.asarray(iop[3:], dtype=float)
    normal = np.cross(row, col)
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else None


def _describe_groups(groups: Mapping[Any, list[Path]]) -> str:
    """'A (3 files, e.g. x.dcm); B (1 file, e.g. y.dcm)' for SeriesError messages."""
    parts = []
    for key, paths in groups.items():
        parts.append(f"{key} ({len(paths)} file{'s' if len(paths) != 1 else ''}, e.g. {paths[0].name})")
    return "; ".join(parts)


def load_series(
    folder_or_paths: str | Path | Sequence[str | Path],
    *,
    series_uid: str | None = None,
    recursive: bool = False,
) -> Volume:
    """Stack one series' slices into a :class:`Volume` (float32, physical units; spacing in mm).

    Slices are ordered by ImagePositionPatient projected on the slice normal (from
    ImageOrientationPatient), falling back to InstanceNumber, then to file name (with a warning).
    Non-DICOM files and DICOM objects without pixel data are skipped. A folder holding several
    series raises SeriesError naming them; pass ``series_uid`` to pick one. Slices of different sizes
    or orientations, and multi-frame files, raise SeriesError too.
    """
    if isinstance(folder_or_paths, (str, Path)) and Path(folder_or_paths).is_dir():
        folder, candidates = _list_files(folder_or_paths, recursive)
        source = str(folder)
    else:
        paths_in = [folder_or_paths] if isinstance(folder_or_paths, (str, Path)) else list(folder_or_paths)
        candidates = [Path(p) for p in paths_in]
        source = f"the {len(candidates)} paths given"
        if not candidates:
            raise EmptyFolderError("load_series got an empty list of paths: pass a folder or some DICOM files.")

    slices: list[tuple[Path, Dataset]] = []
    for path in candidates:
        try:
            ds = read_dicom(path)
        except NotDicomError:
            if _has_dicm_prefix(path):
                raise
            continue
        if _is_dicomdir(ds) or not has_pixel_data(ds):
            continue
        slices.append((path, ds))
    if not slices:
        raise EmptyFolderError(f"{source}: no DICOM images found ({len(candidates)} files checked).")

    by_series: dict[str, list[Path]] = {}
    for path, ds in slices:
        by_series.setdefault(str(ds.get("SeriesInstanceUID", "(no SeriesInstanceUID)")), []).append(path)
    if series_uid is not None:
        if series_uid not in by_series:
            raise SeriesError(f"{source}: no slices of series {series_uid}; found {_describe_groups(by_series)}.")
        slices = [(p, ds) for p, ds in slices if str(ds.get("SeriesInstanceUID", "")) == series_uid]
    elif len(by_series) > 1:
        raise SeriesError(
            f"{source} mixes {len(by_series)} series: {_describe_groups(by_series)}. Pass "
            "series_uid='...' to load one, or group the files with read_folder(folder) first."
        )

    multi = [p for p, ds in slices if int(ds.get("NumberOfFrames", 1) or 1) > 1]
    if multi:
        raise SeriesError(
            f"{multi[0]} is a multi-frame file ({len(multi)} such): it is a volume by itself. Use "
            "pixels(path), which returns (frames, rows, cols), instead of load_series."
        )
    by_size: dict[str, list[Path]] = {}
    for path, ds in slices:
        by_size.setdefault(f"{ds.get('Rows')}x{ds.get('Columns')}", []).append(path)
    if len(by_size) > 1:
        raise SeriesError(
            f"{source}: slices differ in size: {_describe_groups(by_size)}. A volume needs equal slices: "
            "remove the scout/localizer images or load the sizes separately."
        )

    normals = [n for n in (_normal(ds) for _, ds in slices) if n is not None]
    have_geometry = len(normals) == len(slices) and all(
        ds.get("ImagePositionPatient") is not None and len(ds.ImagePositionPatient) == 3 for _, ds in slices
    )
    if have_geometry:
        normal = normals[0]
        if any(not np.allclose(n, normal, atol=1e-3) for n in normals):
            raise SeriesError(
                f"{source}: slices have different orientations (ImageOrientationPatient), e.g. a localizer "
                "mixed with axial slices: load each orientation separately."
            )
        keys = [float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal)) for _, ds in slices]
        sorted_by = "position"
    elif all(_int_or_none(ds.get("InstanceNumber")) is not None for _, ds in slices):
        keys = [float(ds.InstanceNumber) for _, ds in slices]
        sorted_by = "InstanceNumber"
    else:
        warnings.warn(
            f"{source}: slices carry neither ImagePositionPatient nor InstanceNumber; ordering by file name.",
            UserWarning,
            stacklevel=2,
        )
        by_name = sorted(range(len(slices)), key=lambda i: str(slices[i][0]))
        keys = [float(by_name.index(i)) for i in range(len(slices))]
        sorted_by = "filename"
    order = sorted(range(len(slices)), key=lambda i: (keys[i], _int_or_none(slices[i][1].get("InstanceNumber")) or 0,
                                                       str(slices[i][0])))

    first = slices[order[0]][1]
    rows, cols = int(first.Rows), int(first.Columns)
    array = np.empty((len(order), rows, cols), dtype=np.float32)
    paths: list[Path] = []
    datasets: list[Dataset] = []
    for k, i in enumerate(order):
        path, ds = slices[i]
        array[k] = pixels(ds)
        for keyword in PIXEL_KEYWORDS:
            if keyword in ds:
                delattr(ds, keyword)
        paths.append(path)
        datasets.append(ds)

    spacing_yx = _pixel_spacing(first)
    if spacing_yx is None:
        warnings.warn(f"{source}: no PixelSpacing: spacing (y, x) is set to (1.0, 1.0), so distances come out in "
                      "pixels, not mm.", UserWarning, stacklevel=2)
    y, x = spacing_yx or (1.0, 1.0)
    sorted_keys = np.array([keys[i] for i in order], dtype=float)
    if sorted_by == "position" and len(order) > 1:
        steps = np.diff(sorted_keys)
        nonzero = steps[np.abs(steps) > 1e-6]
        z = float(np.median(nonzero)) if nonzero.size else _slice_thickness(first)
        if nonzero.size < steps.size:
            warnings.warn(f"{source}: {steps.size - nonzero.size} slices share a position with another "
                          "(repeated acquisitions or cine frames?): the volume stacks them all.", UserWarning,
                          stacklevel=2)
        elif np.ptp(steps) > 0.01 * abs(z) + 1e-3:
            warnings.warn(f"{source}: slice spacing is uneven ({steps.min():.3g} to {steps.max():.3g} mm): missing "
                          f"slices? spacing[0] is the median, {z:.3g} mm.", UserWarning, stacklevel=2)
        positions = sorted_keys
    else:
        z = _slice_thickness(first)
        positions = sorted_keys if sorted_by == "position" else np.arange(len(order), dtype=float) * z
    return Volume(array=array, spacing=(abs(z), y, x), positions=positions, paths=paths, datasets=datasets,
                  sorted_by=sorted_by)


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm from PixelSpacing, the functional groups or ImagerPixelSpacing, or None."""
    value = ds.get("PixelSpacing") or _functional_group(ds, "PixelMeasuresSequence", "PixelSpacing") \
        or ds.get("ImagerPixelSpacing")
    if value is None or len(value) != 2:
        return None
    return float(value[0]), float(value[1])


def _slice_thickness(ds: Dataset) -> float:
    """SpacingBetweenSlices, else SliceThickness, in mm; 1.0 when neither is there."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = _first_number(ds.get(keyword))
        if value:
            return value
    return 1.0


# --- DICOMDIR ------------------------------------------------------------------------------------

#: Columns of :func:`read_dicomdir`.
DICOMDIR_COLUMNS: tuple[str, ...] = (
    "PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyDescription", "SeriesInstanceUID",
    "SeriesNumber", "Modality", "SOPInstanceUID", "InstanceNumber", "path", "exists",
)


def _resolve(root: Path, parts: Sequence[str]) -> Path:
    """root/parts, matching each component case-insensitively when the exact name is absent."""
    path = root
    for part in parts:
        candidate = path / part
        if not candidate.exists() and path.is_dir():
            matches = [p for p in path.iterdir() if p.name.lower() == part.lower()]
            if matches:
                candidate = matches[0]
        path = candidate
    return path


def _file_id_parts(value: Any) -> list[str]:
    """ReferencedFileID as a list of path components."""
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value]
    return [str(value)] if value else []


def _record_values(record: Dataset) -> dict[str, Any]:
    """A directory record's non-sequence elements by keyword."""
    return {elem.keyword: elem.value for elem in record if elem.VR != "SQ" and elem.keyword}


def _records_by_offset(ds: Dataset) -> list[dict[str, Any]]:
    """Leaf records with their ancestors' values, following the records' own offsets (any record order)."""
    by_offset = {getattr(r, "seq_item_tell", None): r for r in ds.get("DirectoryRecordSequence", [])}
    found: list[dict[str, Any]] = []
    seen: set[int] = set()

    def walk(offset: int, inherited: dict[str, Any]) -> None:
        while offset and offset in by_offset and offset not in seen:
            seen.add(offset)
            record = by_offset[offset]
            merged = {**inherited, **_record_values(record)}
            if "ReferencedFileID" in record:
                found.append(merged)
            child = int(record.get("OffsetOfReferencedLowerLevelDirectoryEntity", 0) or 0)
            if child:
                walk(child, {k: v for k, v in merged.items() if k != "ReferencedFileID"})
            offset = int(record.get("OffsetOfTheNextDirectoryRecord", 0) or 0)

    # Start from the records no other record points to (the root pointer itself may be wrong).
    referenced = {
        int(r.get(k, 0) or 0)
        for r in by_offset.values()
        for k in ("OffsetOfReferencedLowerLevelDirectoryEntity", "OffsetOfTheNextDirectoryRecord")
    }
    for offset in by_offset:
        if offset is not None and offset not in referenced:
            walk(offset, {})
    return found


def _records_linear(ds: Dataset) -> list[dict[str, Any]]:
    """Leaf records with the patient/study/series records before them, in file order (last resort)."""
    levels: dict[str, dict[str, Any]] = {"PATIENT": {}, "STUDY": {}, "SERIES": {}}
    found: list[dict[str, Any]] = []
    for record in ds.get("DirectoryRecordSequence", []):
        kind = str(record.get("DirectoryRecordType", "")).upper()
        if kind in levels:
            levels[kind] = _record_values(record)
            if kind == "PATIENT":
                levels["STUDY"], levels["SERIES"] = {}, {}
            elif kind == "STUDY":
                levels["SERIES"] = {}
        elif "ReferencedFileID" in record:
            found.append({**levels["PATIENT"], **levels["STUDY"], **levels["SERIES"], **_record_values(record)})
    return found


def read_dicomdir(path: str | Path) -> pd.DataFrame:
    """The images a DICOMDIR lists, one row each (patient, study, series, instance, resolved file path).

    ``path`` is the DICOMDIR file or a folder holding one. Paths are resolved against the DICOMDIR's
    folder (case-insensitively where needed); ``exists`` says whether the file is really there.
    """
    import pandas as pd
    from pydicom.fileset import FileSet

    path = Path(path)
    if path.is_dir():
        candidates = [p for p in path.iterdir() if p.name.upper() == "DICOMDIR"]
        if not candidates:
            raise EmptyFolderError(f"{path} holds no DICOMDIR file: pass the DICOMDIR itself, or use read_folder.")
        path = candidates[0]
    ds = read_dicom(path)
    if not _is_dicomdir(ds):
        raise DicomError(f"{path} is DICOM but not a DICOMDIR (no directory records): read it with read_dicom, "
                         "or a folder of such files with read_folder.")
    root = path.parent
    records: list[dict[str, Any]] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FileSet warns about fixes it would make when writing
            instances = list(FileSet(ds))
        for inst in instances:
            records.append({kw: getattr(inst, kw, None) for kw in (
                "PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyDescription",
                "SeriesInstanceUID", "SeriesNumber", "Modality", "ReferencedSOPInstanceUIDInFile",
                "InstanceNumber", "ReferencedFileID")})
    except Exception:  # a record hierarchy pydicom rejects (e.g. invalid record types): walk it ourselves
        n_records = len(ds.get("DirectoryRecordSequence", []))
        records = _records_by_offset(ds)
        if n_records and not records:
            records = _records_linear(ds)
    rows = []
    for rec in records:
        parts = _file_id_parts(rec.get("ReferencedFileID"))
        file_path = _resolve(root, parts) if parts else None
        rows.append({
            "PatientID": _str_or_none(rec.get("PatientID")),
            "PatientName": _str_or_none(rec.get("PatientName")),
            "StudyInstanceUID": _str_or_none(rec.get("StudyInstanceUID")),
            "StudyDate": _str_or_none(rec.get("StudyDate")),
            "StudyDescription": _str_or_none(rec.get("StudyDescription")),
            "SeriesInstanceUID": _str_or_none(rec.get("SeriesInstanceUID")),
            "SeriesNumber": _int_or_none(rec.get("SeriesNumber")),
            "Modality": _str_or_none(rec.get("Modality")),
            "SOPInstanceUID": _str_or_none(rec.get("ReferencedSOPInstanceUIDInFile")),
            "InstanceNumber": _int_or_none(rec.get("InstanceNumber")),
            "path": str(file_path) if file_path is not None else None,
            "exists": bool(file_path is not None and file_path.is_file()),
        })
    df = pd.DataFrame(rows, columns=list(DICOMDIR_COLUMNS))
    for col in ("SeriesNumber", "InstanceNumber"):
        df[col] = df[col].astype("Int64")
    return df


# --- 16-bit PNG round trip -----------------------------------------------------------------------

#: Offset added to signed stored values so they fit an unsigned 16-bit PNG (written in the PNG's text too).
PNG_SIGNED_OFFSET = 32768

#: Tags :func:`png16_to_dicom` copies from the template (identity, geometry, rescale, window, photometric).
PNG_TEMPLATE_KEYWORDS: tuple[str, ...] = (
    "SpecificCharacterSet", "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "PatientAge",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "StudyDescription",
    "ReferringPhysicianName", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "SeriesDate",
    "SeriesTime", "Modality", "BodyPartExamined", "Manufacturer", "FrameOfReferenceUID", "InstanceNumber",
    "ContentDate", "ContentTime", "ImageType", "PixelSpacing", "ImagerPixelSpacing", "SliceThickness",
    "SpacingBetweenSlices", "ImagePositionPatient", "ImageOrientationPatient", "SliceLocation",
    "PatientOrientation", "RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "PresentationIntentType",
)

_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def to_png16(ds_or_path: Dataset | str | Path, png_path: str | Path) -> Path:
    """Write the stored pixel values (not HU) losslessly as a 16-bit greyscale PNG; returns ``png_path``.

    Signed data is shifted by :data:`PNG_SIGNED_OFFSET` (recorded in the PNG text chunk
    ``dicom:offset``); :func:`png16_to_dicom` undoes it. Greyscale single-frame images of at most
    16 bits only (UnsupportedImageError otherwise).
    """
    from PIL import Image, PngImagePlugin

    ds = _as_dataset(ds_or_path)
    stored = _decode(ds, allow_rgb=False)
    if stored.ndim != 2:
        raise UnsupportedImageError(
            f"{_label(ds)} has {stored.shape[0]} frames; a PNG holds one. Write frames one at a time: "
            "pixels(ds, physical=False)[i] for frame i."
        )
    if stored.dtype.itemsize > 2 or stored.dtype.kind == "f":
        raise UnsupportedImageError(
            f"{_label(ds)} stores {stored.dtype} values; a 16-bit PNG holds at most 16-bit integers. Keep the "
            "DICOM, or save pixels(ds) with numpy.save."
        )
    offset = PNG_SIGNED_OFFSET if stored.dtype.kind == "i" else 0
    values = (stored.astype(np.int32) + offset).astype(np.uint16)
    info = PngImagePlugin.PngInfo()
    info.add_text("dicom:offset", str(offset))
    info.add_text("dicom:SOPInstanceUID", str(ds.get("SOPInstanceUID", "")))
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(png_path, pnginfo=info)
    return png_path


def png16_to_dicom(png_path: str | Path, template_ds: Dataset | str | Path, out_path: str | Path) -> Path:
    """Write a 16-bit greyscale PNG back as uncompressed DICOM with the template's tags and a new SOP Instance UID.

    Stored values are the PNG values (minus the signed offset when the template is signed), so
    ``to_png16`` then ``png16_to_dicom`` reproduces the stored pixels exactly. Patient, study and
    series identity, modality, pixel spacing, geometry, rescale, window and photometric
    interpretation come from the template (see :data:`PNG_TEMPLATE_KEYWORDS`). Returns ``out_path``.
    """
    from PIL import Image

    template = _as_dataset(template_ds, stop_before_pixels=True)
    with Image.open(png_path) as img:
        if img.mode not in ("I;16", "I;16B", "I;16L", "I", "L"):
            raise UnsupportedImageError(
                f"{png_path} is a {img.mode} PNG; png16_to_dicom takes greyscale (8- or 16-bit) PNGs, such as "
                "those to_png16 writes. Convert colour images to grey first."
            )
        values = np.asarray(img).astype(np.int64)
        text = dict(getattr(img, "text", {}) or {})
    rows, cols = int(template.get("Rows", values.shape[0])), int(template.get("Columns", values.shape[1]))
    if values.shape != (rows, cols):
        raise UnsupportedImageError(
            f"{png_path} is {values.shape[0]}x{values.shape[1]} but the template is {rows}x{cols}: its pixel "
            "spacing would be wrong. Resize the PNG back, or use a template of the same size."
        )
    signed = int(template.get("PixelRepresentation", 0) or 0) == 1
    offset = int(text.get("dicom:offset", PNG_SIGNED_OFFSET if signed else 0))
    stored = values - offset
    bits_allocated = int(template.get("BitsAllocated", 16) or 16)
    bits_stored = int(template.get("BitsStored", bits_allocated) or bits_allocated)
    if bits_allocated == 8 and not signed:
        dtype: type[np.integer] = np.uint8
    else:
        dtype = np.int16 if signed else np.uint16
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2 ** bits_stored - 1)
    if stored.size and (stored.min() < lo or stored.max() > hi):
        raise UnsupportedImageError(
            f"{png_path} holds values {stored.min()}..{stored.max()} that do not fit the template's "
            f"{bits_stored}-bit {'signed' if signed else 'unsigned'} pixels: is this PNG from the same image? "
            "Windowed 8-bit PNGs are display images, not stored values."
        )

    sop_class = str(template.get("SOPClassUID", "") or "")
    if not sop_class or "PerFrameFunctionalGroupsSequence" in template or "SharedFunctionalGroupsSequence" in template:
        sop_class = _SECONDARY_CAPTURE
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    for keyword in PNG_TEMPLATE_KEYWORDS:
        if keyword in template:
            ds[keyword] = template[keyword]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.DerivationDescription = "Stored pixel values restored from a 16-bit PNG"
    photometric = _photometric(template) if _photometric(template) in ("MONOCHROME1", "MONOCHROME2") else "MONOCHROME2"
    ds.set_pixel_data(stored.astype(dtype), photometric_interpretation=photometric, bits_stored=bits_stored,
                      generate_instance_uid=False)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out_path, enforce_file_format=True)
    return out_path


# --- Describe ------------------------------------------------------------------------------------


def describe(ds_or_path: Dataset | str | Path) -> dict[str, Any]:
    """Teaching-relevant tags as plain values for a table (spacing and thickness in mm, rescale to physical units)."""
    ds = _as_dataset(ds_or_path)
    ts = _transfer_syntax(ds)
    sop = str(ds.get("SOPClassUID", "") or "")
    spacing = _pixel_spacing(ds)
    slope, intercept, source = _rescale(ds, 1)
    win = file_window(ds)
    filename = getattr(ds, "filename", None)
    return {
        "File": Path(filename).name if isinstance(filename, (str, os.PathLike)) and str(filename) else None,
        "PatientID": _str_or_none(ds.get("PatientID")),
        "PatientName": _str_or_none(ds.get("PatientName")),
        "PatientSex": _str_or_none(ds.get("PatientSex")),
        "PatientAge": _str_or_none(ds.get("PatientAge")),
        "StudyInstanceUID": _str_or_none(ds.get("StudyInstanceUID")),
        "StudyDate": _str_or_none(ds.get("StudyDate")),
        "StudyDescription": _str_or_none(ds.get("StudyDescription")),
        "SeriesInstanceUID": _str_or_none(ds.get("SeriesInstanceUID")),
        "SeriesNumber": _int_or_none(ds.get("SeriesNumber")),
        "SeriesDescription": _str_or_none(ds.get("SeriesDescription")),
        "SOPInstanceUID": _str_or_none(ds.get("SOPInstanceUID")),
        "SOPClass": UID(sop).name if sop else None,
        "InstanceNumber": _int_or_none(ds.get("InstanceNumber")),
        "Modality": _str_or_none(ds.get("Modality")),
        "Manufacturer": _str_or_none(ds.get("Manufacturer")),
        "Rows": _int_or_none(ds.get("Rows")),
        "Columns": _int_or_none(ds.get("Columns")),
        "NumberOfFrames": _int_or_none(ds.get("NumberOfFrames")) or (1 if "Rows" in ds else None),
        "PixelSpacing_mm": spacing,
        "SliceThickness_mm": _first_number(ds.get("SliceThickness")),
        "PhotometricInterpretation": _photometric(ds) or None,
        "TransferSyntax": ts.name if ts is not None else None,
        "TransferSyntaxUID": str(ts) if ts is not None else None,
        "Compressed": bool(ts.is_compressed) if ts is not None and ts.is_transfer_syntax else None,
        "BitsAllocated": _int_or_none(ds.get("BitsAllocated")),
        "BitsStored": _int_or_none(ds.get("BitsStored")),
        "Signed": (int(ds.PixelRepresentation) == 1) if "PixelRepresentation" in ds else None,
        "RescaleSlope": slope if source != "none" and isinstance(slope, float) else None,
        "RescaleIntercept": intercept if source != "none" and isinstance(intercept, float) else None,
        "RescaleType": _str_or_none(ds.get("RescaleType")),
        "WindowCenter": win[0] if win else None,
        "WindowWidth": win[1] if win else None,
        "HasPixelData": has_pixel_data(ds),
    }


__all__ = [
    "DECODER_PACKAGES", "DICOMDIR_COLUMNS", "FOLDER_COLUMNS", "PIXEL_KEYWORDS", "PNG_SIGNED_OFFSET",
    "PNG_TEMPLATE_KEYWORDS", "SOP_CLASS_BY_MODALITY", "Volume", "WINDOW_PRESETS", "available_decoders",
    "describe", "display_array", "file_window", "has_pixel_data", "ingest_folder", "is_colour", "load_series",
    "pixels", "png16_to_dicom", "pydicom", "read_dicom", "read_dicomdir", "read_folder", "require_decoder",
    "stable_uid", "to_png16", "today_da", "unit_image", "window", "write_dicom",
]
