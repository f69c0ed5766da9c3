"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs"):
IS = exp(E_x KL(p(y|x) || p(y))), computed per split and reported as (mean, std) over splits."""
from __future__ import annotations

import torch
from torch import Tensor


def _split_scores(probs: Tensor, splits: int) -> Tensor:
    """IS of each of `splits` consecutive chunks of probs (N, K) -> (splits,)."""
    n = probs.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"need 1 <= splits <= N, got splits={splits}, N={n}")
    size = n // splits  # as the original implementation: a remainder of N % splits rows is dropped
    scores = []
    for i in range(splits):
        part = probs[i * size:(i + 1) * size]  # (n_i, K)
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
