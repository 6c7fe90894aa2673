"""Explaining image classifiers: Grad-CAM (PyTorch and Keras), captum attributions, and two checks of the maps.

The maps are (N, H, W) float arrays in [0, 1] at the input's size, larger = more evidence for the class.
The checks follow Adebayo et al. 2018 ("Sanity checks for saliency maps": a map that survives randomising the
weights explains the image, not the model) and the pointing game of Zhang et al. 2016 (does the map's peak fall
on the lesion?).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.train_torch import Normalize

METHODS = ("gradcam", "gradcam++")

ATTRIBUTIONS = ("integrated_gradients", "occlusion", "gradient_shap")

#: Pointing-game tolerance in pixels (Zhang et al. use 15 px on ~224 px images).
POINTING_TOLERANCE = 15


def _as_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) or one (C, H, W) / (H, W) image as a float32 batch (N, C, H, W)."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32) if isinstance(images, np.ndarray) else images)
    x = x.float()
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), (C, H, W) or (H, W); got shape {tuple(x.shape)}.")
    return x.contiguous()


def _scale_maps(maps: np.ndarray) -> np.ndarray:
    """Each map of (N, H, W) rescaled to [0, 1] by its own maximum (negative evidence clipped to 0)."""
    maps = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float32)), 0.0, None)
    top = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(maps, top, out=np.zeros_like(maps), where=top > 0)


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` of ``model`` (in registration order): Grad-CAM's default target layer."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the model has no Conv2d layer: Grad-CAM needs a convolutional feature map; "
                         "pass target_layer= explicitly.")
    return convs[-1]


def gradcam(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    output: int = 0,
    method: str = "gradcam",
    target_layer: nn.Module | None = None,
    negative: bool = False,
) -> np.ndarray:
    """Grad-CAM (or Grad-CAM++) maps (N, H, W) in [0, 1] for logit ``output`` of ``model`` (pytorch-grad-cam).

    ``target_layer`` defaults to the last convolution (:func:`last_conv`); ``negative`` explains the evidence
    *against* the output (for a one-logit binary model: the evidence for "normal"). The model is left in the
    mode it was in.
    """
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus

    if method not in METHODS:
        raise ValueError(f"method={method!r}; use one of {METHODS}.")
    x = _as_batch(images).to(next(model.parameters()).device)
    layer = target_layer if target_layer is not None else last_conv(model)
    sign = -1.0 if negative else 1.0
    targets = [lambda out, k=int(output): sign * (out[k] if out.ndim == 1 else out[:, k])] * len(x)
    was_training = model.training
    cam_class = GradCAM if method == "gradcam" else GradCAMPlusPlus
    try:
        with cam_class(model=model.eval(), target_layers=[layer]) as cam:
            maps = cam(input_tensor=x, targets=targets)
    finally:
        model.train(was_training)
    return _scale_maps(maps)


def attribution(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    output: int = 0,
    method: str = "integrated_gradients",
    steps: int = 32,
    window: int = 16,
) -> np.ndarray:
    """A captum attribution map (N, H, W) in [0, 1] for logit ``output``: positive evidence only, per-image scaled.

    ``integrated_gradients`` integrates gradients along ``steps`` points from a black image; ``occlusion`` slides
    a black ``window`` x ``window`` patch (stride half the window) and records how much the logit drops;
    ``gradient_shap`` estimates SHAP values (Lundberg and Lee's expected gradients, captum's GradientShap): ``steps``
    random points between a reference and the image, the reference drawn from a black image and the batch's mean
    image, with a little noise (SD 0.05). Its draws come from a fixed seed and leave the global random state alone.
    """
    from captum.attr import GradientShap, IntegratedGradients, Occlusion

    if method not in ATTRIBUTIONS:
        raise ValueError(f"method={method!r}; use one of {ATTRIBUTIONS}.")
    x = _as_batch(images).to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        if method == "integrated_gradients":
            attr = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=int(output),
                                                       n_steps=int(steps), internal_batch_size=max(len(x), 8))
        elif method == "gradient_shap":
            references = torch.cat([torch.zeros_like(x[:1]), x.mean(dim=0, keepdim=True)])
            numpy_state = np.random.get_state()  # captum draws the references and the points with NumPy's generator
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    np.random.seed(0)
                    attr = GradientShap(model).attribute(x, baselines=references, target=int(output),
                                                         n_samples=int(steps), stdevs=0.05)
            finally:
                np.random.set_state(numpy_state)
        else:
            c = x.shape[1]
            stride = max(int(window) // 2, 1)
            attr = Occlusion(model).attribute(x, target=int(output), sliding_window_shapes=(c, int(window), int(window)),
                                              strides=(c, stride, stride), baselines=0.0)
    finally:
        model.train(was_training)
    return _scale_maps(attr.detach().sum(dim=1).cpu().numpy())


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every learnt weight re-initialised (fixed input normalisation kept), for the
    model-randomisation sanity check; ``model`` itself is untouched."""
    twin = copy.deepcopy(model)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for module in twin.modules():
            if isinstance(module, Normalize):
                continue
            if hasattr(module, "reset_parameters") and module is not twin:
                module.reset_parameters()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
    finally:
        torch.random.set_rng_state(generator_state)
    return twin


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (N, H, W) × (N, H, W): (N,), NaN where a map is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}.")
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        x, y = a[i].ravel(), b[i].ravel()
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
    return out


@dataclasses.dataclass(frozen=True)
class SanityCheck:
    """Model-randomisation check: rank correlation of maps from the trained and the randomised model."""

    correlation: np.ndarray
    median: float
    passed: bool
    threshold: float

    def __str__(self) -> str:
        verdict = "passes" if self.passed else "FAILS"
        return (f"median rank correlation of maps, trained vs randomised weights: {self.median:.2f} "
                f"({verdict}: below {self.threshold} means the map depends on what the model learnt)")


def sanity_check(
    explain: Callable[[nn.Module, np.ndarray], np.ndarray],
    model: nn.Module,
    images: np.ndarray,
    seed: int = 0,
    threshold: float = 0.7,
) -> SanityCheck:
    """Compare ``explain(model, images)`` with ``explain(randomized_copy(model), images)``: a method whose maps
    hardly change (median Spearman correlation >= ``threshold``) shows the image's edges, not the model's reasons.

    A random network still responds to bright structures, so even a good method keeps some correlation (0.4-0.6
    for Grad-CAM on a small CNN finding a bright blob); an edge detector, blind to the model, scores 1.0."""
    trained = explain(model, images)
    randomised = explain(randomized_copy(model, seed), images)
    corr = rank_correlation(trained, randomised)
    median = float(np.nanmedian(corr)) if np.isfinite(corr).any() else float("nan")
    return SanityCheck(corr, median, bool(np.isfinite(median) and median < threshold), float(threshold))


@dataclasses.dataclass(frozen=True)
class PointingResult:
    """The pointing game: how often a map's peak lands in the lesion box (grown by ``tolerance`` px)."""

    hits: int
    n: int
    tolerance: int
    chance: float

    @property
    def hit_rate(self) -> float:
        """hits / n (NaN without boxes)."""
        return self.hits / self.n if self.n else float("nan")

    def __str__(self) -> str:
        return (f"pointing game: {self.hits}/{self.n} hits = {self.hit_rate:.2f} "
                f"(a random point would hit {self.chance:.2f}; tolerance {self.tolerance} px)")


def pointing_game(
    maps: np.ndarray,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    box_size: float | None = None,
    tolerance: int = POINTING_TOLERANCE,
) -> PointingResult:
    """Score maps (N, h, w) against lesion boxes (x0, y0, x1, y1) in pixels of an image of ``box_size`` px
    (default: the maps' size): a hit when the map's maximum lies within ``tolerance`` px of the box.

    Rows whose box holds NaN (no lesion) are skipped. ``chance`` is the mean fraction of the image the grown
    boxes cover: the hit rate of a map that points at random.
    """
    maps = np.asarray(maps, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(maps) != len(boxes):
        raise ValueError(f"{len(maps)} maps but {len(boxes)} boxes.")
    h, w = maps.shape[1:]
    scale = (float(box_size) / w if box_size else 1.0), (float(box_size) / h if box_size else 1.0)
    hits = n = 0
    cover = []
    for m, box in zip(maps, boxes):
        if not np.isfinite(box).all():
            continue
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        px, py = (x + 0.5) * scale[0], (y + 0.5) * scale[1]  # the peak pixel's centre in box coordinates
        x0, y0, x1, y1 = box[0] - tolerance, box[1] - tolerance, box[2] + tolerance, box[3] + tolerance
        hits += int(x0 <= px <= x1 and y0 <= py <= y1)
        n += 1
        width, height = w * scale[0], h * scale[1]
        area = (min(x1, width) - max(x0, 0.0)) * (min(y1, height) - max(y0, 0.0))
        cover.append(max(area, 0.0) / (width * height))
    return PointingResult(hits, n, int(tolerance), float(np.mean(cover)) if cover else float("nan"))


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """An RGB float image (H, W, 3) in [0, 1]: greyscale ``image`` (H, W) in [0, 1] under a colour-mapped map
    (resized to the image); where the map is 0 the image shows through."""
    import matplotlib

    image = np.asarray(image, dtype=np.float32)
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != image.shape:
        heat = F.interpolate(torch.from_numpy(heat)[None, None], size=image.shape, mode="bilinear",
                             align_corners=False)[0, 0].numpy()
    colours = matplotlib.colormaps[cmap](np.clip(heat, 0, 1))[..., :3]
    weight = alpha * np.clip(heat, 0, 1)[..., None]
    return np.clip((1 - weight) * np.clip(image, 0, 1)[..., None] + weight * colours, 0, 1).astype(np.float32)


def keras_gradcam(model: Any, images: np.ndarray, output: int = 0, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] for output unit ``output`` of a Keras functional model taking (N, H, W, C).

    ``layer_name`` defaults to the last layer with a 4-D output (a convolutional feature map). Gradients come from
    ``tf.GradientTape``: the weights are the spatial means of d output / d feature map, as in Selvaraju et al.
    """
    import keras
    import tensorflow as tf

    if layer_name is None:
        spatial = [layer for layer in model.layers if len(getattr(layer, "output").shape) == 4]
        if not spatial:
            raise ValueError("the Keras model has no layer with a (N, H, W, C) output; pass layer_name=.")
        layer_name = spatial[-1].name
    probe = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.outputs[0]])
    x = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
    with tf.GradientTape() as tape:
        features, out = probe(x, training=False)
        score = out[:, int(output)]
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., None]
    cam = tf.image.resize(cam, x.shape[1:3], method="bilinear")[..., 0]
    return _scale_maps(cam.numpy())


#: The PyTorch methods :func:`explain_all` runs, by the name tables show.
ALL_METHODS = ("Grad-CAM", "Grad-CAM++", "Integrated Gradients", "SHAP (GradientShap)", "Occlusion")


def explain_all(model: nn.Module, images: np.ndarray, methods: Sequence[str] = ALL_METHODS,
                output: int = 0) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Maps (N, H, W) of every method in ``methods`` (names of :data:`ALL_METHODS`) for logit ``output``, and the
    seconds each took."""
    import time

    run = {
        "Grad-CAM": lambda: gradcam(model, images, output, "gradcam"),
        "Grad-CAM++": lambda: gradcam(model, images, output, "gradcam++"),
        "Integrated Gradients": lambda: attribution(model, images, output, "integrated_gradients"),
        "SHAP (GradientShap)": lambda: attribution(model, images, output, "gradient_shap"),
        "Occlusion": lambda: attribution(model, images, output, "occlusion", window=max(images.shape[-1] // 8, 4)),
    }
    unknown = sorted(set(methods) - set(run))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(run)}.")
    maps, seconds = {}, {}
    for name in methods:
        start = time.perf_counter()
        maps[name] = run[name]()
        seconds[name] = time.perf_counter() - start
    return maps, seconds


def localisation_table(maps: dict[str, np.ndarray], boxes: np.ndarray, box_size: float | None = None,
                       tolerance: int = POINTING_TOLERANCE, seconds: dict[str, float] | None = None) -> Any:
    """One row per method: pointing-game hits, n, hit rate and chance (and seconds per image when given)."""
    import pandas as pd

    rows = []
    for name, m in maps.items():
        r = pointing_game(m, boxes, box_size=box_size, tolerance=tolerance)
        row = {"method": name, "hits": r.hits, "n": r.n, "hit rate": round(r.hit_rate, 3), "chance": round(r.chance, 3)}
        if seconds is not None:
            row["s per image"] = round(seconds[name] / max(len(m), 1), 3)
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def plot_explanations(images: np.ndarray, maps: dict[str, np.ndarray], boxes: np.ndarray | None = None,
                      box_size: float | None = None, titles: Sequence[str] | None = None):
    """A grid: one row per image (N, H, W) in [0, 1], the image then each method's map over it; lesion boxes
    (x0, y0, x1, y1, in pixels of a ``box_size`` px image) drawn in green. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images[:, 0]
    n, cols = len(images), 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(2.2 * cols, 2.2 * n), squeeze=False)
    scale = (images.shape[-1] / float(box_size)) if box_size else 1.0
    for i in range(n):
        panels = [("image", images[i])] + [(name, heatmap_overlay(images[i], m[i])) for name, m in maps.items()]
        for j, (name, picture) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
            if boxes is not None and np.isfinite(boxes[i]).all():
                x0, y0, x1, y1 = np.asarray(boxes[i], dtype=float) * scale
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#2ca02c", linewidth=1.2))
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0 and titles is not None:
                ax.set_ylabel(titles[i], fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig
