"""helpers.workshop: HU colour coding, the frozen extractors, the Teachable-Machine-like head, per-class read-outs,
the experiments on generated head CT, and classifying an uploaded file."""

from __future__ import annotations

import http.server
import io
import threading
import urllib.error

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import workshop as W
from helpers.datasets import generated as G
from helpers.dicom import window
from helpers.errors import DownloadUnavailable, UnsupportedImageError, WeightsUnavailable


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- HU colour coding ------------------------------------------------------------------------------------


def test_colour_code_paints_the_hu_range_over_the_brain_window():
    hu = np.array([[40.0, 60.0, 50.0, 90.0], [100.0, -1000.0, 0.0, 49.9]], np.float32)
    rgb = W.colour_code(hu, hu_range=(50, 90), win=(40, 80), block=1)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    red = (255, 0, 0)
    assert [tuple(rgb[0, j]) for j in (1, 2, 3)] == [red] * 3  # 50 and 90 themselves are painted
    assert tuple(rgb[0, 0]) == (128, 128, 128)  # 40 HU is mid-window: 0.5 * 255 -> 128
    assert tuple(rgb[1, 0]) == (255, 255, 255) and tuple(rgb[1, 1]) == (0, 0, 0) and tuple(rgb[1, 2]) == (0, 0, 0)
    assert tuple(rgb[1, 3]) == (159, 159, 159)  # 49.9 HU: grey, (49.9 - 0) / 80 * 255 = 159.06
    # a range outside the window is painted too: it is read from the HU, not from the picture
    assert tuple(W.colour_code(hu, hu_range=(95, 200), colour=(0, 0, 255), block=1)[1, 0]) == (0, 0, 255)
    with pytest.raises(ValueError, match="low < high"):
        W.colour_code(hu, hu_range=(90, 50))
    with pytest.raises(ValueError, match="2-D"):
        W.colour_code(hu[None])
    with pytest.raises(ValueError, match="block"):
        W.colour_code(hu, block=0)


def test_colour_code_block_drops_single_pixels_and_thin_rings_but_keeps_blobs():
    hu = np.full((12, 12), 30.0, np.float32)
    hu[1, 1] = 60.0  # one noisy pixel
    hu[0:12, 10] = 70.0  # a one-pixel-wide line (partial volume along the skull)
    hu[5:8, 4:7] = 65.0  # a 3 x 3 bleed
    painted = W.paint_mask(hu, (50, 90), block=2)
    expected = np.zeros_like(painted)
    expected[5:8, 4:7] = True
    np.testing.assert_array_equal(painted, expected)
    assert W.paint_mask(hu, (50, 90), block=1).sum() == 1 + 12 + 9
    assert not W.paint_mask(hu, (50, 90), block=4).any()
    red = (W.colour_code(hu) == (255, 0, 0)).all(axis=2)
    np.testing.assert_array_equal(red, expected)  # block=2 is the default


def test_window_to_hu_inverts_the_brain_window_inside_it_only():
    hu = np.array([[-20.0, 10.0, 40.0, 70.0, 120.0]], np.float32)
    picture = np.round(window(hu, 40, 80) * 255).astype(np.uint8)
    back, exact = W.window_to_hu(picture)
    np.testing.assert_allclose(back[0, 1:4], hu[0, 1:4], atol=80 / 255 / 2 + 1e-4)
    assert exact.tolist() == [[False, True, True, True, False]]
    rgb = np.repeat(picture[..., None], 3, axis=2)
    np.testing.assert_array_equal(W.window_to_hu(rgb)[0], back)
    with pytest.raises(ValueError, match="picture"):
        W.window_to_hu(np.zeros((2, 2, 2, 2)))


def test_hu_in_range_fraction_and_histogram():
    hu = np.array([[0.0, 55.0], [70.0, 300.0]])
    assert W.hu_in_range_fraction(hu, (50, 90)) == 0.5
    assert W.hu_in_range_fraction(hu, (50, 90), region=np.array([[False, True], [False, False]])) == 1.0
    fig = W.plot_hu_histogram(hu, (50, 90))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Hounsfield units" and "50 to 90 HU" in ax.get_legend().get_texts()[0].get_text()
    assert sum(p.get_height() for p in ax.patches if p.get_width() < 10) == 3  # 300 HU lies outside the limits


# --- Extractors and features -----------------------------------------------------------------------------


def test_random_extractor_is_frozen_seeded_and_sees_colour():
    a, b, c = W.make_extractor("random", seed=0), W.make_extractor("random", seed=0), W.make_extractor("random", seed=1)
    assert not any(p.requires_grad for p in a.parameters())
    grey = np.full((48, 48), 100, np.uint8)
    painted = np.repeat(grey[..., None], 3, axis=2)
    painted[20:26, 20:26] = (255, 0, 0)
    fa = W.extract_features(a, [grey, painted], size=48)
    assert fa.shape == (2, a.n_features) == (2, 384) and fa.dtype == np.float32
    np.testing.assert_array_equal(fa, W.extract_features(b, [grey, painted], size=48))
    assert not np.allclose(fa, W.extract_features(c, [grey, painted], size=48))
    assert np.abs(fa[0] - fa[1]).max() > 0.1  # a small red patch changes the features
    with pytest.raises(ValueError, match="backbone"):
        W.make_extractor("vgg")
    with pytest.raises(ValueError, match="No images"):
        W.extract_features(a, [], size=48)


def test_to_rgb_batch_takes_grey_rgb_uint8_and_float():
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 17
    batch = W.to_rgb_batch([grey, np.stack([grey / 255.0] * 3, axis=2)], size=4)
    assert batch.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(batch[0, 0].numpy(), grey / 255.0, atol=1e-6)
    np.testing.assert_allclose(batch[0], batch[1], atol=1e-6)
    assert W.to_rgb_batch([grey], size=8).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="image"):
        W.to_rgb_batch([np.zeros((4, 4, 2))], size=4)


def test_mobilenet_backbone_offline_says_where_to_put_the_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    extractor = W.make_extractor("mobilenet_v3_small", pretrained=False)
    assert W.extract_features(extractor, [np.zeros((64, 64), np.uint8)], size=64).shape == (1, 576)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as info:
        W.make_extractor("mobilenet_v3_small")
    message = str(info.value)
    assert "offline" in message and "pretrained=False" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth") in message
    assert isinstance(info.value, DownloadUnavailable)


class _Bytes(http.server.BaseHTTPRequestHandler):
    body = b"<html>proxy login page</html>"

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_mobilenet_weights_that_fail_the_hash_check_are_refused_and_not_kept(monkeypatch, tmp_path):
    """The real download code (torch.hub) against a loopback server that answers with the wrong bytes."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bytes)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    real = torch.hub.download_url_to_file
    local = f"http://127.0.0.1:{httpd.server_address[1]}/weights.pth"
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda url, dst, hash_prefix=None, progress=True: real(local, dst, hash_prefix, progress=False))
    try:
        with pytest.raises(WeightsUnavailable, match="SHA-256 prefix") as info:
            W.make_extractor("mobilenet_v3_small")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "pretrained=False" in str(info.value)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())


# --- The head ------------------------------------------------------------------------------------------


def _blobs(n: int, shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return (rng.normal(size=(n, 8)) + shift * y[:, None]).astype(np.float32) * 10 + 5, y


def test_train_head_learns_separable_features_and_records_every_epoch():
    x, y = _blobs(200, 3.0)
    seen = []
    result = W.train_head(x[:160], y[:160], x[160:], y[160:], epochs=20, lr=1e-3, on_epoch=lambda h: seen.append(len(h)))
    history = result.history
    assert list(history.columns) == W.HISTORY_COLUMNS and history.epoch.tolist() == list(range(1, 21))
    assert seen == list(range(1, 21))
    assert history.test_acc.iloc[-1] >= 0.95 and history.train_loss.iloc[-1] < history.train_loss.iloc[0]
    assert result.test_probs.shape == (40, 2)
    np.testing.assert_allclose(result.test_probs.sum(axis=1), 1.0, atol=1e-6)
    again = W.train_head(x[:160], y[:160], x[160:], y[160:], epochs=20, lr=1e-3)
    pd.testing.assert_frame_equal(again.history, history)  # deterministic for a seed
    # the features' scale does not matter: the head standardises with the training statistics
    np.testing.assert_allclose(result.head.mean.numpy(), x[:160].mean(axis=0), rtol=1e-5)


def test_train_head_trains_on_one_thread_and_restores_the_count():
    x, y = _blobs(40, 2.0)
    seen: list[int] = []
    torch.set_num_threads(2)
    try:
        W.train_head(x, y, x, y, epochs=1, on_epoch=lambda h: seen.append(torch.get_num_threads()))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert seen == [1]


def test_train_head_rejects_bad_input():
    x, y = _blobs(20, 1.0)
    with pytest.raises(ValueError, match="Both splits"):
        W.train_head(x, y, x[:0], y[:0])
    with pytest.raises(ValueError, match="do not match"):
        W.train_head(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="epochs"):
        W.train_head(x, y, x, y, epochs=0)


def test_holdout_per_class_holds_out_each_class_and_whole_patients():
    labels = np.array([0] * 100 + [1] * 20)
    test = W.holdout_per_class(labels, 0.15, seed=0)
    assert test[:100].sum() == 15 and test[100:].sum() == 3
    assert W.holdout_per_class(np.array([0, 0, 1, 1]), 0.15).sum() == 2  # at least one per class
    groups = np.repeat(np.arange(24), 5)  # 24 patients of 5 slices, one class each
    test = W.holdout_per_class(labels, 0.15, seed=1, groups=groups)
    held = set(groups[test])
    assert not held & set(groups[~test])
    assert 15 <= test[:100].sum() <= 20 and 3 <= test[100:].sum() <= 5
    with pytest.raises(ValueError, match="at least 2"):
        W.holdout_per_class(np.array([0, 0, 0, 1]))


def test_per_class_accuracy_and_sample_counts():
    table = W.per_class_accuracy([0, 0, 0, 1, 1], [0, 1, 0, 0, 0], ("normal", "haemorrhage"))
    assert table.to_dict("list") == {"class": ["normal", "haemorrhage"], "images": [3, 2], "correct": [2, 0],
                                     "accuracy": [2 / 3, 0.0]}
    labels = np.array([0] * 50 + [1] * 10)
    picked = W.sample_counts(labels, (20, 5), seed=3)
    assert (labels[picked] == 0).sum() == 20 and (labels[picked] == 1).sum() == 5 and len(set(picked)) == 25
    with pytest.raises(ValueError, match="only 10 available"):
        W.sample_counts(labels, (20, 11))


def test_scaled_keeps_the_imbalance_lesson():
    quick = W.scaled(W.EXPERIMENTS["2"], 0.3, 0.4)
    assert quick.counts == (300, 30) and quick.epochs == 20
    assert W.scaled(W.EXPERIMENTS["3"], 0.3).counts == (300, 300)
    assert W.scaled(W.EXPERIMENTS["1"], 0.1).counts == (10, 10)
    # a small real pool: both counts shrink by one factor, so the imbalance stays
    assert W.fit_to(W.EXPERIMENTS["2"], (30, 30)).counts == (30, 2)
    assert W.fit_to(W.EXPERIMENTS["3"], (30, 25)).counts == (25, 25)
    assert W.fit_to(W.EXPERIMENTS["1"], (30, 30)) == W.EXPERIMENTS["1"]


def test_target_of_reads_real_class_names():
    assert [W.target_of(n) for n in ("Normal", "normal", "Hemorrhage", "ich", "haemorrhage", "No_ICH")] == [0, 0, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="neither a normal"):
        W.target_of("Fracture")


def test_check_lessons_reads_the_summaries():
    rows = []
    for key, acc, recall, train_acc, loss, min_loss in [("1", 0.6, 0.6, 0.8, 0.7, 0.6), ("2", 0.96, 0.1, 0.97, 0.2, 0.2),
                                                       ("3", 0.8, 0.75, 0.85, 0.5, 0.45), ("4a", 0.8, 0.75, 0.88, 0.5, 0.45),
                                                       ("4b", 0.8, 0.74, 0.95, 0.6, 0.45), ("5", 0.9, 0.9, 0.95, 0.3, 0.3),
                                                       ("5p", 0.7, 0.7, 0.95, 0.5, 0.5)]:
        rows.append({"experiment": W.EXPERIMENTS[key].name, "seed": 0, "test accuracy": acc,
                     "haemorrhage accuracy": recall, "train_acc": train_acc, "test_loss": loss, "min_test_loss": min_loss})
    verdict = W.check_lessons(pd.DataFrame(rows))
    assert verdict.shown.tolist() == [True, True, True, True]
    rows[1]["haemorrhage accuracy"] = 0.5  # an imbalanced run that still catches haemorrhages: lesson not shown
    assert W.check_lessons(pd.DataFrame(rows)).shown.tolist() == [False, False, True, True]


# --- The experiments on generated head CT (the acceptance) ------------------------------------------


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """A generated head CT pool written as DICOM (HU), read back, and its features with and without colour."""
    folder = tmp_path_factory.mktemp("head")
    table = G.make_head_ct(folder, **W.POOL_DEFAULTS, n_patients=120, seed=0)
    return W.build_pool(folder, table, W.make_extractor("random"), size=W.FEATURE_SIZE)


def test_pool_is_read_from_dicom_in_hu(pool):
    assert set(np.unique(pool.labels)) == {0, 1}
    assert pool.features[False].shape == pool.features[True].shape == (len(pool.labels), 384)
    # a haemorrhage slice has blood-range pixels inside the brain; the painted picture differs from the plain one
    bleeding = np.flatnonzero(pool.labels == 1)[0]
    assert W.hu_in_range_fraction(pool.hu[bleeding], W.BLEED_HU) > 0
    assert (W.colour_code(pool.hu[bleeding]) != W.colour_code(pool.hu[bleeding], hu_range=(9000, 9001))).any()
    assert not set(pool.groups[pool.labels == 0]) & set(pool.groups[pool.labels == 1])


def test_imbalance_hides_haemorrhages_and_balance_finds_them(pool):
    two = W.run_experiment(W.scaled(W.EXPERIMENTS["2"], 0.3), pool.features, pool.labels, seed=0, groups=pool.groups)
    three = W.run_experiment(W.scaled(W.EXPERIMENTS["3"], 0.3), pool.features, pool.labels, seed=0, groups=pool.groups)
    recall = lambda run: float(run.per_class.set_index("class").accuracy["haemorrhage"])  # noqa: E731
    assert two.accuracy >= 0.85 and recall(two) <= 0.2, two.per_class
    assert recall(three) >= recall(two) + 0.3, (two.per_class, three.per_class)
    assert two.confusion.to_numpy().sum() == two.per_class.images.sum()
    np.testing.assert_array_equal(np.diag(two.confusion.to_numpy()), two.per_class.correct)


def test_colour_coding_raises_mean_accuracy_over_three_seeds(pool):
    runs = W.run_all(pool.features, pool.labels, seeds=(0, 1, 2),
                     experiments={k: W.EXPERIMENTS[k] for k in ("5", "5p")}, groups=pool.groups)
    table = W.summaries(runs)
    assert len(table) == 6 and set(table.key) == {"5", "5p"}
    mean = table.groupby("key")["test accuracy"].mean()
    assert mean["5"] > mean["5p"], table  # the same images, split and seeds: only the colour differs
    spread = W.spread(table)
    assert spread.loc[W.EXPERIMENTS["5"].name, ("test accuracy", "mean")] == pytest.approx(mean["5"], abs=1e-3)


def test_shorter_experiments_read_from_a_longer_run_equal_their_own_runs(pool):
    three, four = W.scaled(W.EXPERIMENTS["3"], 0.1, 0.2), W.scaled(W.EXPERIMENTS["4b"], 0.1, 0.2)
    alone = W.run_experiment(three, pool.features, pool.labels, seed=4, groups=pool.groups)
    derived, longer = W.run_family([three, four], pool.features, pool.labels, seed=4, groups=pool.groups)
    assert len(derived.history) == three.epochs < len(longer.history) == four.epochs
    pd.testing.assert_frame_equal(derived.history, alone.history)
    pd.testing.assert_frame_equal(derived.per_class, alone.per_class)
    assert derived.accuracy == alone.accuracy
    with pytest.raises(ValueError, match="fewer epochs"):
        W.run_family([W.EXPERIMENTS["1"], three], pool.features, pool.labels)


# --- One uploaded image -------------------------------------------------------------------------------------


def test_image_from_bytes_reads_dicom_png_and_refuses_anything_else(tmp_path):
    table = G.make_head_ct(tmp_path / "ct", n_patients=2, slices_per_patient=4, size=64, haemorrhage_fraction=1.0,
                           seed=0)
    row = table[table.label == 1].iloc[0]
    data = (tmp_path / "ct" / row.path).read_bytes()
    plain = W.image_from_bytes(data, "slice.dcm")
    painted = W.image_from_bytes(data, "slice.dcm", colour=True)
    assert plain.shape == painted.shape == (64, 64, 3) and plain.dtype == np.uint8
    red = (painted == (255, 0, 0)).all(axis=2)
    assert red.any() and not (plain == (255, 0, 0)).all(axis=2).any()
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(plain[..., 0]).save(buffer, format="PNG")
    np.testing.assert_array_equal(W.image_from_bytes(buffer.getvalue(), "slice.png"), plain)
    # a windowed PNG is colour coded by inverting the window: the same pixels are painted (up to 1 grey level)
    from_png = (W.image_from_bytes(buffer.getvalue(), "slice.png", colour=True) == (255, 0, 0)).all(axis=2)
    assert (from_png != red).mean() < 0.01
    with pytest.raises(UnsupportedImageError, match="neither a DICOM"):
        W.image_from_bytes(b"not an image at all", "notes.txt")


def test_classify_gives_probabilities_per_class():
    extractor = W.make_extractor("random")
    x, y = _blobs(40, 2.0)
    head = W.train_head(np.tile(x, (1, 48)), y, np.tile(x, (1, 48)), y, epochs=2).head
    probs = W.classify(head, extractor, np.zeros((32, 32), np.uint8), size=32)
    assert set(probs) == {"normal", "haemorrhage"} and sum(probs.values()) == pytest.approx(1.0, abs=1e-6)


# --- Figures and the instructor panel ----------------------------------------------------------------------


def test_plot_run_and_plot_spread_show_the_read_outs(pool):
    import matplotlib.pyplot as plt

    run = W.run_experiment(W.scaled(W.EXPERIMENTS["1"], 1.0, 0.2), pool.features, pool.labels, groups=pool.groups)
    fig = W.plot_run(run)
    accuracy, loss, matrix = fig.axes[:3]
    assert len(accuracy.lines) == 2 and len(accuracy.lines[0].get_xdata()) == run.experiment.epochs
    assert sum(int(t.get_text()) for t in matrix.texts) == run.per_class.images.sum()
    plt.close(fig)
    table = W.summaries(W.run_all(pool.features, pool.labels, seeds=(0, 1),
                                  experiments={k: W.scaled(W.EXPERIMENTS[k], 1.0, 0.2) for k in ("1", "5")}))
    fig = W.plot_spread(table)
    assert len(fig.axes) == 2 and [len(line.get_xdata()) for line in fig.axes[0].lines] == [2, 2]
    plt.close(fig)


def test_instructor_panel_trains_live_and_classifies_an_upload(pool, tmp_path):
    panel = W.InstructorPanel(pool, W.make_extractor("random"), live_every=5)
    assert (panel.normal.value, panel.bleed.value) == W.EXPERIMENTS["1"].counts
    panel.choice.value = "2"  # presets follow the experiment, shrunk to the pool
    expected = W.fit_to(W.EXPERIMENTS["2"], tuple(pool.counts().values()))
    assert (panel.normal.value, panel.bleed.value) == expected.counts and expected.counts[0] > 10 * expected.counts[1]
    panel.choice.value = "5"
    assert panel.colour.value is True
    table = G.make_head_ct(tmp_path / "ct", n_patients=1, slices_per_patient=3, size=64, haemorrhage_fraction=1.0)
    data = (tmp_path / "ct" / table.path.iloc[1]).read_bytes()
    with pytest.raises(RuntimeError, match="press Train"):
        panel.classify_upload(data, "slice.dcm")
    panel.epochs.value = 10
    run = panel.train()
    assert run is panel.run and run.experiment.colour and len(run.history) == 10
    assert run.experiment.counts == (panel.normal.value, panel.bleed.value)
    assert "test accuracy" in panel.status.value and not panel.button.disabled
    probs = panel.classify_upload(memoryview(data), "slice.dcm")
    assert set(probs) == set(W.CLASSES) and sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
    panel.normal.value = 2
    panel.bleed.value = 2
    panel.epochs.value = 5
    assert len(panel.train().history) == 5  # the smallest setting still trains (one image of each class held out)


def test_uploaded_files_reads_both_ipywidgets_shapes():
    v8 = ({"name": "a.png", "type": "image/png", "size": 3, "content": memoryview(b"abc"), "last_modified": 0},)
    v7 = {"a.png": {"metadata": {"name": "a.png", "type": "image/png", "size": 3}, "content": b"abc"}}
    assert W.uploaded_files(v8) == W.uploaded_files(v7) == [("a.png", b"abc")]
    assert W.uploaded_files(()) == W.uploaded_files({}) == []


def test_instructor_panel_classifies_an_upload_through_its_widget(pool, tmp_path, capsys):
    """The upload box's handler, fed the value shape of the installed ipywidgets (7 on Colab, 8 in the lock)."""
    import ipywidgets

    panel = W.InstructorPanel(pool, W.make_extractor("random"), live_every=5)
    panel.epochs.value = 5
    panel.train()
    table = G.make_head_ct(tmp_path / "ct", n_patients=1, slices_per_patient=2, size=64, haemorrhage_fraction=1.0)
    data = (tmp_path / "ct" / table.path.iloc[0]).read_bytes()
    if int(ipywidgets.__version__.split(".")[0]) >= 8:
        value = ({"name": "slice.dcm", "type": "", "size": len(data), "content": memoryview(data), "last_modified": 0},)
    else:
        value = {"slice.dcm": {"metadata": {"name": "slice.dcm", "type": "", "size": len(data)}, "content": data}}
    capsys.readouterr()
    panel._uploaded({"new": value})  # outside a kernel the answer widget's output reaches stdout
    shown = capsys.readouterr().out
    assert "slice.dcm" in shown and all(c in shown for c in W.CLASSES), shown


def test_instructor_panel_headless_falls_back_to_a_static_figure(pool, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("MEDIMG_HEADLESS", "1")
    fig = W.instructor_panel(pool, W.make_extractor("random"))
    assert isinstance(fig, plt.Figure) and "Experiment 1" in fig._suptitle.get_text()
    plt.close(fig)


# --- Real image sets ------------------------------------------------------------------------------------------


def test_load_pictures_reads_a_flat_folder_and_a_tm_project(tmp_path):
    from PIL import Image

    from helpers.datasets.real import write_tm_project

    rng = np.random.default_rng(0)
    pictures = {name: [rng.integers(0, 256, (40, 40), dtype=np.uint8) for _ in range(3)] for name in ("Normal", "Hemorrhage")}
    folder = tmp_path / "flat"
    folder.mkdir()
    for name, images in pictures.items():
        for n, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{name}_{n}.png")
    images, labels = W.load_pictures("folder", folder)
    assert len(images) == 6 and images[0].shape == (40, 40, 3) and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    first_bleed = labels.tolist().index(1)
    np.testing.assert_array_equal(images[first_bleed][..., 0], pictures["Hemorrhage"][0])  # PNG is lossless
    project = write_tm_project(pictures, tmp_path / "exp.tm", epochs=15, batch_size=16, learning_rate=5e-5, size=None)
    images, labels = W.load_pictures("tm", project)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1] and images[0].shape == (40, 40, 3)
    with pytest.raises(ValueError, match="'folder', 'tm' or 'workshop'"):
        W.load_pictures("zip", project)


def test_the_workshop_files_make_a_pool_with_colour(shared_data):
    root = shared_data("rsna_ich_workshop")
    pictures, labels = W.load_pictures("folder", root / "exp1_30normal_30hemorrhage_224jpg")
    assert np.bincount(labels).tolist() == [30, 30]
    tm_pictures, tm_labels = W.load_pictures("tm", root / "original_tm_and_zip" / "exp_1.tm")
    assert np.bincount(tm_labels).tolist() == [30, 30] and tm_pictures[0].shape[2] == 3
    pool = W.picture_pool(pictures, labels, W.make_extractor("random"), size=64)
    assert pool.groups is None and pool.features[True].shape == (60, 384)
    painted = [(W.colour_code_picture(p) == (255, 0, 0)).all(axis=2).mean() for p in pictures]
    assert 0 < np.mean(painted) < 0.2  # some pixels of the brain window's upper half, never the whole picture
    run = W.run_experiment(W.EXPERIMENTS["1"], pool.features, pool.labels, seed=0)
    assert run.per_class.images.tolist() == [4, 4]  # round(0.15 * 30) held out per class, by image (no patient IDs)


# --- The lesson's own head and loop (issue 20: the method is written in the notebook) --------------------------


def _notebook_train_head():
    """The Head and train_head the workshop notebook defines in its own cell, read from the stored notebook."""
    import json
    import time
    from pathlib import Path

    import torch.nn.functional as F
    from torch import nn

    path = Path(__file__).resolve().parents[1] / "06_workshop_experiments" / "01_ich_experiments.ipynb"
    cells = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"]
    source = next(s for s in cells if s.startswith("class Head(nn.Module):"))
    namespace = {"nn": nn, "F": F, "torch": torch, "np": np, "pd": pd, "time": time, "ws": W}
    exec(source, namespace)  # noqa: S102 (the lesson's own code, from this repository)
    return namespace["train_head"]


def test_the_notebooks_head_and_loop_train_exactly_as_the_helpers_do():
    """No drift between the lesson's written-out head and loop and W.train_head (the default of run_family, which tests and benchmarks use): same data and seed, same history, same probabilities."""
    train_head = _notebook_train_head()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 12)).astype(np.float32), np.arange(60) % 2
    x[y == 1, :3] += 1.0
    args = (x[:45], y[:45], x[45:], y[45:], 2, 8, 16, 1e-3)
    mine = train_head(*args, seed=3, snapshots=(4,))
    theirs = W.train_head(*args, seed=3, snapshots=(4,))
    pd.testing.assert_frame_equal(mine.history, theirs.history)
    assert np.array_equal(mine.test_probs, theirs.test_probs) and np.array_equal(mine.probs_at[4], theirs.probs_at[4])
    run = W.run_experiment(W.Experiment("t", (20, 20), 5, False, "small data"), {False: x}, y, seed=1,
                            train=train_head)
    assert len(run.history) == 5
