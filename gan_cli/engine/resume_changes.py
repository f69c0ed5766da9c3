"""What a resumed run does with config values that differ from its checkpoint's.

Everything is rebuilt from the current config, then the checkpoint's state is loaded over it.
That makes most changes take effect by themselves (losses, intervals, max_steps, remedies,
the data's location). Three kinds would be silently undone by the loaded state, so they are
handled here:
- optimizer hyperparameters (lr, betas, ...): the loaded optimizer state carries the old ones,
  so the new values are written into its parameter groups (and the lr schedules' base lrs);
- the networks (`model.*`), an optimizer's kind, the seed and the fixed sample noise come
  from the checkpoint and cannot change: such a resume is refused, with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import OmegaConf

from gan_cli.config import TrainerConfig
from gan_cli.engine.report import flatten
from gan_cli.errors import ConfigError

IGNORED = ("trainer.resume", "trainer.device")  # where and from what a run resumes: free to differ
FREE = ("model.freeze_d",)  # under model., but which blocks train, not what the networks are
FIXED = {  # key prefix -> why it cannot change on resume
    "model.": "the networks come from the checkpoint",
    "trainer.seed": "the random streams come from the checkpoint",
    "trainer.num_samples": "the fixed sample noise comes from the checkpoint",
}


@dataclass
class Change:
    key: str
    old: Any
    new: Any
    applied: str  # how the change took effect

    def __str__(self) -> str:
        return f"{self.key}: {self.old} -> {self.new} ({self.applied})"


def differences(stored: dict, current: dict) -> list[tuple[str, Any, Any]]:
    """(key, checkpoint's value, current value) for every leaf that differs."""
    old, new, added = flatten(stored), flatten(current), defaults_of_added_keys()

    def changed(key: str) -> bool:
        if key.startswith(IGNORED):
            return False
        if key not in old and key in added:  # an older checkpoint: a key added since is unchanged at its default
            return added[key] != new.get(key)
        return old.get(key) != new.get(key)

    return [(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if changed(k)]


def defaults_of_added_keys() -> dict[str, Any]:
    """Keys an older checkpoint's config may lack, with their defaults."""
    trainer = flatten(OmegaConf.to_container(OmegaConf.structured(TrainerConfig)), "trainer.")
    return {**trainer, "model.freeze_d": 0, "dataset.subset": None, "dataset.classes": None}


def refuse_fixed(diffs: list[tuple[str, Any, Any]], checkpoint: str) -> None:
    """ConfigError for changes the checkpoint's state would undo (the networks, an optimizer's kind, the seed)."""
    bad = []
    for key, old, new in diffs:
        reason = next((why for prefix, why in FIXED.items() if key.startswith(prefix) and key not in FREE), None)
        if key.startswith("optimizer.") and key.endswith("._target_"):
            reason = "an optimizer's state belongs to its kind"
        if reason:
            bad.append(f"{key} ({old} -> {new}: {reason})")
    if bad:
        raise ConfigError(
            f"Cannot resume from {checkpoint} with these changes: {'; '.join(bad)}. Resume with the checkpoint's "
            f"values (its run folder's .hydra/config.yaml), or start a new run without trainer.resume."
        )


def apply_optimizer_changes(diffs: list[tuple[str, Any, Any]], optimizers: dict[str, torch.optim.Optimizer],
                            schedulers: dict[str, Any]) -> list[Change]:
    """Write changed `optimizer.<net>.<hyperparameter>` values into the loaded optimizers (and lr schedules)."""
    changes = []
    for key, old, new in diffs:
        parts = key.split(".")
        if parts[0] != "optimizer" or len(parts) != 3 or parts[1] not in optimizers:
            changes.append(Change(key, old, new, "rebuilt from the config"))
            continue
        opt, name = optimizers[parts[1]], parts[2]
        if name not in opt.param_groups[0]:
            changes.append(Change(key, old, new, "rebuilt from the config"))
            continue
        value = tuple(new) if isinstance(new, list) else new
        for group in opt.param_groups:
            group[name] = value
        scheduler = schedulers.get(parts[1])
        if name == "lr" and scheduler is not None:  # the schedule's factor applies to the new base lr
            scheduler.base_lrs = [value] * len(opt.param_groups)
            for group in opt.param_groups:
                group["lr"] = value * scheduler.lr_lambdas[0](scheduler.last_epoch)
        changes.append(Change(key, old, new, "applied to the optimizer"))
    return changes
