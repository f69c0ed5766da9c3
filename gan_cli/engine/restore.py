"""A run's trained generators back from their checkpoint, for sampling and evaluation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from gan_cli.engine.checkpoint import find_checkpoint, load_checkpoint
from gan_cli.engine.networks import build_models, model_name
from gan_cli.games.base import seeded
from gan_cli.truncation import kind_of as truncation_kind, normal


@dataclass
class Restored:
    networks: dict[str, nn.Module]  # the game's generators, in eval mode, on the requested device
    game: type  # the Game subclass the run trained (gan_cli.games)
    latent_dim: int
    data: dict  # name, kind, shape, input_shape, num_classes of the training data
    config: DictConfig  # the run's resolved config
    step: int
    checkpoint: Path
    run_dir: Path  # the run folder the checkpoint belongs to (its parent if it is loose)
    used_ema: bool

    @property
    def generator(self) -> nn.Module:
        """G of a noise-to-sample game."""
        return self.networks["G"]

    @property
    def model_name(self) -> str:
        """The model's name as `model=` gives it (dcgan, stylegan, ...)."""
        return model_name(self.config.model)

    @property
    def conditional(self) -> bool:
        return bool(getattr(self.networks.get("G"), "conditional", False))


def load_generator(ckpt: str | Path, device: torch.device, ema: bool = True) -> Restored:
    """Rebuild the generators from the config stored in `ckpt` (a file or run folder); EMA weights if any."""
    path = find_checkpoint(ckpt, key="ckpt")
    state = load_checkpoint(path, map_location="cpu")  # works for runs trained on a GPU
    cfg = OmegaConf.create(state["config"])
    data = state["data"]
    models = build_models(cfg.model, data["kind"], data["shape"], data["num_classes"], data.get("input_shape"),
                          data["name"])
    use_ema = ema and bool(state.get("ema"))
    networks = {}
    for name in models.game.generators:
        network = models.networks[name]
        network.load_state_dict(state["ema"][name] if use_ema else state["networks"][name])
        networks[name] = network.to(device).eval()
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return Restored(networks, models.game, models.latent_dim, data, cfg, int(state["step"]), path, run_dir, use_ema)


@torch.no_grad()
def generate(G: nn.Module, num: int, latent_dim: int, device: torch.device, batch_size: int = 256,
             seed: int = 0, labels: Tensor | None = None, z: Tensor | None = None,
             truncation: float | None = None) -> Tensor:
    """`num` samples from G in batches, on the CPU: (num, *shape). Repeatable for a seed: z comes from it, and
    so does what G draws itself (StyleGAN's noise inputs), without touching the caller's random state.
    `truncation`: psi of the truncation trick, done as G's kind does it (gan_cli.truncation)."""
    kind = truncation_kind(G) if truncation is not None else None
    if z is None:
        z = normal((num, latent_dim), torch.Generator().manual_seed(seed), truncation if kind == "z" else None)
    extra = {"truncation": truncation} if kind == "w" else {}
    out = []
    with seeded(seed, device):
        for start in range(0, num, batch_size):
            zb = z[start : start + batch_size].to(device)
            yb = None if labels is None else labels[start : start + batch_size].to(device)
            out.append(G(zb, yb, **extra).float().cpu())
    return torch.cat(out)
