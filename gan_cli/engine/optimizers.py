"""A game's optimizers from the `optimizer` group (fused kernels where they exist, the lazy-regularisation
adjustment, errors that name the key), and the extra D penalty from the `penalty` group."""
from __future__ import annotations

import inspect
import re

import torch
from omegaconf import DictConfig

from gan_cli.build import build
from gan_cli.config import is_number
from gan_cli.errors import ConfigError


# What torch's optimizers accept, for the error message (their own messages name the key in words).
_VALID = {"lr": "a number, 0 or more", "betas": "two numbers, each in [0, 1)", "eps": "a number, 0 or more",
          "weight_decay": "a number, 0 or more", "momentum": "a number, 0 or more", "alpha": "a number, 0 or more",
          "rho": "a number in [0, 1]", "lr_decay": "a number, 0 or more", "dampening": "a number"}
_WORDS = {"learning rate": "lr", "beta": "betas", "epsilon": "eps", "weight_decay": "weight_decay",
          "weight decay": "weight_decay", "momentum": "momentum", "alpha": "alpha", "rho": "rho",
          "lr_decay": "lr_decay", "dampening": "dampening"}


def _offending_key(message: str, node: DictConfig) -> str | None:
    """The config key torch's error message is about, if it says."""
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", message)
    if unexpected:
        return unexpected.group(1)
    text = message.lower()
    for words, key in _WORDS.items():
        if words in text:
            return key
    keys = [k for k in node if not str(k).startswith("_")]
    return next((k for k in keys if f"'{k}'" in message or f" {k} " in f" {message} "), None)


def optimizer_error(group: str, node: DictConfig, e: Exception) -> ConfigError:
    target = node.get("_target_", "?")
    key = _offending_key(str(e), node)
    if key is None:
        return ConfigError(f"{group} (_target_: {target}) was refused by the optimizer: {e}. "
                           f"Check the {group}.* keys against `gan train --cfg job`.")
    value = node.get(key, "(unset)")
    if "unexpected keyword argument" in str(e):
        return ConfigError(f"{group}.{key}={value}: {target} has no option `{key}` ({e}). "
                           f"Remove it (~{group}.{key}) or choose an optimizer that takes it.")
    valid = f" {group}.{key} must be {_VALID[key]}." if key in _VALID else ""
    return ConfigError(f"{group}.{key}={value} is not valid for {target}: {e}.{valid}")


def make_optimizers(specs: dict, optimizer_cfg: DictConfig, networks: dict[str, torch.nn.Module],
                    device: torch.device) -> dict[str, torch.optim.Optimizer]:
    """A game's optimizers by name, each over its networks' parameters, from `optimizer.<settings>`."""
    return {name: make_optimizer(f"optimizer.{spec.settings}",
                                 lazy_adjusted(optimizer_cfg[spec.settings], spec.lazy_every),
                                 [p for net in spec.networks for p in networks[net].parameters()], device)
            for name, spec in specs.items()}


def lazy_adjusted(node: DictConfig, every: int) -> DictConfig:
    """Settings for an optimizer that also takes a lazy regularisation step every `every`
    iterations (StyleGAN2, Appendix B): lr x c and betas ** c with c = every / (every + 1),
    so that its momentum spans the same number of iterations as without the extra steps."""
    if every <= 1:
        return node
    c = every / (every + 1)
    node = node.copy()
    if node.get("lr") is not None:
        node.lr = node.lr * c
    if node.get("betas") is not None:
        node.betas = [beta ** c for beta in node.betas]
    return node


def make_optimizer(group: str, node: DictConfig, params: list[torch.nn.Parameter], device: torch.device):
    """The configured optimizer; Adam-family ones use the fused CUDA kernel unless the config says."""
    lr = node.get("lr")
    if lr is not None and (not is_number(lr) or not lr >= 0):
        raise ConfigError(f"{group}.lr={lr} is not valid: the learning rate must be a number, 0 or more.")
    factory = build(group, node)
    extra = {}
    if device.type == "cuda" and "fused" not in node and takes_fused(factory):
        extra["fused"] = True  # one kernel per step, and fp16's grad scaler needs no host read
    try:
        return factory(params, **extra)
    except (ValueError, TypeError) as e:
        raise optimizer_error(group, node, e) from e


def takes_fused(factory) -> bool:
    """Whether an optimizer has a fused CUDA kernel (Adam, AdamW, SGD; not NAdam, RAdam, Adamax, RMSprop)."""
    cls = getattr(factory, "func", factory)  # build() gives a functools.partial of the class
    try:
        return "fused" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def make_penalty(node: DictConfig | None):
    """The extra penalty on D, or None for `penalty=none`.

    An experiment that sets its penalty's keys (`experiment=grid25`: R1 weight and every) leaves them
    behind when the command line swaps the penalty for `none`; with no `_target_` they are ignored.
    """
    if not node or not node.get("_target_"):
        return None
    return build("penalty", node)
