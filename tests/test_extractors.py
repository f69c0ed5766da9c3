"""Offline feature extractors: the FID Inception-v3 (random weights here: the real file is never
downloaded) and the digits CNN (trained once per test session into a tmp cache)."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import torch

from gan_cli.data.embedded import digits
from gan_cli.errors import GanCliError
from gan_cli.metrics.extractors import (
    FID_WEIGHTS_NAME,
    DigitsCNN,
    ExtractorError,
    FeatureExtractor,
    FIDInceptionV3,
    default_weights_dir,
    digits_split,
    load_digits_classifier,
    load_fid_inception,
)
from gan_cli.metrics.extractors import digits as digits_module

# pytorch-fid's FID Inception-v3 = torchvision's Inception3(num_classes=1008, aux_logits=False) with the
# FID blocks, which change pooling only. torchvision documents 27,161,264 parameters for inception_v3
# with its aux classifier and 1000 classes; the aux classifier holds 3,326,696 of them (conv 768->128 1x1
# + BN, conv 128->768 5x5 + BN, fc 768->1000), and going to 1008 classes adds 8 * 2048 + 8 = 16,392:
# 27,161,264 - 3,326,696 + 16,392 = 23,850,960.
FID_INCEPTION_PARAMS = 23_850_960


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt to fetch weights fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load", refuse)


# ---------------------------------------------------------------------------- FID Inception


@pytest.fixture(scope="module")
def inception() -> FIDInceptionV3:
    torch.manual_seed(0)
    return FIDInceptionV3()


def _save(state: dict, path: Path) -> str:
    torch.save(state, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inception_architecture_matches_pytorch_fid_layout(inception):
    from torchvision.models.inception import Inception3

    assert isinstance(inception, FeatureExtractor) and isinstance(inception, torch.nn.Module)
    assert sum(p.numel() for p in inception.parameters()) == FID_INCEPTION_PARAMS
    # pytorch-fid builds torchvision's Inception3(num_classes=1008, aux_logits=False) and swaps in blocks
    # of the same parameter layout: the weights file's keys are exactly that model's keys.
    reference = Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    ours = inception.state_dict()
    assert set(ours) == set(reference)
    assert all(ours[k].shape == reference[k].shape for k in ours)
    assert ours["fc.weight"].shape == (1008, 2048)
    assert "Mixed_7c.branch_pool.conv.weight" in ours and not any(k.startswith("AuxLogits") for k in ours)
    assert (inception.name, inception.feature_dim, inception.num_classes) == ("inception_fid", 2048, 1008)
    assert inception.resize == "bilinear to 299x299"
    assert not inception.training and not any(p.requires_grad for p in inception.parameters())


def test_inception_fid_blocks_pool_like_tensorflow(inception):
    # count_include_pad=False: a constant map stays constant at the borders (zero padding would darken it).
    x = torch.ones(1, 288, 5, 5)
    from gan_cli.metrics.extractors.inception import _avg_pool_same

    assert torch.allclose(_avg_pool_same(x), x)
    assert type(inception.Mixed_7b).__name__ == "FIDInceptionE_1"
    assert type(inception.Mixed_7c).__name__ == "FIDInceptionE_2"


def test_inception_loads_a_state_dict_file(inception, tmp_path):
    file = tmp_path / "random_inception.pth"
    digest = _save(inception.state_dict(), file)
    model = load_fid_inception(path=str(file), verify=False)
    assert model.weights_hash == digest
    assert not model.training
    for key, value in inception.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    # Older saves have no BatchNorm num_batches_tracked buffers: still accepted.
    legacy = {k: v for k, v in inception.state_dict().items() if not k.endswith("num_batches_tracked")}
    _save(legacy, file)
    assert torch.equal(load_fid_inception(path=file, verify=False).fc.weight, inception.fc.weight)


def test_inception_features_and_logits(inception):
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    feats, logits = inception.features_and_logits(rgb)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(feats).all() and torch.isfinite(logits).all() and (feats >= 0).all()  # post-ReLU pool
    assert not feats.requires_grad

    gray = rgb[:, :1]
    g_feats, g_logits = inception.features_and_logits(gray)
    assert g_feats.shape == (2, 2048) and g_logits.shape == (2, 1008)
    assert not torch.allclose(g_feats, feats)
    # Gray is repeated to RGB, and one image gives the same output alone as in a batch.
    one = gray[1:].expand(-1, 3, -1, -1)
    assert torch.allclose(inception.features(one), g_feats[1:], atol=1e-5)
    assert torch.allclose(inception.logits(one), g_logits[1:], atol=1e-5)


def test_inception_missing_file_names_file_folder_and_config_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    folder = default_weights_dir()
    assert folder == tmp_path / "torch_home" / "hub" / "checkpoints"
    with pytest.raises(ExtractorError) as info:
        load_fid_inception()
    msg = str(info.value)
    assert isinstance(info.value, GanCliError)
    assert FID_WEIGHTS_NAME in msg and str(folder) in msg
    assert " inception_weights=" in msg and "gan fetch fid-inception" in msg and "fd_digits" in msg and "download" in msg

    with pytest.raises(ExtractorError, match="does not exist") as info:
        load_fid_inception(path=tmp_path / "nowhere.pth")
    assert str(tmp_path / "nowhere.pth") in str(info.value)


def test_inception_wrong_hash_is_an_error(inception, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = default_weights_dir()
    folder.mkdir(parents=True)
    file = folder / FID_WEIGHTS_NAME
    digest = _save(inception.state_dict(), file)  # right name, wrong content
    assert not digest.startswith("6726825d")
    for call in (lambda: load_fid_inception(), lambda: load_fid_inception(verify=False),
                 lambda: load_fid_inception(path=file), lambda: load_fid_inception(path=folder)):
        with pytest.raises(ExtractorError) as info:
            call()
        msg = str(info.value)
        assert str(file) in msg and "6726825d" in msg and digest in msg
    # An explicit file the user vouches for skips the check.
    assert load_fid_inception(path=file, verify=False).weights_hash == digest


def test_inception_rejects_unrelated_files(tmp_path):
    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ExtractorError, match="does not match the FID Inception"):
        load_fid_inception(path=bad, verify=False)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ExtractorError, match="Cannot read"):
        load_fid_inception(path=bad, verify=False)


def test_extractors_reject_bad_shapes(inception):
    for x in (torch.zeros(2, 32, 32), torch.zeros(2, 2, 32, 32)):
        with pytest.raises(ExtractorError, match=r"\(N, C, H, W\)"):
            inception.features(x)


# ---------------------------------------------------------------------------- digits CNN


def test_digits_split_is_stratified_disjoint_and_fixed():
    train, held = digits_split(0)
    assert train.dtype == held.dtype == torch.int64
    assert len(train) + len(held) == 1797 and len(held) == 359
    assert set(train.tolist()).isdisjoint(held.tolist())
    y = digits(8, 1).dataset.tensors[1]
    assert all(abs((y[held] == c).sum().item() - 0.2 * (y == c).sum().item()) <= 0.5 for c in range(10))
    assert torch.equal(digits_split(0)[1], held)
    assert not torch.equal(digits_split(1)[1], held)


def test_digits_classifier_trains_to_97_percent(digits_cache):
    model = digits_cache["model"]
    assert isinstance(model, DigitsCNN) and isinstance(model, FeatureExtractor)
    assert not model.loaded_from_cache
    assert model.test_accuracy >= 0.97
    assert (model.name, model.feature_dim, model.num_classes) == ("digits_cnn", 128, 10)
    assert len(model.weights_hash) == 64 and model.split_seed == 0
    assert digits_cache["rng_untouched"]
    files = sorted(p.name for p in digits_cache["cache"].iterdir())
    assert [f for f in files if f.startswith("digits_cnn")] == ["digits_cnn_v1.pt"]
    assert not [f for f in files if f.endswith(".tmp")]  # atomic save leaves no temp file
    print(f"digits CNN: held-out accuracy {model.test_accuracy:.4f}, first call {digits_cache['seconds']:.1f}s")


def test_digits_classifier_second_call_loads_the_cache(digits_cache):
    start = time.perf_counter()
    again = load_digits_classifier(cache_dir=digits_cache["cache"], seed=0)
    elapsed = time.perf_counter() - start
    first = digits_cache["model"]
    assert again.loaded_from_cache
    assert again.weights_hash == first.weights_hash
    assert again.test_accuracy == first.test_accuracy
    assert elapsed < max(1.0, digits_cache["seconds"] / 3)
    x = digits(32, 1).dataset.tensors[0][:8]
    assert torch.equal(again.logits(x), first.logits(x))


def test_digits_features_and_logits_at_other_resolutions_and_channels(digits_cache):
    model = digits_cache["model"]
    x16 = digits(16, 1).dataset.tensors[0][:5]
    feats, logits = model.features_and_logits(x16)
    assert feats.shape == (5, 128) and logits.shape == (5, 10) and not feats.requires_grad
    rgb = digits(32, 3).dataset.tensors[0][:5]
    assert model.features(rgb).shape == (5, 128) and model.logits(rgb).shape == (5, 10)
    assert torch.allclose(model.logits(rgb), model.logits(rgb[:, :1]))  # RGB is averaged to gray
    model.train()  # even if someone flips the mode, outputs come from eval mode (dropout off)
    assert torch.equal(model.logits(rgb), model.logits(rgb))
    assert not model.training


@pytest.mark.parametrize(("resolution", "channels"), [(32, 1), (16, 1), (64, 3)])
def test_digits_classifier_predicts_the_heldout_digits(digits_cache, resolution, channels):
    model = digits_cache["model"]
    x, y = digits(resolution, channels).dataset.tensors
    _, held = digits_split(0)
    accuracy = (model.logits(x[held]).argmax(dim=1) == y[held]).float().mean().item()
    assert accuracy >= 0.97


def test_digits_stale_or_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    calls = []

    def quick_train(seed: int = 0) -> DigitsCNN:  # stands in for the real training
        calls.append(seed)
        model = DigitsCNN().eval()
        model.test_accuracy, model.split_seed, model.train_seconds = 0.5, seed, 0.0
        model.weights_hash = "x" * 64
        return model

    monkeypatch.setattr(digits_module, "train_digits_classifier", quick_train)
    file = tmp_path / "digits_cnn_v1.pt"
    file.write_bytes(b"garbage")
    model = load_digits_classifier(cache_dir=tmp_path)
    assert calls == [0] and not model.loaded_from_cache
    assert load_digits_classifier(cache_dir=tmp_path).loaded_from_cache  # replaced by a good file
    assert load_digits_classifier(cache_dir=tmp_path, seed=3).split_seed == 3 and calls == [0, 3]
    assert (tmp_path / "digits_cnn_v1_seed3.pt").is_file()
