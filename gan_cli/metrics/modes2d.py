"""Mode-collapse statistics for 2D Gaussian mixtures (the ring/grid protocol of VEEGAN, Srivastava et al. 2017,
and PacGAN, Lin et al. 2018): a sample is high-quality if it lies within `threshold` standard deviations of its
nearest mixture centre; a mode is covered if at least one high-quality sample has it as nearest centre."""
from __future__ import annotations

import math

import torch
from torch import Tensor

EPS = 1e-10


def kl_from_uniform(counts: Tensor) -> float:
    """KL(p || U_K) = sum_k p_k log(K p_k) of the histogram counts (K,), with p = (counts + eps) / (n + K eps)
    so empty bins stay finite. 0 for an equal histogram; log K at most (all mass in one bin). An empty
    histogram (no samples at all) is scored log K, the worst case."""
    counts = counts.to(torch.float64)  # (K,)
    num = counts.numel()
    if counts.sum() <= 0:
        return math.log(num)
    p = (counts + EPS) / (counts.sum() + num * EPS)  # (K,)
    return float((p * (p * num).log()).sum().clamp(min=0))


def mode_stats(samples: Tensor, centres: Tensor, std: float, threshold: float = 3.0) -> dict[str, float]:
    """modes (covered modes), hq_fraction, kl_uniform (KL of the high-quality samples' mode histogram from
    uniform, the "reverse KL" of PacGAN) and num_modes (K) for samples (N, 2) and centres (K, 2)."""
    if samples.ndim != 2 or centres.ndim != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(f"need (N, 2) samples and (K, 2) centres, got {tuple(samples.shape)}, {tuple(centres.shape)}")
    x = samples.to(torch.float64)  # (N, 2)
    c = centres.to(device=x.device, dtype=torch.float64)  # (K, 2)
    dist = torch.cdist(x, c, compute_mode="donot_use_mm_for_euclid_dist")  # (N, K), exact
    nearest_dist, nearest = dist.min(dim=1)  # (N,), (N,)
    hq = nearest_dist <= threshold * std  # (N,)
    counts = torch.bincount(nearest[hq], minlength=c.shape[0])  # (K,)
    return {
        "modes": float((counts > 0).sum()),
        "hq_fraction": float(hq.double().mean()) if len(x) else 0.0,
        "kl_uniform": kl_from_uniform(counts),
        "num_modes": float(c.shape[0]),
    }
