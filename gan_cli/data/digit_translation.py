"""Embedded image-to-image translation tasks made from scikit-learn's digits; no files needed.

Every task trains on the fixed 80% ``train`` split of :func:`gan_cli.data.embedded.digits_split`
and holds out the other 20% (the split the digits classifier is checked on), so held-out
inputs were never seen in training.

- ``digits_edges`` (paired): the outline of a digit -> the digit (pix2pix's edges -> photo).
- ``digits_inpaint`` (paired): a digit with a square hole -> the whole digit.
- ``digits_unpaired`` (unpaired): grey digits (A) and thick, coloured digits (B) drawn from
  disjoint halves of the training split, so no A image has its B counterpart in the data;
  the mapping is known (:func:`to_domain_b`), so held-out outputs can be scored against it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset

from gan_cli.config import is_number
from gan_cli.data.base import GanData, TranslationTest
from gan_cli.data.embedded import check_channels, check_int, digits, digits_split
from gan_cli.errors import ConfigError

BACKGROUND_B = (0.05, 0.10, 0.35)  # dark blue
STROKE_B = (1.00, 0.60, 0.10)  # warm orange
EDGE_THRESHOLD = 0.35  # of the strongest edge: a sketch of thin outlines


def _digits(resolution: int, channels: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, held-out images, held-out labels) in [-1, 1]."""
    data = digits(resolution=resolution, channels=channels)
    x, y = data.dataset.tensors
    train, heldout = digits_split(y)
    return x[train], y[train], x[heldout], y[heldout]


def _dilate(x01: Tensor) -> Tensor:
    return F.max_pool2d(x01, 3, stride=1, padding=1)


def edges(x: Tensor, threshold: float = EDGE_THRESHOLD) -> Tensor:
    """Binary outlines of images in [-1, 1], as a sketch: 1 where the morphological gradient
    (3x3 dilation - erosion) is above ``threshold`` of the image's strongest edge, else -1.
    Stroke intensity is lost, so the output is not a function of the input alone."""
    x01 = (x + 1) / 2
    gradient = _dilate(x01) + _dilate(-x01)  # max - min over each 3x3 neighbourhood
    strongest = gradient.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return torch.where(gradient > threshold * strongest, 1.0, -1.0)


def with_hole(x: Tensor, fraction: float, seed: int) -> Tensor:
    """A copy of images ``x`` (N, C, R, R) with one square hole each (side ``fraction * R``)
    filled with 0, at a position drawn per image from ``seed`` (so the same every time)."""
    n, _, r, _ = x.shape
    side = max(1, round(fraction * r))
    g = torch.Generator().manual_seed(seed)
    top, left = (torch.randint(0, r - side + 1, (n,), generator=g) for _ in range(2))
    rows, cols = torch.arange(r).view(1, r, 1), torch.arange(r).view(1, 1, r)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < top.view(-1, 1, 1) + side)
              & (cols >= left.view(-1, 1, 1)) & (cols < left.view(-1, 1, 1) + side))  # (N, R, R)
    return x.masked_fill(inside.unsqueeze(1), 0.0)


def to_domain_b(x: Tensor) -> Tensor:
    """Grey digits (N, 1 or 3, R, R) in [-1, 1] -> domain B: strokes thickened by a 3x3
    dilation, drawn in warm orange on dark blue, (N, 3, R, R) in [-1, 1]."""
    stroke = _dilate((x[:, :1] + 1) / 2)  # (N, 1, R, R) in [0, 1]
    background = torch.tensor(BACKGROUND_B).view(1, 3, 1, 1)
    colour = torch.tensor(STROKE_B).view(1, 3, 1, 1)
    return (background + (colour - background) * stroke) * 2 - 1


def _paired(name: str, inputs: Tensor, targets: Tensor, labels: Tensor,
            test_inputs: Tensor, test_targets: Tensor, test_labels: Tensor) -> GanData:
    test = TranslationTest(inputs=test_inputs, domain_b=test_targets, targets=test_targets, labels=test_labels,
                           domain_a=test_inputs)
    return GanData(TensorDataset(inputs, targets, labels), kind="paired", shape=tuple(targets.shape[1:]),
                   num_classes=10, name=name, input_shape=tuple(inputs.shape[1:]), test=test)


def digits_edges(resolution: int = 32, channels: int = 1) -> GanData:
    """Paired: the outline of a digit (A) -> the digit (B), both ``channels`` x ``resolution``^2."""
    check_int("resolution", resolution, 8, "the digits are 8x8 pixels; they are only upsampled")
    x, y, x_test, y_test = _digits(resolution, check_channels(channels))
    return _paired("digits_edges", edges(x), x, y, edges(x_test), x_test, y_test)


def digits_inpaint(resolution: int = 32, channels: int = 1, hole: float = 0.375) -> GanData:
    """Paired: a digit with a square hole of side ``hole * resolution`` filled with 0 (A) -> the digit (B)."""
    check_int("resolution", resolution, 8, "the digits are 8x8 pixels; they are only upsampled")
    if not is_number(hole) or not 0 < hole < 1:
        raise ConfigError(f"dataset.hole must be a fraction of the image side in (0, 1), got {hole!r}.")
    x, y, x_test, y_test = _digits(resolution, check_channels(channels))
    return _paired("digits_inpaint", with_hole(x, hole, seed=0), x, y, with_hole(x_test, hole, seed=1), x_test, y_test)


def digits_unpaired(resolution: int = 32) -> GanData:
    """Unpaired: grey digits as RGB (A, one half of the training split) and thick orange-on-blue
    digits (B, the other half). Held out: grey digits, their known B images (targets) and labels."""
    check_int("resolution", resolution, 8, "the digits are 8x8 pixels; they are only upsampled")
    x, y, x_test, y_test = _digits(resolution, channels=3)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    half_a, half_b = order[: len(x) // 2], order[len(x) // 2 : 2 * (len(x) // 2)]  # disjoint, equal sizes
    dataset = TensorDataset(x[half_a], to_domain_b(x[half_b]), y[half_a], y[half_b])
    test_b = to_domain_b(x_test)
    test = TranslationTest(inputs=x_test, domain_b=test_b, targets=test_b, labels=y_test, domain_a=x_test)
    shape = (3, resolution, resolution)
    return GanData(dataset, kind="unpaired", shape=shape, num_classes=10, name="digits_unpaired",
                   input_shape=shape, test=test)
