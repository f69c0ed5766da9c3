"""Structured schema for the parts of the config whose shape is fixed (top level, trainer).

Hydra merges the YAML files onto these dataclasses, so a mistyped key or a value of the
wrong type fails at composition time with a message naming the key. What each trainer key
means is written once, beside its default in configs/trainer/default.yaml; the defaults here
are tested to agree with it (tests/test_defaults.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from gan_cli.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
DECAYS = ("auto", "none", "linear", "exponential")  # trainer.lr_decay
SYNC_DEBUG = ("off", "warn", "error")  # trainer.sync_debug
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # trainer.compile_mode


@dataclass
class DoctorConfig:
    """trainer.doctor.*: the training doctor's thresholds."""
    enabled: bool = True
    warmup_steps: int = 250
    window: int = 10
    d_wins_real: float = 0.9
    d_wins_fake: float = 0.1
    g_grad_vanish: float = 1e-3
    g_grad_collapse: float = 1e-3
    g_wins_margin: float = 0.0
    diversity_ratio: float = 0.5
    class_kl: float = 0.5
    mode_coverage: float = 0.9
    oscillation_window: int = 20
    oscillation_min_swing: float = 0.25
    critic_flat_tol: float = 1e-4
    gp_norm_tol: float = 0.5
    memorising_rt: float = 0.6
    memorising_rv: float = 0.5


@dataclass
class EvalOptions:
    """What an evaluation computes and from how many samples: the keys `gan eval` (configs/eval.yaml, where
    each is explained) and `trainer.eval.*` share."""

    metrics: list[str] = field(default_factory=lambda: ["auto"])
    num_fake: int = 10_000
    num_real: int = 10_000
    batch_size: int = 500
    seed: int = 0
    extractor: str = "auto"  # auto | digits | inception | raw
    inception_weights: Optional[str] = None
    fetch_weights: bool = False
    kid_subset_size: Optional[int] = None
    cache_dir: str = "outputs/.cache"
    quantize: bool = True  # images to uint8 as a PNG holds them, before any resize (gan_cli.metrics.resize)
    resize: str = "clean"  # the Inception's resize to 299 px: clean | legacy_pytorch | legacy_tensorflow


@dataclass
class TrainEvalConfig(EvalOptions):
    """trainer.eval.*: metrics during training, from fewer generated samples."""

    num_fake: int = 2000
    best: Optional[str] = None


@dataclass
class EmaConfig:
    enabled: bool = False
    decay: float = 0.999
    warmup: bool = True


@dataclass
class AdaConfig:
    """trainer.ada.*: adaptive discriminator augmentation (Karras et al. 2020)."""
    enabled: bool = False
    target: float = 0.6
    interval: int = 4
    speed: float = 0.002
    p: float = 0.0
    pipeline: str = "bgc"


@dataclass
class LeCamConfig:
    """trainer.lecam.*: LeCam regularisation of D (Tseng et al. 2021)."""
    weight: float = 0.0
    decay: float = 0.99
    start: int = 1000


@dataclass
class BcrConfig:
    """trainer.bcr.*: balanced consistency regularisation of D (Zhao et al. 2020)."""
    real: float = 0.0
    fake: float = 0.0


@dataclass
class ZcrConfig:
    """trainer.zcr.*: latent consistency regularisation (Zhao et al. 2020)."""
    d: float = 0.0
    g: float = 0.0
    radius: float = 0.05


@dataclass
class TrainerConfig:
    max_steps: int = 2000
    batch_size: int = 64
    n_critic: int = 1
    g_steps: int = 1
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    compile_mode: str = "default"
    compile_backend: str = "inductor"
    deterministic: bool = False
    sync_debug: str = "off"
    channels_last: bool = False
    threads: int = 0
    tf32: bool = True
    sync_bn: bool = False
    seed: int = 0
    accumulate: int = 1
    init_from: Optional[str] = None
    init_strict: bool = True
    init_optimizers: bool = False
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 1000
    snapshot_every: int = 0
    resume: Optional[str] = None
    num_samples: int = 64
    num_workers: int = 2
    data_in_memory_gb: float = 2.0
    ema: EmaConfig = field(default_factory=EmaConfig)
    augment: list[str] = field(default_factory=list)
    ada: AdaConfig = field(default_factory=AdaConfig)
    lecam: LeCamConfig = field(default_factory=LeCamConfig)
    bcr: BcrConfig = field(default_factory=BcrConfig)
    zcr: ZcrConfig = field(default_factory=ZcrConfig)
    instance_noise: float = 0.0
    instance_noise_steps: int = 0
    mode_seeking: float = 0.0
    unroll_steps: int = 0
    nan_policy: str = "stop"
    doctor: DoctorConfig = field(default_factory=DoctorConfig)
    lr_decay: str = "auto"
    lr_decay_start: Optional[float] = None
    lr_decay_gamma: float = 0.99
    eval_every: int = 0
    eval: TrainEvalConfig = field(default_factory=TrainEvalConfig)


@dataclass
class TrainConfig:
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    dataset: Any = MISSING
    penalty: Any = None  # an extra penalty on D (penalty group); empty: none
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def register_schema() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def config_dir() -> str:
    """The configs/ folder: shipped inside the wheel as gan_cli/configs, or the checkout's."""
    packaged = Path(__file__).parent / "configs"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parent.parent / "configs")


_POSITIVE = ("max_steps", "batch_size", "n_critic", "g_steps", "log_every", "sample_every", "ckpt_every", "num_samples")
NAN_POLICIES = ("stop", "rollback")


def is_int(value: Any) -> bool:
    """An integer, and not a bool (to Python, YAML's `true` is the integer 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float, and not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(key: str, value: Any, minimum: int, maximum: int | None = None, what: str = "") -> int:
    """`value` if it is an integer in [minimum, maximum], else a ConfigError naming the full `key`.
    The one check of an integer option: builders, games, datasets and apps all use it."""
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            bounds = f"an integer from {minimum} to {maximum}"
        else:
            bounds = "a positive integer" if minimum == 1 else f"an integer, {minimum} or more"
        raise ConfigError(f"{key} must be {bounds}{f' ({what})' if what else ''}, got {value!r}.")
    return value


def check_positive_ints(node: Any, keys: tuple[str, ...], prefix: str = "") -> None:
    """Each of `keys` a positive integer (counts and batch sizes of `gan sample`, `gan eval`, trainer.eval)."""
    for key in keys:
        check_int(prefix + key, node[key], 1)


MIN_EVAL_SAMPLES = 10  # IS splits the samples 10 ways; FD needs 2; precision/recall and density/coverage k + 1


def check_eval_sizes(node: Any, prefix: str = "") -> None:
    """num_fake, num_real and batch_size of `gan eval` (prefix "") or of training's evaluation ("trainer.eval.")."""
    for key in ("num_fake", "num_real"):
        check_int(prefix + key, node[key], MIN_EVAL_SAMPLES,
                  what="the metrics need that many samples; thousands for meaningful numbers")
    check_int(prefix + "batch_size", node["batch_size"], 1)


def check_range(key: str, value, low: float, high: float, low_open: bool, hint: str) -> float:
    """`value` as a float in (low, high] (low_open) or [low, high], else a ConfigError naming `key`."""
    ok = is_number(value) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ConfigError(f"{key} must be a number in {interval}; got {value!r}. Use {hint}.")
    return float(value)


def check_truncation(value: Any) -> None:
    """`truncation` of `gan sample` / `gan eval`: unset, or psi in (0, 1] (gan_cli.truncation)."""
    ok = value is None or (is_number(value) and 0 < value <= 1)
    if not ok:
        raise ConfigError(f"truncation={value!r} is not valid: it must be a number in (0, 1] (1: no truncation, "
                          f"0.7 is typical; smaller: more typical samples, less variety), or unset.")


def validate_trainer(trainer: Any) -> None:
    """Range checks the type system cannot express; each error names the key and what is valid."""
    for key in _POSITIVE:
        check_int(f"trainer.{key}", trainer[key], 1)
    for key in ("threads", "snapshot_every", "num_workers", "eval_every", "unroll_steps", "instance_noise_steps"):
        check_int(f"trainer.{key}", trainer[key], 0)
    for key in ("data_in_memory_gb", "instance_noise", "mode_seeking"):
        if not trainer[key] >= 0:  # NaN too
            raise ConfigError(f"trainer.{key} must be 0 or more, got {trainer[key]}.")
    choices = {"nan_policy": NAN_POLICIES, "precision": PRECISIONS, "lr_decay": DECAYS, "sync_debug": SYNC_DEBUG,
               "compile_mode": COMPILE_MODES}
    for key, valid in choices.items():
        if trainer[key] not in valid:
            raise ConfigError(f"trainer.{key}={trainer[key]!r} is not valid; valid values: {' | '.join(valid)}.")
    start = trainer.get("lr_decay_start")
    if start is not None and not 0 <= start < 1:
        raise ConfigError(f"trainer.lr_decay_start must be in [0, 1) (the fraction of max_steps the lr is held "
                          f"before the linear decay), or null for the game's; got {start}.")
    if trainer.lr_decay == "exponential" and not 0 < trainer.lr_decay_gamma <= 1:
        raise ConfigError(f"trainer.lr_decay_gamma must be in (0, 1] for trainer.lr_decay=exponential, "
                          f"got {trainer.lr_decay_gamma}.")
    decay = trainer.ema.decay
    if not 0 <= decay < 1:
        raise ConfigError(f"trainer.ema.decay must be in [0, 1) (e.g. 0.999: the weight of the old average), "
                          f"got {decay}.")
    if trainer.eval_every > 0:
        check_eval_sizes(trainer.eval, prefix="trainer.eval.")
    validate_small_data(trainer)


def validate_small_data(trainer: Any) -> None:
    """trainer.accumulate, ada.*, lecam.*, bcr.*, zcr.*: the small-data and fine-tuning options."""
    check_int("trainer.accumulate", trainer.accumulate, 1, what="batches summed into each optimizer step")
    if trainer.accumulate > 1 and trainer.unroll_steps:
        raise ConfigError(f"trainer.accumulate={trainer.accumulate} cannot be combined with trainer.unroll_steps="
                          f"{trainer.unroll_steps} (the unrolled D steps inside G's update); set one of them back "
                          f"(accumulate=1 or unroll_steps=0).")
    ada = trainer.ada
    check_range("trainer.ada.target", ada.target, -1, 1, True, "the paper's 0.6 (r_t is in [-1, 1])")
    check_int("trainer.ada.interval", ada.interval, 1, what="steps between adjustments of p; the paper's 4")
    check_range("trainer.ada.speed", ada.speed, 0, math.inf, False, "0.002 (the paper's 500k images from 0 to 1)")
    check_range("trainer.ada.p", ada.p, 0, 1, False, "0 (the paper) or a fixed p with speed=0")
    check_range("trainer.lecam.weight", trainer.lecam.weight, 0, math.inf, False, "0 (off) or 0.3 (CIFAR-10)")
    check_range("trainer.lecam.decay", trainer.lecam.decay, 0, 1, False, "0.99")
    check_int("trainer.lecam.start", trainer.lecam.start, 0, what="the step after which the term is added")
    for group, key in (("bcr", "real"), ("bcr", "fake"), ("zcr", "d"), ("zcr", "g")):
        check_range(f"trainer.{group}.{key}", trainer[group][key], 0, math.inf, False, "0 (off) or a weight")
    check_range("trainer.zcr.radius", trainer.zcr.radius, 0, math.inf, True, "0.05")

