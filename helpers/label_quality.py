"""Label quality: simulated readers, agreement, likely label errors (cleanlab), and choosing what to label next.

Labels are 0/1 arrays (one binary finding) unless said otherwise. A model enters only through a
``fit_predict(train_idx, labels, predict_idx) -> probabilities of class 1`` callable, so the same functions work
with a logistic regression on pixels (:func:`logistic_fit_predict`, fast, used by the tests) and with the lesson's
small CNN (:func:`cnn_fit_predict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

STRATEGIES = ("uncertainty", "random")

# --- Simulated readers ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReaderProfile:
    """How a simulated reader errs: ``sensitivity`` for a large lesion, falling for small ones (half of it at a
    lesion area of ``half_area`` px²), and ``specificity`` on normal images."""

    name: str
    sensitivity: float = 0.95
    specificity: float = 0.95
    half_area: float = 300.0

    def p_positive(self, truth: np.ndarray, area: np.ndarray) -> np.ndarray:
        """The probability that this reader calls each image positive, given the truth (0/1) and lesion area (px²)."""
        area = np.nan_to_num(np.asarray(area, dtype=float), nan=0.0)
        detect = self.sensitivity / (1.0 + (self.half_area / np.maximum(area, 1e-6)) ** 2)
        return np.where(np.asarray(truth) > 0, detect, 1.0 - self.specificity)


#: Two readers as in a typical reading study: a consultant and a trainee who misses more small lesions and
#: over-calls more normals.
DEFAULT_READERS = (ReaderProfile("consultant", 0.97, 0.96, 250.0), ReaderProfile("trainee", 0.92, 0.85, 450.0))


def lesion_area(table: pd.DataFrame, prefix: str = "lesion") -> np.ndarray:
    """Lesion box areas in px² from a manifest's ``<prefix>_x0 .. _y1`` columns (NaN where there is none)."""
    x0, y0, x1, y1 = (table[f"{prefix}_{k}"].to_numpy(float) for k in ("x0", "y0", "x1", "y1"))
    return (x1 - x0 + 1) * (y1 - y0 + 1)


def simulate_readers(truth: np.ndarray, area: np.ndarray, readers: Sequence[ReaderProfile] = DEFAULT_READERS,
                     seed: int = 0) -> pd.DataFrame:
    """Each reader's 0/1 call per image (one column per reader name), drawn from :meth:`ReaderProfile.p_positive`."""
    rng = np.random.default_rng(seed)
    out = {}
    for reader in readers:
        out[reader.name] = (rng.random(len(truth)) < reader.p_positive(truth, area)).astype(int)
    return pd.DataFrame(out)


# --- Agreement -----------------------------------------------------------------------------------------


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two readers' labels: (observed agreement - chance agreement) / (1 - chance agreement)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"two equally long 1-D label lists are needed, got shapes {a.shape} and {b.shape}.")
    classes = np.union1d(a, b)
    observed = float(np.mean(a == b))
    chance = float(sum(np.mean(a == c) * np.mean(b == c) for c in classes))
    if chance == 1.0:
        return 1.0 if observed == 1.0 else float("nan")
    return (observed - chance) / (1.0 - chance)


def agreement_table(a: Sequence[Any], b: Sequence[Any], names: tuple[str, str] = ("reader A", "reader B")) -> pd.DataFrame:
    """Counts of each (reader A's label, reader B's label) pair: rows reader A, columns reader B, with totals."""
    table = pd.crosstab(pd.Series(np.asarray(a), name=names[0]), pd.Series(np.asarray(b), name=names[1]),
                        margins=True, margins_name="total")
    return table


# --- Finding label errors ------------------------------------------------------------------------------


def inject_label_errors(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels with ``round(fraction * n)`` of them flipped, the sorted indices flipped): a known answer for tests."""
    labels = np.asarray(labels).astype(int)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}.")
    rng = np.random.default_rng(seed)
    flipped = np.sort(rng.choice(len(labels), size=int(round(fraction * len(labels))), replace=False))
    noisy = labels.copy()
    noisy[flipped] = 1 - noisy[flipped]
    return noisy, flipped


def out_of_fold_probabilities(labels: np.ndarray, groups: np.ndarray, fit_predict: FitPredict, folds: int = 5,
                              seed: int = 0) -> np.ndarray:
    """Probabilities (N, 2) for every image from a model that never saw it: ``folds`` folds by group (patient),
    stratified by label, each predicted by a model fitted on the others (what cleanlab needs)."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels).astype(int)
    p1 = np.full(len(labels), np.nan)
    splitter = StratifiedGroupKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(np.zeros(len(labels)), labels, groups):
        p1[test_idx] = fit_predict(train_idx, labels[train_idx], test_idx)
    if np.isnan(p1).any():
        raise RuntimeError("some images got no out-of-fold prediction: check that groups cover every image.")
    p1 = np.clip(p1, 1e-6, 1 - 1e-6)
    return np.column_stack([1.0 - p1, p1])


def find_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Indices of likely label errors, most likely first (cleanlab's confident learning, ranked by self-confidence)."""
    from cleanlab.filter import find_label_issues as cleanlab_issues

    return np.asarray(cleanlab_issues(np.asarray(labels).astype(int), np.asarray(probabilities, dtype=float),
                                      return_indices_ranked_by="self_confidence"), dtype=int)


@dataclasses.dataclass(frozen=True)
class Recovery:
    """How well a flagged set matches the known errors: precision = real errors among flagged, recall = flagged
    among real errors."""

    flagged: int
    errors: int
    found: int

    @property
    def precision(self) -> float:
        """found / flagged (NaN when nothing was flagged)."""
        return self.found / self.flagged if self.flagged else float("nan")

    @property
    def recall(self) -> float:
        """found / errors (NaN when there were none)."""
        return self.found / self.errors if self.errors else float("nan")

    def __str__(self) -> str:
        return (f"flagged {self.flagged}, of which {self.found} are real errors (precision {self.precision:.2f}); "
                f"found {self.found} of {self.errors} errors (recall {self.recall:.2f})")


def recovery(flagged: Sequence[int], errors: Sequence[int]) -> Recovery:
    """Compare flagged indices with the indices of the real errors."""
    flagged_set, error_set = set(map(int, flagged)), set(map(int, errors))
    return Recovery(len(flagged_set), len(error_set), len(flagged_set & error_set))


# --- Models as fit_predict callables -------------------------------------------------------------------


def logistic_fit_predict(features: np.ndarray, c: float = 0.1) -> FitPredict:
    """A standardised logistic regression on ``features`` (N, D): fast enough for tests and quick checks."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)

    def fit_predict(train_idx: np.ndarray, y: np.ndarray, predict_idx: np.ndarray) -> np.ndarray:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
        model.fit(x[train_idx], y)
        return model.predict_proba(x[predict_idx])[:, 1]

    return fit_predict


def cnn_fit_predict(images: np.ndarray, out_dir: str | Path, epochs: int = 12, seed: int = 0,
                    val_fraction: float = 0.15) -> FitPredict:
    """The lesson's small CNN (``train_torch``) on images (N, 1, S, S): each call trains on ``train_idx`` (keeping
    ``val_fraction`` of it aside to pick the best epoch) and returns probabilities for ``predict_idx``."""
    from helpers import train_torch as tt

    calls = {"n": 0}

    def fit_predict(train_idx: np.ndarray, y: np.ndarray, predict_idx: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([seed, calls["n"]])
        order = rng.permutation(len(train_idx))
        n_val = max(int(round(val_fraction * len(train_idx))), 4)
        val, fit = order[:n_val], order[n_val:]
        if len(np.unique(y[val])) < 2 or len(np.unique(y[fit])) < 2:  # tiny sets: validate on the training rows
            val, fit = order, order
        config = tt.TrainConfig(model="small_cnn", image_size=images.shape[-1], epochs=int(epochs), batch_size=32,
                                lr=3e-3, patience=int(epochs), seed=int(seed) + calls["n"], label_names=("label",))
        yy = y.astype(np.float32)[:, None]
        result = tt.train(config, (images[train_idx[fit]], yy[fit]), (images[train_idx[val]], yy[val]),
                          Path(out_dir) / f"call{calls['n']}", log_to_mlflow=False)
        calls["n"] += 1
        return tt.predict(result.model, images[predict_idx]).reshape(len(predict_idx), -1)[:, 0]

    return fit_predict


# --- Choosing what to label next -----------------------------------------------------------------------


def choose_next(probabilities: np.ndarray, candidates: np.ndarray, k: int, strategy: str = "uncertainty",
                seed: int = 0) -> np.ndarray:
    """``k`` of ``candidates`` to label next: the ones whose probability is closest to 0.5 (``uncertainty``), or a
    random draw (``random``)."""
    candidates = np.asarray(candidates, dtype=int)
    k = min(int(k), len(candidates))
    if strategy == "uncertainty":
        margin = np.abs(np.asarray(probabilities, dtype=float) - 0.5)
        return candidates[np.argsort(margin, kind="stable")[:k]]
    if strategy == "random":
        return np.random.default_rng(seed).choice(candidates, size=k, replace=False)
    raise ValueError(f"strategy={strategy!r}; use one of {STRATEGIES}.")


def learning_curve(labels: np.ndarray, pool: np.ndarray, evaluate: np.ndarray, fit_predict: FitPredict,
                   start: int, step: int, rounds: int, strategy: str = "uncertainty", seed: int = 0) -> pd.DataFrame:
    """Validation AUC as labels are added: start with ``start`` random images of ``pool`` (both classes), then
    ``rounds`` times fit, score ``evaluate`` and add ``step`` more chosen by ``strategy``. One row per round."""
    from helpers.metrics import roc_auc

    labels = np.asarray(labels).astype(int)
    pool = np.asarray(pool, dtype=int)
    rng = np.random.default_rng(seed)
    labelled = rng.choice(pool, size=min(int(start), len(pool)), replace=False)
    while len(np.unique(labels[labelled])) < 2:  # a first batch needs both classes to fit anything
        labelled = np.append(labelled, rng.choice(np.setdiff1d(pool, labelled), 1))
    rows = []
    for r in range(int(rounds)):
        rest = np.setdiff1d(pool, labelled)
        probs = fit_predict(labelled, labels[labelled], np.concatenate([evaluate, rest]))
        auc = roc_auc(labels[evaluate], probs[:len(evaluate)])
        positives = int(labels[labelled].sum())
        rows.append({"strategy": strategy, "round": r, "labelled": len(labelled), "positives": positives, "auc": auc})
        if len(rest) == 0 or r == int(rounds) - 1:
            break
        labelled = np.concatenate([labelled, choose_next(probs[len(evaluate):], rest, step, strategy, seed + r)])
    return pd.DataFrame(rows)


def plot_learning_curves(curves: pd.DataFrame):
    """Validation AUC against labelled images, one line per strategy (mean over seeds, shaded min-max)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for strategy, part in curves.groupby("strategy"):
        stats = part.groupby("labelled")["auc"].agg(["mean", "min", "max"])
        ax.plot(stats.index, stats["mean"], marker="o", label=strategy)
        ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2)
    ax.set_xlabel("labelled images")
    ax.set_ylabel("validation AUC")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
