"""What a checkpoint holds (version 2) and how a run continues from one.

  version, step                  2; iterations done
  game                           the game's name; `game_state`: its own state (image pools, ...), per rank
  networks / ema                 {name: state_dict} of every network / of the EMA copies
  ema_updates                    how many EMA updates were made
  optimizers / schedulers        {name: state_dict}; `scaler`: fp16 grad scalers by optimizer
  batches_consumed, rng          the data position; CPU, CUDA, per-rank and noise RNG states
  fixed                          the fixed sample grid's inputs
  config, data                   the resolved config; the data's name, kind, shapes, classes
  best, eval_results, doctor     best.pt's metric, the last evaluation, the doctor's state

Version-1 checkpoints (one G and one D) are read through `checkpoint.upgrade`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from gan_cli.checkpoint import LAST, VERSION, find_checkpoint, load_checkpoint, save_atomic
from gan_cli.engine.distributed import gather_objects
from gan_cli.engine.finite import nonfinite
from gan_cli.engine.resume_changes import apply_optimizer_changes, differences, refuse_fixed
from gan_cli.errors import CheckpointError, ConfigError, GanCliError
from gan_cli.logging import console as ui

CPU_GENERATOR_BYTES = torch.Generator().get_state().numel()  # a CUDA generator's state is 16 bytes


class RunState:
    """Part of the Trainer: its checkpoint state, writing it, and loading it back."""

    def state_dict(self, gather: bool = True) -> dict[str, Any]:
        """Everything an exact resume needs. `gather`: collect every rank's RNG state (all ranks call it)."""
        rng = torch.get_rng_state()
        data = self.data
        return {
            "version": VERSION, "step": self.step, "game": self.game_name,
            "game_state": gather_objects(self.game.state_dict(), self.world) if gather else [self.game.state_dict()],
            "networks": {k: m.state_dict() for k, m in self.networks.items()},
            "ema": {k: ema.state_dict() for k, ema in self.emas.items()},
            "ema_updates": max((ema.updates for ema in self.emas.values()), default=0),
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.precision.state_dict(),
            "batches_consumed": self.batches.consumed,
            "rng": {"cpu": rng, "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                    "per_rank": gather_objects(rng, self.world) if gather else [rng],
                    "cuda_per_rank": self._cuda_rng_per_rank(gather),
                    "noise": self.updates.noise_rng.get_state(), "noise_device": self.device.type},
            "fixed": {k: v.cpu() for k, v in self.fixed.items()},
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "best": self.best, "eval_results": dict(self.eval_results), "doctor": self.doctor.state_dict(),
            "data": {"name": data.name, "kind": data.kind, "shape": list(data.shape), "num_classes": data.num_classes,
                     "input_shape": list(data.input_shape) if data.input_shape else None},
        }

    def _cuda_rng_per_rank(self, gather: bool) -> list:
        """Each rank's own CUDA generator state (rank r draws on cuda:LOCAL_RANK)."""
        if self.device.type != "cuda":
            return []
        state = torch.cuda.get_rng_state(self.device)
        return gather_objects(state, self.world) if gather else [state]

    def _resume_on_every_rank(self) -> tuple[Path | None, int]:
        """Resume as trainer.resume says, and make sure every rank resumed from the same step: a rank that
        cannot (a run folder not shared, a missing file) stops them all with its reason, instead of leaving
        the others waiting in a collective."""
        try:
            path = self._resume_path()
            consumed = self._load(path) if path is not None else 0
            problem = None
        except GanCliError as e:
            path, consumed, problem = None, 0, e
        if not self.world.distributed:
            if problem is not None:
                raise problem
            return path, consumed
        views = gather_objects((str(problem) if problem else None, self.step, str(path)), self.world)
        if problem is not None:
            raise problem
        for rank, (message, _, _) in enumerate(views):
            if message:
                raise ConfigError(f"Rank {rank} could not resume: {message}")
        if len({step for _, step, _ in views}) > 1:
            found = "; ".join(f"rank {r}: step {step} from {where}" for r, (_, step, where) in enumerate(views))
            raise ConfigError(f"The ranks resumed from different points ({found}). Every node must see the same run "
                              "folder: give the same hydra.run.dir on a filesystem all nodes share.")
        return path, consumed

    @property
    def game_name(self) -> str:
        return (self.cfg.model.get("game") or {}).get("name", "adversarial")

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
        if saved_on == self.device.type:
            self._noise_state = rng["noise"]
            return
        self._noise_state = torch.Generator(self.device).manual_seed(self.t.seed + 1 + self.step).get_state()
        torch.manual_seed(self.t.seed + self.world.rank + self.step)
        ui.console.print(f"[yellow]{path} was saved on {saved_on} and this run continues on {self.device.type}: the "
                         "random streams restart from the seed at this step, so the run goes on correctly but not bit "
                         "for bit as it would have on the same device.[/]", highlight=False, soft_wrap=True)

    def _load(self, path: Path) -> int:
        """Load a checkpoint's state over the built run, then the config's changes to it (resume_changes)."""
        state = load_checkpoint(path)
        bad = nonfinite({k: state.get(k) for k in ("networks", "ema", "optimizers")})
        if bad:
            raise CheckpointError(f"Checkpoint {path} holds NaN/Inf values ({', '.join(bad[:3])}): it is not a good "
                                  f"state to continue from. Resume from an earlier checkpoint (checkpoints/step_*.pt).")
        diffs = differences(state.get("config") or {}, OmegaConf.to_container(self.cfg, resolve=True))
        refuse_fixed(diffs, str(path))
        try:
            for name, network in self.networks.items():
                network.load_state_dict(state["networks"][name])
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            for name, ema in self.emas.items():
                saved = state["ema"].get(name)
                ema.load_state_dict(saved if saved else self.networks[name].state_dict(), state.get("ema_updates", 0))
            self.precision.load_state_dict(state.get("scaler"))
            for name, scheduler in self.schedulers.items():
                if state["schedulers"].get(name):
                    scheduler.load_state_dict(state["schedulers"][name])
            per_rank = state.get("game_state") or [{}]
            self.game.load_state_dict(per_rank[self.world.rank] if len(per_rank) == self.world.size else per_rank[0])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(
                f"Checkpoint {path} does not match this run's model or optimizer: {str(e).splitlines()[0]}. "
                f"Resume with the config it was trained with (its run folder's .hydra/config.yaml)."
            ) from None
        self.step = int(state["step"])
        self.best = state.get("best")
        self.eval_results = dict(state.get("eval_results") or {})  # the doctor reads them
        self.doctor.load_state_dict(state.get("doctor"))
        self._load_rng(state["rng"], path)
        self.fixed = {k: v.to(self.device) for k, v in state["fixed"].items()}
        settings = {name: spec.settings for name, spec in self.game.optimizers.items()}
        self.changes = apply_optimizer_changes(  # also after a rollback to the checkpoint the run resumed from
            diffs, {settings[k]: opt for k, opt in self.optimizers.items()},
            {settings[k]: s for k, s in self.schedulers.items()})
        return int(state["batches_consumed"])
