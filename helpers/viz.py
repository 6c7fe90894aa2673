"""Figures with one look across the collection: sizes, image grids, windowed display, overlays.

Plot functions draw and return the matplotlib ``Figure``; they never call ``plt.show()`` (Jupyter
shows a returned figure; scripts save it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Figure sizes in inches: one image, a row of panels, a grid.
FIGSIZE = {"single": (4.0, 4.0), "wide": (10.0, 3.5), "grid": (10.0, 8.0)}
#: Colour for masks and lesions drawn over greyscale images.
OVERLAY_COLOR = (1.0, 0.15, 0.15)
#: Line colours of :func:`outline_grid`, in the order the outlines are named (e.g. truth green, prediction red).
OUTLINE_COLORS = ("#2ca02c", "#d62728", "#ffbf00", "#1f77b4")


def _plt():
    """matplotlib.pyplot, imported on first use (matplotlib picks a headless backend by itself)."""
    import matplotlib.pyplot as plt

    return plt


def to_display(image: np.ndarray, win: tuple[float, float] | None = None) -> np.ndarray:
    """Scale an image to [0, 1]: with a (center, width) window if given, else by its 1st-99th percentiles."""
    image = np.asarray(image, dtype=np.float32)
    if win is not None:
        from helpers.dicom import window

        return window(image, *win)
    lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0)


def to_png(image: np.ndarray) -> bytes:
    """PNG file bytes of an image: float in [0, 1] (H, W) or (H, W, 3) as 8-bit (clipped, rounded), or uint8 /
    uint16 as is. The one PNG writer of the collection (annotation widget, endpoint requests and heat maps)."""
    import io

    from PIL import Image

    array = np.asarray(image)
    if array.dtype.kind == "f":
        array = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay(image: np.ndarray, mask: np.ndarray, color: tuple[float, float, float] = OVERLAY_COLOR,
            alpha: float = 0.4) -> np.ndarray:
    """An RGB float image in [0, 1]: greyscale ``image`` (already in [0, 1]) with ``mask`` tinted ``color``."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    mask = np.asarray(mask, dtype=bool)
    if image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must have the same shape.")
    rgb = np.repeat(image[..., None], 3, axis=-1)
    tint = np.asarray(color, dtype=np.float32)
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * tint
    return rgb


def show_image(image: np.ndarray, title: str = "", win: tuple[float, float] | None = None,
               mask: np.ndarray | None = None, ax=None, colorbar: bool = False):
    """Draw one greyscale image (windowed if ``win``), optionally with a mask overlay; return the Figure."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=FIGSIZE["single"])
    else:
        fig = ax.figure
    disp = to_display(image, win)
    if mask is not None:
        ax.imshow(overlay(disp, mask))
    else:
        im = ax.imshow(disp if win is not None else image, cmap="gray",
                       vmin=0 if win is not None else None, vmax=1 if win is not None else None)
        if colorbar:
            fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, ncols: int = 4,
               win: tuple[float, float] | None = None, masks: Sequence[np.ndarray | None] | None = None,
               panel_size: float = 2.5, wins: Sequence[tuple[float, float] | None] | None = None):
    """Draw images in a grid (windowed by ``win``, or per image by ``wins``, else percentile-scaled); return the Figure."""
    plt = _plt()
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image.")
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        mask = masks[i] if masks is not None else None
        show_image(images[i], title=titles[i] if titles else "", win=wins[i] if wins is not None else win,
                   mask=mask, ax=ax)
    fig.tight_layout()
    return fig


def outline_grid(images: Sequence[np.ndarray], outlines: Sequence[Mapping[str, np.ndarray]],
                 titles: Sequence[str] | None = None, ncols: int = 4, panel_size: float = 2.5):
    """Draw percentile-scaled images with named outlines, each a contour (K, 2) of x, y pixel points (as in
    Sunnybrook's files) or a mask (H, W) whose boundary is traced; colours follow the names; return the Figure."""
    if len(outlines) != len(images):
        raise ValueError(f"give one outline mapping per image: {len(images)} images, {len(outlines)} mappings.")
    fig = image_grid(images, titles=titles, ncols=ncols, panel_size=panel_size)
    names = list(dict.fromkeys(name for item in outlines for name in item))
    colors = {name: OUTLINE_COLORS[i % len(OUTLINE_COLORS)] for i, name in enumerate(names)}
    for ax, item, image in zip(fig.axes, outlines, images):
        for name, shape in item.items():
            shape = np.asarray(shape)
            if shape.ndim == 2 and shape.shape[1] == 2 and shape.shape != np.shape(image):
                closed = np.vstack([shape, shape[:1]])
                ax.plot(closed[:, 0], closed[:, 1], color=colors[name], linewidth=1.0)
            elif shape.shape == np.shape(image):
                if shape.any():
                    ax.contour(shape.astype(float), levels=[0.5], colors=[colors[name]], linewidths=1.0)
            else:
                raise ValueError(
                    f"outline {name!r} has shape {shape.shape}: give (K, 2) points or an {np.shape(image)} mask."
                )
    handles = [_plt().Line2D([], [], color=colors[n], label=n) for n in names]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9,
                   bbox_to_anchor=(0.5, -0.02))
    return fig


def window_explorer(image: np.ndarray, presets: dict[str, tuple[float, float]], center: float = 40.0,
                    width: float = 80.0):
    """Window/level sliders over ``image`` (physical units) in a live notebook; a static preset grid when headless.

    Interactive, it displays the sliders itself and returns the ipywidgets ``interactive``; headless, it
    returns the preset ``Figure`` (Jupyter's inline backend shows it). End the notebook line with ``;``.
    """
    from helpers.config import is_headless

    if is_headless():
        names = list(presets)
        return image_grid([image] * len(names), titles=[f"{k} {presets[k]}" for k in names],
                          wins=[presets[k] for k in names], ncols=min(4, len(names)))
    import ipywidgets as widgets

    lo, hi = float(np.min(image)), float(np.max(image))

    def draw(center: float, width: float) -> None:
        show_image(image, title=f"center {center:.0f}, width {width:.0f}", win=(center, width))
        _plt().show()

    ui = widgets.interactive(
        draw,
        center=widgets.FloatSlider(value=center, min=lo, max=hi, step=1.0, description="center"),
        width=widgets.FloatSlider(value=width, min=1.0, max=hi - lo, step=1.0, description="width"),
    )
    from IPython.display import display

    display(ui)
    return ui

