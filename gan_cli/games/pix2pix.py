"""Pix2Pix (Isola et al. 2017): paired translation a -> b with a conditional PatchGAN.

G(a) -> b; D judges (input, output) pairs, a and b concatenated along channels. G minimises
the adversarial loss (any option of the `loss` group) plus `lambda_l1` x |G(a) - b|_1; D's
loss is halved, as in the paper, to slow D relative to G. `adversarial_weight=0` trains the
L1-only U-Net of the paper's ablation.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from gan_cli.config import check_range
from gan_cli.games.base import Phase, eval_mode, frozen
from gan_cli.games.image_translation import Translation, rows_picture


class Translated(NamedTuple):
    """What a D update hands the G updates of its iteration: its pair, and G(a) with G's graph when
    the first G update may reuse it (n_critic 1)."""
    a: Tensor
    b: Tensor
    fake: Tensor | None = None


class Pix2Pix(Translation):
    batch = "paired"
    data_kinds = ("paired",)
    translators = {"ab": "G"}

    def __init__(self, networks, data, setup, *, lambda_l1: float = 100.0, adversarial_weight: float = 1.0,
                 d_loss_scale: float = 0.5):
        super().__init__(networks, data, setup)
        check_range("model.game.lambda_l1", lambda_l1, 0, math.inf, False, "the paper's 100")
        check_range("model.game.adversarial_weight", adversarial_weight, 0, math.inf, False, "1, or 0 for L1 only")
        check_range("model.game.d_loss_scale", d_loss_scale, 0, math.inf, False, "the paper's 0.5")
        self.lambda_l1, self.adversarial_weight, self.d_loss_scale = lambda_l1, adversarial_weight, d_loss_scale
        self.phases = (Phase("D", "D", repeat=self.settings.n_critic), Phase("G", "G", repeat=self.settings.g_steps))
        self.handoffs: dict[int, Translated] = {}  # from the last D update to the G updates, by accumulated batch

    def attach(self, networks, updates) -> None:
        super().attach(networks, updates)
        self.D_plain = self.local["D"]  # G's update reads D without DDP's gradient synchronisation

    def run_phase(self, phase: Phase, step: int, measure: bool) -> None:
        if phase.name == "D":
            self.d_phase(step, measure)
        else:
            self.g_phase(measure)

    def d_phase(self, step: int, measure: bool) -> None:
        u, D = self.updates, self.run["D"]
        reuse = self.settings.reuse_fakes
        a, b, y = u.next_batch()
        with torch.set_grad_enabled(reuse), u.precision.autocast():
            fake = self.run["G"](a)
        self.handoffs[u.micro] = Translated(a, b, fake if reuse else None)
        real_in, fake_in = torch.cat([a, b], 1), torch.cat([a, fake.detach()], 1)
        with u.precision.autocast():
            real_out, fake_out = D(real_in).float(), D(fake_in).float()
            loss_d = self.d_loss_scale * self.loss.d_loss(real_out, fake_out)
        penalties = self.penalties(self.eager["D"], real_in, fake_in, None, step)  # double backward: uncompiled
        u.optimize("D", loss_d + sum(penalties.values()), measure, watch=loss_d)
        self.loss.after_d_step(D)
        u.record({"loss/D": loss_d, "D/real": self.score(real_out), "D/fake": self.score(fake_out),
                  **{f"penalty/{k}": v for k, v in penalties.items()}})

    def g_phase(self, measure: bool) -> None:
        u = self.updates
        a, b, fake = self.handoffs[u.micro]
        self.handoffs[u.micro] = Translated(a, b)  # later G updates of the iteration translate again
        if fake is None:
            with u.precision.autocast():
                fake = self.run["G"](a)
        with frozen(self.run["D"]):
            with u.precision.autocast():
                fake_out = self.D_plain(torch.cat([a, fake], 1)).float()
                loss_adv = self.loss.g_loss(fake_out)
            l1 = (fake.float() - b.float()).abs().mean()
            total = self.adversarial_weight * loss_adv + self.lambda_l1 * l1
            u.optimize("G", total, measure)
        u.record({"loss/G": loss_adv, "loss/G_l1": l1, "loss/G_total": total, "D/fake_g": self.score(fake_out)})

    def sample_picture(self, networks, fixed) -> Tensor:
        """One row per held-out example: input | output | target."""
        with torch.no_grad(), eval_mode(networks):
            out = networks["G"](fixed["a"])
        return rows_picture([fixed["a"], out, fixed["b"]])
