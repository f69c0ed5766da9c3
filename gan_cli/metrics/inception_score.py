"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs"):
IS = exp(E_x KL(p(y|x) || p(y))), computed per split and reported as (mean, std) over splits.

The N rows are split as the original code (and torch-fidelity) does: rows i N // S to (i + 1) N // S form
split i, so every row is used. For the FID Inception, the logits leave out the fc layer's bias, as there."""
from __future__ import annotations

import torch
from torch import Tensor


def _split_scores(probs: Tensor, splits: int) -> Tensor:
    """IS of each of `splits` consecutive chunks of probs (N, K), together all rows -> (splits,)."""
    n = probs.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"need 1 <= splits <= N, got splits={splits}, N={n}")
    scores = []
    for i in range(splits):  # as the original code and torch-fidelity: every row kept, sizes differ by <= 1
        part = probs[i * n // splits:(i + 1) * n // splits]  # (n_i, K)
        p_y = part.mean(dim=0, keepdim=True)  # (1, K)
        kl = (torch.xlogy(part, part) - torch.xlogy(part, p_y)).sum(dim=1)  # (n_i,)
        scores.append(kl.mean().exp())
    return torch.stack(scores)


def inception_score(probs: Tensor, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception Score over splits; probs (N, K) are class probabilities (rows sum to 1).
    std is the population std over splits, as in the original code. Ranges from 1 to K."""
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, K), got {tuple(probs.shape)}")
    probs = probs.to(torch.float64)  # (N, K)
    if (probs < 0).any() or not torch.allclose(probs.sum(dim=1), torch.ones_like(probs[:, 0]), atol=1e-4):
        raise ValueError("probs rows must be non-negative and sum to 1 (use inception_score_from_logits)")
    scores = _split_scores(probs, splits)  # (splits,)
    return float(scores.mean()), float(scores.std(unbiased=False))


def inception_score_from_logits(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """inception_score of softmax(logits); logits (N, K)."""
    return inception_score(torch.softmax(logits.to(torch.float64), dim=1), splits)
