"""helpers.monitoring: per-image statistics on hand-made images, the KS drift check, the thread-safe request log."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from helpers import monitoring
from helpers.monitoring import RequestLog, drift_report, drift_summary, image_stats


def _xrays(n: int, seed: int, size: int = 32, shift: float = 0.0) -> np.ndarray:
    """``n`` noisy images in [0, 1]: a per-image exposure around 0.45 plus pixel noise, brightened by ``shift``."""
    rng = np.random.default_rng(seed)
    exposure = rng.normal(0.45, 0.05, (n, 1, 1))
    return np.clip(exposure + rng.normal(0.0, 0.15, (n, size, size)) + shift, 0.0, 1.0)


# --- image_stats -------------------------------------------------------------------------------------


def test_constant_image_has_zero_spread_and_its_value_everywhere():
    stats = image_stats(np.full((1, 4, 6), 0.5))
    assert list(stats.columns) == monitoring.STAT_COLUMNS
    row = stats.iloc[0]
    assert row["mean"] == 0.5 and row["std"] == 0.0
    assert row["p05"] == row["p50"] == row["p95"] == 0.5
    assert row["near_black"] == 0.0 and row["near_white"] == 0.0
    assert (row["height"], row["width"]) == (4, 6)


def test_hand_computed_ramp():
    # 0, 0.01, ..., 0.99 (100 pixels, 10 x 10): numpy's linear percentiles are 0.0495, 0.495, 0.9405;
    # 2 pixels (0, 0.01) are below 0.02 and 1 (0.99) above 0.98.
    ramp = (np.arange(100) / 100).reshape(10, 10)
    row = image_stats(ramp[None]).iloc[0]
    assert row["mean"] == pytest.approx(0.495)
    assert row["std"] == pytest.approx(np.sqrt((100**2 - 1) / 12) / 100)  # population std of 0..99, / 100
    assert (row["p05"], row["p50"], row["p95"]) == pytest.approx((0.0495, 0.495, 0.9405))
    assert row["near_black"] == pytest.approx(0.02) and row["near_white"] == pytest.approx(0.01)


def test_half_black_half_white_image():
    image = np.zeros((4, 4))
    image[:, 2:] = 1.0
    row = image_stats(image).iloc[0]  # a single 2-D image is one row
    assert (row["mean"], row["std"]) == (0.5, 0.5)
    assert (row["near_black"], row["near_white"]) == (0.5, 0.5)
    assert (row["p05"], row["p95"]) == (0.0, 1.0)


def test_layouts_agree_and_lists_may_mix_sizes():
    images = _xrays(70, seed=3, size=8)  # more than one block of 64
    flat = image_stats(images)
    assert len(flat) == 70
    pd.testing.assert_frame_equal(image_stats(images[:, None]), flat)
    pd.testing.assert_frame_equal(image_stats(list(images)), flat)
    mixed = image_stats([np.zeros((2, 3)), np.ones((5, 7)), np.full((1, 4, 4), 0.25)])
    assert mixed[["height", "width"]].values.tolist() == [[2, 3], [5, 7], [4, 4]]
    assert mixed["mean"].tolist() == [0.0, 1.0, 0.25]
    assert mixed["height"].dtype == np.int64


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.full((2, 4, 4), 255, dtype=np.uint8), "/ 255"),
        (np.full((2, 4, 4), 1.5), r"Image 0 .*outside \[0, 1\]"),
        (np.array([np.zeros((2, 2)), np.full((2, 2), np.nan)]), "Image 1"),
        (np.zeros((2, 3, 4, 4)), "grey"),
        ([np.zeros((3, 4, 4))], "greyscale 2-D"),
        ([], "No images"),
    ],
)
def test_bad_inputs_say_what_to_do(images, match):
    with pytest.raises(ValueError, match=match):
        image_stats(images)


# --- drift_report ------------------------------------------------------------------------------------


def test_brighter_incoming_images_drift():
    reference = image_stats(_xrays(200, seed=0))
    incoming = image_stats(_xrays(50, seed=1, shift=0.2))
    report = drift_report(reference, incoming)
    assert list(report.columns) == monitoring.REPORT_COLUMNS
    assert list(report.index) == monitoring.STAT_COLUMNS
    for name in ("mean", "p05", "p50", "p95"):
        assert report.loc[name, "drift"], report
        shift = report.loc[name, "incoming_median"] - report.loc[name, "reference_median"]
        assert shift == pytest.approx(0.2, abs=0.03)
    assert not report.loc["height", "drift"] and report.loc["height", "p_value"] == 1.0  # same size throughout
    assert report.attrs["alpha_corrected"] == pytest.approx(0.01 / 9)
    line = drift_summary(report)
    assert line.startswith("drift in mean, ") and "of 9 statistics (n=50): mean median 0.45 -> 0.6" in line


def test_darker_incoming_images_drift():
    reference = image_stats(_xrays(200, seed=0))
    incoming = image_stats(_xrays(50, seed=1, shift=-0.2))
    report = drift_report(reference, incoming)
    assert report.loc["mean", "drift"] and report.loc["near_black", "drift"]
    assert report.loc["near_black", "incoming_median"] > report.loc["near_black", "reference_median"]


def test_same_distribution_does_not_drift():
    reference = image_stats(_xrays(200, seed=0))
    incoming = image_stats(_xrays(50, seed=1))
    report = drift_report(reference, incoming)
    assert not report["drift"].any(), report
    assert drift_summary(report) == "no drift in 9 statistics (n=50)"


def test_generated_chest_xrays_same_source_vs_inverted():
    from helpers.datasets import generated

    reference = image_stats(generated.synth_chest_xray(n_patients=40, size=64, seed=0, masks=()).images)
    same = generated.synth_chest_xray(n_patients=15, size=64, seed=1, masks=()).images
    assert not drift_report(reference, image_stats(same))["drift"].any()
    inverted = drift_report(reference, image_stats(1.0 - same))  # a MONOCHROME1 export nobody converted
    assert inverted.loc["mean", "drift"]


def test_size_change_is_drift_and_columns_can_be_chosen():
    reference = image_stats(_xrays(30, seed=0, size=16))
    incoming = image_stats(_xrays(30, seed=1, size=24))
    report = drift_report(reference, incoming)
    assert report.loc["height", "drift"] and report.loc["width", "drift"]
    only = drift_report(reference, incoming, columns=["mean", "std"])
    assert list(only.index) == ["mean", "std"] and not only["drift"].any()
    assert only.attrs["alpha_corrected"] == pytest.approx(0.005)


def test_too_few_incoming_images_is_an_error_not_a_result():
    reference = image_stats(_xrays(100, seed=0))
    with pytest.raises(ValueError, match=r"Only 19 incoming images; a drift check needs at least 20"):
        drift_report(reference, image_stats(_xrays(19, seed=1)))
    with pytest.raises(ValueError, match="at least 5"):
        drift_report(reference.head(4), image_stats(_xrays(10, seed=1)), min_incoming=5)
    with pytest.raises(ValueError, match="alpha"):
        drift_report(reference, reference, alpha=1.5)
    with pytest.raises(ValueError, match="image_stats"):
        drift_report(pd.DataFrame({"x": range(30)}), pd.DataFrame({"y": range(30)}))


# --- RequestLog --------------------------------------------------------------------------------------


def test_request_log_rows_match_image_stats_and_feed_drift_report():
    log = RequestLog()
    images = _xrays(25, seed=2)
    for image in images:
        log.add(image)
    table = log.frame()
    assert list(table.columns) == [*monitoring.STAT_COLUMNS, "time"]
    pd.testing.assert_frame_equal(table[monitoring.STAT_COLUMNS], image_stats(images))
    times = pd.to_datetime(table["time"])
    assert times.is_monotonic_increasing and str(times.dt.tz) == "UTC"
    json.dumps(table.to_dict(orient="records"))  # what a scoring server answers to GET: plain JSON types
    assert not drift_report(image_stats(_xrays(100, seed=0)), table)["drift"].any()


def test_request_log_keeps_the_newest_max_rows_rows():
    log = RequestLog(max_rows=3)
    for value in (0.1, 0.2, 0.3, 0.4, 0.5):
        log.add(np.full((2, 2), value))
    assert len(log) == 3 and log.total == 5
    assert log.frame()["mean"].tolist() == pytest.approx([0.3, 0.4, 0.5])
    log.clear()
    assert len(log) == 0 and log.total == 5 and len(log.frame()) == 0
    with pytest.raises(ValueError, match="max_rows"):
        RequestLog(max_rows=0)


def test_request_log_counts_exactly_under_threads():
    log = RequestLog(max_rows=None)
    image = np.full((8, 8), 0.5)
    start = threading.Barrier(8)

    def serve():
        start.wait()
        for _ in range(50):
            log.add(image)
            log.frame()  # readers run while others write

    threads = [threading.Thread(target=serve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log) == log.total == 400 == len(log.frame())


def test_import_stays_light():
    heavy = ("torch", "tensorflow", "mlflow", "scipy.stats")
    code = ("import sys, helpers.monitoring, helpers.modelcard\n"
            f"print(','.join(m for m in {heavy!r} if m in sys.modules) or 'none')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


def test_image_row_equals_the_image_stats_row():
    image = np.random.default_rng(3).random((40, 30))
    row = monitoring.image_row(image)
    expected = monitoring.image_stats([image]).iloc[0]
    assert list(row) == monitoring.STAT_COLUMNS
    for key in monitoring.STAT_COLUMNS:
        assert row[key] == pytest.approx(float(expected[key]))
    assert isinstance(row["height"], int) and row["height"] == 40
