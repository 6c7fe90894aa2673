"""PyTorch image classification for the lessons: load images into memory, small and torchvision CNNs, one
training loop (binary or multi-label), checkpoints and MLflow round trips.

Every task is handled as multi-label: a model has one output (a logit) per label, the loss is
``BCEWithLogitsLoss`` and probabilities are sigmoids. Binary normal-vs-pneumonia is the case of one
label, so the same code serves chest findings, knee fractures and head CT haemorrhage.

Images are ``(N, 1, H, W)`` float32 arrays in [0, 1] (bright = dense, as a radiologist sees them);
models normalise their input themselves (a fixed first layer), so ``predict`` takes the same arrays
and a checkpoint carries everything needed to use it. Training is deterministic on the CPU for a given
``seed`` (seeded model init, augmentation and a seeded shuffle); GPUs may differ in the last digits.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import tempfile
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from helpers import live
from helpers.config import get_device, seed_everything
from helpers.dicom import PIL_SUFFIXES, pil_unit, read_unit_image  # noqa: F401  (re-exported for the lessons)
from helpers.errors import ArtifactMissing, WeightsUnavailable

#: Architectures :func:`build_model` knows.
MODELS = ("small_cnn", "resnet18", "densenet121")
#: Learning-rate schedules :func:`train` knows (both stepped once per batch).
SCHEDULES = ("onecycle", "cosine")
#: Grey-level mean and SD every model subtracts and divides by (ImageNet's RGB statistics averaged, as pretrained
#: weights expect).
INPUT_MEAN, INPUT_STD = 0.449, 0.226
#: MLflow's switch for its artifact download progress bar.
_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
#: Artifact path of the best checkpoint in an MLflow run.
MODEL_ARTIFACT = "model/best.pt"
#: Columns of a training history: ``lr`` is the last batch's learning rate, ``seconds`` the epoch's wall time,
#: ``stopped_by`` is empty except on a last epoch that ended training early. Multi-label runs add ``val_auc_<label>``.
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds", "stopped_by"]


# --- Images into memory ------------------------------------------------------------------------------


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """A (H, W) float image resized to (size, size) pixels, bilinear with antialiasing (aspect ratio not kept)."""
    if image.shape == (size, size):
        return image.astype(np.float32, copy=False)
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].numpy()


def load_images(paths: Sequence[str | Path], size: int = 128, intensity: str = "bits") -> np.ndarray:
    """Read images into one float32 array (N, 1, size, size) in [0, 1], bright = dense, resized with antialiasing.

    DICOM files are scaled by their own bit depth, ``stored / (2**BitsStored - 1)`` (signed data offset
    first), and MONOCHROME1 files inverted, so the result does not depend on display windows and bone is
    bright in every file; ``intensity="window"`` uses the file's window instead (:func:`helpers.dicom.display_array`,
    e.g. CT with a brain window). PNG / JPEG / TIFF (by suffix) are read with PIL as greyscale. Images are
    squeezed to a square (aspect ratio is not kept). Everything is held in memory: 2000 images of 128 px
    take 131 MB.
    """
    if intensity not in ("bits", "window"):
        raise ValueError(f"intensity={intensity!r}; use 'bits' (stored / bit depth) or 'window' (the file's window).")
    if int(size) < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}.")
    paths = [Path(p) for p in paths]
    out = np.empty((len(paths), 1, int(size), int(size)), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i, 0] = resize_image(read_unit_image(path, intensity), int(size))
    np.clip(out, 0.0, 1.0, out=out)
    return out


class ArrayDataset(Dataset):
    """In-memory images (N, C, H, W) and float32 labels (N,) or (N, K), with an optional per-image transform."""

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | Sequence[float],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.images = _as_image_tensor(images)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels: they must pair up one to one.")
        if self.labels.ndim not in (1, 2):
            raise ValueError(f"labels must be (N,) or (N, K), got shape {tuple(self.labels.shape)}.")
        self.transform = transform

    def __len__(self) -> int:
        """Number of images."""
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(image (C, H, W) after the transform, label(s)) of image ``index``."""
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


def _as_image_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images as a float32 tensor (N, C, H, W); (N, H, W) gets a channel axis (no copy for float32 arrays)."""
    t = torch.as_tensor(images) if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    t = t.float()
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W) or (N, H, W), got shape {tuple(t.shape)}.")
    return t


# --- Augmentation ------------------------------------------------------------------------------------


class EnsureSize(nn.Module):
    """Resize images (C, H, W) or batches (B, C, H, W) to (size, size) with antialiasing, only when they differ."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The images at (size, size) pixels."""
        if tuple(images.shape[-2:]) == (self.size, self.size):
            return images
        batch = images if images.ndim == 4 else images[None]
        out = F.interpolate(batch, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return out if images.ndim == 4 else out[0]


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws from U(low, high) on the CPU (so a CPU generator gives the same draws for every device)."""
    return low + (high - low) * torch.rand(n, generator=generator)


class RandomAffine(nn.Module):
    """Rotate (± ``degrees``), shift (± ``translate`` of the width/height) and zoom (``scale`` range) each square
    image of a batch (B, C, H, W) or one image (C, H, W) independently; bilinear, black (0) outside.

    Parameters come from ``generator`` (a CPU ``torch.Generator``; None: torch's global one). Works on any
    device, a whole batch in one ``grid_sample`` call (per-image torchvision transforms cost ~10 ms per
    128 px image on a 2-core CPU).
    """

    def __init__(
        self,
        degrees: float = 7.0,
        translate: float = 0.05,
        scale: tuple[float, float] = (0.9, 1.1),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.degrees, self.translate, self.scale = float(degrees), float(translate), (float(scale[0]), float(scale[1]))
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The transformed images (same shape, dtype and device)."""
        batch = images if images.ndim == 4 else images[None]
        n, _, height, width = batch.shape
        g = self.generator
        angle = _uniform(n, -self.degrees, self.degrees, g) * (math.pi / 180.0)
        zoom = _uniform(n, *self.scale, g)
        shift_x = _uniform(n, -self.translate, self.translate, g) * 2.0  # grid coordinates span 2 per image
        shift_y = _uniform(n, -self.translate, self.translate, g) * 2.0
        # The grid maps output to input coordinates: the inverse rotation and zoom.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([cos, -sin, shift_x, sin, cos, shift_y], dim=1).to(batch.device, batch.dtype)
        theta = theta[:, :, None, None]
        xs = (torch.arange(width, device=batch.device, dtype=batch.dtype) * 2 + 1) / width - 1
        ys = ((torch.arange(height, device=batch.device, dtype=batch.dtype) * 2 + 1) / height - 1)[:, None]
        grid = torch.stack([theta[:, 0] * xs + theta[:, 1] * ys + theta[:, 2],
                            theta[:, 3] * xs + theta[:, 4] * ys + theta[:, 5]], dim=-1)
        out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out if images.ndim == 4 else out[0]


class RandomBrightnessContrast(nn.Module):
    """Jitter greyscale images (C, H, W) or (B, C, H, W) in [0, 1], each independently: contrast × U(1 - c, 1 + c)
    about the image's mean, then brightness + U(-b, b); clipped to [0, 1]. ``generator`` as in :class:`RandomAffine`."""

    def __init__(
        self, brightness: float = 0.03, contrast: float = 0.1, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The jittered images (same shape, dtype and device)."""
        batch = images if images.ndim == 4 else images[None]
        n = len(batch)
        shape = (n, 1, 1, 1)
        factor = _uniform(n, 1 - self.contrast, 1 + self.contrast, self.generator).reshape(shape)
        shift = _uniform(n, -self.brightness, self.brightness, self.generator).reshape(shape)
        factor, shift = factor.to(batch.device, batch.dtype), shift.to(batch.device, batch.dtype)
        mean = batch.mean(dim=(1, 2, 3), keepdim=True)
        out = ((batch - mean) * factor + mean + shift).clamp(0.0, 1.0)
        return out if images.ndim == 4 else out[0]


def train_transforms(
    size: int, strength: float = 1.0, generator: torch.Generator | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Augmentation for X-ray images in [0, 1], one (1, H, W) or a batch: rotate ±7°, shift ±5 %, zoom 0.9-1.1,
    contrast ±10 %, brightness ±0.03; output at (size, size).

    ``strength`` scales every range (0 turns augmentation off); ``generator`` (a seeded CPU
    ``torch.Generator``) makes the draws reproducible. There is deliberately no horizontal flip: a chest
    film is not left-right symmetric (the heart lies on the patient's left, the image's right), so a
    flipped film shows situs inversus, anatomy the model never meets; knee and head images carry side
    markers and conventions too. Brightness shifts are kept small: ±0.1 hid the faint lesions of the
    generated chest set (difficulty 0.5) so well that a small CNN did not learn in 8 epochs (AUC ~0.55 vs 0.88).
    """
    from torchvision.transforms import v2

    s = float(strength)
    if s < 0:
        raise ValueError(f"strength must be >= 0, got {strength}.")
    if s == 0:
        return eval_transforms(size)
    return v2.Compose([
        EnsureSize(size),
        RandomAffine(degrees=7.0 * s, translate=0.05 * s, scale=(1 - 0.1 * s, 1 + 0.1 * s), generator=generator),
        RandomBrightnessContrast(brightness=0.03 * s, contrast=0.1 * s, generator=generator),
    ])


def eval_transforms(size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Evaluation transform: resize to (size, size) if needed, nothing else (models normalise their input)."""
    return EnsureSize(size)


# --- Models ------------------------------------------------------------------------------------------


class Normalize(nn.Module):
    """First layer of every model: (x - mean) / std with fixed grey-level statistics (stored in the state dict)."""

    def __init__(self, mean: float = INPUT_MEAN, std: float = INPUT_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised batch."""
        return (x - self.mean) / self.std


def _with_input_norm(body: nn.Module) -> nn.Sequential:
    """``body`` behind a :class:`Normalize` layer, so the model takes images in [0, 1]."""
    return nn.Sequential(OrderedDict([("norm", Normalize()), ("body", body)]))


def small_cnn(n_outputs: int, in_channels: int = 1, width: int = 16, dropout: float = 0.2) -> nn.Sequential:
    """A CNN that trains on a laptop CPU: 4 × (conv 3×3, BatchNorm, ReLU, max-pool 2), global average pool,
    dropout, linear; about 98 k parameters at ``width=16``. Outputs ``n_outputs`` logits."""
    layers: list[nn.Module] = []
    channels = in_channels
    for k in range(4):
        out = width * 2**k
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2)]
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, n_outputs)]
    return _with_input_norm(nn.Sequential(*layers))


def _hub_weights_path(url: str) -> Path:
    """Where torch keeps a downloaded weights file: ``<torch hub dir>/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def build_torchvision(builder: Callable[..., nn.Module], weights: Any, pretrained: bool, name: str) -> nn.Module:
    """``builder(weights=...)``, a torchvision constructor, with ``weights`` (an ImageNet weights enum) when
    ``pretrained``: downloaded once into the torch hub cache and checked against the SHA-256 prefix in their file
    name. A failed download or a damaged file raises WeightsUnavailable saying where to put a copy by hand."""
    manual = (f"use pretrained=False, or download {weights.url} on a connected machine and place the file at "
              f"{_hub_weights_path(weights.url)} (the torch hub cache; set TORCH_HOME to move it).")
    try:
        return builder(weights=weights if pretrained else None)
    except OSError as exc:  # URLError, timeouts, DNS failures: all OSError
        raise WeightsUnavailable(
            f"The pretrained {name} weights could not be downloaded ({exc}). You seem to be offline: {manual}"
        ) from exc
    except RuntimeError as exc:
        if "invalid hash value" not in str(exc):
            raise
        raise WeightsUnavailable(
            f"The downloaded {name} weights do not match the SHA-256 prefix in their file name, so they were not "
            f"kept (a damaged download or a proxy's error page): try again, or {manual}"
        ) from exc


def _adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels``; RGB weights are summed (1 channel) or averaged and spread."""
    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    with torch.no_grad():
        summed = conv.weight.sum(dim=1, keepdim=True)
        new.weight.copy_(summed.repeat(1, in_channels, 1, 1) / in_channels)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def torchvision_model(
    name: str = "resnet18", n_outputs: int = 1, in_channels: int = 1, pretrained: bool = False
) -> nn.Sequential:
    """A torchvision ResNet-18 or DenseNet-121 taking ``in_channels`` and giving ``n_outputs`` logits.

    With ``pretrained`` the ImageNet weights are loaded (downloaded once into the torch hub cache) and
    the first convolution's RGB weights summed for a greyscale input (the same response to a grey image);
    offline, WeightsUnavailable says where to put the file. Without, the weights are random.
    """
    from torchvision import models

    builders = {
        "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
        "densenet121": (models.densenet121, models.DenseNet121_Weights.IMAGENET1K_V1),
    }
    if name not in builders:
        raise ValueError(f"torchvision_model knows {', '.join(builders)}; got {name!r}.")
    builder, weights = builders[name]
    net = build_torchvision(builder, weights, pretrained, name)
    if name == "resnet18":
        net.conv1 = _adapt_first_conv(net.conv1, in_channels)
        net.fc = nn.Linear(net.fc.in_features, n_outputs)
    else:
        net.features.conv0 = _adapt_first_conv(net.features.conv0, in_channels)
        net.classifier = nn.Linear(net.classifier.in_features, n_outputs)
    return _with_input_norm(net)


def to_device(model: nn.Module, device: str) -> nn.Module:
    """``model`` moved to ``device``, channels-last on CPU and CUDA (small-CNN training ~30 % faster on a CPU)."""
    if torch.device(device).type in ("cpu", "cuda"):
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- Configuration and results -----------------------------------------------------------------------


@dataclasses.dataclass
class TrainConfig:
    """Everything :func:`train` needs besides the data; stored in checkpoints and logged as MLflow params.

    ``lr`` is the peak learning rate (one-cycle) or the starting one (cosine); ``patience`` counts epochs
    without a better validation AUC before stopping; ``amp`` (``"auto"``, True, False) uses float16 mixed
    precision on CUDA only; ``max_minutes`` stops after the epoch that crosses the time budget;
    ``pos_weight`` weights positives in the loss: None, ``"balanced"`` (negatives / positives per label, from
    the training labels), a number, or one number per label; ``device`` None picks :func:`helpers.config.get_device`.
    """

    model: str = "small_cnn"
    pretrained: bool = False
    image_size: int = 128
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    patience: int = 3
    augment: bool = True
    amp: str | bool = "auto"
    seed: int = 0
    label_names: tuple[str, ...] = ("pneumonia",)
    num_workers: int = 0
    max_minutes: float | None = None
    pos_weight: str | float | tuple[float, ...] | None = None
    width: int = 16
    device: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.label_names, str):
            self.label_names = (self.label_names,)
        self.label_names = tuple(str(n) for n in self.label_names)
        if isinstance(self.pos_weight, list):
            self.pos_weight = tuple(float(w) for w in self.pos_weight)
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r}; choose one of {', '.join(MODELS)}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}; choose one of {', '.join(SCHEDULES)}.")
        if self.amp not in ("auto", True, False):
            raise ValueError(f"amp={self.amp!r}; use 'auto' (CUDA only), True or False.")
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"label_names must be distinct names, one per output; got {self.label_names}.")
        for field in ("epochs", "batch_size", "image_size", "patience", "width"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be a positive integer, got {getattr(self, field)}.")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0 (lr={self.lr}, weight_decay={self.weight_decay}).")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive or None, got {self.max_minutes}.")
        if isinstance(self.pos_weight, str) and self.pos_weight != "balanced":
            raise ValueError(f"pos_weight={self.pos_weight!r}; use None, 'balanced', a number or one per label.")

    @property
    def n_outputs(self) -> int:
        """Number of model outputs: one per label."""
        return len(self.label_names)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain Python values (tuples as lists), e.g. for JSON or MLflow params."""
        out = dataclasses.asdict(self)
        out["label_names"] = list(self.label_names)
        if isinstance(self.pos_weight, tuple):
            out["pos_weight"] = list(self.pos_weight)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A configuration from :meth:`to_dict` output (unknown keys rejected, missing ones default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields {unknown}; known: {sorted(names)}.")
        return cls(**values)


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the model holding its best weights, the history table (one row per
    epoch), the best epoch and its validation AUC, the checkpoint path, the config, seconds taken and
    why training stopped (``"epochs"``, ``"patience"``, ``"max_minutes"`` or ``"diverged"``)."""

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_val_auc: float
    checkpoint: Path
    config: TrainConfig
    seconds: float
    stopped_by: str = "epochs"


def build_model(config: TrainConfig, pretrained: bool | None = None) -> nn.Module:
    """The untrained model ``config`` describes (``pretrained`` overrides ``config.pretrained``)."""
    pretrained = config.pretrained if pretrained is None else pretrained
    if config.model == "small_cnn":
        return small_cnn(config.n_outputs, in_channels=1, width=config.width)
    return torchvision_model(config.model, config.n_outputs, in_channels=1, pretrained=pretrained)


# --- Metrics -----------------------------------------------------------------------------------------


def label_aucs(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """ROC AUC of each label column (NaN where a column holds one class only); (N,) inputs give one value."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    p = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)
    out = np.full(y.shape[1], np.nan)
    for k in range(y.shape[1]):
        column = y[:, k] > 0.5
        if column.any() and not column.all() and np.isfinite(p[:, k]).all():
            out[k] = roc_auc_score(column, p[:, k])
    return out


def macro_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean ROC AUC over the labels that have both classes present (NaN when none has)."""
    aucs = label_aucs(labels, probs)
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")


# --- Training ----------------------------------------------------------------------------------------


def _labels_2d(labels: np.ndarray, n_outputs: int, name: str) -> np.ndarray:
    """Labels as float32 (N, K), checked against the number of outputs."""
    y = np.asarray(labels, dtype=np.float32)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(
            f"{name} labels have shape {np.shape(labels)} but config.label_names has {n_outputs} name(s): give "
            f"(N,) labels for one label or (N, {n_outputs}) for several."
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{name} labels must be 0 or 1 (found {np.unique(y)[:5]}).")
    return y


def _pos_weight(config: TrainConfig, y_train: np.ndarray) -> torch.Tensor | None:
    """The loss's positive-class weights, one per label, or None."""
    if config.pos_weight is None:
        return None
    if config.pos_weight == "balanced":
        positives = y_train.sum(axis=0)
        weights = (len(y_train) - positives) / np.maximum(positives, 1.0)
    else:
        weights = np.broadcast_to(np.asarray(config.pos_weight, dtype=np.float64), (y_train.shape[1],))
    return torch.tensor(np.asarray(weights), dtype=torch.float32)


def _mlflow_wanted(log_to_mlflow: bool | None) -> bool:
    """Log to MLflow: as asked, else when a run is active (mlflow is never imported just to find out)."""
    if log_to_mlflow is not None:
        return bool(log_to_mlflow)
    mlflow = sys.modules.get("mlflow")
    return mlflow is not None and mlflow.active_run() is not None


def _finite_or_nan(value: float) -> float:
    """``value``, or NaN when it is infinite (MLflow refuses infinities)."""
    return float(value) if math.isfinite(value) else float("nan")


def _evaluate(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module, device: str, autocast: bool
) -> tuple[np.ndarray, float]:
    """(sigmoid probabilities (N, K), mean loss) of ``model`` on ``loader``."""
    model.eval()
    probs, total, count = [], 0.0, 0
    with torch.inference_mode():
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True).reshape(len(yb), -1)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=autocast):
                logits = model(xb)
            logits = logits.float()
            total += float(loss_fn(logits, yb)) * len(xb)
            count += len(xb)
            probs.append(torch.sigmoid(logits).cpu())
    return torch.cat(probs).numpy(), total / max(count, 1)


def save_checkpoint(path: str | Path, model: nn.Module, config: TrainConfig, epoch: int, val_auc: float) -> Path:
    """Write ``model``'s weights with the config, label names, epoch and validation AUC to ``path``; return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": 1, "state_dict": state, "config": config.to_dict(),
                "label_names": list(config.label_names), "epoch": int(epoch), "val_auc": float(val_auc)}, path)
    return path


@live.reusable(outputs="out_dir")
def train(
    config: TrainConfig,
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    out_dir: str | Path,
    log_to_mlflow: bool | None = None,
    build: Callable[[TrainConfig], nn.Module] | None = None,
) -> TrainResult:
    """Train ``config.model`` on (images, labels) arrays; keep the epoch with the best validation AUC.

    ``build`` is the lesson's own model: ``build(config)`` makes the network (after seeding, as the built-in one
    is made), so a notebook that writes the model out trains exactly that. It must have the layers and weight shapes
    of ``config.model``'s network (checked here), so that its checkpoint loads anywhere with :func:`load_checkpoint`.

    AdamW with a one-cycle (or cosine) schedule stepped per batch, BCEWithLogitsLoss for one label or
    several, the validation AUC (macro over labels with both classes) each epoch, early stopping after
    ``patience`` epochs without improvement, and a time budget. Images are resized to ``image_size`` once
    and augmented (:func:`train_transforms`) a batch at a time on the device. The best epoch is written to
    ``out_dir/"best.pt"`` (see :func:`load_checkpoint`) and the history to ``out_dir/"history.csv"``;
    the returned model holds the best weights, in eval mode. With an active MLflow run (or
    ``log_to_mlflow=True``) the config is logged as params, each epoch's numbers as metrics (step =
    epoch) and the checkpoint as the artifact ``model/best.pt``: one ``train`` per run (MLflow params
    cannot change). Early stopping cuts the one-cycle schedule short; fewer ``epochs`` give the full
    cycle in less time.
    """
    start = time.perf_counter()
    x_train, y_train = _as_image_tensor(train_data[0]), _labels_2d(train_data[1], config.n_outputs, "train")
    x_val, y_val = _as_image_tensor(val_data[0]), _labels_2d(val_data[1], config.n_outputs, "validation")
    if not _both_classes(y_val):
        raise ValueError(
            "The validation labels hold a single class for every label, so the AUC is undefined and early "
            "stopping has nothing to watch: split by patient with stratify= (helpers.datasets.splits.patient_split)."
        )
    device = config.device or get_device()
    autocast = device.startswith("cuda") and config.amp in ("auto", True)
    use_mlflow = _mlflow_wanted(log_to_mlflow)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "best.pt"

    seed_everything(config.seed)
    model = to_device(build_model(config) if build is None else _lesson_model(build, config), device)
    shuffle = torch.Generator().manual_seed(int(config.seed))
    resize = eval_transforms(config.image_size)  # once, for the whole array, instead of once per image and epoch
    train_set, val_set = ArrayDataset(resize(x_train), y_train), ArrayDataset(resize(x_val), y_val)
    # Augmentation runs on whole batches on the device, drawing from its own seeded generator.
    augment = train_transforms(config.image_size, generator=torch.Generator().manual_seed(int(config.seed) + 1))
    batch_size = min(int(config.batch_size), len(train_set))
    loader_args: dict[str, Any] = {"num_workers": int(config.num_workers), "pin_memory": device.startswith("cuda")}
    if config.num_workers > 0:
        loader_args["persistent_workers"] = True
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=shuffle,
                              drop_last=len(train_set) % batch_size == 1, **loader_args)
    val_loader = DataLoader(val_set, batch_size=2 * batch_size, shuffle=False, **loader_args)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * len(train_loader)
    if config.schedule == "onecycle":
        scheduler: Any = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    pos_weight = _pos_weight(config, y_train)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device) if pos_weight is not None else None)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast)

    if use_mlflow:
        from helpers import tracking

        tracking.log_config(config.to_dict())

    rows: list[dict[str, Any]] = []
    best_auc, best_epoch, best_state, bad_epochs, stopped_by = -math.inf, 0, None, 0, "epochs"
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        total, count, lr_used = 0.0, 0, optimizer.param_groups[0]["lr"]
        for xb, yb in train_loader:
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True).reshape(len(yb), -1)
            if config.augment:
                xb = augment(xb)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=autocast):
                loss = loss_fn(model(xb).float(), yb)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lr_used = optimizer.param_groups[0]["lr"]
            scheduler.step()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
        train_loss = total / max(count, 1)
        probs, val_loss = _evaluate(model, val_loader, loss_fn, device, autocast)
        aucs = label_aucs(y_val, probs)
        val_auc = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc, "lr": lr_used,
               "seconds": time.perf_counter() - epoch_start, "stopped_by": ""}
        if config.n_outputs > 1:
            row.update({f"val_auc_{name}": float(a) for name, a in zip(config.label_names, aucs)})
        score = val_auc if math.isfinite(val_auc) else -math.inf
        if best_epoch == 0 or score > best_auc:
            best_auc, best_epoch, bad_epochs = score, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            save_checkpoint(checkpoint, model, config, epoch, val_auc)
        else:
            bad_epochs += 1
        if not math.isfinite(train_loss):
            stopped_by = "diverged"
            warnings.warn(f"Training diverged at epoch {epoch} (loss {train_loss}); lower lr (now {config.lr}).",
                          stacklevel=2)
        elif bad_epochs >= config.patience and epoch < config.epochs:
            stopped_by = "patience"
        elif config.max_minutes is not None and time.perf_counter() - start > 60 * config.max_minutes:
            stopped_by = "max_minutes" if epoch < config.epochs else "epochs"
        rows.append(row)
        if use_mlflow:
            from helpers import tracking

            metrics = {k: _finite_or_nan(v) for k, v in row.items() if k not in ("epoch", "stopped_by")}
            tracking.log_metrics(metrics, step=epoch)
        if stopped_by != "epochs":
            row["stopped_by"] = stopped_by
            break

    model.load_state_dict(best_state)
    model.eval()
    history = pd.DataFrame(rows)
    history = history[[c for c in HISTORY_COLUMNS if c in history] + [c for c in history if c not in HISTORY_COLUMNS]]
    history.to_csv(out_dir / "history.csv", index=False)
    best_val_auc = float(best_auc) if math.isfinite(best_auc) else float("nan")
    result = TrainResult(model=model, history=history, best_epoch=best_epoch, best_val_auc=best_val_auc,
                         checkpoint=checkpoint, config=config, seconds=time.perf_counter() - start,
                         stopped_by=stopped_by)
    if use_mlflow:
        from helpers import tracking

        tracking.log_metrics({"best_epoch": best_epoch, "best_val_auc": _finite_or_nan(best_val_auc)})
        log_model(result)
        tracking.log_artifact(out_dir / "history.csv")
    return result


def _lesson_model(build: Callable[[TrainConfig], nn.Module], config: TrainConfig) -> nn.Module:
    """``build(config)``, checked against the built-in network of ``config.model`` (made without touching the random
    number generators, so the lesson's model starts from the same weights the built-in one would)."""
    model = build(config)
    with torch.random.fork_rng(devices=[]):
        reference = build_model(config, pretrained=False)
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    if mine != theirs:
        differ = sorted(set(mine.items()) ^ set(theirs.items()))[:4]
        raise ValueError(
            f"The model build() made is not config.model={config.model!r}: its weights differ in name or shape "
            f"({differ} ...), so its checkpoint would not load as that model. Write the same layers, or train it "
            "with your own loop."
        )
    return model


def _both_classes(y: np.ndarray) -> bool:
    """True when at least one label column holds both 0 and 1."""
    return bool(((y > 0.5).any(axis=0) & (y < 0.5).any(axis=0)).any())


# --- Using a trained model ---------------------------------------------------------------------------


def batched_outputs(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int,
    head: Callable[[torch.Tensor], torch.Tensor],
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """``head(model(prepare(batch)))`` for consecutive batches of ``x``, on the model's device in eval mode without
    gradients, returned on the CPU; the model's train/eval mode is restored afterwards."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for i in range(0, len(x), int(batch_size)):
                batch = x[i:i + int(batch_size)].to(device)
                out.append(head(model(prepare(batch) if prepare else batch)).cpu())
    finally:
        model.train(was_training)
    return out


def predict(
    model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 256, device: str | None = None
) -> np.ndarray:
    """Sigmoid probabilities for images (N, 1, H, W) in [0, 1]: shape (N,) for one output, (N, K) for K.

    Runs on ``device`` (default: where the model's weights are; the model is moved there) in eval
    mode, and leaves the model in the mode it was in.
    """
    x = _as_image_tensor(images)
    if device is None:
        device = str(next(model.parameters()).device)
    model.to(device)
    out = batched_outputs(model, x, batch_size, head=lambda logits: torch.sigmoid(logits.float()))
    probs = torch.cat(out).numpy() if out else np.zeros((0, 1), dtype=np.float32)
    return probs[:, 0] if probs.shape[1] == 1 else probs


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """(model in eval mode with the checkpoint's weights, its TrainConfig) from a ``best.pt`` of :func:`train`.

    The architecture is rebuilt from the stored config; no pretrained weights are downloaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: train() writes best.pt into its out_dir.")
    stored = torch.load(path, map_location=device, weights_only=True)
    config = TrainConfig.from_dict(stored["config"])
    model = build_model(config, pretrained=False)
    model.load_state_dict(stored["state_dict"])
    return to_device(model, device).eval(), config


@dataclasses.dataclass
class LessonModel:
    """A chest classifier for the lessons that explain and serve one: the model, its config, the images at the
    model's size (N, 1, S, S), the labels (N, K), row indices per split, test probabilities of the first label
    and the training result (None when loaded from a checkpoint)."""

    model: nn.Module
    config: TrainConfig
    images: np.ndarray
    labels: np.ndarray
    part: dict[str, np.ndarray]
    p_test: np.ndarray
    result: TrainResult | None


def lesson_model(
    table: pd.DataFrame,
    label_names: Sequence[str],
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    size: int = 128,
    epochs: int = 10,
    seed: int = 0,
    patience: int | None = None,
) -> LessonModel:
    """The checkpoint of 03_train_classifier when ``checkpoint`` is given, else a small CNN trained here on
    ``table``'s ``train``/``val`` rows (a ``split`` column); images are read at the model's input size.

    ``patience`` (default: ``epochs``, no early stop) ends training after that many epochs without a better
    validation AUC; the best epoch's weights are kept either way. Small validation sets make the AUC jump, and on the
    generated films the CNN can sit near chance for several epochs before it finds the lesions: stopping early there
    left some seeds with a model at chance.

    Logs to MLflow when a run is active, like :func:`train`.
    """
    if "split" not in table.columns:
        raise ValueError("table needs a 'split' column (train/val/test): use helpers.datasets.splits.patient_split.")
    result = None
    if checkpoint is not None:
        model, config = load_checkpoint(checkpoint)
    else:
        config = TrainConfig(model="small_cnn", image_size=int(size), epochs=int(epochs), batch_size=32, lr=3e-3,
                             patience=int(patience or epochs), label_names=tuple(label_names), seed=int(seed))
    images = load_images(table.path, size=config.image_size)
    labels = table[list(label_names)].to_numpy(np.float32)
    part = {s: np.flatnonzero(table.split.to_numpy() == s) for s in ("train", "val", "test")}
    if checkpoint is None:
        result = train(config, (images[part["train"]], labels[part["train"]]),
                       (images[part["val"]], labels[part["val"]]), out_dir)
        model = result.model
    p_test = predict(model, images[part["test"]]).reshape(len(part["test"]), -1)[:, 0]
    return LessonModel(model.eval(), config, images, labels, part, p_test, result)


def log_model(result: TrainResult) -> str:
    """Log ``result``'s best checkpoint in the active MLflow run as ``model/best.pt``; return its artifact URI."""
    from helpers import tracking

    return tracking.log_artifact(result.checkpoint, MODEL_ARTIFACT.rsplit("/", 1)[0])


def load_model_from_run(run_id: str, uri: str | None = None, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """(model, config) from the ``model/best.pt`` artifact of MLflow run ``run_id`` at ``uri``.

    ``uri`` defaults to :func:`helpers.tracking.tracking_uri`, where :func:`helpers.tracking.start_run` logs.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from helpers import tracking

    import os

    uri = uri or tracking.tracking_uri()
    bar = os.environ.get(_PROGRESS_BAR_ENV)
    os.environ[_PROGRESS_BAR_ENV] = "false"  # one small file: a progress bar would only clutter notebook outputs
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=MODEL_ARTIFACT, dst_path=tmp, tracking_uri=uri
            )
        except (MlflowException, OSError) as exc:
            raise ArtifactMissing(
                f"Run {run_id} has no {MODEL_ARTIFACT} in that store ({type(exc).__name__}: {exc}). Check the run id "
                "and tracking URI, and log the model inside the run with train() or log_model(result)."
            ) from exc
        finally:
            if bar is None:
                os.environ.pop(_PROGRESS_BAR_ENV, None)
            else:
                os.environ[_PROGRESS_BAR_ENV] = bar
        return load_checkpoint(local, device=device)



# --- Command line (what an Azure ML command or sweep job runs) ---------------------------------------


def train_from_manifest(
    data: str | Path,
    config: TrainConfig,
    out_dir: str | Path,
    manifest: str = "manifest.csv",
    seed: int = 0,
) -> TrainResult:
    """Train on a data folder holding ``manifest`` (path relative to the folder, patient_id, one 0/1 column per
    label in ``config.label_names``, optionally split): patient-level split when there is none; test rows unused."""
    from helpers.datasets.splits import patient_split, read_manifest

    folder = Path(data)
    table = read_manifest(folder / manifest, root=folder, verify=(folder / f"{manifest}.sha256").is_file())
    missing = [n for n in config.label_names if n not in table.columns]
    if missing:
        raise ValueError(f"{folder / manifest} has no column(s) {missing}; its columns: {list(table.columns)}.")
    if "split" not in table.columns:
        table = patient_split(table, (0.7, 0.15, 0.15), seed=seed, stratify=config.label_names[0])
    images = load_images(table["path"], size=config.image_size)
    labels = table[list(config.label_names)].to_numpy(np.float32)
    rows = {s: np.flatnonzero(table["split"].to_numpy() == s) for s in ("train", "val")}
    return train(config, (images[rows["train"]], labels[rows["train"]]), (images[rows["val"]], labels[rows["val"]]),
                 out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.train_torch --data FOLDER --label pneumonia [--model ...]``: train and log to MLflow.

    On Azure ML the job sets MLflow's tracking URI and run, so metrics (``val_auc`` per epoch, which a sweep
    optimises) and the model land in the workspace; elsewhere they go to the local store of
    :func:`helpers.tracking.tracking_uri`. Prints one JSON line with the best epoch and validation AUC.
    """
    import argparse
    import json
    import os

    import mlflow

    parser = argparse.ArgumentParser(prog="python -m helpers.train_torch", description=main.__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder holding manifest.csv and the images")
    parser.add_argument("--label", action="append", required=True, help="label column (repeat for multi-label)")
    parser.add_argument("--model", default="small_cnn", choices=MODELS)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--pretrained", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs", help="folder for best.pt and history.csv")
    parser.add_argument("--experiment", default="chest-xray")
    args = parser.parse_args(argv)
    config = TrainConfig(model=args.model, lr=args.lr, epochs=args.epochs, image_size=args.image_size,
                         batch_size=args.batch_size, patience=args.patience, pretrained=args.pretrained,
                         seed=args.seed, label_names=tuple(args.label))
    if "MLFLOW_TRACKING_URI" not in os.environ:  # not on Azure ML: the local store
        from helpers.tracking import tracking_uri, use_experiment

        mlflow.set_tracking_uri(tracking_uri())
        use_experiment(args.experiment)  # its files under the data folder, not the working directory
    with mlflow.start_run():
        result = train_from_manifest(args.data, config, args.out, seed=args.seed)  # logs params, metrics, model
        run_id = mlflow.active_run().info.run_id
    print(json.dumps({"run_id": run_id, "best_epoch": result.best_epoch, "val_auc": round(result.best_val_auc, 4),
                      "epochs_run": len(result.history), "seconds": round(result.seconds, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "HISTORY_COLUMNS", "MODELS", "MODEL_ARTIFACT", "SCHEDULES", "ArrayDataset", "EnsureSize", "batched_outputs", "Normalize",
    "RandomAffine", "RandomBrightnessContrast", "TrainConfig", "TrainResult", "build_model", "build_torchvision", "count_parameters",
    "eval_transforms", "label_aucs", "load_checkpoint", "load_images", "load_model_from_run", "log_model", "macro_auc",
    "main", "predict", "resize_image", "save_checkpoint", "small_cnn", "to_device", "torchvision_model", "train",
    "train_from_manifest", "train_transforms",
]
