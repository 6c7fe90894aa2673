"""Explanations: maps with hand-computable answers, the randomisation sanity check, and the pointing game on a
small CNN trained to find a bright blob (its position known)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers import explain
from helpers.train_torch import Normalize, small_cnn


def _blob_images(n: int, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images; odd rows hold a bright 10 px square at a random place. (images, labels, boxes x0 y0 x1 y1)."""
    rng = np.random.default_rng(seed)
    images = (0.3 + 0.1 * rng.standard_normal((n, 1, size, size))).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.float32)
    boxes = np.full((n, 4), np.nan)
    for i in np.flatnonzero(labels):
        x, y = rng.integers(2, size - 12, size=2)
        images[i, 0, y:y + 10, x:x + 10] += 0.5
        boxes[i] = (x, y, x + 10, y + 10)
    return np.clip(images, 0, 1), labels, boxes


@pytest.fixture(scope="module")
def blob_model():
    """A small CNN trained (about 3 s) to say whether a blob is present."""
    torch.manual_seed(0)
    images, labels, _ = _blob_images(256)
    model = small_cnn(1, width=8, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)[:, None]
    for _ in range(6):
        for i in range(0, len(x), 32):
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
    return model.eval()


def _brightness_model() -> nn.Sequential:
    """logit = mean(relu(image)): its Grad-CAM map is the image itself, scaled to a maximum of 1."""
    conv = nn.Conv2d(1, 1, 1)
    linear = nn.Linear(1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0), conv.bias.zero_(), linear.weight.fill_(1.0), linear.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)


def test_gradcam_of_a_brightness_model_is_the_image():
    image = np.zeros((1, 1, 16, 16), np.float32)
    image[0, 0, 4:8, 10:14] = 0.8
    image[0, 0, 12, 2] = 0.4
    maps = explain.gradcam(_brightness_model(), image)
    np.testing.assert_allclose(maps[0], image[0, 0] / 0.8, atol=1e-5)
    against = explain.gradcam(_brightness_model(), image, negative=True)
    assert against.max() == 0.0  # no evidence against: brightness only ever raises the logit


def test_integrated_gradients_of_a_linear_model_is_weight_times_input():
    torch.manual_seed(0)
    weights = torch.randn(1, 64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(weights)
    x = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    got = explain.attribution(model, x, method="integrated_gradients", steps=16)
    expected = np.clip(x[:, 0] * weights.numpy().reshape(8, 8), 0, None)
    expected /= expected.reshape(2, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_gradient_shap_of_a_linear_model_is_weight_times_input_minus_the_reference_and_repeatable():
    """SHAP values of a linear model are weight x (input - expected reference); GradientShap estimates them from random
    references and points, so with a fixed seed it gives the same map twice and leaves the global random state."""
    torch.manual_seed(0)
    weights = torch.rand(1, 64) + 0.1  # positive: every pixel above its reference is evidence for the output
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(weights)
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    got = explain.attribution(model, x, method="gradient_shap", steps=64)
    assert torch.equal(torch.get_rng_state(), state) and np.array_equal(np.random.get_state()[1], numpy_state)
    np.testing.assert_array_equal(got, explain.attribution(model, x, method="gradient_shap", steps=64))
    reference = (np.zeros_like(x[0]) + x.mean(axis=0)) / 2  # the two references, equally likely
    expected = np.clip((x - reference)[:, 0] * weights.numpy().reshape(8, 8), 0, None)
    expected /= expected.reshape(3, -1).max(axis=1)[:, None, None]
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.9


def test_occlusion_peaks_where_the_bright_patch_is():
    image = np.zeros((1, 1, 32, 32), np.float32)
    image[0, 0, 16:24, 4:12] = 1.0
    occ = explain.attribution(_brightness_model(), image, method="occlusion", window=8)
    y, x = np.unravel_index(np.argmax(occ[0]), occ[0].shape)
    assert 16 <= y < 24 and 4 <= x < 12
    assert occ[0, :8].max() == 0.0  # occluding black background changes nothing


def test_methods_and_shapes_are_checked():
    with pytest.raises(ValueError, match="gradcam"):
        explain.gradcam(_brightness_model(), np.zeros((1, 1, 8, 8)), method="lime")
    with pytest.raises(ValueError, match="no Conv2d"):
        explain.last_conv(nn.Sequential(nn.Flatten(), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match="shape"):
        explain.gradcam(_brightness_model(), np.zeros((1, 1, 1, 8, 8)))


def test_last_conv_of_the_small_cnn_is_its_fourth_convolution():
    model = small_cnn(1, width=4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and explain.last_conv(model) is convs[-1]


def test_randomized_copy_changes_learnt_weights_only():
    model = small_cnn(1, width=4)
    model[0].mean.fill_(0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = explain.randomized_copy(model, seed=1)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])  # the original is untouched
    assert isinstance(twin[0], Normalize) and float(twin[0].mean) == 0.25
    assert not torch.equal(twin.state_dict()["body.0.weight"], before["body.0.weight"])
    same = explain.randomized_copy(model, seed=1)
    assert torch.equal(same.state_dict()["body.0.weight"], twin.state_dict()["body.0.weight"])


def test_rank_correlation_hand_cases():
    a = np.arange(16, dtype=float).reshape(1, 4, 4)
    np.testing.assert_allclose(explain.rank_correlation(a, a * 3 + 1), [1.0])
    np.testing.assert_allclose(explain.rank_correlation(a, -a), [-1.0])
    assert np.isnan(explain.rank_correlation(a, np.zeros_like(a))[0])


def test_pointing_game_hand_case():
    maps = np.zeros((3, 32, 32), np.float32)
    maps[0, 5, 5] = 1  # pixel centre (5.5, 5.5) in 32 px = (11, 11) in 64 px: inside the box
    maps[1, 30, 30] = 1  # (61, 61): outside
    boxes = np.array([[8, 8, 16, 16], [8, 8, 16, 16], [np.nan] * 4])
    result = explain.pointing_game(maps, boxes, box_size=64, tolerance=0)
    assert (result.hits, result.n, result.hit_rate) == (1, 2, 0.5)
    assert result.chance == pytest.approx(64 / 4096)
    grown = explain.pointing_game(maps, boxes, box_size=64, tolerance=4)
    assert grown.chance == pytest.approx(256 / 4096) and grown.hits == 1


def test_gradcam_points_at_the_blob_and_fails_the_check_when_weights_are_random(blob_model):
    images, labels, boxes = _blob_images(40, seed=5)
    positive = labels == 1
    maps = explain.gradcam(blob_model, images[positive])
    result = explain.pointing_game(maps, boxes[positive], tolerance=3)
    assert result.hit_rate >= 0.8 > result.chance * 3, str(result)
    check = explain.sanity_check(lambda m, x: explain.gradcam(m, x), blob_model, images[positive])
    assert check.passed, str(check)
    edges = explain.sanity_check(lambda m, x: np.abs(np.gradient(x[:, 0], axis=2)), blob_model, images[positive])
    assert not edges.passed and edges.median == pytest.approx(1.0)  # a model-blind map fails


def test_heatmap_overlay_leaves_the_image_where_the_map_is_zero():
    image = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1
    out = explain.heatmap_overlay(image, heat)
    assert out.shape == (8, 8, 3)
    np.testing.assert_allclose(out[7, 7], [image[7, 7]] * 3, atol=1e-6)
    assert not np.allclose(out[0, 0], [image[0, 0]] * 3)


def test_keras_gradcam_of_a_brightness_model_is_the_image():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((16, 16, 1))
    features = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer="zeros", name="conv")(inputs)
    features = keras.layers.ReLU()(features)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    out = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")(pooled)
    model = keras.Model(inputs, out)
    image = np.zeros((1, 16, 16, 1), np.float32)
    image[0, 2:6, 8:12, 0] = 0.5
    maps = explain.keras_gradcam(model, image)
    assert maps.shape == (1, 16, 16)
    np.testing.assert_allclose(maps[0], image[0, :, :, 0] / 0.5, atol=1e-5)


def test_explain_all_and_localisation_table(blob_model):
    images, labels, boxes = _blob_images(20, seed=7)
    pos = labels == 1
    maps, seconds = explain.explain_all(blob_model, images[pos], methods=("Grad-CAM", "Occlusion"))
    assert set(maps) == set(seconds) == {"Grad-CAM", "Occlusion"}
    assert maps["Grad-CAM"].shape == (int(pos.sum()), 48, 48)
    table = explain.localisation_table(maps, boxes[pos], tolerance=3, seconds=seconds)
    assert list(table.index) == ["Grad-CAM", "Occlusion"] and (table["n"] == pos.sum()).all()
    assert table.loc["Grad-CAM", "hit rate"] == explain.pointing_game(maps["Grad-CAM"], boxes[pos], tolerance=3).hit_rate
    fig = explain.plot_explanations(images[pos][:2], {k: v[:2] for k, v in maps.items()}, boxes[pos][:2])
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="unknown methods"):
        explain.explain_all(blob_model, images[:1], methods=("LIME",))
