"""The games gan_cli trains, by the name a model file gives under `game.name`.

A model file without a `game` node plays the adversarial game (G(z, y) against D(x, y)).
To add a game: a module here with a `Game` subclass, a line in GAMES, a model file that
names it (see README, "How a game is put together").
"""
from __future__ import annotations

import importlib
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from gan_cli.errors import ConfigError

GAMES = {  # name -> "module:class", imported when used
    "adversarial": "gan_cli.games.adversarial:Adversarial",
    "pix2pix": "gan_cli.games.pix2pix:Pix2Pix",
    "cyclegan": "gan_cli.games.cyclegan:CycleGAN",
    "stylegan": "gan_cli.games.stylegan:StyleGAN2",
    "progan": "gan_cli.games.progan:ProGAN",
    "biggan": "gan_cli.games.biggan:BigGAN",
}


def game_class(name: str):
    if name not in GAMES:
        raise ConfigError(f"model.game.name={name!r} is not a game; valid: {', '.join(GAMES)}.")
    module, cls = GAMES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def split_model_config(model: DictConfig) -> tuple[DictConfig, str, dict[str, Any]]:
    """(the networks' builder config, the game's name, the game's options) from a model config. `freeze_d`
    is the trainer's (which of D's blocks train), not the builder's."""
    networks = model.copy()
    with open_dict(networks):
        game = networks.pop("game", None)
        networks.pop("freeze_d", None)
    options = OmegaConf.to_container(game, resolve=True) if game is not None else {}
    if not isinstance(options, dict):
        raise ConfigError(f"model.game must be a mapping with a `name` ({', '.join(GAMES)}), got {options!r}.")
    return networks, options.pop("name", "adversarial"), options
