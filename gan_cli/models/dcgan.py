"""DCGAN (Radford et al. 2015), laid out as in pytorch/examples/dcgan.

At 64x64 with ``g_width = d_width = 64`` the layers are exactly those of pytorch/examples
(minus D's final Sigmoid: D returns logits), down to the ``main.<i>`` state-dict keys.
Other resolutions add or drop one stride-2 block per factor of two; the width at 4x4 is
``width * resolution / 8`` and halves (G) / doubles (D) per block.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.freeze import layer_blocks
from gan_cli.models.options import check_options, check_square_image, finish, minibatch_layer

VALID_RESOLUTIONS = (16, 32, 64, 128)


def init_dcgan_weights(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02); BatchNorm weight ~ N(1, 0.02), bias 0 (apply via ``.apply``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """z ``(B, latent_dim)`` or ``(B, latent_dim, 1, 1)`` -> image ``(B, C, res, res)`` in [-1, 1]."""

    def __init__(self, latent_dim: int, channels: int, resolution: int, width: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        num_blocks = int(math.log2(resolution)) - 3  # BN blocks after the 4x4 projection
        out_ch = width * 2**num_blocks
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, out_ch, 4, 1, 0, bias=False),  # (B, out_ch, 4, 4)
            nn.BatchNorm2d(out_ch),
            nn.ReLU(True),
        ]
        for _ in range(num_blocks):  # each doubles H, W and halves channels
            in_ch, out_ch = out_ch, out_ch // 2
            layers += [
                nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(out_ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        z = z.reshape(z.shape[0], self.latent_dim, 1, 1)  # (B, latent, 1, 1)
        return self.main(z)  # (B, C, res, res)


class DCGANDiscriminator(nn.Module):
    """Image ``(B, C, res, res)`` -> raw logit ``(B,)``.

    ``minibatch="stddev"`` adds one channel before the final 4x4 conv; ``"discrimination"``
    replaces that conv by Flatten, minibatch discrimination and a Linear. ``"none"`` (the
    default) is exactly pytorch/examples' netD.
    """

    def __init__(self, channels: int, resolution: int, width: int, minibatch: str = "none") -> None:
        super().__init__()
        num_blocks = int(math.log2(resolution)) - 3  # BN blocks after the input layer
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, 2, 1, bias=False),  # (B, width, res/2, res/2); no BN
            nn.LeakyReLU(0.2, inplace=True),
        ]
        out_ch = width
        for _ in range(num_blocks):  # each halves H, W and doubles channels
            in_ch, out_ch = out_ch, out_ch * 2
            layers += [
                nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        if minibatch == "discrimination":
            extra, features = minibatch_layer(minibatch, out_ch * 16)
            layers += [nn.Flatten(), *extra, nn.Linear(features, 1)]  # (B, 1)
        else:
            extra, out_ch = minibatch_layer(minibatch, out_ch, spatial=True)
            layers += extra
            layers.append(nn.Conv2d(out_ch, 1, 4, 1, 0, bias=False))  # (B, 1, 1, 1)
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.main(x).flatten()  # (B, 1, 1, 1) -> (B,)

    def input_blocks(self) -> list[nn.Module]:
        """The input conv, each stride-2 conv-BN-LeakyReLU stage (with SAGAN's self-attention after it),
        then the head: minibatch layers and the last conv or Linear."""
        return layer_blocks(self.main)


def build(
    shape: tuple[int, ...],
    num_classes: int = 0,
    latent_dim: int = 100,
    g_width: int = 64,
    d_width: int = 64,
    spectral_norm: str = "none",
    minibatch: str = "none",
    pack: int = 1,
) -> Networks:
    """Build the DCGAN pair for square images; ``num_classes`` is unused for now.

    ``spectral_norm``, ``minibatch`` and ``pack`` are the D options of
    :mod:`gan_cli.models.options`; at their defaults the pair is pytorch/examples' DCGAN.
    """
    channels, resolution = check_square_image("dcgan", tuple(int(s) for s in shape), VALID_RESOLUTIONS)
    require_positive_int("latent_dim", latent_dim)
    require_positive_int("g_width", g_width)
    require_positive_int("d_width", d_width)
    check_options("dcgan", spectral_norm, minibatch, pack, conditional=False)
    generator = DCGANGenerator(latent_dim, channels, resolution, g_width)
    discriminator = DCGANDiscriminator(channels * pack, resolution, d_width, minibatch)
    generator.apply(init_dcgan_weights)
    discriminator.apply(init_dcgan_weights)
    return finish(Networks.pair(generator, discriminator, latent_dim), spectral_norm, pack)
