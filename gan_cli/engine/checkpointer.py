"""What a checkpoint holds (version 2), writing it, and loading it back over a built run.

  version, step                  2; iterations done
  game                           the game's name; `game_state`: its own state (image pools, ...), per rank
  networks / ema                 {name: state_dict} of every network / of the EMA copies
  ema_updates                    how many EMA updates were made
  optimizers / schedulers        {name: state_dict}; `scaler`: fp16 grad scalers by optimizer
  batches_consumed, rng          the data position; CPU, CUDA, per-rank and noise RNG states
  fixed                          the fixed sample grid's inputs
  config, data                   the resolved config; the data's name, kind, shapes, classes
  best, eval_results, doctor     best.pt's metric, the last evaluation, the doctor's state
  ada                            ADA's p and the signs of its current window (when ADA is on)

Version-1 checkpoints (one G and one D) are read through `checkpoint.upgrade`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_cli.checkpoint import LAST, VERSION, find_checkpoint, load_checkpoint, save_atomic
from gan_cli.data.base import GanData
from gan_cli.doctor import Doctor
from gan_cli.engine.batches import BatchStream
from gan_cli.engine.distributed import World, gather_objects
from gan_cli.engine.ema import EMA
from gan_cli.engine.finite import nonfinite
from gan_cli.engine.precision import Precision
from gan_cli.engine.resume_changes import Change, apply_optimizer_changes, differences, refuse_fixed
from gan_cli.engine.updates import Updates
from gan_cli.errors import CheckpointError, ConfigError, GanCliError
from gan_cli.games.base import Game
from gan_cli.logging import console as ui

CPU_GENERATOR_BYTES = torch.Generator().get_state().numel()  # a CUDA generator's state is 16 bytes


@dataclass
class Progress:
    """Where a run stands; the trainer's parts share one."""

    step: int = 0  # iterations done
    best: dict | None = None  # best.pt's metric, value and step
    eval_results: dict[str, float] = field(default_factory=dict)  # the last evaluation (the doctor reads it)
    last_good: Path | None = None  # the checkpoint a rollback returns to
    saved_at: int = -1  # the step last written to last.pt


@dataclass(kw_only=True)
class RunState:
    """The objects whose state a checkpoint holds."""

    networks: dict[str, nn.Module]  # as built: no DDP, not compiled
    emas: dict[str, EMA]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    precision: Precision
    game: Game
    doctor: Doctor
    fixed: dict[str, torch.Tensor]  # the sample grid's inputs, on the device
    batches: BatchStream
    updates: Updates
    data: GanData


class Checkpointer:
    def __init__(self, cfg: DictConfig, run: RunState, progress: Progress, *, world: World, device: torch.device,
                 folder: Path):
        self.cfg, self.world, self.device, self.run, self.progress = cfg, world, device, run, progress
        self.folder = folder  # <run>/checkpoints
        self.changes: list[Change] = []  # config changes the last load applied

    @property
    def game_name(self) -> str:
        return (self.cfg.model.get("game") or {}).get("name", "adversarial")

    def state_dict(self, gather: bool = True) -> dict[str, Any]:
        """Everything an exact resume needs. `gather`: collect every rank's RNG state (all ranks call it)."""
        r, p, rng = self.run, self.progress, torch.get_rng_state()
        return {
            "version": VERSION, "step": p.step, "game": self.game_name,
            "game_state": gather_objects(r.game.state_dict(), self.world) if gather else [r.game.state_dict()],
            "networks": {k: m.state_dict() for k, m in r.networks.items()},
            "ema": {k: ema.state_dict() for k, ema in r.emas.items()},
            "ema_updates": max((ema.updates for ema in r.emas.values()), default=0),
            "optimizers": {k: opt.state_dict() for k, opt in r.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in r.schedulers.items()},
            "scaler": r.precision.state_dict(),
            "batches_consumed": r.batches.consumed,
            "rng": {"cpu": rng, "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                    "per_rank": gather_objects(rng, self.world) if gather else [rng],
                    "cuda_per_rank": self._cuda_rng_per_rank(gather),
                    "noise": r.updates.noise_rng.get_state(), "noise_device": self.device.type},
            "fixed": {k: v.cpu() for k, v in r.fixed.items()},
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "best": p.best, "eval_results": dict(p.eval_results), "doctor": r.doctor.state_dict(),
            **({"ada": r.updates.ada.state_dict()} if r.updates.ada is not None else {}),
            "data": {"name": r.data.name, "kind": r.data.kind, "shape": list(r.data.shape),
                     "num_classes": r.data.num_classes,
                     "input_shape": list(r.data.input_shape) if r.data.input_shape else None},
        }

    def write(self, state: dict[str, Any], snapshot_every: int = 0) -> None:
        """last.pt (and step_XXXXXXX.pt when due) from rank 0; `state` is checked to be finite by the caller."""
        path = self.folder / LAST
        if self.world.main:
            save_atomic(state, path)
            if snapshot_every and self.progress.step % snapshot_every == 0:
                save_atomic(state, self.folder / f"step_{self.progress.step:07d}.pt")
        self.progress.last_good, self.progress.saved_at = path, self.progress.step

    def write_best(self, state: dict[str, Any]) -> None:
        if self.world.main:
            save_atomic(state, self.folder / "best.pt")

    def _cuda_rng_per_rank(self, gather: bool) -> list:
        """Each rank's own CUDA generator state (rank r draws on cuda:LOCAL_RANK)."""
        if self.device.type != "cuda":
            return []
        state = torch.cuda.get_rng_state(self.device)
        return gather_objects(state, self.world) if gather else [state]

    # ---------------------------------------------------------------- resuming
    def resume(self, resume: str | None) -> Path | None:
        """Resume as trainer.resume says, and make sure every rank resumed from the same step: a rank that
        cannot (a run folder not shared, a missing file) stops them all with its reason, instead of leaving
        the others waiting in a collective. Returns the checkpoint resumed from."""
        try:
            path = self._resume_path(resume)
            if path is not None:
                self.load(path)
            problem = None
        except GanCliError as e:
            path, problem = None, e
        if self.world.distributed:
            views = gather_objects((str(problem) if problem else None, self.progress.step, str(path)), self.world)
            if problem is None:
                for rank, (message, _, _) in enumerate(views):
                    if message:
                        raise ConfigError(f"Rank {rank} could not resume: {message}")
                if len({step for _, step, _ in views}) > 1:
                    found = "; ".join(f"rank {r}: step {step} from {where}" for r, (_, step, where) in enumerate(views))
                    raise ConfigError(f"The ranks resumed from different points ({found}). Every node must see the "
                                      "same run folder: give the same hydra.run.dir on a filesystem all nodes share.")
        if problem is not None:
            raise problem
        if path is not None:
            self.progress.last_good, self.progress.saved_at = path, self.progress.step
        return path

    def _resume_path(self, resume: str | None) -> Path | None:
        if resume in (None, "", "none", "null"):
            return None
        if resume == "auto":
            path = self.folder / LAST
            return path if path.is_file() else None
        return find_checkpoint(resume)

    def load(self, path: Path) -> None:
        """Load a checkpoint's state over the built run, then the config's changes to it (resume_changes);
        the data stream continues where the checkpoint's did."""
        r, p = self.run, self.progress
        state = load_checkpoint(path)
        bad = nonfinite({k: state.get(k) for k in ("networks", "ema", "optimizers")})
        if bad:
            raise CheckpointError(f"Checkpoint {path} holds NaN/Inf values ({', '.join(bad[:3])}): it is not a good "
                                  f"state to continue from. Resume from an earlier checkpoint (checkpoints/step_*.pt).")
        diffs = differences(state.get("config") or {}, OmegaConf.to_container(self.cfg, resolve=True))
        refuse_fixed(diffs, str(path))
        try:
            for name, network in r.networks.items():
                network.load_state_dict(state["networks"][name])
            for name, optimizer in r.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            for name, ema in r.emas.items():
                saved = state["ema"].get(name)
                ema.load_state_dict(saved if saved else r.networks[name].state_dict(), state.get("ema_updates", 0))
            r.precision.load_state_dict(state.get("scaler"))
            if r.updates.ada is not None and "ada" in state:  # ADA turned on at this resume starts at trainer.ada.p
                r.updates.ada.load_state_dict(state["ada"])
            for name, scheduler in r.schedulers.items():
                if state["schedulers"].get(name):
                    scheduler.load_state_dict(state["schedulers"][name])
            per_rank = state.get("game_state") or [{}]
            r.game.load_state_dict(per_rank[self.world.rank] if len(per_rank) == self.world.size else per_rank[0])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(
                f"Checkpoint {path} does not match this run's model or optimizer: {str(e).splitlines()[0]}. "
                f"Resume with the config it was trained with (its run folder's .hydra/config.yaml)."
            ) from None
        p.step = int(state["step"])
        p.best = state.get("best")
        p.eval_results = dict(state.get("eval_results") or {})  # the doctor reads them
        r.doctor.load_state_dict(state.get("doctor"))
        self._load_rng(state["rng"], path)
        r.fixed.update({k: v.to(self.device) for k, v in state["fixed"].items()})
        settings = {name: spec.settings for name, spec in r.game.optimizers.items()}
        self.changes = apply_optimizer_changes(  # also after a rollback to the checkpoint the run resumed from
            diffs, {settings[k]: opt for k, opt in r.optimizers.items()},
            {settings[k]: s for k, s in r.schedulers.items()})
        r.batches.restart(int(state["batches_consumed"]))

    def _load_rng(self, rng: dict, path: Path) -> None:
        """The random streams as saved. From a checkpoint of another device type (CUDA <-> CPU), whose generator
        states this device cannot take, the device streams restart from the seed and step, with a note."""
        per_rank = rng.get("per_rank", [])
        torch.set_rng_state(per_rank[self.world.rank] if len(per_rank) == self.world.size else rng["cpu"])
        saved_on = rng.get("noise_device") or ("cpu" if rng["noise"].numel() == CPU_GENERATOR_BYTES else "cuda")
        if self.device.type == "cuda":
            mine = rng.get("cuda_per_rank") or []
            if len(mine) == self.world.size:
                torch.cuda.set_rng_state(mine[self.world.rank], self.device)
            elif saved_on == "cuda" and rng.get("cuda"):  # before per-rank states: the first device's
                torch.cuda.set_rng_state(rng["cuda"][0], self.device)
        noise = self.run.updates.noise_rng
        if saved_on == self.device.type:
            noise.set_state(rng["noise"])
            return
        seed, step = self.cfg.trainer.seed, self.progress.step
        noise.manual_seed(seed + 1 + step)
        torch.manual_seed(seed + self.world.rank + step)
        ui.console.print(f"[yellow]{path} was saved on {saved_on} and this run continues on {self.device.type}: the "
                         "random streams restart from the seed at this step, so the run goes on correctly but not bit "
                         "for bit as it would have on the same device.[/]", highlight=False, soft_wrap=True)
