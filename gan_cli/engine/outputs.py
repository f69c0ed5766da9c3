"""What a run shows: the real and fixed sample grids, evaluation during training, the start-of-run records."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_cli.engine.checkpointer import Progress, RunState
from gan_cli.engine.distributed import World
from gan_cli.engine.monitor import own_rng
from gan_cli.engine.precision import full_fp32
from gan_cli.engine.report import hparams_of
from gan_cli.errors import ConfigError
from gan_cli.logging import console as ui
from gan_cli.logging.pictures import save_picture
from gan_cli.metrics.evaluate import EvalSettings, lower_is_better
from gan_cli.metrics.history import record

log = logging.getLogger(__name__)


class Outputs:
    def __init__(self, cfg: DictConfig, run: RunState, progress: Progress, logger: Any, *, world: World,
                 device: torch.device, run_dir: Path):
        self.cfg, self.t, self.run, self.progress, self.logger = cfg, cfg.trainer, run, progress, logger
        self.world, self.device, self.run_dir = world, device, run_dir
        self._evaluator = None

    def output_networks(self) -> dict[str, nn.Module]:
        """The generators that samples, evaluation and `gan sample` use: their EMA copies when EMA is on."""
        emas, networks = self.run.emas, self.run.networks
        return {name: emas[name].model if name in emas else networks[name] for name in self.run.game.generators}

    @torch.no_grad()
    def sample(self) -> None:
        if not self.world.main:
            return
        step = self.progress.step
        picture = self.run.game.sample_picture(self.output_networks(), self.run.fixed)
        self.logger.image("samples/fixed", picture, step)
        (self.run_dir / "samples").mkdir(exist_ok=True)
        save_picture(picture, self.run_dir / "samples" / f"step_{step:07d}.png")

    def evaluate(self) -> dict | None:
        """Metrics of the current generators, logged as metrics/*. Returns the new best (for best.pt) when
        `trainer.eval.best` improved, else None."""
        if not self.world.main:
            return None
        p, settings = self.progress, EvalSettings.from_config(self.t.eval)
        with own_rng(self.device):
            if self._evaluator is None:  # may train the digits classifier once: keep the training RNG intact
                self._evaluator = self.run.game.evaluator(self.cfg.dataset, self.run.data, settings, self.device)
            with full_fp32():  # metrics in true fp32, whatever TF32 setting training uses
                p.eval_results, protocol = self._evaluator(self.output_networks())
        self._keep(p.eval_results, protocol)
        self.logger.scalars(p.step, {f"metrics/{k}": v for k, v in p.eval_results.items()})
        ui.console.print(f"step {p.step} eval: " + ", ".join(f"{k} {v:.4g}" for k, v in p.eval_results.items()),
                         highlight=False, soft_wrap=True)
        name = self.t.eval.best
        if name is None:
            return None
        if name not in p.eval_results:
            raise ConfigError(f"trainer.eval.best={name} is not among the metrics computed: "
                              f"{', '.join(p.eval_results)}.")
        value = p.eval_results[name]
        better = p.best is None or (value < p.best["value"] if lower_is_better(name) else value > p.best["value"])
        return {"metric": name, "value": value, "step": p.step} if better else None

    def _keep(self, results: dict, protocol: dict) -> None:
        """The evaluation into <run>/evals/, the history `gan eval` keeps too (a failed write only warns)."""
        ema = any(name in self.run.emas for name in self.run.game.generators)
        protocol = {**protocol, "step": self.progress.step, "generator": "ema" if ema else "live", "source": "training"}
        try:
            record(self.run_dir, results, protocol)
        except OSError as e:
            log.warning("could not keep the evaluation of step %d in %s: %s", self.progress.step,
                        self.run_dir / "evals", e)

    def log_start(self, choices: dict[str, str], overrides: list[str], resumed_from: Path | None,
                  changes: list) -> None:
        """Once per run folder: real samples, hparams, the config text; and the config changes of a resume."""
        step = self.progress.step
        if not self.logger.continues:  # once per run folder, not again at every resume
            self.logger.image("samples/real", self.run.game.real_picture(self.t.num_samples), step)
            self.logger.hparams(hparams_of(self.cfg, choices, overrides), ["loss/D", "loss/G", "D/real", "D/fake"])
            self.logger.text("config", "```yaml\n" + OmegaConf.to_yaml(self.cfg, resolve=True) + "```", step)
        if changes:
            lines = [str(c) for c in changes]
            ui.console.print("Resumed with config changes:\n  " + "\n  ".join(lines), highlight=False)
            log.info("resumed from %s with changes: %s", resumed_from, "; ".join(lines))
            self.logger.text("resume/changes", "\n".join(f"- `{line}`" for line in lines), step)
