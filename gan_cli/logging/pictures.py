"""Pictures of a generator's output: image grids, and scatter plots for 2D points."""
from __future__ import annotations

import math
import os

import torch
from PIL import Image
from torch import Tensor

PADDING = 2  # black pixels around each tile


def image_grid(x: Tensor, nrow: int | None = None) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> (3, H', W') in [0, 1], `nrow` tiles a row (default: nearly square).

    The same pixels as torchvision's make_grid(x, nrow, padding=2, normalize=True, value_range=(-1, 1)),
    without importing torchvision, which costs a second or more of every command's start."""
    x = x.detach().float().cpu().clamp(-1.0, 1.0).sub(-1.0).div(2.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, c, h, w = x.shape
    if n == 1:
        return x[0]
    cols = min(nrow or max(1, int(math.ceil(math.sqrt(n)))), n)
    rows = int(math.ceil(n / cols))
    grid = x.new_zeros(c, rows * (h + PADDING) + PADDING, cols * (w + PADDING) + PADDING)
    for k in range(n):
        top, left = (k // cols) * (h + PADDING) + PADDING, (k % cols) * (w + PADDING) + PADDING
        grid[:, top:top + h, left:left + w] = x[k]
    return grid


def save_picture(picture: Tensor, path: str | os.PathLike) -> None:
    """(3, H, W) in [0, 1] -> an 8-bit image file (PNG, JPEG by the suffix), rounded as torchvision's save_image."""
    pixels = picture.detach().mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8).numpy()
    Image.fromarray(pixels).save(path)


def plot_extent(real: Tensor, margin: float = 0.35) -> float:
    """Half-width of a square view that holds the real data with a margin."""
    return float(real.abs().max()) * (1 + margin)


def scatter_picture(fake: Tensor, real: Tensor, extent: float, size: int = 384) -> Tensor:
    """Generated points (blue) over real points (grey) -> (3, size, size) in [0, 1].

    Points outside the view are drawn on its border, so a diverging generator still shows.
    """
    canvas = torch.ones(3, size, size)
    # light axes through the origin
    mid = size // 2
    canvas[:, mid, :] = 0.9
    canvas[:, :, mid] = 0.9
    for points, colour, radius in ((real, (0.6, 0.6, 0.6), 1), (fake, (0.1, 0.3, 0.9), 1)):
        p = points.detach().float().cpu()  # (N, 2)
        cols = ((p[:, 0] / extent + 1) / 2 * (size - 1)).round().long().clamp(0, size - 1)
        rows = ((1 - (p[:, 1] / extent + 1) / 2) * (size - 1)).round().long().clamp(0, size - 1)
        for dr in range(-radius, radius + 1):
            for dc in range(-radius, radius + 1):
                r, c = (rows + dr).clamp(0, size - 1), (cols + dc).clamp(0, size - 1)
                for ch in range(3):
                    canvas[ch, r, c] = colour[ch]
    return canvas
