"""Adaptive discriminator augmentation (Karras et al. 2020, stylegan2-ada): the probability p that
each augmentation is applied to an image D sees, adjusted from how sure D is of the reals.

Every D update on reals reports sign(D(x)) (`observe`). Every `interval` iterations the mean
r_t = E[sign(D(x))] over that window moves p toward the `target` heuristic: p rises by
`speed` x (images seen) / 1000 while r_t > target (D is overconfident on the reals: it begins to
memorise them), falls by as much while r_t < target, and stays in [0, 1]. Everything lives on the
device (no host read inside a step); under DDP the window's sums are all-reduced first, so every
rank holds the same p. p and the window's sums are checkpointed, so a resumed run goes on with
the same p (the reference's snapshots lose it: stylegan2-ada-pytorch #81).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gan_cli.engine.ada_augment import ada_augment, check_pipeline
from gan_cli.errors import ConfigError
from gan_cli.logging import console as ui


class Ada:
    def __init__(self, target: float, interval: int, speed: float, *, p: float, pipeline: str,
                 images_per_step: int, device: torch.device, world: int = 1):
        """`images_per_step`: real images D sees per iteration over all ranks (batch x accumulate x world)."""
        self.strengths = check_pipeline(pipeline)
        self.target, self.interval, self.world = target, interval, world
        self.step_size = speed * images_per_step * interval / 1000  # the most p moves per adjustment
        self.p = torch.tensor(float(p), device=device)  # (,)
        self.signs = torch.zeros((), device=device)  # sum of sign(D(x)) since the last adjustment, this rank
        self.count = 0  # how many outputs that sum holds (a host number: batch sizes are known on the host)

    def augment(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) with each augmentation applied with probability p (per image)."""
        return ada_augment(x, self.p, self.strengths)

    def observe(self, real_logits: Tensor) -> None:
        """D's raw outputs on a batch of reals."""
        self.signs += real_logits.detach().float().sign().sum()
        self.count += real_logits.numel()

    def adjust(self, step: int) -> None:
        """At the end of iteration `step`: every `interval` iterations, p from the window's r_t."""
        if step % self.interval or not self.count:
            return
        if self.world > 1:  # every rank sees as many reals: the counts need no reduction
            torch.distributed.all_reduce(self.signs)
        rt = self.signs / (self.count * self.world)
        self.p = (self.p + torch.sign(rt - self.target) * self.step_size).clamp(0.0, 1.0)
        self.signs.zero_()
        self.count = 0

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p.detach().cpu(), "signs": self.signs.detach().cpu(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = state["p"].to(self.p.device, self.p.dtype)
        self.signs = state["signs"].to(self.signs.device, self.signs.dtype)
        self.count = int(state["count"])


def make_ada(trainer: Any, data_kind: str, loss: Any, device: torch.device, world: int) -> Ada | None:
    """ADA as trainer.ada says (None when off): images only; with a Wasserstein critic, a note on r_t."""
    cfg = trainer.get("ada")
    if cfg is None or not cfg.enabled:
        return None
    if data_kind != "image":
        raise ConfigError(f"trainer.ada.enabled=true augments the images D sees, but this dataset gives {data_kind} "
                          "data; set trainer.ada.enabled=false (for 2D points, trainer.instance_noise helps D instead).")
    if getattr(loss, "wasserstein", False):
        ui.console.print("[yellow]trainer.ada with a Wasserstein critic: r_t = E[sign(D(x))] assumes D's zero "
                         "separates real from fake, and a critic's scores have no fixed zero (add a drift term: "
                         "loss=wgan_gp_drift), so p may not settle.[/]", highlight=False, soft_wrap=True)
    images = trainer.batch_size * trainer.accumulate * world  # real images D sees per iteration, all ranks
    return Ada(cfg.target, cfg.interval, cfg.speed, p=cfg.p, pipeline=cfg.pipeline, images_per_step=images,
               device=device, world=world)
