"""Learning-rate decay for G and D alike, stepped once per training iteration."""
from __future__ import annotations

from typing import Any

import torch

from gan_cli.errors import ConfigError

DECAYS = ("none", "linear", "exponential")


def lr_schedulers(trainer: Any, optimizers: tuple[torch.optim.Optimizer, ...], steps_per_epoch: int) -> list:
    """`trainer.lr_decay`: none | linear (to zero at max_steps) | exponential (x lr_decay_gamma per epoch)."""
    kind, total = trainer.lr_decay, trainer.max_steps
    if kind == "none":
        return []
    if kind == "linear":
        factor = lambda step: max(0.0, 1.0 - step / total)  # noqa: E731
    elif kind == "exponential":
        gamma, epoch = trainer.lr_decay_gamma, max(1, steps_per_epoch)
        if not 0 < gamma <= 1:
            raise ConfigError(f"trainer.lr_decay_gamma must be in (0, 1], got {gamma}.")
        factor = lambda step: gamma ** (step / epoch)  # noqa: E731
    else:
        raise ConfigError(f"trainer.lr_decay={kind!r} is not a schedule; valid: {', '.join(DECAYS)}.")
    return [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in optimizers]
