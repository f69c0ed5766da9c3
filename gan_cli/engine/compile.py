"""`trainer.compile`: torch.compile a run's networks, and fall back to eager when it cannot.

`torch.compile` is lazy: it compiles at a module's first call (and again when a guard fails),
so a missing C++ compiler or an unsupported op surfaces there, not where `torch.compile(...)`
is written. `CompiledOrEager` calls the compiled module and, if that raises while the eager
module runs the same call fine, says so once and runs eagerly from then on. AOTAutograd
compiles the backward at the first backward by default; here it compiles with the forward
(where the torch in use allows), so that a backward that cannot compile falls back too.

Double backward (gradient penalties, R1, path length) is not supported through AOTAutograd
graphs: games run those terms through the eager modules (`Game.eager`).
"""
from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from gan_cli.errors import ConfigError
from gan_cli.logging import console as ui

log = logging.getLogger(__name__)



def _backward_with_forward() -> contextlib.AbstractContextManager:
    config = getattr(torch, "_functorch", None) and getattr(torch._functorch, "config", None)
    if config is None or not hasattr(config, "force_non_lazy_backward_lowering"):
        return contextlib.nullcontext()  # older torch: a backward that cannot compile fails at its first call
    return config.patch(force_non_lazy_backward_lowering=True)


class CompiledOrEager:
    """A network as it trains under `trainer.compile`: its compiled form until that fails, then itself.
    Attributes other than the call (requires_grad_, train, parameters, ...) are the eager module's."""

    def __init__(self, module: nn.Module, name: str, mode: str = "default", backend: str = "inductor"):
        self.eager, self.name = module, name
        options = {} if mode == "default" else {"mode": mode}
        self.compiled: nn.Module | None = torch.compile(module, backend=backend, **options)

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.eager(*args, **kwargs)
        try:
            with _backward_with_forward():
                return self.compiled(*args, **kwargs)
        except Exception as compile_error:
            out = self.eager(*args, **kwargs)  # an error of the call itself is raised from here, as without compile
            self.fall_back(compile_error)
            return out

    def fall_back(self, error: Exception) -> None:
        self.compiled = None
        first = (str(error).strip().splitlines() or [""])[0][:300]
        ui.console.print(f"[yellow]trainer.compile: {self.name} runs eagerly: compiling it failed "
                         f"({type(error).__name__}: {first}).[/]", highlight=False, soft_wrap=True)
        log.warning("trainer.compile: %s runs eagerly (%s: %s)", self.name, type(error).__name__, first)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["eager"], name)


def compile_networks(networks: dict[str, nn.Module], mode: str, backend: str) -> dict[str, CompiledOrEager]:
    """Each network compiled (with the eager fallback); a backend torch does not know is a ConfigError
    (trainer.compile_mode is checked with the other trainer keys)."""
    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        raise ConfigError(f"trainer.compile_backend={backend!r} is not a torch.compile backend here; valid: "
                          f"{', '.join(sorted(known))} (inductor is the fast one; aot_eager and eager debug compile "
                          "problems).")
    return {name: CompiledOrEager(module, name, mode, backend) for name, module in networks.items()}


def eager_module(module) -> nn.Module:
    """The module a `CompiledOrEager` (or anything else) runs eagerly."""
    return module.eager if isinstance(module, CompiledOrEager) else module
