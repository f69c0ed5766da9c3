"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B.

G_ab: A -> B and G_ba: B -> A, judged by D_b and D_a. G's objective: the adversarial loss
both ways (least squares by default), plus `lambda_cycle` x the cycle L1 (a -> b -> a and
b -> a -> b), plus `identity` x `lambda_cycle` x the identity L1 (G_ab(b) = b, G_ba(a) = a).
Each D halves its loss and sees fakes from a history pool of `pool_size` past outputs. One
Adam steps both generators, another both discriminators; the lr is held for the first half
of training, then decays linearly to zero (trainer.lr_decay=auto).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from gan_cli.config import check_int, check_range
from gan_cli.errors import ConfigError
from gan_cli.games.base import OptimizerSpec, Phase, eval_mode, frozen
from gan_cli.games.image_pool import ImagePool
from gan_cli.games.image_translation import Translation, rows_picture


class CycleGAN(Translation):
    batch = "unpaired"
    data_kinds = ("unpaired",)
    generators = ("G_ab", "G_ba")
    discriminators = ("D_a", "D_b")
    optimizers = {"G": OptimizerSpec("generator", ("G_ab", "G_ba")),
                  "D": OptimizerSpec("discriminator", ("D_a", "D_b"))}
    lr_decay = ("linear", 0.5)
    translators = {"ab": "G_ab", "ba": "G_ba"}
    unsupported = {**Translation.unsupported, "n_critic": 1, "g_steps": 1}

    def __init__(self, networks, data, setup, *, lambda_cycle: float = 10.0, identity: float = 0.5,
                 pool_size: int = 50):
        super().__init__(networks, data, setup)
        check_range("model.game.lambda_cycle", lambda_cycle, 0, math.inf, False, "the paper's 10")
        check_range("model.game.identity", identity, 0, math.inf, False, "0 (off) or the paper's 0.5")
        check_int("model.game.pool_size", pool_size, 0, what="0: no pool; the paper's 50")
        channels_a, channels_b = data.input_shape[0], data.shape[0]
        if identity > 0 and channels_a != channels_b:
            raise ConfigError(
                f"model.game.identity={identity} asks G_ab(b) to return b, but domain A has {channels_a} channel(s) "
                f"and domain B {channels_b}: the identity term needs the same number in both. Set "
                f"model.game.identity=0, or make the channel counts equal (folders: dataset.channels for A, dataset.channels_b for B).")
        self.lambda_cycle, self.identity, self.pool_size = lambda_cycle, identity, pool_size
        self.phases = (Phase("G", "G"), Phase("D", "D"))  # D learns from the fakes G just made
        seed = self.settings.seed * 1_000 + 2 * self.settings.rank
        self.pools = {name: ImagePool(pool_size, seed + i) for i, name in enumerate(self.discriminators)}
        self._handoffs: dict[int, tuple] = {}  # G's batch and fakes for the D update, by accumulated batch

    def run_phase(self, phase: Phase, step: int, measure: bool) -> None:
        if phase.name == "G":
            self.g_phase(measure)
        else:
            self.d_phase(step, measure)

    def g_phase(self, measure: bool) -> None:
        u, run = self.updates, self.run
        a, b, _, _ = u.next_batch()
        with frozen(*(run[name] for name in self.discriminators)):  # G's backward needs no gradients for D's weights
            with u.precision.autocast():
                fake_b, fake_a = run["G_ab"](a), run["G_ba"](b)
                rec_a, rec_b = run["G_ba"](fake_b), run["G_ab"](fake_a)
                out_b, out_a = self.local["D_b"](fake_b).float(), self.local["D_a"](fake_a).float()
                adv = self.loss.g_loss(out_b) + self.loss.g_loss(out_a)
            cycle = (rec_a.float() - a).abs().mean() + (rec_b.float() - b).abs().mean()
            total = adv + self.lambda_cycle * cycle
            stats = {}
            if self.identity > 0:
                with u.precision.autocast():
                    same_b, same_a = run["G_ab"](b), run["G_ba"](a)
                idt = (same_b.float() - b).abs().mean() + (same_a.float() - a).abs().mean()
                total = total + self.identity * self.lambda_cycle * idt
                stats["loss/identity"] = idt
            u.optimize("G", total, measure)
        self._handoffs[u.micro] = (a, b, {"D_a": fake_a.detach(), "D_b": fake_b.detach()})
        u.record({"loss/G": adv / 2, "loss/cycle": cycle, "loss/G_total": total, **stats})

    def d_phase(self, step: int, measure: bool) -> None:
        u = self.updates
        a, b, fakes = self._handoffs[u.micro]
        losses, stats = [], {}
        for name, real in (("D_a", a), ("D_b", b)):
            D, fake = self.run[name], self.pools[name].query(fakes[name])
            with u.precision.autocast():
                real_out, fake_out = D(real).float(), D(fake).float()
                loss = 0.5 * self.loss.d_loss(real_out, fake_out)
            penalties = self.penalties(self.eager[name], real, fake, None, step)  # double backward: uncompiled
            losses.append(loss + sum(penalties.values()))
            stats.update({f"loss/{name}": loss, f"{name}/real": self.score(real_out),
                          f"{name}/fake": self.score(fake_out), **{f"penalty/{name}/{k}": v for k, v in penalties.items()}})
        u.optimize("D", losses[0] + losses[1], measure)
        for name in self.discriminators:
            self.loss.after_d_step(self.run[name])
        stats.update({"loss/D": (stats["loss/D_a"] + stats["loss/D_b"]) / 2,
                      "D/real": (stats["D_a/real"] + stats["D_b/real"]) / 2,
                      "D/fake": (stats["D_a/fake"] + stats["D_b/fake"]) / 2})
        u.record(stats)

    def fixed_inputs(self, num: int, seed: int) -> dict[str, Tensor]:
        fixed = super().fixed_inputs(num, seed)
        test = self.data.test
        n = len(fixed["a"])
        fixed["b"] = test.domain_b[:n].clone()  # real B images for the B -> A -> B rows
        return fixed

    def sample_picture(self, networks, fixed) -> Tensor:
        """One row per held-out example: a | G_ab(a) | G_ba(G_ab(a)), then b | G_ba(b) | G_ab(G_ba(b))."""
        with torch.no_grad(), eval_mode(networks):
            fake_b = networks["G_ab"](fixed["a"])
            fake_a = networks["G_ba"](fixed["b"])
            columns = [fixed["a"], fake_b, networks["G_ba"](fake_b), fixed["b"], fake_a, networks["G_ab"](fake_a)]
        return rows_picture(columns)

    def state_dict(self) -> dict:
        return {"pools": {name: pool.state_dict() for name, pool in self.pools.items()}}

    def load_state_dict(self, state: dict) -> None:
        device = next(self.networks["G_ab"].parameters()).device
        for name, pool in self.pools.items():
            if name in state.get("pools", {}):
                pool.load_state_dict(state["pools"][name], device)
