"""The engine's side of an iteration: the due phases of the game, then EMA, ADA's p and lr schedules.

`Updates` is what a game's phases use: the next batch, noise, `optimize(optimizer, loss)`
(zero_grad, backward under the precision's scaler, gradient norms when measured, step),
`observe_real(D(x))` and `record(values)`. No host-device synchronisation: statistics are summed
on the device (`StatSums`) and read once per log step; the first step with a non-finite loss is
tracked on the device too.

Gradient accumulation (`accumulate` K > 1): each phase runs K times in a row, on K batches (the
game's `updates.micro` says which); `optimize` zeroes the gradients on the first, adds loss / K on
each and steps on the last, so a step sees the mean over K x batch_size samples. Under DDP the
gradients are reduced on the last only.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import Tensor, nn

from gan_cli.engine.ada import Ada
from gan_cli.engine.batches import BatchStream
from gan_cli.engine.distributed import World
from gan_cli.engine.ema import EMA
from gan_cli.engine.precision import Precision

DInput = Callable[[Tensor, int], Tensor]  # (x, step) -> what D sees (augmentation, instance noise)


class StatSums:
    """Running sums of scalars: tensors summed on the device, host numbers on the host;
    `read()` returns the means, with one sync for all the tensors."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.host: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, Tensor | float]) -> None:
        for k, v in values.items():
            if isinstance(v, Tensor):
                v = v.detach()
                self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            else:
                self.host[k] = self.host.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def read(self) -> dict[str, float]:
        keys = list(self.sums)
        values = torch.stack([self.sums[k].float() / self.counts[k] for k in keys]).tolist() if keys else []
        means = {**dict(zip(keys, values)), **{k: v / self.counts[k] for k, v in self.host.items()}}
        self.sums, self.host, self.counts = {}, {}, {}
        return means


class Updates:
    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], precision: Precision, batches: BatchStream | None,
                 *, emas: dict[str, EMA] | None = None, plain: dict[str, nn.Module] | None = None,
                 schedulers: dict | None = None, d_input: DInput | None = None, channels_last: bool = False,
                 seed: int = 0, world: World = World(), accumulate: int = 1, ada: Ada | None = None,
                 ddp: list[nn.Module] | None = None):
        """`plain`: the networks without DDP or compile, which `emas` average; `d_input`: what D sees of x;
        `ada`: adaptive augmentation, told what D makes of the reals; `ddp`: the DDP-wrapped networks."""
        device = precision.device
        self.optimizers, self.batches, self.device, self.precision = optimizers, batches, device, precision
        self.emas, self.plain, self.schedulers = emas or {}, plain or {}, schedulers or {}
        self.d_input = d_input or (lambda x, step: x)
        self.channels_last = channels_last
        self.accumulate, self.micro, self.ada, self.ddp = accumulate, 0, ada, ddp or []
        # z for the whole global batch from one stream, this rank's slice: N ranks x batch b draw
        # exactly the noise of one process with batch N*b (the same maths where the model allows)
        self.noise_rng = torch.Generator(device).manual_seed(seed + 1)
        self.rank, self.world = world.rank, world.size
        self.stats = StatSums()
        self.first_bad = torch.tensor(-1, device=device)  # first step with a non-finite loss
        self.grad_norms: dict[str, Tensor] = {}
        self._finite: Tensor | None = None  # this iteration's losses all finite so far

    def iteration(self, game, step: int, measure: bool) -> None:
        """Iteration `step` (1-based): every due phase of `game` (once per accumulated batch), then EMA, ADA's p
        and lr schedules. `measure`: also record gradient norms (log steps only), on each phase's last repeat."""
        for phase in game.phases:
            if step % phase.every:
                continue
            for i in range(phase.repeat):
                for self.micro in range(self.accumulate):
                    with self._reduce_gradients(self.micro == self.accumulate - 1):
                        game.run_phase(phase, step, measure and i == phase.repeat - 1)
        self.micro = 0
        for name, ema in self.emas.items():
            ema.update(self.plain[name])
        if self.ada is not None:
            self.ada.adjust(step)
            self.record({"ada/p": self.ada.p})
        for scheduler in self.schedulers.values():
            scheduler.step()
        if self._finite is not None:
            self.first_bad = torch.where(self._finite | (self.first_bad >= 0), self.first_bad, step)
            self._finite = None

    # ---------------------------------------------------------------- services for the game's phases
    def next_batch(self) -> tuple[Tensor, ...]:
        batch = self.batches.next()
        if self.channels_last:
            batch = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in batch)
        return batch

    def noise(self, batch: int, dim: int) -> Tensor:
        z = torch.randn(self.world * batch, dim, device=self.device, generator=self.noise_rng)
        return z[self.rank * batch : (self.rank + 1) * batch] if self.world > 1 else z

    def optimize(self, name: str, loss: Tensor, measure: bool, watch: Tensor | None = None) -> None:
        """One step of optimizer `name` on `loss` (with accumulation: its share of one). `watch`: the loss
        whose finiteness is tracked (default `loss`); `measure`: record `grad_norm/<name>`."""
        optimizer = self.optimizers[name]
        if self.micro == 0:
            optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss / self.accumulate if self.accumulate > 1 else loss, name)
        if self.micro == self.accumulate - 1:
            if measure:
                self.precision.unscale(optimizer, name)
                grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
                self.grad_norms[name] = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
            self.precision.step(optimizer, name)
        finite = torch.isfinite(loss if watch is None else watch)
        self._finite = finite if self._finite is None else self._finite & finite

    def observe_real(self, real_logits: Tensor) -> None:
        """D's raw outputs on a real batch: r_t = E[sign(D(x))], ADA's overfitting heuristic (logged with or
        without ADA; the doctor reads it), and ADA's adjustment of p."""
        self.record({"ada/rt": real_logits.detach().float().sign().mean()})
        if self.ada is not None:
            self.ada.observe(real_logits)

    def record(self, values: dict[str, Tensor | float]) -> None:
        """Scalars to log: tensors (read at the next log step) or host numbers."""
        self.stats.add(values)

    def _reduce_gradients(self, last: bool):
        """DDP reduces the gradients of the last of the accumulated batches only."""
        if last or not self.ddp:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        for module in self.ddp:
            stack.enter_context(module.no_sync())
        return stack

    def forget(self) -> None:
        """Drop what was measured since the last read (after a rollback)."""
        self.stats.read()
        self.grad_norms.clear()
        self.first_bad.fill_(-1)
        self._finite = None
