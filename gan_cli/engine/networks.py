"""A run's networks from its model config: the model file names the builder and the game."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig
from torch import nn

from gan_cli.build import build
from gan_cli.errors import ConfigError
from gan_cli.games import game_class, split_model_config
from gan_cli.models.base import Networks

KIND_WORDS = {"image": "single images (no input -> target pairs)", "points": "2D points",
              "paired": "paired images (input, target)", "unpaired": "two unpaired image domains"}
DATASETS_FOR = {  # shown when a game gets the wrong kind of data
    "paired": "digits_edges, digits_inpaint, paired_folder",
    "unpaired": "digits_unpaired, unpaired_folder",
    "image": "digits, mnist, fashion_mnist, cifar10, fake, image_folder",
    "points": "ring8, grid25",
}
MODELS_FOR = {"paired": "model=pix2pix", "unpaired": "model=cyclegan"}  # translation data: who trains on it


@dataclass
class ModelFile:
    """What a model file builds: its game and the networks it plays with."""

    game: type  # the Game subclass
    networks: dict[str, nn.Module]
    latent_dim: int  # 0 for games without noise input
    options: dict[str, Any]  # the game's options from the model file


def build_models(model: DictConfig, kind: str, shape: tuple[int, ...], num_classes: int,
                 input_shape: tuple[int, ...] | None = None, dataset: str = "") -> ModelFile:
    """Build the networks the model file describes, for data of `kind` and `shape`; check the game plays on it."""
    node, game_name, options = split_model_config(model)
    game = game_class(game_name)
    if kind not in game.data_kinds:
        name = game_name if game_name != "adversarial" else model_name(node)
        hint = f" ({KIND_WORDS[kind]} are for {MODELS_FOR[kind]})" if kind in MODELS_FOR else ""
        raise ConfigError(
            f"model={name} ({game_name} game) trains on {KIND_WORDS[game.data_kinds[0]]}, but dataset="
            f"{dataset or '?'} gives {KIND_WORDS.get(kind, kind)}{hint}. Use one of these datasets: "
            f"{', '.join(DATASETS_FOR[k] for k in game.data_kinds)}.")
    extra = {"input_shape": tuple(input_shape)} if input_shape is not None else {}
    built: Networks = build("model", node, shape=tuple(shape), num_classes=num_classes, **extra)
    return ModelFile(game, built.networks, built.latent_dim, options)


def model_name(node: DictConfig) -> str:
    """The model's name from its builder, `gan_cli.models.<name>.build` -> <name>."""
    target = str(node.get("_target_", "?"))
    return target.rsplit(".", 2)[-2] if target.count(".") >= 2 else target
