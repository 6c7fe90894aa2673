"""Pure-numpy image phantoms behind the generated data sets: chest X-ray, knee X-ray, head CT, cardiac MR.

Each function renders ONE image from a patient seed and an image index, with no files and no global
state, and returns a :class:`Phantom`: the pixels in the set's physical units, boolean masks of what
the image shows (tissues, lesions) and a dict of facts (labels, lesion boxes, pixel spacing). The
same ``patient_seed`` gives the same anatomy and lesion in every image of that patient; the random
draws depend neither on ``difficulty`` nor on the labels, so one patient rendered at two difficulties
(or with and without a lesion) differs only in what those change.

Conventions: pixel coordinates are ``x`` = column, ``y`` = row, origin at the top-left pixel's centre
(as in the Sunnybrook contour files); boxes are inclusive ``(x0, y0, x1, y1)`` in pixels with a
centroid ``(cx, cy)``. ``difficulty`` runs from 0 (obvious lesions, little noise) to 1 (faint, small
lesions in heavy noise). Smooth anatomy is drawn on a half-resolution grid and upsampled bilinearly
(radiographs are blurred at that scale anyway); lesions, contours and noise are full resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

F32 = np.float32

#: Findings the chest X-ray phantom can show (multilabel set), in column order.
CHEST_FINDINGS: tuple[str, ...] = ("pneumonia", "effusion", "cardiomegaly", "nodule")
#: Fracture sites of the knee phantom.
KNEE_FRACTURE_SITES: tuple[str, ...] = ("tibial_plateau", "femoral_condyle", "tibial_shaft", "fibular_neck")
#: Haemorrhage subtypes of the head CT phantom.
HAEMORRHAGE_SUBTYPES: tuple[str, ...] = ("intraparenchymal", "subdural")

#: Nominal head CT tissue values in HU (each patient's values are drawn near these).
CT_HU: dict[str, float] = {
    "air": -1000.0,
    "scalp": 30.0,
    "bone": 1150.0,
    "csf": 8.0,
    "grey": 40.0,
    "white": 26.0,
    "couch": 100.0,
}

Box = tuple[float, float, float, float, float, float]
_NO_BOX: Box = (np.nan, np.nan, np.nan, np.nan, np.nan, np.nan)


@dataclass(frozen=True)
class Phantom:
    """One synthetic image: ``image`` (float32, the set's units), boolean ``masks`` by name, ``info`` facts."""

    image: np.ndarray
    masks: Mapping[str, np.ndarray]
    info: dict[str, object]


class LazyMasks(Mapping[str, np.ndarray]):
    """Full-size boolean masks made on first access, so writing files never pays for masks nobody reads."""

    def __init__(self, makers: Mapping[str, Callable[[], np.ndarray]]) -> None:
        """Hold one zero-argument function per mask name."""
        self._makers = dict(makers)
        self._made: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        """The mask ``name`` (made now if not yet made)."""
        if name not in self._made:
            self._made[name] = self._makers[name]()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        """The mask names."""
        return iter(self._makers)

    def __len__(self) -> int:
        """How many masks there are."""
        return len(self._makers)

    def __repr__(self) -> str:
        """The mask names, e.g. ``LazyMasks(['lungs', 'heart'])``."""
        return f"LazyMasks({list(self._makers)})"


# --- small tools -------------------------------------------------------------------------------


def _rng(seed: Sequence[int], *stream: int) -> np.random.Generator:
    """A numpy Generator for one named stream of a patient (seed parts and stream ids are ints >= 0)."""
    return np.random.default_rng([int(s) for s in seed] + [int(s) for s in stream])


#: Length of the fixed table of Gaussian samples that :func:`gaussian_noise` cuts its windows from.
_NOISE_TABLE_LEN = 1 << 21


@lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    """A fixed table of standard-normal float32 samples (seeded, read-only), built once per process."""
    table = np.random.default_rng(0x6D656469).standard_normal(_NOISE_TABLE_LEN, dtype=F32)
    table.flags.writeable = False
    return table


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Standard-normal float32 noise of ``shape``, drawn fast from ``rng``.

    The noise is the sum, divided by sqrt(2), of two non-overlapping windows (offsets drawn from
    ``rng``) of a fixed table of 2**21 Gaussian samples: N(0, 1) per pixel, no pixel of an image
    sharing a sample with another, at a tenth of the cost of ``rng.standard_normal``.
    """
    count = int(np.prod(shape))
    table = _noise_table()
    if count > len(table) // 4:
        return rng.standard_normal(shape, dtype=F32)
    span = len(table) - count  # window starts lie in [0, span]
    o1 = int(rng.integers(0, span + 1))
    o2 = (o1 + count + int(rng.integers(0, span + 1 - 2 * count))) % (span + 1)  # windows never overlap
    out = table[o1 : o1 + count] + table[o2 : o2 + count]
    out *= F32(np.sqrt(0.5))
    return out.reshape(shape)


@lru_cache(maxsize=64)
def _blur_matrix(n: int, nodes: int) -> np.ndarray:
    """(n, nodes) Gaussian interpolation weights from a coarse node grid to n pixels, unit output variance."""
    h = n / max(nodes - 3, 1)
    centres = (np.arange(nodes) - 1.0) * h - 0.5
    x = np.arange(n, dtype=np.float64)[:, None]
    w = np.exp(-0.5 * ((x - centres[None, :]) / (0.75 * h)) ** 2)
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))
    w = w.astype(F32)
    w.flags.writeable = False
    return w


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """A smooth Gaussian random field of ``shape`` (pixels), about ``cells`` blobs across, mean 0, SD 1."""
    rows, cols = shape
    longest = max(rows, cols)
    nr = max(4, int(round(cells * rows / longest)) + 3)
    nc = max(4, int(round(cells * cols / longest)) + 3)
    coarse = rng.standard_normal((nr, nc), dtype=F32)
    return _spread(coarse, rows, cols, _blur_matrix)


#: Matrix products above about this many multiply-adds wake OpenBLAS's worker threads, which then spin on
#: every core for a while; :func:`_spread` keeps its products below it (one core, as promised).
_ONE_THREAD_MACS = 450_000


def _spread(coarse: np.ndarray, rows: int, cols: int, weights: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """Node values ``coarse`` interpolated to rows x cols px with ``weights(n, nodes)`` matrices, upsampling
    a half-size result bilinearly where the products would otherwise be large enough to go multi-threaded."""
    nr, nc = coarse.shape
    if rows * cols * max(nr, nc) > _ONE_THREAD_MACS and rows % 2 == 0 and cols % 2 == 0 and min(rows, cols) >= 16:
        return _up(_spread(coarse, rows // 2, cols // 2, weights), 2)
    return weights(rows, nr) @ coarse @ weights(cols, nc).T


@lru_cache(maxsize=16)
def _interp_matrix(n: int, nodes: int) -> np.ndarray:
    """(n, nodes) Gaussian interpolation weights summing to 1 per pixel, nodes spread over n pixels."""
    h = n / max(nodes - 3, 1)
    centres = (np.arange(nodes) - 1.0) * h - 0.5
    x = np.arange(n, dtype=np.float64)[:, None]
    w = np.exp(-0.5 * ((x - centres[None, :]) / (0.75 * h)) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    w = w.astype(F32)
    w.flags.writeable = False
    return w


def bias_field(rng: np.random.Generator, size: int, strength: float, tilt: float, nodes: int = 6) -> np.ndarray:
    """A smooth positive multiplicative field (size x size, about 1): exp of a coarse random field plus a tilt.

    ``strength`` is the SD of the log-field at the coarse nodes; ``tilt`` the log-gain change from the
    top-left to the bottom-right corner (a surface coil's fall-off). Interpolating exponentiated node
    values costs small matrix products instead of an ``exp`` per pixel.
    """
    g = rng.standard_normal((nodes, nodes)).astype(F32)
    ramp = np.linspace(-0.5, 0.5, nodes, dtype=F32)
    log_gain = F32(strength) * g + F32(tilt) * (ramp[:, None] + ramp[None, :])
    return _spread(np.exp(log_gain), size, size, _interp_matrix)


def _step(size: int) -> int:
    """Grid step for smooth anatomy: 2 (half resolution) for even sizes of 64 px and more, else 1."""
    return 2 if size >= 64 and size % 2 == 0 else 1


@lru_cache(maxsize=16)
def _axes(size: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution pixel coordinates (y column vector, x row vector) of the grid with ``step``."""
    n = size // step
    centres = np.arange(n, dtype=F32) * step + F32((step - 1) / 2)
    y, x = centres[:, None].copy(), centres[None, :].copy()
    y.flags.writeable = False
    x.flags.writeable = False
    return y, x


def _up(a: np.ndarray, step: int) -> np.ndarray:
    """Bilinear 2x upsampling (pixel-centre aligned, edges replicated) when ``step`` is 2; else ``a``."""
    if step == 1:
        return a
    n, m = a.shape
    out = np.empty((2 * n, 2 * m), F32)
    t = np.empty((2 * n, m), F32)
    q = a * F32(0.75)
    even, odd = t[0::2], t[1::2]
    even[1:], even[0] = a[:-1], a[0]
    odd[:-1], odd[-1] = a[1:], a[-1]
    t *= F32(0.25)
    even += q
    odd += q
    q = t * F32(0.75)
    even, odd = out[:, 0::2], out[:, 1::2]
    even[:, 1:], even[:, 0] = t[:, :-1], t[:, 0]
    odd[:, :-1], odd[:, -1] = t[:, 1:], t[:, -1]
    out *= F32(0.25)
    even += q
    odd += q
    return out


def _up_mask(m: np.ndarray, step: int) -> np.ndarray:
    """Nearest-neighbour upsampling of a boolean mask by ``step``."""
    if step == 1:
        return m
    return np.repeat(np.repeat(m, step, axis=0), step, axis=1)


def _erode(m: np.ndarray) -> np.ndarray:
    """Boolean erosion with the 4-neighbour cross (pixels whose neighbours are all set too)."""
    e = m.copy()
    e[1:] &= m[:-1]
    e[:-1] &= m[1:]
    e[:, 1:] &= m[:, :-1]
    e[:, :-1] &= m[:, 1:]
    return e


def _nearest(a: np.ndarray, rows: slice, cols: slice, step: int) -> np.ndarray:
    """The window (rows, cols) of the full-resolution image sampled nearest from grid ``a`` of ``step``."""
    if step == 1:
        return a[rows, cols]
    r = np.arange(rows.start, rows.stop) // step
    c = np.arange(cols.start, cols.stop) // step
    return a[np.ix_(r, c)]


def _window(cx: float, cy: float, half: float, size: int) -> tuple[slice, slice]:
    """Row and column slices of the square window of half-width ``half`` px around (cx, cy), clipped."""
    r0 = int(np.clip(np.floor(cy - half), 0, size))
    r1 = int(np.clip(np.ceil(cy + half) + 1, 0, size))
    c0 = int(np.clip(np.floor(cx - half), 0, size))
    c1 = int(np.clip(np.ceil(cx + half) + 1, 0, size))
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def _soft(d: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Inside-fraction of a pixel from a signed distance ``d`` in px (negative inside), ramp ``width`` px."""
    out = d * F32(-1.0 / width)
    out += F32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, a smooth cubic between."""
    t = x - F32(lo)
    t *= F32(1.0 / (hi - lo))
    np.clip(t, 0.0, 1.0, out=t)
    out = t * t
    t *= F32(-2.0)
    t += F32(3.0)
    out *= t
    return out


def _frame(
    size: int,
    cx: float,
    cy: float,
    angle_deg: float,
    unit: float,
    step: int = 1,
    rows: slice | None = None,
    cols: slice | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rotated, scaled coordinates (u right, v down, in ``unit`` px) of the grid with ``step`` (or a window)."""
    y, x = _axes(size, step)
    if rows is not None:
        y = y[rows]
    if cols is not None:
        x = x[:, cols]
    a = np.deg2rad(angle_deg)
    c, s = F32(np.cos(a) / unit), F32(np.sin(a) / unit)
    dx, dy = x - F32(cx), y - F32(cy)
    return dx * c + dy * s, dy * c - dx * s


def _to_image(cx: float, cy: float, angle_deg: float, unit: float, u: float, v: float) -> tuple[float, float]:
    """Image (x, y) px of frame coordinates (u, v) of :func:`_frame`."""
    a = np.deg2rad(angle_deg)
    return cx + unit * (u * np.cos(a) - v * np.sin(a)), cy + unit * (u * np.sin(a) + v * np.cos(a))


def _box(mask: np.ndarray, rows: slice | None = None, cols: slice | None = None, step: int = 1) -> Box:
    """Inclusive box (x0, y0, x1, y1) and centroid (cx, cy) in full-resolution px of a mask.

    ``mask`` is cut from window (rows, cols) of the image, or is a grid of ``step`` whose nearest
    upsampling is the full-resolution mask.
    """
    per_row = np.count_nonzero(mask, axis=1)
    total = int(per_row.sum())
    if total == 0:
        return _NO_BOX
    per_col = np.count_nonzero(mask, axis=0)
    ys, xs = np.flatnonzero(per_row), np.flatnonzero(per_col)
    cy = float(per_row @ np.arange(len(per_row))) / total
    cx = float(per_col @ np.arange(len(per_col))) / total
    r0 = rows.start if rows is not None else 0
    c0 = cols.start if cols is not None else 0
    half = (step - 1) / 2
    return (
        float(c0 + step * xs[0]),
        float(r0 + step * ys[0]),
        float(c0 + step * xs[-1] + step - 1),
        float(r0 + step * ys[-1] + step - 1),
        c0 + step * cx + half,
        r0 + step * cy + half,
    )


def _put_box(info: dict[str, object], name: str, box: Box) -> None:
    """Store ``box`` as ``<name>_x0, _y0, _x1, _y1, _cx, _cy`` in ``info``."""
    for key, value in zip(("x0", "y0", "x1", "y1", "cx", "cy"), box):
        info[f"{name}_{key}"] = value


def _paste(size: int, part: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """A full-size boolean mask holding ``part`` at window (rows, cols)."""
    full = np.zeros((size, size), dtype=bool)
    full[rows, cols] = part
    return full


def _polar_basis(dx: np.ndarray, dy: np.ndarray, n: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Radius (px) and the harmonics (cos k t, sin k t), k = 1..n, of the angle t of points (dx, dy) from a centre:
    what :func:`_polar_shape` needs, computed once for shapes sharing a centre (endo- and epicardium)."""
    rho = np.sqrt(dx * dx + dy * dy) + F32(1e-6)
    c, s = dx / rho, dy / rho
    harmonics = [(c, s)]
    ck, sk = c, s
    for _ in range(1, n):
        ck, sk = ck * c - sk * s, sk * c + ck * s
        harmonics.append((ck, sk))
    return rho, harmonics


def _polar_shape(
    basis: tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]], radius: float, coeffs: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Radial signed distance (px) to the star shape r(t) = radius (1 + sum_k a_k cos(k t - p_k)), k = 1..,
    from a :func:`_polar_basis` with at least ``len(coeffs)`` harmonics."""
    rho, harmonics = basis
    factor = np.ones_like(rho)
    for (amp, phase), (ck, sk) in zip(coeffs, harmonics):
        if amp:
            factor += F32(amp) * (ck * F32(np.cos(phase)) + sk * F32(np.sin(phase)))
    return rho - F32(radius) * factor


def polar_outline(
    cx: float, cy: float, radius: float, coeffs: Sequence[tuple[float, float]], step_px: float = 1.0
) -> np.ndarray:
    """``(N, 2)`` (x, y) points (px), about ``step_px`` apart, tracing the star shape of :func:`_polar_shape`."""
    n = max(16, int(np.ceil(2 * np.pi * radius * 1.3 / step_px)))
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = np.ones_like(t)
    for k, (amp, phase) in enumerate(coeffs, start=1):
        r += amp * np.cos(k * t - phase)
    r *= radius
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _segment_distance(u: np.ndarray, v: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    """Distance from points (u, v) to the segment p0-p1 (same units)."""
    ex, ey = p1[0] - p0[0], p1[1] - p0[1]
    length2 = max(ex * ex + ey * ey, 1e-12)
    t = np.clip(((u - F32(p0[0])) * F32(ex) + (v - F32(p0[1])) * F32(ey)) * F32(1.0 / length2), 0.0, 1.0)
    du = u - F32(p0[0]) - t * F32(ex)
    dv = v - F32(p0[1]) - t * F32(ey)
    return np.sqrt(du * du + dv * dv)


def _lesion_contrast(d: float, base: float, jitter: float) -> float:
    """Lesion contrast at difficulty ``d``: ``base`` at 0 falling to a faint floor at 1, times ``jitter``."""
    return jitter * (base * (1.0 - d) ** 1.3 + 0.02)


# --- radiographs: a patient canvas, then exposures ---------------------------------------------


@dataclass(frozen=True)
class _Canvas:
    """A patient's radiograph before exposure: a float32 image ``margin`` px larger on each side than
    the exposures cut from it, boxes in canvas px (``info``), mask makers of canvas size, and gain."""

    image: np.ndarray
    margin: int
    info: dict[str, object]
    makers: dict[str, Callable[[], np.ndarray]]
    gain: float


_X_KEYS = ("_x0", "_x1", "_cx")
_Y_KEYS = ("_y0", "_y1", "_cy")


def _expose(canvas: _Canvas, size: int, ri: np.random.Generator, sigma: float, heel_range: float) -> Phantom:
    """One exposure of ``canvas``: a ``size`` crop at a random offset, gain and heel-effect jitter, noise."""
    m = canvas.margin
    ox, oy = (int(o) for o in ri.integers(0, 2 * m + 1, size=2))
    gain = canvas.gain * ri.uniform(0.93, 1.07)
    heel = ri.uniform(-heel_range, heel_range)
    img = canvas.image[oy : oy + size, ox : ox + size] * F32(gain)
    if heel_range:
        y, _ = _axes(size)
        img += F32(heel) * (y * F32(1.0 / size) - F32(0.5))
    noise = gaussian_noise(ri, (size, size))
    noise *= F32(sigma)
    img += noise
    np.clip(img, 0.0, 1.0, out=img)
    info = dict(canvas.info)
    for key, value in canvas.info.items():
        if isinstance(value, float) and key.endswith(_X_KEYS + _Y_KEYS):
            shifted = value - (ox if key.endswith(_X_KEYS) else oy)
            if not key.endswith(("_cx", "_cy")):
                shifted = float(np.clip(shifted, 0, size - 1))
            info[key] = shifted
    info.update(noise_sd=float(sigma), offset_x=ox, offset_y=oy)
    makers = {name: (lambda make=make: make()[oy : oy + size, ox : ox + size]) for name, make in canvas.makers.items()}
    return Phantom(img, LazyMasks(makers), info)


def _margin(size: int, fraction: float) -> int:
    """An even margin of about ``fraction`` of ``size`` px (at least 2)."""
    return max(2, int(round(fraction * size / 2)) * 2)


# --- chest X-ray -------------------------------------------------------------------------------


def chest_xray(
    *,
    size: int = 256,
    difficulty: float = 0.5,
    findings: Mapping[str, bool] | None = None,
    patient_seed: Sequence[int] = (0,),
    image_index: int = 0,
) -> Phantom:
    """A PA chest radiograph phantom: brightness in [0, 1] (MONOCHROME2: bone and fluid bright, lung dark).

    ``findings`` maps names of :data:`CHEST_FINDINGS` to presence. ``info`` holds per finding a box
    ``<finding>_x0 .. _cy`` (px, NaN when absent), ``cardiothoracic_ratio``, ``pixel_spacing_mm`` and
    ``bits_stored`` (12 or 14: the patient's detector). ``masks``: ``lungs``, ``heart`` and each finding
    shown. The images of one patient differ by position (a few px), exposure and noise.
    """
    canvas = _chest_canvas(size, difficulty, findings, patient_seed)
    return _expose(canvas, size, _rng(patient_seed, 2, image_index), _chest_sigma(difficulty), 0.04)


def chest_xray_patient(
    *,
    size: int = 256,
    difficulty: float = 0.5,
    findings: Mapping[str, bool] | None = None,
    patient_seed: Sequence[int] = (0,),
    n_images: int = 1,
) -> list[Phantom]:
    """Images 0 .. n_images-1 of one patient, as :func:`chest_xray` gives them, the anatomy drawn once."""
    canvas = _chest_canvas(size, difficulty, findings, patient_seed)
    sigma = _chest_sigma(difficulty)
    return [_expose(canvas, size, _rng(patient_seed, 2, i), sigma, 0.04) for i in range(n_images)]


def _chest_sigma(difficulty: float) -> float:
    """Chest X-ray pixel noise SD (brightness units) at ``difficulty``."""
    return 0.01 + 0.03 * float(np.clip(difficulty, 0.0, 1.0))


def _chest_canvas(
    size: int, difficulty: float, findings: Mapping[str, bool] | None, patient_seed: Sequence[int]
) -> _Canvas:
    """The patient's chest before exposure (see :func:`chest_xray`)."""
    findings = {k: bool(v) for k, v in (findings or {}).items()}
    unknown = set(findings) - set(CHEST_FINDINGS)
    if unknown:
        raise ValueError(f"unknown chest findings {sorted(unknown)}; use some of {CHEST_FINDINGS}.")
    d = float(np.clip(difficulty, 0.0, 1.0))
    ra, rl = _rng(patient_seed, 0), _rng(patient_seed, 1)
    margin = _margin(size, 0.03)
    full = size + 2 * margin
    step = _step(full)

    # Patient: build, position, heart, diaphragm, detector.
    half_width = 0.37 * size * ra.uniform(0.88, 1.04)  # px from the midline to the outer rib edge
    spacing = round(ra.uniform(380.0, 430.0) / size, 4)
    bits = (12, 14)[int(ra.integers(2))]
    ctr_normal = ra.uniform(0.40, 0.48)
    ctr_big = 0.50 + ra.uniform(0.05, 0.14) * (1.0 - 0.75 * d)
    dome = ra.uniform(0.45, 0.6)
    right_lift = ra.uniform(0.02, 0.08)
    rib_phase, rib_spacing = ra.uniform(0.0, 1.0), ra.uniform(0.16, 0.19)
    heart_tilt = np.deg2rad(ra.uniform(20.0, 40.0))
    cx = full / 2 + size * ra.normal(0.0, 0.025)
    cy = full / 2 + size * ra.normal(0.0, 0.025)
    rot = ra.normal(0.0, 2.0)
    exposure = ra.uniform(0.85, 1.1)
    markings = smooth_field(ra, (full // step, full // step), 14.0)

    u, v = _frame(full, cx, cy, rot, half_width, step)
    a = np.abs(u)
    px = F32(half_width)

    # Heart: a tilted ellipse resting on the diaphragm; its width sets the cardiothoracic ratio.
    ctr = ctr_big if findings.get("cardiomegaly") else ctr_normal
    hw = 0.9 * ctr  # half of the heart's horizontal extent, in half-thorax widths
    ct, st = np.cos(heart_tilt), np.sin(heart_tilt)
    ha = hw / np.sqrt(ct**2 + 0.5 * st**2)
    hb = ha * np.sqrt(0.5)
    hv = np.sqrt((ha * st) ** 2 + (hb * ct) ** 2)
    du, dv = u - F32(0.35 * hw), v - F32(dome + 0.03 - 0.7 * hv)
    hq = np.sqrt(
        np.square((du * F32(ct) + dv * F32(st)) * F32(1.0 / ha))
        + np.square((dv * F32(ct) - du * F32(st)) * F32(1.0 / hb))
    )
    hq -= F32(1.0)
    hq *= px * F32(hb)
    alpha_heart = _soft(hq, 2.0)

    # Body outline: torso, narrower neck at the top.
    body_half = _smoothstep(v, -1.3, -0.95)
    body_half *= F32(0.9)
    body_half += F32(0.4)
    alpha_body = _soft((a - body_half) * px, 3.0)
    thickness = np.sqrt(np.clip(1.0 - np.square(u / (body_half + F32(0.05))), 0.0, 1.0))
    img = alpha_body * (F32(0.2) + F32(0.32) * thickness)
    img += F32(0.05)

    # Lungs: lateral and medial borders, apex, diaphragm domes (patient's right = image left, higher).
    lateral = F32(0.9) * np.sqrt(np.clip(1.0 - np.square((v - F32(0.25)) * F32(1.0 / 1.15)), 0.0, 1.0))
    medial = _smoothstep(v, -0.9, -0.3)
    medial *= F32(0.02)
    medial += F32(0.12)
    dome_v = F32(1.6) * np.square(np.clip(a - F32(0.35), 0.0, None))
    dome_v += F32(dome)
    dome_v -= F32(right_lift) * (u < 0)
    d_lung = np.maximum(np.maximum(a - lateral, medial - a), v - dome_v)
    d_lung *= px
    alpha_lung = _soft(d_lung, 2.0)
    aorta_q = np.sqrt(np.square((u - F32(0.1)) * F32(1.0 / 0.11)) + np.square((v + F32(0.32)) * F32(1.0 / 0.11)))
    aorta_q -= F32(1.0)
    aorta_q *= px * F32(0.11)
    lung_open = alpha_lung * (F32(1.0) - alpha_heart)
    lung_open *= F32(1.0) - _soft(aorta_q, 2.0)
    depth = np.sqrt(np.clip(1.0 - np.square(a / (lateral + F32(1e-3))), 0.0, 1.0))
    depth *= F32(0.15 * 0.34)
    depth += F32(0.85 * 0.34)
    depth *= lung_open
    img -= depth

    # Spine behind the mediastinum, ribs (fainter outside the lungs) and clavicles.
    spine = _soft((a - F32(0.075)) * px, 2.0)
    spine *= alpha_body
    spine *= F32(0.04)
    img += spine
    thorax = _soft((a - lateral - F32(0.07)) * px, 3.0)
    thorax *= _soft((v - dome_v - F32(0.05)) * px, 3.0)
    thorax *= _smoothstep(a, 0.04, 0.12)
    thorax *= F32(0.35) + F32(0.65) * lung_open
    w = (v + F32(0.55) * np.square(a - F32(0.3)) - F32(0.25) * a) * F32(1.0 / rib_spacing)
    w += F32(rib_phase)
    p = (w - np.floor(w)) * F32(1.0 / 0.42)
    rib = np.sqrt(np.clip(F32(4.0) * p * (F32(1.0) - p), 0.0, 1.0))
    w2 = (v - F32(0.35) * a) * F32(1.0 / (rib_spacing * 1.1))
    w2 += F32(rib_phase * 0.7)
    p2 = (w2 - np.floor(w2)) * F32(1.0 / 0.35)
    rib2 = np.clip(F32(4.0) * p2 * (F32(1.0) - p2), 0.0, 1.0)
    rib2 *= a > 0.25
    rib *= F32(0.085)
    rib += F32(0.03) * rib2
    rib *= thorax
    img += rib
    clavicle = _soft((np.abs(v + F32(0.8) + F32(0.12) * a) - F32(0.045)) * px, 2.0)
    clavicle *= _soft((np.abs(a - F32(0.45)) - F32(0.36)) * px, 3.0)
    clavicle *= F32(0.06)
    img += clavicle

    # Lung markings: branching vessel-like ridges, denser near the hila.
    vessels = np.exp(-np.square(F32(4.0) * markings))
    vessels *= F32(0.05)
    vessels += F32(0.012) * markings
    vessels *= lung_open
    vessels *= np.clip(F32(1.1) - a, 0.2, 1.0)
    img += vessels

    info: dict[str, object] = {
        "pixel_spacing_mm": float(spacing),
        "bits_stored": bits,
        "cardiothoracic_ratio": float(ctr),
    }

    # Effusion: fluid in one costophrenic recess, meniscus rising laterally.
    e_side = 1.0 if rl.random() < 0.5 else -1.0
    e_height = rl.uniform(0.3, 0.6) * (1.0 - 0.4 * d)
    e_fill = rl.uniform(0.7, 1.0) * (1.0 - 0.6 * d)
    effusion_lr = None
    if findings.get("effusion"):
        base = dome + 1.6 * 0.45**2 - right_lift * (e_side < 0)
        meniscus = F32(base) - F32(e_height) * (F32(0.6) + F32(0.4) * np.square(np.clip(a * F32(1.0 / 0.85), 0.0, 1.0)))
        fluid = _soft((meniscus - v) * px, 2.0) * (u * F32(e_side) > 0.05) * alpha_lung * (F32(1.0) - alpha_heart)
        img += F32(0.34 * e_fill) * fluid
        effusion_lr = fluid > 0.5

    img = _up(img, step)
    lung_lr, heart_lr = lung_open > 0.5, alpha_heart > 0.5
    makers: dict[str, Callable[[], np.ndarray]] = {
        "lungs": lambda: _up_mask(lung_lr, step),
        "heart": lambda: _up_mask(heart_lr, step),
    }
    if effusion_lr is not None:
        makers["effusion"] = lambda: _up_mask(effusion_lr, step)
    _put_box(info, "effusion", _box(effusion_lr, step=step) if effusion_lr is not None else _NO_BOX)

    # Pneumonia: a patchy consolidation in one lung, away from the heart.
    side = 1.0 if rl.random() < 0.5 else -1.0
    pu = side * (rl.uniform(0.55, 0.72) if side > 0 else rl.uniform(0.35, 0.68))
    pv = rl.uniform(-0.35, 0.35)
    pr = rl.uniform(0.15, 0.24) * (1.0 - 0.35 * d)
    p_strength = _lesion_contrast(d, 0.24, rl.uniform(0.5, 1.3))
    p_aspect, p_angle = rl.uniform(0.7, 1.3), rl.uniform(0.0, 180.0)
    p_seed = int(rl.integers(2**31))
    box = _NO_BOX
    if findings.get("pneumonia"):
        lx, ly = _to_image(cx, cy, rot, half_width, pu, pv)
        rows, cols = _window(lx, ly, 2.2 * pr * half_width, full)
        lu, lv = _frame(full, lx, ly, p_angle, pr * half_width, 1, rows, cols)
        env = np.exp(-(lu * lu * F32(p_aspect) + lv * lv * F32(1.0 / p_aspect)))
        patch = smooth_field(np.random.default_rng(p_seed), env.shape, 5.0)
        alpha = np.clip((env - F32(0.3) + F32(0.25) * patch) * F32(2.5), 0.0, 1.0)
        alpha *= _nearest(lung_open, rows, cols, step)
        img[rows, cols] += F32(p_strength) * alpha
        p_mask, p_win = alpha > 0.3, (rows, cols)
        makers["pneumonia"] = lambda: _paste(full, p_mask, *p_win)
        box = _box(p_mask, rows, cols)
    _put_box(info, "pneumonia", box)

    _put_box(info, "cardiomegaly", _box(heart_lr, step=step) if findings.get("cardiomegaly") else _NO_BOX)
    if findings.get("cardiomegaly"):
        makers["cardiomegaly"] = makers["heart"]

    # Nodule: a small round opacity.
    n_side = 1.0 if rl.random() < 0.5 else -1.0
    nu = n_side * (rl.uniform(0.55, 0.75) if n_side > 0 else rl.uniform(0.3, 0.72))
    nv = rl.uniform(-0.6, 0.25)
    n_radius = rl.uniform(3.0, 7.0) * (1.0 - 0.4 * d) * size / 256.0
    n_strength = _lesion_contrast(d, 0.2, rl.uniform(0.6, 1.3))
    box = _NO_BOX
    if findings.get("nodule"):
        nx, ny = _to_image(cx, cy, rot, half_width, nu, nv)
        rows, cols = _window(nx, ny, n_radius + 2, full)
        y, x = _axes(full)
        r2 = (np.square(x[:, cols] - F32(nx)) + np.square(y[rows] - F32(ny))) * F32(1.0 / n_radius**2)
        img[rows, cols] += F32(n_strength) * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
        n_mask, n_win = r2 <= 1.0, (rows, cols)
        makers["nodule"] = lambda: _paste(full, n_mask, *n_win)
        box = _box(n_mask, rows, cols)
    _put_box(info, "nodule", box)
    return _Canvas(img, margin, info, makers, exposure)


# --- knee X-ray --------------------------------------------------------------------------------


def _tube(
    u: np.ndarray, centre: np.ndarray | float, half: np.ndarray | float, medulla: np.ndarray | float
) -> np.ndarray:
    """Projected thickness (0..1) of a cortical tube: bright cortex edges, darker medulla."""
    p = (u - centre) / half
    p2 = np.square(p)
    outer = np.sqrt(np.clip(F32(1.0) - p2, 0.0, 1.0))
    inner = np.sqrt(np.clip(medulla * medulla - p2, 0.0, 1.0))
    inner *= F32(-0.55)
    outer += inner
    return outer


def knee_xray(
    *,
    size: int = 256,
    difficulty: float = 0.5,
    fracture: bool = False,
    patient_seed: Sequence[int] = (0,),
    image_index: int = 0,
) -> Phantom:
    """An AP knee radiograph phantom: brightness in [0, 1] (MONOCHROME2 sense, bone bright).

    ``info`` gives ``laterality``, the knee joint centre and box ``joint_cx, joint_cy, joint_x0 ..
    joint_y1`` (px), ``fracture_site`` and its box ``fracture_x0 .. fracture_cy`` (NaN without one),
    ``pixel_spacing_mm``, ``bits_stored`` and ``photometric`` (how the patient's detector stores it).
    The images of one patient differ by position (up to 6% of ``size``), exposure and noise.
    """
    canvas = _knee_canvas(size, difficulty, fracture, patient_seed)
    return _expose(canvas, size, _rng(patient_seed, 2, image_index), _knee_sigma(difficulty), 0.0)


def knee_xray_patient(
    *,
    size: int = 256,
    difficulty: float = 0.5,
    fracture: bool = False,
    patient_seed: Sequence[int] = (0,),
    n_images: int = 1,
) -> list[Phantom]:
    """Images 0 .. n_images-1 of one patient, as :func:`knee_xray` gives them, the anatomy drawn once."""
    canvas = _knee_canvas(size, difficulty, fracture, patient_seed)
    sigma = _knee_sigma(difficulty)
    return [_expose(canvas, size, _rng(patient_seed, 2, i), sigma, 0.0) for i in range(n_images)]


def _knee_sigma(difficulty: float) -> float:
    """Knee X-ray pixel noise SD (brightness units) at ``difficulty``."""
    return 0.008 + 0.03 * float(np.clip(difficulty, 0.0, 1.0))


def _knee_canvas(size: int, difficulty: float, fracture: bool, patient_seed: Sequence[int]) -> _Canvas:
    """The patient's knee before exposure (see :func:`knee_xray`)."""
    d = float(np.clip(difficulty, 0.0, 1.0))
    ra, rl = _rng(patient_seed, 0), _rng(patient_seed, 1)
    margin = _margin(size, 0.06)
    full = size + 2 * margin
    step = _step(full)

    laterality = "R" if ra.random() < 0.5 else "L"
    mirror = -1.0 if laterality == "R" else 1.0  # image direction of the lateral side (fibula)
    unit = size * ra.uniform(0.15, 0.2)  # condyle half-width, px
    spacing = round(42.0 / unit, 4)  # a distal femur about 84 mm wide
    bits = (10, 12, 14, 16)[int(ra.integers(4))]
    photometric = "MONOCHROME1" if ra.random() < 0.35 else "MONOCHROME2"
    soft_w = ra.uniform(1.35, 1.7)
    density = ra.uniform(0.85, 1.1)
    notch = ra.uniform(0.16, 0.26)
    joint_gap = ra.uniform(0.07, 0.11)
    patella_cu, patella_cv = ra.uniform(-0.1, 0.15), ra.uniform(-0.55, -0.35)
    texture = smooth_field(ra, (full // step, full // step), size / 10.0)
    cx = full / 2 + size * ra.uniform(-0.1, 0.1)
    cy = full / 2 + size * ra.uniform(-0.1, 0.1)
    rot = ra.normal(0.0, 5.0)
    exposure = ra.uniform(0.85, 1.1)

    u, v = _frame(full, cx, cy, rot, unit, step)
    if mirror < 0:
        u = -u  # lateral is +u
    a = np.abs(u)
    px = F32(unit)

    # Soft tissue of thigh, knee and calf.
    half_soft = F32(0.35) * _smoothstep(-v, 0.5, 3.0) - F32(0.08) * _smoothstep(v, 0.5, 2.5)
    half_soft += F32(soft_w)
    alpha_soft = _soft((a - half_soft) * px, 3.0)
    img = alpha_soft * np.sqrt(np.clip(F32(1.0) - np.square(u / (half_soft + F32(0.05))), 0.0, 1.0))
    img *= F32(0.22)
    img += F32(0.03)

    # Femur: shaft widening into condyles, the notch between them, rounded corners.
    wf = _smoothstep(v, -1.5, -0.35)
    medulla_f = F32(0.72) + F32(0.2) * _smoothstep(v, -1.2, -0.4)
    wf *= F32(0.58)
    wf += F32(0.42)
    corner_f = np.square(np.clip(a / wf - F32(0.55), 0.0, None))
    bottom_f = F32(-joint_gap / 2) - F32(notch) * np.exp(-np.square(u * F32(5.0))) - F32(0.35 / 0.45**2) * corner_f
    alpha_fem = _soft((v - bottom_f) * px, 2.0)
    alpha_fem *= _soft((a - wf) * px, 2.0)
    # Tibia: plateau with the intercondylar spines, narrowing into the shaft.
    taper = F32(1.0) - _smoothstep(v, 0.2, 1.3)
    wt = F32(0.38) + F32(0.6) * taper
    tc = F32(0.05) * taper
    medulla_t = F32(0.92) - F32(0.2) * _smoothstep(v, 0.3, 1.0)
    ut = np.abs(u - tc)
    corner_t = np.square(np.clip(ut / wt - F32(0.7), 0.0, None))
    top_t = F32(joint_gap / 2) + F32(0.03) * np.square(u) - F32(0.08) * np.exp(-np.square(u * F32(10.0)))
    top_t += F32(0.2 / 0.3**2) * corner_t
    alpha_tib = _soft((top_t - v) * px, 2.0)
    alpha_tib *= _soft((ut - wt) * px, 2.0)
    # Fibula: head below the lateral plateau, thin shaft.
    fc = F32(0.82) - F32(0.05) * (v - F32(0.4))
    wfib = F32(0.11) + F32(0.1) * np.exp(-np.square((v - F32(0.45)) * F32(1.0 / 0.12)))
    alpha_fib = _soft((F32(0.3) - v) * px, 2.0)
    alpha_fib *= _soft((np.abs(u - fc) - wfib) * px, 2.0)
    # Patella: a faint oval over the distal femur.
    pq = np.square((u - F32(patella_cu)) * F32(1.0 / 0.38)) + np.square((v - F32(patella_cv)) * F32(1.0 / 0.48))

    bone = _tube(u, 0.0, wf, medulla_f)
    bone *= alpha_fem
    tib = _tube(u, tc, wt, medulla_t)
    tib *= alpha_tib
    bone += tib
    bone *= F32(0.5)
    fib = _tube(u, fc, wfib, 0.6)
    fib *= alpha_fib
    fib *= F32(0.26)
    bone += fib
    bone += F32(0.1) * np.sqrt(np.clip(F32(1.0) - pq, 0.0, 1.0))
    texture *= F32(0.07 * density)
    texture += F32(density)
    bone *= texture
    femur_lr, tibia_lr = alpha_fem > 0.5, alpha_tib > 0.5
    bone_lr = femur_lr | tibia_lr | (alpha_fib > 0.5)
    img += bone
    img = _up(img, step)

    info: dict[str, object] = {
        "laterality": laterality,
        "pixel_spacing_mm": float(spacing),
        "bits_stored": bits,
        "photometric": photometric,
        "joint_cx": float(cx),
        "joint_cy": float(cy),
    }
    corners = [
        _to_image(cx, cy, rot, unit, cu, cv) for cu, cv in ((-1.15, -0.6), (1.15, -0.6), (1.15, 0.6), (-1.15, 0.6))
    ]
    jx, jy = np.array([c[0] for c in corners]), np.array([c[1] for c in corners])
    info.update(
        joint_x0=float(np.floor(jx.min())),
        joint_y0=float(np.floor(jy.min())),
        joint_x1=float(np.ceil(jx.max())),
        joint_y1=float(np.ceil(jy.max())),
    )
    makers: dict[str, Callable[[], np.ndarray]] = {
        "bone": lambda: _up_mask(bone_lr, step),
        "femur": lambda: _up_mask(femur_lr, step),
        "tibia": lambda: _up_mask(tibia_lr, step),
    }

    # Fracture: a lucent line across one bone, its visibility falling with difficulty.
    site = KNEE_FRACTURE_SITES[int(rl.integers(len(KNEE_FRACTURE_SITES)))]
    side = 1.0 if rl.random() < 0.5 else -1.0
    t1, t2, t3 = rl.uniform(0.0, 1.0, 3)
    if site == "tibial_plateau":
        p0 = (side * (0.2 + 0.45 * t1), joint_gap / 2 - 0.02)
        p1 = (p0[0] + side * (0.1 + 0.3 * t2), p0[1] + 0.45 + 0.35 * t3)
    elif site == "femoral_condyle":
        p0 = (side * (0.25 + 0.45 * t1), -joint_gap / 2 + 0.02)
        p1 = (p0[0] - side * (0.1 + 0.3 * t2), p0[1] - 0.5 - 0.4 * t3)
    elif site == "tibial_shaft":
        vv, tilt = 1.0 + 0.6 * t1, (t2 - 0.5) * 0.5
        p0, p1 = (-0.6, vv - tilt), (0.6, vv + tilt)
    else:  # fibular neck
        vv = 0.6 + 0.15 * t1
        p0, p1 = (0.6, vv - 0.08 * (t2 - 0.5)), (1.05, vv + 0.08 * (t2 - 0.5))
    width_px = 1.3 + 1.8 * (1.0 - d) * rl.uniform(0.7, 1.2)
    depth = min(0.95, _lesion_contrast(d, 1.0, rl.uniform(0.6, 1.2)) + 0.12)
    info["fracture_site"] = site if fracture else "none"
    box = _NO_BOX
    if fracture:
        fx, fy = _to_image(cx, cy, rot, unit, (p0[0] + p1[0]) / 2 * mirror, (p0[1] + p1[1]) / 2)
        rows, cols = _window(fx, fy, unit * 0.5 * np.hypot(p1[0] - p0[0], p1[1] - p0[1]) + 4, full)
        lu, lv = _frame(full, cx, cy, rot, unit, 1, rows, cols)
        dist = _segment_distance(lu * F32(mirror), lv, p0, p1) * px
        line = _soft(dist - F32(width_px / 2), 1.0) * _nearest(bone_lr, rows, cols, step)
        img[rows, cols] -= F32(depth) * line * _nearest(bone, rows, cols, step)
        f_mask, f_win = line > 0.5, (rows, cols)
        makers["fracture"] = lambda: _paste(full, f_mask, *f_win)
        box = _box(f_mask, rows, cols)
    _put_box(info, "fracture", box)
    return _Canvas(img, margin, info, makers, exposure)


# --- head CT -----------------------------------------------------------------------------------


def head_ct_slice(
    *,
    size: int = 256,
    difficulty: float = 0.5,
    haemorrhage: str | None = None,
    patient_seed: Sequence[int] = (0,),
    slice_index: int = 0,
    n_slices: int = 12,
) -> Phantom:
    """One axial head CT slice in Hounsfield units (float32; air -1000, bone ~700-1500, brain 20-45).

    ``haemorrhage`` is ``None`` or one of :data:`HAEMORRHAGE_SUBTYPES` (acute blood, 54-84 HU); the
    bleed is a 3-D shape, so only some slices of a patient show it. ``masks``: ``haemorrhage`` (the
    bleed as one would outline it: more than half blood), ``brain``, and the pure tissue regions
    (partial-volume edges left out) ``air, bone, csf, grey, white, blood``. ``info`` gives
    ``slice_position_mm``, ``slice_spacing_mm``, ``pixel_spacing_mm``, ``haemorrhage_px`` (pixels of
    the ``haemorrhage`` mask) and its box ``haemorrhage_x0 .. _cy``.
    """
    if haemorrhage not in (None, *HAEMORRHAGE_SUBTYPES):
        raise ValueError(f"haemorrhage must be None or one of {HAEMORRHAGE_SUBTYPES}, got {haemorrhage!r}.")
    d = float(np.clip(difficulty, 0.0, 1.0))
    ra, rl, ri = _rng(patient_seed, 0), _rng(patient_seed, 1), _rng(patient_seed, 2, slice_index)
    step = _step(size)
    n = size // step

    spacing = round(ra.uniform(220.0, 250.0) / size, 4)
    head_a_mm, head_b_mm = ra.uniform(64.0, 74.0), ra.uniform(82.0, 94.0)  # inner-table semi-axes
    skull_mm = ra.uniform(5.0, 7.5)
    hu = {k: v + ra.uniform(-3.0, 3.0) for k, v in CT_HU.items()}
    hu["csf"], hu["grey"], hu["white"] = ra.uniform(4.0, 11.0), ra.uniform(37.0, 43.0), ra.uniform(23.0, 28.0)
    ventricle_scale = ra.uniform(0.8, 1.35)
    pcx, pcy, prot = ra.normal(0.0, 0.02), ra.normal(0.0, 0.02), ra.normal(0.0, 4.0)
    z_spacing = 5.0 if n_slices < 2 else round(min(5.0, 110.0 / (n_slices - 1)), 3)
    z0 = ra.uniform(-20.0, 20.0)
    gyri_seed = int(ra.integers(2**31))
    z_mm = round(z0 + slice_index * z_spacing, 3)
    level = 0.45 + (slice_index - (n_slices - 1) / 2) * z_spacing / 140.0  # 0 skull base .. 1 vertex

    scale = float(np.sqrt(np.clip(1.0 - ((level - 0.35) / 0.72) ** 2, 0.15, 1.0)))
    a_px, b_px = head_a_mm * scale / spacing, head_b_mm * scale / spacing
    r_eff = F32(np.sqrt(a_px * b_px))
    cx, cy = size * (0.5 + pcx), size * (0.48 + pcy)
    u, v = _frame(size, cx, cy, prot, 1.0, step)  # px
    q = np.sqrt(np.square(u * F32(1.0 / a_px)) + np.square(v * F32(1.0 / b_px)))
    dist_in = (q - F32(1.0)) * r_eff  # signed px from the inner table, positive outwards
    skull_px = F32(skull_mm * (1.0 + 0.5 * (1.0 - scale)) / spacing)
    scalp_px = F32(5.0 / spacing)

    # Air, couch, scalp, skull (dense tables, softer diploe).
    img = np.full((n, n), hu["air"], dtype=F32)
    couch = _soft(np.abs(v - F32(b_px + skull_px + scalp_px + 12.0)) - F32(2.0), 2.0)
    couch *= _soft(np.abs(u) - F32(a_px * 0.9), 4.0)
    img += couch * F32(hu["couch"] - hu["air"])
    alpha_head = _soft(dist_in - skull_px - scalp_px, 2.0)
    img += alpha_head * (F32(hu["scalp"]) - img)
    alpha_bone = _soft(dist_in - skull_px, 2.0) * (F32(1.0) - _soft(dist_in, 2.0))
    p = np.clip(dist_in / skull_px, 0.0, 1.0)
    bone_hu = F32(hu["bone"]) + F32(350.0) * (np.abs(F32(2.0) * p - F32(1.0)) - F32(0.5))
    img += alpha_bone * (bone_hu - img)
    alpha_brain = _soft(dist_in, 2.0)

    # Brain: CSF rim, folded cortex, white matter, deep grey nuclei, ventricles, midline fissure.
    rim_px, cortex_px = F32(1.5 / spacing), F32(3.5 / spacing)
    gyri = smooth_field(np.random.default_rng([gyri_seed, slice_index]), (n, n), size / 9.0)
    depth_in = -dist_in
    gm_alpha = _soft(rim_px - depth_in, 2.0)
    wm_alpha = _soft(rim_px + cortex_px + F32(2.5) * gyri - depth_in, 2.0)
    brain = F32(hu["csf"]) + gm_alpha * F32(hu["grey"] - hu["csf"]) + wm_alpha * F32(hu["white"] - hu["grey"])
    nuclei = np.zeros_like(brain)
    if 0.25 < level < 0.55:
        for sgn in (-1.0, 1.0):
            nq = np.square((u - F32(sgn * 0.3 * a_px)) * F32(1.0 / (0.14 * a_px)))
            nq += np.square((v - F32(0.02 * b_px)) * F32(1.0 / (0.2 * b_px)))
            nuclei = np.maximum(nuclei, _soft((np.sqrt(nq) - F32(1.0)) * F32(0.15 * a_px), 2.0))
        brain += nuclei * wm_alpha * (F32(hu["grey"] - 2.0) - brain)
    vent = np.zeros_like(brain)
    vent_size = ventricle_scale * float(np.clip(np.sin(np.pi * (level - 0.22) / 0.45), 0.0, 1.0))
    if vent_size > 0.05:
        for sgn in (-1.0, 1.0):
            vu, vv = u - F32(sgn * 0.1 * a_px), v + F32(0.12 * b_px)
            c, s = F32(np.cos(np.deg2rad(sgn * 18))), F32(np.sin(np.deg2rad(sgn * 18)))
            ru, rv = vu * c + vv * s, vv * c - vu * s
            rx, ry = 0.07 * a_px * vent_size + 1.0, 0.26 * b_px * vent_size + 1.0
            vq = np.sqrt(np.square(ru * F32(1.0 / rx)) + np.square(rv * F32(1.0 / ry)))
            vent = np.maximum(vent, _soft((vq - F32(1.0)) * F32(rx), 2.0))
    fissure = _soft(np.abs(u) - F32(0.8), 1.5) * (np.abs(v) > F32(0.55 * b_px))
    csf_extra = np.maximum(vent, fissure)
    brain += csf_extra * (F32(hu["csf"]) - brain)

    # Haemorrhage (full resolution, in a window): a 3-D blob, or a subdural crescent along the inner table.
    blood_hu = 56.0 + 26.0 * (1.0 - d) ** 2 + rl.uniform(-2.0, 2.0)  # acute blood: 54-84 HU
    ip_centre = (rl.uniform(-0.45, 0.45), rl.uniform(-0.45, 0.45))
    ip_radius_mm = rl.uniform(5.0, 16.0) * (1.0 - 0.7 * d) + 1.0
    ip_coeffs = [
        (0.0, 0.0),
        (rl.uniform(0.0, 0.15), rl.uniform(0.0, 6.3)),
        (rl.uniform(0.0, 0.08), rl.uniform(0.0, 6.3)),
    ]
    sd_angle = rl.uniform(0.0, 2 * np.pi)
    sd_half = np.deg2rad(rl.uniform(45.0, 80.0))
    sd_thick_mm = rl.uniform(3.0, 10.0) * (1.0 - 0.6 * d) + 1.5
    lesion_z = z0 + (n_slices - 1) / 2 * z_spacing + rl.uniform(-0.3, 0.3) * max(n_slices - 1, 1) * z_spacing
    lesion_zr = rl.uniform(12.0, 30.0) + 0.5 * z_spacing
    zf = 1.0 - ((z_mm - lesion_z) / lesion_zr) ** 2  # > 0 on slices through the bleed
    img += alpha_brain * (brain - img)
    img = _up(img, step)

    part: np.ndarray | None = None
    if haemorrhage is not None and zf > 0:
        if haemorrhage == "intraparenchymal":
            rr = ip_radius_mm * np.sqrt(zf) / spacing
            lx, ly = cx + ip_centre[0] * a_px * 0.8, cy + ip_centre[1] * b_px * 0.8
            rows, cols = _window(lx, ly, rr * 1.4 + 3, size)
        else:
            t = sd_angle + np.linspace(-sd_half, sd_half, 24)
            ax, ay = a_px * np.cos(t), b_px * np.sin(t)
            ex, ey = _to_image(cx, cy, prot, 1.0, ax, ay)
            pad = sd_thick_mm / spacing + 3
            rows = slice(int(np.clip(ey.min() - pad, 0, size)), int(np.clip(ey.max() + pad + 1, 0, size)))
            cols = slice(int(np.clip(ex.min() - pad, 0, size)), int(np.clip(ex.max() + pad + 1, 0, size)))
        wu, wv = _frame(size, cx, cy, prot, 1.0, 1, rows, cols)
        wq = np.sqrt(np.square(wu * F32(1.0 / a_px)) + np.square(wv * F32(1.0 / b_px)))
        w_in = (F32(1.0) - wq) * r_eff  # px inside the inner table
        if haemorrhage == "intraparenchymal":
            y, x = _axes(size)
            basis = _polar_basis(x[:, cols] - F32(lx), y[rows] - F32(ly), len(ip_coeffs))
            part = _soft(_polar_shape(basis, rr, ip_coeffs), 1.0)
        else:
            cosd = (wu * F32(np.cos(sd_angle) / a_px) + wv * F32(np.sin(sd_angle) / b_px)) / (wq + F32(1e-6))
            taper = np.sqrt(np.clip((cosd - F32(np.cos(sd_half))) * F32(1.0 / (1.0 - np.cos(sd_half))), 0.0, 1.0))
            part = _soft(w_in - F32(sd_thick_mm * np.sqrt(zf) / spacing) * taper, 1.0) * (taper > 0)
        part *= _soft(-w_in, 1.0)
        if np.count_nonzero(part > 0.5) < 4:  # a sliver is no finding: draw nothing
            part = None
        else:
            img[rows, cols] += part * (F32(blood_hu) - img[rows, cols])
    if part is not None:
        lesion, core, touched = part > 0.5, part >= 1.0, part > 0.0
        blood_px, box = int(np.count_nonzero(lesion)), _box(lesion, rows, cols)
    else:
        blood_px, box = 0, _NO_BOX

    sigma = 3.0 + 10.0 * d
    noise = gaussian_noise(ri, (size, size))
    noise *= F32(sigma)
    img += noise

    def window_mask(which: str) -> np.ndarray:
        if part is None:
            return np.zeros((size, size), bool)
        return _paste(size, lesion if which == "lesion" else core, rows, cols)

    def pure(tissue_lr: np.ndarray) -> np.ndarray:
        full = _up_mask(_erode(tissue_lr & pure_brain), step)
        if part is not None:
            full[rows, cols] &= ~touched
        return full

    pure_brain = _erode(alpha_brain >= 1.0)
    makers: dict[str, Callable[[], np.ndarray]] = {
        "air": lambda: _up_mask(_erode((alpha_head <= 0.0) & (couch <= 0.0)), step),
        "bone": lambda: _up_mask(_erode(alpha_bone >= 1.0), step),
        "csf": lambda: pure((csf_extra >= 1.0) & (wm_alpha >= 1.0)),
        "grey": lambda: pure((gm_alpha >= 1.0) & (wm_alpha <= 0.0)),
        "white": lambda: pure((wm_alpha >= 1.0) & (csf_extra <= 0.0) & (nuclei <= 0.0)),
        "blood": lambda: window_mask("core"),
        "haemorrhage": lambda: window_mask("lesion"),
        "brain": lambda: _up_mask(alpha_brain > 0.5, step),
    }
    info: dict[str, object] = {
        "pixel_spacing_mm": float(spacing),
        "slice_position_mm": float(z_mm),
        "slice_spacing_mm": float(z_spacing),
        "haemorrhage_px": blood_px,
        "haemorrhage_hu": float(blood_hu),
        "noise_sd": float(sigma),
    }
    _put_box(info, "haemorrhage", box)
    return Phantom(img, LazyMasks(makers), info)


# --- cardiac MR --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CardiacPatient:
    """A cardiac MR patient's anatomy and contrast (drawn once), and the slice-independent body image."""

    spacing: float
    z0: float
    lvx: float
    lvy: float
    r_base_mm: float
    wall_mm: float
    shape: list[tuple[float, float]]
    wall_shape: list[tuple[float, float]]
    blood_level: float
    myo_level: float
    fat_level: float
    rv_angle: float
    bias_seed: int
    pap_angles: np.ndarray
    body: np.ndarray


@lru_cache(maxsize=2)
def _cardiac_patient(patient_seed: tuple[int, ...], size: int) -> _CardiacPatient:
    """The patient-level draws of :func:`cardiac_mr_slice` and its body image (read-only), cached: every
    slice of a patient shares them, so a series pays for the body once instead of once a slice."""
    ra = _rng(patient_seed, 0)
    step = _step(size)
    spacing = round(ra.uniform(1.25, 1.5), 4)
    z0 = ra.uniform(-60.0, 0.0)
    lvx = size * (0.53 + ra.uniform(-0.05, 0.05))
    lvy = size * (0.48 + ra.uniform(-0.05, 0.05))
    r_base_mm = ra.uniform(22.0, 30.0)
    wall_mm = ra.uniform(7.0, 11.0)
    shape = [(0.0, 0.0), (ra.uniform(0.0, 0.09), ra.uniform(0.0, 6.3)), (ra.uniform(0.0, 0.04), ra.uniform(0.0, 6.3))]
    wall_shape = [(ra.uniform(0.0, 0.15), ra.uniform(0.0, 6.3))]
    blood_level = ra.uniform(550.0, 800.0)
    myo_level = ra.uniform(120.0, 180.0)
    fat_level = ra.uniform(380.0, 520.0)
    tissue_level = ra.uniform(120.0, 170.0)
    liver_level = ra.uniform(150.0, 210.0)
    body_a, body_b = size * ra.uniform(0.42, 0.47), size * ra.uniform(0.3, 0.35)
    rv_angle = np.deg2rad(ra.uniform(190.0, 215.0))  # RV to the image left of the LV, a little anterior
    bias_seed = int(ra.integers(2**31))
    pap_angles = ra.uniform(0.0, 2 * np.pi, 2)

    # Body (low resolution): subcutaneous fat, lungs either side, liver at the lower left.
    u, v = _frame(size, size / 2, size / 2, 0.0, 1.0, step)
    r_body = F32(np.sqrt(body_a * body_b))
    body_q = np.sqrt(np.square(u * F32(1.0 / body_a)) + np.square(v * F32(1.0 / body_b)))
    alpha_body = _soft((body_q - F32(1.0)) * r_body, 3.0)
    inner = alpha_body * _soft((body_q - F32(0.92)) * r_body, 3.0)
    img = alpha_body * F32(tissue_level) + (alpha_body - inner) * F32(fat_level - tissue_level)
    for sgn in (-1.0, 1.0):
        lq = np.square((u - F32(sgn * 0.5 * body_a)) * F32(1.0 / (0.3 * body_a)))
        lq += np.square((v + F32(0.05 * body_b)) * F32(1.0 / (0.68 * body_b)))
        lung = _soft((np.sqrt(lq) - F32(1.0)) * F32(0.3 * body_a), 3.0) * inner
        img += lung * (F32(25.0) - img)
    lvq = np.square((u + F32(0.35 * body_a)) * F32(1.0 / (0.45 * body_a)))
    lvq += np.square((v - F32(0.7 * body_b)) * F32(1.0 / (0.45 * body_b)))
    img += _soft((np.sqrt(lvq) - F32(1.0)) * F32(0.4 * body_a), 3.0) * inner * (F32(liver_level) - img)
    img = _up(img, step)
    img.flags.writeable = False
    return _CardiacPatient(
        spacing, z0, lvx, lvy, r_base_mm, wall_mm, shape, wall_shape, blood_level, myo_level, fat_level,
        float(rv_angle), bias_seed, pap_angles, img,
    )


def cardiac_mr_slice(
    *,
    size: int = 256,
    difficulty: float = 0.5,
    patient_seed: Sequence[int] = (0,),
    slice_index: int = 0,
    n_slices: int = 10,
) -> Phantom:
    """One short-axis SSFP cine-like MR slice (float32 signal, about 0-1000 like the Sunnybrook int16 files).

    Slice 0 is basal, the last apical. ``masks``: ``blood_pool`` (LV cavity, inside the endocardial
    contour, papillary muscles included as in Sunnybrook), ``myocardium`` (between endo- and
    epicardial contours), ``rv``. ``info``: ``icontour`` and ``ocontour`` as ``(N, 2)`` (x, y) px
    arrays tracing the boundaries the masks are filled from, ``pixel_spacing_mm``,
    ``slice_position_mm``, ``lv_cx``, ``lv_cy``.
    """
    d = float(np.clip(difficulty, 0.0, 1.0))
    pt = _cardiac_patient(tuple(int(s) for s in patient_seed), int(size))
    ri = _rng(patient_seed, 2, slice_index)
    spacing, shape, wall_shape, myo_level, fat_level = pt.spacing, pt.shape, pt.wall_shape, pt.myo_level, pt.fat_level
    rv_angle, pap_angles = pt.rv_angle, pt.pap_angles

    frac = slice_index / max(n_slices - 1, 1)
    r_endo = pt.r_base_mm * (1.0 - 0.62 * frac**1.4) / spacing  # px
    wall = pt.wall_mm * (1.0 + 0.1 * frac) / spacing
    drift = ri.normal(0.0, 0.6, 2)
    cx, cy = pt.lvx + 1.5 * frac * size / 64 + drift[0], pt.lvy + frac * size / 64 + drift[1]
    z_mm = round(pt.z0 + 10.0 * slice_index, 3)

    # Blood-myocardium contrast and edge sharpness fall with difficulty.
    blood = myo_level + (pt.blood_level - myo_level) * (1.0 - 0.55 * d)
    edge = 0.8 + 1.2 * d

    img = pt.body.copy()

    # Heart (full resolution, in a window): pericardial fat, RV crescent, myocardium, LV blood pool.
    rv_dx, rv_dy = np.cos(rv_angle), np.sin(rv_angle)
    r_epi = r_endo + wall
    half = r_epi * 1.25 * 2.2 + 6
    rows, cols = _window(cx + rv_dx * r_epi * 0.9, cy + rv_dy * r_epi * 0.9, half, size)
    y, x = _axes(size)
    dx, dy = x[:, cols] - F32(cx), y[rows] - F32(cy)
    epi_coeffs = _epi_coeffs(shape, r_endo, wall, wall_shape)
    basis = _polar_basis(dx, dy, max(len(shape), len(epi_coeffs)))  # one centre: shared by both walls
    d_endo = _polar_shape(basis, r_endo, shape)
    d_epi = _polar_shape(basis, r_epi, epi_coeffs)
    part = img[rows, cols]
    part += _soft(d_epi - F32(4.0), 2.0) * (F32(fat_level * 0.8) - part)
    rvx, rvy = rv_dx * r_epi * 0.85, rv_dy * r_epi * 0.85
    ru = (dx - F32(rvx)) * F32(rv_dx) + (dy - F32(rvy)) * F32(rv_dy)
    rw = (dy - F32(rvy)) * F32(rv_dx) - (dx - F32(rvx)) * F32(rv_dy)
    rv_rx, rv_ry = r_epi * 0.95, r_epi * 1.5 * (1.0 - 0.35 * frac)
    rq = np.sqrt(np.square(ru * F32(1.0 / rv_rx)) + np.square(rw * F32(1.0 / rv_ry)))
    part += (
        _soft((rq - F32(1.0)) * F32(rv_rx) - F32(3.0), edge) * _soft(F32(0.5) - d_epi, 1.0) * (F32(myo_level) - part)
    )
    alpha_rv = _soft((rq - F32(1.0)) * F32(rv_rx), edge) * _soft(F32(3.0) - d_epi, 1.0)
    part += alpha_rv * (F32(blood * 0.95) - part)
    part += _soft(d_epi, edge) * (F32(myo_level) - part)
    part += _soft(d_endo, edge) * (F32(blood) - part)
    for ang in pap_angles:  # papillary muscles: dark blobs against the wall, inside the i-contour
        pr = max(1.0, 0.18 * r_endo)
        pd = np.sqrt(
            np.square(dx - F32(np.cos(ang) * (r_endo - pr * 1.3)))
            + np.square(dy - F32(np.sin(ang) * (r_endo - pr * 1.3)))
        )
        part += _soft(pd - F32(pr), edge) * _soft(d_endo + F32(1.0), 1.0) * F32(0.6) * (F32(myo_level) - part)
    img[rows, cols] = part

    # Coil bias field, then Rician noise (the magnitude of complex Gaussian noise).
    img *= bias_field(np.random.default_rng(pt.bias_seed), size, 0.1 + 0.35 * d, 0.6 * d)
    sigma = F32(8.0 + 45.0 * d)
    real = gaussian_noise(ri, (size, size))
    real *= sigma
    img += real
    np.square(img, out=img)
    imag = gaussian_noise(ri, (size, size))
    imag *= sigma
    np.square(imag, out=imag)
    img += imag
    np.sqrt(img, out=img)

    masks = LazyMasks(
        {
            "blood_pool": lambda: _paste(size, d_endo < 0, rows, cols),
            "myocardium": lambda: _paste(size, (d_epi < 0) & (d_endo >= 0), rows, cols),
            "rv": lambda: _paste(size, alpha_rv > 0.5, rows, cols),
        }
    )
    info: dict[str, object] = {
        "pixel_spacing_mm": float(spacing),
        "slice_position_mm": float(z_mm),
        "lv_cx": float(cx),
        "lv_cy": float(cy),
        "icontour": polar_outline(cx, cy, r_endo, shape),
        "ocontour": polar_outline(cx, cy, r_epi, epi_coeffs),
        "noise_sd": float(sigma),
    }
    return Phantom(img, masks, info)


def _epi_coeffs(
    endo: Sequence[tuple[float, float]], r_endo: float, wall: float, wall_shape: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Fourier coefficients (relative to r_endo + wall) of the epicardium: endocardium plus a varying wall."""
    radius = r_endo + wall
    out = []
    for k in range(max(len(endo), len(wall_shape))):
        ce = endo[k] if k < len(endo) else (0.0, 0.0)
        cw = wall_shape[k] if k < len(wall_shape) else (0.0, 0.0)
        cx = r_endo * ce[0] * np.cos(ce[1]) + wall * cw[0] * np.cos(cw[1])
        cy = r_endo * ce[0] * np.sin(ce[1]) + wall * cw[0] * np.sin(cw[1])
        out.append((float(np.hypot(cx, cy)) / radius, float(np.arctan2(cy, cx))))
    return out


__all__ = [
    "CHEST_FINDINGS",
    "CT_HU",
    "HAEMORRHAGE_SUBTYPES",
    "KNEE_FRACTURE_SITES",
    "LazyMasks",
    "Phantom",
    "bias_field",
    "cardiac_mr_slice",
    "chest_xray",
    "chest_xray_patient",
    "gaussian_noise",
    "head_ct_slice",
    "knee_xray",
    "knee_xray_patient",
    "polar_outline",
    "smooth_field",
]
