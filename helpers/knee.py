"""Knee radiograph preprocessing, framework-free (numpy, OpenCV, scikit-image): unit intensities, CLAHE, a
classical joint localiser, crops around the joint, and one call that prepares a whole set for training.

The steps a lesson shows, in order:

* :func:`to_unit_image`: stored values / (2**BitsStored - 1), MONOCHROME1 inverted, so the result does
  not depend on the file's window or on the image's own maximum (a min-max scale would make a dense
  knee and a thin one look alike, and one hot pixel would dim the whole image).
* :func:`clahe`: contrast-limited adaptive histogram equalisation (OpenCV, on 8 bits: see there why).
* :func:`find_joint` / :func:`crop_to_joint`: find the joint space and crop a square around it, so the
  model sees the condyles and the plateau at the same scale in every image.
* :func:`prepare_knee_set`: all of it for every row of a table, returned as one array (nothing written).

Boxes are ``(x0, y0, x1, y1)`` in pixels, x = column, y = row, inclusive, as in the generated sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from helpers.dicom import unit_image

if TYPE_CHECKING:
    import pandas as pd
    from pydicom.dataset import Dataset

Box = tuple[int, int, int, int]

#: Joint box half-extents in units of the condyle half-width: across (u) and along the leg (v).
JOINT_HALF_U, JOINT_HALF_V = 1.15, 0.6
#: Condyle width as thresholded / as drawn is about 0.88 on generated knees (the Otsu level sits inside the soft
#: bone edge and the condyles' corners are rounded): :func:`find_joint` divides by it.
CONDYLE_WIDTH_RATIO = 0.88
#: Longest side (px) :func:`find_joint` works at; larger images are shrunk first (speed).
LOCALISER_SIZE = 128


# --- Intensities -------------------------------------------------------------------------------------


def to_unit_image(ds_or_path: Dataset | str | Path) -> np.ndarray:
    """A knee radiograph as float32 (H, W) in [0, 1], independent of its metadata: :func:`helpers.dicom.unit_image`
    (stored / (2**BitsStored - 1), MONOCHROME1 inverted, window and rescale tags ignored)."""
    return unit_image(ds_or_path)


def _as_unit(image: np.ndarray) -> np.ndarray:
    """A 2-D image as float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats clipped."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected one greyscale image (H, W), got shape {image.shape}.")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535.0)
    return np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)


def clahe(image: np.ndarray, clip_limit: float = 2.0, tile: int = 8) -> np.ndarray:
    """CLAHE of a [0, 1] image (OpenCV on 8 bits, ``tile`` x ``tile`` tiles), float32 [0, 1].

    OpenCV rather than ``skimage.exposure.equalize_adapthist``: it is several times faster and its
    ``clip_limit`` (2.0: a histogram bin may hold twice the average count) is the value papers quote.
    The image is quantised to 256 levels first on purpose: OpenCV's 16-bit CLAHE uses 65536-bin
    histograms, where the clip limit rounds to one count per bin, so it equalises almost fully
    whatever ``clip_limit`` says (on a generated knee its output correlates 0.61 with the input, the
    8-bit one 0.96). The model input is 8-bit anyway.
    """
    import cv2

    if clip_limit <= 0:
        raise ValueError(f"clip_limit must be > 0 (2.0 is usual), got {clip_limit}.")
    if int(tile) < 1:
        raise ValueError(f"tile must be at least 1, got {tile}.")
    unit = _as_unit(image)
    as8 = (unit * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
    out = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile), int(tile))).apply(as8)
    return out.astype(np.float32) / np.float32(255.0)


# --- Joint localiser ---------------------------------------------------------------------------------


def _bone_mask(small: np.ndarray) -> np.ndarray:
    """Bone of a smoothed [0, 1] image: above the upper of three Otsu classes (background, soft tissue, bone)."""
    import cv2
    from skimage.filters import threshold_multiotsu, threshold_otsu

    try:
        level = float(threshold_multiotsu(small, classes=3)[1])
    except ValueError:  # too few distinct grey levels for three classes
        level = float(threshold_otsu(small)) if np.ptp(small) > 0 else np.inf
    mask = (small > level).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.02 * areas.max()) + 1  # drop specks of noise
    return np.isin(labels, keep)


def _smooth1d(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average of ``values`` over ``width`` samples (same length, edges averaged over what exists)."""
    if width <= 1:
        return values
    kernel = np.ones(int(width))
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")


def find_joint(image: np.ndarray) -> Box:
    """Box (x0, y0, x1, y1) px, inclusive, around the knee joint of an AP knee radiograph (bone bright).

    Classical steps on a copy shrunk to :data:`LOCALISER_SIZE` px: (1) smooth and threshold bone (the
    upper of three Otsu classes); (2) the leg's long axis from the bone pixels' second moments (PCA);
    (3) along that axis, the bone *count* per slice: the joint space is its deepest dip between the
    widest slices (condyles above, plateau below); (4) the condyles' width just above it gives the scale
    ``unit`` (condyle half-width, corrected by :data:`CONDYLE_WIDTH_RATIO`) and their middle the
    centre; (5) the box is the axis-aligned hull of
    a rectangle ±1.15 unit across and ±0.6 unit along the axis, turned with the leg (the generated
    sets' definition). Assumes one knee, AP view, femur at the top and the leg within about 30° of
    vertical, bone brighter than soft tissue (MONOCHROME1 already inverted: use :func:`to_unit_image`),
    and the joint inside the image. On images where no bone is found it returns the whole image.
    """
    import cv2

    unit_image = _as_unit(image)
    h, w = unit_image.shape
    full_box: Box = (0, 0, w - 1, h - 1)
    scale = min(1.0, LOCALISER_SIZE / max(h, w))
    small = unit_image if scale == 1.0 else cv2.resize(
        unit_image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    mask = _bone_mask(small)
    ys, xs = np.nonzero(mask)
    if len(xs) < 20:
        return full_box

    # (2) Long axis of the bone pixels, pointing down the image (femur -> tibia).
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    cov = np.cov((pts - centre).T)
    evals, evecs = np.linalg.eigh(cov)
    axis = evecs[:, int(np.argmax(evals))]
    if axis[1] < 0:
        axis = -axis
    if axis[1] < np.cos(np.deg2rad(45)):  # a leg lying across the image: assume vertical
        axis = np.array([0.0, 1.0])
    perp = np.array([axis[1], -axis[0]])
    v = (pts - centre) @ axis
    u = (pts - centre) @ perp

    # (3) Bone count per 1-px slice along the axis; the joint is the deepest dip between the widest slices.
    v0 = int(np.floor(v.min()))
    bins = np.floor(v).astype(int) - v0
    counts = _smooth1d(np.bincount(bins).astype(np.float64), 3)
    top = counts.max()
    wide = np.flatnonzero(counts >= 0.7 * top)
    lo, hi = int(wide[0]), int(wide[-1])
    if hi - lo < 2:
        gap_bin = lo
    else:
        gap_bin = lo + int(np.argmin(counts[lo:hi + 1]))
    v_gap = gap_bin + v0 + 0.5

    # (4) Scale and centre from the condyles just above the gap (extent across the axis, robust percentiles).
    reach = max(3.0, 0.35 * top)  # top ~ condyle width = 2 unit, so ~0.7 unit above the gap
    above = (v >= v_gap - reach) & (v < v_gap - 0.1 * reach)
    if above.sum() < 10:
        above = np.abs(v - v_gap) < reach
    slice_ids = np.floor(v[above]).astype(int)
    u_above = u[above]
    lefts, rights = [], []
    for s in np.unique(slice_ids):
        row = u_above[slice_ids == s]
        if len(row) >= 3:
            lefts.append(row.min())
            rights.append(row.max())
    if lefts:
        half = 0.5 * float(np.percentile(np.subtract(rights, lefts), 75)) / CONDYLE_WIDTH_RATIO
        u_mid = 0.5 * (float(np.median(lefts)) + float(np.median(rights)))
    else:
        half, u_mid = 0.5 * top, 0.0
    half = max(half, 2.0)

    # (5) The rotated joint rectangle, its axis-aligned hull, back in full-resolution pixels.
    c = centre + u_mid * perp + v_gap * axis
    corners = [c + su * JOINT_HALF_U * half * perp + sv * JOINT_HALF_V * half * axis
               for su in (-1, 1) for sv in (-1, 1)]
    cx, cy = np.array([p[0] for p in corners]), np.array([p[1] for p in corners])
    x0, x1 = (cx.min() + 0.5) / scale - 0.5, (cx.max() + 0.5) / scale - 0.5
    y0, y1 = (cy.min() + 0.5) / scale - 0.5, (cy.max() + 0.5) / scale - 0.5
    box = (int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.floor(y0), 0, h - 1)),
           int(np.clip(np.ceil(x1), 0, w - 1)), int(np.clip(np.ceil(y1), 0, h - 1)))
    if box[2] <= box[0] or box[3] <= box[1]:
        return full_box
    return box


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two inclusive pixel boxes (x0, y0, x1, y1); 0 when they do not overlap."""
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return float(inter / area)


def crop_to_joint(image: np.ndarray, box: Sequence[float], size: int = 224, margin: float = 0.15) -> np.ndarray:
    """A square (size, size) float32 [0, 1] crop around ``box`` (x0, y0, x1, y1 px, inclusive), resized.

    The box grows by ``margin`` of its width / height on each side, then the shorter side grows to
    the longer one about the same centre, so the aspect ratio is kept; parts outside the image are
    filled with 0 (black, as the background of a radiograph). Resizing uses area averaging when
    shrinking and bilinear interpolation when enlarging.
    """
    import cv2

    unit = _as_unit(image)
    if int(size) < 1:
        raise ValueError(f"size must be at least 1 pixel, got {size}.")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}.")
    x0, y0, x1, y1 = (float(b) for b in box)
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box {tuple(box)} is not (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1.")
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    side = int(round(max(bw, bh) * (1 + 2 * margin)))
    cx, cy = (x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2  # centre in pixel-edge coordinates
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    h, w = unit.shape
    crop = np.zeros((side, side), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = unit[sy0:sy1, sx0:sx1]
    if side == int(size):
        return crop
    interp = cv2.INTER_AREA if side > int(size) else cv2.INTER_LINEAR
    return cv2.resize(crop, (int(size), int(size)), interpolation=interp)


# --- A whole set ---------------------------------------------------------------------------------------


def prepare_image(image: np.ndarray, size: int = 224, use_clahe: bool = True, crop: bool = True,
                  margin: float = 0.15) -> np.ndarray:
    """One [0, 1] knee image as :func:`prepare_knee_set` prepares it: joint crop (or not), resize, CLAHE; float32."""
    import cv2

    unit = _as_unit(image)
    if crop:
        out = crop_to_joint(unit, find_joint(unit), size=size, margin=margin)
    elif unit.shape == (int(size), int(size)):
        out = unit
    else:
        shrink = max(unit.shape) > int(size)
        out = cv2.resize(unit, (int(size), int(size)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return clahe(out) if use_clahe else out


def prepare_knee_set(
    table: pd.DataFrame | np.ndarray,
    size: int = 224,
    use_clahe: bool = True,
    crop: bool = True,
    margin: float = 0.15,
    dtype: str = "uint8",
) -> np.ndarray:
    """Images (N, size, size) ready for training, one per row of ``table`` (its ``path`` column), in row order.

    Each DICOM file is read with :func:`to_unit_image`, cropped around the joint :func:`find_joint`
    finds (``crop``; otherwise the whole image is squeezed to a square), resized and equalised with
    :func:`clahe` (``use_clahe``). ``table`` may also be an array (N, H, W) of [0, 1] images (a
    ``synth_knee_xray`` set). ``dtype="uint8"`` gives 0..255 (50 kB per image at 224 px),
    ``"float32"`` gives [0, 1]. Nothing is written to disk.
    """
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"dtype must be 'uint8' or 'float32', got {dtype!r}.")
    if isinstance(table, np.ndarray):
        if table.ndim != 3:
            raise ValueError(f"an image array must be (N, H, W), got shape {table.shape}.")
        sources: Sequence = list(table)
    else:
        if "path" not in table.columns:
            raise ValueError(f"the table has no 'path' column (columns: {list(table.columns)}); pass a manifest "
                             "such as make_knee_xray() returns, or an (N, H, W) image array.")
        sources = list(table["path"])
    out = np.empty((len(sources), int(size), int(size)), dtype=np.uint8 if dtype == "uint8" else np.float32)
    for i, source in enumerate(sources):
        unit = source if isinstance(source, np.ndarray) else to_unit_image(source)
        prepared = prepare_image(unit, size=size, use_clahe=use_clahe, crop=crop, margin=margin)
        out[i] = (prepared * np.float32(255.0) + np.float32(0.5)).astype(np.uint8) if dtype == "uint8" else prepared
    return out


def joint_boxes(table: pd.DataFrame) -> np.ndarray:
    """The generator's joint boxes of a knee table as an int array (N, 4): joint_x0, joint_y0, joint_x1, joint_y1."""
    return table[["joint_x0", "joint_y0", "joint_x1", "joint_y1"]].to_numpy().round().astype(int)


__all__ = [
    "CONDYLE_WIDTH_RATIO", "JOINT_HALF_U", "JOINT_HALF_V", "LOCALISER_SIZE", "box_iou", "clahe", "crop_to_joint",
    "find_joint", "joint_boxes", "prepare_image", "prepare_knee_set", "to_unit_image",
]
