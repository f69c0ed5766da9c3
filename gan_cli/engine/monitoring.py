"""Watching a run: the log step (scalars, progress bar, the training doctor), NaN checks, rollback."""
from __future__ import annotations

import logging
import math
from typing import Any

import torch

from gan_cli.doctor import diversity_ratio
from gan_cli.engine.finite import nonfinite
from gan_cli.engine.setup import peak_memory_gb
from gan_cli.errors import TrainingDiverged
from gan_cli.logging import console as ui

log = logging.getLogger("gan_cli.engine.trainer")


class Monitoring:
    """Part of the Trainer: what it measures and checks between iterations."""

    def _log_step(self, bar: ui.TrainProgress) -> None:
        now, (window_start, window_step) = self.clock(), self._window
        stats = self.updates.stats.read()
        self._check_finite(stats)
        stats.update(self._extra_scalars(self.step - window_step, now - window_start))
        stats.update(self._diagnose(stats))
        self._window, self.stats = (now, self.step), stats
        self.logger.scalars(self.step, stats)
        bar.show(self.step, stats)
        log.info("step %d  %s", self.step, ui.format_stats(stats))

    def _extra_scalars(self, steps: int, seconds: float) -> dict[str, float]:
        return {
            **self._grad_norms(),
            **{f"lr/{k}": opt.param_groups[0]["lr"] for k, opt in sorted(self.optimizers.items())},
            "perf/img_per_s": steps * self.t.batch_size / max(seconds, 1e-9),
            "perf/step_ms": seconds / max(steps, 1) * 1000,
            "perf/mem_gb": peak_memory_gb(self.device),
        }

    def _grad_norms(self) -> dict[str, float]:
        """grad_norm/<net> of the last measured step. Under fp16 an overflowing step (its grad scaler skips
        it and lowers the scale: expected, and harmless) has no norm; amp/scale/<net> shows the scale."""
        norms = {}
        for name, value in self.updates.grad_norms.items():
            value = float(value)
            if name in self.precision.scalers:
                norms[f"amp/scale/{name}"] = float(self.precision.scalers[name].get_scale())
                if not math.isfinite(value):
                    continue
            norms[f"grad_norm/{name}"] = value
        return norms

    def _diagnose(self, stats: dict[str, float]) -> dict[str, float]:
        """Run the training doctor on this log step; print new findings; health/* scalars."""
        if not self.world.main:
            return {}
        extra = {"gp_grad_norm": stats["diag/gp_grad_norm"]} if "diag/gp_grad_norm" in stats else {}
        if "class_kl" in self.eval_results:
            extra["class_kl"] = self.eval_results["class_kl"]
        if "modes" in self.eval_results:
            extra["mode_coverage"] = self.eval_results["modes"] / self.eval_results["num_modes"]
        with self._own_rng():
            torch.manual_seed(self.step)  # a fresh batch without touching the training RNG
            fake = self.game.fresh_outputs(self.output_networks(), len(self._real_batch), self.device)
        extra["diversity_ratio"] = diversity_ratio(fake, self._real_batch)
        for finding in self.doctor.observe(self.step, stats, extra):
            ui.console.print(f"[bold yellow]doctor[/] step {finding.step}: {finding.message} "
                             f"[bold]Try:[/] {finding.fix}", highlight=False, soft_wrap=True)
            self.logger.text("health/findings", f"**{finding.symptom}** at step {finding.step}: {finding.message}"
                                                f"  \nTry: `{finding.fix}`", self.step)
        return {**self.doctor.health(), "health/diversity_ratio": extra["diversity_ratio"]}

    def _own_rng(self):
        """Random draws inside leave the training RNG as it was (measurements must not change the run)."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def _rollback(self, diverged: TrainingDiverged) -> bool:
        """nan_policy=rollback: reload the last good checkpoint with every learning rate halved."""
        if self.t.nan_policy != "rollback" or self.last_good is None or self.rollbacks >= 3:
            return False
        self.rollbacks += 1
        consumed = self._load(self.last_good)
        self.batches.restart(consumed)
        if self._noise_state is not None:
            self.updates.noise_rng.set_state(self._noise_state)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] *= 0.5
        for scheduler in self.schedulers.values():
            scheduler.base_lrs = [lr * 0.5 for lr in scheduler.base_lrs]
        self.updates.forget()
        ui.console.print(f"[bold yellow]{diverged}[/]\nRolled back to step {self.step} with every learning rate "
                         f"halved (rollback {self.rollbacks} of 3).", highlight=False)
        return True

    def _check_finite(self, stats: dict[str, float], state: dict[str, Any] | None = None) -> None:
        """TrainingDiverged if a loss went NaN/Inf since the last check, or a logged value (gradient
        norms included, except where a grad scaler skips overflowing steps) or a tensor of `state` is not finite."""
        bad_step = int(self.updates.first_bad)
        values = {**stats, **{f"grad_norm/{k}": float(v) for k, v in self.updates.grad_norms.items()
                              if k not in self.precision.scalers}}
        bad = [k for k, v in values.items() if not math.isfinite(v)] + nonfinite(state or {})[:3]
        if bad_step < 0 and not bad:
            return
        kept = f"The last good checkpoint, {self.last_good}, is kept" if self.last_good else "No checkpoint had been written yet"
        raise TrainingDiverged(
            f"Training diverged: {', '.join(bad) or 'a loss'} became NaN/Inf by step {bad_step if bad_step >= 0 else self.step}. "
            f"{kept}; nothing after the divergence was saved. Try a lower learning rate "
            f"(optimizer.*.lr), a gradient-penalty loss (loss=wgan_gp) or a smaller trainer.n_critic."
        )
