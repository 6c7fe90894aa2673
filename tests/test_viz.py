"""helpers.viz: display scaling, overlays and figures."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import viz


def test_to_display_with_window_is_hand_computable():
    hu = np.array([[0.0, 40.0, 80.0, 1000.0]])
    assert viz.to_display(hu, (40, 80)).tolist() == [[0.0, 0.5, 1.0, 1.0]]


def test_to_display_percentile_scales_into_unit_range():
    img = np.arange(100, dtype=np.float32).reshape(10, 10)
    out = viz.to_display(img)
    assert out.min() == 0.0 and out.max() == 1.0


def test_overlay_tints_only_the_mask():
    img = np.full((2, 2), 0.5, dtype=np.float32)
    mask = np.array([[True, False], [False, False]])
    rgb = viz.overlay(img, mask, color=(1.0, 0.0, 0.0), alpha=0.5)
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_allclose(rgb[0, 0], [0.75, 0.25, 0.25])
    np.testing.assert_allclose(rgb[1, 1], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        viz.overlay(img, np.zeros((3, 3), bool))


def test_image_grid_makes_one_panel_per_image():
    fig = viz.image_grid([np.zeros((8, 8))] * 5, titles=list("abcde"), ncols=3)
    visible = [ax for ax in fig.axes if ax.images]
    assert len(visible) == 5 and len(fig.axes) == 6
    assert [ax.get_title() for ax in visible] == list("abcde")
    with pytest.raises(ValueError):
        viz.image_grid([])


def test_image_grid_applies_one_window_per_panel():
    hu = np.array([[0.0, 40.0], [80.0, 1000.0]])
    fig = viz.image_grid([hu, hu], wins=[(40, 80), (500, 1000)], ncols=2)
    first, second = (ax.images[0].get_array() for ax in fig.axes)
    np.testing.assert_allclose(first, [[0.0, 0.5], [1.0, 1.0]])
    np.testing.assert_allclose(second, [[0.0, 0.04], [0.08, 1.0]])


def test_outline_grid_draws_contour_points_and_mask_boundaries():
    image = np.zeros((16, 16))
    square = np.array([[4, 4], [11, 4], [11, 11], [4, 11]], dtype=float)  # x, y points, as in Sunnybrook files
    mask = np.zeros((16, 16), bool)
    mask[6:10, 6:10] = True
    fig = viz.outline_grid([image, image], [{"truth": square, "prediction": mask}, {"truth": square}], ncols=2)
    first, second = fig.axes[:2]
    line = first.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [4, 11, 11, 4, 4])  # closed polygon
    np.testing.assert_array_equal(line.get_ydata(), [4, 4, 11, 11, 4])
    assert len(first.collections) == 1 and len(second.lines) == 1 and not second.collections  # the mask's trace
    assert line.get_color() == viz.OUTLINE_COLORS[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["truth", "prediction"]
    with pytest.raises(ValueError, match="one outline mapping per image"):
        viz.outline_grid([image], [])
    with pytest.raises(ValueError, match="shape"):
        viz.outline_grid([image], [{"bad": np.zeros((3, 3))}])


def test_window_explorer_is_static_when_headless(monkeypatch):
    monkeypatch.setenv("MEDIMG_HEADLESS", "1")
    presets = {"brain": (40, 80), "bone": (400, 1800)}
    fig = viz.window_explorer(np.zeros((8, 8)), presets)
    assert [ax.get_title() for ax in fig.axes] == ["brain (40, 80)", "bone (400, 1800)"]


def test_window_explorer_gives_sliders_in_a_live_kernel(monkeypatch):
    pytest.importorskip("ipywidgets")
    import sys

    monkeypatch.delenv("MEDIMG_HEADLESS", raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel") or object())
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    ui = viz.window_explorer(np.arange(64.0).reshape(8, 8), {"brain": (40, 80)}, center=30, width=20)
    sliders = {w.description: w for w in ui.children[:2]}
    assert sliders["center"].value == 30 and sliders["width"].value == 20
    assert sliders["center"].min == 0 and sliders["center"].max == 63
    assert shown == [ui]


def test_to_png_clips_and_rounds_floats_and_keeps_integer_depth():
    import io

    from PIL import Image

    from helpers.viz import to_png

    floats = np.array([[-0.5, 0.0, 0.5, 0.999, 1.7]], np.float32)
    with Image.open(io.BytesIO(to_png(floats))) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), [[0, 0, 128, 255, 255]])
    deep = np.array([[0, 1, 4095, 65535]], np.uint16)
    with Image.open(io.BytesIO(to_png(deep))) as im:
        np.testing.assert_array_equal(np.asarray(im), deep)  # 16-bit stays 16-bit
