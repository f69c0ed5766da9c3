"""SAGAN (Zhang et al. 2018): a DCGAN- or ResNet-style pair with self-attention.

A :class:`~gan_cli.models.layers.SelfAttention` block goes after the G layer/block that
outputs ``attn_resolution`` x ``attn_resolution`` feature maps and after the D layer/block that
outputs that resolution. Spectral norm is on in both G and D by default, as in the paper.

- ``arch="resnet"``: :mod:`gan_cli.models.resnet` blocks; attention at 8 .. res/2
  (optionally conditional: conditional BN in G, projection D).
- ``arch="dcgan"``: :mod:`gan_cli.models.dcgan` layers; attention at 4 .. res/2.
"""
from __future__ import annotations

from torch import nn

from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights
from gan_cli.models.layers import SelfAttention
from gan_cli.models.options import check_options, check_square_image, finish
from gan_cli.models.resnet import ResNetDiscriminator, ResNetGenerator, check_conditional

VALID_RESOLUTIONS = (16, 32, 64, 128)
ARCHS = ("resnet", "dcgan")


def attention_resolutions(arch: str, resolution: int) -> list[int]:
    """Feature-map sides that both G and D of ``arch`` have at image side ``resolution``."""
    smallest = 8 if arch == "resnet" else 4
    return [2**i for i in range(smallest.bit_length() - 1, resolution.bit_length() - 1)]


def insert_attention(main: nn.Sequential, resolution: int, target: int) -> nn.Sequential:
    """Copy of a DCGAN ``main`` with a SelfAttention after the activation whose input is a
    ``target`` x ``target`` map (tracked through the stride-1/2 (transposed) convs)."""
    layers: list[nn.Module] = []
    res, channels, inserted = resolution, 0, False
    for layer in main:
        layers.append(layer)
        if isinstance(layer, nn.ConvTranspose2d):
            res, channels = (4 if layer.stride[0] == 1 else res * 2), layer.out_channels
        elif isinstance(layer, nn.Conv2d):
            res, channels = (res // 2 if layer.stride[0] == 2 else 1), layer.out_channels
        elif isinstance(layer, (nn.ReLU, nn.LeakyReLU)) and res == target and not inserted:
            layers.append(SelfAttention(channels))
            inserted = True
    if not inserted:
        raise ValueError(f"no {target}x{target} feature map to attend over")
    return nn.Sequential(*layers)


def build(
    shape: tuple[int, ...],
    num_classes: int = 0,
    arch: str = "resnet",
    latent_dim: int = 128,
    g_width: int = 64,
    d_width: int = 64,
    attn_resolution: int | None = None,
    conditional: bool = False,
    spectral_norm: str = "both",
    minibatch: str = "none",
    pack: int = 1,
) -> Networks:
    """Build the SAGAN pair for square images of side 16, 32, 64 or 128.

    ``attn_resolution`` ``None`` = ``min(32, res / 2)`` (32 for 64x64 images). ``conditional``
    needs ``arch="resnet"`` and a labelled dataset. ``spectral_norm``, ``minibatch`` and
    ``pack`` are the D options of :mod:`gan_cli.models.options`.
    """
    channels, resolution = check_square_image("sagan", tuple(int(s) for s in shape), VALID_RESOLUTIONS)
    if arch not in ARCHS:
        raise ConfigError(f"model.arch is {arch!r}; use resnet (SNGAN ResNet blocks) or dcgan (DCGAN layers).")
    require_positive_int("latent_dim", latent_dim)
    require_positive_int("g_width", g_width)
    require_positive_int("d_width", d_width)
    valid = attention_resolutions(arch, resolution)
    attn = min(32, resolution // 2) if attn_resolution is None else attn_resolution
    if attn not in valid:
        raise ConfigError(
            f"model.attn_resolution is {attn_resolution!r}, but the arch={arch} networks for "
            f"{resolution}x{resolution} images have feature maps of side "
            f"{', '.join(map(str, valid))}; set model.attn_resolution to one of those "
            "(or null for the default)."
        )
    classes = check_conditional("sagan", conditional, num_classes)
    if classes and arch != "resnet":
        raise ConfigError("model.conditional=true needs model.arch=resnet for model=sagan.")
    check_options("sagan", spectral_norm, minibatch, pack, conditional=bool(classes))
    if arch == "resnet":
        generator: nn.Module = ResNetGenerator(latent_dim, channels, resolution, g_width, classes, attn)
        discriminator: nn.Module = ResNetDiscriminator(
            channels * pack, resolution, d_width, classes, attn, minibatch
        )
    else:
        generator = DCGANGenerator(latent_dim, channels, resolution, g_width)
        discriminator = DCGANDiscriminator(channels * pack, resolution, d_width, minibatch)
        generator.apply(init_dcgan_weights)
        discriminator.apply(init_dcgan_weights)
        generator.main = insert_attention(generator.main, resolution, attn)
        discriminator.main = insert_attention(discriminator.main, resolution, attn)
    return finish(Networks.pair(generator, discriminator, latent_dim), spectral_norm, pack)
