"""helpers.train_torch: images into memory, augmentation, models, training, checkpoints and MLflow round trips.

Everything runs on the CPU with tiny generated sets (32 px), so the whole file takes well under a minute.
"""

from __future__ import annotations

import math
from pathlib import Path
import urllib.error

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import tracking
from helpers.azure import ENV_VARS
from helpers.datasets import generated as G
from helpers.datasets.splits import patient_split
from helpers.errors import ArtifactMissing, DownloadUnavailable, WeightsUnavailable
from helpers import train_torch as T

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def chest(tmp_path_factory) -> dict[str, np.ndarray]:
    """An easy generated chest set as DICOM (120 patients, one 64 px film each) loaded at 32 px, split by patient."""
    folder = tmp_path_factory.mktemp("chest")
    table = G.make_chest_xray(folder, n_patients=120, images_per_patient=1, size=64, difficulty=0.0, seed=0)
    table = patient_split(table, (0.6, 0.4), seed=0, stratify="label", names=("train", "val"))
    x = T.load_images(table["path"], size=SIZE)
    y = table["label"].to_numpy()
    train, val = (table["split"] == "train").to_numpy(), (table["split"] == "val").to_numpy()
    return {"x_train": x[train], "y_train": y[train], "x_val": x[val], "y_val": y[val]}


def _config(**changes) -> T.TrainConfig:
    """A small, fast configuration for 32 px images on the CPU."""
    base = dict(image_size=SIZE, epochs=2, batch_size=16, device="cpu", patience=10)
    return T.TrainConfig(**{**base, **changes})


def _small(chest: dict[str, np.ndarray], n: int = 40) -> tuple[tuple, tuple]:
    """The first ``n`` training and validation images of the chest set (both classes present in each)."""
    train = (chest["x_train"][:n], chest["y_train"][:n])
    val = (chest["x_val"][:n], chest["y_val"][:n])
    assert 0 < train[1].mean() < 1 and 0 < val[1].mean() < 1
    return train, val


# --- load_images -------------------------------------------------------------------------------------


def test_load_images_reads_generated_chest_dicom_by_bit_depth(tmp_path):
    table = G.make_chest_xray(tmp_path / "cxr", n_patients=4, images_per_patient=1, size=64, seed=3)
    x = T.load_images(table["path"], size=SIZE)
    assert x.shape == (4, 1, SIZE, SIZE) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    # The files store round(brightness * (2**BitsStored - 1)): reading them back gives the generator's brightness.
    truth = G.synth_chest_xray(n_patients=4, images_per_patient=1, size=64, seed=3).images
    expected = np.stack([T.resize_image(im, SIZE) for im in truth])
    np.testing.assert_allclose(x[:, 0], expected, atol=2e-4)


def test_load_images_handles_monochrome1_so_bone_is_bright_in_every_file(tmp_path):
    table = G.make_knee_xray(tmp_path / "knee", n_patients=8, images_per_patient=1, size=64, seed=0)
    assert set(table["photometric"]) == {"MONOCHROME1", "MONOCHROME2"}, "both kinds needed for this test"
    x = T.load_images(table["path"], size=64)[:, 0]
    truth = G.synth_knee_xray(n_patients=8, images_per_patient=1, size=64, seed=0, masks=("bone",))
    np.testing.assert_allclose(x, truth.images, atol=1e-3)  # MONOCHROME1 files come out un-inverted
    for image, bone, kind in zip(x, truth.masks["bone"], table["photometric"]):
        assert image[bone].mean() > image[~bone].mean() + 0.1, f"bone not brighter than background in {kind}"


def test_load_images_window_option_uses_the_file_window(tmp_path):
    from helpers.dicom import display_array

    table = G.make_head_ct(tmp_path / "head", n_patients=1, slices_per_patient=2, size=64, seed=0)
    x = T.load_images(table["path"], size=64, intensity="window")
    np.testing.assert_allclose(x[0, 0], display_array(table["path"][0]), atol=1e-6)  # brain window 40/80 HU
    bits = T.load_images(table["path"], size=64)  # stored / 4095: air 0, brain about (1024 + 40) / 4095
    assert bits[0, 0].min() == 0.0 and 0.2 < np.median(bits[0, 0][x[0, 0] > 0.2]) < 0.3


def test_load_images_reads_8_and_16_bit_png(tmp_path):
    from PIL import Image

    ramp8 = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # 64 x 64, 0..252
    Image.fromarray(ramp8).save(tmp_path / "a.png")
    Image.fromarray(np.full((16, 16), 65535, dtype=np.uint16)).save(tmp_path / "b.png")
    x = T.load_images([tmp_path / "a.png", tmp_path / "b.png"], size=64)
    np.testing.assert_allclose(x[0, 0], ramp8 / 255.0, atol=1e-6)
    np.testing.assert_allclose(x[1, 0], 1.0)  # 16-bit white stays white (not clipped to 8 bits)


def test_resize_image_antialiases_instead_of_aliasing():
    stripes = np.tile(np.array([0.0, 1.0], dtype=np.float32), (64, 32))  # 1-px columns, 64 x 64
    small = T.resize_image(stripes, 32)
    assert small.shape == (32, 32)
    np.testing.assert_allclose(small[:, 2:-2], 0.5, atol=1e-5)  # averaged, not every other column picked


# --- Dataset and augmentation ---------------------------------------------------------------------------


def test_array_dataset_returns_float_labels_and_applies_the_transform():
    images = np.zeros((3, 1, 8, 8), dtype=np.float32)
    ds = T.ArrayDataset(images, [0, 1, 1], transform=lambda im: im + 1)
    image, label = ds[1]
    assert len(ds) == 3 and label.dtype == torch.float32 and float(label) == 1.0
    assert torch.equal(image, torch.ones(1, 8, 8))
    multi = T.ArrayDataset(images[:, 0], np.eye(3))  # (N, H, W) gets a channel axis; (N, K) labels
    assert multi[2][0].shape == (1, 8, 8) and multi[2][1].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        T.ArrayDataset(images, [0, 1])


def test_train_transforms_keep_shape_range_and_are_reproducible():
    batch = torch.rand(6, 1, SIZE, SIZE)
    a = T.train_transforms(SIZE, generator=torch.Generator().manual_seed(1))(batch)
    b = T.train_transforms(SIZE, generator=torch.Generator().manual_seed(1))(batch)
    assert a.shape == batch.shape and 0.0 <= a.min() and a.max() <= 1.0
    assert torch.equal(a, b)
    same = T.train_transforms(SIZE)(batch[:1].repeat(4, 1, 1, 1))
    assert not torch.allclose(same[0], same[1])  # each image of a batch gets its own draw
    single = T.train_transforms(2 * SIZE)(batch[0])  # one (C, H, W) image, resized on the way
    assert single.shape == (1, 2 * SIZE, 2 * SIZE)
    assert T.train_transforms(SIZE, strength=0)(batch) is batch  # strength 0: nothing happens


def test_train_transforms_never_flip_left_and_right():
    image = torch.zeros(1, 1, SIZE, SIZE)
    image[..., : SIZE // 2] = 0.8  # bright left half, like the heart side of a film (image right in reality)
    out = T.train_transforms(SIZE, generator=torch.Generator().manual_seed(0))(image.repeat(200, 1, 1, 1))
    left, right = out[..., : SIZE // 2].mean(dim=(1, 2, 3)), out[..., SIZE // 2:].mean(dim=(1, 2, 3))
    assert bool((left > right + 0.3).all())


def test_eval_transforms_only_resize():
    batch = torch.rand(2, 1, SIZE, SIZE)
    assert T.eval_transforms(SIZE)(batch) is batch
    assert T.eval_transforms(16)(batch).shape == (2, 1, 16, 16)


# --- Models --------------------------------------------------------------------------------------------


def test_small_cnn_output_shapes_and_size():
    x = torch.rand(5, 1, SIZE, SIZE)
    assert T.small_cnn(1)(x).shape == (5, 1)
    assert T.small_cnn(4)(x).shape == (5, 4)
    assert 80_000 < T.count_parameters(T.small_cnn(1)) < 120_000
    assert T.small_cnn(1)(torch.rand(2, 1, 128, 128)).shape == (2, 1)  # any input size (global pooling)


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_torchvision_models_take_one_channel(name):
    model = T.torchvision_model(name, n_outputs=3, in_channels=1, pretrained=False).eval()
    assert model(torch.rand(2, 1, SIZE, SIZE)).shape == (2, 3)


def test_first_conv_sums_rgb_weights_so_a_grey_image_gives_the_same_response():
    rgb = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    grey = T._adapt_first_conv(rgb, 1)
    torch.testing.assert_close(grey.weight, rgb.weight.sum(dim=1, keepdim=True))
    image = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(grey(image), rgb(image.repeat(1, 3, 1, 1)))


def test_pretrained_offline_raises_weights_unavailable_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache: a download is needed

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as info:
        T.torchvision_model("resnet18", n_outputs=1, pretrained=True)
    message = str(info.value)
    assert "offline" in message and "pretrained=False" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert isinstance(info.value, DownloadUnavailable) and isinstance(info.value, ConnectionError)
    with pytest.raises(WeightsUnavailable):
        T.train(_config(model="resnet18", pretrained=True), (np.zeros((4, 1, SIZE, SIZE)), [0, 1, 0, 1]),
                (np.zeros((4, 1, SIZE, SIZE)), [0, 1, 0, 1]), tmp_path / "run")


# --- Config and metrics --------------------------------------------------------------------------------


def test_train_config_round_trips_and_rejects_nonsense():
    config = T.TrainConfig(model="resnet18", label_names=["effusion", "nodule"], pos_weight=[2.0, 3.0])
    values = config.to_dict()
    assert values["label_names"] == ["effusion", "nodule"] and values["pos_weight"] == [2.0, 3.0]
    assert T.TrainConfig.from_dict(values) == config and config.n_outputs == 2
    for bad in (dict(model="vgg"), dict(schedule="step"), dict(amp="yes"), dict(epochs=0),
                dict(label_names=("a", "a")), dict(pos_weight="auto")):
        with pytest.raises(ValueError):
            T.TrainConfig(**bad)
    with pytest.raises(ValueError, match="Unknown TrainConfig fields"):
        T.TrainConfig.from_dict({"modle": "small_cnn"})


def test_label_aucs_hand_computed_and_macro_skips_single_class_labels():
    y = np.array([[0, 1], [0, 1], [1, 1], [1, 1]])
    p = np.array([[0.1, 0.5], [0.4, 0.5], [0.35, 0.5], [0.8, 0.5]])
    aucs = T.label_aucs(y, p)
    assert aucs[0] == pytest.approx(0.75) and math.isnan(aucs[1])  # 3 of 4 positive-negative pairs ordered
    assert T.macro_auc(y, p) == pytest.approx(0.75)
    assert T.macro_auc(np.array([0, 0, 1]), np.array([0.2, 0.1, 0.9])) == 1.0
    assert math.isnan(T.macro_auc(np.ones(3), np.ones(3)))


def test_pos_weight_balanced_is_negatives_over_positives():
    y = np.array([[1, 0], [0, 0], [0, 1], [0, 1]], dtype=np.float32)
    weights = T._pos_weight(T.TrainConfig(label_names=("a", "b"), pos_weight="balanced"), y)
    assert weights.tolist() == [3.0, 1.0]
    assert T._pos_weight(T.TrainConfig(label_names=("a", "b"), pos_weight=2.0), y).tolist() == [2.0, 2.0]


# --- Training ------------------------------------------------------------------------------------------


def test_small_cnn_learns_the_easy_chest_set(chest, tmp_path):
    result = T.train(_config(epochs=10, augment=False), (chest["x_train"], chest["y_train"]),
                     (chest["x_val"], chest["y_val"]), tmp_path / "run")
    assert result.best_val_auc > 0.75, result.history
    assert list(result.history.columns) == T.HISTORY_COLUMNS
    assert result.history["val_auc"].max() == pytest.approx(result.best_val_auc)
    # The returned model holds the best epoch's weights.
    assert T.macro_auc(chest["y_val"], T.predict(result.model, chest["x_val"])) == pytest.approx(result.best_val_auc)
    assert (tmp_path / "run" / "history.csv").is_file() and result.checkpoint == tmp_path / "run" / "best.pt"


def test_same_seed_gives_the_same_history_on_cpu(chest, tmp_path):
    train, val = _small(chest)
    runs = [T.train(_config(seed=seed), train, val, tmp_path / f"run{i}") for i, seed in enumerate((5, 5, 6))]
    numbers = [r.history.drop(columns=["seconds"]) for r in runs]
    pd.testing.assert_frame_equal(numbers[0], numbers[1])
    assert not numbers[0]["train_loss"].equals(numbers[2]["train_loss"])


def test_early_stopping_stops_and_the_checkpoint_holds_the_best_epoch(chest, tmp_path):
    train, val = _small(chest)
    shuffled = np.random.default_rng(0).permutation(train[1])  # labels that carry no signal
    result = T.train(_config(epochs=12, patience=1, lr=1e-2), (train[0], shuffled), val, tmp_path / "run")
    history = result.history
    assert result.stopped_by == "patience" and len(history) < 12
    assert history["stopped_by"].iloc[-1] == "patience" and (history["stopped_by"].iloc[:-1] == "").all()
    best = int(history.loc[history["val_auc"].idxmax(), "epoch"])
    stored = torch.load(result.checkpoint, weights_only=True)
    assert stored["epoch"] == result.best_epoch == best
    assert stored["val_auc"] == pytest.approx(history["val_auc"].max())
    assert stored["label_names"] == ["pneumonia"] and stored["config"]["patience"] == 1
    assert len(history) == best + 1  # patience 1: one epoch without improvement, then stop


def test_max_minutes_stops_after_the_epoch_that_crosses_the_budget(chest, tmp_path):
    train, val = _small(chest)
    result = T.train(_config(epochs=5, max_minutes=1e-6), train, val, tmp_path / "run")
    assert result.stopped_by == "max_minutes" and len(result.history) == 1
    assert result.history["stopped_by"].tolist() == ["max_minutes"]


def test_multilabel_training_and_prediction_shapes(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((24, 1, SIZE, SIZE), dtype=np.float32)
    y = np.tile(np.array([[0, 1, 0], [1, 0, 1]]), (12, 1))
    names = ("effusion", "cardiomegaly", "nodule")
    result = T.train(_config(epochs=1, label_names=names, pos_weight="balanced"), (x, y), (x, y), tmp_path / "run")
    assert [f"val_auc_{n}" for n in names] == list(result.history.columns[len(T.HISTORY_COLUMNS):])
    probs = T.predict(result.model, x)
    assert probs.shape == (24, 3) and ((0 <= probs) & (probs <= 1)).all()
    with pytest.raises(ValueError, match="3 name"):
        T.train(_config(label_names=names), (x, y[:, 0]), (x, y), tmp_path / "bad")


def test_a_single_class_validation_set_is_refused(tmp_path):
    x = np.zeros((4, 1, SIZE, SIZE), dtype=np.float32)
    with pytest.raises(ValueError, match="single class"):
        T.train(_config(), (x, [0, 1, 0, 1]), (x, [0, 0, 0, 0]), tmp_path / "run")


def test_predict_shapes_and_training_mode_is_left_alone():
    model = T.small_cnn(1).train()
    x = np.random.default_rng(0).random((5, 1, SIZE, SIZE), dtype=np.float32)
    probs = T.predict(model, x, batch_size=2)
    assert probs.shape == (5,) and probs.dtype == np.float32 and model.training
    np.testing.assert_allclose(T.predict(model, x[:, 0]), probs, atol=1e-6)  # (N, H, W) works too
    model.eval()
    np.testing.assert_allclose(probs, torch.sigmoid(model(torch.from_numpy(x)))[:, 0].detach().numpy(), atol=1e-6)


# --- Checkpoints and MLflow ----------------------------------------------------------------------------


def test_checkpoint_round_trip_gives_identical_predictions(chest, tmp_path):
    train, val = _small(chest)
    result = T.train(_config(), train, val, tmp_path / "run")
    model, config = T.load_checkpoint(result.checkpoint)
    assert config == result.config and not model.training
    np.testing.assert_array_equal(T.predict(model, val[0]), T.predict(result.model, val[0]))
    with pytest.raises(FileNotFoundError, match="best.pt"):
        T.load_checkpoint(tmp_path / "nowhere" / "best.pt")


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A fresh local MLflow store under a temporary data dir; no workspace, no URI override."""
    import mlflow

    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    for name in (*ENV_VARS, "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(tracking.ALLOW_FILE_STORE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tracking.tracking_uri("local")
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_a_run_logged_to_mlflow_is_reopened_and_its_best_model_gives_the_same_predictions(
    chest, tmp_path, mlflow_store
):
    import mlflow

    train, val = _small(chest)
    with tracking.start_run("train-torch-test", uri=mlflow_store) as run:
        result = T.train(_config(epochs=2), train, val, tmp_path / "run")  # logs by itself: a run is active
    run_id = run.info.run_id
    assert mlflow.active_run() is None
    model, config = T.load_model_from_run(run_id, uri=mlflow_store)
    assert config == result.config
    assert np.allclose(T.predict(model, val[0]), T.predict(result.model, val[0]))

    client = mlflow.MlflowClient(mlflow_store)
    logged = client.get_run(run_id)
    assert logged.data.params["model"] == "small_cnn" and logged.data.params["epochs"] == "2"
    assert [m.step for m in client.get_metric_history(run_id, "val_auc")] == [1, 2]
    assert logged.data.metrics["best_val_auc"] == pytest.approx(result.best_val_auc)


def test_log_model_logs_a_model_trained_outside_a_run(chest, tmp_path, mlflow_store):
    train, val = _small(chest)
    result = T.train(_config(epochs=1), train, val, tmp_path / "run")  # no run active: nothing logged
    with tracking.start_run("train-torch-test", uri=mlflow_store) as run:
        uri = T.log_model(result)
    assert uri.endswith("model/best.pt")
    model, _ = T.load_model_from_run(run.info.run_id, uri=mlflow_store)
    np.testing.assert_array_equal(T.predict(model, val[0]), T.predict(result.model, val[0]))


def test_load_model_from_a_run_without_a_model_says_how_to_log_one(mlflow_store):
    with tracking.start_run("train-torch-test", uri=mlflow_store) as run:
        tracking.log_metrics({"x": 1.0})
    with pytest.raises(ArtifactMissing, match="log_model"):
        T.load_model_from_run(run.info.run_id, uri=mlflow_store)



def test_command_line_trains_from_a_manifest_folder_and_logs_the_run(tmp_path, mlflow_store, capsys):
    """What the Azure ML command / sweep job runs: a data folder with manifest.csv in, one JSON line out."""
    import json

    from helpers.datasets.splits import write_manifest

    folder = tmp_path / "asset"
    table = G.make_chest_xray(folder / "images", n_patients=30, images_per_patient=1, size=64, difficulty=0.0)
    write_manifest(table[["path", "patient_id", "pneumonia"]], folder / "manifest.csv", root=folder)
    assert T.main(["--data", str(folder), "--label", "pneumonia", "--epochs", "2", "--image-size", str(SIZE),
                   "--out", str(tmp_path / "out"), "--experiment", "cli-test"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs_run"] == 2 and 0.0 <= summary["val_auc"] <= 1.0
    model, config = T.load_model_from_run(summary["run_id"], uri=mlflow_store)
    assert config.label_names == ("pneumonia",) and config.image_size == SIZE
    assert (tmp_path / "out" / "best.pt").is_file()
    with pytest.raises(SystemExit):
        T.main(["--data", str(folder)])  # --label is required: argparse says so and exits


def test_train_from_manifest_names_a_missing_label_column(tmp_path):
    from helpers.datasets.splits import write_manifest

    table = G.make_chest_xray(tmp_path / "images", n_patients=4, images_per_patient=1, size=64)
    write_manifest(table[["path", "patient_id", "pneumonia"]], tmp_path / "manifest.csv", root=tmp_path)
    with pytest.raises(ValueError, match="effusion"):
        T.train_from_manifest(tmp_path, _config(label_names=("effusion",)), tmp_path / "out")


def test_lesson_model_trains_when_no_checkpoint_and_reloads_the_same_model_from_one(tmp_path):
    table = G.make_chest_xray(tmp_path / "cxr", n_patients=30, images_per_patient=1, size=64, difficulty=0.0, seed=1)
    table = patient_split(table, (0.6, 0.2, 0.2), seed=0, stratify="label")
    trained = T.lesson_model(table, ["pneumonia"], tmp_path / "run", size=32, epochs=2)
    assert trained.result is not None and trained.images.shape == (30, 1, 32, 32)
    assert len(trained.p_test) == len(trained.part["test"]) == (table.split == "test").sum()
    loaded = T.lesson_model(table, ["pneumonia"], tmp_path / "unused", checkpoint=trained.result.checkpoint)
    assert loaded.result is None and loaded.config == trained.config
    np.testing.assert_allclose(loaded.p_test, trained.p_test, atol=1e-6)
    with pytest.raises(ValueError, match="split"):
        T.lesson_model(table.drop(columns="split"), ["pneumonia"], tmp_path / "x")


def test_read_unit_image_keeps_the_file_size_and_matches_load_images(tmp_path):
    table = G.make_chest_xray(tmp_path / "cxr", n_patients=2, images_per_patient=1, size=64, seed=2)
    one = T.read_unit_image(table.path[0])
    assert one.shape == (64, 64)
    np.testing.assert_allclose(T.load_images(table.path[:1], size=64)[0, 0], np.clip(one, 0, 1))


# --- The lesson's own network (issue 20: the model is written in the notebook) ---------------------------------

NOTEBOOK = Path(__file__).resolve().parents[1] / "03_train_classifier" / "01_chest_xray_pytorch.ipynb"


def _notebook_small_cnn():
    """The ``small_cnn`` and ``build`` that the chest lesson defines in its own cell, read from the stored notebook."""
    import json
    from collections import OrderedDict

    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"]
    source = next(s for s in cells if s.startswith("def small_cnn("))
    definitions = source.split("\n\n\nhelpers.seed_everything")[0]  # the two functions, not the cell's demo lines
    namespace = {"nn": torch.nn, "OrderedDict": OrderedDict, "tt": T, "torch": torch}
    exec(definitions, namespace)  # noqa: S102 (the lesson's own code, from this repository)
    return namespace["small_cnn"], namespace["build"]


def test_the_notebooks_network_is_the_helpers_network_no_drift():
    """The Azure ML job (python -m helpers.train_torch) and load_checkpoint build helpers' small_cnn; the lesson trains
    the one it writes out. They must be the same network: same layers, same weights for the same seed, same output."""
    small_cnn, build = _notebook_small_cnn()
    torch.manual_seed(0)
    mine = small_cnn(2)
    torch.manual_seed(0)
    theirs = T.small_cnn(2)
    assert repr(mine) == repr(theirs)
    assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()))
    x = torch.rand(3, 1, 32, 32)
    assert torch.equal(mine.eval()(x), theirs.eval()(x))
    assert isinstance(build(_config(label_names=("a", "b"))), torch.nn.Sequential)


def test_train_with_the_lessons_build_gives_the_same_run_as_the_built_in_model(chest, tmp_path):
    train, val = _small(chest)
    _, build = _notebook_small_cnn()
    built_in = T.train(_config(), train, val, tmp_path / "a")
    lesson = T.train(_config(), train, val, tmp_path / "b", build=build)
    assert lesson.history[["train_loss", "val_auc"]].equals(built_in.history[["train_loss", "val_auc"]])
    reloaded, _ = T.load_checkpoint(lesson.checkpoint)  # its checkpoint loads as the built-in network
    x = torch.from_numpy(val[0][:4])
    assert torch.allclose(reloaded(x), lesson.model(x))


def test_train_refuses_a_build_that_is_not_the_configured_network(chest, tmp_path):
    train, val = _small(chest)
    with pytest.raises(ValueError, match="is not config.model='small_cnn'.*checkpoint would not load"):
        T.train(_config(), train, val, tmp_path / "c", build=lambda config: T.small_cnn(1, width=8))
