"""A frozen feature extractor for head CT that the project trains itself, offline, on generated slices.

The workshop lesson (``06_workshop_experiments``) trains only a small head on frozen features, as Teachable
Machine does. Random convolutional features cannot tell real brain CT with and without blood apart (accuracy 0.50
on the workshop's own images), and ImageNet weights are a download. This module holds the alternative the
lesson uses offline: a small CNN (:class:`CTFeatureNet`, 0.27 M weights, 1 MB) trained by
``scripts/train_ct_features.py`` to find blood on **generated** brain-window slices (:func:`synthetic_slice`),
whose variety (skull shapes, ventricles, sulci, calcifications, skull base, head holders, five kinds of bleed,
blur, noise, JPEG, HU colour coding) stands in for real scans it never sees. Its weights ship inside the package
and are checked against :data:`WEIGHTS_SHA256` when loaded (:func:`load_extractor`).

No real workshop image is used to train it; the workshop's real images only measure it
(``benchmarks/bench_ct_features.py``, results in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.errors import MedImgError

#: Where the shipped weights live (inside the installed package) and their SHA-256.
WEIGHTS_PATH = Path(__file__).resolve().parent / "models" / "ct_features.pt"
WEIGHTS_SHA256 = "b4a40b7c95d97c8d05a71aaedd4e702362fd9b83554a73744bf9446ba5e59bc6"
#: Side (px) of the generated training slices (the workshop extracts features at 128 px too).
SIZE = 128
#: Kinds of bleed :func:`synthetic_slice` draws, with their weights.
BLEED_KINDS = {"intraparenchymal": 0.25, "subdural": 0.25, "epidural": 0.1, "subarachnoid": 0.2,
               "intraventricular": 0.1, "multiple": 0.1}


class WeightsChecksumError(MedImgError):
    """The extractor's weights file is not the one the project ships."""


# --- Generated training slices ----------------------------------------------------------------------------


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian-filtered noise."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def _harmonics(rng: np.random.Generator, angle: np.ndarray, amplitude: float, orders: int = 5) -> np.ndarray:
    """A random smooth closed curve's radial wobble: sum of a few Fourier terms of ``angle``."""
    out = np.zeros_like(angle)
    for k in range(2, 2 + orders):
        out += rng.normal(0, amplitude / k) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    return out


def synthetic_slice(rng: np.random.Generator, size: int = SIZE, bleed: bool | None = None,
                    kind: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """One generated axial head CT slice in Hounsfield units: ``(hu (size, size) float32, blood mask bool, kind)``.

    ``kind`` is ``"none"`` for a slice without blood, else one of :data:`BLEED_KINDS` (drawn when not given).
    ``bleed=None`` draws with or without blood with equal chance. The slice is acquired (blurred, noisy) already."""
    from scipy import ndimage

    if bleed is None:
        bleed = bool(rng.random() < 0.5)
    if bleed and kind is None:
        kind = str(rng.choice(list(BLEED_KINDS), p=np.array(list(BLEED_KINDS.values()))))
    kind = kind if bleed else "none"
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size / 2 + rng.uniform(-0.07, 0.07, 2) * size
    a = rng.uniform(0.25, 0.37) * size
    b = a * rng.uniform(1.05, 1.3)
    theta = rng.uniform(-0.35, 0.35)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    phi = np.arctan2(v / b, u / a)
    d = np.sqrt((u / a) ** 2 + (v / b) ** 2) * (1 + _harmonics(rng, phi, 0.03))
    skull_t = rng.uniform(0.05, 0.12)
    scalp_t = rng.uniform(0.01, 0.05)
    r_in = 1 - skull_t
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    hu[d <= 1 + scalp_t] = rng.uniform(20, 45)
    skull = (d > r_in) & (d <= 1)
    hu[skull] = rng.uniform(700, 1500)
    brain = d <= r_in
    # grey and white matter, texture, a thin CSF space under the skull
    white = d < r_in * (0.72 + 0.08 * _smooth(rng, (size, size), 6))
    gm = rng.uniform(26, 42)
    wm = gm - rng.uniform(2, 8)
    base = np.where(white, wm, gm) + rng.uniform(0.3, 1.5) * _smooth(rng, (size, size), 2.5)
    hu[brain] = base[brain]
    csf = rng.uniform(0, 12)
    if rng.random() < 0.5:
        hu[brain & (d > r_in - rng.uniform(0.01, 0.04))] = csf
    sulci = brain & (d > r_in * rng.uniform(0.6, 0.85)) & (np.abs(_smooth(rng, (size, size), 2.0)) < rng.uniform(0.03, 0.12))
    hu[sulci] = csf
    # lateral ventricles (a pair of tilted ellipses), third ventricle slit
    ventricles = np.zeros((size, size), bool)
    if rng.random() < 0.75:
        half = rng.uniform(0.06, 0.2) * a
        vy0 = rng.uniform(-0.25, 0.15) * b
        for side in (-1, 1):
            ex, ey = rng.uniform(0.04, 0.12) * a, rng.uniform(0.15, 0.45) * b
            tilt = side * rng.uniform(-0.5, 0.5)
            uu, vv = u - side * half, v - vy0
            pu = uu * np.cos(tilt) + vv * np.sin(tilt)
            pv = -uu * np.sin(tilt) + vv * np.cos(tilt)
            ventricles |= (pu / ex) ** 2 + (pv / ey) ** 2 < 1
        if rng.random() < 0.4:
            ventricles |= (np.abs(u) < 1.0) & (np.abs(v - vy0 - 0.3 * b) < 0.1 * b)
        ventricles &= d < r_in * 0.8
        hu[ventricles] = csf
    if rng.random() < 0.4:  # the falx, a thin brighter line on the midline
        falx = (np.abs(u) < rng.uniform(0.3, 0.7)) & brain & (np.abs(v) < b * r_in * rng.uniform(0.3, 0.95))
        hu[falx & ~ventricles] = gm + rng.uniform(3, 20)
    if rng.random() < 0.5:  # calcifications: choroid plexus, pineal (bright dots, no blood)
        for _ in range(rng.integers(1, 4)):
            px, py = cx + rng.normal(0, 0.15 * a), cy + rng.normal(0.1 * b, 0.2 * b)
            hu[(xx - px) ** 2 + (yy - py) ** 2 < rng.uniform(0.3, 2.5)] = rng.uniform(150, 500)
    if rng.random() < 0.2:  # the skull base: bone ridges, air cells, orbits at the front
        for _ in range(rng.integers(2, 7)):
            px, py = cx + rng.normal(0, 0.45 * a), cy + rng.normal(0, 0.45 * b)
            blob = ((xx - px) / rng.uniform(1, 0.2 * a)) ** 2 + ((yy - py) / rng.uniform(1, 0.2 * b)) ** 2 < 1
            hu[blob & (d < 1)] = rng.choice([rng.uniform(400, 1200), rng.uniform(-900, -300)])
        if rng.random() < 0.6:
            for side in (-1, 1):
                ox, oy = u - side * 0.4 * a, v + 0.85 * b
                hu[(ox ** 2 + oy ** 2 < (0.2 * a) ** 2)] = rng.uniform(-100, 20)
    if rng.random() < 0.6:  # the head holder: an arc under the head
        radius = rng.uniform(1.1, 2.0) * b
        hcy = cy + b * (1 + scalp_t) + rng.uniform(1, 0.12 * size) - radius
        ring = np.abs(np.hypot(xx - cx, yy - hcy) - radius) < rng.uniform(0.5, 1.5)
        hu[ring & (yy > cy + 0.3 * b) & (d > 1 + scalp_t)] = rng.uniform(100, 600)
    mask = np.zeros((size, size), bool)
    if bleed:
        kinds = [kind] if kind != "multiple" else list(rng.choice(
            ["intraparenchymal", "subdural", "epidural", "subarachnoid", "intraventricular"], 2, replace=False))
        for k in kinds:
            blood = gm + rng.uniform(15, 45)
            if k == "intraventricular" and not ventricles.any():
                k = "intraparenchymal"
            if k == "intraparenchymal":
                r0 = np.sqrt(rng.uniform(0, 0.55)) * r_in
                t0 = rng.uniform(0, 2 * np.pi)
                px, py = r0 * a * np.cos(t0), r0 * b * np.sin(t0)
                rad = rng.uniform(0.04, 0.3) * a
                dist = np.hypot(u - px, v - py) / rad
                dist *= 1 + _harmonics(rng, np.arctan2(v - py, u - px), 0.15)
                oedema = brain & (dist >= 1) & (dist < 1 + rng.uniform(0, 0.6))
                hu[oedema] = gm - rng.uniform(6, 18)
                region = brain & (dist < 1)
            elif k in ("subdural", "epidural"):
                centre = rng.uniform(-np.pi, np.pi)
                span = rng.uniform(0.4, 1.6) if k == "subdural" else rng.uniform(0.25, 0.7)
                delta = np.angle(np.exp(1j * (phi - centre))) / span
                taper = np.clip(1 - delta ** 2, 0, None) ** (0.3 if k == "subdural" else 0.5)
                thick = rng.uniform(0.03, 0.12) if k == "subdural" else rng.uniform(0.06, 0.18)
                region = brain & (d > r_in - thick * taper) & (np.abs(delta) < 1)
            elif k == "subarachnoid":
                centre, span = rng.uniform(-np.pi, np.pi), rng.uniform(0.5, 3.2)
                sector = np.abs(np.angle(np.exp(1j * (phi - centre)))) < span
                region = sulci & sector
                if rng.random() < 0.4 or not region.any():  # blood in the basal cisterns / interhemispheric fissure
                    region = region | (brain & (np.abs(u) < rng.uniform(0.6, 1.6)) & (np.abs(v) < rng.uniform(0.2, 0.6) * b))
            else:  # intraventricular: blood settles at the back (bottom of the picture) of a ventricle
                level = rng.uniform(0.0, 0.4) * b
                region = ventricles & (v > level + rng.uniform(-0.1, 0.2) * b)
                if not region.any():
                    region = ventricles
            hu[region] = blood + 3.0 * _smooth(rng, (size, size), 1.5)[region]
            mask |= region
        if not mask.any():  # a bleed too small to draw: paint a small blob so the label is true
            hu[(np.hypot(u, v - 0.2 * b) < 2.5) & brain] = gm + rng.uniform(25, 45)
            mask |= (np.hypot(u, v - 0.2 * b) < 2.5) & brain
    hu = ndimage.gaussian_filter(hu, rng.uniform(0.5, 1.2))
    hu += rng.uniform(0.2, 2.5) * rng.standard_normal(hu.shape).astype(np.float32)
    if rng.random() < 0.5:
        hu = np.fliplr(hu).copy()
        mask = np.fliplr(mask).copy()
    return hu.astype(np.float32), mask, kind


def render(hu: np.ndarray, rng: np.random.Generator, colour: bool = False) -> np.ndarray:
    """RGB uint8 picture of a generated slice as the lesson shows one: the brain window (centre and width jittered a
    little), JPEG-compressed half the time, and when ``colour`` HU colour coded either way the lesson does it: from
    the HU (:func:`helpers.workshop.colour_code`, generated DICOM) or from the windowed picture
    (:func:`helpers.workshop.colour_code_picture`, the workshop's JPEGs)."""
    from PIL import Image

    from helpers import workshop as ws

    win = (40.0 + rng.uniform(-6, 6), 80.0 + rng.uniform(-10, 10))
    if colour and rng.random() < 0.5:
        return ws.colour_code(hu, ws.BLEED_HU, win)
    picture = ws.brain_picture(hu, win)
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="JPEG", quality=int(rng.integers(60, 96)))
        picture = np.asarray(Image.open(buffer).convert("RGB"))
    return ws.colour_code_picture(picture) if colour else picture


def training_set(n: int, seed: int = 0, size: int = SIZE, colour_fraction: float = 0.25,
                 mask_size: int = 16, progress: bool = False) -> dict[str, np.ndarray]:
    """``n`` generated slices for training: ``images`` (n, size, size, 3) uint8, ``labels`` (n,) 0/1,
    ``masks`` (n, mask_size, mask_size) float32 (share of each cell that is blood), ``kinds``."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    masks = np.empty((n, mask_size, mask_size), np.float32)
    kinds = []
    for i in tqdm(range(n), disable=not progress, desc="generating slices"):
        hu, mask, kind = synthetic_slice(rng, size)
        images[i] = render(hu, rng, colour=bool(rng.random() < colour_fraction))
        labels[i] = int(kind != "none")
        f = size // mask_size
        masks[i] = mask.reshape(mask_size, f, mask_size, f).mean(axis=(1, 3))
        kinds.append(kind)
    return {"images": images, "labels": labels, "masks": masks, "kinds": np.array(kinds)}


# --- The network ----------------------------------------------------------------------------------------


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class CTFeatureNet(nn.Module):
    """A small CNN: a stride-2 stem, three stages (two, two and one 3x3 convolutions, batch norm, ReLU) with max
    pooling between them. Its **features** (:meth:`forward`) are the mean- and max-pooled maps of the last two
    stages (2 x (96 + 128) = 448 numbers), as :class:`helpers.workshop.RandomConvFeatures` pools its own; during
    training, a blood logit per image (:meth:`logits`) and a blood map on the 16 x 16 grid of stage 2 supervise them.
    Input: RGB (N, 3, H, W) in [0, 1]."""

    def __init__(self, widths: tuple[int, int, int, int] = (24, 48, 96, 128)) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = _conv(3, w0, 5, stride=2)
        self.stage1 = nn.Sequential(_conv(w0, w1), _conv(w1, w1))
        self.stage2 = nn.Sequential(_conv(w1, w2), _conv(w2, w2))
        self.stage3 = _conv(w2, w3)
        self.seg = nn.Conv2d(w2, 1, 1)
        self.cls = nn.Linear(2 * (w2 + w3), 1)
        self.widths = widths

    @property
    def n_features(self) -> int:
        return 2 * (self.widths[2] + self.widths[3])

    def _maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.stem((x - 0.5) / 0.25), 2)
        x = F.max_pool2d(self.stage1(x), 2)
        s2 = self.stage2(x)
        s3 = self.stage3(F.max_pool2d(s2, 2))
        return s2, s3

    @staticmethod
    def _pool(s2: torch.Tensor, s3: torch.Tensor) -> torch.Tensor:
        return torch.cat([s2.mean(dim=(2, 3)), s2.amax(dim=(2, 3)), s3.mean(dim=(2, 3)), s3.amax(dim=(2, 3))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (N, :attr:`n_features`)."""
        return self._pool(*self._maps(x))

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(blood logit per image (N,), blood map logits (N, 16, 16) at 128 px input): the training targets."""
        s2, s3 = self._maps(x)
        return self.cls(self._pool(s2, s3))[:, 0], self.seg(s2)[:, 0]


# --- Training and loading -------------------------------------------------------------------------------


def _augment(batch: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random brightness/contrast and a random shift/zoom of a batch (N, 3, H, W) and its masks (N, h, w)."""
    n = batch.shape[0]
    gain = 1 + 0.15 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 2
    offset = 0.05 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 2
    batch = (batch * gain + offset).clamp(0, 1)
    scale = 1 + 0.25 * (torch.rand(n, generator=generator) - 0.5) * 2
    shift = 0.15 * (torch.rand(n, 2, generator=generator) - 0.5) * 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    batch = F.grid_sample(batch, grid, align_corners=False, padding_mode="zeros")
    small = F.affine_grid(theta, [n, 1, *masks.shape[1:]], align_corners=False)
    masks = F.grid_sample(masks[:, None], small, align_corners=False)[:, 0]
    return batch, masks


def train(data: dict[str, np.ndarray], epochs: int = 16, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
          seg_weight: float = 1.0, log: Callable[[str], None] = print) -> tuple[CTFeatureNet, list[dict[str, float]]]:
    """Train :class:`CTFeatureNet` on :func:`training_set` data: binary cross-entropy on the blood label plus
    ``seg_weight`` times that of the blood map, AdamW with a one-cycle schedule. Returns the network (eval mode)
    and one row per epoch (loss, accuracy on the epoch's batches, seconds)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = CTFeatureNet()
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2)
    labels = torch.from_numpy(data["labels"]).float()
    masks = torch.from_numpy(data["masks"])
    steps = epochs * (len(images) // batch_size)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    history = []
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(images), generator=generator)
        start, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        for i in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            x, m = _augment(images[idx].float() / 255.0, masks[idx], generator)
            logit, seg = net.logits(x)
            loss = F.binary_cross_entropy_with_logits(logit, labels[idx]) + seg_weight * \
                F.binary_cross_entropy_with_logits(seg, m)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            correct += int(((logit > 0).float() == labels[idx]).sum())
            seen += len(idx)
        row = {"epoch": epoch + 1, "loss": total / seen, "accuracy": correct / seen,
               "seconds": time.perf_counter() - start}
        history.append(row)
        log(f"epoch {row['epoch']}: loss {row['loss']:.3f}, accuracy {row['accuracy']:.3f}, {row['seconds']:.0f} s")
    net.eval()
    return net, history


def save_weights(net: CTFeatureNet, path: str | Path, meta: dict[str, Any] | None = None) -> str:
    """Save ``net``'s weights (float32 state dict, ``weights_only``-loadable) and return their SHA-256;
    ``meta`` goes to a JSON file beside them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, buffer)
    path.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    if meta is not None:
        path.with_suffix(".json").write_text(json.dumps({**meta, "sha256": digest}, indent=2) + "\n")
    return digest


def load_extractor(path: str | Path | None = None, sha256: str | None = None) -> CTFeatureNet:
    """The frozen extractor (eval mode, no gradients) from the shipped weights (default :data:`WEIGHTS_PATH`,
    checked against :data:`WEIGHTS_SHA256`). A missing or altered file raises an error saying how to get the
    right one back."""
    path = Path(path) if path is not None else WEIGHTS_PATH
    expected = WEIGHTS_SHA256 if sha256 is None else sha256
    if not path.is_file():
        raise FileNotFoundError(
            f"The CT feature extractor's weights are missing: {path}. They ship with the package; reinstall it "
            "(pip install --force-reinstall medimg-helpers) or rebuild them: python scripts/train_ct_features.py.")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if expected and digest != expected:
        raise WeightsChecksumError(
            f"{path} has SHA-256 {digest}, not the shipped {expected}: the file was changed or is incomplete. "
            "Restore it (git checkout, or reinstall the package), or, if you retrained on purpose, pass "
            "sha256=<its checksum>.")
    net = CTFeatureNet()
    net.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    net.requires_grad_(False)
    net.eval()
    return net


__all__ = ["BLEED_KINDS", "CTFeatureNet", "SIZE", "WEIGHTS_PATH", "WEIGHTS_SHA256", "WeightsChecksumError",
           "load_extractor", "render", "save_weights", "synthetic_slice", "train", "training_set"]
