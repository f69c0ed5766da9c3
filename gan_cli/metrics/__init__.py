"""Evaluation metrics as pure functions on feature matrices / 2D points (no I/O, no feature extractors)."""
from gan_cli.metrics.classes import class_stats
from gan_cli.metrics.frechet import feature_stats, frechet_distance
from gan_cli.metrics.inception_score import inception_score, inception_score_from_logits
from gan_cli.metrics.kid import kernel_inception_distance
from gan_cli.metrics.memorisation import memorisation_stats, nearest_neighbour_distances
from gan_cli.metrics.modes2d import mode_stats
from gan_cli.metrics.prdc import density_coverage, precision_recall

__all__ = [
    "feature_stats", "frechet_distance", "kernel_inception_distance", "inception_score",
    "inception_score_from_logits", "precision_recall", "density_coverage", "mode_stats", "class_stats",
    "nearest_neighbour_distances", "memorisation_stats",
]
