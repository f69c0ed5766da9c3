"""The training loop: D step(s) -> G step -> log -> sample -> checkpoint.

The step does no host-device synchronisation: statistics are summed on the device and
read once per log step, where the NaN check happens too. Every checkpoint is checked to
be finite before it is written, so last.pt and best.pt always hold a good state.
"""
from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from gan_cli.config import validate_trainer
from gan_cli.data.base import GanData
from gan_cli.doctor import Doctor, DoctorConfig, diversity_ratio
from gan_cli.engine.augment import d_input_transform
from gan_cli.engine.batches import BatchStream, materialize
from gan_cli.engine.ema import EMA
from gan_cli.engine.gan_step import AdversarialStep
from gan_cli.engine.schedules import lr_schedulers
from gan_cli.engine.build import build
from gan_cli.engine.checkpoint import LAST, find_checkpoint, load_checkpoint, save_atomic
from gan_cli.engine.device import describe_device, resolve_device
from gan_cli.engine.distributed import (any_rank, gather_objects, init_world, is_main_process, parameters_checksum,
                                        rank_device, unwrap, wrap)
from gan_cli.engine.finite import nonfinite
from gan_cli.engine.interrupt import StopNow, StopOnSignal
from gan_cli.engine.precision import Precision
from gan_cli.engine.setup import (compiled, conditional, configure_backends, fixed_batch, make_optimizer,
                                  make_penalty, peak_memory_gb)
from gan_cli.engine.report import hparams_of, summary_rows
from gan_cli.engine.restore import generate
from gan_cli.engine.resume_changes import Change, apply_optimizer_changes, differences, refuse_fixed
from gan_cli.engine.run_lock import RunLock
from gan_cli.errors import CheckpointError, ConfigError, TrainingDiverged
from gan_cli.logging import console as ui
from gan_cli.logging.pictures import image_grid, plot_extent, scatter_picture
from gan_cli.logging.run_logger import NullLogger, RunLogger
from gan_cli.logging.tags import tag_help
from gan_cli.losses.adversarial import Wasserstein
from gan_cli.metrics.evaluate import EvalSettings, Evaluator, lower_is_better
from gan_cli.trust import check_config

log = logging.getLogger(__name__)  # Hydra sends it to <run>/train.log


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, choices: dict[str, str] | None = None):
        self.cfg, self.run_dir, self.choices = cfg, Path(run_dir), choices or {}
        t = self.t = cfg.trainer
        validate_trainer(t)
        self.world = init_world(t.device)
        self.device = rank_device(resolve_device(t.device), self.world)
        configure_backends(self.device, t.tf32)
        if not self.world.main:
            ui.console.quiet = True  # rank 0 speaks for the run
        torch.manual_seed(t.seed)  # the same initial weights on every rank

        self.data: GanData = materialize(build("dataset", cfg.dataset), t.data_in_memory_gb, t.num_workers)
        models = build("model", cfg.model, shape=tuple(self.data.shape), num_classes=self.data.num_classes)
        layout = torch.channels_last if t.channels_last and self.data.kind == "image" else torch.contiguous_format
        self.G = models.generator.to(self.device, memory_format=layout)
        self.D = models.discriminator.to(self.device, memory_format=layout)
        self.latent_dim = models.latent_dim
        self.loss = build("loss", cfg.loss)
        self.opt_g = make_optimizer("optimizer.generator", cfg.optimizer.generator, self.G, self.device)
        self.opt_d = make_optimizer("optimizer.discriminator", cfg.optimizer.discriminator, self.D, self.device)
        self.precision = Precision(t.precision, self.device)
        torch.manual_seed(t.seed + self.world.rank)  # per-rank randomness (dropout, augmentation, penalties)

        self.penalty = make_penalty(cfg.get("penalty"))
        self.fixed_z, self.fixed_y, self.grid_row = fixed_batch(t.num_samples, self.latent_dim, t.seed,
                                                                self.data.num_classes, conditional(self.G))
        self.fixed_z, self.fixed_y = self.fixed_z.to(self.device), self.fixed_y.to(self.device)
        self.doctor = Doctor(DoctorConfig(**t.doctor), self.loss.probabilities, isinstance(self.loss, Wasserstein))

        self.ema = EMA(self.G, t.ema.decay, t.ema.warmup) if t.ema.enabled else None
        self.schedulers = lr_schedulers(t, (self.opt_g, self.opt_d), steps_per_epoch=len(self.data) // t.batch_size)

        self.step, consumed, self.best, self._noise_state = 0, 0, None, None
        self.eval_results: dict[str, float] = {}
        self.changes: list[Change] = []  # config changes a resume applied
        self.resumed_from = self._resume_path()
        if self.resumed_from is not None:
            consumed = self._load(self.resumed_from)
        self.batches = BatchStream(self.data, t.batch_size, self.device, t.seed, t.num_workers, consumed,
                                   self.world.rank, self.world.size)
        d_input = d_input_transform(t.augment, t.instance_noise, t.instance_noise_steps, t.max_steps, self.data.kind)
        G_run, D_run = (wrap(m, self.world, self.device, t.sync_bn) for m in (self.G, self.D))
        self.G, self.D = unwrap(G_run), unwrap(D_run)  # SyncBatchNorm conversion keeps the parameters
        if t.compile:
            G_run, D_run = compiled(G_run, "G"), compiled(D_run, "D")
        self.update = AdversarialStep(G_run, D_run, self.loss, self.opt_g, self.opt_d, self.batches,
                                      self.latent_dim, self.device, t.n_critic, t.g_steps, self.ema,
                                      self.schedulers, d_input, self.penalty, t.mode_seeking, t.unroll_steps,
                                      self.precision, layout == torch.channels_last, t.seed,
                                      self.world.rank, self.world.size)
        if self._noise_state is not None:
            self.update.noise_rng.set_state(self._noise_state)
        self.rollbacks = 0
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.last_good: Path | None = self.resumed_from
        self._saved_at = self.step if self.resumed_from else -1
        self._evaluator: Evaluator | None = None

    # ---------------------------------------------------------------- the loop
    def fit(self, stop: StopOnSignal | None = None) -> dict[str, Any]:
        """Train to trainer.max_steps, or until `stop` (installed by `train`, so that it also covers start-up)
        sees a stop signal."""
        run = self.run_dir
        self.logger = RunLogger(run, tag_help(self.loss.probabilities), self.step) if self.world.main else NullLogger()
        try:
            with contextlib.nullcontext(stop) if stop else StopOnSignal() as stop:
                return self._fit(stop)
        finally:
            self.batches.close()
            self.logger.close()

    def _fit(self, stop: StopOnSignal) -> dict[str, Any]:
        t, run = self.t, self.run_dir
        self._log_start()
        ui.console.print(f"device: [bold]{describe_device(self.device)}[/]   run folder: [bold]{run}[/]")
        log.info("device %s, run folder %s, resumed from %s at step %d", describe_device(self.device), run,
                 self.resumed_from, self.step)
        if self.step >= t.max_steps:
            ui.console.print(f"Checkpoint is at step {self.step}, trainer.max_steps={t.max_steps}: nothing to train.")
        self.stats: dict[str, float] = {}
        self.clock, self._window = ui.Stopwatch(), (0.0, self.step)
        start_step = self.step
        with ui.TrainProgress(t.max_steps, self.step) as bar:
            while self.step < t.max_steps and not any_rank(stop.requested, self.world, self.device):
                log_now = (self.step + 1) % t.log_every == 0 or self.step + 1 == t.max_steps
                try:
                    self.update(self.step + 1, measure=log_now)
                except Exception:
                    if stop.requested:  # the iteration broke off half-way: it must not be saved
                        raise StopNow(stop.signum) from None
                    raise
                self.step += 1
                bar.advance(self.step)
                try:
                    self._after_step(log_now, bar)
                except TrainingDiverged as diverged:
                    if not self._rollback(diverged):
                        raise
            interrupted = any_rank(stop.requested, self.world, self.device)
            if interrupted and self.step > start_step and self._saved_at != self.step:  # evaluation can wait
                self.sample()
                self.save()
        elapsed = self.clock()
        for finding in self.doctor.summary():
            log.warning("doctor: step %d %s: %s Try: %s", finding.step, finding.symptom, finding.message, finding.fix)
        in_sync = len(set(gather_objects(parameters_checksum(self.G), self.world))) == 1
        ui.print_summary(summary_rows(self, self.stats, elapsed, interrupted, start_step, in_sync))
        stop.hand_over()  # e.g. submitit requeues the job on SIGUSR2
        return {"step": self.step, "run_dir": str(run), "time_s": elapsed, "interrupted": interrupted,
                "signal": stop.signum, **self.stats, **self.eval_results, **({"best": self.best} if self.best else {})}

    def _after_step(self, log_now: bool, bar: ui.TrainProgress) -> None:
        """Log, sample, evaluate and checkpoint as the intervals say; the last step does all of them."""
        t, final = self.t, self.step == self.t.max_steps
        if log_now:
            self._log_step(bar)
        elif final or self.step % t.sample_every == 0 or self.step % t.ckpt_every == 0:
            self._check_finite({})  # no grid or checkpoint from a diverged state
        if final or self.step % t.sample_every == 0:
            self.sample()
        if t.eval_every and (final or self.step % t.eval_every == 0):
            self.evaluate()
        if final or self.step % t.ckpt_every == 0:
            self.save()

    def _log_step(self, bar: ui.TrainProgress) -> None:
        now, (window_start, window_step) = self.clock(), self._window
        stats = self.update.stats.read()
        self._check_finite(stats)
        stats.update(self._extra_scalars(self.step - window_step, now - window_start))
        stats.update(self._diagnose(stats))
        self._window, self.stats = (now, self.step), stats
        self.logger.scalars(self.step, stats)
        bar.show(self.step, stats)
        log.info("step %d  %s", self.step, ui.format_stats(stats))

    def _extra_scalars(self, steps: int, seconds: float) -> dict[str, float]:
        return {
            **{f"grad_norm/{k}": float(v) for k, v in self.update.grad_norms.items()},
            "lr/D": self.opt_d.param_groups[0]["lr"], "lr/G": self.opt_g.param_groups[0]["lr"],
            "perf/img_per_s": steps * self.t.batch_size / max(seconds, 1e-9),
            "perf/step_ms": seconds / max(steps, 1) * 1000,
            "perf/mem_gb": peak_memory_gb(self.device),
        }

    def _diagnose(self, stats: dict[str, float]) -> dict[str, float]:
        """Run the training doctor on this log step; print new findings; health/* scalars."""
        if not self.world.main:
            return {}
        extra = {"gp_grad_norm": stats["diag/gp_grad_norm"]} if "diag/gp_grad_norm" in stats else {}
        if "class_kl" in self.eval_results:
            extra["class_kl"] = self.eval_results["class_kl"]
        if "modes" in self.eval_results:
            extra["mode_coverage"] = self.eval_results["modes"] / self.eval_results["num_modes"]
        G = self.G_for_outputs
        with torch.no_grad(), self._own_rng():
            torch.manual_seed(self.step)  # a fresh batch without touching the training RNG
            was_training = G.training
            G.eval()  # no BatchNorm statistics updates: the run must not depend on what it measures
            n = len(self._real_batch)
            labels = torch.arange(n, device=self.device) % max(self.data.num_classes, 1)
            fake = G(torch.randn(n, self.latent_dim, device=self.device), labels if conditional(G) else None)
            G.train(was_training)
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
        """nan_policy=rollback: reload the last good checkpoint with both learning rates halved."""
        if self.t.nan_policy != "rollback" or self.last_good is None or self.rollbacks >= 3:
            return False
        self.rollbacks += 1
        consumed = self._load(self.last_good)
        self.batches.restart(consumed)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] *= 0.5
        for scheduler in self.schedulers:
            scheduler.base_lrs = [lr * 0.5 for lr in scheduler.base_lrs]
        self.update.stats.read()
        self.update.grad_norms.clear()
        self.update.first_bad.fill_(-1)
        ui.console.print(f"[bold yellow]{diverged}[/]\nRolled back to step {self.step} with both learning rates "
                         f"halved (rollback {self.rollbacks} of 3).", highlight=False)
        return True

    def _check_finite(self, stats: dict[str, float], state: dict[str, Any] | None = None) -> None:
        """TrainingDiverged if a loss went NaN/Inf since the last check, or a logged value (gradient
        norms included, except where a grad scaler skips overflowing steps) or a tensor of `state` is not finite."""
        bad_step = int(self.update.first_bad)
        values = {**stats, **{f"grad_norm/{k}": float(v) for k, v in self.update.grad_norms.items()
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

    # ---------------------------------------------------------------- outputs
    @property
    def G_for_outputs(self) -> torch.nn.Module:
        """The generator that samples, evaluation and `gan sample` use: EMA when it is on."""
        return self.ema.model if self.ema is not None else self.G

    @torch.no_grad()
    def sample(self) -> None:
        if not self.world.main:
            return
        G = self.G_for_outputs
        was_training = G.training
        G.eval()
        fake = G(self.fixed_z, self.fixed_y)
        G.train(was_training)
        if self.data.kind == "points":
            picture = scatter_picture(fake, self._real_points, self._extent)
        else:
            picture = image_grid(fake, nrow=self.grid_row)
        self.logger.image("samples/fixed", picture, self.step)
        (self.run_dir / "samples").mkdir(exist_ok=True)
        save_image(picture, self.run_dir / "samples" / f"step_{self.step:07d}.png")

    def evaluate(self) -> None:
        """Metrics of the current generator, logged as metrics/*; keeps best.pt by `trainer.eval.best`."""
        if not self.world.main:
            return
        settings = EvalSettings.from_config(self.t.eval)
        with self._own_rng():
            if self._evaluator is None:  # may train the digits classifier once: keep the training RNG intact
                self._evaluator = Evaluator(self.cfg.dataset, settings, self.device)
            G = self.G_for_outputs
            was_training = G.training
            G.eval()
            sample = lambda num, seed: generate(G, num, self.latent_dim, self.device,  # noqa: E731
                                                settings.batch_size, seed)
            self.eval_results, _ = self._evaluator(sample)
            G.train(was_training)
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

    def state_dict(self, gather: bool = True) -> dict[str, Any]:
        """Everything an exact resume needs. `gather`: collect every rank's RNG state (all ranks call it)."""
        rng = torch.get_rng_state()
        return {
            "version": 1, "step": self.step,
            "generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None, "ema_updates": self.ema.updates if self.ema else 0,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_g": self.schedulers[0].state_dict() if self.schedulers else None,
            "sched_d": self.schedulers[1].state_dict() if self.schedulers else None,
            "scaler": self.precision.state_dict(),
            "batches_consumed": self.batches.consumed,
            "rng": {"cpu": rng, "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                    "per_rank": gather_objects(rng, self.world) if gather else [rng],
                    "noise": self.update.noise_rng.get_state()},
            "fixed_z": self.fixed_z.cpu(), "fixed_y": self.fixed_y.cpu(),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "best": self.best, "eval_results": dict(self.eval_results), "doctor": self.doctor.state_dict(),
            "data": {"name": self.data.name, "kind": self.data.kind, "shape": list(self.data.shape),
                     "num_classes": self.data.num_classes},
        }

    def save(self) -> None:
        """Write last.pt (and a snapshot when due) from a state checked to be finite."""
        state = self.state_dict()  # every rank: its RNG state goes in too
        self._check_finite({}, state)
        path = self.ckpt_dir / LAST
        if self.world.main:
            self.logger.flush()  # the history up to this step is on disk before the step is
            save_atomic(state, path)
            if self.t.snapshot_every and self.step % self.t.snapshot_every == 0:
                save_atomic(state, self.ckpt_dir / f"step_{self.step:07d}.pt")
        self.last_good, self._saved_at = path, self.step

    def _resume_path(self) -> Path | None:
        resume = self.t.resume
        if resume in (None, "", "none", "null"):
            return None
        if resume == "auto":
            path = self.run_dir / "checkpoints" / LAST
            return path if path.is_file() else None
        return find_checkpoint(resume)

    def _load(self, path: Path) -> int:
        """Load a checkpoint's state over the built run, then the config's changes to it (resume_changes)."""
        state = load_checkpoint(path)
        bad = nonfinite({k: state.get(k) for k in ("generator", "discriminator", "ema", "opt_g", "opt_d")})
        if bad:
            raise CheckpointError(f"Checkpoint {path} holds NaN/Inf values ({', '.join(bad[:3])}): it is not a good "
                                  f"state to continue from. Resume from an earlier checkpoint (checkpoints/step_*.pt).")
        diffs = differences(state.get("config") or {}, OmegaConf.to_container(self.cfg, resolve=True))
        refuse_fixed(diffs, str(path))
        try:
            self.G.load_state_dict(state["generator"])
            self.D.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"] if state.get("ema") else self.G.state_dict(),
                                         state.get("ema_updates", 0))
            self.precision.load_state_dict(state.get("scaler"))
            for scheduler, key in zip(self.schedulers, ("sched_g", "sched_d")):
                if state.get(key):
                    scheduler.load_state_dict(state[key])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(
                f"Checkpoint {path} does not match this run's model or optimizer: {str(e).splitlines()[0]}. "
                f"Resume with the config it was trained with (its run folder's .hydra/config.yaml)."
            ) from None
        self.step = int(state["step"])
        self.best = state.get("best")
        self.eval_results = dict(state.get("eval_results") or {})  # the doctor reads them
        self.doctor.load_state_dict(state.get("doctor"))
        per_rank = state["rng"].get("per_rank", [])
        torch.set_rng_state(per_rank[self.world.rank] if len(per_rank) == self.world.size else state["rng"]["cpu"])
        if self.device.type == "cuda" and len(state["rng"]["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self._noise_state = state["rng"].get("noise")
        self.fixed_z, self.fixed_y = state["fixed_z"].to(self.device), state["fixed_y"].to(self.device)
        self.changes = apply_optimizer_changes(  # also after a rollback to the checkpoint the run resumed from
            diffs, {"generator": self.opt_g, "discriminator": self.opt_d},
            dict(zip(("generator", "discriminator"), self.schedulers)))
        return int(state["batches_consumed"])

    def _log_start(self) -> None:
        if self.data.kind == "points":
            self._real_points = torch.stack([self.data.dataset[i][0] for i in range(min(len(self.data), 2000))])
            self._extent = plot_extent(self._real_points)
            real_picture = scatter_picture(self._real_points[:0], self._real_points, self._extent)
        else:
            real = torch.stack([self.data.dataset[i][0] for i in range(min(len(self.data), self.t.num_samples))])
            real_picture = image_grid(real)
        count = min(len(self.data), self.t.batch_size, 256)  # the doctor's diversity reference: one batch
        self._real_batch = torch.stack([self.data.dataset[i][0] for i in range(count)]).to(self.device)
        if not self.logger.continues:  # once per run folder, not again at every resume
            self.logger.image("samples/real", real_picture, self.step)
            self.logger.hparams(hparams_of(self.cfg, self.choices), ["loss/D", "loss/G", "D/real", "D/fake"])
            self.logger.text("config", "```yaml\n" + OmegaConf.to_yaml(self.cfg, resolve=True) + "```", self.step)
        if self.changes:
            lines = [str(c) for c in self.changes]
            ui.console.print("Resumed with config changes:\n  " + "\n  ".join(lines), highlight=False)
            log.info("resumed from %s with changes: %s", self.resumed_from, "; ".join(lines))
            self.logger.text("resume/changes", "\n".join(f"- `{line}`" for line in lines), self.step)


def train(cfg: DictConfig, run_dir: str | Path, choices: dict[str, str] | None = None) -> dict[str, Any]:
    """Train a GAN as `cfg` says, writing everything under `run_dir`. No Hydra needed."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_config(cfg, "The training config")
    lock = RunLock(run_dir) if is_main_process() else contextlib.nullcontext()
    try:
        with lock, StopOnSignal() as stop:  # one writer per run folder; a stop signal while starting counts too
            return Trainer(cfg, run_dir, choices).fit(stop)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
