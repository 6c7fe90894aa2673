"""Watching a served model's inputs: per-image brightness statistics and a drift check against training data.

A classifier is only as good as the match between the images it gets and the images it learnt from. A
new scanner, another export (inverted, windowed, 8-bit), or a preprocessing bug in the client shifts the
brightness of what arrives long before anyone sees the scores drop. :func:`image_stats` turns images into a
small table (mean, spread, percentiles, clipped fractions, size), :class:`RequestLog` collects that table
one request at a time inside a scoring server, and :func:`drift_report` compares it with the training
images' table, one two-sample Kolmogorov-Smirnov test per statistic (Bonferroni-corrected).

numpy and pandas only at import; scipy is imported when a report is made.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Pixels darker than this (brightness in [0, 1]) count as near-black.
NEAR_BLACK = 0.02
#: Pixels brighter than this count as near-white.
NEAR_WHITE = 0.98
#: Columns of :func:`image_stats`, in order; the statistics :func:`drift_report` compares by default.
STAT_COLUMNS = ["mean", "std", "p05", "p50", "p95", "near_black", "near_white", "height", "width"]
#: Fewest incoming images :func:`drift_report` accepts: below it a KS test misses all but huge shifts.
MIN_INCOMING = 20
#: Columns of :func:`drift_report` (its index is the statistic's name).
REPORT_COLUMNS = ["reference_median", "incoming_median", "ks", "p_value", "drift"]
#: Rounding slack of the [0, 1] check (float32 rescaling can land a hair outside).
_TOLERANCE = 1e-6
#: Images per block when :func:`image_stats` reads an (N, H, W) array (bounds the temporary float64 copy).
_BLOCK = 64


# --- Per-image statistics ----------------------------------------------------------------------------


def _check_range(block: np.ndarray, first: int) -> np.ndarray:
    """``block`` as float64 if finite and in [0, 1]; ValueError naming the first bad image otherwise."""
    if not (np.issubdtype(block.dtype, np.floating) or block.dtype == bool):
        raise ValueError(
            f"Images must be floats with brightness in [0, 1]; got dtype {block.dtype}. Scale them first, "
            "e.g. image.astype(np.float32) / 255 for 8-bit or helpers.dicom's rescaling for DICOM."
        )
    x = block.astype(np.float64)
    flat = x.reshape(len(x), -1)
    bad = ~np.isfinite(flat).all(axis=1) | (flat.min(axis=1) < -_TOLERANCE) | (flat.max(axis=1) > 1.0 + _TOLERANCE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        finite = flat[i][np.isfinite(flat[i])]
        seen = f"finite min {finite.min():g}, max {finite.max():g}" if finite.size else "no finite values"
        raise ValueError(
            f"Image {first + i} has values outside [0, 1] or non-finite ones ({seen}): the "
            "statistics assume brightness in [0, 1]. Scale it as for the model (e.g. / 255), and drop NaN."
        )
    return x


def _block_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of a checked (n, H, W) float64 block, one value per image."""
    flat = x.reshape(len(x), -1)
    p05, p50, p95 = np.percentile(flat, [5, 50, 95], axis=1)
    n, h, w = x.shape
    return {
        "mean": flat.mean(axis=1),
        "std": flat.std(axis=1),
        "p05": p05,
        "p50": p50,
        "p95": p95,
        "near_black": (flat < NEAR_BLACK).mean(axis=1),
        "near_white": (flat > NEAR_WHITE).mean(axis=1),
        "height": np.full(n, h, dtype=np.int64),
        "width": np.full(n, w, dtype=np.int64),
    }


def _as_2d(image: Any, index: int) -> np.ndarray:
    """One image as a 2-D array ((1, H, W) and (H, W, 1) squeezed); ValueError for colour or volumes."""
    a = np.asarray(image)
    if a.ndim == 3 and 1 in (a.shape[0], a.shape[-1]):
        a = a.reshape(a.shape[1:] if a.shape[0] == 1 else a.shape[:-1])
    if a.ndim != 2 or a.size == 0:
        raise ValueError(
            f"Image {index} has shape {a.shape}; each image must be one greyscale 2-D array (H, W). "
            "Convert colour images to grey and pass slices of a volume one by one."
        )
    return a


def image_stats(images: Any) -> pd.DataFrame:
    """One row per image of brightness statistics (images in [0, 1]): columns :data:`STAT_COLUMNS`.

    ``images`` is an (N, H, W) or (N, 1, H, W) array, a single (H, W) image, or a list of 2-D arrays of
    any sizes. ``mean``/``std`` (population) and the percentiles ``p05``/``p50``/``p95`` are in brightness
    units; ``near_black``/``near_white`` are the fractions of pixels below :data:`NEAR_BLACK` and above
    :data:`NEAR_WHITE`; ``height``/``width`` are in pixels.
    """
    if isinstance(images, np.ndarray):
        x = images
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        elif x.ndim == 2:
            x = x[None]
        if x.ndim != 3:
            raise ValueError(
                f"images has shape {images.shape}; pass (N, H, W), (N, 1, H, W), one (H, W) image, or a list "
                "of 2-D arrays. Convert colour images (3 channels) to grey first."
            )
        blocks = [(i, x[i:i + _BLOCK]) for i in range(0, len(x), _BLOCK)]
    elif hasattr(images, "__iter__"):
        blocks = [(i, _as_2d(image, i)[None]) for i, image in enumerate(images)]
    else:
        raise TypeError(f"image_stats takes an array or a list of 2-D arrays, got {type(images).__name__}.")
    if not blocks or sum(len(b) for _, b in blocks) == 0:
        raise ValueError("No images were given: there is nothing to describe.")
    parts = [_block_stats(_check_range(block, first)) for first, block in blocks]
    table = {name: np.concatenate([p[name] for p in parts]) for name in STAT_COLUMNS}
    return pd.DataFrame(table, columns=STAT_COLUMNS)


def image_row(image: Any) -> dict[str, float | int]:
    """The :func:`image_stats` row of one 2-D image as a plain dict, without building a table (a server's fast path)."""
    stats = _block_stats(_check_range(_as_2d(image, 0)[None], 0))
    return {k: v[0].item() for k, v in stats.items()}  # numpy int64 -> int, float64 -> float


# --- Drift -------------------------------------------------------------------------------------------


def _column(frame: pd.DataFrame, name: str, which: str, minimum: int) -> np.ndarray:
    """Non-missing values of column ``name`` as floats; ValueError if fewer than ``minimum`` remain."""
    values = pd.to_numeric(frame[name], errors="coerce").dropna().to_numpy(dtype=np.float64)
    if len(values) < minimum:
        raise ValueError(
            f"The {which} table has {len(values)} usable values of {name!r}; a drift check needs at least "
            f"{minimum}. Collect more images (see RequestLog) before comparing."
        )
    return values


def drift_report(
    reference: pd.DataFrame,
    incoming: pd.DataFrame,
    alpha: float = 0.01,
    min_incoming: int = MIN_INCOMING,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per statistic: medians, the two-sample KS statistic and p-value, and ``drift`` at Bonferroni-corrected ``alpha``.

    ``reference`` (the training images) and ``incoming`` (the requests) are :func:`image_stats` tables;
    ``columns`` defaults to the :data:`STAT_COLUMNS` both hold. A statistic drifts when its p-value is
    below ``alpha / len(columns)``, so the chance of any false alarm over all of them stays below
    ``alpha``. Fewer than ``min_incoming`` rows on either side raise ValueError rather than give a
    meaningless answer. Index: statistic; columns :data:`REPORT_COLUMNS`; ``attrs`` hold alpha,
    alpha_corrected, n_reference and n_incoming.
    """
    from scipy.stats import ks_2samp

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be a probability between 0 and 1 (e.g. 0.01), got {alpha!r}.")
    if int(min_incoming) != min_incoming or min_incoming < 2:
        raise ValueError(f"min_incoming must be a whole number of images of at least 2, got {min_incoming!r}.")
    min_incoming = int(min_incoming)
    if len(incoming) < min_incoming:
        raise ValueError(
            f"Only {len(incoming)} incoming images; a drift check needs at least {min_incoming} (with fewer, "
            "a KS test misses all but huge shifts). Wait for more requests, or lower min_incoming knowingly."
        )
    if len(reference) < min_incoming:
        raise ValueError(
            f"The reference table has {len(reference)} images; it needs at least {min_incoming} (use the "
            "training images' image_stats)."
        )
    if columns is None:
        columns = [c for c in STAT_COLUMNS if c in reference.columns and c in incoming.columns]
        if not columns:
            raise ValueError(
                "reference and incoming share none of the statistics "
                f"{STAT_COLUMNS}: make both with helpers.monitoring.image_stats."
            )
    columns = list(columns)
    missing = [c for c in columns if c not in reference.columns or c not in incoming.columns]
    if missing or not columns:
        raise ValueError(f"Columns {missing or columns} are not in both tables; both have "
                         f"{sorted(set(reference.columns) & set(incoming.columns))}.")
    corrected = alpha / len(columns)
    rows = []
    for name in columns:
        ref = _column(reference, name, "reference", min_incoming)
        new = _column(incoming, name, "incoming", min_incoming)
        result = ks_2samp(ref, new)
        p = float(result.pvalue)
        rows.append({"statistic": name, "reference_median": float(np.median(ref)),
                     "incoming_median": float(np.median(new)), "ks": float(result.statistic),
                     "p_value": p, "drift": bool(p < corrected)})
    report = pd.DataFrame(rows, columns=["statistic", *REPORT_COLUMNS]).set_index("statistic")
    report.attrs.update({"alpha": float(alpha), "alpha_corrected": float(corrected),
                         "n_reference": int(len(reference)), "n_incoming": int(len(incoming))})
    return report


def _number(value: float) -> str:
    """``value`` in 3 significant digits (integers as they are)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e6 else f"{value:.3g}"


def drift_summary(report: pd.DataFrame) -> str:
    """One line for a notebook: ``"no drift in 9 statistics (n=50)"`` or which statistics drifted and by how much."""
    n = report.attrs.get("n_incoming")
    counts = f"n={n}" if n is not None else f"{len(report)} statistics"
    drifted = report[report["drift"].astype(bool)]
    if drifted.empty:
        return f"no drift in {len(report)} statistics ({counts})"
    details = "; ".join(
        f"{name} median {_number(row.reference_median)} -> {_number(row.incoming_median)} "
        f"(KS {row.ks:.2f}, p={row.p_value:.1e})"
        for name, row in drifted.iterrows()
    )
    return f"drift in {', '.join(map(str, drifted.index))} of {len(report)} statistics ({counts}): {details}"


# --- Collecting requests -----------------------------------------------------------------------------


class RequestLog:
    """Statistics of served images, one :func:`image_stats` row per request plus its UTC ``time``; thread-safe.

    Kept in memory, the newest ``max_rows`` rows (None: all). A scoring server calls :meth:`add` from its
    request threads and can answer ``frame().to_dict(orient="records")`` as JSON (``time`` is ISO 8601 text);
    a notebook passes :meth:`frame` to :func:`drift_report`.
    """

    def __init__(self, max_rows: int | None = 10_000) -> None:
        if max_rows is not None and (int(max_rows) != max_rows or max_rows < 1):
            raise ValueError(f"max_rows must be a positive whole number or None (keep all), got {max_rows!r}.")
        self.max_rows = None if max_rows is None else int(max_rows)
        self._rows: deque[dict[str, Any]] = deque(maxlen=self.max_rows)
        self._lock = threading.Lock()
        self._total = 0

    def add(self, image: Any) -> dict[str, Any]:
        """Add one 2-D image's statistics (brightness in [0, 1]) with the current UTC time; return that row."""
        row: dict[str, Any] = image_row(image)
        row["time"] = pd.Timestamp.now(tz="UTC").isoformat()
        with self._lock:
            self._rows.append(row)
            self._total += 1
        return row

    def frame(self) -> pd.DataFrame:
        """The kept rows, oldest first: :data:`STAT_COLUMNS` and ``time`` (ISO 8601 UTC text for pd.to_datetime)."""
        with self._lock:
            rows = list(self._rows)
        table = pd.DataFrame(rows, columns=[*STAT_COLUMNS, "time"])
        if not rows:
            table = table.astype({c: "float64" for c in STAT_COLUMNS[:-2]} | {"height": "int64", "width": "int64"})
        return table

    @property
    def total(self) -> int:
        """Images added since the log was made, including rows dropped beyond ``max_rows``."""
        with self._lock:
            return self._total

    def clear(self) -> None:
        """Forget the kept rows (``total`` keeps counting)."""
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} rows, max_rows={self.max_rows}, total={self.total})"



__all__ = [
    "MIN_INCOMING", "NEAR_BLACK", "NEAR_WHITE", "REPORT_COLUMNS", "STAT_COLUMNS", "RequestLog",
    "drift_report", "drift_summary", "image_row", "image_stats",
]
