"""helpers.contours: the Sunnybrook text format and polygon masks."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.contours import contour_to_mask, mask_to_contour, read_contour, write_contour
from helpers.errors import ContourError


def test_write_read_round_trip(tmp_path):
    pts = np.array([[10.0, 10.0], [20.5, 10.0], [20.5, 30.25], [10.0, 30.25]])
    path = write_contour(tmp_path / "IM-0001-0048-icontour-manual.txt", pts)
    assert path.read_text().splitlines()[1] == "20.50 10.00"
    np.testing.assert_allclose(read_contour(path), pts)


def test_square_contour_fills_the_expected_pixels():
    # A square with corners at pixel centres (2,2)-(5,5): 4x4 = 16 pixels inside or on the edge.
    mask = contour_to_mask(np.array([[2, 2], [5, 2], [5, 5], [2, 5]]), (8, 8))
    assert mask.sum() == 16
    assert mask[2:6, 2:6].all() and not mask[0].any()


def test_x_is_column_and_y_is_row():
    mask = contour_to_mask(np.array([[6, 0], [7, 0], [7, 1], [6, 1]]), (8, 8))
    assert mask[0, 6] and mask[1, 7] and not mask[6, 0]


def test_points_outside_the_image_raise_with_advice():
    with pytest.raises(ContourError, match="outside the 8x8 image.*swapped"):
        contour_to_mask(np.array([[1, 1], [12, 1], [12, 4]]), (8, 8))


def test_malformed_files_raise(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3\n")
    with pytest.raises(ContourError, match="line 2"):
        read_contour(bad)
    bad.write_text("1 2\n3 4\n")
    with pytest.raises(ContourError, match="at least 3"):
        read_contour(bad)
    bad.write_text("1 2\nx y\n5 6\n")
    with pytest.raises(ContourError, match="not two numbers"):
        read_contour(bad)


def test_mask_to_contour_round_trips_a_disc():
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 30) ** 2 <= 12**2
    back = contour_to_mask(mask_to_contour(disc), disc.shape)
    dice = 2 * (back & disc).sum() / (back.sum() + disc.sum())
    assert dice > 0.97
    with pytest.raises(ContourError, match="empty"):
        mask_to_contour(np.zeros((4, 4), bool))
