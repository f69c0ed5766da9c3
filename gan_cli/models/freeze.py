"""FreezeD (Mo et al. 2020): fine-tune a GAN with the first blocks of D, those nearest the input, frozen.

Every discriminator lists its blocks with a method ``input_blocks()``, in the order an input image goes
through them, the last being the head (the output layers, never frozen); :func:`freeze_input_blocks` freezes
the first k. :func:`cut` and :func:`layer_blocks` split the ``nn.Sequential`` stacks of several models.
"""
from __future__ import annotations

from torch import nn

from gan_cli.config import check_int
from gan_cli.errors import ConfigError
from gan_cli.models.layers import SelfAttention

STAGE_ENDS = (nn.LeakyReLU, nn.ReLU, nn.Dropout, SelfAttention)  # what may end a stage of a layer stack


def cut(seq: nn.Sequential, at: list[int]) -> list[nn.Module]:
    """``seq`` cut before each (ascending, positive) index in ``at``: slices holding the same layers."""
    bounds = [0, *at, len(seq)]
    return [seq[a:b] for a, b in zip(bounds, bounds[1:])]


def layer_blocks(seq: nn.Sequential) -> list[nn.Module]:
    """A layer stack's blocks: each Conv2d / Linear with the layers after it (norm, activation, dropout,
    self-attention), then the head: all after the last activation (minibatch layers and the last layer)."""
    layers = list(seq)
    head = 1 + max(i for i, m in enumerate(layers) if isinstance(m, STAGE_ENDS))
    starts = [i for i, m in enumerate(layers[:head]) if i and isinstance(m, (nn.Conv2d, nn.Linear))]
    return cut(seq, [*starts, head])


def input_blocks(D: nn.Module) -> list[nn.Module]:
    """D's blocks in the order an input image goes through them, the last being the head (never frozen)."""
    return D.input_blocks()


def freeze_input_blocks(D: nn.Module, k: int, key: str = "model.freeze_d") -> list[str]:
    """Set ``requires_grad=False`` on the parameters of D's first ``k`` blocks (and drop any gradient they hold);
    return their names, as in ``D.named_parameters()``. ConfigError naming ``key`` unless
    ``0 < k < len(input_blocks(D))``."""
    name = type(D).__name__
    if not hasattr(D, "input_blocks"):
        raise ConfigError(f"{key}={k!r} cannot be used with this {name}: it does not list its blocks "
                          "(it has no input_blocks() method).")
    blocks = input_blocks(D)
    check_int(key, k, 1, len(blocks) - 1, what=f"this {name} has {len(blocks)} blocks counted from the input; "
                                               "the last, its output layers, is never frozen")
    frozen = {id(p) for block in blocks[:k] for p in block.parameters()}
    names = []
    for param_name, param in D.named_parameters():
        if id(param) in frozen:
            param.requires_grad_(False)
            param.grad = None
            names.append(param_name)
    return names
