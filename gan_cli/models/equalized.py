"""Equalised learning rate (Karras et al. 2018, ProGAN; kept by StyleGAN and StyleGAN2) and pixel norm.

An equalised layer stores its weights as N(0, 1) and multiplies them at run time by He's constant
gain / sqrt(fan_in), so every weight moves at the same relative speed under Adam whatever its
layer's fan-in. With gain 1 a unit-variance input gives a unit-variance output at init; gain
sqrt(2) makes up for the half of the signal a (leaky) ReLU removes. Biases are not scaled.
`lr_mul` (StyleGAN's mapping network: 0.01) slows a layer down: weights are stored divided by
it and scaled back at run time, biases too.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_GAIN = math.sqrt(2.0)  # He's gain for (leaky) ReLU


class EqualLinear(nn.Module):
    """``(B, in) -> (B, out)``: ``x @ (w * gain * lr_mul / sqrt(in)).T + b * lr_mul``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, gain: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.scale = gain * lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"{inp}, {out}, lr_mul={self.lr_mul}, scale={self.scale:.4g}"


class EqualConv2d(nn.Module):
    """A stride-1 'same' convolution (odd kernel) with equalised learning rate."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 gain: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        out, inp, k, _ = self.weight.shape
        return f"{inp}, {out}, kernel_size={k}, scale={self.scale:.4g}"


class PixelNorm(nn.Module):
    """Each sample's (and pixel's) feature vector scaled to unit mean square over dim 1."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)
