"""Contours in the Sunnybrook Cardiac Data text format, and the masks they enclose.

A Sunnybrook contour file holds one point a line, ``x y`` in pixel coordinates (floats, x = column,
y = row, origin at the top-left pixel's centre), tracing a closed polygon, e.g.
``IM-0001-0048-icontour-manual.txt`` for the inner (endocardial) contour of image 48.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.errors import ContourError


def read_contour(path: str | Path) -> np.ndarray:
    """Read a Sunnybrook contour file into an ``(N, 2)`` float array of ``(x, y)`` pixel coordinates."""
    path = Path(path)
    points = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ContourError(
                f"{path.name} line {lineno}: expected 'x y', got {line!r}. "
                "Sunnybrook contour files hold two numbers a line; is this the right file?"
            )
        try:
            points.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise ContourError(f"{path.name} line {lineno}: {line!r} is not two numbers.") from None
    if len(points) < 3:
        raise ContourError(f"{path.name}: a contour needs at least 3 points, found {len(points)}.")
    return np.asarray(points, dtype=np.float64)


def write_contour(path: str | Path, points: np.ndarray) -> Path:
    """Write ``(N, 2)`` ``(x, y)`` points in the Sunnybrook text format (two decimals, one point a line)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
        raise ContourError(f"points must have shape (N>=3, 2), got {points.shape}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("%.2f %.2f\n" * len(points)) % tuple(points.ravel().tolist()))  # one format call: fast
    return path


def contour_to_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fill the polygon ``points`` (``(x, y)`` pixels) into a boolean mask of ``shape`` (rows, cols).

    Raises :class:`ContourError` if any point lies outside the image: the contour belongs to
    another image size, or x and y were swapped.
    """
    from skimage.draw import polygon

    points = np.asarray(points, dtype=np.float64)
    rows, cols = shape
    x, y = points[:, 0], points[:, 1]
    outside = (x < -0.5) | (x > cols - 0.5) | (y < -0.5) | (y > rows - 0.5)
    if outside.any():
        first = points[outside][0]
        raise ContourError(
            f"{int(outside.sum())} contour point(s) lie outside the {rows}x{cols} image "
            f"(first: x={first[0]:.1f}, y={first[1]:.1f}). Check that the contour belongs to this "
            "image and that x (column) and y (row) are not swapped."
        )
    rr, cc = polygon(y, x, shape=shape)
    mask = np.zeros(shape, dtype=bool)
    mask[rr, cc] = True
    return mask


def mask_to_contour(mask: np.ndarray) -> np.ndarray:
    """The outline of the largest region of a boolean mask as ``(N, 2)`` ``(x, y)`` points."""
    from skimage.measure import find_contours

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ContourError("The mask is empty: there is no outline to trace.")
    padded = np.pad(mask, 1).astype(float)
    outlines = find_contours(padded, 0.5)
    longest = max(outlines, key=len)
    rc = longest - 1.0  # undo the padding
    return np.stack([rc[:, 1], rc[:, 0]], axis=1)
