"""CycleGAN networks (Zhu et al. 2017): two ResNet generators and two PatchGAN discriminators.

The generator is Johnson et al.'s, as in the official pytorch-CycleGAN-and-pix2pix code:
c7s1-64, d128, d256, ``blocks`` residual blocks R256, u128, u64, c7s1-C, Tanh (reflection
padding, InstanceNorm by default, no dropout).
"""
from __future__ import annotations

from torch import Tensor, nn

from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.pix2pix import PatchDiscriminator, check_d_layers, check_pair, init_weights, norm_layer


class ResnetBlock(nn.Module):
    """``x + F(x)``, F = reflect-pad, 3x3 conv, norm, ReLU, reflect-pad, 3x3 conv, norm."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), norm != "batch"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), make_norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), make_norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """``x (B, in, R, R)`` -> ``(B, out, R, R)`` in [-1, 1]; R divisible by 4 and >= 16.

    ``blocks`` residual blocks at ``R / 4`` with ``4 * width`` channels; None: 6 below 256 px,
    9 at 256 px and above (the paper's choice for 128 and 256 px images).
    """

    conditional = False

    def __init__(self, in_channels: int, out_channels: int, resolution: int, width: int = 64,
                 blocks: int | None = None, norm: str = "instance") -> None:
        super().__init__()
        if resolution < 16 or resolution % 4:
            raise ConfigError(
                f"dataset.resolution is {resolution}, but the CycleGAN generator (model=cyclegan) "
                "downsamples twice by 2 and needs a multiple of 4 that is >= 16 (e.g. 32, 64, 128, 256)."
            )
        blocks = require_positive_int("blocks", (6 if resolution < 256 else 9) if blocks is None else blocks)
        make_norm, bias = norm_layer(norm), norm != "batch"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias), make_norm(width), nn.ReLU(True),
        ]
        for mult in (1, 2):  # d128, d256: (B, 4 * width, R / 4, R / 4)
            layers += [nn.Conv2d(width * mult, width * mult * 2, 3, 2, 1, bias=bias),
                       make_norm(width * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(width * 4, norm) for _ in range(blocks)]
        for mult in (4, 2):  # u128, u64: back to (B, width, R, R)
            layers += [nn.ConvTranspose2d(width * mult, width * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                       make_norm(width * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


def build(
    shape: tuple[int, ...],
    input_shape: tuple[int, ...] | None = None,
    num_classes: int = 0,
    g_width: int = 64,
    d_width: int = 64,
    blocks: int | None = None,
    norm: str = "instance",
    d_layers: int = 3,
) -> Networks:
    """CycleGAN networks between domain A (``input_shape``, default ``shape``) and B (``shape``).

    ``G_ab``: A -> B and ``G_ba``: B -> A ResNet generators; ``D_a`` / ``D_b``: PatchGANs on
    images of A / B, returning ``(B, 1, h, w)`` logits. ``num_classes`` is ignored.
    """
    channels_a, channels_b, resolution = check_pair("cyclegan", shape, input_shape)
    require_positive_int("g_width", g_width)
    require_positive_int("d_width", d_width)
    nets = {
        "G_ab": ResnetGenerator(channels_a, channels_b, resolution, g_width, blocks, norm),
        "G_ba": ResnetGenerator(channels_b, channels_a, resolution, g_width, blocks, norm),
    }
    check_d_layers(d_layers, resolution)
    nets["D_a"] = PatchDiscriminator(channels_a, d_width, d_layers, norm)
    nets["D_b"] = PatchDiscriminator(channels_b, d_width, d_layers, norm)
    for net in nets.values():
        net.apply(init_weights)
    return Networks(nets)
