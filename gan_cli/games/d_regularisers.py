"""Cheap regularisers of D for small data, added to any loss and penalty (StudioGAN's definitions).

  LeCam (Tseng et al. 2021)   |relu(D(x) - a_fake)|^2 + |relu(a_real - D(G(z)))|^2, where a_real and a_fake
                              are EMAs of D's mean outputs on reals and fakes: D's outputs are held near the
                              other side's running mean, which bounds how far they drift apart as D memorises
  bCR (Zhao et al. 2020)      |D(x) - D(T(x))|^2 on reals and on fakes, T a random flip and shift
                              (`consistency_transform`): D must not tell an image from its transform
  zCR (Zhao et al. 2020)      D: |D(G(z)) - D(G(z + e))|^2, and G: -|G(z) - G(z + e)|^2 (G stays sensitive
                              to z), e = radius x N(0, I)

Squares are means over the batch (torch's MSELoss). The games call these from their D and G updates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Regularisers:
    """The weights of trainer.lecam / bcr / zcr (0: off)."""

    lecam: float = 0.0
    lecam_decay: float = 0.99
    lecam_start: int = 1000
    bcr_real: float = 0.0
    bcr_fake: float = 0.0
    zcr_d: float = 0.0
    zcr_g: float = 0.0
    zcr_radius: float = 0.05

    @classmethod
    def of(cls, trainer: Any) -> "Regularisers":
        if "lecam" not in trainer:  # a trainer node from before these keys (an old checkpoint's)
            return cls()
        lecam, bcr, zcr = trainer.lecam, trainer.bcr, trainer.zcr
        return cls(float(lecam.weight), float(lecam.decay), int(lecam.start), float(bcr.real), float(bcr.fake),
                   float(zcr.d), float(zcr.g), float(zcr.radius))


class LeCam:
    """The LeCam term and its two EMAs (on the device, all-reduced under DDP so every rank holds the same)."""

    def __init__(self, weight: float, decay: float, start: int, device: torch.device, world: int = 1):
        self.weight, self.decay, self.start, self.world = weight, decay, start, world
        self.ema = torch.zeros(2, device=device)  # (EMA of mean D(x), EMA of mean D(G(z)))

    def __call__(self, real_out: Tensor, fake_out: Tensor, step: int) -> Tensor | None:
        """The unweighted term at iteration `step`, None before `start` (the EMAs then follow the batch)."""
        means = torch.stack([real_out.detach().float().mean(), fake_out.detach().float().mean()])
        if self.world > 1:
            torch.distributed.all_reduce(means)
            means = means / self.world
        self.ema = torch.lerp(means, self.ema, self.decay if step > self.start else 0.0)
        if step <= self.start:
            return None
        ema_real, ema_fake = self.ema[0], self.ema[1]
        return F.relu(real_out - ema_fake).square().mean() + F.relu(ema_real - fake_out).square().mean()

    def state_dict(self) -> dict[str, Tensor]:
        return {"ema": self.ema.detach().cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.ema = state["ema"].to(self.ema.device, self.ema.dtype)


def consistency_transform(x: Tensor, ratio: float = 0.125) -> Tensor:
    """StudioGAN's CR augmentation, per image: a horizontal flip with probability 1/2 and a shift by integers
    in [-s, s] (s = round(ratio x side)) along H and W, the uncovered border reflected. x: (B, C, H, W)."""
    B, _, H, W = x.shape
    flip = torch.rand(B, 1, 1, 1, device=x.device) < 0.5
    x = torch.where(flip, x.flip(3), x)
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    padded = F.pad(x, [sw, sw, sh, sh], mode="reflect")  # (B, C, H + 2sh, W + 2sw)
    di = torch.randint(0, 2 * sh + 1, (B, 1, 1), device=x.device)  # top-left corner of each crop
    dj = torch.randint(0, 2 * sw + 1, (B, 1, 1), device=x.device)
    rows = (torch.arange(H, device=x.device).view(1, H, 1) + di).expand(B, H, W)  # (B, H, W)
    cols = (torch.arange(W, device=x.device).view(1, 1, W) + dj).expand(B, H, W)
    batch = torch.arange(B, device=x.device).view(B, 1, 1).expand(B, H, W)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)
