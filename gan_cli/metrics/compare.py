"""`gan eval real=PATH fake=PATH`: two sets of images (folders, prepared datasets, .npz samples) compared
with the same protocol as a run's generator; `real=PATH save_stats=FILE` alone writes the reference
statistics, and `real_stats=FILE fake=PATH` scores a set against a statistics file."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from omegaconf import DictConfig

from gan_cli.errors import ConfigError
from gan_cli.metrics.evaluate import EvalSettings, Evaluator, real_samples
from gan_cli.metrics.sources import load_source


def compare(cfg: DictConfig, settings: EvalSettings, device: torch.device) -> tuple[dict[str, float], dict[str, Any]]:
    real = load_source(cfg.real, "real", settings.num_real, settings.seed) if cfg.real else None
    fake = load_source(cfg.fake, "fake", settings.num_fake, settings.seed) if cfg.fake else None
    if real is not None and fake is not None and real.kind != fake.kind:
        raise ConfigError(f"real={cfg.real} holds {real.kind} data but fake={cfg.fake} holds {fake.kind} data; "
                          f"compare images with images, or 2D points with points.")
    if fake is not None:
        settings = dataclasses.replace(settings, num_fake=min(settings.num_fake, len(fake)))
    evaluate = Evaluator(None, settings, device, data=real if real is not None else fake)
    sources = {"real": str(cfg.real) if cfg.real else None, "fake": str(cfg.fake) if cfg.fake else None}
    if fake is None:  # real=PATH save_stats=FILE: the statistics only
        return {}, {**evaluate.protocol({}), **sources}
    results, protocol = evaluate(lambda num, seed: real_samples(fake, num, seed), fake_data=fake)
    return results, {**protocol, **sources}
