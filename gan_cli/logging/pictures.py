"""Pictures of a generator's output: image grids, and scatter plots for 2D points."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.utils import make_grid


def image_grid(x: Tensor, nrow: int | None = None) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> (3, H', W') in [0, 1], nearly square."""
    nrow = nrow or max(1, int(math.ceil(math.sqrt(x.shape[0]))))
    return make_grid(x.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)


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
