"""The classic game: G(z, y) against D(x, y); n_critic D updates, then g_steps G updates.

Vanilla GAN, DCGAN, cGAN, WGAN(-GP), LSGAN, hinge, SNGAN and SAGAN are all this game with
different networks and losses. Its remedies live here too: the extra D penalty (R1, R2,
DRAGAN, GP), DiffAugment / ADA / instance noise on D's input (the engine's `d_input`), mode
seeking, unrolled D steps, and the small-data regularisers LeCam, bCR and zCR (d_regularisers.py).
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.games.base import Game, Phase, eval_mode, frozen, generate, seeded
from gan_cli.games.d_regularisers import LeCam, consistency_transform
from gan_cli.logging.pictures import image_grid, plot_extent, scatter_picture


class Fakes(NamedTuple):
    """What a D update hands the G updates of its iteration: the labels of its real batch and the
    batch size, and, when the first G update may reuse them (`Settings.reuse_fakes`), z and G(z) with
    G's graph. With gradient accumulation each accumulated batch hands on its own."""
    y: Tensor | None
    size: int
    z: Tensor | None = None
    image: Tensor | None = None


class Adversarial(Game):
    def __init__(self, networks: dict[str, nn.Module], data, setup, **options: Any):
        super().__init__(networks, data, setup, **options)
        self.latent_dim = networks["G"].latent_dim
        s = self.settings
        self.mode_seeking, self.unroll_steps = s.mode_seeking, s.unroll_steps  # MSGAN weight; unrolled GAN
        self.phases = (Phase("D", "D", repeat=s.n_critic), Phase("G", "G", repeat=s.g_steps))
        self.handoffs: dict[int, Fakes] = {}  # from the last D update to the G updates, by accumulated batch
        r = self.regularisers = s.regularisers
        device = next(networks["D"].parameters()).device
        self.lecam = LeCam(r.lecam, r.lecam_decay, r.lecam_start, device, s.world) if r.lecam else None

    def attach(self, networks, updates) -> None:
        super().attach(networks, updates)
        self.D_plain = self.local["D"]  # G's update reads D without DDP's gradient synchronisation

    @property
    def conditional(self) -> bool:
        return bool(getattr(self.networks["G"], "conditional", False))

    def run_phase(self, phase: Phase, step: int, measure: bool) -> None:
        if phase.name == "D":
            self.d_phase(step, measure)
        else:
            self.g_phase(step, measure)

    # ---------------------------------------------------------------- hooks for variants (ProGAN)
    def d_batch(self, step: int) -> tuple[Tensor, Tensor | None]:
        """The real batch (and labels) a D update reads."""
        return self.updates.next_batch()

    def fake(self, z: Tensor, y: Tensor | None, G: nn.Module | None = None) -> Tensor:
        """G's output for z (and y), as D is shown it; `G`: another copy of G than the training one."""
        return (G or self.run["G"])(z, y)

    def real_view(self, x: Tensor, step: int) -> Tensor:
        """Full-size reals as D sees them at iteration `step`."""
        return x

    # ---------------------------------------------------------------- the pieces of an iteration
    @property
    def handoff(self) -> Fakes:
        """What the D update of this accumulated batch handed on."""
        return self.handoffs[self.updates.micro]

    def draw_fakes(self, size: int, y: Tensor | None) -> Fakes:
        """G(z) for fresh noise; when the G update reuses them, with G's graph, handed to the next G update."""
        keep = self.settings.reuse_fakes
        z = self.updates.noise(size, self.latent_dim)
        with torch.set_grad_enabled(keep), self.updates.precision.autocast():
            fakes = Fakes(y, size, z, self.fake(z, y))
        self.handoffs[self.updates.micro] = fakes if keep else Fakes(y, size)
        return fakes

    def fakes_for_g(self) -> Fakes:
        """The D update's fakes for the first G update that asks (reuse_fakes), else new ones for its labels."""
        handed = self.handoff
        self.handoffs[self.updates.micro] = Fakes(handed.y, handed.size)  # later G updates draw new fakes
        if handed.image is not None:
            return handed
        z = self.updates.noise(handed.size, self.latent_dim)
        with self.updates.precision.autocast():
            return Fakes(handed.y, handed.size, z, self.fake(z, handed.y))

    def record_d(self, loss: Tensor, real_out: Tensor, fake_out: Tensor, penalties: dict[str, Tensor]) -> None:
        self.updates.record({"loss/D": loss, "D/real": self.score(real_out), "D/fake": self.score(fake_out),
                             **{f"penalty/{k}": v for k, v in penalties.items()},
                             **{f"diag/{k}": v for k, v in self.loss.diagnostics().items()}})

    def d_regularisers(self, real_in: Tensor, fake_in: Tensor, real_out: Tensor, fake_out: Tensor,
                       y: Tensor | None, z: Tensor | None, step: int) -> dict[str, Tensor]:
        """The weighted small-data terms added to D's loss, by name: LeCam, bCR, zCR (each logged as
        penalty/<name> before its weight). `real_in` / `fake_in`: D's inputs; `z`: the fakes' noise."""
        u, D, r, terms, logged = self.updates, self.run["D"], self.regularisers, {}, {}
        if self.lecam is not None:
            term = self.lecam(real_out, fake_out, step)
            if term is not None:
                logged["lecam"], terms["lecam"] = term, r.lecam * term
        for side, weight, x, out in (("real", r.bcr_real, real_in, real_out), ("fake", r.bcr_fake, fake_in, fake_out)):
            if weight:
                with u.precision.autocast():
                    moved = D(consistency_transform(x), y).float()
                logged[f"bcr_{side}"] = F.mse_loss(out, moved)
                terms[f"bcr_{side}"] = weight * logged[f"bcr_{side}"]
        if r.zcr_d and z is not None:
            with torch.no_grad(), u.precision.autocast():
                nearby = self.fake(z + r.zcr_radius * torch.randn_like(z), y)
            with u.precision.autocast():
                out_nearby = D(u.d_input(nearby, step), y).float()
            logged["zcr_d"] = F.mse_loss(fake_out, out_nearby)
            terms["zcr_d"] = r.zcr_d * logged["zcr_d"]
        u.record({f"penalty/{k}": v for k, v in logged.items()})
        return terms

    def g_terms(self, fakes: Fakes) -> dict[str, Tensor]:
        """The weighted terms added to G's loss besides the adversarial one, by name: the game's
        regularisers, mode seeking and zCR's G term (each logged as penalty/<name>, before its weight)."""
        terms = self.g_regularisers()
        self.updates.record({f"penalty/{k}": v for k, v in terms.items()})
        if self.mode_seeking:
            ms = mode_seeking_term(fakes.z, fakes.image.float())
            self.updates.record({"penalty/mode_seeking": ms})
            terms["mode_seeking"] = self.mode_seeking * ms
        r = self.regularisers
        if r.zcr_g:  # G(z) and G(z + e) pushed apart: G keeps using all of z
            with self.updates.precision.autocast():
                nearby = self.fake(fakes.z + r.zcr_radius * torch.randn_like(fakes.z), fakes.y)
            spread = F.mse_loss(fakes.image.float(), nearby.float())
            self.updates.record({"penalty/zcr_g": spread})
            terms["zcr_g"] = -r.zcr_g * spread
        return terms

    def g_regularisers(self) -> dict[str, Tensor]:
        """Weighted terms a game adds to G's loss in every G update, by name (logged as penalty/<name>)."""
        return {}

    @contextmanager
    def unrolled_d(self, step: int):
        """Unrolled GAN (Metz et al. 2017), first-order: with unroll_steps, D takes that many extra
        updates that G's update inside the block is judged by; afterwards D is restored."""
        if not self.unroll_steps:
            yield
            return
        u = self.updates
        with unrolled(self.run["D"], u.optimizers["D"]):
            for _ in range(self.unroll_steps):
                real, y = u.next_batch()
                with torch.no_grad(), u.precision.autocast():
                    fake = self.fake(u.noise(real.shape[0], self.latent_dim), y)
                self.d_update(real, fake, y, step, measure=False, record=False)
            yield

    # ---------------------------------------------------------------- phases
    def d_phase(self, step: int, measure: bool) -> None:
        """One D update on a fresh batch (its fakes kept for the G update when it reuses them)."""
        real, y = self.d_batch(step)
        fakes = self.draw_fakes(real.shape[0], y)
        self.d_update(real, fakes.image, y, step, measure, z=fakes.z)

    def d_update(self, real: Tensor, fake: Tensor, y: Tensor, step: int, measure: bool, record: bool = True,
                 z: Tensor | None = None) -> None:
        u, D = self.updates, self.run["D"]
        real_in, fake_in = u.d_input(real, step), u.d_input(fake.detach(), step)
        with u.precision.autocast():
            real_out, fake_out = D(real_in, y).float(), D(fake_in, y).float()
            loss_d = self.loss.d_loss(real_out, fake_out)
        penalties = self.penalties(self.eager["D"], real_in, fake_in, y, step)  # double backward: uncompiled
        extra = self.d_regularisers(real_in, fake_in, real_out, fake_out, y, z, step) if record else {}
        u.optimize("D", loss_d + sum(penalties.values()) + sum(extra.values()), measure, watch=loss_d)
        self.loss.after_d_step(D)
        if record:
            u.observe_real(real_out)
            self.record_d(loss_d, real_out, fake_out, penalties)

    def g_phase(self, step: int, measure: bool) -> None:
        """One G update: D judges G's fakes (D's weights frozen), plus the game's G terms."""
        u = self.updates
        fakes = self.fakes_for_g()
        with self.unrolled_d(step), frozen(self.run["D"]):  # G's backward needs no gradients for D's weights
            with u.precision.autocast():
                fake_out = self.D_plain(u.d_input(fakes.image, step), fakes.y).float()
                loss_g = self.loss.g_loss(fake_out)
            terms = self.g_terms(fakes)
            u.optimize("G", loss_g + sum(terms.values()), measure, watch=loss_g)
        u.record({"loss/G": loss_g, "D/fake_g": self.score(fake_out)})

    # ---------------------------------------------------------------- samples
    def fixed_inputs(self, num: int, seed: int) -> dict[str, Tensor]:
        """Fixed noise (and labels): one row per class for conditional models."""
        classes = self.data.num_classes
        if self.conditional:
            y = torch.arange(classes).repeat_interleave(max(1, num // classes))  # (K * per_row,)
        else:
            y = torch.zeros(num, dtype=torch.long) if classes == 0 else torch.arange(num) % classes
        z = torch.randn(len(y), self.latent_dim, generator=torch.Generator().manual_seed(seed))
        return {"z": z, "y": y}

    def grid_row(self, num: int) -> int:
        return max(1, num // self.data.num_classes) if self.conditional else max(1, math.ceil(math.sqrt(num)))

    def sample_picture(self, networks: dict[str, nn.Module], fixed: dict[str, Tensor]) -> Tensor:
        with torch.no_grad(), eval_mode(networks), seeded(0, fixed["z"].device):
            fake = networks["G"](fixed["z"], fixed["y"])
        if self.data.kind == "points":
            if not hasattr(self, "_real_points"):
                self._real_points = self.reals(2000)
                self._extent = plot_extent(self._real_points)
            return scatter_picture(fake, self._real_points, self._extent)
        return image_grid(fake, nrow=self.grid_row(len(fixed["z"])))

    def real_picture(self, num: int) -> Tensor:
        if self.data.kind == "points":
            points = self.reals(2000)
            return scatter_picture(points[:0], points, plot_extent(points))
        return image_grid(self.reals(num))

    def fresh_outputs(self, networks: dict[str, nn.Module], count: int, device: torch.device) -> Tensor:
        labels = torch.arange(count, device=device) % max(self.data.num_classes, 1)
        with torch.no_grad(), eval_mode(networks):  # no BatchNorm statistics updates
            z = torch.randn(count, self.latent_dim, device=device)
            return networks["G"](z, labels if self.conditional else None)

    def overfitting(self, train: tuple[Tensor, Tensor], heldout: tuple[Tensor, Tensor], step: int) -> float | None:
        """ADA's r_v (Karras et al. 2020, sec. 3) from D's raw outputs, (E D(train) - E D(heldout)) /
        (E D(train) - E D(G(z))): about 0 while D scores reals it never saw as it scores its training reals,
        1 when it scores them as fakes. Both networks as they train, in eval mode (no BatchNorm update);
        None while D does not score its training reals above the fakes. A log-step measurement (host read)."""
        nets, (x, y), (x_held, y_held) = self.networks, train, heldout
        with torch.no_grad(), eval_mode(nets):
            fake = self.fake(torch.randn(len(x), self.latent_dim, device=x.device), y, nets["G"])
            real, held, faked = (float(nets["D"](v, labels).float().mean()) for v, labels in
                                 ((self.real_view(x, step), y), (self.real_view(x_held, step), y_held), (fake, y)))
        return (real - held) / (real - faked) if real - faked > 1e-6 else None

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"lecam": self.lecam.state_dict()} if self.lecam is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.lecam is not None and "lecam" in state:
            self.lecam.load_state_dict(state["lecam"])

    @classmethod
    def evaluator(cls, dataset_cfg, data, settings, device):
        from gan_cli.metrics.evaluate import Evaluator

        evaluate = Evaluator(dataset_cfg, settings, device)

        def run(networks: dict[str, nn.Module]):
            G = networks["G"]
            classes = evaluate.data.num_classes if getattr(G, "conditional", False) else 0

            def sample(num: int, seed: int) -> Tensor:  # a conditional G: every class in turn, balanced
                labels = torch.arange(num) % classes if classes else None
                return generate(G, num, device, settings.batch_size, seed, labels, None,
                                settings.truncation)
            with eval_mode(networks):
                return evaluate(sample)
        return run


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
