"""Counting what would make a CUDA training step wait on the host, on the CPU.

`HostSyncs` is a TorchDispatchMode that counts the aten ops which, on a GPU, read a device
tensor on the host or need its values to size their output (`.item()`, `float()`, `bool()`,
`if tensor`, `nonzero`, boolean-mask indexing, `unique`, ...) and tensors made from host data
inside the step (`torch.tensor(x, device=...)`: a blocking host-to-device copy on CUDA). It
also counts calls of `Tensor.tolist / numpy / cpu`, which never reach the dispatcher on a CPU
tensor. Training N and 2N steps and comparing the counts isolates what one step does.
"""
from __future__ import annotations

import sys
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNCING = {
    "_local_scalar_dense", "item", "is_nonzero", "nonzero", "nonzero_static", "masked_select", "equal", "allclose",
    "unique", "_unique", "_unique2", "unique_dim", "unique_consecutive", "repeat_interleave", "bincount",
    "histc", "lift_fresh", "lift_fresh_copy", "_assert_async",
}
HOST_METHODS = ("tolist", "numpy", "cpu")


def _caller() -> str | None:
    """The first frame outside torch's own code, or None for reads inside torch.optim: an optimizer
    not captured keeps its step counters on the host on every device (fused Adam keeps none)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if "torch/optim/" in path:
            return None
        if path.endswith("gan_cli/host_copy.py"):
            return None  # pinned, non-blocking copies
        if "/torch/" not in path:
            return f"{path.split('/')[-1]}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class HostSyncs(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.where: Counter[str] = Counter()
        self._saved = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNCING:
            where = _caller()
            if where is not None:
                self.counts[name] += 1
                self.where[where] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        for method in HOST_METHODS:
            original = self._saved[method] = getattr(torch.Tensor, method)

            def counted(tensor, *args, _original=original, _name=method, **kwargs):
                self.counts[f"Tensor.{_name}"] += 1
                return _original(tensor, *args, **kwargs)
            setattr(torch.Tensor, method, counted)
        return super().__enter__()

    def __exit__(self, *exc):
        for method, original in self._saved.items():
            setattr(torch.Tensor, method, original)
        return super().__exit__(*exc)
