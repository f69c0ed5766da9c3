"""ProGAN (Karras et al. 2018): the adversarial game at a resolution that grows with the step.

The schedule: 4x4 stabilises, then each next resolution fades in (alpha 0 -> 1 linearly over its
fade steps) and stabilises. Before each iteration's D update the game sets `level` / `alpha` on G
and D (gan_cli/models/progan.py) from the step alone, so a resumed run continues exactly. Real
images are average-pooled to the current side and, during a fade-in, blended like G's output
(Sec. 2: lerp(up(down(x)), x, alpha)); fakes come from G at its native side; the batch at a
resolution is the first `batch_sizes[level]` items of the engine's batch. Its hooks `d_batch` and
`fake` say so; the D and G updates and the loss's penalties (WGAN-GP at the current side) are
Adversarial's.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_cli.config import is_int
from gan_cli.errors import ConfigError
from gan_cli.games.adversarial import Adversarial
from gan_cli.games.base import Phase

Steps = int | list[int] | None


class ProGAN(Adversarial):
    unsupported = {"unroll_steps": 0}  # unrolled D steps would see full-size images

    def __init__(self, networks, data, setup, *, stable_steps: Steps = None, fade_steps: Steps = None,
                 batch_sizes: list[int] | None = None):
        super().__init__(networks, data, setup)
        t, levels = self.settings, networks["G"].num_levels
        self.resolution = networks["G"].resolution
        self.schedule = schedule(levels, t.max_steps, stable_steps, fade_steps)
        self.batch_sizes = per_level_batch(levels, t.batch_size, batch_sizes)

    def progress(self, step: int) -> tuple[int, float]:
        """(level, alpha) at iteration `step` (1-based): a stable phase gives alpha 1, the i-th of
        n fade steps (i - 1) / n. Past the schedule: fully grown."""
        start = 0
        for level, fade, length in self.schedule:
            if step <= start + length:
                return level, (step - start - 1) / length if fade else 1.0
            start += length
        return self.schedule[-1][0], 1.0

    def run_phase(self, phase: Phase, step: int, measure: bool) -> None:
        if phase.name == "D":
            level, alpha = self.progress(step)
            for name in ("G", "D"):
                self.networks[name].set_progress(level, alpha)
            self.updates.record({"progan/resolution": 4.0 * 2**level, "progan/alpha": alpha})  # host numbers
        super().run_phase(phase, step, measure)

    def d_batch(self, step: int) -> tuple[Tensor, Tensor | None]:
        """The first batch_sizes[level] reals, at the level's side, faded in like G's output."""
        level, alpha = self.progress(step)
        real, y = self.updates.next_batch()
        size = self.batch_sizes[level]
        return self.real_at(real[:size], level, alpha), None if y is None else y[:size]

    def fake(self, z: Tensor, y: Tensor | None, G=None) -> Tensor:
        return (G or self.run["G"])(z, y, native=True)  # at the level's side, not upsampled to the target

    def real_view(self, x: Tensor, step: int) -> Tensor:
        return self.real_at(x, *self.progress(step))

    def real_at(self, x: Tensor, level: int, alpha: float) -> Tensor:
        """(B, C, R, R) -> (B, C, S, S) at the level's side S, faded in like G's output."""
        x = F.avg_pool2d(x, self.resolution >> (level + 2)) if 4 << level < self.resolution else x
        if level > 0 and alpha < 1.0:
            x = torch.lerp(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2.0, mode="nearest"), x, alpha)
        return x


def schedule(levels: int, max_steps: int, stable: Steps, fade: Steps) -> list[tuple[int, bool, int]]:
    """The phases as (level, fading, steps): 4x4 stable, then fade + stable per next level.
    Both null: an even split of `max_steps` over the 2L - 1 phases (the remainder to the last)."""
    if stable is None and fade is None:
        share, rest = divmod(max_steps, 2 * levels - 1)
        stable, fade = [share] * (levels - 1) + [share + rest], share
    if stable is None or fade is None:
        given, missing = ("stable_steps", "fade_steps") if fade is None else ("fade_steps", "stable_steps")
        raise ConfigError(f"model.game.{given} is set but model.game.{missing} is null; set both (their phases add "
                          "up to trainer.max_steps) or neither (an even split of trainer.max_steps).")
    stable = steps_list("stable_steps", stable, levels, "one per resolution from 4x4 up")
    fade = steps_list("fade_steps", fade, levels - 1, "one per resolution above 4x4")
    phases = [(0, False, stable[0])]
    for level in range(1, levels):
        phases += [(level, True, fade[level - 1]), (level, False, stable[level])]
    total = sum(n for _, _, n in phases)
    if total != max_steps:
        parts = [f"4x4: {stable[0]}"] + [f"{4 << i}x{4 << i}: fade {fade[i - 1]} + stable {stable[i]}"
                                         for i in range(1, levels)]
        raise ConfigError(f"model.game.stable_steps and model.game.fade_steps add up to {total} steps "
                          f"({'; '.join(parts)}), but trainer.max_steps={max_steps}; set trainer.max_steps={total} "
                          "or change the phases.")
    return phases


def steps_list(key: str, value: Any, length: int, what: str) -> list[int]:
    """An int for every entry or a list of `length` ints, all >= 0; else ConfigError naming model.game.<key>."""
    values = [value] * length if not isinstance(value, (list, tuple)) else list(value)
    if len(values) != length or not all(is_int(v) and v >= 0 for v in values):
        raise ConfigError(f"model.game.{key} is {value!r}; use an integer >= 0 or a list of {length} of them ({what}).")
    return values


def per_level_batch(levels: int, batch_size: int, sizes: list[int] | None) -> list[int]:
    """The batch at each level: trainer.batch_size everywhere (null) or a list of L sizes in [1, batch_size]."""
    if sizes is None:
        return [batch_size] * levels
    ok = isinstance(sizes, (list, tuple)) and len(sizes) == levels
    if not ok or not all(is_int(b) and 1 <= b <= batch_size for b in sizes):
        raise ConfigError(f"model.game.batch_sizes is {sizes!r}; use null (trainer.batch_size at every resolution) "
                          f"or a list of {levels} sizes (4x4 first), each from 1 to trainer.batch_size={batch_size}.")
    return list(sizes)
