"""TensorFlow / Keras 3 segmentation for the Sunnybrook left-ventricle lesson: TFRecords, a tf.data pipeline with
paired augmentation, the Azure lab's FCN and a real U-Net, Dice losses, training that keeps the best weights.

Images are ``(N, H, W)`` float32 arrays (any intensity scale; the lesson normalises them first), masks ``(N, H, W)``
bool / uint8; inside TensorFlow both become ``(H, W, 1)`` float32 and models output per-pixel probabilities
(sigmoid). Dice is computed per image and then averaged over the images (an empty mask predicted empty scores 1).
Weights are initialised from Keras's global seed: call ``keras.utils.set_random_seed(seed)`` before building a
model for a repeatable run. This module never imports torch (importing TensorFlow before torch in one process has
been seen to crash; import torch first if a process needs both).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _native_stderr_to_devnull() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ runtime writes start-up notices (oneDNN, absl) there
    before TF_CPP_MIN_LOG_LEVEL applies, and a notebook would show them as output. Python errors still raise."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _native_stderr_to_devnull():
    import keras
    import tensorflow as tf

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from keras import layers, ops  # noqa: E402

from helpers import live  # noqa: E402

#: Losses :func:`train_segmenter` knows.
LOSSES = ("bce", "bce_dice")
#: Columns of a training history; ``seconds`` is the epoch's wall time (training and validation).
HISTORY_COLUMNS = ["epoch", "loss", "dice", "val_loss", "val_dice", "seconds"]
#: File name of the best weights written by :func:`train_segmenter` when given ``out_dir``.
BEST_WEIGHTS = "best.weights.h5"


# --- TFRecords ---------------------------------------------------------------------------------------


def _bytes_feature(value: bytes) -> tf.train.Feature:
    """One bytes feature."""
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    """One int64 feature."""
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def write_tfrecord(path: str | Path, images: np.ndarray, masks: np.ndarray) -> Path:
    """Write slices (N, H, W) float32 and masks (N, H, W) bool/uint8 to a TFRecord, one Example per slice."""
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 3 or masks.shape != images.shape:
        raise ValueError(
            f"images {images.shape} and masks {masks.shape} must both be (N, H, W) and of the same shape; "
            "stack 2D slices with np.stack and drop any channel axis."
        )
    if masks.size and not np.isin(masks, (0, 1)).all():
        raise ValueError("masks must hold only 0 and 1 (or False/True); threshold label maps before writing.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, mask in zip(images, masks):
            example = tf.train.Example(features=tf.train.Features(feature={
                "image": _bytes_feature(np.ascontiguousarray(image, dtype="<f4").tobytes()),
                "mask": _bytes_feature(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()),
                "height": _int_feature(image.shape[0]),
                "width": _int_feature(image.shape[1]),
            }))
            writer.write(example.SerializeToString(deterministic=True))  # map order fixed: same slices, same bytes
    return path


_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "mask": tf.io.FixedLenFeature([], tf.string),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
}


def _parse_example(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """One serialised Example to (image (H, W, 1) float32, mask (H, W, 1) float32 in {0, 1})."""
    parsed = tf.io.parse_single_example(record, _FEATURES)
    shape = tf.stack([parsed["height"], parsed["width"], tf.constant(1, tf.int64)])
    image = tf.reshape(tf.io.decode_raw(parsed["image"], tf.float32, little_endian=True), shape)
    mask = tf.cast(tf.reshape(tf.io.decode_raw(parsed["mask"], tf.uint8), shape), tf.float32)
    return image, mask


def read_tfrecord(path: str | Path) -> tf.data.Dataset:
    """Read a file from :func:`write_tfrecord` as a Dataset of (image (H, W, 1) float32, mask (H, W, 1) float32)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write it first with helpers.train_tf.write_tfrecord.")
    return tf.data.TFRecordDataset(str(path)).map(_parse_example, num_parallel_calls=tf.data.AUTOTUNE)


# --- Augmentation and pipeline -----------------------------------------------------------------------


def _rotate(stacked: tf.Tensor, radians: tf.Tensor) -> tf.Tensor:
    """Rotate an (H, W, C) tensor about its centre by ``radians`` (bilinear, reflected borders)."""
    h = tf.cast(tf.shape(stacked)[0], tf.float32)
    w = tf.cast(tf.shape(stacked)[1], tf.float32)
    cos, sin = tf.cos(radians), tf.sin(radians)
    x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
    y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
    transform = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])[None, :]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=stacked[None], transforms=transform, output_shape=tf.shape(stacked)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )
    return out[0]


def augment_pair(
    image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, max_degrees: float = 10.0,
    brightness: float = 0.1, contrast: float = 0.2,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Randomly flip and rotate (up to ``max_degrees``) image and mask alike, then shift brightness (image units)
    and scale contrast (factor 1 ± ``contrast`` about the image mean) of the image only; the mask stays binary."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)
    u = [tf.random.stateless_uniform([], seed=seeds[k]) for k in range(5)]
    stacked = tf.concat([image, mask], axis=-1)
    stacked = tf.cond(u[0] < 0.5, lambda: tf.reverse(stacked, axis=[1]), lambda: stacked)
    stacked = tf.cond(u[1] < 0.5, lambda: tf.reverse(stacked, axis=[0]), lambda: stacked)
    if max_degrees > 0:
        stacked = _rotate(stacked, (2.0 * u[2] - 1.0) * (max_degrees * math.pi / 180.0))
    image, mask = stacked[..., :1], stacked[..., 1:]
    mask = tf.cast(mask >= 0.5, tf.float32)
    mean = tf.reduce_mean(image)
    image = (image - mean) * (1.0 + (2.0 * u[3] - 1.0) * contrast) + mean + (2.0 * u[4] - 1.0) * brightness
    return image, mask


def make_pipeline(
    dataset: tf.data.Dataset, batch_size: int = 8, augment: bool = True, shuffle: bool = True, seed: int = 0,
    *, max_degrees: float = 10.0, brightness: float = 0.1, contrast: float = 0.2, shuffle_buffer: int = 512,
) -> tf.data.Dataset:
    """Shuffle, augment (see :func:`augment_pair`), batch and prefetch (image, mask) pairs; repeatable for a seed.

    Augmentation is stateless: each element draws its parameters from a seeded random stream that changes at every
    epoch (pass, over the dataset) but is the same for two pipelines built with the same ``seed``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    ds = dataset
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if augment:
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, randoms)).map(
            lambda pair, r: augment_pair(pair[0], pair[1], r, max_degrees, brightness, contrast),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# --- Models ------------------------------------------------------------------------------------------


def _check_size(size: int, factor: int, what: str) -> None:
    """Raise a ValueError unless ``size`` is a positive multiple of ``factor``."""
    if size <= 0 or size % factor:
        raise ValueError(
            f"{what} needs an image size divisible by {factor} (it halves the image {int(math.log2(factor))} "
            f"times); got {size}. Resize or pad to {max(factor, round(size / factor) * factor)} px."
        )


def fcn_baseline(size: int, n_filters: int = 32) -> keras.Model:
    """The Azure lab's "U-Net", really an FCN: (strided conv + max-pool) twice = 16x down, one stride-16
    transposed conv back up, sigmoid; input (size, size, 1), size divisible by 16."""
    _check_size(size, 16, "fcn_baseline")
    inputs = keras.Input((size, size, 1), name="image")
    x = layers.Conv2D(n_filters, 5, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(2 * n_filters, 5, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    outputs = layers.Conv2DTranspose(1, 16, strides=16, padding="same", activation="sigmoid", name="up16")(x)
    return keras.Model(inputs, outputs, name="fcn_baseline")


def _conv_block(x: Any, filters: int, batch_norm: bool, name: str) -> Any:
    """(3x3 conv, optional batch norm, ReLU) twice."""
    for k in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{k}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{k}")(x)
        x = layers.ReLU(name=f"{name}_relu{k}")(x)
    return x


def unet(size: int, depth: int = 4, width: int = 16, batch_norm: bool = True) -> keras.Model:
    """A U-Net: ``depth`` down levels of width x 2^level filters with skip connections, sigmoid output; input
    (size, size, 1), size divisible by 2^depth."""
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}.")
    _check_size(size, 2**depth, f"A U-Net of depth {depth}")
    inputs = keras.Input((size, size, 1), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, width * 2**level, batch_norm, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _conv_block(x, width * 2**depth, batch_norm, "bottom")
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(width * 2**level, 2, strides=2, name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, width * 2**level, batch_norm, f"dec{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, outputs, name=f"unet_d{depth}_w{width}")


def small_classifier(size: int, n_outputs: int = 1, width: int = 16, dropout: float = 0.2) -> keras.Model:
    """The Keras twin of ``train_torch.small_cnn``: 4 x (3x3 conv, batch norm, ReLU, 2x2 max-pool), global average
    pool, dropout, dense; input (size, size, 1) in [0, 1], outputs ``n_outputs`` logits (use ``from_logits=True``).
    The last ReLU is named ``features`` (Grad-CAM's layer)."""
    _check_size(size, 16, "small_classifier")
    inputs = keras.Input((size, size, 1), name="image")
    x = inputs
    for k in range(4):
        x = layers.Conv2D(width * 2**k, 3, padding="same", use_bias=False, name=f"conv{k}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{k}")(x)
        x = layers.ReLU(name="features" if k == 3 else f"relu{k}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{k}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_outputs, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"small_classifier_w{width}")


#: Model names :func:`build_model` knows.
MODELS = ("fcn", "unet")


def build_model(name: str, size: int, depth: int = 4, width: int = 16, batch_norm: bool = True) -> keras.Model:
    """``"fcn"`` (:func:`fcn_baseline`, ``width`` x 2 filters as the lab's 32) or ``"unet"`` (:func:`unet`)."""
    if name == "fcn":
        return fcn_baseline(size, n_filters=2 * width)
    if name == "unet":
        return unet(size, depth=depth, width=width, batch_norm=batch_norm)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}.")


# --- Losses and metrics ------------------------------------------------------------------------------

#: Registered with Keras, so that a saved (or pickled) model that was compiled with these loads again: live mode
#: stores trained models that way (see helpers.live), and keras.saving.load_model needs no custom_objects.
_serializable = keras.saving.register_keras_serializable(package="medimg")



@_serializable
def dice_per_image(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft Dice of each image of a batch (B, H, W[, C]) -> (B,): (2|A∩B| + smooth) / (|A| + |B| + smooth)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    axes = tuple(range(1, len(y_pred.shape)))
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * intersection + smooth) / (total + smooth)


@_serializable
def dice_coefficient(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft Dice computed per image, then averaged over the batch (a scalar in [0, 1])."""
    return ops.mean(dice_per_image(y_true, y_pred, smooth))


@_serializable
def dice_loss(y_true: Any, y_pred: Any) -> Any:
    """1 - :func:`dice_coefficient` (smooth = 1)."""
    return 1.0 - dice_coefficient(y_true, y_pred)


@_serializable
def bce_dice_loss(y_true: Any, y_pred: Any) -> Any:
    """Pixel-mean binary cross-entropy (nats) plus :func:`dice_loss`."""
    y_pred = ops.convert_to_tensor(y_pred)
    bce = ops.mean(keras.losses.binary_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred))
    return bce + dice_loss(y_true, y_pred)


@_serializable
def hard_dice_per_image(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """Dice of each image (B,) after thresholding the probabilities (> ``threshold``): 2|A∩B| / (|A| + |B|), and 1
    where both masks are empty; the number :func:`helpers.segmentation.dice` gives for the same masks."""
    y_pred = ops.convert_to_tensor(y_pred)
    pred = ops.cast(y_pred > threshold, y_pred.dtype)
    truth = ops.cast(ops.cast(y_true, y_pred.dtype) > 0.5, y_pred.dtype)
    axes = tuple(range(1, len(y_pred.shape)))
    intersection = ops.sum(truth * pred, axis=axes)
    total = ops.sum(truth, axis=axes) + ops.sum(pred, axis=axes)
    return ops.where(total > 0, 2.0 * intersection / ops.maximum(total, 1.0), ops.ones_like(total))


def dice_metric(threshold: float = 0.5) -> keras.metrics.Metric:
    """A Keras metric named ``dice``: per-image Dice of the masks thresholded at ``threshold`` (what is reported
    and what :func:`predict_masks` returns; the soft Dice of the loss lags far behind while probabilities are
    unsure), averaged over every image seen (not a mean of batch means)."""
    return keras.metrics.MeanMetricWrapper(hard_dice_per_image, name="dice", threshold=threshold)


# --- Training ----------------------------------------------------------------------------------------


class _BestWeights(keras.callbacks.Callback):
    """Keep the weights of the epoch with the highest ``val_dice`` and the wall time of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.best = -math.inf
        self.best_weights: list[np.ndarray] | None = None
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        value = float((logs or {}).get("val_dice", math.nan))
        if value > self.best:  # False for NaN
            self.best, self.best_weights = value, self.model.get_weights()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def train_segmenter(
    model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, epochs: int, lr: float = 1e-3,
    loss: str = "bce", out_dir: str | Path | None = None, patience: int | None = None,
) -> tuple[keras.Model, pd.DataFrame]:
    """Train with Adam on batched (image, mask) datasets, restore the best-``val_dice`` weights (also saved to
    ``out_dir/best.weights.h5``), stop after ``patience`` epochs without improvement; return model and history."""
    losses: dict[str, Callable[[Any, Any], Any]] = {"bce": keras.losses.BinaryCrossentropy(), "bce_dice": bce_dice_loss}
    if loss not in losses:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=losses[loss], metrics=[dice_metric()])
    best = _BestWeights()
    callbacks: list[keras.callbacks.Callback] = [best]
    if patience is not None:
        callbacks.insert(0, keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", patience=patience))
    fit = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        model.save_weights(out / BEST_WEIGHTS)
    n = len(fit.history["loss"])
    history = pd.DataFrame({"epoch": np.arange(1, n + 1)})
    for column in ("loss", "dice", "val_loss", "val_dice"):
        history[column] = np.asarray(fit.history.get(column, [math.nan] * n), dtype=float)
    history["seconds"] = best.seconds[:n]
    return model, history[HISTORY_COLUMNS]


def predict_masks(model: keras.Model, images: np.ndarray, batch_size: int = 16, threshold: float = 0.5) -> np.ndarray:
    """Binary masks (N, H, W) bool: the model's probability > ``threshold`` for images (N, H, W).

    The model is called eagerly, batch by batch (inference mode), rather than through ``model.predict``: that
    traces a new graph for every model, and after a few models (a notebook comparing four) TensorFlow prints a
    "retracing" warning that is noise here."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got {images.shape}; drop the channel axis with x[..., 0].")
    if len(images) == 0:
        return np.zeros(images.shape, dtype=bool)
    probs = [keras.ops.convert_to_numpy(model(images[start : start + batch_size, ..., None], training=False))
             for start in range(0, len(images), batch_size)]
    return np.concatenate(probs)[..., 0] > threshold


# --- Training from a folder (the Azure ML job's entry point) ---------------------------------------

#: TFRecord file names :func:`train_from_folder` looks for (as the lesson writes them).
TFRECORD_FILES = {"train": "train.tfrecord", "val": "val.tfrecord"}


def folder_datasets(
    data: str | Path, image_size: int = 128, seed: int = 0
) -> tuple[tf.data.Dataset, tf.data.Dataset, dict[str, int]]:
    """(train, val) unbatched (image, mask) datasets and their slice counts from ``data``: a folder holding
    ``train.tfrecord`` and ``val.tfrecord``, or a Sunnybrook-layout folder (real, or written by make_cardiac_mr),
    split 70/15/15 by patient (the test patients are left out)."""
    from helpers.datasets.real import load_sunnybrook
    from helpers.datasets.splits import patient_split
    from helpers.segmentation import cardiac_arrays

    folder = Path(data)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give a Sunnybrook-layout folder or one holding "
                                f"{' and '.join(TFRECORD_FILES.values())}.")
    records = {split: folder / name for split, name in TFRECORD_FILES.items()}
    if all(p.is_file() for p in records.values()):
        sets = {split: read_tfrecord(p) for split, p in records.items()}
        counts = {split: int(ds.reduce(0, lambda n, _: n + 1)) for split, ds in sets.items()}
        # a TFRecord's length is unknown to tf.data; stating it lets Keras size its epochs without warnings
        sets = {split: ds.apply(tf.data.experimental.assert_cardinality(counts[split])) for split, ds in sets.items()}
        return sets["train"], sets["val"], counts
    table = patient_split(load_sunnybrook(folder), (0.7, 0.15, 0.15), seed=seed)
    images, masks, _ = cardiac_arrays(table, size=image_size)
    split = table.loc[table["inner_contour"].notna(), "split"].to_numpy()
    sets, counts = {}, {}
    for name in ("train", "val"):
        rows = split == name
        pairs = (images[rows][..., None], masks[rows][..., None].astype("float32"))
        sets[name] = tf.data.Dataset.from_tensor_slices(pairs)
        counts[name] = int(rows.sum())
    return sets["train"], sets["val"], counts


@live.reusable(outputs="out_dir")
def train_from_folder(
    data: str | Path, out_dir: str | Path, model: str = "unet", loss: str = "bce_dice", epochs: int = 20,
    image_size: int = 128, depth: int = 4, width: int = 16, batch_norm: bool = True, batch_size: int = 8,
    lr: float = 1e-3, patience: int | None = None, seed: int = 0,
) -> tuple[keras.Model, pd.DataFrame]:
    """Seed Keras, build ``model``, train it on :func:`folder_datasets` (augmented training pipeline), keep the best
    validation-Dice weights in ``out_dir`` and return (model, history); logs to MLflow when a run is active."""
    keras.utils.set_random_seed(seed)
    train_ds, val_ds, counts = folder_datasets(data, image_size=image_size, seed=seed)
    size = int(next(iter(train_ds.take(1)))[0].shape[0])
    network = build_model(model, size, depth=depth, width=width, batch_norm=batch_norm)
    network, history = train_segmenter(
        network, make_pipeline(train_ds, batch_size=batch_size, seed=seed),
        make_pipeline(val_ds, batch_size=batch_size, augment=False, shuffle=False),
        epochs=epochs, lr=lr, loss=loss, out_dir=out_dir, patience=patience,
    )
    import mlflow

    if mlflow.active_run() is not None:
        from helpers import tracking

        tracking.log_config({"model": model, "loss": loss, "epochs": epochs, "image_size": size, "depth": depth,
                             "width": width, "batch_norm": batch_norm, "batch_size": batch_size, "lr": lr,
                             "seed": seed, "train_slices": counts["train"], "val_slices": counts["val"]})
        tracking.log_history(history)
        tracking.log_metrics({"best_val_dice": float(history["val_dice"].max())})
        tracking.log_artifact(Path(out_dir) / BEST_WEIGHTS)
    return network, history


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.train_tf --data FOLDER [--model unet] [--loss bce_dice] ...``: train a segmenter.

    On Azure ML the job sets MLflow's tracking URI and run, so ``val_dice`` per epoch and the best weights land
    in the workspace; elsewhere they go to the local store of :func:`helpers.tracking.tracking_uri`. Prints one
    JSON line with the best epoch and validation Dice.
    """
    import argparse
    import json

    import mlflow

    parser = argparse.ArgumentParser(prog="python -m helpers.train_tf", description=main.__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Sunnybrook-layout folder, or one with train/val.tfrecord")
    parser.add_argument("--model", default="unet", choices=MODELS)
    parser.add_argument("--loss", default="bce_dice", choices=LOSSES)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=128, help="pixels (Sunnybrook folders are resampled)")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--no-batch-norm", action="store_true")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs", help="folder for best.weights.h5")
    parser.add_argument("--experiment", default="sunnybrook-lv")
    args = parser.parse_args(argv)
    if "MLFLOW_TRACKING_URI" not in os.environ:  # not on Azure ML: the local store
        from helpers.tracking import tracking_uri, use_experiment

        mlflow.set_tracking_uri(tracking_uri())
        use_experiment(args.experiment)  # its files under the data folder, not the working directory
    with mlflow.start_run():
        _, history = train_from_folder(
            args.data, args.out, model=args.model, loss=args.loss, epochs=args.epochs, image_size=args.image_size,
            depth=args.depth, width=args.width, batch_norm=not args.no_batch_norm, batch_size=args.batch_size,
            lr=args.lr, patience=args.patience, seed=args.seed,
        )
        run_id = mlflow.active_run().info.run_id
    best = int(history["val_dice"].idxmax())
    print(json.dumps({"run_id": run_id, "best_epoch": int(history["epoch"][best]),
                      "val_dice": round(float(history["val_dice"][best]), 4), "epochs_run": len(history),
                      "seconds": round(float(history["seconds"].sum()), 1)}))
    return 0



__all__ = [
    "BEST_WEIGHTS", "HISTORY_COLUMNS", "LOSSES", "MODELS", "TFRECORD_FILES", "augment_pair", "bce_dice_loss",
    "build_model", "dice_coefficient", "dice_loss", "dice_metric", "dice_per_image", "fcn_baseline",
    "folder_datasets", "hard_dice_per_image", "main", "make_pipeline", "predict_masks", "read_tfrecord",
    "train_from_folder", "train_segmenter", "unet", "write_tfrecord",
]


if __name__ == "__main__":
    raise SystemExit(main())
