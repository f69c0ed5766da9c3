"""Fréchet distance between Gaussians fitted to feature sets (FID: Heusel et al. 2017, "GANs Trained by a
Two Time-Scale Update Rule Converge to a Local Nash Equilibrium").

Pure torch, float64, no scipy: the trace of the matrix square root is computed from symmetric
eigendecompositions, which is stable even when the covariances are singular (N < D).
"""
from __future__ import annotations

import torch
from torch import Tensor


def feature_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of a feature matrix (N, D), both float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got {tuple(features.shape)}")
    x = features.to(torch.float64)  # (N, D)
    mu = x.mean(dim=0)  # (D,)
    xc = x - mu  # (N, D)
    sigma = xc.T @ xc / (x.shape[0] - 1)  # (D, D)
    return mu, sigma


def _sym_sqrt(a: Tensor) -> Tensor:
    """Principal square root of a symmetric PSD matrix (D, D); tiny negative eigenvalues clamp to 0."""
    evals, evecs = torch.linalg.eigh((a + a.T) / 2)  # (D,), (D, D)
    return (evecs * evals.clamp(min=0).sqrt()) @ evecs.T  # (D, D)


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """Tr((S1 S2)^{1/2}) = sum sqrt(eig(S1^{1/2} S2 S1^{1/2})): S1 S2 is similar to that symmetric PSD matrix."""
    s1h = _sym_sqrt(sigma1)  # (D, D)
    m = s1h @ sigma2 @ s1h  # (D, D)
    evals = torch.linalg.eigvalsh((m + m.T) / 2)  # (D,)
    return evals.clamp(min=0).sqrt().sum()


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2}), the Fréchet (2-Wasserstein) distance
    between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982); FID when the features are Inception pool3."""
    f64 = dict(dtype=torch.float64)
    mu1, mu2 = torch.as_tensor(mu1, **f64), torch.as_tensor(mu2, **f64)  # (D,)
    sigma1 = torch.as_tensor(sigma1, **f64)  # (D, D)
    sigma2 = torch.as_tensor(sigma2, **f64).to(sigma1.device)  # (D, D)
    mu2 = mu2.to(mu1.device)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(f"shape mismatch: mu {tuple(mu1.shape)}/{tuple(mu2.shape)}, "
                         f"sigma {tuple(sigma1.shape)}/{tuple(sigma2.shape)}")
    diff = mu1 - mu2  # (D,)
    fd = diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2.to(sigma1.device))
    return float(fd)
