"""StyleGAN2's game (Karras et al. 2020): the adversarial game plus two lazy regularisers.

The phases of one iteration, in the order they run here (`run_phase` below names each):
  D   `d_main`: the loss group's D loss on a real batch and G's fakes (the model file picks
      nonsaturating: softplus(D(G(z))) + softplus(-D(x))), plus the loss's own penalty if it has one
      (loss=wgan_gp's) and the small-data terms; its fakes are kept for G when n_critic is 1
  R1  `r1_reg`, every `r1_every` iterations on optimizer D: (r1_gamma / 2) E|grad_x D(x)|^2 on a
      fresh real batch, times r1_every (lazy regularisation, Sec. 3.1 and Appendix B)
  G   the loss group's G loss, softplus(-D(G(z))), with D frozen (`Adversarial.g_phase`, as in every
      noise game; style mixing happens inside G)
  PL  `pl_reg`, every `pl_every` iterations on optimizer G: path length regularisation (Sec. 3.2)
      on a batch of batch_size // pl_batch_shrink: |J_w^T y| for y ~ N(0, I) / sqrt(H W) is pulled
      toward its running mean `pl_mean`, times pl_weight x pl_every
stylegan2-ada-pytorch's `accumulate_gradients` runs the G phases first (Gmain, Greg, Dmain, Dreg);
D first lets the G step reuse the D step's fakes (n_critic 1), as every adversarial game here does.
A regulariser of weight 0 has no phase, and its optimizer no lazy lr / betas adjustment.
Logged before their weights: penalty/r1 (E|grad|^2), penalty/path_length (E(|J^T y| - pl_mean)^2),
stylegan/pl_mean.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from gan_cli.config import check_int, check_range
from gan_cli.errors import ConfigError
from gan_cli.games.adversarial import Adversarial
from gan_cli.games.base import OptimizerSpec, Phase


class StyleGAN2(Adversarial):
    def __init__(self, networks, data, setup, *, r1_gamma: float = 0.01, r1_every: int = 16,
                 pl_weight: float = 2.0, pl_every: int = 4, pl_batch_shrink: int = 2, pl_decay: float = 0.01):
        check_range("model.game.r1_gamma", r1_gamma, 0, math.inf, False, "0 (off), 0.01 (cifar) or 10 (the paper)")
        check_range("model.game.pl_weight", pl_weight, 0, math.inf, False, "0 (off) or 2 (the paper)")
        check_range("model.game.pl_decay", pl_decay, 0, 1, False, "the paper's 0.01")
        for key, value in (("r1_every", r1_every), ("pl_every", pl_every), ("pl_batch_shrink", pl_batch_shrink)):
            check_int(f"model.game.{key}", value, 1)
        if setup.penalty is not None:
            raise ConfigError(f"penalty={getattr(setup.penalty, 'name', setup.penalty)} cannot be combined with "
                              "model=stylegan, whose R1 is built in (model.game.r1_gamma, every model.game.r1_every "
                              "steps); set penalty=none.")
        super().__init__(networks, data, setup)
        self.r1_gamma, self.r1_every = float(r1_gamma), r1_every
        self.pl_weight, self.pl_every = float(pl_weight), pl_every
        self.pl_batch_shrink, self.pl_decay = pl_batch_shrink, float(pl_decay)
        self.optimizers = {"G": OptimizerSpec("generator", ("G",), pl_every if pl_weight else 1),
                           "D": OptimizerSpec("discriminator", ("D",), r1_every if r1_gamma else 1)}
        s = self.settings
        self.phases = (Phase("D", "D", repeat=s.n_critic),
                       *([Phase("R1", "D", every=r1_every)] if r1_gamma else []),
                       Phase("G", "G", repeat=s.g_steps),
                       *([Phase("PL", "G", every=pl_every)] if pl_weight else []))
        device = next(networks["G"].parameters()).device
        self.pl_mean = torch.zeros((), device=device)  # running mean of the path lengths

    def run_phase(self, phase: Phase, step: int, measure: bool) -> None:
        if phase.name == "D":
            self.d_main(step, measure)
        elif phase.name == "R1":
            self.r1_reg(step)
        elif phase.name == "G":
            self.g_phase(step, measure)
        else:
            self.pl_reg()

    def d_main(self, step: int, measure: bool) -> None:
        """The adversarial D loss on a fresh real batch and G's fakes (no penalty group: R1 is `r1_reg`)."""
        u, D = self.updates, self.run["D"]
        real, y = u.next_batch()
        fakes = self.draw_fakes(real.shape[0], y)  # G(z), kept for G when it reuses them
        real_in, fake_in = u.d_input(real, step), u.d_input(fakes.image.detach(), step)  # ADA, DiffAugment
        with u.precision.autocast():
            real_out, fake_out = D(real_in, y).float(), D(fake_in, y).float()  # (B,) logits
            loss = self.loss.d_loss(real_out, fake_out)
        penalties = self.penalties(self.eager["D"], real_in, fake_in, y, step)  # the loss's own (WGAN-GP's): uncompiled
        extra = self.d_regularisers(real_in, fake_in, real_out, fake_out, y, fakes.z, step)  # LeCam, bCR, zCR
        u.optimize("D", loss + sum(penalties.values()) + sum(extra.values()), measure, watch=loss)
        self.loss.after_d_step(D)
        u.observe_real(real_out)
        self.record_d(loss, real_out, fake_out, penalties)

    def r1_reg(self, step: int) -> None:
        """Lazy R1 (Mescheder et al. 2018) on a fresh real batch."""
        u, D = self.updates, self.eager["D"]  # double backward: uncompiled
        real, y = u.next_batch()
        with u.precision.full_precision():
            real = real.detach().float().requires_grad_(True)
            out = D(u.d_input(real, step), y).float()  # (B,)
            (grad,) = torch.autograd.grad(out.sum(), real, create_graph=True)
            r1 = grad.square().flatten(1).sum(1).mean()
            loss = r1 * (self.r1_gamma / 2 * self.r1_every) + out.mean() * 0  # * 0: every D weight in the graph (DDP)
        u.optimize("D", loss, measure=False)
        u.record({"penalty/r1": r1})

    def pl_reg(self) -> None:
        """Path length regularisation: grad of (G(z) * noise).sum() w.r.t. the ws synthesis consumed."""
        u = self.updates
        z = u.noise(max(1, self.handoff.size // self.pl_batch_shrink), self.latent_dim)
        with u.precision.full_precision():
            images, ws = self.eager["G"](z, return_ws=True)  # uncompiled (double backward), DDP-wrapped
            noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
            (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)  # (B, num_ws, w_dim)
            lengths = grad.square().sum(2).mean(1).sqrt()  # (B,)
            self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
            penalty = (lengths - self.pl_mean).square().mean()
            loss = penalty * (self.pl_weight * self.pl_every) + images.mean() * 0
        u.optimize("G", loss, measure=False)
        u.record({"penalty/path_length": penalty, "stylegan/pl_mean": self.pl_mean})

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pl_mean = state["pl_mean"].to(self.pl_mean.device, self.pl_mean.dtype)
