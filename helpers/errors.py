"""Every exception the helpers raise, named for what went wrong; each message says what to do next.

All derive from :class:`MedImgError`, so a notebook can catch the whole family in one ``except``.
Several also derive from the built-in exception a Python user would expect (``ValueError``,
``FileNotFoundError``, ``ImportError``, ``ConnectionError``), so generic handlers keep working.
"""

from __future__ import annotations


class MedImgError(Exception):
    """Base class of every error raised by :mod:`helpers`."""


# --- DICOM -------------------------------------------------------------------------------------


class DicomError(MedImgError):
    """A DICOM file could not be used."""


class NotDicomError(DicomError, ValueError):
    """The file is not DICOM, or is truncated before its dataset could be parsed."""


class NoPixelDataError(DicomError, ValueError):
    """The file is valid DICOM but holds no image (e.g. an RT structure set or a report)."""


class MissingDecoderError(DicomError, ImportError):
    """The pixel data is compressed and no installed plugin can decode its transfer syntax."""


class UnsupportedTransferSyntaxError(DicomError, ValueError):
    """The transfer syntax is one no available decoder supports at all."""


class DicomDecodeError(DicomError, ValueError):
    """Decoding the pixel data failed (corrupt or inconsistent pixel data)."""


class UnsupportedImageError(DicomError, ValueError):
    """The image has a layout the function cannot handle (e.g. RGB where greyscale is needed)."""


class SeriesError(DicomError, ValueError):
    """Slices cannot be stacked into one volume (mixed series, sizes or orientations)."""


class EmptyFolderError(MedImgError, FileNotFoundError):
    """A folder that should hold data files holds none."""


# --- Contours and masks -------------------------------------------------------------------------


class ContourError(MedImgError, ValueError):
    """A contour file is malformed or its points fall outside the image."""


# --- Data sets, downloads ------------------------------------------------------------------------


class DatasetError(MedImgError):
    """A data set is missing, incomplete or laid out differently from what the loader expects."""


class ChecksumMismatch(DatasetError, ValueError):
    """A downloaded file's SHA-256 differs from the registry's: the file was not used."""


class DownloadUnavailable(DatasetError, ConnectionError):
    """The host could not be reached (or needs a login): the message gives manual download steps."""


class PatientLeakError(DatasetError, ValueError):
    """The same patient appears in more than one split: scores would be optimistic."""


# --- Notebooks -----------------------------------------------------------------------------------


class NotebookTemplateError(MedImgError, ValueError):
    """A notebook does not follow the collection's template (see CONTRIBUTING.md)."""
