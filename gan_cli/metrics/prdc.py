"""k-NN manifold metrics on feature sets.

precision / recall: Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
Models". density / coverage: Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models".

Each point's k-NN radius is the distance to its k-th nearest neighbour in its own set, excluding itself.
Distances are computed over row chunks (memory O(chunk * M)) from ||x||^2 + ||y||^2 - 2 x.y with one matmul
per chunk, as torch.cdist does for large inputs; the per-row ||x||^2 is added after the reduction, and balls
are tested as ||y||^2 - 2 x.y - r^2 <= -||x||^2, so each chunk costs a single pass over its (c, M) block.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

CHUNK = 1024


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """x, y as floating tensors of one dtype on x's device."""
    dtype = torch.promote_types(x.dtype, y.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float32
    return x.to(dtype), y.to(device=x.device, dtype=dtype)


def _sq_norms(x: Tensor) -> Tensor:
    return (x * x).sum(dim=1)  # (N,)


def partial_sqdist_chunks(x: Tensor, y: Tensor, offset: Tensor | None = None,
                          chunk: int = CHUNK) -> Iterator[tuple[int, Tensor]]:
    """Yield (start, offset + ||y||^2 - 2 x.y (c, M)) for row chunks of x (N, D) against y (M, D);
    adding ||x_i||^2 to row i gives squared distances. offset (M,) is an optional per-column shift."""
    shift = _sq_norms(y) if offset is None else _sq_norms(y) + offset  # (M,)
    for start in range(0, x.shape[0], chunk):
        yield start, torch.addmm(shift, x[start:start + chunk], y.T, alpha=-2)  # (c, M)


def nearest_distances(x: Tensor, y: Tensor, chunk: int = CHUNK) -> Tensor:
    """Distance of each row of x (N, D) to its nearest row of y (M, D) -> (N,)."""
    x, y = _pair(x, y)
    part = torch.cat([d.min(dim=1).values for _, d in partial_sqdist_chunks(x, y, chunk=chunk)])  # (N,)
    return (part + _sq_norms(x)).clamp(min=0).sqrt()


def knn_radii(x: Tensor, k: int, chunk: int = CHUNK) -> Tensor:
    """Distance of each row of x (N, D) to its k-th nearest other row -> (N,)."""
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < N, got k={k}, N={n}")
    x, _ = _pair(x, x)
    radii = []
    for start, d in partial_sqdist_chunks(x, x, chunk=chunk):  # d: (c, N)
        rows = torch.arange(d.shape[0], device=d.device)  # (c,)
        d[rows, rows + start] = float("inf")  # exclude the point itself
        radii.append(d.topk(k, dim=1, largest=False).values[:, -1])  # (c,)
    return (torch.cat(radii) + _sq_norms(x)).clamp(min=0).sqrt()


def _ball_hits(query: Tensor, centres: Tensor, radii: Tensor, chunk: int = CHUNK) -> Iterator[Tensor]:
    """Per chunk of query (N, D): (c, M) bool, query_i in B(centres_j, radii_j); centres (M, D), radii (M,)."""
    query, centres = _pair(query, centres)
    neg_q2 = -_sq_norms(query)  # (N,)
    for start, d in partial_sqdist_chunks(query, centres, offset=-radii.to(centres) ** 2, chunk=chunk):
        yield d <= neg_q2[start:start + d.shape[0], None]  # (c, M)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> dict[str, float]:
    """precision: fraction of fake (M, D) inside the k-NN manifold of real (N, D);
    recall: fraction of real inside the k-NN manifold of fake."""
    real, fake = _pair(real, fake)
    precision = torch.cat([h.any(dim=1) for h in _ball_hits(fake, real, knn_radii(real, k))]).double().mean()
    recall = torch.cat([h.any(dim=1) for h in _ball_hits(real, fake, knn_radii(fake, k))]).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """density: (1 / kM) sum_j #{i : fake_j in B(real_i, r_i)}, ~1 for matching distributions (may exceed 1);
    coverage: fraction of real points (N, D) whose k-NN ball contains at least one fake point (M, D)."""
    real, fake = _pair(real, fake)
    radii = knn_radii(real, k)  # (N,)
    hits = sum(int(h.sum()) for h in _ball_hits(fake, real, radii))
    coverage = (nearest_distances(real, fake) <= radii).double().mean()
    return {"density": hits / (k * fake.shape[0]), "coverage": float(coverage)}
