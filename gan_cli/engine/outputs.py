"""What a run shows: the real and fixed sample grids, evaluation during training, best.pt."""
from __future__ import annotations

import logging

import torch
from omegaconf import OmegaConf
from torch import nn
from torchvision.utils import save_image

from gan_cli.checkpoint import save_atomic
from gan_cli.engine.precision import full_fp32
from gan_cli.engine.report import hparams_of
from gan_cli.errors import ConfigError
from gan_cli.logging import console as ui
from gan_cli.metrics.evaluate import EvalSettings, lower_is_better

log = logging.getLogger("gan_cli.engine.trainer")


class Outputs:
    """Part of the Trainer: sample grids, evaluation and the start-of-run records."""

    def output_networks(self) -> dict[str, nn.Module]:
        """The generators that samples, evaluation and `gan sample` use: their EMA copies when EMA is on."""
        return {name: self.emas[name].model if name in self.emas else self.networks[name]
                for name in self.game.generators}

    @torch.no_grad()
    def sample(self) -> None:
        if not self.world.main:
            return
        picture = self.game.sample_picture(self.output_networks(), self.fixed)
        self.logger.image("samples/fixed", picture, self.step)
        (self.run_dir / "samples").mkdir(exist_ok=True)
        save_image(picture, self.run_dir / "samples" / f"step_{self.step:07d}.png")

    def evaluate(self) -> None:
        """Metrics of the current generators, logged as metrics/*; keeps best.pt by `trainer.eval.best`."""
        if not self.world.main:
            return
        settings = EvalSettings.from_config(self.t.eval)
        with self._own_rng():
            if self._evaluator is None:  # may train the digits classifier once: keep the training RNG intact
                self._evaluator = self.game.evaluator(self.cfg.dataset, self.data, settings, self.device,
                                                      self.latent_dim)
            with full_fp32():  # metrics in true fp32, whatever TF32 setting training uses
                self.eval_results, _ = self._evaluator(self.output_networks())
        self.logger.scalars(self.step, {f"metrics/{k}": v for k, v in self.eval_results.items()})
        ui.console.print(f"step {self.step} eval: " + ", ".join(f"{k} {v:.4g}" for k, v in self.eval_results.items()),
                         highlight=False, soft_wrap=True)
        name = self.t.eval.best
        if name is None:
            return
        if name not in self.eval_results:
            raise ConfigError(f"trainer.eval.best={name} is not among the metrics computed: "
                              f"{', '.join(self.eval_results)}.")
        value = self.eval_results[name]
        better = self.best is None or (value < self.best["value"] if lower_is_better(name) else value > self.best["value"])
        if better:
            best = {"metric": name, "value": value, "step": self.step}
            state = {**self.state_dict(gather=False), "best": best}
            self._check_finite({}, state)
            save_atomic(state, self.ckpt_dir / "best.pt")
            self.best = best

    def _log_start(self) -> None:
        """The doctor's real reference batch; once per run folder: real samples, hparams, the config text."""
        count = min(len(self.data), self.t.batch_size, 256)  # the doctor's diversity reference: one batch
        self._real_batch = self.game.reals(count).to(self.device)
        if not self.logger.continues:  # once per run folder, not again at every resume
            self.logger.image("samples/real", self.game.real_picture(self.t.num_samples), self.step)
            self.logger.hparams(hparams_of(self.cfg, self.choices, self.overrides), ["loss/D", "loss/G", "D/real", "D/fake"])
            self.logger.text("config", "```yaml\n" + OmegaConf.to_yaml(self.cfg, resolve=True) + "```", self.step)
        if self.changes:
            lines = [str(c) for c in self.changes]
            ui.console.print("Resumed with config changes:\n  " + "\n  ".join(lines), highlight=False)
            log.info("resumed from %s with changes: %s", self.resumed_from, "; ".join(lines))
            self.logger.text("resume/changes", "\n".join(f"- `{line}`" for line in lines), self.step)
