"""The interface every offline feature extractor follows.

An extractor takes generator-style images ``(N, C, H, W)`` in [-1, 1], with 1 or 3 channels at any
resolution, does its own resizing and channel handling, and returns features ``(N, feature_dim)``
and logits ``(N, num_classes)``. It always runs without gradients and in eval mode, so the output of
one image does not depend on the rest of the batch.
"""
from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn

from gan_cli.errors import GanCliError


class ExtractorError(GanCliError):
    """Feature-extractor weights are missing, corrupt or do not match, or an input cannot be embedded."""


class FeatureExtractor(nn.Module):
    """A frozen network mapping images in [-1, 1] to features and class logits.

    Subclasses set the attributes below and implement :meth:`preprocess` (resize / channel handling,
    input ``(N, C, H, W)`` in [-1, 1] -> what the network expects) and :meth:`_forward` (one pass of the
    network on a preprocessed batch -> ``(features, logits)``).
    """

    name: str = ""  # e.g. "inception_fid" or "digits_cnn"
    weights_hash: str = ""  # sha256 hex of the weights (file bytes, or the state dict for the digits CNN)
    feature_dim: int = 0
    num_classes: int = 0  # size of the logits
    resize: str = ""  # the input protocol in words, e.g. "bilinear to 299x299"

    def preprocess(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    # ------------------------------------------------------------------ public API

    @torch.no_grad()
    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``(N, feature_dim)`` and logits ``(N, num_classes)`` from one forward pass."""
        x = self._check_input(x)
        if self.training:  # always eval: BatchNorm/Dropout must not depend on the batch
            self.eval()
        if x.shape[0] == 0:
            return x.new_zeros(0, self.feature_dim), x.new_zeros(0, self.num_classes)
        feats, logits = self._forward(self.preprocess(x))
        return feats.float(), logits.float()

    def features(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` in [-1, 1] -> ``(N, feature_dim)``."""
        return self.features_and_logits(x)[0]

    def logits(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` in [-1, 1] -> ``(N, num_classes)``."""
        return self.features_and_logits(x)[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, feature_dim={self.feature_dim}, num_classes={self.num_classes}, "
                f"resize={self.resize!r}, weights_hash={self.weights_hash[:12]!r}")

    # ------------------------------------------------------------------ helpers

    def _check_input(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ExtractorError(
                f"The {self.name or type(self).__name__} feature extractor takes images of shape (N, C, H, W) "
                f"with C = 1 (grayscale) or 3 (RGB) and values in [-1, 1]; got {shape}."
            )
        try:
            param = next(self.parameters())
            device = param.device
        except StopIteration:
            device = x.device
        return x.to(device=device, dtype=torch.float32)


def to_channels(x: Tensor, channels: int) -> Tensor:
    """Grayscale <-> RGB: 1 -> 3 repeats the gray channel, 3 -> 1 averages the colour channels."""
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    return x.mean(dim=1, keepdim=True)


def resize_bilinear(x: Tensor, size: int) -> Tensor:
    """Bilinear resize (``align_corners=False``) to ``size x size``; a no-op when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    return nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def state_dict_sha256(state_dict: dict[str, Tensor]) -> str:
    """A deterministic sha256 of a state dict: keys in order, with each tensor's dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


