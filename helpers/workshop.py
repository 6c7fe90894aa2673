"""The RSNA 2021 workshop's experiments, replayed: a Teachable-Machine-like learner, HU colour coding, and the
read-outs attendees saw (per-class accuracy, confusion matrix, accuracy and loss per epoch).

Teachable Machine trains a small head (a dense layer of 100 units and a softmax) on the features of a frozen,
ImageNet-pretrained MobileNet, with a batch of 16, Adam, and 15% of each class held out as its "test" split.
:func:`train_head` does the same in PyTorch. Its default feature extractor (``backbone="trained"``) is the
project's own CT extractor, trained offline on generated head CT and shipped with the package
(:mod:`helpers.ct_features`), because pretrained weights are a download; ``"random"`` is a frozen convolutional
network with random, seeded weights (a classic baseline: Jarrett et al. 2009, Saxe et al. 2011), which tells real
CT with and without blood apart no better than a coin; ``"mobilenet_v3_small"`` uses torchvision's ImageNet
weights when they can be downloaded (or are already cached), as Teachable Machine does.

Features are computed once per image set (:func:`extract_features`) and the head trains on them, so an
experiment takes seconds and five seeds of it take little more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from helpers import live
from helpers.dicom import window
from helpers.errors import UnsupportedImageError

#: Hounsfield range of fresh blood that :func:`colour_code` paints by default (acute haemorrhage: ~50-90 HU;
#: grey matter ~35-45, white matter ~20-30, calcification and bone above ~100).
BLEED_HU = (50.0, 90.0)
#: Side of the smallest square of in-range pixels that :func:`colour_code` paints (see there).
PAINT_BLOCK = 2
#: The brain window (center, width) under the colour.
BRAIN_WINDOW = (40.0, 80.0)
#: Colour of the painted voxels (RGB, 0-255).
BLEED_COLOUR = (255, 0, 0)
#: Feature extractors :func:`make_extractor` knows.
BACKBONES = ("trained", "random", "mobilenet_v3_small")
#: Teachable Machine's defaults in the workshop's project file (``exp_1.tm``): batch, learning rate, held-out share.
TM_BATCH_SIZE, TM_LEARNING_RATE, TM_TEST_FRACTION = 16, 5e-5, 0.15
#: Columns of a head's training history (``train_*`` measured on the training split after each epoch).
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
#: ImageNet's RGB mean and SD (what pretrained backbones expect).
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --- HU colour coding -------------------------------------------------------------------------------------


def colour_code(
    hu: np.ndarray,
    hu_range: tuple[float, float] = BLEED_HU,
    win: tuple[float, float] = BRAIN_WINDOW,
    colour: tuple[int, int, int] = BLEED_COLOUR,
    block: int = PAINT_BLOCK,
) -> np.ndarray:
    """RGB uint8 (H, W, 3): ``hu`` (Hounsfield units) in a grey window ``win``, with the pixels whose HU lies in
    ``hu_range`` (inclusive) painted ``colour``. Computed from the HU values themselves, not from a windowed
    picture, so the range may lie anywhere, inside the window or not.

    ``block``: only pixels inside a ``block`` x ``block`` square of in-range pixels are painted (a binary opening),
    which drops single noisy pixels and the thin ring of partial-volume pixels along the skull, where bone and
    brain average to blood's HU; ``block=1`` paints every pixel in range."""
    rgb = brain_picture(hu, win)
    rgb[paint_mask(hu, hu_range, block)] = np.asarray(colour, dtype=np.uint8)
    return rgb


def paint_mask(hu: np.ndarray, hu_range: tuple[float, float] = BLEED_HU, block: int = PAINT_BLOCK) -> np.ndarray:
    """Bool mask of the pixels :func:`colour_code` paints: HU in ``hu_range``, kept where a ``block`` x ``block``
    square of such pixels fits."""
    from scipy import ndimage

    if not float(hu_range[0]) < float(hu_range[1]):
        raise ValueError(f"hu_range must be (low, high) with low < high, got {hu_range}.")
    if block < 1:
        raise ValueError(f"block must be at least 1 (1 paints every pixel in range), got {block}.")
    inside = (np.asarray(hu) >= hu_range[0]) & (np.asarray(hu) <= hu_range[1])
    if block == 1:
        return inside
    return ndimage.binary_opening(inside, structure=np.ones((block, block), dtype=bool))


def brain_picture(hu: np.ndarray, win: tuple[float, float] = BRAIN_WINDOW) -> np.ndarray:
    """RGB uint8 (H, W, 3): ``hu`` in the grey window ``win``, as a radiologist (and Teachable Machine) sees it."""
    hu = np.asarray(hu, dtype=np.float32)
    if hu.ndim != 2:
        raise ValueError(f"hu must be one 2-D slice (H, W) in Hounsfield units, got shape {hu.shape}.")
    grey = np.round(window(hu, *win) * 255.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def window_to_hu(picture: np.ndarray, win: tuple[float, float] = BRAIN_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """(HU float32, exact bool) from an 8-bit picture already shown in window ``win`` (for example the workshop's
    brain-windowed JPEGs). Only values strictly inside the window can be recovered (to width/255 HU, less what
    JPEG lost); pixels at 0 or 255 were clipped (``exact`` False) and their HU is only known to be below or above
    the window. Colour pictures are averaged to grey first."""
    picture = np.asarray(picture)
    if picture.ndim == 3:
        picture = picture[..., :3].mean(axis=2)
    if picture.ndim != 2:
        raise ValueError(f"picture must be (H, W) or (H, W, 3), got shape {picture.shape}.")
    center, width = win
    values = picture.astype(np.float32)
    hu = center - width / 2 + values / 255.0 * width
    return hu.astype(np.float32), (values > 0) & (values < 255)


def colour_code_picture(picture: np.ndarray, hu_range: tuple[float, float] = BLEED_HU,
                        win: tuple[float, float] = BRAIN_WINDOW, block: int = PAINT_BLOCK) -> np.ndarray:
    """:func:`colour_code` for an 8-bit picture already shown in window ``win``: HU recovered inside the window
    (:func:`window_to_hu`); clipped pixels (black or white) are never painted, whatever ``hu_range`` says."""
    hu, exact = window_to_hu(picture, win)
    return colour_code(np.where(exact, hu, -1.0e4), hu_range, win, block=block)


def hu_in_range_fraction(hu: np.ndarray, hu_range: tuple[float, float] = BLEED_HU,
                         region: np.ndarray | None = None) -> float:
    """Share of the pixels (of ``region``, default all) whose HU lies in ``hu_range``, inclusive."""
    hu = np.asarray(hu)
    values = hu[region] if region is not None else hu.ravel()
    if values.size == 0:
        return 0.0
    return float(np.mean((values >= hu_range[0]) & (values <= hu_range[1])))


def plot_hu_histogram(hu: np.ndarray, hu_range: tuple[float, float] = BLEED_HU, limits: tuple[float, float] = (-50.0, 150.0),
                      bins: int = 100, ax: Any = None):
    """Histogram of HU values within ``limits`` (air and bone left out), the painted ``hu_range`` shaded red;
    return the Figure."""
    import matplotlib.pyplot as plt

    values = np.asarray(hu, dtype=np.float32).ravel()
    values = values[(values >= limits[0]) & (values <= limits[1])]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3))
    else:
        fig = ax.figure
    ax.hist(values, bins=bins, range=limits, color="0.4")
    ax.axvspan(*hu_range, color="red", alpha=0.25, label=f"painted: {hu_range[0]:g} to {hu_range[1]:g} HU")
    ax.set(xlabel="Hounsfield units", ylabel="pixels", yscale="log")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


# --- Frozen feature extractors ----------------------------------------------------------------------------


class RandomConvFeatures(nn.Module):
    """A frozen three-stage CNN with seeded random weights; features = mean- and max-pooled maps of stages 2
    and 3 (384 numbers per image). Max pooling keeps small bright or coloured spots visible."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList(
            [nn.Conv2d(3, 32, 7, stride=2, padding=3), nn.Conv2d(32, 64, 5, padding=2), nn.Conv2d(64, 128, 3, padding=1)]
        )
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                conv.bias.zero_()
        self.requires_grad_(False)
        self.eval()

    @property
    def n_features(self) -> int:
        return 2 * (64 + 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.convs[0](x - 0.5)), 2)
        outputs = []
        for conv in self.convs[1:]:
            x = F.relu(conv(x))
            outputs += [x.mean(dim=(2, 3)), x.amax(dim=(2, 3))]
            x = F.max_pool2d(x, 2)
        return torch.cat(outputs, dim=1)


class _TorchvisionFeatures(nn.Module):
    """A torchvision backbone's pooled features, input normalised with ImageNet's statistics."""

    def __init__(self, body: nn.Module, n_features: int) -> None:
        super().__init__()
        self.body = body
        self.n = n_features
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def n_features(self) -> int:
        return self.n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.body((x - self.mean) / self.std), 1), 1)


def make_extractor(backbone: str = "trained", seed: int = 0, pretrained: bool = True) -> nn.Module:
    """A frozen feature extractor (eval mode, no gradients) taking RGB (N, 3, H, W) in [0, 1].

    ``trained`` (the default, offline): the project's own CT extractor, trained on generated head CT
    (:func:`helpers.ct_features.load_extractor`; its weights ship with the package, checked by SHA-256).
    ``random``: :class:`RandomConvFeatures` (offline, seeded). ``mobilenet_v3_small``: torchvision's network
    (576 features), with its ImageNet weights when ``pretrained``, as Teachable Machine uses a pretrained
    MobileNet: downloaded once into the torch hub cache and checked; where they cannot be had, a
    WeightsUnavailable error says where to put a copy fetched by hand."""
    if backbone == "trained":
        from helpers.ct_features import load_extractor

        return load_extractor()
    if backbone == "random":
        return RandomConvFeatures(seed)
    if backbone != "mobilenet_v3_small":
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}.")
    from torchvision.models import MobileNet_V3_Small_Weights, mobilenet_v3_small

    from helpers.train_torch import build_torchvision

    net = build_torchvision(mobilenet_v3_small, MobileNet_V3_Small_Weights.IMAGENET1K_V1, pretrained, backbone)
    return _TorchvisionFeatures(net.features, 576)


def to_rgb_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """(N, 3, size, size) float32 in [0, 1] from grey (H, W) or RGB (H, W, 3) images, uint8 (0-255) or float
    ([0, 1]), resized with bilinear interpolation (antialiased)."""
    batch = []
    for image in images:
        array = np.asarray(image)
        scale = 255.0 if array.dtype == np.uint8 else 1.0
        tensor = torch.as_tensor(array.astype(np.float32) / scale)
        if tensor.ndim == 2:
            tensor = tensor[None].expand(3, -1, -1)
        elif tensor.ndim == 3 and tensor.shape[2] in (3, 4):
            tensor = tensor[..., :3].permute(2, 0, 1)
        else:
            raise ValueError(f"An image must be (H, W) or (H, W, 3), got shape {array.shape}.")
        batch.append(tensor)
    stacked = torch.stack([F.interpolate(t[None], size=(size, size), mode="bilinear", antialias=True,
                                         align_corners=False)[0] if t.shape[1:] != (size, size) else t
                           for t in batch])
    return stacked.clamp(0.0, 1.0)


@torch.no_grad()
def extract_features(extractor: nn.Module, images: Sequence[np.ndarray], size: int = 224,
                     batch_size: int = 64) -> np.ndarray:
    """Features (N, D) float32 of ``images`` (see :func:`to_rgb_batch`) through the frozen ``extractor``."""
    if len(images) == 0:
        raise ValueError("No images to extract features from.")
    extractor.eval()
    chunks = [extractor(to_rgb_batch(images[i : i + batch_size], size)).numpy()
              for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks).astype(np.float32)


# --- The trainable head --------------------------------------------------------------------------------


class Head(nn.Module):
    """Teachable Machine's head: standardise the features (training mean and SD), a dense layer of ``hidden``
    ReLU units, and one logit per class."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, n_classes: int, hidden: int = 100) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(len(mean), hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


@dataclasses.dataclass
class HeadResult:
    """A trained head, its per-epoch history (:data:`HISTORY_COLUMNS`), its test-split probabilities after the
    last epoch, and after each epoch asked for in ``probs_at``."""

    head: Head
    history: pd.DataFrame
    test_probs: np.ndarray
    seconds: float
    probs_at: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads inside the block: a head's batches are tiny, and a second thread only waits on the
    first (and on anything else using the CPU), which made training up to 3x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _loss_acc(head: Head, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        logits = head(x)
        return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def train_head(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, n_classes: int = 2,
    epochs: int = 50, batch_size: int = TM_BATCH_SIZE, lr: float = TM_LEARNING_RATE, hidden: int = 100, seed: int = 0,
    on_epoch: Callable[[pd.DataFrame], None] | None = None, snapshots: Sequence[int] = (),
) -> HeadResult:
    """Train a :class:`Head` on features with Adam and cross-entropy, ``epochs`` passes of shuffled batches;
    measure loss and accuracy on both splits after every epoch (``on_epoch`` gets the history so far, for live
    plots), and keep the test probabilities after each epoch in ``snapshots``. Deterministic for a given
    ``seed``, and a shorter run is the start of a longer one (same initial weights and batches)."""
    train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
    train_y, test_y = np.asarray(train_y, np.int64), np.asarray(test_y, np.int64)
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError(f"Both splits need images: {len(train_x)} training, {len(test_x)} test.")
    if train_x.shape[1] != test_x.shape[1] or len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("Features and labels do not match in length or width.")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    std = train_x.std(axis=0)
    head = Head(train_x.mean(axis=0), np.where(std > 1e-6, std, 1.0), n_classes, hidden)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    xt, yt = torch.from_numpy(train_x), torch.from_numpy(train_y)
    xv, yv = torch.from_numpy(test_x), torch.from_numpy(test_y)
    rows: list[dict[str, float]] = []
    probs_at: dict[int, np.ndarray] = {}
    start = time.perf_counter()
    with torch_threads(1):
        for epoch in range(1, epochs + 1):
            head.train()
            for idx in torch.randperm(len(xt), generator=generator).split(batch_size):
                optimiser.zero_grad()
                F.cross_entropy(head(xt[idx]), yt[idx]).backward()
                optimiser.step()
            head.eval()
            (train_loss, train_acc), (test_loss, test_acc) = _loss_acc(head, xt, yt), _loss_acc(head, xv, yv)
            rows.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                         "test_loss": test_loss, "test_acc": test_acc})
            if epoch in snapshots:
                with torch.no_grad():
                    probs_at[epoch] = torch.softmax(head(xv), dim=1).numpy()
            if on_epoch is not None:
                on_epoch(pd.DataFrame(rows, columns=HISTORY_COLUMNS))
        with torch.no_grad():
            probs = torch.softmax(head(xv), dim=1).numpy()
    return HeadResult(head, pd.DataFrame(rows, columns=HISTORY_COLUMNS), probs, time.perf_counter() - start, probs_at)


# --- The image pool ------------------------------------------------------------------------------------

#: Arguments of ``make_head_ct`` for the generated pool (add ``n_patients`` and ``seed``): small slices, half the
#: patients bleeding; haemorrhage images are the slices that show blood, normal images come from normal patients.
POOL_DEFAULTS: dict[str, Any] = {"slices_per_patient": 12, "size": 128, "haemorrhage_fraction": 0.5, "difficulty": 0.5}
#: Side (px) images are resized to before feature extraction (Teachable Machine uses 224; 128 is ~3x faster here).
FEATURE_SIZE = 128


@dataclasses.dataclass
class Pool:
    """Images to draw experiments from: HU slices (None for pictures), labels (0 normal, 1 haemorrhage), patient
    groups (None when unknown), and features ``{False: plain, True: colour coded}`` (a key is missing where that
    version cannot be made)."""

    labels: np.ndarray
    groups: np.ndarray | None
    features: dict[bool, np.ndarray]
    hu: list[np.ndarray] | None
    pictures: list[np.ndarray] | None = None

    def counts(self) -> dict[str, int]:
        """Images per class."""
        return {name: int((self.labels == k).sum()) for k, name in enumerate(CLASSES)}


def build_pool(folder: str | Path, table: pd.DataFrame, extractor: nn.Module, size: int = FEATURE_SIZE,
               hu_range: tuple[float, float] = BLEED_HU, block: int = PAINT_BLOCK) -> Pool:
    """The pool of a head CT table (from ``make_head_ct``, paths relative to ``folder``): haemorrhage images are
    the slices that show blood, normal ones the slices of patients without any, read from DICOM in HU; features
    of each slice in the brain window, and colour coded."""
    from helpers.dicom import pixels, read_dicom

    keep = table[(table["label"] == 1) | (table["patient_label"] == 0)].reset_index(drop=True)
    if keep["label"].nunique() < 2:
        raise ValueError("The table needs slices that show haemorrhage and slices of patients without one.")
    hu = [pixels(read_dicom(Path(folder) / p)).astype(np.float32) for p in keep["path"]]
    plain = [brain_picture(h) for h in hu]
    painted = [colour_code(h, hu_range, block=block) for h in hu]
    features = {False: extract_features(extractor, plain, size), True: extract_features(extractor, painted, size)}
    return Pool(keep["label"].to_numpy(dtype=np.int64), keep["patient_id"].to_numpy(dtype=object), features, hu)


def load_pictures(source: str, path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """RGB uint8 pictures and labels (0 normal, 1 haemorrhage, from the class names: :func:`target_of`) of a real
    image set: ``source="folder"`` (class folders, or ``<Class>_<n>.jpg`` files like the workshop's), ``"tm"``
    (a Teachable Machine project file) or ``"workshop"``: one of the workshop's own projects (``path``: its name,
    default ``exp_1.tm``), downloaded from the workshop's repository once, verified against the registry's
    checksum and cached (:data:`helpers.datasets.registry.RSNA_ICH_WORKSHOP_TM`)."""
    from PIL import Image

    from helpers.datasets.real import load_image_folder, read_tm_project

    if source == "workshop":
        from helpers.datasets.download import default_cache, fetch_file
        from helpers.datasets.registry import get_dataset

        info = get_dataset("rsna_ich_workshop_tm")
        entry = info.file(Path(path).name if path else "exp_1.tm")
        path, source = fetch_file(entry, default_cache() / info.name, info=info), "tm"
    if source == "tm":
        project = read_tm_project(path)
        return list(project.images), np.array([target_of(n) for n in project.table["label"]], dtype=np.int64)
    if source != "folder":
        raise ValueError(f"source must be 'folder', 'tm' or 'workshop', got {source!r}.")
    table = load_image_folder(path)
    labels = np.array([target_of(n) for n in table["label"]], dtype=np.int64)
    pictures = []
    for file in table["path"]:
        with Image.open(file) as im:
            pictures.append(np.asarray(im.convert("RGB")))
    return pictures, labels


def picture_pool(pictures: Sequence[np.ndarray], labels: Sequence[int], extractor: nn.Module,
                 size: int = FEATURE_SIZE, win: tuple[float, float] = BRAIN_WINDOW,
                 hu_range: tuple[float, float] = BLEED_HU, block: int = PAINT_BLOCK) -> Pool:
    """The pool of already windowed pictures (real workshop JPEGs, a ``.tm`` project): plain features, and colour
    coded ones from HU recovered inside the window ``win`` (:func:`window_to_hu`; clipped pixels are not painted)."""
    pictures = [np.asarray(p) for p in pictures]
    painted = [colour_code_picture(p, hu_range, win, block) for p in pictures]
    features = {False: extract_features(extractor, pictures, size), True: extract_features(extractor, painted, size)}
    return Pool(np.asarray(labels, dtype=np.int64), None, features, None, pictures)


# --- Splits and read-outs --------------------------------------------------------------------------------


def holdout_per_class(labels: Sequence[int], fraction: float = TM_TEST_FRACTION, seed: int = 0,
                      groups: Sequence[Any] | None = None) -> np.ndarray:
    """Boolean test mask holding out ``fraction`` of each class (at least one image), as Teachable Machine does.
    With ``groups`` (patient IDs), whole patients are held out until the class's share is reached, so no
    patient has slices on both sides (Teachable Machine does not do this: its test split can leak)."""
    labels = np.asarray(labels)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}.")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < 2:
            raise ValueError(f"Class {cls} has {len(members)} image(s): at least 2 are needed to hold one out.")
        want = max(1, int(round(fraction * len(members))))
        if groups is None:
            test[rng.choice(members, size=want, replace=False)] = True
            continue
        member_groups = np.asarray(groups, dtype=object)[members]
        taken = 0
        for group in rng.permutation(pd.unique(member_groups)):
            if taken >= want:
                break
            chosen = members[member_groups == group]
            test[chosen] = True
            taken += len(chosen)
    if groups is not None:
        g = np.asarray(groups, dtype=object)
        overlap = set(g[test]) & set(g[~test])
        if overlap:
            raise ValueError(f"Patients {sorted(map(str, overlap))[:5]} have images of both classes on both sides "
                             "of the split; hold out by patient across classes instead.")
    return test


def per_class_accuracy(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> pd.DataFrame:
    """Teachable Machine's "accuracy per class": for each class, its test images, how many were predicted as it,
    and the share (the class's recall)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rows = []
    for k, name in enumerate(classes):
        n = int((y_true == k).sum())
        correct = int(((y_true == k) & (y_pred == k)).sum())
        rows.append({"class": name, "images": n, "correct": correct, "accuracy": correct / n if n else float("nan")})
    return pd.DataFrame(rows)


# --- Experiments --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One workshop experiment: images per class, epochs, whether images are colour coded, and its lesson."""

    name: str
    counts: tuple[int, int]  # (normal, haemorrhage)
    epochs: int
    colour: bool
    lesson: str


#: The workshop's five experiments (experiment 4 is experiment 3 trained longer: 75 and 250 epochs), and the
#: control of experiment 5 (80 images per class, as the 12 test images per class of the workshop's screenshot imply).
EXPERIMENTS: dict[str, Experiment] = {
    "1": Experiment("1: small data", (30, 30), 50, False,
                    "30 images per class are too few: accuracy stays modest and varies a lot from seed to seed."),
    "2": Experiment("2: imbalance", (1000, 30), 50, False,
                    "With 1000 normal and 30 haemorrhage images, accuracy looks high, but most haemorrhages "
                    "are missed: the model learned to say 'normal'."),
    "3": Experiment("3: balance", (1000, 1000), 50, False,
                    "Balanced classes: overall accuracy is lower than experiment 2's, but most haemorrhages are caught."),
    "4a": Experiment("4: 75 epochs", (1000, 1000), 75, False, "Training longer: see experiment 4b."),
    "4b": Experiment("4: 250 epochs", (1000, 1000), 250, False,
                     "Overfitting: training accuracy keeps rising, test accuracy stays flat, test loss climbs."),
    "5": Experiment("5: HU colour coding", (80, 80), 50, True,
                    "Painting the bleed's HU range red hands the network the radiologist's cue: accuracy rises "
                    "over the same images without colour (5p)."),
    "5p": Experiment("5p: control, no colour", (80, 80), 50, False,
                     "Experiment 5's images, split and seed without the colour: the control it is compared with."),
}
#: Class names, in target order (0, 1).
CLASSES = ("normal", "haemorrhage")


def scaled(experiment: Experiment, scale: float = 1.0, epochs_scale: float = 1.0) -> Experiment:
    """``experiment`` with its class counts multiplied by ``scale`` (at least 10 each; the minority class of the
    imbalance experiment keeps its count) and its epochs by ``epochs_scale`` (at least 5): the quick setting."""
    normal, bleed = experiment.counts
    if normal > bleed:  # the imbalance is the lesson: keep 30 haemorrhage images, shrink only the majority
        counts = (max(10, int(round(normal * scale))), bleed)
    else:
        counts = (max(10, int(round(normal * scale))), max(10, int(round(bleed * scale))))
    return dataclasses.replace(experiment, counts=counts, epochs=max(5, int(round(experiment.epochs * epochs_scale))))


def fit_to(experiment: Experiment, available: Sequence[int]) -> Experiment:
    """``experiment`` shrunk to a pool with ``available`` images per class (a real folder of 30 + 30): both counts
    scaled by the same factor, so an imbalance stays an imbalance, with at least 2 images per class (one to hold
    out). Unchanged when the pool is large enough."""
    factor = min(1.0, *(a / c for a, c in zip(available, experiment.counts)))
    if factor >= 1.0:
        return experiment
    counts = tuple(min(a, max(2, int(c * factor))) for a, c in zip(available, experiment.counts))
    return dataclasses.replace(experiment, counts=counts)


_NORMAL_NAMES = ("normal", "no_", "no ", "none", "negative", "healthy")
_BLEED_NAMES = ("ich", "hemorrhage", "haemorrhage", "bleed", "positive")


def target_of(label: str) -> int:
    """0 (normal) or 1 (haemorrhage) for a class name of a real folder or ``.tm`` project ("Normal", "Hemorrhage",
    "ich", ...); a name that is neither raises ValueError naming the ones understood."""
    name = str(label).strip().lower()
    if name.startswith(_NORMAL_NAMES):
        return 0
    if name.startswith(_BLEED_NAMES):
        return 1
    raise ValueError(f"Class {label!r} is neither a normal class ({', '.join(n.strip() for n in _NORMAL_NAMES)}) nor a "
                     f"haemorrhage class ({', '.join(_BLEED_NAMES)}): rename the folder or the project's class.")


@dataclasses.dataclass
class ExperimentRun:
    """What one run of an experiment shows: history, per-class accuracy, confusion matrix, overall accuracy."""

    experiment: Experiment
    seed: int
    history: pd.DataFrame
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    accuracy: float
    head: Head
    seconds: float

    def summary(self) -> dict[str, Any]:
        """One row: experiment, seed, counts, epochs, accuracy, per-class accuracy, final losses."""
        last = self.history.iloc[-1]
        row = {"experiment": self.experiment.name, "seed": self.seed, "normal": self.experiment.counts[0],
               "haemorrhage": self.experiment.counts[1], "epochs": self.experiment.epochs,
               "test accuracy": self.accuracy}
        row.update({f"{r['class']} accuracy": r["accuracy"] for _, r in self.per_class.iterrows()})
        row.update(train_acc=float(last.train_acc), test_loss=float(last.test_loss),
                   min_test_loss=float(self.history.test_loss.min()))
        return row


def sample_counts(labels: Sequence[int], counts: Sequence[int], seed: int = 0) -> np.ndarray:
    """Indices of ``counts[k]`` images of each class ``k``, drawn without replacement (seeded), sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for k, n in enumerate(counts):
        members = np.flatnonzero(labels == k)
        if n > len(members):
            raise ValueError(f"{n} images of class {k} requested, only {len(members)} available: lower the counts "
                             "or bring more images.")
        picked.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(picked))


def _read_out(experiment: Experiment, seed: int, history: pd.DataFrame, probs: np.ndarray, y_test: np.ndarray,
              head: Head, seconds: float, classes: Sequence[str]) -> ExperimentRun:
    from helpers.metrics import confusion

    pred = probs.argmax(1)
    table = confusion([classes[k] for k in y_test], [classes[k] for k in pred], labels=list(classes))
    return ExperimentRun(experiment, seed, history.iloc[: experiment.epochs].reset_index(drop=True),
                         per_class_accuracy(y_test, pred, classes), table, float(np.mean(pred == y_test)), head, seconds)


def run_family(
    experiments: Sequence[Experiment], features: Mapping[bool, np.ndarray], labels: Sequence[int], seed: int = 0,
    groups: Sequence[Any] | None = None, lr: float = TM_LEARNING_RATE, batch_size: int = TM_BATCH_SIZE,
    classes: Sequence[str] = CLASSES, on_epoch: Callable[[pd.DataFrame], None] | None = None,
    train: Callable[..., HeadResult] = train_head,
) -> list[ExperimentRun]:
    """Experiments that differ only in their number of epochs (the workshop's 3 and 4), from ONE training run of
    the longest: the others are read from its earlier epochs, which is exactly what training them alone gives
    (same seed, same images, same batches). Runs come back in the order given. See :func:`run_experiment`.

    ``train`` trains the head: :func:`train_head`, or the lesson's own function with its arguments (the notebook
    writes the head and its loop out and passes them here)."""
    if not experiments:
        raise ValueError("run_family needs at least one experiment.")
    longest = max(experiments, key=lambda e: e.epochs)
    for other in experiments:
        if (other.counts, other.colour) != (longest.counts, longest.colour):
            raise ValueError(f"{other.name!r} is not {longest.name!r} with fewer epochs.")
    if longest.colour not in features:
        raise ValueError(f"Experiment {longest.name!r} needs the {'colour-coded' if longest.colour else 'plain'} "
                         "features of the pool.")
    labels = np.asarray(labels)
    chosen = sample_counts(labels, longest.counts, seed)
    y = labels[chosen]
    test = holdout_per_class(y, seed=seed, groups=None if groups is None else np.asarray(groups, dtype=object)[chosen])
    x = features[longest.colour][chosen]
    result = train(x[~test], y[~test], x[test], y[test], len(classes), longest.epochs, batch_size, lr,
                   seed=seed, on_epoch=on_epoch, snapshots=[e.epochs for e in experiments if e is not longest])
    per_epoch = result.seconds / longest.epochs
    return [
        _read_out(e, seed, result.history, result.test_probs, y[test], result.head, result.seconds, classes)
        if e is longest else
        _read_out(e, seed, result.history, result.probs_at[e.epochs], y[test], result.head, per_epoch * e.epochs,
                  classes)
        for e in experiments
    ]


def run_experiment(
    experiment: Experiment, features: Mapping[bool, np.ndarray], labels: Sequence[int], seed: int = 0,
    groups: Sequence[Any] | None = None, lr: float = TM_LEARNING_RATE, batch_size: int = TM_BATCH_SIZE,
    classes: Sequence[str] = CLASSES, on_epoch: Callable[[pd.DataFrame], None] | None = None,
    train: Callable[..., HeadResult] = train_head,
) -> ExperimentRun:
    """Draw the experiment's images from the pool (``features[colour]``: the pool's features without and with
    colour coding, rows aligned with ``labels``), hold out 15% of each class (by patient when ``groups``),
    train the head, and read out what Teachable Machine showed."""
    return run_family([experiment], features, labels, seed=seed, groups=groups, lr=lr, batch_size=batch_size,
                      classes=classes, on_epoch=on_epoch, train=train)[0]


@live.reusable
def run_all(features: Mapping[bool, np.ndarray], labels: Sequence[int], seeds: Sequence[int] = (0,),
            experiments: Mapping[str, Experiment] | None = None, **kwargs: Any) -> dict[tuple[str, int], ExperimentRun]:
    """Every experiment (default :data:`EXPERIMENTS`) for every seed: ``{(key, seed): run}``. Experiments that differ
    only in epochs share one training run (see :func:`run_family`)."""
    experiments = dict(EXPERIMENTS if experiments is None else experiments)
    families: dict[tuple[Any, ...], list[str]] = {}
    for key, e in experiments.items():
        families.setdefault((e.counts, e.colour), []).append(key)
    runs: dict[tuple[str, int], ExperimentRun] = {}
    for keys in families.values():
        keys = sorted(keys, key=lambda k: experiments[k].epochs)
        for seed in seeds:
            family = run_family([experiments[k] for k in keys], features, labels, seed=seed, **kwargs)
            for key, run in zip(keys, family):
                runs[key, seed] = run
    return {(k, s): runs[k, s] for k in experiments for s in seeds}


def summaries(runs: Mapping[tuple[str, int], ExperimentRun]) -> pd.DataFrame:
    """One :meth:`ExperimentRun.summary` row per run of :func:`run_all`, with the experiment's key."""
    return pd.DataFrame([{"key": key, **run.summary()} for (key, _), run in runs.items()])


def spread(table: pd.DataFrame, columns: Sequence[str] = ("test accuracy", "normal accuracy", "haemorrhage accuracy")
           ) -> pd.DataFrame:
    """Mean, SD, min and max over seeds of ``columns`` per experiment (rows of :func:`summaries`)."""
    stats = table.groupby("experiment", sort=False)[list(columns)].agg(["mean", "std", "min", "max"])
    return stats.round(3)


#: Lesson 2 shows when the imbalanced run's accuracy is at least 0.85 while it misses most haemorrhages (its recall
#: is below this). Random features miss them all; the trained CT extractor sees blood and still misses about four in five
#: on average (mean recall 0.20-0.25 over 20 seeds, full and quick settings), which is the lesson: accuracy near the
#: always-"normal" baseline hides it. The notebook's mean over its 5 seeds moves a lot with the data drawn: 0.15-0.40
#: for SEED 0-2 (full), up to 0.43 (quick; benchmarks/results/claims_spread.md); an earlier bound of 1/3 failed
#: SEED=1.
IMBALANCE_MAX_RECALL = 0.5


def check_lessons(summaries: pd.DataFrame) -> pd.DataFrame:
    """Does the run show each experiment's lesson? From the rows of :func:`summaries` (all seeds of all
    experiments, ``experiment`` named as in :data:`EXPERIMENTS`): one row per lesson with the evidence and a
    verdict."""
    mean = summaries.groupby("experiment").mean(numeric_only=True)
    name = {k: e.name for k, e in EXPERIMENTS.items()}

    def get(key: str, column: str) -> float:
        return float(mean.loc[name[key], column]) if name[key] in mean.index else float("nan")

    checks = [
        ("2: accuracy looks high, most haemorrhages missed",
         f"accuracy {get('2', 'test accuracy'):.2f}, haemorrhage recall {get('2', 'haemorrhage accuracy'):.2f}",
         get("2", "test accuracy") >= 0.85 and get("2", "haemorrhage accuracy") < IMBALANCE_MAX_RECALL),
        ("3: balance catches more haemorrhages than 2",
         f"haemorrhage recall {get('3', 'haemorrhage accuracy'):.2f} vs {get('2', 'haemorrhage accuracy'):.2f}",
         get("3", "haemorrhage accuracy") >= get("2", "haemorrhage accuracy") + 0.3),
        ("4: longer training overfits",
         f"train accuracy {get('4a', 'train_acc'):.2f} -> {get('4b', 'train_acc'):.2f}, test loss at 250 epochs "
         f"{get('4b', 'test_loss'):.3f} vs its minimum {get('4b', 'min_test_loss'):.3f}",
         get("4b", "train_acc") >= get("4a", "train_acc") and get("4b", "test_loss") > get("4b", "min_test_loss")),
        ("5: colour coding lifts accuracy over the same images without it",
         f"accuracy {get('5', 'test accuracy'):.2f} vs {get('5p', 'test accuracy'):.2f}",
         get("5", "test accuracy") > get("5p", "test accuracy")),
    ]
    return pd.DataFrame(checks, columns=["lesson", "evidence", "shown"])


# --- Figures ------------------------------------------------------------------------------------------


def plot_run(run: ExperimentRun, axes: Sequence[Any] | None = None):
    """Teachable Machine's "under the hood" read-outs of one run: accuracy and loss per epoch (training and test
    splits) and the test confusion matrix; return the Figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1.2, 1.2, 0.8]})
    else:
        fig = axes[0].figure
    h = run.history
    for ax, metric, label in ((axes[0], "acc", "accuracy"), (axes[1], "loss", "loss")):
        ax.plot(h.epoch, h[f"train_{metric}"], label="training split")
        ax.plot(h.epoch, h[f"test_{metric}"], label="test split (15%)")
        ax.set(xlabel="epoch", ylabel=label, title=f"{label} per epoch")
    axes[0].set_ylim(0, 1.02)
    axes[0].legend(fontsize=8, loc="lower right")
    counts = run.confusion.to_numpy()
    axes[2].imshow(counts, cmap="Blues")
    names = [c.removeprefix("predicted: ") for c in run.confusion.columns]
    axes[2].set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true",
                title=f"test: accuracy {run.accuracy:.2f}")
    axes[2].set_xticklabels(names, fontsize=8)
    axes[2].set_yticklabels(names, fontsize=8)
    for (i, j), n in np.ndenumerate(counts):
        axes[2].text(j, i, str(n), ha="center", va="center", color="white" if n > counts.max() / 2 else "black")
    fig.suptitle(f"Experiment {run.experiment.name} ({run.experiment.counts[0]} normal, "
                 f"{run.experiment.counts[1]} haemorrhage, seed {run.seed})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_spread(table: pd.DataFrame, columns: Sequence[str] = ("test accuracy", "haemorrhage accuracy")):
    """Every seed's value (dots) and the mean (bar) of ``columns`` per experiment, from :func:`summaries`;
    return the Figure. A run far outside its experiment's dots is broken, not unlucky."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(table["experiment"]))
    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 0.45 * len(names) + 1.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, column in zip(axes, columns):
        for i, name in enumerate(names):
            values = table.loc[table["experiment"] == name, column].to_numpy(dtype=float)
            ax.barh(i, np.nanmean(values), color="0.85")
            ax.plot(values, np.full(len(values), i), "o", color="C0", alpha=0.7)
        ax.set(xlim=(0, 1.02), xlabel=column, yticks=range(len(names)))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
    seeds = table["seed"].nunique()
    fig.suptitle(f"{seeds} seeds per experiment: dots are seeds, bars their mean", fontsize=10)
    fig.tight_layout()
    return fig


# --- The instructor panel ----------------------------------------------------------------------------------


class InstructorPanel:
    """Widgets to run an experiment live: pick an experiment (or set the class counts, epochs and colour coding by
    hand), press Train and watch the curves and the confusion matrix update; then upload an image (PNG, JPEG or
    DICOM) to classify it with the model just trained, as the workshop's drag-and-drop test did."""

    def __init__(self, pool: Pool, extractor: nn.Module, size: int = FEATURE_SIZE,
                 experiments: Mapping[str, Experiment] | None = None, live_every: int = 5,
                 hu_range: tuple[float, float] = BLEED_HU, **train_kwargs: Any) -> None:
        import ipywidgets as w

        self.pool, self.extractor, self.size, self.hu_range = pool, extractor, size, hu_range
        self.experiments = dict(EXPERIMENTS if experiments is None else experiments)
        self.live_every, self.train_kwargs = max(1, live_every), train_kwargs
        self.run: ExperimentRun | None = None
        available = [int((pool.labels == k).sum()) for k in range(len(CLASSES))]
        first = fit_to(next(iter(self.experiments.values())), available)
        style = {"description_width": "initial"}
        self.choice = w.Dropdown(options=[(e.name, k) for k, e in self.experiments.items()], description="experiment")
        self.normal = w.IntSlider(first.counts[0], 2, available[0], description="normal images", style=style)
        self.bleed = w.IntSlider(first.counts[1], 2, available[1], description="haemorrhage images", style=style)
        self.epochs = w.IntSlider(first.epochs, 5, 300, step=5, description="epochs")
        self.colour = w.Checkbox(first.colour, description="HU colour coding", disabled=True not in pool.features)
        self.seed = w.IntText(0, description="seed", layout=w.Layout(width="150px"))
        self.button = w.Button(description="Train", button_style="primary", icon="play")
        self.upload = w.FileUpload(accept=".png,.jpg,.jpeg,.dcm", multiple=False, description="Classify an image")
        self.status = w.HTML()
        self.plot = w.Output()
        self.answer = w.Output()
        self.choice.observe(self._preset, names="value")
        self.button.on_click(self.train)
        self.upload.observe(self._uploaded, names="value")
        self.widget = w.VBox([w.HBox([self.choice, self.seed]), w.HBox([self.normal, self.bleed]),
                              w.HBox([self.epochs, self.colour, self.button]), self.status, self.plot,
                              w.HBox([self.upload]), self.answer])

    def _preset(self, change: Mapping[str, Any]) -> None:
        available = (self.normal.max, self.bleed.max)
        e = fit_to(self.experiments[change["new"]], available)
        self.normal.value, self.bleed.value, self.epochs.value = e.counts[0], e.counts[1], e.epochs
        self.colour.value = e.colour and not self.colour.disabled

    def settings(self) -> Experiment:
        """The experiment the widgets describe now."""
        base = self.experiments[self.choice.value]
        return dataclasses.replace(base, counts=(self.normal.value, self.bleed.value), epochs=self.epochs.value,
                                   colour=bool(self.colour.value))

    def _draw(self, history: pd.DataFrame, final: ExperimentRun | None = None) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        with self.plot:
            clear_output(wait=True)
            if final is not None:
                fig = plot_run(final)
            else:
                fig, ax = plt.subplots(1, 2, figsize=(9, 3))
                for a, metric in zip(ax, ("acc", "loss")):
                    a.plot(history.epoch, history[f"train_{metric}"], label="training split")
                    a.plot(history.epoch, history[f"test_{metric}"], label="test split")
                    a.set(xlabel="epoch", title=metric)
                ax[0].legend(fontsize=8)
                fig.tight_layout()
            display(fig)
            plt.close(fig)

    def train(self, _button: Any = None) -> ExperimentRun:
        """Train the head with the current settings, updating the curves every ``live_every`` epochs."""
        experiment = self.settings()
        self.button.disabled = True
        self.status.value = f"training {experiment.name}: {experiment.counts[0]} + {experiment.counts[1]} images ..."

        def live(history: pd.DataFrame) -> None:
            if len(history) % self.live_every == 0:
                self._draw(history)

        try:
            self.run = run_experiment(experiment, self.pool.features, self.pool.labels, seed=int(self.seed.value),
                                      groups=self.pool.groups, on_epoch=live, **self.train_kwargs)
        except ValueError as exc:
            self.status.value = f"<b>Cannot train:</b> {exc}"
            raise
        finally:
            self.button.disabled = False
        self._draw(self.run.history, self.run)
        recall = self.run.per_class.set_index("class")["accuracy"]
        self.status.value = (f"done in {self.run.seconds:.1f} s: test accuracy {self.run.accuracy:.2f}; "
                             + ", ".join(f"{k} {v:.2f}" for k, v in recall.items()))
        return self.run

    def classify_upload(self, data: bytes, name: str) -> dict[str, float]:
        """Class probabilities of an uploaded file with the last trained model (colour coded if it was)."""
        if self.run is None:
            raise RuntimeError("No model yet: press Train first, then upload the image again.")
        image = image_from_bytes(bytes(data), name, colour=self.run.experiment.colour, hu_range=self.hu_range)
        return classify(self.run.head, self.extractor, image, self.size)

    def _uploaded(self, change: Mapping[str, Any]) -> None:
        from IPython.display import clear_output, display

        files = uploaded_files(change["new"])
        if not files:
            return
        name, content = files[0]
        with self.answer:
            clear_output()
            try:
                probs = self.classify_upload(content, name)
            except (RuntimeError, UnsupportedImageError) as exc:
                print(exc)
                return
            display(pd.Series(probs, name=name).round(3).to_frame().T)


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """(name, content) of each file in a ``FileUpload`` value, from ipywidgets 8 (a tuple of dicts with ``name`` and
    ``content``) or ipywidgets 7, Colab's (a dict of name -> {``metadata``: {``name``, ...}, ``content``})."""
    if not value:
        return []
    if isinstance(value, Mapping):
        return [(item.get("metadata", {}).get("name", key), bytes(item["content"])) for key, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value]


def instructor_panel(pool: Pool, extractor: nn.Module, size: int = FEATURE_SIZE, **kwargs: Any):
    """The :class:`InstructorPanel`, displayed, in a live notebook; headless (CI, ``make demo``), experiment 1 trained
    once and its read-outs as a static Figure instead."""
    from helpers.config import is_headless

    if is_headless():
        experiments = kwargs.get("experiments") or EXPERIMENTS
        key = next(iter(experiments))
        available = [int((pool.labels == k).sum()) for k in range(len(CLASSES))]
        run = run_experiment(fit_to(experiments[key], available), pool.features, pool.labels, groups=pool.groups,
                             **{k: v for k, v in kwargs.items() if k in ("lr", "batch_size", "train")})
        return plot_run(run)
    from IPython.display import display

    panel = InstructorPanel(pool, extractor, size, **kwargs)
    display(panel.widget)
    return panel


# --- Classifying one image (the workshop's drag-and-drop test) -------------------------------------------


def image_from_bytes(data: bytes, name: str, colour: bool = False, hu_range: tuple[float, float] = BLEED_HU,
                     win: tuple[float, float] = BRAIN_WINDOW) -> np.ndarray:
    """An uploaded file (PNG, JPEG or DICOM) as the learner's input: RGB uint8 (H, W, 3). DICOM is converted to HU
    and shown in the brain window (colour coded when ``colour``); PNG and JPEG are taken as already windowed
    pictures (colour coding then recovers HU inside the window with :func:`window_to_hu`)."""
    from helpers.dicom import pixels, read_dicom_bytes

    suffix = Path(name).suffix.lower()
    if data[128:132] == b"DICM" or suffix in (".dcm", ".dicom"):
        hu = pixels(read_dicom_bytes(data, name))
        if hu.ndim != 2:
            raise UnsupportedImageError(f"{name}: a single-frame greyscale DICOM is needed, got shape {hu.shape}.")
        return colour_code(hu, hu_range, win) if colour else brain_picture(hu, win)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            picture = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError(f"{name} is neither a DICOM file nor an image PIL can read (PNG, JPEG): "
                                    "upload a head CT slice in one of those formats.") from exc
    return colour_code_picture(picture, hu_range, win) if colour else picture


def classify(head: Head, extractor: nn.Module, image: np.ndarray, size: int = 224,
             classes: Sequence[str] = CLASSES) -> dict[str, float]:
    """Class probabilities ``{class: p}`` of one RGB or grey image through ``extractor`` and ``head``."""
    features = extract_features(extractor, [image], size=size)
    head.eval()
    with torch.no_grad():
        probs = torch.softmax(head(torch.from_numpy(features)), dim=1)[0].numpy()
    return {name: float(p) for name, p in zip(classes, probs)}


__all__ = [
    "BACKBONES", "BLEED_COLOUR", "BLEED_HU", "BRAIN_WINDOW", "CLASSES", "EXPERIMENTS", "FEATURE_SIZE", "HISTORY_COLUMNS", "IMBALANCE_MAX_RECALL", "Experiment",
    "ExperimentRun", "Head", "HeadResult", "InstructorPanel", "POOL_DEFAULTS", "Pool", "RandomConvFeatures", "TM_BATCH_SIZE", "TM_LEARNING_RATE",
    "TM_TEST_FRACTION", "PAINT_BLOCK", "brain_picture", "build_pool", "check_lessons", "classify", "colour_code", "colour_code_picture", "extract_features", "holdout_per_class",
    "fit_to", "hu_in_range_fraction", "image_from_bytes", "instructor_panel", "load_pictures", "make_extractor", "paint_mask", "per_class_accuracy", "picture_pool", "plot_run", "plot_spread", "run_all", "spread", "summaries", "target_of",
    "plot_hu_histogram", "run_experiment", "run_family", "sample_counts", "scaled", "to_rgb_batch",
    "torch_threads", "train_head", "uploaded_files", "window_to_hu",
]
