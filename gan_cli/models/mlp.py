"""Vanilla GAN (Goodfellow et al. 2014): fully connected G and D for images or 2D points.

Images are flattened for D and unflattened from G's output; G ends in Tanh for images and
is linear for points (their coordinates are not bounded to [-1, 1]).
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from gan_cli.config import is_number
from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.freeze import layer_blocks
from gan_cli.models.options import check_options, finish, minibatch_layer, packed_shape

# Defaults for ``None`` (auto), by data kind. The points values come from 2000-step runs on
# the 8-Gaussian ring (Adam 2e-4, batch 64, non-saturating loss): with z of 64 (or 8) dims
# G collapsed to one or two modes; with z of 2 dims and 512 hidden units 3 of 5 seeds found
# all 8 modes, with 256 hidden units 7 of 8 seeds did.
AUTO = {
    "image": {"latent_dim": 100, "hidden_dim": 512, "g_batchnorm": True},
    "points": {"latent_dim": 2, "hidden_dim": 256, "g_batchnorm": False},
}


class MLPGenerator(nn.Module):
    """z ``(B, latent_dim)`` -> sample ``(B, *shape)``."""

    def __init__(
        self,
        latent_dim: int,
        shape: tuple[int, ...],
        hidden_dim: int,
        num_layers: int,
        batchnorm: bool,
        tanh: bool,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.shape = tuple(shape)
        layers: list[nn.Module] = []
        in_dim = latent_dim
        for _ in range(num_layers):
            layers.append(nn.Linear(in_dim, hidden_dim))
            if batchnorm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, math.prod(self.shape)))
        if tanh:
            layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.main(z.reshape(z.shape[0], self.latent_dim))  # (B, prod(shape))
        return out.view(z.shape[0], *self.shape)  # (B, *shape)


class MLPDiscriminator(nn.Module):
    """Sample ``(B, *shape)`` -> raw logit ``(B,)``.

    ``minibatch`` (``stddev`` | ``discrimination``) inserts that layer before the final Linear.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        hidden_dim: int,
        num_layers: int,
        dropout: float,
        minibatch: str = "none",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_dim = math.prod(shape)
        for _ in range(num_layers):
            layers += [nn.Linear(in_dim, hidden_dim), nn.LeakyReLU(0.2, inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_dim = hidden_dim
        extra, in_dim = minibatch_layer(minibatch, in_dim)
        layers += extra
        layers.append(nn.Linear(in_dim, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.main(x.flatten(1)).squeeze(1)  # (B, prod(shape)) -> (B,)

    def input_blocks(self) -> list[nn.Module]:
        """Each hidden Linear-LeakyReLU(-Dropout) layer, then the head: minibatch layers and the last Linear."""
        return layer_blocks(self.main)


def build(
    shape: tuple[int, ...],
    num_classes: int = 0,
    latent_dim: int | None = None,
    hidden_dim: int | None = None,
    num_layers: int = 3,
    dropout: float = 0.0,
    g_batchnorm: bool | None = None,
    spectral_norm: str = "none",
    minibatch: str = "none",
    pack: int = 1,
) -> Networks:
    """Build the MLP pair for ``shape``: ``(C, H, W)`` images or ``(2,)`` points.

    ``None`` picks the value for the data kind from :data:`AUTO`: images get z of 100,
    512 hidden units and BatchNorm1d in G; points get z of 2, 256 units and no BatchNorm.
    ``num_layers`` counts hidden layers in each network. ``num_classes`` is unused.
    ``spectral_norm``, ``minibatch`` and ``pack`` are the D options of
    :mod:`gan_cli.models.options`.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 3) or min(shape, default=0) < 1:
        raise ConfigError(
            f"model=mlp got dataset shape {shape}; it needs (C, H, W) images or (2,) points."
        )
    is_image = len(shape) == 3
    auto = AUTO["image" if is_image else "points"]
    latent_dim = auto["latent_dim"] if latent_dim is None else latent_dim
    hidden_dim = auto["hidden_dim"] if hidden_dim is None else hidden_dim
    require_positive_int("latent_dim", latent_dim)
    require_positive_int("hidden_dim", hidden_dim)
    require_positive_int("num_layers", num_layers)
    if not is_number(dropout) or not 0 <= dropout < 1:
        raise ConfigError(f"model.dropout is {dropout!r}, but it must be in [0, 1) (e.g. 0.0).")
    if g_batchnorm not in (None, True, False):
        raise ConfigError(
            f"model.g_batchnorm is {g_batchnorm!r}; use true, false or null (auto: on for images)."
        )
    check_options("mlp", spectral_norm, minibatch, pack, conditional=False)
    batchnorm = auto["g_batchnorm"] if g_batchnorm is None else g_batchnorm
    generator = MLPGenerator(latent_dim, shape, hidden_dim, num_layers, batchnorm, tanh=is_image)
    discriminator = MLPDiscriminator(
        packed_shape(shape, pack), hidden_dim, num_layers, float(dropout), minibatch
    )
    return finish(Networks.pair(generator, discriminator, latent_dim), spectral_norm, pack)
