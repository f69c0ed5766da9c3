"""Class-balance statistics of a conditional or unconditional generator, from a pretrained classifier's
predicted labels (the "number of modes covered" + KL-to-uniform protocol used on stacked MNIST by
VEEGAN, Srivastava et al. 2017, and PacGAN, Lin et al. 2018)."""
from __future__ import annotations

import torch
from torch import Tensor

from gan_cli.metrics.modes2d import kl_from_uniform


def class_stats(predicted: Tensor, num_classes: int) -> dict[str, float]:
    """class_coverage and class_kl for predicted labels (N,) int64 in [0, num_classes).

    A class is covered if at least max(1, 0.1 * N / K) samples are predicted as it, i.e. it gets at least
    a tenth of its uniform share (a stray prediction or two does not count as covering a class when N >> K).
    class_coverage is the fraction of the K classes covered; class_kl is KL(p || uniform) of the
    predicted-class histogram (epsilon-smoothed, 0 when balanced, log K when all samples share one class).
    """
    if predicted.ndim != 1:
        raise ValueError(f"predicted must be (N,), got {tuple(predicted.shape)}")
    if predicted.numel() and (predicted.min() < 0 or predicted.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    counts = torch.bincount(predicted.long(), minlength=num_classes)  # (K,)
    min_count = max(1.0, 0.1 * predicted.numel() / num_classes)
    return {
        "class_coverage": float((counts >= min_count).double().mean()),
        "class_kl": kl_from_uniform(counts),
    }
