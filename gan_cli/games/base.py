"""What a training game declares: the part of a GAN that is particular to its kind.

A game names its networks, its optimizers (each over some networks, with settings from the
`optimizer` group) and its phases (which optimizer steps on which loss, how often), and says
what a batch is, what a sample is and what extra state exact resume needs. The engine
(gan_cli/engine) owns everything generic: the loop, precision, DDP, compile, EMA, logging,
the doctor, evaluation, NaN handling, signals and checkpoints.

The engine calls, in order:
  Game(networks, data, setup, **options)       once; setup: the loss, the penalty and the Settings;
                                               options come from the model file's `game:` node
  game.attach(networks, updates)               the networks as they run (RunNetworks: DDP / compiled /
                                               uncompiled) and the engine's services (Services)
  game.run_phase(phase, step, measure)         for each due phase of each iteration
  game.fixed_inputs(num, seed) / sample_picture(networks, fixed)   the fixed sample grid
  game.state_dict() / load_state_dict(state)   extra state (image pools, running means)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from gan_cli.data.base import GanData, as_floats
from gan_cli.errors import ConfigError
from gan_cli.games.d_regularisers import Regularisers
from gan_cli.truncation import kind_of as truncation_kind, normal



class Services(Protocol):
    """What the engine offers a game's phases (gan_cli.engine.updates.Updates implements it)."""

    precision: Any  # .autocast(), .full_precision(): the forward passes' precision, fp32 for penalties
    optimizers: dict[str, torch.optim.Optimizer]
    micro: int  # with gradient accumulation: which of the accumulated batches a phase runs on (0, 1, ...)

    def next_batch(self) -> tuple[Tensor, ...]: ...  # the next batch of every data field, on the device
    def noise(self, batch: int, dim: int) -> Tensor: ...  # z for this rank's share of the global batch
    def d_input(self, x: Tensor, step: int) -> Tensor: ...  # what D sees of x (augmentation, instance noise)
    def optimize(self, name: str, loss: Tensor, measure: bool, watch: Tensor | None = None) -> None: ...
    def observe_real(self, real_logits: Tensor) -> None: ...  # D's raw outputs on reals (ADA's r_t)
    def record(self, values: dict[str, Tensor | float]) -> None: ...  # scalars for the next log step


@dataclass(frozen=True)
class RunNetworks:
    """The game's networks as they train: `run` (DDP-wrapped, compiled), `eager` (DDP-wrapped, not
    compiled: for terms that differentiate twice) and `local` (compiled, not DDP-wrapped: a forward
    whose gradients must not be averaged across ranks, e.g. D read by G's update)."""

    run: dict[str, nn.Module]
    eager: dict[str, nn.Module]
    local: dict[str, nn.Module]


@dataclass(frozen=True)
class Phase:
    """One kind of update: `optimizer` steps on the game's loss for `name`, on iterations
    divisible by `every` (lazy regularisation when k > 1), `repeat` times in a row (n_critic)."""

    name: str
    optimizer: str
    every: int = 1
    repeat: int = 1


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer over `networks`, built from `optimizer.<settings>` (generator | discriminator).
    `lazy_every` k > 1: it also steps a lazy regulariser every k iterations, and its lr and betas
    are adjusted for the extra steps (gan_cli.engine.optimizers.lazy_adjusted)."""

    settings: str
    networks: tuple[str, ...]
    lazy_every: int = 1


@dataclass(frozen=True)
class Settings:
    """The trainer settings a game plays by (from `trainer.*`)."""

    n_critic: int = 1  # D updates per iteration
    g_steps: int = 1  # G updates per iteration
    max_steps: int = 2000
    batch_size: int = 64
    seed: int = 0
    mode_seeking: float = 0.0  # MSGAN weight
    unroll_steps: int = 0  # unrolled GAN's look-ahead D steps
    accumulate: int = 1  # batches whose gradients each optimizer step sums
    regularisers: Regularisers = Regularisers()  # LeCam, bCR, zCR weights
    rank: int = 0  # this process's rank under torchrun (games with their own random streams seed by it)
    world: int = 1  # how many processes train together

    @classmethod
    def of(cls, trainer: Any, rank: int = 0, world: int = 1) -> "Settings":
        copied = {k: trainer[k] for k in cls.__dataclass_fields__ if k in trainer and k not in ("regularisers",)}
        return cls(**copied, regularisers=Regularisers.of(trainer), rank=rank, world=world)

    @property
    def reuse_fakes(self) -> bool:
        """The G update reuses the D update's G(z) (and G's graph): one D update per iteration, no accumulation."""
        return self.n_critic == 1 and self.accumulate == 1


@dataclass
class Setup:
    """What training needs beyond the networks: the loss, the extra D penalty (or None) and the settings."""

    loss: Any
    penalty: Any
    settings: Settings


def check_supported(game: type, trainer: Any) -> None:
    """A trainer key the game cannot honour (`Game.unsupported`, dotted for nested keys) is a ConfigError naming
    its only valid value."""
    for key, valid in game.unsupported.items():
        value = OmegaConf.select(trainer, key, default=valid)
        if value != valid:
            name = game.__name__.lower()  # the registry's name of every shipped game
            yaml = lambda v: str(v).lower() if isinstance(v, bool) else v  # noqa: E731 - as the command line writes it
            raise ConfigError(f"trainer.{key}={yaml(value)} is not supported by the {name} game (model.game.name="
                              f"{name}); set trainer.{key}={yaml(valid)}.")


class Game:
    data_kinds: ClassVar[tuple[str, ...]] = ("image", "points")  # GanData.kind values it trains on
    generators: ClassVar[tuple[str, ...]] = ("G",)  # networks whose outputs are the samples (EMA averages them)
    discriminators: ClassVar[tuple[str, ...]] = ("D",)
    optimizers: dict[str, OptimizerSpec] = {  # an instance may set its own (lazy_every from its options)
        "G": OptimizerSpec("generator", ("G",)), "D": OptimizerSpec("discriminator", ("D",))}
    lr_decay: ClassVar[tuple[str, float]] = ("none", 0.0)  # what trainer.lr_decay=auto means: (kind, start)
    translators: ClassVar[dict[str, str]] = {}  # translation games: "ab" / "ba" -> the generator that maps it
    unsupported: ClassVar[dict[str, Any]] = {}  # trainer keys this game cannot honour -> their only valid value

    def __init__(self, networks: dict[str, nn.Module], data: GanData, setup: Setup, **options: Any):
        self.networks, self.data = networks, data
        self.loss, self.penalty, self.settings = setup.loss, setup.penalty, setup.settings
        self.phases: tuple[Phase, ...] = ()

    def attach(self, networks: RunNetworks, updates: Services) -> None:
        """The networks as they train, and the engine's services for the phases."""
        self.run, self.eager, self.local, self.updates = networks.run, networks.eager, networks.local, updates

    def run_phase(self, phase: Phase, step: int, measure: bool) -> None:
        """One update of `phase` at iteration `step` (1-based); `measure`: record gradient norms."""
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers for the phases
    def score(self, out: Tensor) -> Tensor:
        """Mean D output as reported: a probability for BCE-style losses, else the raw score."""
        out = out.detach()
        return torch.sigmoid(out).mean() if self.loss.probabilities else out.mean()

    def penalties(self, D: nn.Module, real: Tensor, fake: Tensor, y: Tensor | None, step: int) -> dict[str, Tensor]:
        """The loss's own penalty (WGAN-GP) and the `penalty` group's (R1, R2, DRAGAN...) on D's inputs,
        in fp32: they differentiate D's input. Lazy penalties skip most steps."""
        with self.updates.precision.full_precision():
            real, fake = real.float(), fake.float()
            penalties = self.loss.penalty(D, real, fake, y)
            if self.penalty is not None:
                value = self.penalty(D, real, fake, y, step)
                if value is not None:
                    penalties[self.penalty.name] = value
        return penalties

    # ---------------------------------------------------------------- samples
    def reals(self, count: int) -> Tensor:
        """`count` real examples of what the generators output, as floats (the reference grid, the doctor's batch)."""
        dataset = self.data.dataset
        return as_floats(torch.stack([dataset[i][self.real_index] for i in range(min(len(dataset), count))]))

    real_index: ClassVar[int] = 0  # where the output domain sits in a dataset item

    def fixed_inputs(self, num: int, seed: int) -> dict[str, Tensor]:
        """The inputs of the fixed sample grid, kept in the checkpoint."""
        raise NotImplementedError

    def sample_picture(self, networks: dict[str, nn.Module], fixed: dict[str, Tensor]) -> Tensor:
        """The sample grid (3, H, W) in [0, 1] from `networks` (in eval mode) and the fixed inputs."""
        raise NotImplementedError

    def real_picture(self, num: int) -> Tensor:
        """A picture (3, H, W) in [0, 1] of real data, logged once per run as samples/real."""
        raise NotImplementedError

    def fresh_outputs(self, networks: dict[str, nn.Module], count: int, device: torch.device) -> Tensor:
        """`count` outputs not from the fixed inputs (the doctor's diversity check), on `device`."""
        raise NotImplementedError

    def overfitting(self, train: tuple[Tensor, Tensor], heldout: tuple[Tensor, Tensor], step: int) -> float | None:
        """How far D scores reals it never trained on (`heldout`, (x, y) on the device) below its training reals
        (`train`), as a share of the way to the fakes (ADA's r_v); None where the game cannot say."""
        return None

    @classmethod
    def evaluator(cls, dataset_cfg: Any, data: GanData | None, settings: Any,
                  device: torch.device) -> Callable[[dict[str, nn.Module]], tuple[dict[str, float], dict[str, Any]]]:
        """A function of the output networks -> (metrics, protocol), for evaluation in training and `gan eval`."""
        raise NotImplementedError

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@contextmanager
def seeded(seed: int, device: torch.device):
    """Within the block torch's global RNG (CPU, and `device` if CUDA) starts from `seed`; afterwards it is as
    before. For what a generator draws itself (StyleGAN's noise inputs) when sampling: repeatable, and
    without moving the training run's random stream (exact resume)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def generate(G: nn.Module, num: int, device: torch.device, batch_size: int = 256,
             seed: int = 0, labels: Tensor | None = None, z: Tensor | None = None,
             truncation: float | None = None) -> Tensor:
    """`num` samples from G in batches, on the CPU: (num, *shape). Repeatable for a seed: z comes from it, and
    so does what G draws itself (StyleGAN's noise inputs), without touching the caller's random state.
    `truncation`: psi of the truncation trick, done as G's kind does it (gan_cli.truncation)."""
    kind = truncation_kind(G) if truncation is not None else None
    if z is None:
        z = normal((num, G.latent_dim), torch.Generator().manual_seed(seed), truncation if kind == "z" else None)
    extra = {"truncation": truncation} if kind == "w" else {}
    out = []
    with seeded(seed, device):
        for start in range(0, num, batch_size):
            zb = z[start : start + batch_size].to(device)
            yb = None if labels is None else labels[start : start + batch_size].to(device)
            out.append(G(zb, yb, **extra).float().cpu())
    return torch.cat(out)


@contextmanager
def frozen(*modules: nn.Module):
    """Within the block no gradients are kept for the modules' weights (G's update through D); afterwards each
    parameter trains as before (FreezeD's frozen blocks stay frozen)."""
    params = [p for m in modules for p in m.parameters()]
    trained = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, trained):
            p.requires_grad_(flag)


def eval_mode(networks: dict[str, nn.Module]):
    """Context: the networks in eval mode (no dropout, BatchNorm running statistics), then back."""
    return _EvalMode(networks)


class _EvalMode:
    def __init__(self, networks: dict[str, nn.Module]):
        self.networks = networks

    def __enter__(self) -> dict[str, nn.Module]:
        self.was = {k: m.training for k, m in self.networks.items()}
        for m in self.networks.values():
            m.eval()
        return self.networks

    def __exit__(self, *exc: object) -> None:
        for k, m in self.networks.items():
            m.train(self.was[k])
