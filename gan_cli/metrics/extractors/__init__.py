"""Offline feature extractors for GAN evaluation: nothing is ever downloaded.

- :func:`load_fid_inception`: the FID Inception-v3 (pool3 2048-d features, 1008 logits), from a local
  copy of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``.
- :func:`load_digits_classifier`: a small CNN trained (once, cached) on the embedded digits
  (128-d features, 10 logits), for the offline ``fd_digits`` metric and class predictions.
"""
from gan_cli.metrics.extractors.base import ExtractorError, FeatureExtractor, state_dict_sha256
from gan_cli.metrics.extractors.digits import DigitsCNN, digits_split, load_digits_classifier, train_digits_classifier

_INCEPTION = ("FID_WEIGHTS_HASH_PREFIX", "FID_WEIGHTS_NAME", "FIDInceptionV3", "default_weights_dir", "load_fid_inception")


def __getattr__(name: str):
    """The Inception names on first use: their module imports torchvision, a second or more of start-up."""
    if name in _INCEPTION:
        from gan_cli.metrics.extractors import inception

        return getattr(inception, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FID_WEIGHTS_HASH_PREFIX",
    "FID_WEIGHTS_NAME",
    "DigitsCNN",
    "ExtractorError",
    "FIDInceptionV3",
    "FeatureExtractor",
    "default_weights_dir",
    "digits_split",
    "load_digits_classifier",
    "load_fid_inception",
    "state_dict_sha256",
    "train_digits_classifier",
]
