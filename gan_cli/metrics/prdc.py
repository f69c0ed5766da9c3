"""k-NN manifold metrics on feature sets.

precision / recall: Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
Models". density / coverage: Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models".

Each point's k-NN radius is the distance to its k-th nearest neighbour in its own set, excluding itself.
Distances are exact Euclidean distances in float64. They are computed over row chunks (memory O(chunk * M))
from ||x||^2 + ||y||^2 - 2 x.y with one matmul per chunk; where that expansion's rounding could change a
decision (the nearest or k-th nearest neighbour, a point on a ball's edge), the entries are recomputed
directly as sum((x - y)^2). So a copy of a row is at distance exactly 0, and a point exactly on a ball's
edge is inside it.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

CHUNK = 1024
RTOL = 1e-10  # bound on the expansion's rounding, relative to ||x||^2 + ||y||^2 (~5e-13 in float64 at D = 2048)


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """x, y in float64 on x's device."""
    return x.to(torch.float64), y.to(device=x.device, dtype=torch.float64)


def _sq_norms(x: Tensor) -> Tensor:
    return (x * x).sum(dim=1)  # (N,)


def sqdist_chunks(x: Tensor, y: Tensor, chunk: int = CHUNK) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Yield (start, d2, slack) for row chunks of x (N, D) against y (M, D): d2 (c, M) are squared distances by
    the expansion, off by at most slack (c, 1) from the exact ones."""
    x2, y2 = _sq_norms(x), _sq_norms(y)  # (N,), (M,)
    for start in range(0, x.shape[0], chunk):
        rows = x2[start:start + chunk, None]  # (c, 1)
        d2 = torch.addmm(y2, x[start:start + chunk], y.T, alpha=-2).add_(rows)  # (c, M)
        yield start, d2, RTOL * (rows + y2.max())


def _refine(d2: Tensor, threshold: Tensor, slack: Tensor, x: Tensor, y: Tensor, start: int) -> Tensor:
    """d2 with the entries within slack of threshold (broadcast to d2) recomputed exactly, in place."""
    i, j = ((d2 - threshold).abs_() <= slack).nonzero(as_tuple=True)  # (P,), (P,)
    for s in range(0, len(i), CHUNK):  # CHUNK pairs at a time: memory O(CHUNK * D)
        a, b = i[s:s + CHUNK], j[s:s + CHUNK]
        d2[a, b] = (x[a + start] - y[b]).square().sum(dim=1)
    return d2


def _nearest_sq(x: Tensor, y: Tensor, chunk: int = CHUNK) -> Tensor:
    """Squared distance of each row of x (N, D) to its nearest row of y (M, D) -> (N,)."""
    out = []
    for start, d2, slack in sqdist_chunks(x, y, chunk):
        out.append(_refine(d2, d2.min(dim=1, keepdim=True).values, slack, x, y, start).min(dim=1).values)
    return torch.cat(out)


def _knn_sq_radii(x: Tensor, k: int, chunk: int = CHUNK) -> Tensor:
    """Squared distance of each row of x (N, D) to its k-th nearest other row -> (N,)."""
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < N, got k={k}, N={n}")
    out = []
    for start, d2, slack in sqdist_chunks(x, x, chunk):  # d2: (c, N)
        rows = torch.arange(d2.shape[0], device=d2.device)  # (c,)
        d2[rows, rows + start] = float("inf")  # exclude the point itself
        kth = d2.topk(k, dim=1, largest=False).values[:, -1:]  # (c, 1)
        out.append(_refine(d2, kth, slack, x, x, start).topk(k, dim=1, largest=False).values[:, -1])
    return torch.cat(out)


def nearest_distances(x: Tensor, y: Tensor, chunk: int = CHUNK) -> Tensor:
    """Distance of each row of x (N, D) to its nearest row of y (M, D) -> (N,), float64."""
    return _nearest_sq(*_pair(x, y), chunk=chunk).sqrt()


def knn_radii(x: Tensor, k: int, chunk: int = CHUNK) -> Tensor:
    """Distance of each row of x (N, D) to its k-th nearest other row -> (N,), float64."""
    return _knn_sq_radii(x.to(torch.float64), k, chunk).sqrt()


def _ball_hits(query: Tensor, centres: Tensor, sq_radii: Tensor, chunk: int = CHUNK) -> Iterator[Tensor]:
    """Per chunk of query (N, D): (c, M) bool, query_i in B(centres_j, r_j); centres (M, D), sq_radii (M,) = r^2."""
    for start, d2, slack in sqdist_chunks(query, centres, chunk):
        yield _refine(d2, sq_radii, slack, query, centres, start) <= sq_radii


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> dict[str, float]:
    """precision: fraction of fake (M, D) inside the k-NN manifold of real (N, D);
    recall: fraction of real inside the k-NN manifold of fake."""
    real, fake = _pair(real, fake)
    precision = torch.cat([h.any(dim=1) for h in _ball_hits(fake, real, _knn_sq_radii(real, k))]).double().mean()
    recall = torch.cat([h.any(dim=1) for h in _ball_hits(real, fake, _knn_sq_radii(fake, k))]).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """density: (1 / kM) sum_j #{i : fake_j in B(real_i, r_i)}, ~1 for matching distributions (may exceed 1);
    coverage: fraction of real points (N, D) whose k-NN ball contains at least one fake point (M, D)."""
    real, fake = _pair(real, fake)
    sq_radii = _knn_sq_radii(real, k)  # (N,)
    hits = sum(int(h.sum()) for h in _ball_hits(fake, real, sq_radii))
    coverage = (_nearest_sq(real, fake) <= sq_radii).double().mean()
    return {"density": hits / (k * fake.shape[0]), "coverage": float(coverage)}
