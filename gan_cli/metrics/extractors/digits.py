"""A small CNN classifier for the embedded digits: the feature space of the offline ``fd_digits`` metric.

It is trained once, on CPU in seconds, on a fixed stratified 80% of scikit-learn's 1797 digits (the
``digits`` builder at resolution 32), with small random translations so that it copes with generated
samples, and checked on the held-out 20%. The trained weights are cached as
``<cache_dir>/digits_cnn_v1.pt``; later calls load that file. Nothing is downloaded.
"""
from __future__ import annotations

import logging
import math
import os
import time
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.data.embedded import digits_split as split_digits
from gan_cli.checkpoint import save_atomic
from gan_cli.metrics.extractors.base import FeatureExtractor, resize_bilinear, state_dict_sha256, to_channels

log = logging.getLogger(__name__)

VERSION = 1
CACHE_NAME = f"digits_cnn_v{VERSION}.pt"
RESOLUTION = 32
HELDOUT_FRACTION = 0.2
MAX_SHIFT = 2  # pixels of random translation during training (at 32x32)
EPOCHS = 12
BATCH_SIZE = 64
LR = 2e-3


class DigitsCNN(FeatureExtractor):
    """conv 32 -> pool -> conv 64 -> pool -> fc 128 (features) -> fc 10 (logits), on 1x32x32 in [-1, 1].

    Other resolutions are resized bilinearly to 32x32; RGB input is averaged to one channel.
    Extra attributes: ``test_accuracy`` (on the held-out 20% of :func:`digits_split`), ``split_seed``,
    ``cache_path`` and ``loaded_from_cache``.
    """

    name = "digits_cnn"
    feature_dim = 128
    num_classes = 10
    resize = f"bilinear to {RESOLUTION}x{RESOLUTION}"

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(64 * (RESOLUTION // 4) ** 2, self.feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.fc2 = nn.Linear(self.feature_dim, self.num_classes)
        self.weights_hash = ""
        self.test_accuracy = float("nan")
        self.split_seed = 0
        self.cache_path = ""
        self.loaded_from_cache = False

    def preprocess(self, x: Tensor) -> Tensor:
        return resize_bilinear(to_channels(x, 1), RESOLUTION)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (N, 32, 16, 16)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (N, 64, 8, 8)
        feats = F.relu(self.fc1(torch.flatten(x, 1)))  # (N, 128): the penultimate layer
        return feats, self.fc2(self.dropout(feats))  # (N, 128), (N, 10)


# ---------------------------------------------------------------------------- data


@lru_cache(maxsize=1)
def _labels() -> Tensor:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    return torch.as_tensor(load_digits().target, dtype=torch.int64)


def digits_split(seed: int = 0) -> tuple[Tensor, Tensor]:
    """The stratified 80/20 split of the digits (``dataset.split=train|heldout``): sorted indices.

    The digits CNN trains on the train part only, so the held-out part gives an unbiased
    test accuracy and serves memorisation checks of GANs trained with ``dataset.split=train``.
    """
    return split_digits(_labels(), HELDOUT_FRACTION, seed)


def _shift(x: Tensor, gen: torch.Generator, max_shift: int = MAX_SHIFT) -> Tensor:
    """Translate each image by its own random (dy, dx) in [-max_shift, max_shift], filling with -1."""
    n, _, h, w = x.shape
    side = 2 * max_shift + 1
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    offset = torch.randint(0, side * side, (n,), generator=gen)  # one of the side^2 (dy, dx) per image
    out = torch.empty_like(x)
    for k in offset.unique().tolist():
        idx = torch.nonzero(offset == k).flatten()
        oy, ox = divmod(k, side)
        out[idx] = padded[idx, :, oy : oy + h, ox : ox + w]
    return out


@torch.no_grad()
def _accuracy(model: DigitsCNN, x: Tensor, y: Tensor) -> float:
    return (model.logits(x).argmax(dim=1) == y).float().mean().item()


def train_digits_classifier(seed: int = 0) -> DigitsCNN:
    """Train the digits CNN from scratch (a few seconds on CPU) and measure its held-out accuracy.

    Deterministic given ``seed`` (split, initialisation, batches and augmentation), and it leaves the
    global RNG state untouched.
    """
    from gan_cli.data.embedded import digits

    start = time.perf_counter()
    x, y = digits(RESOLUTION, 1).dataset.tensors  # (1797, 1, 32, 32) in [-1, 1], (1797,)
    train_idx, held_idx = digits_split(seed)
    xt, yt = x[train_idx], y[train_idx]
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    steps_per_epoch = math.ceil(len(xt) / BATCH_SIZE)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=EPOCHS * steps_per_epoch)
    model.train()
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG: keep it seeded, then restore
        torch.manual_seed(int(seed) + 1)
        for _ in range(EPOCHS):
            order = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), BATCH_SIZE):
                batch = order[i : i + BATCH_SIZE]
                _, logits = model._forward(_shift(xt[batch], gen))
                loss = F.cross_entropy(logits, yt[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.requires_grad_(False).eval()
    model.test_accuracy = _accuracy(model, x[held_idx], y[held_idx])
    model.split_seed = int(seed)
    model.weights_hash = state_dict_sha256(model.state_dict())
    model.train_seconds = time.perf_counter() - start
    return model


# ---------------------------------------------------------------------------- cache


def _cache_file(cache_dir: str | Path, seed: int) -> Path:
    name = CACHE_NAME if seed == 0 else f"digits_cnn_v{VERSION}_seed{seed}.pt"
    return Path(os.path.expanduser(os.fspath(cache_dir))) / name


def _load_cached(file: Path, seed: int) -> DigitsCNN | None:
    """The cached classifier, or None (with a log line) when the file is unreadable or stale."""
    try:
        blob = torch.load(file, map_location="cpu", weights_only=True)
        if blob.get("version") != VERSION or blob.get("split_seed") != seed:
            log.warning("Ignoring stale digits classifier cache %s (version/seed differ); retraining.", file)
            return None
        model = DigitsCNN()
        model.load_state_dict(blob["state_dict"], strict=True)
        model.test_accuracy = float(blob["test_accuracy"])
    except Exception as exc:  # noqa: BLE001 - a broken cache is rebuilt, never fatal
        log.warning("Ignoring unreadable digits classifier cache %s (%s: %s); retraining.", file, type(exc).__name__, exc)
        return None
    model.split_seed = seed
    model.weights_hash = state_dict_sha256(model.state_dict())
    model.train_seconds = float(blob.get("train_seconds", float("nan")))
    model.loaded_from_cache = True
    return model


def _save(model: DigitsCNN, file: Path) -> None:
    save_atomic({
        "version": VERSION,
        "state_dict": model.state_dict(),
        "test_accuracy": float(model.test_accuracy),
        "split_seed": int(model.split_seed),
        "weights_hash": model.weights_hash,
        "train_seconds": float(model.train_seconds),
    }, file)


def load_digits_classifier(cache_dir: str | Path = "outputs/.cache", seed: int = 0) -> DigitsCNN:
    """The digits CNN: loaded from ``<cache_dir>/digits_cnn_v1.pt`` if present, else trained and cached.

    The cache file (written atomically) holds the state dict, the held-out test accuracy, the split seed
    and a format version; it is read with ``weights_only=True``. A seed other than 0 uses its own file
    (``digits_cnn_v1_seed<N>.pt``). An unreadable or stale cache is retrained and replaced.
    Returns the network on the CPU in eval mode; ``weights_hash`` is the sha256 of its state dict
    (see :func:`~gan_cli.metrics.extractors.base.state_dict_sha256`), the same whether trained or loaded.
    """
    seed = int(seed)
    file = _cache_file(cache_dir, seed)
    model = _load_cached(file, seed) if file.is_file() else None
    if model is None:
        model = train_digits_classifier(seed)
        _save(model, file)
        log.info("Trained the digits classifier in %.1fs: held-out accuracy %.4f; cached at %s",
                 model.train_seconds, model.test_accuracy, file)
    model.cache_path = str(file)
    return model.requires_grad_(False).eval()
