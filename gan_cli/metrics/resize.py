"""What an image goes through before a feature extractor: quantisation to uint8 as a PNG, then (Inception
only) a resize to 299x299 in one of clean-fid's modes, then the network's input scale.

- ``quantize``: float images in [-1, 1] become the uint8 a PNG of them holds (the `gan sample` path:
  image_grid, then torchvision's save_image: clamp to [-1, 1], map to [0, 1], ``x * 255 + 0.5``,
  truncated; stylegan2-ada's metrics compute the same ``x * 127.5 + 128`` clamped). Stored uint8 data
  (prepared datasets) is already that. ``quantize=False`` keeps floats (clean-fid's generator path).
- ``resize`` (clean-fid's ``mode``), on the [0, 255] image:
  ``clean``: PIL bicubic on each channel as a float32 ('F') image, clipped to [0, 255];
  ``legacy_pytorch``: pytorch-fid's bilinear ``F.interpolate`` (align_corners=False) inside the network,
  on [0, 1] inputs;
  ``legacy_tensorflow``: TensorFlow 1's ``resize_bilinear`` (no half-pixel centres) as the original TF FID
  graph does inside the network.
  Inputs then scale as each reference network does: ``(x - 128) / 128`` (the TF graph, which clean-fid's
  clean and legacy_tensorflow modes run) or ``2 * x / 255 - 1`` (pytorch-fid).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

RESIZE_MODES = ("clean", "legacy_pytorch", "legacy_tensorflow")
SIZE = 299  # the FID Inception's input


def quantize_like_png(x: Tensor) -> Tensor:
    """Float (N, C, H, W) in [-1, 1] -> uint8, the bytes `gan sample` writes to a PNG (torchvision's ops, in order)."""
    x = x.detach().float().cpu().clamp(-1, 1)
    x = (x + 1) / 2  # make_grid(normalize=True, value_range=(-1, 1)): clamp, sub low, div (high - low)
    return x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)  # save_image


def to_pixels(x: Tensor, quantize: bool) -> Tensor:
    """Images as float [0, 255]: uint8 as stored; floats in [-1, 1] quantised like a PNG, or just rescaled."""
    if x.dtype == torch.uint8:
        return x.float()
    if quantize:
        return quantize_like_png(x).float()
    return (x.detach().float().cpu() + 1) * 127.5


def resize_clean(x: Tensor, size: int = SIZE) -> Tensor:
    """clean-fid's `clean`: each channel a float32 PIL image, bicubic to size x size, clipped to [0, 255]."""
    arrays = x.detach().float().cpu().numpy()  # (N, C, H, W) in [0, 255]
    out = np.empty((*arrays.shape[:2], size, size), dtype=np.float32)
    for i, image in enumerate(arrays):
        for c, channel in enumerate(image):
            resized = Image.fromarray(channel, mode="F").resize((size, size), resample=Image.BICUBIC)
            out[i, c] = np.asarray(resized).clip(0, 255)
    return torch.from_numpy(out)


def resize_legacy_pytorch(x: Tensor, size: int = SIZE) -> Tensor:
    """pytorch-fid's resize: bilinear, align_corners=False, on [0, 1] images; returned in [0, 255]."""
    return F.interpolate(x / 255, size=(size, size), mode="bilinear", align_corners=False) * 255


def _tf1_axis(in_size: int, out_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices and weights of TF1's bilinear resize along one axis: src = dst * in / out (no half pixel)."""
    src = torch.arange(out_size, dtype=torch.float64) * (in_size / out_size)
    low = src.floor().long().clamp(max=in_size - 1)
    return low.to(device), (low + 1).clamp(max=in_size - 1).to(device), (src - low).float().to(device)


def resize_legacy_tensorflow(x: Tensor, size: int = SIZE) -> Tensor:
    """TensorFlow 1's tf.image.resize_bilinear(align_corners=False), as the original FID graph resizes."""
    (y0, y1, wy), (x0, x1, wx) = _tf1_axis(x.shape[-2], size, x.device), _tf1_axis(x.shape[-1], size, x.device)
    top = x[..., y0, :] * (1 - wy[:, None]) + x[..., y1, :] * wy[:, None]  # (N, C, size, W)
    return top[..., x0] * (1 - wx) + top[..., x1] * wx  # (N, C, size, size)


RESIZERS = {"clean": resize_clean, "legacy_pytorch": resize_legacy_pytorch, "legacy_tensorflow": resize_legacy_tensorflow}
SCALES = {"clean": "(x - 128) / 128", "legacy_pytorch": "2 * x / 255 - 1", "legacy_tensorflow": "(x - 128) / 128"}


@dataclass(frozen=True)
class Preprocess:
    """Images (float in [-1, 1], or uint8) -> an extractor's input. `resize`: a mode of RESIZE_MODES for the
    Inception (its own bilinear resize is then a no-op at 299 px), or None: the extractor resizes itself."""

    quantize: bool
    resize: str | None = None

    def __call__(self, x: Tensor, device: torch.device | None = None) -> Tensor:
        """x (N, C, H, W) -> the extractor's input; torch's resizes run on `device` (PIL's on the CPU)."""
        if self.resize is None:
            if x.dtype == torch.uint8 or self.quantize:
                return to_pixels(x, self.quantize) / 127.5 - 1  # what a prepared dataset's decode gives
            return x
        pixels = to_pixels(x, self.quantize)  # quantised on the CPU, at the source resolution
        if self.resize != "clean" and device is not None:
            pixels = pixels.to(device)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)  # grey -> RGB, as clean-fid's convert('RGB')
        pixels = RESIZERS[self.resize](pixels) if pixels.shape[-2:] != (SIZE, SIZE) else pixels
        return pixels * (2 / 255) - 1 if self.resize == "legacy_pytorch" else (pixels - 128) / 128

    def describe(self) -> dict:
        """The protocol's words for this preprocessing."""
        quantize = ("uint8, as a PNG holds them (uint8 data as stored)" if self.quantize
                    else "none: float images as generated (uint8 data as stored)")
        if self.resize is None:
            return {"quantize": self.quantize, "quantization": quantize}
        return {"quantize": self.quantize, "quantization": quantize, "resize_mode": self.resize,
                "input_scale": SCALES[self.resize]}
