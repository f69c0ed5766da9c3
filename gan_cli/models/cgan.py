"""Conditional GAN (Mirza & Osindero 2014) for images (DCGAN-style) or 2D points (MLP).

G concatenates a learned label embedding to z. D is either

- ``concat``: the classic cGAN, the label embedding joins D's input (images: an
  ``(B, embed_dim, H, W)`` plane of the embedding broadcast over the pixels, stacked on the
  channels; points: extra features), or
- ``projection`` (Miyato & Koyama 2018): ``logit = psi(phi(x)) + <embed(y), pool(phi(x))>``,
  where ``phi`` is D's trunk up to its last layer ``psi`` and ``pool`` sums over pixels.

Both networks require labels ``y`` (``(B,)`` int64 in ``[0, num_classes)``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.dcgan import (
    VALID_RESOLUTIONS,
    DCGANDiscriminator,
    DCGANGenerator,
    init_dcgan_weights,
)
from gan_cli.models.freeze import layer_blocks
from gan_cli.models.mlp import MLPDiscriminator, MLPGenerator
from gan_cli.models.options import check_options, check_square_image, finish, require_labels

DISCRIMINATORS = ("concat", "projection")


def check_y(y: Tensor | None) -> Tensor:
    if y is None:
        raise ConfigError("a conditional model needs labels y, but got y=None.")
    return y


class ConditionalGenerator(nn.Module):
    """``(z (B, latent_dim), y (B,))`` -> ``inner(cat[z, embed(y)])``."""

    conditional = True

    def __init__(self, inner: nn.Module, latent_dim: int, num_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.inner = inner

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        z = z.reshape(z.shape[0], self.latent_dim)
        return self.inner(torch.cat([z, self.embed(check_y(y))], dim=1))


class ConcatDiscriminator(nn.Module):
    """``(x, y)`` -> ``inner(cat[x, embed(y)])``: embedding as extra channels / features."""

    conditional = True

    def __init__(self, inner: nn.Module, num_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.inner = inner

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        e = self.embed(check_y(y))  # (B, E)
        if x.dim() == 4:
            e = e[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, E, H, W)
        else:
            x = x.flatten(1)
        return self.inner(torch.cat([x, e], dim=1))

    def input_blocks(self) -> list[nn.Module]:
        """``inner``'s blocks; the label embedding joins the head (class embeddings are never frozen)."""
        *blocks, head = self.inner.input_blocks()
        return [*blocks, nn.ModuleList([head, self.embed])]


class ProjectionDiscriminator(nn.Module):
    """``logit = head(trunk(x)) + <embed(y), sum over pixels of trunk(x)>``.

    ``trunk`` is D up to its last layer; ``head`` is the rest (minibatch layer + last layer).
    """

    conditional = True

    def __init__(self, trunk: nn.Module, head: nn.Module, features: int, num_classes: int) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head
        self.embed = nn.Embedding(num_classes, features)
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        y = check_y(y)
        h = self.trunk(x if x.dim() == 4 else x.flatten(1))  # (B, F, h, w) or (B, F)
        pooled = h.sum((2, 3)) if h.dim() == 4 else h  # (B, F)
        return self.head(h).flatten() + (self.embed(y) * pooled).sum(1)

    def input_blocks(self) -> list[nn.Module]:
        """The blocks of the DCGAN or MLP D split into ``trunk`` and ``head``; the head with the embedding."""
        *blocks, head = layer_blocks(nn.Sequential(*self.trunk, *self.head))
        return [*blocks, nn.ModuleList([head, self.embed])]


def split_last(main: nn.Sequential) -> tuple[nn.Sequential, nn.Sequential, int]:
    """Split a D's ``main`` before its minibatch layers + last layer: (trunk, head, trunk width)."""
    layers = list(main)
    cut = len(layers) - 1
    while cut > 0 and not isinstance(layers[cut - 1], (nn.LeakyReLU, nn.ReLU, nn.Dropout)):
        cut -= 1  # the minibatch layer(s) and Flatten belong to the head
    trunk = nn.Sequential(*layers[:cut])
    last_weighted = [m for m in layers[:cut] if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    width = last_weighted.out_features if isinstance(last_weighted, nn.Linear) else last_weighted.out_channels
    return trunk, nn.Sequential(*layers[cut:]), width


def build(
    shape: tuple[int, ...],
    num_classes: int = 0,
    latent_dim: int | None = None,
    embed_dim: int | None = None,
    discriminator: str = "projection",
    g_width: int = 64,
    d_width: int = 64,
    hidden_dim: int = 256,
    num_layers: int = 3,
    spectral_norm: str = "none",
    minibatch: str = "none",
    pack: int = 1,
) -> Networks:
    """Build the conditional pair for ``(C, H, W)`` images (side 16..128) or ``(2,)`` points.

    Images use the DCGAN layers (``g_width``, ``d_width``); points use MLPs with
    ``num_layers`` hidden layers of ``hidden_dim`` units. ``latent_dim`` ``None`` = 100 for
    images, 2 for points; ``embed_dim`` ``None`` = ``num_classes``.
    """
    num_classes = require_labels("model=cgan", num_classes,
                                 "pick a labelled dataset or an unconditional model (model=dcgan, model=mlp)")
    shape = tuple(int(s) for s in shape)
    is_image = len(shape) != 1
    if is_image:
        channels, resolution = check_square_image("cgan", shape, VALID_RESOLUTIONS)
    latent_dim = (100 if is_image else 2) if latent_dim is None else latent_dim
    embed_dim = num_classes if embed_dim is None else embed_dim
    for key, value in [("latent_dim", latent_dim), ("embed_dim", embed_dim), ("g_width", g_width),
                       ("d_width", d_width), ("hidden_dim", hidden_dim), ("num_layers", num_layers)]:
        require_positive_int(key, value)
    if discriminator not in DISCRIMINATORS:
        raise ConfigError(
            f"model.discriminator is {discriminator!r}; use concat (label embedding joins D's "
            "input) or projection (Miyato & Koyama 2018)."
        )
    check_options("cgan", spectral_norm, minibatch, pack, conditional=True)
    concat = discriminator == "concat"
    d_extra = embed_dim if concat else 0
    if is_image:
        g_inner: nn.Module = DCGANGenerator(latent_dim + embed_dim, channels, resolution, g_width)
        g_inner.apply(init_dcgan_weights)
        d_inner: nn.Module = DCGANDiscriminator(channels + d_extra, resolution, d_width, minibatch)
        d_inner.apply(init_dcgan_weights)
    else:
        g_inner = MLPGenerator(latent_dim + embed_dim, shape, hidden_dim, num_layers, False, tanh=False)
        d_inner = MLPDiscriminator((shape[0] + d_extra,), hidden_dim, num_layers, 0.0, minibatch)
    generator = ConditionalGenerator(g_inner, latent_dim, num_classes, embed_dim)
    if concat:
        disc: nn.Module = ConcatDiscriminator(d_inner, num_classes, embed_dim)
    else:
        trunk, head, width = split_last(d_inner.main)
        disc = ProjectionDiscriminator(trunk, head, width, num_classes)
    return finish(Networks.pair(generator, disc, latent_dim), spectral_norm, pack)
