"""Which callables a config may name: the one place that decides.

Hydra instantiates any `_target_` it is given, and a checkpoint carries the config its
generator is rebuilt from, so a shared checkpoint or experiment YAML could run any code.
Allowed here: the tool's own builders and torch's optimizers and LR schedulers, by exact
name; and code under module prefixes the user trusts (`--trust PREFIX`, GAN_CLI_TRUST),
never prefixes that come from a config or a checkpoint.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from omegaconf import OmegaConf

from gan_cli.errors import ConfigError, UntrustedTarget

ENV = "GAN_CLI_TRUST"

# Every `_target_` of configs/ (but configs/hydra/), exact names: no prefix matching.
BUILDERS = frozenset({
    "gan_cli.models.dcgan.build", "gan_cli.models.mlp.build", "gan_cli.models.cgan.build",
    "gan_cli.models.resnet.build", "gan_cli.models.sagan.build",
    "gan_cli.models.pix2pix.build", "gan_cli.models.cyclegan.build",
    "gan_cli.models.stylegan.build", "gan_cli.models.progan.build", "gan_cli.models.biggan.build",
    "gan_cli.data.embedded.digits", "gan_cli.data.embedded.ring8", "gan_cli.data.embedded.grid25",
    "gan_cli.data.embedded.fake",
    "gan_cli.data.vision.mnist", "gan_cli.data.vision.fashion_mnist", "gan_cli.data.vision.cifar10",
    "gan_cli.data.vision.image_folder",
    "gan_cli.data.prepared.prepared",
    "gan_cli.data.digit_translation.digits_edges", "gan_cli.data.digit_translation.digits_inpaint",
    "gan_cli.data.digit_translation.digits_unpaired",
    "gan_cli.data.translation_folders.paired_folder", "gan_cli.data.translation_folders.unpaired_folder",
    "gan_cli.losses.adversarial.Minimax", "gan_cli.losses.adversarial.NonSaturating",
    "gan_cli.losses.adversarial.LeastSquares", "gan_cli.losses.adversarial.Hinge",
    "gan_cli.losses.adversarial.Wasserstein", "gan_cli.losses.adversarial.WassersteinGP",
    "gan_cli.losses.penalties.R1", "gan_cli.losses.penalties.R2", "gan_cli.losses.penalties.DRAGAN",
    "gan_cli.losses.penalties.GradientPenalty",
    "gan_cli.hydra_app.RunFolderCheck",  # configs/train.yaml's Hydra callback
})

# Builders that moved, old name -> new: a checkpoint written before the move names the old one.
RENAMED = {
    "gan_cli.models.translation.build": "gan_cli.models.pix2pix.build",
    **{f"gan_cli.data.translation.{n}": f"gan_cli.data.digit_translation.{n}"
       for n in ("digits_edges", "digits_inpaint", "digits_unpaired")},
}


def with_current_names(node: Any) -> Any:
    """A plain config tree (dicts and lists) with every moved `_target_` under its current name."""
    if isinstance(node, dict):
        return {k: RENAMED.get(v, v) if k == "_target_" and isinstance(v, str) else with_current_names(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [with_current_names(v) for v in node]
    return node


@lru_cache(maxsize=None)
def allowed() -> frozenset[str]:
    """BUILDERS, torch.optim.<Optimizer subclass> and torch.optim.lr_scheduler.<LRScheduler subclass>."""
    import torch  # here, so that `gan --help` stays quick

    def subclasses(dotted: str, module: Any, base: type) -> set[str]:
        return {f"{dotted}.{n}" for n in module.__all__
                if isinstance(getattr(module, n, None), type) and issubclass(getattr(module, n), base)}

    sched = torch.optim.lr_scheduler
    return (BUILDERS | subclasses("torch.optim", torch.optim, torch.optim.Optimizer)
            | subclasses("torch.optim.lr_scheduler", sched, sched.LRScheduler))


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else "no message"


def _valid_prefix(p: str) -> bool:
    return bool(p) and all(part.isidentifier() for part in p.split("."))


def trusted_prefixes() -> list[str]:
    """The module prefixes the user trusts, read from the environment now (not cached)."""
    return [p for p in (s.strip() for s in os.environ.get(ENV, "").split(",")) if _valid_prefix(p)]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_allowed(name: str) -> bool:
    """An allowed builder by exact name, or an object defined under a trusted prefix."""
    if name in BUILDERS or (name.startswith("torch.optim.") and name in allowed()):  # torch only when needed
        return True
    prefixes = [p for p in trusted_prefixes() if _under(name, p)]
    if not prefixes or any(part.startswith("__") for part in name.split(".")):
        return False
    from hydra._internal.utils import _locate  # what instantiate itself uses

    try:  # only names under a trusted prefix are ever imported
        obj = _locate(name)
    except Exception as e:
        detail = " ".join(str(e).split()) or type(e).__name__  # Hydra's message spans lines
        raise ImportError(f"`{name}` is under the trusted prefix {prefixes[0]!r} but cannot be imported "
                          f"({detail})") from None
    module = getattr(obj, "__module__", None)  # refuses re-exports such as my_models.os.system
    return isinstance(module, str) and any(_under(module, p) for p in prefixes)


def _targets(node: Any, path: str):
    """(key path, value) of every `_target_` key at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield sub, value
            else:
                yield from _targets(value, sub)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _targets(value, f"{path}[{i}]")


def check_config(cfg: Any, source: str, path: str = "") -> None:
    """Raise UntrustedTarget for the first `_target_` of `cfg` that is not allowed.

    `cfg`: a DictConfig / ListConfig / dict / list, resolved first (what OmegaConf would
    build from it is what is checked); `source` names it ("The config", "Checkpoint X's
    stored config"); `path` is the key path of `cfg` itself (e.g. "model").
    """
    if cfg is None:
        return
    try:
        node = cfg if OmegaConf.is_config(cfg) else OmegaConf.create(cfg)
        tree = OmegaConf.to_container(node, resolve=True)
    except Exception as e:
        raise ConfigError(f"{source} cannot be read as a config ({type(e).__name__}: {_first_line(e)}); "
                          f"nothing was built or run.") from None
    for key, name in _targets(tree, path):
        try:
            if isinstance(name, str) and is_allowed(name):
                continue
        except ImportError as e:
            raise ConfigError(f"{source}: {e} at `{key}`. Nothing was built.") from None
        shown = f"`{name}`" if isinstance(name, str) else f"{name!r} of type {type(name).__name__}, not a dotted name,"
        trusted = trusted_prefixes()
        raise UntrustedTarget(
            f"{source} names {shown} at `{key}`, which is not code gan_cli trusts. A config or checkpoint "
            f"may only name the tool's own model/loss/dataset/penalty builders and torch.optim optimizers "
            f"and lr schedulers"
            + (f", or code under the prefixes you trust ({', '.join(trusted)})" if trusted else "")
            + ". Nothing was built or run. If this is your own code: `gan train --trust my_package ...` or "
            f"{ENV}=my_package (a module prefix; a config or checkpoint cannot widen this)."
        )


def take_trust_flags(argv: list[str]) -> list[str]:
    """Strip `--trust PREFIX` / `--trust=PREFIX` (repeatable, comma-separated) from argv, before Hydra
    sees it; the prefixes go to os.environ[GAN_CLI_TRUST], so child processes trust them too."""
    rest, added = [], []
    it = iter(argv)
    for arg in it:
        if arg == "--trust" or arg.startswith("--trust="):
            value = arg.partition("=")[2] if "=" in arg else next(it, "")
            prefixes = [p.strip() for p in value.split(",") if p.strip()]
            if not prefixes or not all(_valid_prefix(p) for p in prefixes):
                raise SystemExit(f"gan: --trust needs a module prefix such as my_models or lab.gans "
                                 f"(comma-separated for several), got {value!r}.")
            added += prefixes
        else:
            rest.append(arg)
    if added:
        current = [p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip()]
        os.environ[ENV] = ",".join(dict.fromkeys(current + added))
    return rest
