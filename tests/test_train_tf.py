"""helpers.train_tf: TFRecords, the paired-augmentation pipeline, FCN and U-Net, Dice losses, training, prediction.

Everything runs on the CPU with tiny synthetic sets (bright discs on noise, 32 px), so the file takes well under a minute.
"""

from __future__ import annotations

import math

import torch  # noqa: F401  (project hazard: torch before TensorFlow in one process)

import numpy as np
import pytest

from helpers import segmentation as seg
from helpers import train_tf as T

import keras  # noqa: E402  (after helpers.train_tf, which quiets TensorFlow's C++ log first)
import tensorflow as tf  # noqa: E402

SIZE = 32


def discs(n: int, size: int = SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of one bright disc (radius 4-9 px, +1) on Gaussian noise (SD 0.3), and the disc masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0.0, 0.3, (n, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        r = rng.uniform(4, 9)
        cy, cx = rng.uniform(r + 1, size - r - 1, 2)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        images[i][masks[i]] += 1.0
    return images, masks


def as_dataset(images: np.ndarray, masks: np.ndarray) -> tf.data.Dataset:
    """Unbatched (image (H, W, 1), mask (H, W, 1)) float32 pairs, as read_tfrecord gives them."""
    return tf.data.Dataset.from_tensor_slices((images[..., None], masks[..., None].astype(np.float32)))


def first_batch(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The first (images, masks) batch of a dataset as numpy."""
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


# --- TFRecords -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_dtype", [bool, np.uint8])
def test_tfrecord_round_trip_is_exact(tmp_path, mask_dtype):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 8, 12)).astype(np.float32)  # not square: height and width must not swap
    images[0, 0, 0] = np.float32(1e-38)  # a subnormal-adjacent value survives the byte round trip
    masks = (rng.random((3, 8, 12)) > 0.5).astype(mask_dtype)
    path = T.write_tfrecord(tmp_path / "sub" / "slices.tfrecord", images, masks)
    assert path.is_file()
    pairs = list(T.read_tfrecord(path))
    assert len(pairs) == 3
    for (image, mask), want_image, want_mask in zip(pairs, images, masks):
        assert image.shape == (8, 12, 1) and mask.shape == (8, 12, 1)
        assert image.dtype == tf.float32 and mask.dtype == tf.float32
        np.testing.assert_array_equal(image.numpy()[..., 0], want_image)
        np.testing.assert_array_equal(mask.numpy()[..., 0], want_mask.astype(np.float32))
    x, y = first_batch(T.make_pipeline(T.read_tfrecord(path), batch_size=3))  # shapes known only at run time
    assert x.shape == (3, 8, 12, 1) and y.shape == (3, 8, 12, 1) and set(np.unique(y)) <= {0.0, 1.0}


def test_write_tfrecord_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="same shape"):
        T.write_tfrecord(tmp_path / "a.tfrecord", np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 5), bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        T.write_tfrecord(tmp_path / "b.tfrecord", np.zeros((1, 4, 4), np.float32), np.full((1, 4, 4), 2, np.uint8))
    with pytest.raises(FileNotFoundError, match="write_tfrecord"):
        T.read_tfrecord(tmp_path / "missing.tfrecord")


# --- Pipeline ------------------------------------------------------------------------------------


def test_pipeline_shapes_binary_masks_and_repeatable():
    images, masks = discs(20)
    batches = [first_batch(T.make_pipeline(as_dataset(images, masks), batch_size=8, seed=3)) for _ in range(2)]
    x, y = batches[0]
    assert x.shape == (8, SIZE, SIZE, 1) and y.shape == (8, SIZE, SIZE, 1)
    assert set(np.unique(y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(batches[1][0], x)  # same seed, same first batch
    np.testing.assert_array_equal(batches[1][1], y)
    other = first_batch(T.make_pipeline(as_dataset(images, masks), batch_size=8, seed=4))
    assert not np.array_equal(other[0], x)
    sizes = [len(b[0]) for b in T.make_pipeline(as_dataset(images, masks), batch_size=8, seed=3)]
    assert sizes == [8, 8, 4]


def test_pipeline_without_augment_or_shuffle_is_the_data():
    images, masks = discs(5)
    x, y = first_batch(T.make_pipeline(as_dataset(images, masks), batch_size=5, augment=False, shuffle=False))
    np.testing.assert_array_equal(x[..., 0], images)
    np.testing.assert_array_equal(y[..., 0], masks.astype(np.float32))


def test_augmentation_moves_image_and_mask_together_and_changes_each_epoch():
    _, masks = discs(16)
    images = masks.astype(np.float32)  # image == mask, so the thresholded image must equal the augmented mask
    ds = T.make_pipeline(as_dataset(images, masks), batch_size=16, shuffle=False, seed=1, brightness=0.0, contrast=0.0)
    epochs = [first_batch(ds) for _ in range(2)]
    for x, y in epochs:
        np.testing.assert_array_equal(y, (x >= 0.5).astype(np.float32))
        assert set(np.unique(y)) <= {0.0, 1.0}
    assert not np.array_equal(epochs[0][1], epochs[1][1])  # a new draw of flips and angles every pass
    assert not np.array_equal(epochs[0][1][..., 0], masks)  # something moved


def test_intensity_changes_touch_the_image_only():
    _, masks = discs(8)
    images = masks.astype(np.float32)
    ds = T.make_pipeline(as_dataset(images, masks), batch_size=8, shuffle=False, seed=2, max_degrees=0.0,
                         brightness=0.3, contrast=0.5)
    x, y = first_batch(ds)
    flipped = {m.tobytes() for m in (masks, masks[:, ::-1], masks[:, :, ::-1], masks[:, ::-1, ::-1])}
    for k in range(8):  # masks are only flipped (no rotation), still exactly a flip of the original disc
        assert any(y[k, ..., 0].astype(bool).tobytes() == f[k * SIZE * SIZE:(k + 1) * SIZE * SIZE] for f in flipped)
    assert not np.array_equal(x, y)  # brightness / contrast moved the image away from the mask


# --- Models --------------------------------------------------------------------------------------


def test_model_output_shapes():
    x = np.zeros((2, SIZE, SIZE, 1), np.float32)
    fcn = T.fcn_baseline(SIZE, n_filters=4)
    assert fcn.output_shape == (None, SIZE, SIZE, 1)
    assert fcn(x).shape == (2, SIZE, SIZE, 1)
    net = T.unet(SIZE, depth=4, width=4)
    assert net.output_shape == (None, SIZE, SIZE, 1)
    out = net(x).numpy()
    assert out.shape == (2, SIZE, SIZE, 1) and ((out > 0) & (out < 1)).all()  # sigmoid probabilities
    assert T.unet(40, depth=3, width=4).output_shape == (None, 40, 40, 1)  # 40 = 5 x 2^3


def test_size_must_divide_by_two_to_the_depth():
    with pytest.raises(ValueError, match="divisible by 16"):
        T.unet(40, depth=4)
    with pytest.raises(ValueError, match="divisible by 16"):
        T.fcn_baseline(40)


# --- Losses and metrics --------------------------------------------------------------------------


def test_dice_hand_computed():
    # image 1: truth [1,1,0,0], prediction [1,0,0,0]: (2*1 + 1) / (2 + 1 + 1) = 0.75
    # image 2: both empty: (0 + 1) / (0 + 0 + 1) = 1 -> per-image mean 0.875
    y_true = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]], np.float32)[..., None]
    y_pred = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 0]]], np.float32)[..., None]
    np.testing.assert_allclose(np.asarray(T.dice_per_image(y_true, y_pred)), [0.75, 1.0])
    assert float(T.dice_coefficient(y_true, y_pred)) == pytest.approx(0.875)
    assert float(T.dice_coefficient(y_true[:1], y_pred[:1], smooth=0.0)) == pytest.approx(2 / 3)  # 2*1 / (2 + 1)
    assert float(T.dice_loss(y_true, y_pred)) == pytest.approx(0.125)
    # prediction 0.5 everywhere on image 1: BCE = ln 2; Dice = (2*1 + 1) / (2 + 2 + 1) = 0.6
    half = np.full_like(y_pred[:1], 0.5)
    assert float(T.bce_dice_loss(y_true[:1], half)) == pytest.approx(math.log(2) + 0.4, abs=1e-5)


def test_hard_dice_thresholds_and_defines_empty_masks():
    y_true = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[1, 0], [0, 0]]], np.float32)[..., None]
    y_pred = np.array([[[0.9, 0.4], [0.6, 0.1]], [[0.2, 0.0], [0.5, 0.3]], [[0.1, 0.2], [0.3, 0.4]]], np.float32)[..., None]
    # image 1: prediction {(0,0), (1,0)} vs truth {(0,0), (0,1)}: 2*1 / (2 + 2) = 0.5; image 2: both empty
    # (0.5 is not > 0.5) -> 1; image 3: nothing predicted, one pixel true -> 0
    got = np.asarray(T.hard_dice_per_image(y_true, y_pred))
    np.testing.assert_allclose(got, [0.5, 1.0, 0.0])
    expected = [seg.dice(p[..., 0] > 0.5, t[..., 0] > 0) for p, t in zip(y_pred, y_true)]
    np.testing.assert_allclose(got, expected)


def test_dice_metric_averages_images_not_batches():
    metric = T.dice_metric()
    metric.update_state(np.zeros((1, 2, 2, 1), np.float32), np.zeros((1, 2, 2, 1), np.float32))  # 1 image, Dice 1
    half = np.zeros((3, 2, 2, 1), np.float32)
    half[:, 0, :] = 0.9  # top row predicted, whole image true: 2*2 / (4 + 2) = 2/3 each
    metric.update_state(np.ones((3, 2, 2, 1), np.float32), half)
    assert float(metric.result()) == pytest.approx((1.0 + 3 * 2 / 3) / 4)  # not (1 + 2/3) / 2
    assert metric.name == "dice"


# --- Training and prediction ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_unet_learns_discs(tmp_path, seed):
    keras.utils.set_random_seed(seed)
    images, masks = discs(64, seed=seed)
    train = T.make_pipeline(as_dataset(images[:48], masks[:48]), batch_size=4, seed=seed)
    val = T.make_pipeline(as_dataset(images[48:], masks[48:]), batch_size=16, augment=False, shuffle=False)
    model = T.unet(SIZE, depth=2, width=8, batch_norm=False)
    model, history = T.train_segmenter(model, train, val, epochs=4, lr=3e-3, loss="bce_dice", out_dir=tmp_path,
                                       patience=10)
    assert list(history.columns) == T.HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3, 4] and (history["seconds"] > 0).all()
    best = history["val_dice"].max()
    assert best > 0.7, history.to_string()
    # the best epoch's weights are the ones restored, and written to out_dir
    restored = np.mean(T.hard_dice_per_image(masks[48:, ..., None], model.predict(images[48:, ..., None], verbose=0)))
    assert restored == pytest.approx(best, abs=1e-4)
    again = T.unet(SIZE, depth=2, width=8, batch_norm=False)
    again.load_weights(tmp_path / T.BEST_WEIGHTS)
    np.testing.assert_allclose(again.predict(images[48:, ..., None], verbose=0),
                               model.predict(images[48:, ..., None], verbose=0), atol=1e-6)
    pred = T.predict_masks(model, images[48:], batch_size=5)  # batches of 5, 5, 5, 1
    assert pred.shape == (16, SIZE, SIZE) and pred.dtype == bool
    np.testing.assert_array_equal(pred, model.predict(images[48:, ..., None], verbose=0)[..., 0] > 0.5)


def test_predict_masks_uses_inference_mode_batch_norm():
    """Batch norm must use its moving statistics, so one image's mask does not depend on its batch-mates."""
    model = T.unet(SIZE, depth=2, width=4, batch_norm=True)
    images = np.random.default_rng(0).random((6, SIZE, SIZE), dtype=np.float32)
    probs = model.predict(images[..., None], verbose=0)[..., 0]  # Keras's own inference path
    t = float(np.median(probs))  # a threshold that splits the pixels in half, so the masks are not trivial
    alone = np.concatenate([T.predict_masks(model, images[i : i + 1], threshold=t) for i in range(6)])
    together = T.predict_masks(model, images, batch_size=6, threshold=t)
    assert 0.3 < together.mean() < 0.7
    # equal up to pixels whose probability sits within float rounding of t (graph vs eager kernels)
    assert (together != alone).sum() <= 3 and (together != (probs > t)).sum() <= 3


def test_early_stopping_and_fcn_trains():
    keras.utils.set_random_seed(0)
    images, masks = discs(16)
    ds = T.make_pipeline(as_dataset(images, masks), batch_size=8, augment=False, shuffle=False)
    model, history = T.train_segmenter(T.fcn_baseline(SIZE, n_filters=4), ds, ds, epochs=10, lr=0.0, patience=1)
    assert len(history) == 2  # lr 0: val_dice never improves after epoch 1, patience 1 stops after epoch 2
    assert history["val_dice"].nunique() == 1


def test_train_segmenter_rejects_unknown_loss():
    ds = as_dataset(*discs(2)).batch(2)
    with pytest.raises(ValueError, match="bce_dice"):
        T.train_segmenter(T.fcn_baseline(SIZE, 4), ds, ds, epochs=1, loss="focal")


def test_predict_masks_thresholds_probabilities():
    inputs = keras.Input((4, 4, 1))
    identity = keras.Model(inputs, keras.layers.Activation("linear")(inputs))  # "probability" = pixel value
    images = np.array([[[0.1, 0.6, 0.5, 0.9]] * 4, [[0.0] * 4] * 4], np.float32)
    got = T.predict_masks(identity, images, batch_size=1)
    np.testing.assert_array_equal(got, images > 0.5)  # 0.5 itself is not above the threshold
    np.testing.assert_array_equal(T.predict_masks(identity, images, threshold=0.05), images > 0.05)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        T.predict_masks(identity, images[..., None])


# --- Training from a folder: the Azure ML job's entry point -----------------------------------------


def test_build_model_names_the_two_models():
    assert T.build_model("fcn", SIZE, width=2).name == "fcn_baseline"
    assert T.build_model("unet", SIZE, depth=2, width=4).name == "unet_d2_w4"
    with pytest.raises(ValueError, match="fcn"):
        T.build_model("segformer", SIZE)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A fresh local MLflow store under a temporary data dir; no URI override."""
    import mlflow

    from helpers import tracking

    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.ALLOW_FILE_STORE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tracking.tracking_uri("local")
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_folder_datasets_read_a_sunnybrook_layout_folder_split_by_patient(tmp_path):
    from helpers.datasets.generated import make_cardiac_mr

    table = make_cardiac_mr(tmp_path / "scd", n_patients=8, slices_per_patient=3, size=64, seed=0)
    train, val, counts = T.folder_datasets(tmp_path / "scd", image_size=SIZE, seed=0)
    # 8 patients, 70/15/15 by patient: counts are whole patients' 3 slices, none in both, test left out
    assert counts["train"] % 3 == 0 and counts["val"] % 3 == 0 and counts["train"] + counts["val"] < len(table)
    pairs = list(train)
    assert len(pairs) == counts["train"] and len(list(val)) == counts["val"]
    image, mask = pairs[0]
    assert image.shape == (SIZE, SIZE, 1) and set(np.unique(mask.numpy())) == {0.0, 1.0}
    assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0


def test_folder_datasets_prefer_the_lessons_tfrecords(tmp_path):
    images, masks = discs(5)
    T.write_tfrecord(tmp_path / "train.tfrecord", images[:3], masks[:3])
    T.write_tfrecord(tmp_path / "val.tfrecord", images[3:], masks[3:])
    train, val, counts = T.folder_datasets(tmp_path)
    assert counts == {"train": 3, "val": 2}
    assert int(train.cardinality()) == 3 and int(val.cardinality()) == 2  # known, so Keras sizes epochs quietly
    np.testing.assert_array_equal(next(iter(val))[0].numpy()[..., 0], images[3])
    with pytest.raises(FileNotFoundError, match="Sunnybrook"):
        T.folder_datasets(tmp_path / "missing")


def test_command_line_trains_from_a_folder_and_logs_the_run(tmp_path, mlflow_store, capsys):
    """What the Azure ML command job runs: a data folder in, best weights and an MLflow run out, one JSON line."""
    import json

    import mlflow

    images, masks = discs(24)
    T.write_tfrecord(tmp_path / "asset" / "train.tfrecord", images[:16], masks[:16])
    T.write_tfrecord(tmp_path / "asset" / "val.tfrecord", images[16:], masks[16:])
    assert T.main(["--data", str(tmp_path / "asset"), "--model", "unet", "--depth", "2", "--width", "4",
                   "--no-batch-norm", "--epochs", "2", "--lr", "3e-3", "--out", str(tmp_path / "out"),
                   "--experiment", "cli-test"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs_run"] == 2 and 0.0 <= summary["val_dice"] <= 1.0 and summary["best_epoch"] in (1, 2)
    run = mlflow.MlflowClient(mlflow_store).get_run(summary["run_id"])
    assert run.data.params["model"] == "unet" and run.data.params["batch_norm"] == "False"
    assert run.data.metrics["best_val_dice"] == pytest.approx(summary["val_dice"], abs=1e-4)
    assert len(mlflow.MlflowClient(mlflow_store).get_metric_history(summary["run_id"], "val_dice")) == 2
    assert (tmp_path / "out" / T.BEST_WEIGHTS).is_file()
    with pytest.raises(SystemExit):
        T.main(["--model", "unet"])  # --data is required: argparse says so and exits


def test_small_classifier_mirrors_the_torch_small_cnn():
    model = T.small_classifier(64, n_outputs=2, width=8)
    out = model(np.zeros((3, 64, 64, 1), np.float32), training=False)
    assert tuple(out.shape) == (3, 2)
    assert model.get_layer("features").output.shape[1:] == (8, 8, 64)  # 64 px halved three times before it
    with pytest.raises(ValueError, match="divisible by 16"):
        T.small_classifier(60)
