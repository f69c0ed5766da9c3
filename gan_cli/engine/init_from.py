"""Fine-tuning: a new run whose networks start from another run's (`trainer.init_from`).

Only weights come over: the networks, their EMA copies, and the optimizer states when asked
(`trainer.init_optimizers`). The run itself starts afresh at step 0: its own counters, lr
schedules, ADA state, random streams, fixed sample noise and logs (stylegan2-ada-pytorch #279:
a fine-tune that kept the old run's image counter). A layer whose shape differs (a new number of
classes, say) is refused, or with `trainer.init_strict=false` keeps its initial values and is
named. A run of another kind of data or another image size is refused: its networks cannot fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from gan_cli.checkpoint import find_checkpoint, load_checkpoint
from gan_cli.data.base import GanData
from gan_cli.engine.ema import EMA
from gan_cli.errors import CheckpointError, ConfigError

KEY = "trainer.init_from"
TRANSLATION = ("paired", "unpaired")


@dataclass
class Initialised:
    """What `init_from` took over, for the console and the run's log."""

    source: Path
    step: int  # the source run's step
    networks: list[str]
    emas: list[str]
    optimizers: list[str]
    kept_initial: list[str] = field(default_factory=list)  # "<network>.<tensor> (source shape -> this run's)"

    def describe(self) -> str:
        parts = [f"networks {', '.join(self.networks)}"]
        if self.emas:
            parts.append(f"EMA {', '.join(self.emas)}")
        if self.optimizers:
            parts.append(f"optimizers {', '.join(self.optimizers)}")
        text = f"initialised from {self.source} (its step {self.step}): {'; '.join(parts)}; starting at step 0"
        if self.kept_initial:
            text += f". Left at their initial values (trainer.init_strict=false): {', '.join(self.kept_initial)}"
        return text


def init_from(source: str, data: GanData, networks: dict[str, torch.nn.Module], emas: dict[str, EMA],
              optimizers: dict[str, torch.optim.Optimizer], *, strict: bool, with_optimizers: bool) -> Initialised:
    """Load another run's weights over this freshly built run (before its first step)."""
    path = find_checkpoint(source, key=KEY)
    state = load_checkpoint(path)
    check_same_data(state.get("data") or {}, data, path)
    sources = state["networks"]
    missing = sorted(set(networks) - set(sources))
    if missing:
        raise ConfigError(f"{KEY}={path} has no network {', '.join(missing)} (it has {', '.join(sources)}): it was "
                          f"trained with the {state.get('game', '?')} game. Start from a run of the same model.")
    merged, kept = {}, []
    for name, network in networks.items():
        merged[name], skipped = matching(sources[name], network.state_dict(), name)
        kept += skipped
    if kept and strict:
        raise ConfigError(f"{KEY}={path}: {len(kept)} tensor(s) differ in shape from this run's: "
                          f"{', '.join(kept[:6])}{' ...' if len(kept) > 6 else ''}. Use the source run's model "
                          "settings, or set trainer.init_strict=false to keep those layers at their initial values.")
    for name, network in networks.items():
        network.load_state_dict(merged[name])
    for name, ema in emas.items():
        saved = (state.get("ema") or {}).get(name)
        ema.load_state_dict(matching(saved, networks[name].state_dict(), name)[0] if saved else merged[name], 0)
    taken = []
    if with_optimizers:
        if kept:
            raise ConfigError(f"trainer.init_optimizers=true cannot take {path}'s optimizer states: some layers "
                              f"changed shape ({', '.join(kept[:3])}). Set trainer.init_optimizers=false.")
        for name, optimizer in optimizers.items():
            try:
                optimizer.load_state_dict(state["optimizers"][name])
            except (KeyError, ValueError, RuntimeError) as e:
                raise CheckpointError(f"{path}'s optimizer {name} does not fit this run's ({e}). Set "
                                      "trainer.init_optimizers=false to start with fresh optimizer states.") from None
            taken.append(name)
    emas_taken = [n for n in emas if (state.get("ema") or {}).get(n)]
    return Initialised(path, int(state["step"]), list(networks), emas_taken, taken, kept)


def check_same_data(saved: dict, data: GanData, path: Path) -> None:
    """The source run's data must be of this run's kind and image size."""
    kind = saved.get("kind")
    if kind is not None and (kind in TRANSLATION) != (data.kind in TRANSLATION):
        what = {True: "an image-to-image translation run", False: "a noise-to-image run"}
        raise ConfigError(f"{KEY}={path} is {what[kind in TRANSLATION]} (trained on {kind} data of "
                          f"{saved.get('name', '?')}), but this run is {what[data.kind in TRANSLATION]} on "
                          f"{data.kind} data: its networks cannot start this run's. Start from a run of the same model.")
    if kind is not None and kind != data.kind:
        raise ConfigError(f"{KEY}={path} was trained on {kind} data ({saved.get('name', '?')}), this run's data is "
                          f"{data.kind}: its networks cannot start this run's.")
    shape = tuple(saved.get("shape") or ())
    if shape and shape != tuple(data.shape):
        raise ConfigError(f"{KEY}={path} was trained on samples of shape {shape} ({saved.get('name', '?')}), this "
                          f"run's data gives {tuple(data.shape)}: its networks fit that size only. Set the "
                          f"dataset's resolution / channels to match, or train from scratch.")


def matching(saved: dict[str, Tensor], own: dict[str, Tensor], network: str) -> tuple[dict[str, Tensor], list[str]]:
    """`own` with every tensor `saved` has in the same shape; and the names of those it could not take."""
    merged, skipped = dict(own), []
    for key, mine in own.items():
        theirs = saved.get(key)
        if theirs is None:
            skipped.append(f"{network}.{key} (not in the source)")
        elif tuple(theirs.shape) != tuple(mine.shape):
            skipped.append(f"{network}.{key} ({'x'.join(map(str, theirs.shape))} -> {'x'.join(map(str, mine.shape))})")
        else:
            merged[key] = theirs.to(mine.device, mine.dtype)
    return merged, skipped
