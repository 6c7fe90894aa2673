"""helpers.train_fastai: DataLoaders from arrays (weighted sampler), hand-computed losses, learners (offline
pretrained error), fit history, interpretation tables, Grad-CAM (hand CAM case, randomisation check), FixMatch
and SimCLR on tiny data. Images are 32 px and models tiny or resnet18, so the file runs in well under a minute."""

from __future__ import annotations

import math
import urllib.error

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers import train_fastai as tf
from helpers.errors import WeightsUnavailable
from helpers.knee import prepare_knee_set

SIZE = 32


@pytest.fixture(scope="module")
def toy():
    """48 images (32 px, uint8): class 1 has a bright square, class 0 none; 12 positives; every 4th image validates."""
    rng = np.random.default_rng(0)
    images = (rng.random((48, SIZE, SIZE)) * 60 + 40).astype(np.uint8)
    labels = np.zeros(48, dtype=int)
    labels[::4] = 1
    for i in np.flatnonzero(labels):
        y, x = rng.integers(4, SIZE - 12, size=2)
        images[i, y:y + 8, x:x + 8] = 230
    valid = np.r_[np.arange(0, 48, 4)[:3], np.arange(1, 48, 4)[:9]]  # 3 positives, 9 negatives
    return images, labels, valid


@pytest.fixture(scope="module")
def knees():
    """96 generated knee crops (32 px, uint8) and their fracture labels."""
    from helpers.datasets.generated import synth_knee_xray

    synth = synth_knee_xray(n_patients=96, images_per_patient=1, size=64, seed=0, fracture_fraction=0.5, masks=())
    return prepare_knee_set(synth.images, size=SIZE), synth.table["label"].to_numpy()


def tiny_cnn(seed: int = 0, flatten: bool = False) -> nn.Sequential:
    """Two strided convs with BatchNorm: a fast encoder (3-channel input)."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
              nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()]
    return nn.Sequential(*layers, *([nn.Flatten()] if flatten else []))


def tiny_classifier(seed: int = 0) -> nn.Sequential:
    """tiny_cnn, global average pool, 2 logits."""
    body = tiny_cnn(seed)
    return nn.Sequential(body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))


# --- inputs and DataLoaders ------------------------------------------------------------------------------


def test_to_input_copies_grey_to_three_channels_and_normalises():
    image = np.array([[[0, 255]]], dtype=np.uint8)
    x = tf.to_input(image)
    assert x.shape == (1, 3, 1, 2)
    mean, std = np.array(tf.IMAGENET_MEAN), np.array(tf.IMAGENET_STD)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), -mean / std, rtol=1e-5)
    np.testing.assert_allclose(x[0, :, 0, 1].numpy(), (1 - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(tf.to_input(image / 255.0).numpy(), x.numpy(), rtol=1e-5)


def test_dls_from_arrays_gives_the_validation_images_unaugmented_in_order(toy):
    images, labels, valid = toy
    dls = tf.dls_from_arrays(images, labels, valid, bs=8)
    assert list(dls.vocab) == [0, 1]
    assert len(dls.train_ds) == 48 - len(valid) and list(dls.valid.items) == valid.tolist()
    xb, yb = dls.valid.one_batch()
    assert xb.shape == (8, 3, SIZE, SIZE)
    np.testing.assert_allclose(xb.cpu().numpy(), tf.to_input(images[valid[:8]]).numpy(), atol=1e-5)
    assert yb.tolist() == labels[valid[:8]].tolist()
    xt, _ = dls.train.one_batch()
    assert xt.shape == (8, 3, SIZE, SIZE)


def test_class_weights_hand_case():
    np.testing.assert_allclose(tf.class_weights([0, 0, 0, 1]).numpy(), [4 / 6, 4 / 2], rtol=1e-6)
    with pytest.raises(ValueError, match="class"):
        tf.class_weights([0, 0, 0])


def test_weighted_sampler_balances_the_classes(toy):
    images, labels, valid = toy
    dls = tf.dls_from_arrays(images, labels, valid, bs=8, sampler="weighted")
    train_labels = np.array([labels[i] for i in dls.train.items])
    # 9 positives and 27 negatives: each positive is drawn with probability 1/18, each negative 1/54.
    expected = np.where(train_labels == 1, 1 / 18, 1 / 54)
    np.testing.assert_allclose(dls.train.wgts, expected, rtol=1e-6)
    np.random.seed(0)
    drawn = np.concatenate([train_labels[dls.train.get_idxs()] for _ in range(20)])
    assert abs(drawn.mean() - 0.5) < 0.06
    with pytest.raises(ValueError, match="sampler"):
        tf.dls_from_arrays(images, labels, valid, sampler="balanced")


def test_dls_from_arrays_rejects_bad_inputs(toy):
    images, labels, valid = toy
    with pytest.raises(ValueError, match="labels"):
        tf.dls_from_arrays(images, labels[:-1], valid)
    with pytest.raises(ValueError, match="valid_idx"):
        tf.dls_from_arrays(images, labels, [0, 0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tf.dls_from_arrays(images * 2.0, labels, valid)
    with pytest.raises(ValueError, match="0 or 1"):
        tf.dls_from_arrays(images, labels + 1, valid)


# --- losses ---------------------------------------------------------------------------------------------------


def test_focal_loss_hand_case():
    logits, target = torch.tensor([[0.0, 0.0]]), torch.tensor([0])
    # p_true = 0.5: CE = log 2, focal = (1 - 0.5)**2 * log 2.
    assert float(tf.focal_loss(gamma=2.0)(logits, target)) == pytest.approx(0.25 * math.log(2), rel=1e-6)
    assert float(tf.focal_loss(gamma=0.0)(logits, target)) == pytest.approx(math.log(2), rel=1e-6)
    # A confident right answer is down-weighted far more than by cross-entropy.
    sure = torch.tensor([[3.0, 0.0]])
    ce = float(nn.functional.cross_entropy(sure, target))
    assert float(tf.focal_loss(2.0)(sure, target)) < 0.01 * ce


def test_weighted_ce_hand_case():
    logits, target = torch.tensor([[0.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1])
    # Weighted mean: (1 * log 2 + 3 * log 2) / (1 + 3) = log 2; a single positive: log 2 as well.
    assert float(tf.weighted_ce([1.0, 3.0])(logits, target)) == pytest.approx(math.log(2), rel=1e-6)
    right_neg, wrong_pos = torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1])
    ce_neg, ce_pos = math.log(1 + math.exp(-2)), math.log(1 + math.exp(2))
    expected = (1 * ce_neg + 3 * ce_pos) / 4
    assert float(tf.weighted_ce([1.0, 3.0])(right_neg, wrong_pos)) == pytest.approx(expected, rel=1e-6)


# --- learners, fitting, interpretation --------------------------------------------------------------------------


def test_make_learner_losses_and_encoder_start(toy):
    images, labels, valid = toy
    dls = tf.dls_from_arrays(images, labels, valid, bs=8)
    weighted = tf.make_learner(dls, loss="weighted_ce")
    np.testing.assert_allclose(weighted.loss_func.func.weight.cpu().numpy(), [36 / 54, 36 / 18], rtol=1e-6)
    focal = tf.make_learner(dls, loss="focal", gamma=1.0)
    assert focal.loss_func.func.gamma == 1.0
    state = tf.make_encoder().state_dict()
    started = tf.make_learner(dls, encoder_state=state)
    for key, value in state.items():
        assert torch.equal(started.model[0].state_dict()[key].cpu(), value)
    with pytest.raises(ValueError, match="loss"):
        tf.make_learner(dls, loss="hinge")


def test_small_cnn_learner_model_and_encoder_share_one_layout(toy):
    images, labels, valid = toy
    dls = tf.dls_from_arrays(images, labels, valid, bs=8)
    learn = tf.make_learner(dls, arch="small_cnn", loss="focal")
    encoder = tf.make_encoder("small_cnn")
    assert set(learn.model[0].state_dict()) == set(encoder.state_dict())
    assert sum(p.numel() for p in encoder.parameters()) == 3 * 16 * 9 + 16 * 32 * 9 + 32 * 64 * 9 + 64 * 128 * 9 + 2 * 240
    started = tf.make_model("small_cnn", encoder_state=encoder.state_dict())
    assert all(torch.equal(started[0].state_dict()[k], v) for k, v in encoder.state_dict().items())
    assert started(tf.to_input(images[:2])).shape == (2, 2)
    with pytest.raises(ValueError, match="ImageNet"):
        tf.make_learner(dls, arch="small_cnn", pretrained=True)


def test_pretrained_offline_raises_weights_unavailable(toy, monkeypatch, tmp_path):
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    images, labels, valid = toy
    dls = tf.dls_from_arrays(images, labels, valid, bs=8)
    with pytest.raises(WeightsUnavailable, match="pretrained=False"):
        tf.make_learner(dls, pretrained=True)
    with pytest.raises(WeightsUnavailable, match="simclr_pretrain"):
        tf.make_model(pretrained=True)


def test_fit_returns_a_history_and_prints_nothing_when_quiet(toy, capsys):
    images, labels, valid = toy
    torch.manual_seed(0)
    dls = tf.dls_from_arrays(images, labels, valid, bs=12)
    learn = tf.make_learner(dls, arch="small_cnn")
    history = tf.fit(learn, 1, quiet=True)
    assert list(history.columns) == ["epoch", "stage", "train_loss", "valid_loss", "roc_auc_score", "accuracy",
                                     "seconds"]
    assert history["epoch"].tolist() == [1] and history["stage"].tolist() == ["train"]
    assert np.isfinite(history[["train_loss", "valid_loss"]].to_numpy()).all()
    assert 0.0 <= history["accuracy"].iloc[0] <= 1.0
    assert capsys.readouterr().out == ""
    # A pretrained learner is fine-tuned: frozen epochs first, then unfrozen ones, numbered on.
    learn.pretrained = True
    tuned = tf.fit(learn, 1, freeze_epochs=1, quiet=True)
    assert tuned["stage"].tolist() == ["frozen", "unfrozen"] and tuned["epoch"].tolist() == [1, 2]
    assert all(p.requires_grad for p in learn.model.parameters())  # unfrozen at the end

    confusion, top = tf.interpretation(learn, k=5)
    assert confusion.to_numpy().sum() == len(valid)
    assert confusion.loc[["true: 0", "true: 1"]].sum(axis=1).tolist() == [9, 3]
    assert list(top.columns) == tf.TOP_LOSS_COLUMNS and len(top) == 5
    assert set(top["index"]) <= set(valid.tolist())
    assert top["loss"].is_monotonic_decreasing
    assert top["actual"].tolist() == labels[top["index"]].tolist()
    assert ((top["probability"] >= 0.5) & (top["probability"] <= 1.0)).all()  # probability of the predicted class


# --- Grad-CAM -------------------------------------------------------------------------------------------------------


def test_gradcam_of_a_cam_model_is_the_normalised_image():
    # conv 1x1 (weight 1) -> global average pool -> linear [[-1], [1]]: the class-1 logit is mean(A) and its
    # gradient 1/(H W) everywhere, so Grad-CAM = ReLU(A) / max = image / max; class 0 (weight -1) gives zeros.
    conv = nn.Conv2d(1, 1, 1, bias=False)
    linear = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        linear.weight.copy_(torch.tensor([[-1.0], [1.0]]))
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)
    image = torch.zeros(1, 8, 8)
    image[0, 2:5, 3:7] = 2.0
    image[0, 6, 6] = 1.0
    np.testing.assert_allclose(tf.gradcam(model, image, class_idx=1), image[0].numpy() / 2.0, atol=1e-6)
    assert tf.gradcam(model, image, target_layer=conv, class_idx=0).max() == 0.0


def test_gradcam_on_a_fastai_resnet_has_the_image_shape_and_changes_with_random_weights():
    from helpers.datasets.generated import synth_knee_xray

    synth = synth_knee_xray(n_patients=1, images_per_patient=1, size=128, seed=0, masks=())
    x = tf.to_input(prepare_knee_set(synth.images, size=128))[0]
    torch.manual_seed(1)
    model = tf.make_model("resnet18")
    assert tf._last_spatial_module(model.eval(), x[None]) is model[0]  # the body: its last block, 4 x 4 at 128 px
    for p in model.parameters():  # a frozen model still gives a map (the gradient flows from the input)
        p.requires_grad_(False)
    first = tf.gradcam(model, x, class_idx=1)
    assert first.shape == (128, 128) and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() == pytest.approx(1.0)
    torch.manual_seed(3)  # the same architecture with other random weights gives another map
    second = tf.gradcam(tf.make_model("resnet18"), x, class_idx=1)
    assert second.shape == (128, 128) and 0.0 <= second.min() and second.max() <= 1.0
    assert np.abs(first - second).mean() > 0.05


def test_gradcam_agrees_with_pytorch_grad_cam():
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from helpers.datasets.generated import synth_knee_xray

    synth = synth_knee_xray(n_patients=1, images_per_patient=1, size=128, seed=0, masks=())
    x = tf.to_input(prepare_knee_set(synth.images, size=128))
    torch.manual_seed(1)
    model = tf.make_model("resnet18").eval()
    ours = tf.gradcam(model, x[0], class_idx=1)
    with GradCAM(model=model, target_layers=[model[0]]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])[0]
    # pytorch-grad-cam scales min..max to 0..1; ours divides by the maximum only (0 keeps meaning "no evidence").
    np.testing.assert_allclose((ours - ours.min()) / (ours.max() - ours.min()), theirs, atol=2e-3)


def test_gradcam_on_small_inputs_uses_the_last_block_larger_than_one_pixel(knees):
    images, _ = knees
    model = tf.make_model("resnet18").eval()
    # At 32 px the body ends at 1 x 1, so the map comes from layer3 (2 x 2): coarse, but defined.
    assert tf._last_spatial_module(model, tf.to_input(images[:1])) is model[0][6]
    assert tf.gradcam(model, tf.to_input(images[:1])[0]).shape == (SIZE, SIZE)


def test_gradcam_sanity_check_on_a_small_cnn(knees):
    images, _ = knees
    x = tf.to_input(images[:1])[0]
    model = tiny_classifier(seed=0)
    model.train()
    trained_like = tf.gradcam(model, x)
    assert model.training  # mode restored
    assert trained_like.shape == (SIZE, SIZE)
    torch.manual_seed(5)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    randomised = tf.gradcam(model, x)
    assert np.abs(trained_like - randomised).mean() > 0.05
    with pytest.raises(ValueError, match="one image"):
        tf.gradcam(model, tf.to_input(images[:2]))


# --- FixMatch -------------------------------------------------------------------------------------------------------


def test_fixmatch_loss_hand_case():
    loss, sup, unsup, mask = tf.fixmatch_loss(
        torch.tensor([[0.0, 0.0]]), torch.tensor([0]),
        torch.tensor([[10.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [5.0, 0.0]]),
        threshold=0.95, lambda_u=2.0,
    )
    assert mask.tolist() == [1.0, 0.0]
    assert float(sup) == pytest.approx(math.log(2), rel=1e-6)
    assert float(unsup) == pytest.approx(math.log(2) / 2, rel=1e-6)
    assert float(loss) == pytest.approx(math.log(2) + 2.0 * math.log(2) / 2, rel=1e-6)


def test_augmentations_keep_shape_and_range():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, SIZE, SIZE)
    for view in (tf.weak_augment(x, gen), tf.strong_augment(x, gen), tf.simclr_view(x, gen)):
        assert view.shape == x.shape and view.min() >= 0.0 and view.max() <= 1.0
    # Weak = flip and shift only; a strong view moves further from the image.
    weak, strong = tf.weak_augment(x, gen), tf.strong_augment(x, gen)
    assert (strong - x).abs().mean() > (weak - x).abs().mean() * 0.5


def test_fixmatch_trains_a_copy_and_reports_its_history(toy):
    images, labels, valid = toy
    train = np.setdiff1d(np.arange(48), valid)
    labelled = train[:12]
    model = tiny_classifier(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net, history = tf.fixmatch(model, images[labelled], labels[labelled], images[train], images[valid], labels[valid],
                               epochs=2, batch_size=6, mu=2, threshold=0.6, lr=1e-2,
                               unlabelled_labels=labels[train], seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model passed in is unchanged
    assert net is not model and not net.training
    assert history["epoch"].tolist() == [1, 2] and history["steps"].tolist() == [3, 3]  # 36 unlabelled / (2 * 6)
    assert history["mask_rate"].between(0, 1).all() and history["lambda_u"].between(0, 1).all()
    assert np.isfinite(history[["train_loss", "supervised_loss", "unlabelled_loss", "valid_loss"]].to_numpy()).all()
    assert history["valid_accuracy"].between(0, 1).all()
    # The supervised baseline: same arguments with lambda_u = 0, same number of steps, no unlabelled term.
    _, baseline = tf.fixmatch(model, images[labelled], labels[labelled], images[train], images[valid], labels[valid],
                              epochs=1, batch_size=6, mu=2, lambda_u=0.0, seed=0)
    assert baseline["steps"].tolist() == [3] and baseline["unlabelled_loss"].isna().all()
    assert baseline["train_loss"].iloc[0] == pytest.approx(baseline["supervised_loss"].iloc[0])
    # The unlabelled weight ramps up linearly over the run: steps 0, 1, 2 of 3 weigh 0, 1/3, 2/3 of lambda_u.
    _, ramped = tf.fixmatch(model, images[labelled], labels[labelled], images[train], epochs=1, batch_size=6, mu=2,
                            lambda_u=3.0, rampup=1.0, seed=0)
    assert ramped["lambda_u"].iloc[0] == pytest.approx(3.0 * (0 + 1 / 3 + 2 / 3) / 3)
    assert ramped["valid_auc"].isna().all()  # no validation set given
    probs = tf.predict_proba(net, images[valid])
    assert probs.shape == (len(valid),) and ((probs >= 0) & (probs <= 1)).all()


def test_fixmatch_learns_an_easy_task_from_few_labels(toy):
    images, labels, valid = toy
    train = np.setdiff1d(np.arange(48), valid)
    _, history = tf.fixmatch(tiny_classifier(seed=0), images[train], labels[train], None, images[valid],
                             labels[valid], epochs=8, batch_size=12, lr=2e-2, seed=0)
    assert history["supervised_loss"].iloc[-1] < history["supervised_loss"].iloc[0]
    assert history["valid_auc"].iloc[-1] >= 0.8


# --- MixMatch -------------------------------------------------------------------------------------------------------


def test_sharpen_and_mixmatch_loss_hand_cases():
    sharp = tf.sharpen(torch.tensor([[0.6, 0.4]]), 0.5)
    assert sharp[0].tolist() == pytest.approx([0.36 / 0.52, 0.16 / 0.52], rel=1e-5)
    assert tf.sharpen(torch.tensor([[0.6, 0.4]]), 0.01)[0, 0] > 0.999  # T -> 0: one-hot
    with pytest.raises(ValueError, match="temperature"):
        tf.sharpen(torch.tensor([[0.5, 0.5]]), 0.0)
    loss, sup, unsup = tf.mixmatch_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]),
                                        torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), lambda_u=4.0)
    assert float(sup) == pytest.approx(math.log(2), rel=1e-6)
    assert float(unsup) == pytest.approx(0.25, rel=1e-6)
    assert float(loss) == pytest.approx(math.log(2) + 4.0 * 0.25, rel=1e-6)


def test_mixmatch_trains_a_copy_on_fixmatchs_budget_and_reports_its_guesses(toy):
    images, labels, valid = toy
    train = np.setdiff1d(np.arange(48), valid)
    labelled = train[:12]
    model = tiny_classifier(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = dict(epochs=2, batch_size=6, mu=2, lr=1e-2, unlabelled_labels=labels[train], seed=0)
    net, history = tf.mixmatch(model, images[labelled], labels[labelled], images[train], images[valid],
                               labels[valid], lambda_u=3.0, rampup=1.0, **args)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert net is not model and not net.training
    _, fix = tf.fixmatch(model, images[labelled], labels[labelled], images[train], images[valid], labels[valid],
                         threshold=0.6, **args)
    assert history["steps"].tolist() == fix["steps"].tolist() == [3, 3]  # the same budget of steps
    assert history["lambda_u"].iloc[0] == pytest.approx(3.0 * (0 + 1 + 2) / 6 / 3)  # ramped over 6 steps
    assert np.isfinite(history[["train_loss", "supervised_loss", "unlabelled_loss", "valid_loss"]].to_numpy()).all()
    assert history["pseudo_accuracy"].between(0, 1).all() and history["valid_auc"].between(0, 1).all()
    _, again = tf.mixmatch(model, images[labelled], labels[labelled], images[train], images[valid], labels[valid],
                           lambda_u=3.0, rampup=1.0, **args)
    pd.testing.assert_frame_equal(history.drop(columns="seconds"), again.drop(columns="seconds"))  # repeatable
    with pytest.raises(ValueError, match="needs unlabelled images"):
        tf.mixmatch(model, images[labelled], labels[labelled], None)


# --- SimCLR ---------------------------------------------------------------------------------------------------------


def test_nt_xent_hand_cases():
    e1 = torch.tensor([[1.0, 0.0]])
    assert float(tf.nt_xent_loss(e1, e1)) == pytest.approx(0.0, abs=1e-6)  # one pair: the partner is the only choice
    pair = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Partner cosine 1, the two others 0, temperature 0.5: -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2).
    assert float(tf.nt_xent_loss(pair, pair, 0.5)) == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-6)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=gen)
    identical = float(tf.nt_xent_loss(z, z))
    unrelated = float(tf.nt_xent_loss(z, torch.randn(16, 8, generator=gen)))
    assert identical < unrelated


def test_simclr_one_epoch_lowers_the_loss_and_returns_encoder_weights(knees):
    images, _ = knees
    encoder = tiny_cnn(seed=0, flatten=True)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    # Gentle views (strength 0.25) and 12 steps of 8 images: enough for a tiny encoder to start telling knees apart
    # (the first-3 vs last-3 drop was 0.10-0.40 over seeds 0-4; chance is log(15) = 2.71).
    state, history = tf.simclr_pretrain(encoder, images, epochs=1, batch_size=8, lr=3e-3, strength=0.25, seed=0)
    assert list(history.columns) == ["epoch", "step", "loss", "seconds"] and len(history) == 12
    loss = history["loss"].to_numpy()
    assert loss[:3].mean() > loss[-3:].mean()
    assert set(state) == set(encoder.state_dict())
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # the encoder passed in is unchanged
    assert any(not torch.equal(before[k], state[k]) for k in state)
