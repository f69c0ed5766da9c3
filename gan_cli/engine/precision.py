"""Mixed precision: autocast for the forward passes, a grad scaler per optimizer for fp16.

bf16 has fp32's range and needs no scaler; fp16 does (one per optimizer, since they step
at different times). Gradient penalties differentiate D in fp32 (`full_precision`), so
the penalty's inner gradient is neither scaled nor rounded.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from gan_cli.config import PRECISIONS
from gan_cli.errors import ConfigError

DTYPES = dict(zip(PRECISIONS, (None, torch.bfloat16, torch.float16)))


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """No TF32 inside: penalties and evaluation compute in true fp32 on Ampere and newer GPUs."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def check_supported(name: str, device: torch.device) -> None:
    """A precision this device cannot run is a ConfigError that says what to choose instead."""
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"trainer.precision=bf16 needs a GPU with bfloat16 support (Ampere or newer); "
                          f"{torch.cuda.get_device_name(device)} has none. Use trainer.precision=fp16 (with grad "
                          "scaling) or fp32.")
    available = getattr(torch.amp, "is_autocast_available", lambda kind: kind in ("cuda", "cpu"))
    if name != "fp32" and not available(device.type):
        raise ConfigError(f"trainer.precision={name} needs autocast, which torch {torch.__version__} does not offer "
                          f"on {device.type}; use trainer.precision=fp32 there.")


class Precision:
    def __init__(self, name: str, device: torch.device, optimizers: tuple[str, ...] = ("D", "G")):
        if name not in DTYPES:
            raise ConfigError(f"trainer.precision={name!r} is not supported; valid: {', '.join(DTYPES)}.")
        check_supported(name, device)
        self.name, self.device, self.dtype = name, device, DTYPES[name]
        self.scalers = {k: torch.amp.GradScaler(device.type) for k in optimizers} if name == "fp16" else {}

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def full_precision(self) -> contextlib.AbstractContextManager:
        """Autocast off and, on a GPU, no TF32: gradient penalties differentiate D in true fp32."""
        stack = contextlib.ExitStack()
        if self.dtype is not None:
            stack.enter_context(torch.autocast(self.device.type, enabled=False))
        if self.device.type == "cuda":
            stack.enter_context(full_fp32())
        return stack

    def backward(self, loss: Tensor, net: str) -> None:
        (self.scalers[net].scale(loss) if net in self.scalers else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer, net: str) -> None:
        """Before reading gradient norms: true (unscaled) gradients."""
        if net in self.scalers:
            self.scalers[net].unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer, net: str) -> None:
        if net in self.scalers:
            self.scalers[net].step(optimizer)  # skips the step if gradients overflowed
            self.scalers[net].update()
        else:
            optimizer.step()

    def state_dict(self) -> dict | None:
        return {k: s.state_dict() for k, s in self.scalers.items()} or None

    def load_state_dict(self, state: dict | None) -> None:
        for k, s in self.scalers.items():
            if state and k in state:
                s.load_state_dict(state[k])
