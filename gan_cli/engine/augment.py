"""Transforms of D's input, applied to real and fake batches alike, differentiable in x so
G's gradients flow through augmented fakes (ADA's pipeline: ada_augment.py, its p: ada.py).

  diff_augment(x, policy)            DiffAugment (Zhao et al. 2020): color, translation, cutout
  instance_noise(x, std)             instance noise (Sønderby et al. 2016; Arjovsky & Bottou 2017)
  annealed_std(step, max_steps, start_std, anneal_steps)   its linear schedule to 0

Randomness comes from the global torch RNG on x's device (torch.rand / randint / randn_like),
which the trainer checkpoints and restores on resume.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_cli.errors import ConfigError

__all__ = ["AUGMENT_OPS", "check_policy", "diff_augment", "instance_noise", "annealed_std",
           "rand_color", "rand_translation", "rand_cutout"]


# ------------------------------------------------------------------------------ DiffAugment
def rand_color(x: Tensor) -> Tensor:
    """Per sample: brightness + U[-0.5, 0.5), saturation x U[0, 2), contrast x U[0.5, 1.5)."""
    B = x.shape[0]
    x = x + (torch.rand(B, 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W): per-pixel grey level
    x = (x - mean) * (2 * torch.rand(B, 1, 1, 1, dtype=x.dtype, device=x.device)) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * (torch.rand(B, 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def rand_translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Per sample: shift by integers in [-s, s] (s = round(ratio * side)) along H and W,
    filling uncovered pixels with zeros: out[b, :, i, j] = x[b, :, i + ti, j + tj]."""
    B, _, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    ti = torch.randint(-sh, sh + 1, (B, 1, 1), device=x.device)
    tj = torch.randint(-sw, sw + 1, (B, 1, 1), device=x.device)
    gb, gi, gj = torch.meshgrid(torch.arange(B, device=x.device), torch.arange(H, device=x.device),
                                torch.arange(W, device=x.device), indexing="ij")  # (B, H, W) each
    # index into x padded by one zero pixel: anything shifted out of range lands on the padding
    gi = torch.clamp(gi + ti + 1, 0, H + 1)
    gj = torch.clamp(gj + tj + 1, 0, W + 1)
    x_pad = F.pad(x, [1, 1, 1, 1])  # (B, C, H+2, W+2)
    return x_pad.permute(0, 2, 3, 1)[gb, gi, gj].permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


def rand_cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Per sample: zero one square of side round(ratio * side) (area H*W/4 at ratio 1/2) centred
    at a random pixel, clipped at the border."""
    B, _, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    oi = torch.randint(0, H + (1 - ch % 2), (B, 1, 1), device=x.device)
    oj = torch.randint(0, W + (1 - cw % 2), (B, 1, 1), device=x.device)
    rows = torch.arange(H, device=x.device).view(1, H, 1) - (oi - ch // 2)  # (B, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W) - (oj - cw // 2)  # (B, 1, W)
    inside = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


AUGMENT_OPS = {"color": rand_color, "translation": rand_translation, "cutout": rand_cutout}


def check_policy(policy: Sequence[str] | str | None) -> list[str]:
    """The policy as a list of op names; a comma-separated string is accepted too.
    Unknown op -> ConfigError naming `trainer.augment` and the valid ops."""
    if policy is None:
        return []
    if isinstance(policy, str):
        policy = [p for p in (s.strip() for s in policy.split(",")) if p]
    ops = list(policy)
    bad = [op for op in ops if op not in AUGMENT_OPS]
    if bad:
        raise ConfigError(f"trainer.augment has unknown DiffAugment op(s) {bad}; valid ops are "
                          f"{sorted(AUGMENT_OPS)} (e.g. [color, translation, cutout]), or [] for none.")
    return ops


def diff_augment(x: Tensor, policy: Sequence[str] | str | None) -> Tensor:
    """DiffAugment (Zhao et al. 2020) of a batch of images (B, C, H, W), ops in `policy` order.
    An empty policy returns x itself. Image ops on non-image data -> ConfigError."""
    ops = check_policy(policy)
    if not ops:
        return x
    if x.dim() != 4:
        raise ConfigError(f"trainer.augment={ops} applies to images (B, C, H, W) only, but this "
                          f"dataset's samples have shape {tuple(x.shape[1:])}; set trainer.augment=[] "
                          f"(for low-dimensional data use instance noise instead).")
    for op in ops:
        x = AUGMENT_OPS[op](x)
    return x


# --------------------------------------------------------------------------- instance noise
def instance_noise(x: Tensor, std: float) -> Tensor:
    """x + std * N(0, 1) noise; std 0 returns x itself (and draws no random numbers)."""
    if std < 0:
        raise ConfigError(f"instance noise std must be >= 0; got {std!r}.")
    if std == 0:
        return x
    return x + std * torch.randn_like(x)


def annealed_std(step: int, max_steps: int, start_std: float, anneal_steps: int = 0) -> float:
    """Linear schedule: start_std at step 0, down to 0 at `anneal_steps` (or at `max_steps`
    when anneal_steps is 0), and 0 after."""
    horizon = anneal_steps if anneal_steps > 0 else max_steps
    if horizon <= 0:
        return 0.0
    return float(start_std) * max(0.0, 1.0 - step / horizon)


def d_input_transform(policy: Sequence[str], noise_std: float, noise_steps: int, max_steps: int,
                      kind: str, ada: Callable[[Tensor], Tensor] | None = None) -> Callable[[Tensor, int], Tensor] | None:
    """What D sees of a batch at a step: DiffAugment, then ADA's augmentation (`ada`: x -> augmented x),
    then annealed instance noise (None: as is)."""
    ops = check_policy(list(policy))
    if ops and kind != "image":
        raise ConfigError(f"trainer.augment={ops} applies to images, but this dataset is {kind}; use trainer.augment=[].")
    if noise_std < 0:
        raise ConfigError(f"trainer.instance_noise must be 0 or more, got {noise_std}.")
    if not ops and noise_std == 0 and ada is None:
        return None

    def d_input(x: Tensor, step: int) -> Tensor:
        x = diff_augment(x, ops)
        if ada is not None:
            x = ada(x)
        std = annealed_std(step, max_steps, noise_std, noise_steps) if noise_std else 0.0
        return instance_noise(x, std)

    return d_input
