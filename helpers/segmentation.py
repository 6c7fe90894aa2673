"""Segmentation masks: overlap and surface metrics, Sunnybrook arrays for a U-Net, DICOM SEG in and out.

Metrics take boolean masks (or 0/1 arrays) of equal shape and are computed **per slice, then
averaged** (:func:`per_slice_scores`, :func:`summarize_scores`): a mean over slices, not one Dice
over all pixels pooled, which would let the large basal slices hide failures at the apex.

Conventions a lesson should state:

* ``dice`` and ``iou`` of two empty masks are 1.0 (nothing to find, nothing found); one empty -> 0.0.
* ``hausdorff95`` is in millimetres (``spacing`` = (row, column) pixel spacing in mm); 0.0 for two
  empty masks, ``nan`` (undefined) when exactly one is empty. :func:`summarize_scores` averages it over
  the slices where it is defined and counts the others.

:func:`write_seg` / :func:`read_seg` store a predicted mask as a DICOM Segmentation (highdicom,
BINARY) that references its source image, so a PACS or viewer (OHIF, 3D Slicer) overlays it.
No deep-learning framework is imported here.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset

from helpers.errors import DatasetError, MaskError

if TYPE_CHECKING:
    from pydicom.sr.coding import Code

#: Columns of :func:`per_slice_scores`.
SCORE_COLUMNS: tuple[str, ...] = ("slice", "dice", "iou", "hd95_mm", "truth_px", "pred_px")

#: Manifest columns holding the inner (endocardial) contour path: make_cardiac_mr, then load_sunnybrook.
INNER_CONTOUR_COLUMNS: tuple[str, ...] = ("icontour_path", "inner_contour")


# --- Masks and metrics ---------------------------------------------------------------------------


def as_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """``mask`` as a boolean array; 0/1 numbers are accepted, any other value raises MaskError."""
    arr = np.asarray(mask)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf":
        raise MaskError(f"{name} must be boolean or 0/1 numbers, got dtype {arr.dtype}.")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        values = np.unique(arr[bad])[:5].tolist()
        raise MaskError(
            f"{name} must be boolean or 0/1, but holds other values (e.g. {values}). Threshold "
            "probabilities first, e.g. mask = prob > 0.5, or take argmax of the class scores."
        )
    return arr.astype(bool)


def _pair(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as boolean arrays of one shape (MaskError naming both shapes otherwise)."""
    p, t = as_mask(pred, "pred"), as_mask(truth, "truth")
    if p.shape != t.shape:
        raise MaskError(
            f"pred has shape {p.shape} but truth has shape {t.shape}; compare masks of the same image "
            "(resize the prediction back to the label's size with nearest-neighbour interpolation)."
        )
    return p, t


def dice(pred: Any, truth: Any) -> float:
    """Dice = 2|P∩T| / (|P|+|T|) in [0, 1]; 1.0 when both masks are empty, 0.0 when exactly one is."""
    p, t = _pair(pred, truth)
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, t).sum()) / total


def iou(pred: Any, truth: Any) -> float:
    """Intersection over union |P∩T| / |P∪T| in [0, 1]; 1.0 when both masks are empty, 0.0 when exactly one is."""
    p, t = _pair(pred, truth)
    union = int(np.logical_or(p, t).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(p, t).sum()) / union


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-connected neighbour outside it (the image border counts as outside)."""
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask, border_value=0)


def surface_distances(pred: Any, truth: Any, spacing: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
    """Distances (mm) from each boundary pixel of pred to truth's boundary, then of truth to pred's (both non-empty)."""
    from scipy.ndimage import distance_transform_edt

    p, t = _pair(pred, truth)
    if not p.any() or not t.any():
        raise MaskError("surface distances need two non-empty masks; use hausdorff95 for the empty cases.")
    sampling = tuple(float(s) for s in spacing)
    if len(sampling) != p.ndim:
        raise ValueError(f"spacing needs one value (mm) per axis of the {p.ndim}-D masks, got {spacing!r}.")
    bp, bt = _boundary(p), _boundary(t)
    to_truth = distance_transform_edt(~bt, sampling=sampling)[bp]
    to_pred = distance_transform_edt(~bp, sampling=sampling)[bt]
    return np.concatenate([to_truth, to_pred])


def hausdorff95(pred: Any, truth: Any, spacing: Sequence[float] = (1.0, 1.0)) -> float:
    """95th percentile (mm) of symmetric boundary-to-boundary distances; 0.0 if both empty, nan (undefined) if one is.

    ``spacing`` is the (row, column) pixel spacing in mm. The distances of both directions are pooled
    before the percentile (as medpy's ``hd95``); a contour off by a few pixels everywhere scores a few
    pixels times the spacing, a stray blob far away raises it only when it is more than 5% of the boundary.
    """
    p, t = _pair(pred, truth)
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return float("nan")
    return float(np.percentile(surface_distances(p, t, spacing), 95))


def _stack(masks: Any, name: str) -> np.ndarray:
    """A stack of 2-D masks as a boolean (N, H, W) array."""
    arr = as_mask(masks, name)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise MaskError(f"{name} must be a (N, H, W) stack of 2-D masks, got shape {arr.shape}.")
    return arr


def per_slice_scores(preds: Any, truths: Any, spacings: Any = (1.0, 1.0)) -> pd.DataFrame:
    """One row per slice: slice, dice, iou, hd95_mm (mm; nan if one mask is empty), truth_px, pred_px (pixel counts).

    ``preds`` and ``truths`` are (N, H, W) masks; ``spacings`` is (N, 2) (row, column) mm per slice, or one
    (2,) spacing for all.
    """
    p, t = _stack(preds, "preds"), _stack(truths, "truths")
    if p.shape != t.shape:
        raise MaskError(f"preds has shape {p.shape} but truths has shape {t.shape}; they must match slice for slice.")
    sp = np.asarray(spacings, dtype=np.float64)
    if sp.shape == (2,):
        sp = np.broadcast_to(sp, (len(p), 2))
    if sp.shape != (len(p), 2):
        raise ValueError(f"spacings must have shape ({len(p)}, 2) or (2,) in mm, got {sp.shape}.")
    rows = [
        {
            "slice": i,
            "dice": dice(p[i], t[i]),
            "iou": iou(p[i], t[i]),
            "hd95_mm": hausdorff95(p[i], t[i], tuple(sp[i])),
            "truth_px": int(t[i].sum()),
            "pred_px": int(p[i].sum()),
        }
        for i in range(len(p))
    ]
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def summarize_scores(df: pd.DataFrame) -> dict[str, float | int]:
    """Mean and median over slices ("per slice, then averaged") of dice, iou and hd95_mm (mm, defined slices only).

    Also ``n_slices``, ``n_empty_truth`` (slices with no labelled pixel: their Dice is 1.0 or 0.0, which
    moves the mean) and ``n_hd95_undefined`` (slices where exactly one mask is empty).
    """
    missing = [c for c in ("dice", "iou", "hd95_mm", "truth_px") if c not in df.columns]
    if missing:
        raise ValueError(f"summarize_scores takes the table of per_slice_scores; missing columns {missing}.")
    out: dict[str, float | int] = {"n_slices": int(len(df))}
    for col in ("dice", "iou", "hd95_mm"):
        values = df[col].astype(float).dropna()
        out[f"{col}_mean"] = float(values.mean()) if len(values) else float("nan")
        out[f"{col}_median"] = float(values.median()) if len(values) else float("nan")
    out["n_empty_truth"] = int((df["truth_px"] == 0).sum())
    out["n_hd95_undefined"] = int(df["hd95_mm"].isna().sum())
    return out


# --- Sunnybrook arrays for a U-Net ---------------------------------------------------------------


def normalise_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Scale an image to [0, 1] float32 between its ``low`` and ``high`` percentiles (clipped; all 0 if flat)."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.float32)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def largest_component(mask: Any) -> np.ndarray:
    """Keep only the largest 8-connected region of a 2D mask, or of each mask of an (N, H, W) stack: the one left
    ventricle, without stray blobs elsewhere (which inflate HD95 far more than they lower Dice)."""
    from scipy import ndimage

    m = as_mask(mask)
    if m.ndim == 3:
        return np.stack([largest_component(one) for one in m]) if len(m) else m.copy()
    if m.ndim != 2:
        raise MaskError(f"largest_component takes a 2D mask or an (N, H, W) stack, got shape {m.shape}.")
    labels, n = ndimage.label(m, structure=np.ones((3, 3), dtype=bool))
    if n <= 1:
        return m.copy()
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def resize_mask(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    """A binary mask resampled to ``shape`` (rows, columns): bilinear on 0/1 then >= 0.5, so edges stay smooth
    rather than blocky (e.g. a 128 px prediction back onto its 256 px source image for a DICOM SEG)."""
    from skimage.transform import resize

    m = as_mask(mask)
    if m.shape == tuple(shape):
        return m.copy()
    return resize(m.astype(np.float32), shape, order=1, preserve_range=True, anti_aliasing=False) >= 0.5


def _inner_column(table: pd.DataFrame) -> str:
    """The manifest column holding the inner contour path."""
    for col in INNER_CONTOUR_COLUMNS:
        if col in table.columns:
            return col
    raise DatasetError(
        f"The table has no inner-contour column ({' or '.join(INNER_CONTOUR_COLUMNS)}); pass the manifest of "
        "make_cardiac_mr or the table of load_sunnybrook."
    )


def _spacing(ds: Dataset, row: pd.Series) -> tuple[float, float]:
    """(row, column) pixel spacing in mm: PixelSpacing, else the manifest's pixel_spacing_mm."""
    if "PixelSpacing" in ds and ds.PixelSpacing:
        return float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])
    value = row.get("pixel_spacing_mm")
    if value is not None and not pd.isna(value):
        return float(value), float(value)
    raise DatasetError(f"{row['path']} has no PixelSpacing and the table no pixel_spacing_mm; millimetres are unknown.")


def cardiac_arrays(table: pd.DataFrame, size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images float32 (N, size, size) in [0, 1] by 1st/99th percentile, LV blood-pool masks bool, spacing (N, 2) mm).

    ``table`` is a make_cardiac_mr manifest or a load_sunnybrook table; rows without an inner contour are
    dropped. Images of another size are resampled (bilinear; masks nearest-neighbour after filling the
    contour at the original size) and the (row, column) spacing scaled to match.
    """
    from skimage.transform import resize

    from helpers.contours import contour_to_mask, read_contour
    from helpers.dicom import pixels, read_dicom

    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}.")
    col = _inner_column(table)
    keep = table[table[col].notna() & (table[col].astype(str).str.strip() != "")]
    if keep.empty:
        raise DatasetError(f"No row of the table has an inner contour ({col}); nothing to segment.")
    images = np.empty((len(keep), size, size), dtype=np.float32)
    masks = np.empty((len(keep), size, size), dtype=bool)
    spacing = np.empty((len(keep), 2), dtype=np.float64)
    for i, (_, row) in enumerate(keep.iterrows()):
        ds = read_dicom(row["path"])
        image = pixels(ds)
        if image.ndim != 2:
            raise DatasetError(f"{row['path']} has {image.shape[0]} frames; cardiac_arrays takes single-frame slices.")
        mask = contour_to_mask(read_contour(row[col]), image.shape)
        sp = np.array(_spacing(ds, row))
        if image.shape != (size, size):
            sp = sp * np.array(image.shape, dtype=np.float64) / size
            image = resize(image, (size, size), order=1, preserve_range=True, anti_aliasing=True)
            mask = resize(mask, (size, size), order=0, preserve_range=True, anti_aliasing=False).astype(bool)
        images[i] = normalise_percentile(image)
        masks[i] = mask
        spacing[i] = sp
    return images, masks, spacing


# --- DICOM SEG -----------------------------------------------------------------------------------

#: Type 2 attributes highdicom copies from the source; added empty to a copy when the source lacks them.
_COPIED_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "StudyID", "AccessionNumber", "ReferringPhysicianName")


def _seg_ready_copy(src: Dataset) -> Dataset:
    """A copy of ``src`` highdicom can copy patient and study from: missing ones empty, unparsable dates emptied.

    De-identified data often blanks dates as ``00000000`` or ``20120000`` (Sunnybrook), which are not valid DA.
    """
    from pydicom.valuerep import DA, TM

    src = copy.deepcopy(src)
    for keyword in _COPIED_TYPE2:
        if keyword not in src or src[keyword].value is None:
            setattr(src, keyword, "")
    for keyword, parse in (("PatientBirthDate", DA), ("StudyDate", DA), ("StudyTime", TM)):
        value = str(src[keyword].value or "")
        try:
            if value:
                parse(value)
        except ValueError:
            setattr(src, keyword, "")
    return src


def write_seg(
    mask: Any,
    source: Dataset | str | Path,
    path: str | Path,
    label: str = "left ventricle",
    *,
    property_type: Code | None = None,
    algorithm: str | None = None,
) -> Path:
    """Write ``mask`` (H, W, bool or 0/1) as a BINARY DICOM SEG of the single-frame ``source`` image; returns ``path``.

    The SEG references the source SOP instance, shares its study and patient, and gets new series and
    instance UIDs. ``property_type`` (a SNOMED code) defaults to Left ventricle. ``algorithm`` names the
    model for an AUTOMATIC segment (e.g. "U-Net v1"); without it the segment is MANUAL. An empty mask
    is written as one empty frame (a valid "nothing found" result) and reads back as all False.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from helpers.dicom import read_dicom

    src = read_dicom(source) if isinstance(source, (str, Path)) else source
    if not isinstance(src, Dataset):
        raise TypeError(f"source must be a pydicom Dataset or a path, got {type(source).__name__}.")
    frames = int(src.get("NumberOfFrames", 1) or 1)
    if frames != 1 or "Rows" not in src:
        raise MaskError(f"write_seg takes a single-frame source image; this one has {frames} frame(s) / no Rows.")
    m = as_mask(mask, "mask")
    shape = (int(src.Rows), int(src.Columns))
    if m.shape != shape:
        raise MaskError(f"mask has shape {m.shape} but the source image is {shape}; resize the mask back first.")
    src = _seg_ready_copy(src)

    if algorithm:
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        identification = hd.AlgorithmIdentificationSequence(
            name=algorithm, family=codes.cid7162.ArtificialIntelligence, version="1"
        )
    else:
        algorithm_type, identification = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label,
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=property_type or codes.SCT.LeftVentricle,
        algorithm_type=algorithm_type,
        algorithm_identification=identification,
    )
    with warnings.catch_warnings():
        # single-component patient names (e.g. Sunnybrook's "SCD0000101") are legal; highdicom warns anyway
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        _ignore_legacy_uid_warnings()
        seg = hd.seg.Segmentation(
            source_images=[src],
            pixel_array=m,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[description],
            series_instance_uid=hd.UID(),
            series_number=901,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="medimg-tutorials",
            manufacturer_model_name="helpers.segmentation",
            software_versions=hd.__version__,
            device_serial_number="0",
            series_description=f"SEG {label}",
            omit_empty_frames=False,
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        _ignore_legacy_uid_warnings()
        seg.save_as(path, enforce_file_format=True)
    return path


def describe_seg(path: str | Path, source: Dataset | str | Path) -> dict[str, Any]:
    """What a viewer learns from a SEG's header, and whether it points at ``source``: SOP class name, segment label,
    property meaning, algorithm type and name, whether it references ``source``'s SOP instance, and whether patient
    and study match."""
    from helpers.dicom import read_dicom

    src = read_dicom(source, stop_before_pixels=True) if isinstance(source, (str, Path)) else source
    with warnings.catch_warnings():
        _ignore_legacy_uid_warnings()
        ds = read_dicom(path, stop_before_pixels=True)
        segment = ds.SegmentSequence[0]
        references = [str(i.ReferencedSOPInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])
                      for i in s.ReferencedInstanceSequence]
        algorithm = segment.get("SegmentAlgorithmName", "") or ""
        return {
            "sop_class": ds.SOPClassUID.name,
            "segment": str(segment.SegmentLabel),
            "meaning": str(segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning),
            "algorithm_type": str(segment.SegmentAlgorithmType),
            "algorithm": str(algorithm),
            "references_source": str(src.SOPInstanceUID) in references,
            "same_patient_and_study": ds.PatientID == src.PatientID and ds.StudyInstanceUID == src.StudyInstanceUID,
        }


def _ignore_legacy_uid_warnings() -> None:
    """Inside ``warnings.catch_warnings()``: silence pydicom's "Invalid value for VR UI". Older archives (Sunnybrook's,
    from 2009) have UID components with leading zeros; a SEG must reference them exactly as they are, so the
    warning, repeated for every reference, says nothing the user can act on."""
    warnings.filterwarnings("ignore", message="Invalid value for VR UI")


def read_seg(path: str | Path) -> np.ndarray:
    """The mask (H, W) bool of a single-segment DICOM SEG of one source image, as :func:`write_seg` writes."""
    import highdicom as hd

    from helpers.dicom import read_dicom

    ds = read_dicom(path)
    if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.66.4":
        raise MaskError(f"{path} is not a DICOM Segmentation (SOP class {ds.get('SOPClassUID')}).")
    with warnings.catch_warnings():
        _ignore_legacy_uid_warnings()
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        sources = seg.get_source_image_uids()
    if len(sources) != 1 or seg.number_of_segments != 1:
        raise MaskError(
            f"{path} has {seg.number_of_segments} segment(s) over {len(sources)} source image(s); read_seg takes "
            "one segment of one image. Use highdicom (hd.seg.segread) for larger SEGs."
        )
    sop_uid = str(sources[0][2])
    array = seg.get_pixels_by_source_instance([sop_uid], segment_numbers=[1])
    return np.asarray(array[0, :, :, 0]).astype(bool)


__all__ = [
    "INNER_CONTOUR_COLUMNS", "SCORE_COLUMNS", "as_mask", "cardiac_arrays", "describe_seg", "dice", "hausdorff95", "iou", "largest_component",
    "normalise_percentile", "per_slice_scores", "read_seg", "resize_mask", "summarize_scores", "surface_distances", "write_seg",
]
