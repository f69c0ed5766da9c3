"""Finiteness of a nested state (state dicts, optimizer states): what may be saved."""
from __future__ import annotations

from typing import Any

import torch


def nonfinite(tree: Any) -> list[str]:
    """Paths of the floating-point tensors in `tree` (dicts, lists, tensors) that hold NaN or Inf.
    One read of the device for the whole tree, not one per tensor."""
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for path, tensor in _floating_tensors(tree, ""):
        by_device.setdefault(tensor.device, []).append((path, torch.isfinite(tensor).all()))
    bad = []
    for pairs in by_device.values():
        flags = torch.stack([flag for _, flag in pairs]).tolist()  # one read per device
        bad += [path for (path, _), ok in zip(pairs, flags) if not ok]
    return bad


def _floating_tensors(tree: Any, path: str):
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point():
            yield path, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _floating_tensors(v, f"{path}.{k}" if path else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _floating_tensors(v, f"{path}[{i}]")
