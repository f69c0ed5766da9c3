"""One training iteration: n_critic D updates, then g_steps G updates, then EMA and lr schedules.

No host-device synchronisation: statistics are summed on the device (`StatSums`) and read
once per log step; the first step with a non-finite loss is tracked on the device too.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable

import torch
from torch import Tensor, nn

from gan_cli.engine.batches import BatchStream
from gan_cli.engine.distributed import unwrap
from gan_cli.engine.ema import EMA
from gan_cli.engine.precision import Precision
from gan_cli.losses.adversarial import GanLoss

DInput = Callable[[Tensor, int], Tensor]  # (x, step) -> what D sees (augmentation, instance noise)


class StatSums:
    """Running sums of scalar tensors on the device; `read()` returns the means, one sync."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, Tensor]) -> None:
        for k, v in values.items():
            v = v.detach()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1

    def read(self) -> dict[str, float]:
        keys = list(self.sums)
        values = torch.stack([self.sums[k].float() / self.counts[k] for k in keys]).tolist() if keys else []
        self.sums, self.counts = {}, {}
        return dict(zip(keys, values))


class AdversarialStep:
    def __init__(self, G: nn.Module, D: nn.Module, loss: GanLoss, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, batches: BatchStream, latent_dim: int, device: torch.device,
                 n_critic: int = 1, g_steps: int = 1, ema: EMA | None = None,
                 schedulers: list | None = None, d_input: DInput | None = None, penalty=None,
                 mode_seeking: float = 0.0, unroll_steps: int = 0, precision: Precision | None = None,
                 channels_last: bool = False, seed: int = 0, rank: int = 0, world: int = 1):
        self.G, self.D, self.loss, self.opt_g, self.opt_d = G, D, loss, opt_g, opt_d
        self.batches, self.latent_dim, self.device = batches, latent_dim, device
        self.n_critic, self.g_steps, self.ema = n_critic, g_steps, ema
        self.schedulers = schedulers or []
        self.d_input = d_input or (lambda x, step: x)
        self.penalty = penalty  # an extra penalty on D (R1, R2, DRAGAN, GP), or None
        self.mode_seeking = mode_seeking  # MSGAN weight
        self.unroll_steps = unroll_steps  # unrolled GAN: G steps against D after this many extra D updates
        self.precision = precision or Precision("fp32", device)
        self.channels_last = channels_last
        # z for the whole global batch from one stream, this rank's slice: N ranks x batch b draw
        # exactly the noise of one process with batch N*b (the same maths where the model allows)
        self.noise_rng = torch.Generator(device).manual_seed(seed + 1)
        self.rank, self.world = rank, world
        self.D_plain = unwrap(D)  # G's update reads D without DDP's gradient synchronisation
        self.stats = StatSums()
        self.first_bad = torch.tensor(-1, device=device)  # first step with a non-finite loss
        self.grad_norms: dict[str, Tensor] = {}

    def next_batch(self) -> tuple[Tensor, Tensor]:
        real, y = self.batches.next()
        if self.channels_last and real.dim() == 4:
            real = real.contiguous(memory_format=torch.channels_last)
        return real, y

    def noise(self, batch: int) -> Tensor:
        z = torch.randn(self.world * batch, self.latent_dim, device=self.device, generator=self.noise_rng)
        return z[self.rank * batch : (self.rank + 1) * batch] if self.world > 1 else z

    def score(self, out: Tensor) -> Tensor:
        """Mean D output as reported: a probability for BCE-style losses, else the raw score."""
        out = out.detach()
        return torch.sigmoid(out).mean() if self.loss.probabilities else out.mean()

    def __call__(self, step: int, measure: bool) -> None:
        """Iteration `step` (1-based). `measure`: also record gradient norms (log steps only)."""
        reuse = self.n_critic == 1  # the first G update can reuse the D step's fake batch
        for i in range(self.n_critic):
            real, y = self.next_batch()
            z = self.noise(real.shape[0])
            with torch.set_grad_enabled(reuse), self.precision.autocast():
                fake = self.G(z, y)
            loss_d = self.d_update(real, fake, y, step, measure and i == self.n_critic - 1)
        for i in range(self.g_steps):
            if i > 0 or not reuse:
                z = self.noise(real.shape[0])
                with self.precision.autocast():
                    fake = self.G(z, y)
            loss_g = self.g_update(z, fake, y, step, measure and i == self.g_steps - 1)
        if self.ema is not None:
            self.ema.update(self.G)
        for scheduler in self.schedulers:
            scheduler.step()
        finite = torch.isfinite(loss_d) & torch.isfinite(loss_g)
        self.first_bad = torch.where(finite | (self.first_bad >= 0), self.first_bad, step)

    def d_update(self, real: Tensor, fake: Tensor, y: Tensor, step: int, measure: bool, record: bool = True) -> Tensor:
        real_in, fake_in = self.d_input(real, step), self.d_input(fake.detach(), step)
        with self.precision.autocast():
            real_out, fake_out = self.D(real_in, y).float(), self.D(fake_in, y).float()
            loss_d = self.loss.d_loss(real_out, fake_out)
        with self.precision.full_precision():  # penalties differentiate D's input: in fp32
            real_32, fake_32 = real_in.float(), fake_in.float()
            penalties = self.loss.penalty(self.D, real_32, fake_32, y)
            if self.penalty is not None:
                value = self.penalty(self.D, real_32, fake_32, y, step)
                if value is not None:  # lazy penalties skip most steps
                    penalties[self.penalty.name] = value
        self.opt_d.zero_grad(set_to_none=True)
        self.precision.backward(loss_d + sum(penalties.values()), "D")  # the sum of no penalties is 0
        if measure:
            self.precision.unscale(self.opt_d, "D")
            self.grad_norms["D"] = grad_norm(self.D)
        self.precision.step(self.opt_d, "D")
        self.loss.after_d_step(self.D)
        if not record:
            return loss_d
        self.stats.add({"loss/D": loss_d, "D/real": self.score(real_out), "D/fake": self.score(fake_out),
                        **{f"penalty/{k}": v for k, v in penalties.items()},
                        **{f"diag/{k}": v for k, v in self.loss.diagnostics().items()}})
        return loss_d

    def g_update(self, z: Tensor, fake: Tensor, y: Tensor, step: int, measure: bool) -> Tensor:
        if self.unroll_steps:
            with unrolled(self.D, self.opt_d):
                self.unroll(step)
                return self._g_update(z, fake, y, step, measure)
        return self._g_update(z, fake, y, step, measure)

    def unroll(self, step: int) -> None:
        """Unrolled GAN (Metz et al. 2017), first-order: D takes `unroll_steps` extra updates that
        G's next update is judged by; `unrolled` restores D afterwards."""
        for _ in range(self.unroll_steps):
            real, y = self.next_batch()
            with torch.no_grad(), self.precision.autocast():
                fake = self.G(self.noise(real.shape[0]), y)
            self.d_update(real, fake, y, step, measure=False, record=False)

    def _g_update(self, z: Tensor, fake: Tensor, y: Tensor, step: int, measure: bool) -> Tensor:
        self.D.requires_grad_(False)  # G's backward needs no gradients for D's weights
        with self.precision.autocast():
            fake_out = self.D_plain(self.d_input(fake, step), y).float()
            loss_g = self.loss.g_loss(fake_out)
        total = loss_g
        if self.mode_seeking:
            ms = mode_seeking_term(z, fake.float())
            self.stats.add({"penalty/mode_seeking": ms})
            total = loss_g + self.mode_seeking * ms
        self.opt_g.zero_grad(set_to_none=True)
        self.precision.backward(total, "G")
        if measure:
            self.precision.unscale(self.opt_g, "G")
            self.grad_norms["G"] = grad_norm(self.G)
        self.precision.step(self.opt_g, "G")
        self.D.requires_grad_(True)
        self.stats.add({"loss/G": loss_g, "D/fake_g": self.score(fake_out)})
        return loss_g


@contextmanager
def unrolled(D: nn.Module, opt_d: torch.optim.Optimizer):
    """Within the block D and its optimizer may change; afterwards they are as before."""
    saved = copy.deepcopy(D.state_dict()), copy.deepcopy(opt_d.state_dict())
    try:
        yield
    finally:
        D.load_state_dict(saved[0])
        opt_d.load_state_dict(saved[1])


def mode_seeking_term(z: Tensor, fake: Tensor, eps: float = 1e-5) -> Tensor:
    """MSGAN (Mao et al. 2019): 1 / (|G(z1) - G(z2)| / |z1 - z2|), with the batch's two halves as pairs.

    Minimising it pushes G to map distant latents to distant samples, against mode collapse.
    """
    half = fake.shape[0] // 2
    d_img = (fake[:half] - fake[half : 2 * half]).abs().flatten(1).mean(1)  # (B/2,)
    d_z = (z[:half] - z[half : 2 * half]).abs().mean(1)  # (B/2,)
    return 1.0 / ((d_img / d_z).mean() + eps)


def grad_norm(module: nn.Module) -> Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
