"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN").

Generator: a mapping network z -> w (pixel norm, `mapping_layers` equalised FC layers with
lr_mul 0.01) and a synthesis network from a learned 4x4 constant: per resolution two 3x3
modulated convolutions with weight demodulation, per-layer noise, and a skip architecture
(a toRGB per resolution, images upsampled and summed). Discriminator: residual blocks down to
4x4, then minibatch stddev, a 3x3 conv and two FC layers. Every layer has an equalised lr.

Compared with stylegan2-ada-pytorch (NVlabs): bilinear up- and average-pool downsampling
instead of the FIR filter, no custom ops; demodulation scales the activations (their
`fused_modconv=False` path), which keeps one batched convolution, fast on CPUs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.config import check_range
from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.equalized import LRELU_GAIN, EqualConv2d, EqualLinear, PixelNorm
from gan_cli.models.layers import MinibatchStdDev


def lrelu(x: Tensor) -> Tensor:
    """Leaky ReLU 0.2 with He's gain sqrt(2), as every StyleGAN2 activation."""
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def widths(width: int, max_channels: int, resolution: int) -> dict[int, int]:
    """Channels by feature-map side: `width` at `resolution`, doubling toward 4x4, capped."""
    return {4 * 2**i: min(width * resolution // (4 * 2**i), max_channels)
            for i in range(int(math.log2(resolution)) - 1)}


class ModulatedConv(nn.Module):
    """``(x (B, in, H, W), w (B, w_dim)) -> (B, out, H, W)``: a conv whose input channels are scaled
    per sample by the style s = affine(w) (bias init 1), then (``demodulate``) each output channel is
    divided by sqrt(sum (weight * s)^2 + 1e-8), so unit-variance input stays unit-variance whatever
    the style's scale (StyleGAN2 Sec. 2.2). Done by scaling activations around one shared conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate, self.padding = demodulate, kernel_size // 2

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w)  # (B, in)
        weight = self.weight * self.scale  # (out, in, k, k)
        if not self.demodulate:  # toRGB: the style's scale carries through (ada scales by 1/sqrt(in))
            return F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)  # (B, out, H, W)
        dcoefs = (weight.square().sum((2, 3)) @ styles.square().T + 1e-8).rsqrt()  # (out, B)
        return x * dcoefs.T[:, :, None, None]


class StyleLayer(nn.Module):
    """Modulated 3x3 conv (after a 2x upsample when ``up``), noise, bias, lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))  # StyleGAN: learned, starts at 0
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.up = up

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = self.conv(upsample(x) if self.up else x, w)
        b, _, h, width = x.shape
        x = x + self.noise_strength * torch.randn(b, 1, h, width, device=x.device, dtype=x.dtype)
        return lrelu(x + self.bias[:, None, None])


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, image_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(in_channels, image_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(image_channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias[:, None, None]


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> images (B, C, H, W). Resolution r > 4 uses ws[i], ws[i+1] for its two
    convs and ws[i+2] for its toRGB (shared with the next resolution's first conv), as in ada."""

    def __init__(self, w_dim: int, image_channels: int, resolution: int, channels: dict[int, int]):
        super().__init__()
        self.const = nn.Parameter(torch.randn(channels[4], 4, 4))
        sides = sorted(channels)
        self.convs = nn.ModuleList([StyleLayer(channels[4], channels[4], w_dim)])
        self.to_rgb = nn.ModuleList([ToRGB(channels[4], image_channels, w_dim)])
        for prev, side in zip(sides, sides[1:]):
            self.convs.append(StyleLayer(channels[prev], channels[side], w_dim, up=True))
            self.convs.append(StyleLayer(channels[side], channels[side], w_dim))
            self.to_rgb.append(ToRGB(channels[side], image_channels, w_dim))
        self.num_ws = len(self.convs) + 1

    def forward(self, ws: Tensor) -> Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)  # (B, C4, 4, 4)
        x = self.convs[0](x, ws[:, 0])
        image = self.to_rgb[0](x, ws[:, 1])
        for i, to_rgb in enumerate(self.to_rgb[1:]):
            x = self.convs[2 * i + 1](x, ws[:, 2 * i + 1])
            x = self.convs[2 * i + 2](x, ws[:, 2 * i + 2])
            image = upsample(image) + to_rgb(x, ws[:, 2 * i + 3])  # skip architecture
        return image


class StyleGAN2Generator(nn.Module):
    """G(z, y=None, truncation=None, return_ws=False) -> images (B, C, H, W) [, ws (B, num_ws, w_dim)].
    `y` is ignored (unconditional)."""

    truncation = "w"  # truncation acts on w (around w_avg), not on z
    conditional = False

    def __init__(self, latent_dim: int, w_dim: int, image_channels: int, resolution: int, channels: dict[int, int],
                 mapping_layers: int = 2, mapping_lr_mul: float = 0.01, mixing_prob: float = 0.9,
                 w_avg_beta: float = 0.995):
        super().__init__()
        self.latent_dim, self.w_dim = latent_dim, w_dim
        self.mixing_prob, self.w_avg_beta = mixing_prob, w_avg_beta
        dims = [latent_dim] + [w_dim] * mapping_layers
        self.norm = PixelNorm()
        self.mapping_layers = nn.ModuleList(EqualLinear(a, b, lr_mul=mapping_lr_mul) for a, b in zip(dims, dims[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))  # running mean of w: the truncation centre
        self.synthesis = SynthesisNetwork(w_dim, image_channels, resolution, channels)
        self.num_ws = self.synthesis.num_ws

    def mapping(self, z: Tensor, truncation: float | None = None, update_avg: bool = True) -> Tensor:
        """z (B, latent_dim) -> w (B, w_dim). Truncation psi: w_avg + psi (w - w_avg) (psi=1: w itself).
        In training mode without truncation, w_avg <- lerp(batch mean of w, w_avg, w_avg_beta)."""
        w = self.norm(z)
        for layer in self.mapping_layers:
            w = lrelu(layer(w))
        if truncation is None and update_avg and self.training:  # w_avg stays fp32 under autocast
            self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation is not None and truncation != 1:
            w = self.w_avg.lerp(w.float(), truncation)
        return w

    def forward(self, z: Tensor, y: Tensor | None = None, truncation: float | None = None,
                return_ws: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        ws = self.mapping(z, truncation).unsqueeze(1).repeat(1, self.num_ws, 1)  # (B, num_ws, w_dim)
        if self.training and self.mixing_prob > 0:
            ws = self.mix(ws, z)
        images = self.synthesis(ws)
        return (images, ws) if return_ws else images

    def mix(self, ws: Tensor, z: Tensor) -> Tensor:
        """Style mixing regularisation (StyleGAN Sec. 3.1): one crossover per batch, uniform in
        [1, num_ws); each sample whose draw is below `mixing_prob` takes a second z's w from it on."""
        cutoff = torch.randint(1, self.num_ws, (), device=z.device)
        mixed = torch.rand(z.shape[0], 1, 1, device=z.device) < self.mixing_prob  # (B, 1, 1)
        late = torch.arange(self.num_ws, device=z.device)[None, :, None] >= cutoff  # (1, num_ws, 1)
        w2 = self.mapping(torch.randn_like(z), update_avg=False)  # (B, w_dim)
        return torch.where(mixed & late, w2.unsqueeze(1), ws)


class DBlock(nn.Module):
    """Residual D block: conv3x3-lrelu, downsample-conv3x3-lrelu; skip downsample-1x1; sum / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = self.conv1(F.avg_pool2d(lrelu(self.conv0(x)), 2))  # pool then conv: ada's blur + stride-2 conv
        return (skip + lrelu(x)) / math.sqrt(2)


class StyleGAN2Discriminator(nn.Module):
    """D(x (B, C, H, W), y=None) -> (B,) logits."""

    def __init__(self, image_channels: int, resolution: int, channels: dict[int, int], mbstd_group: int = 4):
        super().__init__()
        sides = sorted(channels, reverse=True)
        self.from_rgb = EqualConv2d(image_channels, channels[resolution], 1)
        self.blocks = nn.Sequential(*(DBlock(channels[a], channels[b]) for a, b in zip(sides, sides[1:])))
        c4 = channels[4]
        self.mbstd = MinibatchStdDev(mbstd_group)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4)
        self.out = EqualLinear(c4, 1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        x = self.blocks(lrelu(self.from_rgb(x)))  # (B, C4, 4, 4)
        x = lrelu(self.conv(self.mbstd(x)))
        return self.out(lrelu(self.fc(x.flatten(1)))).squeeze(1)

    def input_blocks(self) -> list[nn.Module]:
        """``from_rgb``, each residual block, then the head: the 4x4 epilogue (conv, two FC layers)."""
        return [self.from_rgb, *self.blocks, nn.ModuleList([self.conv, self.fc, self.out])]


def build(shape: tuple[int, ...], num_classes: int = 0, latent_dim: int = 128, w_dim: int = 128,
          mapping_layers: int = 2, mapping_lr_mul: float = 0.01, g_width: int = 32, d_width: int = 32,
          max_channels: int = 256, mixing_prob: float = 0.9, w_avg_beta: float = 0.995,
          mbstd_group: int = 4) -> Networks:
    """StyleGAN2 G and D for square images whose side is a power of two from 8 up; unconditional."""
    if len(shape) != 3:
        raise ConfigError(f"model=stylegan needs (C, H, W) images, but the dataset gives shape {tuple(shape)}; "
                          "use an image dataset (digits, mnist, cifar10, ...).")
    channels, height, width = (int(s) for s in shape)
    if height != width or height < 8 or height & (height - 1):
        raise ConfigError(f"dataset.resolution gives {height}x{width} images, which is not a power of two from 8 "
                          "up; model=stylegan needs square images of side 8, 16, 32, 64, 128, 256 ...")
    for key, value in (("latent_dim", latent_dim), ("w_dim", w_dim), ("mapping_layers", mapping_layers),
                       ("g_width", g_width), ("d_width", d_width), ("max_channels", max_channels),
                       ("mbstd_group", mbstd_group)):
        require_positive_int(key, value)
    check_range("model.mapping_lr_mul", mapping_lr_mul, 0, math.inf, True, "the paper's 0.01")
    check_range("model.mixing_prob", mixing_prob, 0, 1, False, "0 (off) or the paper's 0.9")
    check_range("model.w_avg_beta", w_avg_beta, 0, 1, False, "the paper's 0.995")
    generator = StyleGAN2Generator(latent_dim, w_dim, channels, height, widths(g_width, max_channels, height),
                                   mapping_layers, mapping_lr_mul, mixing_prob, w_avg_beta)
    discriminator = StyleGAN2Discriminator(channels, height, widths(d_width, max_channels, height), mbstd_group)
    return Networks.pair(generator, discriminator, latent_dim)
