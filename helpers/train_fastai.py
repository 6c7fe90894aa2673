"""fastai image classification for the knee fracture lesson: DataLoaders from in-memory arrays, losses for
imbalance (weighted cross-entropy, focal), a vision learner, fitting with a history table, interpretation,
Grad-CAM, and two ways to learn from unlabelled images (FixMatch, SimCLR) in plain PyTorch.

Conventions, shared by every function here:

* Images come in as greyscale arrays ``(N, H, W)`` (or ``(N, 1, H, W)``): uint8 0..255, or floats in
  [0, 1] (bright = dense, e.g. from :func:`helpers.knee.prepare_knee_set`). Models see them as 3-channel
  tensors (the grey copied to R, G and B) normalised with the ImageNet statistics, exactly what
  :func:`to_input` makes and what the DataLoaders of :func:`dls_from_arrays` give, so a fastai model,
  Grad-CAM, FixMatch and SimCLR all take the same input and pretrained weights see what they expect.
* Labels are integers 0 / 1 (1 = fracture); models give 2 logits (softmax over the classes).
* Nothing downloads on its own: ``pretrained=True`` needs the ImageNet weights in the torch hub cache, and
  raises :class:`helpers.errors.WeightsUnavailable` offline. The self-supervised start
  (:func:`simclr_pretrain`, then ``make_learner(..., encoder_state=...)``) needs no download.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
import urllib.error
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

with warnings.catch_warnings():
    # Two import-time warnings of fastai 2.8 that every notebook would show, about code this module never runs:
    # fastai.layers decorates activations with the deprecated torch.jit.script, and fastai.tabular sets a pandas
    # option that pandas 3 deprecates.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*mode\.chained_assignment.*deprecated")
    import fastai.callback.progress  # noqa: F401  (adds Learner.no_bar)
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.callback.core import Callback
    from fastai.callback.data import WeightedDL  # noqa: F401  (adds DataBlock.weighted_dataloaders)
    from fastai.data.block import CategoryBlock, DataBlock
    from fastai.data.core import DataLoaders
    from fastai.data.transforms import IndexSplitter
    from fastai.learner import Learner, Recorder
    from fastai.losses import CrossEntropyLossFlat, FocalLossFlat
    from fastai.metrics import RocAucBinary, accuracy
    from fastai.vision.augment import Normalize, aug_transforms
    from fastai.vision.core import PILImage, imagenet_stats
    from fastai.vision.data import ImageBlock
    from fastai.vision.learner import create_body, create_vision_model, model_meta, vision_learner

from helpers import live
from helpers.config import is_headless
from helpers.errors import WeightsUnavailable
from helpers.metrics import confusion, roc_auc
from helpers.train_torch import batched_outputs

#: Architectures :func:`make_learner`, :func:`make_model` and :func:`make_encoder` know by name: a small CNN for
#: CPUs (:func:`small_cnn_body`) and torchvision ResNets.
ARCHS = ("small_cnn", "resnet18", "resnet34", "resnet50")
#: Losses :func:`make_learner` knows.
LOSSES = ("ce", "weighted_ce", "focal")
#: ImageNet mean and SD per channel (what pretrained weights expect; every model here is fed this way).
IMAGENET_MEAN, IMAGENET_STD = tuple(imagenet_stats[0]), tuple(imagenet_stats[1])
#: Columns of the table :func:`interpretation` gives for the top losses.
TOP_LOSS_COLUMNS = ["index", "actual", "predicted", "loss", "probability"]


# --- Arrays in, tensors out ------------------------------------------------------------------------------


def _grey_uint8(images: np.ndarray) -> np.ndarray:
    """Images (N, H, W) or (N, 1, H, W), uint8 or [0, 1] floats, as uint8 (N, H, W) 0..255."""
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"images must be greyscale (N, H, W) or (N, 1, H, W), got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        return arr
    if arr.size and (float(np.nanmin(arr)) < -1e-6 or float(np.nanmax(arr)) > 1 + 1e-6):
        raise ValueError(f"float images must lie in [0, 1] (got {np.nanmin(arr):.3g}..{np.nanmax(arr):.3g}); "
                         "scale them first (helpers.knee.to_unit_image) or pass uint8 0..255.")
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _grey_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images (N, H, W) or (N, 1, H, W) as a float32 tensor (N, 1, H, W) in [0, 1] (uint8 divided by 255)."""
    if isinstance(images, torch.Tensor):
        t = images.detach().cpu()
        t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    else:
        arr = np.asarray(images)
        t = torch.from_numpy(arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32))
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"images must be greyscale (N, H, W) or (N, 1, H, W), got shape {tuple(t.shape)}.")
    return t


def _normalise(grey: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) in [0, 1] to (N, 3, H, W) normalised with the ImageNet statistics."""
    mean = torch.tensor(IMAGENET_MEAN, device=grey.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=grey.device).view(1, 3, 1, 1)
    return (grey.expand(-1, 3, -1, -1) - mean) / std


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Greyscale images (N, H, W), uint8 or [0, 1], as model input: float32 (N, 3, H, W), ImageNet-normalised."""
    return _normalise(_grey_float(images))


class _ArrayImage:
    """Getter for a DataBlock: item index -> 3-channel PILImage of ``images[index]`` (picklable, unlike a lambda)."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __call__(self, index: int) -> PILImage:
        return PILImage.create(self.images[int(index)])


class _ArrayLabel:
    """Getter for a DataBlock: item index -> its integer label."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def __call__(self, index: int) -> int:
        return int(self.labels[int(index)])


def xray_batch_tfms(augment: bool = True, flip: bool = True, size: int | None = None) -> list:
    """Radiograph batch transforms: rotate ±10°, zoom 1-1.1, no warp, lighting ±20 %, flip, ImageNet normalisation.

    ``flip`` mirrors left-right; right for knees (a mirrored right knee is a plausible left knee, and
    the set holds both), wrong for a chest film (the heart would change side). No vertical flips:
    an upside-down knee never reaches the model. ``augment=False`` keeps only the normalisation.
    """
    tfms: list = []
    if augment:
        tfms += aug_transforms(do_flip=flip, flip_vert=False, max_rotate=10.0, max_zoom=1.1, max_lighting=0.2,
                               max_warp=0.0, p_affine=0.75, p_lighting=0.75, size=size, pad_mode="zeros")
    tfms.append(Normalize.from_stats(*imagenet_stats))
    return tfms


def class_weights(labels: Sequence[int] | np.ndarray, n_classes: int = 2) -> torch.Tensor:
    """Inverse-frequency class weights N / (K * count_k): labels [0, 0, 0, 1] -> [0.667, 2.0] (mean 1 per image)."""
    y = np.asarray(labels).astype(int).ravel()
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"class counts {counts.astype(int).tolist()}: every class needs at least one training image "
                         "to be weighted; check the split (stratify by label).")
    return torch.tensor(len(y) / (n_classes * counts), dtype=torch.float32)


def dls_from_arrays(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    valid_idx: Sequence[int] | np.ndarray,
    bs: int = 32,
    item_tfms: list | None = None,
    batch_tfms: list | None = None,
    sampler: str | None = None,
    augment: bool = True,
    flip: bool = True,
    num_workers: int = 0,
    device: str | torch.device | None = None,
) -> DataLoaders:
    """fastai DataLoaders from in-memory images (N, H, W) and 0/1 labels (N,); ``valid_idx``: validation images.

    A DataBlock whose getters read the arrays: each image becomes a 3-channel PILImage (grey copied),
    labels a category (vocab [0, 1]). ``item_tfms`` default to none (the arrays are already one size;
    pass ``[Resize(128)]`` otherwise), ``batch_tfms`` to :func:`xray_batch_tfms` (``augment``, ``flip``).
    ``sampler="weighted"`` draws training images with probability proportional to 1 / (count of their
    class) (fastai's WeightedDL), so batches are balanced on average; an epoch keeps N draws with
    replacement. Validation is never augmented or re-weighted. ``num_workers=0`` is fastest for
    in-memory arrays (no worker start-up). Shuffling uses the global RNGs: call
    ``helpers.config.seed_everything`` first for repeatable batches.
    """
    imgs = _grey_uint8(images)
    y = np.asarray(labels).astype(int).ravel()
    if len(y) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(y)} labels: they must pair up one to one.")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"labels must be 0 or 1 (1 = finding), got {sorted(set(np.unique(y).tolist()))[:5]}.")
    valid = np.asarray(valid_idx, dtype=int).ravel()
    if valid.size == 0 or valid.size >= len(y):
        raise ValueError(f"valid_idx holds {valid.size} of {len(y)} images: both training and validation need some.")
    if valid.min() < 0 or valid.max() >= len(y) or len(np.unique(valid)) != valid.size:
        raise ValueError("valid_idx must hold distinct indices between 0 and len(images) - 1.")
    if sampler not in (None, "weighted"):
        raise ValueError(f"sampler={sampler!r}; use None (shuffle) or 'weighted' (balanced classes).")
    block = DataBlock(
        blocks=(ImageBlock(cls=PILImage), CategoryBlock(vocab=[0, 1])),
        get_x=_ArrayImage(imgs),
        get_y=_ArrayLabel(y),
        splitter=IndexSplitter(valid.tolist()),
        item_tfms=list(item_tfms) if item_tfms is not None else [],
        batch_tfms=list(batch_tfms) if batch_tfms is not None else xray_batch_tfms(augment=augment, flip=flip),
    )
    source = list(range(len(y)))
    kwargs: dict[str, Any] = {"bs": int(bs), "num_workers": int(num_workers)}
    if device is not None:
        kwargs["device"] = torch.device(device)
    if sampler == "weighted":
        per_image = class_weights(y).numpy()[y]
        dls = block.weighted_dataloaders(source, wgts=per_image, **kwargs)
    else:
        dls = block.dataloaders(source, **kwargs)
    if live.enabled():  # what live mode fingerprints a Learner on these DataLoaders by
        dls.medimg_fingerprint = live.digest(imgs, y, valid, int(bs), _names_of(item_tfms), _names_of(batch_tfms),
                                             sampler, augment, flip)
    return dls


def _names_of(transforms: Sequence[Any] | None) -> list[str] | None:
    """Transforms by class and settings (their repr), for live mode's fingerprint."""
    return None if transforms is None else [f"{type(t).__qualname__}:{t!r}" for t in transforms]


# --- Losses ------------------------------------------------------------------------------------------------


def focal_loss(gamma: float = 2.0, weight: torch.Tensor | Sequence[float] | None = None) -> FocalLossFlat:
    """fastai's FocalLossFlat: cross-entropy times (1 - p_true)**gamma (0 = plain CE), optional class ``weight``."""
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0 (2 is usual), got {gamma}.")
    w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
    return FocalLossFlat(gamma=float(gamma), weight=w)


def weighted_ce(weight: torch.Tensor | Sequence[float]) -> CrossEntropyLossFlat:
    """fastai's CrossEntropyLossFlat with class weights, e.g. ``weighted_ce(class_weights(train_labels))``."""
    return CrossEntropyLossFlat(weight=torch.as_tensor(weight, dtype=torch.float32))


# --- Models and learners ---------------------------------------------------------------------------------------


def small_cnn_body(width: int = 16) -> nn.Sequential:
    """A CPU-sized body: 4 x (conv 3x3, BatchNorm, ReLU, max-pool 2), 3 to 8 * ``width`` channels (98 k weights at 16)."""
    layers: list[nn.Module] = []
    channels = 3
    for k in range(4):
        out = int(width) * 2**k
        layers.append(nn.Sequential(nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                                    nn.ReLU(inplace=True), nn.MaxPool2d(2)))
        channels = out
    return nn.Sequential(*layers)


def _small_cnn(n_out: int, encoder_state: dict[str, torch.Tensor] | None = None) -> nn.Sequential:
    """:func:`small_cnn_body` and a head (average pool, dropout 0.2, linear to ``n_out``), as (body, head)."""
    body = small_cnn_body()
    if encoder_state is not None:
        body.load_state_dict(encoder_state)
    n_features = body[-1][0].out_channels
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(n_features, n_out))
    return nn.Sequential(body, head)


def _body_head_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai parameter groups of a (body, head) model: body, head (what ``freeze`` and discriminative rates use)."""
    return [list(model[0].parameters()), list(model[1].parameters())]


def _no_imagenet_weights(arch: str) -> ValueError:
    """The error for ``pretrained=True`` with an architecture that has no ImageNet weights."""
    return ValueError(f"{arch} has no ImageNet weights: use pretrained=False, or a self-supervised start "
                      "(simclr_pretrain, then encoder_state=...).")


def _arch(arch: str | Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """The torchvision constructor named ``arch`` (or ``arch`` itself when it is a callable)."""
    if callable(arch):
        return arch
    from torchvision import models

    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}; use one of {', '.join(ARCHS)} or pass a torchvision model function.")
    return getattr(models, arch)


def _offline_error(arch: Any, exc: Exception) -> WeightsUnavailable:
    """The WeightsUnavailable raised when pretrained weights cannot be fetched."""
    name = getattr(arch, "__name__", str(arch))
    return WeightsUnavailable(
        f"The ImageNet weights of {name} could not be downloaded ({type(exc).__name__}: {exc}). Offline, use "
        "pretrained=False (random start), or the self-supervised start: state, _ = simclr_pretrain(make_encoder(), "
        "unlabelled_images, ...) then make_learner(dls, encoder_state=state). To use ImageNet weights, download them "
        "once on a connected machine (torchvision caches them under $TORCH_HOME/hub/checkpoints) and copy the file "
        "to the same place here."
    )


def make_encoder(arch: str | Callable[..., nn.Module] = "resnet18") -> nn.Module:
    """A randomly initialised convolutional body (no head), the same module as ``make_learner(...).model[0]``."""
    if arch == "small_cnn":
        return small_cnn_body()
    fn = _arch(arch)
    meta = model_meta.get(fn, {"cut": None})
    return create_body(fn(weights=None), n_in=3, pretrained=False, cut=meta.get("cut"))


def make_model(
    arch: str | Callable[..., nn.Module] = "resnet18",
    n_out: int = 2,
    pretrained: bool = False,
    encoder_state: dict[str, torch.Tensor] | None = None,
) -> nn.Sequential:
    """A fastai vision model (body, head) for plain PyTorch loops: :func:`to_input` tensors in, ``n_out`` logits out."""
    if arch == "small_cnn":
        if pretrained:
            raise _no_imagenet_weights(arch)
        return _small_cnn(n_out, encoder_state)
    fn = _arch(arch)
    try:
        model = create_vision_model(fn, n_out, pretrained=pretrained)
    except (OSError, urllib.error.URLError) as exc:
        raise _offline_error(fn, exc) from exc
    if encoder_state is not None:
        model[0].load_state_dict(encoder_state)
    return model


def make_learner(
    dls: DataLoaders,
    arch: str | Callable[..., nn.Module] = "resnet18",
    pretrained: bool = False,
    loss: str = "ce",
    metrics: Sequence[Any] | None = None,
    gamma: float = 2.0,
    weights: torch.Tensor | Sequence[float] | None = None,
    encoder_state: dict[str, torch.Tensor] | None = None,
    **kwargs: Any,
) -> Learner:
    """A fastai ``vision_learner`` for the DataLoaders: ``arch`` from torchvision, 3-channel input, 2 outputs.

    ``arch="small_cnn"`` (:func:`small_cnn_body`, ~0.1 M weights) is a plain fastai ``Learner`` with the
    same (body, head) layout: on a CPU it learns the generated knee fractures where a ResNet-18 from
    random weights (11 M) does not yet, in the epochs a lesson can afford.

    ``loss`` is ``"ce"`` (cross-entropy), ``"weighted_ce"`` (class weights ``weights``, default
    :func:`class_weights` of the training labels) or ``"focal"`` (:func:`focal_loss` with ``gamma`` and
    optional ``weights``). ``metrics`` default to ``[RocAucBinary(), accuracy]``. ``pretrained=True``
    loads ImageNet weights (freezing the body, so :func:`fit` fine-tunes) and raises WeightsUnavailable
    when they cannot be downloaded; ``encoder_state`` (from :func:`simclr_pretrain`) loads a
    self-supervised body instead. Other ``kwargs`` go to ``vision_learner`` (e.g. ``ps``, ``wd``).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r}; use one of {', '.join(LOSSES)}.")
    device = dls.device if dls.device is not None else torch.device("cpu")
    w = None
    if loss == "weighted_ce" and weights is None:
        weights = class_weights(_train_labels(dls), n_classes=len(dls.vocab))
    if weights is not None:
        w = torch.as_tensor(weights, dtype=torch.float32).to(device)
    if loss == "ce":
        loss_func: Any = CrossEntropyLossFlat()
    elif loss == "weighted_ce":
        loss_func = weighted_ce(w)
    else:
        loss_func = focal_loss(gamma, w)
    metric_list = list(metrics) if metrics is not None else [RocAucBinary(), accuracy]
    stamp = None
    if live.enabled() and isinstance(getattr(dls, "medimg_fingerprint", None), str):
        stamp = live.digest(dls.medimg_fingerprint, arch, pretrained, loss, gamma, weights, encoder_state, kwargs,
                            [getattr(m, "name", getattr(m, "__name__", type(m).__qualname__)) for m in metric_list])
    if arch == "small_cnn":
        if pretrained:
            raise _no_imagenet_weights(arch)
        model = _small_cnn(len(dls.vocab), encoder_state)
        learn = Learner(dls, model, loss_func=loss_func, metrics=metric_list, splitter=_body_head_split, **kwargs)
        learn.pretrained = False
        if stamp is not None:
            learn.medimg_fingerprint = stamp
        return learn
    fn = _arch(arch)
    try:
        learn = vision_learner(dls, fn, pretrained=pretrained, n_out=len(dls.vocab), loss_func=loss_func,
                               metrics=metric_list, **kwargs)
    except (OSError, urllib.error.URLError) as exc:
        raise _offline_error(fn, exc) from exc
    if encoder_state is not None:
        learn.model[0].load_state_dict(encoder_state)
    if stamp is not None:
        learn.medimg_fingerprint = stamp
    return learn


def _train_labels(dls: DataLoaders) -> list[int]:
    """Integer labels of the training items (their category index), read from the getters without loading images."""
    labels = dls.train_ds.tls[1]
    return [int(labels[i]) for i in range(len(labels))]


# --- Fitting ---------------------------------------------------------------------------------------------------


class _History(Callback):
    """Collects one row per epoch (across both stages of ``fine_tune``): stage, losses, metrics, seconds."""

    order = Recorder.order + 1  # after the Recorder has written this epoch's values

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.stage = "train"

    def before_epoch(self) -> None:
        self.started = time.perf_counter()

    def after_epoch(self) -> None:
        names = [n for n in self.learn.recorder.metric_names[1:] if n != "time"]
        values = list(self.learn.final_record)
        row: dict[str, Any] = {"epoch": len(self.rows) + 1, "stage": self.stage}
        row.update({n: (float(v) if v is not None else float("nan")) for n, v in zip(names, values)})
        row["seconds"] = time.perf_counter() - self.started
        self.rows.append(row)


@live.reusable(mutates="learner")
def fit(
    learner: Learner,
    epochs: int,
    lr: float | None = None,
    freeze_epochs: int = 1,
    quiet: bool | None = None,
) -> pd.DataFrame:
    """Train (``fine_tune`` when pretrained, else ``fit_one_cycle``) and return one row per epoch.

    ``lr`` is the peak learning rate (default 2e-3, fastai's ``fine_tune`` default; for a random start
    the same value trains resnet18 well on small sets). Returns one row per epoch: epoch, stage
    (``frozen`` / ``unfrozen`` / ``train``), train_loss (fastai's smoothed running loss), valid_loss,
    one column per metric (e.g. roc_auc_score, accuracy) and seconds. ``quiet`` (default: when
    headless, see :func:`helpers.config.is_headless`) hides fastai's progress bar and epoch table so
    notebooks run by papermill stay clean.
    """
    if int(epochs) < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    lr = 2e-3 if lr is None else float(lr)
    quiet = is_headless() if quiet is None else bool(quiet)
    history = _History()
    learner.add_cb(history)
    try:
        with contextlib.ExitStack() as stack:
            if quiet:
                stack.enter_context(learner.no_bar())
                stack.enter_context(learner.no_logging())
            if getattr(learner, "pretrained", False):
                learner.freeze()
                history.stage = "frozen"
                learner.fit_one_cycle(int(freeze_epochs), slice(lr), pct_start=0.99)
                learner.unfreeze()
                history.stage = "unfrozen"
                learner.fit_one_cycle(int(epochs), slice(lr / 2 / 100, lr / 2), pct_start=0.3, div=5.0)
            else:
                learner.fit_one_cycle(int(epochs), lr)
    finally:
        learner.remove_cb(history)
    return pd.DataFrame(history.rows)


def interpretation(learner: Learner, k: int = 9) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(confusion table, top-``k`` losses table) of the validation set: fastai's ClassificationInterpretation as data.

    One pass of ``get_preds`` over the validation set gives the probabilities, labels and per-image
    losses from which ``ClassificationInterpretation`` builds its confusion matrix and ``top_losses``.
    The confusion table has rows ``true: <class>`` and columns ``predicted: <class>``
    (:func:`helpers.metrics.confusion`). The top-losses table has columns index (position in the
    arrays given to :func:`dls_from_arrays`, to show the image), actual, predicted, loss and
    probability (of the predicted class), worst first. To plot them use
    ``ClassificationInterpretation.from_learner(learner).plot_top_losses(k)``.
    """
    dl = learner.dls.valid.new(shuffle=False, drop_last=False)
    with learner.no_bar():
        probs, targets, losses = learner.get_preds(dl=dl, with_loss=True)
    vocab = list(learner.dls.vocab)
    predicted = probs.argmax(dim=1)
    table = confusion([vocab[int(t)] for t in targets], [vocab[int(p)] for p in predicted], labels=vocab)
    k = min(int(k), len(losses))
    top_loss, top_idx = losses.topk(k)
    items = list(dl.items)
    top = pd.DataFrame({
        "index": [int(items[int(i)]) for i in top_idx],
        "actual": [vocab[int(targets[int(i)])] for i in top_idx],
        "predicted": [vocab[int(predicted[int(i)])] for i in top_idx],
        "loss": [float(v) for v in top_loss],
        "probability": [float(probs[int(i), int(predicted[int(i)])]) for i in top_idx],
    }, columns=TOP_LOSS_COLUMNS)
    return table, top


def predict_proba(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Probability of class 1 (softmax of 2 logits) for greyscale images (N, H, W); model's device, eval mode."""
    out = batched_outputs(model, _grey_float(images), batch_size, prepare=_normalise,
                          head=lambda logits: torch.softmax(logits.float(), dim=1)[:, 1])
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


# --- Grad-CAM ----------------------------------------------------------------------------------------------------


def _last_spatial_module(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The module finishing last in a forward pass with an (N, C, H, W) output above 1 x 1: the last conv block."""
    found: list[nn.Module] = []

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[-1] * output.shape[-2] > 1:
            found.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not found:
        raise ValueError("The model has no layer with a spatial (N, C, H, W) output: Grad-CAM needs a convolutional "
                         "model; pass target_layer= explicitly.")
    return found[-1]


def gradcam(
    model: nn.Module,
    image_tensor: torch.Tensor,
    target_layer: nn.Module | None = None,
    class_idx: int = 1,
) -> np.ndarray:
    """Grad-CAM heat map (H, W) in [0, 1] of class ``class_idx`` for one model input (3, H, W) or (1, 3, H, W).

    Hooks record the activations A_k of ``target_layer`` (default: the last module with a spatial
    output, e.g. a fastai ResNet's body = its last residual block) and the gradient of the class
    logit; the map is ReLU(sum_k mean(dlogit/dA_k) * A_k), bilinearly resized to the input and divided
    by its maximum (all zeros when nothing speaks for the class: common for untrained models). Input
    as :func:`to_input` makes it. The map is as coarse as the layer: a ResNet's last block is 1/32 of
    the input (4 x 4 at 128 px, 2 x 2 at 64 px); ``target_layer=model[0][6]`` (layer3, 1/16) gives a
    finer one. The model is left in the mode it was in; no gradient is kept on its weights.
    """
    x = image_tensor if image_tensor.ndim == 4 else image_tensor[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"gradcam takes one image (C, H, W) or (1, C, H, W), got shape {tuple(image_tensor.shape)}.")
    device = next(model.parameters()).device
    x = x.detach().to(device).float()
    was_training = model.training
    model.eval()
    try:
        layer = target_layer if target_layer is not None else _last_spatial_module(model, x)
        store: dict[str, torch.Tensor] = {}

        def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            store["act"] = output

        handle = layer.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                x.requires_grad_(True)  # gradients flow even when the weights are frozen
                logits = model(x)
                if not 0 <= int(class_idx) < logits.shape[1]:
                    raise ValueError(f"class_idx={class_idx} but the model gives {logits.shape[1]} outputs.")
                grad_logit = torch.autograd.grad(logits[0, int(class_idx)], store["act"], retain_graph=False)[0]
        finally:
            handle.remove()
        act = store["act"].detach()
        alpha = grad_logit.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((alpha * act).sum(dim=1, keepdim=True))
        if cam.shape[-2:] != x.shape[-2:]:
            cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
        cam = cam[0, 0].clamp(min=0)
        top = float(cam.max())
        cam = cam / top if top > 0 else torch.zeros_like(cam)
        return cam.cpu().numpy().astype(np.float32)
    finally:
        model.train(was_training)


# --- Augmentation for the plain-PyTorch loops ----------------------------------------------------------------


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` draws from U(low, high) with generator ``gen`` (CPU)."""
    return low + (high - low) * torch.rand(n, generator=gen)


def _affine(x: torch.Tensor, gen: torch.Generator, rotate: float, zoom: tuple[float, float], shift: float,
            flip: bool) -> torch.Tensor:
    """Per-image random rotation (± ``rotate`` °), zoom (>1 enlarges), shift (of the size), flip; black outside."""
    n = x.shape[0]
    angle = torch.deg2rad(_uniform(n, -rotate, rotate, gen))
    scale = 1.0 / _uniform(n, zoom[0], zoom[1], gen)
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    tx, ty = _uniform(n, -2 * shift, 2 * shift, gen), _uniform(n, -2 * shift, 2 * shift, gen)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def weak_augment(x: torch.Tensor, gen: torch.Generator, flip: bool = True) -> torch.Tensor:
    """FixMatch's weak view of (N, 1, H, W) images in [0, 1]: left-right flip and a shift of up to 12.5 %."""
    return _affine(x, gen, rotate=0.0, zoom=(1.0, 1.0), shift=0.125, flip=flip)


def strong_augment(x: torch.Tensor, gen: torch.Generator, flip: bool = True, cutout: bool = True) -> torch.Tensor:
    """A strong view of (N, 1, H, W) images in [0, 1]: rotate ±25°, zoom 0.8-1.25, shift 15 %, flip, contrast and
    brightness ±30 %, Gaussian noise (SD up to 0.05) and, with ``cutout``, one grey square of 25-50 % of the side."""
    n, _, h, w = x.shape
    out = _affine(x, gen, rotate=25.0, zoom=(0.8, 1.25), shift=0.15, flip=flip)
    contrast = _uniform(n, 0.7, 1.3, gen).view(n, 1, 1, 1).to(x.device)
    bright = _uniform(n, -0.3, 0.3, gen).view(n, 1, 1, 1).to(x.device)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + bright
    sd = _uniform(n, 0.0, 0.05, gen).view(n, 1, 1, 1).to(x.device)
    out = out + sd * torch.randn(out.shape, generator=gen).to(x.device)
    if cutout:
        side = (_uniform(n, 0.25, 0.5, gen) * min(h, w)).long()
        cy, cx = (torch.rand(n, generator=gen) * h).long(), (torch.rand(n, generator=gen) * w).long()
        ys = torch.arange(h).view(1, h, 1)
        xs = torch.arange(w).view(1, 1, w)
        half = (side // 2).view(n, 1, 1)
        box = ((ys - cy.view(n, 1, 1)).abs() <= half) & ((xs - cx.view(n, 1, 1)).abs() <= half)
        out = torch.where(box[:, None].to(x.device), torch.full_like(out, 0.5), out)
    return out.clamp(0.0, 1.0)


# --- FixMatch -------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators (dropout draws from them) inside, and restore the caller's state after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int
) -> dict[str, float]:
    """valid_loss (cross-entropy), valid_auc (NaN with one class) and valid_accuracy of ``model`` on (x, y)."""
    model.eval()
    logits = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            logits.append(model(_normalise(x[i:i + batch_size].to(device))).float().cpu())
    out = torch.cat(logits)
    loss = float(F.cross_entropy(out, y))
    p1 = torch.softmax(out, dim=1)[:, 1].numpy()
    yn = y.numpy()
    auc = roc_auc(yn, p1) if len(np.unique(yn)) == 2 else float("nan")
    return {"valid_loss": loss, "valid_auc": float(auc), "valid_accuracy": float((out.argmax(1) == y).float().mean())}


def fixmatch_loss(
    logits_labelled: torch.Tensor,
    labels: torch.Tensor,
    logits_weak: torch.Tensor,
    logits_strong: torch.Tensor,
    threshold: float = 0.95,
    lambda_u: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """FixMatch's loss: (total, CE of the labelled batch, masked CE of strong views on weak-view pseudo-labels, mask).

    Pseudo-label = argmax of the softmax on the weak view (no gradient), kept where its probability
    is >= ``threshold``; the unlabelled term averages over all unlabelled images (masked ones count
    0). Hand case: labelled logits [[0, 0]] with label 0, weak [[10, 0], [0, 0]], strong [[0, 0],
    [5, 0]] give CE log 2, mask [1, 0], unlabelled term log(2) / 2, total log 2 + lambda_u log(2) / 2.
    """
    supervised = F.cross_entropy(logits_labelled, labels)
    conf, pseudo = torch.softmax(logits_weak.detach().float(), dim=1).max(dim=1)
    mask = (conf >= threshold).float()
    unlabelled = (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()
    return supervised + lambda_u * unlabelled, supervised, unlabelled, mask


@dataclasses.dataclass
class _SemiData:
    """The tensors a semi-supervised run reads: labelled images and labels, unlabelled images (and their labels when
    known, for reporting only), validation images and labels (None when not given)."""

    x_l: torch.Tensor
    y_l: torch.Tensor
    x_u: torch.Tensor | None
    y_u: torch.Tensor | None
    x_v: torch.Tensor | None
    y_v: torch.Tensor | None


def _labels_tensor(labels: Sequence[int] | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(labels).astype(np.int64).ravel())


def _semi_data(labelled_images: np.ndarray, labels: Sequence[int] | np.ndarray, unlabelled_images: np.ndarray | None,
               valid_images: np.ndarray | None, valid_labels: Sequence[int] | np.ndarray | None,
               unlabelled_labels: Sequence[int] | np.ndarray | None) -> _SemiData:
    """The inputs of :func:`fixmatch` and :func:`mixmatch` as tensors, checked (labelled images and labels pair up)."""
    x_l, y_l = _grey_float(labelled_images), _labels_tensor(labels)
    if len(x_l) != len(y_l) or len(y_l) == 0:
        raise ValueError(f"{len(x_l)} labelled images but {len(y_l)} labels: they must pair up and not be empty.")
    x_u = _grey_float(unlabelled_images) if unlabelled_images is not None and len(unlabelled_images) else None
    y_u = _labels_tensor(unlabelled_labels) if unlabelled_labels is not None and x_u is not None else None
    have_valid = valid_images is not None and valid_labels is not None
    return _SemiData(x_l, y_l, x_u, y_u, _grey_float(valid_images) if have_valid else None,
                     _labels_tensor(valid_labels) if have_valid else None)


def _draw(n_items: int, k: int, queue: list[int], gen: torch.Generator) -> list[int]:
    """Next ``k`` indices of shuffled passes over ``n_items`` (reshuffled each pass), from ``queue``."""
    while len(queue) < k:
        queue.extend(torch.randperm(n_items, generator=gen).tolist())
    taken = queue[:k]
    del queue[:k]
    return taken


@live.reusable(mutates="model")
def fixmatch(
    model: nn.Module,
    labelled_images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    unlabelled_images: np.ndarray | None,
    valid_images: np.ndarray | None = None,
    valid_labels: Sequence[int] | np.ndarray | None = None,
    epochs: int = 5,
    batch_size: int = 16,
    mu: int = 3,
    threshold: float = 0.95,
    lambda_u: float = 1.0,
    rampup: float = 0.2,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    steps_per_epoch: int | None = None,
    flip: bool = True,
    unlabelled_labels: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    device: str | None = None,
) -> tuple[nn.Module, pd.DataFrame]:
    """FixMatch (Sohn et al. 2020) on a few labelled plus unlabelled images: (trained copy of ``model``, history).

    Each step takes ``batch_size`` labelled images (weak view) and ``mu * batch_size`` unlabelled
    ones, seen twice: weakly (:func:`weak_augment`) and strongly (:func:`strong_augment`). Where the
    model's softmax on the weak view exceeds ``threshold`` its argmax becomes a pseudo-label for the
    strong view. Loss: :func:`fixmatch_loss`, its unlabelled weight rising linearly from 0 to
    ``lambda_u`` over the first ``rampup`` fraction of all steps (0: full weight at once, as in the
    paper): a randomly initialised fastai head is confident from the start (a quarter of its
    pseudo-labels pass 0.95 at chance accuracy), so early pseudo-labels are noise. AdamW with a
    one-cycle schedule. An epoch is ``steps_per_epoch`` steps (default: one pass over the unlabelled
    images, or over the labelled ones without any), so ``lambda_u=0`` with the same arguments is the
    supervised baseline on the same labelled budget and steps (its unlabelled forward passes are
    skipped). ``model`` takes :func:`to_input` tensors and gives 2 logits (e.g. :func:`make_model`);
    it is copied, not changed. Random draws come from ``seed`` alone; the caller's torch RNG state is
    restored afterwards. ``unlabelled_labels``, if known, only report how accurate the pseudo-labels
    are. History columns: epoch, steps, train_loss, supervised_loss, unlabelled_loss, lambda_u (mean
    weight used), mask_rate (share of unlabelled images above threshold), pseudo_accuracy,
    valid_loss, valid_auc, valid_accuracy, lr, seconds.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}.")
    if lambda_u < 0 or int(mu) < 1 or int(batch_size) < 1 or int(epochs) < 1:
        raise ValueError("lambda_u must be >= 0 and mu, batch_size, epochs at least 1.")
    if not 0.0 <= rampup <= 1.0:
        raise ValueError(f"rampup is a fraction of the run in [0, 1], got {rampup}.")
    gen = torch.Generator().manual_seed(int(seed))
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    with _seeded(int(seed), dev):
        net = copy.deepcopy(model).to(dev)
        data = _semi_data(labelled_images, labels, unlabelled_images, valid_images, valid_labels, unlabelled_labels)
        x_l, y_l, x_u, y_u, x_v, y_v = data.x_l, data.y_l, data.x_u, data.y_u, data.x_v, data.y_v
        have_valid = x_v is not None
        n_u = int(mu) * int(batch_size)
        if steps_per_epoch is None:
            steps_per_epoch = math.ceil(len(x_u) / n_u) if x_u is not None else math.ceil(len(x_l) / int(batch_size))
        steps = int(steps_per_epoch)
        use_unlabelled = x_u is not None and lambda_u > 0
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=int(epochs) * steps)

        queue_l: list[int] = []
        queue_u: list[int] = []
        rows: list[dict[str, Any]] = []
        ramp_steps = rampup * int(epochs) * steps
        step = 0
        for epoch in range(1, int(epochs) + 1):
            start = time.perf_counter()
            net.train()
            sums = {"train_loss": 0.0, "supervised_loss": 0.0, "unlabelled_loss": 0.0, "mask": 0.0, "pseudo_ok": 0.0,
                    "pseudo_n": 0.0, "weight": 0.0}
            lr_used = optimizer.param_groups[0]["lr"]
            for _ in range(steps):
                weight = lambda_u * (min(1.0, step / ramp_steps) if ramp_steps > 0 else 1.0)
                step += 1
                il = _draw(len(x_l), min(int(batch_size), len(x_l)), queue_l, gen)
                xb = weak_augment(x_l[il].to(dev), gen, flip)
                yb = y_l[il].to(dev)
                if use_unlabelled:
                    iu = _draw(len(x_u), min(n_u, len(x_u)), queue_u, gen)
                    ub = x_u[iu].to(dev)
                    batch = torch.cat([xb, weak_augment(ub, gen, flip), strong_augment(ub, gen, flip)])
                    logits = net(_normalise(batch)).float()
                    logits_l, logits_w, logits_s = logits.split([len(il), len(iu), len(iu)])
                    loss, sup, unsup, mask = fixmatch_loss(logits_l, yb, logits_w, logits_s, threshold, weight)
                    sums["weight"] += weight
                    pseudo = logits_w.detach().argmax(dim=1)
                    sums["unlabelled_loss"] += float(unsup.detach())
                    sums["mask"] += float(mask.mean())
                    if y_u is not None and mask.sum() > 0:
                        chosen = mask.bool().cpu()
                        sums["pseudo_ok"] += float((pseudo.cpu()[chosen] == y_u[iu][chosen]).sum())
                        sums["pseudo_n"] += float(chosen.sum())
                else:
                    sup = F.cross_entropy(net(_normalise(xb)).float(), yb)
                    loss = sup
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                lr_used = optimizer.param_groups[0]["lr"]
                scheduler.step()
                sums["train_loss"] += float(loss.detach())
                sums["supervised_loss"] += float(sup.detach())
            row: dict[str, Any] = {
                "epoch": epoch,
                "steps": steps,
                "train_loss": sums["train_loss"] / steps,
                "supervised_loss": sums["supervised_loss"] / steps,
                "unlabelled_loss": sums["unlabelled_loss"] / steps if use_unlabelled else float("nan"),
                "lambda_u": sums["weight"] / steps if use_unlabelled else 0.0,
                "mask_rate": sums["mask"] / steps if use_unlabelled else float("nan"),
                "pseudo_accuracy": sums["pseudo_ok"] / sums["pseudo_n"] if sums["pseudo_n"] else float("nan"),
            }
            if have_valid:
                row.update(_evaluate(net, x_v, y_v, dev, 2 * int(batch_size) * int(mu)))
            else:
                row.update(valid_loss=float("nan"), valid_auc=float("nan"), valid_accuracy=float("nan"))
            row.update(lr=lr_used, seconds=time.perf_counter() - start)
            rows.append(row)
        net.eval()
        return net, pd.DataFrame(rows)


# --- MixMatch ------------------------------------------------------------------------------------------------------


def sharpen(probabilities: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """MixMatch's sharpening of class probabilities (N, C): p^(1/T), renormalised per row (T -> 0 gives one-hot).

    Hand case: [0.6, 0.4] at T = 0.5 gives [0.36, 0.16] / 0.52 = [0.692, 0.308].
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    q = probabilities.clamp_min(1e-12) ** (1.0 / float(temperature))
    return q / q.sum(dim=1, keepdim=True)


def mixmatch_loss(
    logits_labelled: torch.Tensor,
    targets_labelled: torch.Tensor,
    logits_unlabelled: torch.Tensor,
    targets_unlabelled: torch.Tensor,
    lambda_u: float = 75.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MixMatch's loss: (total, cross-entropy of the mixed labelled batch with its soft targets, squared error between
    the mixed unlabelled batch's softmax and its guessed targets, averaged over classes and images).

    Hand case: labelled logits [[0, 0]] with target [1, 0] give log 2; unlabelled logits [[0, 0]] with target [1, 0]
    give ((0.5 - 1)^2 + 0.5^2) / 2 = 0.25; total log 2 + lambda_u * 0.25.
    """
    supervised = -(targets_labelled * F.log_softmax(logits_labelled, dim=1)).sum(dim=1).mean()
    unlabelled = ((torch.softmax(logits_unlabelled, dim=1) - targets_unlabelled) ** 2).mean()
    return supervised + lambda_u * unlabelled, supervised, unlabelled


@live.reusable(mutates="model")
def mixmatch(
    model: nn.Module,
    labelled_images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    unlabelled_images: np.ndarray,
    valid_images: np.ndarray | None = None,
    valid_labels: Sequence[int] | np.ndarray | None = None,
    epochs: int = 5,
    batch_size: int = 16,
    mu: int = 3,
    k: int = 2,
    temperature: float = 0.5,
    alpha: float = 0.75,
    lambda_u: float = 75.0,
    rampup: float = 0.2,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    steps_per_epoch: int | None = None,
    flip: bool = True,
    unlabelled_labels: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    device: str | None = None,
) -> tuple[nn.Module, pd.DataFrame]:
    """MixMatch (Berthelot et al. 2019) on a few labelled plus unlabelled images: (trained copy of ``model``, history).

    Each step takes ``batch_size`` labelled images (weak view, one-hot targets) and ``mu * batch_size`` unlabelled
    ones seen in ``k`` weak views; the guessed label of an unlabelled image is the mean softmax over its views,
    sharpened (:func:`sharpen`, ``temperature``). All views with their targets are then mixed with a shuffled copy of
    themselves (MixUp, lambda ~ Beta(``alpha``, ``alpha``), kept >= 0.5 so each mix stays closer to its own image), and
    the loss is :func:`mixmatch_loss` with the unlabelled weight rising linearly to ``lambda_u`` (the paper's 75) over
    the first ``rampup`` fraction of the steps. Same optimiser, schedule, steps and augmentation as :func:`fixmatch`
    with the same arguments, so the two and the supervised baseline (``fixmatch(..., lambda_u=0)``) compare on one
    budget. The paper's interleaving of batches for batch normalisation is left out. ``model`` is copied, not changed;
    random draws come from ``seed``. History columns as :func:`fixmatch`'s (``mask_rate`` is 1: every guess is used;
    ``pseudo_accuracy`` is the accuracy of the guesses' argmax when ``unlabelled_labels`` are known).
    """
    if int(k) < 1 or int(mu) < 1 or int(batch_size) < 1 or int(epochs) < 1 or lambda_u < 0 or alpha <= 0:
        raise ValueError("k, mu, batch_size and epochs must be at least 1, lambda_u >= 0 and alpha > 0.")
    if unlabelled_images is None or len(unlabelled_images) == 0:
        raise ValueError("MixMatch needs unlabelled images; without any, train the supervised baseline "
                         "(fixmatch(..., unlabelled_images=None)).")
    gen = torch.Generator().manual_seed(int(seed))
    mix_rng = np.random.default_rng(int(seed))
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    with _seeded(int(seed), dev):
        net = copy.deepcopy(model).to(dev)
        data = _semi_data(labelled_images, labels, unlabelled_images, valid_images, valid_labels, unlabelled_labels)
        x_l, y_l, x_u, y_u, x_v, y_v = data.x_l, data.y_l, data.x_u, data.y_u, data.x_v, data.y_v
        have_valid = x_v is not None
        n_u = int(mu) * int(batch_size)
        steps = int(steps_per_epoch or math.ceil(len(x_u) / n_u))
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=int(epochs) * steps)

        queue_l: list[int] = []
        queue_u: list[int] = []
        rows: list[dict[str, Any]] = []
        ramp_steps = rampup * int(epochs) * steps
        step = 0
        for epoch in range(1, int(epochs) + 1):
            start = time.perf_counter()
            net.train()
            sums = {"train_loss": 0.0, "supervised_loss": 0.0, "unlabelled_loss": 0.0, "weight": 0.0,
                    "guess_ok": 0.0, "guess_n": 0.0}
            lr_used = optimizer.param_groups[0]["lr"]
            for _ in range(steps):
                weight = lambda_u * (min(1.0, step / ramp_steps) if ramp_steps > 0 else 1.0)
                step += 1
                il = _draw(len(x_l), min(int(batch_size), len(x_l)), queue_l, gen)
                iu = _draw(len(x_u), min(n_u, len(x_u)), queue_u, gen)
                xb = weak_augment(x_l[il].to(dev), gen, flip)
                tb = F.one_hot(y_l[il], 2).float().to(dev)
                views = [weak_augment(x_u[iu].to(dev), gen, flip) for _ in range(int(k))]
                with torch.no_grad():  # the guessed labels: mean softmax over the views, sharpened
                    mean_p = torch.stack([torch.softmax(net(_normalise(v)).float(), dim=1) for v in views]).mean(0)
                    guess = sharpen(mean_p, temperature)
                every_x = torch.cat([xb, *views])
                every_t = torch.cat([tb, *([guess] * int(k))])
                lam = float(mix_rng.beta(alpha, alpha))
                lam = max(lam, 1.0 - lam)
                partner = torch.randperm(len(every_x), generator=gen).to(dev)
                mixed_x = lam * every_x + (1.0 - lam) * every_x[partner]
                mixed_t = lam * every_t + (1.0 - lam) * every_t[partner]
                logits = net(_normalise(mixed_x)).float()
                n_l = len(il)
                loss, sup, unsup = mixmatch_loss(logits[:n_l], mixed_t[:n_l], logits[n_l:], mixed_t[n_l:], weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                lr_used = optimizer.param_groups[0]["lr"]
                scheduler.step()
                sums["train_loss"] += float(loss.detach())
                sums["supervised_loss"] += float(sup.detach())
                sums["unlabelled_loss"] += float(unsup.detach())
                sums["weight"] += weight
                if y_u is not None:
                    sums["guess_ok"] += float((guess.argmax(dim=1).cpu() == y_u[iu]).sum())
                    sums["guess_n"] += float(len(iu))
            row: dict[str, Any] = {
                "epoch": epoch, "steps": steps, "train_loss": sums["train_loss"] / steps,
                "supervised_loss": sums["supervised_loss"] / steps, "unlabelled_loss": sums["unlabelled_loss"] / steps,
                "lambda_u": sums["weight"] / steps, "mask_rate": 1.0,
                "pseudo_accuracy": sums["guess_ok"] / sums["guess_n"] if sums["guess_n"] else float("nan"),
            }
            if have_valid:
                row.update(_evaluate(net, x_v, y_v, dev, 2 * int(batch_size) * int(mu)))
            else:
                row.update(valid_loss=float("nan"), valid_auc=float("nan"), valid_accuracy=float("nan"))
            row.update(lr=lr_used, seconds=time.perf_counter() - start)
            rows.append(row)
        net.eval()
        return net, pd.DataFrame(rows)


# --- SimCLR ---------------------------------------------------------------------------------------------------------


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent loss of N embedding pairs (N, D): CE of each view finding its partner by cosine / temperature.

    Hand case: one pair of identical vectors gives 0; two identical pairs of orthogonal vectors at
    temperature 0.5 give log(1 + 2 e^-2) = 0.2395 (partner similarity 1, two negatives 0).
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (N, D), got {tuple(z1.shape)} and {tuple(z2.shape)}.")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / float(temperature)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def simclr_view(x: torch.Tensor, gen: torch.Generator, flip: bool = True, strength: float = 1.0) -> torch.Tensor:
    """A SimCLR view of (N, 1, H, W) images in [0, 1]: crop-and-resize (zoom 1-1.7), rotate ±15°, shift 15 %, flip,
    contrast and brightness ±40 %, noise (SD up to 0.04); ``strength`` scales every range (0: only the flip)."""
    n, k = x.shape[0], float(strength)
    out = _affine(x, gen, rotate=15.0 * k, zoom=(1.0, 1.0 + 0.7 * k), shift=0.15 * k, flip=flip)
    contrast = _uniform(n, 1 - 0.4 * k, 1 + 0.4 * k, gen).view(n, 1, 1, 1).to(x.device)
    bright = _uniform(n, -0.4 * k, 0.4 * k, gen).view(n, 1, 1, 1).to(x.device)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + bright
    sd = _uniform(n, 0.0, 0.04 * k, gen).view(n, 1, 1, 1).to(x.device)
    out = out + sd * torch.randn(out.shape, generator=gen).to(x.device)
    return out.clamp(0.0, 1.0)


class _ProjectionHead(nn.Module):
    """SimCLR's projection: global average pool (for feature maps), Linear, BatchNorm, ReLU, Linear to ``dim``.

    The BatchNorm matters: ReLU features share a large common component, and without it the
    embeddings of a short run collapse onto one direction (all cosines near 1, the loss stuck at
    log(2N - 1)) as soon as the views differ by more than a flip.
    """

    def __init__(self, n_features: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_features, n_features, bias=False), nn.BatchNorm1d(n_features),
                                 nn.ReLU(inplace=True), nn.Linear(n_features, dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.ndim == 4:
            h = h.mean(dim=(2, 3))
        return self.mlp(h.flatten(1))


@live.reusable(mutates="encoder")
def simclr_pretrain(
    encoder: nn.Module,
    unlabelled_images: np.ndarray,
    epochs: int = 1,
    batch_size: int = 32,
    temperature: float = 0.5,
    lr: float = 1e-3,
    proj_dim: int = 64,
    strength: float = 1.0,
    flip: bool = True,
    seed: int = 0,
    device: str | None = None,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Short SimCLR (Chen et al. 2020) on unlabelled images: (encoder weights to start a classifier from, history).

    Each batch is seen as two random views (:func:`simclr_view`, ranges scaled by ``strength``); the
    encoder plus a small projection
    head (:class:`_ProjectionHead`, thrown away afterwards) learn to tell each view's partner from the
    other images of the batch (:func:`nt_xent_loss` at ``temperature``). Adam at ``lr``; shuffled
    batches of ``batch_size`` (a last batch of fewer than 2 images is dropped). ``encoder`` (e.g.
    :func:`make_encoder`) is copied, not changed; load the returned state with
    ``make_learner(dls, encoder_state=state)`` or ``make_model(encoder_state=state)``. The caller's
    torch RNG state is restored afterwards. History
    columns: epoch, step, loss, seconds (since the start).
    """
    if int(batch_size) < 2:
        raise ValueError(f"batch_size must be at least 2 (each image needs negatives), got {batch_size}.")
    gen = torch.Generator().manual_seed(int(seed))
    dev = torch.device(device) if device is not None else next(encoder.parameters()).device
    with _seeded(int(seed), dev):
        enc = copy.deepcopy(encoder).to(dev)
        x = _grey_float(unlabelled_images)
        if len(x) < 2:
            raise ValueError(f"SimCLR needs at least 2 unlabelled images, got {len(x)}.")
        enc.eval()
        with torch.no_grad():
            n_features = int(enc(_normalise(x[:2].to(dev))).shape[1])
        head = _ProjectionHead(n_features, int(proj_dim)).to(dev)
        optimizer = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=lr)
        rows: list[dict[str, Any]] = []
        start = time.perf_counter()
        step = 0
        for epoch in range(1, int(epochs) + 1):
            enc.train()
            head.train()
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), int(batch_size)):
                idx = order[i:i + int(batch_size)]
                if len(idx) < 2:
                    continue
                xb = x[idx].to(dev)
                v1, v2 = simclr_view(xb, gen, flip, strength), simclr_view(xb, gen, flip, strength)
                z = head(enc(_normalise(torch.cat([v1, v2]))))
                loss = nt_xent_loss(z[:len(idx)], z[len(idx):], temperature)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                rows.append({"epoch": epoch, "step": step, "loss": float(loss.detach()),
                             "seconds": time.perf_counter() - start})
        enc.eval()
        state = {k: v.detach().cpu().clone() for k, v in enc.state_dict().items()}
        return state, pd.DataFrame(rows, columns=["epoch", "step", "loss", "seconds"])


__all__ = [
    "ARCHS", "IMAGENET_MEAN", "IMAGENET_STD", "LOSSES", "TOP_LOSS_COLUMNS", "class_weights", "dls_from_arrays",
    "fit", "fixmatch", "fixmatch_loss", "mixmatch", "mixmatch_loss", "sharpen", "focal_loss", "gradcam", "interpretation", "make_encoder", "make_learner",
    "make_model", "nt_xent_loss", "predict_proba", "simclr_pretrain", "simclr_view", "small_cnn_body", "strong_augment",
    "to_input",
    "weak_augment", "weighted_ce", "xray_batch_tfms",
]
