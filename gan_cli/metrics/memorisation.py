"""Memorisation check by nearest-neighbour distances to the training set, compared with a held-out set
(in the spirit of the train/test NN-distance tests of Meehan et al. 2020, "A Non-Parametric Test to Detect
Data-Copying in Generative Models"): a model that copies training points lands much closer to them than
unseen real data does."""
from __future__ import annotations

import torch
from torch import Tensor

from gan_cli.metrics.prdc import nearest_distances


def nearest_neighbour_distances(query: Tensor, reference: Tensor) -> Tensor:
    """Distance of each query row (N, D) to its nearest reference row (M, D) -> (N,): exact Euclidean
    distances in float64 (gan_cli.metrics.prdc), so a copy of a reference row is at distance exactly 0."""
    if query.ndim != 2 or reference.ndim != 2 or query.shape[1] != reference.shape[1]:
        raise ValueError(f"need (N, D) and (M, D), got {tuple(query.shape)}, {tuple(reference.shape)}")
    return nearest_distances(query, reference)


def memorisation_stats(fake: Tensor, train: Tensor, heldout: Tensor) -> dict[str, float]:
    """NN-distance statistics of fake (N, D) and heldout (H, D) against train (M, D).

    nn_ratio = median NN(fake -> train) / median NN(heldout -> train): ~1 or above for novel samples,
    well below 1 for copies. copy_fraction = fraction of fakes closer to train than the 1st percentile
    of the heldout-to-train NN distances (~0.01 for a model as novel as held-out data, ~1 for copies).
    """
    nn_fake = nearest_neighbour_distances(fake, train).double()  # (N,)
    nn_held = nearest_neighbour_distances(heldout, train).double()  # (H,)
    med_fake, med_held = nn_fake.median(), nn_held.median()
    threshold = torch.quantile(nn_held, 0.01)
    ratio = med_fake / med_held if med_held > 0 else torch.tensor(float("inf"))
    return {
        "nn_fake_train_median": float(med_fake),
        "nn_heldout_train_median": float(med_held),
        "nn_ratio": float(ratio),
        "copy_fraction": float((nn_fake < threshold).double().mean()),
    }
