"""Datasets that need no files: scikit-learn's digits, 2D Gaussian mixtures, random images.

Each builder materialises its data once into a ``TensorDataset`` (so the trainer samples
batches by indexing) and nothing is ever downloaded. Their content is fixed by their options,
so those make their fingerprint.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from gan_cli import config
from gan_cli.data.base import GanData
from gan_cli.data.fingerprint import fingerprint
from gan_cli.errors import ConfigError


def check_int(key: str, value: object, minimum: int, what: str = "") -> int:
    """`config.check_int` for ``dataset.<key>``."""
    return config.check_int(f"dataset.{key}", value, minimum, what=what)


def check_channels(channels: object, key: str = "channels") -> int:
    """Images are grayscale (1) or RGB (3); `key`: the option under dataset."""
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ConfigError(f"dataset.{key} must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    return int(channels)


# ---------------------------------------------------------------------------- digits


DIGITS_SPLITS = ("all", "train", "heldout")


def digits_split(labels: torch.Tensor, heldout_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed stratified split: (train indices, held-out indices), the same for every caller."""
    g = torch.Generator().manual_seed(seed)
    train, heldout = [], []
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_out = round(len(idx) * heldout_fraction)
        heldout.append(idx[:n_out])
        train.append(idx[n_out:])
    return torch.cat(train).sort().values, torch.cat(heldout).sort().values


def digits(resolution: int = 32, channels: int = 1, split: str = "all") -> GanData:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, labels 0..9), resized and in [-1, 1].

    ``channels=3`` repeats the gray channel, for models that expect RGB. ``split``: ``all``,
    or a fixed stratified 80/20 ``train`` / ``heldout`` split (train on ``train`` to check
    memorisation against ``heldout``).
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    check_int("resolution", resolution, 8, "the digits are 8x8 pixels; they are only upsampled")
    channels = check_channels(channels)
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8), 0..16
    x = x / 8.0 - 1.0  # 0 -> -1, 16 -> 1
    if resolution != 8:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = x.clamp(-1.0, 1.0).expand(-1, channels, -1, -1).contiguous()  # (N, C, R, R)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)  # (N,)
    if split not in DIGITS_SPLITS:
        raise ConfigError(f"dataset.split={split!r} is not a digits split; valid: {', '.join(DIGITS_SPLITS)}.")
    if split != "all":
        idx = digits_split(y)[0 if split == "train" else 1]
        x, y = x[idx], y[idx]
    return GanData(
        TensorDataset(x, y), kind="image", shape=(channels, resolution, resolution), num_classes=10, name="digits",
        fingerprint=fingerprint("digits", {"resolution": resolution, "channels": channels, "split": split}),
    )


# ---------------------------------------------------------------------------- 2D mixtures

_GRID = (-4.0, -2.0, 0.0, 2.0, 4.0)
MIXTURES = ("ring8", "grid25")


def modes(name: str) -> tuple[torch.Tensor, float]:
    """The real modes of a mixture: centres ``(K, 2)`` and the std of every mode.

    ring8: 8 modes on the unit circle at angles 2*pi*k/8, std 0.01.
    grid25: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.
    """
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        centres = torch.stack([angles.cos(), angles.sin()], dim=1)  # (8, 2)
        return centres.float(), 0.01
    if name == "grid25":
        centres = torch.tensor([(a, b) for a in _GRID for b in _GRID])  # (25, 2)
        return centres, 0.05
    raise ConfigError(f"Unknown Gaussian mixture {name!r}; valid names are {sorted(MIXTURES)}.")


def gaussian_mixture(name: str, num_samples: int = 50000, seed: int = 0) -> GanData:
    """``num_samples`` points drawn once (seeded, deterministic) from the mixture ``name``.

    Each mode is picked uniformly; ``y`` is the index of the mode a point came from.
    Points keep their natural scale (not squashed into [-1, 1]).
    """
    centres, std = modes(name)
    check_int("num_samples", num_samples, 1)
    gen = torch.Generator().manual_seed(int(seed))
    y = torch.randint(len(centres), (num_samples,), generator=gen)  # (N,) int64
    x = centres[y] + std * torch.randn(num_samples, 2, generator=gen)  # (N, 2)
    return GanData(TensorDataset(x, y), kind="points", shape=(2,), num_classes=len(centres), name=name,
                   fingerprint=fingerprint(name, {"num_samples": num_samples, "seed": int(seed)}))


def ring8(num_samples: int = 50000, seed: int = 0) -> GanData:
    """8 Gaussians on the unit circle, std 0.01 (see :func:`modes`)."""
    return gaussian_mixture("ring8", num_samples, seed)


def grid25(num_samples: int = 50000, seed: int = 0) -> GanData:
    """25 Gaussians on a 5x5 grid with spacing 2, std 0.05 (see :func:`modes`)."""
    return gaussian_mixture("grid25", num_samples, seed)


# ---------------------------------------------------------------------------- random images


def fake(
    resolution: int = 64, channels: int = 3, num_samples: int = 1024, num_classes: int = 10, seed: int = 0
) -> GanData:
    """Random-noise images from torchvision's FakeData, in [-1, 1], materialised once in memory.

    For smoke tests and benchmarks: the same ``seed`` gives the same images.
    """
    from torchvision.datasets import FakeData
    from torchvision.transforms import ToTensor

    check_int("resolution", resolution, 1)
    channels = check_channels(channels)
    check_int("num_samples", num_samples, 1)
    check_int("num_classes", num_classes, 1)
    # FakeData seeds image i with (i + random_offset): spacing offsets by num_samples keeps seeds disjoint.
    source = FakeData(
        size=num_samples,
        image_size=(channels, resolution, resolution),
        num_classes=num_classes,
        transform=ToTensor(),
        random_offset=int(seed) * num_samples,
    )
    items = [source[i] for i in range(num_samples)]
    x = torch.stack([img for img, _ in items]) * 2.0 - 1.0  # (N, C, R, R) in [-1, 1]
    y = torch.tensor([label for _, label in items], dtype=torch.int64)  # (N,)
    return GanData(
        TensorDataset(x, y),
        kind="image",
        shape=(channels, resolution, resolution),
        num_classes=num_classes,
        name="fake",
        fingerprint=fingerprint("fake", {"resolution": resolution, "channels": channels, "num_samples": num_samples,
                                         "num_classes": num_classes, "seed": int(seed)}),
    )
