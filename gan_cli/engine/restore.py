"""A run's trained generators back from their checkpoint, for sampling and evaluation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_cli.checkpoint import find_checkpoint, load_checkpoint
from gan_cli.engine.networks import build_models, model_name


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
