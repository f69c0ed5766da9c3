"""Learning-rate decay, the same for every optimizer, stepped once per training iteration."""
from __future__ import annotations

from typing import Any

import torch

from gan_cli.config import DECAYS
from gan_cli.errors import ConfigError



def lr_schedulers(trainer: Any, optimizers: dict[str, torch.optim.Optimizer], steps_per_epoch: int,
                  game_default: tuple[str, float] = ("none", 0.0)) -> dict[str, Any]:
    """`trainer.lr_decay`: auto (`game_default`: (kind, start)) | none | linear (held for the fraction
    `lr_decay_start` of max_steps, then to zero at max_steps) | exponential (x lr_decay_gamma per epoch)."""
    kind, start = trainer.lr_decay, trainer.get("lr_decay_start")
    if kind == "auto":
        kind, default_start = game_default
        start = default_start if start is None else start
    start, total = start or 0.0, trainer.max_steps
    if kind == "none":
        return {}
    if kind == "linear":
        held = start * total
        factor = lambda step: min(1.0, max(0.0, 1.0 - (step - held) / max(total - held, 1)))  # noqa: E731
    elif kind == "exponential":
        gamma, epoch = trainer.lr_decay_gamma, max(1, steps_per_epoch)
        if not 0 < gamma <= 1:
            raise ConfigError(f"trainer.lr_decay_gamma must be in (0, 1], got {gamma}.")
        factor = lambda step: gamma ** (step / epoch)  # noqa: E731
    else:
        raise ConfigError(f"trainer.lr_decay={kind!r} is not a schedule; valid: {', '.join(DECAYS)}.")
    return {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in optimizers.items()}
