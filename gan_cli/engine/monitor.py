"""Watching a run: the log step (scalars, progress bar, the training doctor), NaN checks, rollback."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from rich.markup import escape
from torch import Tensor, nn

from gan_cli.doctor import diversity_ratio
from gan_cli.engine.checkpointer import Checkpointer, Progress, RunState
from gan_cli.engine.distributed import World
from gan_cli.engine.finite import nonfinite
from gan_cli.engine.backends import peak_memory_gb
from gan_cli.errors import TrainingDiverged
from gan_cli.logging import console as ui

log = logging.getLogger(__name__)


def own_rng(device: torch.device):
    """Random draws inside leave the training RNG as it was (measurements must not change the run)."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


class Monitor:
    def __init__(self, run: RunState, progress: Progress, checkpointer: Checkpointer, logger: Any, *,
                 world: World, batch_size: int, nan_policy: str, output_networks: Callable[[], dict[str, nn.Module]],
                 real_batch: Tensor, heldout: tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None):
        """`output_networks`: the generators samples come from (EMA copies when on); `real_batch`: the doctor's
        reference for the diversity of G's outputs; `heldout`: (x, y) of training reals and of reals the run
        does not train on, for the doctor's memorising check (r_v), when the data has such."""
        self.run, self.progress, self.checkpointer, self.logger = run, progress, checkpointer, logger
        self.world, self.batch_size, self.nan_policy = world, batch_size, nan_policy
        self.output_networks, self.real_batch, self.heldout = output_networks, real_batch, heldout
        self.device = real_batch.device
        self.stats: dict[str, float] = {}  # the last log step's scalars
        self.rollbacks = 0
        self.start()

    def start(self) -> None:
        """The clock of perf/* starts (again) here: when the loop starts."""
        self.clock, self._window = ui.Stopwatch(), (0.0, self.progress.step, self.run.batches.waited_s)

    def log_step(self, bar: ui.TrainProgress) -> None:
        step, waited = self.progress.step, self.run.batches.waited_s
        now, (window_start, window_step, window_waited) = self.clock(), self._window
        stats = self.run.updates.stats.read()
        self.check_finite(stats)
        stats.update(self._extra_scalars(step - window_step, now - window_start, waited - window_waited))
        stats.update(self._diagnose(stats))
        self._window, self.stats = (now, step, waited), stats
        self.logger.scalars(step, stats)
        bar.show(step, stats)
        log.info("step %d  %s", step, ui.format_stats(stats))

    def _extra_scalars(self, steps: int, seconds: float, waited: float) -> dict[str, float]:
        """`steps` iterations took `seconds`, of which `waited` in BatchStream.next."""
        return {
            **self._grad_norms(),
            **{f"lr/{k}": opt.param_groups[0]["lr"] for k, opt in sorted(self.run.optimizers.items())},
            "perf/img_per_s": steps * self.batch_size / max(seconds, 1e-9),
            "perf/step_ms": seconds / max(steps, 1) * 1000,
            "perf/data_ms": waited / max(steps, 1) * 1000,
            "perf/mem_gb": peak_memory_gb(self.device),
        }

    def _grad_norms(self) -> dict[str, float]:
        """grad_norm/<net> of the last measured step. Under fp16 an overflowing step (its grad scaler skips
        it and lowers the scale: expected, and harmless) has no norm; amp/scale/<net> shows the scale."""
        norms, scalers = {}, self.run.precision.scalers
        for name, value in self.run.updates.grad_norms.items():
            value = float(value)
            if name in scalers:
                norms[f"amp/scale/{name}"] = float(scalers[name].get_scale())
                if not math.isfinite(value):
                    continue
            norms[f"grad_norm/{name}"] = value
        return norms

    def _diagnose(self, stats: dict[str, float]) -> dict[str, float]:
        """Run the training doctor on this log step; print new findings; health/* scalars."""
        if not self.world.main:
            return {}
        step, results, doctor = self.progress.step, self.progress.eval_results, self.run.doctor
        extra = {"gp_grad_norm": stats["diag/gp_grad_norm"]} if "diag/gp_grad_norm" in stats else {}
        if "class_kl" in results:
            extra["class_kl"] = results["class_kl"]
        if "modes" in results:
            extra["mode_coverage"] = results["modes"] / results["num_modes"]
        with own_rng(self.device):
            torch.manual_seed(step)  # a fresh batch without touching the training RNG
            fake = self.run.game.fresh_outputs(self.output_networks(), len(self.real_batch), self.device)
            r_v = self.run.game.overfitting(*self.heldout, step) if self.heldout else None
        extra["diversity_ratio"] = diversity_ratio(fake, self.real_batch)
        health = {"health/diversity_ratio": extra["diversity_ratio"]}
        if r_v is not None:
            extra["r_v"] = health["health/r_v"] = r_v
        if not self.run.data.in_memory:  # read from disk: what the doctor's data_bound fixes apply to
            extra["data_wait"] = stats["perf/data_ms"] / max(stats["perf/step_ms"], 1e-9)
        for finding in doctor.observe(step, stats, extra):
            ui.console.print(f"[bold yellow]doctor[/] step {finding.step}: {escape(finding.message)} "
                             f"[bold]Try:[/] {escape(finding.fix)}", highlight=False, soft_wrap=True)
            self.logger.text("health/findings", f"**{finding.symptom}** at step {finding.step}: {finding.message}"
                                                f"  \nTry: `{finding.fix}`", step)
        return {**doctor.health(), **health}

    def rollback(self, diverged: TrainingDiverged) -> bool:
        """nan_policy=rollback: reload the last good checkpoint with every learning rate halved."""
        if self.nan_policy != "rollback" or self.progress.last_good is None or self.rollbacks >= 3:
            return False
        self.rollbacks += 1
        self.checkpointer.load(self.progress.last_good)
        for opt in self.run.optimizers.values():
            for group in opt.param_groups:
                group["lr"] *= 0.5
        for scheduler in self.run.schedulers.values():
            scheduler.base_lrs = [lr * 0.5 for lr in scheduler.base_lrs]
        self.run.updates.forget()
        ui.console.print(f"[bold yellow]{diverged}[/]\nRolled back to step {self.progress.step} with every learning "
                         f"rate halved (rollback {self.rollbacks} of 3).", highlight=False)
        return True

    def check_finite(self, stats: dict[str, float], state: dict[str, Any] | None = None) -> None:
        """TrainingDiverged if a loss went NaN/Inf since the last check, or a logged value (gradient
        norms included, except where a grad scaler skips overflowing steps) or a tensor of `state` is not finite."""
        updates, scalers, p = self.run.updates, self.run.precision.scalers, self.progress
        bad_step = int(updates.first_bad)
        values = {**stats, **{f"grad_norm/{k}": float(v) for k, v in updates.grad_norms.items() if k not in scalers}}
        bad = [k for k, v in values.items() if not math.isfinite(v)] + nonfinite(state or {})[:3]
        if bad_step < 0 and not bad:
            return
        kept = f"The last good checkpoint, {p.last_good}, is kept" if p.last_good else "No checkpoint had been written yet"
        raise TrainingDiverged(
            f"Training diverged: {', '.join(bad) or 'a loss'} became NaN/Inf by step {bad_step if bad_step >= 0 else p.step}. "
            f"{kept}; nothing after the divergence was saved. Try a lower learning rate "
            f"(optimizer.*.lr), a gradient-penalty loss (loss=wgan_gp) or a smaller trainer.n_critic."
        )
