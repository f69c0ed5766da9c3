"""Reusable building blocks for generators and discriminators.

- :class:`SelfAttention`: SAGAN self-attention over the pixels of a feature map (Zhang et al. 2018).
- :class:`MinibatchStdDev`: ProGAN's minibatch standard deviation feature (Karras et al. 2018).
- :class:`MinibatchDiscrimination`: minibatch features from L1 distances (Salimans et al. 2016).
- :func:`apply_spectral_norm`: spectral normalisation (Miyato et al. 2018) on every weight layer.
- :class:`ConditionalBatchNorm2d`: BatchNorm with a per-class gain and bias (for conditional G).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

SN_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)


class SelfAttention(nn.Module):
    """SAGAN self-attention: ``(B, C, H, W)`` -> ``(B, C, H, W)``.

    Keys ``f(x)``, queries ``g(x)`` and values ``h(x)`` are 1x1 convs to ``C // 8`` channels
    (at least 1); each pixel attends over all ``H * W`` pixels with a softmax, a 1x1 conv ``v``
    maps the attended values back to ``C`` channels, and the block returns ``gamma * o + x``.
    ``gamma`` starts at 0, so the block is the identity at initialisation and the network
    learns how much non-local evidence to mix in.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.f = nn.Conv2d(channels, inner, 1, bias=False)  # keys
        self.g = nn.Conv2d(channels, inner, 1, bias=False)  # queries
        self.h = nn.Conv2d(channels, inner, 1, bias=False)  # values
        self.v = nn.Conv2d(inner, channels, 1, bias=False)  # back to C channels
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        keys = self.f(x).flatten(2)  # (B, C', N)
        queries = self.g(x).flatten(2)  # (B, C', N)
        values = self.h(x).flatten(2)  # (B, C', N)
        attn = torch.softmax(queries.transpose(1, 2) @ keys, dim=-1)  # (B, N query, N key)
        out = values @ attn.transpose(1, 2)  # (B, C', N): out[:, :, j] = sum_i attn[j, i] h_i
        out = self.v(out.view(b, -1, height, width))  # (B, C, H, W)
        return self.gamma * out + x


class MinibatchStdDev(nn.Module):
    """ProGAN minibatch standard deviation: appends one feature with the batch's spread.

    The batch is split into groups of ``group_size`` samples (sample ``b`` is in group
    ``b % (B / group)``); within a group each feature's standard deviation over the samples is
    taken, averaged over all features (channels and pixels), and the value is appended as one
    constant channel ``(B, C, H, W) -> (B, C + 1, H, W)`` (or one feature,
    ``(B, F) -> (B, F + 1)``) to every sample of the group. When ``B`` is not divisible by
    ``group_size`` the largest divisor of ``B`` below it is used (1 at worst: then the
    "std" is the constant ``sqrt(1e-8)`` and carries no information).
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        group = max(d for d in range(1, min(self.group_size, b) + 1) if b % d == 0)
        y = x.reshape(group, b // group, *x.shape[1:]).float()  # (G, M, ...)
        y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt()  # (M, ...) std over the group
        y = y.flatten(1).mean(1).to(x.dtype)  # (M,)
        y = y.repeat(group)  # (B,): sample g * M + m gets group m's value
        feature = y.view(b, 1, *([1] * (x.dim() - 2))).expand(b, 1, *x.shape[2:])
        return torch.cat([x, feature], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: ``(B, in_features)`` -> ``(B, in_features + num_kernels)``.

    ``M = x @ T`` is reshaped to ``(B, num_kernels, kernel_dim)``; for each kernel ``k``,
    ``o_k(x_i) = sum_{j != i} exp(-||M_i,k - M_j,k||_1)`` measures how close sample ``i`` is
    to the rest of the batch, and ``[x, o]`` is returned, so D can spot a collapsed batch.
    Memory grows as ``B^2 * num_kernels * kernel_dim``.
    """

    def __init__(self, in_features: int, num_kernels: int = 50, kernel_dim: int = 5) -> None:
        super().__init__()
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        m = (x @ self.T).view(-1, self.num_kernels, self.kernel_dim)  # (B, K, D)
        dist = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)  # (B, B, K) L1 distances
        o = torch.exp(-dist).sum(1) - 1  # (B, K): exclude self (exp(0) = 1)
        return torch.cat([x, o], dim=1)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_kernels={self.num_kernels}, "
                f"kernel_dim={self.kernel_dim}")


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d without affine parameters, then a per-class gain and bias.

    ``forward(x (B, C, H, W), y (B,) int64)``; gains start at N(1, 0.02) per class (as DCGAN's
    BatchNorm init, so classes differ slightly from the first step) and biases at 0. Exempt from :func:`apply_spectral_norm`
    (the gains are not a linear map whose scale should be constrained).
    """

    spectral_norm_exempt = True

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.num_features, self.num_classes = num_features, num_classes
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.normal_(self.gain.weight, 1.0, 0.02)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        out = self.bn(x)
        gain = self.gain(y).view(-1, self.num_features, 1, 1)
        bias = self.bias(y).view(-1, self.num_features, 1, 1)
        return gain * out + bias


def apply_spectral_norm(module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12) -> nn.Module:
    """Wrap the ``weight`` of every Linear/Conv2d/ConvTranspose2d/Embedding in ``module`` in
    :func:`torch.nn.utils.parametrizations.spectral_norm`; returns ``module``.

    Layers that already carry a parametrization on ``weight`` are left alone, so calling it
    twice is harmless; layers inside a module with ``spectral_norm_exempt = True``
    (:class:`ConditionalBatchNorm2d`) are skipped.
    """
    exempt: set[int] = set()
    targets: list[nn.Module] = []
    for sub in module.modules():
        if getattr(sub, "spectral_norm_exempt", False):
            exempt.update(id(m) for m in sub.modules())
        if id(sub) not in exempt and isinstance(sub, SN_LAYERS):
            targets.append(sub)
    for layer in targets:
        if not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer, n_power_iterations=n_power_iterations, eps=eps)
    return module
