"""Evaluation of binary and multi-label classifiers: AUC with honest (patient-level) intervals,
operating points, confusion tables, calibration, and one summary dict for logging.

Framework-free: numpy and pandas only. AUC and average precision are computed here (rank formulas
that match scikit-learn's), so evaluation works without scikit-learn and a bootstrap of 1000
resamples takes well under a second. A "score" is the model's output for the positive class, higher
meaning more likely positive; calibration functions need it to be a probability in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Default sensitivity at which :func:`summarize_binary` picks its operating point (a screening setting).
DEFAULT_SENSITIVITY = 0.9

_ONE_CLASS = ("only one class present in y_true: AUC is undefined; the split or the quick setting has "
              "too few positives (or negatives). Use a larger split, a patient-level stratified split, or "
              "the full setting.")


# --- input checks ----------------------------------------------------------------------------------


def _check_labels(y_true: Any, name: str = "y_true") -> np.ndarray:
    """``y_true`` as a 1-D int array of 0 and 1; ValueError saying what is wrong otherwise."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one label per image); got shape {y.shape}. "
                         "For several labels per image use multilabel_auc.")
    if y.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to evaluate.")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        examples = sorted({str(v) for v in y.tolist()})[:5]
        raise ValueError(f"{name} must hold 0 (negative) and 1 (positive); got values such as {examples}. "
                         "Map class names to 0/1 first, e.g. (labels == 'fracture').astype(int).")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        examples = sorted({float(v) for v in y[bad].tolist()})[:5]
        raise ValueError(f"{name} must hold only 0 (negative) and 1 (positive); {int(bad.sum())} values are "
                         f"not, e.g. {examples}. Did you pass scores or class indices of a multi-class task?")
    return y.astype(np.int64)


def _check_scores(y_score: Any, n: int, name: str = "y_score") -> np.ndarray:
    """``y_score`` as a 1-D finite float array of length ``n``; ValueError saying what is wrong otherwise."""
    s = np.asarray(y_score)
    if s.ndim == 2 and s.shape[1] == 2:
        raise ValueError(f"{name} must be one-dimensional (the positive-class score); got shape {s.shape}. "
                         f"For a two-column predict_proba / softmax output pass {name}[:, 1].")
    if s.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one score per image); got shape {s.shape}.")
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise ValueError(f"{name} must be numbers; got dtype {s.dtype}.")
    s = s.astype(np.float64)
    if s.shape[0] != n:
        raise ValueError(f"y_true has {n} values but {name} has {s.shape[0]}: they must be the same length "
                         "(one label and one score per image, in the same order).")
    finite = np.isfinite(s)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} holds {int((~finite).sum())} non-finite values (NaN or inf), the first at "
                         f"index {first}: the model diverged or an input held NaN. Fix that before evaluating.")
    return s


def _check_binary(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels, scores) arrays for the binary functions."""
    y = _check_labels(y_true)
    return y, _check_scores(y_score, y.shape[0])


def _check_probabilities(s: np.ndarray) -> None:
    """Raise ValueError unless every score is a probability in [0, 1]."""
    lo, hi = float(s.min()), float(s.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"calibration needs probabilities in [0, 1]; the scores run from {lo:.3g} to {hi:.3g}. "
                         "They look like logits: apply a sigmoid (or softmax) first.")


def _safe_div(num: float, den: float) -> float:
    """``num / den``, or NaN when ``den`` is 0 (the rate is undefined)."""
    return float(num) / float(den) if den else math.nan


# --- AUC -------------------------------------------------------------------------------------------


def _weighted_auc(level: np.ndarray, y: np.ndarray, w: np.ndarray, n_levels: int) -> float:
    """AUC with per-image weights ``w`` (ties count one half); NaN when a class has zero weight.

    ``level`` is each image's rank among the distinct scores (0 = lowest). A positive at level k beats
    every negative below k and ties with the negatives at k.
    """
    pos = np.bincount(level, weights=w * y, minlength=n_levels)
    neg = np.bincount(level, weights=w * (1 - y), minlength=n_levels)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (n_pos * n_neg))


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve (0-1; 0.5 = chance): the chance a random positive outscores a random negative."""
    y, s = _check_binary(y_true, y_score)
    if y.min() == y.max():
        raise ValueError(_ONE_CLASS)
    _, level = np.unique(s, return_inverse=True)
    return _weighted_auc(level.ravel(), y, np.ones_like(s), int(level.max()) + 1)


@dataclass(frozen=True)
class Interval:
    """An estimate with a confidence interval, e.g. ``0.912 (95% CI 0.871-0.948)``; ``level`` is a fraction."""

    value: float
    low: float
    high: float
    level: float

    def __str__(self) -> str:
        return f"{self.value:.3f} ({round(self.level * 100, 6):g}% CI {self.low:.3f}-{self.high:.3f})"


def bootstrap_auc(y_true: Any, y_score: Any, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                  groups: Any = None) -> Interval:
    """ROC AUC with a percentile bootstrap interval; with ``groups`` (patient ids) whole patients are resampled.

    Images of one patient are alike, so resampling images pretends there is more independent evidence
    than there is and gives too narrow an interval; pass ``groups`` whenever a patient has several images.
    Resamples holding one class only are skipped; if fewer than half are usable a ValueError says so.
    """
    y, s = _check_binary(y_true, y_score)
    value = roc_auc(y, s)
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive whole number of resamples, got {n_boot!r}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be a fraction between 0 and 1 (e.g. 0.95 for 95%), got {level!r}.")
    n = y.shape[0]
    if groups is None:
        unit = np.arange(n)
        n_units = n
    else:
        g = np.asarray(groups)
        if g.ndim != 1 or g.shape[0] != n:
            raise ValueError(f"groups must give one id per image ({n}), got shape {g.shape}.")
        _, unit = np.unique(g, return_inverse=True)
        unit = unit.ravel()
        n_units = int(unit.max()) + 1
    _, lev = np.unique(s, return_inverse=True)
    lev = lev.ravel()
    n_levels = int(lev.max()) + 1
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(int(n_boot)):
        draws = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
        auc = _weighted_auc(lev, y, draws[unit].astype(np.float64), n_levels)
        if not math.isnan(auc):
            aucs.append(auc)
    if len(aucs) < n_boot / 2:
        what = "patients" if groups is not None else "images"
        raise ValueError(f"only {len(aucs)} of {int(n_boot)} bootstrap resamples held both classes (fewer than "
                         f"half): there are too few positive or negative {what} for a bootstrap interval. "
                         "Evaluate on more data, or report the AUC without an interval.")
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(np.asarray(aucs), [100 * alpha, 100 * (1 - alpha)])
    return Interval(value=value, low=float(low), high=float(high), level=float(level))


def roc_curve(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points (fpr, tpr, thresholds), thresholds decreasing from +inf; score >= threshold counts positive."""
    y, s = _check_binary(y_true, y_score)
    if y.min() == y.max():
        raise ValueError(_ONE_CLASS)
    thresholds, tps, fps = _cumulative_counts(y, s)
    return (np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, thresholds])


def _cumulative_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (decreasing) with the true- and false-positive counts at each as threshold."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1) - tps
    return s_sorted[last_of_tie], tps, fps


def pr_curve(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall points (precision, recall, thresholds) with recall increasing from (recall 0, precision 1)."""
    y, s = _check_binary(y_true, y_score)
    if y.sum() == 0:
        raise ValueError("no positives in y_true: recall (and the PR curve) is undefined; the split or the "
                         "quick setting has too few positives.")
    thresholds, tps, fps = _cumulative_counts(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.r_[1.0, precision], np.r_[0.0, recall], np.r_[np.inf, thresholds]


def average_precision(y_true: Any, y_score: Any) -> float:
    """Average precision (0-1; chance = prevalence): precision averaged over recall steps, as scikit-learn's."""
    precision, recall, _ = pr_curve(y_true, y_score)
    return float(np.sum(np.diff(recall) * precision[1:]))


# --- thresholds and operating points ---------------------------------------------------------------


def threshold_at_sensitivity(y_true: Any, y_score: Any, sensitivity: float = DEFAULT_SENSITIVITY) -> float:
    """The highest threshold whose sensitivity (score >= threshold counts positive) is at least ``sensitivity``."""
    y, s = _check_binary(y_true, y_score)
    if not 0.0 < sensitivity <= 1.0:
        raise ValueError(f"sensitivity must be a fraction in (0, 1], e.g. 0.9 for 90%; got {sensitivity!r}.")
    positives = np.sort(s[y == 1])[::-1]
    if positives.size == 0:
        raise ValueError("no positives in y_true: sensitivity is undefined, so no threshold can be chosen; "
                         "the split or the quick setting has too few positives.")
    needed = math.ceil(sensitivity * positives.size - 1e-9)
    return float(positives[needed - 1])


def operating_point(y_true: Any, y_score: Any, threshold: float) -> dict[str, float | int]:
    """Counts and rates when score >= ``threshold`` counts positive; rates are NaN where undefined (0/0)."""
    y, s = _check_binary(y_true, y_score)
    if not math.isfinite(float(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    tn = int(np.sum(~pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    return {
        "threshold": float(threshold),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "sensitivity": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
        "ppv": _safe_div(tp, tp + fp),
        "npv": _safe_div(tn, tn + fn),
        "accuracy": _safe_div(tp + tn, tp + fp + tn + fn),
    }


def confusion(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> pd.DataFrame:
    """Counts of (true, predicted) label pairs: rows ``true: <label>``, columns ``predicted: <label>``."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"y_true and y_pred must be one-dimensional; got shapes {t.shape} and {p.shape}. "
                         "Threshold scores first, e.g. y_pred = (y_score >= threshold).astype(int).")
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"y_true has {t.shape[0]} values but y_pred has {p.shape[0]}: they must be the same length.")
    if t.size == 0:
        raise ValueError("y_true is empty: there is nothing to count.")
    t_list, p_list = t.tolist(), p.tolist()
    if labels is None:
        labels = sorted(set(t_list) | set(p_list))
    labels = list(labels)
    position = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(v) for v in t_list + p_list if v not in position})
    if unknown:
        raise ValueError(f"values {unknown[:5]} are not among labels {labels}: add them to labels, "
                         "or leave labels=None.")
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(counts, ([position[v] for v in t_list], [position[v] for v in p_list]), 1)
    return pd.DataFrame(counts, index=[f"true: {label}" for label in labels],
                        columns=[f"predicted: {label}" for label in labels])


# --- calibration -----------------------------------------------------------------------------------


def calibration_table(y_true: Any, y_score: Any, n_bins: int = 10, strategy: str = "uniform") -> pd.DataFrame:
    """Per score bin: bin_low, bin_high, mean_predicted, fraction_positive and count (empty bins left out).

    ``strategy="uniform"`` cuts [0, 1] into equal widths; ``"quantile"`` into bins of about equal count.
    """
    y, s = _check_binary(y_true, y_score)
    _check_probabilities(s)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive whole number, got {n_bins!r}.")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(s, np.linspace(0.0, 1.0, int(n_bins) + 1)))
        if edges.size == 1:
            edges = np.r_[edges, edges]
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}.")
    n_edges = edges.size - 1
    index = np.searchsorted(edges[1:-1], s, side="right")
    count = np.bincount(index, minlength=n_edges)
    keep = count > 0
    sum_score = np.bincount(index, weights=s, minlength=n_edges)
    sum_pos = np.bincount(index, weights=y.astype(np.float64), minlength=n_edges)
    return pd.DataFrame({
        "bin_low": edges[:-1][keep],
        "bin_high": edges[1:][keep],
        "mean_predicted": sum_score[keep] / count[keep],
        "fraction_positive": sum_pos[keep] / count[keep],
        "count": count[keep].astype(np.int64),
    })


def expected_calibration_error(y_true: Any, y_score: Any, n_bins: int = 10) -> float:
    """ECE (0-1; 0 = calibrated): count-weighted mean |fraction_positive - mean_predicted| over uniform bins."""
    table = calibration_table(y_true, y_score, n_bins=n_bins, strategy="uniform")
    gap = (table["fraction_positive"] - table["mean_predicted"]).abs()
    return float(np.sum(gap * table["count"]) / table["count"].sum())


# --- multi-label and summary -----------------------------------------------------------------------


def multilabel_auc(Y_true: Any, Y_score: Any, names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per label (label, auc, positives, prevalence, note) and a final ``macro`` row (mean AUC).

    A label with one class only gets AUC NaN and a note; the macro mean leaves it out and says so.
    ``names`` defaults to the columns of a DataFrame ``Y_true``.
    """
    if names is None:
        names = [str(c) for c in Y_true.columns] if isinstance(Y_true, pd.DataFrame) else None
    Y = np.asarray(Y_true)
    S = np.asarray(Y_score)
    if Y.ndim != 2:
        raise ValueError(f"Y_true must be two-dimensional (images x labels); got shape {Y.shape}. "
                         "For one label use roc_auc.")
    if S.shape != Y.shape:
        raise ValueError(f"Y_true has shape {Y.shape} but Y_score has shape {S.shape}: they must match "
                         "(one score per image and label, in the same order).")
    if names is None:
        names = [f"label {j}" for j in range(Y.shape[1])]
    names = list(names)
    if len(names) != Y.shape[1]:
        raise ValueError(f"names has {len(names)} entries but there are {Y.shape[1]} label columns.")
    rows = []
    for j, name in enumerate(names):
        y = _check_labels(Y[:, j], name=f"Y_true[:, {j}] ({name})")
        s = _check_scores(S[:, j], y.shape[0], name=f"Y_score[:, {j}] ({name})")
        positives = int(y.sum())
        one_class = positives in (0, y.shape[0])
        rows.append({
            "label": str(name),
            "auc": math.nan if one_class else roc_auc(y, s),
            "positives": positives,
            "prevalence": positives / y.shape[0],
            "note": "only one class present: AUC undefined" if one_class else "",
        })
    table = pd.DataFrame(rows)
    defined = table["auc"].notna()
    left_out = int((~defined).sum())
    note = f"mean over {int(defined.sum())} of {len(names)} labels"
    if left_out:
        note += f" ({left_out} left out: one class only)"
    macro = {
        "label": "macro",
        "auc": float(table.loc[defined, "auc"].mean()) if defined.any() else math.nan,
        "positives": int(table["positives"].sum()),
        "prevalence": float(table["prevalence"].mean()),
        "note": note,
    }
    return pd.concat([table, pd.DataFrame([macro])], ignore_index=True)


def summarize_binary(y_true: Any, y_score: Any, threshold: float | None = None, groups: Any = None,
                     n_boot: int = 1000, seed: int = 0) -> dict[str, float | int]:
    """Headline numbers as plain floats and ints: AUC with a 95% interval, AP, ECE and the operating point.

    ``threshold`` defaults to :func:`threshold_at_sensitivity` at 0.9; pass ``groups`` (patient ids)
    for a patient-level interval. Undefined rates are NaN (no inf), so the dict can go to MLflow as is.
    """
    y, s = _check_binary(y_true, y_score)
    interval = bootstrap_auc(y, s, n_boot=n_boot, seed=seed, groups=groups)
    if threshold is None:
        threshold = threshold_at_sensitivity(y, s, DEFAULT_SENSITIVITY)
    summary: dict[str, float | int] = {
        "n": int(y.shape[0]),
        "positives": int(y.sum()),
        "prevalence": float(y.mean()),
        "auc": float(interval.value),
        "auc_low": float(interval.low),
        "auc_high": float(interval.high),
        "average_precision": average_precision(y, s),
        "ece": expected_calibration_error(y, s),
    }
    summary.update(operating_point(y, s, float(threshold)))
    return summary
