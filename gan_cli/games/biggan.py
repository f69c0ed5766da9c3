"""BigGAN (Brock et al. 2019): the adversarial game plus G's off-diagonal orthogonal regularisation.

R(W) = ortho_weight * ||W W^T (1 - I)||_F^2 summed over G's weight matrices (each reshaped to
(out, -1); for spectral-normed layers the raw weight), leaving the norms of the rows free and
pushing them toward mutual orthogonality: it makes G amenable to the truncation trick
(Sec. 3.1; the paper's weight is 1e-4). The shared class embedding is exempt, as in
BigGAN-PyTorch. Hinge loss, two D steps per G step and the EMA of G come from the model file's
defaults (loss=hinge, trainer=biggan, optimizer=adam_biggan).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gan_cli.config import check_range
from gan_cli.games.adversarial import Adversarial


def orthogonality(weights: list[Tensor]) -> Tensor:
    """Sum over ``weights`` of ||W W^T (1 - I)||_F^2, each W viewed as (out, -1)."""
    total = weights[0].new_zeros(())
    for w in weights:
        w = w.reshape(w.shape[0], -1)  # (out, in * k * k)
        off_diagonal = 1 - torch.eye(w.shape[0], device=w.device, dtype=w.dtype)
        total = total + (w @ w.T * off_diagonal).pow(2).sum()  # (out, out) Gram matrix, diagonal masked
    return total


def ortho_weights(G: nn.Module) -> list[Tensor]:
    """G's weight matrices (parameters with ndim >= 2, the raw ones under spectral norm), without
    the shared class embedding (``G.shared``, if any)."""
    shared = getattr(G, "shared", None)
    exempt = {id(p) for p in shared.parameters()} if isinstance(shared, nn.Module) else set()
    return [p for p in G.parameters() if p.dim() >= 2 and id(p) not in exempt]


class BigGAN(Adversarial):
    def __init__(self, networks: dict[str, nn.Module], data, setup, ortho_weight: float = 0.0, **options: Any):
        self.ortho_weight = check_range("model.game.ortho_weight", ortho_weight, 0, math.inf, False,
                                        "0 (off) or the paper's 1e-4")
        super().__init__(networks, data, setup, **options)
        self.regularised = ortho_weights(networks["G"]) if self.ortho_weight else []  # found once, not every step

    def g_regularisers(self) -> dict[str, Tensor]:
        if not self.ortho_weight:
            return {}
        return {"ortho": self.ortho_weight * orthogonality(self.regularised)}
