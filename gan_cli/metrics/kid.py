"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimator of
MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets."""
from __future__ import annotations

import torch
from torch import Tensor


def _poly_kernel(x: Tensor, y: Tensor) -> Tensor:
    """(x.y / D + 1)^3 for rows x (M, D) and y (M', D) -> (M, M')."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD^2 between equal-sized samples x (M, D) and y (M, D): the diagonal terms of
    k(x, x) and k(y, y) are excluded, so the expectation is exactly 0 when x and y share a distribution."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)  # (M, M) each
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.mean()


def kernel_inception_distance(real: Tensor, fake: Tensor, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """(mean, std) of unbiased MMD^2 over `num_subsets` random subsets of real (N, D) and fake (M, D).

    Each subset draws `subset_size` rows from each set without replacement; the draws come from a
    torch.Generator seeded with `seed`, so the result is deterministic. std is the population std over subsets
    (as in the reference implementations), 0 for a single subset. A subset_size larger than N or M is an error
    (as in torch-fidelity), not silently shrunk: KID's value depends on it.
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake must be (N, D) with equal D, got {tuple(real.shape)}, {tuple(fake.shape)}")
    m = subset_size
    if not 2 <= m <= min(real.shape[0], fake.shape[0]):
        raise ValueError(f"KID subset_size={m} must be at least 2 and at most the number of samples in each set "
                         f"(real {real.shape[0]}, fake {fake.shape[0]})")
    real = real.to(torch.float64)  # (N, D)
    fake = fake.to(device=real.device, dtype=torch.float64)  # (M, D)
    gen = torch.Generator().manual_seed(seed)  # CPU generator: same subsets on every device
    values = torch.empty(num_subsets, dtype=torch.float64)  # (S,)
    for s in range(num_subsets):
        ri = torch.randperm(real.shape[0], generator=gen)[:m].to(real.device)  # (m,)
        fi = torch.randperm(fake.shape[0], generator=gen)[:m].to(real.device)  # (m,)
        values[s] = mmd2_unbiased(real[ri], fake[fi]).cpu()
    return float(values.mean()), float(values.std(unbiased=False))
