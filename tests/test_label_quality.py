"""Label quality: kappa by hand, simulated readers' error patterns, cleanlab recovering injected errors on
generated chest X-rays (precision and recall reported), and the active-learning loop's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from helpers import label_quality as lq
from helpers import train_torch as tt
from helpers.datasets import generated as G


def test_cohen_kappa_hand_case_and_sklearn():
    a = [1, 1, 0, 0, 1, 0, 1, 0, 0, 0]
    b = [1, 0, 0, 0, 1, 0, 1, 1, 0, 0]
    # observed 8/10; chance = 0.4 * 0.4 + 0.6 * 0.6 = 0.52; kappa = (0.8 - 0.52) / 0.48
    assert lq.cohen_kappa(a, b) == pytest.approx(0.28 / 0.48)
    assert lq.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert lq.cohen_kappa(a, a) == 1.0
    with pytest.raises(ValueError, match="equally long"):
        lq.cohen_kappa([1, 0], [1])


def test_agreement_table_counts_pairs():
    table = lq.agreement_table([1, 1, 0, 0], [1, 0, 0, 0], names=("A", "B"))
    assert table.loc[1, 1] == 1 and table.loc[1, 0] == 1 and table.loc[0, 0] == 2 and table.loc["total", "total"] == 4


def test_readers_miss_small_lesions_more_than_large_ones():
    truth = np.ones(4000, int)
    area = np.where(np.arange(4000) < 2000, 150.0, 3000.0)
    calls = lq.simulate_readers(truth, area, [lq.ReaderProfile("r", 0.95, 0.9, 300.0)], seed=1)["r"].to_numpy()
    small, large = calls[:2000].mean(), calls[2000:].mean()
    assert small == pytest.approx(0.95 / (1 + 4), abs=0.03) and large == pytest.approx(0.95 / (1 + 0.01), abs=0.02)
    normals = lq.simulate_readers(np.zeros(4000, int), np.full(4000, np.nan),
                                  [lq.ReaderProfile("r", 0.95, 0.9, 300.0)], seed=1)["r"]
    assert normals.mean() == pytest.approx(0.1, abs=0.02)


def test_inject_label_errors_flips_exactly_the_returned_indices():
    labels = np.array([0, 1] * 50)
    noisy, flipped = lq.inject_label_errors(labels, 0.1, seed=3)
    assert len(flipped) == 10 and np.array_equal(np.flatnonzero(noisy != labels), flipped)


def test_recovery_precision_and_recall():
    r = lq.recovery([1, 2, 3, 4], [3, 4, 5])
    assert (r.flagged, r.errors, r.found) == (4, 3, 2)
    assert r.precision == 0.5 and r.recall == pytest.approx(2 / 3)


def test_cleanlab_recovers_at_least_half_of_injected_errors_on_generated_chest_xrays(tmp_path, capsys):
    table = G.make_chest_xray(tmp_path, n_patients=150, images_per_patient=1, size=64, difficulty=0.0, seed=0)
    pixels = tt.load_images(table.path, size=32).reshape(len(table), -1)
    truth = table.pneumonia.to_numpy()
    noisy, flipped = lq.inject_label_errors(truth, 0.1, seed=0)
    probs = lq.out_of_fold_probabilities(noisy, table.patient_id.to_numpy(), lq.logistic_fit_predict(pixels))
    assert probs.shape == (150, 2) and np.allclose(probs.sum(axis=1), 1)
    result = lq.recovery(lq.find_label_issues(noisy, probs), flipped)
    with capsys.disabled():
        print(f"\ninjected 10% label errors, logistic OOF + cleanlab: {result}")
    assert result.recall >= 0.5, str(result)
    assert result.precision > 0.1, str(result)  # better than flagging at random (10% are errors)


def test_choose_next_uncertainty_and_random():
    probs = np.array([0.1, 0.52, 0.9, 0.45, 0.7])
    candidates = np.array([10, 11, 12, 13, 14])
    assert list(lq.choose_next(probs, candidates, 2)) == [11, 13]
    drawn = lq.choose_next(probs, candidates, 3, "random", seed=0)
    assert len(set(drawn)) == 3 and set(drawn) <= set(candidates)
    with pytest.raises(ValueError, match="strategy"):
        lq.choose_next(probs, candidates, 1, "entropy")


def test_learning_curve_adds_step_labels_per_round_and_scores_the_evaluation_set():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 100)
    features = labels[:, None] * 1.5 + rng.standard_normal((200, 3))
    pool, evaluate = np.arange(0, 150), np.arange(150, 200)
    curve = lq.learning_curve(labels, pool, evaluate, lq.logistic_fit_predict(features), start=10, step=20, rounds=4)
    assert list(curve.labelled) == [10, 30, 50, 70] and (curve.strategy == "uncertainty").all()
    assert curve.auc.iloc[-1] > 0.8
    figure = lq.plot_learning_curves(curve)
    assert figure.axes[0].get_xlabel() == "labelled images"


def test_cnn_fit_predict_trains_on_the_given_rows_and_predicts_the_others(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 20)
    images = (0.3 + 0.05 * rng.standard_normal((40, 1, 32, 32))).astype(np.float32)
    images[labels == 1, :, 8:16, 8:16] += 0.5
    fit_predict = lq.cnn_fit_predict(np.clip(images, 0, 1), tmp_path, epochs=4)
    probs = fit_predict(np.arange(30), labels[:30], np.arange(30, 40))
    assert probs.shape == (10,) and ((0 <= probs) & (probs <= 1)).all()
    assert probs[labels[30:] == 1].mean() > probs[labels[30:] == 0].mean()
    assert (tmp_path / "call0" / "best.pt").is_file()
