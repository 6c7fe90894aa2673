"""Evaluation figures: ROC and precision-recall curves, reliability diagrams, confusion heatmaps and
training histories, in the collection's one look (see :mod:`helpers.viz`).

Each function draws and returns the matplotlib ``Figure``; none calls ``plt.show()`` or closes a figure
(Jupyter shows a returned figure; scripts save it or pass it to ``helpers.tracking.log_figure``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from helpers import metrics
from helpers.viz import FIGSIZE, _plt

#: Line colour of the chance / perfect-calibration reference lines.
REFERENCE_COLOR = "0.6"


def _curves(y_true: Any, y_score: Any, label: str) -> dict[str, tuple[Any, Any]]:
    """``{label: (y_true, y_score)}`` from either a single model or a dict of several."""
    if isinstance(y_true, Mapping):
        if y_score is not None:
            raise ValueError("Pass either a dict {label: (y_true, y_score)} or y_true and y_score, not both.")
        if not y_true:
            raise ValueError("The dict of models is empty: give at least one {label: (y_true, y_score)}.")
        curves = {}
        for name, pair in y_true.items():
            if not (isinstance(pair, Sequence) and len(pair) == 2):
                raise ValueError(f"Model {name!r}: each dict value must be a pair (y_true, y_score).")
            curves[str(name)] = (pair[0], pair[1])
        return curves
    if y_score is None:
        raise ValueError("y_score is missing: pass y_true and y_score, or a dict {label: (y_true, y_score)}.")
    return {label: (y_true, y_score)}


def plot_roc_pr(y_true: Any, y_score: Any = None, label: str = "model", ax: Sequence[Any] | None = None):
    """ROC (AUC in the legend) and precision-recall (AP in the legend) side by side; return the Figure.

    ``y_true`` may instead be a dict ``{label: (y_true, y_score)}`` to overlay several models, e.g. a
    patient-level split against a leaky image-level one. ``ax`` is an optional pair of Axes (ROC, PR).
    """
    curves = _curves(y_true, y_score, label)
    plt = _plt()
    if ax is None:
        fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=FIGSIZE["wide"])
    else:
        if not (isinstance(ax, Sequence | np.ndarray) and len(ax) == 2):
            raise ValueError("ax must be a pair of Axes (ROC, PR), e.g. from plt.subplots(1, 2).")
        ax_roc, ax_pr = ax
        fig = ax_roc.figure
    prevalences = []
    for name, (yt, ys) in curves.items():
        fpr, tpr, _ = metrics.roc_curve(yt, ys)
        auc = metrics.roc_auc(yt, ys)
        ax_roc.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
        precision, recall, _ = metrics.pr_curve(yt, ys)
        ap = metrics.average_precision(yt, ys)
        ax_pr.step(recall, precision, where="pre", label=f"{name} (AP {ap:.3f})")
        prevalences.append(float(np.mean(np.asarray(yt, dtype=float))))
    ax_roc.plot([0, 1], [0, 1], linestyle="--", color=REFERENCE_COLOR, label="chance (AUC 0.5)")
    if len(set(np.round(prevalences, 6))) == 1:
        ax_pr.axhline(prevalences[0], linestyle="--", color=REFERENCE_COLOR,
                      label=f"chance (prevalence {prevalences[0]:.2f})")
    ax_roc.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (true positive rate)",
               title="ROC", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax_pr.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall",
              xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    for a in (ax_roc, ax_pr):
        a.set_aspect("equal")
        a.legend(loc="lower right" if a is ax_roc else "lower left", fontsize=8)
    if ax is None:
        fig.tight_layout()
    return fig


def plot_calibration(y_true: Any, y_score: Any, n_bins: int = 10):
    """Reliability diagram (fraction positive against mean predicted, with the diagonal) over a score histogram."""
    table = metrics.calibration_table(y_true, y_score, n_bins=n_bins)
    ece = metrics.expected_calibration_error(y_true, y_score, n_bins=n_bins)
    y = np.asarray(y_true).astype(int)
    s = np.asarray(y_score, dtype=float)
    plt = _plt()
    fig, (ax_rel, ax_hist) = plt.subplots(2, 1, figsize=(FIGSIZE["single"][0], FIGSIZE["single"][1] * 1.4),
                                          sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax_rel.plot([0, 1], [0, 1], linestyle="--", color=REFERENCE_COLOR, label="perfectly calibrated")
    ax_rel.plot(table["mean_predicted"], table["fraction_positive"], marker="o", label=f"model (ECE {ece:.3f})")
    ax_rel.set(ylabel="fraction positive", title="Reliability diagram", xlim=(0, 1), ylim=(-0.01, 1.01))
    ax_rel.legend(loc="upper left", fontsize=8)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    ax_hist.hist([s[y == 0], s[y == 1]], bins=edges, stacked=True, label=["negatives", "positives"])
    ax_hist.set(xlabel="predicted probability", ylabel="images")
    ax_hist.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion(table: pd.DataFrame, title: str = "Confusion matrix"):
    """Annotated heatmap of a :func:`helpers.metrics.confusion` table (rows true, columns predicted)."""
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise ValueError("plot_confusion takes the DataFrame returned by helpers.metrics.confusion.")
    counts = table.to_numpy()
    if not np.issubdtype(counts.dtype, np.number):
        raise ValueError("The confusion table must hold counts (numbers); use helpers.metrics.confusion.")
    plt = _plt()
    size = max(FIGSIZE["single"][0], 1.2 * counts.shape[1] + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues", vmin=0)
    top = counts.max() if counts.size else 0
    for (i, j), value in np.ndenumerate(counts):
        text = f"{value:d}" if np.issubdtype(counts.dtype, np.integer) else f"{value:.2f}"
        ax.text(j, i, text, ha="center", va="center", color="white" if value > top / 2 else "black")
    ax.set_xticks(range(counts.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(counts.shape[0]), [str(r) for r in table.index])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_history(history: pd.DataFrame):
    """Loss curves (left) and validation AUC (right) per epoch, the best epoch marked; return the Figure.

    ``history`` has an ``epoch`` column and any of ``train_loss``, ``val_loss``, ``val_auc`` (other
    columns ending in ``loss`` or ``auc`` are drawn too). The best epoch is the highest ``val_auc``,
    else the lowest ``val_loss``.
    """
    if not isinstance(history, pd.DataFrame) or "epoch" not in history.columns:
        raise ValueError("history must be a DataFrame with an 'epoch' column (one row per epoch).")
    if history.empty:
        raise ValueError("history is empty: train for at least one epoch first.")
    loss_cols = [c for c in history.columns if str(c).endswith("loss")]
    auc_cols = [c for c in history.columns if str(c).endswith("auc")]
    if not loss_cols and not auc_cols:
        raise ValueError(f"history has no loss or AUC column (columns: {list(history.columns)}); expected "
                         "train_loss, val_loss and/or val_auc.")
    epochs = history["epoch"].to_numpy()
    best = None
    if "val_auc" in history.columns and history["val_auc"].notna().any():
        i = int(np.nanargmax(history["val_auc"].to_numpy(dtype=float)))
        best = (epochs[i], f"best epoch {epochs[i]} (val AUC {history['val_auc'].iloc[i]:.3f})")
    elif "val_loss" in history.columns and history["val_loss"].notna().any():
        i = int(np.nanargmin(history["val_loss"].to_numpy(dtype=float)))
        best = (epochs[i], f"best epoch {epochs[i]} (val loss {history['val_loss'].iloc[i]:.3f})")
    panels = [(cols, ylabel) for cols, ylabel in ((loss_cols, "loss"), (auc_cols, "AUC")) if cols]
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=FIGSIZE["wide"] if len(panels) == 2 else FIGSIZE["single"],
                             squeeze=False)
    for ax, (cols, ylabel) in zip(axes[0], panels):
        for col in cols:
            ax.plot(epochs, history[col].to_numpy(dtype=float), marker="o", markersize=3, label=str(col))
        if best is not None:
            ax.axvline(best[0], linestyle="--", color=REFERENCE_COLOR, label=best[1])
        ax.set(xlabel="epoch", ylabel=ylabel, title="Loss" if ylabel == "loss" else "AUC")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_runs(histories: Mapping[str, pd.DataFrame], columns: Sequence[str] = ("loss", "val_dice"), x: str = "epoch"):
    """One panel per history column (e.g. training loss, validation Dice) with one line per run, to compare runs
    trained on the same data: against ``x = "epoch"``, or ``"seconds"`` (cumulative wall time, from the per-epoch
    ``seconds`` column) to compare runs of different speed on the same time budget; return the Figure."""
    if not histories:
        raise ValueError("give at least one run: {name: history DataFrame}.")
    if x not in ("epoch", "seconds"):
        raise ValueError(f"x must be 'epoch' or 'seconds', got {x!r}.")
    for name, history in histories.items():
        missing = [c for c in (x, *columns) if c not in history.columns]
        if missing:
            raise ValueError(f"run {name!r} has no column(s) {missing}; its columns: {list(history.columns)}.")
    plt = _plt()
    fig, axes = plt.subplots(1, len(columns), figsize=FIGSIZE["wide"], squeeze=False)
    for ax, column in zip(axes[0], columns):
        for name, history in histories.items():
            xs = history[x].to_numpy(dtype=float)
            xs = np.cumsum(xs) if x == "seconds" else xs
            ax.plot(xs, history[column].to_numpy(dtype=float), marker="o", markersize=2, label=name)
        ax.set(xlabel="epoch" if x == "epoch" else "training time (s)", ylabel=column, title=column.replace("_", " "))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
