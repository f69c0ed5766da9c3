"""Image-to-image translation networks: Pix2Pix (Isola et al. 2017) and shared pieces.

G is the paper's U-Net (encoder C64-C128-C256-C512-C512..., decoder mirrored, skips by
concatenation); D is the PatchGAN, which judges overlapping patches of the input and output
images concatenated along channels. Layers follow the official pytorch-CycleGAN-and-pix2pix
code, except that a conv has a bias unless a BatchNorm follows it.
:mod:`gan_cli.models.cyclegan` reuses :class:`PatchDiscriminator`, :func:`norm_layer` and
:func:`init_weights`.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from gan_cli.config import is_int
from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.freeze import layer_blocks

DATASETS = {  # suggested when a translation model gets the wrong data
    "pix2pix": "digits_edges, digits_inpaint or paired_folder (paired input and target images)",
    "cyclegan": "digits_unpaired or unpaired_folder (two unpaired image domains)",
}


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """``channels -> norm module`` for ``model.norm``: ``batch`` or ``instance`` (no affine, no stats)."""
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    raise ConfigError(
        f"model.norm is {kind!r}; use batch (BatchNorm, the pix2pix default) or instance "
        "(InstanceNorm, the CycleGAN default)."
    )


def init_weights(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02), norm weights ~ N(1, 0.02), biases 0 (apply via ``.apply``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d)):
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def check_image_shape(model: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(channels, resolution)`` of square ``(C, H, W)`` images, else raise ConfigError."""
    if len(shape) != 3:
        raise ConfigError(
            f"model={model} translates images, but the dataset gives samples of shape {tuple(shape)} "
            f"(2D points?); translation needs an image dataset: dataset={DATASETS.get(model, DATASETS['pix2pix'])}."
        )
    channels, height, width = shape
    if height != width:
        raise ConfigError(
            f"the dataset gives {height}x{width} images, but model={model} needs square images; "
            "set dataset.resolution to a single side length."
        )
    return channels, height


def check_pair(model: str, shape: tuple[int, ...], input_shape: tuple[int, ...] | None) -> tuple[int, int, int]:
    """``(input channels, output channels, resolution)`` of an input/target image pair."""
    channels, resolution = check_image_shape(model, tuple(shape))
    in_channels, in_resolution = check_image_shape(model, tuple(shape if input_shape is None else input_shape))
    if in_resolution != resolution:
        raise ConfigError(
            f"the dataset's input images are {in_resolution}x{in_resolution} but its target images are "
            f"{resolution}x{resolution}; model={model} needs both at the same dataset.resolution."
        )
    return in_channels, channels, resolution


def receptive_field(layers: int) -> int:
    """Side in pixels of the input patch one PatchGAN output sees: 1: 16, 2: 34, 3: 70, 4: 142."""
    field = 7  # the two stride-1 4x4 convs at the end
    for _ in range(layers):  # each stride-2 4x4 conv: field -> 2 * field + 2
        field = 2 * field + 2
    return field


def check_d_layers(layers: int, resolution: int) -> None:
    """Raise ConfigError naming ``model.d_layers`` if the PatchGAN output would be empty."""
    require_positive_int("d_layers", layers)
    if resolution >> layers < 3:  # each stride-2 conv halves (rounding down); the last two take 2 px
        fits = 0
        while resolution >> (fits + 1) >= 3:
            fits += 1
        fix = f"use model.d_layers <= {fits} or" if fits else "use"
        raise ConfigError(
            f"model.d_layers={layers} halves {resolution}x{resolution} images {layers} times, which "
            f"leaves the PatchGAN no output pixels; {fix} a dataset.resolution >= {3 << layers}."
        )


class UNetGenerator(nn.Module):
    """The pix2pix U-Net: ``a (B, in, R, R)`` -> ``(B, out, R, R)`` in [-1, 1].

    ``depth`` stride-2 downsamplings (None: down to 1x1, log2 R) with ``width * min(2**i, 8)``
    channels; each upsampling gets the mirrored encoder output concatenated to its input.
    ``down[i]`` / ``up[i]`` are the encoder / decoder layers at level ``i`` (0 outermost).
    """

    conditional = False

    def __init__(self, in_channels: int, out_channels: int, resolution: int, width: int = 64,
                 depth: int | None = None, dropout: float = 0.5, norm: str = "batch") -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ConfigError(
                f"dataset.resolution is {resolution}, but the U-Net (model=pix2pix) halves images "
                "down to 1x1 and needs a power of two >= 4 (e.g. 32, 64, 128, 256)."
            )
        max_depth = int(math.log2(resolution))
        depth = max_depth if depth is None else depth
        if not is_int(depth) or not 1 <= depth <= max_depth:
            raise ConfigError(
                f"model.depth is {depth!r}, but at dataset.resolution={resolution} the U-Net can "
                f"downsample 1 to {max_depth} times; use one of those or model.depth=null (down to 1x1)."
            )
        if not 0 <= dropout < 1:
            raise ConfigError(f"model.dropout is {dropout!r}; use a probability in [0, 1) (0.5 in the paper).")
        make_norm, bias = norm_layer(norm), norm != "batch"  # no bias right before a BatchNorm
        chans = [width * min(2**i, 8) for i in range(depth)]
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        for i in range(depth):
            inner = 0 < i < depth - 1  # no norm on the outermost and innermost layers
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_channels if i == 0 else chans[i - 1], chans[i], 4, 2, 1,
                                    bias=bias or not inner))
            if inner:
                layers.append(make_norm(chans[i]))
            self.down.append(nn.Sequential(*layers))  # (B, chans[i], R / 2**(i+1), ...)
        for i in range(depth):
            up_in = chans[i] if i == depth - 1 else 2 * chans[i]  # all but the innermost also get a skip
            if i == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(), nn.ConvTranspose2d(up_in, chans[i - 1], 4, 2, 1, bias=bias),
                          make_norm(chans[i - 1])]
                if dropout > 0 and depth - 4 <= i < depth - 1:  # three blocks after the innermost
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))  # (B, chans[i-1] or out, R / 2**i, ...)

    def forward(self, a: Tensor) -> Tensor:
        skips = []
        for down in self.down:
            a = down(a)
            skips.append(a)
        x = self.up[-1](skips.pop())  # innermost: no skip
        for up in reversed(self.up[:-1]):
            x = up(torch.cat([skips.pop(), x], dim=1))
        return x


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``x (B, in, H, W)`` -> raw logits ``(B, 1, h, w)``, one per overlapping patch.

    ``layers`` stride-2 4x4 convs (``width * min(2**i, 8)`` channels, no norm on the first),
    one stride-1 4x4 conv, then a 1-channel stride-1 4x4 conv; each output pixel sees a
    :func:`receptive_field` ``(layers)`` square of the input (70x70 for ``layers=3``).
    """

    conditional = False

    def __init__(self, in_channels: int, width: int = 64, layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), norm != "batch"
        chans = [width * min(2**i, 8) for i in range(layers + 1)]
        seq: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1
            seq += [nn.Conv2d(chans[i - 1], chans[i], 4, stride, 1, bias=bias), make_norm(chans[i]),
                    nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(chans[-1], 1, 4, 1, 1))
        self.main = nn.Sequential(*seq)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """(B, C, H, W) -> patch logits (B, 1, h, w). `y` (class labels) is accepted and ignored,
        so that gradient penalties can call every discriminator as D(x, y)."""
        return self.main(x)

    def input_blocks(self) -> list[nn.Module]:
        """The input conv, each conv-norm-LeakyReLU layer, then the head: the last conv."""
        return layer_blocks(self.main)


def build(
    shape: tuple[int, ...],
    input_shape: tuple[int, ...] | None = None,
    num_classes: int = 0,
    g_width: int = 64,
    d_width: int = 64,
    depth: int | None = None,
    dropout: float = 0.5,
    norm: str = "batch",
    d_layers: int = 3,
) -> Networks:
    """Pix2Pix networks for input images ``input_shape`` (default ``shape``) -> targets ``shape``.

    ``G``: U-Net ``(B, C_a, R, R) -> (B, C_b, R, R)``. ``D``: PatchGAN on the input and the
    (real or generated) output concatenated along channels, ``(B, C_a + C_b, R, R)``; the caller
    concatenates. ``num_classes`` is ignored.
    """
    in_channels, out_channels, resolution = check_pair("pix2pix", shape, input_shape)
    require_positive_int("g_width", g_width)
    require_positive_int("d_width", d_width)
    generator = UNetGenerator(in_channels, out_channels, resolution, g_width, depth, dropout, norm)
    check_d_layers(d_layers, resolution)
    nets = {"G": generator, "D": PatchDiscriminator(in_channels + out_channels, d_width, d_layers, norm)}
    for net in nets.values():
        net.apply(init_weights)
    return Networks(nets)
