"""helpers.ct_features: the generated training slices, the network, the shipped weights (checksum, frozen), and
what the extractor is for: telling slices with blood from slices without, on generated slices it never saw and on
the workshop's real images (where ../shared/data has them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import ct_features as C
from helpers import workshop as W

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_synthetic_slices_are_seeded_and_their_masks_match_their_labels():
    first = [C.synthetic_slice(np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(first[0][0], first[1][0])
    rng = np.random.default_rng(0)
    for bleed in (False, True):
        for _ in range(6):
            hu, mask, kind = C.synthetic_slice(rng, bleed=bleed)
            assert hu.shape == mask.shape == (C.SIZE, C.SIZE) and hu.dtype == np.float32
            assert (kind == "none") != bleed and mask.any() == bleed
            assert -1100 < hu.min() and hu.max() < 1700  # Hounsfield units: air to dense bone
    for kind in C.BLEED_KINDS:
        hu, mask, got = C.synthetic_slice(np.random.default_rng(1), bleed=True, kind=kind)
        assert got == kind and mask.any()
        assert np.median(hu[mask]) > np.median(hu[(hu > 0) & (hu < 100) & ~mask])  # blood is brighter than brain


def test_training_set_has_both_classes_pictures_and_blood_maps():
    data = C.training_set(40, seed=3, colour_fraction=0.5)
    assert data["images"].shape == (40, C.SIZE, C.SIZE, 3) and data["images"].dtype == np.uint8
    assert 5 < data["labels"].sum() < 35
    blood = data["masks"].reshape(40, -1).max(axis=1)
    np.testing.assert_array_equal(blood > 0, data["labels"] == 1)
    red = ((data["images"][..., 0] > 200) & (data["images"][..., 1] < 60)).any(axis=(1, 2))
    assert red.any() and not red.all()  # some pictures are HU colour coded, as experiment 5's are


def test_network_features_and_training_targets_have_their_shapes():
    net = C.CTFeatureNet().eval()
    x = torch.rand(3, 3, 128, 128)
    assert net(x).shape == (3, net.n_features) == (3, 448)
    logit, seg = net.logits(x)
    assert logit.shape == (3,) and seg.shape == (3, 16, 16)


def test_training_lowers_the_loss_and_weights_round_trip(tmp_path):
    data = C.training_set(192, seed=1)
    logs = []
    net, history = C.train(data, epochs=3, batch_size=32, lr=3e-3, log=logs.append)
    assert len(history) == len(logs) == 3 and history[-1]["loss"] < history[0]["loss"]
    digest = C.save_weights(net, tmp_path / "w.pt", {"n": 192})
    assert (tmp_path / "w.json").read_text().count(digest) == 1
    again = C.load_extractor(tmp_path / "w.pt", sha256=digest)
    x = torch.rand(2, 3, 128, 128)
    torch.testing.assert_close(again(x), net(x))


def test_shipped_weights_are_checked_frozen_and_the_default_backbone():
    assert C.WEIGHTS_PATH.is_file() and len(C.WEIGHTS_SHA256) == 64
    assert C.WEIGHTS_PATH.stat().st_size < 10 * 2**20
    extractor = W.make_extractor()
    assert isinstance(extractor, C.CTFeatureNet) and not extractor.training
    assert not any(p.requires_grad for p in extractor.parameters())
    assert "trained" in W.BACKBONES


def test_an_altered_or_missing_weights_file_says_what_to_do(tmp_path):
    bad = tmp_path / "ct_features.pt"
    bad.write_bytes(C.WEIGHTS_PATH.read_bytes()[:-10])
    with pytest.raises(C.WeightsChecksumError, match="not the shipped .*Restore it"):
        C.load_extractor(bad)
    with pytest.raises(FileNotFoundError, match="reinstall .*train_ct_features"):
        C.load_extractor(tmp_path / "absent.pt")


def test_shipped_extractor_finds_blood_on_generated_slices_it_never_saw():
    from sklearn.metrics import roc_auc_score

    data = C.training_set(200, seed=12345)  # training used seed 0
    net = C.load_extractor()
    with torch.no_grad():
        logit, _ = net.logits(torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 255)
    assert roc_auc_score(data["labels"], logit.numpy()) > 0.8


@pytest.mark.realdata
@pytest.mark.slow
def test_trained_features_tell_real_haemorrhage_apart_better_than_random(shared_data):
    """The issue's measurement in small: experiment 1 on the workshop's 30 + 30 JPEGs, 20 seeds."""
    pictures, labels = W.load_pictures("folder", shared_data("rsna_ich_workshop", "exp1_30normal_30hemorrhage_224jpg"))
    means = {}
    for backbone in ("trained", "random"):
        pool = W.picture_pool(pictures, labels, W.make_extractor(backbone))
        experiment = W.fit_to(W.EXPERIMENTS["1"], list(pool.counts().values()))
        means[backbone] = np.mean([W.run_experiment(experiment, pool.features, pool.labels, seed=s).accuracy
                                   for s in range(20)])
    assert means["trained"] >= means["random"] + 0.1, means
