"""helpers.metrics and helpers.evalplots: AUC and its intervals, operating points, calibration, figures."""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pandas as pd
import pytest

from helpers import evalplots, metrics

# The hand case: positives score 0.35 and 0.8, negatives 0.1 and 0.4. Of the 4 (positive, negative)
# pairs only (0.35, 0.4) is ranked wrongly, so AUC = 3/4.
Y = [0, 0, 1, 1]
S = [0.1, 0.4, 0.35, 0.8]


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test made (the plot functions themselves close nothing)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def _patients(n_patients: int = 40, images: int = 5, seed: int = 1):
    """Labels, scores, patient ids: each patient has ``images`` near-identical images with one label."""
    rng = np.random.default_rng(seed)
    patient_y = np.repeat([0, 1], n_patients // 2)
    patient_s = rng.normal(patient_y * 1.0, 1.0)
    y = np.repeat(patient_y, images)
    s = np.repeat(patient_s, images) + rng.normal(0.0, 0.01, y.size)
    return y, s, np.repeat(np.arange(n_patients), images)


# --- AUC -------------------------------------------------------------------------------------------


def test_roc_auc_hand_case_and_sklearn_agree():
    assert metrics.roc_auc(Y, S) == 0.75
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounded: many ties, which count one half
    assert metrics.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert metrics.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)
    assert metrics.roc_auc(Y, S) == pytest.approx(sk.roc_auc_score(Y, S))


def test_roc_auc_ties_count_one_half():
    # positive 0.5 ties the negative 0.5 (1/2) and beats 0.2 (1): AUC = 1.5 / 2.
    assert metrics.roc_auc([0, 0, 1], [0.2, 0.5, 0.5]) == 0.75


def test_average_precision_hand_case():
    # Ranked by score: 0.8 (pos), 0.4 (neg), 0.35 (pos), 0.1 (neg). Precision at each positive: 1/1 and 2/3.
    assert metrics.average_precision(Y, S) == pytest.approx((1 + 2 / 3) / 2)


def test_roc_curve_hand_case():
    fpr, tpr, thresholds = metrics.roc_curve(Y, S)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert thresholds[0] == np.inf and thresholds[1:].tolist() == [0.8, 0.4, 0.35, 0.1]


def test_one_class_error_says_what_is_wrong():
    with pytest.raises(ValueError, match="only one class present in y_true: AUC is undefined") as err:
        metrics.roc_auc([1, 1, 1], [0.2, 0.5, 0.9])
    assert "too few positives" in str(err.value)
    with pytest.raises(ValueError, match="only one class"):
        metrics.bootstrap_auc([0, 0], [0.1, 0.2])


@pytest.mark.parametrize("y, s, message", [
    ([0, 1, 1], [0.1, 0.2], "same length"),
    ([0, 2, 1], [0.1, 0.2, 0.3], "only 0 .negative. and 1"),
    (["a", "b"], [0.1, 0.2], "must hold 0"),
    ([0, 1, 1], [0.1, float("nan"), 0.3], "non-finite values .NaN or inf., the first at index 1"),
    ([0, 1], [[0.9, 0.1], [0.2, 0.8]], r"pass y_score\[:, 1\]"),
    ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
    ([], [], "empty"),
])
def test_inputs_are_validated(y, s, message):
    with pytest.raises(ValueError, match=message):
        metrics.roc_auc(y, s)


# --- bootstrap -------------------------------------------------------------------------------------


def test_interval_str():
    assert str(metrics.Interval(0.912, 0.871, 0.948, 0.95)) == "0.912 (95% CI 0.871-0.948)"


def test_perfect_ranking_gives_a_point_interval():
    interval = metrics.bootstrap_auc([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], n_boot=200)
    assert (interval.value, interval.low, interval.high, interval.level) == (1.0, 1.0, 1.0, 0.95)


def test_bootstrap_is_seeded_and_contains_the_estimate():
    y, s, _ = _patients()
    a = metrics.bootstrap_auc(y, s, n_boot=300, seed=3)
    assert a == metrics.bootstrap_auc(y, s, n_boot=300, seed=3)
    assert a.low < a.value < a.high


def test_grouped_bootstrap_is_wider_when_patients_have_several_images():
    # 40 patients x 5 near-identical images: resampling images pretends there are 200 independent
    # cases, so its interval is far too narrow (about sqrt(5) = 2.2 times).
    y, s, patients = _patients()
    images = metrics.bootstrap_auc(y, s, n_boot=400)
    grouped = metrics.bootstrap_auc(y, s, n_boot=400, groups=patients)
    assert images.value == grouped.value
    assert grouped.high - grouped.low > 1.5 * (images.high - images.low)


def test_bootstrap_refuses_when_most_resamples_hold_one_class():
    # Two images: a resample holds both classes only half the time, so some seeds fall below half.
    outcomes = []
    for seed in range(10):
        try:
            metrics.bootstrap_auc([0, 1], [0.2, 0.8], n_boot=50, seed=seed)
            outcomes.append("ok")
        except ValueError as err:
            assert "fewer than half" in str(err) and "too few positive or negative images" in str(err)
            outcomes.append("refused")
    assert "refused" in outcomes
    with pytest.raises(ValueError, match="one id per image"):
        metrics.bootstrap_auc(Y, S, groups=[1, 2])


# --- thresholds and operating points ---------------------------------------------------------------


def test_threshold_at_sensitivity_hand_case():
    y = [0, 0, 1, 1, 1, 1]
    s = [0.5, 0.2, 0.9, 0.8, 0.6, 0.3]
    # Positives sorted: 0.9, 0.8, 0.6, 0.3. 75% of 4 = 3 positives must be at or above: threshold 0.6.
    assert metrics.threshold_at_sensitivity(y, s, 0.75) == 0.6
    # 90% of 4 = 3.6, so all 4 are needed: threshold 0.3. 70% of 4 = 2.8 -> 3 (no float surprise).
    assert metrics.threshold_at_sensitivity(y, s, 0.9) == 0.3
    assert metrics.threshold_at_sensitivity(y, s, 0.7) == 0.6
    assert metrics.operating_point(y, s, 0.6)["sensitivity"] == 0.75
    with pytest.raises(ValueError, match="fraction"):
        metrics.threshold_at_sensitivity(y, s, 90)


def test_operating_point_hand_counts():
    # threshold 0.38: predicted positive 0.4 (neg) and 0.8 (pos); 0.35 (pos) is missed.
    point = metrics.operating_point(Y, S, 0.38)
    assert {k: point[k] for k in ("tp", "fp", "tn", "fn")} == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    assert all(type(point[k]) is int for k in ("tp", "fp", "tn", "fn"))
    assert point["sensitivity"] == point["specificity"] == point["ppv"] == point["npv"] == point["accuracy"] == 0.5
    # score >= threshold counts positive: at exactly 0.35 both positives are found.
    assert metrics.operating_point(Y, S, 0.35)["tp"] == 2


def test_operating_point_nan_when_nothing_predicted_positive():
    point = metrics.operating_point(Y, S, 0.99)
    assert (point["tp"], point["fp"], point["tn"], point["fn"]) == (0, 0, 2, 2)
    assert math.isnan(point["ppv"])
    assert point["sensitivity"] == 0.0 and point["specificity"] == 1.0 and point["npv"] == 0.5


def test_confusion_table_labels_and_counts():
    table = metrics.confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    assert list(table.index) == ["true: 0", "true: 1"]
    assert list(table.columns) == ["predicted: 0", "predicted: 1"]
    assert table.to_numpy().tolist() == [[1, 1], [1, 2]]
    named = metrics.confusion(["normal", "fracture"], ["fracture", "fracture"], labels=["normal", "fracture"])
    assert named.loc["true: normal", "predicted: fracture"] == 1
    with pytest.raises(ValueError, match="not among labels"):
        metrics.confusion([0, 2], [0, 1], labels=[0, 1])


# --- calibration -----------------------------------------------------------------------------------


def test_calibration_table_hand_case():
    y = [0, 0, 1, 1, 1]
    s = [0.05, 0.15, 0.15, 0.85, 0.95]
    table = metrics.calibration_table(y, s, n_bins=4)  # bins [0.25, 0.5) and [0.5, 0.75) are empty
    assert list(table.columns) == ["bin_low", "bin_high", "mean_predicted", "fraction_positive", "count"]
    np.testing.assert_allclose(table["bin_low"], [0.0, 0.75])
    np.testing.assert_allclose(table["mean_predicted"], [0.35 / 3, 0.9])
    np.testing.assert_allclose(table["fraction_positive"], [1 / 3, 1.0])
    assert table["count"].tolist() == [3, 2]
    # ECE = (3 * |1/3 - 0.35/3| + 2 * |1 - 0.9|) / 5 = (0.65 + 0.2) / 5
    assert metrics.expected_calibration_error(y, s, n_bins=2) == pytest.approx(0.17)


def test_ece_separates_calibrated_from_overconfident():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert metrics.expected_calibration_error(y, p) < 0.05
    # Says 0.05 or 0.95 where the truth is spread over each half: off by about 0.2.
    overconfident = np.where(p >= 0.5, 0.95, 0.05)
    assert metrics.expected_calibration_error(y, overconfident) > 0.15
    quantile = metrics.calibration_table(y, p, n_bins=5, strategy="quantile")
    assert len(quantile) == 5 and set(quantile["count"]) == {4000}


def test_calibration_refuses_logits():
    with pytest.raises(ValueError, match="apply a sigmoid"):
        metrics.calibration_table([0, 1], [-2.0, 3.0])
    with pytest.raises(ValueError, match="strategy"):
        metrics.calibration_table([0, 1], [0.2, 0.8], strategy="equal")


# --- multi-label and summary -----------------------------------------------------------------------


def test_multilabel_rows_macro_and_one_class_note():
    Y_true = np.array([[0, 1, 0], [0, 0, 0], [1, 1, 0], [1, 0, 0]])
    Y_score = np.array([[0.1, 0.9, 0.3], [0.4, 0.2, 0.1], [0.35, 0.6, 0.2], [0.8, 0.7, 0.4]])
    table = metrics.multilabel_auc(Y_true, Y_score, ["effusion", "nodule", "hernia"])
    assert len(table) == 4 and table["label"].tolist() == ["effusion", "nodule", "hernia", "macro"]
    assert table.loc[0, "auc"] == 0.75  # the hand case
    assert table.loc[1, "auc"] == 0.75  # positives 0.9, 0.6 vs negatives 0.2, 0.7
    assert math.isnan(table.loc[2, "auc"]) and "one class" in table.loc[2, "note"]
    assert table.loc[3, "auc"] == 0.75 and "2 of 3" in table.loc[3, "note"]
    assert table["positives"].tolist() == [2, 2, 0, 4]
    np.testing.assert_allclose(table["prevalence"][:3], [0.5, 0.5, 0.0])
    frame = pd.DataFrame(Y_true, columns=["a", "b", "c"])
    assert metrics.multilabel_auc(frame, Y_score)["label"].tolist()[:3] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="names has 2 entries"):
        metrics.multilabel_auc(Y_true, Y_score, ["a", "b"])


def test_summarize_binary_is_json_friendly_and_consistent():
    y, s, patients = _patients()
    prob = 1 / (1 + np.exp(-s))
    summary = metrics.summarize_binary(y, prob, groups=patients, n_boot=200)
    json.dumps(summary)  # plain Python numbers only
    assert all(type(v) in (int, float) for v in summary.values())
    assert summary["auc"] == metrics.roc_auc(y, prob)
    assert summary["auc_low"] < summary["auc"] < summary["auc_high"]
    assert summary["threshold"] == metrics.threshold_at_sensitivity(y, prob, 0.9)
    assert summary["sensitivity"] >= 0.9
    assert summary["tp"] + summary["fn"] == summary["positives"] == 100
    fixed = metrics.summarize_binary(Y, S, threshold=0.38, n_boot=50)
    assert (fixed["tp"], fixed["fp"], fixed["accuracy"]) == (1, 1, 0.5)
    assert fixed["average_precision"] == pytest.approx(5 / 6)


# --- figures ---------------------------------------------------------------------------------------


def _legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_roc_pr_single_model():
    from matplotlib.figure import Figure

    fig = evalplots.plot_roc_pr(Y, S, label="resnet")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    roc, pr = fig.axes
    assert "resnet (AUC 0.750)" in _legend_texts(roc)
    assert "resnet (AP 0.833)" in _legend_texts(pr)


def test_plot_roc_pr_overlays_a_dict_of_models():
    y, s, _ = _patients()
    fig = evalplots.plot_roc_pr({"patient split": (Y, S), "image split": (y, s)})
    texts = _legend_texts(fig.axes[0])
    assert "patient split (AUC 0.750)" in texts
    assert any(t.startswith("image split (AUC 0.") for t in texts)
    assert len(fig.axes[0].get_lines()) == 3  # two models and chance
    with pytest.raises(ValueError, match="pair of Axes"):
        evalplots.plot_roc_pr(Y, S, ax=fig.axes[0])


def test_plot_calibration_has_reliability_and_histogram():
    fig = evalplots.plot_calibration([0, 0, 1, 1, 1], [0.05, 0.15, 0.15, 0.85, 0.95], n_bins=2)
    assert len(fig.axes) == 2
    assert "model (ECE 0.170)" in _legend_texts(fig.axes[0])


def test_plot_confusion_annotates_every_cell():
    fig = evalplots.plot_confusion(metrics.confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0]))
    assert len(fig.axes) == 1
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["1", "1", "1", "2"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["true: 0", "true: 1"]


def test_plot_history_marks_the_best_epoch():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "train_loss": [0.9, 0.6, 0.4, 0.3],
                            "val_loss": [0.8, 0.6, 0.55, 0.7], "val_auc": [0.6, 0.7, 0.82, 0.8]})
    fig = evalplots.plot_history(history)
    assert len(fig.axes) == 2
    assert "best epoch 3 (val AUC 0.820)" in _legend_texts(fig.axes[1])
    assert {"train_loss", "val_loss"} <= set(_legend_texts(fig.axes[0]))
    losses_only = evalplots.plot_history(history[["epoch", "train_loss", "val_loss"]])
    assert len(losses_only.axes) == 1 and "best epoch 3 (val loss 0.550)" in _legend_texts(losses_only.axes[0])
    with pytest.raises(ValueError, match="'epoch' column"):
        evalplots.plot_history(history.drop(columns="epoch"))


def test_plot_runs_draws_one_line_per_run_in_each_panel():
    a = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.4], "val_dice": [0.2, 0.6, 0.7]})
    b = pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.8], "val_dice": [0.1, 0.3]})
    fig = evalplots.plot_runs({"unet": a, "fcn": b})
    assert len(fig.axes) == 2
    assert _legend_texts(fig.axes[1]) == ["unet", "fcn"]
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [0.2, 0.6, 0.7])
    np.testing.assert_allclose(fig.axes[0].lines[1].get_xdata(), [1, 2])
    a["seconds"], b["seconds"] = [2.0, 1.0, 1.0], [0.5, 0.5]
    timed = evalplots.plot_runs({"unet": a, "fcn": b}, x="seconds")
    np.testing.assert_allclose(timed.axes[0].lines[0].get_xdata(), [2.0, 3.0, 4.0])  # cumulative seconds
    assert timed.axes[0].get_xlabel() == "training time (s)"
    with pytest.raises(ValueError, match="val_dice"):
        evalplots.plot_runs({"bad": a.drop(columns="val_dice")})
    with pytest.raises(ValueError, match="'epoch' or 'seconds'"):
        evalplots.plot_runs({"unet": a}, x="step")
    with pytest.raises(ValueError, match="at least one run"):
        evalplots.plot_runs({})
