"""ProGAN (Karras et al. 2018, "Progressive Growing of GANs"): G and D that grow from 4x4 to the target side.

Both networks hold every resolution's layers from the start; buffers ``level`` (0 = 4x4 ...
L-1 = full) and ``alpha`` (fade-in weight, 1 = no fade) say how much of them runs, so checkpoints,
the EMA copy of G and ``gan sample`` all know the progress. The progan game
(gan_cli/games/progan.py) sets them from the step with ``set_progress``.

- Equalised learning rate everywhere (:mod:`gan_cli.models.equalized`), pixel norm after every
  conv of G, leaky ReLU 0.2, no normalisation in D, minibatch stddev before D's last block.
- Fade-in (Sec. 2, Fig. 2): G outputs ``lerp(up(toRGB_prev(h_prev)), toRGB(h), alpha)``; D reads
  ``lerp(fromRGB_prev(down(x)), block(fromRGB(x)), alpha)``.
- Widths: ``g_width`` / ``d_width`` channels at the full resolution, doubling at each halving of
  the side, capped at ``max_channels`` (the paper: 16 at 1024 px ... 512 from 32 px down).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.equalized import LRELU_GAIN, EqualConv2d, EqualLinear, PixelNorm
from gan_cli.models.layers import MinibatchStdDev


def num_levels(resolution: int) -> int:
    """Resolutions from 4x4 up to ``resolution``: 2 at 8 px, 4 at 32 px."""
    return resolution.bit_length() - 2


def widths(resolution: int, width: int, max_channels: int) -> list[int]:
    """Channels per level, 4x4 first: ``width`` at the full side, doubled per halving, capped."""
    levels = num_levels(resolution)
    return [min(width * 2 ** (levels - 1 - i), max_channels) for i in range(levels)]


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)


class Progress(nn.Module):
    """The growth state: buffers ``level`` (int64) and ``alpha`` (float), saved with the weights, and
    their host copies, which the forward reads (a read of a buffer would wait on the GPU every call).
    Loading a state dict refreshes the host copies; so does the EMA's buffer copy (``host_state``)."""

    grows = True  # the layers of resolutions not yet reached get no gradient (DDP must expect that)

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.num_levels = levels
        self.register_buffer("level", torch.tensor(levels - 1))  # fully grown until a game says otherwise
        self.register_buffer("alpha", torch.tensor(1.0))
        self._progress = (levels - 1, 1.0)
        self.register_load_state_dict_post_hook(lambda module, _: module._read_buffers())

    def set_progress(self, level: int, alpha: float) -> None:
        if not 0 <= level < self.num_levels or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"progress (level {level}, alpha {alpha}) outside [0, {self.num_levels}) x [0, 1]")
        if (level, alpha) != self._progress:  # the buffers change on the device, without a sync
            self.level.fill_(level)
            self.alpha.fill_(alpha)
            self._progress = (int(level), float(alpha))

    def progress(self) -> tuple[int, float]:
        return self._progress

    def growth(self) -> tuple[int, bool]:
        """What the forward branches on: (level, fading). The fade weight is the ``alpha`` buffer, so a
        compiled forward does not recompile at every step of a fade-in."""
        level, alpha = self._progress
        return level, level > 0 and alpha < 1.0

    def host_state(self) -> tuple[int, float]:
        return self._progress

    def load_host_state(self, state: tuple[int, float]) -> None:
        self._progress = state

    def _read_buffers(self) -> None:
        self._progress = (int(self.level), float(self.alpha))


class ProGANGenerator(Progress):
    """``(B, latent_dim)`` -> ``(B, C, R, R)`` (target side R), or the current level's side with ``native``."""

    conditional = False

    def __init__(self, latent_dim: int, channels: int, resolution: int, width: int, max_channels: int) -> None:
        super().__init__(num_levels(resolution))
        self.latent_dim, self.resolution = latent_dim, resolution
        ch = widths(resolution, width, max_channels)
        self.input = EqualLinear(latent_dim, ch[0] * 16, gain=LRELU_GAIN / 4)  # the paper's gain sqrt(2)/4
        self.stem = nn.Sequential(lrelu(), PixelNorm(), EqualConv2d(ch[0], ch[0], 3, gain=LRELU_GAIN), lrelu(),
                                  PixelNorm())
        self.blocks = nn.ModuleList(  # blocks[i - 1]: level i - 1 -> level i
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                          EqualConv2d(ch[i - 1], ch[i], 3, gain=LRELU_GAIN), lrelu(), PixelNorm(),
                          EqualConv2d(ch[i], ch[i], 3, gain=LRELU_GAIN), lrelu(), PixelNorm())
            for i in range(1, len(ch)))
        self.to_rgb = nn.ModuleList(EqualConv2d(c, channels, 1) for c in ch)  # gain 1: a linear output
        self.pixel_norm = PixelNorm()

    def forward(self, z: Tensor, y: Tensor | None = None, native: bool = False) -> Tensor:
        level, fading = self.growth()
        h = self.input(self.pixel_norm(z))  # (B, C0 * 16)
        h = self.stem(h.view(z.shape[0], -1, 4, 4))  # (B, C0, 4, 4)
        prev = h
        for block in self.blocks[:level]:
            prev, h = h, block(h)  # (B, C_i, 4 * 2^i, 4 * 2^i)
        out = self.to_rgb[level](h)
        if fading:  # the new resolution's output blended over the upsampled old one
            before = F.interpolate(self.to_rgb[level - 1](prev), scale_factor=2.0, mode="nearest")  # fp32 under CUDA autocast
            out = torch.lerp(before.to(out.dtype), out, self.alpha.to(out.dtype))
        if not native and out.shape[-1] != self.resolution:
            out = F.interpolate(out, size=self.resolution, mode="nearest")
        return out


class ProGANDiscriminator(Progress):
    """``(B, C, S, S)`` -> ``(B,)`` scores, S = 4 * 2^k <= the target side; ``y`` is ignored."""

    def __init__(self, channels: int, resolution: int, width: int, max_channels: int, mbstd_group: int) -> None:
        super().__init__(num_levels(resolution))
        ch = widths(resolution, width, max_channels)
        self.from_rgb = nn.ModuleList(nn.Sequential(EqualConv2d(channels, c, 1, gain=LRELU_GAIN), lrelu())
                                      for c in ch)
        self.blocks = nn.ModuleList(  # blocks[i - 1]: level i -> level i - 1
            nn.Sequential(EqualConv2d(ch[i], ch[i], 3, gain=LRELU_GAIN), lrelu(),
                          EqualConv2d(ch[i], ch[i - 1], 3, gain=LRELU_GAIN), lrelu(), nn.AvgPool2d(2))
            for i in range(1, len(ch)))
        self.final = nn.Sequential(
            MinibatchStdDev(mbstd_group), EqualConv2d(ch[0] + 1, ch[0], 3, gain=LRELU_GAIN), lrelu(),
            nn.Flatten(), EqualLinear(ch[0] * 16, ch[0], gain=LRELU_GAIN), lrelu(),  # the 4x4 'valid' conv
            EqualLinear(ch[0], 1))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        level = x.shape[-1].bit_length() - 3
        if not 0 <= level < self.num_levels or x.shape[-1] != 4 << level:
            raise ValueError(f"the ProGAN discriminator takes sides 4 .. {4 << (self.num_levels - 1)} (powers of "
                             f"two), got {tuple(x.shape)}")
        current, fading = self.growth()
        h = self.from_rgb[level](x)
        if level > 0:
            h = self.blocks[level - 1](h)
            if level == current and fading:  # the new block's output over the old input layer's
                before = self.from_rgb[level - 1](F.avg_pool2d(x, 2))
                h = torch.lerp(before.to(h.dtype), h, self.alpha.to(h.dtype))
            for block in reversed(self.blocks[: level - 1]):
                h = block(h)
        return self.final(h).squeeze(1)  # (B,)

    def input_blocks(self) -> list[nn.Module]:
        """One block per feature side, from the full side down to 4x4, holding what outputs that side's features,
        then the head ``final``. At full resolution an image goes through them in order: ``from_rgb[-1]``, then
        ``blocks[-1]`` ... ``blocks[0]``, each with the ``from_rgb`` that reads an image of the side it outputs
        (used only while growing), so freezing k blocks freezes every layer of the k finest sides."""
        rgb = list(self.from_rgb)
        return [rgb[-1], *(nn.ModuleList(pair) for pair in zip(reversed(self.blocks), reversed(rgb[:-1]))),
                self.final]


def build(shape: tuple[int, ...], num_classes: int = 0, latent_dim: int = 128, g_width: int = 16,
          d_width: int = 16, max_channels: int = 128, mbstd_group: int = 4) -> Networks:
    """The ProGAN pair for square images whose side is a power of two >= 8 (unconditional: labels are ignored)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"model=progan needs square (C, H, W) images, but the dataset gives shape {shape}; "
                          "set dataset.resolution (8, 16, 32, 64, ...) on an image dataset.")
    channels, resolution = shape[0], shape[1]
    if resolution < 8 or resolution & (resolution - 1):
        raise ConfigError(f"dataset.resolution={resolution} is not a power of two (at least 8) that model=progan "
                          "can grow to from 4x4; use 8, 16, 32, 64, ...")
    for key, value in (("latent_dim", latent_dim), ("g_width", g_width), ("d_width", d_width),
                       ("max_channels", max_channels), ("mbstd_group", mbstd_group)):
        require_positive_int(key, value)
    return Networks.pair(ProGANGenerator(latent_dim, channels, resolution, g_width, max_channels),
                     ProGANDiscriminator(channels, resolution, d_width, max_channels, mbstd_group), latent_dim)
