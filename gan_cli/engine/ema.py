"""Exponential moving average of the generator's weights (Yazıcı et al. 2019; Karras et al.).

With warm-up the decay ramps as min(decay, (1 + t) / (10 + t)), so the average is not
dominated by the random initial weights early on. Buffers (BatchNorm statistics) are
copied, not averaged.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0
        # modules that keep a host copy of some buffers (ProGAN's growth state) copy it too
        self._host_state = [i for i, m in enumerate(self.model.modules()) if hasattr(m, "host_state")]

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.current_decay()
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), weight)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)
        if self._host_state:
            theirs = list(model.modules())
            for i, mine in enumerate(self.model.modules()):
                if i in self._host_state:
                    mine.load_host_state(theirs[i].host_state())

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict, updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
