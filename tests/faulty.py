"""Losses that misbehave on cue: real faults (signals, NaN, Inf gradients, crashes) at a chosen update.

Name them with `loss._target_=tests.faulty.<Class>` and trust the tests package
(`monkeypatch.setenv("GAN_CLI_TRUST", "tests")`).
"""
from __future__ import annotations

import os
import time

import torch

from gan_cli.losses import NonSaturating


class SignalAt(NonSaturating):
    """Sends `signum` to this process during the D updates numbered in `at` (an int or a list)."""

    def __init__(self, at: int, signum: int, **options):
        super().__init__(**options)
        self.at = [at] if isinstance(at, int) else list(at)
        self.signum, self.calls = signum, 0

    def d_loss(self, real, fake):
        self.calls += 1
        if self.calls in self.at:
            os.kill(os.getpid(), self.signum)
        return super().d_loss(real, fake)


class Slow(NonSaturating):
    """Each D update takes at least `seconds` longer: time for a test to act between two steps."""

    def __init__(self, seconds: float, **options):
        super().__init__(**options)
        self.seconds = seconds

    def d_loss(self, real, fake):
        time.sleep(self.seconds)
        return super().d_loss(real, fake)


class CrashAt(NonSaturating):
    """Raises in the `at`-th D update, as a bug or a lost device would."""

    def __init__(self, at: int, **options):
        super().__init__(**options)
        self.at, self.calls = at, 0

    def d_loss(self, real, fake):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("simulated crash")
        return super().d_loss(real, fake)


class _InfGrad(torch.autograd.Function):
    """Identity forward; an infinite gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class InfGradFrom(NonSaturating):
    """G's loss stays finite but its gradients are infinite from the `after`+1-th G update on."""

    def __init__(self, after: int, **options):
        super().__init__(**options)
        self.after, self.calls = after, 0

    def g_loss(self, fake):
        self.calls += 1
        return super().g_loss(_InfGrad.apply(fake) if self.calls > self.after else fake)
