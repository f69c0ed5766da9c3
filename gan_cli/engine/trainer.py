"""The training loop: the game's phases -> log -> sample -> evaluate -> checkpoint.

The Trainer builds a run from its config (data, the game and its networks, optimizers, precision,
EMA, schedules, DDP, compile) and its parts, each given what it needs:

  Checkpointer  (checkpointer.py)  what a checkpoint holds, writing it, loading and resuming
  Monitor       (monitor.py)       the log step, the training doctor, NaN checks, rollback
  Outputs       (outputs.py)       sample grids, evaluation, the start-of-run records
  Updates       (updates.py)       one iteration's phases, and the services a game's phases call

They share the run's objects (`RunState`) and where it stands (`Progress`: step, best, last good
checkpoint). The games are in gan_cli/games/.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_cli.build import build
from gan_cli.data.base import first_items
from gan_cli.data.selection import build_dataset
from gan_cli.config import validate_trainer
from gan_cli.doctor import Doctor, DoctorConfig
from gan_cli.engine.augment import d_input_transform
from gan_cli.engine.batches import BatchStream, materialize
from gan_cli.engine.checkpointer import Checkpointer, Progress, RunState
from gan_cli.engine.compile import compile_networks
from gan_cli.engine.device import describe_device, resolve_device
from gan_cli.engine.distributed import Control, any_rank, gather_objects, init_world, parameters_checksum, \
    rank_device, unwrap, wrap
from gan_cli.engine.ada import make_ada
from gan_cli.engine.ema import EMA
from gan_cli.engine.init_from import init_from
from gan_cli.engine.monitor import Monitor
from gan_cli.engine.networks import build_models
from gan_cli.engine.outputs import Outputs
from gan_cli.engine.precision import Precision
from gan_cli.engine.report import summary_rows
from gan_cli.engine.run_lock import RunLock, is_main_process
from gan_cli.engine.schedules import lr_schedulers
from gan_cli.engine.backends import backend_state, configure_backends, configure_threads, restore_backends, \
    sync_debug
from gan_cli.engine.optimizers import make_optimizers, make_penalty
from gan_cli.engine.updates import Updates
from gan_cli.errors import TrainingDiverged
from gan_cli.games.base import RunNetworks, Settings, Setup, check_supported
from gan_cli.models.freeze import freeze_input_blocks
from gan_cli.interrupt import StopNow, StopOnSignal
from gan_cli.logging import console as ui
from gan_cli.logging.run_logger import NullLogger, RunLogger
from gan_cli.logging.tags import tag_help
from gan_cli.trust import check_config

log = logging.getLogger(__name__)  # Hydra sends it to <run>/train.log
HELDOUT_BATCH = 128  # reals of each side the doctor's memorising check scores at a log step


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, choices: dict[str, str] | None = None,
                 overrides: list[str] | None = None):
        self.cfg, self.run_dir, self.choices = cfg, Path(run_dir), choices or {}
        self.overrides = list(overrides or [])  # the command line's (and the sweep's): they lead the HParams table
        t = self.t = cfg.trainer
        validate_trainer(t)
        self.world = init_world(t.device)
        self.device = rank_device(resolve_device(t.device), self.world)
        configure_backends(self.device, t.tf32, t.deterministic)
        self.control = Control(self.world)
        if not self.world.main:
            ui.console.quiet = True  # rank 0 speaks for the run
        torch.manual_seed(t.seed)  # the same initial weights on every rank

        data = self.data = materialize(build_dataset(cfg.dataset), t.data_in_memory_gb, t.num_workers)
        configure_threads(t.threads, data.kind)
        models = build_models(cfg.model, data.kind, data.shape, data.num_classes, data.input_shape,
                              self.choices.get("dataset") or data.name)
        if cfg.model.get("freeze_d", 0):  # FreezeD: the first blocks of every D keep their weights
            for name in models.game.discriminators:
                freeze_input_blocks(models.networks[name], cfg.model.freeze_d)
        layout = torch.channels_last if t.channels_last and data.kind != "points" else torch.contiguous_format
        self.networks = {k: m.to(self.device, memory_format=layout) for k, m in models.networks.items()}
        self.loss = build("loss", cfg.loss)
        check_supported(models.game, t)
        setup = Setup(self.loss, make_penalty(cfg.get("penalty")), Settings.of(t, self.world.rank, self.world.size))
        self.game = models.game(self.networks, data, setup, **models.options)
        self.optimizers = make_optimizers(self.game.optimizers, cfg.optimizer, self.networks, self.device)
        self.precision = Precision(t.precision, self.device, tuple(self.optimizers))
        torch.manual_seed(t.seed + self.world.rank)  # per-rank randomness (dropout, augmentation, penalties)

        fixed = {k: v.to(self.device) for k, v in self.game.fixed_inputs(t.num_samples, t.seed).items()}
        self.doctor = Doctor(DoctorConfig(**t.doctor), self.loss.probabilities, self.loss.wasserstein)
        self.emas = {name: EMA(self.networks[name], t.ema.decay, t.ema.warmup)
                     for name in self.game.generators} if t.ema.enabled else {}
        self.schedulers = lr_schedulers(t, self.optimizers, len(data) // t.batch_size, self.game.lr_decay)
        self.batches = BatchStream(data, t.batch_size, self.device, seed=t.seed, num_workers=t.num_workers,
                                   rank=self.world.rank, world=self.world.size)
        eager = {k: wrap(m, self.world, self.device, t.sync_bn) for k, m in self.networks.items()}
        self.networks.update({k: unwrap(m) for k, m in eager.items()})  # SyncBatchNorm conversion keeps the parameters
        run = compile_networks(eager, t.compile_mode, t.compile_backend) if t.compile else eager
        ada = make_ada(t, data.kind, self.loss, self.device, self.world.size)
        d_input = d_input_transform(t.augment, t.instance_noise, t.instance_noise_steps, t.max_steps, data.kind,
                                    ada.augment if ada else None)
        self.updates = Updates(self.optimizers, self.precision, self.batches, emas=self.emas, plain=self.networks,
                               schedulers=self.schedulers, d_input=d_input,
                               channels_last=layout == torch.channels_last, seed=t.seed, world=self.world,
                               accumulate=t.accumulate, ada=ada,
                               ddp=[m for m in eager.values() if hasattr(m, "no_sync")])
        local = run if not self.world.distributed else dict(self.networks)  # compiled where there is no DDP
        self.game.attach(RunNetworks(run, eager, local), self.updates)

        # the parts, sharing the run's objects and where it stands
        state = RunState(networks=self.networks, emas=self.emas, optimizers=self.optimizers,
                         schedulers=self.schedulers, precision=self.precision, game=self.game, doctor=self.doctor,
                         fixed=fixed, batches=self.batches, updates=self.updates, data=data)
        self.progress = Progress()
        self.checkpointer = Checkpointer(cfg, state, self.progress, world=self.world, device=self.device,
                                         folder=self.run_dir / "checkpoints")
        self.resumed_from = self.checkpointer.resume(t.resume)
        self.initialised = None  # a fine-tune's source, when this run started from another's weights
        if self.resumed_from is None and t.init_from:
            self.initialised = init_from(t.init_from, data, self.networks, self.emas, self.optimizers,
                                         strict=t.init_strict, with_optimizers=t.init_optimizers)
        self.logger = RunLogger(self.run_dir, tag_help(self.loss.probabilities), self.progress.step) \
            if self.world.main else NullLogger()
        self.outputs = Outputs(cfg, state, self.progress, self.logger, world=self.world, device=self.device,
                               run_dir=self.run_dir)
        count = min(len(data), t.batch_size, 256)  # the doctor's diversity reference: one batch of reals
        self.monitor = Monitor(state, self.progress, self.checkpointer, self.logger, world=self.world,
                               batch_size=t.batch_size * t.accumulate, nan_policy=t.nan_policy,
                               output_networks=self.outputs.output_networks,
                               real_batch=self.game.reals(count).to(self.device), heldout=self._heldout_batches())

    def _heldout_batches(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
        """(x, y) of training reals and of as many reals the run does not train on, on the device: the doctor's
        memorising check (r_v), where the data holds some back (dataset.subset) and the doctor is on."""
        data = self.data
        if data.heldout is None or not len(data.heldout) or not self.t.doctor.enabled or not self.world.main:
            return None
        count = min(len(data), len(data.heldout), HELDOUT_BATCH)
        return tuple(tuple(t.to(self.device) for t in first_items(d, count))  # type: ignore[return-value]
                     for d in (data.dataset, data.heldout))

    @property
    def step(self) -> int:
        return self.progress.step

    @property
    def ckpt_dir(self) -> Path:
        return self.checkpointer.folder

    # ---------------------------------------------------------------- the loop
    def fit(self, stop: StopOnSignal | None = None) -> dict[str, Any]:
        """Train to trainer.max_steps, or until `stop` (installed by `train`, so that it also covers start-up)
        sees a stop signal."""
        try:
            with contextlib.nullcontext(stop) if stop else StopOnSignal() as stop:
                return self._fit(stop)
        finally:
            self.batches.close()
            self.logger.close()

    def _fit(self, stop: StopOnSignal) -> dict[str, Any]:
        t, run, p = self.t, self.run_dir, self.progress
        self.outputs.log_start(self.choices, self.overrides, self.resumed_from, self.checkpointer.changes)
        ui.console.print(f"device: [bold]{describe_device(self.device)}[/]   run folder: [bold]{run}[/]")
        log.info("device %s, run folder %s, resumed from %s at step %d", describe_device(self.device), run,
                 self.resumed_from, p.step)
        if self.initialised is not None:
            ui.console.print(self.initialised.describe(), highlight=False, soft_wrap=True)
            log.info(self.initialised.describe())
        if p.step >= t.max_steps:
            ui.console.print(f"Checkpoint is at step {p.step}, trainer.max_steps={t.max_steps}: nothing to train.")
        self.monitor.start()
        start_step = p.step
        with ui.TrainProgress(t.max_steps, p.step) as bar:
            while p.step < t.max_steps and not self.control.poll(stop.requested):
                log_now = (p.step + 1) % t.log_every == 0 or p.step + 1 == t.max_steps
                try:
                    with sync_debug(t.sync_debug if p.step >= start_step + 2 else "off", self.device):
                        self.updates.iteration(self.game, p.step + 1, measure=log_now)
                except Exception:
                    if stop.requested:  # the iteration broke off half-way: it must not be saved
                        raise StopNow(stop.signum) from None
                    raise
                p.step += 1
                bar.advance(p.step)
                try:
                    self._after_step(log_now, bar)
                except TrainingDiverged as diverged:
                    if not self.monitor.rollback(diverged):
                        raise
            interrupted = any_rank(self.control.drain() or stop.requested, self.world, self.device)
            if interrupted and p.step > start_step and p.saved_at != p.step:  # evaluation can wait
                self.outputs.sample()
                self.save()
        elapsed = self.monitor.clock()
        for finding in self.doctor.summary():
            log.warning("doctor: step %d %s: %s Try: %s", finding.step, finding.symptom, finding.message, finding.fix)
        checksum = sum(parameters_checksum(m) for m in self.networks.values())
        in_sync = len(set(gather_objects(checksum, self.world))) == 1
        stats = self.monitor.stats
        ui.print_summary(summary_rows(self, stats, elapsed, interrupted, start_step, in_sync))
        stop.hand_over()  # e.g. submitit requeues the job on SIGUSR2
        return {"step": p.step, "run_dir": str(run), "time_s": elapsed, "interrupted": interrupted,
                "signal": stop.signum, **stats, **p.eval_results, **({"best": p.best} if p.best else {})}

    def _after_step(self, log_now: bool, bar: ui.TrainProgress) -> None:
        """Log, sample, evaluate and checkpoint as the intervals say; the last step does all of them."""
        t, step = self.t, self.progress.step
        final = step == t.max_steps
        if log_now:
            self.monitor.log_step(bar)
        elif final or step % t.sample_every == 0 or step % t.ckpt_every == 0:
            self.monitor.check_finite({})  # no grid or checkpoint from a diverged state
        if final or step % t.sample_every == 0:
            self.outputs.sample()
        if t.eval_every and (final or step % t.eval_every == 0):
            best = self.outputs.evaluate()
            if best is not None:
                self.save_best(best)
            self.control.barrier()  # the other ranks wait for rank 0's evaluation off NCCL's clock
        if final or step % t.ckpt_every == 0:
            self.save()

    def save(self) -> None:
        """last.pt (and a snapshot when due) from a state checked to be finite."""
        state = self.checkpointer.state_dict()  # every rank: its RNG state goes in too
        self.monitor.check_finite({}, state)
        if self.world.main:
            self.logger.flush()  # the history up to this step is on disk before the step is
        self.checkpointer.write(state, self.t.snapshot_every)

    def save_best(self, best: dict) -> None:
        state = {**self.checkpointer.state_dict(gather=False), "best": best}
        self.monitor.check_finite({}, state)
        self.checkpointer.write_best(state)
        self.progress.best = best


def train(cfg: DictConfig, run_dir: str | Path, choices: dict[str, str] | None = None,
          overrides: list[str] | None = None) -> dict[str, Any]:
    """Train a GAN as `cfg` says, writing everything under `run_dir`. No Hydra needed."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_config(cfg, "The training config")
    lock = RunLock(run_dir) if is_main_process() else contextlib.nullcontext()
    threads, backends = torch.get_num_threads(), backend_state()  # a run's threads and flags hold for it only
    try:
        with lock, StopOnSignal() as stop:  # one writer per run folder; a stop signal while starting counts too
            return Trainer(cfg, run_dir, choices, overrides).fit(stop)
    finally:
        torch.set_num_threads(threads)
        restore_backends(backends)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
