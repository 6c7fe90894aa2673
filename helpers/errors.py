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


class MaskError(MedImgError, ValueError):
    """A segmentation mask is not 0/1, or its shape differs from the mask or image it is compared with."""


# --- Data sets, downloads ------------------------------------------------------------------------


class DatasetError(MedImgError):
    """A data set is missing, incomplete or laid out differently from what the loader expects."""


class ChecksumMismatch(DatasetError, ValueError):
    """A downloaded file's SHA-256 differs from the registry's: the file was not used."""


class DownloadUnavailable(DatasetError, ConnectionError):
    """The host could not be reached (or needs a login): the message gives manual download steps."""


class PatientLeakError(DatasetError, ValueError):
    """The same patient appears in more than one split: scores would be optimistic."""


class WeightsUnavailable(DownloadUnavailable):
    """Pretrained model weights could not be downloaded: the message says where to put the file by hand."""


# --- Notebooks -----------------------------------------------------------------------------------


class NotebookTemplateError(MedImgError, ValueError):
    """A notebook does not follow the collection's template (see CONTRIBUTING.md)."""


# --- De-identification ---------------------------------------------------------------------------


class DeidentificationError(MedImgError):
    """De-identification was refused or could not be done safely; nothing identifying was written."""


class UnsafeOutputLocation(DeidentificationError, ValueError):
    """The output is the source, inside it, or contains it: refused so that the source is never written to."""


class IdentifyingDataRemains(DeidentificationError, AssertionError):
    """A de-identified output still holds identifying values; ``findings`` lists each (file, tag, reason)."""


# --- Cloud and tracking --------------------------------------------------------------------------


class CloudError(MedImgError):
    """Azure ML or MLflow tracking could not be used as asked."""


class WorkspaceNotConfigured(CloudError, RuntimeError):
    """No Azure ML workspace is configured: the message lists the setup steps."""


class SpecValidationError(CloudError, ValueError):
    """A YAML spec is invalid or does not load back to what was built; ``field`` names the culprit."""

    def __init__(self, field: str, message: str = "") -> None:
        super().__init__(f"{field}: {message}" if message else field)
        self.field = field


class TrackingBackendUnavailable(CloudError, ImportError):
    """The package a tracking backend needs (e.g. ``azureml-mlflow`` for Azure ML) is not installed."""


class NoActiveRun(CloudError, RuntimeError):
    """A logging helper was called outside ``with start_run(...)``: nothing was logged."""


class ArtifactMissing(CloudError, FileNotFoundError):
    """A tracked run does not hold the artifact asked for (e.g. no logged model): the message says how to log it."""


# --- Serving -------------------------------------------------------------------------------------


class BadRequest(MedImgError, ValueError):
    """A scoring request was refused; ``status`` is the HTTP code to answer (400, 413, 415 or 422)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = int(status)


class ServerStartError(MedImgError, RuntimeError):
    """The local inference server did not become ready; the message holds the end of its log."""


# --- Labels --------------------------------------------------------------------------------------


class LabelFormatError(MedImgError, ValueError):
    """A labels table or label file (CSV, COCO, Azure ML JSONL) is malformed; the message names the row, line or
    annotation and what to fix."""


class LabelJournalError(MedImgError, ValueError):
    """A label journal (:class:`helpers.annotate.LabelStore`) is damaged before its last line, which no crash does;
    the message names the line and byte, and the file was left unchanged."""
